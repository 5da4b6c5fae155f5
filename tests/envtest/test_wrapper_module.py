"""The Go wrapper module that builds the control plane: one Kubernetes version everywhere, every
staging module pinned to its matching published version, nothing of Kubernetes' source."""

from __future__ import annotations

import re
from pathlib import Path

from tests.envtest import cluster

HERE = Path(__file__).resolve().parent
GO_MOD = (HERE / "kube" / "go.mod").read_text()
SCRIPT = (HERE / "setup-k8s.sh").read_text()

# k8s.io/kubernetes v1.33's go.mod requires these at v0.0.0 (replaced by ./staging/src/... there).
STAGING = ["api", "apiextensions-apiserver", "apimachinery", "apiserver", "cli-runtime", "client-go",
           "cloud-provider", "cluster-bootstrap", "code-generator", "component-base", "component-helpers",
           "controller-manager", "cri-api", "cri-client", "csi-translation-lib",
           "dynamic-resource-allocation", "endpointslice", "externaljwt", "kms", "kube-aggregator",
           "kube-controller-manager", "kube-proxy", "kube-scheduler", "kubectl", "kubelet", "metrics",
           "mount-utils", "pod-security-admission", "sample-apiserver"]


def test_one_kubernetes_version_everywhere() -> None:
    version = cluster.K8S_VERSION
    assert f"K8S_VERSION={version}\n" in SCRIPT
    assert re.search(rf"^\s*k8s\.io/kubernetes {re.escape(version)}$", GO_MOD, re.M)
    from tests.k8s import tools
    assert version == tools.K8S_VERSION


def test_every_staging_module_is_replaced_at_the_matching_version() -> None:
    minor = cluster.K8S_VERSION.removeprefix("v1.")
    replaced = dict(re.findall(r"^\s*k8s\.io/([\w-]+) => k8s\.io/[\w-]+ (v\S+)$", GO_MOD, re.M))
    assert sorted(replaced) == sorted(STAGING)
    assert set(replaced.values()) == {f"v0.{minor}"}


def test_go_and_godebug_lines_match_kubernetes_v1_33() -> None:
    assert re.search(r"^go 1\.24\.0$", GO_MOD, re.M) and re.search(r"^godebug default=go1\.24$", GO_MOD, re.M)


def test_the_wrapper_holds_no_kubernetes_source() -> None:
    files = sorted(p.name for p in (HERE / "kube").iterdir())
    assert files == ["go.mod", "go.sum", "tools.go"]
    tools_go = (HERE / "kube" / "tools.go").read_text()
    assert tools_go.startswith("//go:build tools")
    for binary in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl"):
        assert f'_ "k8s.io/kubernetes/cmd/{binary}"' in tools_go
        assert f"[{binary}]=k8s.io/kubernetes/cmd/{binary}" in SCRIPT
    assert '_ "go.etcd.io/etcd/server/v3"' in tools_go
