"""daprd's own integration cases for echo (dapr tests/integration/suite/daprd/conversation), over HTTP.

Whole JSON bodies are compared. Source of every expectation: the real daprd 1.18.3's answers
(the same cases run against it in tests/conformance/).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Running

A1 = "/v1.0-alpha1/conversation/echo/converse"
A2 = "/v1.0-alpha2/conversation/test-alpha2-echo/converse"
A2_ECHO = "/v1.0-alpha2/conversation/echo/converse"


def user(text: str, **extra: Any) -> dict[str, Any]:
    return {"ofUser": {"content": [{"text": text}], **extra}}


def choice_out(content: str, words: int, finish: str = "stop", **message: Any) -> dict[str, Any]:
    usage = {"completionTokens": str(words), "promptTokens": str(words), "totalTokens": str(2 * words)}
    return {"outputs": [{"choices": [{"finishReason": finish, "message": {"content": content, **message}}],
                         "usage": usage}]}


PHONE = "well hello there, my phone number is +2222222222"
EMAIL = "well hello there, my email is test@test.com"
IP = "well hello there from 10.8.9.1"

CASES: list[tuple[str, str, Any, int, Any]] = [
    # §5.1 alpha1 basic
    ("a1 basic", A1, {"inputs": [{"content": "well hello there"}]}, 200,
     {"outputs": [{"result": "well hello there"}]}),
    ("a1 no inputs", A1, {"metadata": {"model": "daprGPT"}}, 400,
     {"errorCode": "ERR_CONVERSATION_MISSING_INPUTS",
      "message": "failed conversing with component echo: missing inputs in request"}),
    # §5.2 alpha1 scrubPII
    ("a1 scrub phone", A1, {"inputs": [{"content": PHONE, "scrubPII": True}]}, 200,
     {"outputs": [{"result": "well hello there, my phone number is <PHONE_NUMBER>"}]}),
    ("a1 scrub email", A1, {"inputs": [{"content": EMAIL, "scrubPII": True}]}, 200,
     {"outputs": [{"result": "well hello there, my email is <EMAIL_ADDRESS>"}]}),
    ("a1 scrub ip", A1, {"inputs": [{"content": IP, "scrubPII": True}]}, 200,
     {"outputs": [{"result": "well hello there from <IP>"}]}),
    ("a1 scrub outputs", A1, {"inputs": [{"content": IP}, {"content": EMAIL}], "scrubPII": True}, 200,
     {"outputs": [{"result": "well hello there from <IP>\nwell hello there, my email is <EMAIL_ADDRESS>"}]}),
    ("a1 scrub nothing to scrub", A1,
     {"inputs": [{"content": "well hello there", "scrubPII": True}], "scrubPII": True}, 200,
     {"outputs": [{"result": "well hello there"}]}),
    # §5.4 alpha2 basic
    ("a2 all fields", A2, {
        "name": "ignored-in-favour-of-url",
        "contextId": "test-conversation-123",
        "inputs": [
            {"messages": [user("well hello there")], "scrubPII": False},
            {"messages": [{"ofSystem": {"content": [{"text": "You are a helpful assistant"}]}}], "scrubPII": True},
        ],
        "parameters": {
            "max_tokens": {"@type": "type.googleapis.com/google.protobuf.Int64Value", "value": "100"},
            "model": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": "test-model"},
        },
        "metadata": {"api_key": "test-key", "version": "1.0"},
        "scrubPii": True,
        "temperature": 0.7,
        "responseFormat": {"type": "object", "properties": {"answer": {"type": "string"}}},
        "promptCacheRetention": "86400s",
        "tools": [{"function": {"name": "test_function", "description": "A test function",
                                "parameters": {"type": "object",
                                               "properties": {"param1": {"type": "string"}},
                                               "required": ["param1"]}}}],
        "toolChoice": "auto",
    }, 200, {"contextId": "test-conversation-123", "outputs": [{"choices": [{"finishReason": "tool_calls", "message": {
        "content": "well hello there\nYou are a helpful assistant",
        "toolCalls": [{"function": {"arguments": "param1", "name": "test_function"}, "id": "0"}]}}],
        "usage": {"completionTokens": "8", "promptTokens": "8", "totalTokens": "16"}}]}),
    ("a2 message without type", A2, {"inputs": [{"messages": [{"invalidField": {"content": "invalid"}}]}]}, 400,
     {"errorCode": "ERR_CONVERSATION_INVALID_PARMS",
      "message": "failed conversing with component test-alpha2-echo: invalid params: message type cannot be nil"}),
    ("a2 correct tool call", A2, {"inputs": [{"messages": [{"ofAssistant": {
        "name": "assistant name", "content": [{"text": "assistant message"}],
        "toolCalls": [{"id": "id 123", "function": {"name": "test_function", "arguments": "{\"test\": \"value\"}"}}],
    }}]}]}, 200, choice_out("assistant message", 2, "tool_calls", toolCalls=[
        {"id": "id 123", "function": {"name": "test_function", "arguments": "{\"test\": \"value\"}"}}])),
    ("a2 malformed tool call", A2, {"inputs": [{"messages": [{"ofAssistant": {
        "content": [{"text": "x"}], "toolCalls": [{"id": "call_123"}]}}]}]}, 400,
     {"errorCode": "ERR_CONVERSATION_INVALID_PARMS",
      "message": "failed conversing with component test-alpha2-echo: invalid params: tool types cannot be nil"}),
    # §5.5 message types
    ("a2 user", A2, {"inputs": [{"messages": [user("user message", name="user name")]}]}, 200,
     choice_out("user message", 2)),
    ("a2 system", A2, {"inputs": [{"messages": [{"ofSystem": {"content": [{"text": "system message"}]}}]}]}, 200,
     choice_out("system message", 2)),
    ("a2 developer", A2, {"inputs": [{"messages": [{"ofDeveloper": {"content": [{"text": "developer message"}]}}]}]},
     200, choice_out("developer message", 2)),
    ("a2 assistant", A2, {"inputs": [{"messages": [{"ofAssistant": {
        "content": [{"text": "assistant message"}],
        "toolCalls": [{"id": "call_123", "function": {"name": "test_function", "arguments": "test-string"}}]}}]}]},
     200, choice_out("assistant message", 2, "tool_calls", toolCalls=[
         {"id": "call_123", "function": {"name": "test_function", "arguments": "test-string"}}])),
    ("a2 tool", A2, {"inputs": [{"messages": [{"ofTool": {"toolId": "tool-123", "name": "tool name",
                                                          "content": [{"text": "tool message"}]}}]}]}, 200,
     choice_out("Tool Response for tool ID 'tool-123' with name 'tool name': tool message", 12)),
    ("a2 multi-turn", A2, {"inputs": [{"messages": [
        user("first user message"),
        {"ofAssistant": {"content": [{"text": "first assistant response"}]}},
        user("second user message"),
        {"ofSystem": {"content": [{"text": "system instruction"}]}},
    ]}]}, 200, choice_out(
        "first user message\nfirst assistant response\nsecond user message\nsystem instruction", 11)),
    # §5.6 alpha2 scrubPii
    ("a2 scrub phone", A2_ECHO, {"inputs": [{"messages": [user(PHONE)], "scrubPii": True}]}, 200,
     choice_out("well hello there, my phone number is <PHONE_NUMBER>", 8)),
    ("a2 scrub email", A2_ECHO, {"inputs": [{"messages": [user(EMAIL)], "scrubPii": True}]}, 200,
     choice_out("well hello there, my email is <EMAIL_ADDRESS>", 7)),
    ("a2 scrub ip", A2_ECHO, {"inputs": [{"messages": [user(IP)], "scrubPii": True}]}, 200,
     choice_out("well hello there from <IP>", 5)),
    ("a2 scrub outputs, usage counted before scrubbing", A2_ECHO,
     {"inputs": [{"messages": [user(IP)]}, {"messages": [user(EMAIL)]}], "scrubPii": True}, 200,
     choice_out("well hello there from <IP>\nwell hello there, my email is <EMAIL_ADDRESS>", 12)),
    ("a2 scrub nothing", A2_ECHO,
     {"inputs": [{"messages": [user("well hello there")], "scrubPii": True}], "scrubPii": True}, 200,
     choice_out("well hello there", 3)),
    # §5.9 echo unit cases, through alpha2
    ("echo empty text", A2_ECHO, {"inputs": [{"messages": [user("")]}]}, 200,
     {"outputs": [{"choices": [{"finishReason": "stop", "message": {}}], "usage": {}}]}),
    ("echo tool args sorted", A2_ECHO, {"inputs": [{"messages": [user("hello")]}], "tools": [{"function": {
        "name": "myfunc", "parameters": {"properties": {"unit": {}, "name": {}, "location": {}}}}}]}, 200,
     choice_out("hello", 1, "tool_calls", toolCalls=[
         {"id": "0", "function": {"name": "myfunc", "arguments": "location,name,unit"}}])),
    ("echo tool response", A2_ECHO, {"inputs": [{"messages": [
        user("hello echo"),
        {"ofTool": {"toolId": "myid", "name": "myfunc", "content": [{"text": "Dapr"}]}}]}]}, 200,
     choice_out("hello echo\nTool Response for tool ID 'myid' with name 'myfunc': Dapr", 12)),
    ("echo properties not a map", A2_ECHO, {"inputs": [{"messages": [user("x")]}], "tools": [{"function": {
        "name": "f", "parameters": {"properties": "oops"}}}]}, 500,
     {"errorCode": "ERR_CONVERSATION_INVOKE", "message":
      "failed conversing with component echo: tool function properties must be a map[string]any, got string"}),
]


@pytest.mark.parametrize(("path", "body", "status", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_daprd_echo_case(sidecar: Running, path: str, body: Any, status: int, expected: Any) -> None:
    got_status, got = await sidecar.post(path, body)
    assert (got_status, got) == (status, expected)


async def test_pysdk_examples_alpha1_joins_inputs(sidecar: Running) -> None:
    """pysdk tests: inputs 'one', 'two' give one output 'one\\ntwo'; temperature changes nothing."""
    status, got = await sidecar.post(A1, {"inputs": [{"content": "one"}, {"content": "two"}], "temperature": 0.7})
    assert (status, got) == (200, {"outputs": [{"result": "one\ntwo"}]})


async def test_alpha1_parameters_and_context_are_echoed(sidecar: Running) -> None:
    params = {"p": {"@type": "type.googleapis.com/google.protobuf.Int64Value", "value": "7"}}
    status, got = await sidecar.post(A1, {"contextID": "chat-1", "parameters": params,
                                          "inputs": [{"content": "hi", "role": "tool"}]})
    assert status == 200
    assert got == {"contextID": "chat-1", "outputs": [{"result": "hi", "parameters": params}]}
