"""Dapr's ``Configuration`` resource (``--config FILE``, or from the operator in Kubernetes): reading
it with validation.

What daprd does is followed where it is observable: a file that is missing, is not YAML, or is not
a mapping stops the start (daprd: "Fatal error from runtime: error loading configuration: …").
Inside a readable file, each field parley honours is checked on its own: a bad value is one error
line naming the field, and that feature falls back to its default, so the sidecar still serves
(daprd would refuse a wrong type; a sidecar that does not start serves nobody). Fields that do not
apply to a conversation sidecar are each named once in a warning, never silently dropped.

:func:`load` reads a file; :func:`from_document` checks a document however it came (the operator
delivers the ``spec`` of the Configuration a pod names with ``dapr.io/config``), so both modes apply
a Configuration exactly alike.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from parley_sidecar.settings import ApiLogging, Configuration, LabelRule, MetricRule, Tracing

__all__ = ["ApiLogging", "Configuration", "ConfigurationError", "LabelRule", "MetricRule", "Tracing",
           "from_document", "go_template", "load"]

log = logging.getLogger("parley.configuration")


class ConfigurationError(Exception):
    """The file cannot be used at all (missing, not YAML, not a Configuration): the start stops."""


# Why each Configuration field a conversation sidecar leaves alone does not apply.
_IGNORED_WHY = {
    "features": "preview features gate building blocks parley does not have",
    "mtls": "no Sentry or mTLS between sidecars; parley serves its own app only",
    "accessControl": "service invocation is not served",
    "nameResolution": "service invocation is not served",
    "secrets": "secret store scopes apply to the secrets API, which is not served",
    "httpPipeline": "HTTP middleware components are not loaded",
    "appHttpPipeline": "app channel middleware components are not loaded",
    "api": "the API allow/deny lists name building blocks parley does not serve",
    "components": "component deny lists apply to component types parley does not load",
    "wasm": "WebAssembly modules are not run",
    "workflow": "workflows are not served",
    "appHealthCheck": "the app channel is not used",
    "metrics": "deprecated alias: use spec.metric",
    "metric": "parley's metric names and buckets are fixed (docs/sidecar.md, Metrics)",
    "tracing": "not a tracing setting parley implements",
    "logging": "only apiLogging applies",
}
_HONOURED = frozenset({"metric", "logging", "tracing"})


class _Problems:
    """Collects field errors so each is logged once, with the file's name."""

    def __init__(self, label: str) -> None:
        self.label = label

    def bad(self, field: str, why: str) -> None:
        log.error("Configuration %s: %s %s; that setting stays at its default", self.label, field, why)


def _bool(node: Mapping[str, Any], key: str, field: str, default: bool, problems: _Problems) -> bool:
    value = node.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        problems.bad(field, f"must be true or false, not {type(value).__name__} {value!r}")
        return default
    return value


def _mapping(node: Any, field: str, problems: _Problems) -> Mapping[str, Any] | None:
    if node is None:
        return None
    if not isinstance(node, Mapping):
        problems.bad(field, f"must be a mapping, not {type(node).__name__}")
        return None
    return node


_GO_GROUP = re.compile(r"\$(?:\$|\{(\w+)\}|(\w+))")


def go_template(replacement: str) -> Callable[[re.Match[str]], str]:
    """Go's ``Regexp.ReplaceAllString`` template (``$1``, ``${name}``, ``$$``) as a ``re.sub``
    function; a group that does not exist expands to nothing, as in Go."""

    def expand(match: re.Match[str]) -> str:
        def one(ref: re.Match[str]) -> str:
            key = ref.group(1) or ref.group(2)
            if key is None:
                return "$"
            try:
                return match.group(int(key) if key.isdigit() else key) or ""
            except IndexError:
                return ""

        return _GO_GROUP.sub(one, replacement)

    return expand


def _rules(node: Any, problems: _Problems) -> tuple[MetricRule, ...]:
    if node is None:
        return ()
    if not isinstance(node, list):
        problems.bad("spec.metric.rules", "must be a list")
        return ()
    rules: list[MetricRule] = []
    for i, raw in enumerate(node):
        field = f"spec.metric.rules[{i}]"
        if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str) or not raw["name"]:
            problems.bad(f"{field}.name", "must be a metric name")
            continue
        labels: list[LabelRule] = []
        for j, label in enumerate(raw.get("labels") or []):
            lfield = f"{field}.labels[{j}]"
            if not isinstance(label, Mapping) or not isinstance(label.get("name"), str):
                problems.bad(f"{lfield}.name", "must be a label name")
                continue
            regex = label.get("regex") or {}
            if not isinstance(regex, Mapping):
                problems.bad(f"{lfield}.regex", "must map a replacement to a regular expression")
                continue
            pairs: list[tuple[re.Pattern[str], str]] = []
            for replacement, pattern in regex.items():
                try:
                    pairs.append((re.compile(str(pattern)), str(replacement)))
                except re.error as exc:
                    problems.bad(f"{lfield}.regex[{replacement!r}]", f"is not a regular expression ({exc})")
            labels.append(LabelRule(label["name"], tuple(pairs)))
        rules.append(MetricRule(raw["name"], tuple(labels)))
    return tuple(rules)


def _tracing(node: Mapping[str, Any], problems: _Problems) -> Tracing:
    t = Tracing()
    raw_rate = node.get("samplingRate", "1")
    try:
        rate = float(str(raw_rate))
    except ValueError:
        rate = math.nan
    if not 0.0 <= rate <= 1.0:  # NaN fails too
        problems.bad("spec.tracing.samplingRate", f"must be a number from 0 to 1, not {raw_rate!r}; tracing is off")
        return t
    t.sampling_rate = rate
    otel = _mapping(node.get("otel"), "spec.tracing.otel", problems)
    if otel is not None:
        protocol = otel.get("protocol", "")
        if protocol not in ("http", "grpc"):
            problems.bad("spec.tracing.otel.protocol", f"must be http or grpc, not {protocol!r}; tracing is off")
            return Tracing()
        address = otel.get("endpointAddress", "")
        if not isinstance(address, str) or not address:
            problems.bad("spec.tracing.otel.endpointAddress", "must be host:port; tracing is off")
            return Tracing()
        t.otel_protocol, t.otel_endpoint = protocol, address
        t.otel_secure = _bool(otel, "isSecure", "spec.tracing.otel.isSecure", True, problems)
    zipkin = _mapping(node.get("zipkin"), "spec.tracing.zipkin", problems)
    if zipkin is not None:
        address = zipkin.get("endpointAddress", "")
        if not isinstance(address, str):
            problems.bad("spec.tracing.zipkin.endpointAddress", "must be a URL; tracing is off")
            return Tracing()
        t.zipkin_endpoint = address
    t.enabled = bool(t.otel_endpoint or t.zipkin_endpoint) and rate > 0
    return t


def load(path: Path) -> Configuration:
    """Read ``path``; :class:`ConfigurationError` when it cannot be used at all."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"error loading configuration: {exc.strerror or exc}: {path}") from None
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"error loading configuration {path}: not UTF-8 text "
                                 f"(byte {exc.start}: {exc.reason})") from None
    import yaml  # here, not at the top: in Kubernetes the Configuration comes as JSON (operator_stream)

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"error loading configuration {path}: not YAML: {exc}") from None
    return from_document(doc, str(path))


def from_document(doc: Any, label: str) -> Configuration:
    """One Configuration document → what parley honours of it; ``label`` names it in every message.
    :class:`ConfigurationError` when it is not a Configuration at all."""
    if not isinstance(doc, Mapping):
        raise ConfigurationError(f"error loading configuration {label}: not a Configuration document")
    kind = doc.get("kind", "Configuration")
    if kind != "Configuration":
        raise ConfigurationError(f"error loading configuration {label}: kind is {kind!r}, not Configuration")
    problems = _Problems(label)
    config = Configuration()
    spec = _mapping(doc.get("spec"), "spec", problems) or {}
    metric = _mapping(spec.get("metric"), "spec.metric", problems)
    if metric is not None:
        config.metrics_enabled = _bool(metric, "enabled", "spec.metric.enabled", True, problems)
        config.metric_rules = _rules(metric.get("rules"), problems)
    logging_node = _mapping(spec.get("logging"), "spec.logging", problems)
    if logging_node is not None:
        api = _mapping(logging_node.get("apiLogging"), "spec.logging.apiLogging", problems)
        if api is not None:
            field = "spec.logging.apiLogging."
            config.api_logging = ApiLogging(
                enabled=_bool(api, "enabled", field + "enabled", False, problems),
                obfuscate_urls=_bool(api, "obfuscateURLs", field + "obfuscateURLs", False, problems),
                omit_health_checks=_bool(api, "omitHealthChecks", field + "omitHealthChecks", False, problems))
    tracing = _mapping(spec.get("tracing"), "spec.tracing", problems)
    if tracing is not None:
        config.tracing = _tracing(tracing, problems)
    ignored = [f"spec.{key}" for key in spec if key not in _HONOURED]
    for node, prefix, known in ((metric, "spec.metric.", {"enabled", "rules"}),
                                (logging_node, "spec.logging.", {"apiLogging"}),
                                (tracing, "spec.tracing.", {"samplingRate", "otel", "zipkin"})):
        ignored += [prefix + str(key) for key in (node or {}) if key not in known]
    config.ignored = tuple(ignored)
    for field in ignored:
        top = field.split(".")[1]
        why = _IGNORED_WHY.get(top, "not a setting parley implements")
        log.warning("parley ignores Configuration field %s: %s", field, why)
    return config
