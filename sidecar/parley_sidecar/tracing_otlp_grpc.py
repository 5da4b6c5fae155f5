"""The SDK's OTLP/gRPC span exporter, sending the bytes of parley's encoder (``tracing_otlp``).

The exporter's mixin asks ``_translate_data(spans)`` for the request message, once per attempt,
and does the rest itself (channel, credentials, headers, compression, timeout and the
``OTEL_EXPORTER_OTLP_[TRACES_]*`` variables, retries, metrics, logs). :class:`GrpcExporter`
answers with ``ExportTraceServiceRequest.FromString`` of parley's bytes: upb parses them in C
(the stub serializes the message again, also in C), a small part of what the SDK's encoder's
Python costs (``docs/tracing.md``, "Round 6"). A batch parley's encoder leaves to the SDK
(``tracing_otlp.encode`` answers None) gets the SDK's ``encode_spans``.

Imported only when tracing is on over OTLP/gRPC (``tracing_otel``).
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan

from parley_sidecar import tracing_otlp

__all__ = ["GrpcExporter"]


class GrpcExporter(OTLPSpanExporter):
    def _translate_data(self, data: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
        encoded = tracing_otlp.encode(data)
        if encoded is None:
            return super()._translate_data(data)
        return ExportTraceServiceRequest.FromString(encoded)
