"""Dapr ``Resiliency`` objects as the operator sees them: checked once, kept as a record. No I/O here.

The check is the sidecar's own (``parley_sidecar.components.resiliency_resource.parse``): the
validating webhook, the Events and the sidecar that finally applies a Resiliency all read it with
one parser, so ``kubectl apply`` refuses exactly what a sidecar would refuse, with the same message
naming the field. :class:`ResiliencyRecord` is what the kopf index keeps per object for delivery:
the document a sidecar needs (name, ``spec``, ``scopes``), its digest, and why it is bad, if it is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from parley_sidecar.components import resiliency_resource

__all__ = ["ResiliencyRecord", "check", "record_of"]


@dataclasses.dataclass(frozen=True, slots=True)
class ResiliencyRecord:
    name: str
    namespace: str
    scopes: tuple[str, ...]
    """Dapr's ``IsAppScoped``: empty means every app of the namespace."""
    document: Mapping[str, Any] = dataclasses.field(repr=False)
    """What a sidecar receives: ``apiVersion``, ``kind``, ``metadata`` (name, namespace), ``spec``, ``scopes``."""
    error: str = ""
    """Why this Resiliency cannot be applied (empty when it is good)."""
    uid: str = ""
    digest: str = ""
    """Changes exactly when ``document`` does."""

    def visible_to(self, app_id: str) -> bool:
        return not self.scopes or app_id in self.scopes


def _plain(value: Any) -> Any:
    """kopf hands out views; a record keeps plain JSON (it is hashed, and sent as is)."""
    return json.loads(json.dumps(value, default=dict))


def check(body: Mapping[str, Any]) -> str:
    """The parser's message naming the field at fault, or "" for a Resiliency a sidecar accepts."""
    meta = body.get("metadata") or {}
    label = f"namespace {str(meta.get('namespace') or '')!r}"
    try:
        resiliency_resource.parse(_plain(dict(body)), label)
    except resiliency_resource.ResiliencyError as exc:
        return str(exc)
    return ""


def record_of(body: Mapping[str, Any]) -> ResiliencyRecord:
    meta = body.get("metadata") or {}
    name, namespace = str(meta.get("name") or ""), str(meta.get("namespace") or "")
    raw_scopes = body.get("scopes") or []
    scopes = tuple(s for s in raw_scopes if isinstance(s, str)) if isinstance(raw_scopes, list) else ()
    document = {"apiVersion": str(body.get("apiVersion") or "dapr.io/v1alpha1"), "kind": "Resiliency",
                "metadata": {"name": name, "namespace": namespace},
                "spec": _plain(body.get("spec") or {}), "scopes": _plain(raw_scopes)}
    digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:32]
    return ResiliencyRecord(name=name, namespace=namespace, scopes=scopes, document=document,
                            error=check(body), uid=str(meta.get("uid") or ""), digest=digest)
