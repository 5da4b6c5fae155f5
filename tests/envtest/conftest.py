"""Session fixtures for the real-API-server tier: one etcd + kube-apiserver for the whole session,
Dapr's CRDs (Component, Resiliency, Configuration) and deploy/'s RBAC installed, and parley-operator running under that RBAC with a real
ServiceAccount token, its webhooks registered at its loopback address.

Skips the whole tier, saying how to get them, when the binaries are not built
(``tests/envtest/setup-k8s.sh``; ``.ci/run`` calls it).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.envtest import cluster
from tests.envtest.cluster import ApiError, ControlPlane, Kube

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "base"
APP_NS = "team-a"


@pytest.fixture(scope="session")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    missing = cluster.missing_binaries()
    if missing:
        pytest.skip(f"real-API-server tier: {', '.join(missing)} not built in {cluster.bin_dir()}; "
                    "run tests/envtest/setup-k8s.sh (builds them from the k8s.io/kubernetes Go module)")
    running = cluster.start(tmp_path_factory.mktemp("envtest"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def admin(plane: ControlPlane) -> Kube:
    return plane.admin()


def _establish_crds(admin: Kube) -> None:
    for crd in [c for name in ("components", "resiliency", "configuration")
                for c in cluster.load_yaml(ROOT / "crds" / f"{name}.yaml")]:
        admin.apply(crd)

        def established(name: str = crd["metadata"]["name"]) -> bool:
            status = admin.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}").get("status", {})
            return any(c["type"] == "Established" and c["status"] == "True" for c in status.get("conditions") or ())

        cluster.wait_for(established, timeout=30, what="CRD Established")
    # The new resource must also be served (discovery) before kopf or a client can use it.
    for plural in ("components", "resiliencies", "configurations"):
        cluster.wait_for(lambda p=plural: admin.get(f"/apis/dapr.io/v1alpha1/namespaces/default/{p}") is not None,
                         timeout=30, what=f"{plural}.dapr.io served")


@dataclasses.dataclass
class Installed:
    admin: Kube
    webhook_port: int
    operator_pod: dict[str, Any]


@pytest.fixture(scope="session")
def installed(plane: ControlPlane, admin: Kube) -> Installed:
    """crds/, then deploy/base as `kubectl apply -k` would create it (webhooks pointed at 127.0.0.1)."""
    _establish_crds(admin)
    webhook_port = cluster.free_port()
    for name in ("namespace.yaml", "serviceaccount.yaml", "rbac.yaml", "service.yaml", "pdb.yaml"):
        for obj in cluster.load_yaml(BASE / name):
            admin.apply(obj)
    for obj in cluster.load_yaml(BASE / "webhooks.yaml"):
        for hook in obj["webhooks"]:
            path = hook["clientConfig"].pop("service")["path"]
            hook["clientConfig"]["url"] = f"https://127.0.0.1:{webhook_port}{path}"
        admin.apply(obj)
    # The operator's pod as the Deployment would create it: stored (never run), so its ServiceAccount
    # token can be bound to it, as kubelet's projected token is. PodSecurity "restricted" (enforced
    # on parley-system) admits it or this fails.
    [deployment] = cluster.load_yaml(BASE / "deployment.yaml")
    template = copy.deepcopy(deployment["spec"]["template"])
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {**template["metadata"], "generateName": "parley-operator-", "namespace": "parley-system"},
           "spec": template["spec"]}
    operator_pod = admin.create("/api/v1/namespaces/parley-system/pods", pod)
    for ns in (APP_NS, "kube-system"):
        if ns != "kube-system":
            admin.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        admin.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}})
    admin.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "echo-app", "namespace": APP_NS}})
    return Installed(admin, webhook_port, operator_pod)


@dataclasses.dataclass
class RunningOperator:
    proc: subprocess.Popen[bytes]
    log: Path
    webhook_port: int
    stream_port: int
    metrics_port: int
    kube: Kube
    """The API as the operator sees it: its own ServiceAccount token."""

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            return str(resp.read().decode())

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def marker_pod(name: str, namespace: str = APP_NS, **annotations: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace,
                         "annotations": {"dapr.io/enabled": "true", "dapr.io/app-id": name, **annotations}},
            "spec": {"containers": [{"name": "app", "image": "registry.test/app:1"}]}}


def is_injected(pod: dict[str, Any]) -> bool:
    return any(c["name"] == "daprd" for c in pod["spec"].get("containers", ()))


@pytest.fixture(scope="session")
def operator(plane: ControlPlane, installed: Installed, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[RunningOperator]:
    admin = installed.admin
    work = tmp_path_factory.mktemp("operator")
    token = admin.token_for("parley-system", "parley-operator", audience="https://kubernetes.default.svc.cluster.local",
                            pod=installed.operator_pod)
    kubeconfig = plane.kubeconfig(work / "kubeconfig", token=token)
    stream_port, metrics_port = cluster.free_port(), cluster.free_port()
    container = installed.operator_pod["spec"]["containers"][0]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "PARLEY_"))}
    env |= {e["name"]: e["value"] for e in container["env"] if "value" in e}
    env |= {"KUBECONFIG": str(kubeconfig), "POD_NAMESPACE": "parley-system",
            "POD_NAME": installed.operator_pod["metadata"]["name"]}
    log = work / "operator.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.envtest.operator_main", str(work), *container.get("args", []),
         "--webhook-port", str(installed.webhook_port), "--stream-port", str(stream_port),
         "--metrics-port", str(metrics_port), "--resync-seconds", "5"],
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    running = RunningOperator(proc, log, installed.webhook_port, stream_port, metrics_port, admin.with_token(token))
    try:
        def ca_bundles_patched() -> bool:
            assert proc.poll() is None, f"operator exited:\n{running.log_tail()}"
            for kind in ("mutatingwebhookconfigurations", "validatingwebhookconfigurations"):
                config = admin.get(f"/apis/admissionregistration.k8s.io/v1/{kind}/parley-operator")
                if not all(h["clientConfig"].get("caBundle") for h in config["webhooks"]):
                    return False
            return True

        cluster.wait_for(ca_bundles_patched, timeout=60, what="operator patched the webhooks' caBundle")

        def injects() -> bool:
            assert proc.poll() is None, f"operator exited:\n{running.log_tail()}"
            pod = admin.create(f"/api/v1/namespaces/{APP_NS}/pods", marker_pod("marker"), params={"dryRun": "All"})
            return is_injected(pod)

        # Webhook configurations reach admission through an informer: wait until one answers.
        cluster.wait_for(injects, timeout=60, interval=0.5, what="the mutating webhook injects")
        yield running
    except BaseException:
        sys.stderr.write(f"--- operator log ---\n{running.log_tail(80)}\n")
        raise
    finally:
        cluster.stop_process(proc, timeout=3)


@pytest.fixture(scope="session")
def injected_pod(operator: RunningOperator, installed: Installed) -> dict[str, Any]:
    """The pod of deploy/kind/app/echo-app.yaml's Deployment, created through the API as its
    ReplicaSet would create it (generateName, no name), in namespace team-a."""
    [_, deployment] = cluster.load_yaml(ROOT / "deploy" / "kind" / "app" / "echo-app.yaml")
    template = copy.deepcopy(deployment["spec"]["template"])
    template["spec"]["serviceAccountName"] = "echo-app"
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {**template["metadata"], "generateName": "echo-app-5f7d8c9b6-", "namespace": APP_NS},
           "spec": template["spec"]}
    created = installed.admin.create(f"/api/v1/namespaces/{APP_NS}/pods", pod)
    assert isinstance(created, dict)
    return created


def retry_api(fn: Any, *, attempts: int = 20, delay: float = 0.25) -> Any:
    for i in range(attempts):
        try:
            return fn()
        except ApiError as exc:
            if exc.status < 500 or i == attempts - 1:
                raise
            time.sleep(delay)
    return None
