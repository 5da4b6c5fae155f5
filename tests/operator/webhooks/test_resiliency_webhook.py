"""Resiliency validation through kopf's real webhook server over TLS: a bad one is refused at
``kubectl apply`` with the sidecar's own message naming the field."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import kmock as kmock_lib
import pytest

if TYPE_CHECKING:
    from conftest import Cluster, StartOperator

RESILIENCY = {"group": "dapr.io", "version": "v1alpha1", "resource": "resiliencies"}


def resiliency(policies: dict[str, Any] | None = None, targets: dict[str, Any] | None = None,
               **top: Any) -> dict[str, Any]:
    """Dapr's documented shape (docs.dapr.io, Resiliency spec), one component target."""
    return {
        "apiVersion": "dapr.io/v1alpha1", "kind": "Resiliency",
        "metadata": {"name": "llm-resiliency", "namespace": "shop"},
        "spec": {
            "policies": policies if policies is not None else {
                "timeouts": {"general": "5s"},
                "retries": {"retryForever": {"policy": "exponential", "maxInterval": "15s", "maxRetries": -1}},
                "circuitBreakers": {"simpleCB": {"maxRequests": 1, "timeout": "30s",
                                                 "trip": "consecutiveFailures >= 5"}}},
            "targets": targets if targets is not None else {"components": {"openai": {"outbound": {
                "timeout": "general", "retry": "retryForever", "circuitBreaker": "simpleCB"}}}},
        },
        **top,
    }


@pytest.fixture
async def operator(cluster: Cluster, start_operator: StartOperator) -> Any:
    cluster.api.resources["dapr.io/v1alpha1/resiliencies"] = kmock_lib.ResourceInfo(
        kind="Resiliency", singular="resiliency", namespaced=True, verbs={"list", "watch", "get", "create"})
    return await start_operator()


async def test_daprs_documented_resiliency_is_allowed(operator: Any, review: Any) -> None:
    response = await review(operator, "/validate-resiliency", resiliency(scopes=["checkout"]), resource=RESILIENCY)
    assert response == {"uid": response["uid"], "allowed": True}


@pytest.mark.parametrize(("obj", "message"), [
    (resiliency({"timeouts": {"general": "soon"}}, {}), "field 'spec.policies.timeouts.general': invalid duration"),
    (resiliency({"retries": {"r": {"policy": "fibonacci"}}}, {}),
     "field 'spec.policies.retries.r.policy': expected constant or exponential, got 'fibonacci'"),
    (resiliency({"circuitBreakers": {"cb": {"trip": "failures > 3"}}}, {}), "field 'spec.policies.circuitBreakers.cb.trip'"),
    (resiliency({}, {"components": {"openai": {"outbound": {"timeout": "missing"}}}}),
     "field 'spec.targets.components.openai.outbound.timeout': no timeout policy named 'missing'"),
    (resiliency(scopes="checkout"), "field 'scopes': expected a list of app ids"),
], ids=["bad-duration", "unknown-retry-policy", "unsupported-trip", "unknown-policy-name", "scopes-not-a-list"])
async def test_a_bad_resiliency_is_refused_naming_the_field(operator: Any, review: Any, obj: dict[str, Any],
                                                            message: str) -> None:
    response = await review(operator, "/validate-resiliency", obj, resource=RESILIENCY)
    assert response["allowed"] is False
    assert response["status"]["code"] == 400
    assert message in response["status"]["message"]
    assert "resiliency 'llm-resiliency'" in response["status"]["message"]


async def test_a_component_review_sent_to_the_resiliency_path_is_refused(operator: Any, review: Any) -> None:
    component = {"apiVersion": "dapr.io/v1alpha1", "kind": "Component", "metadata": {"name": "x"},
                 "spec": {"type": "conversation.echo", "version": "v1"}}
    response = await review(operator, "/validate-resiliency", component,
                            resource={"group": "dapr.io", "version": "v1alpha1", "resource": "components"})
    assert response["allowed"] is False and "reviews dapr.io/v1alpha1 resiliencies" in response["status"]["message"]
