"""Timeouts, retries, Retry-After, the circuit breaker and fallbacks, against fakes on loopback.

Components are real (built by the store from metadata, calling the fake over HTTP); the policy
comes from each component's own metadata, as in a Component file.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from parley_sidecar import errors
from parley_sidecar.components import base
from parley_sidecar.components.breaker import Breaker, CircuitOpen
from parley_sidecar.components.resiliency_resource import BreakerPolicy, Outbound, RetryPolicy
from parley_sidecar.components.store import ComponentStore, Entry
from parley_sidecar.conversation import resiliency
from parley_sidecar.metrics import Metrics
from tests.conftest import StartSidecar, component_yaml
from tests.fakes import OpenAIFake
from tests.sidecar.components.conftest import text_request
from tests.sidecar.conftest import Build

KEY = "sk-resiliency-secret-key-42"


@pytest.fixture
async def store() -> AsyncIterator[ComponentStore]:
    async with aiohttp.ClientSession() as session:
        components = ComponentStore(session_factory=lambda: session)
        yield components
        await components.aclose()


@pytest.fixture
async def fakes() -> AsyncIterator[list[OpenAIFake]]:
    started: list[OpenAIFake] = []
    yield started
    for fake in started:
        await fake.close()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics("test-app")


async def component(build: Build, fakes: list[OpenAIFake], name: str, **policy: str) -> tuple[Entry, OpenAIFake]:
    fake = await OpenAIFake().start()
    fakes.append(fake)
    meta = {"key": KEY, "model": f"model-{name}", "endpoint": f"{fake.url}/v1", "retryBackoff": "1ms", **policy}
    return await build("conversation.openai", meta, name=name), fake


async def call(store: ComponentStore, entry: Entry, metrics: Metrics | None = None,
               request: base.ConverseRequest | None = None) -> base.ConverseResponse:
    return await resiliency.invoke(store, entry, request or text_request("Hi"), metrics=metrics)


# -- retries ---------------------------------------------------------------------------------------


async def test_retries_server_errors_then_succeeds(build: Build, store: ComponentStore, fakes: list[OpenAIFake],
                                                   metrics: Metrics) -> None:
    entry, fake = await component(build, fakes, "a")
    fake.fail(500, "boom", times=2)
    response = await call(store, entry, metrics)
    assert response.outputs[0].choices[0].content == "echo: Hi"
    assert len(fake.requests) == 3
    assert metrics.provider_retries.values == {("a", "500"): 2.0}


async def test_gives_up_after_max_retries(build: Build, store: ComponentStore, fakes: list[OpenAIFake]) -> None:
    entry, fake = await component(build, fakes, "a", maxRetries="2")
    fake.fail(502, "bad gateway", times=5)
    with pytest.raises(errors.ProviderError, match="returned 502 Bad Gateway: bad gateway"):
        await call(store, entry)
    assert len(fake.requests) == 3


@pytest.mark.parametrize("status", [400, 401, 404])
async def test_client_errors_are_not_retried(build: Build, store: ComponentStore, fakes: list[OpenAIFake],
                                             status: int) -> None:
    entry, fake = await component(build, fakes, "a")
    fake.fail(status, "nope")
    with pytest.raises(errors.ProviderError):
        await call(store, entry)
    assert len(fake.requests) == 1


async def test_connection_reset_and_malformed_answers(build: Build, store: ComponentStore,
                                                      fakes: list[OpenAIFake], metrics: Metrics) -> None:
    entry, fake = await component(build, fakes, "a")
    fake.reset()
    response = await call(store, entry, metrics)
    assert response.outputs[0].choices[0].content == "echo: Hi"
    assert metrics.provider_retries.values == {("a", "connection"): 1.0}
    fake.malformed()  # a 200 that is not JSON is not retried: the next one would likely be the same
    with pytest.raises(errors.ProviderError, match="malformed"):
        await call(store, entry)


async def test_retry_after_seconds_is_honoured(build: Build, store: ComponentStore, fakes: list[OpenAIFake]) -> None:
    entry, fake = await component(build, fakes, "a")
    fake.fail(429, "Rate limit reached", retry_after="1")
    started = time.monotonic()
    await call(store, entry)
    assert 0.95 <= time.monotonic() - started < 2.0
    assert len(fake.requests) == 2


async def test_retry_after_ms_is_honoured(build: Build, store: ComponentStore, fakes: list[OpenAIFake]) -> None:
    entry, fake = await component(build, fakes, "a")
    fake.fail(503, "busy", headers={"retry-after-ms": "150"}, times=2)
    started = time.monotonic()
    await call(store, entry)
    assert 0.29 <= time.monotonic() - started < 1.5


async def test_retry_after_beyond_the_cap_is_not_waited_for(build: Build, store: ComponentStore,
                                                            fakes: list[OpenAIFake]) -> None:
    entry, fake = await component(build, fakes, "a")
    fake.fail(429, "Rate limit reached", retry_after=str(int(resiliency.MAX_RETRY_AFTER) + 60))
    started = time.monotonic()
    with pytest.raises(errors.ProviderError, match="429 Too Many Requests: Rate limit reached"):
        await call(store, entry)
    assert time.monotonic() - started < 1.0
    assert len(fake.requests) == 1


async def test_timeout_is_per_attempt(build: Build, store: ComponentStore, fakes: list[OpenAIFake],
                                      metrics: Metrics) -> None:
    entry, fake = await component(build, fakes, "a", timeout="200ms")
    fake.slow(2.0)
    started = time.monotonic()
    await call(store, entry, metrics)
    assert time.monotonic() - started < 1.5  # the retry answered long before the slow attempt would
    assert metrics.provider_retries.values == {("a", "timeout"): 1.0}
    fake.slow(1.0, times=3)
    entry2, _ = await component(build, fakes, "b", timeout="100ms", maxRetries="0")
    fakes[-1].slow(1.0)
    with pytest.raises(errors.ProviderTimeout, match=r"request timed out after 0.1s"):
        await call(store, entry2)


# -- circuit breaker -------------------------------------------------------------------------------


async def test_circuit_opens_then_half_opens(build: Build, store: ComponentStore, fakes: list[OpenAIFake]) -> None:
    entry, fake = await component(build, fakes, "a", maxRetries="0", circuitBreakerFailures="2",
                                  circuitBreakerTimeout="600ms")
    fake.fail(500, "down", times=2)
    for _ in range(2):
        with pytest.raises(errors.ProviderError, match="500"):
            await call(store, entry)
    with pytest.raises(CircuitOpen, match=r"circuit open for component a after 2 consecutive failures "
                                                     r"\(last: .*500 Internal Server Error: down\)"):
        await call(store, entry)
    assert len(fake.requests) == 2  # the open circuit did not call upstream
    await asyncio.sleep(0.65)
    fake.fail(500, "still down")  # the half-open trial fails: open again
    with pytest.raises(errors.ProviderError, match="still down"):
        await call(store, entry)
    with pytest.raises(CircuitOpen):
        await call(store, entry)
    await asyncio.sleep(0.65)
    await call(store, entry)  # the trial succeeds: closed
    await call(store, entry)
    assert len(fake.requests) == 5


async def test_circuit_lets_one_trial_through_when_half_open(build: Build, store: ComponentStore,
                                                             fakes: list[OpenAIFake]) -> None:
    entry, fake = await component(build, fakes, "a", maxRetries="0", circuitBreakerFailures="1",
                                  circuitBreakerTimeout="100ms")
    fake.fail(500, "down")
    with pytest.raises(errors.ProviderError):
        await call(store, entry)
    await asyncio.sleep(0.15)
    fake.slow(0.3)
    results = await asyncio.gather(call(store, entry), call(store, entry), return_exceptions=True)
    assert sum(isinstance(r, CircuitOpen) for r in results) == 1
    assert sum(isinstance(r, base.ConverseResponse) for r in results) == 1


async def test_client_errors_do_not_open_the_circuit(build: Build, store: ComponentStore,
                                                     fakes: list[OpenAIFake]) -> None:
    entry, fake = await component(build, fakes, "a", maxRetries="0", circuitBreakerFailures="1")
    fake.fail(400, "bad request", times=3)
    for _ in range(3):
        with pytest.raises(errors.ProviderError, match="bad request"):
            await call(store, entry)
    assert len(fake.requests) == 3


async def test_retries_stop_when_the_circuit_opens(build: Build, store: ComponentStore,
                                                   fakes: list[OpenAIFake]) -> None:
    entry, fake = await component(build, fakes, "a", maxRetries="5", circuitBreakerFailures="2")
    fake.fail(500, "down", times=10)
    with pytest.raises(errors.ProviderError):
        await call(store, entry)
    assert len(fake.requests) == 2


# -- fallback --------------------------------------------------------------------------------------


async def test_fallbacks_are_tried_in_order(build: Build, store: ComponentStore, fakes: list[OpenAIFake],
                                            metrics: Metrics) -> None:
    entry, a = await component(build, fakes, "a", maxRetries="0", fallback="b, c")
    _, b = await component(build, fakes, "b", maxRetries="0")
    _, c = await component(build, fakes, "c", maxRetries="0")
    a.fail(500, "a down", times=2)
    b.fail(429, "b limited")
    response = await call(store, entry, metrics, text_request("Hi", model="only-for-a", api_key="only-for-a"))
    assert response.model == "model-c"
    assert [len(f.requests) for f in (a, b, c)] == [1, 1, 1]
    assert a.last.body["model"] == "only-for-a"
    # a fallback gets the request without the first component's per-request overrides
    assert c.last.body["model"] == "model-c"
    assert c.last.headers["authorization"] == f"Bearer {KEY}"
    assert metrics.fallbacks.values == {("a", "c"): 1.0}
    response = await call(store, entry, metrics)  # b answers now: c is not asked
    assert response.model == "model-b"
    assert len(c.requests) == 1


async def test_all_failing_reports_each_and_cycles_end(build: Build, store: ComponentStore,
                                                       fakes: list[OpenAIFake]) -> None:
    entry, a = await component(build, fakes, "a", maxRetries="0", fallback="b,ghost")
    _, b = await component(build, fakes, "b", maxRetries="0", fallback="a,b")
    a.fail(500, "a down")
    b.fail(503, "b down")
    with pytest.raises(errors.ProviderError) as info:
        await call(store, entry)
    assert info.value.reason == (
        "openai-compatible server returned 500 Internal Server Error: a down; "
        "fallback b: openai-compatible server returned 503 Service Unavailable: b down; "
        "fallback ghost: not loaded")
    assert info.value.status == 500
    assert (len(a.requests), len(b.requests)) == (1, 1)


async def test_open_circuit_falls_back(build: Build, store: ComponentStore, fakes: list[OpenAIFake]) -> None:
    entry, a = await component(build, fakes, "a", maxRetries="0", circuitBreakerFailures="1", fallback="b")
    await component(build, fakes, "b")
    a.fail(500, "down")
    assert (await call(store, entry)).model == "model-b"
    assert (await call(store, entry)).model == "model-b"
    assert len(a.requests) == 1


async def test_request_errors_do_not_fall_back(build: Build, store: ComponentStore, fakes: list[OpenAIFake]) -> None:
    entry, a = await component(build, fakes, "a", fallback="b")
    _, b = await component(build, fakes, "b")
    with pytest.raises(ValueError, match="response format"):
        await call(store, entry, request=text_request("Hi", response_format={"no": "type"}))
    assert (a.requests, b.requests) == ([], [])


# -- secrets ---------------------------------------------------------------------------------------


async def test_no_key_in_any_error_or_log_record(build: Build, store: ComponentStore, fakes: list[OpenAIFake],
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    entry, a = await component(build, fakes, "a", maxRetries="2", fallback="b")
    _, b = await component(build, fakes, "b", maxRetries="0")
    a.expected_key = "sk-another-key"  # a rejects KEY with a message that quotes it, as OpenAI does
    b.fail(429, f"Rate limit for key {KEY} reached", retry_after="0", times=5)
    b.fail(500, f"internal error for {KEY}")
    with pytest.raises(errors.ProviderError) as info:
        await call(store, entry)
    assert info.value.reason.startswith("the provider rejected the API key (401); fallback b:")
    assert "***" in info.value.reason
    assert KEY not in str(info.value)
    assert caplog.records
    for record in caplog.records:
        assert KEY not in record.getMessage()


# -- the whole call's deadline (callTimeout) ---------------------------------------------------------

DEADLINE_0_3 = r"no answer within the call deadline of 0\.3s \(callTimeout\)"


async def test_call_timeout_defaults_to_two_minutes(build: Build, fakes: list[OpenAIFake]) -> None:
    entry, _ = await component(build, fakes, "a")
    assert (entry.settings.resiliency.timeout, entry.settings.resiliency.deadline) == (60.0, 120.0)


async def test_retries_without_an_attempt_timeout_stop_at_the_call_deadline(
        build: Build, store: ComponentStore, fakes: list[OpenAIFake]) -> None:
    """``timeout: 0`` (no per-attempt limit) used to wait for ever on a provider that hangs."""
    entry, fake = await component(build, fakes, "a", timeout="0", maxRetries="3", callTimeout="300ms")
    fake.hold(times=4)
    with pytest.raises(resiliency.DeadlineExceeded, match=DEADLINE_0_3):
        await asyncio.wait_for(call(store, entry), 30)
    assert len(fake.requests) == 1  # no attempt starts after the deadline
    await fake.wait_until(lambda: fake.dropped == 1)  # and the one in flight was cut, not left running


async def test_an_attempt_timeout_is_cut_to_what_is_left(build: Build, store: ComponentStore,
                                                         fakes: list[OpenAIFake], metrics: Metrics) -> None:
    # two full attempts of 400ms, then a third cut to the 200ms left (margins wide enough for a
    # loaded machine: a retry is not made when its backoff would end past the deadline)
    entry, fake = await component(build, fakes, "a", timeout="400ms", maxRetries="5", callTimeout="1s")
    fake.hold(times=6)
    with pytest.raises(resiliency.DeadlineExceeded, match=r"call deadline of 1s \(callTimeout\)"):
        await asyncio.wait_for(call(store, entry, metrics), 30)
    assert metrics.provider_retries.values == {("a", "timeout"): 2.0}
    assert len(fake.requests) == 3
    await fake.wait_until(lambda: fake.dropped == 3)


async def test_a_long_attempt_timeout_does_not_outlive_the_call_deadline(
        build: Build, store: ComponentStore, fakes: list[OpenAIFake]) -> None:
    entry, fake = await component(build, fakes, "a", timeout="10m", callTimeout="300ms")
    fake.hold()
    with pytest.raises(resiliency.DeadlineExceeded, match=DEADLINE_0_3):
        await asyncio.wait_for(call(store, entry), 30)


async def test_fallbacks_share_the_first_components_deadline(build: Build, store: ComponentStore,
                                                             fakes: list[OpenAIFake]) -> None:
    """Each fallback used to bring a budget of its own; now the call ends at the first one's deadline."""
    entry, a = await component(build, fakes, "a", maxRetries="0", callTimeout="300ms", fallback="b, c")
    _, b = await component(build, fakes, "b", maxRetries="0", callTimeout="10m")
    _, c = await component(build, fakes, "c")
    a.fail(500, "a down")
    b.hold()
    with pytest.raises(errors.ProviderError) as info:
        await asyncio.wait_for(call(store, entry), 30)
    # What failed before the deadline is kept in the message: invoke's own guard fires after b's cut attempt.
    assert info.value.reason.endswith("a down; fallback b: no answer within the call deadline of 0.3s (callTimeout)")
    assert c.requests == []  # nothing is tried once the deadline has passed
    await b.wait_until(lambda: b.dropped == 1)


async def test_call_timeout_zero_means_no_overall_limit(build: Build, store: ComponentStore,
                                                        fakes: list[OpenAIFake]) -> None:
    # three slow attempts, each cut by its 200ms timeout, then an answer: about 0.6s in all
    limited, slow = await component(build, fakes, "limited", timeout="200ms", maxRetries="3", callTimeout="500ms")
    slow.slow(2.0, times=3)
    # the deadline ends it (or, on a machine so loaded that the last backoff would pass the deadline,
    # the last attempt's timeout: either way the call is over well before the fourth attempt)
    with pytest.raises(errors.ProviderError, match=r"call deadline of 0\.5s|timed out"):
        await asyncio.wait_for(call(store, limited), 30)
    assert len(slow.requests) < 4
    unlimited, slow = await component(build, fakes, "unlimited", timeout="200ms", maxRetries="3", callTimeout="0")
    slow.slow(2.0, times=3)
    response = await asyncio.wait_for(call(store, unlimited), 30)
    assert response.outputs[0].choices[0].content == "echo: Hi"
    assert len(slow.requests) == 4


async def test_the_client_sees_the_deadline_through_the_sidecar(start_sidecar: StartSidecar) -> None:
    fake = await OpenAIFake().start()
    try:
        fake.hold(times=4)
        running = await start_sidecar({"c.yaml": component_yaml("slow", "conversation.openai", {
            "key": KEY, "endpoint": f"{fake.url}/v1", "model": "m", "timeout": "0", "callTimeout": "300ms"})})
        status, reply = await asyncio.wait_for(
            running.post("/v1.0-alpha1/conversation/slow/converse", {"inputs": ["anyone?"]}), 30)
    finally:
        fake.release()
        await fake.close()
    assert (status, reply) == (500, {
        "errorCode": "ERR_CONVERSATION_INVOKE",
        "message": "failed conversing with component slow: no answer within the call deadline of 0.3s (callTimeout)",
    })


# -- a Resiliency resource's policy (set on the store, as the resources loader does) -----------------


async def waits_under(store: ComponentStore, entry: Entry, fake: OpenAIFake, retry: RetryPolicy) -> list[float]:
    """The backoff waits of one call that fails until the policy gives up (the sleeps are recorded, not slept)."""
    await store.set_overlays({entry.spec.name: Outbound(retry=retry)})
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    fake.fail(503, "busy", times=retry.max_retries + 1)
    with pytest.raises(errors.ProviderError, match="503"):
        await resiliency.invoke(store, entry, text_request("Hi"), sleep=record)
    assert len(fake.requests) == retry.max_retries + 1
    return waits


async def test_a_constant_retry_policy_waits_its_duration_each_time(build: Build, store: ComponentStore,
                                                                   fakes: list[OpenAIFake]) -> None:
    entry, fake = await component(build, fakes, "a", circuitBreakerFailures="0")
    retry = RetryPolicy(policy="constant", duration=0.25, initial_interval=0.5, max_interval=60.0, max_retries=4)
    assert await waits_under(store, entry, fake, retry) == [0.25, 0.25, 0.25, 0.25]


async def test_an_exponential_retry_policy_grows_and_stops_at_max_interval(build: Build, store: ComponentStore,
                                                                           fakes: list[OpenAIFake]) -> None:
    entry, fake = await component(build, fakes, "a", circuitBreakerFailures="0")
    retry = RetryPolicy(policy="exponential", duration=5.0, initial_interval=0.1, max_interval=0.3, max_retries=6)
    waits = await waits_under(store, entry, fake, retry)
    intervals = [min(0.3, 0.1 * 1.5**n) for n in range(6)]  # dapr/kit: ×1.5, each drawn within ±50 %
    assert all(0.5 * i <= w <= min(0.3, 1.5 * i) for w, i in zip(waits, intervals, strict=True)), waits
    assert max(waits) <= 0.3


async def test_a_resiliency_policy_replaces_and_then_restores_the_components_own(
        build: Build, store: ComponentStore, fakes: list[OpenAIFake]) -> None:
    entry, fake = await component(build, fakes, "a", maxRetries="0", circuitBreakerFailures="0")
    await store.set_overlays({"a": Outbound(timeout=2.0, breaker=BreakerPolicy(failures=1, timeout=60.0,
                                                                               max_requests=1))})
    fake.fail(500, times=1)
    with pytest.raises(errors.ProviderError, match="500"):
        await call(store, entry)
    with pytest.raises(CircuitOpen):  # trip consecutiveFailures >= 1
        await call(store, entry)
    await store.set_overlays({})
    assert entry.breaker is None and entry.settings.resiliency == entry.own
    assert (await call(store, entry)).outputs[0].choices[0].content == "echo: Hi"


def test_half_open_lets_max_requests_trials_through() -> None:
    now = [0.0]
    breaker = Breaker(1, 10.0, clock=lambda: now[0], max_requests=2)
    breaker.failure("boom")
    now[0] = 11.0
    breaker.before("a")
    breaker.before("a")
    with pytest.raises(CircuitOpen, match="half-open"):
        breaker.before("a")
    breaker.success()
    assert not breaker.is_open
