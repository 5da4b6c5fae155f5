"""Anthropic's Messages API, field by field (Anthropic's API reference; components-contrib
``translateToolChoice`` for the tool choice; langchaingo for structured output as a forced tool)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from parley_sidecar.components import base
from tests.fakes import AnthropicFake, Reply
from tests.sidecar.components.conftest import ANTHROPIC_KEY, Build, text_request, user


@pytest.fixture(autouse=True)
def _no_model_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_MODEL", raising=False)


async def anthropic(build: Build, fake: AnthropicFake, **metadata: str) -> base.Conversation:
    entry = await build("conversation.anthropic", {"key": ANTHROPIC_KEY, "endpoint": f"{fake.url}/v1/", **metadata})
    return entry.instance


async def test_full_conversation(build: Build, anthropic_fake: AnthropicFake) -> None:
    component = await anthropic(build, anthropic_fake)
    request = base.ConverseRequest(messages=(
        base.Message(base.Role.SYSTEM, (base.TextPart("Be brief."),)),
        base.Message(base.Role.DEVELOPER, (base.TextPart("Use metric units."),)),
        user("Weather in Paris and Rome?"),
        base.Message(base.Role.ASSISTANT, (base.TextPart("Checking."),
                                           base.ToolCall("toolu_1", "weather", '{"city": "Paris"}'),
                                           base.ToolCall("toolu_2", "weather", '{"city": "Rome"}'))),
        base.Message(base.Role.TOOL, (base.ToolResult("toolu_1", "weather", "21C"),)),
        base.Message(base.Role.TOOL, (base.ToolResult("toolu_2", "weather", "25C"),)),
        user(""),
    ), temperature=0.3)
    await component.converse(request, timeout=5)
    recorded = anthropic_fake.last
    assert recorded.path == "/v1/messages"
    assert recorded.headers["x-api-key"] == ANTHROPIC_KEY
    assert recorded.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in recorded.headers
    assert recorded.body == {
        "model": "claude-sonnet-4-20250514",
        "max_tokens": 2048,
        "temperature": 0.3,
        "system": "Be brief.\nUse metric units.",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {"city": "Rome"}}]},
            # the results of parallel calls travel in one user turn; the empty text is dropped
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "21C"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "25C"}]},
        ],
    }


async def test_temperature_only_when_set_and_max_tokens_from_metadata(build: Build,
                                                                      anthropic_fake: AnthropicFake) -> None:
    component = await anthropic(build, anthropic_fake, maxTokens="512")
    await component.converse(text_request("Hi"), timeout=5)
    assert "temperature" not in anthropic_fake.last.body
    assert anthropic_fake.last.body["max_tokens"] == 512
    await component.converse(text_request("Hi", max_tokens=64), timeout=5)
    assert anthropic_fake.last.body["max_tokens"] == 64


@pytest.mark.parametrize(("choice", "sent"), [
    ("auto", None),
    ("required", {"type": "any"}),
    ("none", {"type": "none"}),
    ("lookup", {"type": "tool", "name": "lookup"}),
])
async def test_tool_choice(build: Build, anthropic_fake: AnthropicFake, choice: str, sent: Any) -> None:
    component = await anthropic(build, anthropic_fake)
    tools = (base.Tool("lookup", "Look it up", {"type": "object", "properties": {"q": {"type": "string"}}}),
             base.Tool("now"))
    await component.converse(text_request("Hi", tools=tools, tool_choice=choice), timeout=5)
    body = anthropic_fake.last.body
    assert body["tools"] == [
        {"name": "lookup", "description": "Look it up",
         "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}},
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert body.get("tool_choice") == sent


async def test_no_tool_choice_without_tools(build: Build, anthropic_fake: AnthropicFake) -> None:
    component = await anthropic(build, anthropic_fake)
    await component.converse(text_request("Hi", tool_choice="required"), timeout=5)
    assert "tool_choice" not in anthropic_fake.last.body


async def test_structured_output_is_a_forced_tool(build: Build, anthropic_fake: AnthropicFake) -> None:
    component = await anthropic(build, anthropic_fake)
    schema = {"type": "object", "name": "city", "description": "A city",
              "properties": {"name": {"type": "string"}}, "required": ["name"]}
    anthropic_fake.reply(structured={"name": "Paris"})
    response = await component.converse(text_request("Capital?", response_format=schema), timeout=5)
    body = anthropic_fake.last.body
    assert body["tools"] == [{"name": "city", "description": "A city", "input_schema": {
        "type": "object", "description": "A city", "required": ["name"], "additionalProperties": False,
        "properties": {"name": {"type": "string", "additionalProperties": False}}}}]
    assert body["tool_choice"] == {"type": "tool", "name": "city"}
    (choice,) = response.outputs[0].choices
    assert json.loads(choice.content) == {"name": "Paris"}
    assert choice.tool_calls == ()


async def test_response_blocks(build: Build, anthropic_fake: AnthropicFake) -> None:
    component = await anthropic(build, anthropic_fake)
    anthropic_fake.reply(Reply(raw={
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "stop_reason": "tool_use",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "text", "text": "Let me check."},
            {"type": "text", "text": "One moment."},
            {"type": "tool_use", "id": "toolu_9", "name": "lookup", "input": {"q": "é"}},
            {"type": "server_tool_use", "id": "srv_1", "name": "web_search", "input": {}},
        ],
        "usage": {"input_tokens": 30, "output_tokens": 12, "cache_read_input_tokens": 100,
                  "cache_creation_input_tokens": 5},
    }))
    response = await component.converse(text_request("Hi"), timeout=5)
    (choice,) = response.outputs[0].choices
    assert choice.content == "Let me check.\nOne moment."
    assert choice.tool_calls == (base.ToolCall("toolu_9", "lookup", '{"q":"é"}'),)
    assert choice.finish_reason == "tool_use"
    assert response.usage == base.Usage(completion_tokens=12, prompt_tokens=135, total_tokens=147,
                                        prompt_details=base.PromptDetails(cached_tokens=100))


async def test_tool_arguments_must_be_an_object(build: Build, anthropic_fake: AnthropicFake) -> None:
    component = await anthropic(build, anthropic_fake)
    request = base.ConverseRequest(messages=(
        base.Message(base.Role.ASSISTANT, (base.ToolCall("t1", "f", "not json"),)),))
    with pytest.raises(ValueError, match="arguments must be a JSON object"):
        await component.converse(request, timeout=5)
    assert anthropic_fake.requests == []


async def test_overloaded_529_is_retryable(build: Build, anthropic_fake: AnthropicFake) -> None:
    from parley_sidecar import errors

    component = await anthropic(build, anthropic_fake)
    anthropic_fake.fail(529, "Overloaded")
    with pytest.raises(errors.ProviderError) as info:
        await component.converse(text_request("Hi"), timeout=5)
    assert info.value.retryable
    assert info.value.reason == "anthropic returned 529 Overloaded: Overloaded"
