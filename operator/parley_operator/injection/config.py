"""Pod annotations → :class:`SidecarConfig`: what the injected sidecar looks like for one pod.

Dapr reads the same keys (``pkg/injector/patcher/sidecar.go``) with the same defaults, but skips a
value it cannot parse and injects anyway; parley instead reports every invalid value, naming the
annotation, and the webhook denies the pod, so a typo surfaces at ``kubectl apply`` rather than as
a sidecar that silently runs with defaults. Pure functions, no I/O.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import posixpath
import re
from collections.abc import Callable, Collection, Mapping
from typing import TypeVar

from parley_operator.injection import annotations as keys
from parley_operator.settings import InjectorSettings
from parley_sidecar import durations
from parley_sidecar.settings import OperatorLink

__all__ = [
    "DEFAULT_GRACE",
    "GRPC_PORT",
    "HTTP_PORT",
    "LOG_LEVELS",
    "POD_DEFAULT_GRACE",
    "PUBLIC_PORT",
    "UDS_SIDECAR_DIR",
    "Invalid",
    "Parsed",
    "Probe",
    "SecretEnv",
    "SidecarConfig",
    "VolumeMount",
    "app_id_of",
    "grace_shortfall",
    "parse",
    "shutdown_seconds",
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

UDS_SIDECAR_DIR = "/var/run/dapr-sockets"
"""Where the sockets' volume is mounted in the sidecar (Dapr's ``UnixDomainSocketDaprdPath``); the
annotation names the directory in the app's containers only."""
DEFAULT_GRACE = 5
"""daprd's graceful shutdown in seconds, when ``graceful-shutdown-seconds`` is unset (-1)."""
POD_DEFAULT_GRACE = 30
"""Kubernetes' ``terminationGracePeriodSeconds`` when a pod sets none."""
SHUTDOWN_MARGIN = 5
"""Seconds the pod's grace period keeps beyond the sidecar's block and drain: the sidecar closes
its components and exits after the drain, and the kubelet's SIGKILL must not cut that short."""
MAX_WORKERS = 64
"""The most ``parley.io/sidecar-workers`` allows: more processes than a pod has cores only costs memory."""
_LINK = OperatorLink()
_SIDECAR_DIRS = (str(_LINK.token_path.parent), str(_LINK.ca_path.parent), UDS_SIDECAR_DIR)
"""Mount paths the injector uses in the sidecar itself; a volume mount there would clash."""
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_HOSTNAME = re.compile(r"[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)*")


@dataclasses.dataclass(frozen=True, slots=True)
class SecretEnv:
    """One ``dapr.io/env-from-secret`` entry: env var ``name`` from ``secret``'s ``key``."""

    name: str
    secret: str
    key: str


@dataclasses.dataclass(frozen=True, slots=True)
class VolumeMount:
    """One of the pod's own volumes mounted into the sidecar (``dapr.io/volume-mounts[-rw]``)."""

    volume: str
    path: str
    read_only: bool


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
    graceful_shutdown_seconds: int = -1
    """-1: daprd's own default (:data:`DEFAULT_GRACE`), passed on as Dapr's injector does."""
    block_shutdown: str = ""
    """A Go duration (``--dapr-block-shutdown-duration``); empty: no block."""
    max_body_size: str = ""
    """A quantity such as ``16Mi`` (``--max-body-size``); empty: the sidecar's default."""
    http_max_request_size: int | None = None
    """MiB (``--dapr-http-max-request-size``), legacy."""
    read_buffer_size: str = ""
    http_read_buffer_size: int | None = None
    """KiB (``--dapr-http-read-buffer-size``), legacy."""
    listen_addresses: str = "[::1],127.0.0.1"
    """``--dapr-listen-addresses``: Dapr's default answers the pod's own containers only."""
    enable_api_logging: bool | None = None
    """Passed only when set: unset leaves the Configuration's ``apiLogging`` in charge."""
    unix_domain_socket_path: str = ""
    """The sockets' directory in the app's containers; empty: the API is on TCP."""
    env_from_secret: tuple[SecretEnv, ...] = ()
    volume_mounts: tuple[VolumeMount, ...] = ()
    workers: int = 1
    """``--workers`` (``parley.io/sidecar-workers``); 1, the default, passes no flag."""


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


def _env_from_secret(text: str) -> tuple[SecretEnv, ...]:
    """Dapr's format: ``NAME=secret`` (key ``secret`` too) or ``NAME=secret:key``, comma-separated."""
    entries: list[SecretEnv] = []
    if not text.strip():
        return ()
    for part in _ENV_SPLIT.split(text.strip()):
        name, sep, source = part.strip().partition("=")
        name, (secret, colon, key) = name.strip(), source.strip().partition(":")
        secret, key = secret.strip(), key.strip() if colon else secret.strip()
        if not sep or not _ENV_NAME.fullmatch(name):
            raise ValueError(f"entry {part.strip()!r} is not NAME=secret or NAME=secret:key (comma-separated)")
        if name in RESERVED_ENV:
            raise ValueError(f"{name} is set by the injector and cannot be overridden")
        if not _DNS_SUBDOMAIN.fullmatch(secret) or len(secret) > 253:
            raise ValueError(f"entry {part.strip()!r}: {secret!r} is not the name of a Secret")
        if not _SECRET_KEY.fullmatch(key) or ":" in key:
            raise ValueError(f"entry {part.strip()!r}: {key!r} is not a key of a Secret")
        entries.append(SecretEnv(name, secret, key))
    return tuple(entries)


def _mounts(read_only: bool, volumes: Collection[str]) -> Callable[[str], tuple[VolumeMount, ...]]:
    def convert(text: str) -> tuple[VolumeMount, ...]:
        mounts: list[VolumeMount] = []
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            volume, sep, path = (t.strip() for t in part.partition(":"))
            if not sep or not volume or ":" in path:
                raise ValueError(f"entry {part!r} is not volume:/path (comma-separated)")
            if volume not in volumes:
                raise ValueError(f"the pod has no volume named {volume!r}")
            if not path.startswith("/") or posixpath.normpath(path) != path.rstrip("/") or ".." in path.split("/"):
                raise ValueError(f"entry {part!r}: the mount path must be an absolute, normalised path")
            if any(path == d or path.startswith(d + "/") or d.startswith(path + "/") for d in _SIDECAR_DIRS):
                raise ValueError(f"entry {part!r}: {path} overlaps a directory the injector mounts in the sidecar")
            mounts.append(VolumeMount(volume, path, read_only))
        return tuple(mounts)
    return convert


_NO_MOUNTS: tuple[VolumeMount, ...] = ()


def _listen_addresses(text: str) -> str:
    hosts = [h.strip() for h in text.split(",")]
    for host in hosts:
        bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        try:
            ipaddress.ip_address(bare)
        except ValueError:
            if bare != host or not _HOSTNAME.fullmatch(host) or len(host) > 253:
                raise ValueError(f"{host!r} is not an IP address ([::1], 127.0.0.1) or a host name") from None
    return ",".join(hosts)


def _size(what: str) -> Callable[[str], str]:
    """A quantity the sidecar's ``--max-body-size``/``--read-buffer-size`` accepts, above 0."""
    def convert(text: str) -> str:
        value = text.strip()
        try:
            size = durations.parse_size(value)
        except ValueError:
            raise ValueError(f"must be {what} such as 4Mi or 16Ki, got {text!r}") from None
        if size <= 0:
            raise ValueError(f"must be above 0, got {text!r}")
        return value
    return convert


def _go_duration(text: str) -> str:
    value = text.strip()
    try:
        seconds = durations.parse_duration(value)
    except ValueError:
        raise ValueError(f"must be a duration such as 10s or 1m30s, got {text!r}") from None
    if seconds < 0 or seconds > 86400:
        raise ValueError(f"must be between 0s and 24h, got {text!r}")
    return value


def _socket_dir(text: str) -> str:
    value = text.strip()
    if not value.startswith("/") or ".." in value.split("/") or "," in value or ":" in value:
        raise ValueError(f"must be an absolute directory path, got {text!r}")
    return value


def _optional_bool(text: str) -> bool | None:
    return _bool(text)


def shutdown_seconds(config: SidecarConfig) -> int:
    """How long the sidecar may take from SIGTERM to exit: block, then drain, then a margin."""
    grace = config.graceful_shutdown_seconds if config.graceful_shutdown_seconds >= 0 else DEFAULT_GRACE
    block = durations.parse_duration(config.block_shutdown) if config.block_shutdown else 0.0
    return math.ceil(block) + grace + SHUTDOWN_MARGIN


def grace_shortfall(config: SidecarConfig, pod_grace: int | None) -> str:
    """Why the pod's ``terminationGracePeriodSeconds`` would cut the sidecar's shutdown short, or ""
    (none, or Kubernetes' default of 30, is raised by the patch instead; see ``patch.grace_ops``)."""
    needed = shutdown_seconds(config)
    if pod_grace in (None, POD_DEFAULT_GRACE) or pod_grace >= needed:
        return ""
    if not (config.graceful_shutdown_seconds >= 0 or config.block_shutdown):
        return ""
    return (f"terminationGracePeriodSeconds is {pod_grace}, but the sidecar's shutdown "
            f"({keys.BLOCK_SHUTDOWN_DURATION}, {keys.GRACEFUL_SHUTDOWN_SECONDS}) needs {needed}: "
            f"the kubelet will kill it before in-flight calls finish")


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
    volumes: Collection[str] = (),
) -> Parsed:
    """Read a pod's Dapr annotations; every invalid value is reported, none is silently dropped.
    ``volumes`` are the names of the pod's volumes, which ``volume-mounts`` may name."""
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
        graceful_shutdown_seconds=r.get(keys.GRACEFUL_SHUTDOWN_SECONDS, -1, _int_in(-1, 86400)),
        block_shutdown=r.get(keys.BLOCK_SHUTDOWN_DURATION, "", _go_duration),
        max_body_size=r.get(keys.MAX_BODY_SIZE, "", _size("a size")),
        http_max_request_size=r.get(keys.HTTP_MAX_REQUEST_SIZE, None, _int_in(1, 1024)),
        read_buffer_size=r.get(keys.READ_BUFFER_SIZE, "", _size("a size")),
        http_read_buffer_size=r.get(keys.HTTP_READ_BUFFER_SIZE, None, _int_in(1, 1024 * 1024)),
        listen_addresses=r.get(keys.SIDECAR_LISTEN_ADDRESSES, base.listen_addresses, _listen_addresses),
        enable_api_logging=r.get(keys.ENABLE_API_LOGGING, None, _optional_bool),
        unix_domain_socket_path=r.get(keys.UNIX_DOMAIN_SOCKET_PATH, "", _socket_dir),
        env_from_secret=r.get(keys.ENV_FROM_SECRET, (), _env_from_secret),
        volume_mounts=(r.get(keys.VOLUME_MOUNTS, _NO_MOUNTS, _mounts(True, volumes))
                       + r.get(keys.VOLUME_MOUNTS_RW, _NO_MOUNTS, _mounts(False, volumes))),
        workers=r.get(keys.SIDECAR_WORKERS, 1, _int_in(1, MAX_WORKERS)),
    )
    if config.workers > 1 and config.unix_domain_socket_path:
        r.invalid.append(Invalid(keys.SIDECAR_WORKERS, (
            f"more than one worker cannot serve {keys.UNIX_DOMAIN_SOCKET_PATH}: the sidecar's gRPC server "
            "binds its unix socket itself and cannot share it between processes")))
    if config.enable_metrics and config.metrics_port in (HTTP_PORT, GRPC_PORT, PUBLIC_PORT):
        r.invalid.append(Invalid(keys.METRICS_PORT, f"port {config.metrics_port} is used by the sidecar's API"))
    plain = {name for name, _ in config.env}
    clashes = sorted(plain & {e.name for e in config.env_from_secret})
    if clashes:
        r.invalid.append(Invalid(keys.ENV_FROM_SECRET, f"{', '.join(clashes)} also set by {keys.ENV}"))
    paths = [m.path for m in config.volume_mounts]
    if len(set(paths)) != len(paths):
        r.invalid.append(Invalid(keys.VOLUME_MOUNTS, "two mounts share one path"))
    ignored = keys.unhonoured(pod_annotations)
    return Parsed(config=config, invalid=tuple(r.invalid), ignored=ignored)
