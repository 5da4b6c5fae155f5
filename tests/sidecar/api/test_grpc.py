"""The gRPC API: raw generated stubs and the real Dapr Python SDK in its own process."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
from dapr.proto.runtime.v1 import ai_pb2, dapr_pb2_grpc, state_pb2
from google.protobuf import struct_pb2

from tests.conftest import Running, StartSidecar

SDK_APP = Path(__file__).with_name("sdk_app.py")


async def run_sdk_app(running: Running, scenario: str, **env: str) -> Any:
    environ = {**os.environ, "DAPR_HTTP_PORT": str(running.sidecar.bound["http"]),
               "DAPR_GRPC_PORT": str(running.sidecar.bound["grpc"]), "DAPR_HEALTH_TIMEOUT": "10", **env}
    proc = await asyncio.create_subprocess_exec(sys.executable, str(SDK_APP), scenario, env=environ,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return json.loads(out.decode().strip().splitlines()[-1])


async def test_sdk_converse_alpha1(sidecar: Running) -> None:
    got = await run_sdk_app(sidecar, "alpha1")
    assert got == {"context_id": "chat-123", "results": ["sync hello\ncall <IP>"]}


async def test_sdk_converse_alpha2_with_tools(sidecar: Running) -> None:
    got = await run_sdk_app(sidecar, "alpha2")
    assert got == {"context_id": "ctx-2", "finish_reason": "tool_calls", "content": "be brief\nhi\nhello",
                   "tool_calls": [["0", "get_weather", "location,unit"]]}


async def test_sdk_sees_daprd_error_codes(sidecar: Running) -> None:
    got = await run_sdk_app(sidecar, "error")
    assert got == {"code": "INVALID_ARGUMENT", "details": "failed finding conversation component nope"}


async def stub_call(running: Running, method: str, request: Any, metadata: Any = None) -> Any:
    async with grpc.aio.insecure_channel(running.grpc) as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)
        return await getattr(stub, method)(request, metadata=metadata)


async def test_raw_stub_alpha2_all_fields(sidecar: Running) -> None:
    params = struct_pb2.Struct()
    params.update({"type": "object", "properties": {"param1": {"type": "string"}}})
    req = ai_pb2.ConversationRequestAlpha2(
        name="test-alpha2-echo", context_id="test-conversation-123", scrub_pii=True, temperature=0.7,
        inputs=[ai_pb2.ConversationInputAlpha2(messages=[
            ai_pb2.ConversationMessage(of_user=ai_pb2.ConversationMessageOfUser(
                content=[ai_pb2.ConversationMessageContent(text="well hello there")])),
            ai_pb2.ConversationMessage(of_system=ai_pb2.ConversationMessageOfSystem(
                content=[ai_pb2.ConversationMessageContent(text="You are a helpful assistant")])),
        ])],
        tools=[ai_pb2.ConversationTools(function=ai_pb2.ConversationToolsFunction(
            name="test_function", parameters=params))],
        tool_choice="auto",
    )
    resp = await stub_call(sidecar, "ConverseAlpha2", req)
    assert resp.context_id == "test-conversation-123"
    (output,) = resp.outputs
    (choice,) = output.choices
    assert (choice.finish_reason, choice.index) == ("tool_calls", 0)
    assert choice.message.content == "well hello there\nYou are a helpful assistant"
    assert [(t.id, t.function.name, t.function.arguments) for t in choice.message.tool_calls] == [
        ("0", "test_function", "param1")]
    assert (output.usage.completion_tokens, output.usage.prompt_tokens, output.usage.total_tokens) == (8, 8, 16)


@pytest.mark.parametrize("message", [
    ai_pb2.ConversationMessage(),
    ai_pb2.ConversationMessage(of_assistant=ai_pb2.ConversationMessageOfAssistant(
        tool_calls=[ai_pb2.ConversationToolCalls(id="call_123")])),
])
async def test_raw_stub_invalid_params(sidecar: Running, message: ai_pb2.ConversationMessage) -> None:
    req = ai_pb2.ConversationRequestAlpha2(name="echo", inputs=[ai_pb2.ConversationInputAlpha2(messages=[message])])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub_call(sidecar, "ConverseAlpha2", req)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "invalid params" in (caught.value.details() or "")


async def test_other_dapr_methods_are_unimplemented(sidecar: Running) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub_call(sidecar, "GetState", state_pb2.GetStateRequest(store_name="s", key="k"))
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_grpc_api_token(start_sidecar: StartSidecar) -> None:
    running = await start_sidecar(api_token="s3cret")
    req = ai_pb2.ConversationRequest(name="echo", inputs=[ai_pb2.ConversationInput(content="x")])
    # daprd 1.18.3 answers "Unauthorized" for a missing and a wrong token alike (tests/conformance).
    for metadata, message in ((None, "Unauthorized"), ((("dapr-api-token", "nope"),), "Unauthorized")):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub_call(running, "ConverseAlpha1", req, metadata)
        assert (caught.value.code(), caught.value.details()) == (grpc.StatusCode.UNAUTHENTICATED, message)
    resp = await stub_call(running, "ConverseAlpha1", req, (("dapr-api-token", "s3cret"),))
    assert [o.result for o in resp.outputs] == ["x"]
    got = await run_sdk_app(running, "alpha1", DAPR_API_TOKEN="s3cret")
    assert got["results"] == ["sync hello\ncall <IP>"]
