"""kopf's webhook server with the two things parley adds before kopf sees a request.

1. The namespace. Pods made by controllers (and ``kubectl run``) arrive without
   ``metadata.namespace``; the AdmissionReview carries it in ``request.namespace``. kopf reads only
   the object (nolar/kopf#744), so :func:`fill_namespace` copies it in first.
2. The patch. The injector already computes Dapr's JSON Patch ops; handing them to kopf would make
   kopf deep-copy the pod, apply them and diff the result back into ops, about two thirds of the
   CPU an AdmissionReview costs. A handler calls :func:`respond_with_patch` instead, and the ops
   go into the response as they are (kopf still selects the handler and turns its errors into
   denials).
3. Latency: every AdmissionReview is timed into ``parley_operator_webhook_duration_seconds``.

The webhook configurations are not managed by kopf (``settings.admission.managed`` stays None):
they come with the deployment (service, ``namespaceSelector``, ``reinvocationPolicy``, which kopf
cannot set) and the operator only keeps their ``caBundle`` current (``certs``). Their paths are the
handler ids: ``/mutate`` and ``/validate``.
"""

from __future__ import annotations

import base64
import contextvars
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import kopf

from parley_operator.metrics import Metrics

__all__ = ["MUTATE", "VALIDATE", "WebhookServer", "fill_namespace", "respond_with_patch"]

MUTATE = "mutate"
VALIDATE = "validate"

_PATCH: contextvars.ContextVar[list[Sequence[Mapping[str, Any]]] | None] = contextvars.ContextVar(
    "parley_webhook_patch", default=None)


def respond_with_patch(ops: Sequence[Mapping[str, Any]]) -> bool:
    """Send ``ops`` as this AdmissionReview's JSON Patch. False outside :class:`WebhookServer`
    (the caller then falls back to kopf's ``patch``)."""
    holder = _PATCH.get()
    if holder is None:
        return False
    holder.append(ops)
    return True


def fill_namespace(review: Mapping[str, Any]) -> None:
    """Copy ``request.namespace`` into ``object``/``oldObject`` where their namespace is missing."""
    request = review.get("request")
    if not isinstance(request, dict) or not request.get("namespace"):
        return
    for key in ("object", "oldObject"):
        obj = request.get(key)
        if isinstance(obj, dict):
            meta = obj.setdefault("metadata", {})
            if isinstance(meta, dict) and not meta.get("namespace"):
                meta["namespace"] = request["namespace"]


class WebhookServer(kopf.WebhookServer):
    def __init__(self, *, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metrics = metrics
        self.url: str | None = None
        """Where the server listens (set once it does)."""

    async def __call__(self, fn: kopf.WebhookFn) -> AsyncIterator[kopf.WebhookClientConfig]:
        async def serve(request: Any, **kwargs: Any) -> Any:
            fill_namespace(request)
            webhook = kwargs.get("webhook")
            started = time.perf_counter()
            holder: list[Sequence[Mapping[str, Any]]] = []
            token = _PATCH.set(holder)
            try:
                response = await fn(request, **kwargs)
                answer = response.get("response") or {}
                ops = [op for part in holder for op in part]
                if ops and answer.get("allowed") and "patch" not in answer:
                    answer["patch"] = base64.b64encode(json.dumps(ops).encode()).decode()
                    answer["patchType"] = "JSONPatch"
                return response
            finally:
                _PATCH.reset(token)
                label = webhook if webhook in (MUTATE, VALIDATE) else "other"
                self.metrics.webhook_latency.labels(webhook=label).observe(time.perf_counter() - started)

        async for client_config in super().__call__(serve):
            self.url = client_config.get("url")
            yield client_config
