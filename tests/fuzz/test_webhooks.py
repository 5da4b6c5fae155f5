"""Fuzz of the operator's admission webhooks (``/validate`` and ``/mutate``) over real TLS.

The API server sends an AdmissionReview and needs an AdmissionReview back: a 5xx (or a dropped
connection) makes it apply the webhook's failurePolicy, which lets a broken Component in or keeps
every pod out. So for any body: 200 with an AdmissionReview (``response.uid`` echoing
``request.uid``, ``allowed`` a boolean), or a 4xx for a body that is no AdmissionReview at all
(kopf's webhook server answers 400 for such bodies, 404/409 for a resource it does not know).
Well-formed reviews get the decisions docs/operator.md describes: a conversation Component with
an unknown type or a metadata item without a name is denied; a pod without
``dapr.io/enabled: "true"`` passes unpatched; a pod that asks for Dapr gets a JSON Patch that
applies and adds the ``daprd`` container.
"""

from __future__ import annotations

import base64
import contextlib
import json
import ssl
import string
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonpatch
import kmock as kmock_lib
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz import strategies as fs
from tests.fuzz.conftest import Host, HttpClient, examples

COMPONENTS = "dapr.io/v1alpha1/components"
VERSIONS = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")
POD = {"group": "", "version": "v1", "resource": "pods"}
COMPONENT = {"group": "dapr.io", "version": "v1alpha1", "resource": "components"}
KINDS = {"pods": {"group": "", "version": "v1", "kind": "Pod"},
         "components": {"group": "dapr.io", "version": "v1alpha1", "kind": "Component"}}
CONVERSATION_TYPES = ["conversation.echo", "conversation.openai", "conversation.anthropic", "conversation.mistral",
                      "conversation.ollama", "conversation.huggingface", "conversation.deepseek",
                      "conversation.googleai", "conversation.aws.bedrock"]


@pytest.fixture(scope="module")
def webhooks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpClient]:
    """The real operator (kopf, webhooks, certificates) against kmock's Kubernetes emulator, once per module."""
    from tests.operator.conftest import Cluster, RunningOperator, operator_settings

    host = Host("fuzz-operator")
    stack = contextlib.AsyncExitStack()

    async def start() -> RunningOperator:
        emulator = await stack.enter_async_context(kmock_lib.KubernetesEmulator())
        await stack.enter_async_context(kmock_lib.Server(emulator))
        emulator.resources.load_bundled()
        emulator.resources[COMPONENTS] = kmock_lib.ResourceInfo(
            kind="Component", singular="component", namespaced=True,
            verbs={"list", "watch", "get", "create", "patch", "delete"})
        cluster = Cluster(emulator)
        emulator["post /apis/authentication.k8s.io/v1/tokenreviews"] << cluster.tokens.review
        op = RunningOperator(operator_settings(Path(tmp_path_factory.mktemp("fuzz-operator"))), cluster.url)
        stack.push_async_callback(op.stop)
        return await op.start()

    async def stop() -> None:
        await stack.aclose()

    try:
        op = host.run(start())
        url = op.op.webhook.url
        assert url is not None
        port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
        client = HttpClient("127.0.0.1", port, context=ssl.create_default_context(cadata=op.ca_pem))
        try:
            yield client
        finally:
            client.close()
    finally:
        host.run(stop())
        host.close()


pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

# -- the oracle ------------------------------------------------------------------------------------
def post(client: HttpClient, path: str, body: bytes, method: str = "POST") -> tuple[int, Any]:
    status, ctype, answer = client.request(method, path, body, {"Content-Type": "application/json"})
    why = f"\n  request: {method} {path} {body[:800]!r}\n  answer:  {status} {ctype} {answer[:400]!r}"
    assert status < 500, "a 5xx: the API server applies the failurePolicy" + why
    if status != 200:
        assert status in (400, 404, 405, 409), "an undocumented status" + why
        return status, None
    parsed = json.loads(answer)
    assert isinstance(parsed, dict), "a 200 that is not an AdmissionReview" + why
    response = parsed.get("response")
    assert isinstance(response, dict) and isinstance(response.get("allowed"), bool), \
        "an AdmissionReview without response.allowed" + why
    try:
        sent = json.loads(body)
    except ValueError:
        sent = None
    if isinstance(sent, dict) and sent.get("apiVersion") in VERSIONS and sent.get("kind") == "AdmissionReview":
        # the API server needs its own apiVersion and kind back (v1beta1 from old API servers)
        assert (parsed.get("apiVersion"), parsed.get("kind")) == (sent["apiVersion"], "AdmissionReview"), \
            "the answer's apiVersion/kind are not the request's" + why
        request = sent.get("request")
        if isinstance(request, dict) and isinstance(request.get("uid"), str):
            assert response.get("uid") == request["uid"], "response.uid is not request.uid" + why
    return status, response


def review(obj: Any, *, resource: dict[str, str], operation: str, namespace: str, old: Any = None,
           uid: str | None = None, dry_run: bool = False) -> dict[str, Any]:
    kind = KINDS[resource["resource"]]
    name = obj.get("metadata", {}).get("name", "") if isinstance(obj, dict) and isinstance(
        obj.get("metadata"), dict) else ""
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": uid or str(uuid.uuid4()), "kind": kind, "resource": resource, "requestKind": kind,
        "requestResource": resource, "name": name if isinstance(name, str) else "", "namespace": namespace,
        "operation": operation,
        "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller", "groups": [
            "system:serviceaccounts", "system:authenticated"]},
        "object": obj if operation != "DELETE" else None, "oldObject": obj if operation == "DELETE" else old, "dryRun": dry_run,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}}}


def check_alive(client: HttpClient) -> None:
    obj = {"apiVersion": "dapr.io/v1alpha1", "kind": "Component", "metadata": {"name": "ok"},
           "spec": {"type": "conversation.echo", "version": "v1", "metadata": []}}
    status, response = post(client, "/validate", json.dumps(review(obj, resource=COMPONENT, operation="CREATE",
                                                                   namespace="shop")).encode())
    assert status == 200 and response["allowed"] is True, "the validating webhook stopped answering"


# -- Components ------------------------------------------------------------------------------------
NAMES = st.from_regex(r"\A[a-z][a-z0-9-]{0,20}\Z")
ENTRY = fs.maybe(st.fixed_dictionaries({}, optional={
    "name": fs.maybe(st.sampled_from(["key", "model", "endpoint", "timeout", "responseCacheTTL", "memory",
                                      "scrubPII", "maxRetries", "temperature", "", "nope"]) | fs.HOSTILE_TEXT),
    "value": fs.maybe(st.one_of(fs.HOSTILE_TEXT, st.sampled_from(["10s", "1m", "true", "3", "-1", "http://x:1/v1"]),
                                st.integers(), st.booleans())),
    "secretKeyRef": fs.maybe(st.fixed_dictionaries({}, optional={"name": fs.maybe(NAMES), "key": fs.maybe(NAMES)})),
    "envRef": fs.maybe(st.sampled_from(["", "OPENAI_KEY"])),
}))
SPEC = fs.maybe(st.fixed_dictionaries({"type": fs.maybe(st.one_of(
    st.sampled_from(CONVERSATION_TYPES), st.sampled_from(["conversation.gpt", "Conversation.OpenAI", "state.redis",
                                                          "conversation.", "bindings.http"]), fs.HOSTILE_TEXT))},
    optional={"version": fs.maybe(st.sampled_from(["v1", "v2", "", "alpha"])),
              "metadata": fs.maybe(st.lists(ENTRY, max_size=4)),
              "initTimeout": fs.maybe(st.sampled_from(["5s", "soon", ""])), "ignoreErrors": fs.maybe(st.booleans())}))
COMPONENT_OBJ = st.fixed_dictionaries({"apiVersion": st.just("dapr.io/v1alpha1"), "kind": st.just("Component"),
                                       "metadata": fs.maybe(st.fixed_dictionaries({"name": fs.maybe(NAMES)})),
                                       "spec": SPEC},
                                      optional={"scopes": fs.maybe(st.lists(fs.maybe(NAMES), max_size=3)),
                                                "auth": fs.maybe(st.fixed_dictionaries({"secretStore": fs.maybe(
                                                    st.sampled_from(["kubernetes", "vault", ""]))}))})


def documented_defect(obj: dict[str, Any]) -> str | None:
    """A defect docs/operator.md says the validating webhook refuses, in a conversation Component."""
    spec = obj.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        return None
    ctype = spec["type"].lower()
    if not ctype.startswith("conversation."):
        return None
    if ctype not in CONVERSATION_TYPES:
        return "an unknown spec.type"
    entries = spec.get("metadata")
    for item in entries if isinstance(entries, list) else ():
        if isinstance(item, dict) and (not isinstance(item.get("name"), str) or not item["name"]):
            return "a metadata item without a name"
        if isinstance(item, dict) and isinstance(item.get("secretKeyRef"), dict) and not item["secretKeyRef"].get(
                "name"):
            return "a secretKeyRef without a name"
        if isinstance(item, dict) and item.get("envRef") == "" and "secretKeyRef" not in item:
            return "an empty envRef"
    return None


@examples("webhook_validate")
@given(obj=COMPONENT_OBJ, operation=st.sampled_from(["CREATE", "CREATE", "UPDATE", "DELETE", "CONNECT"]),
       old=st.one_of(st.none(), COMPONENT_OBJ), namespace=st.one_of(NAMES, st.just("")), dry_run=st.booleans())
def test_validate_components(webhooks: HttpClient, obj: dict[str, Any], operation: str, old: Any, namespace: str,
                             dry_run: bool) -> None:
    old = old if operation == "UPDATE" else None  # as the API server sends them
    body = review(obj, resource=COMPONENT, operation=operation, namespace=namespace, old=old, dry_run=dry_run)
    status, response = post(webhooks, "/validate", json.dumps(body).encode())
    assert status == 200, f"a well-formed AdmissionReview answered {status}: {body}"
    defect = documented_defect(obj)
    if operation in ("CREATE", "UPDATE") and defect:
        assert response["allowed"] is False, f"a Component with {defect} was allowed: {obj}"
    if not response["allowed"]:
        message = response.get("status", {}).get("message", "")
        assert isinstance(message, str) and message, f"a denial without its reason: {response}"
        old_ok = old is None or (isinstance(old, dict) and isinstance(old.get("metadata"), dict))
        if defect and old_ok and isinstance(obj.get("metadata"), dict) and isinstance(obj["metadata"].get("name"), str):
            assert message.startswith(f"Component {obj['metadata']['name']!r}: "), f"a denial not naming it: {response}"


# -- Pods ------------------------------------------------------------------------------------------
ANNOTATION_VALUES = st.one_of(st.sampled_from(["true", "TRUE", "false", "", "1", "3500", "http", "grpc", "info",
                                               "debug", "100m", "64Mi", "-1", "app", "yes"]), fs.HOSTILE_TEXT)
DAPR_ANNOTATIONS = st.dictionaries(st.sampled_from([
    "dapr.io/enabled", "dapr.io/app-id", "dapr.io/app-port", "dapr.io/app-protocol", "dapr.io/log-level",
    "dapr.io/sidecar-cpu-limit", "dapr.io/sidecar-memory-request", "dapr.io/enable-native-sidecar",
    "dapr.io/sidecar-image", "dapr.io/config", "dapr.io/http-max-request-size", "dapr.io/env",
    "dapr.io/volume-mounts", "dapr.io/sidecar-liveness-probe-delay-seconds", "dapr.io/enable-metrics",
    "dapr.io/api-token-secret", "dapr.io/unix-domain-socket-path", "dapr.io/placement-host-address",
]), ANNOTATION_VALUES, max_size=5)
CONTAINER = st.fixed_dictionaries({"name": st.one_of(st.sampled_from(["app", "daprd", "sidecar"]), NAMES),
                                   "image": st.just("app:1")},
                                  optional={"env": st.lists(st.fixed_dictionaries({
                                      "name": st.sampled_from(["DAPR_HTTP_PORT", "DAPR_GRPC_PORT", "X"]),
                                      "value": st.text(string.digits, max_size=5)}), max_size=2),
                                      "ports": st.lists(st.fixed_dictionaries({"containerPort": st.integers(1, 65535)}),
                                                        max_size=2)})
POD_OBJ = st.fixed_dictionaries({
    "apiVersion": st.just("v1"), "kind": st.just("Pod"),
    "metadata": st.fixed_dictionaries({"annotations": fs.maybe(DAPR_ANNOTATIONS)},
                                      optional={"name": fs.maybe(NAMES), "generateName": NAMES,
                                                "namespace": NAMES, "labels": fs.maybe(st.dictionaries(
                                                    st.sampled_from(["app", "dapr.io/app-id"]), NAMES, max_size=2))}),
    "spec": fs.maybe(st.fixed_dictionaries({"containers": fs.maybe(st.lists(CONTAINER, min_size=1, max_size=3))},
                                           optional={"initContainers": st.lists(CONTAINER, max_size=2)})),
})


def asks_for_dapr(pod: dict[str, Any]) -> bool:
    annotations = pod["metadata"].get("annotations")
    return isinstance(annotations, dict) and str(annotations.get("dapr.io/enabled", "")).lower() == "true"


def has_daprd(pod: dict[str, Any]) -> bool:
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return False
    return any(isinstance(c, dict) and c.get("name") == "daprd" for key in ("containers", "initContainers")
               for c in (spec.get(key) if isinstance(spec.get(key), list) else []))


@examples("webhook_mutate")
@given(pod=POD_OBJ, operation=st.sampled_from(["CREATE", "CREATE", "CREATE", "UPDATE"]),
       namespace=st.one_of(NAMES, st.just("")), dry_run=st.booleans())
def test_mutate_pods(webhooks: HttpClient, pod: dict[str, Any], operation: str, namespace: str,
                     dry_run: bool) -> None:
    body = review(pod, resource=POD, operation=operation, namespace=namespace, dry_run=dry_run)
    status, response = post(webhooks, "/mutate", json.dumps(body).encode())
    assert status == 200, f"a well-formed AdmissionReview answered {status}: {body}"
    why = f"\n  pod: {pod}\n  response: {response}"
    patched = pod
    if "patch" in response:
        assert response.get("patchType") == "JSONPatch", "a patch that is not a JSON Patch" + why
        ops = json.loads(base64.b64decode(response["patch"]))
        try:
            patched = jsonpatch.apply_patch(pod, ops)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            raise AssertionError(f"the JSON Patch does not apply ({exc}): {ops}" + why) from None
    if not asks_for_dapr(pod) or operation != "CREATE":
        assert "patch" not in response, "a pod that did not ask for Dapr was patched" + why
    elif response["allowed"] and not has_daprd(pod) and isinstance(pod.get("spec"), dict) and isinstance(
            pod["spec"].get("containers"), list):
        assert has_daprd(patched), "a pod that asked for Dapr was admitted without the daprd container" + why


# -- garbage ---------------------------------------------------------------------------------------
SKELETON = st.fixed_dictionaries({}, optional={
    "apiVersion": fs.maybe(st.sampled_from(["admission.k8s.io/v1", "admission.k8s.io/v1beta1", "v1"])),
    "kind": fs.maybe(st.just("AdmissionReview")),
    "request": fs.maybe(st.fixed_dictionaries({}, optional={
        "uid": fs.maybe(st.uuids().map(str)), "kind": fs.maybe(st.sampled_from(list(KINDS.values()))),
        "resource": fs.maybe(st.sampled_from([POD, COMPONENT, {"group": "apps", "version": "v1",
                                                               "resource": "deployments"}])),
        "operation": fs.maybe(st.sampled_from(["CREATE", "UPDATE", "DELETE", "CONNECT", ""])),
        "namespace": fs.maybe(NAMES), "userInfo": fs.maybe(st.fixed_dictionaries({"username": NAMES})),
        "object": fs.maybe(st.one_of(COMPONENT_OBJ, POD_OBJ)), "oldObject": fs.ANY_JSON,
        "dryRun": fs.maybe(st.booleans()), "options": fs.ANY_JSON})),
})


@examples("webhook_garbage")
@given(path=st.sampled_from(["/validate", "/mutate", "/validate", "/mutate", "/", "/other", "/validate/x"]),
       method=st.sampled_from(["POST"] * 8 + ["GET", "PUT"]),
       body=st.one_of(fs.bodies(SKELETON), fs.bodies(fs.ANY_JSON)))
def test_garbage(webhooks: HttpClient, path: str, method: str, body: bytes) -> None:
    """Any body at all: an AdmissionReview or a 4xx, never a 5xx; the webhook keeps answering."""
    post(webhooks, path, body, method)
    check_alive(webhooks)
