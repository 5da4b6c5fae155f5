"""The official ``openai`` Python package and LangChain's ``ChatOpenAI`` stream, through the sidecar's
``/v1/chat/completions``, the exchanges recorded from Google (Gemini), Ollama and Hugging Face
(``tests/fakes/recorded/``), each replayed byte for byte by the fake behind that provider type's
component (``p-googleai``, ``p-ollama``, ``p-huggingface``): the SDK's chunks, its stream helper's
final completion and LangChain's assembled tool calls are the answers the recordings hold; a stream
the upstream fails midway raises the SDK's ``APIError`` and the next request works."""

from __future__ import annotations

import json

import openai
import pytest
from langchain_core.messages import AIMessageChunk
from langchain_openai import ChatOpenAI

from tests.clients.conftest import OPENAI_TOKEN, OpenAISidecar
from tests.fakes import recordings
from tests.fakes.server import FakeServer

HELLO = [{"role": "user", "content": "hello"}]
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}


def _replaying(sidecar: OpenAISidecar, provider: str, name: str) -> FakeServer:
    threaded = sidecar.providers[provider]
    threaded.fake.clear()
    threaded.take()
    threaded.fake.stream(frames=recordings.sse_frames(name))
    return threaded.fake


@pytest.mark.parametrize(("provider", "name", "text", "usage"), [
    ("googleai", "googleai_stream.txt", "Hello! How can I help you today?", (8, 9)),
    ("ollama", "ollama_stream.txt", "The sky is blue.", (26, 6)),
    ("huggingface", "huggingface_stream.txt", "Deep learning is a subset of machine learning.", (15, 10)),
])
def test_recorded_text_streams_through_the_sdk(client: openai.OpenAI, openai_sidecar: OpenAISidecar, provider: str,
                                               name: str, text: str, usage: tuple[int, int]) -> None:
    _replaying(openai_sidecar, provider, name)
    chunks = list(client.chat.completions.create(model=f"p-{provider}", messages=HELLO, stream=True,  # type: ignore[arg-type]
                                                 stream_options={"include_usage": True}))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(pieces) == text  # type: ignore[arg-type]
    assert len(pieces) > 1, "relayed as the upstream streamed it"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == usage


@pytest.mark.parametrize(("provider", "name", "calls"), [
    # Gemini ends its streamed tool call with "stop": the client still gets tool_calls
    ("googleai", "googleai_stream_tools.txt", [("function-call-1", "get_weather", {"location": "Paris, France"}),
                                               ("function-call-2", "get_time", {"zone": "Europe/Paris"})]),
    ("ollama", "ollama_stream_tools.txt", [("call_x9k2mq0d", "get_current_weather", {"city": "Toronto"})]),
    # TGI repeats the id on each of the 17 fragments and sends no finish reason
    ("huggingface", "huggingface_stream_tools.txt",
     [("0", "get_current_weather", {"location": "San Francisco, CA", "format": "celsius"})]),
])
def test_recorded_tool_calls_stream_through_the_sdk(client: openai.OpenAI, openai_sidecar: OpenAISidecar,
                                                    provider: str, name: str,
                                                    calls: list[tuple[str, str, dict[str, str]]]) -> None:
    _replaying(openai_sidecar, provider, name)
    with client.chat.completions.stream(model=f"p-{provider}", messages=HELLO, tools=[WEATHER]) as stream:  # type: ignore[arg-type,list-item]
        final = stream.get_final_completion()
    got = final.choices[0].message.tool_calls or []
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in got] == calls
    assert final.choices[0].finish_reason == "tool_calls"


def test_a_recorded_error_mid_stream_raises_then_the_next_request_works(client: openai.OpenAI,
                                                                        openai_sidecar: OpenAISidecar) -> None:
    _replaying(openai_sidecar, "huggingface", "huggingface_stream_error.txt")
    stream = client.chat.completions.create(model="p-huggingface", messages=HELLO, stream=True)  # type: ignore[arg-type]
    got: list[str] = []
    with pytest.raises(openai.APIError) as failed:
        for chunk in stream:
            got.append(chunk.choices[0].delta.content or "")
    assert "".join(got) == "Deep learning"
    assert "Request failed during generation" in failed.value.message
    _replaying(openai_sidecar, "huggingface", "huggingface_stream.txt")
    again = client.chat.completions.create(model="p-huggingface", messages=HELLO, stream=True)  # type: ignore[arg-type]
    assert "".join(c.choices[0].delta.content or "" for c in again if c.choices) == \
        "Deep learning is a subset of machine learning."


@pytest.mark.parametrize(("provider", "name", "calls"), [
    ("googleai", "googleai_stream_tools.txt", [("get_weather", {"location": "Paris, France"}, "function-call-1"),
                                               ("get_time", {"zone": "Europe/Paris"}, "function-call-2")]),
    ("huggingface", "huggingface_stream_tools.txt",
     [("get_current_weather", {"location": "San Francisco, CA", "format": "celsius"}, "0")]),
])
def test_langchain_assembles_the_recorded_tool_calls(openai_sidecar: OpenAISidecar, provider: str, name: str,
                                                     calls: list[tuple[str, dict[str, str], str]]) -> None:
    _replaying(openai_sidecar, provider, name)
    model = ChatOpenAI(model=f"p-{provider}", base_url=openai_sidecar.base_url, api_key=OPENAI_TOKEN,  # type: ignore[arg-type]
                       max_retries=0)
    chunks = list(model.bind_tools([WEATHER]).stream("weather?"))
    total = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    assert isinstance(total, AIMessageChunk)
    assert [(c["name"], c["args"], c["id"]) for c in total.tool_calls] == calls
    assert total.response_metadata.get("finish_reason") == "tool_calls"
