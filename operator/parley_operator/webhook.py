"""kopf's webhook server with what parley adds around kopf's handling of a request.

1. A strict reading of the body (``admission``). kopf trusts what it is sent; here a body that is
   not a well-formed AdmissionReview of the path's resource (``EXPECTED``) is denied, or answered
   with HTTP 400 when it carries no uid to deny, and never reaches kopf. Whatever goes wrong later
   is still a denial, never an HTTP 500: with ``failurePolicy: Ignore`` an HTTP error admits the
   object unreviewed.
2. The namespace. Pods made by controllers (and ``kubectl run``) arrive without
   ``metadata.namespace``; the AdmissionReview carries it in ``request.namespace``. kopf reads only
   the object (nolar/kopf#744), so :func:`fill_namespace` copies it in first.
3. The patch. The injector already computes Dapr's JSON Patch ops; handing them to kopf would make
   kopf deep-copy the pod, apply them and diff the result back into ops, about two thirds of the
   CPU an AdmissionReview costs. A handler calls :func:`respond_with_patch` instead, and the ops
   go into the response as they are (kopf still selects the handler and turns its errors into
   denials).
4. Latency: every request, refused or answered, is timed into
   ``parley_operator_webhook_duration_seconds``.

The webhook configurations are not managed by kopf (``settings.admission.managed`` stays None):
they come with the deployment (service, ``namespaceSelector``, ``reinvocationPolicy``, which kopf
cannot set) and the operator only keeps their ``caBundle`` current (``certs``). Their paths are the
handler ids: ``/mutate``, ``/validate`` (Components) and ``/validate-resiliency``; any other path gets
404.
"""

from __future__ import annotations

import base64
import contextvars
import json
import logging
import time
import traceback
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import kopf
from aiohttp import web

from parley_operator import admission
from parley_operator.metrics import Metrics

__all__ = ["EXPECTED", "MUTATE", "VALIDATE", "VALIDATE_RESILIENCY", "WebhookServer", "fill_namespace",
           "respond_with_patch"]

log = logging.getLogger("parley.operator.webhook")

MUTATE = "mutate"
VALIDATE = "validate"
VALIDATE_RESILIENCY = "validate-resiliency"
EXPECTED = {
    MUTATE: admission.Expected("", "v1", "pods", "Pod"),
    VALIDATE: admission.Expected("dapr.io", "v1alpha1", "components", "Component"),
    VALIDATE_RESILIENCY: admission.Expected("dapr.io", "v1alpha1", "resiliencies", "Resiliency"),
}
"""Each path and what it reviews: the rules of ``deploy/base/webhooks.yaml``."""

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


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _read(request: web.Request) -> bytes:
    """The body, up to ``admission.MAX_BODY`` bytes: aiohttp's own limit (1 MiB, answered with 413)
    is below what kube-apiserver may send, and an HTTP error would be read as "allowed"."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(1 << 16):
        chunks.append(chunk)
        size += len(chunk)
        if size > admission.MAX_BODY:
            message = f"the AdmissionReview is larger than {admission.MAX_BODY // (1 << 20)} MiB"
            found = admission.uid_in_prefix(b"".join(chunks)[:4096])  # chunks may be shorter than the prefix
            if found is None:
                raise admission.Refusal("not an AdmissionReview: " + message, status=413)
            raise admission.Refusal(message, api_version=found[0], uid=found[1])
    return b"".join(chunks)


def _where(exc: BaseException) -> str:
    """``file:line`` where ``exc`` was raised: enough to find the bug, quoting no value."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else "?"


class WebhookServer(kopf.WebhookServer):
    def __init__(self, *, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metrics = metrics
        self.url: str | None = None
        """Where the server listens (set once it does)."""

    async def __call__(self, fn: kopf.WebhookFn) -> AsyncIterator[kopf.WebhookClientConfig]:
        async for client_config in super().__call__(fn):
            self.url = client_config.get("url")
            yield client_config

    # kopf's server hands each request to ``_serve`` (its only per-request hook; kopf reads and
    # trusts the body there). Replaced so that the body is read and checked by ``admission`` first.
    async def _serve(self, fn: kopf.WebhookFn, request: web.Request) -> web.Response:  # type: ignore[override]
        webhook = request.match_info.get("id", "")
        started = time.perf_counter()
        try:
            return await self._answer(fn, request, webhook)
        finally:
            label = webhook if webhook in EXPECTED else "other"
            self.metrics.webhook_latency.labels(webhook=label).observe(time.perf_counter() - started)

    async def _answer(self, fn: kopf.WebhookFn, request: web.Request, webhook: str) -> web.Response:
        expected = EXPECTED.get(webhook)
        if expected is None:
            return _error(404, f"no webhook at /{webhook}; this server answers "
                          + " and ".join(f"/{name}" for name in EXPECTED))
        try:
            review = admission.parse(await _read(request))
            admission.check(review, expected)
        except admission.Refusal as refusal:
            self.metrics.errors.labels(kind="malformed_review").inc()
            log.warning("refused a request to /%s: %s", webhook, refusal.message)
            if not refusal.uid:
                return _error(refusal.status, refusal.message)
            return web.json_response(admission.denial(api_version=refusal.api_version, uid=refusal.uid,
                                                      message=refusal.message))
        fill_namespace(review)
        holder: list[Sequence[Mapping[str, Any]]] = []
        token = _PATCH.set(holder)
        try:
            response = await fn(review, webhook=webhook, headers=dict(request.headers),  # type: ignore[arg-type]
                                sslpeer=request.transport.get_extra_info("peercert") if request.transport else None)
        except Exception as exc:  # a bug: still an answer, never an HTTP 500 that Ignore would wave through
            self.metrics.errors.labels(kind="webhook").inc()
            log.error("the %s webhook failed: %s at %s", webhook, type(exc).__name__, _where(exc))
            return web.json_response(admission.denial(
                api_version=review["apiVersion"], uid=review["request"]["uid"], code=500,
                message=f"parley-operator could not review this object (internal error {type(exc).__name__}; "
                        "see the operator's log)"))
        finally:
            _PATCH.reset(token)
        answer = response.get("response") or {}
        ops = [op for part in holder for op in part]
        if ops and answer.get("allowed") and "patch" not in answer:
            answer["patch"] = base64.b64encode(json.dumps(ops).encode()).decode()
            answer["patchType"] = "JSONPatch"
        return web.json_response(response)
