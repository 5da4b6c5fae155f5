"""Gemini's thought signatures (``extra_content`` on a tool call) travel with the call: read from the
answer, unstreamed and streamed, kept through stream assembly, the cache and conversation memory,
and sent back only to the servers whose dialect carries them (OpenAI refuses unknown properties in
a message). The Dapr API has no field for them: with memory on, the remembered call carries its
signature back to Gemini; without memory a Gemini 3 tool-call turn fails as Gemini says.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from parley_sidecar.components import base, googleai, openai, openai_kit, streaming
from parley_sidecar.conversation import cache, memory, openai_chat
from tests.conftest import StartSidecar, component_yaml
from tests.fakes import OpenAIFake, recordings
from tests.fakes.server import Reply

SIGNED = {"google": {"thought_signature": "CiUBjz1rX6pHsUo5d3L0mH1B"}}
CALL = base.ToolCall("function-call-1", "check_flight", '{"flight":"AA100"}', SIGNED)
ASKED = base.Message(base.Role.USER, (base.TextPart("Check flight AA100"),))
HISTORY = (ASKED, base.Message(base.Role.ASSISTANT, (CALL,)),
           base.Message(base.Role.TOOL, (base.ToolResult(CALL.id, CALL.name, '{"status":"delayed"}'),)))


def _sent_calls(dialect: openai_kit.Dialect) -> list[dict[str, Any]]:
    body = openai_kit.build_body(base.ConverseRequest(messages=HISTORY), "gemini-3-pro-preview", dialect)
    calls: list[dict[str, Any]] = body["messages"][1]["tool_calls"]
    return calls


def test_sent_back_to_gemini_and_to_nobody_else() -> None:
    assert _sent_calls(googleai.DIALECT)[0]["extra_content"] == SIGNED
    for other in (openai.OPENAI, openai.AZURE, openai.COMPATIBLE):
        assert _sent_calls(other) == [{"id": CALL.id, "type": "function",
                                       "function": {"name": CALL.name, "arguments": CALL.arguments}}]


def test_read_from_an_answer_where_the_dialect_carries_it() -> None:
    [step1, _] = recordings.answers("googleai_tools.json")
    request = base.ConverseRequest(messages=(ASKED,))
    kept = openai_kit.parse_response(step1, "m", request, "googleai", extra_content=True)
    assert kept.outputs[0].choices[0].tool_calls == (CALL,)
    dropped = openai_kit.parse_response(step1, "m", request, "openai")
    assert dropped.outputs[0].choices[0].tool_calls[0].extra_content is None


def test_a_stream_relays_it_once_per_call_and_assembles_it() -> None:
    reader = openai_kit.ChunkReader("m", "googleai", (), extra_content=True)
    piece = {"id": CALL.id, "type": "function", "extra_content": SIGNED,
             "function": {"name": CALL.name, "arguments": CALL.arguments}}
    first = reader.add({"choices": [{"index": 0, "delta": {"tool_calls": [piece]}}]})
    # a server repeating it on a later piece of the same call: not relayed twice (clients join strings)
    again = reader.add({"choices": [{"index": 0, "delta": {"tool_calls": [{**piece, "index": 0, "id": "",
                                                                            "function": {"arguments": ""}}]}}]})
    assert first is not None and first.tool_calls[0].extra_content == SIGNED
    assert again is not None and again.tool_calls[0].extra_content is None
    assembler = streaming.Assembler()
    for delta in (first, again):
        assembler.add(delta)
    assert assembler.response().outputs[0].choices[0].tool_calls == (CALL,)


def test_a_replayed_answer_keeps_it() -> None:
    answer = base.ConverseResponse(outputs=(base.Output((base.Choice("tool_calls", 0, "", (CALL,)),)),))
    assembler = streaming.Assembler()
    for delta in streaming.replay(answer):
        assembler.add(delta)
    assert assembler.response().outputs[0].choices[0].tool_calls == (CALL,)


def test_the_cache_and_memory_keep_it() -> None:
    answer = base.ConverseResponse(outputs=(base.Output((base.Choice("tool_calls", 0, "", (CALL,)),)),))
    assert cache.decode(cache.encode(answer)) == answer
    assert memory._decode(memory._encode(HISTORY)) == HISTORY
    # a call without it is stored as before; with it, the call itself keeps its three fields, so a
    # replica of an older version sharing the Redis store still reads the history
    unsigned = (base.Message(base.Role.ASSISTANT, (base.ToolCall("1", "f", "{}"),)),)
    assert json.loads(memory._encode(unsigned)) == [{"role": "assistant", "name": "", "parts": [{"call": ["1", "f", "{}"]}]}]
    assert json.loads(memory._encode(HISTORY))[1]["parts"] == [{"call": [CALL.id, CALL.name, CALL.arguments],
                                                                "extra": SIGNED}]


def test_an_openai_client_must_send_an_object() -> None:
    message: Any = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}, "extra_content": "sig"}]}
    body = {"model": "g", "messages": [{"role": "user", "content": "hi"}, message,
                                       {"role": "tool", "tool_call_id": "c", "content": "ok"}]}
    with pytest.raises(openai_chat.ChatError) as refused:
        openai_chat.parse(body)
    assert refused.value.param == "messages[1].tool_calls[0].extra_content"
    message["tool_calls"][0]["extra_content"] = SIGNED
    [_, assistant, _] = openai_chat.parse(body).request.messages
    assert assistant.parts == (base.ToolCall("c", "f", "{}", SIGNED),)


# -- the Dapr API (alpha2): no field for the signature ---------------------------------------------

A2 = "/v1.0-alpha2/conversation/gemini/converse"
TOOLS = [{"function": {"name": "check_flight", "description": "Gets the current status of a flight",
                       "parameters": {"type": "object", "properties": {"flight": {"type": "string"}}}}}]


@pytest.fixture
async def fake() -> AsyncIterator[OpenAIFake]:
    started = await OpenAIFake(flavor="gemini").start()
    yield started
    await started.close()


def _gemini3(fake: OpenAIFake, **metadata: str) -> dict[str, str]:
    return {"g.yaml": component_yaml("gemini", "conversation.googleai", {
        "key": "AIza-test", "endpoint": f"{fake.url}/v1beta/openai/", "model": "gemini-3-pro-preview", **metadata})}


def _user(text: str) -> dict[str, Any]:
    return {"ofUser": {"content": [{"text": text}]}}


def _tool_result() -> dict[str, Any]:
    return {"ofTool": {"toolId": "function-call-1", "name": "check_flight", "content": [{"text": "delayed"}]}}


async def test_alpha2_with_memory_sends_the_remembered_signature(start_sidecar: StartSidecar,
                                                                 fake: OpenAIFake) -> None:
    running = await start_sidecar(_gemini3(fake, memory="true"))
    fake.reply(Reply(raw=recordings.answers("googleai_tools.json")[0]))
    status, first = await running.post(A2, {"contextId": "trip", "tools": TOOLS,
                                            "inputs": [{"messages": [_user("Check flight AA100")]}]})
    assert status == 200, first
    # alpha2's answer is unchanged: a tool call has no place for the signature
    assert first["outputs"][0]["choices"][0]["message"]["toolCalls"] == [
        {"id": "function-call-1", "function": {"name": "check_flight", "arguments": '{"flight":"AA100"}'}}]
    status, second = await running.post(A2, {"contextId": "trip", "tools": TOOLS,
                                             "inputs": [{"messages": [_tool_result()]}]})
    assert status == 200, second
    assistant = fake.requests[-1].body["messages"][1]
    assert assistant["tool_calls"][0]["extra_content"] == SIGNED


async def test_alpha2_without_memory_gets_geminis_400(start_sidecar: StartSidecar, fake: OpenAIFake) -> None:
    running = await start_sidecar(_gemini3(fake))
    call = {"id": "function-call-1", "function": {"name": "check_flight", "arguments": '{"flight":"AA100"}'}}
    status, reply = await running.post(A2, {"tools": TOOLS, "inputs": [{"messages": [
        _user("Check flight AA100"), {"ofAssistant": {"toolCalls": [call]}}, _tool_result()]}]})
    assert status == 500
    assert "missing a thought_signature" in reply["message"]
