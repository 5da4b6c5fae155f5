"""Kubernetes mode with ``--workers 2``: every worker follows the operator's stream, so a Component
applied, changed or deleted in the cluster reaches every worker (docs/sidecar.md, Worker processes)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import TYPE_CHECKING

import aiohttp
from tests.conformance.servers import free_port

if TYPE_CHECKING:
    from conftest import Cluster
    from parley_sidecar.settings import OperatorLink

# The sidecar as the injector starts it, but with the token and CA in the test's directory (the CLI
# reads them only from the paths the injector mounts).
SCRIPT = """
import sys
from pathlib import Path
from parley_sidecar import logs, workers
from parley_sidecar.settings import OperatorLink, Ports, SidecarSettings
address, folder, http, grpc, public, metrics = sys.argv[1:]
logs.setup("info", as_json=True, app_id="web")
workers.run(SidecarSettings(
    app_id="web", namespace="shop", workers=2,
    ports=Ports(http=int(http), grpc=int(grpc), metrics=int(metrics), public=int(public)),
    listen_addresses=["127.0.0.1"], public_listen_address="127.0.0.1", metrics_listen_address="127.0.0.1",
    operator=OperatorLink(address=address, token_path=Path(folder) / "token", ca_path=Path(folder) / "ca.crt",
                          namespace="shop")))
"""


async def test_components_from_the_operator_reach_every_worker(cluster: Cluster, operator_link: OperatorLink) -> None:
    http = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SCRIPT, operator_link.address, str(operator_link.token_path.parent), str(http),
        str(free_port()),
        str(free_port()), str(free_port()), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ})
    base = f"http://127.0.0.1:{http}"
    try:
        async with aiohttp.ClientSession() as probe:
            for _ in range(400):
                try:
                    async with probe.get(base + "/v1.0/healthz") as resp:
                        if resp.status == 204:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)

        async def components_on_every_worker() -> set[tuple[str, ...]]:
            """What 16 new connections see (the workers take turns accepting them)."""
            seen = set()
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
                for _ in range(16):
                    async with session.get(base + "/v1.0/metadata") as resp:
                        seen.add(tuple(sorted(c["name"] for c in (await resp.json()).get("components", []))))
            return seen

        async def until(expected: tuple[str, ...]) -> None:
            for _ in range(200):
                if await components_on_every_worker() == {expected}:
                    return
                await asyncio.sleep(0.05)
            assert await components_on_every_worker() == {expected}

        await cluster.put_component("shop", "chat", scopes=["web"])
        await until(("chat",))
        await cluster.put_component("shop", "summaries", scopes=["web"])
        await until(("chat", "summaries"))
        await cluster.delete_component("shop", "chat")
        await until(("summaries",))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
            for _ in range(8):
                body = {"inputs": [{"content": "hello"}]}
                async with session.post(base + "/v1.0-alpha1/conversation/summaries/converse", json=body) as resp:
                    assert resp.status == 200
                    assert json.loads(await resp.text())["outputs"][0]["result"] == "hello"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
