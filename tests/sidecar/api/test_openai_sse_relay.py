"""``api/sse.relay`` on a real aiohttp server on loopback: events in order, an error event then a
clean end, and a client that leaves closes the stream it relays (so its upstream is cancelled)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from parley_sidecar import errors
from parley_sidecar.api import sse


def _encode(piece: str) -> bytes:
    return sse.event(piece.encode())


def _on_error(exc: errors.ParleyError) -> bytes:
    return sse.event(exc.message.encode(), name="error")


class Source:
    """A stream of pieces that records whether it was closed before its end."""

    def __init__(self, pieces: list[str], *, fail_after: bool = False, hang: bool = False) -> None:
        self.pieces, self.fail_after, self.hang = pieces, fail_after, hang
        self.closed = asyncio.Event()

    async def run(self) -> AsyncIterator[str]:
        try:
            for piece in self.pieces:
                yield piece
            if self.fail_after:
                raise errors.InvokeError("echo", "the upstream cut the stream")
            if self.hang:
                await asyncio.Event().wait()
        finally:
            self.closed.set()


@pytest.fixture
async def serve() -> AsyncIterator[tuple[str, list[Source]]]:
    sources: list[Source] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        source = sources[-1]
        pieces = source.run()
        first = await anext(pieces)
        return await sse.relay(request, first, pieces, _encode, _on_error, end=b"data: [DONE]\n\n")

    app = web.Application()
    app.router.add_get("/s", handle)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/s", sources
    await runner.cleanup()


async def test_every_piece_is_an_event_then_the_end(serve: tuple[str, list[Source]]) -> None:
    url, sources = serve
    sources.append(Source(["a", "b", "c"]))
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        assert await resp.read() == b"data: a\n\ndata: b\n\ndata: c\n\ndata: [DONE]\n\n"
    assert sources[0].closed.is_set()


async def test_an_error_after_the_first_piece_is_an_error_event_and_a_clean_end(
        serve: tuple[str, list[Source]]) -> None:
    url, sources = serve
    sources.append(Source(["a"], fail_after=True))
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as resp:
            body = await resp.read()  # a clean chunked end: read() would raise on a cut body
        assert body == (b"data: a\n\nevent: error\n"
                        b"data: failed conversing with component echo: the upstream cut the stream\n\n")
        sources.append(Source(["next"]))
        async with session.get(url) as resp:
            assert await resp.read() == b"data: next\n\ndata: [DONE]\n\n"


async def test_a_client_that_leaves_closes_the_stream(serve: tuple[str, list[Source]]) -> None:
    url, sources = serve
    sources.append(Source(["a"], hang=True))
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as resp:
            assert await resp.content.readuntil(b"\n\n") == b"data: a\n\n"
        # leaving the block without reading the rest closes the connection
        await asyncio.wait_for(sources[0].closed.wait(), 10)


async def test_a_slow_reader_holds_the_stream_back(serve: tuple[str, list[Source]]) -> None:
    """Each write waits for the socket: a reader that stops reading stops the stream, so the
    pieces not yet read are never produced (memory stays bounded), and all arrive once it reads."""
    url, sources = serve
    total, size = 4000, 16384  # 64 MiB: far beyond what the kernel's loopback buffers (a few MiB) hold
    source = Source([str(i).ljust(size, ".") for i in range(total)])
    produced = 0
    original = source.run

    async def counted() -> AsyncIterator[str]:
        nonlocal produced
        async for piece in original():
            produced += 1
            yield piece

    source.run = counted  # type: ignore[method-assign]
    sources.append(source)
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        await resp.content.readuntil(b"\n\n")
        await asyncio.sleep(0.5)  # a pause in reading (the producer, unblocked, would finish in far less)
        held = produced
        events = 1
        while await resp.content.readuntil(b"\n\n"):
            events += 1
    assert held < total / 4, f"{held} of {total} pieces produced while the reader paused"
    assert events == total + 1  # every piece, then the end marker
