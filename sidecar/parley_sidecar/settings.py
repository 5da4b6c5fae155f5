"""Sidecar settings, grouped by concern; CLI flags and environment variables fill them in ``cli``.

Defaults are daprd's, so a pod spec or a ``dapr run`` written for daprd behaves the same.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

__all__ = ["ApiLogging", "Configuration", "Connections", "LabelRule", "Limits", "Logging", "MetricRule",
           "OperatorLink", "Ports", "SidecarSettings", "Tracing"]

RUNTIME_VERSION = "1.18.3-parley.0.1.0"
"""What ``--version`` and ``/v1.0/metadata`` report: the daprd API level we match, then our own
version as a semver pre-release, so tools that parse daprd's version (the Dapr CLI needs ≥ 1.14)
keep working while the answer stays honest."""


# What a Dapr Configuration file sets (``loading.configuration`` reads it): plain data, here so that
# settings imports no layer (the operator imports this module too).
@dataclasses.dataclass(frozen=True, slots=True)
class LabelRule:
    label: str
    pairs: tuple[tuple[re.Pattern[str], str], ...]
    """(regex, replacement) in file order: each regex's matches in the label value are replaced."""


@dataclasses.dataclass(frozen=True, slots=True)
class MetricRule:
    name: str
    labels: tuple[LabelRule, ...]


@dataclasses.dataclass(slots=True)
class ApiLogging:
    enabled: bool = False
    obfuscate_urls: bool = False
    omit_health_checks: bool = False


@dataclasses.dataclass(slots=True)
class Tracing:
    """``spec.tracing``, validated; ``tracing.plan`` decides from it (and ``OTEL_*``) where spans go."""

    enabled: bool = False
    sampling_rate: float = 1.0
    otel_endpoint: str = ""
    otel_secure: bool = True
    otel_protocol: str = ""
    zipkin_endpoint: str = ""


@dataclasses.dataclass(slots=True)
class Configuration:
    metrics_enabled: bool = True
    metric_rules: tuple[MetricRule, ...] = ()
    api_logging: ApiLogging = dataclasses.field(default_factory=ApiLogging)
    tracing: Tracing = dataclasses.field(default_factory=Tracing)
    ignored: tuple[str, ...] = ()
    """``spec.X`` paths named in the ignored-fields warning."""



@dataclasses.dataclass(slots=True)
class Ports:
    http: int = 3500
    """Dapr HTTP API (``--dapr-http-port``)."""
    grpc: int = 50001
    """Dapr gRPC API (``--dapr-grpc-port``)."""
    metrics: int = 9090
    """Prometheus text at ``/`` (``--metrics-port``)."""
    public: int = 3501
    """Health and metadata for probes (``--dapr-public-port``)."""


@dataclasses.dataclass(slots=True)
class Limits:
    max_body_size: int = 4 * 1024 * 1024
    """Bytes; larger request bodies get 413 (``--max-body-size``, daprd's default 4Mi)."""
    read_buffer_size: int = 4 * 1024
    """Bytes (``--read-buffer-size``, daprd's default 4Ki). daprd hands it to Go's
    ``MaxHeaderBytes``, which lets a request head (request line and headers) reach this plus 4 KiB
    of read slack; a larger head gets 431, on every HTTP port."""
    graceful_shutdown: float = 5.0
    """Seconds to let in-flight requests finish after SIGTERM (``--dapr-graceful-shutdown-seconds``;
    a negative value means daprd's default, 5)."""
    block_shutdown: float = 0.0
    """Seconds to keep serving as usual after SIGTERM before the graceful shutdown starts
    (``--dapr-block-shutdown-duration``; 0: off). daprd also ends the wait when the app reports
    unhealthy; parley has no app channel, so the whole duration passes."""


@dataclasses.dataclass(slots=True)
class Connections:
    """How long a client connection may hold the sidecar without using it; 0 turns a limit off.

    These matter most on the public and metrics ports, which bind every interface in a pod."""

    read_header_timeout: float = 10.0
    """Seconds an HTTP connection has to send a complete request head, on every HTTP port; then it
    is closed (``--http-read-header-timeout``). daprd's ``ReadHeaderTimeout``, fixed at 10 s there."""
    idle_timeout: float = 60.0
    """Seconds an HTTP keep-alive connection may wait for its next request (``--http-idle-timeout``).
    daprd sets none; aiohttp's default is an hour. A minute keeps a connection across a client's
    pauses between calls, and frees one a client forgot; a client whose connection was closed
    opens a new one for its next request."""
    grpc_max_idle: float = 180.0
    """Seconds a gRPC connection with no call in flight is kept before a GOAWAY
    (``--grpc-max-connection-idle``): daprd's ``MaxConnectionIdle`` of 3 minutes."""


@dataclasses.dataclass(slots=True)
class Logging:
    level: str = "info"
    as_json: bool = False


@dataclasses.dataclass(slots=True)
class OperatorLink:
    """Where the operator's component stream is (Kubernetes mode); unset in standalone mode."""

    address: str = ""
    """``host:port`` of the operator's HTTPS stream (``--control-plane-address``)."""
    token_path: Path = Path("/var/run/secrets/parley.io/token/token")
    ca_path: Path = Path("/var/run/secrets/parley.io/ca/ca.crt")
    namespace: str = ""


@dataclasses.dataclass(slots=True)
class SidecarSettings:
    app_id: str = ""
    resources_paths: list[Path] = dataclasses.field(default_factory=list)
    ports: Ports = dataclasses.field(default_factory=Ports)
    listen_addresses: list[str] = dataclasses.field(default_factory=lambda: ["0.0.0.0"])
    """API listen addresses (``--dapr-listen-addresses``); daprd binds every interface by default.
    Each is bound; one that cannot be (``[::1]`` on a host without IPv6) is skipped with a warning,
    as daprd does, and the start fails only if none can."""
    unix_domain_socket: Path | None = None
    """``--unix-domain-socket DIR``: the HTTP and gRPC APIs listen only on ``DIR/dapr-<app-id>-http.socket``
    and ``DIR/dapr-<app-id>-grpc.socket`` (daprd's names), not on TCP."""
    public_listen_address: str = "0.0.0.0"
    metrics_listen_address: str = "0.0.0.0"
    enable_metrics: bool = True
    api_token: str = dataclasses.field(default="", repr=False)
    """From ``DAPR_API_TOKEN``: when set, API calls need the ``dapr-api-token`` header."""
    namespace: str = ""
    """From ``NAMESPACE`` (set by the injector); empty in standalone mode, as in daprd."""
    limits: Limits = dataclasses.field(default_factory=Limits)
    connections: Connections = dataclasses.field(default_factory=Connections)
    logging: Logging = dataclasses.field(default_factory=Logging)
    operator: OperatorLink = dataclasses.field(default_factory=OperatorLink)
    workers: int = 1
    """Processes serving the API (``--workers``, ``PARLEY_WORKERS``; the annotation
    ``parley.io/sidecar-workers``). 1: one process, as daprd. More: the process started forks the
    others after its imports, they share the listeners, and the first one's metrics port answers
    their sum (``workers``, docs/sidecar.md "Worker processes"). Opt-in: every worker costs
    memory, and per-process state (breakers, local caches) is then per worker."""
    reload_interval: float = 0.25
    """Seconds between checks of ``--resources-path`` for changed files."""
    config_file: Path | None = None
    """Dapr ``Configuration`` file (``--config``); read by ``Sidecar.start`` into :attr:`configuration`."""
    kubernetes_config: str = ""
    """``--config NAME`` with ``--mode kubernetes``: a Configuration resource's name, which the
    operator's stream delivers (``Sidecar.start`` waits for it)."""
    enable_api_logging: bool | None = None
    """``--enable-api-logging``; when given it wins over ``spec.logging.apiLogging.enabled``, as in daprd."""
    configuration: Configuration = dataclasses.field(default_factory=Configuration)
    """What the Configuration file set (defaults without one)."""
