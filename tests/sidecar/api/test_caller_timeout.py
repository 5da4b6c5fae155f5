"""A caller's own budget for one conversation: the ``parley-timeout`` header (``api/caller_timeout.py``),
read on every HTTP route that converses (a gRPC caller's deadline does the same: see
test_caller_gone.py). It can only lower the component's ``callTimeout``. On alpha2's ``/converse``,
OpenAI's ``/v1/chat/completions`` (plain and streamed) and alpha2's SSE stream, the same values are
accepted and refused (a 400 in each surface's own shape); a call past its budget fails and its
upstream request is dropped; a stream is bounded as a whole: past its budget it ends with an error
event and a clean end, and its upstream request is closed. The next request works."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import Running, StartSidecar, component_yaml
from tests.fakes import OpenAIFake, Reply

KEY = "sk-caller-timeout-key-42"
CONVERSE = "/v1.0-alpha2/conversation/slow/converse"
BODY = {"inputs": [{"messages": [{"ofUser": {"content": [{"text": "anyone?"}]}}]}]}
CHAT = "/v1/chat/completions"
HELLO = {"model": "slow", "messages": [{"role": "user", "content": "anyone?"}]}
DAPR_SSE = "/v1.0-alpha2/conversation/slow/converse/stream"
EXPIRED = "failed conversing with component slow: no answer within the caller's timeout of 0.5s (parley-timeout header)"
LONG = Reply(text="one two three four five six seven eight")


@pytest.fixture
async def fake() -> AsyncIterator[OpenAIFake]:
    started = await OpenAIFake().start()
    yield started
    started.release()
    await started.close()


@pytest.fixture
async def slow(start_sidecar: StartSidecar, fake: OpenAIFake) -> Running:
    """``slow``: conversation.openai on the fake, with the default callTimeout (120s)."""
    return await start_sidecar({"c.yaml": component_yaml("slow", "conversation.openai", {
        "key": KEY, "endpoint": f"{fake.url}/v1", "model": "m"})})


async def test_the_header_ends_the_call_and_its_upstream_request(slow: Running, fake: OpenAIFake) -> None:
    fake.hold(times=4)
    status, reply = await asyncio.wait_for(slow.post(CONVERSE, BODY, headers={"parley-timeout": "300ms"}), 30)
    assert (status, reply) == (500, {
        "errorCode": "ERR_CONVERSATION_INVOKE",
        "message": "failed conversing with component slow: no answer within the caller's timeout of 0.3s "
                   "(parley-timeout header)",
    })
    await fake.wait_until(lambda: fake.dropped == 1)  # the held upstream request was given up, not left running


async def test_seconds_are_accepted_and_a_shorter_call_timeout_still_wins(start_sidecar: StartSidecar,
                                                                          fake: OpenAIFake) -> None:
    fake.hold(times=4)
    running = await start_sidecar({"c.yaml": component_yaml("slow", "conversation.openai", {
        "key": KEY, "endpoint": f"{fake.url}/v1", "model": "m", "callTimeout": "300ms"})})
    status, reply = await asyncio.wait_for(running.post(CONVERSE, BODY, headers={"parley-timeout": "600"}), 30)
    assert status == 500
    assert reply["message"].endswith("no answer within the call deadline of 0.3s (callTimeout)")


@pytest.mark.parametrize("value", ["soon", "0", "-5s", ""])
async def test_a_bad_header_is_the_callers_error(start_sidecar: StartSidecar, value: str) -> None:
    running = await start_sidecar({"c.yaml": component_yaml("slow")})
    status, reply = await running.post(CONVERSE, BODY, headers={"parley-timeout": value})
    assert (status, reply) == (400, {
        "errorCode": "ERR_CONVERSATION_INVALID_PARMS",
        "message": "failed conversing with component slow: invalid params: the parley-timeout header must be "
                   "a positive duration such as 30s",
    })


async def test_a_call_within_the_budget_is_answered(start_sidecar: StartSidecar) -> None:
    running = await start_sidecar({"c.yaml": component_yaml("slow")})
    status, reply = await running.post(CONVERSE, BODY, headers={"parley-timeout": "1m30s"})
    assert status == 200
    assert reply["outputs"][0]["choices"][0]["message"]["content"] == "anyone?"


async def _post(at: Running, path: str, body: Any, timeout: str | None) -> tuple[int, str, str]:
    """Status, content type and body text; bounded generously (the budget under test is far shorter)."""
    headers = {"parley-timeout": timeout} if timeout is not None else {}
    async with asyncio.timeout(30), at.session.post(f"{at.http}{path}", json=body, headers=headers) as resp:
        return resp.status, resp.content_type, await resp.text()


def _events(text: str) -> list[tuple[str, str]]:
    """(event name, data) of each SSE event."""
    events = []
    for block in text.split("\n\n"):
        if block:
            fields = dict(line.split(": ", 1) for line in block.split("\n"))
            events.append((fields.get("event", ""), fields["data"]))
    return events


# -- OpenAI, not streamed --------------------------------------------------------------------------

async def test_openai_call_past_its_budget_is_a_server_error_and_its_upstream_is_dropped(
        slow: Running, fake: OpenAIFake) -> None:
    fake.hold(times=4)
    status, _, text = await _post(slow, CHAT, HELLO, "500ms")
    assert (status, json.loads(text)) == (500, {"error": {
        "message": EXPIRED, "type": "server_error", "param": None, "code": None}})
    await fake.wait_until(lambda: fake.dropped == 1)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("value", ["soon", "0", "-5s", ""])
async def test_openai_bad_header_is_openais_400(slow: Running, value: str, stream: bool) -> None:
    status, _, text = await _post(slow, CHAT, {**HELLO, "stream": stream}, value)
    assert (status, json.loads(text)) == (400, {"error": {
        "message": "The parley-timeout header must be a positive duration such as 30s.",
        "type": "invalid_request_error", "param": "parley-timeout", "code": "invalid_value"}})


async def test_openai_call_within_its_budget_is_answered(slow: Running, fake: OpenAIFake) -> None:
    fake.reply(Reply(text="here"))
    status, _, text = await _post(slow, CHAT, HELLO, "1m30s")
    assert status == 200 and json.loads(text)["choices"][0]["message"]["content"] == "here"


# -- OpenAI, streamed ------------------------------------------------------------------------------

async def test_openai_stream_past_its_budget_ends_with_an_error_event(slow: Running, fake: OpenAIFake) -> None:
    fake.stream(LONG, stall_after=3)  # the role chunk and two words, then nothing
    status, content_type, text = await _post(slow, CHAT, {**HELLO, "stream": True}, "500ms")
    assert (status, content_type) == (200, "text/event-stream")
    *chunks, (name, data) = _events(text)
    assert "".join(json.loads(d)["choices"][0]["delta"].get("content") or "" for _, d in chunks) == "one two"
    assert (name, json.loads(data)) == ("error", {"error": {
        "message": EXPIRED, "type": "server_error", "param": None, "code": None}})
    assert "[DONE]" not in text
    await fake.wait_until(lambda: fake.closed_by_client == 1)  # the upstream stream was closed
    fake.stream(LONG)
    status, _, text = await _post(slow, CHAT, {**HELLO, "stream": True}, "30s")
    assert status == 200 and _events(text)[-1] == ("", "[DONE]")


async def test_openai_stream_with_nothing_before_its_budget_is_a_plain_error(slow: Running,
                                                                              fake: OpenAIFake) -> None:
    fake.stream(LONG, stall_after=0)
    status, content_type, text = await _post(slow, CHAT, {**HELLO, "stream": True}, "500ms")
    assert (status, content_type) == (500, "application/json")
    assert json.loads(text)["error"]["message"] == EXPIRED
    await fake.wait_until(lambda: fake.closed_by_client == 1)


# -- alpha2's SSE stream ---------------------------------------------------------------------------

async def test_dapr_stream_past_its_budget_ends_with_an_error_event(slow: Running, fake: OpenAIFake) -> None:
    fake.stream(LONG, stall_after=3)
    status, content_type, text = await _post(slow, DAPR_SSE, BODY, "500ms")
    assert (status, content_type) == (200, "text/event-stream")
    *chunks, (name, data) = _events(text)
    assert chunks and all(json.loads(d).keys() == {"chunk"} for _, d in chunks)
    assert (name, json.loads(data)) == ("error", {"errorCode": "ERR_CONVERSATION_INVOKE", "message": EXPIRED})
    await fake.wait_until(lambda: fake.closed_by_client == 1)
    fake.stream(LONG)
    status, _, text = await _post(slow, DAPR_SSE, BODY, "30s")
    assert status == 200 and json.loads(_events(text)[-1][1]).keys() == {"complete"}


async def test_dapr_stream_bad_header_is_daprds_400(slow: Running) -> None:
    status, _, text = await _post(slow, DAPR_SSE, BODY, "soon")
    assert (status, json.loads(text)) == (400, {
        "errorCode": "ERR_CONVERSATION_INVALID_PARMS",
        "message": "failed conversing with component slow: invalid params: the parley-timeout header must be "
                   "a positive duration such as 30s"})
