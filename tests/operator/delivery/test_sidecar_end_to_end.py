"""The whole path a user takes: apply a Component, call it through a running parley sidecar."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import aiohttp

from parley_sidecar.runtime import Sidecar
from parley_sidecar.settings import OperatorLink, Ports, SidecarSettings

if TYPE_CHECKING:
    from conftest import Cluster


async def test_component_applied_in_the_cluster_answers_through_the_sidecar(
    cluster: Cluster, operator_link: OperatorLink
) -> None:
    settings = SidecarSettings(
        app_id="web", namespace="shop", ports=Ports(http=0, grpc=0, metrics=0, public=0),
        listen_addresses=["127.0.0.1"], public_listen_address="127.0.0.1", metrics_listen_address="127.0.0.1",
        operator=operator_link)
    sidecar = Sidecar(settings)
    await sidecar.start()
    try:
        async with aiohttp.ClientSession() as session:
            base = f"http://127.0.0.1:{sidecar.bound['http']}"

            async def components() -> list[str]:
                async with session.get(base + "/v1.0/metadata") as resp:
                    return [c["name"] for c in (await resp.json()).get("components", [])]  # omitted when empty, as daprd

            # Kubernetes mode: no built-in echo, only what the operator delivers.
            assert await components() == []
            await cluster.put_component("shop", "chat", scopes=["web"])
            await cluster.put_component("shop", "other-app", scopes=["batch"])
            for _ in range(100):
                if await components() == ["chat"]:
                    break
                await asyncio.sleep(0.01)
            assert await components() == ["chat"]
            body = {"inputs": [{"content": "hello from the cluster"}]}
            async with session.post(base + "/v1.0-alpha1/conversation/chat/converse", json=body) as resp:
                assert resp.status == 200
                answer = json.loads(await resp.text())
            assert answer["outputs"][0]["result"] == "hello from the cluster"
    finally:
        await sidecar.stop()
