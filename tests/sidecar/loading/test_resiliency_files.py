"""Dapr ``Resiliency`` files in --resources-path, through a running sidecar and a scriptable OpenAI fake.

The fake counts the upstream calls, so a retry policy shows as the number of calls a user's
provider would see; the file is changed under the running sidecar to check hot reload and the
"last good Resiliency keeps serving" rule.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import Running, StartSidecar, component_yaml
from tests.fakes import OpenAIFake
from tests.sidecar.loading.test_hot_reload import wait_for

KEY = "sk-resiliency-file-key"


@pytest.fixture
async def fake() -> AsyncIterator[OpenAIFake]:
    server = await OpenAIFake().start()
    yield server
    await server.close()


def gpt(fake: OpenAIFake, name: str = "gpt") -> str:
    # The component's own policy says "no retries, no breaker": whatever happens is the Resiliency's.
    return component_yaml(name, "conversation.openai", {
        "key": KEY, "model": "m", "endpoint": f"{fake.url}/v1", "maxRetries": "0", "circuitBreakerFailures": "0"})


def resiliency(retry: str = "", *, timeout: str = "", breaker: str = "", target: str = "gpt",
               scopes: str = "") -> str:
    names = "".join(f"          {key}: {key}-policy\n" for key, body in
                    (("retry", retry), ("timeout", timeout), ("circuitBreaker", breaker)) if body)
    text = "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata:\n  name: llm\n"
    text += scopes + "spec:\n  policies:\n"
    if timeout:
        text += f"    timeouts:\n      timeout-policy: {timeout}\n"
    if retry:
        text += f"    retries:\n      retry-policy: {{{retry}}}\n"
    if breaker:
        text += f"    circuitBreakers:\n      circuitBreaker-policy: {{{breaker}}}\n"
    return text + f"  targets:\n    components:\n      {target}:\n        outbound:\n{names}"


async def converse(running: Running, name: str = "gpt") -> tuple[int, object]:
    return await running.post(f"/v1.0-alpha1/conversation/{name}/converse", {"inputs": ["ping"]})


def rewrite(path: Path, text: str) -> None:
    path.write_text(text)
    os.utime(path, (time.time() + 5, time.time() + 5))  # a new mtime even within the clock's granularity


async def calls_for_failing(running: Running, fake: OpenAIFake, failures: int = 20) -> int:
    """Upstream calls one request makes while the fake answers 500 (then the script is cleared)."""
    before = len(fake.requests)
    fake.fail(500, times=failures)
    status, _ = await converse(running)
    fake.clear()
    assert status == 500
    return len(fake.requests) - before


async def test_constant_retry_policy_sets_the_number_of_upstream_calls(start_sidecar: StartSidecar,
                                                                       fake: OpenAIFake) -> None:
    running = await start_sidecar({"gpt.yaml": gpt(fake),
                                   "res.yaml": resiliency("policy: constant, duration: 10ms, maxRetries: 3")})
    assert await calls_for_failing(running, fake) == 4
    status, _ = await converse(running)
    assert status == 200


async def test_exponential_retry_policy_sets_the_number_of_upstream_calls(start_sidecar: StartSidecar,
                                                                          fake: OpenAIFake) -> None:
    running = await start_sidecar({"gpt.yaml": gpt(fake), "res.yaml": resiliency(
        "policy: exponential, initialInterval: 5ms, maxInterval: 20ms, maxRetries: 2")})
    assert await calls_for_failing(running, fake) == 3


async def test_unlimited_retries_end_with_the_first_answer(start_sidecar: StartSidecar, fake: OpenAIFake) -> None:
    running = await start_sidecar({"gpt.yaml": gpt(fake),
                                   "res.yaml": resiliency("policy: constant, duration: 1ms, maxRetries: -1")})
    fake.fail(503, times=7)
    status, body = await converse(running)
    assert status == 200, body
    assert len(fake.requests) == 8


async def test_timeout_policy_ends_a_slow_call(start_sidecar: StartSidecar, fake: OpenAIFake) -> None:
    running = await start_sidecar({"gpt.yaml": gpt(fake), "res.yaml": resiliency(timeout="200ms")})
    fake.slow(30)  # would answer 200 after 30 s: a 500 now is the policy ending the attempt
    status, body = await converse(running)
    assert status == 500 and isinstance(body, dict)
    assert body["errorCode"] == "ERR_CONVERSATION_INVOKE"
    assert "timed out after 0.2s" in body["message"]
    assert len(fake.requests) == 1


async def test_circuit_breaker_opens_after_the_trip(start_sidecar: StartSidecar, fake: OpenAIFake) -> None:
    running = await start_sidecar({"gpt.yaml": gpt(fake), "res.yaml": resiliency(
        "policy: constant, maxRetries: 0", breaker="maxRequests: 1, timeout: 60s, trip: consecutiveFailures >= 2")})
    fake.fail(500, times=2)
    assert (await converse(running))[0] == 500
    assert (await converse(running))[0] == 500
    status, body = await converse(running)
    assert status == 500 and "circuit open for component gpt" in str(body)
    assert len(fake.requests) == 2  # the third call never reached the provider


async def test_a_changed_resiliency_file_is_applied_without_restart(start_sidecar: StartSidecar,
                                                                    fake: OpenAIFake) -> None:
    running = await start_sidecar({"gpt.yaml": gpt(fake),
                                   "res.yaml": resiliency("policy: constant, duration: 1ms, maxRetries: 1")})
    assert await calls_for_failing(running, fake) == 2
    rewrite(running.resources / "res.yaml", resiliency("policy: constant, duration: 1ms, maxRetries: 4"))

    async def applied() -> bool:
        entry = running.sidecar.store.get("gpt")
        return entry is not None and entry.settings.resiliency.max_retries == 4

    await wait_for(applied, timeout=10)
    assert await calls_for_failing(running, fake) == 5
    (running.resources / "res.yaml").unlink()

    async def own_policy_again() -> bool:
        entry = running.sidecar.store.get("gpt")
        return entry is not None and entry.settings.resiliency.max_retries == 0

    await wait_for(own_policy_again, timeout=10)
    assert await calls_for_failing(running, fake) == 1


@pytest.mark.parametrize(("bad", "field"), [
    (resiliency("policy: constant, duration: 1ms, maxRetries: 3").replace("retry: retry-policy", "retry: other"),
     "'spec.targets.components.gpt.outbound.retry': no retry policy named 'other'"),
    (resiliency("policy: constant, duration: 1ms, maxRetries: 3", target="nobody"),
     "'spec.targets.components.nobody': no component named 'nobody' is loaded"),
    (resiliency("policy: constant, duration: soon, maxRetries: 3"),
     "'spec.policies.retries.retry-policy.duration': invalid duration 'soon'"),
    (resiliency("policy: constant, maxRetries: 3", breaker="trip: requests > 3"),
     "'spec.policies.circuitBreakers.circuitBreaker-policy.trip': parley supports"),
    (resiliency("policy: constant, maxRetries: three"),
     "'spec.policies.retries.retry-policy.maxRetries': expected an integer"),
    ("apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata: [unclosed\n", "not valid YAML"),
])
async def test_a_bad_resiliency_is_logged_and_the_last_good_one_keeps_serving(
        start_sidecar: StartSidecar, fake: OpenAIFake, caplog: pytest.LogCaptureFixture, bad: str, field: str) -> None:
    running = await start_sidecar({"gpt.yaml": gpt(fake),
                                   "res.yaml": resiliency("policy: constant, duration: 1ms, maxRetries: 2")})
    caplog.set_level(logging.ERROR, "parley.loading")
    rewrite(running.resources / "res.yaml", bad)

    async def reported() -> bool:
        return any("res.yaml" in r.getMessage() and field in r.getMessage() for r in caplog.records)

    await wait_for(reported, timeout=10)
    assert await calls_for_failing(running, fake) == 3  # still the last good maxRetries: 2
    status, _ = await converse(running)
    assert status == 200
    if "YAML" not in field:
        async with running.session.get(running.metrics + "/metrics") as resp:
            assert 'parley_resiliency_load_errors_total{file="' in await resp.text()


async def test_a_resiliency_scoped_to_other_apps_is_not_applied(start_sidecar: StartSidecar,
                                                                fake: OpenAIFake) -> None:
    running = await start_sidecar({"gpt.yaml": gpt(fake), "res.yaml": resiliency(
        "policy: constant, duration: 1ms, maxRetries: 3", scopes="scopes:\n- another-app\n")})
    assert await calls_for_failing(running, fake) == 1
    rewrite(running.resources / "res.yaml", resiliency(
        "policy: constant, duration: 1ms, maxRetries: 3", scopes="scopes:\n- another-app\n- test-app\n"))

    async def applied() -> bool:
        entry = running.sidecar.store.get("gpt")
        return entry is not None and entry.settings.resiliency.max_retries == 3

    await wait_for(applied, timeout=10)
    assert await calls_for_failing(running, fake) == 4
