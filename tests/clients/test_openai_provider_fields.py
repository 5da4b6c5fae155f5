"""Provider fields a real client sends through the sidecar, with the official ``openai`` Python package.

Gemini 3's thought signatures: Gemini 3 puts ``extra_content: {"google": {"thought_signature": …}}``
on the first tool call of an answer and answers 400 when a call of the current turn comes back
without it (https://ai.google.dev/gemini-api/docs/thought-signatures). The ``p-googleai`` component's
fake (``gemini`` flavor) checks that as Gemini 3 does, and replays the documented exchanges
(``tests/fakes/recorded/googleai_tools.json``, ``googleai_stream_tools.txt``). The client does what
an application does: it appends the SDK's own message to its history and sends it back, so the
signature has to survive the sidecar both ways, unstreamed and streamed.

OpenAI's ``user``: Anthropic's Messages API takes it as ``metadata.user_id``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.clients.conftest import OpenAISidecar
from tests.fakes import recordings
from tests.fakes.agent_openai import ThreadedFake
from tests.fakes.server import Recorded, Reply

MODEL = "p-googleai/gemini-3-pro-preview"
ASK: Any = [{"role": "user", "content": "Check flight status for AA100 and book a taxi 2 hours before if delayed."}]
TOOLS: Any = [
    {"type": "function", "function": {"name": "check_flight", "description": "Gets the current status of a flight",
                                      "parameters": {"type": "object", "properties": {"flight": {"type": "string"}},
                                                     "required": ["flight"]}}},
    {"type": "function", "function": {"name": "book_taxi", "description": "Book a taxi",
                                      "parameters": {"type": "object", "properties": {"time": {"type": "string"}},
                                                     "required": ["time"]}}},
]
SIGNATURE_A, SIGNATURE_B = "CiUBjz1rX6pHsUo5d3L0mH1B", "CiIBjz1rXwq0Rk8t2VbN7s4H"
STREAMED_SIGNATURE = "CiQB0e2Kb6ZlSWQx1Z5o"
"""The one in googleai_stream_tools.txt, on the first of its two parallel calls."""


@pytest.fixture
def gemini(openai_sidecar: OpenAISidecar) -> Iterator[ThreadedFake]:
    threaded = openai_sidecar.providers["googleai"]
    threaded.fake.clear()
    threaded.take()
    yield threaded
    threaded.fake.clear()


def _signatures(request: Recorded) -> list[str | None]:
    """The signature on each tool call of each assistant message the fake received, in order."""
    return [((call.get("extra_content") or {}).get("google") or {}).get("thought_signature")
            for message in request.body["messages"] if message["role"] == "assistant"
            for call in message.get("tool_calls") or ()]


def _signature(call: Any) -> Any:
    extra = call.model_extra or {}
    return extra.get("extra_content")


def _calls(completion: Any) -> list[Any]:
    """The answer's tool calls (``Any``: the SDK types them as a union with custom tool calls)."""
    return list(completion.choices[0].message.tool_calls or [])


def test_unstreamed_signatures_go_back_to_gemini(client: openai.OpenAI, gemini: ThreadedFake) -> None:
    step1, step2 = recordings.answers("googleai_tools.json")
    gemini.fake.reply(Reply(raw=step1))
    gemini.fake.reply(Reply(raw=step2))
    messages: list[Any] = list(ASK)

    first = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    [call] = _calls(first)
    assert (call.id, call.function.name, call.function.arguments) == (
        "function-call-1", "check_flight", '{"flight":"AA100"}')
    assert _signature(call) == {"google": {"thought_signature": SIGNATURE_A}}
    messages += [first.choices[0].message,
                 {"role": "tool", "tool_call_id": call.id, "content": '{"status":"delayed","departure_time":"12 PM"}'}]

    second = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    [call] = _calls(second)
    assert call.function.name == "book_taxi"
    assert _signature(call) == {"google": {"thought_signature": SIGNATURE_B}}
    messages += [second.choices[0].message,
                 {"role": "tool", "tool_call_id": call.id, "content": '{"booking_status":"success"}'}]

    third = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    assert third.choices[0].message.content  # Gemini accepted the turn: the fake's text answer
    requests = gemini.take()
    assert [_signatures(r) for r in requests] == [[], [SIGNATURE_A], [SIGNATURE_A, SIGNATURE_B]]


def test_a_call_sent_back_without_its_signature_is_geminis_400(client: openai.OpenAI, gemini: ThreadedFake) -> None:
    """What Gemini 3 answers a client (or a sidecar) that drops the signature, and that the next
    request, with it, works."""
    [step1, _] = recordings.answers("googleai_tools.json")
    gemini.fake.reply(Reply(raw=step1))
    first = client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS)
    [call] = _calls(first)
    answered: Any = {"role": "tool", "tool_call_id": call.id, "content": '{"status":"on time"}'}
    stripped: Any = {"role": "assistant", "content": None, "tool_calls": [
        {"id": call.id, "type": "function",
         "function": {"name": call.function.name, "arguments": call.function.arguments}}]}
    with pytest.raises(openai.InternalServerError) as refused:
        client.chat.completions.create(model=MODEL, messages=[*ASK, stripped, answered], tools=TOOLS)
    assert "missing a thought_signature" in refused.value.message
    history: list[Any] = [*ASK, first.choices[0].message, answered]
    again = client.chat.completions.create(model=MODEL, messages=history, tools=TOOLS)
    assert again.choices[0].message.content


def test_streamed_signatures_go_back_to_gemini(client: openai.OpenAI, gemini: ThreadedFake) -> None:
    gemini.fake.stream(frames=recordings.sse_frames("googleai_stream_tools.txt"))
    with client.chat.completions.stream(model=MODEL, messages=ASK, tools=TOOLS) as stream:
        chunks = [event.chunk for event in stream if event.type == "chunk"]
        final = stream.get_final_completion()
    relayed = [call.model_dump(exclude_none=True) for c in chunks if c.choices
               for call in c.choices[0].delta.tool_calls or ()]
    assert [call.get("extra_content") for call in relayed] == [
        {"google": {"thought_signature": STREAMED_SIGNATURE}}, None]  # as Gemini sent them: once, on its call
    calls = _calls(final)
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert [_signature(c) for c in calls] == [{"google": {"thought_signature": STREAMED_SIGNATURE}}, None]

    messages: list[Any] = [*ASK, final.choices[0].message,
                           *({"role": "tool", "tool_call_id": c.id, "content": json.dumps({"ok": True})} for c in calls)]
    again = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in again if c.choices)
    [_, second] = gemini.take()
    assert _signatures(second) == [STREAMED_SIGNATURE, None]


@pytest.mark.parametrize("stream", [False, True], ids=["unstreamed", "streamed"])
def test_user_reaches_anthropic_as_metadata_user_id(client: openai.OpenAI, openai_sidecar: OpenAISidecar,
                                                    stream: bool) -> None:
    anthropic = openai_sidecar.providers["anthropic"]
    anthropic.take()
    answer = client.chat.completions.create(model="p-anthropic", messages=ASK, user="user-7f3a", stream=stream)
    if stream:
        list(answer)
    [sent] = anthropic.take()
    assert sent.body["metadata"] == {"user_id": "user-7f3a"}


def test_a_scrubbed_stream_relays_the_signature_as_it_is(client: openai.OpenAI, gemini: ThreadedFake) -> None:
    """With PII scrubbing on, a stream's tool calls are held and scrubbed at the end: the signature
    comes through untouched (Gemini checks it byte for byte)."""
    gemini.fake.stream(frames=recordings.sse_frames("googleai_stream_tools.txt"))
    with client.chat.completions.stream(model=MODEL, messages=ASK, tools=TOOLS,
                                        extra_headers={"parley-scrub-pii": "true"}) as stream:
        final = stream.get_final_completion()
    assert [_signature(c) for c in _calls(final)] == [{"google": {"thought_signature": STREAMED_SIGNATURE}}, None]
