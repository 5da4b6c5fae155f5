"""Google (Gemini), Ollama and Hugging Face stream the exchanges recorded from their documentation and
servers (``tests/fakes/recorded/{googleai,ollama,huggingface}_stream*.txt``), replayed byte for byte
by the OpenAI fake: each component rebuilds the answer the recording's header says, and relays its
pieces as the server sent them, mending the two quirks the recordings show (Gemini's ``stop`` after a
streamed tool call, TGI's tool-call id repeated on every fragment)."""

from __future__ import annotations

import pytest

from parley_sidecar import errors
from parley_sidecar.components import base
from tests.fakes import OpenAIFake, recordings
from tests.sidecar.components.conftest import PROVIDERS, Build, Provider
from tests.sidecar.components.streams import assembled, collect, stream

BY_ID = {p.id: p for p in PROVIDERS}

WEATHER = '{ "location": "San Francisco, CA", "format": "celsius"}'
CASES = [
    ("googleai", "googleai_stream.txt", "Hello! How can I help you today?", (), "stop", base.Usage(9, 8, 17)),
    ("googleai", "googleai_stream_tools.txt", "", (
        base.ToolCall("function-call-1", "get_weather", '{"location":"Paris, France"}',
                      {"google": {"thought_signature": "CiQB0e2Kb6ZlSWQx1Z5o"}}),
        base.ToolCall("function-call-2", "get_time", '{"zone":"Europe/Paris"}')), "tool_calls", base.Usage(16, 52, 68)),
    ("ollama", "ollama_stream.txt", "The sky is blue.", (), "stop", base.Usage(6, 26, 32)),
    ("ollama", "ollama_stream_tools.txt", "", (
        base.ToolCall("call_x9k2mq0d", "get_current_weather", '{"city":"Toronto"}'),), "tool_calls",
     base.Usage(18, 160, 178)),
    ("huggingface", "huggingface_stream.txt", "Deep learning is a subset of machine learning.", (), "stop",
     base.Usage(10, 15, 25)),
    # TGI sends no finish reason after a tool call: "unknown", as converse says for a missing one
    ("huggingface", "huggingface_stream_tools.txt", "", (base.ToolCall("0", "get_current_weather", WEATHER),),
     "unknown", base.Usage(29, 124, 153)),
]


async def _component(build: Build, fake: OpenAIFake, provider: Provider) -> base.Conversation:
    return (await build(provider.type, provider.metadata(fake.port))).instance


@pytest.mark.parametrize(("provider", "name", "text", "calls", "finish", "usage"), CASES,
                         ids=[case[1].removesuffix(".txt") for case in CASES])
async def test_the_recorded_exchange_assembles_to_its_answer(
        build: Build, openai_fake: OpenAIFake, provider: str, name: str, text: str,
        calls: tuple[base.ToolCall, ...], finish: str, usage: base.Usage) -> None:
    component = await _component(build, openai_fake, BY_ID[provider])
    openai_fake.stream(frames=recordings.sse_frames(name))
    answer = assembled(await collect(stream(component)))
    choice = answer.outputs[0].choices[0]
    assert (choice.content, choice.tool_calls, choice.finish_reason, answer.usage) == (text, calls, finish, usage)
    assert openai_fake.last.body["stream"] is True
    assert openai_fake.last.body["stream_options"] == {"include_usage": True}


async def test_gemini_text_is_relayed_a_piece_per_chunk(build: Build, openai_fake: OpenAIFake) -> None:
    component = await _component(build, openai_fake, BY_ID["googleai"])
    openai_fake.stream(frames=recordings.sse_frames("googleai_stream.txt"))
    pieces = await collect(stream(component))
    assert [p.content for p in pieces if p.content] == ["Hello!", " How can I help", " you today?"]


async def test_gemini_calls_without_index_are_numbered_by_id(build: Build, openai_fake: OpenAIFake) -> None:
    component = await _component(build, openai_fake, BY_ID["googleai"])
    openai_fake.stream(frames=recordings.sse_frames("googleai_stream_tools.txt"))
    calls = [c for p in await collect(stream(component)) for c in p.tool_calls]
    assert [(c.index, c.id, c.name) for c in calls] == [(0, "function-call-1", "get_weather"),
                                                        (1, "function-call-2", "get_time")]


async def test_tgi_tool_call_id_is_relayed_once(build: Build, openai_fake: OpenAIFake) -> None:
    # OpenAI's clients concatenate every string of a call's fragments ("0" sent 17 times would be
    # the id "000…"); the first piece names the call, the rest carry only arguments.
    component = await _component(build, openai_fake, BY_ID["huggingface"])
    openai_fake.stream(frames=recordings.sse_frames("huggingface_stream_tools.txt"))
    calls = [c for p in await collect(stream(component)) for c in p.tool_calls]
    assert len(calls) == 17
    assert (calls[0].id, calls[0].name) == ("0", "get_current_weather")
    assert all((c.index, c.id, c.name) == (0, "", "") for c in calls[1:])


async def test_tgi_error_event_mid_stream(build: Build, openai_fake: OpenAIFake) -> None:
    component = await _component(build, openai_fake, BY_ID["huggingface"])
    openai_fake.stream(frames=recordings.sse_frames("huggingface_stream_error.txt"))
    pieces = stream(component)
    assert (await anext(pieces)).content == "Deep"
    assert (await anext(pieces)).content == " learning"
    with pytest.raises(errors.ProviderError, match="error mid-stream: Request failed during generation"):
        await anext(pieces)
