"""The OpenAI-compatible API on a real sidecar (in-process, loopback) with echo, over plain HTTP:
answers and chunks in OpenAI's shape, every refusal OpenAI-shaped naming its field, and the
extension headers. The official clients run against it in ``tests/clients/test_openai_*.py``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from parley_sidecar.settings import Limits
from tests.conftest import ECHO, Running, StartSidecar, component_yaml
from tests.fakes.openai import OpenAIFake
from tests.fakes.server import Reply
from tests.sidecar.api.test_metrics import scrape

CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "hello there world"}]


@pytest.fixture
async def running(start_sidecar: StartSidecar) -> Running:
    return await start_sidecar({
        "echo.yaml": ECHO.format(name="echo"),
        "remembering.yaml": component_yaml("remembering", metadata={"memory": "true"}),
    })


async def events(running: Running, body: dict[str, Any], headers: dict[str, str] | None = None) -> list[Any]:
    """The stream's events, parsed (``[DONE]`` kept as the string)."""
    async with running.session.post(running.http + CHAT, json=body, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        raw = (await resp.read()).decode()
    out: list[Any] = []
    for block in raw.split("\n\n"):
        if block:
            assert block.startswith("data: "), block
            data = block.removeprefix("data: ")
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


async def test_a_completion_in_openais_shape(running: Running) -> None:
    status, body = await running.post(CHAT, {"model": "echo", "messages": HELLO})
    assert status == 200
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["model"] == "echo"
    assert body["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "hello there world",
                                                        "refusal": None},
                                "logprobs": None, "finish_reason": "stop"}]
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}


async def test_every_message_role_and_text_parts_reach_the_component(running: Running) -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "developer", "content": [{"type": "text", "text": "dev"}, {"type": "text", "text": " note"}]},
        {"role": "user", "content": "what is the weather?", "name": "ann"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "user", "content": "thanks"},
    ]
    status, body = await running.post(CHAT, {"model": "echo", "messages": messages, "future_field": {"x": 1}})
    assert status == 200, body
    [choice] = body["choices"]
    # echo answers with every text, and repeats the assistant's tool call
    assert choice["message"]["content"] == (
        "be brief\ndev\n note\nwhat is the weather?\n"
        "Tool Response for tool ID 'call_1' with name 'weather': sunny\nthanks")
    assert choice["message"]["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]
    assert choice["finish_reason"] == "tool_calls"


async def test_tools_give_tool_calls(running: Running) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "weather",
                                               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    status, body = await running.post(CHAT, {"model": "echo", "messages": HELLO, "tools": tools,
                                             "tool_choice": {"type": "function", "function": {"name": "get_weather"}}})
    assert status == 200, body
    message = body["choices"][0]["message"]
    assert message["tool_calls"] == [{"id": "0", "type": "function",
                                      "function": {"name": "get_weather", "arguments": "city"}}]


async def test_a_stream_of_chunks_ends_with_usage_and_done(running: Running) -> None:
    got = await events(running, {"model": "echo", "messages": HELLO, "stream": True,
                                 "stream_options": {"include_usage": True}})
    assert got[-1] == "[DONE]"
    chunks = got[:-1]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0]["role"] == "assistant"
    assert "".join(d.get("content", "") for d in deltas) == "hello there world"
    assert len([d for d in deltas if d.get("content")]) == 3  # relayed a piece at a time
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}
    assert all(c["usage"] is None for c in chunks[:-1])


async def test_a_stream_without_usage_has_no_usage_chunk(running: Running) -> None:
    got = await events(running, {"model": "echo", "messages": HELLO, "stream": True})
    assert got[-1] == "[DONE]"
    assert all(c["choices"] and "usage" not in c for c in got[:-1])


async def test_streamed_tool_calls_carry_index_id_and_name(running: Running) -> None:
    tools = [{"type": "function", "function": {"name": "a", "parameters": {"properties": {"x": {}}}}},
             {"type": "function", "function": {"name": "b"}}]
    got = await events(running, {"model": "echo", "messages": HELLO, "stream": True, "tools": tools})
    calls = [t for c in got[:-1] for t in c["choices"][0]["delta"].get("tool_calls", [])]
    assert calls == [{"index": 0, "id": "0", "type": "function", "function": {"name": "a", "arguments": "x"}},
                     {"index": 1, "id": "1", "type": "function", "function": {"name": "b", "arguments": ""}}]
    assert got[-2]["choices"][0]["finish_reason"] == "tool_calls"


async def test_component_slash_model_names_the_component(running: Running) -> None:
    status, body = await running.post(CHAT, {"model": "echo/some-model", "messages": HELLO})
    assert status == 200, body
    assert body["model"] == "echo/some-model"


async def test_models_lists_the_components(running: Running) -> None:
    async with running.session.get(running.http + "/v1/models") as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body == {"object": "list", "data": [
        {"id": "echo", "object": "model", "created": 0, "owned_by": "conversation.echo"},
        {"id": "remembering", "object": "model", "created": 0, "owned_by": "conversation.echo"}]}
    async with running.session.get(running.http + "/v1/models/echo") as resp:
        assert (await resp.json())["id"] == "echo"
    async with running.session.get(running.http + "/v1/models/nope") as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "model_not_found"


BAD = [
    pytest.param({"model": "nope", "messages": HELLO}, 404, "model", "model_not_found", "'nope'", id="unknown-model"),
    pytest.param({"messages": HELLO}, 400, "model", "missing_required_parameter", "model", id="no-model"),
    pytest.param({"model": 7, "messages": HELLO}, 400, "model", "invalid_type", "expected a string", id="model-type"),
    pytest.param({"model": "echo"}, 400, "messages", "missing_required_parameter", "messages", id="no-messages"),
    pytest.param({"model": "echo", "messages": []}, 400, "messages", "empty_array", "empty array", id="empty-messages"),
    pytest.param({"model": "echo", "messages": "hi"}, 400, "messages", "invalid_type", "an array", id="messages-type"),
    pytest.param({"model": "echo", "messages": [{"role": "robot", "content": "x"}]}, 400, "messages[0].role",
                 "invalid_value", "'robot'", id="role"),
    pytest.param({"model": "echo", "messages": [{"role": "user", "content": 5}]}, 400, "messages[0].content",
                 "invalid_type", "got an integer", id="content-type"),
    pytest.param({"model": "echo", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "http://x"}}]}]}, 400, "messages[0].content[0].type",
                 "invalid_value", "text parts only", id="image-part"),
    pytest.param({"model": "echo", "messages": [*HELLO, {"role": "tool", "tool_call_id": "c", "content": "x"}]},
                 400, "messages[1].role", "invalid_value", "must be a response", id="tool-answering-nothing"),
    pytest.param({"model": "echo", "messages": [
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "other", "content": "x"}]}, 400, "messages[1].tool_call_id",
                 "invalid_value", "'other'", id="tool-wrong-id"),
    pytest.param({"model": "echo", "messages": [
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}}]},
        *HELLO]}, 400, "messages[1].role", "invalid_value", "c1", id="tool-call-unanswered"),
    pytest.param({"model": "echo", "messages": HELLO, "n": 2}, 400, "n", "unsupported_value", "must be 1", id="n"),
    pytest.param({"model": "echo", "messages": HELLO, "temperature": "hot"}, 400, "temperature", "invalid_type",
                 "expected a number", id="temperature-type"),
    pytest.param({"model": "echo", "messages": HELLO, "temperature": 3}, 400, "temperature", "invalid_value",
                 "between 0 and 2", id="temperature-range"),
    pytest.param({"model": "echo", "messages": HELLO, "max_tokens": 0}, 400, "max_tokens", "invalid_value", ">= 1",
                 id="max-tokens"),
    pytest.param({"model": "echo", "messages": HELLO, "stream": "yes"}, 400, "stream", "invalid_type",
                 "a boolean", id="stream-type"),
    pytest.param({"model": "echo", "messages": HELLO, "stream_options": {"include_usage": True}}, 400,
                 "stream_options", "invalid_value", "only allowed when 'stream'", id="stream-options"),
    pytest.param({"model": "echo", "messages": HELLO, "tool_choice": "required"}, 400, "tool_choice",
                 "invalid_value", "only allowed when 'tools'", id="tool-choice-no-tools"),
    pytest.param({"model": "echo", "messages": HELLO, "tools": [{"type": "function", "function": {"name": "f"}}],
                  "tool_choice": {"type": "function", "function": {"name": "g"}}}, 400, "tool_choice",
                 "invalid_value", "'g'", id="tool-choice-unknown"),
    pytest.param({"model": "echo", "messages": HELLO, "response_format": {"type": "xml"}}, 400,
                 "response_format.type", "invalid_value", "'xml'", id="response-format"),
    pytest.param({"model": "echo", "messages": HELLO, "stop": ["a", "b", "c", "d", "e"]}, 400, "stop",
                 "array_above_max_length", "maximum length 4", id="stop"),
    pytest.param([1, 2], 400, None, "invalid_type", "JSON object", id="array-body"),
]


@pytest.mark.parametrize(("body", "status", "param", "code", "says"), BAD)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_bad_requests_get_openai_errors_naming_the_field(running: Running, body: Any, status: int,
                                                               param: str | None, code: str, says: str,
                                                               stream: bool) -> None:
    if stream and isinstance(body, dict) and "stream" not in body and "stream_options" not in body:
        body = {**body, "stream": True}
    got_status, got = await running.post(CHAT, body)
    assert got_status == status, got
    assert set(got) == {"error"}
    error = got["error"]
    assert error["param"] == param and error["code"] == code
    assert says in error["message"]
    assert error["type"] == "invalid_request_error"
    # the next request works
    status_ok, _ = await running.post(CHAT, {"model": "echo", "messages": HELLO})
    assert status_ok == 200


async def test_malformed_json_is_an_openai_error(running: Running) -> None:
    for raw in (b"{not json", b"\xff\xfe", b""):
        status, body = await running.post(CHAT, raw=raw, headers={"Content-Type": "application/json"})
        assert status == 400, body
        assert body["error"]["code"] == "invalid_json"
        assert "could not parse the JSON body" in body["error"]["message"]


async def test_unknown_path_under_v1_is_an_openai_404(running: Running) -> None:
    async with running.session.post(running.http + "/v1/embeddings", json={}) as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["message"] == "Invalid URL (POST /v1/embeddings)"
    async with running.session.get(running.http + CHAT) as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["type"] == "invalid_request_error"


async def test_pii_header_scrubs_the_answer(running: Running) -> None:
    messages = [{"role": "user", "content": "mail me at ann@example.com"}]
    _, plain = await running.post(CHAT, {"model": "echo", "messages": messages})
    assert "ann@example.com" in plain["choices"][0]["message"]["content"]
    _, scrubbed = await running.post(CHAT, {"model": "echo", "messages": messages},
                                     headers={"parley-scrub-pii": "true"})
    assert scrubbed["choices"][0]["message"]["content"] == "mail me at <EMAIL_ADDRESS>"
    got = await events(running, {"model": "echo", "messages": messages, "stream": True},
                       headers={"parley-scrub-pii": "true"})
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in got[:-1])
    assert text == "mail me at <EMAIL_ADDRESS>"
    status, bad = await running.post(CHAT, {"model": "echo", "messages": messages},
                                     headers={"parley-scrub-pii": "maybe"})
    assert status == 400 and bad["error"]["param"] == "parley-scrub-pii"


async def test_memory_is_keyed_by_the_context_header_or_user(running: Running) -> None:
    first = {"model": "remembering", "messages": [{"role": "user", "content": "my name is Ann"}]}
    second = {"model": "remembering", "messages": [{"role": "user", "content": "who am I?"}]}
    await running.post(CHAT, first, headers={"parley-context-id": "c1"})
    _, body = await running.post(CHAT, second, headers={"parley-context-id": "c1"})
    # echo answers with everything it was sent: the remembered turn came first
    assert body["choices"][0]["message"]["content"] == "my name is Ann\nmy name is Ann\nwho am I?"
    await running.post(CHAT, {**first, "user": "u1"})
    _, body = await running.post(CHAT, {**second, "user": "u1"})
    assert body["choices"][0]["message"]["content"].startswith("my name is Ann\n")
    _, body = await running.post(CHAT, {**second, "user": "u2"})
    assert body["choices"][0]["message"]["content"] == "who am I?"


@pytest.mark.parametrize("headers", [
    {"Authorization": "Bearer s3cret"}, {"authorization": "bearer s3cret"}, {"dapr-api-token": "s3cret"}])
async def test_token_as_bearer_or_dapr_header(start_sidecar: StartSidecar, headers: dict[str, str]) -> None:
    running = await start_sidecar(api_token="s3cret")
    status, _ = await running.post(CHAT, {"model": "echo", "messages": HELLO}, headers=headers)
    assert status == 200
    async with running.session.get(running.http + "/v1/models", headers=headers) as resp:
        assert resp.status == 200


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}])
async def test_wrong_token_is_an_openai_401(start_sidecar: StartSidecar, headers: dict[str, str]) -> None:
    running = await start_sidecar(api_token="s3cret")
    status, body = await running.post(CHAT, {"model": "echo", "messages": HELLO}, headers=headers)
    assert status == 401
    assert body["error"]["code"] == "invalid_api_key"
    assert "wrong" not in body["error"]["message"]
    # the Dapr routes keep daprd's own answer and header
    async with running.session.post(running.http + "/v1.0-alpha1/conversation/echo/converse",
                                    json={"inputs": [{"content": "x"}]},
                                    headers={"Authorization": "Bearer s3cret"}) as resp:
        assert resp.status == 401
        assert await resp.text() == "invalid api token\n"


async def test_a_client_that_stops_reading_mid_stream_leaves_the_sidecar_serving(running: Running) -> None:
    long = " ".join(f"word{i}" for i in range(20000))
    body = {"model": "echo", "messages": [{"role": "user", "content": long}], "stream": True}
    async with aiohttp.ClientSession() as session, session.post(running.http + CHAT, json=body) as resp:
        assert resp.status == 200
        await resp.content.readuntil(b"\n\n")
        # leaving the block closes the connection with most of the stream unread
    status, ok = await running.post(CHAT, {"model": "echo", "messages": HELLO})
    assert status == 200 and ok["choices"][0]["message"]["content"] == "hello there world"


async def test_a_body_over_the_limit_is_an_openai_413(start_sidecar: StartSidecar) -> None:
    running = await start_sidecar(limits=Limits(max_body_size=64 * 1024))
    big = {"model": "echo", "messages": [{"role": "user", "content": "x" * 100_000}]}
    status, body = await running.post(CHAT, big)
    assert status == 413
    assert "larger than 65536 bytes" in body["error"]["message"]


@pytest.fixture
async def fake() -> AsyncIterator[OpenAIFake]:
    server = await OpenAIFake().start()
    yield server
    await server.close()


async def test_one_pipeline_cache_hit_replays_as_a_stream(start_sidecar: StartSidecar, fake: OpenAIFake) -> None:
    running = await start_sidecar({"llm.yaml": component_yaml("llm", "conversation.openai", {
        "key": "sk-x", "model": "m", "endpoint": f"{fake.url}/v1", "cacheTTL": "1m", "maxRetries": "0"})})
    fake.stream(Reply(text="cached words come back"))
    body = {"model": "llm", "messages": HELLO, "stream": True}
    first = await events(running, body)
    second = await events(running, body)  # a hit: the fake is not asked again
    texts = ["".join(c["choices"][0]["delta"].get("content", "") for c in got[:-1]) for got in (first, second)]
    assert texts == ["cached words come back"] * 2
    assert len(fake.requests) == 1
    _, plain = await running.post(CHAT, {"model": "llm", "messages": HELLO})  # and the plain form hits too
    assert plain["choices"][0]["message"]["content"] == "cached words come back"
    assert len(fake.requests) == 1


async def test_an_upstream_failure_is_an_openai_server_error(start_sidecar: StartSidecar, fake: OpenAIFake) -> None:
    running = await start_sidecar({"llm.yaml": component_yaml("llm", "conversation.openai", {
        "key": "sk-secret-key-0123", "model": "m", "endpoint": f"{fake.url}/v1", "maxRetries": "0"})})
    for stream in (False, True):
        fake.fail(400, "This model's maximum context length is 128000 tokens.")
        status, body = await running.post(CHAT, {"model": "llm", "messages": HELLO, "stream": stream})
        assert status == 500
        assert body["error"]["type"] == "server_error"
        assert "failed conversing with component llm" in body["error"]["message"]
        assert "maximum context length" in body["error"]["message"]
        assert "sk-secret" not in json.dumps(body)


async def test_requests_are_counted_under_their_route_never_user_text(running: Running) -> None:
    await running.post(CHAT, {"model": "echo", "messages": HELLO})
    await events(running, {"model": "echo", "messages": HELLO, "stream": True})
    await running.post(CHAT, {"model": "secret-looking-name", "messages": HELLO})
    async with running.session.get(running.http + "/v1/models/another-secret") as resp:
        assert resp.status == 404
    families = await scrape(running)
    http = {(labels["path"], labels["status"]): value
            for _, labels, value in families["dapr_http_server_request_count"]}
    assert http[("/v1/chat/completions", "200")] == 2
    assert http[("/v1/chat/completions", "404")] == 1
    assert http[("/v1/models/{model}", "404")] == 1
    text = json.dumps(families)
    assert "secret-looking-name" not in text and "another-secret" not in text
    # the pipeline counted both conversations, the streamed one included
    conversations = {labels["success"]: value for _, labels, value in families["dapr_component_conversation_count"]
                     if labels["component"] == "echo"}
    assert conversations == {"true": 2}
