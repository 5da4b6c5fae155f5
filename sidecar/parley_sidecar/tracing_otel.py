"""The OpenTelemetry SDK behind ``tracing``: imported only when tracing is on (``tracing.start``).

Spans leave through a ``BatchSpanProcessor`` (its own thread, a bounded queue of
:data:`QUEUE_SIZE` spans, spans dropped when it is full): no request waits for an export, and an
unreachable collector costs a warning from the exporter, never a stalled call. Sampling is
daprd's ``ParentBased(TraceIdRatioBased(samplingRate))``: a caller's decision in its
``traceparent`` is followed, a call without one is sampled at the rate. The call's span decides
that itself (:meth:`OtelTracer._server`), and an unsampled call gets a ``tracing.UnsampledScope``:
no span object and no OpenTelemetry context at all, only its ids in one context variable (for the
answer's and the provider request's ``traceparent``). At a rate of 0.01 that is 99 calls in 100.
A sampled call's spans are recorded by parley (:class:`RecordedSpan`, the SDK's ``ReadableSpan``
when they end: a third of the instructions of the SDK's own spans, ``docs/tracing.md``, "Round 5")
and exported by the SDK's batch processor and OTLP exporters, which send the protobuf bytes of
parley's own encoder (``tracing_otlp``; the exporters in ``tracing_otlp_http`` and
``tracing_otlp_grpc``): under a quarter of the instructions of the SDK's ``encode_spans`` ("Round 6").

Incoming context: W3C ``traceparent``/``tracestate`` (the plain form read here, :func:`_plain`;
anything else by OpenTelemetry's propagator, which ignores a malformed header as the W3C spec
says), in HTTP headers and in gRPC metadata; on gRPC the binary
``grpc-trace-bin`` first, as daprd (``tracing.traceparent_from_binary``), and the answer carries
both forms (``api/grpc.py``).
"""

from __future__ import annotations

import atexit
import contextvars
import logging
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from parley_sidecar import tracing

__all__ = ["AttemptScope", "OtelTracer", "ServerScope"]

log = logging.getLogger("parley.tracing")

QUEUE_SIZE = 2048
"""Spans held for export at most (the SDK's default); past it new spans are dropped, not waited for."""
EXPORT_TIMEOUT = 5.0
"""Seconds one export may take (and so the longest a shutdown waits for the last batch)."""
SCOPE = "parley"

_PROPAGATOR = TraceContextTextMapPropagator()
_UNSET = Status(StatusCode.UNSET)
_FEW_ATTRIBUTES = 64
"""More attributes than a span of parley's carries (a dozen): a count limit at least this high
is never reached, so spans keep their attributes in a plain dict."""


def _url(plan: tracing.Plan) -> str:
    """Dapr's ``endpointAddress`` is ``host:port``; OTLP/HTTP posts to its ``/v1/traces``."""
    endpoint = plan.endpoint
    if "://" not in endpoint:
        endpoint = ("https://" if plan.secure else "http://") + endpoint
    scheme, _, rest = endpoint.partition("://")
    host, _, path = rest.partition("/")
    if not path:  # a base address (OTEL_EXPORTER_OTLP_ENDPOINT's meaning): the traces path under it
        endpoint = f"{scheme}://{host}/v1/traces"
    return endpoint


def _exporter(plan: tracing.Plan) -> SpanExporter:
    if plan.protocol == "http":
        from parley_sidecar.tracing_otlp_http import HttpExporter

        return HttpExporter(_url(plan), EXPORT_TIMEOUT)
    if plan.protocol == "grpc":
        from parley_sidecar.tracing_otlp_grpc import GrpcExporter

        endpoint = plan.endpoint.split("://", 1)[-1]
        return GrpcExporter(endpoint=endpoint, insecure=not plan.secure, timeout=EXPORT_TIMEOUT)
    if plan.protocol == "zipkin":
        from opentelemetry.exporter.zipkin.json import ZipkinExporter

        return ZipkinExporter(endpoint=plan.endpoint, timeout=int(EXPORT_TIMEOUT))
    raise ValueError(f"unknown protocol {plan.protocol!r}")


def _traceparent(trace_id: int, span_id: int, flags: int) -> str:
    # Written here rather than by the propagator: the same W3C text for a third of the time
    # (and %-formatting, not a format spec, whose parsing showed under callgrind).
    return "00-%032x-%016x-%02x" % (trace_id, span_id, flags)  # noqa: UP031 (300 ns against 480)


def _joined(trace_id: str, tracestate: str) -> tracing.UnsampledScope:
    """An unsampled call in the caller's unsampled trace (``trace_id``: its 32 hex digits): the
    trace id as sent, a span id of its own, flags 00."""
    return tracing.UnsampledScope(f"00-{trace_id}-{random.getrandbits(64) or 1:016x}-00", tracestate)


def _put_ids(ctx: SpanContext, headers: MutableMapping[str, str]) -> None:
    """A recorded span's ``traceparent`` (and ``tracestate``, when it has one) into ``headers``."""
    headers["traceparent"] = _traceparent(ctx.trace_id, ctx.span_id, int(ctx.trace_flags))
    if ctx.trace_state:
        headers["tracestate"] = ctx.trace_state.to_header()


class ServerScope:
    """The span of one sampled API call, the running call (``tracing.CALL``) while it runs, so
    attempts become its children (:meth:`OtelTracer.attempt`) and the provider's request carries
    its ids (:meth:`OtelTracer.inject`). OpenTelemetry's own current context is left alone: its
    attach and detach (a ``Context`` copied, a token) and the lookups of the current span cost a
    sampled call more than the one context variable here does."""

    __slots__ = ("_call", "span")
    sampled = True

    def __init__(self, span: RecordedSpan) -> None:
        self.span = span
        # A sampled call inside an unsampled one (an app calling itself through its own sidecar
        # in one task: only in tests) must not see the outer call's ids.
        self._call = tracing.CALL.set(self)

    def headers(self) -> dict[str, str]:
        """``traceparent`` (and ``tracestate``) naming this span, for the answer (as daprd's)."""
        carrier: dict[str, str] = {}
        _put_ids(self.span.context, carrier)
        return carrier

    def answer(self, headers: MutableMapping[str, str]) -> None:
        """Put :meth:`headers` into ``headers`` (an answer's)."""
        _put_ids(self.span.context, headers)

    def close(self, attributes: Callable[[], Mapping[str, tracing.Value]], error: Callable[[], str | None]) -> None:
        """End the span with what ``attributes`` and ``error`` (the status description of a failed
        call, or None) say; they are called only for a sampled span."""
        tracing.CALL.reset(self._call)
        if self.span.is_recording():
            self.span.set_attributes(attributes())
            description = error()
            if description is not None:
                self.span.set_status(Status(StatusCode.ERROR, description))
        self.span.end()


class AttemptScope:
    """One provider attempt's client span: :func:`tracing.attempt_span` from its start until
    :meth:`close`, so the provider's HTTP request carries it as parent (:meth:`OtelTracer.inject`)."""

    __slots__ = ("_open", "_reset", "_text", "span")

    def __init__(self, span: RecordedSpan, var: contextvars.ContextVar[tracing.AttemptSpan | None]) -> None:
        self.span = span
        self._open = False
        self._text: list[str] = []
        self._reset = (var, var.set(self))

    def answer(self, headers: MutableMapping[str, str]) -> None:
        """This span's ``traceparent`` (and ``tracestate``) into ``headers`` (the provider's request)."""
        _put_ids(self.span.context, headers)

    def answered(self, attributes: Mapping[str, tracing.Value]) -> None:
        if self.span.is_recording():
            self.span.set_attributes(attributes)

    def failed(self, error_type: str, message: str) -> None:
        if self.span.is_recording():
            self.span.set_attributes({"error.type": error_type})
            self.span.set_status(Status(StatusCode.ERROR, message))

    def keep_open(self) -> None:
        self._open = True

    def collect(self, text: str) -> None:
        self._text.append(text)

    def collected(self) -> str:
        return "".join(self._text)

    def end(self) -> None:
        self.span.end()

    def close(self, error_type: str | None = None, message: str = "") -> None:
        """Leave the attempt: no longer current; ended unless :meth:`keep_open` was called."""
        var, token = self._reset
        var.reset(token)
        if error_type is not None:
            self.failed(error_type, message)
        if not self._open:
            self.span.end()


def _running(var: contextvars.ContextVar[tracing.AttemptSpan | None]) -> AttemptScope | ServerScope | None:
    """The running attempt's scope, else the running call's when it is sampled: the span that
    OpenTelemetry's current context would hold, had the scopes attached theirs."""
    attempt = var.get()
    if isinstance(attempt, AttemptScope):
        return attempt
    call = tracing.CALL.get()
    return call if isinstance(call, ServerScope) else None


_PLAIN_TRACEPARENT = re.compile("00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
"""A version-00 ``traceparent`` as callers send it: no spaces around, no fields after."""
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


def _plain(carrier: Mapping[str, str]) -> re.Match[str] | None:
    """The caller's ``traceparent`` when it is in the plain form, valid, and without a ``tracestate``."""
    value = carrier.get("traceparent")
    if value is None or "tracestate" in carrier:
        return None
    plain = _PLAIN_TRACEPARENT.fullmatch(value)
    return plain if plain is not None and plain[1] != _ZERO_TRACE and plain[2] != _ZERO_SPAN else None


def _remote(carrier: Mapping[str, str], plain: re.Match[str] | None = None) -> SpanContext | None:
    """The caller's valid span context from W3C trace context headers (``carrier``: HTTP headers
    or gRPC metadata), None when there is none or it is malformed (ignored, as the W3C spec says).

    The plain form (:func:`_plain`), which an instrumented app sends on every call, is read here:
    OpenTelemetry's propagator (a regex search, a ``Context`` and a non-recording span to carry
    the result) cost such a call 6 µs more than a call without one. Anything else (a
    ``tracestate``, other versions, spaces, all-zero ids) goes to the propagator, whose rules stay
    the reference; ``test_tracing`` checks that the two agree. ``plain``: :func:`_plain` of
    ``carrier``, when the caller has it already."""
    plain = plain or _plain(carrier)
    if plain is not None:
        return SpanContext(int(plain[1], 16), int(plain[2], 16), True, TraceFlags(int(plain[3], 16)))
    if "traceparent" not in carrier:
        return None
    remote = trace.get_current_span(_PROPAGATOR.extract(carrier, context=otel_context.Context())).get_span_context()
    return remote if remote.is_valid else None


def _caller(carrier: Mapping[str, str]) -> SpanContext | tracing.UnsampledScope | None:
    """:func:`_remote`, but for the commonest caller with a trace, an instrumented app's call
    that it did not sample (the plain form, the sampled flag clear), the call's own scope in the
    caller's trace straight away: a call that records nothing needs no span context (its answer
    carries the caller's trace id as sent, a span id of its own and flags 00, as :func:`_joined`)."""
    plain = _plain(carrier)
    if plain is not None and not int(plain[3], 16) & TraceFlags.SAMPLED:
        return _joined(plain[1], "")
    return _remote(carrier, plain)


def _getter_pairs(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """gRPC metadata (key, value) pairs → the first value of each key."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        found.setdefault(key.lower(), value)
    return found


PROTO_CACHE_ROOM = 8192
"""Wrappers briefly made by :func:`_widen_proto_cache`: about 5 ms at start and 1 MB of resident
memory (16,384 left 2.6 MB, for no fewer instructions per request under callgrind)."""


def _widen_proto_cache() -> None:
    """Grow protobuf's object cache so that it stays sparse.

    upb's Python module keeps a hash table from each live upb object to its Python wrapper, and
    every request adds and removes a few dozen entries to it (decoding and encoding the API's
    messages). The table never shrinks, and an insertion that collides scans for a free slot, so
    its cost rises steeply as the table fills. The exporter's OTLP messages add enough live entries
    to push the table close to full: under callgrind, an echo request then spent 12,500 more
    instructions in those insertions than with tracing off (1.7 % of the call). Made once here
    and released, these wrappers leave the table with room to spare."""
    from google.protobuf import struct_pb2

    values = struct_pb2.ListValue()
    held = [values.values.add() for _ in range(PROTO_CACHE_ROOM)]
    del held, values


class HashedResource(Resource):
    """A resource whose hash is computed once. The OTLP encoder groups every span it exports by
    its resource, and ``Resource.__hash__`` JSON-encodes the attributes (sorted) on each call:
    38,500 instructions a span under callgrind. A resource is immutable (its attributes
    are), so its hash never changes; equal resources keep equal hashes (the same formula)."""

    def __init__(self, attributes: Mapping[str, Any], schema_url: str | None = None) -> None:
        super().__init__(attributes, schema_url)
        self._parley_hash = super().__hash__()

    def __hash__(self) -> int:
        return self._parley_hash


_ROOT_FLAGS = TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID)
"""A new trace's flags, as the SDK sets them (its trace ids are random: W3C level 2's flag)."""


SpanFields = tuple[str, SpanContext, SpanContext | None, SpanKind, int | None, int | None,
                   Mapping[str, Any] | None, Status, Resource, InstrumentationScope | None]
"""A finished span as the OTLP encoder reads it (``tracing_otlp``): name, context, parent, kind,
start and end times, attributes (a dict, or the SDK's ``BoundedAttributes``), status, resource, scope."""


class FinishedSpan(ReadableSpan):
    """A span of parley's, ended: the SDK's ``ReadableSpan`` (for its processors and exporters),
    and its :data:`SpanFields` in one tuple, for parley's OTLP encoder, which reads them there
    instead of through the properties (no events, no links: parley's spans have none)."""

    fields: SpanFields


class RecordedSpan:
    """A sampled span, recorded by parley and handed to the span processor, when it ends, as the
    SDK's ``ReadableSpan`` (what its processors and exporters take).

    Not the SDK's ``Tracer.start_span``: under callgrind that cost 85,000 instructions a span before
    any attribute (contexts, flags, a sampler's result, locks, bounded lists for events and links
    that parley never adds, the tracer's own metrics), 6,000 more per attribute (each value
    checked, a lock taken), and the exporter then reads the attributes through the ``Mapping``
    ABC's Python methods. parley's spans are made by one task each and carry only the attribute
    types of ``tracing.Value``: a plain dict holds them. The SDK's span limits from the
    environment (``OTEL_SPAN_ATTRIBUTE_*``) are kept: with one set, the attributes go into the
    SDK's ``BoundedAttributes``, which applies it and counts what it drops."""

    __slots__ = ("_attributes", "_end", "_kind", "_name", "_parent", "_start", "_status", "_tracer", "context")

    def __init__(self, tracer: OtelTracer, name: str, kind: SpanKind, parent: SpanContext | None,
                 attributes: Mapping[str, tracing.Value]) -> None:
        self._tracer = tracer
        self._name = name
        self._kind = kind
        self._parent = parent
        span_id = random.getrandbits(64) or 1
        if parent is None:
            self.context = SpanContext(random.getrandbits(128) or 1, span_id, False, _ROOT_FLAGS)
        else:  # sampled, as its parent (a sampled call's, or a caller's that said so)
            flags = TraceFlags(TraceFlags.SAMPLED | (parent.trace_flags & TraceFlags.RANDOM_TRACE_ID))
            self.context = SpanContext(parent.trace_id, span_id, False, flags, parent.trace_state)
        self._attributes: MutableMapping[str, tracing.Value] = tracer.attributes()
        self._attributes.update(attributes)
        self._status = _UNSET
        self._end: int | None = None
        self._start = time.time_ns()

    def is_recording(self) -> bool:
        return self._end is None

    def set_attributes(self, attributes: Mapping[str, tracing.Value]) -> None:
        if self._end is None:
            self._attributes.update(attributes)

    def set_status(self, status: Status) -> None:
        if self._end is None:
            self._status = status

    def end(self) -> None:
        """Hand the span to the processor (once: a second end is ignored, as the SDK's)."""
        if self._end is not None:
            return
        self._end = time.time_ns()
        tracer = self._tracer
        name, context, parent, kind, start, end, attributes, status, resource, scope = fields = (
            self._name, self.context, self._parent, self._kind, self._start, self._end, self._attributes,
            self._status, tracer.resource, tracer.scope)
        finished = FinishedSpan(name, context, parent, resource, attributes, kind=kind, status=status,
                                start_time=start, end_time=end, instrumentation_scope=scope)
        finished.fields = fields
        tracer.processor.on_end(finished)


class OtelTracer:
    def __init__(self, plan: tracing.Plan, *, processor: SpanProcessor | None = None) -> None:
        """``processor``: tests hand in a simple processor over an in-memory exporter."""
        self.plan = plan
        # Spans are made only for calls _server drew (or a caller said) sampled, and for attempts
        # under them: parley's RecordedSpan needs no sampler.
        resource = Resource.create({"service.name": plan.service_name})
        self.resource = HashedResource(resource.attributes or {}, resource.schema_url)
        self.scope = InstrumentationScope(SCOPE, "")
        """As the SDK's ``get_tracer(SCOPE)`` names it."""
        self.processor = processor or BatchSpanProcessor(
            _exporter(plan), max_queue_size=QUEUE_SIZE, export_timeout_millis=EXPORT_TIMEOUT * 1000)
        limits = SpanLimits()
        count = limits.max_span_attributes  # None: no limit
        self._limits = (None if limits.max_span_attribute_length is None
                        and (count is None or count >= _FEW_ATTRIBUTES) else limits)
        atexit.register(self.shutdown)  # what is queued leaves at exit (the SDK's provider does the same)
        _widen_proto_cache()

    def _server(self, name: Callable[[], str], remote: SpanContext | tracing.UnsampledScope | None,
                attributes: Callable[[], Mapping[str, tracing.Value]]) -> ServerScope | tracing.UnsampledScope:
        """``remote``: what :func:`_caller` found. ``name`` and ``attributes`` are called only for a
        sampled span (99 calls in 100 need neither)."""
        if isinstance(remote, tracing.UnsampledScope):
            return remote
        if remote is not None:
            if not remote.trace_flags.sampled:  # the caller's decision is followed
                state = remote.trace_state  # most callers send none: to_header() of it costs 450 ns
                return _joined("%032x" % remote.trace_id, state.to_header() if state else "")  # noqa: UP031
            return self._sampled(name, remote, attributes)
        if random.random() >= self.plan.sampling_rate:
            return tracing.UnsampledScope()
        return self._sampled(name, None, attributes)

    def _sampled(self, name: Callable[[], str], parent: SpanContext | None,
                 attributes: Callable[[], Mapping[str, tracing.Value]]) -> ServerScope:
        """``parent``: the caller's valid span context, or None for a new trace."""
        return ServerScope(RecordedSpan(self, name(), SpanKind.SERVER, parent, attributes()))

    def http_server(self, method: str, path: Callable[[], str],
                    headers: Mapping[str, str]) -> ServerScope | tracing.UnsampledScope:
        """The call's scope when the caller sent a ``traceparent`` or the rate sampled a new trace
        (``surface.traced`` draws first: the 99 calls in 100 of a low rate never come here).
        daprd names its span after the request's path (``path()``: decoded only when sampled)."""
        drawn = "traceparent" not in headers  # a root the draw sampled (drawing again would sample rate² of them)
        caller = None if drawn else _caller(headers)
        if isinstance(caller, tracing.UnsampledScope):  # an unsampled caller's call: nothing below is needed
            return caller

        def attributes() -> dict[str, tracing.Value]:
            return {"dapr.protocol": "http", "dapr.api": f"{method} {path()}", "http.request.method": method,
                    "url.full": path()}

        if drawn:
            return self._sampled(path, None, attributes)
        return self._server(path, caller, attributes)

    def grpc_server(self, full_method: str,
                    metadata: Iterable[tuple[str, Any]]) -> ServerScope | tracing.UnsampledScope:
        """daprd names its span after the full method, and reads the caller's trace from
        ``grpc-trace-bin`` first, then ``traceparent``."""
        pairs = _getter_pairs(metadata)
        text = {k: v for k, v in pairs.items() if k in ("traceparent", "tracestate") and isinstance(v, str)}
        binary = pairs.get("grpc-trace-bin")
        if isinstance(binary, bytes) and (traceparent := tracing.traceparent_from_binary(binary)) is not None:
            text["traceparent"] = traceparent
        parent = _caller(text) if text else None
        return self._server(lambda: full_method, parent, lambda: {"dapr.protocol": "grpc", "dapr.api": full_method})

    def attempt(self, name: str, attributes: Mapping[str, tracing.Value],
                var: contextvars.ContextVar[tracing.AttemptSpan | None]) -> AttemptScope:
        """A child of the running attempt or sampled call (none: a root, sampled; callers ask
        ``tracing.recording`` first)."""
        scope = _running(var)
        span = RecordedSpan(self, name, SpanKind.CLIENT, scope.span.context if scope is not None else None, attributes)
        return AttemptScope(span, var)

    def attributes(self) -> MutableMapping[str, tracing.Value]:
        """A new span's attribute container: a dict, or the SDK's bounded one when the environment
        sets span limits that a span of parley's could reach."""
        limits = self._limits
        if limits is None:
            return {}
        return BoundedAttributes(limits.max_span_attributes, None, immutable=False,  # type: ignore[return-value]
                                 max_value_len=limits.max_span_attribute_length)

    def recording(self, var: contextvars.ContextVar[tracing.AttemptSpan | None]) -> bool:
        """Whether the running attempt or sampled call records (``tracing.recording`` has answered
        the unsampled calls already)."""
        scope = _running(var)
        return scope is not None and scope.span.is_recording()

    def inject(self, headers: MutableMapping[str, str],
               var: contextvars.ContextVar[tracing.AttemptSpan | None]) -> None:
        """The ids of the running attempt, else of the running call (sampled or not), into ``headers``."""
        attempt = var.get()
        scope = attempt if isinstance(attempt, AttemptScope) else tracing.CALL.get()
        if scope is not None:
            scope.answer(headers)

    def shutdown(self) -> None:
        """Export what is queued (bounded by the exporter's timeout); once."""
        atexit.unregister(self.shutdown)
        self.processor.shutdown()
