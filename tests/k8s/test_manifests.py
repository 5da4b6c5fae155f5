"""deploy/ as a platform team installs it: every object valid for the Kubernetes versions we support,
and wired to what the operator actually listens on, reads and patches."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import pytest

from parley_operator import cli, webhook
from parley_operator.settings import OperatorSettings
from tests.k8s import tools

kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate is not installed (it is in the test extra: pip install -e '.[test]')")

OVERLAYS = ("base", "overlays/fail-closed", "overlays/cert-manager", "kind")
BUILTIN_GROUPS = ("", "apps", "policy", "rbac.authorization.k8s.io", "admissionregistration.k8s.io",
                  "apiextensions.k8s.io", "batch")


def render(name: str) -> tuple[dict[str, Any], ...]:
    return tools.kustomize(str(tools.DEPLOY / name))


@pytest.fixture(scope="module")
def base() -> tuple[dict[str, Any], ...]:
    return render("base")


def group_of(obj: dict[str, Any]) -> str:
    api_version = obj["apiVersion"]
    return api_version.split("/")[0] if "/" in api_version else ""


@pytest.mark.parametrize("version", tools.SCHEMA_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_against_the_kubernetes_schema(overlay: str, version: str) -> None:
    objects = render(overlay)
    assert objects
    checked = 0
    for obj in objects:
        if group_of(obj) not in BUILTIN_GROUPS:
            assert group_of(obj) in ("cert-manager.io", "dapr.io"), f"unexpected API group in {obj['kind']}"
            continue
        try:
            tools.validate(obj, version)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{overlay}: {obj['kind']}/{obj['metadata']['name']} invalid for Kubernetes {version}: "
                        f"{exc.message} at {'.'.join(map(str, exc.path))}")
        checked += 1
    assert checked >= 10


def test_base_has_what_a_platform_team_expects(base: tuple[dict[str, Any], ...]) -> None:
    kinds = sorted(o["kind"] for o in base)
    assert kinds == sorted(["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
                            "RoleBinding", "Service", "Deployment", "PodDisruptionBudget",
                            "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"])
    for obj in base:
        if obj["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration",
                               "ValidatingWebhookConfiguration"):
            assert obj["metadata"]["namespace"] == "parley-system", obj["kind"]
    # The CRD is not in the base: Dapr may own it (crds/README.md).
    assert not tools.by_kind(base, "CustomResourceDefinition")


def test_operator_pod_is_hardened_and_bounded(base: tuple[dict[str, Any], ...]) -> None:
    pod = tools.one(base, "Deployment")["spec"]["template"]["spec"]
    c = tools.container(base)
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
    assert c["resources"]["limits"]["memory"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["serviceAccountName"] == "parley-operator"
    pdb = tools.one(base, "PodDisruptionBudget")
    deployment = tools.one(base, "Deployment")
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    assert deployment["spec"]["replicas"] >= 2, "one replica + a PDB would block node drains or lose webhooks"


def _settings_of(objects: tuple[dict[str, Any], ...]) -> OperatorSettings:
    """What the operator would run with, given the Deployment's args and env (downward API filled in)."""
    c = tools.container(objects)
    env: dict[str, str] = {"POD_NAMESPACE": "parley-system", "POD_NAME": "parley-operator-abc"}
    for e in c.get("env") or ():
        if "value" in e:
            env[e["name"]] = e["value"]
        else:
            assert e["valueFrom"]["fieldRef"]["fieldPath"] in ("metadata.namespace", "metadata.name")
    return cli.settings_from_args(c.get("args") or [], env)


def test_every_env_var_is_one_the_operator_reads(base: tuple[dict[str, Any], ...]) -> None:
    parser = cli.build_parser({})
    flags = {a.option_strings[0] for a in parser._actions if a.option_strings}
    for e in tools.container(base).get("env") or ():
        name = e["name"]
        if name in ("POD_NAMESPACE", "POD_NAME"):
            continue
        assert name.startswith("PARLEY_"), name
        flag = "--" + name.removeprefix("PARLEY_").lower().replace("_", "-")
        assert flag in flags, f"{name} sets nothing: parley-operator has no {flag}"


def test_ports_service_and_probes_match_what_the_operator_listens_on(base: tuple[dict[str, Any], ...]) -> None:
    s = _settings_of(base)
    ports = {p["name"]: p["containerPort"] for p in tools.container(base)["ports"]}
    assert ports == {"webhook": s.webhook.port, "stream": s.stream.port, "metrics": s.metrics_port,
                     "health": s.health_port}
    service = tools.one(base, "Service")
    by_name = {p["name"]: p for p in service["spec"]["ports"]}
    assert by_name["webhook"]["port"] == 443 and by_name["webhook"]["targetPort"] == "webhook"
    assert by_name["metrics"]["targetPort"] == "metrics"
    # Sidecars dial the address the injector writes into them: it must be this Service's stream port.
    host, port = s.injector.control_plane_address.rsplit(":", 1)
    assert host == f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc"
    assert by_name["stream"]["port"] == int(port) and by_name["stream"]["targetPort"] == "stream"
    assert service["spec"]["selector"] == tools.one(base, "Deployment")["spec"]["selector"]["matchLabels"]


def test_webhooks_reach_the_operators_handlers_and_skip_system_namespaces(base: tuple[dict[str, Any], ...]) -> None:
    s = _settings_of(base)
    mutating = tools.one(base, "MutatingWebhookConfiguration", s.webhook.mutating_configuration)
    validating = tools.one(base, "ValidatingWebhookConfiguration", s.webhook.validating_configuration)
    service = tools.one(base, "Service")
    hooks = [*mutating["webhooks"], *validating["webhooks"]]
    for hook, handler_id in zip(hooks, (webhook.MUTATE, webhook.VALIDATE, webhook.VALIDATE_RESILIENCY), strict=True):
        ref = hook["clientConfig"]["service"]
        assert (ref["namespace"], ref["name"], ref["path"]) == ("parley-system", service["metadata"]["name"],
                                                                f"/{handler_id}")
        assert "caBundle" not in hook["clientConfig"], "the operator owns caBundle; a static one would fight it"
        assert hook["failurePolicy"] == "Ignore" and hook["sideEffects"] == "None"
        [expr] = hook["namespaceSelector"]["matchExpressions"]
        assert expr["key"] == "kubernetes.io/metadata.name" and expr["operator"] == "NotIn"
        assert set(expr["values"]) == {"kube-system", "parley-system"}
    assert mutating["webhooks"][0]["rules"][0]["resources"] == ["pods"]
    assert mutating["webhooks"][0]["rules"][0]["operations"] == ["CREATE"]
    assert mutating["webhooks"][0]["reinvocationPolicy"] == "IfNeeded"
    assert validating["webhooks"][0]["rules"][0]["apiGroups"] == ["dapr.io"]
    assert validating["webhooks"][0]["rules"][0]["resources"] == ["components"]
    assert validating["webhooks"][1]["rules"][0]["resources"] == ["resiliencies"]


def test_fail_closed_overlay_changes_only_the_failure_policy(base: tuple[dict[str, Any], ...]) -> None:
    closed = render("overlays/fail-closed")
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        hook = tools.one(closed, kind)["webhooks"][0]
        assert hook["failurePolicy"] == "Fail"
        assert {**hook, "failurePolicy": "Ignore"} == tools.one(base, kind)["webhooks"][0]


def test_operator_can_write_its_certificates_and_names_match_rbac(base: tuple[dict[str, Any], ...]) -> None:
    s = _settings_of(base)
    c = tools.container(base)
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    # readOnlyRootFilesystem: the generated certificates go to an emptyDir.
    assert any(PurePosixPath(m) in PurePosixPath(s.certs.work_dir).parents for m in mounts), s.certs.work_dir
    role = tools.one(base, "Role")
    patchable = [r for r in role["rules"] if "patch" in r["verbs"] and "secrets" in r["resources"]]
    assert patchable and patchable[0]["resourceNames"] == [s.certs.secret_name]
    cluster_role = tools.one(base, "ClusterRole")
    [hooks] = [r for r in cluster_role["rules"] if "admissionregistration.k8s.io" in r["apiGroups"]]
    assert set(hooks["resourceNames"]) == {s.webhook.mutating_configuration, s.webhook.validating_configuration}
    assert s.certs.namespace == "parley-system" and s.certs.service_name == "parley-operator"


def test_cert_manager_overlay_mounts_the_certificate_where_the_operator_looks() -> None:
    objects = render("overlays/cert-manager")
    s = _settings_of(objects)
    certificate = tools.one(objects, "Certificate", "parley-operator-serving")
    c = tools.container(objects)
    [mount] = [m for m in c["volumeMounts"] if m["name"] == "serving-cert"]
    assert mount["mountPath"] == str(s.certs.mounted_dir)
    [volume] = [v for v in tools.one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
                if v["name"] == "serving-cert"]
    assert volume["secret"]["secretName"] == certificate["spec"]["secretName"]
    from parley_operator.certs import service_names
    assert set(certificate["spec"]["dnsNames"]) == set(service_names(s.certs))


def test_images_are_the_ones_the_readme_names(base: tuple[dict[str, Any], ...]) -> None:
    s = _settings_of(base)
    assert tools.container(base)["image"] == "ghcr.io/parley-project/parley-operator:0.1.0"
    assert s.injector.sidecar_image == "ghcr.io/parley-project/parley-sidecar:0.1.0"


def test_kind_overlay_runs_the_locally_built_images_without_pulling() -> None:
    objects = render("kind")
    s = _settings_of(objects)
    c = tools.container(objects)
    assert (c["image"], c["imagePullPolicy"]) == ("parley-operator:e2e", "Never")
    assert (s.injector.sidecar_image, s.injector.image_pull_policy) == ("parley-sidecar:e2e", "Never")
