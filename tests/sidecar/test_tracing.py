"""Tracing through a real in-process sidecar, spans read from the SDK's in-memory exporter.

What a user sees in their trace backend: the caller's trace joined (HTTP ``traceparent``, gRPC
``grpc-trace-bin`` or ``traceparent``), one span per API call named as daprd names it, one client
span per provider attempt (retries and fallbacks as siblings) with the GenAI attributes, the
provider's request carrying the attempt's ``traceparent``, and the answer carrying the call's. The
real collector and the real daprd are in tests/observability.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import grpc
import pytest
from dapr.proto.runtime.v1 import ai_pb2
from multidict import CIMultiDict
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from parley_sidecar import tracing, tracing_otel
from parley_sidecar.settings import Tracing
from parley_sidecar.tracing_otel import OtelTracer
from tests import grpc_h2
from tests.conftest import Running, StartSidecar, component_yaml
from tests.fakes import OpenAIFake

KEY = "sk-tracing-test-0000"
A2 = "/v1.0-alpha2/conversation/llm/converse"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
CALLER = f"00-{TRACE}-{PARENT}-01"


def body(text: str) -> dict[str, object]:
    return {"inputs": [{"messages": [{"ofUser": {"content": [{"text": text}]}}]}]}


def plan(capture: bool = False) -> tracing.Plan:
    return tracing.Plan(1.0, "http", "127.0.0.1:1", False, "test", "test-app", capture)


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    tracing.install(OtelTracer(plan(), processor=SimpleSpanProcessor(memory)))
    yield memory
    tracing.stop()


@pytest.fixture
async def fake() -> AsyncIterator[OpenAIFake]:
    server = await OpenAIFake(expected_key=KEY).start()
    yield server
    await server.close()


def llm(fake: OpenAIFake, name: str = "llm", **extra: str) -> str:
    return component_yaml(name, "conversation.openai", {
        "key": KEY, "model": "gpt-4o-mini", "endpoint": f"{fake.url}/v1", "retryBackoff": "1ms", **extra})


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def hex_id(value: int, width: int) -> str:
    return format(value, f"0{width}x")


async def test_http_call_joins_the_caller_and_each_attempt_is_a_child(
        start_sidecar: StartSidecar, fake: OpenAIFake, exported: InMemorySpanExporter) -> None:
    running = await start_sidecar({"llm.yaml": llm(fake, maxRetries="2")})
    fake.fail(503, "overloaded")
    async with running.session.post(running.http + A2, json=body("Hello"), headers={"traceparent": CALLER}) as resp:
        assert resp.status == 200
        answered = resp.headers["traceparent"]
    spans = exported.get_finished_spans()
    [server] = by_name(spans, A2)
    assert hex_id(server.context.trace_id, 32) == TRACE
    assert server.parent is not None and hex_id(server.parent.span_id, 16) == PARENT
    assert server.attributes is not None
    assert {k: server.attributes[k] for k in ("dapr.api", "dapr.protocol", "dapr.status_code", "url.full")} == {
        "dapr.api": f"POST {A2}", "dapr.protocol": "http", "dapr.status_code": "200", "url.full": A2}
    assert answered == f"00-{TRACE}-{hex_id(server.context.span_id, 16)}-01"

    first, second = by_name(spans, "chat gpt-4o-mini")
    for attempt in (first, second):  # siblings under the API call's span
        assert attempt.parent is not None and attempt.parent.span_id == server.context.span_id
        assert attempt.attributes is not None
        assert attempt.attributes["gen_ai.operation.name"] == "chat"
        assert attempt.attributes["gen_ai.provider.name"] == "openai"
        assert attempt.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert first.attributes is not None and first.attributes["error.type"] == "503"
    assert second.attributes is not None and "error.type" not in second.attributes
    # the model the provider says answered, not the one asked for (OpenAI answers a dated version)
    assert second.attributes["gen_ai.response.model"] == "fake-upstream-model-2025-01-01"
    assert second.attributes["gen_ai.usage.input_tokens"] == 10
    assert second.attributes["gen_ai.usage.output_tokens"] == 5
    assert second.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert "gen_ai.input.messages" not in second.attributes  # no prompt text unless opted in
    # The provider's request carries the successful attempt's span as its parent.
    assert fake.last.headers["traceparent"] == f"00-{TRACE}-{hex_id(second.context.span_id, 16)}-01"


async def test_fallback_is_a_sibling_of_the_failed_attempt(
        start_sidecar: StartSidecar, fake: OpenAIFake, exported: InMemorySpanExporter) -> None:
    running = await start_sidecar({"llm.yaml": llm(fake, maxRetries="0", fallback="echo"),
                                   "echo.yaml": component_yaml("echo", "conversation.echo", {})})
    fake.fail(500, "down")
    status, _ = await running.post(A2, body("Hello"), headers={"traceparent": CALLER})
    assert status == 200
    spans = exported.get_finished_spans()
    [server] = by_name(spans, A2)
    attempts = [s for s in spans if s.name.startswith("chat")]
    assert [(s.attributes or {}).get("parley.component") for s in attempts] == ["llm", "echo"]
    assert all(s.parent is not None and s.parent.span_id == server.context.span_id for s in attempts)
    assert (attempts[0].attributes or {})["error.type"] == "500"


@pytest.mark.parametrize("header", [
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff is invalid
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  # no flags
    "garbage",
])
async def test_a_malformed_traceparent_starts_a_new_trace(
        exported: InMemorySpanExporter, sidecar: Running, header: str) -> None:
    status, _ = await sidecar.post("/v1.0-alpha2/conversation/echo/converse", body("x"),
                                   headers={"traceparent": header})
    assert status == 200
    [server] = by_name(exported.get_finished_spans(), "/v1.0-alpha2/conversation/echo/converse")
    assert server.parent is None
    assert hex_id(server.context.trace_id, 32) != TRACE


async def test_health_checks_get_no_span(exported: InMemorySpanExporter, sidecar: Running) -> None:
    async with sidecar.session.get(sidecar.http + "/v1.0/healthz") as resp:
        assert resp.status == 204
        assert "traceparent" not in resp.headers
    assert exported.get_finished_spans() == ()


async def test_an_error_answer_marks_the_span(exported: InMemorySpanExporter, sidecar: Running) -> None:
    status, _ = await sidecar.post("/v1.0-alpha2/conversation/missing/converse", body("x"))
    assert status == 400
    [server] = exported.get_finished_spans()
    assert (server.status.status_code.name, server.status.description) == ("ERROR", "Code(400): Bad Request")
    assert (server.attributes or {})["dapr.status_code"] == "400"


async def grpc_call(running: Running, metadata: tuple[tuple[str, str], ...]) -> dict[str, str]:
    async with grpc.aio.insecure_channel(running.grpc) as channel:
        call = channel.unary_unary("/dapr.proto.runtime.v1.Dapr/ConverseAlpha2",
                                   request_serializer=ai_pb2.ConversationRequestAlpha2.SerializeToString,
                                   response_deserializer=ai_pb2.ConversationResponseAlpha2.FromString)
        req = ai_pb2.ConversationRequestAlpha2(name="echo", inputs=[ai_pb2.ConversationInputAlpha2(
            messages=[ai_pb2.ConversationMessage(of_user=ai_pb2.ConversationMessageOfUser(
                content=[ai_pb2.ConversationMessageContent(text="hi")]))])])
        pending = call(req, metadata=metadata)
        await pending
        return {k: str(v) for k, v in await pending.initial_metadata()}


async def test_grpc_joins_the_callers_traceparent(exported: InMemorySpanExporter, sidecar: Running) -> None:
    headers = await grpc_call(sidecar, (("traceparent", CALLER), ("tracestate", "vendor=1")))
    [server] = by_name(exported.get_finished_spans(), "/dapr.proto.runtime.v1.Dapr/ConverseAlpha2")
    assert hex_id(server.context.trace_id, 32) == TRACE
    assert server.parent is not None and hex_id(server.parent.span_id, 16) == PARENT
    assert headers["traceparent"] == f"00-{TRACE}-{hex_id(server.context.span_id, 16)}-01"
    assert headers["tracestate"] == "vendor=1"


def trace_bin(trace: str, span: str, flags: int) -> str:
    """OpenCensus's binary trace context, as grpc-go callers (daprd among them) send it."""
    return grpc_h2.bin_value(b"\x00\x00" + bytes.fromhex(trace) + b"\x01" + bytes.fromhex(span) + bytes((2, flags)))


def converse_bytes() -> bytes:
    return ai_pb2.ConversationRequestAlpha2(name="echo", inputs=[ai_pb2.ConversationInputAlpha2(
        messages=[ai_pb2.ConversationMessage(of_user=ai_pb2.ConversationMessageOfUser(
            content=[ai_pb2.ConversationMessageContent(text="hi")]))])]).SerializeToString()


@pytest.mark.parametrize("also_traceparent", [False, True])
async def test_grpc_joins_the_callers_grpc_trace_bin_first(
        exported: InMemorySpanExporter, sidecar: Running, also_traceparent: bool) -> None:
    """As daprd: the binary context is read before ``traceparent``, and the span's ids are answered
    in it (and in ``traceparent``, which grpcio clients can read)."""
    other = f"00-{'1' * 32}-{'2' * 16}-01"
    metadata = [("grpc-trace-bin", trace_bin(TRACE, PARENT, 1)), *([("traceparent", other)] if also_traceparent else [])]
    port = int(sidecar.grpc.rsplit(":", 1)[1])
    headers, _, trailers = await asyncio.to_thread(
        grpc_h2.unary, port, "/dapr.proto.runtime.v1.Dapr/ConverseAlpha2", converse_bytes(), metadata)
    assert trailers["grpc-status"] == "0"
    [server] = by_name(exported.get_finished_spans(), "/dapr.proto.runtime.v1.Dapr/ConverseAlpha2")
    assert hex_id(server.context.trace_id, 32) == TRACE
    assert server.parent is not None and hex_id(server.parent.span_id, 16) == PARENT
    span = hex_id(server.context.span_id, 16)
    assert headers["grpc-trace-bin"] == trace_bin(TRACE, span, 1)
    assert headers["traceparent"] == f"00-{TRACE}-{span}-01"


async def test_a_malformed_grpc_trace_bin_is_ignored(exported: InMemorySpanExporter, sidecar: Running) -> None:
    port = int(sidecar.grpc.rsplit(":", 1)[1])
    for value in ("not base64!", grpc_h2.bin_value(b"\x07" * 29), trace_bin("0" * 32, PARENT, 1)):
        _, _, trailers = await asyncio.to_thread(
            grpc_h2.unary, port, "/dapr.proto.runtime.v1.Dapr/ConverseAlpha2", converse_bytes(),
            [("grpc-trace-bin", value)])
        assert trailers["grpc-status"] == "0"
    servers = by_name(exported.get_finished_spans(), "/dapr.proto.runtime.v1.Dapr/ConverseAlpha2")
    assert len(servers) == 3 and all(s.parent is None for s in servers)  # new traces


async def test_grpc_without_a_caller_starts_a_trace(exported: InMemorySpanExporter, sidecar: Running) -> None:
    headers = await grpc_call(sidecar, ())
    [server] = by_name(exported.get_finished_spans(), "/dapr.proto.runtime.v1.Dapr/ConverseAlpha2")
    assert server.parent is None
    assert headers["traceparent"].split("-")[1] == hex_id(server.context.trace_id, 32)


async def test_a_stream_span_ends_with_the_stream_and_says_what_it_answered(
        start_sidecar: StartSidecar, fake: OpenAIFake, exported: InMemorySpanExporter) -> None:
    running = await start_sidecar({"llm.yaml": llm(fake)})
    path = A2 + "/stream"
    async with running.session.post(running.http + path, json=body("one two three"),
                                    headers={"traceparent": CALLER}) as resp:
        assert resp.status == 200
        assert resp.headers["traceparent"].startswith(f"00-{TRACE}-")
        await resp.read()
    spans = exported.get_finished_spans()
    [server] = by_name(spans, path)
    [attempt] = by_name(spans, "chat gpt-4o-mini")
    assert attempt.parent is not None and attempt.parent.span_id == server.context.span_id
    assert attempt.end_time is not None and server.end_time is not None and attempt.end_time <= server.end_time
    assert (attempt.attributes or {})["gen_ai.response.finish_reasons"] == ("stop",)
    assert (attempt.attributes or {})["gen_ai.response.model"] == "fake-upstream-model-2025-01-01"  # the chunks' model
    assert fake.last.headers["traceparent"] == f"00-{TRACE}-{hex_id(attempt.context.span_id, 16)}-01"


async def captured_attempt(start_sidecar: StartSidecar, fake: OpenAIFake) -> Mapping[str, Any]:
    """The attempt span's attributes of one alpha2 call ("secret plan") to the fake, with prompt
    and answer text captured (``plan(capture=True)``)."""
    memory = InMemorySpanExporter()
    tracing.install(OtelTracer(plan(capture=True), processor=SimpleSpanProcessor(memory)))
    try:
        running = await start_sidecar({"llm.yaml": llm(fake)})
        status, _ = await running.post(A2, body("secret plan"))
        assert status == 200
    finally:
        tracing.stop()
    [attempt] = by_name(memory.get_finished_spans(), "chat gpt-4o-mini")
    return attempt.attributes or {}


async def test_the_sdks_span_limits_from_the_environment_apply(
        start_sidecar: StartSidecar, fake: OpenAIFake, monkeypatch: pytest.MonkeyPatch) -> None:
    """parley records its spans itself; the SDK's ``OTEL_SPAN_ATTRIBUTE_*`` limits still apply."""
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "12")
    attributes = await captured_attempt(start_sidecar, fake)
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert len(str(attributes["gen_ai.input.messages"])) == 12


async def test_prompt_and_answer_text_only_when_opted_in(
        start_sidecar: StartSidecar, fake: OpenAIFake) -> None:
    attributes = await captured_attempt(start_sidecar, fake)
    assert json.loads(str(attributes["gen_ai.input.messages"])) == [
        {"role": "user", "parts": [{"type": "text", "content": "secret plan"}]}]
    assert "echo: secret plan" in str(attributes["gen_ai.output.messages"])


async def test_a_streamed_answer_text_only_when_opted_in(start_sidecar: StartSidecar, fake: OpenAIFake) -> None:
    spans: dict[bool, ReadableSpan] = {}
    for capture in (False, True):
        memory = InMemorySpanExporter()
        tracing.install(OtelTracer(plan(capture=capture), processor=SimpleSpanProcessor(memory)))
        try:
            running = await start_sidecar({"llm.yaml": llm(fake)})
            async with running.session.post(running.http + A2 + "/stream", json=body("secret plan")) as resp:
                assert resp.status == 200
                await resp.read()
        finally:
            tracing.stop()
        [spans[capture]] = by_name(memory.get_finished_spans(), "chat gpt-4o-mini")
    assert "gen_ai.output.messages" not in (spans[False].attributes or {})
    assert json.loads(str((spans[True].attributes or {})["gen_ai.output.messages"])) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "echo: secret plan"}], "finish_reason": "stop"}]


async def test_off_no_header_and_no_sdk_import(sidecar: Running) -> None:
    async with sidecar.session.post(sidecar.http + "/v1.0-alpha2/conversation/echo/converse",
                                    json=body("x"), headers={"traceparent": CALLER}) as resp:
        assert resp.status == 200
        assert "traceparent" not in resp.headers


def test_off_the_sdk_is_never_imported() -> None:
    """A sidecar that starts and stops without tracing never imports the SDK (no memory for it)."""
    code = ("import sys, asyncio\n"
            "from parley_sidecar import cli, runtime\n"
            "from parley_sidecar.settings import SidecarSettings, Ports\n"
            "async def main():\n"
            "    s = runtime.Sidecar(SidecarSettings(app_id='a', ports=Ports(0, 0, 0, 0),"
            " listen_addresses=['127.0.0.1'], public_listen_address='127.0.0.1', metrics_listen_address='127.0.0.1'))\n"
            "    await s.start(); await s.stop()\n"
            "asyncio.run(main())\n"
            "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True,
                         env={"PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "[]"


async def test_an_unreachable_collector_does_not_hold_a_call(
        start_sidecar: StartSidecar, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="parley.tracing")
    running = await start_sidecar(configuration=_config(Tracing(enabled=True, sampling_rate=1.0,
                                                               otel_endpoint="127.0.0.1:9", otel_protocol="http",
                                                               otel_secure=False)))
    assert tracing.current() is not None
    for _ in range(3):
        status, _ = await running.post("/v1.0-alpha2/conversation/echo/converse", body("x"))
        assert status == 200
    assert "tracing is on (Configuration): http to 127.0.0.1:9" in caplog.text


def _config(t: Tracing) -> object:
    from parley_sidecar.settings import Configuration

    return Configuration(tracing=t)


# -- what turns tracing on (pure) ------------------------------------------------------------------
ON = Tracing(enabled=True, sampling_rate=0.5, otel_endpoint="collector:4318", otel_protocol="http",
             otel_secure=False)
ENV = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env-collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}


@pytest.mark.parametrize(("config", "environ", "expected"), [
    (Tracing(), {}, None),
    (ON, {}, ("http", "collector:4318", 0.5, "Configuration")),
    (ON, ENV, ("http", "collector:4318", 0.5, "Configuration")),  # the Configuration wins
    (Tracing(), ENV, ("grpc", "http://env-collector:4317", 1.0, "environment")),
    (Tracing(), {**ENV, "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"},
     ("grpc", "http://env-collector:4317", 0.01, "environment")),
    (Tracing(), {**ENV, "OTEL_TRACES_EXPORTER": "none"}, None),
    (Tracing(), {**ENV, "OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"}, None),
    (ON, {"OTEL_SDK_DISABLED": "true"}, None),
    (Tracing(enabled=True, sampling_rate=1.0, zipkin_endpoint="http://zipkin:9411/api/v2/spans"), {},
     ("zipkin", "http://zipkin:9411/api/v2/spans", 1.0, "Configuration")),
])
def test_plan(config: Tracing, environ: dict[str, str], expected: tuple[str, str, float, str] | None) -> None:
    chosen = tracing.plan(config, app_id="app", environ=environ)
    assert (None if chosen is None else (chosen.protocol, chosen.endpoint, chosen.sampling_rate, chosen.source)
            ) == expected


def test_service_name_is_the_app_id_unless_the_environment_names_one() -> None:
    assert (tracing.plan(ON, app_id="app", environ={}) or plan()).service_name == "app"
    assert (tracing.plan(ON, app_id="app", environ={"OTEL_SERVICE_NAME": "svc"}) or plan()).service_name == "svc"


@pytest.fixture
def rarely() -> Iterator[InMemorySpanExporter]:
    """A tracer that samples no call of its own (the rate's draw always says no)."""
    memory = InMemorySpanExporter()
    tracing.install(OtelTracer(tracing.Plan(0.0, "http", "127.0.0.1:1", False, "test", "test-app", False),
                               processor=SimpleSpanProcessor(memory)))
    yield memory
    tracing.stop()


@pytest.mark.parametrize(("flags", "recorded"), [("01", True), ("00", False), (None, False)])
async def test_the_callers_sampling_decision_is_followed(
        rarely: InMemorySpanExporter, sidecar: Running, flags: str | None, recorded: bool) -> None:
    headers = {} if flags is None else {"traceparent": f"00-{TRACE}-{PARENT}-{flags}"}
    async with sidecar.session.post(sidecar.http + "/v1.0-alpha2/conversation/echo/converse", json=body("x"),
                                    headers=headers) as resp:
        assert resp.status == 200
        version, trace_id, span_id, answered_flags = resp.headers["traceparent"].split("-")
    assert (version, answered_flags) == ("00", flags or "00")
    assert (trace_id == TRACE) == (flags is not None)  # an unsampled caller's trace still carries on
    assert span_id not in (PARENT, "0" * 16)
    assert [s.name for s in rarely.get_finished_spans()] == (
        ["chat", "/v1.0-alpha2/conversation/echo/converse"] if recorded else [])


@pytest.mark.parametrize(("method", "path", "answer"), [
    # aiohttp's own 404, answered after the call's handler returned
    ("GET", "/v1.0/no-such-api", (404, "application/json")),
    # prepared by its handler, inside the call (the echo component streams)
    ("POST", "/v1.0-alpha2/conversation/echo/converse/stream", (200, "text/event-stream")),
])
@pytest.mark.parametrize("sampled", [True, False])
async def test_every_answer_names_its_call(
        start_sidecar: StartSidecar, method: str, path: str, answer: tuple[int, str], sampled: bool) -> None:
    memory = InMemorySpanExporter()
    tracing.install(OtelTracer(tracing.Plan(1.0 if sampled else 0.0, "http", "127.0.0.1:1", False, "test",
                                            "test-app", False), processor=SimpleSpanProcessor(memory)))
    try:
        running = await start_sidecar()
        async with running.session.request(method, running.http + path, json=body("x")) as resp:
            await resp.read()
            assert (resp.status, resp.content_type) == answer
            version, trace_id, span_id, flags = resp.headers["traceparent"].split("-")
    finally:
        tracing.stop()
    assert version == "00" and int(flags, 16) & 1 == sampled  # bit 0: sampled (the SDK sets 2, random ids)
    assert trace_id != "0" * 32 and span_id != "0" * 16
    spans = memory.get_finished_spans()
    assert [hex_id(s.context.span_id, 16) for s in spans if s.parent is None] == ([span_id] if sampled else [])


@pytest.mark.parametrize("caller", [None, f"00-{TRACE}-{PARENT}-00"])
async def test_an_unsampled_call_carries_its_ids_to_the_provider(
        start_sidecar: StartSidecar, fake: OpenAIFake, rarely: InMemorySpanExporter, caller: str | None) -> None:
    """Nothing of an unsampled call is recorded, but a provider (or a proxy) that traces still joins
    the same trace: its request carries what the answer carries, the caller's tracestate too."""
    running = await start_sidecar({"llm.yaml": llm(fake)})
    headers = {} if caller is None else {"traceparent": caller, "tracestate": "vendor=x"}
    async with running.session.post(running.http + A2, json=body("Hello"), headers=headers) as resp:
        assert resp.status == 200
        answered = resp.headers["traceparent"]
        assert resp.headers.get("tracestate") == (None if caller is None else "vendor=x")
    version, trace_id, span_id, flags = answered.split("-")
    assert (version, flags) == ("00", "00") and span_id not in (PARENT, "0" * 16)
    assert (trace_id == TRACE) == (caller is not None)
    assert fake.last.headers["traceparent"] == answered
    assert fake.last.headers.get("tracestate") == (None if caller is None else "vendor=x")
    assert rarely.get_finished_spans() == ()


async def test_a_grpc_stream_span_ends_with_the_stream(
        exported: InMemorySpanExporter, start_sidecar: StartSidecar, fake: OpenAIFake) -> None:
    running = await start_sidecar({"llm.yaml": llm(fake)})
    async with grpc.aio.insecure_channel(running.grpc) as channel:
        call = channel.unary_stream("/dapr.proto.runtime.v1.Dapr/ConverseStreamAlpha2",
                                    request_serializer=ai_pb2.ConversationRequestAlpha2.SerializeToString,
                                    response_deserializer=lambda raw: raw)
        req = ai_pb2.ConversationRequestAlpha2(name="llm", inputs=[ai_pb2.ConversationInputAlpha2(
            messages=[ai_pb2.ConversationMessage(of_user=ai_pb2.ConversationMessageOfUser(
                content=[ai_pb2.ConversationMessageContent(text="one two three")]))])])
        pieces = [piece async for piece in call(req, metadata=(("traceparent", CALLER),))]
    assert len(pieces) > 1
    spans = exported.get_finished_spans()
    [server] = by_name(spans, "/dapr.proto.runtime.v1.Dapr/ConverseStreamAlpha2")
    [attempt] = by_name(spans, "chat gpt-4o-mini")
    assert hex_id(server.context.trace_id, 32) == TRACE
    assert attempt.parent is not None and attempt.parent.span_id == server.context.span_id
    assert attempt.end_time is not None and server.end_time is not None and attempt.end_time <= server.end_time
    assert (attempt.attributes or {})["gen_ai.usage.output_tokens"] > 0


@pytest.mark.parametrize(("endpoint", "secure", "url"), [
    ("collector:4318", False, "http://collector:4318/v1/traces"),  # Dapr's endpointAddress: host:port
    ("collector:4318", True, "https://collector:4318/v1/traces"),
    ("http://collector:4318/", False, "http://collector:4318/v1/traces"),  # OTEL_EXPORTER_OTLP_ENDPOINT: a base
    ("https://gateway/otlp/v1/traces", True, "https://gateway/otlp/v1/traces"),  # a full URL as given
])
def test_where_otlp_http_posts(endpoint: str, secure: bool, url: str) -> None:
    from parley_sidecar.tracing_otel import _url

    assert _url(tracing.Plan(1.0, "http", endpoint, secure, "test", "app", False)) == url


async def test_calls_without_a_caller_are_sampled_at_the_rate(start_sidecar: StartSidecar) -> None:
    """At a rate of 0.5, about half the calls get a span and a sampled traceparent (400 calls: the
    bounds are six standard deviations wide; a rate applied twice, 0.25, falls far outside)."""
    memory = InMemorySpanExporter()
    tracing.install(OtelTracer(tracing.Plan(0.5, "http", "127.0.0.1:1", False, "test", "test-app", False),
                               processor=SimpleSpanProcessor(memory)))
    try:
        running = await start_sidecar()
        answered = []
        for _ in range(400):
            async with running.session.post(running.http + "/v1.0-alpha2/conversation/echo/converse",
                                            json=body("x")) as resp:
                assert resp.status == 200
                answered.append(int(resp.headers["traceparent"].rsplit("-", 1)[1], 16) & 1 == 1)
    finally:
        tracing.stop()
    roots = [s for s in memory.get_finished_spans() if s.parent is None]
    assert 140 <= sum(answered) <= 260
    assert len(roots) == sum(answered)


_TP = f"00-{TRACE}-{PARENT}"


@pytest.mark.parametrize("headers", [
    {"traceparent": f"{_TP}-01"}, {"traceparent": f"{_TP}-00"}, {"traceparent": f"{_TP}-03"},
    {"traceparent": f"{_TP}-01", "tracestate": "vendor=x,other=y"}, {"traceparent": f"{_TP}-00", "tracestate": "a=b"},
    {"traceparent": f"{_TP}-01", "tracestate": "not a tracestate!"},
    {"traceparent": f" \t{_TP}-01 "}, {"traceparent": f"{_TP}-01-extra"}, {"traceparent": f"01-{TRACE}-{PARENT}-01-x"},
    {"traceparent": f"ff-{TRACE}-{PARENT}-01"}, {"traceparent": f"00-{'0' * 32}-{PARENT}-01"},
    {"traceparent": f"00-{TRACE}-{'0' * 16}-01"}, {"traceparent": f"00-{TRACE.upper()}-{PARENT}-01"},
    {"traceparent": f"{_TP}-zz"}, {"traceparent": f"{_TP}-01" + "x" * 600}, {"traceparent": "garbage"},
    {"traceparent": ""}, {"tracestate": "a=b"}, {},
])
@pytest.mark.parametrize("carrier", [dict, CIMultiDict])
def test_a_callers_trace_context_is_read_as_opentelemetrys_propagator_reads_it(
        headers: dict[str, str], carrier: type[Mapping[str, str]]) -> None:
    """The plain traceparent is read by parley itself (tracing_otel._remote); every header, plain
    or not, must give the caller's span context that OpenTelemetry's propagator gives, or none."""
    given = carrier(headers)  # type: ignore[call-arg]
    context = trace.get_current_span(TraceContextTextMapPropagator().extract(given, context=Context()))
    expected = context.get_span_context()
    remote = tracing_otel._remote(given)
    if not expected.is_valid:
        assert remote is None
    else:
        assert remote == expected
        assert remote is not None and remote.trace_state.to_header() == expected.trace_state.to_header()
