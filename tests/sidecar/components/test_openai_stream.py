"""The OpenAI family streams from its upstream: every OpenAI-compatible provider type against a fake
speaking its server's streaming variation (``OpenAIFake.flavor``), piece by piece, and the pieces
rebuild the answer ``converse`` gives for the same exchange."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator

import pytest

from parley_sidecar import errors
from parley_sidecar.components import base, streaming
from tests.fakes import OpenAIFake, Reply, recordings
from tests.fakes.proxy import Proxy
from tests.sidecar.components.conftest import MODEL_ENV, PROVIDERS, Build, Provider, text_request
from tests.sidecar.components.streams import assembled, collect

OPENAI_FAMILY = [p for p in PROVIDERS if p.wire == "openai"]
FLAVORS = {"azure": "azure", "mistral": "mistral", "googleai": "gemini", "ollama": "ollama", "deepseek": "deepseek"}


@dataclasses.dataclass
class Family:
    provider: Provider
    fake: OpenAIFake
    component: base.Conversation

    def stream(self, request: base.ConverseRequest, timeout: float | None = 5.0) -> AsyncIterator[base.Delta]:
        return streaming.open_stream(self.component, request, timeout=timeout)


@pytest.fixture(params=OPENAI_FAMILY, ids=[p.id for p in OPENAI_FAMILY])
async def family(request: pytest.FixtureRequest, build: Build, monkeypatch: pytest.MonkeyPatch
                 ) -> AsyncIterator[Family]:
    provider: Provider = request.param
    for var in MODEL_ENV:
        monkeypatch.delenv(var, raising=False)
    fake = await OpenAIFake(expected_key=provider.key, flavor=FLAVORS.get(provider.id, "openai")).start()
    try:
        entry = await build(provider.type, provider.metadata(fake.port))
        yield Family(provider, fake, entry.instance)
    finally:
        await fake.close()


REPLY = Reply(text="The quick brown fox jumps over the lazy dog", prompt_tokens=12, completion_tokens=9)
TOOLS = Reply(text=None, finish="tool_calls", tool_calls=(
    ("call_1", "get_weather", {"location": "Paris, France", "unit": "celsius"}),
    ("call_2", "get_time", {"zone": "Europe/Paris"})))


@pytest.mark.parametrize("reply", [REPLY, TOOLS], ids=["text", "tool-calls"])
async def test_pieces_rebuild_what_converse_answers(family: Family, reply: Reply) -> None:
    family.fake.reply(reply)
    whole = await family.component.converse(text_request("Hi"), timeout=5)
    family.fake.stream(reply)
    pieces = await collect(family.stream(text_request("Hi")))

    assert assembled(pieces) == whole
    sent = family.fake.last.body
    assert sent["stream"] is True
    # Mistral refuses stream_options and sends usage anyway; the others are asked for it.
    assert ("stream_options" in sent) == (family.provider.id != "mistral")
    if reply is REPLY:
        texts = [p.content for p in pieces if p.content]
        assert len(texts) == len(REPLY.text.split())  # relayed as it came: a piece per upstream chunk
    assert [p for p in pieces if p.finish_reason] == [pieces[-1]]
    assert pieces[-1].usage == base.Usage(completion_tokens=reply.completion_tokens,
                                          prompt_tokens=reply.prompt_tokens,
                                          total_tokens=reply.prompt_tokens + reply.completion_tokens)


async def test_tool_calls_are_relayed_as_the_server_sends_them(family: Family) -> None:
    family.fake.stream(TOOLS)
    pieces = await collect(family.stream(text_request("Weather?")))
    calls = [call for piece in pieces for call in piece.tool_calls]
    if family.provider.id in ("mistral", "googleai", "ollama"):
        # these servers send each call whole (Gemini without an index): one piece per call
        assert calls == [base.ToolCallDelta(i, id_, name, json.dumps(args))
                         for i, (id_, name, args) in enumerate(TOOLS.tool_calls)]
        return
    # OpenAI's shape: id and name first, then argument fragments by index
    assert calls[0] == base.ToolCallDelta(0, "call_1", "get_weather", "")
    assert all(not c.id and not c.name for c in calls[1:] if c.index == 0)
    assert len([c for c in calls if c.index == 1]) > 2
    assert "".join(c.arguments for c in calls if c.index == 1) == json.dumps({"zone": "Europe/Paris"})


async def test_an_error_status_before_the_first_piece_is_a_provider_error(family: Family) -> None:
    family.fake.fail(429, "Rate limit reached", retry_after="2")
    stream = family.stream(text_request("Hi"))
    with pytest.raises(errors.ProviderError) as caught:
        await anext(stream)
    assert caught.value.status == 429 and caught.value.retryable and caught.value.retry_after == 2
    assert "Rate limit reached" in caught.value.reason


async def test_a_malformed_event_after_the_first_piece(family: Family) -> None:
    family.fake.stream(REPLY, malformed_at=4)
    stream = family.stream(text_request("Hi"))
    first = await anext(stream)
    assert first.content
    with pytest.raises(errors.ProviderError, match="malformed event"):
        await collect(stream)


@pytest.mark.parametrize("abort", [True, False], ids=["connection-dropped", "body-ended"])
async def test_an_upstream_that_stops_mid_stream(family: Family, abort: bool) -> None:
    family.fake.stream(REPLY, cut_after=5, abort=abort)
    stream = family.stream(text_request("Hi"))
    await anext(stream)
    with pytest.raises(errors.ProviderError) as caught:
        await collect(stream)
    expected = "cut off mid-answer" if abort else "ended before data: [DONE]"
    assert expected in caught.value.reason
    # the next request works
    assert (await collect(family.stream(text_request("again"))))[-1].finish_reason == "stop"


async def test_closing_the_stream_closes_the_upstream_connection(family: Family) -> None:
    family.fake.stream(REPLY, stall_after=4)
    stream = family.stream(text_request("Hi"))
    assert (await anext(stream)).content
    await stream.aclose()  # type: ignore[attr-defined]
    await family.fake.wait_until(lambda: family.fake.closed_by_client == 1)
    assert family.fake.streams_finished == 0


async def test_the_first_piece_timeout(family: Family) -> None:
    family.fake.stream(REPLY, stall_after=0)
    with pytest.raises(errors.ProviderTimeout):
        await collect(family.stream(text_request("Hi"), timeout=0.2))
    await family.fake.wait_until(lambda: family.fake.closed_by_client == 1)


async def test_the_first_piece_timeout_does_not_bound_a_long_answer(build: Build, openai_fake: OpenAIFake) -> None:
    entry = await build("conversation.openai", {"key": "sk-x" * 4, "endpoint": f"{openai_fake.url}/v1"})
    openai_fake.stream(REPLY, every=0.05)  # ~0.6 s in all, each piece well within the timeout
    pieces = await collect(streaming.open_stream(entry.instance, text_request("Hi"), timeout=0.3))
    assert assembled(pieces).outputs[0].choices[0].content == REPLY.text


async def test_the_streamed_body_is_capped_by_max_response_bytes(build: Build, openai_fake: OpenAIFake) -> None:
    entry = await build("conversation.openai", {"key": "sk-x" * 4, "endpoint": f"{openai_fake.url}/v1",
                                                "maxResponseBytes": "4Ki"})
    openai_fake.stream(Reply(text="word " * 400), every=0.005)  # the client must leave before the end
    stream = streaming.open_stream(entry.instance, text_request("Hi"), timeout=5)
    with pytest.raises(errors.ProviderError, match=r"streamed answer is larger than maxResponseBytes \(4096 bytes\)"):
        await collect(stream)
    await openai_fake.wait_until(lambda: openai_fake.closed_by_client == 1)


async def test_one_endless_event_is_refused_at_the_cap(build: Build, openai_fake: OpenAIFake) -> None:
    entry = await build("conversation.openai", {"key": "sk-x" * 4, "endpoint": f"{openai_fake.url}/v1",
                                                "maxResponseBytes": "4Ki"})
    openai_fake.stream(frames=(b"data: {\"choices\": [" + b" " * 8000,))
    with pytest.raises(errors.ProviderError, match=r"is larger than maxResponseBytes \(4096 bytes\)"):
        await collect(streaming.open_stream(entry.instance, text_request("Hi"), timeout=5))


async def test_an_error_chunk_mid_stream_is_a_provider_error_without_the_key(build: Build,
                                                                             openai_fake: OpenAIFake) -> None:
    key = "sk-secret-0123456789"
    entry = await build("conversation.openai", {"key": key, "endpoint": f"{openai_fake.url}/v1"})
    error = f'data: {{"error": {{"message": "The server had an error (key {key})", "type": "server_error"}}}}\n\n'
    frames = (*recordings.sse_frames("openai_stream.txt")[:2], error.encode())
    openai_fake.stream(frames=frames)
    stream = streaming.open_stream(entry.instance, text_request("Hi"), timeout=5)
    with pytest.raises(errors.ProviderError) as caught:
        await collect(stream)
    assert "error mid-stream: The server had an error" in caught.value.reason
    assert key not in caught.value.reason


@pytest.mark.parametrize(("name", "text", "calls", "usage"), [
    ("openai_stream.txt", "Hello!", (), None),
    ("openai_stream_tools.txt", "", (base.ToolCall("call_DdmO9pD3xa9XTPNJ32zg2hcA", "get_weather",
                                                   '{"location":"Paris, France"}'),), base.Usage(18, 75, 93)),
])
async def test_the_documented_exchanges(build: Build, openai_fake: OpenAIFake, name: str, text: str,
                                        calls: tuple[base.ToolCall, ...], usage: base.Usage | None) -> None:
    entry = await build("conversation.openai", {"key": "sk-x" * 4, "endpoint": f"{openai_fake.url}/v1",
                                                "model": "gpt-4o-mini"})
    openai_fake.stream(frames=recordings.sse_frames(name))
    answer = assembled(await collect(streaming.open_stream(entry.instance, text_request("Hi"), timeout=5)))
    choice = answer.outputs[0].choices[0]
    assert (choice.content, choice.tool_calls, answer.usage) == (text, calls, usage)
    assert choice.finish_reason == ("tool_calls" if calls else "stop")


async def test_a_server_that_ignores_stream_gets_a_clear_error(build: Build, openai_fake: OpenAIFake) -> None:
    entry = await build("conversation.openai", {"key": "sk-x" * 4, "endpoint": f"{openai_fake.url}/v1"})
    openai_fake.ignores_stream = True
    openai_fake.reply(raw={"error": {"message": "streaming is not supported"}})
    with pytest.raises(errors.ProviderError, match="answered with JSON instead of a stream: streaming is not"):
        await collect(streaming.open_stream(entry.instance, text_request("Hi"), timeout=5))


@pytest.mark.parametrize(("type_", "name", "text", "calls", "usage"), [
    ("conversation.deepseek", "deepseek_stream.txt", "Hello! How can I help?", (), base.Usage(9, 14, 23)),
    ("conversation.mistral", "mistral_stream_tools.txt", "",
     (base.ToolCall("D681PevKs", "retrieve_payment_status", '{"transaction_id": "T1001"}'),), base.Usage(25, 76, 101)),
])
async def test_the_compatible_servers_documented_shapes(build: Build, openai_fake: OpenAIFake, type_: str, name: str,
                                                        text: str, calls: tuple[base.ToolCall, ...],
                                                        usage: base.Usage) -> None:
    entry = await build(type_, {"key": "key-0123456789", "endpoint": openai_fake.url})
    openai_fake.stream(frames=recordings.sse_frames(name))
    answer = assembled(await collect(streaming.open_stream(entry.instance, text_request("Hi"), timeout=5)))
    choice = answer.outputs[0].choices[0]
    assert (choice.content, choice.tool_calls, answer.usage) == (text, calls, usage)


async def test_a_stream_goes_through_the_egress_proxy(build: Build, openai_fake: OpenAIFake,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = await Proxy({"api.fake.test": openai_fake.port}).start()
    try:
        for name in ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "http_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        endpoint = f"http://api.fake.test:{openai_fake.port}/v1"
        entry = await build("conversation.openai", {"key": "sk-x" * 4, "endpoint": endpoint})
        openai_fake.stream(REPLY, every=0.01)
        pieces = await collect(streaming.open_stream(entry.instance, text_request("Hi"), timeout=5))
        assert assembled(pieces).outputs[0].choices[0].content == REPLY.text
        assert proxy.seen == [f"POST http://api.fake.test:{openai_fake.port}/v1/chat/completions"]
    finally:
        await proxy.close()


async def test_a_cancelled_read_closes_the_upstream_connection(family: Family) -> None:
    # The pipeline's idle timeout cancels the wait for the next piece: the upstream must see it.
    family.fake.stream(REPLY, stall_after=4)
    stream = family.stream(text_request("Hi"))
    assert (await anext(stream)).content
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            while True:
                await anext(stream)
    await family.fake.wait_until(lambda: family.fake.closed_by_client == 1)
