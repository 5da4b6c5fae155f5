"""Server-Sent Events: relay a stream of pieces to an HTTP client, one event per piece.

Shared by every streaming surface (the OpenAI-compatible API, alpha2's SSE form); each brings its
own encoding of a piece and of an error, this module only does what they have in common:

- The caller pulls the first piece *before* calling :func:`relay`, so a failure before it is still
  a plain error status with a JSON body; once :func:`relay` runs the status is 200 and sent.
- Each piece is written as it arrives and the write is awaited: aiohttp's write waits for the
  socket to drain past its buffer limit, so a slow reader slows the stream instead of growing
  memory.
- A :class:`errors.ParleyError` raised by the stream after the headers becomes one error event
  (``on_error``), then the stream ends cleanly (the chunked body is terminated).
- However the relay ends (done, error, client gone: a failed write or the handler's cancellation),
  the stream's ``aclose()`` runs, so the upstream call it holds is cancelled and its connection
  closed.

No JSON and no protocol knowledge here: ``encode`` returns the bytes of whole events
(see :func:`event`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from aiohttp import web

from parley_sidecar import errors

__all__ = ["CONTENT_TYPE", "event", "relay"]

log = logging.getLogger("parley.http")

T = TypeVar("T")

CONTENT_TYPE = "text/event-stream"

_HEADERS = {
    "Content-Type": f"{CONTENT_TYPE}; charset=utf-8",
    "Cache-Control": "no-cache",
    # Reverse proxies (nginx, and those that copy its convention) buffer a response unless told
    # not to; an SSE stream that is buffered is not a stream.
    "X-Accel-Buffering": "no",
}


def event(data: bytes, *, name: str = "") -> bytes:
    """One SSE event carrying ``data`` (which must hold no newline: compact JSON never does)."""
    head = b"event: " + name.encode() + b"\n" if name else b""
    return head + b"data: " + data + b"\n\n"


async def relay(
    request: web.Request,
    first: T,
    pieces: AsyncIterator[T],
    encode: Callable[[T], bytes],
    on_error: Callable[[errors.ParleyError], bytes],
    *,
    end: bytes | Callable[[], bytes] = b"",
) -> web.StreamResponse:
    """Send ``first`` then every piece of ``pieces`` as SSE, then ``end`` (e.g. ``data: [DONE]``,
    or a function giving the closing events once the last piece has been encoded).

    ``pieces`` is the rest of the stream ``first`` came from; a piece that ``encode`` turns into no
    bytes is not written. An error event replaces ``end``. Returns the response, already finished;
    a client that left is not an error (the relay stops and closes ``pieces``)."""
    response = web.StreamResponse(status=200, headers=_HEADERS)
    try:
        head = encode(first)  # before the status is sent: a failure here can still be a plain error answer
        await response.prepare(request)
        await response.write(head)  # even empty: aiohttp sends the headers with the first write
        del head, first  # sent: not held while the stream waits for its next piece
        try:
            # Each piece is encoded here and written as it comes, with no layer in between: this
            # loop runs once per streamed piece, so what it costs is paid for every token.
            async for piece in pieces:
                data = encode(piece)
                if data:  # nothing to send (a role-only piece): not even a call into aiohttp
                    await response.write(data)
                    data = b""  # nor the last chunk's bytes, while waiting for the next
            data = end() if callable(end) else end
        except errors.ParleyError as exc:  # mid-stream: the status is sent, so an event says it
            data = on_error(exc)
        except ConnectionResetError:  # handled below: the client is gone
            raise
        except Exception:  # a bug mid-stream: logged with its traceback, the client gets no trace
            log.exception("stream on %s failed unexpectedly", request.path)
            data = on_error(errors.Internal())
        # the closing events (or the error event) and the body's end in one write (one send, not two)
        await response.write_eof(data)
    except ConnectionResetError:  # the client stopped reading and closed: nothing left to tell it
        log.debug("stream client went away on %s", request.path)
    finally:
        aclose = getattr(pieces, "aclose", None)
        if aclose is not None:
            # suppress: the stream's own cleanup failing must not turn a finished answer into a 500
            with contextlib.suppress(Exception):
                await aclose()
    return response
