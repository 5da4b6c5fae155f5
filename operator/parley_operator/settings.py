"""Operator settings, grouped by concern; ``cli`` fills them from flags and environment variables.

Plain dataclasses (kopf's ``OperatorSettings`` shape): every field says its unit, its default and
why. Nothing here does I/O; the defaults match the manifests in ``deploy/`` (namespace
``parley-system``, Service ``parley-operator``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

__all__ = [
    "CertSettings",
    "InjectorSettings",
    "OperatorSettings",
    "StreamSettings",
    "WebhookSettings",
]


@dataclasses.dataclass(slots=True)
class InjectorSettings:
    """What the mutating webhook puts into a pod; per-pod annotations override some of it."""

    sidecar_image: str = "ghcr.io/parley-project/parley-sidecar:0.1.0"
    """Image of the injected container unless ``dapr.io/sidecar-image`` names another
    (Dapr: injector env ``SIDECAR_IMAGE``)."""
    image_pull_policy: str = "IfNotPresent"
    """Dapr's chart default; the image tag is pinned, so re-pulling buys nothing."""
    sidecar_command: tuple[str, ...] = ("parley-sidecar",)
    """``command`` of the injected container; empty keeps the image's entrypoint. Explicit by
    default so a daprd-style image override still runs parley's CLI contract."""
    container_name: str = "daprd"
    """Dapr's container name: tools, dashboards and the "already injected" check rely on it."""
    control_plane_address: str = "parley-operator.parley-system.svc:6500"
    """``host:port`` of the component stream, passed as ``--control-plane-address``."""
    token_audience: str = "parley-operator"
    """Audience of the projected ServiceAccount token the sidecar presents to the stream."""
    token_expiration: int = 3600
    """Seconds; kubelet rotates the projected token at 80 % of this (Kubernetes minimum 600)."""
    run_as_user: int | None = 65532
    """UID of the sidecar. Set so ``runAsNonRoot`` holds whatever USER the image declares
    (65532 is the distroless "nonroot" user); None leaves it to the image."""
    native_sidecar: bool = False
    """Inject into ``initContainers`` with ``restartPolicy: Always`` unless the pod's
    ``dapr.io/enable-native-sidecar`` says otherwise (Dapr's Helm ``nativeSidecar``, default off)."""


@dataclasses.dataclass(slots=True)
class WebhookSettings:
    """The admission webhook server (kopf's ``WebhookServer``)."""

    addr: str = "0.0.0.0"
    port: int = 9443
    """The Service maps 443 to this; kopf's default, unprivileged."""
    mutating_configuration: str = "parley-operator"
    """Name of the MutatingWebhookConfiguration whose ``caBundle`` the operator keeps current."""
    validating_configuration: str = "parley-operator"
    """Name of the ValidatingWebhookConfiguration whose ``caBundle`` the operator keeps current."""


@dataclasses.dataclass(slots=True)
class CertSettings:
    """Serving certificates for the webhook and the component stream (one certificate, both ports)."""

    mounted_dir: Path = Path("/var/run/secrets/parley.io/tls")
    """If ``tls.crt`` and ``tls.key`` exist here (cert-manager's Secret layout, ``ca.crt``
    optional), they are used and nothing is generated."""
    work_dir: Path = Path("/tmp/parley-operator/tls")
    """Where generated certificates are written for the TLS servers (an emptyDir: the root
    filesystem is read-only)."""
    secret_name: str = "parley-operator-tls"
    """Secret (in ``namespace``) that holds the generated CA and serving certificate, shared by
    all replicas so they present one CA."""
    namespace: str = "parley-system"
    """The operator's own namespace (``POD_NAMESPACE``)."""
    service_name: str = "parley-operator"
    """Service in front of the operator; its DNS names are the certificate's SANs."""
    extra_sans: tuple[str, ...] = ()
    """More DNS names or IP addresses for the serving certificate (e.g. 127.0.0.1 in tests)."""
    ca_days: int = 3650
    """Validity of a generated CA: long, because sidecars carry the CA from their injection."""
    cert_days: int = 365
    renew_days: int = 30
    """A generated serving certificate this close to expiry is replaced."""
    check_interval: float = 60.0
    """Seconds between re-checks of the Secret, the mounted files and the webhook caBundles."""


@dataclasses.dataclass(slots=True)
class StreamSettings:
    """The component stream that sidecars open (HTTPS, newline-delimited JSON)."""

    addr: str = "0.0.0.0"
    port: int = 6500
    """Dapr's operator API port, so network policies written for Dapr still fit."""
    keepalive: float = 15.0
    """Seconds between keepalive lines; a sidecar that hears nothing for 3× this reconnects."""
    resync: float = 60.0
    """Seconds between full resolutions of every served namespace: catches rotated Secrets
    (daprd's reconcile interval)."""
    ready_timeout: float = 10.0
    """Seconds a connecting sidecar waits for the operator's first full listing before it is
    told 503 and retries; a snapshot from a half-filled index would remove components."""
    token_cache_ttl: float = 60.0
    """Seconds a genuine token's TokenReview verdict is reused (never past the token's ``exp``):
    a sidecar that reconnects within it costs the API server nothing; short, so a revoked token
    is refused again soon. 0 disables the cache."""
    token_cache_size: int = 4096
    """Verdicts kept at most (least recently used dropped): one per sidecar in a large cluster."""
    token_reviews: int = 4
    """TokenReviews in flight at once; more connections wait, so a flood of forged tokens puts at
    most this many concurrent requests on the API server."""
    token_review_queue: int = 64
    """Connections allowed to wait for a review slot; beyond that they get 429 and retry with backoff."""


@dataclasses.dataclass(slots=True)
class OperatorSettings:
    injector: InjectorSettings = dataclasses.field(default_factory=InjectorSettings)
    webhook: WebhookSettings = dataclasses.field(default_factory=WebhookSettings)
    certs: CertSettings = dataclasses.field(default_factory=CertSettings)
    stream: StreamSettings = dataclasses.field(default_factory=StreamSettings)
    metrics_addr: str = "0.0.0.0"
    metrics_port: int = 9090
    """Prometheus text at ``/`` and ``/metrics`` (Dapr's control-plane metrics port)."""
    metrics_app_ids: int = 256
    """Distinct ``app_id`` label values the injector metrics keep; later app ids are counted as
    ``other``. Any pod creator picks an app id, so an unbounded label is a series per attempt."""
    health_port: int = 8080
    """``/healthz`` for probes (Dapr's control-plane healthz port); 0 disables it."""
    namespaces: tuple[str, ...] = ()
    """Namespaces to watch; empty means the whole cluster."""
    pod_name: str = ""
    """This replica's name (``POD_NAME``): Events say which replica reported them."""
    log_level: str = "info"
