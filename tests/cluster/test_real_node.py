"""The user's path on a real node: kubectl apply of crds/ and deploy/, Components, an annotated Deployment,
then what the user would check, each against real pods (kubelet, containerd, runc, CNI, kube-proxy, CoreDNS).

Runs inside the node's network namespace (``tests/cluster/run.sh``), so pod IPs are reachable and no
packet can leave the machine. Tests run in file order and build on each other's state, like a user
going down a checklist; figures go to ``tests.cluster.measured``.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.cluster import measured
from tests.envtest.cluster import wait_for
from tests.manifests import component_yaml

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
MANIFESTS = HERE / "manifests"
KUBECTL = os.environ.get("PARLEY_KUBECTL", "kubectl")
APP_NS, OTHER_NS, FANOUT_NS = "parley-app", "parley-other", "parley-fanout"


def kubectl(*argv: str, input: str | None = None, check: bool = True, timeout: float = 120) -> str:
    out = subprocess.run([KUBECTL, *argv], capture_output=True, text=True, input=input, timeout=timeout, check=False)
    if check and out.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(argv)} failed ({out.returncode}):\n{out.stdout[-2000:]}"
                             f"\n{out.stderr[-3000:]}")
    return out.stdout


def get(*argv: str) -> Any:
    return json.loads(kubectl("get", *argv, "-o", "json"))


def live_pods(namespace: str, app: str) -> list[dict[str, Any]]:
    pods = get("pods", "-n", namespace, "-l", f"app={app}")["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def both_ready(pod: dict[str, Any]) -> bool:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return len(statuses) == 2 and all(s["ready"] for s in statuses)


def the_pod(namespace: str, app: str) -> dict[str, Any]:
    pods = live_pods(namespace, app)
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    return pods[0]


def in_pod(namespace: str, pod: str, *args: str) -> Any:
    """tests/cluster/in_pod.py run by the app container's Python: a call from inside the user's app."""
    out = kubectl("-n", namespace, "exec", "-i", pod, "-c", "app", "--", "python3", "-", *args,
                  input=(HERE / "in_pod.py").read_text(), timeout=60)
    return json.loads(out.strip().splitlines()[-1])


def components_of(namespace: str, pod: str) -> set[str]:
    return {c["name"] for c in in_pod(namespace, pod, "metadata").get("components", ())}


def log_time(line: str) -> float:
    """The CRI timestamp kubelet puts before each line (``kubectl logs --timestamps``): when it was written."""
    stamp = line.split(" ", 1)[0]
    whole, _, frac = stamp.rstrip("Z").partition(".")
    base = datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.UTC).timestamp()
    return base + (float("0." + frac) if frac else 0.0)


def sidecar_log_times(namespace: str, selector: str, needle: str, since: float) -> dict[str, float]:
    """Per pod, when its daprd container first logged a line containing ``needle`` at or after ``since``."""
    out = kubectl("-n", namespace, "logs", "-l", selector, "-c", "daprd", "--timestamps", "--prefix",
                  "--tail=-1", "--max-log-requests=100", timeout=60)
    seen: dict[str, float] = {}
    for line in out.splitlines():
        match = re.match(r"\[pod/([^/]+)/daprd\] (\S+ .*)", line)
        if match and needle in match.group(2) and match.group(1) not in seen and log_time(match.group(2)) >= since:
            seen[match.group(1)] = log_time(match.group(2))
    return seen


def restarts(pod: dict[str, Any]) -> dict[str, int]:
    return {s["name"]: s["restartCount"] for s in pod["status"]["containerStatuses"]}


# -- installing, as a user would ------------------------------------------------------------------

@pytest.fixture(scope="module")
def installed() -> None:
    fakes = [f"--from-file={p}" for p in sorted((ROOT / "tests" / "fakes").glob("*.py"))]
    kubectl("apply", "-f", str(MANIFESTS / "fake-openai.yaml"))
    kubectl("apply", "-f", "-", input=kubectl("-n", "parley-fakes", "create", "configmap", "fakes", *fakes,
                                                 f"--from-file={HERE / 'fake_openai_pod.py'}",
                                                 "--dry-run=client", "-o", "yaml"))
    kubectl("apply", "--server-side", "-f", str(ROOT / "crds" / "components.yaml"))
    kubectl("wait", "--for=condition=Established", "crd/components.dapr.io", "--timeout=60s")
    started = time.monotonic()
    kubectl("apply", "-k", str(MANIFESTS / "parley"))
    kubectl("-n", "parley-system", "rollout", "status", "deploy/parley-operator", "--timeout=240s", timeout=260)

    def injects() -> bool:
        # A server-side dry run goes through admission: the webhook answers before the app exists.
        out = kubectl("-n", "default", "run", "probe", "--image=parley-sidecar:node", "--dry-run=server",
                      "--annotations=dapr.io/enabled=true", "--annotations=dapr.io/app-id=probe", "-o", "json",
                      check=False)
        return bool(out) and any(c["name"] == "daprd" for c in json.loads(out)["spec"]["containers"])

    wait_for(injects, timeout=120, what="the mutating webhook injects")
    measured.FIGURES["operator: kubectl apply -k to webhook injecting"] = f"{time.monotonic() - started:.1f} s"
    kubectl("-n", "parley-fakes", "rollout", "status", "deploy/fake-openai", "--timeout=120s", timeout=140)

    started = time.monotonic()
    kubectl("apply", "-f", str(MANIFESTS / "app.yaml"))
    wait_for(lambda: [p for p in live_pods(APP_NS, "chat-app") if both_ready(p)], timeout=180,
             what="chat-app's app and daprd containers Ready", interval=0.1)
    measured.FIGURES["app: kubectl apply to both containers Ready"] = f"{time.monotonic() - started:.1f} s"
    kubectl("apply", "-f", str(MANIFESTS / "other.yaml"))
    wait_for(lambda: [p for p in live_pods(OTHER_NS, "other-app") if both_ready(p)], timeout=180,
             what="other-app Ready")


# -- the checklist --------------------------------------------------------------------------------

def test_the_operator_runs_as_a_pod_under_its_own_service_account(installed: None) -> None:
    pods = get("pods", "-n", "parley-system", "-l", "app.kubernetes.io/name=parley-operator")["items"]
    assert len(pods) == 1
    assert pods[0]["spec"]["serviceAccountName"] == "parley-operator"
    assert all(s["ready"] for s in pods[0]["status"]["containerStatuses"])


def test_the_app_pod_gets_the_daprd_container_and_both_become_ready(installed: None) -> None:
    pod = the_pod(APP_NS, "chat-app")
    assert [c["name"] for c in pod["spec"]["containers"]] == ["app", "daprd"]
    daprd = pod["spec"]["containers"][1]
    assert daprd["image"] == "parley-sidecar:node"
    assert daprd["resources"]["limits"]["memory"] == "256Mi"
    assert both_ready(pod)
    assert pod["metadata"]["labels"]["dapr.io/sidecar-injected"] == "true"


@pytest.mark.parametrize("api", ["http-alpha1", "http-alpha2", "grpc-alpha1", "grpc-alpha2"])
def test_a_converse_call_from_inside_the_app_container_answers(installed: None, api: str) -> None:
    pod = the_pod(APP_NS, "chat-app")["metadata"]["name"]
    answer = in_pod(APP_NS, pod, "converse", api, "echo", f"hello over {api}")
    text = f"hello over {api}"
    expected: Any = {"http-alpha1": {"outputs": [{"result": text}]}, "grpc-alpha1": [text]}.get(api, text)
    assert answer == {"status": 200, "body": expected}


@pytest.mark.parametrize("api", ["http-alpha2", "grpc-alpha1"])
def test_the_openai_component_reaches_its_provider_through_a_service_with_the_secrets_key(
        installed: None, api: str) -> None:
    # The fake answers 401 to any other key, and "echo: <last user message>" to the right one: the
    # answer proves the Secret was resolved, the Service name resolved through cluster DNS and the
    # ClusterIP routed by kube-proxy to the fake's pod.
    pod = the_pod(APP_NS, "chat-app")["metadata"]["name"]
    answer = in_pod(APP_NS, pod, "converse", api, "openai", "hello provider")
    expected: Any = ["echo: hello provider"] if api == "grpc-alpha1" else "echo: hello provider"
    assert answer == {"status": 200, "body": expected}


def test_a_component_change_reaches_the_running_sidecar_within_2s_without_a_restart(installed: None) -> None:
    pod = the_pod(APP_NS, "chat-app")
    name = pod["metadata"]["name"]
    before = restarts(pod)
    applied = time.time()
    kubectl("apply", "-f", "-", input=component_yaml("echo-two", namespace=APP_NS))
    seen = wait_for(lambda: sidecar_log_times(APP_NS, "app=chat-app", "loaded component 'echo-two'", applied),
                    timeout=30, what="echo-two reaches the sidecar")
    delay = seen[name] - applied
    measured.FIGURES["component change: apply to loaded in the running sidecar"] = f"{delay:.2f} s"
    assert delay < 2.0, f"took {delay:.2f} s"
    assert in_pod(APP_NS, name, "converse", "http-alpha1", "echo-two", "hot") == {
        "status": 200, "body": {"outputs": [{"result": "hot"}]}}
    # A change to an existing Component, then its removal, reach it too.
    kubectl("apply", "-f", "-", input=component_yaml("echo-two", metadata={"cacheTTL": "5m"}, namespace=APP_NS))
    wait_for(lambda: sidecar_log_times(APP_NS, "app=chat-app", "updated component 'echo-two'", applied), timeout=30,
             what="the update reaches the sidecar")
    kubectl("-n", APP_NS, "delete", "component", "echo-two")
    wait_for(lambda: "echo-two" not in components_of(APP_NS, name), timeout=30, what="echo-two leaves the sidecar")
    assert restarts(the_pod(APP_NS, "chat-app")) == before, "a Component change must not restart the pod"


def test_a_component_that_fails_validation_is_refused_by_kubectl_apply_with_its_message(installed: None) -> None:
    bad = (f"apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: broken\n  namespace: {APP_NS}\n"
           "spec:\n  type: conversation.openai\n  version: v1\n  metadata:\n"
           "  - name: key\n    value: sk-x\n  - name: apiType\n    value: banana\n")
    out = subprocess.run([KUBECTL, "apply", "-f", "-"], input=bad, capture_output=True, text=True, timeout=60,
                         check=False)
    assert out.returncode != 0, out.stdout
    # The message names the field and what it accepts, never the value (a value may be a secret).
    assert "denied the request" in out.stderr, out.stderr
    assert "field 'apiType': must be one of open_ai, azure" in out.stderr and "banana" not in out.stderr, out.stderr
    assert kubectl("-n", APP_NS, "get", "component", "broken", "--ignore-not-found", "-o", "name") == ""


def test_a_pod_in_another_namespace_never_receives_it(installed: None) -> None:
    kubectl("apply", "-f", "-", input=component_yaml("app-only", namespace=APP_NS))
    app_pod = the_pod(APP_NS, "chat-app")["metadata"]["name"]
    wait_for(lambda: "app-only" in components_of(APP_NS, app_pod), timeout=30, what="app-only reaches chat-app")
    other = the_pod(OTHER_NS, "other-app")["metadata"]["name"]
    assert components_of(OTHER_NS, other) == {"other-echo"}
    assert in_pod(OTHER_NS, other, "converse", "http-alpha1", "app-only", "x")["status"] in (400, 404)
    logs = kubectl("-n", OTHER_NS, "logs", other, "-c", "daprd", "--tail=-1")
    for foreign in ("app-only", "'echo'", "'openai'", "echo-two"):
        assert foreign not in logs
    kubectl("-n", APP_NS, "delete", "component", "app-only")


def test_the_sidecar_keeps_serving_without_the_operator_and_the_next_change_arrives(installed: None) -> None:
    app_pod = the_pod(APP_NS, "chat-app")["metadata"]["name"]
    old = get("pods", "-n", "parley-system", "-l", "app.kubernetes.io/name=parley-operator")["items"][0]
    deleted = time.time()
    kubectl("-n", "parley-system", "delete", "pod", old["metadata"]["name"], "--wait=true", timeout=120)
    # The sidecar saw its stream end, and answers from the Components it has while it reconnects.
    wait_for(lambda: sidecar_log_times(APP_NS, "app=chat-app", "component stream from", deleted), timeout=60,
             what="the sidecar notices the operator is gone")
    assert in_pod(APP_NS, app_pod, "converse", "http-alpha1", "echo", "still here") == {
        "status": 200, "body": {"outputs": [{"result": "still here"}]}}
    kubectl("-n", "parley-system", "rollout", "status", "deploy/parley-operator", "--timeout=180s", timeout=200)
    back = time.time()
    kubectl("apply", "-f", "-", input=component_yaml("after-restart", namespace=APP_NS))
    seen = wait_for(lambda: sidecar_log_times(APP_NS, "app=chat-app", "loaded component 'after-restart'", back),
                    timeout=90, what="a change after the operator restart reaches the sidecar", interval=0.5)
    measured.FIGURES["component change after an operator restart (from its rollout done)"] = \
        f"{seen[app_pod] - back:.1f} s"
    assert in_pod(APP_NS, app_pod, "converse", "http-alpha1", "after-restart", "back") == {
        "status": 200, "body": {"outputs": [{"result": "back"}]}}
    kubectl("-n", APP_NS, "delete", "component", "after-restart")


def test_prometheus_text_is_scrapeable_from_the_sidecars_metrics_port_through_the_pod_ip(installed: None) -> None:
    pod = the_pod(APP_NS, "chat-app")
    notes = pod["metadata"]["annotations"]
    assert notes["prometheus.io/scrape"] == "true"
    url = f"http://{pod['status']['podIP']}:{notes['prometheus.io/port']}{notes.get('prometheus.io/path', '/')}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    calls = {(s.labels["component"], s.labels["success"]): s.value
             for family in text_string_to_metric_families(text) if family.name == "dapr_component_conversation_count"
             for s in family.samples if s.name.startswith("dapr_component_conversation_count")}
    assert calls.get(("echo", "true"), 0) >= 5  # the calls the tests above made
    assert calls.get(("openai", "true"), 0) >= 2


def test_kubectl_describe_shows_the_events(installed: None) -> None:
    # A Component applied while the sidecar is connected: the operator says it accepted it and that it
    # went out (a sidecar that connects later gets it in its snapshot, which raises no Event per pod).
    applied = time.time()
    kubectl("apply", "-f", "-", input=component_yaml("described", namespace=APP_NS))
    wait_for(lambda: sidecar_log_times(APP_NS, "app=chat-app", "loaded component 'described'", applied), timeout=30,
             what="described reaches the sidecar")

    def described() -> str:
        out = kubectl("-n", APP_NS, "describe", "component", "described")
        return out if "Delivered" in out else ""

    component = wait_for(described, timeout=30, what="the Delivered Event")
    assert re.search(r"Normal\s+Accepted\s+.*parley-operator\s+valid conversation.echo component", component), component
    assert re.search(r"Normal\s+Delivered\s+.*parley-operator\s+delivered to 1 sidecar\(s\)", component), component
    kubectl("-n", APP_NS, "delete", "component", "described")
    pod = kubectl("-n", APP_NS, "describe", "pod", the_pod(APP_NS, "chat-app")["metadata"]["name"])
    assert re.search(r"Normal\s+Started\s+.*kubelet\s+Started container daprd", pod), pod


def test_the_sidecars_memory_in_its_pod_cgroup(installed: None, node_dir: Path) -> None:
    pod = the_pod(APP_NS, "chat-app")
    daprd = next(s for s in pod["status"]["containerStatuses"] if s["name"] == "daprd")
    container_id = daprd["containerID"].split("://", 1)[1]
    found = list(Path("/sys/fs/cgroup/memory/parley-node").rglob(container_id))
    assert len(found) == 1, found
    stat = dict(line.split() for line in (found[0] / "memory.stat").read_text().splitlines())
    limit = int((found[0] / "memory.limit_in_bytes").read_text())
    assert limit == 256 * 1024 * 1024  # the dapr.io/sidecar-memory-limit annotation, enforced by the kernel
    rss_mib = int(stat["total_rss"]) / 2**20
    usage_mib = int((found[0] / "memory.usage_in_bytes").read_text()) / 2**20
    measured.FIGURES["sidecar memory in its cgroup (rss / usage incl. page cache)"] = \
        f"{rss_mib:.1f} MiB / {usage_mib:.1f} MiB"
    assert 10 < rss_mib < 256


@pytest.mark.parametrize("replicas", [1, 10, 50])
def test_a_component_change_reaches_every_pod_of_a_deployment(installed: None, replicas: int) -> None:
    kubectl("apply", "-f", str(MANIFESTS / "fanout.yaml"))
    kubectl("-n", FANOUT_NS, "scale", "deploy/fanout", f"--replicas={replicas}")

    def all_ready() -> list[dict[str, Any]]:
        pods = live_pods(FANOUT_NS, "fanout")
        return pods if len(pods) == replicas and all(both_ready(p) for p in pods) else []

    ready = wait_for(all_ready, timeout=60 + 6 * replicas, what=f"{replicas} fanout pods Ready", interval=1)
    names = {p["metadata"]["name"] for p in ready}
    component = f"change-{replicas}"
    applied = time.time()
    kubectl("apply", "-f", "-", input=component_yaml(component, namespace=FANOUT_NS))

    def everywhere() -> dict[str, float]:
        seen = sidecar_log_times(FANOUT_NS, "app=fanout", f"loaded component '{component}'", applied)
        return seen if names <= seen.keys() else {}

    seen = wait_for(everywhere, timeout=60, what=f"{component} reaches all {replicas} sidecars", interval=1)
    delays = sorted(seen[n] - applied for n in names)
    measured.FIGURES[f"component change to {replicas} pod(s): first / median / last"] = \
        f"{delays[0]:.2f} / {delays[len(delays) // 2]:.2f} / {delays[-1]:.2f} s"
    kubectl("-n", FANOUT_NS, "delete", "component", component)
