"""gRPC GetMetadata / SetMetadata / Shutdown and HTTP POST /v1.0/shutdown, through real servers.

The Python SDK (its own process) reads and writes metadata; both metadata surfaces come from one
description; SetMetadata shares the HTTP PUT's bounded store; the API token guards all of these;
and the shutdown API ends a real sidecar process with exit code 0 after a conversation in flight
has its answer, as SIGTERM does.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from asyncio.subprocess import Process
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from aiohttp import web
from dapr.proto.runtime.v1 import dapr_pb2, dapr_pb2_grpc, metadata_pb2
from google.protobuf import json_format

from parley_sidecar.api.metadata import MAX_EXTENDED_KEYS
from parley_sidecar.settings import RUNTIME_VERSION
from tests.conformance.servers import free_port
from tests.conftest import ECHO, Running, StartSidecar, component_yaml
from tests.sidecar.api.test_metrics import scrape

SDK_APP = Path(__file__).with_name("sdk_metadata_app.py")
TOKEN = "lifecycle-token"


async def run_sdk(http_port: int, grpc_port: int, scenario: str, **env: str) -> Any:
    environ = {**os.environ, "DAPR_HTTP_PORT": str(http_port), "DAPR_GRPC_PORT": str(grpc_port),
               "DAPR_HEALTH_TIMEOUT": "10", **env}
    if "DAPR_API_TOKEN" not in env:
        environ.pop("DAPR_API_TOKEN", None)
    proc = await asyncio.create_subprocess_exec(sys.executable, str(SDK_APP), scenario, env=environ,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return json.loads(out.decode().strip().splitlines()[-1])


async def grpc_call(target: str, method: str, request: Any, token: str | None = None) -> tuple[str, Any]:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)  # type: ignore[no-untyped-call]
        metadata = (("dapr-api-token", token),) if token is not None else None
        try:
            response = await getattr(stub, method)(request, metadata=metadata, timeout=10)
        except grpc.aio.AioRpcError as exc:
            return exc.code().name, exc.details()
    return "OK", response


# -- GetMetadata / SetMetadata -------------------------------------------------------------------------
async def test_python_sdk_get_metadata(sidecar: Running) -> None:
    """What dapr-agents reads: the app id, daprRuntimeVersion and the conversation components."""
    grpc_port = sidecar.sidecar.bound["grpc"]
    got = await run_sdk(sidecar.sidecar.bound["http"], grpc_port, "metadata")
    assert got == {"application_id": "test-app",
                   "extended_metadata": {"daprRuntimeVersion": RUNTIME_VERSION, "sdkKey": "sdk value"},
                   "registered_components": [["echo", "conversation.echo", "v1", []],
                                             ["test-alpha2-echo", "conversation.echo", "v1", []]],
                   "active_actors_count": {}}
    got = await run_sdk(sidecar.sidecar.bound["http"], grpc_port, "metadata_async")
    assert got["extended_metadata"] == {"daprRuntimeVersion": RUNTIME_VERSION, "sdkKey": "sdk value",
                                        "asyncKey": "async value"}


async def test_http_and_grpc_describe_the_same_sidecar(sidecar: Running) -> None:
    async with sidecar.session.put(sidecar.http + "/v1.0/metadata/cliPID", data=b"4242") as resp:
        assert resp.status == 204
    status, response = await grpc_call(sidecar.grpc, "GetMetadata", metadata_pb2.GetMetadataRequest())
    assert status == "OK"
    from_grpc = json_format.MessageToDict(response)
    async with sidecar.session.get(sidecar.http + "/v1.0/metadata") as resp:
        from_http = await resp.json()
    assert from_grpc == {"id": "test-app", "runtimeVersion": RUNTIME_VERSION,
                         "components": [{"name": "echo", "type": "conversation.echo", "version": "v1"},
                                        {"name": "test-alpha2-echo", "type": "conversation.echo", "version": "v1"}],
                         "extended": {"cliPID": "4242", "daprRuntimeVersion": RUNTIME_VERSION},
                         "appConnectionProperties": {}, "actorRuntime": {"runtimeStatus": "DISABLED"},
                         "workflows": {}}
    # daprd's HTTP shape (Go's encoding/json of its own struct): hostReady always written.
    assert from_http == {**{k: v for k, v in from_grpc.items() if k != "workflows"}, "enabledFeatures": [],
                         "actorRuntime": {"runtimeStatus": "DISABLED", "hostReady": False}}


async def test_a_new_component_shows_in_both(sidecar: Running) -> None:
    (sidecar.resources / "late.yaml").write_text(ECHO.format(name="late"))
    for _ in range(100):
        _, response = await grpc_call(sidecar.grpc, "GetMetadata", metadata_pb2.GetMetadataRequest())
        if "late" in [c.name for c in response.registered_components]:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("GetMetadata never listed the new component")
    async with sidecar.session.get(sidecar.public + "/v1.0/metadata") as resp:
        assert "late" in [c["name"] for c in (await resp.json())["components"]]


async def test_set_metadata_shares_the_bounded_store_with_http_put(sidecar: Running) -> None:
    for i in range(MAX_EXTENDED_KEYS - 1):
        async with sidecar.session.put(f"{sidecar.http}/v1.0/metadata/k{i}", data=b"v") as resp:
            assert resp.status == 204
    assert (await grpc_call(sidecar.grpc, "SetMetadata", metadata_pb2.SetMetadataRequest(key="last", value="v")))[0] \
        == "OK"
    # Full: gRPC RESOURCE_EXHAUSTED and HTTP 400, the same message; an empty key is a no-op, as daprd's.
    assert await grpc_call(sidecar.grpc, "SetMetadata", metadata_pb2.SetMetadataRequest(key="more", value="v")) == (
        "RESOURCE_EXHAUSTED",
        "failed setting extended metadata 'more': extended metadata already holds 100 keys, the most kept")
    assert (await grpc_call(sidecar.grpc, "SetMetadata", metadata_pb2.SetMetadataRequest(key="", value="v")))[0] \
        == "OK"
    async with sidecar.session.put(f"{sidecar.http}/v1.0/metadata/more", data=b"v") as resp:
        assert (resp.status, (await resp.json())["errorCode"]) == (400, "ERR_METADATA_LIMIT")
    assert (await grpc_call(sidecar.grpc, "SetMetadata",
                            metadata_pb2.SetMetadataRequest(key="k1", value="x" * 70_000)))[0] == "RESOURCE_EXHAUSTED"
    _, response = await grpc_call(sidecar.grpc, "GetMetadata", metadata_pb2.GetMetadataRequest())
    assert len(response.extended_metadata) == MAX_EXTENDED_KEYS + 1
    assert response.extended_metadata["last"] == "v" and response.extended_metadata["k1"] == "v"
    counted = {(labels["grpc_server_method"].rsplit("/", 1)[1], labels["grpc_server_status"]): value
               for _, labels, value in (await scrape(sidecar))["dapr_grpc_io_server_completed_rpcs"]}
    assert counted[("SetMetadata", "RESOURCE_EXHAUSTED")] == 2
    assert counted[("SetMetadata", "OK")] == 2 and counted[("GetMetadata", "OK")] == 1


async def test_stored_runtime_version_key_does_not_override(sidecar: Running) -> None:
    await grpc_call(sidecar.grpc, "SetMetadata", metadata_pb2.SetMetadataRequest(key="daprRuntimeVersion", value="0"))
    _, response = await grpc_call(sidecar.grpc, "GetMetadata", metadata_pb2.GetMetadataRequest())
    assert response.extended_metadata["daprRuntimeVersion"] == RUNTIME_VERSION


# -- the API token -----------------------------------------------------------------------------------------
@pytest.fixture
async def token_sidecar(start_sidecar: StartSidecar) -> Running:
    return await start_sidecar(api_token=TOKEN)


@pytest.mark.parametrize(("method", "request_"), [
    ("GetMetadata", metadata_pb2.GetMetadataRequest()),
    ("SetMetadata", metadata_pb2.SetMetadataRequest(key="k", value="v")),
    ("Shutdown", dapr_pb2.ShutdownRequest()),
])
async def test_token_guards_the_runtime_methods(token_sidecar: Running, method: str, request_: Any) -> None:
    """None of them is exempt on daprd: UNAUTHENTICATED ``Unauthorized`` without the right token."""
    for token in (None, "wrong"):
        assert await grpc_call(token_sidecar.grpc, method, request_, token) == ("UNAUTHENTICATED", "Unauthorized")
    assert not token_sidecar.sidecar.shutdown_requested.is_set()
    status, _ = await grpc_call(token_sidecar.grpc, method, request_, TOKEN)
    assert status == "OK"
    assert token_sidecar.sidecar.shutdown_requested.is_set() == (method == "Shutdown")


async def test_token_guards_http_shutdown_and_metadata(token_sidecar: Running) -> None:
    for method, path in (("POST", "/v1.0/shutdown"), ("GET", "/v1.0/metadata")):
        async with token_sidecar.session.request(method, token_sidecar.http + path) as resp:
            assert (resp.status, await resp.text()) == (401, "invalid api token\n")
    # The public port has no shutdown (daprd: 404 there too).
    async with token_sidecar.session.post(token_sidecar.public + "/v1.0/shutdown") as resp:
        assert resp.status == 404
    assert not token_sidecar.sidecar.shutdown_requested.is_set()
    async with token_sidecar.session.post(token_sidecar.http + "/v1.0/shutdown",
                                          headers={"dapr-api-token": TOKEN}) as resp:
        assert (resp.status, await resp.read(), resp.content_type) == (204, b"", "application/octet-stream")
    assert token_sidecar.sidecar.shutdown_requested.is_set() and not token_sidecar.sidecar.force_exit


async def test_python_sdk_with_a_wrong_token_is_refused(token_sidecar: Running) -> None:
    bound = token_sidecar.sidecar.bound
    assert await run_sdk(bound["http"], bound["grpc"], "error", DAPR_API_TOKEN="nope") == {
        "error": "UNAUTHENTICATED"}
    got = await run_sdk(bound["http"], bound["grpc"], "metadata", DAPR_API_TOKEN=TOKEN)
    assert got["application_id"] == "test-app"


# -- shutdown of a real process ------------------------------------------------------------------------------
@pytest.fixture
async def slow_upstream() -> AsyncIterator[int]:
    """OpenAI's chat completions, answered after a second."""

    async def completions(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(1.0)
        return web.json_response({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-test",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "slow"}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    await runner.cleanup()


async def _healthy_sidecar(tmp_path: Path, session: aiohttp.ClientSession) -> tuple[Process, int, int]:
    """``parley-sidecar`` on free ports, healthy: (the process, its HTTP port, its gRPC port). A port
    taken by another process between ``free_port`` and the sidecar's bind fails the start with
    "address already in use": that start is retried on new ports. Any other failure to become
    healthy fails the test with the process's output."""
    for _attempt in range(3):
        http, grpc_port, metrics, public = (free_port() for _ in range(4))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "parley_sidecar", "--app-id", "lifecycle", "--resources-path", str(tmp_path),
            "--dapr-http-port", str(http), "--dapr-grpc-port", str(grpc_port), "--metrics-port", str(metrics),
            "--dapr-public-port", str(public), "--dapr-listen-addresses", "127.0.0.1",
            "--metrics-listen-address", "127.0.0.1", "--dapr-public-listen-address", "127.0.0.1",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env={**os.environ},
        )
        for _ in range(300):
            if proc.returncode is not None:
                break
            try:
                async with session.get(f"http://127.0.0.1:{http}/v1.0/healthz") as resp:
                    if resp.status == 204:
                        return proc, http, grpc_port
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)
        if proc.returncode is None:
            proc.kill()
        out = (await proc.communicate())[0].decode(errors="replace")
        if "address already in use" not in out.lower():
            raise AssertionError(f"sidecar did not become healthy (exit {proc.returncode}):\n{out[-3000:]}")
    raise AssertionError("three starts lost a port to another process")


async def _shutdown_process(tmp_path: Path, upstream: int, shutdown: Callable[[int, int], Awaitable[None]], *,
                            in_flight: bool = True) -> str:
    """Start ``parley-sidecar``, put a slow conversation in flight, call ``shutdown(http, grpc)``:
    the conversation gets its answer, then the process exits 0. Returns the process output."""
    (tmp_path / "slow.yaml").write_text(component_yaml("slow", "conversation.openai", {
        "key": "sk-test", "model": "gpt-test", "endpoint": f"http://127.0.0.1:{upstream}/v1"}))
    async with aiohttp.ClientSession() as session:
        proc, http, grpc_port = await _healthy_sidecar(tmp_path, session)
        try:
            if not in_flight:
                await shutdown(http, grpc_port)
            else:
                body = {"inputs": [{"messages": [{"ofUser": {"content": [{"text": "hi"}]}}]}]}
                pending = asyncio.create_task(session.post(
                    f"http://127.0.0.1:{http}/v1.0-alpha2/conversation/slow/converse", json=body))
                await asyncio.sleep(0.3)
                await asyncio.wait_for(shutdown(http, grpc_port), 0.6)  # answered before the conversation ends
                assert not pending.done()
                resp = await asyncio.wait_for(pending, 10)
                assert resp.status == 200
                assert (await resp.json())["outputs"][0]["choices"][0]["message"]["content"] == "slow"
                resp.release()
            assert await asyncio.wait_for(proc.wait(), 10) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.stdout is not None
    return (await proc.stdout.read()).decode()


async def test_http_shutdown_ends_the_process_after_in_flight_requests(tmp_path: Path, slow_upstream: int) -> None:
    async def shutdown(http: int, grpc_port: int) -> None:
        async with aiohttp.ClientSession() as session, session.post(f"http://127.0.0.1:{http}/v1.0/shutdown") as resp:
            assert (resp.status, await resp.read()) == (204, b"")

    out = await _shutdown_process(tmp_path, slow_upstream, shutdown)
    assert "Shutdown requested via API" in out and "parley sidecar stopped" in out


async def test_grpc_shutdown_ends_the_process_after_in_flight_requests(tmp_path: Path, slow_upstream: int) -> None:
    async def shutdown(http: int, grpc_port: int) -> None:
        status, response = await grpc_call(f"127.0.0.1:{grpc_port}", "Shutdown", dapr_pb2.ShutdownRequest())
        assert status == "OK" and response.ByteSize() == 0

    out = await _shutdown_process(tmp_path, slow_upstream, shutdown)
    assert "Shutdown requested via API" in out and "parley sidecar stopped" in out


async def test_python_sdk_shutdown_ends_the_process(tmp_path: Path, slow_upstream: int) -> None:
    async def shutdown(http: int, grpc_port: int) -> None:
        assert await run_sdk(http, grpc_port, "shutdown") == {"shutdown": True}

    out = await _shutdown_process(tmp_path, slow_upstream, shutdown, in_flight=False)
    assert "Shutdown requested via API" in out
