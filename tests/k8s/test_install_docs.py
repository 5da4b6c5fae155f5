"""docs/kubernetes.md "Install on Kubernetes" (the README's section): every file, directory and value
it tells a new user to use exists."""

from __future__ import annotations

import re

import yaml

from tests.k8s import tools

DOC = tools.ROOT / "docs" / "kubernetes.md"


def install_section() -> str:
    text = DOC.read_text()
    start = text.index("## Install on Kubernetes")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def test_every_path_the_install_steps_name_exists() -> None:
    section = install_section()
    # (`deploy/parley-operator` in a kubectl command is a Deployment, not a path.)
    paths = set(re.findall(r"(?<![\w/.-])((?:crds|deploy/(?:base|helm|overlays|kind)|examples)[\w./-]*|Dockerfile\.\w+)", section))
    assert {"crds/components.yaml", "deploy/base", "deploy/helm/parley", "examples/components/echo.yaml"} <= paths
    for path in paths:
        assert (tools.ROOT / path.rstrip(".")).exists(), f"docs/kubernetes.md names {path}, which does not exist"


def test_every_helm_value_the_install_steps_name_exists() -> None:
    values = yaml.safe_load((tools.CHART / "values.yaml").read_text())
    for dotted in set(re.findall(r"`((?:image|webhooks|certManager|replicaCount)[\w.]*)`", install_section())) | set(
            re.findall(r"--set ((?:image|webhooks|certManager)[\w.]+)=", install_section())):
        node = values
        for part in dotted.split("."):
            assert isinstance(node, dict) and part in node, f"docs/kubernetes.md names Helm value {dotted}; no such value"
            node = node[part]


def test_the_names_it_promises_are_the_manifests_names() -> None:
    section = install_section()
    base = tools.kustomize(str(tools.BASE))
    assert "`parley-operator` in namespace `parley-system`" in section
    tools.one(base, "Deployment")
    webhook_name = tools.one(base, "ValidatingWebhookConfiguration")["webhooks"][0]["name"]
    assert f'admission webhook "{webhook_name}" denied the request' in section
