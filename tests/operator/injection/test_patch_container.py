"""The injected container: Dapr's container contract plus parley's hardening."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from parley_operator.settings import InjectorSettings

PodFactory = Callable[..., dict[str, Any]]
Inject = Callable[..., dict[str, Any]]
SidecarOf = Callable[[dict[str, Any]], dict[str, Any]]


def flag(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def test_default_sidecar_matches_daprs_contract(make_pod: PodFactory, inject: Inject, sidecar_of: SidecarOf) -> None:
    c = sidecar_of(inject(make_pod()))
    assert c["image"] == "registry.test/parley-sidecar:1"
    assert c["command"] == ["parley-sidecar"]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {
        "dapr-http": 3500, "dapr-grpc": 50001, "dapr-metrics": 9090}
    assert c["readinessProbe"]["httpGet"] == {"path": "/v1.0/healthz", "port": 3501}
    assert c["livenessProbe"]["tcpSocket"] == {"port": 3501}
    assert (c["livenessProbe"]["initialDelaySeconds"], c["livenessProbe"]["failureThreshold"]) == (180, 5)
    assert (c["readinessProbe"]["periodSeconds"], c["readinessProbe"]["timeoutSeconds"]) == (1, 1)
    assert "resources" not in c and "restartPolicy" not in c
    args = c["args"]
    assert flag(args, "--app-id") == "web"
    assert flag(args, "--control-plane-address") == "parley-operator.parley-system.svc:6500"
    assert flag(args, "--dapr-http-port") == "3500" and flag(args, "--dapr-public-port") == "3501"
    assert flag(args, "--log-level") == "info" and flag(args, "--metrics-port") == "9090"
    assert flag(args, "--dapr-listen-addresses") == "[::1],127.0.0.1"  # Dapr's default
    assert flag(args, "--dapr-graceful-shutdown-seconds") == "-1"  # the sidecar's own default, as Dapr passes it
    for unset in ("--dapr-block-shutdown-duration", "--max-body-size", "--read-buffer-size", "--unix-domain-socket",
                  "--dapr-http-max-request-size", "--dapr-http-read-buffer-size"):
        assert unset not in args
    assert not [a for a in args if a.startswith("--enable-api-logging")]
    assert "--app-port" not in args and "--config" not in args


def test_sidecar_parses_with_the_sidecars_own_cli(make_pod: PodFactory, inject: Inject, sidecar_of: SidecarOf) -> None:
    from parley_sidecar import cli

    pod = make_pod({"dapr.io/app-id": "orders", "dapr.io/app-port": "8080", "dapr.io/log-level": "debug",
                    "dapr.io/config": "tracing", "dapr.io/enable-metrics": "false"})
    c = sidecar_of(inject(pod))
    settings, _ = cli.settings_from_args(c["args"], environ={"NAMESPACE": "shop"})
    assert settings.app_id == "orders"
    assert settings.operator.address == "parley-operator.parley-system.svc:6500"
    assert settings.operator.namespace == "shop"
    assert settings.logging.level == "debug"
    assert settings.enable_metrics is False
    assert settings.listen_addresses == ["[::1]", "127.0.0.1"]
    assert settings.ports.public == 3501


def test_sidecar_runs_non_root_read_only_without_capabilities(
    make_pod: PodFactory, inject: Inject, sidecar_of: SidecarOf
) -> None:
    security = sidecar_of(inject(make_pod()))["securityContext"]
    assert security == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


@pytest.mark.parametrize(("annotations", "resources"), [
    ({"dapr.io/sidecar-cpu-request": "100m"}, {"requests": {"cpu": "100m"}}),
    ({"dapr.io/sidecar-memory-limit": "256Mi"}, {"limits": {"memory": "256Mi"}}),
    ({"dapr.io/sidecar-cpu-request": "100m", "dapr.io/sidecar-cpu-limit": "1",
      "dapr.io/sidecar-memory-request": "64Mi", "dapr.io/sidecar-memory-limit": "256Mi"},
     {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}}),
])
def test_resource_annotations_fill_only_what_is_set(
    make_pod: PodFactory, inject: Inject, sidecar_of: SidecarOf, annotations: dict[str, str],
    resources: dict[str, Any],
) -> None:
    assert sidecar_of(inject(make_pod(annotations)))["resources"] == resources


def test_api_token_secret_is_a_secret_reference_never_a_value(
    make_pod: PodFactory, inject: Inject, sidecar_of: SidecarOf
) -> None:
    c = sidecar_of(inject(make_pod({"dapr.io/api-token-secret": "dapr-api-token"})))
    [token] = [e for e in c["env"] if e["name"] == "DAPR_API_TOKEN"]
    assert token == {"name": "DAPR_API_TOKEN",
                     "valueFrom": {"secretKeyRef": {"name": "dapr-api-token", "key": "token"}}}


def test_env_annotation_and_namespace_reach_the_sidecar(
    make_pod: PodFactory, inject: Inject, sidecar_of: SidecarOf
) -> None:
    c = sidecar_of(inject(make_pod({"dapr.io/env": "OPENAI_MODEL=gpt-x,GREETING=hi, there"})))
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}
    assert env["OPENAI_MODEL"] == "gpt-x" and env["GREETING"] == "hi, there"
    assert env["NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_probe_annotations_reach_the_probes(make_pod: PodFactory, inject: Inject, sidecar_of: SidecarOf) -> None:
    c = sidecar_of(inject(make_pod({"dapr.io/sidecar-liveness-probe-delay-seconds": "15",
                                    "dapr.io/sidecar-readiness-probe-threshold": "9"})))
    assert c["livenessProbe"]["initialDelaySeconds"] == 15
    assert c["readinessProbe"]["failureThreshold"] == 9


def test_metrics_port_and_scrape_annotations(make_pod: PodFactory, inject: Inject, sidecar_of: SidecarOf) -> None:
    pod = inject(make_pod({"dapr.io/metrics-port": "9876"}))
    notes = pod["metadata"]["annotations"]
    assert (notes["prometheus.io/scrape"], notes["prometheus.io/port"], notes["prometheus.io/path"]) == (
        "true", "9876", "/")
    assert {"name": "dapr-metrics", "containerPort": 9876, "protocol": "TCP"} in sidecar_of(pod)["ports"]


def test_metrics_off_means_no_port_and_no_scrape(make_pod: PodFactory, inject: Inject, sidecar_of: SidecarOf) -> None:
    pod = inject(make_pod({"dapr.io/enable-metrics": "false"}))
    assert "prometheus.io/scrape" not in pod["metadata"]["annotations"]
    assert "dapr-metrics" not in {p["name"] for p in sidecar_of(pod)["ports"]}
    assert "--enable-metrics=false" in sidecar_of(pod)["args"]
    assert pod["metadata"]["labels"]["dapr.io/metrics-enabled"] == "false"


def test_an_apps_own_scrape_annotations_are_kept(make_pod: PodFactory, inject: Inject, sidecar_of: SidecarOf) -> None:
    pod = inject(make_pod({"prometheus.io/scrape": "true", "prometheus.io/port": "8000"}))
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "8000"


def test_image_annotation_and_settings(make_pod: PodFactory, inject: Inject, sidecar_of: SidecarOf) -> None:
    settings = InjectorSettings(sidecar_image="default:1", sidecar_command=(), run_as_user=None,
                                image_pull_policy="Always")
    c = sidecar_of(inject(make_pod({"dapr.io/sidecar-image": "custom:2"}), settings))
    assert (c["image"], c["imagePullPolicy"]) == ("custom:2", "Always")
    assert "command" not in c and "runAsUser" not in c["securityContext"]
