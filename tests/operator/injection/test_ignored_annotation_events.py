"""A ``dapr.io/`` annotation parley does not act on: the pod runs anyway, and gets one Warning Event
naming it, where ``kubectl describe pod`` shows it (a ReplicaSet never shows admission warnings)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Cluster, StartOperator


async def test_an_injected_pod_gets_one_warning_naming_what_parley_ignores(
    cluster: Cluster, start_operator: StartOperator,
) -> None:
    await cluster.add_pod("shop", "fine-1", "fine", annotations={
        "dapr.io/app-port": "8080", "dapr.io/config": "appconfig", "dapr.io/graceful-shutdown-seconds": "30"})
    await cluster.add_pod("shop", "web-1", "web", annotations={
        "dapr.io/app-protocol": "grpc", "dapr.io/app-prot": "typo", "dapr.io/max-body-size": "8Mi"})
    await start_operator()
    event = await cluster.event("shop", "AnnotationsIgnored", about="web-1")
    assert event["type"] == "Warning" and event["involvedObject"]["kind"] == "Pod"
    assert event["message"].startswith("parley's sidecar does not act on dapr.io/app-prot, dapr.io/app-protocol ")
    assert "max-body-size" not in event["message"]  # honoured
    assert "typo" not in event["message"] and "grpc" not in event["message"]  # names only, never values
    # app-port and config are read (config by the operator, app-port validated): no warning for them.
    assert [e["involvedObject"]["name"] for e in cluster.events("shop", "AnnotationsIgnored")] == ["web-1"]


async def test_a_pod_without_a_sidecar_gets_no_such_warning(cluster: Cluster, start_operator: StartOperator) -> None:
    await cluster.add_pod("shop", "early-1", "early", injected=False, annotations={"dapr.io/app-protocol": "grpc"})
    await start_operator()
    await cluster.event("shop", "SidecarNotInjected", about="early-1")
    assert cluster.events("shop", "AnnotationsIgnored") == []
