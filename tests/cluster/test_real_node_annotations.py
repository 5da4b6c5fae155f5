"""The Dapr annotations of issue #15 item 5 on real pods: what the injector made of them, and what the
sidecar does with them under a real kubelet (SIGTERM, Secrets, volumes, the pod's loopback).

Runs after ``test_real_node.py`` (file order) and reuses its helpers; on its own it installs what it
needs. ``manifests/annotations.yaml`` holds the annotated app and a fake OpenAI that answers after
20 s: an LLM call long enough to be in flight when the pod is deleted, as a rollout deletes it.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest

from tests.cluster import measured
from tests.cluster.test_real_node import HERE, KUBECTL, MANIFESTS, ROOT, both_ready, get, in_pod, kubectl, live_pods
from tests.envtest.cluster import wait_for

NS = "parley-annot"
APP = "annotated-app"
SLOW_CALL = 20.0
"""Seconds the slow fake takes to answer (FAKE_DELAY in the manifest)."""


def ready_pod() -> dict[str, Any]:
    pods = [p for p in live_pods(NS, APP) if both_ready(p)]
    return pods[0] if len(pods) == 1 else {}


def in_sidecar(pod: str, code: str) -> subprocess.CompletedProcess[str]:
    """Python run in the pod's daprd container (the sidecar image has it)."""
    return subprocess.run([KUBECTL, "-n", NS, "exec", pod, "-c", "daprd", "--", "python3", "-c", code],
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def annotated() -> dict[str, Any]:
    # What test_real_node's `installed` sets up, again (each step is idempotent), for a run of this file alone.
    fakes = [f"--from-file={p}" for p in sorted((ROOT / "tests" / "fakes").glob("*.py"))]
    kubectl("apply", "-f", str(MANIFESTS / "fake-openai.yaml"))
    kubectl("apply", "-f", "-", input=kubectl("-n", "parley-fakes", "create", "configmap", "fakes", *fakes,
                                                 f"--from-file={HERE / 'fake_openai_pod.py'}",
                                                 "--dry-run=client", "-o", "yaml"))
    kubectl("apply", "--server-side", "-f", str(ROOT / "crds" / "components.yaml"))
    kubectl("wait", "--for=condition=Established", "crd/components.dapr.io", "--timeout=60s")
    kubectl("apply", "-k", str(MANIFESTS / "parley"))
    kubectl("-n", "parley-system", "rollout", "status", "deploy/parley-operator", "--timeout=240s", timeout=260)
    kubectl("apply", "-f", str(MANIFESTS / "annotations.yaml"))
    kubectl("-n", "parley-fakes", "rollout", "status", "deploy/slow-openai", "--timeout=120s", timeout=140)
    return dict(wait_for(ready_pod, timeout=180, what=f"{APP}'s app and daprd containers Ready", interval=0.5))


def test_the_injector_turned_the_annotations_into_flags_env_volumes_and_a_grace_period(
    annotated: dict[str, Any],
) -> None:
    spec = annotated["spec"]
    assert spec["terminationGracePeriodSeconds"] == 30 + 5  # graceful-shutdown-seconds + the margin
    daprd = next(c for c in spec["containers"] if c["name"] == "daprd")
    args = daprd["args"]
    assert args[args.index("--dapr-graceful-shutdown-seconds") + 1] == "30"
    assert args[args.index("--dapr-listen-addresses") + 1] == "[::1],127.0.0.1"
    assert "--enable-api-logging=true" in args
    env = {e["name"]: e for e in daprd["env"]}
    assert env["OPENAI_API_KEY"] == {"name": "OPENAI_API_KEY",
                                     "valueFrom": {"secretKeyRef": {"name": "llm-keys", "key": "openai-key"}}}
    assert env["PLAIN_TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": "plain-token", "key": "plain-token"}}
    mounts = {m["name"]: m for m in daprd["volumeMounts"]}
    assert (mounts["corp-ca"]["mountPath"], mounts["corp-ca"].get("readOnly")) == ("/etc/corp-ca", True)
    assert (mounts["scratch"]["mountPath"], mounts["scratch"].get("readOnly", False)) == ("/var/scratch", False)


def test_kubectl_describe_names_the_annotation_parley_ignores(annotated: dict[str, Any]) -> None:
    name = annotated["metadata"]["name"]

    def warning() -> str:
        out = kubectl("-n", NS, "describe", "pod", name)
        return out if "AnnotationsIgnored" in out else ""

    described = wait_for(warning, timeout=30, what="the AnnotationsIgnored Event")
    assert "parley's sidecar does not act on dapr.io/app-protocol" in described
    assert "grpc" not in described.split("AnnotationsIgnored", 1)[1].splitlines()[0]  # names, not values


def test_env_from_secret_gives_the_sidecar_the_secrets_values(annotated: dict[str, Any]) -> None:
    # Compared inside the container, so no secret value is printed by the test.
    checked = in_sidecar(annotated["metadata"]["name"], (
        "import os, sys; sys.exit(0 if os.environ.get('OPENAI_API_KEY') == 'sk-node-tier-0123456789' "
        "and os.environ.get('PLAIN_TOKEN') == 'token-from-a-secret' else 3)"))
    assert checked.returncode == 0, checked.stderr


def test_volume_mounts_put_the_pods_volumes_into_the_sidecar_read_only_and_read_write(
    annotated: dict[str, Any],
) -> None:
    name = annotated["metadata"]["name"]
    read = in_sidecar(name, "print(open('/etc/corp-ca/bundle.pem').read(), end='')")
    assert (read.returncode, read.stdout) == (0, "a CA bundle the sidecar reads\n"), read.stderr
    refused = in_sidecar(name, "open('/etc/corp-ca/new', 'w')")
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr, refused.stderr
    wrote = in_sidecar(name, "open('/var/scratch/from-sidecar', 'w').write('written by the sidecar')")
    assert wrote.returncode == 0, wrote.stderr
    # The app container mounts the same emptyDir: it sees what the sidecar wrote.
    seen = kubectl("-n", NS, "exec", name, "-c", "app", "--", "cat", "/var/scratch/from-sidecar")
    assert seen == "written by the sidecar"


def test_the_api_answers_on_ipv6_and_ipv4_loopback(annotated: dict[str, Any]) -> None:
    name = annotated["metadata"]["name"]
    has_v6 = in_sidecar(name, "import socket; socket.socket(socket.AF_INET6).bind(('::1', 0))")
    if has_v6.returncode != 0:
        pytest.skip(f"this node's pods have no IPv6 loopback: {has_v6.stderr.strip().splitlines()[-1]}")
    for host in ("[::1]", "127.0.0.1"):
        assert in_pod(NS, name, "get", f"http://{host}:3500/v1.0/healthz") == {"status": 204, "body": ""}, host
    # The gRPC API too: GetMetadata over [::1] names the app.
    out = subprocess.run([KUBECTL, "-n", NS, "exec", name, "-c", "app", "--", "python3", "-c", (
        "import grpc\n"
        "from parley_sidecar.dapr_proto import metadata_pb2\n"  # the image has parley's messages, not the SDK
        "with grpc.insecure_channel('[::1]:50001') as ch:\n"
        "    get = ch.unary_unary('/dapr.proto.runtime.v1.Dapr/GetMetadata',\n"
        "                         request_serializer=metadata_pb2.GetMetadataRequest.SerializeToString,\n"
        "                         response_deserializer=metadata_pb2.GetMetadataResponse.FromString)\n"
        "    print(get(metadata_pb2.GetMetadataRequest(), timeout=10).id)\n")],
        capture_output=True, text=True, timeout=60, check=False)
    assert out.stdout.strip() == APP, out.stderr


def test_an_in_flight_llm_call_finishes_when_its_pod_is_deleted_as_a_rollout_does(
    annotated: dict[str, Any],
) -> None:
    pod = ready_pod()
    name = pod["metadata"]["name"]
    # The app starts a 20 s call, then the pod is deleted: both containers get SIGTERM at once.
    call = subprocess.Popen(
        [KUBECTL, "-n", NS, "exec", "-i", name, "-c", "app", "--", "python3", "-", "converse", "http-alpha1",
         "slow", "a long answer"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert call.stdin is not None
    call.stdin.write((HERE / "in_pod.py").read_text())
    call.stdin.close()
    time.sleep(3.0)  # the exec starts and the call reaches the slow provider (it takes 20 s there)
    assert call.poll() is None, "the call ended before the pod was deleted"
    deleted = time.monotonic()
    kubectl("-n", NS, "delete", "pod", name, "--wait=false")
    # The terminating pod's sidecar refuses new connections at once …
    def new_connection_refused() -> dict[str, Any] | None:
        answer: dict[str, Any] = in_pod(NS, name, "get", "http://127.0.0.1:3500/v1.0/healthz")
        return answer if answer["status"] == 0 else None

    refused = wait_for(new_connection_refused, timeout=15, what="new connections refused")
    assert "refused" in refused["body"].lower(), refused
    # … and the call in flight gets its answer, long after the 5 s daprd would have given it.
    call.wait(timeout=60)
    answered = time.monotonic() - deleted
    assert call.stdout is not None and call.stderr is not None
    out, err = call.stdout.read(), call.stderr.read()
    assert call.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1]) == {
        "status": 200, "body": {"outputs": [{"result": "echo: a long answer"}]}}
    measured.FIGURES["in-flight 20 s LLM call answered after its pod's deletion"] = f"{answered:.1f} s"
    assert answered > 5.0  # it outlived daprd's default grace period: graceful-shutdown-seconds did it
    # The Deployment's replacement serves.
    fresh = wait_for(ready_pod, timeout=120, what="the replacement pod Ready", interval=0.5)
    assert fresh["metadata"]["name"] != name
    assert in_pod(NS, fresh["metadata"]["name"], "get", "http://127.0.0.1:3500/v1.0/healthz")["status"] == 204
    assert get("deploy", "-n", NS, APP)["status"].get("readyReplicas") == 1
