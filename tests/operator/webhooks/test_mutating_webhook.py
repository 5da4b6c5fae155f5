"""The injector through kopf's real webhook server over TLS, as kube-apiserver calls it."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import Cluster, StartOperator

ApplyPatch = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]


def deployment_pod(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """A pod as a ReplicaSet creates it: generateName, no name, no namespace (kopf #744)."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "checkout-7d9f8-", "labels": {"app": "checkout"},
                     "annotations": {"dapr.io/enabled": "true", "dapr.io/app-id": "checkout",
                                     "dapr.io/app-port": "8080", **(annotations or {})}},
        "spec": {"containers": [{"name": "app", "image": "shop/checkout:1", "ports": [{"containerPort": 8080}]}]},
    }


@pytest.fixture
async def operator(cluster: Cluster, start_operator: StartOperator) -> Any:
    return await start_operator()


def sidecar(pod: dict[str, Any]) -> dict[str, Any]:
    [container] = [c for c in pod["spec"]["containers"] if c["name"] == "daprd"]
    return container


async def test_create_injects_the_sidecar(operator: Any, review: Any, apply_patch: ApplyPatch) -> None:
    pod = deployment_pod()
    response = await review(operator, "/mutate", pod, namespace="shop")
    assert response["allowed"] is True
    result = apply_patch(copy.deepcopy(pod), response)
    c = sidecar(result)
    assert c["args"][c["args"].index("--app-id") + 1] == "checkout"
    assert c["args"][c["args"].index("--app-port") + 1] == "8080"
    assert result["metadata"]["labels"] == {"app": "checkout", "dapr.io/sidecar-injected": "true",
                                            "dapr.io/app-id": "checkout", "dapr.io/metrics-enabled": "true"}
    # The CA the sidecar verifies the operator with is the one this webhook served with.
    assert result["metadata"]["annotations"]["parley.io/operator-ca"] == operator.ca_pem
    assert result["spec"]["containers"][0]["env"] == [{"name": "DAPR_HTTP_PORT", "value": "3500"},
                                                      {"name": "DAPR_GRPC_PORT", "value": "50001"}]
    assert operator.metric("parley_operator_injections_total", outcome="injected") == 1
    assert operator.metric("dapr_injector_sidecar_injection_succeeded_total", app_id="checkout") == 1


async def test_namespace_missing_from_the_pod_is_taken_from_the_request(
    operator: Any, review: Any, apply_patch: ApplyPatch
) -> None:
    pod = deployment_pod()
    assert "namespace" not in pod["metadata"]
    result = apply_patch(copy.deepcopy(pod), await review(operator, "/mutate", pod, namespace="payments"))
    env = {e["name"]: e for e in sidecar(result)["env"]}
    assert env["NAMESPACE"] == {"name": "NAMESPACE", "value": "payments"}


async def test_dry_run_gets_the_same_patch_and_is_not_counted(
    operator: Any, review: Any, apply_patch: ApplyPatch
) -> None:
    pod = deployment_pod()
    dry = await review(operator, "/mutate", pod, dry_run=True)
    real = await review(operator, "/mutate", pod)
    assert dry["allowed"] is True
    assert apply_patch(copy.deepcopy(pod), dry) == apply_patch(copy.deepcopy(pod), real)
    assert operator.metric("parley_operator_injections_total", outcome="dry_run") == 1
    assert operator.metric("parley_operator_injections_total", outcome="injected") == 1
    assert operator.metric("dapr_injector_sidecar_injection_requests_total") == 1


async def test_already_injected_pod_gets_no_patch(operator: Any, review: Any, apply_patch: ApplyPatch) -> None:
    pod = deployment_pod()
    once = apply_patch(copy.deepcopy(pod), await review(operator, "/mutate", pod))
    again = await review(operator, "/mutate", once)  # reinvocation (reinvocationPolicy: IfNeeded)
    assert again["allowed"] is True and "patch" not in again
    assert operator.metric("parley_operator_injections_total", outcome="already_injected") == 1


async def test_pod_without_the_annotation_passes_untouched(operator: Any, review: Any) -> None:
    for value in (None, "false", "1"):
        pod = deployment_pod()
        if value is None:
            del pod["metadata"]["annotations"]["dapr.io/enabled"]
        else:
            pod["metadata"]["annotations"]["dapr.io/enabled"] = value
        response = await review(operator, "/mutate", pod)
        assert response["allowed"] is True and "patch" not in response


async def test_bad_annotation_denies_the_pod_naming_the_annotation(operator: Any, review: Any) -> None:
    pod = deployment_pod({"dapr.io/app-port": "http", "dapr.io/sidecar-memory-limit": "lots"})
    response = await review(operator, "/mutate", pod)
    assert response["allowed"] is False and "patch" not in response
    message = response["status"]["message"]
    assert "dapr.io/app-port" in message and "dapr.io/sidecar-memory-limit" in message
    assert response["status"]["code"] == 400
    assert operator.metric("dapr_injector_sidecar_injection_failed_total", app_id="checkout",
                           reason="invalid_annotation") == 1


async def test_pod_without_name_or_app_id_is_denied_like_dapr(operator: Any, review: Any) -> None:
    pod = deployment_pod()
    del pod["metadata"]["annotations"]["dapr.io/app-id"]
    response = await review(operator, "/mutate", pod)
    assert response["allowed"] is False
    assert "dapr.io/app-id" in response["status"]["message"]


async def test_ignored_dapr_annotations_come_back_as_warnings(operator: Any, review: Any) -> None:
    response = await review(operator, "/mutate", deployment_pod({"dapr.io/app-protocol": "grpc"}))
    assert response["allowed"] is True and "patch" in response
    assert response["warnings"] == ["annotation dapr.io/app-protocol has no effect on parley's sidecar"]


async def test_update_of_a_pod_is_not_mutated(operator: Any, review: Any) -> None:
    pod = deployment_pod()
    pod["metadata"]["name"] = "checkout-7d9f8-abcde"
    response = await review(operator, "/mutate", pod, operation="UPDATE", old=pod)
    assert response["allowed"] is True and "patch" not in response


async def test_native_sidecar_annotation(operator: Any, review: Any, apply_patch: ApplyPatch) -> None:
    pod = deployment_pod({"dapr.io/enable-native-sidecar": "true"})
    result = apply_patch(copy.deepcopy(pod), await review(operator, "/mutate", pod))
    assert [c["name"] for c in result["spec"]["initContainers"]] == ["daprd"]
    assert result["spec"]["initContainers"][0]["restartPolicy"] == "Always"


async def test_webhook_latency_is_measured(operator: Any, review: Any) -> None:
    await review(operator, "/mutate", deployment_pod())
    assert operator.metric("parley_operator_webhook_duration_seconds_count", webhook="mutate") == 1


async def test_made_up_app_ids_cannot_grow_the_metrics_without_bound(
    cluster: Cluster, start_operator: StartOperator, review: Any
) -> None:
    op = await start_operator(metrics_app_ids=2)
    for i in range(5):  # denied pods: creating nothing, each with an app id of the caller's choosing
        await review(op, "/mutate", deployment_pod({"dapr.io/app-id": f"made-up-{i}", "dapr.io/app-port": "http"}))
    injected = await review(op, "/mutate", deployment_pod({"dapr.io/app-id": "made-up-0"}))
    assert injected["allowed"] is True
    app_ids = {sample.labels["app_id"] for family in op.op.metrics.registry.collect()
               if family.name.startswith("dapr_injector_") for sample in family.samples if "app_id" in sample.labels}
    assert app_ids == {"made-up-0", "made-up-1", "other"}  # was one series per app id: 5 of them
    assert op.metric("dapr_injector_sidecar_injection_failed_total", app_id="other",
                     reason="invalid_annotation") == 3
    assert op.metric("dapr_injector_sidecar_injection_succeeded_total", app_id="made-up-0") == 1
