"""The SSE parser as the WHATWG rules read: however the bytes are cut, the same events come out."""

from __future__ import annotations

import pytest

from parley_sidecar import errors
from parley_sidecar.components import sse
from tests.fakes import recordings

BODY = (b": keep-alive\r\n\r\nevent: message_start\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n"
        b"data:no-space\rid: 7\rretry: 10\r\rdata: \xc3\xa9t\xc3\xa9\n\nevent: empty\n\n")
EVENTS = [sse.Event("message_start", '{"a":\n1}'), sse.Event("", "no-space"), sse.Event("", "été")]


def parse(pieces: list[bytes], max_event: int = 1 << 20) -> list[sse.Event]:
    parser = sse.Parser(provider="p", max_event=max_event)
    return [event for piece in pieces for event in parser.feed(piece)]


def test_events_whole() -> None:
    assert parse([BODY]) == EVENTS
    # a leading byte-order mark is dropped, even split across reads
    assert parse([b"\xef\xbb", b"\xbfdata: x\n\n"]) == [sse.Event("", "x")]


def test_events_a_byte_at_a_time() -> None:
    # CR then LF in two reads is one line end; a UTF-8 character split across reads is whole.
    assert parse([BODY[i:i + 1] for i in range(len(BODY))]) == EVENTS


@pytest.mark.parametrize("name", ["openai_stream.txt", "anthropic_stream_tools.txt"])
def test_recorded_frames_are_one_event_each(name: str) -> None:
    frames = recordings.sse_frames(name)
    assert len(parse(list(frames))) == len(frames)


def test_one_event_larger_than_the_cap_is_refused_even_without_a_line_end() -> None:
    with pytest.raises(errors.ProviderError, match=r"p one streamed event is larger than maxResponseBytes \(100"):
        parse([b"data: " + b"x" * 60, b"x" * 60], max_event=100)
    assert parse([b"data: " + b"x" * 60 + b"\n\n"] * 5, max_event=100) == [sse.Event("", "x" * 60)] * 5


def test_events_before_a_bad_one_are_handed_over() -> None:
    parser = sse.Parser(provider="p", max_event=1 << 10)
    events = parser.feed(b"data: 1\n\ndata: \xff\n\n")
    assert next(events) == sse.Event("", "1")
    with pytest.raises(errors.ProviderError, match="not UTF-8"):
        next(events)


def test_whole_event_reads_give_what_a_byte_at_a_time_gives() -> None:
    # Reads that end on an event's end take the parser's fast path for plain "data: …" events;
    # every other shape (names, comments, several data lines, blank-line runs, no space after the
    # colon, a bad byte) mixed in, and any cut, must give the same events as a byte at a time.
    import random

    shapes = [b"data: {\"i\":%d}\n\n", b"event: e%d\ndata: x\n\n", b": ping %d\n\n", b"data: a%d\ndata: b\n\n",
              b"data:%d\n\n", b"\n\n", b"id: %d\n\n", b"data: \xc3\xa9%d\n\n", b"data: %d\r\n\r\n", b"data: \n\n"]
    rng = random.Random(7)
    for _ in range(300):
        body = b"".join(rng.choice(shapes).replace(b"%d", str(i).encode()) for i in range(rng.randint(1, 12)))
        ends = sorted(rng.sample(range(1, len(body)), min(len(body) - 1, rng.randint(0, 4))))
        pieces = [body[a:b] for a, b in zip([0, *ends], [*ends, len(body)], strict=True)]
        assert parse(pieces) == parse([body[i:i + 1] for i in range(len(body))])
    # a bad byte in a plain event: the same error either way
    for pieces in ([b"data: 1\n\ndata: \xff\n\n"], [b"d", b"ata: 1\n\ndata: \xff\n\n"]):
        with pytest.raises(errors.ProviderError, match="not UTF-8"):
            parse(pieces)
