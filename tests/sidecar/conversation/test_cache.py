"""Response cache through the real sidecar: hits, expiry, eviction, errors, keys, and shared Redis."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Running, StartSidecar, component_yaml
from tests.redis_server import redis_available, redis_server

A2 = "/v1.0-alpha2/conversation/cached/converse"


def body(text: str, **extra: Any) -> dict[str, Any]:
    return {"inputs": [{"messages": [{"ofUser": {"content": [{"text": text}]}}]}], **extra}


async def counters(running: Running) -> dict[str, float]:
    """Cache results and real component invocations, from the metrics a user would scrape."""
    async with running.session.get(running.metrics + "/") as resp:
        text = await resp.text()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "parley_cache_requests_total":
                out[s.labels["result"]] = out.get(s.labels["result"], 0) + s.value
            elif s.name == "parley_cache_evictions_total":
                out["evicted_" + s.labels["reason"]] = s.value
            elif s.name == "gen_ai_client_operation_duration_seconds_count":
                out["calls"] = out.get("calls", 0) + s.value
    return out


async def cached(start_sidecar: StartSidecar, **metadata: str) -> Running:
    return await start_sidecar({"c.yaml": component_yaml("cached", metadata={"cacheTTL": "10m", **metadata})})


async def test_second_identical_request_is_a_hit_with_original_usage(start_sidecar: StartSidecar) -> None:
    running = await cached(start_sidecar)
    first = await running.post(A2, body("one two three"))
    second = await running.post(A2, body("one two three"))
    assert first == second
    assert first[1]["outputs"][0]["usage"] == {"completionTokens": "3", "promptTokens": "3", "totalTokens": "6"}
    assert await counters(running) == {"miss": 1, "hit": 1, "calls": 1}


async def test_entries_expire(start_sidecar: StartSidecar) -> None:
    running = await cached(start_sidecar, cacheTTL="200ms")
    await running.post(A2, body("x"))
    await asyncio.sleep(0.3)
    await running.post(A2, body("x"))
    got = await counters(running)
    assert (got["miss"], got["calls"], got["evicted_expired"]) == (2, 2, 1)


async def test_bounded_by_entry_count_lru(start_sidecar: StartSidecar) -> None:
    running = await cached(start_sidecar, cacheMaxEntries="2")
    for text in ("a", "b", "a", "c", "a", "b"):  # "b" is least recently used when "c" arrives
        await running.post(A2, body(text))
    got = await counters(running)
    assert (got["hit"], got["miss"], got["evicted_capacity"]) == (2, 4, 2)


async def test_bounded_by_bytes(start_sidecar: StartSidecar) -> None:
    running = await cached(start_sidecar, cacheMaxBytes="600")
    await running.post(A2, body("x" * 300))
    await running.post(A2, body("y" * 300))  # together over 600 bytes: the first goes
    await running.post(A2, body("x" * 300))
    got = await counters(running)
    assert got["miss"] == 3
    assert got["evicted_capacity"] >= 1


async def test_errors_are_not_cached(start_sidecar: StartSidecar) -> None:
    running = await cached(start_sidecar)
    bad = body("x", tools=[{"function": {"name": "f", "parameters": {"properties": "not a map"}}}])
    assert (await running.post(A2, bad))[0] == 500
    assert (await running.post(A2, bad))[0] == 500
    assert (await counters(running))["calls"] == 2


@pytest.mark.parametrize("variant", [
    {"temperature": 0.3},
    {"tools": [{"function": {"name": "f"}}]},
    {"responseFormat": {"type": "object"}},
    {"metadata": {"model": "other-model"}},
])
async def test_different_options_are_different_entries(start_sidecar: StartSidecar, variant: dict[str, Any]) -> None:
    running = await cached(start_sidecar)
    await running.post(A2, body("same words"))
    await running.post(A2, body("same words", **variant))
    assert (await counters(running))["miss"] == 2


async def test_per_request_cache_ttl_enables_caching(start_sidecar: StartSidecar) -> None:
    running = await start_sidecar({"c.yaml": component_yaml("cached")})
    path = A2 + "?metadata.cacheTTL=1m"
    await running.post(path, body("q"))
    await running.post(path, body("q"))
    assert await counters(running) == {"miss": 1, "hit": 1, "calls": 1}


@pytest.mark.skipif(not redis_available(), reason="redis-server is not installed (.ci/run installs it)")
async def test_replicas_share_hits_through_redis(start_sidecar: StartSidecar, tmp_path: Path) -> None:
    with redis_server(tmp_path) as url:
        one = await cached(start_sidecar, cacheStore=url)
        two = await cached(start_sidecar, cacheStore=url)
        first = await one.post(A2, body("shared"))
        second = await two.post(A2, body("shared"))
        assert first == second
        assert (await counters(two)) == {"hit": 1}


@pytest.mark.skipif(not redis_available(), reason="redis-server is not installed (.ci/run installs it)")
async def test_redis_down_answers_uncached(start_sidecar: StartSidecar, tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "parley.cache")
    with redis_server(tmp_path) as url:
        running = await cached(start_sidecar, cacheStore=url)
        assert (await running.post(A2, body("before")))[0] == 200
    for _ in range(3):  # redis is gone now
        status, got = await running.post(A2, body("after"))
        assert status == 200
        assert got["outputs"][0]["choices"][0]["message"]["content"] == "after"
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1


async def test_concurrent_identical_requests_make_one_provider_call(start_sidecar: StartSidecar) -> None:
    from tests.fakes import OpenAIFake

    fake = await OpenAIFake(expected_key="sk-single-flight").start()
    try:
        fake.slow(0.5)  # the first request waits upstream while the others arrive
        running = await start_sidecar({"c.yaml": component_yaml("cached", "conversation.openai", {
            "key": "sk-single-flight", "endpoint": f"{fake.url}/v1", "model": "gpt-test", "cacheTTL": "10m"})})
        replies = await asyncio.gather(*(running.post(A2, body("same question")) for _ in range(8)))
        assert {status for status, _ in replies} == {200}
        assert all(reply == replies[0][1] for _, reply in replies)
        assert len(fake.requests) == 1
        got = await counters(running)
        assert (got["miss"], got["hit"], got["calls"]) == (1, 7, 1)
    finally:
        await fake.close()
