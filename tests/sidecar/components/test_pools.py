"""Each component has its own bounded connection pool (``maxConnections``), through a real sidecar.

Before, every component shared one aiohttp pool of 100 connections: 100 calls hanging on one
provider made a healthy component on another host wait until they timed out. Here component ``a``'s
provider hangs and fills ``a``'s pool of 4; ``b``, on another fake, still answers while they hang,
and ``a``'s calls beyond its pool wait for ``a``'s own connections, never reaching the provider.
A removed or reloaded component closes its pool: its provider sees the connections closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import Running, StartSidecar, component_yaml
from tests.fakes import OpenAIFake

KEY = "sk-pools-0123456789"


def path(name: str) -> str:
    return f"/v1.0-alpha1/conversation/{name}/converse"


def spec(name: str, fake: OpenAIFake, **extra: str) -> str:
    return component_yaml(name, "conversation.openai",
                          {"key": KEY, "endpoint": f"{fake.url}/v1", "model": f"model-{name}", **extra})


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[OpenAIFake, OpenAIFake]]:
    a, b = await OpenAIFake(expected_key=KEY).start(), await OpenAIFake(expected_key=KEY).start()
    yield a, b
    a.release()
    await a.close()
    await b.close()


async def until(condition: Any, timeout: float = 10.0) -> None:
    """Wait for a condition (a generous bound, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_a_hanging_provider_fills_only_its_own_pool(start_sidecar: StartSidecar,
                                                          fakes: tuple[OpenAIFake, OpenAIFake]) -> None:
    a, b = fakes
    running = await start_sidecar({"a.yaml": spec("a", a, maxConnections="4"), "b.yaml": spec("b", b)})
    a.hold(times=6)
    calls = [asyncio.ensure_future(running.post(path("a"), {"inputs": [f"call {i}"]})) for i in range(6)]
    entry = running.sidecar.store.get("a")
    assert entry is not None
    # all six are in the component (leased), four hang at the provider, two wait for a connection
    await until(lambda: entry.in_flight == 6 and a.holding == 4)

    status, reply = await asyncio.wait_for(running.post(path("b"), {"inputs": ["healthy"]}), 10)
    assert (status, reply["outputs"][0]["result"]) == (200, "echo: healthy")
    assert not any(call.done() for call in calls)  # b answered while every call of a still hangs
    assert (a.holding, len(a.requests)) == (4, 4)  # the other two never reached a's provider

    a.release()
    answers = await asyncio.wait_for(asyncio.gather(*calls), 10)
    got = [r["outputs"][0]["result"] for _, r in answers]
    assert got == [f"echo: call {i}" for i in range(6)], (got, [x.body for x in a.requests])
    assert (len(a.requests), a.most_held) == (6, 4)  # never more than maxConnections at once


async def ask(running: Running, name: str) -> None:
    status, reply = await running.post(path(name), {"inputs": ["ping"]})
    assert status == 200, reply


async def test_removed_and_reloaded_components_close_their_pools(start_sidecar: StartSidecar,
                                                                 fakes: tuple[OpenAIFake, OpenAIFake]) -> None:
    a, b = fakes
    running = await start_sidecar({"a.yaml": spec("a", a), "b.yaml": spec("b", b)})
    for name in ("a", "b"):
        await ask(running, name)
    assert (a.open_connections, b.open_connections) == (1, 1)  # kept alive in each component's pool

    (running.resources / "a.yaml").unlink()  # removed: its pool is closed, no connection leaks
    await until(lambda: a.open_connections == 0)

    (running.resources / "b.yaml").write_text(spec("b", b, model="model-b2"))  # reloaded: new pool
    await until(lambda: b.open_connections == 0)
    await ask(running, "b")
    assert b.last.body["model"] == "model-b2"
    assert b.open_connections == 1


async def test_max_connections_must_be_positive(start_sidecar: StartSidecar,
                                                fakes: tuple[OpenAIFake, OpenAIFake]) -> None:
    a, _ = fakes
    running = await start_sidecar({"a.yaml": spec("a", a, maxConnections="0")})
    assert running.sidecar.store.get("a") is None
    assert running.sidecar.loader is not None
    assert any("maxConnections" in e for e in running.sidecar.loader.errors)
