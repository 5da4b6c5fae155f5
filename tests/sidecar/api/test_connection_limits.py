"""Connections that hold a port without using it are closed: a request head not finished in time,
a keep-alive connection left idle, a gRPC connection with no calls. Raw sockets, real servers."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from dapr.proto.runtime.v1 import ai_pb2, dapr_pb2_grpc

from parley_sidecar.settings import Connections
from tests.conftest import Running, StartSidecar

SHORT = 0.5
"""The limit under test, in seconds."""
CLOSED_WITHIN = 10.0
"""How long the test waits for the server to close (today's code keeps such a connection an hour)."""
PORTS = ("http", "public", "metrics")
HEALTHZ = b"GET /v1.0/healthz HTTP/1.1\r\nHost: parley\r\n\r\n"


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sent until it closed the connection; fails if it does not close."""
    try:
        return await asyncio.wait_for(reader.read(), CLOSED_WITHIN)
    except TimeoutError:
        raise AssertionError(f"the server kept the connection open for {CLOSED_WITHIN:g}s") from None


async def connect(running: Running, port: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", running.sidecar.bound[port])


async def read_response(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    return head + await reader.readexactly(length)


@pytest.mark.parametrize("port", PORTS)
async def test_a_half_sent_request_head_is_closed(start_sidecar: StartSidecar, port: str) -> None:
    running = await start_sidecar(connections=Connections(read_header_timeout=SHORT, idle_timeout=60))
    reader, writer = await connect(running, port)
    writer.write(b"GET /v1.0/healthz HTTP/1.1\r\nHost: par")
    await writer.drain()
    assert await closed_by_server(reader) == b""  # closed without an answer, as Go's ReadHeaderTimeout
    writer.close()


@pytest.mark.parametrize("port", PORTS)
async def test_a_connection_that_sends_nothing_is_closed(start_sidecar: StartSidecar, port: str) -> None:
    running = await start_sidecar(connections=Connections(read_header_timeout=SHORT, idle_timeout=60))
    reader, writer = await connect(running, port)
    assert await closed_by_server(reader) == b""
    writer.close()


@pytest.mark.parametrize("port", PORTS)
async def test_an_idle_keep_alive_connection_is_closed(start_sidecar: StartSidecar, port: str) -> None:
    running = await start_sidecar(connections=Connections(read_header_timeout=60, idle_timeout=SHORT))
    reader, writer = await connect(running, port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: parley\r\n\r\n" if port == "metrics" else HEALTHZ)
    await writer.drain()
    assert (await read_response(reader)).startswith((b"HTTP/1.1 204", b"HTTP/1.1 200"))
    assert await closed_by_server(reader) == b""
    writer.close()


async def test_the_head_deadline_applies_again_to_the_next_request(start_sidecar: StartSidecar) -> None:
    """A keep-alive connection idle for less than its idle limit, then half a head: closed by the
    head deadline, not kept for the idle limit."""
    running = await start_sidecar(connections=Connections(read_header_timeout=SHORT, idle_timeout=60))
    reader, writer = await connect(running, "http")
    writer.write(HEALTHZ)
    await writer.drain()
    assert (await read_response(reader)).startswith(b"HTTP/1.1 204")
    writer.write(b"GET /v1.0/healthz HTTP/1.1\r\n")
    await writer.drain()
    assert await closed_by_server(reader) == b""
    writer.close()


async def test_the_deadline_covers_the_head_only(start_sidecar: StartSidecar) -> None:
    """A body that comes after the deadline, or a connection reused after it, is served."""
    running = await start_sidecar(connections=Connections(read_header_timeout=SHORT, idle_timeout=60))
    reader, writer = await connect(running, "http")
    body = b'{"inputs":[{"content":"late body"}]}'
    writer.write(b"POST /v1.0-alpha1/conversation/echo/converse HTTP/1.1\r\nHost: parley\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body))
    await writer.drain()
    await asyncio.sleep(3 * SHORT)
    writer.write(body)
    await writer.drain()
    response = await read_response(reader)
    assert response.startswith(b"HTTP/1.1 200")
    assert response.endswith(b'{"outputs":[{"result":"late body"}]}')
    await asyncio.sleep(3 * SHORT)  # idle, but well within the idle limit
    writer.write(HEALTHZ)
    await writer.drain()
    assert (await read_response(reader)).startswith(b"HTTP/1.1 204")
    writer.close()


async def test_an_idle_grpc_connection_gets_goaway(start_sidecar: StartSidecar) -> None:
    running = await start_sidecar(connections=Connections(grpc_max_idle=SHORT))
    async with grpc.aio.insecure_channel(running.grpc) as channel:
        request = ai_pb2.ConversationRequest(name="echo", inputs=[ai_pb2.ConversationInput(content="x")])
        await dapr_pb2_grpc.DaprStub(channel).ConverseAlpha1(request)
        assert channel.get_state() == grpc.ChannelConnectivity.READY
        # The server's GOAWAY moves the client's channel out of READY (to IDLE: it reconnects on the next call).
        await asyncio.wait_for(channel.wait_for_state_change(grpc.ChannelConnectivity.READY), CLOSED_WITHIN)
        assert channel.get_state() != grpc.ChannelConnectivity.READY
        reply = await dapr_pb2_grpc.DaprStub(channel).ConverseAlpha1(request)
        assert [o.result for o in reply.outputs] == ["x"]
