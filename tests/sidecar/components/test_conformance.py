"""One suite, every provider: the same cases against each provider's fake (Dapr's conformance idea).

The request a component sent is read back from the fake and reduced to a provider-neutral list
of events (system/user/assistant texts, tool calls, tool results), so one assertion covers all
wire formats. Provider-specific field-by-field checks live in ``test_<provider>_wire.py``.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest

from parley_sidecar import errors
from parley_sidecar.components import base
from tests.fakes import AnthropicFake, BedrockFake, FakeServer, OpenAIFake, Recorded
from tests.sidecar.components.conftest import (
    AWS_ACCESS,
    AWS_SECRET,
    PROVIDERS,
    Harness,
    Provider,
    text_request,
    user,
)
from tests.sidecar.conftest import Build

Event = tuple[Any, ...]


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content] if content else []
    return [p["text"] for p in content if p.get("type") == "text" and p["text"]]


def events(wire: str, body: dict[str, Any]) -> list[Event]:
    """The conversation a request carried, whatever its wire format."""
    out: list[Event] = []
    if wire == "openai":
        for m in body["messages"]:
            role = "system" if m["role"] == "developer" else m["role"]
            if role == "tool":
                out.extend(("result", m["tool_call_id"], t) for t in _texts(m["content"]))
                continue
            out.extend((role, t) for t in _texts(m["content"]))
            for c in m.get("tool_calls", []):
                out.append(("call", c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])))
    elif wire == "anthropic":
        if body.get("system"):
            out.append(("system", body["system"]))
        for m in body["messages"]:
            for b in m["content"]:
                if b["type"] == "text":
                    out.append((m["role"], b["text"]))
                elif b["type"] == "tool_use":
                    out.append(("call", b["id"], b["name"], b["input"]))
                elif b["type"] == "tool_result":
                    out.append(("result", b["tool_use_id"], b["content"]))
    else:
        out.extend(("system", s["text"]) for s in body.get("system", []))
        for m in body["messages"]:
            for b in m["content"]:
                if "text" in b:
                    out.append((m["role"], b["text"]))
                elif "toolUse" in b:
                    u = b["toolUse"]
                    out.append(("call", u["toolUseId"], u["name"], u["input"]))
                elif "toolResult" in b:
                    r = b["toolResult"]
                    out.extend(("result", r["toolUseId"], c["text"]) for c in r["content"])
    return out


def expected_path(h: Harness, model: str) -> str:
    return h.provider.path.format(model=quote(model, safe="") if h.provider.wire == "bedrock" else model)


def presented_key(h: Harness, recorded: Recorded) -> str:
    if h.provider.wire == "anthropic":
        return recorded.headers["x-api-key"]
    if h.provider.id == "azure":
        return recorded.headers["api-key"]
    return recorded.headers["authorization"].removeprefix("Bearer ")


WEATHER = base.Tool("get_weather", "Weather of a city",
                    {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]})


async def test_plain_text(harness: Harness) -> None:
    response = await harness.converse(text_request("Hello there"))
    assert len(response.outputs) == 1
    (choice,) = response.outputs[0].choices
    assert choice == base.Choice(finish_reason=harness.provider.stop, index=0, content="echo: Hello there")
    assert response.model == harness.provider.model
    assert response.usage == base.Usage(completion_tokens=5, prompt_tokens=10, total_tokens=15)
    recorded = harness.fake.last
    assert recorded.method == "POST"
    assert recorded.path == expected_path(harness, harness.provider.model)
    assert recorded.query == harness.provider.query
    assert recorded.headers["content-type"] == "application/json"
    if harness.provider.key is not None:
        assert presented_key(harness, recorded) == harness.provider.key
    assert events(harness.provider.wire, recorded.body) == [("user", "Hello there")]


async def test_multi_turn(harness: Harness) -> None:
    request = base.ConverseRequest(messages=(
        base.Message(base.Role.SYSTEM, (base.TextPart("Be brief."),)),
        user("Hi"),
        base.Message(base.Role.ASSISTANT, (base.TextPart("Hello! How can I help?"),)),
        user("What is Dapr?"),
    ))
    response = await harness.converse(request)
    assert response.outputs[0].choices[0].content == "echo: What is Dapr?"
    assert events(harness.provider.wire, harness.fake.last.body) == [
        ("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello! How can I help?"), ("user", "What is Dapr?"),
    ]


async def test_tool_call_answer(harness: Harness) -> None:
    harness.fake.reply(text=None, tool_calls=(("call_1", "get_weather", {"location": "Paris"}),), finish="tool_calls")
    response = await harness.converse(text_request("Weather in Paris?", tools=(WEATHER,), tool_choice="auto"))
    (choice,) = response.outputs[0].choices
    assert choice.finish_reason == harness.provider.tool_stop
    assert choice.content == ""
    assert [(c.id, c.name, json.loads(c.arguments)) for c in choice.tool_calls] == [
        ("call_1", "get_weather", {"location": "Paris"})]


async def test_tool_results_are_sent(harness: Harness) -> None:
    request = base.ConverseRequest(messages=(
        user("Weather in Paris?"),
        base.Message(base.Role.ASSISTANT, (base.ToolCall("call_1", "get_weather", '{"location": "Paris"}'),)),
        base.Message(base.Role.TOOL, (base.ToolResult("call_1", "get_weather", "sunny, 21C"),), "get_weather"),
    ), tools=(WEATHER,), tool_choice="auto")
    await harness.converse(request)
    assert events(harness.provider.wire, harness.fake.last.body) == [
        ("user", "Weather in Paris?"),
        ("call", "call_1", "get_weather", {"location": "Paris"}),
        ("result", "call_1", "sunny, 21C"),
    ]


async def test_structured_output(harness: Harness) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    harness.fake.reply(structured={"city": "Paris"})
    response = await harness.converse(text_request("Capital of France?", response_format=schema))
    assert json.loads(response.outputs[0].choices[0].content) == {"city": "Paris"}


async def test_usage_with_details(harness: Harness) -> None:
    harness.fake.reply(prompt_tokens=20, completion_tokens=7, cached_tokens=4)
    response = await harness.converse(text_request("Hi"))
    assert response.usage == base.Usage(completion_tokens=7, prompt_tokens=20, total_tokens=27,
                                        prompt_details=base.PromptDetails(cached_tokens=4))


async def test_no_usage_when_all_zero(harness: Harness) -> None:
    harness.fake.reply(prompt_tokens=0, completion_tokens=0)
    response = await harness.converse(text_request("Hi"))
    assert response.usage is None


async def test_per_request_model_and_key(harness: Harness) -> None:
    harness.fake.expected_key = None  # type: ignore[attr-defined]
    override_key = None if harness.provider.wire == "bedrock" else "sk-per-request-key"
    response = await harness.converse(text_request("Hi", model="other-model", api_key=override_key))
    assert response.model == "other-model"
    recorded = harness.fake.last
    assert recorded.path == expected_path(harness, "other-model")
    if harness.provider.wire != "bedrock" and harness.provider.id not in ("azure",):
        assert recorded.body["model"] == "other-model"
    if override_key is not None:
        assert presented_key(harness, recorded) == override_key


# -- errors ----------------------------------------------------------------------------------------


async def test_client_error_carries_the_upstream_message(harness: Harness) -> None:
    harness.fake.fail(400, "messages: field required")
    with pytest.raises(errors.ProviderError) as info:
        await harness.converse(text_request("Hi"))
    assert info.value.status == 400
    assert not info.value.retryable
    assert info.value.reason.endswith("returned 400 Bad Request: messages: field required")


async def test_rate_limit_is_retryable_with_retry_after(harness: Harness) -> None:
    harness.fake.fail(429, "Rate limit reached", retry_after="7")
    with pytest.raises(errors.ProviderError) as info:
        await harness.converse(text_request("Hi"))
    assert info.value.retryable
    assert info.value.retry_after == 7.0
    assert info.value.reason.endswith("returned 429 Too Many Requests: Rate limit reached")


async def test_server_error_is_retryable(harness: Harness) -> None:
    harness.fake.fail(503, "upstream overloaded")
    with pytest.raises(errors.ProviderError) as info:
        await harness.converse(text_request("Hi"))
    assert (info.value.status, info.value.retryable) == (503, True)


async def test_rejected_key_says_so_without_the_key(harness: Harness) -> None:
    secret = harness.provider.key or "test/secret+key/0123456789"
    harness.fake.fail(401 if harness.provider.wire != "bedrock" else 403, f"Incorrect API key provided: {secret}")
    with pytest.raises(errors.ProviderError) as info:
        await harness.converse(text_request("Hi"))
    assert "rejected the" in info.value.reason
    assert secret not in info.value.reason
    assert not info.value.retryable


async def test_malformed_json(harness: Harness) -> None:
    harness.fake.malformed()
    with pytest.raises(errors.ProviderError, match="malformed response"):
        await harness.converse(text_request("Hi"))


async def test_connection_reset(harness: Harness) -> None:
    harness.fake.reset()
    with pytest.raises(errors.ProviderUnavailable) as info:
        await harness.converse(text_request("Hi"))
    assert info.value.retryable


async def test_slow_answer_times_out(harness: Harness) -> None:
    harness.fake.slow(2.0)
    with pytest.raises(errors.ProviderTimeout) as info:
        await harness.converse(text_request("Hi"), timeout=0.2)
    assert info.value.reason == "request timed out after 0.2s"


async def test_unreachable_provider(harness: Harness) -> None:
    await harness.fake.close()
    with pytest.raises(errors.ProviderUnavailable, match="cannot reach"):
        await harness.converse(text_request("Hi"))


def _max_tokens_sent(wire: str, body: dict[str, Any]) -> Any:
    if wire == "anthropic":
        return body.get("max_tokens")
    if wire == "bedrock":
        return body.get("inferenceConfig", {}).get("maxTokens")
    return body.get("max_completion_tokens", body.get("max_tokens"))


@pytest.mark.parametrize("provider", PROVIDERS, ids=[p.id for p in PROVIDERS])
async def test_max_tokens_metadata_on_every_provider(provider: Provider, build: Build) -> None:
    """``maxTokens`` in the Component caps the answer on every provider; a request's own limit wins."""
    fake: FakeServer = (OpenAIFake(expected_key=provider.key) if provider.wire == "openai"
                        else AnthropicFake(expected_key=provider.key) if provider.wire == "anthropic"
                        else BedrockFake(credentials={AWS_ACCESS: AWS_SECRET}))
    await fake.start()
    try:
        entry = await build(provider.type, {**provider.metadata(fake.port), "maxTokens": "77"})
        await entry.instance.converse(text_request("Hi"), timeout=5.0)
        assert _max_tokens_sent(provider.wire, fake.last.body) == 77
        await entry.instance.converse(text_request("Hi", max_tokens=12), timeout=5.0)
        assert _max_tokens_sent(provider.wire, fake.last.body) == 12
    finally:
        await fake.close()
