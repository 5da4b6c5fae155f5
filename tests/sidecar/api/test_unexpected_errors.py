"""What nobody planned for still gets a daprd-shaped answer, a metric with its real status and one
log line with the traceback: never aiohttp's text/plain 500, grpc's UNKNOWN, or a status of OK."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import pytest
from aiohttp import web
from dapr.proto.runtime.v1 import ai_pb2, dapr_pb2_grpc

from parley_sidecar.api import connections, surface
from parley_sidecar.metrics import Metrics
from tests.conftest import Running, StartSidecar, component_yaml
from tests.fakes import OpenAIFake
from tests.sidecar.api.test_metrics import scrape

LONE = "\ud800"
"""A lone surrogate: valid as a JSON escape, not encodable as UTF-8."""
A2 = "/v1.0-alpha2/conversation/llm/converse"
A2_BODY = {"inputs": [{"messages": [{"ofUser": {"content": [{"text": "hi"}]}}]}]}
INVOKE_INTERNAL = "failed conversing with component llm: internal error (see the sidecar log)"


def upstream_answer(content: str) -> dict[str, Any]:
    """An OpenAI answer whose content the sidecar cannot write back out."""
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


@pytest.fixture
async def fake() -> AsyncIterator[OpenAIFake]:
    server = await OpenAIFake().start()
    yield server
    await server.close()


@pytest.fixture
async def running(start_sidecar: StartSidecar, fake: OpenAIFake) -> Running:
    return await start_sidecar({"llm.yaml": component_yaml("llm", "conversation.openai", {
        "key": "sk-test", "model": "gpt-4o-mini", "endpoint": f"{fake.url}/v1", "maxRetries": "0"})})


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("parley") and r.exc_info is not None]


async def test_lone_surrogate_in_a_body_gets_json_400(sidecar: Running) -> None:
    """The parse error quotes the input; the quote is escaped, not a 500 text page."""
    async with sidecar.session.post(sidecar.http + "/v1.0-alpha1/conversation/echo/converse",
                                    data=b'{"inputs": "\\ud800"}') as resp:
        assert resp.status == 400
        assert resp.content_type == "application/json"
        body = await resp.json()
    assert body["errorCode"] == "ERR_MALFORMED_REQUEST"
    assert body["message"].startswith("failed deserializing HTTP body: ")
    assert "\\ud800" in body["message"]  # written as text: every JSON parser and gRPC client takes it
    assert body["message"].encode()


async def test_unwritable_answer_on_http_is_invoke_error_counted_and_logged_once(
        running: Running, fake: OpenAIFake, caplog: pytest.LogCaptureFixture) -> None:
    fake.reply(raw=upstream_answer(f"bad {LONE} text"))
    async with running.session.post(running.http + A2, json=A2_BODY) as resp:
        assert (resp.status, resp.content_type) == (500, "application/json")
        assert await resp.json() == {"errorCode": "ERR_CONVERSATION_INVOKE", "message": INVOKE_INTERNAL}
    (logged,) = tracebacks(caplog)
    assert logged.exc_info is not None and logged.exc_info[0] is UnicodeEncodeError
    families = await scrape(running)
    counted = {(labels["path"], labels["status"]): value
               for _, labels, value in families["dapr_http_server_request_count"]}
    assert counted[(A2, "500")] == 1
    async with running.session.post(running.http + A2, json=A2_BODY) as resp:  # and the next one works
        assert resp.status == 200


async def test_unwritable_answer_on_grpc_is_internal_counted_and_logged_once(
        running: Running, fake: OpenAIFake, caplog: pytest.LogCaptureFixture) -> None:
    fake.reply(raw=upstream_answer(f"bad {LONE} text"))
    request = ai_pb2.ConversationRequest(name="llm", inputs=[ai_pb2.ConversationInput(content="hi")])
    async with grpc.aio.insecure_channel(running.grpc) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await dapr_pb2_grpc.DaprStub(channel).ConverseAlpha1(request)
    assert (caught.value.code(), caught.value.details()) == (grpc.StatusCode.INTERNAL, INVOKE_INTERNAL)
    assert len(tracebacks(caplog)) == 1
    families = await scrape(running)
    statuses = {labels["grpc_server_status"]: value
                for name, labels, value in families["dapr_grpc_io_server_completed_rpcs"]}
    assert statuses == {"INTERNAL": 1}


async def test_upstream_error_with_a_lone_surrogate_reaches_both_surfaces(running: Running, fake: OpenAIFake) -> None:
    """The upstream's own error message is quoted to the client: escaped on HTTP and on gRPC."""
    fake.fail(400, f"no {LONE} here")
    async with running.session.post(running.http + A2, json=A2_BODY) as resp:
        assert resp.status == 500
        body = await resp.json()
    assert body["errorCode"] == "ERR_CONVERSATION_INVOKE" and "no \\ud800 here" in body["message"]
    fake.fail(400, f"no {LONE} here")
    request = ai_pb2.ConversationRequest(name="llm", inputs=[ai_pb2.ConversationInput(content="hi")])
    async with grpc.aio.insecure_channel(running.grpc) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await dapr_pb2_grpc.DaprStub(channel).ConverseAlpha1(request)
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "no \\ud800 here" in (caught.value.details() or "")


async def test_public_and_metrics_ports_count_their_requests(sidecar: Running) -> None:
    async with sidecar.session.get(sidecar.public + "/v1.0/healthz") as resp:
        assert resp.status == 204
    async with sidecar.session.get(sidecar.public + "/no/such/path") as resp:
        assert resp.status == 404
    families = await scrape(sidecar)
    counted = {(labels["path"], labels["status"]) for _, labels, _ in families["dapr_http_server_request_count"]}
    assert {("/v1.0/healthz", "204"), ("/unmatched", "404")} <= counted
    families = await scrape(sidecar)
    counted = {(labels["path"], labels["status"]) for _, labels, _ in families["dapr_http_server_request_count"]}
    assert ("/", "200") in counted  # the first scrape, seen by the second


async def test_a_broken_route_on_a_guarded_port_answers_daprd_json(caplog: pytest.LogCaptureFixture) -> None:
    """The public and metrics ports run ``surface.install`` under ``connections.Runner``, as here."""

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    app = web.Application()
    app.router.add_get("/v1.0/metadata", broken)
    metrics = Metrics("test-app")
    surface.install(app, metrics)
    runner = connections.Runner(app, head_timeout=10, idle_timeout=60, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/v1.0/metadata") as resp:
            assert (resp.status, resp.content_type) == (500, "application/json")
            assert await resp.json() == {"errorCode": "ERR_INTERNAL",
                                         "message": "internal error (see the sidecar log)"}
    finally:
        await runner.cleanup()
    (logged,) = tracebacks(caplog)
    assert logged.exc_info is not None and logged.exc_info[0] is RuntimeError
    assert metrics.http_requests.values == {("test-app", "GET", "/v1.0/metadata", "500"): 1.0}
