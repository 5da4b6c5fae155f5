"""SIGTERM as a rollout sends it, with the flags the shutdown annotations become
(``dapr.io/graceful-shutdown-seconds`` → ``--dapr-graceful-shutdown-seconds``,
``dapr.io/block-shutdown-duration`` → ``--dapr-block-shutdown-duration``).

The sidecar runs as its own process; the provider is the OpenAI fake, answering after a delay that
stands for a slow LLM call (20 s on the real node, 3 s here).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.conformance.servers import free_port
from tests.conftest import component_yaml
from tests.fakes import OpenAIFake

SLOW_CALL = 3.0
"""Seconds the fake takes to answer: longer than the grace given where a call must be cut."""
CONVERSE = "/v1.0-alpha1/conversation/llm/converse"


@pytest.fixture
async def fake() -> AsyncIterator[OpenAIFake]:
    server = await OpenAIFake().start()
    yield server
    await server.close()


class Process:
    def __init__(self, proc: asyncio.subprocess.Process, http: int) -> None:
        self.proc, self.http = proc, http
        self.url = f"http://127.0.0.1:{http}"

    async def logs(self) -> list[str]:
        assert self.proc.stdout is not None
        lines = (await self.proc.stdout.read()).decode().splitlines()
        return [json.loads(line)["msg"] for line in lines if line.startswith("{")]


async def start(tmp_path: Path, fake: OpenAIFake, *flags: str) -> Process:
    (tmp_path / "llm.yaml").write_text(component_yaml("llm", "conversation.openai", {
        "key": "sk-test", "endpoint": f"{fake.url}/v1", "model": "gpt-test", "maxRetries": "0"}))
    http = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "parley_sidecar", "--app-id", "grace", "--resources-path", str(tmp_path),
        "--dapr-http-port", str(http), "--dapr-grpc-port", str(free_port()), "--metrics-port", str(free_port()),
        "--dapr-public-port", str(free_port()), "--dapr-listen-addresses", "127.0.0.1",
        "--metrics-listen-address", "127.0.0.1", "--dapr-public-listen-address", "127.0.0.1", "--log-as-json",
        *flags, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env={**os.environ},
    )
    running = Process(proc, http)
    async with aiohttp.ClientSession() as session:
        deadline = time.monotonic() + 20
        while True:
            try:
                async with session.get(f"{running.url}/v1.0/healthz") as resp:
                    if resp.status == 204:
                        return running
            except aiohttp.ClientConnectionError:
                pass
            if time.monotonic() > deadline:
                proc.kill()
                raise AssertionError("the sidecar did not become healthy")
            await asyncio.sleep(0.05)


async def refuses_connections(port: int, within: float = 10.0) -> bool:
    """True once a new TCP connection to ``port`` is refused (the listener closed)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            return True
        writer.close()
        await asyncio.sleep(0.02)
    return False


async def converse(url: str) -> tuple[int, object]:
    async with aiohttp.ClientSession() as session, session.post(
            url + CONVERSE, json={"inputs": [{"content": "hi"}]}) as resp:
        return resp.status, await resp.json()


async def stop(process: Process) -> int:
    try:
        return await asyncio.wait_for(process.proc.wait(), 30)
    finally:
        if process.proc.returncode is None:
            process.proc.kill()
            await process.proc.wait()


async def test_an_in_flight_call_finishes_after_sigterm_while_new_connections_are_refused(
    tmp_path: Path, fake: OpenAIFake,
) -> None:
    process = await start(tmp_path, fake, "--dapr-graceful-shutdown-seconds", "20")
    fake.slow(SLOW_CALL)
    pending = asyncio.create_task(converse(process.url))
    await fake.wait_until(lambda: len(fake.requests) == 1)  # the call is with the provider
    process.proc.send_signal(signal.SIGTERM)
    assert await refuses_connections(process.http), "the API port still accepts connections after SIGTERM"
    assert not pending.done()  # the listener closed while the call was still in flight …
    assert await asyncio.wait_for(pending, 30) == (200, {"outputs": [{"result": "echo: hi"}]})  # … and it finished
    assert await stop(process) == 0
    logs = await process.logs()
    assert any("finishing in-flight requests (up to 20s)" in m for m in logs), logs


async def test_a_call_longer_than_the_grace_period_is_cut(tmp_path: Path, fake: OpenAIFake) -> None:
    process = await start(tmp_path, fake, "--dapr-graceful-shutdown-seconds", "1")
    fake.slow(SLOW_CALL * 10)
    pending = asyncio.create_task(converse(process.url))
    await fake.wait_until(lambda: len(fake.requests) == 1)
    process.proc.send_signal(signal.SIGTERM)
    with pytest.raises(aiohttp.ClientError):  # the connection closes without an answer
        await asyncio.wait_for(pending, 20)
    assert await stop(process) == 0


async def test_block_shutdown_keeps_serving_new_calls_first(tmp_path: Path, fake: OpenAIFake) -> None:
    process = await start(tmp_path, fake, "--dapr-block-shutdown-duration", "30s",
                          "--dapr-graceful-shutdown-seconds", "5")
    process.proc.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.2)  # let the signal land; the block lasts far longer than this test needs
    assert await converse(process.url) == (200, {"outputs": [{"result": "echo: hi"}]})
    assert process.proc.returncode is None
    process.proc.kill()  # the block would last 30 s; what follows it is the test above
    await process.proc.wait()
    logs = await process.logs()
    assert any("Blocking graceful shutdown for 30s" in m for m in logs), logs
