"""A finished stream hands its upstream connection back to the pool: the next stream does not open
a new one (a TCP connect, and for a real provider a TLS handshake, before its first token). An
upstream that never ends its body after the answer's end marker still ends the stream, and its
connection is closed rather than kept. A real server on loopback, OpenAI's recorded stream."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from parley_sidecar.components import http_kit, streaming
from tests.fakes import recordings
from tests.sidecar.components.conftest import text_request
from tests.sidecar.components.streams import assembled, collect
from tests.sidecar.conftest import Build


class Upstream:
    """OpenAI's recorded stream, written event by event, then the body's end in a write of its
    own (as aiohttp, and most servers, send it); it notes the client port of each request."""

    def __init__(self, *, end_body: bool = True, end_after: float = 0.01) -> None:
        self.end_body = end_body
        self.end_after = end_after
        self.peers: list[int] = []
        self.closed = asyncio.Event()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        transport = request.transport
        assert transport is not None
        self.peers.append(transport.get_extra_info("peername")[1])
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for frame in recordings.sse_frames("openai_stream.txt"):
            await response.write(frame)
        if self.end_body:
            await asyncio.sleep(self.end_after)  # the body's end after [DONE], not in the same read
            await response.write_eof()
            return response
        while not transport.is_closing():  # noqa: ASYNC110 - aiohttp does not cancel on close
            await asyncio.sleep(0.01)
        self.closed.set()
        return response

    async def start(self) -> Upstream:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/v1"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def drained() -> None:
    """Until the body's end is read (in a task of its own once the stream's end stops waiting for
    it): a generous bound, not a timing assertion."""
    async with asyncio.timeout(10):
        while http_kit._DRAINING:  # noqa: ASYNC110 - a module-level set, nothing to wait on
            await asyncio.sleep(0.01)


# the body's end within the stream end's own wait (_DRAIN_INLINE), and after it (the drain task's)
@pytest.mark.parametrize("end_after", [0.0, 0.1], ids=["promptly", "after-the-stream-ended"])
async def test_streams_one_after_another_share_one_connection(build: Build, end_after: float) -> None:
    server = await Upstream(end_after=end_after).start()
    try:
        entry = await build("conversation.openai", {"key": "sk-x" * 4, "endpoint": server.url})
        for _ in range(3):
            answer = assembled(await collect(streaming.open_stream(entry.instance, text_request("Hi"), timeout=5)))
            assert answer.outputs[0].choices[0].content == "Hello!"
            await drained()
        assert len(server.peers) == 3
        assert len(set(server.peers)) == 1
    finally:
        await server.close()


async def test_a_body_never_ended_after_done_still_ends_the_stream_and_its_connection(build: Build) -> None:
    server = await Upstream(end_body=False).start()
    try:
        entry = await build("conversation.openai", {"key": "sk-x" * 4, "endpoint": server.url})
        answer = assembled(await collect(streaming.open_stream(entry.instance, text_request("Hi"), timeout=5)))
        assert answer.outputs[0].choices[0].content == "Hello!"
        await asyncio.wait_for(server.closed.wait(), 10)
        answer = assembled(await collect(streaming.open_stream(entry.instance, text_request("Hi"), timeout=5)))
        assert answer.outputs[0].choices[0].content == "Hello!"
        assert len(set(server.peers)) == 2  # the held connection was not reused
    finally:
        await server.close()
