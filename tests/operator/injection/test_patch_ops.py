"""The JSON Patch itself: Dapr's op order, additions only, nothing the pod already has is overwritten."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from parley_operator.injection import config, patch
from parley_operator.settings import InjectorSettings

PodFactory = Callable[..., dict[str, Any]]
CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def ops_for(pod: dict[str, Any], settings: InjectorSettings) -> list[dict[str, Any]]:
    parsed = config.parse(pod["metadata"]["annotations"], pod_name=pod["metadata"].get("name", ""),
                          settings=settings, volumes=[v["name"] for v in pod["spec"].get("volumes") or ()])
    return patch.build(pod, parsed.config, settings, ca_pem=CA)


def test_ops_come_in_daprs_order_and_are_all_adds(make_pod: PodFactory, injector_settings: InjectorSettings) -> None:
    ops = ops_for(make_pod(), injector_settings)
    assert {op["op"] for op in ops} == {"add"}
    assert [op["path"] for op in ops] == [
        "/spec/volumes",
        "/spec/containers/-",
        "/metadata/labels",
        "/metadata/labels/dapr.io~1sidecar-injected",
        "/metadata/labels/dapr.io~1app-id",
        "/metadata/labels/dapr.io~1metrics-enabled",
        "/metadata/annotations/parley.io~1operator-ca",
        "/metadata/annotations/prometheus.io~1scrape",
        "/metadata/annotations/prometheus.io~1port",
        "/metadata/annotations/prometheus.io~1path",
        "/spec/containers/0/env",
    ]


def test_existing_volumes_and_labels_are_appended_to(make_pod: PodFactory, injector_settings: InjectorSettings) -> None:
    pod = make_pod(labels={"app": "web"}, volumes=[{"name": "data", "emptyDir": {}}])
    ops = ops_for(pod, injector_settings)
    paths = [op["path"] for op in ops]
    assert paths.count("/spec/volumes/-") == 2 and "/spec/volumes" not in paths
    assert "/metadata/labels" not in paths
    result = patch.apply(pod, ops)
    assert [v["name"] for v in result["spec"]["volumes"]] == ["data", patch.TOKEN_VOLUME, patch.CA_VOLUME]
    assert result["metadata"]["labels"]["app"] == "web"


def test_volumes_carry_the_token_and_the_ca_to_the_sidecars_paths(
    make_pod: PodFactory, injector_settings: InjectorSettings
) -> None:
    from parley_sidecar.settings import OperatorLink

    pod = patch.apply(make_pod(), ops_for(make_pod(), injector_settings))
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    [source] = volumes[patch.TOKEN_VOLUME]["projected"]["sources"]
    assert source["serviceAccountToken"] == {"audience": "parley-operator", "expirationSeconds": 3600,
                                             "path": "token"}
    [item] = volumes[patch.CA_VOLUME]["downwardAPI"]["items"]
    assert item == {"path": "ca.crt", "fieldRef": {"fieldPath": "metadata.annotations['parley.io/operator-ca']"}}
    assert pod["metadata"]["annotations"]["parley.io/operator-ca"] == CA
    [sidecar] = [c for c in pod["spec"]["containers"] if c["name"] == "daprd"]
    mounts = {m["name"]: m for m in sidecar["volumeMounts"]}
    link = OperatorLink()
    assert f"{mounts[patch.TOKEN_VOLUME]['mountPath']}/token" == str(link.token_path)
    assert f"{mounts[patch.CA_VOLUME]['mountPath']}/ca.crt" == str(link.ca_path)
    assert all(m["readOnly"] for m in mounts.values())


def test_app_containers_get_the_port_env_only_when_absent(
    make_pod: PodFactory, injector_settings: InjectorSettings
) -> None:
    pod = make_pod(containers=[
        {"name": "app", "image": "a"},
        {"name": "worker", "image": "w", "env": [{"name": "DAPR_HTTP_PORT", "value": "9999"}, {"name": "X", "value": "1"}]},
    ])
    result = patch.apply(pod, ops_for(pod, injector_settings))
    app, worker = result["spec"]["containers"][:2]
    assert app["env"] == [{"name": "DAPR_HTTP_PORT", "value": "3500"}, {"name": "DAPR_GRPC_PORT", "value": "50001"}]
    assert worker["env"] == [{"name": "DAPR_HTTP_PORT", "value": "9999"}, {"name": "X", "value": "1"},
                             {"name": "DAPR_GRPC_PORT", "value": "50001"}]


def test_native_sidecar_goes_to_init_containers_with_restart_always(
    make_pod: PodFactory, injector_settings: InjectorSettings
) -> None:
    pod = make_pod({"dapr.io/enable-native-sidecar": "true"})
    ops = ops_for(pod, injector_settings)
    paths = [op["path"] for op in ops]
    assert paths.index("/spec/initContainers") < paths.index("/spec/initContainers/-")
    result = patch.apply(pod, ops)
    [sidecar] = result["spec"]["initContainers"]
    assert sidecar["name"] == "daprd" and sidecar["restartPolicy"] == "Always"
    assert [c["name"] for c in result["spec"]["containers"]] == ["app"]


def test_native_sidecar_is_appended_after_existing_init_containers(
    make_pod: PodFactory, injector_settings: InjectorSettings
) -> None:
    pod = make_pod({"dapr.io/enable-native-sidecar": "true"}, initContainers=[{"name": "migrate", "image": "m"}])
    result = patch.apply(pod, ops_for(pod, injector_settings))
    assert [c["name"] for c in result["spec"]["initContainers"]] == ["migrate", "daprd"]


def test_a_pod_that_already_has_the_sidecar_gets_no_patch(
    make_pod: PodFactory, injector_settings: InjectorSettings
) -> None:
    once = patch.apply(make_pod(), ops_for(make_pod(), injector_settings))
    assert ops_for(once, injector_settings) == []
    native = make_pod({"dapr.io/enable-native-sidecar": "true"})
    assert ops_for(patch.apply(native, ops_for(native, injector_settings)), injector_settings) == []


def test_a_pod_without_containers_gets_the_list_first(
    make_pod: PodFactory, injector_settings: InjectorSettings
) -> None:
    pod = make_pod(containers=[])
    ops = ops_for(pod, injector_settings)
    assert ops[1] == {"op": "add", "path": "/spec/containers", "value": []}
    assert [c["name"] for c in patch.apply(pod, ops)["spec"]["containers"]] == ["daprd"]


def test_input_pod_is_not_modified(make_pod: PodFactory, injector_settings: InjectorSettings) -> None:
    pod = make_pod()
    before = repr(pod)
    patch.apply(pod, ops_for(pod, injector_settings))
    assert repr(pod) == before
