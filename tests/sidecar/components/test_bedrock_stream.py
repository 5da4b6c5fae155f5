"""Bedrock streams from its upstream: ConverseStream's AWS event-stream answer against the fake
(real CRCs, SigV4 verified), piece by piece, and the pieces rebuild what ``converse`` answers."""

from __future__ import annotations

import json

import pytest

from parley_sidecar import errors
from parley_sidecar.components import base
from tests.fakes import BedrockFake, Reply, eventstream, recordings
from tests.sidecar.components.conftest import AWS_ACCESS, AWS_SECRET, Build, text_request
from tests.sidecar.components.streams import assembled, collect, same_answer, stream

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
REPLY = Reply(text="The quick brown fox jumps over the lazy dog", prompt_tokens=12, completion_tokens=9,
              cached_tokens=4)
TOOLS = Reply(text="Let me look.", finish="tool_calls", tool_calls=(
    ("tooluse_1", "get_weather", {"location": "Paris, France", "unit": "celsius"}),
    ("tooluse_2", "get_time", {})))


@pytest.fixture
async def component(build: Build, bedrock_fake: BedrockFake) -> base.Conversation:
    entry = await build("conversation.aws.bedrock", {
        "endpoint": bedrock_fake.url, "accessKey": AWS_ACCESS, "secretKey": AWS_SECRET, "model": MODEL,
        "maxResponseBytes": "8Ki"})
    return entry.instance


def event(kind: str, payload: dict[str, object], **flags: bool) -> bytes:
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return eventstream.encode(headers, json.dumps(payload).encode(), **flags)


@pytest.mark.parametrize("reply", [REPLY, TOOLS], ids=["text", "tool-calls"])
async def test_pieces_rebuild_what_converse_answers(component: base.Conversation, bedrock_fake: BedrockFake,
                                                    reply: Reply) -> None:
    bedrock_fake.reply(reply)
    whole = await component.converse(text_request("Hi"), timeout=5)
    bedrock_fake.stream(reply)
    pieces = await collect(stream(component))

    assert bedrock_fake.last.path == f"/model/{MODEL.replace(':', '%3A')}/converse-stream"
    same_answer(assembled(pieces), whole)
    assert [p for p in pieces if p.finish_reason] == [pieces[-1]]
    assert pieces[-1].usage == whole.usage is not None
    if reply is REPLY:
        assert len([p for p in pieces if p.content]) == len(REPLY.text.split())


async def test_a_structured_answer_streams_as_text(component: base.Conversation, bedrock_fake: BedrockFake) -> None:
    request = text_request("Hi", response_format={"type": "object", "properties": {"city": {"type": "string"}}})
    reply = Reply(structured={"city": "Paris"})
    bedrock_fake.reply(reply)
    whole = await component.converse(request, timeout=5)
    bedrock_fake.stream(reply)
    same_answer(assembled(await collect(stream(component, request))), whole, json_text=True)


async def test_the_documented_exchange(component: base.Conversation, bedrock_fake: BedrockFake) -> None:
    bedrock_fake.stream(frames=recordings.bedrock_frames("bedrock_stream_tools.json"))
    answer = assembled(await collect(stream(component)))
    choice = answer.outputs[0].choices[0]
    assert choice.content == "I will look up the most popular song on WZPZ."
    assert choice.tool_calls == (base.ToolCall("tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "top_song", '{"sign": "WZPZ"}'),)
    assert (choice.finish_reason, answer.usage) == ("tool_use", base.Usage(90, 375, 465))


async def test_a_signature_refused_before_the_first_piece(build: Build, bedrock_fake: BedrockFake) -> None:
    entry = await build("conversation.aws.bedrock", {
        "endpoint": bedrock_fake.url, "accessKey": AWS_ACCESS, "secretKey": "wrong/secret+key/0000", "model": MODEL})
    with pytest.raises(errors.ProviderError) as caught:
        await anext(stream(entry.instance))
    assert caught.value.status == 403 and "signature" in caught.value.reason
    assert "wrong/secret" not in caught.value.reason


async def test_an_exception_event_mid_stream(component: base.Conversation, bedrock_fake: BedrockFake) -> None:
    frames = recordings.bedrock_frames("bedrock_stream_tools.json")[:2]
    throttled = eventstream.exception("throttlingException", b'{"message":"Too many tokens, please wait."}')
    bedrock_fake.stream(frames=(*frames, throttled))
    pieces = stream(component)
    assert (await anext(pieces)).content == "I will look up"
    with pytest.raises(errors.ProviderError) as caught:
        await collect(pieces)
    assert caught.value.reason == "aws bedrock sent throttlingException mid-stream: Too many tokens, please wait."
    assert (caught.value.status, caught.value.retryable) == (429, True)


async def test_an_error_message_mid_stream(component: base.Conversation, bedrock_fake: BedrockFake) -> None:
    frames = recordings.bedrock_frames("bedrock_stream_tools.json")[:2]
    failed = eventstream.encode({":message-type": "error", ":error-code": "InternalFailure",
                                 ":error-message": "We encountered an internal error."}, b"")
    bedrock_fake.stream(frames=(*frames, failed))
    with pytest.raises(errors.ProviderError) as caught:
        await collect(stream(component))
    assert caught.value.reason == "aws bedrock sent InternalFailure mid-stream: We encountered an internal error."
    assert (caught.value.status, caught.value.retryable) == (500, True)


async def test_the_first_piece_timeout(component: base.Conversation, bedrock_fake: BedrockFake) -> None:
    bedrock_fake.stream(REPLY, stall_after=1)  # messageStart only: no piece yet
    with pytest.raises(errors.ProviderTimeout):
        await collect(stream(component, timeout=0.3))
    await bedrock_fake.wait_until(lambda: bedrock_fake.closed_by_client == 1)


@pytest.mark.parametrize("flag", ["bad_prelude_crc", "bad_message_crc"])
async def test_a_checksum_mismatch_is_refused(component: base.Conversation, bedrock_fake: BedrockFake,
                                              flag: str) -> None:
    frames = recordings.bedrock_frames("bedrock_stream_tools.json")
    corrupt = event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": " more"}}, **{flag: True})
    bedrock_fake.stream(frames=(*frames[:2], corrupt, *frames[2:]))
    relayed: list[base.Delta] = []
    with pytest.raises(errors.ProviderError, match="checksum mismatch"):
        async for piece in stream(component):
            relayed.append(piece)
    assert " more" not in assembled(relayed).outputs[0].choices[0].content  # nothing of it was trusted


async def test_a_malformed_event(component: base.Conversation, bedrock_fake: BedrockFake) -> None:
    bedrock_fake.stream(REPLY, malformed_at=3)
    pieces = stream(component)
    await anext(pieces)
    with pytest.raises(errors.ProviderError, match="malformed event"):
        await collect(pieces)


@pytest.mark.parametrize("abort", [True, False], ids=["connection-dropped", "body-ended"])
async def test_a_stream_without_message_stop_is_cut_short(component: base.Conversation, bedrock_fake: BedrockFake,
                                                          abort: bool) -> None:
    frames = recordings.bedrock_frames("bedrock_stream_tools.json")
    bedrock_fake.stream(frames=frames, cut_after=len(frames) - 2, abort=abort)
    with pytest.raises(errors.ProviderError, match="cut off mid-answer" if abort else "ended before messageStop"):
        await collect(stream(component))
    assert (await collect(stream(component)))[-1].finish_reason == "end_turn"  # the next one works


async def test_a_message_cut_in_half_is_cut_short(component: base.Conversation, bedrock_fake: BedrockFake) -> None:
    frames = recordings.bedrock_frames("bedrock_stream_tools.json")
    bedrock_fake.stream(frames=(*frames, frames[-1][:20]))  # half a message, then the body ends cleanly
    with pytest.raises(errors.ProviderError, match="ended before messageStop"):
        await collect(stream(component))


async def test_the_size_cap(component: base.Conversation, bedrock_fake: BedrockFake) -> None:
    bedrock_fake.stream(Reply(text="word " * 400), every=0.002)
    with pytest.raises(errors.ProviderError, match=r"larger than maxResponseBytes \(8192 bytes\)"):
        await collect(stream(component))


async def test_one_message_over_the_cap_is_refused_before_it_is_read(component: base.Conversation,
                                                                     bedrock_fake: BedrockFake) -> None:
    huge = event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "x" * 20000}})
    bedrock_fake.stream(frames=(huge[:4096],), stall_after=1)  # its prelude says 20 KB: no need to wait for it
    with pytest.raises(errors.ProviderError, match="one streamed event is larger than maxResponseBytes"):
        await collect(stream(component))


async def test_closing_the_stream_closes_the_upstream_connection(component: base.Conversation,
                                                                 bedrock_fake: BedrockFake) -> None:
    bedrock_fake.stream(REPLY, stall_after=4)
    pieces = stream(component)
    assert (await anext(pieces)).content
    await pieces.aclose()  # type: ignore[attr-defined]
    await bedrock_fake.wait_until(lambda: bedrock_fake.closed_by_client == 1)
