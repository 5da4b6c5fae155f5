"""The official ``openai`` Python package (sync and async) against a parley process on loopback.

``base_url`` is the sidecar's ``/v1``, the API key its ``DAPR_API_TOKEN``. With ``echo`` (answers
with its input) and with ``llm``, a ``conversation.openai`` component pointed at the OpenAI fake,
which streams as OpenAI's reference shows: plain answers, streams with usage, tools (streamed
argument fragments included), structured output parsed into a Pydantic model, OpenAI-shaped
errors raised as the SDK's own exceptions, and a stream that fails or is abandoned midway. Then every
other provider type (Azure, Google, Hugging Face, Mistral, Ollama, DeepSeek, Anthropic, Bedrock), each
on a fake that streams its own wire format: text and tool calls streamed through the SDK.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator

import openai
import pydantic
import pytest

from tests.clients.conftest import OPENAI_TOKEN, PROVIDER_TYPES, OpenAISidecar
from tests.fakes.server import FakeServer, Reply

HELLO = [{"role": "user", "content": "hello from the openai sdk"}]
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def eventually(condition: Callable[[], bool], within: float = 10.0) -> bool:
    """A generous bound on something that happens in another process, not a timing assertion."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# -- echo ------------------------------------------------------------------------------------------

def test_create_with_echo(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="echo", messages=HELLO)  # type: ignore[arg-type]
    assert completion.choices[0].message.content == "hello from the openai sdk"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens == 10


def test_stream_with_echo_and_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="echo", messages=HELLO, stream=True,  # type: ignore[arg-type]
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "hello from the openai sdk"
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) == 5  # a word at a time
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5


def test_tools_with_echo(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="echo", messages=HELLO, tools=[WEATHER],  # type: ignore[arg-type,list-item]
                                                tool_choice="auto")
    [call] = completion.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather" and call.function.arguments == "city"  # type: ignore[union-attr]
    assert completion.choices[0].finish_reason == "tool_calls"


def test_stream_helper_assembles_tool_calls(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(model="echo", messages=HELLO, tools=[WEATHER]) as stream:  # type: ignore[arg-type,list-item]
        for _ in stream:
            pass
        final = stream.get_final_completion()
    [call] = final.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"


class Person(pydantic.BaseModel):
    name: str
    age: int


def test_structured_output_parsed_into_a_pydantic_model(client: openai.OpenAI) -> None:
    # echo answers with its input: a JSON text that matches the schema comes back parsed
    completion = client.chat.completions.parse(
        model="echo", messages=[{"role": "user", "content": '{"name": "Ann", "age": 41}'}], response_format=Person)
    assert completion.choices[0].message.parsed == Person(name="Ann", age=41)


def test_model_override_and_model_listing(client: openai.OpenAI) -> None:
    assert {m.id for m in client.models.list()} == {"echo", "llm", *(f"p-{p.name}" for p in PROVIDER_TYPES)}
    assert client.models.retrieve("llm").owned_by == "conversation.openai"
    completion = client.chat.completions.create(model="echo/any-model", messages=HELLO)  # type: ignore[arg-type]
    assert completion.model == "echo/any-model"


def test_errors_are_the_sdks_own_exceptions(client: openai.OpenAI, openai_sidecar: OpenAISidecar) -> None:
    with pytest.raises(openai.NotFoundError) as not_found:
        client.chat.completions.create(model="no-such-component", messages=HELLO)  # type: ignore[arg-type]
    assert not_found.value.code == "model_not_found" and "no-such-component" in not_found.value.message
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="echo", messages=HELLO, n=2)  # type: ignore[arg-type]
    assert bad.value.param == "n"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="echo", messages=[])
    assert bad.value.param == "messages"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="echo", messages=[  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}])
    assert bad.value.param == "messages[0].role"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="echo", messages=HELLO, temperature="warm")  # type: ignore[arg-type]
    assert bad.value.param == "temperature"
    with (openai.OpenAI(base_url=openai_sidecar.base_url, api_key="wrong", max_retries=0) as wrong,
          pytest.raises(openai.AuthenticationError) as refused):
        wrong.chat.completions.create(model="echo", messages=HELLO)  # type: ignore[arg-type]
    assert refused.value.code == "invalid_api_key"
    # and the next request works
    assert client.chat.completions.create(model="echo", messages=HELLO).choices  # type: ignore[arg-type]


async def test_async_client_create_and_stream(openai_sidecar: OpenAISidecar) -> None:
    async with openai.AsyncOpenAI(base_url=openai_sidecar.base_url, api_key=OPENAI_TOKEN, max_retries=0) as client:
        async def one(i: int) -> str:
            stream = await client.chat.completions.create(
                model="echo", messages=[{"role": "user", "content": f"stream number {i}"}], stream=True)
            return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

        completion = await client.chat.completions.create(model="echo", messages=HELLO)  # type: ignore[arg-type]
        assert completion.choices[0].message.content == "hello from the openai sdk"
        assert await asyncio.gather(*(one(i) for i in range(10))) == [f"stream number {i}" for i in range(10)]


# -- conversation.openai on the fake ---------------------------------------------------------------

def test_llm_answer_and_the_request_the_fake_saw(client: openai.OpenAI, fake: OpenAISidecar) -> None:
    fake.fake.fake.reply(Reply(text="Paris.", prompt_tokens=12, completion_tokens=2))
    completion = client.chat.completions.create(
        model="llm", messages=[{"role": "system", "content": "be brief"},  # type: ignore[list-item]
                               {"role": "user", "content": "capital of France?"}],
        max_tokens=50, temperature=0.3, top_p=0.5, stop=["\n\n"], seed=7, user="user-1")
    assert completion.choices[0].message.content == "Paris."
    assert completion.usage is not None and completion.usage.prompt_tokens == 12
    [sent] = fake.fake.take()
    assert sent.headers["authorization"] == "Bearer sk-fake-openai-0123456789"  # the component's key, not ours
    assert sent.body["messages"] == [{"role": "system", "content": "be brief"},
                                     {"role": "user", "content": "capital of France?"}]
    assert sent.body["temperature"] == 0.3 and sent.body["model"] == "gpt-4o-mini"
    assert (sent.body["top_p"], sent.body["stop"]) == (0.5, ["\n\n"])
    # an OpenAI-compatible server (not api.openai.com) gets seed, not user (docs/openai.md)
    assert sent.body["seed"] == 7 and "user" not in sent.body


def test_llm_model_override_reaches_the_upstream(client: openai.OpenAI, fake: OpenAISidecar) -> None:
    client.chat.completions.create(model="llm/gpt-4.1-nano", messages=HELLO)  # type: ignore[arg-type]
    [sent] = fake.fake.take()
    assert sent.body["model"] == "gpt-4.1-nano"


def test_llm_stream_relays_the_upstreams_chunks(client: openai.OpenAI, fake: OpenAISidecar) -> None:
    fake.fake.fake.stream(Reply(text="one two three four", prompt_tokens=7, completion_tokens=4))
    stream = client.chat.completions.create(model="llm", messages=HELLO, stream=True,  # type: ignore[arg-type]
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two three four"
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 7
    assert fake.fake.take()[0].body["stream"] is True


def test_llm_streamed_tool_call_arguments_assemble(client: openai.OpenAI, fake: OpenAISidecar) -> None:
    fake.fake.fake.stream(Reply(text=None, tool_calls=(("call_abc", "get_weather", {"city": "Paris, France"}),),
                                finish="tool_calls"))
    with client.chat.completions.stream(model="llm", messages=HELLO, tools=[WEATHER]) as stream:  # type: ignore[arg-type,list-item]
        fragments = [e for e in stream if e.type == "tool_calls.function.arguments.delta"]
        final = stream.get_final_completion()
    assert len(fragments) > 1  # arguments came in pieces, as the upstream sent them
    [call] = final.choices[0].message.tool_calls or []
    assert (call.id, call.function.name, call.function.arguments) == (
        "call_abc", "get_weather", '{"city": "Paris, France"}')
    assert final.choices[0].finish_reason == "tool_calls"


def test_llm_structured_output(client: openai.OpenAI, fake: OpenAISidecar) -> None:
    fake.fake.fake.reply(Reply(structured={"name": "Bo", "age": 7}))
    completion = client.chat.completions.parse(model="llm", messages=HELLO, response_format=Person)  # type: ignore[arg-type]
    assert completion.choices[0].message.parsed == Person(name="Bo", age=7)
    fmt = fake.fake.take()[0].body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "Person"
    assert set(fmt["json_schema"]["schema"]["properties"]) == {"name", "age"}


def test_llm_upstream_error_before_the_stream(client: openai.OpenAI, fake: OpenAISidecar) -> None:
    fake.fake.fake.fail(400, "This model's maximum context length is 128000 tokens.")
    with pytest.raises(openai.InternalServerError) as failed:
        client.chat.completions.create(model="llm", messages=HELLO, stream=True)  # type: ignore[arg-type]
    assert "maximum context length" in failed.value.message


def test_llm_upstream_cut_mid_stream_is_an_error_then_the_next_works(client: openai.OpenAI,
                                                                      fake: OpenAISidecar) -> None:
    fake.fake.fake.stream(Reply(text="one two three four five six"), cut_after=3)
    stream = client.chat.completions.create(model="llm", messages=HELLO, stream=True)  # type: ignore[arg-type]
    got: list[str] = []
    with pytest.raises(openai.APIError) as failed:
        for chunk in stream:
            got.append(chunk.choices[0].delta.content or "")
    assert got  # the pieces before the cut arrived
    assert "llm" in failed.value.message
    assert client.chat.completions.create(model="llm", messages=HELLO).choices[0].message.content  # type: ignore[arg-type]


def test_llm_malformed_event_mid_stream(client: openai.OpenAI, fake: OpenAISidecar) -> None:
    fake.fake.fake.stream(Reply(text="one two three four"), malformed_at=2)
    stream = client.chat.completions.create(model="llm", messages=HELLO, stream=True)  # type: ignore[arg-type]
    with pytest.raises(openai.APIError):
        list(stream)


def test_a_client_that_leaves_mid_stream_closes_the_upstream(client: openai.OpenAI, fake: OpenAISidecar) -> None:
    upstream = fake.fake.fake
    before = upstream.closed_by_client
    upstream.stream(Reply(text="one two three four five six"), stall_after=2)
    stream = client.chat.completions.create(model="llm", messages=HELLO, stream=True)  # type: ignore[arg-type]
    first = next(iter(stream))
    assert first.choices[0].delta.role == "assistant"
    stream.close()  # the client stops reading and hangs up
    assert eventually(lambda: upstream.closed_by_client == before + 1), "the upstream stream was not closed"
    assert client.chat.completions.create(model="echo", messages=HELLO).choices  # type: ignore[arg-type]


# -- every other provider type, each on a fake streaming its own wire format -----------------------

PROVIDERS = [p.name for p in PROVIDER_TYPES]


@pytest.fixture
def provider(request: pytest.FixtureRequest, openai_sidecar: OpenAISidecar) -> Iterator[FakeServer]:
    fake = openai_sidecar.providers[request.param]
    fake.fake.clear()
    fake.take()
    yield fake.fake
    fake.fake.clear()


@pytest.mark.parametrize("provider", PROVIDERS, indirect=True)
def test_every_provider_streams_text_through_the_sdk(client: openai.OpenAI, provider: FakeServer,
                                                     request: pytest.FixtureRequest) -> None:
    name = request.node.callspec.params["provider"]
    provider.stream(Reply(text="streams from every provider", prompt_tokens=6, completion_tokens=4))
    stream = client.chat.completions.create(model=f"p-{name}", messages=HELLO, stream=True,  # type: ignore[arg-type]
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(pieces) == "streams from every provider"  # type: ignore[arg-type]
    assert len(pieces) > 1, "relayed as the upstream streamed it, not in one piece"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]


@pytest.mark.parametrize("provider", PROVIDERS, indirect=True)
def test_every_provider_streams_tool_calls_through_the_sdk(client: openai.OpenAI, provider: FakeServer,
                                                           request: pytest.FixtureRequest) -> None:
    name = request.node.callspec.params["provider"]
    provider.stream(Reply(text=None, tool_calls=(("call_p1", "get_weather", {"city": "Rome, Italy"}),),
                          finish="tool_calls"))
    with client.chat.completions.stream(model=f"p-{name}", messages=HELLO, tools=[WEATHER]) as stream:  # type: ignore[arg-type,list-item]
        final = stream.get_final_completion()
    [call] = final.choices[0].message.tool_calls or []
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Rome, Italy"})
    assert call.id  # the upstream's own id, or one the provider's format implies
    assert final.choices[0].finish_reason == "tool_calls"
