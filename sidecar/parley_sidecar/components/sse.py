"""Server-Sent Events, parsed as the bytes arrive (the WHATWG ``text/event-stream`` rules).

OpenAI-compatible servers and Anthropic stream their answers as SSE. :class:`Parser` turns bytes
into events incrementally (lines end with LF, CRLF or CR; ``data:`` lines of one event are joined
with LF; ``event:`` names it; a line starting with ``:`` is a comment, such as DeepSeek's
``: keep-alive``; a blank line ends the event). It never holds more than one event's bytes, and
refuses an event larger than its cap, so a server that never ends an event cannot grow memory.
No I/O here: :func:`events` feeds it from an :class:`http_kit.StreamBody`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator

from parley_sidecar import errors, records
from parley_sidecar.components import http_kit
from parley_sidecar.records import set_field as _set

__all__ = ["Event", "Parser", "events"]


@records.frozen
class Event(records.Record):
    event: str
    """The ``event:`` field; "" when the server named none (OpenAI's chunks)."""
    data: str

    def __init__(self, event: str, data: str) -> None:
        _set(self, "event", event)
        _set(self, "data", data)


class Parser:
    """Bytes in, events out. ``max_event`` bounds the bytes of one event (its lines together).
    Slotted: one lives as long as its stream stays open."""

    __slots__ = ("_data", "_event_bytes", "_max_event", "_name", "_pending", "_provider", "_skip_lf", "_started")

    def __init__(self, *, provider: str, max_event: int) -> None:
        self._provider = provider
        self._max_event = max_event
        self._pending = bytearray()
        """Bytes of a line not yet ended."""
        self._event_bytes = 0
        self._name = ""
        self._data: list[str] = []
        self._skip_lf = False
        """The previous chunk ended with CR: a LF first in this one belongs to that line end."""
        self._started = False

    def feed(self, chunk: bytes) -> Iterator[Event]:
        """Each whole event the bytes complete, as it completes: those before a bad one are
        still handed over, then the error is raised."""
        if self._skip_lf and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._skip_lf = False
        if b"\r" in chunk:
            # CR and CRLF end lines too; a CR last may be the first half of a CRLF split across reads.
            self._skip_lf = chunk.endswith(b"\r")
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if b"\n" not in chunk:
            self._count(len(chunk))
            self._pending += chunk
            return
        if not self._pending and chunk.endswith(b"\n\n"):
            # What a server nearly always sends: whole events, each ``data: …`` and a blank line.
            # The bytes are exactly each block followed by "\n\n", so a block of any other shape
            # goes line by line below, as it would have.
            for block in chunk[:-2].split(b"\n\n"):
                if block.startswith(b"data: ") and b"\n" not in block and self._started and not self._data \
                        and not self._name:
                    self._count(len(block) + 2)  # the line, its end and the blank line
                    try:
                        data = block[6:].decode("utf-8")
                    except UnicodeDecodeError:
                        raise errors.ProviderError(f"{self._provider} sent a malformed event (not UTF-8)",
                                                   status=200) from None
                    self._event_bytes = 0
                    yield Event("", data)
                    continue
                for line in block.split(b"\n"):
                    self._count(len(line) + 1)
                    event = self._line(line)
                    if event is not None:
                        yield event
                self._count(1)
                event = self._dispatch()  # the blank line
                if event is not None:
                    yield event
            return
        # Whole lines split in one pass (C speed); the last, unfinished one waits for the next read.
        lines = chunk.split(b"\n")
        rest = lines.pop()
        carried = len(self._pending)
        if carried:
            lines[0] = bytes(self._pending) + lines[0]
            self._pending.clear()
        for line in lines:
            self._count(len(line) + 1 - carried)
            carried = 0
            event = self._line(line)
            if event is not None:
                yield event
        if rest:
            self._count(len(rest))
            self._pending += rest

    def _count(self, size: int) -> None:
        """Count bytes into the current event; refuse it once it passes the cap."""
        self._event_bytes += size
        if self._event_bytes > self._max_event:
            raise http_kit.ResponseTooLarge(self._provider, self._max_event, what="one streamed event")

    def _line(self, raw: bytes) -> Event | None:
        if not self._started:
            self._started = True
            raw = raw.removeprefix(b"\xef\xbb\xbf")  # the spec: one leading byte-order mark is dropped
        if not raw:
            return self._dispatch()
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise errors.ProviderError(f"{self._provider} sent a malformed event (not UTF-8)", status=200) from None
        if line.startswith(":"):
            return None  # a comment: keep-alive
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._name = value
        # id and retry matter to a browser reconnecting; a provider stream is never resumed.
        return None

    def _dispatch(self) -> Event | None:
        name, data = self._name, self._data
        self._name, self._data, self._event_bytes = "", [], 0
        if not data:
            return None  # the spec: an event without data is not dispatched
        return Event(name, "\n".join(data))


async def events(body: http_kit.StreamBody) -> AsyncGenerator[Event, None]:
    """Each event of an open SSE answer as it completes; one event is at most ``maxResponseBytes``."""
    parser = Parser(provider=body.provider, max_event=body.max_bytes)
    while chunk := await body.read():
        for event in parser.feed(chunk):
            yield event
