"""Prometheus metrics with daprd's exact names, plus OpenTelemetry GenAI and parley's own.

Why not ``prometheus_client``: it writes ``_total`` onto counter names, and daprd's counters
(``dapr_http_server_request_count``) have no suffix, so Dapr dashboards would break. The hot path
also wants a plain dict increment rather than a lock per labelled child. So samples are kept in
small in-process tables and written as Prometheus text (format 0.0.4) only at scrape time; the
tests read that text back with ``prometheus_client.parser``.

Label values never carry user text: components by their configured name, paths only as routes
(an unknown component name is reported as the ``{name}`` template), PII by entity type, models
only as :class:`ModelLabels` admits them (a bounded set per component, anything else ``other``).
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

__all__ = ["CONTENT_TYPE", "OTHER", "Counter", "Gauge", "Histogram", "Metrics", "ModelLabels", "Snapshot"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _value(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _sample(name: str, names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    pairs = [f'{k}="{_escape(v)}"' for k, v in zip(names, values, strict=True)]
    if extra:
        pairs.append(extra)
    return f"{name}{{{','.join(pairs)}}}" if pairs else name

# daprd's default latency buckets, in milliseconds (pkg/config/configuration.go).
LATENCY_MS = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16, 20, 25, 30, 40, 50, 65, 80, 100, 130, 160, 200, 250, 300,
              400, 500, 650, 800, 1000, 2000, 5000, 10000, 20000, 50000, 100000)
# OpenTelemetry GenAI semantic conventions' advised buckets.
GENAI_SECONDS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
# ... and for streams (gen_ai.server.time_to_first_token, gen_ai.server.time_per_output_token); the
# first extended to 60 s as Envoy AI Gateway's is: a reasoning model may think that long first.
GENAI_FIRST_TOKEN_SECONDS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                             7.5, 10.0, 20.0, 40.0, 60.0)
GENAI_PER_TOKEN_SECONDS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
GENAI_TOKENS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)

Labels = tuple[str, ...]
Snapshot = dict[str, list[tuple[Labels, float | list[float]]]]
"""Every metric's samples by name, as plain data (``marshal`` carries it between worker processes):
counters and gauges as (labels, value), histograms as (labels, row). See :meth:`Metrics.snapshot`."""
Rewrite = Callable[[Labels], Labels]
Replacement = Callable[[re.Match[str]], str]


def label_rewrite(index: int, pairs: Sequence[tuple[re.Pattern[str], Replacement]]) -> Rewrite:
    """daprd's metric rule for one label (``NormalizeTagValue``): each regex's matches in the value
    are replaced, in turn. Results are memoised: label values come from a bounded set (routes,
    component names, statuses), so after warm-up a record costs one dict lookup."""
    seen: dict[str, str] = {}

    def rewrite(labels: Labels) -> Labels:
        value = labels[index]
        new = seen.get(value)
        if new is None:
            new = value
            for pattern, replace in pairs:
                new = pattern.sub(replace, new)
            if len(seen) < 4096:
                seen[value] = new
        return labels if new == value else (*labels[:index], new, *labels[index + 1:])

    return rewrite


def _chain(first: Rewrite, second: Rewrite) -> Rewrite:
    return lambda labels: second(first(labels))


class ApiCallSink(Protocol):
    def http(self, method: str, path: str, status: int, elapsed_ms: float, user_agent: str) -> None: ...
    def grpc(self, method: str, status: str, elapsed_ms: float) -> None: ...


class Counter:
    """A counter without the ``_total`` suffix unless its name carries one."""

    def __init__(self, name: str, doc: str, labels: Sequence[str]) -> None:
        self.name, self.doc, self.labels = name, doc, tuple(labels)
        self.values: dict[Labels, float] = {}
        self.rewrite: Rewrite | None = None
        """Set by ``spec.metric.rules`` naming this metric; None costs one check per record."""

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        if self.rewrite is not None:
            labels = self.rewrite(labels)
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def sample(self) -> list[tuple[Labels, float | list[float]]]:
        return list(self.values.items())

    def absorb(self, samples: Iterable[tuple[Labels, float | list[float]]]) -> None:
        """Add another process's samples (already rewritten there) to these."""
        for key, value in samples:
            assert isinstance(value, float)
            self.values[key] = self.values.get(key, 0.0) + value

    def render(self) -> Iterator[str]:
        yield f"# HELP {self.name} {self.doc}"
        yield f"# TYPE {self.name} counter"
        for key, value in self.values.items():
            yield f"{_sample(self.name, self.labels, key)} {_value(value)}"


class Histogram:
    def __init__(self, name: str, doc: str, labels: Sequence[str], buckets: Sequence[float]) -> None:
        self.name, self.doc, self.labels = name, doc, tuple(labels)
        self.buckets = tuple(buckets)
        self.values: dict[Labels, list[float]] = {}
        """Per label set: one count per bucket (+Inf last), then sum, then count."""
        self.rewrite: Rewrite | None = None

    def observe(self, labels: Labels, value: float) -> None:
        if self.rewrite is not None:
            labels = self.rewrite(labels)
        row = self.values.get(labels)
        if row is None:
            row = self.values[labels] = [0.0] * (len(self.buckets) + 3)
        row[bisect.bisect_left(self.buckets, value)] += 1
        row[-2] += value
        row[-1] += 1

    def sample(self) -> list[tuple[Labels, float | list[float]]]:
        return [(key, list(row)) for key, row in self.values.items()]

    def absorb(self, samples: Iterable[tuple[Labels, float | list[float]]]) -> None:
        """Add another process's rows (same buckets: the same code made them) to these."""
        for key, other in samples:
            assert isinstance(other, list)
            row = self.values.get(key)
            self.values[key] = list(other) if row is None else [a + b for a, b in zip(row, other, strict=True)]

    def render(self) -> Iterator[str]:
        yield f"# HELP {self.name} {self.doc}"
        yield f"# TYPE {self.name} histogram"
        n = len(self.buckets)
        for key, row in self.values.items():
            running = 0.0
            for i, bound in enumerate((*self.buckets, math.inf)):
                running += row[i]
                le = "+Inf" if i == n else _format_bound(bound)
                bucket = _sample(self.name + "_bucket", self.labels, key, 'le="' + le + '"')
                yield f"{bucket} {_value(running)}"
            yield f"{_sample(self.name + '_sum', self.labels, key)} {_value(row[-2])}"
            yield f"{_sample(self.name + '_count', self.labels, key)} {_value(row[-1])}"


class Gauge:
    """A gauge read at scrape time from ``source`` (None: no samples), so nothing is recorded on
    the hot path for state that already lives elsewhere (a breaker's state lives in the breaker)."""

    def __init__(self, name: str, doc: str, labels: Sequence[str]) -> None:
        self.name, self.doc, self.labels = name, doc, tuple(labels)
        self.source: Callable[[], Iterable[tuple[Labels, float]]] | None = None
        self.rewrite: Rewrite | None = None

    def sample(self) -> list[tuple[Labels, float | list[float]]]:
        return [(key if self.rewrite is None else self.rewrite(key), float(value))
                for key, value in (self.source() if self.source is not None else ())]

    def absorb(self, samples: Iterable[tuple[Labels, float | list[float]]]) -> None:
        """Merge another process's readings: the largest value per label set. The one gauge,
        ``parley_circuit_breaker_state``, then reads 1 for a state when any worker's breaker is in it."""
        merged = dict(self.source() if self.source is not None else ())
        for key, value in samples:
            assert isinstance(value, float)
            merged[key] = max(merged.get(key, value), value)
        self.source = merged.items

    def render(self) -> Iterator[str]:
        yield f"# HELP {self.name} {self.doc}"
        yield f"# TYPE {self.name} gauge"
        for key, value in self.source() if self.source is not None else ():
            labels = key if self.rewrite is None else self.rewrite(key)
            yield f"{_sample(self.name, self.labels, labels)} {_value(value)}"


OTHER = "other"
"""The model label of every model past a component's limit, or that it never configured nor answered with."""


class ModelLabels:
    """Bounded values for ``gen_ai_request_model`` and ``gen_ai_response_model``.

    Each component labels at most ``limit`` distinct models: its ``model`` metadata, then the
    models its provider answers with, in the order first seen; past that, ``other``. A request's
    own model (the ``metadata.model`` override, which any client may set to anything) is labelled
    by name only once the component knows it that way, and ``other`` until then, so no client can
    mint a series. Overly long or control-character names are ``other`` too. After warm-up a
    lookup is one dict access per component and one per model; nothing is built per request.
    """

    def __init__(self, limit: int = 10) -> None:
        self.limit = limit
        self._known: dict[str, dict[str, str]] = {}
        """component → {model: label}; only admitted models are keys (never a client's raw value)."""

    def request(self, component: str, model: str, configured: str) -> str:
        """The label of the model asked for: ``model`` (the override), else ``configured``."""
        known = self._known.get(component)
        if known is not None:
            label = known.get(model or configured)
            if label is not None:
                return label
        if model and model != configured:
            return OTHER  # a client's choice: not admitted here, see the class docstring
        return self._admit(component, configured)

    def response(self, component: str, model: str) -> str:
        """The label of the model the provider says answered ("" when it did not say)."""
        known = self._known.get(component)
        if known is not None:
            label = known.get(model)
            if label is not None:
                return label
        return self._admit(component, model)

    def _admit(self, component: str, model: str) -> str:
        if not model:
            return ""
        known = self._known.setdefault(component, {})
        if len(known) >= self.limit or len(model) > 128 or not model.isprintable():
            return OTHER
        known[model] = model
        return model


def _format_bound(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else repr(bound)


class Metrics:
    """Every metric the sidecar exposes; one instance per process, passed to whoever records."""

    def __init__(self, app_id: str, namespace: str = "") -> None:
        self.app_id = app_id
        self.namespace = namespace
        route = ("app_id", "method", "path", "status")
        self.http_requests = Counter("dapr_http_server_request_count", "HTTP requests served.", route)
        self.http_latency = Histogram("dapr_http_server_latency", "HTTP request latency in ms.", route,
                                      LATENCY_MS)
        rpc = ("app_id", "grpc_server_method", "grpc_server_status")
        self.grpc_completed = Counter("dapr_grpc_io_server_completed_rpcs", "gRPC calls completed.", rpc)
        self.grpc_latency = Histogram("dapr_grpc_io_server_server_latency", "gRPC call latency in ms.", rpc,
                                      LATENCY_MS)
        comp = ("app_id", "component", "namespace", "success")
        self.conversations = Counter("dapr_component_conversation_count",
                                     "Conversation component calls.", comp)
        self.conversation_latency = Histogram("dapr_component_conversation_latencies",
                                              "Conversation component latency in ms.", comp, LATENCY_MS)
        # app_id as on daprd's metrics (one value per process, so no cardinality), then the
        # OpenTelemetry GenAI attributes with dots as underscores, models bounded by ModelLabels.
        genai = ("app_id", "gen_ai_operation_name", "gen_ai_provider_name", "component", "gen_ai_request_model",
                 "gen_ai_response_model")
        self.token_usage = Histogram("gen_ai_client_token_usage", "Tokens used per call, by token type.",
                                     (*genai, "gen_ai_token_type"), GENAI_TOKENS)
        self.operation_duration = Histogram("gen_ai_client_operation_duration_seconds",
                                            "Duration of a GenAI call.", (*genai, "error_type"),
                                            GENAI_SECONDS)
        self.time_to_first_token = Histogram(
            "gen_ai_server_time_to_first_token_seconds",
            "Streams: time from the request to the first piece of the answer (retries and fallbacks included).",
            genai, GENAI_FIRST_TOKEN_SECONDS)
        self.time_per_output_token = Histogram(
            "gen_ai_server_time_per_output_token_seconds",
            "Streams: time per output token after the first, for streams that completed.",
            genai, GENAI_PER_TOKEN_SECONDS)
        self.cache = Counter("parley_cache_requests_total", "Response cache lookups by result.",
                             ("component", "result"))
        self.cache_evictions = Counter("parley_cache_evictions_total", "Responses evicted from the cache.",
                                       ("component", "reason"))
        self.redactions = Counter("parley_pii_redactions_total", "PII items redacted, by entity type.",
                                  ("entity", "direction"))
        self.provider_retries = Counter("parley_provider_retries_total", "Upstream retries.",
                                        ("component", "reason"))
        self.fallbacks = Counter("parley_fallbacks_total", "Calls answered by a fallback component.",
                                 ("component", "fallback"))
        self.component_errors = Counter(
            "parley_component_load_errors_total",
            "Failed loads of a component spec (at start, on a file change, on an operator update).", ("component",))
        self.resiliency_errors = Counter(
            "parley_resiliency_load_errors_total",
            "Resiliency problems found in a resources file (the last good Resiliency stays applied).", ("file",))
        self.breaker_state = Gauge(
            "parley_circuit_breaker_state",
            "Circuit breaker of each live component: 1 for its current state (closed, half-open, open), 0 for the "
            "others. An open breaker turns half-open on the first call after its timeout.", ("component", "state"))
        self._all: tuple[Counter | Histogram | Gauge, ...] = tuple(
            v for v in vars(self).values() if isinstance(v, (Counter, Histogram, Gauge))
        )
        self.models = ModelLabels()
        self.enabled = True
        """``spec.metric.enabled: false``: as daprd, the port still answers, with no series."""
        self.api_log: ApiCallSink | None = None
        """Told of every API call (HTTP API port and gRPC) when API logging is on."""

    def apply_rules(self, rules: Sequence[tuple[str, str, Sequence[tuple[re.Pattern[str], Replacement]]]]) -> list[str]:
        """Install ``(metric, label, pairs)`` rules; returns the rules that name no metric or label
        of parley's. Names match as daprd matches them: a first ``dapr_`` dropped, ``_`` as ``/``."""

        def norm(name: str) -> str:
            return name.replace("dapr_", "", 1).replace("_", "/")

        by_name = {norm(m.name): m for m in self._all}
        unmatched: list[str] = []
        for name, label, pairs in rules:
            metric = by_name.get(norm(name))
            if metric is None or label not in metric.labels:
                unmatched.append(f"{name}/{label}")
                continue
            step = label_rewrite(metric.labels.index(label), pairs)
            before = metric.rewrite
            metric.rewrite = step if before is None else _chain(before, step)
        return unmatched

    def snapshot(self) -> Snapshot | None:
        """Every sample as plain data (None when ``spec.metric.enabled`` is false), for the process
        that serves the metrics port of several workers (``workers``) to sum with :meth:`absorb`."""
        if not self.enabled:
            return None
        return {metric.name: metric.sample() for metric in self._all}

    def absorb(self, snapshot: Snapshot) -> None:
        """Add a worker's :meth:`snapshot`: counters and histograms summed per label set, gauges by
        their largest value. Absorb into a Metrics without rules: the worker already applied them."""
        for metric in self._all:
            metric.absorb(snapshot.get(metric.name, ()))

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        if not self.enabled:
            return b""
        lines: list[str] = []
        for metric in self._all:
            lines.extend(metric.render())
        return ("\n".join(lines) + "\n").encode()

    # -- recording helpers used by the API surfaces and the pipeline ---------------------------------
    def http(self, method: str, path: str, status: int, elapsed_ms: float) -> None:
        key = (self.app_id, method, path, str(status))
        self.http_requests.inc(key)
        self.http_latency.observe(key, elapsed_ms)

    def grpc(self, method: str, status: str, elapsed_ms: float) -> None:
        key = (self.app_id, method, status)
        self.grpc_completed.inc(key)
        self.grpc_latency.observe(key, elapsed_ms)

    def conversation(self, component: str, success: bool, elapsed_ms: float) -> None:
        key = (self.app_id, component, self.namespace, "true" if success else "false")
        self.conversations.inc(key)
        if elapsed_ms > 0:
            self.conversation_latency.observe(key, elapsed_ms)

    def genai_labels(self, component: str, provider: str, requested: str, configured: str,
                     responded: str) -> Labels:
        """The GenAI label set of one call: ``requested`` is the request's own model ("" for the
        component's), ``configured`` the component's ``model`` metadata, ``responded`` the
        provider's answer's model ("" when unknown, e.g. the call failed)."""
        return (self.app_id, "chat", provider, component, self.models.request(component, requested, configured),
                self.models.response(component, responded))

    def genai(self, labels: Labels, seconds: float, error_type: str,
              prompt_tokens: int, completion_tokens: int) -> None:
        self.operation_duration.observe((*labels, error_type), seconds)
        if not error_type:
            self.token_usage.observe((*labels, "input"), prompt_tokens)
            self.token_usage.observe((*labels, "output"), completion_tokens)

    def first_token(self, labels: Labels, seconds: float) -> None:
        self.time_to_first_token.observe(labels, seconds)

    def per_output_token(self, labels: Labels, seconds: float, tokens: int) -> None:
        """A completed stream: ``seconds`` from its first piece to its end, for ``tokens`` output
        tokens (the first one excluded, as OpenTelemetry's definition says)."""
        if tokens > 1:
            self.time_per_output_token.observe(labels, seconds / (tokens - 1))
