"""Pod annotations → :class:`SidecarConfig`: what the injected sidecar looks like for one pod.

Dapr reads the same keys (``pkg/injector/patcher/sidecar.go``) with the same defaults, but skips a
value it cannot parse and injects anyway; parley instead reports every invalid value, naming the
annotation, and the webhook denies the pod, so a typo surfaces at ``kubectl apply`` rather than as
a sidecar that silently runs with defaults. Pure functions, no I/O.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import TypeVar

from parley_operator.injection import annotations as keys
from parley_operator.settings import InjectorSettings

__all__ = [
    "GRPC_PORT",
    "HTTP_PORT",
    "LOG_LEVELS",
    "PUBLIC_PORT",
    "Invalid",
    "Parsed",
    "Probe",
    "SidecarConfig",
    "app_id_of",
    "parse",
    "validate_app_id",
    "wants_injection",
]

# daprd's fixed ports (``SidecarHTTPPort``/``SidecarPublicPort`` carry no annotation in Dapr).
HTTP_PORT = 3500
GRPC_PORT = 50001
PUBLIC_PORT = 3501

LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")
"""What ``parley-sidecar --log-level`` (and daprd) accept."""

_TRUTHY = ("y", "yes", "true", "t", "on", "1")  # dapr/kit strings.IsTruthy
_FALSY = ("", "n", "no", "false", "f", "off", "0")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUANTITY = re.compile(r"[+]?(\d+(\.\d*)?|\.\d+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?")
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
# Dapr splits ``dapr.io/env`` only at a comma that starts the next NAME=, so values may hold commas.
_ENV_SPLIT = re.compile(r",\s*(?=[a-zA-Z_][a-zA-Z0-9_]*=)")
_IMAGE = re.compile(r"\S+")

RESERVED_ENV = ("NAMESPACE", "POD_NAME", "DAPR_API_TOKEN", "DAPR_HTTP_PORT", "DAPR_GRPC_PORT")
"""Set by the injector itself; ``dapr.io/env`` may not override them."""


@dataclasses.dataclass(frozen=True, slots=True)
class Probe:
    delay: int
    """``initialDelaySeconds``"""
    timeout: int
    period: int
    threshold: int
    """``failureThreshold``"""


@dataclasses.dataclass(frozen=True, slots=True)
class SidecarConfig:
    """Everything the patch needs about one pod's sidecar; Dapr's defaults (v1.18)."""

    app_id: str
    image: str
    namespace: str = ""
    """The pod's namespace (from the AdmissionReview when the object has none, kopf #744)."""
    app_port: int | None = None
    config: str = ""
    log_level: str = "info"
    log_as_json: bool = False
    cpu_request: str = ""
    cpu_limit: str = ""
    memory_request: str = ""
    memory_limit: str = ""
    enable_metrics: bool = True
    metrics_port: int = 9090
    api_token_secret: str = ""
    env: tuple[tuple[str, str], ...] = ()
    liveness: Probe = Probe(delay=180, timeout=3, period=10, threshold=5)
    readiness: Probe = Probe(delay=1, timeout=1, period=1, threshold=5)
    native_sidecar: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Invalid:
    """One annotation whose value cannot be used; the message names the key, not just the value."""

    annotation: str
    reason: str

    def __str__(self) -> str:
        return f"annotation {self.annotation}: {self.reason}"


@dataclasses.dataclass(frozen=True, slots=True)
class Parsed:
    config: SidecarConfig
    """Built from the valid values (defaults where a value was invalid); use only if ``invalid``
    is empty."""
    invalid: tuple[Invalid, ...] = ()
    ignored: tuple[str, ...] = ()
    """Dapr annotation keys present on the pod that parley does not act on."""


def wants_injection(pod_annotations: Mapping[str, str]) -> bool:
    """Dapr ≥ 1.18's pre-filter: only the exact word ``true`` (any case) asks for a sidecar."""
    return str(pod_annotations.get(keys.ENABLED, "")).lower() == "true"


def validate_app_id(app_id: str) -> str | None:
    """Dapr's ``ValidateKubernetesAppID``: ``<app-id>-dapr`` must be a DNS label (≤ 63 chars)."""
    if not app_id:
        return ("is required for pods without a name (Deployments, Jobs … create pods from "
                "generateName); set it on the pod template")
    if len(app_id) + len("-dapr") > 63 or not _DNS_LABEL.fullmatch(app_id + "-dapr"):
        return ("must be lowercase letters, digits and '-', start and end with a letter or digit, "
                "at most 58 characters")
    return None


def app_id_of(pod_annotations: Mapping[str, str], pod_name: str) -> str:
    """The pod's app id: the annotation, else the pod's name (Dapr's ``GetAppID``)."""
    return str(pod_annotations.get(keys.APP_ID) or pod_name or "")


_T = TypeVar("_T")


class _Reader:
    """Collects values and problems while reading one pod's annotations."""

    def __init__(self, raw: Mapping[str, str]) -> None:
        self.raw = raw
        self.invalid: list[Invalid] = []

    def get(self, key: str, default: _T, convert: Callable[[str], _T]) -> _T:
        if key not in self.raw:
            return default
        try:
            return convert(str(self.raw[key]))
        except ValueError as exc:
            self.invalid.append(Invalid(key, str(exc)))
            return default


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUTHY:
        return True
    if lowered in _FALSY:
        return False
    raise ValueError(f"must be true or false, got {text!r}")


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def convert(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise ValueError(f"must be an integer, got {text!r}") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        return value
    return convert


_port = _int_in(1, 65535)


def _matching(pattern: re.Pattern[str], what: str, *, allow_empty: bool = True) -> Callable[[str], str]:
    def convert(text: str) -> str:
        value = text.strip()
        if value == "" and allow_empty:
            return ""
        if not pattern.fullmatch(value) or len(value) > 253:
            raise ValueError(f"must be {what}, got {text!r}")
        return value
    return convert


def _log_level(text: str) -> str:
    value = text.strip().lower()
    if value not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}, got {text!r}")
    return value


def _env(text: str) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    if not text.strip():
        return ()
    for part in _ENV_SPLIT.split(text.strip()):
        name, sep, value = part.strip().partition("=")
        name = name.strip()
        if not sep or not _ENV_NAME.fullmatch(name):
            raise ValueError(f"entry {part.strip()!r} is not NAME=value (comma-separated)")
        if name in RESERVED_ENV:
            raise ValueError(f"{name} is set by the injector and cannot be overridden")
        pairs.append((name, value))
    return tuple(pairs)


def _probe(reader: _Reader, default: Probe, delay: str, timeout: str, period: str, threshold: str) -> Probe:
    return Probe(
        delay=reader.get(delay, default.delay, _int_in(0, 86400)),
        timeout=reader.get(timeout, default.timeout, _int_in(1, 3600)),
        period=reader.get(period, default.period, _int_in(1, 3600)),
        threshold=reader.get(threshold, default.threshold, _int_in(1, 1000)),
    )


def parse(
    pod_annotations: Mapping[str, str],
    *,
    pod_name: str,
    namespace: str = "",
    settings: InjectorSettings,
) -> Parsed:
    """Read a pod's Dapr annotations; every invalid value is reported, none is silently dropped."""
    r = _Reader(pod_annotations)
    app_id = app_id_of(pod_annotations, pod_name)
    problem = validate_app_id(app_id)
    if problem:
        r.invalid.append(Invalid(keys.APP_ID, problem))
    quantity = _matching(_QUANTITY, "a Kubernetes quantity such as 100m, 0.5 or 128Mi")
    base = SidecarConfig(app_id="", image="")
    config = SidecarConfig(
        app_id=app_id,
        namespace=namespace,
        image=r.get(keys.SIDECAR_IMAGE, "", _matching(_IMAGE, "an image reference")) or settings.sidecar_image,
        app_port=r.get(keys.APP_PORT, None, _port),
        config=r.get(keys.CONFIG, "", _matching(_DNS_SUBDOMAIN, "the name of a Configuration")),
        log_level=r.get(keys.LOG_LEVEL, base.log_level, _log_level),
        log_as_json=r.get(keys.LOG_AS_JSON, base.log_as_json, _bool),
        cpu_request=r.get(keys.CPU_REQUEST, "", quantity),
        cpu_limit=r.get(keys.CPU_LIMIT, "", quantity),
        memory_request=r.get(keys.MEMORY_REQUEST, "", quantity),
        memory_limit=r.get(keys.MEMORY_LIMIT, "", quantity),
        enable_metrics=r.get(keys.ENABLE_METRICS, base.enable_metrics, _bool),
        metrics_port=r.get(keys.METRICS_PORT, base.metrics_port, _port),
        api_token_secret=r.get(keys.API_TOKEN_SECRET, "", _matching(_DNS_SUBDOMAIN, "the name of a Secret")),
        env=r.get(keys.ENV, (), _env),
        liveness=_probe(r, base.liveness, keys.LIVENESS_DELAY, keys.LIVENESS_TIMEOUT,
                        keys.LIVENESS_PERIOD, keys.LIVENESS_THRESHOLD),
        readiness=_probe(r, base.readiness, keys.READINESS_DELAY, keys.READINESS_TIMEOUT,
                         keys.READINESS_PERIOD, keys.READINESS_THRESHOLD),
        native_sidecar=r.get(keys.ENABLE_NATIVE_SIDECAR, settings.native_sidecar, _bool),
    )
    if config.enable_metrics and config.metrics_port in (HTTP_PORT, GRPC_PORT, PUBLIC_PORT):
        r.invalid.append(Invalid(keys.METRICS_PORT, f"port {config.metrics_port} is used by the sidecar's API"))
    ignored = tuple(key for key in keys.IGNORED if key in pod_annotations)
    return Parsed(config=config, invalid=tuple(r.invalid), ignored=ignored)
