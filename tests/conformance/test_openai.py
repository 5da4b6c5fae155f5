"""The OpenAI path: daprd's conversation.openai and parley's, pointed at one local fake of OpenAI.

Each case goes to daprd, then to parley. Both the answer to the client and the request each
server sent upstream (path, Authorization header, JSON body, field by field) must be equal,
modulo the intended differences in differences.py. The fake answers deterministically from the
request (fake_openai.py), so both servers get the same upstream answer.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.compare import encode
from tests.conformance.conftest import APP_ID, DAPRD, write_components
from tests.conformance.differences import Answer, Case, assert_same
from tests.conformance.fake_openai import FakeOpenAI, Seen
from tests.conformance.servers import Pair, free_port, start_pair
from tests.manifests import component_yaml

PARLEY_OPENAI = importlib.util.find_spec("parley_sidecar.components.openai")
pytestmark = pytest.mark.skipif(
    PARLEY_OPENAI is None,
    reason="parley's conversation.openai component (sidecar/parley_sidecar/components/openai.py) does not exist yet")

KEY = "sk-conformance-0123456789"
MODEL = "gpt-4o-mini"


def openai_yaml(name: str, endpoint: str, **extra: str) -> str:
    return component_yaml(name, "conversation.openai", {"key": KEY, "model": MODEL, "endpoint": endpoint, **extra})


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def openai_pair(fake_openai: FakeOpenAI, conformance_dir: Path) -> Iterator[Pair]:
    assert DAPRD is not None
    # `openai`: parley's defaults (it retries 429/5xx, daprd does not); `openai-once`: no retries, so
    # error cases compare one upstream call each. daprd ignores the metadata it does not know.
    resources = write_components(conformance_dir / "components-openai", {
        "openai.yaml": openai_yaml("openai", fake_openai.endpoint),
        "openai-once.yaml": openai_yaml("openai-once", fake_openai.endpoint, maxRetries="0",
                                        circuitBreakerFailures="1000"),
        "openai-dead.yaml": openai_yaml("openai-dead", f"http://127.0.0.1:{free_port()}/v1", maxRetries="0",
                                        circuitBreakerFailures="1000"),
    })
    try:
        running = start_pair(DAPRD, "openai", APP_ID, resources, conformance_dir / "logs")
    except RuntimeError as exc:
        pytest.skip(f"the daprd build lacks conversation.openai or failed to load it: {exc}")
    yield running
    running.stop()


def upstream(seen: list[Seen]) -> Answer:
    """What one server sent upstream, as an Answer: path, Authorization header, JSON body."""
    assert len(seen) >= 1, "the server did not call the fake OpenAI"
    first = seen[0]
    return Answer(f"{first.method} {first.path}", first.authorization, first.body)


def exchange(pair: Pair, fake: FakeOpenAI, case_id: str, path: str, body: Any, *,
             status: int | None = None, calls: int | None = 1) -> tuple[Answer, Answer, list[Seen], list[Seen]]:
    fake.take()
    d = pair.daprd.request("POST", path, encode(body))
    d_seen = fake.take()
    p = pair.parley.request("POST", path, encode(body))
    p_seen = fake.take()
    if status is not None:
        assert d.status == status, f"openai/{case_id}: daprd answered {d} (the case expects {status})"
    assert_same(Case(f"openai/{case_id}", body), d, p)
    if calls is not None:
        assert len(d_seen) == calls, f"daprd called upstream {len(d_seen)} times (the case expects {calls})"
    assert_same(Case(f"openai/{case_id}/calls", body), Answer(len(d_seen), "", None), Answer(len(p_seen), "", None))
    if d_seen:
        assert_same(Case(f"openai/{case_id}/upstream", body), upstream(d_seen), upstream(p_seen))
    return d, p, d_seen, p_seen


A2 = "/v1.0-alpha2/conversation/openai/converse"
A2_ONCE = "/v1.0-alpha2/conversation/openai-once/converse"
A1 = "/v1.0-alpha1/conversation/openai/converse"


def msg(kind: str, *texts: str, **extra: Any) -> dict[str, Any]:
    return {kind: {"content": [{"text": t} for t in texts], **extra}}


def a2(*messages: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"inputs": [{"messages": list(messages)}], **top}


WEATHER = {"function": {"name": "get_weather", "description": "Weather in a city", "parameters": {
    "type": "object", "properties": {"location": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
    "required": ["location"]}}}
TIME = {"function": {"name": "get_time"}}

CASES: list[tuple[str, str, dict[str, Any], int]] = [
    ("a1-basic", A1, {"inputs": [{"content": "hello"}]}, 200),
    ("a1-roles", A1, {"inputs": [{"content": "be brief", "role": "system"}, {"content": "hi", "role": "user"},
                                 {"content": "hello", "role": "assistant"}, {"content": "x", "role": "bogus"}]}, 200),
    ("a1-temperature-metadata-parameters", A1, {
        "inputs": [{"content": "warm"}], "temperature": 0.7, "metadata": {"trace": "1"}, "contextID": "c1",
        "parameters": {"max_tokens": {"@type": "type.googleapis.com/google.protobuf.Int64Value", "value": "9"}}}, 200),
    ("a1-scrub", A1, {"inputs": [{"content": "mail test@test.com from 10.8.9.1", "scrubPII": True}],
                      "scrubPII": True}, 200),
    ("a2-system-user", A2, a2(msg("ofSystem", "be brief"), msg("ofUser", "hi")), 200),
    ("a2-temperature", A2, a2(msg("ofUser", "hi"), temperature=0.2), 200),
    ("a2-multi-part-user", A2, a2(msg("ofUser", "part a", "part b")), 200),
    ("a2-conversation", A2, a2(msg("ofSystem", "sys"), msg("ofUser", "q1"), msg("ofAssistant", "a1"),
                               msg("ofUser", "q2")), 200),
    ("a2-tools-auto", A2, a2(msg("ofUser", "weather? #tools"), tools=[WEATHER, TIME]), 200),
    ("a2-tools-required", A2, a2(msg("ofUser", "weather? #tools"), tools=[WEATHER], toolChoice="required"), 200),
    ("a2-tools-none", A2, a2(msg("ofUser", "weather?"), tools=[WEATHER], toolChoice="none"), 200),
    ("a2-tool-round-trip", A2, a2(
        msg("ofUser", "weather?"),
        {"ofAssistant": {"toolCalls": [{"id": "call_abc", "function": {"name": "get_weather",
                                                                      "arguments": "{\"location\":\"Paris\"}"}}]}},
        {"ofTool": {"toolId": "call_abc", "name": "get_weather", "content": [{"text": "sunny"}]}}), 200),
    ("a2-assistant-text-and-calls", A2, a2(
        msg("ofUser", "q"), {"ofAssistant": {"content": [{"text": "let me look"}], "toolCalls": [
            {"id": "c1", "function": {"name": "get_time", "arguments": "{}"}}]}},
        {"ofTool": {"toolId": "c1", "name": "get_time", "content": [{"text": "noon"}]}}), 200),
    ("a2-response-format", A2, a2(msg("ofUser", "json please"), responseFormat={
        "type": "object", "properties": {"answer": {"type": "string"},
                                         "items": {"type": "array", "items": {"type": "object", "properties": {
                                             "n": {"type": "integer"}}}}}, "required": ["answer"]}), 200),
    ("a2-response-format-named", A2, a2(msg("ofUser", "json"), responseFormat={
        "name": "answer_schema", "description": "An answer", "strict": True, "type": "object",
        "properties": {"a": {"type": "string"}}}), 200),
    ("a2-metadata-and-cache-retention", A2, a2(msg("ofUser", "hi"), metadata={"user_id": "u1", "tier": "gold"},
                                               promptCacheRetention="86400s"), 200),
    ("a2-parameters-ignored", A2, a2(msg("ofUser", "hi"), parameters={
        "max_tokens": {"@type": "type.googleapis.com/google.protobuf.Int64Value", "value": "5"}}), 200),
    ("a2-context-and-scrub", A2, {"contextId": "ctx", "scrubPii": True, "inputs": [
        {"messages": [msg("ofUser", "my email is test@test.com")], "scrubPii": True}]}, 200),
    ("a2-two-choices", A2, a2(msg("ofUser", "#two-choices")), 200),
    ("a2-usage-details", A2, a2(msg("ofUser", "#usage-details")), 200),
    ("a2-no-usage", A2, a2(msg("ofUser", "#no-usage")), 200),
    ("a2-finish-length", A2, a2(msg("ofUser", "#length")), 200),
    ("a2-empty-content", A2, a2(msg("ofUser", "#empty-content")), 200),
    ("a2-null-content", A2, a2(msg("ofUser", "#null-content")), 200),
    ("a2-unicode", A2, a2(msg("ofUser", "héllo 🎉 \u0000 日本")), 200),
    # errors from upstream (no retries on this component, so one upstream call each)
    ("a2-upstream-429", A2_ONCE, a2(msg("ofUser", "#status-429")), 500),
    ("a2-upstream-500", A2_ONCE, a2(msg("ofUser", "#status-500")), 500),
    ("a2-upstream-400", A2_ONCE, a2(msg("ofUser", "#status-400")), 500),
    ("a1-upstream-500", "/v1.0-alpha1/conversation/openai-once/converse",
     {"inputs": [{"content": "#status-500"}]}, 500),
    ("a2-upstream-401", A2_ONCE, a2(msg("ofUser", "#status-401")), 500),
    ("a2-upstream-not-json", A2_ONCE, a2(msg("ofUser", "#not-json")), 500),
    ("a2-upstream-no-choices", A2_ONCE, a2(msg("ofUser", "#no-choices")), 500),
    ("a2-developer", A2, a2(msg("ofDeveloper", "dev rules"), msg("ofUser", "hi")), 200),
    ("a2-names", A2, a2(msg("ofSystem", "s", name="sys"), msg("ofUser", "hi", name="alice"),
                        msg("ofAssistant", "yo", name="bot")), 200),
    ("a2-tool-choice-named", A2, a2(msg("ofUser", "x"), tools=[WEATHER, TIME], toolChoice="get_time"), 200),
    ("a2-tool-choice-without-tools", A2, a2(msg("ofUser", "x"), toolChoice="auto"), 200),
    ("a2-two-part-tool-result", A2, a2(
        msg("ofUser", "weather?"),
        {"ofAssistant": {"toolCalls": [{"id": "call_abc", "function": {"name": "get_weather", "arguments": "{}"}}]}},
        {"ofTool": {"toolId": "call_abc", "name": "get_weather", "content": [{"text": "sunny"}, {"text": "warm"}]}}),
     500),
    ("a2-upstream-500-retried", A2, a2(msg("ofUser", "#status-500")), 500),
    ("a2-dead-endpoint", "/v1.0-alpha2/conversation/openai-dead/converse", a2(msg("ofUser", "x")), 500),
    # validation happens before any upstream call
    ("a2-invalid-tool-choice", A2, a2(msg("ofUser", "x"), tools=[WEATHER], toolChoice="nope"), 400),
    ("a2-message-without-type", A2, a2({}), 400),
]


NO_UPSTREAM_CALL = {"a2-two-part-tool-result", "a2-dead-endpoint"}


@pytest.mark.parametrize(("case_id", "path", "body", "status"), CASES, ids=[c[0] for c in CASES])
def test_openai_case(openai_pair: Pair, fake_openai: FakeOpenAI, case_id: str, path: str, body: dict[str, Any],
                     status: int) -> None:
    calls = 0 if status == 400 or case_id in NO_UPSTREAM_CALL else 1
    *_, p_seen = exchange(openai_pair, fake_openai, case_id, path, body, status=status, calls=calls)
    if case_id == "a2-two-part-tool-result":  # daprd made no call to compare with: check parley's
        tool = upstream(p_seen).body["messages"][-1]
        assert tool == {"role": "tool", "tool_call_id": "call_abc",
                        "content": [{"type": "text", "text": "sunny"}, {"type": "text", "text": "warm"}]}
    if case_id == "a2-upstream-500-retried":
        assert len({json.dumps(s.body, sort_keys=True) for s in p_seen}) == 1, "retries resend the same body"
