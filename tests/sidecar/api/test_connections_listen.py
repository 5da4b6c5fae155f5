"""Where the API listens and what it reads, as the Dapr annotations set it: every listen address
bound (IPv6 loopback included), unix sockets named as daprd names them, the request-head limit of
``--read-buffer-size`` and the body limit of ``--max-body-size``. Real servers, raw sockets, the
real Dapr Python SDK."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from dapr.proto.runtime.v1 import ai_pb2, dapr_pb2_grpc

from parley_sidecar.runtime import Sidecar
from parley_sidecar.settings import Ports, SidecarSettings
from tests.conftest import ECHO, StartSidecar

SDK_APP = Path(__file__).with_name("sdk_app.py")
CONVERSE = "/v1.0-alpha1/conversation/echo/converse"
ANSWER = {"outputs": [{"result": "hi"}]}


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


async def head_answer(port: int, head: bytes, *, chunks: int = 1) -> bytes:
    """Send ``head`` (in ``chunks`` pieces) and read what the server answers before it closes or
    finishes one answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        step = -(-len(head) // chunks)
        for start in range(0, len(head), step):
            writer.write(head[start:start + step])
            await writer.drain()
        return await asyncio.wait_for(reader.read(4096), 10)
    finally:
        writer.close()


def is_431(answer: bytes) -> bool:
    # (aiohttp answers a request it refused to parse as HTTP/1.0, so the connection closes as Go's does)
    return answer.split(b"\r\n")[0].endswith(b" 431 Request Header Fields Too Large")


def healthz_with(padding: int) -> bytes:
    return b"GET /v1.0/healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * padding + b"\r\n\r\n"


# -- the request head: --read-buffer-size (dapr.io/http-read-buffer-size) ---------------------------

async def test_a_head_over_the_default_limit_gets_gos_431(start_sidecar: StartSidecar) -> None:
    # daprd 1.18.3 with its default 4Ki: these two heads (8148 and 8248 bytes) get 204 and 431.
    running = await start_sidecar()
    port = running.sidecar.bound["http"]
    assert (await head_answer(port, healthz_with(8100))).startswith(b"HTTP/1.1 204")
    refused = await head_answer(port, healthz_with(8200))
    assert is_431(refused)
    assert b"Content-Type: text/plain; charset=utf-8" in refused
    assert refused.endswith(b"\r\n\r\n431 Request Header Fields Too Large")


async def test_the_limit_follows_read_buffer_size_on_every_http_port(start_sidecar: StartSidecar) -> None:
    from parley_sidecar.settings import Limits

    running = await start_sidecar(limits=Limits(read_buffer_size=16 * 1024))
    for label in ("http", "public", "metrics"):
        port = running.sidecar.bound[label]
        path = b"/" if label == "metrics" else b"/v1.0/healthz"
        big = healthz_with(15_000).replace(b"/v1.0/healthz", path)
        assert (await head_answer(port, big)).startswith(b"HTTP/1.1 2"), label
        huge = healthz_with(21_000).replace(b"/v1.0/healthz", path)
        assert is_431(await head_answer(port, huge)), label


async def test_a_head_still_arriving_is_refused_once_over_the_limit(start_sidecar: StartSidecar) -> None:
    running = await start_sidecar()
    # Many small headers, sent in pieces and never finished: refused without waiting for the end.
    head = b"GET /v1.0/healthz HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 2000
    answer = await head_answer(running.sidecar.bound["http"], head, chunks=20)
    assert is_431(answer)


async def test_a_small_request_still_works_after_a_large_one_on_a_new_connection(
    start_sidecar: StartSidecar,
) -> None:
    running = await start_sidecar()
    port = running.sidecar.bound["http"]
    assert is_431(await head_answer(port, healthz_with(50_000)))
    status, body = await running.post(CONVERSE, {"inputs": [{"content": "hi"}]})
    assert (status, body) == (200, ANSWER)


# -- the body: --max-body-size (dapr.io/max-body-size, dapr.io/http-max-request-size) --------------

async def test_max_body_size_bounds_http_and_grpc_bodies(start_sidecar: StartSidecar) -> None:
    from parley_sidecar.settings import Limits

    running = await start_sidecar(limits=Limits(max_body_size=64 * 1024))
    fits = {"inputs": [{"content": "x" * 60_000}]}
    status, _ = await running.post(CONVERSE, fits)
    assert status == 200
    status, body = await running.post(CONVERSE, {"inputs": [{"content": "x" * 70_000}]})
    assert status == 413 and body["errorCode"] == "ERR_BODY_READ"
    assert "65536" in body["message"]
    async with grpc.aio.insecure_channel(running.grpc) as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)
        ok = await stub.ConverseAlpha1(ai_pb2.ConversationRequest(
            name="echo", inputs=[ai_pb2.ConversationInput(content="x" * 60_000)]))
        assert ok.outputs[0].result == "x" * 60_000
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.ConverseAlpha1(ai_pb2.ConversationRequest(
                name="echo", inputs=[ai_pb2.ConversationInput(content="x" * 70_000)]))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


# -- listen addresses: dapr.io/sidecar-listen-addresses -------------------------------------------

@pytest.mark.skipif(not has_ipv6_loopback(), reason="this machine has no IPv6 loopback (ip -6 addr show lo)")
async def test_daprs_default_listen_addresses_answer_on_ipv6_and_ipv4_loopback(start_sidecar: StartSidecar) -> None:
    running = await start_sidecar(listen_addresses=["[::1]", "127.0.0.1"])
    http, grpc_port = running.sidecar.bound["http"], running.sidecar.bound["grpc"]
    for host in ("[::1]", "127.0.0.1"):
        async with running.session.post(f"http://{host}:{http}{CONVERSE}", json={"inputs": [{"content": "hi"}]}) as r:
            assert (r.status, await r.json()) == (200, ANSWER), host
        async with grpc.aio.insecure_channel(f"{host}:{grpc_port}") as channel:
            answer = await dapr_pb2_grpc.DaprStub(channel).ConverseAlpha1(ai_pb2.ConversationRequest(
                name="echo", inputs=[ai_pb2.ConversationInput(content="hi")]))
            assert answer.outputs[0].result == "hi", host


async def test_an_address_that_cannot_be_bound_is_skipped(
    start_sidecar: StartSidecar, caplog: pytest.LogCaptureFixture,
) -> None:
    # 192.0.2.1 (TEST-NET-1) is on no interface here, as [::1] is on none in a pod without IPv6.
    running = await start_sidecar(listen_addresses=["192.0.2.1", "127.0.0.1"])
    status, body = await running.post(CONVERSE, {"inputs": [{"content": "hi"}]})
    assert (status, body) == (200, ANSWER)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("cannot listen on 192.0.2.1" in m and "http" in m for m in warned), warned
    assert any("cannot listen on 192.0.2.1" in m and "grpc" in m for m in warned), warned


async def test_no_address_that_can_be_bound_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "echo.yaml").write_text(ECHO.format(name="echo"))
    sidecar = Sidecar(SidecarSettings(app_id="a", resources_paths=[tmp_path], ports=Ports(0, 0, 0, 0),
                                      listen_addresses=["192.0.2.1"], public_listen_address="127.0.0.1",
                                      metrics_listen_address="127.0.0.1"))
    try:
        with pytest.raises(OSError, match=r"could not listen on any of 192\.0\.2\.1"):
            await sidecar.start()
    finally:
        await sidecar.stop()


# -- unix domain sockets: dapr.io/unix-domain-socket-path ------------------------------------------

async def run_sdk(env: dict[str, str]) -> Any:
    proc = await asyncio.create_subprocess_exec(sys.executable, str(SDK_APP), "alpha1",
                                                env={**os.environ, "DAPR_HEALTH_TIMEOUT": "10", **env},
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return json.loads(out.decode().strip().splitlines()[-1])


async def test_unix_sockets_serve_http_and_grpc_under_daprds_names(start_sidecar: StartSidecar,
                                                                     tmp_path: Path) -> None:
    sockets = tmp_path / "sockets"
    sockets.mkdir()
    stale = sockets / "dapr-test-app-grpc.socket"
    with socket.socket(socket.AF_UNIX) as s:  # left behind by a previous run of the container
        s.bind(str(stale))
    running = await start_sidecar(unix_domain_socket=sockets)
    http_socket, grpc_socket = sockets / "dapr-test-app-http.socket", sockets / "dapr-test-app-grpc.socket"
    assert running.sidecar.sockets == {"http": http_socket, "grpc": grpc_socket}
    assert "http" not in running.sidecar.bound and "grpc" not in running.sidecar.bound  # no TCP API
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(http_socket))) as session, \
            session.post(f"http://localhost{CONVERSE}", json={"inputs": [{"content": "hi"}]}) as resp:
        assert (resp.status, await resp.json()) == (200, ANSWER)
    # The real SDK, as an app configured for the socket: gRPC there, health on the public port.
    got = await run_sdk({"DAPR_GRPC_ENDPOINT": f"unix://{grpc_socket}",
                         "DAPR_HTTP_ENDPOINT": f"http://127.0.0.1:{running.sidecar.bound['public']}"})
    assert got["results"] == ["sync hello\ncall <IP>"]
    await running.sidecar.stop()
    assert sorted(p.name for p in sockets.iterdir()) == []  # removed at shutdown, as daprd does
