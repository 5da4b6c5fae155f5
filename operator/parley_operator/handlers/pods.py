"""Pods: the mutating webhook that injects the sidecar, the index of sidecar pods, missed injections.

The webhook does its I/O first (the current CA), then calls the pure ``injection`` functions and
sends their JSON Patch as the answer (``webhook.respond_with_patch``). A dry run gets the same
answer but is not counted.

What the webhook can only warn about (``dapr.io/`` annotations parley does not act on, a
``terminationGracePeriodSeconds`` too short for the sidecar's shutdown) is also posted as one
Warning Event on the pod once it exists: pods made from a template have no name at admission, and
their creator (a ReplicaSet) never shows admission warnings to anyone.
"""

from __future__ import annotations

from typing import Any, cast

import kopf

from parley_operator import webhook
from parley_operator.delivery.auth import PodRecord, pod_record
from parley_operator.events import ObjectRef
from parley_operator.handlers.services import Services
from parley_operator.injection import annotations as keys
from parley_operator.injection import config, patch
from parley_operator.settings import InjectorSettings

__all__ = ["register"]

IGNORED_REASON = "AnnotationsIgnored"
GRACE_REASON = "ShutdownGraceTooShort"
MISSED = ("the pod asks for a sidecar (dapr.io/enabled) but has none: it was created while the injector "
          "was unreachable or not configured for its namespace; recreate it (kubectl rollout restart)")


def register(registry: kopf.OperatorRegistry, services: Services) -> None:
    settings, metrics, events, hub = services.settings.injector, services.metrics, services.events, services.hub

    @kopf.index("", "v1", "pods", id="sidecar_pods", labels={keys.LABEL_SIDECAR_INJECTED: "true"},
                registry=registry)
    async def sidecar_pods(*, body: kopf.Body, namespace: str | None, name: str, **_: Any
                     ) -> dict[tuple[str, str], PodRecord]:
        return {(namespace or "", name): pod_record(body, namespace)}

    missed: set[str] = set()
    """Pods already reported (by uid): listings and watch restarts repeat their events."""
    noticed: set[str] = set()
    """Injected pods already checked for what the webhook could only warn about (by uid)."""

    @kopf.on.event("", "v1", "pods", id="pod-events", annotations={keys.ENABLED: kopf.PRESENT}, registry=registry)
    async def on_pod(*, body: kopf.Body, event: kopf.RawEvent, uid: str, namespace: str | None, name: str,
               **_: Any) -> None:
        hub.mark_ready()
        if event.get("type") == "DELETED":
            missed.discard(uid)
            noticed.discard(uid)
            hub.pod_changed(namespace or "", name, None)
            return
        hub.pod_changed(namespace or "", name, pod_record(body, namespace))
        if body.get("metadata", {}).get("deletionTimestamp"):
            return
        if not config.wants_injection(body.metadata.annotations):
            return
        if patch.has_sidecar(body, settings.container_name):
            if uid not in noticed:
                noticed.add(uid)
                for reason, message in _notices(dict(body), settings):
                    events.record(ObjectRef.of(body), "Warning", reason, message)
            return
        if uid not in missed:
            missed.add(uid)
            app_id = config.app_id_of(body.metadata.annotations, body.metadata.name or "")
            label = metrics.app_id(app_id) if config.validate_app_id(app_id) is None else ""
            metrics.injection_failed.labels(app_id=label, reason="missed").inc()
            events.record(ObjectRef.of(body), "Warning", "SidecarNotInjected", MISSED)

    @kopf.on.mutate("", "v1", "pods", id=webhook.MUTATE, operations=["CREATE"], registry=registry)
    async def mutate(*, body: kopf.Body, patch: kopf.Patch, dryrun: bool, namespace: str | None, warnings: list[str],
               logger: kopf.Logger, **kwargs: Any) -> None:
        outcome, app_id, denial = _mutate(body, patch, str(kwargs.get("operation")), namespace, warnings)
        if dryrun:
            metrics.injections.labels(outcome="dry_run").inc()
        else:
            metrics.injection_requests.inc()
            metrics.injections.labels(outcome=outcome).inc()
            if outcome == "injected":
                metrics.injection_succeeded.labels(app_id=metrics.app_id(app_id)).inc()
                logger.info("injected the sidecar of app %s into pod %s/%s", app_id, namespace or "?",
                            body.metadata.name or body.metadata.get("generateName", "") + "*")
            elif outcome == "denied":
                metrics.injection_failed.labels(app_id=metrics.app_id(app_id), reason="invalid_annotation").inc()
        if denial:
            raise kopf.AdmissionError(denial, code=400)

    def _mutate(body: kopf.Body, kopf_patch: kopf.Patch, operation: str, namespace: str | None,
                warnings: list[str]) -> tuple[str, str, str]:
        """``(outcome, app id for metrics, denial message or "")``; adds the sidecar to ``kopf_patch``."""
        pod = dict(body)  # plain dicts from here: kopf's views resolve every lookup anew
        meta = pod.get("metadata") or {}
        notes = meta.get("annotations") or {}
        if operation != "CREATE" or not config.wants_injection(notes):  # kopf does not enforce operations=
            return "not_enabled", "", ""
        if patch.has_sidecar(pod, settings.container_name):
            return "already_injected", "", ""
        spec = pod.get("spec") or {}
        parsed = config.parse(notes, pod_name=meta.get("name") or "", namespace=namespace or "",
                              settings=settings, volumes=[str(v.get("name")) for v in spec.get("volumes") or ()])
        warnings.extend(f"annotation {key} has no effect on parley's sidecar" for key in parsed.ignored)
        shortfall = config.grace_shortfall(parsed.config, spec.get("terminationGracePeriodSeconds"))
        if shortfall:
            warnings.append(shortfall)
        app_id = parsed.config.app_id if config.validate_app_id(parsed.config.app_id) is None else ""
        if parsed.invalid:
            return "denied", app_id, "; ".join(str(p) for p in parsed.invalid)
        ops = patch.build(pod, parsed.config, settings, ca_pem=services.certs.ca_pem)
        if not webhook.respond_with_patch(ops):  # served by another kopf server: let kopf diff it
            kopf_patch.fns.append(lambda raw: patch.apply_in_place(cast(dict[str, Any], raw), ops))
        return "injected", app_id, ""


def _notices(pod: dict[str, Any], settings: InjectorSettings) -> list[tuple[str, str]]:
    """(reason, message) of each Warning Event an injected pod gets once; names only, no values."""
    notes = (pod.get("metadata") or {}).get("annotations") or {}
    found: list[tuple[str, str]] = []
    ignored = keys.unhonoured(notes)
    if ignored:
        found.append((IGNORED_REASON, f"parley's sidecar does not act on {', '.join(ignored)} "
                                      "(docs/operator.md lists every Dapr annotation and why)"))
    parsed = config.parse(notes, pod_name=(pod.get("metadata") or {}).get("name") or "",
                          settings=settings)
    shortfall = config.grace_shortfall(parsed.config, (pod.get("spec") or {}).get("terminationGracePeriodSeconds"))
    if shortfall:
        found.append((GRACE_REASON, shortfall))
    return found
