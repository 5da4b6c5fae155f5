"""A caller that goes away takes its upstream call with it: HTTP disconnect, gRPC cancel and deadline.

The component points at an upstream that reads each request and never answers (the component's own
timeout is 60 s), so an upstream connection that closes within seconds was closed because the
sidecar cancelled the call.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import grpc
import pytest
from dapr.proto.runtime.v1 import ai_pb2, dapr_pb2_grpc

from tests.conftest import Running, StartSidecar, component_yaml
from tests.sidecar.api.test_grpc import run_sdk_app
from tests.sidecar.api.test_metrics import scrape

GONE_WITHIN = 10.0
"""Seconds the upstream connection may stay open after the caller left (the upstream itself would
hold it for the component's 60 s timeout)."""


class SilentUpstream:
    """An OpenAI-compatible endpoint on loopback that never answers: it counts the connections
    the sidecar holds open to it, and sees each one close."""

    def __init__(self) -> None:
        self.open = 0
        self.accepted = 0
        self._changed = asyncio.Condition()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1"

    async def start(self) -> SilentUpstream:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._count(+1)
        try:
            while await reader.read(65536):  # until EOF: the sidecar closed its end
                pass
        except ConnectionError:
            pass
        finally:
            writer.close()
            await self._count(-1)

    async def _count(self, delta: int) -> None:
        async with self._changed:
            self.open += delta
            self.accepted += delta > 0
            self._changed.notify_all()

    async def wait_open(self, count: int, within: float) -> None:
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: self.open == count), within)
            except TimeoutError:
                raise AssertionError(f"{self.open} upstream connection(s) open after {within:g}s, "
                                     f"expected {count}") from None


@pytest.fixture
async def upstream() -> AsyncIterator[SilentUpstream]:
    server = await SilentUpstream().start()
    yield server
    await server.close()


@pytest.fixture
async def running(start_sidecar: StartSidecar, upstream: SilentUpstream) -> Running:
    return await start_sidecar({"llm.yaml": component_yaml("llm", "conversation.openai", {
        "key": "sk-test", "model": "gpt-4o-mini", "endpoint": upstream.url, "timeout": "60s"})})


A2_BODY = {"inputs": [{"messages": [{"ofUser": {"content": [{"text": "take your time"}]}}]}]}


def grpc_request() -> ai_pb2.ConversationRequestAlpha2:
    return ai_pb2.ConversationRequestAlpha2(name="llm", inputs=[ai_pb2.ConversationInputAlpha2(messages=[
        ai_pb2.ConversationMessage(of_user=ai_pb2.ConversationMessageOfUser(
            content=[ai_pb2.ConversationMessageContent(text="take your time")]))])])


async def test_http_client_that_disconnects_cancels_the_upstream_call(
        running: Running, upstream: SilentUpstream) -> None:
    body = json.dumps(A2_BODY).encode()
    _, writer = await asyncio.open_connection("127.0.0.1", running.sidecar.bound["http"])
    writer.write(b"POST /v1.0-alpha2/conversation/llm/converse HTTP/1.1\r\nHost: parley\r\n"
                 b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    await upstream.wait_open(1, within=GONE_WITHIN)

    writer.close()  # the client gives up
    await upstream.wait_open(0, within=GONE_WITHIN)
    assert upstream.accepted == 1  # cancelled, not retried

    families = await scrape(running)
    counted = {(labels["path"], labels["status"]): value
               for _, labels, value in families["dapr_http_server_request_count"]}
    assert counted[("/v1.0-alpha2/conversation/llm/converse", "499")] == 1


async def test_grpc_cancel_cancels_the_upstream_call(running: Running, upstream: SilentUpstream) -> None:
    async with grpc.aio.insecure_channel(running.grpc) as channel:
        call = dapr_pb2_grpc.DaprStub(channel).ConverseAlpha2(grpc_request())
        await upstream.wait_open(1, within=GONE_WITHIN)
        call.cancel()
        await upstream.wait_open(0, within=GONE_WITHIN)
        assert await call.code() == grpc.StatusCode.CANCELLED
    assert upstream.accepted == 1
    families = await scrape(running)
    statuses = [labels["grpc_server_status"] for name, labels, _ in families["dapr_grpc_io_server_completed_rpcs"]]
    assert statuses == ["CANCELLED"]


async def test_sdk_deadline_cancels_the_upstream_call(running: Running, upstream: SilentUpstream) -> None:
    """The Dapr Python SDK's own timeout (DAPR_API_TIMEOUT_SECONDS) becomes a gRPC deadline."""
    got = await run_sdk_app(running, "slow", DAPR_API_TIMEOUT_SECONDS="1")
    assert got["code"] == "DEADLINE_EXCEEDED"
    await upstream.wait_open(0, within=GONE_WITHIN)
    families = await scrape(running)
    statuses = [labels["grpc_server_status"] for name, labels, _ in families["dapr_grpc_io_server_completed_rpcs"]]
    assert statuses == ["DEADLINE_EXCEEDED"]
