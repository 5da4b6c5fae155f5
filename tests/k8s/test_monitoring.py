"""The opt-in monitoring objects: a PodMonitor for the sidecars, a ServiceMonitor for the operator
and the Grafana dashboard ConfigMap, from ``deploy/overlays/monitoring`` (kustomize) and the Helm
chart's ``monitoring.*`` values, and nothing of them by default."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from tests.k8s import tools

DASHBOARD = tools.DEPLOY / "grafana" / "parley-dashboard.json"
OVERLAY = tools.DEPLOY / "overlays" / "monitoring"
MONITORING_KINDS = {"PodMonitor", "ServiceMonitor"}
ALL_ON = ("monitoring.podMonitor.enabled=true", "monitoring.serviceMonitor.enabled=true",
          "monitoring.dashboard.enabled=true")


def helm(*values: str) -> tuple[dict[str, Any], ...]:
    out = tools.helm_template(*values)
    assert isinstance(out, tuple)
    return out


def dashboard_config_map(objects: tuple[dict[str, Any], ...]) -> Mapping[str, Any]:
    maps = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "parley-dashboard"]
    assert len(maps) == 1
    return maps[0]


def check_monitors(objects: tuple[dict[str, Any], ...]) -> None:
    """The monitors point at what the rest of the render (and the injector) really exposes."""
    pod_monitor = tools.one(objects, "PodMonitor", "parley-sidecars")
    assert pod_monitor["spec"]["selector"] == {"matchLabels": {"dapr.io/sidecar-injected": "true"}}
    assert pod_monitor["spec"]["namespaceSelector"] == {"any": True}
    assert [(e["port"], e["path"]) for e in pod_monitor["spec"]["podMetricsEndpoints"]] == [("dapr-metrics", "/")]
    service = tools.one(objects, "Service")
    service_monitor = tools.one(objects, "ServiceMonitor")
    selector = service_monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    port = service_monitor["spec"]["endpoints"][0]["port"]
    assert port in {p["name"] for p in service["spec"]["ports"]}
    assert service_monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    cm = dashboard_config_map(objects)
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["parley-dashboard.json"]) == json.loads(DASHBOARD.read_text())
    tools.validate(cm, tools.SCHEMA_VERSIONS[-1])


def test_the_kustomize_overlay_adds_the_monitors_and_the_dashboard_to_the_base() -> None:
    objects = tools.kustomize(str(OVERLAY))
    check_monitors(objects)
    base = {(o["kind"], o["metadata"]["name"]) for o in tools.kustomize(str(tools.BASE))}
    added = {(o["kind"], o["metadata"]["name"]) for o in objects} - base
    assert added == {("PodMonitor", "parley-sidecars"), ("ServiceMonitor", "parley-operator"),
                     ("ConfigMap", "parley-dashboard")}
    assert {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"} <= {
        tools.NAMESPACE, None}  # cluster-scoped objects have none


def test_the_base_and_the_charts_defaults_have_none_of_them() -> None:
    for objects in (tools.kustomize(str(tools.BASE)), helm()):
        assert not MONITORING_KINDS & {o["kind"] for o in objects}
        assert not [o for o in objects if o["kind"] == "ConfigMap"]


def test_helm_values_turn_each_on_and_render_what_kustomize_does() -> None:
    objects = helm(*ALL_ON)
    check_monitors(objects)
    overlay = {(o["kind"], o["metadata"]["name"]): o for o in tools.kustomize(str(OVERLAY))}
    for obj in objects:
        if obj["kind"] in MONITORING_KINDS:
            assert obj["spec"] == overlay[obj["kind"], obj["metadata"]["name"]]["spec"]


@pytest.mark.parametrize("value", ALL_ON)
def test_each_helm_value_alone(value: str) -> None:
    objects = helm(value)
    kinds = {o["kind"] for o in objects}
    wanted = {"monitoring.podMonitor.enabled=true": "PodMonitor",
              "monitoring.serviceMonitor.enabled=true": "ServiceMonitor"}.get(value)
    assert kinds & MONITORING_KINDS == ({wanted} if wanted else set())
    assert ("ConfigMap" in kinds) == (value == "monitoring.dashboard.enabled=true")


def test_helm_labels_and_the_dashboards_namespace() -> None:
    objects = helm(*ALL_ON, "monitoring.podMonitor.labels.release=kps", "monitoring.serviceMonitor.labels.release=kps",
                   "monitoring.dashboard.namespace=grafana")
    assert tools.one(objects, "PodMonitor", "parley-sidecars")["metadata"]["labels"]["release"] == "kps"
    assert tools.one(objects, "ServiceMonitor")["metadata"]["labels"]["release"] == "kps"
    assert dashboard_config_map(objects)["metadata"]["namespace"] == "grafana"


def test_the_charts_copy_of_the_dashboard_is_the_same_file() -> None:
    assert (tools.CHART / "dashboards" / "parley-dashboard.json").read_bytes() == DASHBOARD.read_bytes()
