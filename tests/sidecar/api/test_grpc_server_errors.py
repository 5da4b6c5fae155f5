"""A method's own bug, as a gRPC client sees it: UNKNOWN naming the exception's type, never its
text (which may quote what the method was handling), and the traceback in the sidecar's log."""

from __future__ import annotations

import logging

import grpc
import pytest

from parley_sidecar.api.grpc_h2 import Call
from parley_sidecar.api.grpc_server import Method, Server

SECRET = "sk-live-0000-do-not-echo"


async def _broken(request: bytes, call: Call) -> bytes:
    raise RuntimeError(f"bug while holding {SECRET}")


async def test_a_methods_bug_answers_unknown_without_its_text(caplog: pytest.LogCaptureFixture) -> None:
    server = Server({"/test.Broken/Call": Method(_broken, bytes, bytes)}, max_receive=1024)
    port = await server.listen("127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await channel.unary_unary("/test.Broken/Call")(b"x", timeout=10)
    finally:
        await server.stop(1.0)
    assert caught.value.code() == grpc.StatusCode.UNKNOWN
    assert caught.value.details() == "Unexpected RuntimeError (see the sidecar log)"
    failed = [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
    assert failed and SECRET in str(failed[0].exc_info[1])  # the log keeps what the answer leaves out
