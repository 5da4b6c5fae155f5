"""Who is on the other end of a stream: a TokenReview of the sidecar's projected token, then its pod.

The sidecar presents a pod-bound ServiceAccount token with the audience ``parley-operator``. The
API server's TokenReview says whether it is genuine, unexpired and meant for us, and names the pod
it is bound to (``authentication.kubernetes.io/pod-name``/``pod-uid`` extras, as Dapr's Sentry
reads them). The namespace comes from the ServiceAccount username, never from the request, and
the app id from the pod itself, so a sidecar can only ever ask for what its own pod may see.

A TokenReview is an API-server request per connection, so two things keep a crowd of connections
from turning into a crowd of reviews: a genuine token's verdict is remembered briefly
(``review_cache``: keyed by the token's hash, never past the token's ``exp``), and at most
``StreamSettings.token_reviews`` reviews run at once, with ``token_review_queue`` connections
waiting behind them; anyone beyond that is told to come back later (:class:`Busy`, HTTP 429), so a
flood of forged tokens costs the API server a bounded number of concurrent reviews. The pod is still
looked up on every connection (cheap: the pod index), so a cached token of a deleted pod gets 403.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from parley_operator import kube
from parley_operator.delivery.review_cache import ReviewCache
from parley_operator.injection import annotations as keys
from parley_operator.injection import config
from parley_operator.metrics import Metrics

__all__ = ["Authenticator", "Busy", "Forbidden", "Identity", "PodRecord", "Unauthenticated", "claims_of",
           "pod_record"]

POD_NAME = "authentication.kubernetes.io/pod-name"
POD_UID = "authentication.kubernetes.io/pod-uid"
_SA_PREFIX = "system:serviceaccount:"


class Unauthenticated(Exception):
    """No token, or one the API server does not accept for our audience (HTTP 401)."""


class Forbidden(Exception):
    """A genuine token that does not belong to a sidecar pod (HTTP 403)."""


class Busy(Exception):
    """Too many token reviews under way or waiting; the caller should retry shortly (HTTP 429)."""


@dataclasses.dataclass(frozen=True, slots=True)
class PodRecord:
    """What the pod index keeps per sidecar pod."""

    namespace: str
    name: str
    uid: str
    app_id: str
    config: str = ""
    """The Configuration the pod names (``dapr.io/config``), "" for none."""


@dataclasses.dataclass(frozen=True, slots=True)
class Identity:
    namespace: str
    pod_name: str
    pod_uid: str
    app_id: str
    config: str = ""
    """From the pod, never from the request: the sidecar gets its own pod's Configuration only."""


def pod_record(body: Mapping[str, Any], namespace: str | None = None) -> PodRecord:
    meta = body.get("metadata") or {}
    labels, notes = meta.get("labels") or {}, meta.get("annotations") or {}
    name = str(meta.get("name", ""))
    app_id = str(labels.get(keys.LABEL_APP_ID) or config.app_id_of(notes, name))
    return PodRecord(str(namespace or meta.get("namespace", "")), name, str(meta.get("uid", "")), app_id,
                     str(notes.get(keys.CONFIG) or ""))


def claims_of(review: Mapping[str, Any], audience: str) -> tuple[str, str, str]:
    """``(namespace, pod name, pod uid)`` from a TokenReview answer, or :class:`Unauthenticated`."""
    status = review.get("status") or {}
    if not status.get("authenticated"):
        raise Unauthenticated("token rejected by the API server")
    # The API server lists the audiences the token was accepted for. An answer without them (an
    # authenticator that ignores spec.audiences) proves nothing about who the token is meant for.
    audiences = status.get("audiences")
    if not isinstance(audiences, list) or audience not in audiences:
        raise Unauthenticated("token is not meant for this audience")
    user = status.get("user") or {}
    username = str(user.get("username", ""))
    if not username.startswith(_SA_PREFIX) or username.count(":") != 3:
        raise Forbidden("token is not a ServiceAccount token")
    namespace = username.split(":")[2]
    extra = user.get("extra") or {}
    names, uids = extra.get(POD_NAME) or [], extra.get(POD_UID) or []
    if not names or not uids:
        raise Forbidden("token is not bound to a pod (use a projected ServiceAccount token)")
    return namespace, str(names[0]), str(uids[0])


PodLookup = Callable[[str, str], Awaitable[PodRecord | None]]


Claims = tuple[str, str, str]


class Authenticator:
    def __init__(self, client: kube.KubeClient, *, audience: str, find_pod: PodLookup, cache_ttl: float = 60.0,
                 cache_size: int = 4096, max_reviews: int = 4, max_waiting: int = 64,
                 metrics: Metrics | None = None) -> None:
        self._client = client
        self._audience = audience
        self._find_pod = find_pod
        self._cache: ReviewCache[Claims] = ReviewCache(ttl=cache_ttl, max_entries=cache_size)
        self._slots = asyncio.Semaphore(max_reviews)
        self._max_pending = max_reviews + max_waiting
        self._pending = 0
        self._metrics = metrics

    async def _review(self, token: str) -> Claims:
        cached = self._cache.get(token)
        if cached is not None:
            return cached
        if self._pending >= self._max_pending:
            raise Busy("too many token reviews under way; retry shortly")
        self._pending += 1
        try:
            async with self._slots:
                if self._metrics is not None:
                    self._metrics.token_reviews.inc()
                review = await self._client.create("/apis/authentication.k8s.io/v1/tokenreviews", {
                    "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                    "spec": {"token": token, "audiences": [self._audience]},
                })
        finally:
            self._pending -= 1
        claims = claims_of(review or {}, self._audience)
        self._cache.put(token, claims)
        return claims

    async def authenticate(self, token: str) -> Identity:
        if not token:
            raise Unauthenticated("missing bearer token")
        namespace, pod_name, pod_uid = await self._review(token)
        pod = await self._find_pod(namespace, pod_name)
        if pod is None or (pod.uid and pod.uid != pod_uid):
            raise Forbidden(f"pod {namespace}/{pod_name} is not known as a sidecar pod")
        return Identity(namespace=namespace, pod_name=pod_name, pod_uid=pod_uid, app_id=pod.app_id,
                        config=pod.config)
