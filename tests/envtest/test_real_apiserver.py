"""parley against a real Kubernetes API server: what a user sees after `kubectl apply`.

One kube-apiserver + etcd for the module (conftest.py); parley-operator runs as a subprocess with
deploy/'s RBAC and a pod-bound ServiceAccount token. Pods are stored, never started.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import aiohttp
import pytest

from parley_sidecar.settings import OperatorLink
from tests.conftest import StartSidecar
from tests.envtest import cluster
from tests.envtest.cluster import ApiError, ControlPlane, Kube
from tests.envtest.conftest import APP_NS, BASE, Installed, RunningOperator, is_injected, marker_pod
from tests.k8s import rbac

COMPONENTS = f"/apis/dapr.io/v1alpha1/namespaces/{APP_NS}/components"


def component(name: str, type_: str = "conversation.echo", *, version: str | None = "v1",
              metadata: list[dict[str, Any]] | None = None, **top: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": type_, "metadata": metadata if metadata is not None else []}
    if version is not None:
        spec["version"] = version
    return {"apiVersion": "dapr.io/v1alpha1", "kind": "Component",
            "metadata": {"name": name, "namespace": APP_NS}, "spec": spec, **top}


# -- injection ------------------------------------------------------------------------------------

def test_a_deployments_pod_comes_back_injected(injected_pod: dict[str, Any], installed: Installed) -> None:
    pod = installed.admin.get(f"/api/v1/namespaces/{APP_NS}/pods/{injected_pod['metadata']['name']}")
    names = [c["name"] for c in pod["spec"]["containers"]]
    assert names == ["app", "daprd"]
    daprd = pod["spec"]["containers"][1]
    assert daprd["image"] == "ghcr.io/parley-project/parley-sidecar:0.1.0"  # PARLEY_SIDECAR_IMAGE of deploy/base
    assert "--app-id" in daprd["args"] and daprd["args"][daprd["args"].index("--app-id") + 1] == "echo-app"
    assert pod["metadata"]["labels"]["dapr.io/sidecar-injected"] == "true"
    assert pod["metadata"]["labels"]["dapr.io/app-id"] == "echo-app"
    app_env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert app_env["DAPR_HTTP_PORT"] == "3500" and app_env["DAPR_GRPC_PORT"] == "50001"
    # The sidecar's credentials for the component stream: a projected token for the operator's
    # audience, and the operator's CA — the same CA the operator keeps in its Secret.
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    [token_source] = volumes["parley-operator-token"]["projected"]["sources"]
    assert token_source["serviceAccountToken"]["audience"] == "parley-operator"
    secret = installed.admin.get("/api/v1/namespaces/parley-system/secrets/parley-operator-tls")
    ca_annotations = [v for k, v in pod["metadata"]["annotations"].items() if "ca" in k.split("/")[-1]]
    assert base64.b64decode(secret["data"]["ca.crt"]).decode() in ca_annotations
    assert daprd["securityContext"]["runAsNonRoot"] is True
    assert daprd["securityContext"]["readOnlyRootFilesystem"] is True


def test_injection_is_counted_in_the_operators_metrics(injected_pod: dict[str, Any],
                                                      operator: RunningOperator) -> None:
    text = operator.metrics()
    assert 'dapr_injector_sidecar_injection_succeeded_total{app_id="echo-app"}' in text


def test_pods_without_the_annotation_and_pods_in_kube_system_are_left_alone(installed: Installed,
                                                                            operator: RunningOperator) -> None:
    plain = marker_pod("plain")
    plain["metadata"]["annotations"] = {}
    created = installed.admin.create(f"/api/v1/namespaces/{APP_NS}/pods", plain, params={"dryRun": "All"})
    assert not is_injected(created)
    system = marker_pod("system-app", namespace="kube-system")
    created = installed.admin.create("/api/v1/namespaces/kube-system/pods", system, params={"dryRun": "All"})
    assert not is_injected(created), "the namespaceSelector must keep the webhook out of kube-system"


def test_an_invalid_annotation_is_refused_with_the_injectors_message(installed: Installed,
                                                                     operator: RunningOperator) -> None:
    bad = marker_pod("bad-port", **{"dapr.io/app-port": "http"})
    with pytest.raises(ApiError) as info:
        installed.admin.create(f"/api/v1/namespaces/{APP_NS}/pods", bad, params={"dryRun": "All"})
    assert info.value.status == 400
    assert 'admission webhook "sidecar-injector.parley.io" denied the request' in info.value.message
    assert "dapr.io/app-port" in info.value.message


# -- Components -----------------------------------------------------------------------------------

def test_a_bad_component_is_refused_by_the_validating_webhook(installed: Installed, operator: RunningOperator) -> None:
    with pytest.raises(ApiError) as info:
        installed.admin.create(COMPONENTS, component("typo", "conversation.opanai"))
    assert info.value.status == 400
    message = info.value.message
    assert 'admission webhook "components.parley.io" denied the request' in message
    assert "spec.type: unknown conversation type 'conversation.opanai'" in message
    with pytest.raises(ApiError):
        installed.admin.get(f"{COMPONENTS}/typo")


# Dapr's documented Component shapes (the Dapr docs' component schema and secrets pages, the conversation
# components' pages, daprd's integration tests), as a user would apply them.
DAPR_EXAMPLES = [
    component("echo", metadata=[{"name": "key", "value": "testkey"}]),
    component("openai", "conversation.openai", metadata=[
        {"name": "key", "secretKeyRef": {"name": "openai", "key": "api-key"}},
        {"name": "model", "value": "gpt-4-turbo"}, {"name": "cacheTTL", "value": "10m"}],
        auth={"secretStore": "kubernetes"}),
    component("anthropic", "conversation.anthropic", metadata=[
        {"name": "key", "secretKeyRef": {"name": "anthropic"}},  # key defaults to the Secret's name
        {"name": "model", "value": "claude-3-5-sonnet-20240620"}], scopes=["checkout", "order-processor"]),
    component("ollama", "conversation.ollama", metadata=[{"name": "model", "value": "llama3.2:latest"}],
              ),
    component("from-env", "conversation.openai", metadata=[{"name": "key", "envRef": "OPENAI_API_KEY"}]),
    {**component("statestore", "state.redis", metadata=[
        {"name": "redisHost", "value": "localhost:6379"}, {"name": "redisPassword", "value": ""},
        {"name": "actorStateStore", "value": True}, {"name": "maxRetries", "value": 3},
        {"name": "nested", "value": {"a": [1, "two"]}}]),
     "spec": {"type": "state.redis", "version": "v1", "initTimeout": "1m", "ignoreErrors": True,
              "metadata": [{"name": "redisHost", "value": "localhost:6379"},
                           {"name": "actorStateStore", "value": True}, {"name": "maxRetries", "value": 3},
                           {"name": "nested", "value": {"a": [1, "two"]}}]}},
]


@pytest.mark.parametrize("example", DAPR_EXAMPLES, ids=lambda e: e["metadata"]["name"])
def test_the_crd_accepts_daprs_examples(installed: Installed, operator: RunningOperator,
                                        example: dict[str, Any]) -> None:
    created = installed.admin.create(COMPONENTS, example, params={"dryRun": "All"})
    # Stored as written: nothing pruned, values of any JSON type kept (x-kubernetes-preserve-unknown-fields).
    assert created["spec"] == example["spec"]
    assert created.get("scopes") == example.get("scopes") and created.get("auth") == example.get("auth")


def test_a_component_without_spec_version_is_refused_by_daprs_crd(installed: Installed) -> None:
    # The conversation components' doc pages omit `version`; Dapr's CRD requires it, and so does parley
    # (same CRD): the user sees the API server's schema error, before any webhook.
    with pytest.raises(ApiError) as info:
        installed.admin.create(COMPONENTS, component("no-version", version=None), params={"dryRun": "All"})
    assert info.value.status == 422
    assert "spec.version: Required value" in info.value.message


# -- identity and delivery ------------------------------------------------------------------------

def test_tokenreview_of_a_projected_token_identifies_the_pod(installed: Installed, operator: RunningOperator,
                                                            injected_pod: dict[str, Any]) -> None:
    token = installed.admin.token_for(APP_NS, "echo-app", audience="parley-operator", pod=injected_pod)
    # Reviewed with the operator's own credentials: its ClusterRole must allow exactly this.
    review = operator.kube.create("/apis/authentication.k8s.io/v1/tokenreviews", {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": {"token": token, "audiences": ["parley-operator"]}})
    status = review["status"]
    assert status["authenticated"] is True and status["audiences"] == ["parley-operator"]
    user = status["user"]
    assert user["username"] == f"system:serviceaccount:{APP_NS}:echo-app"
    assert user["extra"]["authentication.kubernetes.io/pod-name"] == [injected_pod["metadata"]["name"]]
    assert user["extra"]["authentication.kubernetes.io/pod-uid"] == [injected_pod["metadata"]["uid"]]
    wrong = operator.kube.create("/apis/authentication.k8s.io/v1/tokenreviews", {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": {"token": token, "audiences": ["someone-else"]}})
    assert wrong["status"].get("authenticated") is not True


async def _wait_components(session: aiohttp.ClientSession, url: str, want: set[str], timeout: float = 20) -> set[str]:
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    names: set[str] = set()
    while time.monotonic() < deadline:
        async with session.get(url + "/v1.0/metadata") as resp:
            names = {c["name"] for c in (await resp.json()).get("components", ())}
        if names == want:
            return names
        await asyncio.sleep(0.2)
    raise AssertionError(f"sidecar components {sorted(names)} never became {sorted(want)}")


async def test_a_sidecar_with_the_pods_token_receives_its_components(
        installed: Installed, operator: RunningOperator, injected_pod: dict[str, Any],
        start_sidecar: StartSidecar, tmp_path: Any) -> None:
    admin = installed.admin
    admin.apply(component("echo", metadata=[{"name": "key", "value": "testkey"}]))
    admin.apply(component("only-checkout", scopes=["checkout"]))
    # The files kubelet would mount into the daprd container: the projected token and the CA from
    # the pod's annotation (downward API), exactly as injected.
    token = admin.token_for(APP_NS, "echo-app", audience="parley-operator", pod=injected_pod)
    (tmp_path / "token").write_text(token)
    pod = admin.get(f"/api/v1/namespaces/{APP_NS}/pods/{injected_pod['metadata']['name']}")
    [ca_item] = next(v for v in pod["spec"]["volumes"] if v["name"] == "parley-operator-ca")["downwardAPI"]["items"]
    annotation = ca_item["fieldRef"]["fieldPath"].split("['", 1)[1].rstrip("']")
    (tmp_path / "ca.crt").write_text(pod["metadata"]["annotations"][annotation])
    link = OperatorLink(address=f"127.0.0.1:{operator.stream_port}", token_path=tmp_path / "token",
                        ca_path=tmp_path / "ca.crt", namespace=APP_NS)
    running = await start_sidecar({}, app_id="echo-app", namespace=APP_NS, operator=link)
    # Scoped to another app: not delivered. Unscoped echo: delivered and served.
    await _wait_components(running.session, running.public, {"echo"})
    status, body = await running.post("/v1.0-alpha1/conversation/echo/converse",
                                      {"inputs": [{"content": "hello from team-a"}]})
    assert (status, body) == (200, {"outputs": [{"result": "hello from team-a"}]})
    # A Component change reaches the running sidecar: a new one appears, a deleted one goes.
    admin.apply(component("echo-two"))
    await _wait_components(running.session, running.public, {"echo", "echo-two"})
    admin.delete(f"{COMPONENTS}/echo-two")
    await _wait_components(running.session, running.public, {"echo"})


async def test_a_token_for_another_audience_gets_no_components(installed: Installed, operator: RunningOperator,
                                                              injected_pod: dict[str, Any]) -> None:
    import ssl

    token = installed.admin.token_for(APP_NS, "echo-app", audience="https://kubernetes.default.svc.cluster.local",
                                      pod=injected_pod)
    secret = installed.admin.get("/api/v1/namespaces/parley-system/secrets/parley-operator-tls")
    ctx = ssl.create_default_context(cadata=base64.b64decode(secret["data"]["ca.crt"]).decode())
    async with aiohttp.ClientSession() as session, session.get(
            f"https://127.0.0.1:{operator.stream_port}/v1/stream", ssl=ctx,
            headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 401
        assert "unauthenticated" in json.loads(await resp.text())["error"]


# -- RBAC, last: it reads what the operator did during the tests above -----------------------------

def _call_of(event: dict[str, Any]) -> rbac.Call:
    ref = event.get("objectRef") or {}
    resource = ref.get("resource", "") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
    return rbac.Call(event["verb"], ref.get("apiGroup", ""), resource, ref.get("namespace"), ref.get("name"),
                     where=event.get("requestURI", ""))


def test_everything_the_operator_did_was_allowed_by_deploys_rbac(plane: ControlPlane, operator: RunningOperator,
                                                                 admin: Kube) -> None:
    # Watches are long-running: audited at ResponseStarted; everything else at ResponseComplete.
    events = [e for e in plane.audit_events() if e.get("user", {}).get("username") == cluster.OPERATOR_USER
              and e.get("stage") in ("ResponseStarted", "ResponseComplete")]
    assert events, "no audited requests from parley-operator"
    denied = [e["requestURI"] for e in events if e.get("responseStatus", {}).get("code") == 403]
    assert not denied, f"the API server refused the operator: {denied}"
    objects = cluster.load_yaml(BASE / "rbac.yaml")
    calls = [_call_of(e) for e in events if e.get("objectRef")]
    unexplained = sorted({str(c) for c in calls if not rbac.allowed(objects, c)})
    assert not unexplained, f"calls the static RBAC model does not explain: {unexplained}"
    seen = {(c.verb, c.group, c.resource) for c in calls}
    for expected in [("list", "dapr.io", "components"), ("watch", "dapr.io", "components"),
                     ("list", "", "pods"), ("watch", "", "pods"),
                     ("create", "authentication.k8s.io", "tokenreviews"),
                     ("create", "", "secrets"), ("get", "", "secrets"),
                     ("patch", "admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
                     ("patch", "admissionregistration.k8s.io", "validatingwebhookconfigurations")]:
        assert expected in seen, f"expected the operator to {expected}; it made {sorted(seen)}"
    declared = {(c.verb, c.group, c.resource) for c in rbac.OPERATOR_CALLS}
    assert seen <= declared, f"calls missing from tests/k8s/rbac.py OPERATOR_CALLS: {seen - declared}"
