"""claims_of(): what a TokenReview answer proves, and what it does not."""

from __future__ import annotations

from typing import Any

import pytest

from parley_operator.delivery import auth


def review(**status: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "authenticated": True,
        "user": {"username": "system:serviceaccount:shop:default",
                 "extra": {auth.POD_NAME: ["web-1"], auth.POD_UID: ["uid-1"]}},
        "audiences": ["parley-operator"],
    }
    return {"kind": "TokenReview", "status": base | status}


def test_pod_bound_token_names_namespace_pod_and_uid() -> None:
    assert auth.claims_of(review(), "parley-operator") == ("shop", "web-1", "uid-1")


@pytest.mark.parametrize(("answer", "error"), [
    ({"kind": "TokenReview", "status": {"user": {}, "error": "invalid bearer token"}}, auth.Unauthenticated),
    (review(authenticated=False), auth.Unauthenticated),
    (review(audiences=["https://kubernetes.default.svc"]), auth.Unauthenticated),
    # An authenticator that ignores spec.audiences answers without status.audiences: not proof enough.
    ({"kind": "TokenReview", "status": {k: v for k, v in review()["status"].items() if k != "audiences"}},
     auth.Unauthenticated),
    (review(audiences=None), auth.Unauthenticated),
    (review(audiences="parley-operator"), auth.Unauthenticated),
    (review(user={"username": "alice", "extra": {}}), auth.Forbidden),
    (review(user={"username": "system:serviceaccount:shop:default"}), auth.Forbidden),  # not bound to a pod
])
def test_what_is_refused(answer: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        auth.claims_of(answer, "parley-operator")


def test_app_id_of_a_pod_prefers_the_injected_label() -> None:
    body = {"metadata": {"name": "web-1", "uid": "u", "labels": {"dapr.io/app-id": "web"},
                         "annotations": {"dapr.io/app-id": "ignored"}}}
    assert auth.pod_record(body, "shop") == auth.PodRecord("shop", "web-1", "u", "web")
    assert auth.pod_record({"metadata": {"name": "solo", "namespace": "ns"}}).app_id == "solo"
