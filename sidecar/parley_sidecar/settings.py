"""Sidecar settings, grouped by concern; CLI flags and environment variables fill them in ``cli``.

Defaults are daprd's, so a pod spec or a ``dapr run`` written for daprd behaves the same.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from parley_sidecar import records
from parley_sidecar.records import FACTORY
from parley_sidecar.records import set_field as _set

__all__ = ["ApiLogging", "Configuration", "Connections", "LabelRule", "Limits", "Logging", "MetricRule",
           "OperatorLink", "Ports", "SidecarSettings", "Tracing"]

RUNTIME_VERSION = "1.18.3-parley.0.1.0"
"""What ``--version`` and ``/v1.0/metadata`` report: the daprd API level we match, then our own
version as a semver pre-release, so tools that parse daprd's version (the Dapr CLI needs ≥ 1.14)
keep working while the answer stays honest."""


# Each class is a dataclass (``records``) and writes the ``__init__`` one would generate.


# What a Dapr Configuration file sets (``loading.configuration`` reads it): plain data, here so that
# settings imports no layer (the operator imports this module too).
@records.frozen
class LabelRule(records.Record):
    label: str
    pairs: tuple[tuple[re.Pattern[str], str], ...]
    """(regex, replacement) in file order: each regex's matches in the label value are replaced."""

    def __init__(self, label: str, pairs: tuple[tuple[re.Pattern[str], str], ...]) -> None:
        _set(self, "label", label)
        _set(self, "pairs", pairs)


@records.frozen
class MetricRule(records.Record):
    name: str
    labels: tuple[LabelRule, ...]

    def __init__(self, name: str, labels: tuple[LabelRule, ...]) -> None:
        _set(self, "name", name)
        _set(self, "labels", labels)


@records.mutable
class ApiLogging(records.Record):
    enabled: bool = False
    obfuscate_urls: bool = False
    omit_health_checks: bool = False

    def __init__(self, enabled: bool = False, obfuscate_urls: bool = False, omit_health_checks: bool = False) -> None:
        self.enabled = enabled
        self.obfuscate_urls = obfuscate_urls
        self.omit_health_checks = omit_health_checks


@records.mutable
class Tracing(records.Record):
    """``spec.tracing``, validated; ``tracing.plan`` decides from it (and ``OTEL_*``) where spans go."""

    enabled: bool = False
    sampling_rate: float = 1.0
    otel_endpoint: str = ""
    otel_secure: bool = True
    otel_protocol: str = ""
    zipkin_endpoint: str = ""

    def __init__(self, enabled: bool = False, sampling_rate: float = 1.0, otel_endpoint: str = "",
                 otel_secure: bool = True, otel_protocol: str = "", zipkin_endpoint: str = "") -> None:
        self.enabled = enabled
        self.sampling_rate = sampling_rate
        self.otel_endpoint = otel_endpoint
        self.otel_secure = otel_secure
        self.otel_protocol = otel_protocol
        self.zipkin_endpoint = zipkin_endpoint


@records.mutable
class Configuration(records.Record):
    metrics_enabled: bool = True
    metric_rules: tuple[MetricRule, ...] = ()
    api_logging: ApiLogging = dataclasses.field(default_factory=ApiLogging)
    tracing: Tracing = dataclasses.field(default_factory=Tracing)
    ignored: tuple[str, ...] = ()
    """``spec.X`` paths named in the ignored-fields warning."""

    def __init__(self, metrics_enabled: bool = True, metric_rules: tuple[MetricRule, ...] = (),
                 api_logging: ApiLogging = FACTORY, tracing: Tracing = FACTORY, ignored: tuple[str, ...] = ()) -> None:
        self.metrics_enabled = metrics_enabled
        self.metric_rules = metric_rules
        self.api_logging = ApiLogging() if api_logging is FACTORY else api_logging
        self.tracing = Tracing() if tracing is FACTORY else tracing
        self.ignored = ignored



@records.mutable
class Ports(records.Record):
    http: int = 3500
    """Dapr HTTP API (``--dapr-http-port``)."""
    grpc: int = 50001
    """Dapr gRPC API (``--dapr-grpc-port``)."""
    metrics: int = 9090
    """Prometheus text at ``/`` (``--metrics-port``)."""
    public: int = 3501
    """Health and metadata for probes (``--dapr-public-port``)."""

    def __init__(self, http: int = 3500, grpc: int = 50001, metrics: int = 9090, public: int = 3501) -> None:
        self.http = http
        self.grpc = grpc
        self.metrics = metrics
        self.public = public


@records.mutable
class Limits(records.Record):
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

    def __init__(self, max_body_size: int = 4 * 1024 * 1024, read_buffer_size: int = 4 * 1024,
                 graceful_shutdown: float = 5.0, block_shutdown: float = 0.0) -> None:
        self.max_body_size = max_body_size
        self.read_buffer_size = read_buffer_size
        self.graceful_shutdown = graceful_shutdown
        self.block_shutdown = block_shutdown


@records.mutable
class Connections(records.Record):
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

    def __init__(self, read_header_timeout: float = 10.0, idle_timeout: float = 60.0,
                 grpc_max_idle: float = 180.0) -> None:
        self.read_header_timeout = read_header_timeout
        self.idle_timeout = idle_timeout
        self.grpc_max_idle = grpc_max_idle


@records.mutable
class Logging(records.Record):
    level: str = "info"
    as_json: bool = False

    def __init__(self, level: str = "info", as_json: bool = False) -> None:
        self.level = level
        self.as_json = as_json


_TOKEN_PATH = Path("/var/run/secrets/parley.io/token/token")
_CA_PATH = Path("/var/run/secrets/parley.io/ca/ca.crt")


@records.mutable
class OperatorLink(records.Record):
    """Where the operator's component stream is (Kubernetes mode); unset in standalone mode."""

    address: str = ""
    """``host:port`` of the operator's HTTPS stream (``--control-plane-address``)."""
    token_path: Path = _TOKEN_PATH
    ca_path: Path = _CA_PATH
    namespace: str = ""

    def __init__(self, address: str = "", token_path: Path = _TOKEN_PATH, ca_path: Path = _CA_PATH,
                 namespace: str = "") -> None:
        self.address = address
        self.token_path = token_path
        self.ca_path = ca_path
        self.namespace = namespace


@records.mutable
class SidecarSettings(records.Record):
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

    def __init__(self, app_id: str = "", resources_paths: list[Path] = FACTORY, ports: Ports = FACTORY,
                 listen_addresses: list[str] = FACTORY, unix_domain_socket: Path | None = None,
                 public_listen_address: str = "0.0.0.0", metrics_listen_address: str = "0.0.0.0",
                 enable_metrics: bool = True, api_token: str = "", namespace: str = "", limits: Limits = FACTORY,
                 connections: Connections = FACTORY, logging: Logging = FACTORY, operator: OperatorLink = FACTORY,
                 workers: int = 1, reload_interval: float = 0.25, config_file: Path | None = None,
                 kubernetes_config: str = "", enable_api_logging: bool | None = None,
                 configuration: Configuration = FACTORY) -> None:
        self.app_id = app_id
        self.resources_paths = [] if resources_paths is FACTORY else resources_paths
        self.ports = Ports() if ports is FACTORY else ports
        self.listen_addresses = ["0.0.0.0"] if listen_addresses is FACTORY else listen_addresses
        self.unix_domain_socket = unix_domain_socket
        self.public_listen_address = public_listen_address
        self.metrics_listen_address = metrics_listen_address
        self.enable_metrics = enable_metrics
        self.api_token = api_token
        self.namespace = namespace
        self.limits = Limits() if limits is FACTORY else limits
        self.connections = Connections() if connections is FACTORY else connections
        self.logging = Logging() if logging is FACTORY else logging
        self.operator = OperatorLink() if operator is FACTORY else operator
        self.workers = workers
        self.reload_interval = reload_interval
        self.config_file = config_file
        self.kubernetes_config = kubernetes_config
        self.enable_api_logging = enable_api_logging
        self.configuration = Configuration() if configuration is FACTORY else configuration
