"""Scrubbing fails closed: what cannot be scrubbed is refused, never sent (docs/pii.md).

Through a real sidecar and the OpenAI fake: a request whose scrubbing fails gets
``ERR_CONVERSATION_INVOKE`` and the provider receives nothing. And a large text is scrubbed off
the event loop: the sidecar keeps answering health checks meanwhile.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest

from parley_sidecar import errors
from parley_sidecar.components import base
from parley_sidecar.conversation import pii, scrubbing
from tests.conftest import StartSidecar, component_yaml
from tests.fakes import OpenAIFake

A2 = "/v1.0-alpha2/conversation/llm/converse"
KEY = "sk-fail-closed"


@pytest.fixture
async def fake() -> AsyncIterator[OpenAIFake]:
    server = await OpenAIFake(expected_key=KEY).start()
    yield server
    await server.close()


def llm(fake: OpenAIFake) -> dict[str, str]:
    return {"o.yaml": component_yaml("llm", "conversation.openai", {
        "key": KEY, "endpoint": f"{fake.url}/v1", "model": "gpt-test"})}


def ask(text: str, arguments: str = "{}") -> dict[str, object]:
    return {"inputs": [{"scrubPii": True, "messages": [
        {"ofUser": {"content": [{"text": text}]}},
        {"ofAssistant": {"toolCalls": [{"id": "c1", "function": {"name": "f", "arguments": arguments}}]}}]}]}


async def test_a_failing_scrubber_refuses_the_request_and_sends_nothing(
        start_sidecar: StartSidecar, fake: OpenAIFake, monkeypatch: pytest.MonkeyPatch) -> None:
    running = await start_sidecar(llm(fake))

    def broken(self: pii.Scrubber, text: str) -> object:
        raise RuntimeError("scrubber bug")

    monkeypatch.setattr(pii.Scrubber, "scrub", broken)
    status, reply = await running.post(A2, ask("mail test@test.com"))
    assert status == 500 and reply["errorCode"] == "ERR_CONVERSATION_INVOKE", reply
    assert "PII scrubbing failed" in reply["message"] and "test@test.com" not in reply["message"]
    assert fake.requests == []


async def test_arguments_too_deeply_nested_to_walk_are_refused_not_sent(
        start_sidecar: StartSidecar, fake: OpenAIFake) -> None:
    running = await start_sidecar(llm(fake))
    depth = 100_000  # deeper than the JSON parser recurses: the arguments could not be scrubbed
    status, reply = await running.post(A2, ask("hi", "[" * depth + '"test@test.com"' + "]" * depth))
    assert status == 500 and reply["errorCode"] == "ERR_CONVERSATION_INVOKE", reply
    assert fake.requests == []


def test_a_request_field_nobody_decided_about_is_refused() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Wider(base.ConverseRequest):
        user_profile: str = ""

    scrub = scrubbing.Scrub("llm", pii.Scrubber())
    with pytest.raises(errors.InvokeError):
        scrub.request(Wider(messages=(), user_profile="test@test.com"))
    # the request type the sidecar sends today is covered
    assert scrub.request(base.ConverseRequest(messages=(), metadata={"a": "test@test.com"})).metadata == {
        "a": "<EMAIL_ADDRESS>"}


def test_a_message_part_of_an_unknown_kind_is_refused() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class ImagePart:
        caption: str

    scrub = scrubbing.Scrub("llm", pii.Scrubber())
    message = base.Message(base.Role.USER, (ImagePart("test@test.com"),))  # type: ignore[arg-type]
    with pytest.raises(errors.InvokeError):
        scrub.message(message)


async def test_health_keeps_answering_while_a_large_text_is_scrubbed(start_sidecar: StartSidecar) -> None:
    running = await start_sidecar()
    text = "12345 6789 " * 24_000  # 264 KB that keeps the scrubber busy for a second or more
    assert len(text) > scrubbing.OFFLOAD_CHARS
    converse = asyncio.ensure_future(running.post("/v1.0-alpha1/conversation/echo/converse",
                                                  {"inputs": [{"content": text, "scrubPII": True}]}))
    answered = 0
    while not converse.done():
        async with running.session.get(running.http + "/v1.0/healthz") as resp:
            answered += resp.status == 204
    status, reply = await converse
    assert status == 200
    assert not any(c.isdigit() for c in reply["outputs"][0]["result"])
    # scrubbed on the event loop, no health check could be answered until the scrub was done
    assert answered >= 10
