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


# -- single flight: a caller that leaves takes only itself away --------------------------------------

GRPC_KEY = "sk-single-flight"


async def openai_cached(start_sidecar: StartSidecar, fake: Any) -> Running:
    return await start_sidecar({"c.yaml": component_yaml("cached", "conversation.openai", {
        "key": GRPC_KEY, "endpoint": f"{fake.url}/v1", "model": "gpt-test", "cacheTTL": "10m"})})


async def conversations(running: Running, success: str) -> float:
    """``dapr_component_conversation_count`` for one outcome, as a user would scrape it."""
    async with running.session.get(running.metrics + "/") as resp:
        text = await resp.text()
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name.startswith("dapr_component_conversation_count") and s.labels.get("success") == success)


async def until(condition: Any, timeout: float = 10.0) -> None:
    """Wait (a generous bound, not a timing assertion) for an async condition."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def alpha1(text: str) -> Any:
    from dapr.proto.runtime.v1 import ai_pb2 as dapr_pb2

    return dapr_pb2.ConversationRequest(name="cached", inputs=[dapr_pb2.ConversationInput(content=text)])


async def test_first_caller_cancelled_the_others_still_get_the_answer(start_sidecar: StartSidecar) -> None:
    """A gRPC caller that gives up (deadline, cancel) must not take the shared call from the others."""
    import grpc
    from dapr.proto.runtime.v1 import dapr_pb2_grpc

    from tests.fakes import OpenAIFake

    fake = await OpenAIFake(expected_key=GRPC_KEY).start()
    try:
        fake.hold()  # the provider is slow: the first request waits upstream
        running = await openai_cached(start_sidecar, fake)
        async with grpc.aio.insecure_channel(running.grpc) as channel:
            stub = dapr_pb2_grpc.DaprStub(channel)  # type: ignore[no-untyped-call]
            first = stub.ConverseAlpha1(alpha1("same question"))
            await fake.wait_until(lambda: fake.holding == 1)
            second = stub.ConverseAlpha1(alpha1("same question"))

            async def second_waits() -> bool:
                return (await counters(running)).get("hit", 0) == 1

            await until(second_waits)
            first.cancel()

            async def first_gone() -> bool:
                return await conversations(running, "false") >= 1

            await until(first_gone)  # the sidecar has run the first caller's cancellation
            fake.release()
            answer = await asyncio.wait_for(second, 10)
        assert answer.outputs[0].result == "echo: same question"
        assert len(fake.requests) == 1
        assert fake.dropped == 0  # the upstream call was not cut when its first caller left
    finally:
        await fake.close()


async def test_every_caller_cancelled_cancels_the_upstream_call(start_sidecar: StartSidecar,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    import grpc
    from dapr.proto.runtime.v1 import dapr_pb2_grpc

    from tests.fakes import OpenAIFake

    caplog.set_level(logging.INFO, "parley.cache")
    fake = await OpenAIFake(expected_key=GRPC_KEY).start()
    try:
        fake.hold()
        running = await openai_cached(start_sidecar, fake)
        async with grpc.aio.insecure_channel(running.grpc) as channel:
            stub = dapr_pb2_grpc.DaprStub(channel)  # type: ignore[no-untyped-call]
            calls = [stub.ConverseAlpha1(alpha1("abandoned"))]
            await fake.wait_until(lambda: fake.holding == 1)
            calls.append(stub.ConverseAlpha1(alpha1("abandoned")))

            async def both_wait() -> bool:
                return (await counters(running)).get("hit", 0) == 1

            await until(both_wait)
            for call in calls:
                call.cancel()
            # nobody waits any more: the upstream call is stopped and its connection closed
            await fake.wait_until(lambda: fake.dropped == 1)
            assert "every request waiting for it has gone" in caplog.text
            # the key is free again: the next identical request makes a call of its own and is answered
            answer = await asyncio.wait_for(stub.ConverseAlpha1(alpha1("abandoned")), 10)
        assert answer.outputs[0].result == "echo: abandoned"
        assert len(fake.requests) == 2
    finally:
        await fake.close()


async def test_a_shared_call_that_fails_is_logged_once_for_its_waiters(start_sidecar: StartSidecar,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    from tests.fakes import OpenAIFake

    caplog.set_level(logging.WARNING, "parley.cache")
    fake = await OpenAIFake(expected_key=GRPC_KEY).start()
    try:
        fake.hold(then_fail=400, message="context length exceeded")
        running = await openai_cached(start_sidecar, fake)
        replies = [asyncio.ensure_future(running.post(A2, body("too long")))]
        await fake.wait_until(lambda: fake.holding == 1)
        replies += [asyncio.ensure_future(running.post(A2, body("too long"))) for _ in range(2)]

        async def all_wait() -> bool:
            return (await counters(running)).get("hit", 0) == 2

        await until(all_wait)
        fake.release()
        got = await asyncio.wait_for(asyncio.gather(*replies), 10)
    finally:
        await fake.close()
    for status, reply in got:
        assert status == 500
        assert reply["errorCode"] == "ERR_CONVERSATION_INVOKE"
        assert "context length exceeded" in reply["message"]
    assert len(fake.requests) == 1
    shared = [r.getMessage() for r in caplog.records if "shared provider call failed" in r.getMessage()]
    assert len(shared) == 1 and "3 waiting requests" in shared[0] and "context length exceeded" in shared[0]


async def test_first_http_client_disconnects_the_others_still_get_the_answer(start_sidecar: StartSidecar) -> None:
    from tests.fakes import OpenAIFake

    fake = await OpenAIFake(expected_key=GRPC_KEY).start()
    try:
        fake.hold()
        running = await openai_cached(start_sidecar, fake)
        first = asyncio.ensure_future(running.post(A2, body("same question")))
        await fake.wait_until(lambda: fake.holding == 1)
        second = asyncio.ensure_future(running.post(A2, body("same question")))

        async def second_waits() -> bool:
            return (await counters(running)).get("hit", 0) == 1

        await until(second_waits)
        first.cancel()  # the client hangs up: its connection closes

        async def first_gone() -> bool:
            return await conversations(running, "false") >= 1

        await until(first_gone)
        fake.release()
        status, reply = await asyncio.wait_for(second, 10)
        assert (status, reply["outputs"][0]["choices"][0]["message"]["content"]) == (200, "echo: same question")
        assert (len(fake.requests), fake.dropped) == (1, 0)
    finally:
        await fake.close()
