"""Dapr's pod annotation keys (``dapr/dapr: pkg/injector/annotations/annotations.go``), as data.

``SUPPORTED`` are the keys parley's injector reads. Any other ``dapr.io/`` key has no effect on
parley's sidecar: ``IGNORED`` lists Dapr's own (actors, pluggable components, app channel …; each
with its reason in ``docs/operator.md``), and a key Dapr does not know (a typo) is no better. A pod
carrying one is still injected; the admission response warns, and the pod gets one Warning Event
naming them (:func:`unhonoured`). Keys are case-sensitive, as in Kubernetes. No I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "API_TOKEN_SECRET",
    "APP_ID",
    "APP_PORT",
    "BLOCK_SHUTDOWN_DURATION",
    "CONFIG",
    "CPU_LIMIT",
    "CPU_REQUEST",
    "DAPR_PREFIX",
    "ENABLED",
    "ENABLE_API_LOGGING",
    "ENABLE_METRICS",
    "ENABLE_NATIVE_SIDECAR",
    "ENV",
    "ENV_FROM_SECRET",
    "GRACEFUL_SHUTDOWN_SECONDS",
    "HTTP_MAX_REQUEST_SIZE",
    "HTTP_READ_BUFFER_SIZE",
    "IGNORED",
    "LABEL_APP_ID",
    "LABEL_METRICS_ENABLED",
    "LABEL_SIDECAR_INJECTED",
    "LIVENESS_DELAY",
    "LIVENESS_PERIOD",
    "LIVENESS_THRESHOLD",
    "LIVENESS_TIMEOUT",
    "LOG_AS_JSON",
    "LOG_LEVEL",
    "MAX_BODY_SIZE",
    "MEMORY_LIMIT",
    "MEMORY_REQUEST",
    "METRICS_PORT",
    "OPERATOR_CA",
    "PROMETHEUS_PATH",
    "PROMETHEUS_PORT",
    "PROMETHEUS_SCRAPE",
    "READINESS_DELAY",
    "READINESS_PERIOD",
    "READINESS_THRESHOLD",
    "READINESS_TIMEOUT",
    "READ_BUFFER_SIZE",
    "SIDECAR_IMAGE",
    "SIDECAR_LISTEN_ADDRESSES",
    "SIDECAR_WORKERS",
    "SUPPORTED",
    "UNIX_DOMAIN_SOCKET_PATH",
    "VOLUME_MOUNTS",
    "VOLUME_MOUNTS_RW",
    "unhonoured",
]

DAPR_PREFIX = "dapr.io/"

ENABLED = "dapr.io/enabled"
APP_ID = "dapr.io/app-id"
APP_PORT = "dapr.io/app-port"
CONFIG = "dapr.io/config"
LOG_LEVEL = "dapr.io/log-level"
LOG_AS_JSON = "dapr.io/log-as-json"
SIDECAR_IMAGE = "dapr.io/sidecar-image"
CPU_REQUEST = "dapr.io/sidecar-cpu-request"
CPU_LIMIT = "dapr.io/sidecar-cpu-limit"
MEMORY_REQUEST = "dapr.io/sidecar-memory-request"
MEMORY_LIMIT = "dapr.io/sidecar-memory-limit"
ENABLE_METRICS = "dapr.io/enable-metrics"
METRICS_PORT = "dapr.io/metrics-port"
API_TOKEN_SECRET = "dapr.io/api-token-secret"
ENV = "dapr.io/env"
LIVENESS_DELAY = "dapr.io/sidecar-liveness-probe-delay-seconds"
LIVENESS_TIMEOUT = "dapr.io/sidecar-liveness-probe-timeout-seconds"
LIVENESS_PERIOD = "dapr.io/sidecar-liveness-probe-period-seconds"
LIVENESS_THRESHOLD = "dapr.io/sidecar-liveness-probe-threshold"
READINESS_DELAY = "dapr.io/sidecar-readiness-probe-delay-seconds"
READINESS_TIMEOUT = "dapr.io/sidecar-readiness-probe-timeout-seconds"
READINESS_PERIOD = "dapr.io/sidecar-readiness-probe-period-seconds"
READINESS_THRESHOLD = "dapr.io/sidecar-readiness-probe-threshold"
ENABLE_NATIVE_SIDECAR = "dapr.io/enable-native-sidecar"
GRACEFUL_SHUTDOWN_SECONDS = "dapr.io/graceful-shutdown-seconds"
BLOCK_SHUTDOWN_DURATION = "dapr.io/block-shutdown-duration"
MAX_BODY_SIZE = "dapr.io/max-body-size"
HTTP_MAX_REQUEST_SIZE = "dapr.io/http-max-request-size"
"""Legacy (MiB); ``max-body-size`` wins when both are set, as in daprd."""
READ_BUFFER_SIZE = "dapr.io/read-buffer-size"
HTTP_READ_BUFFER_SIZE = "dapr.io/http-read-buffer-size"
"""Legacy (KiB); ``read-buffer-size`` wins when both are set, as in daprd."""
ENV_FROM_SECRET = "dapr.io/env-from-secret"
VOLUME_MOUNTS = "dapr.io/volume-mounts"
VOLUME_MOUNTS_RW = "dapr.io/volume-mounts-rw"
SIDECAR_LISTEN_ADDRESSES = "dapr.io/sidecar-listen-addresses"
ENABLE_API_LOGGING = "dapr.io/enable-api-logging"
UNIX_DOMAIN_SOCKET_PATH = "dapr.io/unix-domain-socket-path"

SUPPORTED = (
    ENABLED, APP_ID, APP_PORT, CONFIG, LOG_LEVEL, LOG_AS_JSON, SIDECAR_IMAGE,
    CPU_REQUEST, CPU_LIMIT, MEMORY_REQUEST, MEMORY_LIMIT, ENABLE_METRICS, METRICS_PORT,
    API_TOKEN_SECRET, ENV,
    LIVENESS_DELAY, LIVENESS_TIMEOUT, LIVENESS_PERIOD, LIVENESS_THRESHOLD,
    READINESS_DELAY, READINESS_TIMEOUT, READINESS_PERIOD, READINESS_THRESHOLD,
    ENABLE_NATIVE_SIDECAR, GRACEFUL_SHUTDOWN_SECONDS, BLOCK_SHUTDOWN_DURATION, MAX_BODY_SIZE,
    HTTP_MAX_REQUEST_SIZE, READ_BUFFER_SIZE, HTTP_READ_BUFFER_SIZE, ENV_FROM_SECRET, VOLUME_MOUNTS,
    VOLUME_MOUNTS_RW, SIDECAR_LISTEN_ADDRESSES, ENABLE_API_LOGGING, UNIX_DOMAIN_SOCKET_PATH,
)
"""``app-port`` is read and validated but changes nothing (a conversation sidecar never calls its
app); it stays here so that a pod written for daprd is not warned about a key it needs there."""

IGNORED = (
    "dapr.io/app-protocol", "dapr.io/app-ssl", "dapr.io/enable-profiling", "dapr.io/app-token-secret",
    "dapr.io/app-max-concurrency", "dapr.io/enable-debug", "dapr.io/debug-port",
    "dapr.io/grpc-port", "dapr.io/internal-grpc-port",
    "dapr.io/sidecar-seccomp-profile-type", "dapr.io/disable-builtin-k8s-secret-store",
    "dapr.io/enable-app-health-check", "dapr.io/app-health-check-path", "dapr.io/app-health-probe-interval",
    "dapr.io/app-health-probe-timeout", "dapr.io/app-health-threshold", "dapr.io/app-binding-options-timeout",
    "dapr.io/placement-host-address", "dapr.io/actors-disseminate-timeout", "dapr.io/scheduler-host-address",
    "dapr.io/pluggable-components", "dapr.io/pluggable-components-sockets-folder",
    "dapr.io/component-container", "dapr.io/inject-pluggable-components", "dapr.io/app-channel-address",
    "dapr.io/sentry-request-jwt-audiences", "dapr.io/sidecar-svc-annotations", "dapr.io/disable-init-endpoints",
)
"""Dapr keys with no effect on parley's sidecar; ``sidecar-seccomp-profile-type`` is here because
parley always sets ``RuntimeDefault``."""


def unhonoured(pod_annotations: Iterable[str]) -> tuple[str, ...]:
    """The ``dapr.io/`` keys among ``pod_annotations`` that parley does not act on, sorted: Dapr's
    ignored keys and any key Dapr does not have either."""
    return tuple(sorted(k for k in pod_annotations if k.startswith(DAPR_PREFIX) and k not in SUPPORTED))

# Labels Dapr's injector sets; the operator's watchdog logic and dashboards select on them.
LABEL_SIDECAR_INJECTED = "dapr.io/sidecar-injected"
LABEL_APP_ID = "dapr.io/app-id"
LABEL_METRICS_ENABLED = "dapr.io/metrics-enabled"

# Prometheus' conventional scrape annotations, added when metrics are on.
PROMETHEUS_SCRAPE = "prometheus.io/scrape"
PROMETHEUS_PORT = "prometheus.io/port"
PROMETHEUS_PATH = "prometheus.io/path"

SIDECAR_WORKERS = "parley.io/sidecar-workers"
"""Parley's own: ``--workers N``, the sidecar's API served by N processes (docs/sidecar.md, Worker
processes). Dapr has no such key; daprd uses every core of its pod in one process."""

OPERATOR_CA = "parley.io/operator-ca"
"""Parley's own: the operator's CA (public PEM), projected into the sidecar as a file through the
downward API, so no Secret or ConfigMap has to be copied into application namespaces."""
