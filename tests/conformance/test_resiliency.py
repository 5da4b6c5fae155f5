"""One Dapr ``Resiliency`` file given to daprd and to parley: what a user can observe of it.

Both servers get the same resources directory: ``conversation.openai`` components pointed at one
local fake of OpenAI and a Resiliency targeting them. Compared: the number of upstream calls a
failing provider sees under a constant and an exponential retry policy, and how a timeout policy
ends a slow call (status and error code; the message is an intended difference,
``resiliency-timeout-message``).
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.conformance.compare import encode
from tests.conformance.conftest import APP_ID, DAPRD, write_components
from tests.conformance.differences import Answer, Case, assert_same
from tests.conformance.fake_openai import FakeOpenAI
from tests.conformance.servers import Pair, start_pair
from tests.manifests import component_yaml

pytestmark = pytest.mark.skipif(importlib.util.find_spec("parley_sidecar.components.openai") is None,
                                reason="parley's conversation.openai component does not exist yet")

SLOW = "#slow-call"
"""A request whose text holds this waits this long upstream before the normal answer."""
SLOW_SECONDS = 5.0

RESILIENCY = """\
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: llm
spec:
  policies:
    timeouts:
      short: 500ms
    retries:
      three-constant:
        policy: constant
        duration: 10ms
        maxRetries: 3
      two-exponential:
        policy: exponential
        initialInterval: 10ms
        maxInterval: 40ms
        maxRetries: 2
      none:
        policy: constant
        maxRetries: 0
  targets:
    components:
      gpt-constant:
        outbound:
          retry: three-constant
      gpt-exponential:
        outbound:
          retry: two-exponential
      gpt-slow:
        outbound:
          timeout: short
          retry: none
"""


class SlowFakeOpenAI(FakeOpenAI):
    """The conformance fake, plus a slow upstream for requests that ask for it."""

    slow_calls = 0
    """Slow requests received (counted on arrival: a client that gives up never lets one finish)."""

    async def _handle(self, request: web.Request) -> web.Response:
        if SLOW in (await request.read()).decode("utf-8", "replace"):
            with self._lock:
                self.slow_calls += 1
            await asyncio.sleep(SLOW_SECONDS)
        return await super()._handle(request)


def openai(name: str, endpoint: str) -> str:
    # parley's own policy is switched off (daprd ignores these fields): all retries are the Resiliency's.
    return component_yaml(name, "conversation.openai", {
        "key": "sk-resiliency-conformance", "model": "gpt-4o-mini", "endpoint": endpoint,
        "maxRetries": "0", "circuitBreakerFailures": "0"})


@pytest.fixture(scope="module")
def fake() -> Iterator[SlowFakeOpenAI]:
    server = SlowFakeOpenAI()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def resiliency_pair(fake: SlowFakeOpenAI, conformance_dir: Path) -> Iterator[Pair]:
    assert DAPRD is not None
    files = {f"{name}.yaml": openai(name, fake.endpoint) for name in ("gpt-constant", "gpt-exponential", "gpt-slow")}
    resources = write_components(conformance_dir / "components-resiliency", {**files, "resiliency.yaml": RESILIENCY})
    try:
        running = start_pair(DAPRD, "resiliency", APP_ID, resources, conformance_dir / "logs")
    except RuntimeError as exc:
        pytest.skip(f"the daprd build lacks conversation.openai or failed to load it: {exc}")
    yield running
    running.stop()


def ask(pair: Pair, fake: FakeOpenAI, component: str, text: str) -> tuple[Answer, Answer, int, int]:
    """One request to each server: their answers and how many upstream calls each made."""
    body = encode({"inputs": [{"messages": [{"ofUser": {"content": [{"text": text}]}}]}]})
    path = f"/v1.0-alpha2/conversation/{component}/converse"
    fake.take()
    d = pair.daprd.request("POST", path, body)
    d_calls = len(fake.take())
    p = pair.parley.request("POST", path, body)
    p_calls = len(fake.take())
    return d, p, d_calls, p_calls


@pytest.mark.parametrize(("component", "calls"), [("gpt-constant", 4), ("gpt-exponential", 3)])
def test_a_retry_policy_sets_the_upstream_calls_of_a_failing_provider(
        resiliency_pair: Pair, fake: SlowFakeOpenAI, component: str, calls: int) -> None:
    d, p, d_calls, p_calls = ask(resiliency_pair, fake, component, "fail #status-500")
    assert d_calls == calls, f"daprd called upstream {d_calls} times (the policy allows {calls})"
    case = Case(f"openai/resiliency-{component}/calls", None)
    assert_same(case, Answer(d_calls, "", None), Answer(p_calls, "", None))
    assert_same(Case(f"openai/resiliency-{component}", None), d, p)  # openai-provider-error-text


def test_a_timeout_policy_ends_a_slow_call(resiliency_pair: Pair, fake: SlowFakeOpenAI) -> None:
    before = fake.slow_calls
    d, p, _, _ = ask(resiliency_pair, fake, "gpt-slow", f"take your time {SLOW}")
    assert d.status == 500, f"daprd answered {d}"
    assert fake.slow_calls - before == 2, "each server called upstream once (no retry policy)"
    assert_same(Case("resiliency/timeout", None), d, p)


def test_a_client_error_under_a_retry_policy(resiliency_pair: Pair, fake: SlowFakeOpenAI) -> None:
    d, p, d_calls, p_calls = ask(resiliency_pair, fake, "gpt-constant", "refuse #status-400")
    assert d.status == 500, f"daprd answered {d}"
    assert d_calls == 4, f"daprd called upstream {d_calls} times (its runner retries any error)"
    case = Case("openai/resiliency-client-error/calls", None)
    assert_same(case, Answer(d_calls, "", None), Answer(p_calls, "", None))
    assert_same(Case("openai/resiliency-client-error", None), d, p)  # openai-provider-error-text
