"""The OpenAI wire format, field by field: what daprd's ``conversation.openai`` sends (daprd-oracle
§1), and each place parley deliberately does better (docs/providers.md lists them)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from parley_sidecar import errors
from parley_sidecar.components import base
from parley_sidecar.components import openai as openai_component
from tests.fakes import OpenAIFake, Reply
from tests.sidecar.components.conftest import OPENAI_KEY, Build, text_request, user


@pytest.fixture(autouse=True)
def _no_model_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_MODEL", "AZURE_OPENAI_MODEL", "HUGGINGFACE_MODEL", "GOOGLEAI_MODEL"):
        monkeypatch.delenv(var, raising=False)


async def openai(build: Build, fake: OpenAIFake, **metadata: str) -> base.Conversation:
    """conversation.openai with OpenAI's own host name (so OpenAI's dialect), served by the fake."""
    meta = {"key": OPENAI_KEY, "model": "gpt-4o-mini", "endpoint": f"http://api.openai.com:{fake.port}/v1"}
    entry = await build("conversation.openai", {**meta, **metadata})
    return entry.instance


def system(text: str) -> base.Message:
    return base.Message(base.Role.SYSTEM, (base.TextPart(text),))


async def test_the_request_daprd_sends(build: Build, openai_fake: OpenAIFake) -> None:
    component = await openai(build, openai_fake)
    request = base.ConverseRequest(messages=(system("You are terse."), user("Hi")), temperature=0.2)
    await component.converse(request, timeout=5)
    recorded = openai_fake.last
    assert recorded.path == "/v1/chat/completions"
    assert recorded.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert recorded.body == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"}],
        "temperature": 0.2,
    }


async def test_temperature_zero_when_unset_but_left_out_for_reasoning_models(build: Build,
                                                                              openai_fake: OpenAIFake) -> None:
    component = await openai(build, openai_fake)
    await component.converse(text_request("Hi"), timeout=5)
    assert openai_fake.last.body["temperature"] == 0
    for model in ("gpt-5-nano", "o3", "o3-mini", "o1-preview"):
        await component.converse(text_request("Hi", model=model, temperature=0.7), timeout=5)
        assert "temperature" not in openai_fake.last.body, model


async def test_model_precedence(build: Build, openai_fake: OpenAIFake, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = f"http://api.openai.com:{openai_fake.port}/v1"
    entry = await build("conversation.openai", {"key": "k" * 8, "endpoint": endpoint}, name="a")
    assert entry.instance.model == "gpt-5-nano"  # type: ignore[attr-defined]
    monkeypatch.setenv("OPENAI_MODEL", "from-env")
    entry = await build("conversation.openai", {"key": "k" * 8, "endpoint": endpoint, "model": "meta"}, name="b")
    assert entry.instance.model == "from-env"  # type: ignore[attr-defined]
    azure = {"key": "k" * 8, "apiType": "azure", "endpoint": endpoint, "apiVersion": "2024-10-21"}
    entry = await build("conversation.openai", azure, name="c")
    assert entry.instance.model == "gpt-4.1-nano"  # type: ignore[attr-defined]  # OPENAI_MODEL is not Azure's
    monkeypatch.setenv("AZURE_OPENAI_MODEL", "azure-env")
    entry = await build("conversation.openai", {**azure, "model": "meta"}, name="d")
    assert entry.instance.model == "azure-env"  # type: ignore[attr-defined]


async def test_azure_deployment_url_and_api_key_header(build: Build, openai_fake: OpenAIFake) -> None:
    entry = await build("conversation.openai", {
        "key": OPENAI_KEY, "apiType": "Azure", "endpoint": f"http://res.openai.azure.com:{openai_fake.port}/",
        "apiVersion": "2024-10-21", "model": "prod-gpt4o"})
    await entry.instance.converse(text_request("Hi"), timeout=5)
    recorded = openai_fake.last
    assert recorded.path == "/openai/deployments/prod-gpt4o/chat/completions"
    assert recorded.query == {"api-version": "2024-10-21"}
    assert recorded.headers["api-key"] == OPENAI_KEY
    assert "authorization" not in recorded.headers
    assert recorded.body["model"] == "prod-gpt4o"


async def test_developer_role_and_names_on_openai(build: Build, openai_fake: OpenAIFake) -> None:
    """daprd sends developer messages as ``user`` and drops names; OpenAI's API has both."""
    component = await openai(build, openai_fake)
    request = base.ConverseRequest(messages=(
        base.Message(base.Role.DEVELOPER, (base.TextPart("Answer in French."),), name="ops team"),
        base.Message(base.Role.USER, (base.TextPart("Hi"),), name="alice"),
    ))
    await component.converse(request, timeout=5)
    assert openai_fake.last.body["messages"] == [
        {"role": "developer", "content": "Answer in French.", "name": "ops_team"},
        {"role": "user", "content": "Hi", "name": "alice"},
    ]


async def test_compatible_servers_get_system_and_no_names(build: Build, openai_fake: OpenAIFake) -> None:
    entry = await build("conversation.openai", {"key": "token", "model": "m", "endpoint": f"{openai_fake.url}/v1"})
    request = base.ConverseRequest(messages=(
        base.Message(base.Role.DEVELOPER, (base.TextPart("Answer in French."),), name="ops"),
        base.Message(base.Role.USER, (base.TextPart("Hi"),), name="alice"),
    ), max_tokens=50)
    await entry.instance.converse(request, timeout=5)
    body = openai_fake.last.body
    assert body["messages"] == [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Hi"}]
    assert body["max_tokens"] == 50 and "max_completion_tokens" not in body


async def test_text_parts_assistant_tool_calls_and_tool_results(build: Build, openai_fake: OpenAIFake) -> None:
    component = await openai(build, openai_fake)
    request = base.ConverseRequest(messages=(
        base.Message(base.Role.USER, (base.TextPart("one"), base.TextPart("two"))),
        base.Message(base.Role.ASSISTANT, (base.ToolCall("call_1", "lookup", '{"q":"x"}'),
                                           base.ToolCall("call_2", "lookup", '{"q":"y"}'))),
        base.Message(base.Role.TOOL, (base.ToolResult("call_1", "lookup", "r1"),)),
        base.Message(base.Role.TOOL, (base.ToolResult("call_2", "lookup", "part a"),
                                      base.ToolResult("call_2", "lookup", "part b"))),
    ), max_tokens=100)
    await component.converse(request, timeout=5)
    body = openai_fake.last.body
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q":"x"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "lookup", "arguments": '{"q":"y"}'}}]},
        {"role": "tool", "content": "r1", "tool_call_id": "call_1"},
        {"role": "tool", "content": [{"type": "text", "text": "part a"}, {"type": "text", "text": "part b"}],
         "tool_call_id": "call_2"},
    ]
    assert body["max_completion_tokens"] == 100


async def test_alpha1_tool_role_text_goes_as_user(build: Build, openai_fake: OpenAIFake) -> None:
    component = await openai(build, openai_fake)
    request = base.ConverseRequest(messages=(base.Message(base.Role.TOOL, (base.TextPart("42"),)),))
    await component.converse(request, timeout=5)
    assert openai_fake.last.body["messages"] == [{"role": "user", "content": "42"}]


@pytest.mark.parametrize(("choice", "sent"), [
    ("auto", "auto"),
    ("none", "none"),
    ("required", "required"),
    ("lookup", {"type": "function", "function": {"name": "lookup"}}),  # daprd: the bare string
])
async def test_tools_and_tool_choice(build: Build, openai_fake: OpenAIFake, choice: str, sent: Any) -> None:
    component = await openai(build, openai_fake)
    tools = (base.Tool("lookup", "Look it up", {"type": "object", "properties": {"q": {"type": "string"}}}),
             base.Tool("now"))
    openai_fake.reply(text="ok")
    await component.converse(text_request("Hi", tools=tools, tool_choice=choice), timeout=5)
    body = openai_fake.last.body
    assert body["tools"] == [
        {"type": "function", "function": {"name": "lookup", "description": "Look it up",
                                          "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}},
        {"type": "function", "function": {"name": "now", "parameters": {}}},
    ]
    assert body["tool_choice"] == sent


async def test_no_tool_choice_without_tools(build: Build, openai_fake: OpenAIFake) -> None:
    component = await openai(build, openai_fake)
    await component.converse(text_request("Hi", tool_choice="auto"), timeout=5)
    assert "tool_choice" not in openai_fake.last.body and "tools" not in openai_fake.last.body


async def test_response_format_as_daprd_converts_it(build: Build, openai_fake: OpenAIFake) -> None:
    component = await openai(build, openai_fake)
    schema = {
        "type": "object", "name": "person", "strict": True, "description": "A person",
        "properties": {
            "name": {"type": "string", "description": "Full name"},
            "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}},
            "address": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
        "required": ["name"],
    }
    await component.converse(text_request("Who?", response_format=schema), timeout=5)
    assert openai_fake.last.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "person", "strict": True, "schema": {
            "type": "object", "description": "A person", "additionalProperties": False, "required": ["name"],
            "properties": {
                "name": {"type": "string", "description": "Full name", "additionalProperties": False},
                "tags": {"type": "array", "additionalProperties": False,
                         "items": {"type": "string", "enum": ["a", "b"], "additionalProperties": False}},
                "address": {"type": "object", "additionalProperties": False, "required": ["city"],
                            "properties": {"city": {"type": "string", "additionalProperties": False}}},
            },
        }},
    }


async def test_response_format_defaults_and_kept_keywords(build: Build, openai_fake: OpenAIFake) -> None:
    component = await openai(build, openai_fake)
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1, "enum": [1, 2]}}}
    await component.converse(text_request("n?", response_format=schema), timeout=5)
    rf = openai_fake.last.body["response_format"]["json_schema"]
    assert (rf["name"], rf["strict"]) == ("response", False)
    assert rf["schema"]["properties"]["n"] == {"type": "integer", "minimum": 1, "enum": [1, 2],
                                               "additionalProperties": False}


async def test_response_format_without_type_is_refused(build: Build, openai_fake: OpenAIFake) -> None:
    component = await openai(build, openai_fake)
    with pytest.raises(ValueError, match="needs a string 'type'"):
        await component.converse(text_request("n?", response_format={"properties": {}}), timeout=5)
    assert openai_fake.requests == []


async def test_metadata_and_prompt_cache_retention(build: Build, openai_fake: OpenAIFake) -> None:
    component = await openai(build, openai_fake)
    await component.converse(text_request("Hi", metadata={"team": "blue"}, prompt_cache_retention=86400.0), timeout=5)
    assert openai_fake.last.body["metadata"] == {"team": "blue", "prompt_cache_retention": "24h0m0s"}
    await component.converse(text_request("Hi"), timeout=5)
    assert "metadata" not in openai_fake.last.body


async def test_each_choice_is_an_output(build: Build, openai_fake: OpenAIFake) -> None:
    component = await openai(build, openai_fake)
    openai_fake.reply(text="a", choices=3, reasoning_tokens=9)
    response = await component.converse(text_request("Hi"), timeout=5)
    assert [(o.choices[0].index, o.choices[0].content) for o in response.outputs] == [(0, "a"), (1, "a #1"),
                                                                                      (2, "a #2")]
    assert all(len(o.choices) == 1 for o in response.outputs)
    assert response.model == "gpt-4o-mini"  # the component's model, not the upstream's answer (daprd)
    assert response.usage is not None
    assert response.usage.completion_details == base.CompletionDetails(reasoning_tokens=9)
    assert response.usage.prompt_details is None


async def test_missing_finish_reason_is_unknown(build: Build, openai_fake: OpenAIFake) -> None:
    component = await openai(build, openai_fake)
    openai_fake.reply(text="a", finish="")
    response = await component.converse(text_request("Hi"), timeout=5)
    assert response.outputs[0].choices[0].finish_reason == "unknown"


async def test_no_choices_is_an_error(build: Build, openai_fake: OpenAIFake) -> None:
    component = await openai(build, openai_fake)
    openai_fake.reply(Reply(raw={"id": "x", "choices": [], "usage": {}}))
    with pytest.raises(errors.ProviderError, match="returned no choices"):
        await component.converse(text_request("Hi"), timeout=5)


async def test_forced_tool_choice_answered_with_nothing_is_retryable(build: Build, openai_fake: OpenAIFake) -> None:
    component = await openai(build, openai_fake)
    openai_fake.reply(text="")
    with pytest.raises(errors.ProviderError, match="despite 1 tools") as info:
        await component.converse(text_request("Hi", tools=(base.Tool("t"),), tool_choice="required"), timeout=5)
    assert info.value.retryable


async def test_wrong_key_rejection_never_echoes_the_key(build: Build) -> None:
    fake = await OpenAIFake(expected_key="sk-the-right-one").start()
    try:
        component = await openai(build, fake)
        with pytest.raises(errors.ProviderError) as info:
            await component.converse(text_request("Hi"), timeout=5)
        assert info.value.reason == "the provider rejected the API key (401)"
        assert OPENAI_KEY not in str(info.value)
    finally:
        await fake.close()


async def test_huggingface_model_template_follows_the_request_model(build: Build, openai_fake: OpenAIFake) -> None:
    entry = await build("conversation.huggingface", {"key": "hf_x"})
    assert entry.instance.url("m/x") == (  # type: ignore[attr-defined]
        "https://router.huggingface.co/hf-inference/models/m/x/v1/chat/completions")
    entry = await build("conversation.huggingface", {
        "key": "hf_x", "endpoint": f"{openai_fake.url}/models/{{{{model}}}}/v1"}, name="hf")
    await entry.instance.converse(text_request("Hi", model="org/other"), timeout=5)
    assert openai_fake.last.path == "/models/org/other/v1/chat/completions"


async def test_deepseek_json_mode_and_max_tokens(build: Build, openai_fake: OpenAIFake) -> None:
    entry = await build("conversation.deepseek", {"key": "ds", "endpoint": openai_fake.url, "maxTokens": "256"})
    schema = {"type": "object", "properties": {"x": {"type": "string"}}}
    await entry.instance.converse(text_request("Hi", response_format=schema), timeout=5)
    body = openai_fake.last.body
    assert body["response_format"] == {"type": "json_object"}
    assert body["max_tokens"] == 256
    assert body["messages"][0]["role"] == "system"
    assert json.dumps({"type": "object", "properties": {"x": {"type": "string", "additionalProperties": False}},
                       "additionalProperties": False}) in body["messages"][0]["content"]
    assert body["messages"][1] == {"role": "user", "content": "Hi"}


async def test_defaults_of_each_provider(build: Build) -> None:
    """Endpoints and models as daprd, without any network."""
    expected = {
        "conversation.openai": ({"key": "k"}, "https://api.openai.com/v1/chat/completions", "gpt-5-nano"),
        "conversation.googleai": ({"key": "k"}, "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions",
                                  "gemini-2.5-flash-lite"),
        "conversation.mistral": ({"key": "k"}, "https://api.mistral.ai/v1/chat/completions", "open-mistral-7b"),
        "conversation.ollama": ({}, "http://localhost:11434/v1/chat/completions", "llama3.2:latest"),
        "conversation.deepseek": ({"key": "k"}, "https://api.deepseek.com/chat/completions", "deepseek-chat"),
        "conversation.huggingface": ({"key": "k"}, "https://router.huggingface.co/hf-inference/models/"
                                     "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B/v1/chat/completions",
                                     "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"),
    }
    for i, (type_, (meta, url, model)) in enumerate(expected.items()):
        instance: Any = (await build(type_, meta, name=f"d{i}")).instance
        assert (instance.url(instance.model), instance.model) == (url, model), type_
    ollama: Any = (await build("conversation.ollama", {}, name="o")).instance
    assert ollama.headers("ollama")["Authorization"] == "Bearer ollama"


async def test_mistral_sends_no_metadata(build: Build, openai_fake: OpenAIFake) -> None:
    entry = await build("conversation.mistral", {"key": "m", "endpoint": f"{openai_fake.url}/v1"})
    await entry.instance.converse(text_request("Hi", metadata={"a": "b"}, prompt_cache_retention=60.0), timeout=5)
    assert "metadata" not in openai_fake.last.body


async def test_a_refusal_is_the_answer_text(build: Build, openai_fake: OpenAIFake) -> None:
    component = await openai(build, openai_fake)
    openai_fake.reply(Reply(raw={"choices": [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": None, "refusal": "I can't help with that."}}]}))
    response = await component.converse(text_request("Hi"), timeout=5)
    assert response.outputs[0].choices[0].content == "I can't help with that."
    assert response.usage is None


async def test_cookies_the_provider_sets_are_not_sent_back(openai_fake: OpenAIFake) -> None:
    """daprd's Go client has no cookie jar, so a cookie the provider sets (Cloudflare's ``__cf_bm``
    in front of api.openai.com) never goes back; the component's own pool keeps none either."""
    context = base.ComponentContext("openai", "conversation.openai", max_connections=4, max_response_bytes=1 << 20)
    component = openai_component.create(context)
    # a host name, not an IP: aiohttp's default jar would keep this cookie
    await component.init({"key": OPENAI_KEY, "model": "gpt-4o-mini",
                          "endpoint": f"http://localhost:{openai_fake.port}/v1"})
    try:
        openai_fake.fail(400, "bad request", headers={"Set-Cookie": "__cf_bm=abc123; Path=/"})
        with pytest.raises(errors.ProviderError):
            await component.converse(text_request("Hi"), timeout=5)
        await component.converse(text_request("Hi again"), timeout=5)
        assert "cookie" not in openai_fake.last.headers
    finally:
        await component.aclose()


async def test_each_call_presents_its_own_key(build: Build, openai_fake: OpenAIFake) -> None:
    """The component's headers are built once and kept: a per-request key (Dapr's ``key`` metadata)
    must still reach the provider, and must not stay for the calls after it; a second component
    presents its own key, not the first one's."""
    openai_fake.expected_key = None
    first = await openai(build, openai_fake)
    second = await openai(build, openai_fake, key="sk-second-component-key")
    calls = [(first, None), (first, "sk-per-request-key"), (first, None), (second, None), (first, "sk-other-request"),
             (second, None), (first, None)]
    for component, key in calls:
        await component.converse(text_request("Hi", api_key=key), timeout=5)
    assert [r.headers["authorization"] for r in openai_fake.requests[-len(calls):]] == [
        f"Bearer {OPENAI_KEY}", "Bearer sk-per-request-key", f"Bearer {OPENAI_KEY}", "Bearer sk-second-component-key",
        "Bearer sk-other-request", "Bearer sk-second-component-key", f"Bearer {OPENAI_KEY}"]
