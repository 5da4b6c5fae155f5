"""Tracing, the Dapr way: whether it is on, and the few calls the request path makes.

Off (the default) it costs one global read per call site: :func:`current` is ``None`` and nothing
else runs; the OpenTelemetry SDK is not even imported (``tracing_otel`` holds everything that
needs it and is imported only by :func:`start`). On, ``tracing_otel.OtelTracer`` exports spans
through a batch processor with a bounded queue, so a slow or absent collector never holds a call.

What turns it on (:func:`plan`, pure): a Configuration's ``spec.tracing`` with ``samplingRate`` > 0
and an ``otel`` or ``zipkin`` endpoint, as in daprd. Without one, the standard ``OTEL_*``
variables (an ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT``) turn it on, as they would an
OpenTelemetry SDK. A Configuration that sets tracing wins over the variables for what it sets
(daprd's settings are the Dapr way; the variables are the SDK's fallback); ``OTEL_SDK_DISABLED=true``
turns tracing off whatever else says. ``docs/tracing.md`` has the whole table.

The tracer is process-wide, as OpenTelemetry's own global provider is: one sidecar per process.
This module imports no layer (``docs/architecture.md``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
from collections.abc import Callable, Mapping, MutableMapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Protocol

from parley_sidecar.settings import Tracing

if TYPE_CHECKING:
    from parley_sidecar import tracing_otel

__all__ = ["CALL", "AttemptSpan", "Plan", "UnsampledScope", "attempt", "attempt_span", "binary_from_traceparent",
           "capture_content", "current", "install", "outgoing", "plan", "recording", "start", "stop",
           "traceparent_from_binary"]

log = logging.getLogger("parley.tracing")

Value = str | int | float | bool | tuple[str, ...]
"""An attribute value (OpenTelemetry's scalar types, and a tuple of strings)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """Where spans go and how many: what :func:`plan` decided from a Configuration and the environment."""

    sampling_rate: float
    protocol: str
    """``http`` or ``grpc`` (OTLP), or ``zipkin``."""
    endpoint: str
    """As the user wrote it: ``host:port`` (Dapr's ``otel.endpointAddress``) or a URL."""
    secure: bool
    source: str
    """``Configuration`` or ``environment``: named in the log line that says tracing is on."""
    service_name: str
    capture_content: bool
    """Prompt and answer text on the attempt spans (``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``)."""


class AttemptSpan(Protocol):
    """The client span of one provider attempt (``tracing_otel`` implements it)."""

    def answered(self, attributes: Mapping[str, Value]) -> None:
        """Set what the provider answered (model, usage, finish reasons)."""

    def failed(self, error_type: str, message: str) -> None:
        """Mark the attempt failed (``error.type``, and the span status with ``message``)."""

    def keep_open(self) -> None:
        """The attempt's work goes on after it returned (a stream): :func:`attempt`'s exit leaves it
        open, and whoever called this ends it with :meth:`end`."""

    def collect(self, text: str) -> None:
        """Add a streamed piece's text to the answer's (content capture on: ``capture_content``)."""

    def collected(self) -> str:
        """The text of the pieces :meth:`collect` was given, joined."""

    def end(self) -> None: ...


class _Running:
    """Holds the process's tracer (a class attribute, not a rebound global: one sidecar per process)."""

    tracer: tracing_otel.OtelTracer | None = None


_ATTEMPT: ContextVar[AttemptSpan | None] = ContextVar("parley_attempt_span", default=None)
CALL: ContextVar[tracing_otel.ServerScope | UnsampledScope | None] = ContextVar("parley_call", default=None)
"""The API call the running task serves, sampled or not (set by the scopes, :class:`UnsampledScope`
and ``tracing_otel.ServerScope``, while the call runs). Here, so
that :func:`recording` answers the 99 unsampled calls in 100 of a low rate without calling into
the tracer, and so that ``surface.trace_headers`` finds the call without the request's state."""


_ZEROS = "0" * 16


class UnsampledScope:
    """An API call that is not sampled (99 in 100 at a rate of 0.01): nothing is recorded, so it
    needs no span and no OpenTelemetry context (whose attach and detach copy a ``Context`` each
    call); its ids travel on, in the answer and in the provider's request (``OtelTracer.inject``).
    Attempts under it make no span (:func:`recording` is False), so nothing else needs a parent.
    Here, not in ``tracing_otel``: it needs nothing of the SDK, and ``surface.traced`` makes one
    itself for the most common call of all, a new trace that the rate does not sample."""

    __slots__ = ("_token", "traceparent", "tracestate")
    sampled = False

    def __init__(self, traceparent: str = "", tracestate: str = "") -> None:
        """``traceparent``: this call's, in its caller's trace; none: a new trace, whose ids come
        from one draw of random bits written out by ``bytes.hex`` with the dash between them:
        4,000 instructions under callgrind, against 7,800 for a draw for each id and their ``%x``
        formats (big integers). An all-zero id (the W3C's invalid one) has 16 zeros in a row:
        drawn again (once in 2**59 calls)."""
        while not traceparent:
            ids = random.getrandbits(192).to_bytes(24).hex("-", -16)
            if _ZEROS not in ids:
                traceparent = f"00-{ids}-00"
        self.traceparent = traceparent
        self.tracestate = tracestate
        self._token = CALL.set(self)

    def headers(self) -> dict[str, str]:
        """``traceparent`` (and ``tracestate``) naming this call, for the answer (as daprd's)."""
        if self.tracestate:
            return {"traceparent": self.traceparent, "tracestate": self.tracestate}
        return {"traceparent": self.traceparent}

    def answer(self, headers: MutableMapping[str, str]) -> None:
        """Put :meth:`headers` into ``headers`` (an answer's), without a dict between."""
        headers["traceparent"] = self.traceparent
        if self.tracestate:
            headers["tracestate"] = self.tracestate

    def close(self, attributes: Callable[[], Mapping[str, Value]] | None = None,
              error: Callable[[], str | None] | None = None) -> None:
        """Leave the call (``attributes`` and ``error`` are not called: nothing is recorded)."""
        CALL.reset(self._token)


def current() -> tracing_otel.OtelTracer | None:
    """The running tracer, or ``None`` when tracing is off (the check every call site makes first)."""
    return _Running.tracer


def recording() -> bool:
    """Whether the running task is inside a sampled span. Attempt spans are made only then: under an
    unsampled call they would be dropped anyway (sampling follows the parent), and the call's own
    context still reaches the provider. This keeps the unsampled 99 % of calls cheap."""
    tracer = _Running.tracer
    if tracer is None:
        return False
    call = CALL.get()
    return (call is None or call.sampled) and tracer.recording(_ATTEMPT)


def attempt_span() -> AttemptSpan | None:
    """The attempt span the running task is inside (set by ``OtelTracer.attempt``), if any."""
    return _ATTEMPT.get()


def capture_content() -> bool:
    tracer = _Running.tracer
    return tracer is not None and tracer.plan.capture_content


def outgoing(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` as a new dict, with the current span's ``traceparent`` (and ``tracestate``) when
    tracing is on: the provider's request joins the trace under the attempt's span."""
    out = dict(headers)
    if _Running.tracer is not None:
        _Running.tracer.inject(out, _ATTEMPT)
    return out


def traceparent_from_binary(value: bytes) -> str | None:
    """OpenCensus's binary trace context (``grpc-trace-bin``: version 0, then field 0 and the 16
    bytes of the trace id, field 1 and the 8 of the span id, field 2 and one byte of options) as a
    W3C ``traceparent``; None when it is not one (ignored then, as a malformed ``traceparent`` is)."""
    if len(value) < 27 or value[0] != 0 or value[1] != 0 or value[18] != 1:
        return None
    trace_id, span_id = value[2:18], value[19:27]
    options = value[28] if len(value) >= 29 and value[27] == 2 else 0
    if not any(trace_id) or not any(span_id):
        return None
    return f"00-{trace_id.hex()}-{span_id.hex()}-{options & 1:02x}"


def binary_from_traceparent(traceparent: str) -> bytes:
    """A ``traceparent`` in OpenCensus's binary form, as daprd answers it in ``grpc-trace-bin``."""
    _, trace_id, span_id, flags = traceparent.split("-")
    return b"\x00\x00" + bytes.fromhex(trace_id) + b"\x01" + bytes.fromhex(span_id) + b"\x02" + bytes.fromhex(flags)


_TRUE = {"true", "1", "yes"}


def _env_bool(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name, "").strip().lower() in _TRUE


def _env_rate(environ: Mapping[str, str]) -> float:
    """``OTEL_TRACES_SAMPLER`` / ``_ARG`` as a ratio (the SDK's names; unknown ones: always on)."""
    sampler = environ.get("OTEL_TRACES_SAMPLER", "parentbased_always_on").strip().lower()
    if sampler in ("always_off", "parentbased_always_off"):
        return 0.0
    if sampler in ("traceidratio", "parentbased_traceidratio"):
        raw = environ.get("OTEL_TRACES_SAMPLER_ARG", "1")
        try:
            rate = float(raw)
        except ValueError:
            rate = math.nan
        if not 0.0 <= rate <= 1.0:
            log.error("OTEL_TRACES_SAMPLER_ARG must be a number from 0 to 1, not %r; sampling every trace", raw)
            return 1.0
        return rate
    return 1.0


def _from_environment(environ: Mapping[str, str]) -> tuple[str, str, bool] | None:
    """(protocol, endpoint, secure) from ``OTEL_EXPORTER_OTLP_*``, or None when they name no endpoint."""
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() in ("none", ""):
        return None
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    if not endpoint:
        return None
    raw = (environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
           or "http/protobuf").strip().lower()
    protocol = {"http/protobuf": "http", "http": "http", "grpc": "grpc"}.get(raw)
    if protocol is None:
        log.error("OTEL_EXPORTER_OTLP_PROTOCOL must be http/protobuf or grpc, not %r; tracing is off", raw)
        return None
    # A bare host:port is plain text unless OTEL_EXPORTER_OTLP_INSECURE=false says otherwise.
    secure = endpoint.startswith("https://") or (
        "://" not in endpoint and environ.get("OTEL_EXPORTER_OTLP_INSECURE", "true").strip().lower() == "false")
    return protocol, endpoint, secure


def plan(config: Tracing, *, app_id: str, environ: Mapping[str, str]) -> Plan | None:
    """What tracing does for this Configuration and environment; None: off. Pure but for log lines."""
    if _env_bool(environ, "OTEL_SDK_DISABLED"):
        if config.enabled:
            log.info("OTEL_SDK_DISABLED=true: tracing is off despite the Configuration's spec.tracing")
        return None
    service = environ.get("OTEL_SERVICE_NAME") or app_id or "parley"
    capture = _env_bool(environ, "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
    if config.enabled:
        if config.otel_endpoint:
            return Plan(config.sampling_rate, config.otel_protocol, config.otel_endpoint, config.otel_secure,
                        "Configuration", service, capture)
        return Plan(config.sampling_rate, "zipkin", config.zipkin_endpoint, config.zipkin_endpoint.startswith("https"),
                    "Configuration", service, capture)
    found = _from_environment(environ)
    if found is None:
        return None
    rate = _env_rate(environ)
    if rate <= 0:
        return None
    protocol, endpoint, secure = found
    return Plan(rate, protocol, endpoint, secure, "environment", service, capture)


def start(config: Tracing, *, app_id: str, environ: Mapping[str, str]) -> tracing_otel.OtelTracer | None:
    """Turn tracing on when :func:`plan` says so (importing the SDK only then). A problem (the
    ``tracing`` extra not installed, an endpoint that cannot be used) is one clear log line and
    tracing stays off: the sidecar serves on."""
    chosen = plan(config, app_id=app_id, environ=environ)
    if chosen is None:
        return None
    try:
        from parley_sidecar import tracing_otel
    except ImportError as exc:
        log.error("tracing is configured but the OpenTelemetry SDK is not installed "
                  "(pip install 'parley[tracing]'): %s; tracing is off", exc.name or exc)
        return None
    try:
        tracer = tracing_otel.OtelTracer(chosen)
    except (ImportError, ValueError) as exc:
        log.error("tracing to %s (%s) cannot start: %s; tracing is off", chosen.endpoint, chosen.protocol, exc)
        return None
    log.info("tracing is on (%s): %s to %s, sampling %g", chosen.source, chosen.protocol, chosen.endpoint,
             chosen.sampling_rate)
    _Running.tracer = tracer
    return tracer


def install(tracer: tracing_otel.OtelTracer | None) -> None:
    """Make ``tracer`` the running one (tests build theirs over an in-memory exporter)."""
    _Running.tracer = tracer


def stop() -> None:
    """Flush what is queued (bounded by the exporter's timeout) and turn tracing off."""
    tracer, _Running.tracer = _Running.tracer, None
    if tracer is not None:
        tracer.shutdown()


def attempt(name: str, attributes: Mapping[str, Value]) -> tracing_otel.AttemptScope | None:
    """A scope for one provider attempt (None when tracing is off): ``with`` it around the attempt."""
    tracer = _Running.tracer
    return None if tracer is None else tracer.attempt(name, attributes, _ATTEMPT)
