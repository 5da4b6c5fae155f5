"""The SDK's OTLP/HTTP span exporter, sending the bytes of parley's encoder (``tracing_otlp``).

The SDK's ``OTLPSpanExporter.export`` calls its module's ``encode_spans`` itself and offers no
hook for the bytes, so :class:`HttpExporter` overrides ``export`` and does what it does after the
encoding: the export's metrics (``self._metrics``), then its HTTP client (``self._client``, built
by the SDK's constructor from the arguments and every ``OTEL_EXPORTER_OTLP_[TRACES_]*`` variable:
headers, timeout, compression, certificates, credential provider), which compresses, posts,
retries with backoff until the timeout, and logs a failure. Those two attributes are the only
private names used; everything unusual goes to the SDK's own ``export``: a batch parley's encoder
leaves to the SDK (``tracing_otlp.encode`` answers None), a batch past the size limit (the SDK
logs and counts the drop), an exporter already shut down. Neither a subclass of the transport
(which would re-implement the retries) nor a patched ``encode_spans`` (process-wide, for every
exporter) would keep as much of the SDK's behaviour with as little of its internals.

Imported only when tracing is on over OTLP/HTTP (``tracing_otel``).
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE

from parley_sidecar import tracing_otlp

__all__ = ["HttpExporter"]

MAX_REQUEST_SIZE = 64 * 1024 * 1024
"""Bytes of one request at most, before compression: the SDK's default (a larger batch is dropped)."""


class HttpExporter(OTLPSpanExporter):
    def __init__(self, endpoint: str, timeout: float) -> None:
        super().__init__(endpoint=endpoint, timeout=timeout, max_request_size=MAX_REQUEST_SIZE)
        self._parley_closed = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        data = None if self._parley_closed else tracing_otlp.encode(spans)
        if data is None or len(data) > MAX_REQUEST_SIZE:
            return super().export(spans)
        with self._metrics.export_operation(len(spans)) as result:
            sent = self._client.export(data)
            if not sent.success:
                result.error = sent.error
                result.error_attrs = (None if sent.status_code is None
                                      else {HTTP_RESPONSE_STATUS_CODE: sent.status_code})
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._parley_closed = True
        super().shutdown()  # type: ignore[no-untyped-call]
