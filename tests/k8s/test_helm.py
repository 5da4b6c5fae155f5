"""The Helm chart: the same objects as the kustomize base by default, and each value doing what its
comment in values.yaml says. Skips (with how to get it) where helm is not installed."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import pytest

from tests.k8s import tools

pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate is not installed (it is in the test extra: pip install -e '.[test]')")


def render(*values: str, namespace: str = tools.NAMESPACE, set_string: tuple[str, ...] = ()
           ) -> tuple[dict[str, Any], ...]:
    out = tools.helm_template(*values, namespace=namespace, set_string=set_string)
    assert isinstance(out, tuple)
    return out


def without_labels(obj: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    obj["metadata"].pop("labels", None)
    return obj


def test_defaults_render_the_same_objects_as_the_kustomize_base() -> None:
    helm = {(o["kind"], o["metadata"]["name"]): without_labels(o) for o in render()
            if o["kind"] != "CustomResourceDefinition"}
    base = {(o["kind"], o["metadata"]["name"]): without_labels(o) for o in tools.kustomize(str(tools.BASE))
            if o["kind"] != "Namespace"}  # helm installs into a namespace it is given (--create-namespace)
    assert helm.keys() == base.keys()
    for key, obj in base.items():
        assert helm[key] == obj, f"{key}: helm template differs from deploy/base"


def test_chart_labels_every_object_for_helm() -> None:
    for obj in render():
        if obj["kind"] == "CustomResourceDefinition":
            continue
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm" and labels["app.kubernetes.io/instance"] == "parley"


def test_chart_ships_daprs_crd_unchanged() -> None:
    crds = tools.by_kind(render(), "CustomResourceDefinition")
    assert {c["metadata"]["name"] for c in crds} == {"components.dapr.io", "resiliencies.dapr.io", "configurations.dapr.io"}
    for name in ("components.yaml", "resiliency.yaml", "configuration.yaml"):
        chart_copy = (tools.CHART / "crds" / name).read_bytes()
        assert hashlib.sha256(chart_copy).digest() == hashlib.sha256((tools.CRDS / name).read_bytes()).digest()


@pytest.mark.parametrize("version", tools.SCHEMA_VERSIONS)
@pytest.mark.parametrize("values", [(), ("certManager.enabled=true",), ("webhooks.failurePolicy=Fail", "replicaCount=3",
                                                                        "nativeSidecar=true")], ids=str)
def test_every_rendered_object_validates(values: tuple[str, ...], version: str) -> None:
    for obj in render(*values):
        if obj["apiVersion"].startswith("cert-manager.io/"):
            continue
        tools.validate(obj, version)


def test_image_values_set_the_operator_and_the_injected_sidecar() -> None:
    objects = render("image.operator.repository=registry.example/parley/operator", "image.operator.tag=1.2.3",
                     "image.sidecar.repository=registry.example/parley/sidecar", "image.sidecar.tag=1.2.3",
                     "image.sidecar.pullPolicy=Always")
    c = tools.container(objects)
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert c["image"] == "registry.example/parley/operator:1.2.3"
    assert env["PARLEY_SIDECAR_IMAGE"] == "registry.example/parley/sidecar:1.2.3"
    assert env["PARLEY_SIDECAR_IMAGE_PULL_POLICY"] == "Always"


def test_replicas_value() -> None:
    assert tools.one(render("replicaCount=3"), "Deployment")["spec"]["replicas"] == 3


def test_failure_policy_values() -> None:
    closed = render("webhooks.failurePolicy=Fail")
    assert tools.one(closed, "MutatingWebhookConfiguration")["webhooks"][0]["failurePolicy"] == "Fail"
    assert tools.one(closed, "ValidatingWebhookConfiguration")["webhooks"][0]["failurePolicy"] == "Fail"
    mixed = render("webhooks.validatingFailurePolicy=Fail")
    assert tools.one(mixed, "MutatingWebhookConfiguration")["webhooks"][0]["failurePolicy"] == "Ignore"
    assert tools.one(mixed, "ValidatingWebhookConfiguration")["webhooks"][0]["failurePolicy"] == "Fail"


def test_a_misspelt_failure_policy_is_refused_with_a_message() -> None:
    error = tools.helm_template("webhooks.failurePolicy=ignore", expect_ok=False)
    assert isinstance(error, str)
    assert 'webhooks failurePolicy must be Ignore or Fail, not "ignore"' in error


def test_cert_manager_creates_a_ca_and_mounts_the_serving_certificate() -> None:
    objects = render("certManager.enabled=true")
    names = sorted((o["kind"], o["metadata"]["name"]) for o in objects if o["apiVersion"].startswith("cert-manager"))
    assert names == [("Certificate", "parley-ca"), ("Certificate", "parley-operator-serving"),
                     ("Issuer", "parley-ca"), ("Issuer", "parley-selfsigned")]
    mounts = {m["name"]: m["mountPath"] for m in tools.container(objects)["volumeMounts"]}
    assert mounts["serving-cert"] == "/var/run/secrets/parley.io/tls"
    # Same certificate objects as the kustomize cert-manager overlay.
    overlay = tools.kustomize(str(tools.DEPLOY / "overlays" / "cert-manager"))
    for kind, name in names:
        assert tools.one(objects, kind, name)["spec"] == tools.one(overlay, kind, name)["spec"]


def test_cert_manager_with_an_existing_issuer_creates_no_ca() -> None:
    objects = render("certManager.enabled=true", "certManager.issuerRef.name=corp-ca",
                     "certManager.issuerRef.kind=ClusterIssuer")
    cm = [o for o in objects if o["apiVersion"].startswith("cert-manager")]
    assert [(o["kind"], o["metadata"]["name"]) for o in cm] == [("Certificate", "parley-operator-serving")]
    assert cm[0]["spec"]["issuerRef"] == {"name": "corp-ca", "kind": "ClusterIssuer"}


def test_another_release_namespace_is_skipped_and_referenced() -> None:
    objects = render(namespace="llm-platform")
    hook = tools.one(objects, "MutatingWebhookConfiguration")["webhooks"][0]
    assert hook["clientConfig"]["service"]["namespace"] == "llm-platform"
    assert hook["namespaceSelector"]["matchExpressions"][0]["values"] == ["kube-system", "llm-platform"]
    binding = tools.one(objects, "ClusterRoleBinding")
    assert binding["subjects"][0]["namespace"] == "llm-platform"


def test_extra_namespace_selector_terms_are_anded() -> None:
    # As docs/kubernetes.md shows it: --set-string, or "true" would become a boolean.
    objects = render("webhooks.namespaceSelectorExpressions[0].key=parley.io/inject",
                     "webhooks.namespaceSelectorExpressions[0].operator=In",
                     set_string=("webhooks.namespaceSelectorExpressions[0].values[0]=true",))
    exprs = tools.one(objects, "MutatingWebhookConfiguration")["webhooks"][0]["namespaceSelector"]["matchExpressions"]
    assert exprs[1] == {"key": "parley.io/inject", "operator": "In", "values": ["true"]}
    for obj in objects:
        if not obj["apiVersion"].startswith("cert-manager.io/"):
            tools.validate(obj, "1.33")


def test_helm_lint_passes() -> None:
    helm = tools.require_tool("helm")
    out = tools.run([helm, "lint", str(tools.CHART), "--strict"])
    assert out.returncode == 0, out.stdout + out.stderr
