"""parley's OTLP encoder (``tracing_otlp``) writes what the SDK's ``encode_spans`` writes, and the
exporters built on it (``tracing_otlp_http``, ``tracing_otlp_grpc``) deliver it to real OTLP
receivers on loopback with the ``OTEL_EXPORTER_OTLP_*`` settings a user sets (headers,
compression, a CA certificate). The real Jaeger is in tests/observability.

The bytes are compared too: upb writes fields in field-number order and this schema has no map
fields, so its serialization is deterministic and parley's must equal it byte for byte.
"""

from __future__ import annotations

import gzip
import http.server
import math
import ssl
import threading
from collections.abc import Iterator, Sequence
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from parley_operator import certs
from parley_sidecar import tracing, tracing_otel, tracing_otlp
from parley_sidecar.tracing_otlp_grpc import GrpcExporter
from parley_sidecar.tracing_otlp_http import HttpExporter

RESOURCE = Resource({"service.name": "app", "service.instance.id": "pod-1"})
OTHER = Resource({"service.name": "other", "count": 3, "ratio": 0.5, "on": True, "names": ("a", "b")},
                 "https://opentelemetry.io/schemas/1.21.0")
SCOPE = InstrumentationScope("parley", "")
SCOPED = InstrumentationScope("lib", "1.2.3", "https://schema.example/1", {"scope.attr": "x", "n": 7})
TRACE = 0x4BF92F3577B34DA6A3CE929D0E0E4736
UNSET = Status(StatusCode.UNSET)
ROOT = SpanContext(TRACE, 0x00F067AA0BA902B7, False, TraceFlags(3))
REMOTE = SpanContext(TRACE, 0x1111111111111111, True, TraceFlags(1), TraceState([("vendor", "v1"), ("x", "y")]))
EVERY_TYPE: dict[str, Any] = {
    "str": "chat", "empty": "", "unicode": "żółw 🐢 \u00e9", "true": True, "false": False,
    "zero": 0, "one": 1, "negative": -1, "big": 2**63 - 1, "small": -(2**63), "varint": 300,
    "float": 1.5, "float.zero": 0.0, "float.negative": -2.25e-300, "inf": math.inf,
    "strings": ("stop", "length", ""), "no.strings": (), "ints": (1, -2, 2**40), "floats": (0.5, -1.0),
    "bools": (True, False), "bytes": b"\x00\xff", "long": "x" * 300,
}


def span(name: str = "POST /v1.0-alpha2/conversation/echo/converse", *, context: SpanContext | None = None,
         parent: SpanContext | None = None, kind: SpanKind = SpanKind.SERVER, attributes: Any = None,
         status: Status = UNSET, resource: Resource = RESOURCE,
         scope: InstrumentationScope | None = SCOPE, **extra: Any) -> ReadableSpan:
    context = context or SpanContext(TRACE, 0x2222222222222222, False, TraceFlags(1), REMOTE.trace_state)
    return ReadableSpan(name, context, parent, resource, attributes if attributes is not None else {"a": "b"},
                        kind=kind, status=status, start_time=1_765_000_000_123_456_789,
                        end_time=1_765_000_000_223_456_789, instrumentation_scope=scope, **extra)


def assert_same(spans: Sequence[ReadableSpan]) -> bytes:
    """parley's bytes parse to the SDK's message and are its serialization."""
    ours = tracing_otlp.encode(spans)
    assert ours is not None
    theirs = encode_spans(spans)
    assert ExportTraceServiceRequest.FromString(ours) == theirs
    assert ours == theirs.SerializeToString()
    return ours


@pytest.mark.parametrize("kind", list(SpanKind))
@pytest.mark.parametrize("parent", [None, ROOT, REMOTE], ids=["root", "child", "remote-parent"])
def test_every_kind_and_parent(kind: SpanKind, parent: SpanContext | None) -> None:
    assert_same([span(kind=kind, parent=parent)])


def test_every_attribute_type() -> None:
    assert_same([span(attributes=EVERY_TYPE, scope=SCOPED, resource=OTHER)])


def test_a_not_a_number_float_has_the_same_bytes() -> None:
    """NaN is not equal to itself, so the parsed messages differ: the bytes must not."""
    ours = tracing_otlp.encode([span(attributes={"nan": math.nan})])
    assert ours == encode_spans([span(attributes={"nan": math.nan})]).SerializeToString()


@pytest.mark.parametrize("status", [Status(StatusCode.OK), Status(StatusCode.ERROR),
                                    Status(StatusCode.ERROR, "upstream said 503: overloaded ⚠")])
def test_status(status: Status) -> None:
    assert_same([span(status=status, attributes={"error.type": "503"})])


def test_ids_and_times_at_their_limits() -> None:
    context = SpanContext(2**128 - 1, 2**64 - 1, False, TraceFlags(0))
    edge = ReadableSpan("", context, SpanContext(1, 1, True), RESOURCE, {}, start_time=0, end_time=2**64 - 1,
                        instrumentation_scope=None)
    assert_same([edge, span(context=SpanContext(1, 1, False))])


def test_span_limits_count_dropped_attributes() -> None:
    bounded = BoundedAttributes(3, EVERY_TYPE, immutable=False, max_value_len=4)
    encoded = assert_same([span(attributes=bounded)])
    [message] = ExportTraceServiceRequest.FromString(encoded).resource_spans[0].scope_spans[0].spans
    assert message.dropped_attributes_count == len(EVERY_TYPE) - 3


def test_spans_are_grouped_by_resource_then_scope_as_the_sdk_groups_them() -> None:
    same_as_resource = Resource(dict(RESOURCE.attributes))  # equal, another object
    spans = [span(), span(resource=OTHER), span(scope=SCOPED), span(resource=same_as_resource),
             span(resource=OTHER, scope=None), span(scope=InstrumentationScope("lib", "1.2.3", "https://schema.example/1")),
             span(resource=OTHER, scope=SCOPED), span()]
    request = ExportTraceServiceRequest.FromString(assert_same(spans))
    # RESOURCE: SCOPE, SCOPED, and a scope equal to SCOPED but for its attributes; OTHER: SCOPE, None, SCOPED
    assert [len(r.scope_spans) for r in request.resource_spans] == [3, 3]


def test_a_batch_of_parleys_own_spans() -> None:
    """512 spans (the batch processor's batch) as parley's tracer records them: calls and attempts."""
    memory = InMemorySpanExporter()
    tracer = tracing_otel.OtelTracer(tracing.Plan(1.0, "http", "127.0.0.1:1", False, "test", "app", False),
                                     processor=SimpleSpanProcessor(memory))
    try:
        for i in range(256):
            call = tracing_otel.RecordedSpan(tracer, f"/v1.0-alpha2/conversation/{i}/converse", SpanKind.SERVER,
                                             REMOTE if i % 2 else None, {"dapr.protocol": "http"})
            attempt = tracing_otel.RecordedSpan(tracer, "chat gpt-4o-mini", SpanKind.CLIENT, call.context, {
                "gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": i,
                "gen_ai.response.finish_reasons": ("stop",)})
            if i % 3 == 0:
                attempt.set_status(Status(StatusCode.ERROR, "timeout"))
            attempt.end()
            call.end()
    finally:
        tracer.shutdown()
    spans = memory.get_finished_spans()
    assert len(spans) == 512
    assert_same(spans)


def test_parleys_spans_under_the_sdks_span_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``OTEL_SPAN_ATTRIBUTE_*`` set, parley's spans keep the SDK's ``BoundedAttributes``, whose
    drops are counted in the span."""
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "5")
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "3")
    memory = InMemorySpanExporter()
    tracer = tracing_otel.OtelTracer(tracing.Plan(1.0, "http", "127.0.0.1:1", False, "test", "app", False),
                                     processor=SimpleSpanProcessor(memory))
    try:
        tracing_otel.RecordedSpan(tracer, "chat", SpanKind.CLIENT, REMOTE, EVERY_TYPE).end()
    finally:
        tracer.shutdown()
    [finished] = memory.get_finished_spans()
    assert finished.dropped_attributes == len(EVERY_TYPE) - 5
    assert_same([finished])


@pytest.mark.parametrize("extra", [
    {"events": [Event("e", {"k": "v"}, timestamp=5)]},
    {"links": [Link(ROOT, {"k": "v"})]},
    {"attributes": {"nested": {"a": 1}}},  # a mapping: the SDK writes a kvlist
    {"attributes": {"huge": 2**63, "kept": "yes"}},  # out of int64: the SDK logs it and leaves it out
    {"attributes": {"surrogate": "\ud800"}},
], ids=["events", "links", "mapping", "int-out-of-range", "lone-surrogate"])
def test_what_parley_never_makes_is_left_to_the_sdk(extra: dict[str, Any]) -> None:
    assert tracing_otlp.encode([span(), span(**extra)]) is None


# -- the exporters, to real receivers on loopback ---------------------------------------------------

class _Receiver(http.server.BaseHTTPRequestHandler):
    got: list[tuple[dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def bundle(tmp_path: Path) -> tuple[certs.Bundle, Path]:
    made = certs.generate(["localhost"], ca_days=1, cert_days=1)
    (tmp_path / "ca.pem").write_bytes(made.ca_pem)
    (tmp_path / "cert.pem").write_bytes(made.cert_pem)
    (tmp_path / "key.pem").write_bytes(made.key_pem)
    return made, tmp_path


@pytest.fixture
def receiver(bundle: tuple[certs.Bundle, Path]) -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """An OTLP/HTTP receiver over TLS (the CA in ``ca.pem``): its traces URL and what it got."""
    got: list[tuple[dict[str, str], bytes]] = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), type("Receiver", (_Receiver,), {"got": got}))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(bundle[1] / "cert.pem", bundle[1] / "key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://localhost:{server.server_address[1]}/v1/traces", got
    server.shutdown()
    server.server_close()


def test_http_sends_parleys_bytes_with_the_environments_settings(
        receiver: tuple[str, list[tuple[dict[str, str], bytes]]], bundle: tuple[certs.Bundle, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-tenant=t1,authorization=Bearer%20token")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", str(bundle[1] / "ca.pem"))
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):  # requests lets these override the session's CA
        monkeypatch.delenv(name, raising=False)
    url, got = receiver
    exporter = HttpExporter(url, 5.0)
    spans = [span(attributes=EVERY_TYPE), span(kind=SpanKind.CLIENT, parent=ROOT)]
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    assert exporter.export([span(events=[Event("e", timestamp=1)])]) == SpanExportResult.SUCCESS  # the SDK's
    exporter.shutdown()
    assert exporter.export(spans) == SpanExportResult.FAILURE  # shut down, as the SDK's
    [(headers, body), (_, sdk_body)] = got
    assert headers["x-tenant"] == "t1" and headers["authorization"] == "Bearer token"
    assert headers["content-encoding"] == "gzip" and headers["content-type"] == "application/x-protobuf"
    assert gzip.decompress(body) == encode_spans(spans).SerializeToString()
    assert ExportTraceServiceRequest.FromString(gzip.decompress(sdk_body)).resource_spans[0].scope_spans[0].spans[0].events


def test_http_to_an_unreachable_collector_fails_within_its_timeout(caplog: pytest.LogCaptureFixture) -> None:
    exporter = HttpExporter("http://127.0.0.1:9/v1/traces", 0.5)
    assert exporter.export([span()]) == SpanExportResult.FAILURE
    assert "Failed to export" in caplog.text


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], ExportTraceServiceRequest]] = []

    def Export(self, request: ExportTraceServiceRequest,
               context: grpc.ServicerContext) -> trace_service_pb2.ExportTraceServiceResponse:
        self.got.append(({k: str(v) for k, v in context.invocation_metadata()}, request))
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.mark.parametrize("secure", [False, True], ids=["insecure", "tls"])
def test_grpc_sends_parleys_message_with_the_environments_settings(
        secure: bool, bundle: tuple[certs.Bundle, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    made, folder = bundle
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-tenant=t1")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")
    service = _TraceService()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(service, server)  # type: ignore[no-untyped-call]
    if secure:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", str(folder / "ca.pem"))
        port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(made.key_pem, made.cert_pem)]))
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        exporter = GrpcExporter(endpoint=f"localhost:{port}", insecure=not secure, timeout=5.0)
        spans = [span(attributes=EVERY_TYPE, resource=OTHER), span(kind=SpanKind.CLIENT, parent=REMOTE)]
        assert exporter.export(spans) == SpanExportResult.SUCCESS
        assert exporter.export([span(links=[Link(ROOT)])]) == SpanExportResult.SUCCESS  # the SDK's encoder
        exporter.shutdown()
    finally:
        server.stop(None)
    [(metadata, request), (_, sdk_request)] = service.got
    assert metadata["x-tenant"] == "t1"
    assert request == encode_spans(spans)
    assert sdk_request.resource_spans[0].scope_spans[0].spans[0].links
