"""With ``scrubPii``, no PII reaches the provider: a real sidecar, ``conversation.openai`` pointed
at the OpenAI fake, and every byte the fake received checked (issue #14).

Each test sends PII where scrubbing used to miss it: tool-call arguments as JSON numbers, in
JSON keys or not JSON at all, tool-call ids, request ``metadata``, tool definitions, dotted card
numbers, and history remembered from an earlier turn that did not ask for scrubbing.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import Running, StartSidecar, component_yaml
from tests.fakes import OpenAIFake

A1 = "/v1.0-alpha1/conversation/llm/converse"
A2 = "/v1.0-alpha2/conversation/llm/converse"
KEY = "sk-scrub-upstream"

# Each of these is PII the scrubber finds in text; none may reach the fake in any form.
PII = ("test@test.com", "4111111111111111", "4111.1111.1111.1111", "5551234567", "123456789", "10.8.9.1",
       "078-05-1120", "2001:db8::1")


@pytest.fixture
async def fake() -> AsyncIterator[OpenAIFake]:
    server = await OpenAIFake(expected_key=KEY).start()
    yield server
    await server.close()


async def sidecar(start_sidecar: StartSidecar, fake: OpenAIFake, **extra: str) -> Running:
    return await start_sidecar({"o.yaml": component_yaml("llm", "conversation.openai", {
        "key": KEY, "endpoint": f"{fake.url}/v1", "model": "gpt-test", **extra})})


def leaked(fake: OpenAIFake) -> list[str]:
    """The PII found in anything the fake received (raw bytes and the decoded JSON)."""
    assert fake.requests, "the provider was never called"
    seen = " ".join(r.raw.decode() + json.dumps(r.body, ensure_ascii=False) for r in fake.requests)
    return [p for p in PII if p in seen]


def user(text: str) -> dict[str, Any]:
    return {"ofUser": {"content": [{"text": text}]}}


async def test_tool_calls_numbers_keys_text_and_ids_reach_the_provider_scrubbed(
        start_sidecar: StartSidecar, fake: OpenAIFake) -> None:
    running = await sidecar(start_sidecar, fake)
    calls = [
        {"id": "call-test@test.com", "function": {"name": "pay", "arguments": json.dumps(
            {"card": 4111111111111111, "phone": 5551234567, "ssn": 123456789, "test@test.com": "to",
             "nested": [{"10.8.9.1": 4111111111111111.0}], "count": 3})}},
        {"id": "c2", "function": {"name": "mail", "arguments": "send to test@test.com from 10.8.9.1"}},
    ]
    body = {"inputs": [{"scrubPii": True, "messages": [
        user("card 4111.1111.1111.1111, ssn 078-05-1120"),
        {"ofAssistant": {"toolCalls": calls}},
        {"ofTool": {"toolId": "call-test@test.com", "name": "pay", "content": [{"text": "paid from 2001:db8::1"}]}},
    ]}]}
    status, reply = await running.post(A2, body)
    assert status == 200, reply
    assert leaked(fake) == []
    sent = fake.last.body["messages"]
    (sent_call, _) = sent[1]["tool_calls"]
    assert json.loads(sent_call["function"]["arguments"]) == {
        "card": "<CREDIT_CARD>", "phone": "<PHONE_NUMBER>", "ssn": "<PHONE_NUMBER>", "<EMAIL_ADDRESS>": "to",
        "nested": [{"<IP>": "<CREDIT_CARD>.0"}], "count": 3}
    # the tool result still answers the (scrubbed) call it belongs to
    assert sent[2]["tool_call_id"] == sent_call["id"] == "<EMAIL_ADDRESS>"


async def test_a_repeated_json_key_does_not_smuggle_its_first_value_through(
        start_sidecar: StartSidecar, fake: OpenAIFake) -> None:
    # json.loads keeps the last value of a repeated key; the first must not reach the provider
    # just because the parsed arguments held no PII
    running = await sidecar(start_sidecar, fake)
    arguments = '{"to": "test@test.com", "to": "nobody"}'
    body = {"inputs": [{"scrubPii": True, "messages": [
        {"ofAssistant": {"toolCalls": [{"id": "c1", "function": {"name": "mail", "arguments": arguments}}]}}]}]}
    status, reply = await running.post(A2, body)
    assert status == 200, reply
    assert leaked(fake) == []
    assert json.loads(fake.last.body["messages"][0]["tool_calls"][0]["function"]["arguments"]) == {"to": "nobody"}


async def test_metadata_and_tool_definitions_reach_the_provider_scrubbed(
        start_sidecar: StartSidecar, fake: OpenAIFake) -> None:
    running = await sidecar(start_sidecar, fake)
    body = {"inputs": [{"messages": [user("hello")]}], "scrubPii": True,
            "metadata": {"customer": "test@test.com", "4111111111111111": "card"},
            "tools": [{"function": {"name": "lookup", "description": "for test@test.com",
                                    "parameters": {"type": "object", "properties": {
                                        "ip": {"type": "string", "enum": ["10.8.9.1"], "maxLength": 40},
                                        "078-05-1120": {"type": "string"}}}}}]}
    status, reply = await running.post(A2, body)
    assert status == 200, reply
    assert leaked(fake) == []
    sent = fake.last.body
    assert sent["metadata"] == {"customer": "<EMAIL_ADDRESS>", "<CREDIT_CARD>": "card"}
    # a schema keeps its shape and its numbers (constraints); its keys and strings are scrubbed
    assert sent["tools"][0]["function"]["parameters"]["properties"] == {
        "ip": {"type": "string", "enum": ["<IP>"], "maxLength": 40}, "<US_SSN>": {"type": "string"}}


async def test_metadata_is_forwarded_as_is_when_no_scrubbing_is_asked(
        start_sidecar: StartSidecar, fake: OpenAIFake) -> None:
    running = await sidecar(start_sidecar, fake)
    status, _ = await running.post(A2, {"inputs": [{"messages": [user("hello")]}],
                                        "metadata": {"customer": "test@test.com"}})
    assert status == 200
    assert fake.last.body["metadata"] == {"customer": "test@test.com"}


@pytest.mark.parametrize("path", [A1, A2])
async def test_history_from_an_unscrubbed_turn_reaches_the_provider_scrubbed(
        start_sidecar: StartSidecar, fake: OpenAIFake, path: str) -> None:
    running = await sidecar(start_sidecar, fake, memory="true")

    def turn(text: str, scrub: bool) -> dict[str, Any]:
        if path == A1:
            return {"contextID": "room", "inputs": [{"content": text, "scrubPII": scrub}]}
        return {"contextId": "room", "inputs": [{"scrubPii": scrub, "messages": [user(text)]}]}

    status, _ = await running.post(path, turn("I am test@test.com, card 4111111111111111", scrub=False))
    assert status == 200
    assert "test@test.com" in fake.last.raw.decode()  # not asked: sent as it is, and remembered
    fake.requests.clear()
    status, _ = await running.post(path, turn("what is my card number?", scrub=True))
    assert status == 200
    assert leaked(fake) == []
    history = json.dumps(fake.last.body["messages"])
    assert "<EMAIL_ADDRESS>" in history and "<CREDIT_CARD>" in history


async def test_history_is_scrubbed_when_only_the_answers_are_asked_to_be(
        start_sidecar: StartSidecar, fake: OpenAIFake) -> None:
    running = await sidecar(start_sidecar, fake, memory="true")
    await running.post(A2, {"contextId": "r", "inputs": [{"messages": [user("mail test@test.com")]}]})
    fake.requests.clear()
    status, _ = await running.post(A2, {"contextId": "r", "scrubPii": True, "inputs": [{"messages": [user("hi")]}]})
    assert status == 200
    assert leaked(fake) == []
