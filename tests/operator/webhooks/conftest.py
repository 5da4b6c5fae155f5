"""AdmissionReviews shaped like kube-apiserver's, POSTed to the operator's real webhook server over TLS."""

from __future__ import annotations

import base64
import json
import ssl
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
import jsonpatch
import pytest

Review = Callable[..., Coroutine[Any, Any, dict[str, Any]]]

POD = {"group": "", "version": "v1", "resource": "pods"}
COMPONENT = {"group": "dapr.io", "version": "v1alpha1", "resource": "components"}
KINDS = {"pods": {"group": "", "version": "v1", "kind": "Pod"},
         "components": {"group": "dapr.io", "version": "v1alpha1", "kind": "Component"},
         "resiliencies": {"group": "dapr.io", "version": "v1alpha1", "kind": "Resiliency"}}


def admission_review(obj: dict[str, Any], *, resource: dict[str, str], namespace: str, operation: str = "CREATE",
                     dry_run: bool = False, old: dict[str, Any] | None = None) -> dict[str, Any]:
    kind = KINDS[resource["resource"]]
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": kind, "resource": resource, "requestKind": kind, "requestResource": resource,
            "name": meta.get("name", "") if isinstance(meta := obj.get("metadata"), dict) else "",
            "namespace": namespace,
            "operation": operation,
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller",
                         "uid": str(uuid.uuid4()),
                         "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system",
                                    "system:authenticated"]},
            "object": obj if operation != "DELETE" else None,
            "oldObject": old,
            "dryRun": dry_run,
            "options": {"apiVersion": "meta.k8s.io/v1",
                        "kind": "CreateOptions" if operation == "CREATE" else "UpdateOptions"},
        },
    }


@pytest.fixture
async def review() -> Any:
    """``await review(operator, "/mutate", obj, resource=POD, namespace=..., ...)`` → the response dict."""
    sessions: list[aiohttp.ClientSession] = []

    async def send(op: Any, path: str, obj: dict[str, Any], *, resource: dict[str, str] = POD,
                   namespace: str = "shop", **kwargs: Any) -> dict[str, Any]:
        context = ssl.create_default_context(cadata=op.ca_pem)  # verify like the API server does
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))
        sessions.append(session)
        body = admission_review(obj, resource=resource, namespace=namespace, **kwargs)
        async with session.post(op.op.webhook.url + path, json=body) as resp:
            assert resp.status == 200, await resp.text()
            answer = await resp.json()
        assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
        assert answer["response"]["uid"] == body["request"]["uid"]
        return dict(answer["response"])

    yield send
    for session in sessions:
        await session.close()


Post = Callable[..., Coroutine[Any, Any, tuple[int, Any]]]


@pytest.fixture
async def post() -> Any:
    """``await post(operator, "/validate", body_bytes)`` → ``(HTTP status, parsed JSON answer)``: any body
    at all, sent over TLS as kube-apiserver sends it."""
    sessions: list[aiohttp.ClientSession] = []

    async def send(op: Any, path: str, body: bytes) -> tuple[int, Any]:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl.create_default_context(
            cadata=op.ca_pem)))
        sessions.append(session)
        async with session.post(op.op.webhook.url + path, data=body,
                                headers={"Content-Type": "application/json"}) as resp:
            assert resp.content_type == "application/json", await resp.text()
            return resp.status, await resp.json()

    yield send
    for session in sessions:
        await session.close()


@pytest.fixture
def make_review() -> Callable[..., dict[str, Any]]:
    return admission_review


def patched(obj: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """What the API server stores: the object with the response's JSON Patch applied."""
    if "patch" not in response:
        return obj
    assert response["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(response["patch"]))
    return dict(jsonpatch.apply_patch(obj, ops))


@pytest.fixture
def apply_patch() -> Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]:
    return patched
