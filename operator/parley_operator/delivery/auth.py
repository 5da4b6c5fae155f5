"""Who is on the other end of a stream: a TokenReview of the sidecar's projected token, then its pod.

The sidecar presents a pod-bound ServiceAccount token with the audience ``parley-operator``. The
API server's TokenReview says whether it is genuine, unexpired and meant for us, and names the pod
it is bound to (``authentication.kubernetes.io/pod-name``/``pod-uid`` extras, as Dapr's Sentry
reads them). The namespace comes from the ServiceAccount username, never from the request, and
the app id from the pod itself, so a sidecar can only ever ask for what its own pod may see.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from parley_operator import kube
from parley_operator.injection import annotations as keys
from parley_operator.injection import config

__all__ = ["Authenticator", "Forbidden", "Identity", "PodRecord", "Unauthenticated", "claims_of", "pod_record"]

POD_NAME = "authentication.kubernetes.io/pod-name"
POD_UID = "authentication.kubernetes.io/pod-uid"
_SA_PREFIX = "system:serviceaccount:"


class Unauthenticated(Exception):
    """No token, or one the API server does not accept for our audience (HTTP 401)."""


class Forbidden(Exception):
    """A genuine token that does not belong to a sidecar pod (HTTP 403)."""


@dataclasses.dataclass(frozen=True, slots=True)
class PodRecord:
    """What the pod index keeps per sidecar pod."""

    namespace: str
    name: str
    uid: str
    app_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class Identity:
    namespace: str
    pod_name: str
    pod_uid: str
    app_id: str


def pod_record(body: Mapping[str, Any], namespace: str | None = None) -> PodRecord:
    meta = body.get("metadata") or {}
    labels, notes = meta.get("labels") or {}, meta.get("annotations") or {}
    name = str(meta.get("name", ""))
    app_id = str(labels.get(keys.LABEL_APP_ID) or config.app_id_of(notes, name))
    return PodRecord(str(namespace or meta.get("namespace", "")), name, str(meta.get("uid", "")), app_id)


def claims_of(review: Mapping[str, Any], audience: str) -> tuple[str, str, str]:
    """``(namespace, pod name, pod uid)`` from a TokenReview answer, or :class:`Unauthenticated`."""
    status = review.get("status") or {}
    if not status.get("authenticated"):
        raise Unauthenticated("token rejected by the API server")
    if audience not in (status.get("audiences") or [audience]):
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


class Authenticator:
    def __init__(self, client: kube.KubeClient, *, audience: str, find_pod: PodLookup) -> None:
        self._client = client
        self._audience = audience
        self._find_pod = find_pod

    async def authenticate(self, token: str) -> Identity:
        if not token:
            raise Unauthenticated("missing bearer token")
        review = await self._client.create("/apis/authentication.k8s.io/v1/tokenreviews", {
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "spec": {"token": token, "audiences": [self._audience]},
        })
        namespace, pod_name, pod_uid = claims_of(review or {}, self._audience)
        pod = await self._find_pod(namespace, pod_name)
        if pod is None or (pod.uid and pod.uid != pod_uid):
            raise Forbidden(f"pod {namespace}/{pod_name} is not known as a sidecar pod")
        return Identity(namespace=namespace, pod_name=pod_name, pod_uid=pod_uid, app_id=pod.app_id)
