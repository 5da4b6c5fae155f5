"""Anthropic streams from its upstream: Messages SSE events against the fake, piece by piece, and
the pieces rebuild what ``converse`` answers for the same exchange."""

from __future__ import annotations

import pytest

from parley_sidecar import errors
from parley_sidecar.components import base
from tests.fakes import AnthropicFake, Reply, recordings
from tests.sidecar.components.conftest import ANTHROPIC_KEY, Build, text_request
from tests.sidecar.components.streams import assembled, collect, same_answer, stream

REPLY = Reply(text="The quick brown fox jumps over the lazy dog", prompt_tokens=12, completion_tokens=9,
              cached_tokens=4)
TOOLS = Reply(text="Let me look.", finish="tool_calls", tool_calls=(
    ("toolu_1", "get_weather", {"location": "Paris, France", "unit": "celsius"}),
    ("toolu_2", "get_time", {})))


@pytest.fixture
async def component(build: Build, anthropic_fake: AnthropicFake, monkeypatch: pytest.MonkeyPatch
                    ) -> base.Conversation:
    monkeypatch.delenv("ANTHROPIC_MODEL", raising=False)
    entry = await build("conversation.anthropic", {"key": ANTHROPIC_KEY, "endpoint": f"{anthropic_fake.url}/v1",
                                                   "maxResponseBytes": "8Ki"})
    return entry.instance


@pytest.mark.parametrize("reply", [REPLY, TOOLS], ids=["text", "tool-calls"])
async def test_pieces_rebuild_what_converse_answers(component: base.Conversation, anthropic_fake: AnthropicFake,
                                                    reply: Reply) -> None:
    anthropic_fake.reply(reply)
    whole = await component.converse(text_request("Hi"), timeout=5)
    anthropic_fake.stream(reply)
    pieces = await collect(stream(component))

    assert anthropic_fake.last.body["stream"] is True
    same_answer(assembled(pieces), whole)
    assert [p for p in pieces if p.finish_reason] == [pieces[-1]]
    assert pieces[-1].usage == base.Usage(completion_tokens=reply.completion_tokens, prompt_tokens=reply.prompt_tokens,
                                          total_tokens=reply.prompt_tokens + reply.completion_tokens,
                                          prompt_details=base.PromptDetails(cached_tokens=4) if reply is REPLY
                                          else None)
    if reply is REPLY:
        assert len([p for p in pieces if p.content]) == len(REPLY.text.split())


async def test_tool_calls_stream_as_numbered_fragments(component: base.Conversation,
                                                       anthropic_fake: AnthropicFake) -> None:
    anthropic_fake.stream(TOOLS)
    pieces = await collect(stream(component))
    calls = [call for piece in pieces for call in piece.tool_calls]
    assert calls[0] == base.ToolCallDelta(0, "toolu_1", "get_weather", "")
    assert len([c for c in calls if c.index == 0 and c.arguments]) > 1  # fragments, as they came
    assert [c for c in calls if c.index == 1] == [base.ToolCallDelta(1, "toolu_2", "get_time", ""),
                                                  base.ToolCallDelta(1, arguments="{}")]  # no input: {}


async def test_a_structured_answer_streams_as_text(component: base.Conversation,
                                                   anthropic_fake: AnthropicFake) -> None:
    request = text_request("Hi", response_format={"type": "object", "properties": {"city": {"type": "string"}}})
    reply = Reply(structured={"city": "Paris"})
    anthropic_fake.reply(reply)
    whole = await component.converse(request, timeout=5)
    anthropic_fake.stream(reply)
    same_answer(assembled(await collect(stream(component, request))), whole, json_text=True)


@pytest.mark.parametrize(("name", "text", "calls", "usage", "finish"), [
    ("anthropic_stream.txt", "Hello! How can I help?", [], base.Usage(15, 25, 40), "end_turn"),
    ("anthropic_stream_tools.txt", "Okay, let's check the weather for San Francisco, CA:",
     [("toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather", '{"location": "San Francisco, CA", "unit": "fahrenheit"}')],
     base.Usage(89, 472, 561), "tool_use"),
])
async def test_the_documented_exchanges(component: base.Conversation, anthropic_fake: AnthropicFake, name: str,
                                        text: str, calls: list[tuple[str, str, str]], usage: base.Usage,
                                        finish: str) -> None:
    anthropic_fake.stream(frames=recordings.sse_frames(name))
    answer = assembled(await collect(stream(component)))
    choice = answer.outputs[0].choices[0]
    assert choice.content == text
    assert [(c.id, c.name, c.arguments) for c in choice.tool_calls] == calls
    assert (answer.usage, choice.finish_reason) == (usage, finish)


async def test_an_error_status_before_the_first_piece(component: base.Conversation,
                                                      anthropic_fake: AnthropicFake) -> None:
    anthropic_fake.fail(529, "Overloaded")
    with pytest.raises(errors.ProviderError) as caught:
        await anext(stream(component))
    assert (caught.value.status, caught.value.retryable) == (529, True)
    assert "Overloaded" in caught.value.reason


async def test_an_error_event_mid_stream(component: base.Conversation, anthropic_fake: AnthropicFake) -> None:
    error = b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}\n\n'
    frames = (*recordings.sse_frames("anthropic_stream.txt")[:4], error)
    anthropic_fake.stream(frames=frames)
    pieces = stream(component)
    assert (await anext(pieces)).content == "Hello"
    with pytest.raises(errors.ProviderError) as caught:
        await collect(pieces)
    assert caught.value.reason == "anthropic sent an error mid-stream: Overloaded"
    assert caught.value.status == 529


async def test_the_first_piece_timeout(component: base.Conversation, anthropic_fake: AnthropicFake) -> None:
    anthropic_fake.stream(REPLY, stall_after=3)  # message_start, ping, content_block_start: no piece yet
    with pytest.raises(errors.ProviderTimeout):
        await collect(stream(component, timeout=0.3))
    await anthropic_fake.wait_until(lambda: anthropic_fake.closed_by_client == 1)


async def test_a_malformed_event(component: base.Conversation, anthropic_fake: AnthropicFake) -> None:
    anthropic_fake.stream(REPLY, malformed_at=4)
    pieces = stream(component)
    await anext(pieces)
    with pytest.raises(errors.ProviderError, match="malformed event"):
        await collect(pieces)


@pytest.mark.parametrize("abort", [True, False], ids=["connection-dropped", "body-ended"])
async def test_a_stream_without_message_stop_is_cut_short(component: base.Conversation,
                                                          anthropic_fake: AnthropicFake, abort: bool) -> None:
    frames = recordings.sse_frames("anthropic_stream.txt")
    anthropic_fake.stream(frames=frames, cut_after=len(frames) - 1, abort=abort)
    with pytest.raises(errors.ProviderError, match="cut off mid-answer" if abort else "ended before message_stop"):
        await collect(stream(component))
    assert (await collect(stream(component)))[-1].finish_reason == "end_turn"  # the next one works


async def test_the_size_cap(component: base.Conversation, anthropic_fake: AnthropicFake) -> None:
    anthropic_fake.stream(Reply(text="word " * 400), every=0.002)
    with pytest.raises(errors.ProviderError, match=r"larger than maxResponseBytes \(8192 bytes\)"):
        await collect(stream(component))


async def test_closing_the_stream_closes_the_upstream_connection(component: base.Conversation,
                                                                 anthropic_fake: AnthropicFake) -> None:
    anthropic_fake.stream(REPLY, stall_after=5)
    pieces = stream(component)
    assert (await anext(pieces)).content
    await pieces.aclose()  # type: ignore[attr-defined]
    await anthropic_fake.wait_until(lambda: anthropic_fake.closed_by_client == 1)
