"""What every fake provider shares: a loopback aiohttp server, a request log and a script.

A test queues behaviours (``reply``, ``fail``, ``slow``, ``reset``, ``malformed``, ``hold``,
``big``, ``stream``); each request takes the next one, and answers normally (from
:meth:`FakeServer.answer`) once the queue is empty.
The server binds 127.0.0.1 on a port the OS picks.

A request that asks for a stream (:meth:`FakeServer.wants_stream`) is answered in the provider's
streaming wire format, frame by frame (:meth:`FakeServer.stream_frames`); :meth:`stream` scripts
how: a delay before each frame, a cut after some frames (the connection dropped, or the body
ended cleanly without the end marker), a malformed frame, or a stall until the client leaves.
``closed_by_client`` counts the streams whose client closed the connection before the end.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import gzip
import json
import ssl
import time
from collections.abc import Callable
from typing import Any, Self

from aiohttp import web

__all__ = ["FakeServer", "Recorded", "Reply"]


@dataclasses.dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    """The path as sent on the wire (percent-encoding kept)."""
    query: dict[str, str]
    headers: dict[str, str]
    """Lower-case names."""
    body: Any
    raw: bytes


@dataclasses.dataclass(frozen=True)
class Reply:
    """A provider-neutral answer; each fake renders it in its own wire format."""

    text: str | None = "Hello from the fake"
    tool_calls: tuple[tuple[str, str, dict[str, Any]], ...] = ()
    """(id, name, arguments)"""
    finish: str = "stop"
    """Neutral: stop, tool_calls, length; each fake uses its own provider's word."""
    prompt_tokens: int = 10
    completion_tokens: int = 5
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    structured: Any = None
    """For a structured-output request: the JSON value the model answers with."""
    choices: int = 1
    """OpenAI only: how many choices to return (text gets a ``#n`` suffix after the first)."""
    raw: Any = None
    """Answer exactly this JSON body instead."""


@dataclasses.dataclass(frozen=True)
class _Step:
    kind: str
    status: int = 200
    message: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    reply: Reply | None = None
    size: int = 0
    chunked: bool = False
    gzipped: bool = False
    stream: StreamScript | None = None


@dataclasses.dataclass(frozen=True)
class StreamScript:
    """How one streamed answer misbehaves; the frame numbers count from 0."""

    every: float = 0.0
    """Seconds of delay before each frame."""
    cut_after: int | None = None
    """Stop after this many frames."""
    abort: bool = True
    """With ``cut_after``: drop the connection (True), or end the body cleanly (False)."""
    malformed_at: int | None = None
    """Send a malformed frame in place of this one."""
    stall_after: int | None = None
    """After this many frames, send nothing more and wait for the client to leave."""
    frames: tuple[bytes, ...] | None = None
    """Send exactly these frames (a recorded exchange) instead of rendering the reply."""


class FakeServer:
    """Subclasses implement :meth:`answer` (the normal reply) and :meth:`error_body`."""

    def __init__(self, *, keep: int | None = None) -> None:
        self.keep = keep
        """Keep only about this many recorded requests (benchmarks); None keeps all (tests)."""
        self.requests: list[Recorded] = []
        self._script: collections.deque[_Step] = collections.deque()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._released = asyncio.Event()
        self.holding = 0
        """Requests held right now (``hold``)."""
        self.most_held = 0
        """The most requests held at once."""
        self.dropped = 0
        """Held requests whose client closed the connection before ``release``."""
        self.big_sent: list[int] = []
        """Body bytes written by each ``big`` answer before it ended or the client hung up."""
        self._transports: set[asyncio.BaseTransport] = set()
        self.scheme = "http"
        self.streams_finished = 0
        """Streams written to their end marker."""
        self.closed_by_client = 0
        """Streams whose client closed the connection before the fake was done."""
        self.ignores_stream = False
        """Answer a request for a stream with a whole JSON answer (a server that does not stream)."""

    # -- scripting ---------------------------------------------------------------------------------
    def reply(self, reply: Reply | None = None, **fields: Any) -> None:
        self._script.append(_Step("reply", reply=reply or Reply(**fields)))

    def fail(self, status: int, message: str = "fake failure", *, retry_after: str | None = None,
             times: int = 1, headers: dict[str, str] | None = None) -> None:
        extra = dict(headers or {})
        if retry_after is not None:
            extra["Retry-After"] = retry_after
        for _ in range(times):
            self._script.append(_Step("fail", status=status, message=message, headers=tuple(extra.items())))

    def clear(self) -> None:
        """Forget the scripted steps not used yet: the next requests get the normal answer."""
        self._script.clear()

    def slow(self, delay: float, times: int = 1) -> None:
        for _ in range(times):
            self._script.append(_Step("slow", delay=delay))

    def reset(self, times: int = 1) -> None:
        for _ in range(times):
            self._script.append(_Step("reset"))

    def malformed(self, times: int = 1) -> None:
        for _ in range(times):
            self._script.append(_Step("malformed"))

    def hold(self, times: int = 1, *, then_fail: int = 0, message: str = "fake failure") -> None:
        """The request waits, answering nothing, until :meth:`release` (or until its client leaves);
        then it answers normally, or with the error ``then_fail`` when given."""
        self._released.clear()
        for _ in range(times):
            self._script.append(_Step("hold", status=then_fail or 200, message=message))

    def release(self) -> None:
        """Every held request answers normally now."""
        self._released.set()

    def big(self, size: int, *, chunked: bool = False, gzipped: bool = False) -> None:
        """Answer a 200 whose body is ``size`` bytes, with a Content-Length or chunked (no length),
        or ``gzipped``: a small body with its small Content-Length that inflates to ``size`` bytes."""
        self._script.append(_Step("big", size=size, chunked=chunked, gzipped=gzipped))

    def stream(self, reply: Reply | None = None, *, every: float = 0.0, cut_after: int | None = None,
               abort: bool = True, malformed_at: int | None = None, stall_after: int | None = None,
               frames: tuple[bytes, ...] | None = None) -> None:
        """The next streamed answer: ``reply`` (default: the normal one) rendered frame by frame,
        or the recorded ``frames``, misbehaving as asked (see :class:`StreamScript`)."""
        script = StreamScript(every=every, cut_after=cut_after, abort=abort, malformed_at=malformed_at,
                              stall_after=stall_after, frames=frames)
        self._script.append(_Step("stream", reply=reply, stream=script))

    @property
    def open_connections(self) -> int:
        """Client connections to this server that are still open."""
        self._transports = {t for t in self._transports if not t.is_closing()}
        return len(self._transports)

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait for ``condition`` on this fake's state; a generous bound, not a timing assertion."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"fake on port {self.port}: condition not met within {timeout:g}s")
            await asyncio.sleep(0.01)

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    # -- lifecycle ---------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    async def start(self, host: str = "127.0.0.1", port: int = 0, *, tls: ssl.SSLContext | None = None) -> Self:
        """Bind ``host`` (loopback unless a pod of the real-node tier serves it) on ``port`` (0: any);
        with ``tls``, serve HTTPS (a private endpoint behind a custom CA)."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        self.scheme = "https" if tls is not None else "http"
        site = web.TCPSite(self._runner, host, port, ssl_context=tls)
        await site.start()
        server: Any = site._server
        self.port = server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- serving -----------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.transport is not None:
            self._transports.add(request.transport)
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        recorded = Recorded(
            method=request.method, path=request.raw_path.split("?", 1)[0], query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()}, body=body, raw=raw,
        )
        self.requests.append(recorded)
        if self.keep is not None and len(self.requests) > 2 * self.keep:
            del self.requests[:-self.keep]
        problem = self.check(recorded)
        if problem is not None:
            return problem
        step = self._script.popleft() if self._script else _Step("reply")
        if step.kind == "fail":
            return web.json_response(self.error_body(step.status, step.message), status=step.status,
                                     headers=dict(step.headers) | self.error_headers(step.status))
        if step.kind == "slow":
            await asyncio.sleep(step.delay)
        if step.kind == "hold":
            if not await self._held(request):
                return web.Response(status=499)  # the client is gone: nobody reads this
            if step.status != 200:
                return web.json_response(self.error_body(step.status, step.message), status=step.status,
                                         headers=self.error_headers(step.status))
        if step.kind == "big":
            return await self._big(request, step)
        if step.kind == "reset":
            assert request.transport is not None
            request.transport.abort()
            await asyncio.sleep(0.05)
            return web.Response()
        if step.kind == "malformed":
            return web.Response(text='{"choices": [', content_type="application/json")
        # this request's own record: others may have arrived while it was slow or held
        reply = step.reply or Reply(text=self.default_text(recorded))
        if self.wants_stream(recorded):
            return await self._stream(request, recorded, reply, step.stream or StreamScript())
        if reply.raw is not None:
            return web.json_response(reply.raw)
        return web.json_response(self.answer(recorded, reply))

    async def _held(self, request: web.Request) -> bool:
        """Wait for :meth:`release`; False when the client closed the connection first."""
        self.holding += 1
        self.most_held = max(self.most_held, self.holding)
        try:
            while not self._released.is_set():
                transport = request.transport
                if transport is None or transport.is_closing():
                    self.dropped += 1
                    return False
                await asyncio.sleep(0.01)  # aiohttp does not cancel a handler when its client leaves
            return True
        finally:
            self.holding -= 1

    async def _big(self, request: web.Request, step: _Step) -> web.StreamResponse:
        if step.gzipped:
            packed = gzip.compress(b" " * step.size)
            self.big_sent.append(len(packed))
            return web.Response(body=packed, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        if step.chunked:
            resp.enable_chunked_encoding()
        else:
            resp.content_length = step.size
        await resp.prepare(request)
        chunk, sent = b" " * (256 << 10), 0  # one buffer written again and again: the fake stays small
        try:
            while sent < step.size:
                piece = chunk if step.size - sent >= len(chunk) else chunk[:step.size - sent]
                await resp.write(piece)
                sent += len(piece)
            await resp.write_eof()
        except ConnectionError:  # the client stopped reading and hung up
            pass
        finally:
            self.big_sent.append(sent)
        return resp

    async def _stream(self, request: web.Request, recorded: Recorded, reply: Reply,
                      script: StreamScript) -> web.StreamResponse:
        frames = list(script.frames) if script.frames is not None else self.stream_frames(recorded, reply)
        resp = web.StreamResponse(headers={"Content-Type": self.stream_content_type})
        await resp.prepare(request)
        transport = request.transport
        try:
            for number, frame in enumerate(frames):
                if script.cut_after is not None and number == script.cut_after:
                    if script.abort and transport is not None:
                        transport.abort()
                        return resp
                    await resp.write_eof()
                    return resp
                if script.stall_after is not None and number == script.stall_after:
                    # aiohttp does not cancel a handler when its client leaves: look for it
                    while transport is not None and not transport.is_closing():  # noqa: ASYNC110
                        await asyncio.sleep(0.01)
                    self.closed_by_client += 1
                    return resp
                if script.every:
                    await asyncio.sleep(script.every)
                if transport is None or transport.is_closing():
                    self.closed_by_client += 1
                    return resp
                await resp.write(self.malformed_frame() if number == script.malformed_at else frame)
            await resp.write_eof()
            self.streams_finished += 1
        except ConnectionError:
            self.closed_by_client += 1
        return resp

    # -- per wire format ---------------------------------------------------------------------------
    stream_content_type = "text/event-stream"

    def wants_stream(self, recorded: Recorded) -> bool:
        """Whether the request asks for a streamed answer (OpenAI and Anthropic: ``"stream": true``)."""
        return not self.ignores_stream and isinstance(recorded.body, dict) and recorded.body.get("stream") is True

    def stream_frames(self, recorded: Recorded, reply: Reply) -> list[bytes]:
        """The streamed answer, one frame (an SSE event, an event-stream message) per item."""
        raise NotImplementedError

    def malformed_frame(self) -> bytes:
        return b"data: {\"choices\": [\n\n"

    def check(self, recorded: Recorded) -> web.Response | None:
        """Refuse a request the real service would refuse before looking at it (e.g. a bad signature)."""
        return None

    def default_text(self, recorded: Recorded) -> str:
        return "Hello from the fake"

    def answer(self, recorded: Recorded, reply: Reply) -> Any:
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> Any:
        raise NotImplementedError

    def error_headers(self, status: int) -> dict[str, str]:
        return {}
