"""Dapr Resiliencies: indexed by namespace for delivery, validated at admission, reported on by Events.

The same check serves all three (``parley_operator.resiliency.check``, the sidecar's own parser), so
``kubectl apply`` refuses what a sidecar would refuse, with the same message naming the field.
"""

from __future__ import annotations

from typing import Any

import kopf

from parley_operator import resiliency, webhook
from parley_operator.events import ObjectRef
from parley_operator.handlers.services import Services

__all__ = ["INDEX", "register"]

GROUP, VERSION, PLURAL = "dapr.io", "v1alpha1", "resiliencies"
INDEX = "resiliencies_by_namespace"


def register(registry: kopf.OperatorRegistry, services: Services) -> None:
    metrics, events, hub = services.metrics, services.events, services.hub

    @kopf.index(GROUP, VERSION, PLURAL, id=INDEX, registry=registry)
    async def resiliencies_by_namespace(*, body: kopf.Body, namespace: str | None, **_: Any
                                        ) -> dict[str, resiliency.ResiliencyRecord]:
        return {namespace or "": resiliency.record_of(body)}

    @kopf.on.event(GROUP, VERSION, PLURAL, id="resiliency-events", registry=registry)
    async def on_resiliency(*, body: kopf.Body, event: kopf.RawEvent, namespace: str | None, **_: Any) -> None:
        hub.mark_ready()
        hub.changed(namespace or "")
        kind = event.get("type")
        if kind == "DELETED":
            return
        error = resiliency.check(body)
        ref = ObjectRef.of(body)
        if error:
            events.record(ref, "Warning", "Invalid", f"not applied by sidecars: {error}")
        elif kind is not None:  # a real change, not the operator's start-up listing
            events.record(ref, "Normal", "Accepted", "valid Resiliency")

    @kopf.on.validate(GROUP, VERSION, PLURAL, id=webhook.VALIDATE_RESILIENCY, operations=["CREATE", "UPDATE"],
                      registry=registry)
    async def validate(*, body: kopf.Body, dryrun: bool, **kwargs: Any) -> None:
        if kwargs.get("operation") not in ("CREATE", "UPDATE"):  # kopf does not enforce operations= itself
            return
        error = resiliency.check(body)
        if not dryrun:
            metrics.validations.labels(result="denied" if error else "allowed").inc()
        if error:
            raise kopf.AdmissionError(error, code=400)
