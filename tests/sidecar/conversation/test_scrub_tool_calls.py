"""PII in tool-call arguments is scrubbed too (beyond daprd), in requests and in answers."""

from __future__ import annotations

import json

from tests.conftest import StartSidecar, component_yaml
from tests.fakes import OpenAIFake
from tests.fakes.server import Reply

A2 = "/v1.0-alpha2/conversation/{name}/converse"


async def test_assistant_tool_call_arguments_are_scrubbed_on_input(start_sidecar: StartSidecar) -> None:
    running = await start_sidecar()
    args = json.dumps({"to": "test@test.com", "note": ["call +2222222222"], "count": 3})
    body = {"inputs": [{"scrubPii": True, "messages": [{"ofAssistant": {
        "toolCalls": [{"id": "c1", "function": {"name": "send_mail", "arguments": args}}]}}]}]}
    status, reply = await running.post(A2.format(name="echo"), body)
    assert status == 200
    (call,) = reply["outputs"][0]["choices"][0]["message"]["toolCalls"]
    assert json.loads(call["function"]["arguments"]) == {
        "to": "<EMAIL_ADDRESS>", "note": ["call <PHONE_NUMBER>"], "count": 3}


async def test_arguments_that_are_not_json_are_scrubbed_as_text(start_sidecar: StartSidecar) -> None:
    # daprd sends them as they are; with scrubPii nothing may reach the provider unscrubbed (#14)
    running = await start_sidecar()
    body = {"inputs": [{"scrubPii": True, "messages": [{"ofAssistant": {
        "toolCalls": [{"id": "c1", "function": {"name": "f", "arguments": "mail test@test.com"}}]}}]}]}
    _, reply = await running.post(A2.format(name="echo"), body)
    assert reply["outputs"][0]["choices"][0]["message"]["toolCalls"][0]["function"]["arguments"] == (
        "mail <EMAIL_ADDRESS>")


async def test_arguments_are_left_exactly_as_sent_when_nothing_in_them_is_pii(start_sidecar: StartSidecar) -> None:
    running = await start_sidecar()
    args = '{"a":  1, "b": [true, null, 2.50]}'
    body = {"inputs": [{"scrubPii": True, "messages": [{"ofAssistant": {
        "toolCalls": [{"id": "c1", "function": {"name": "f", "arguments": args}}]}}]}]}
    _, reply = await running.post(A2.format(name="echo"), body)
    assert reply["outputs"][0]["choices"][0]["message"]["toolCalls"][0]["function"]["arguments"] == args


async def test_tool_call_arguments_in_answers_are_scrubbed_on_output(start_sidecar: StartSidecar) -> None:
    fake = await OpenAIFake(expected_key="sk-scrub").start()
    try:
        fake.reply(Reply(text=None, finish="tool_calls",
                         tool_calls=(("call_1", "lookup", {"ip": "10.8.9.1", "email": "test@test.com"}),)))
        fake.reply(Reply(text=None, finish="tool_calls",
                         tool_calls=(("call_1", "lookup", {"ip": "10.8.9.1", "email": "test@test.com"}),)))
        running = await start_sidecar({"o.yaml": component_yaml("llm", "conversation.openai", {
            "key": "sk-scrub", "endpoint": f"{fake.url}/v1", "model": "gpt-test"})})
        ask = {"inputs": [{"messages": [{"ofUser": {"content": [{"text": "look it up"}]}}]}],
               "tools": [{"function": {"name": "lookup"}}]}
        _, plain = await running.post(A2.format(name="llm"), ask)
        _, scrubbed = await running.post(A2.format(name="llm"), {**ask, "scrubPii": True})
    finally:
        await fake.close()

    def arguments(reply: dict) -> dict:  # type: ignore[type-arg]
        return json.loads(reply["outputs"][0]["choices"][0]["message"]["toolCalls"][0]["function"]["arguments"])

    assert arguments(plain) == {"ip": "10.8.9.1", "email": "test@test.com"}
    assert arguments(scrubbed) == {"ip": "<IP>", "email": "<EMAIL_ADDRESS>"}
