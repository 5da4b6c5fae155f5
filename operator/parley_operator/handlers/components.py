"""Dapr Components: indexed by namespace for delivery, validated at admission, reported on by Events."""

from __future__ import annotations

from typing import Any

import kopf

from parley_operator import component, webhook
from parley_operator.events import ObjectRef
from parley_operator.handlers.services import Services

__all__ = ["register"]

GROUP, VERSION, PLURAL = "dapr.io", "v1alpha1", "components"


def _is_conversation(body: kopf.Body, **_: Any) -> bool:
    return component.is_conversation(body)


def register(registry: kopf.OperatorRegistry, services: Services) -> None:
    metrics, events, hub = services.metrics, services.events, services.hub

    @kopf.index(GROUP, VERSION, PLURAL, id="components_by_namespace", when=_is_conversation, registry=registry)
    async def components_by_namespace(*, body: kopf.Body, namespace: str | None, **_: Any
                                ) -> dict[str, component.ComponentRecord]:
        return {namespace or "": component.record_of(body)}

    @kopf.on.event(GROUP, VERSION, PLURAL, id="component-events", registry=registry)
    async def on_component(*, body: kopf.Body, event: kopf.RawEvent, namespace: str | None, **_: Any) -> None:
        hub.mark_ready()
        hub.changed(namespace or "")  # any type: a Component that stops being conversation.* must be removed
        kind = event.get("type")
        if kind == "DELETED" or not component.is_conversation(body):
            return
        report = component.validate(body)
        ref = ObjectRef.of(body)
        if report.errors:
            metrics.errors.labels(kind="component_invalid").inc()
            events.record(ref, "Warning", "Invalid", "not delivered: " + "; ".join(report.errors))
        elif kind is not None:  # a real change, not the operator's start-up listing
            events.record(ref, "Normal", "Accepted", f"valid {body['spec'].get('type')} component")

    @kopf.on.validate(GROUP, VERSION, PLURAL, id=webhook.VALIDATE, operations=["CREATE", "UPDATE"],
                      registry=registry)
    async def validate(*, body: kopf.Body, dryrun: bool, warnings: list[str], **kwargs: Any) -> None:
        if kwargs.get("operation") not in ("CREATE", "UPDATE"):  # kopf does not enforce operations= itself
            return
        report = component.validate(body)
        warnings.extend(report.warnings)
        if not dryrun:
            metrics.validations.labels(result="allowed" if report.ok else "denied").inc()
        if report.errors:
            name = body.get("metadata", {}).get("name", "")
            raise kopf.AdmissionError(f"Component {name!r}: " + "; ".join(report.errors), code=400)
