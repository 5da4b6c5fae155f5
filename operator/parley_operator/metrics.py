"""The operator's Prometheus metrics, served on ``:9090`` at ``/`` and ``/metrics``.

Dapr's injector names are kept where the meaning matches (``dapr_injector_sidecar_injection_*``),
so Dapr dashboards keep working; parley's own are prefixed ``parley_operator_``. Label values are
fixed vocabularies or Kubernetes identifiers (app ids), never user text or secret material.
Each :class:`Metrics` has its own registry, so several operators can run in one test process.

The injector's ``app_id`` label is kept, as Dapr's dashboards group by it, but its values are
bounded: whoever may create (or merely try to create) a pod chooses its app id, and every new value
is a new series. The first ``app_id_limit`` app ids are counted under their own name, later ones
under ``other`` (:class:`BoundedLabel`).
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

__all__ = ["OTHER", "BoundedLabel", "Metrics"]

OTHER = "other"
"""The label value that stands for every value past the limit."""

_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class BoundedLabel:
    """The first ``limit`` distinct values pass through unchanged; any later one becomes ``other``."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) >= self._limit:
            return OTHER
        self._seen.add(value)
        return value


class Metrics:
    def __init__(self, *, app_id_limit: int = 256) -> None:
        self.app_id = BoundedLabel(app_id_limit)
        """Maps an app id to its ``app_id`` label value (bounded cardinality)."""
        self.registry = CollectorRegistry()
        r = self.registry
        self.injection_requests = Counter(
            "dapr_injector_sidecar_injection_requests", "Pod admission requests seen by the injector.", registry=r)
        self.injection_succeeded = Counter(
            "dapr_injector_sidecar_injection_succeeded", "Pods patched with a sidecar.", ["app_id"], registry=r)
        self.injection_failed = Counter(
            "dapr_injector_sidecar_injection_failed", "Pods that asked for a sidecar and did not get one.",
            ["app_id", "reason"], registry=r)
        self.injections = Counter(
            "parley_operator_injections", "Pod admissions by outcome: injected, already_injected, "
            "not_enabled, denied, dry_run.", ["outcome"], registry=r)
        self.webhook_latency = Histogram(
            "parley_operator_webhook_duration_seconds", "Time to answer one AdmissionReview.",
            ["webhook"], buckets=_FAST, registry=r)
        self.validations = Counter(
            "parley_operator_component_validations", "Component and Resiliency admissions by result: allowed, denied.",
            ["result"], registry=r)
        self.connected = Gauge(
            "parley_operator_connected_sidecars", "Sidecars holding the component stream open.", registry=r)
        self.deliveries = Counter(
            "parley_operator_deliveries", "Messages sent to sidecars: snapshot, upsert, delete, withheld, "
            "resiliency, resiliency_delete.",
            ["kind"], registry=r)
        self.delivery_latency = Histogram(
            "parley_operator_delivery_duration_seconds", "From a Component change being seen to every "
            "affected stream having it queued.", buckets=_FAST, registry=r)
        self.token_reviews = Counter(
            "parley_operator_token_reviews", "TokenReviews sent for component stream connections "
            "(connections whose token verdict was cached send none).", registry=r)
        self.errors = Counter(
            "parley_operator_errors", "Errors by kind: unauthenticated, forbidden, throttled, secret_missing, "
            "component_invalid, resiliency_invalid, configuration_missing, malformed_review, webhook, api.",
            ["kind"], registry=r)

    def app(self) -> web.Application:
        async def scrape(request: web.Request) -> web.Response:
            return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

        app = web.Application()
        app.router.add_get("/", scrape)
        app.router.add_get("/metrics", scrape)
        return app
