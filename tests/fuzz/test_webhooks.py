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
from hypothesis import event, given
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


pytestmark = [pytest.mark.filterwarnings("ignore:Generating overly large repr"),
              pytest.mark.filterwarnings("ignore:read_binary is deprecated:DeprecationWarning")]  # kmock 0.8

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
METADATA_NAMES = st.sampled_from(["key", "model", "endpoint", "timeout", "responseCacheTTL", "memory", "scrubPII",
                                  "maxRetries", "temperature", "nope"])
GOOD_ENTRY = st.one_of(
    st.fixed_dictionaries({"name": METADATA_NAMES, "value": st.one_of(
        st.sampled_from(["10s", "1m", "true", "3", "-1", "http://127.0.0.1:1/v1", "gpt-4o-mini", "sk-123"]),
        fs.HOSTILE_TEXT, st.integers(), st.booleans())}),
    st.fixed_dictionaries({"name": METADATA_NAMES, "secretKeyRef": st.fixed_dictionaries({"name": NAMES},
                                                                                        optional={"key": NAMES})}),
    st.fixed_dictionaries({"name": METADATA_NAMES, "envRef": st.just("OPENAI_KEY")}),
)
ENTRY = fs.weighted((6, GOOD_ENTRY), (1, fs.ANY_JSON), (2, st.fixed_dictionaries({}, optional={  # any defect
    "name": fs.maybe(METADATA_NAMES | st.just("") | fs.HOSTILE_TEXT),
    "value": fs.maybe(st.one_of(fs.HOSTILE_TEXT, st.integers(), st.booleans())),
    "secretKeyRef": fs.maybe(st.fixed_dictionaries({}, optional={"name": fs.maybe(NAMES | st.just("")),
                                                                 "key": fs.maybe(NAMES | st.just(""))})),
    "envRef": fs.maybe(st.sampled_from(["", "OPENAI_KEY"])),
})))
TYPES = st.one_of(st.sampled_from(CONVERSATION_TYPES), st.sampled_from(
    ["conversation.gpt", "Conversation.OpenAI", "state.redis", "conversation.", "bindings.http"]))
WELL_FORMED_SPEC = st.fixed_dictionaries(
    {"type": TYPES, "version": st.sampled_from(["v1", "v1", "v2", ""]), "metadata": st.lists(ENTRY, max_size=4)},
    optional={"initTimeout": st.sampled_from(["5s", "soon", ""]), "ignoreErrors": fs.maybe(st.booleans())})
SPEC = fs.weighted((3, WELL_FORMED_SPEC), (1, fs.maybe(st.fixed_dictionaries(
    {"type": fs.maybe(TYPES | fs.HOSTILE_TEXT)},
    optional={"version": fs.ANY_JSON, "metadata": fs.maybe(st.lists(ENTRY, max_size=4)),
              "initTimeout": fs.ANY_JSON, "ignoreErrors": fs.ANY_JSON}))))
COMPONENT_OBJ = st.fixed_dictionaries({"apiVersion": st.just("dapr.io/v1alpha1"), "kind": st.just("Component"),
                                       "metadata": fs.rarely_wrong(st.fixed_dictionaries({"name": fs.rarely_wrong(NAMES)})),
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


def well_formed(obj: Any) -> bool:
    """Shaped as the Component CRD's schema allows (what reaches a webhook in a real cluster)."""
    if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict) or not isinstance(
            obj["metadata"].get("name"), str) or not isinstance(obj.get("spec"), dict):
        return False
    spec = obj["spec"]
    entries = spec.get("metadata", [])
    scalar = (str, int, float, bool, type(None))
    return (isinstance(spec.get("type"), str) and isinstance(spec.get("version", ""), str)
            and isinstance(spec.get("initTimeout", ""), str) and isinstance(spec.get("ignoreErrors", False), bool)
            and isinstance(entries, list) and all(
                isinstance(e, dict) and isinstance(e.get("name", ""), str) and isinstance(e.get("value"), scalar)
                and isinstance(e.get("envRef", ""), str) and isinstance(e.get("secretKeyRef", {}), dict)
                and all(isinstance(v, str) for v in e.get("secretKeyRef", {}).values()) for e in entries)
            and isinstance(obj.get("scopes", []), list) and isinstance(obj.get("auth", {}), dict))


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
    event(f"{'allowed' if response['allowed'] else 'denied'}{', ' + defect if defect else ''}")
    if operation in ("CREATE", "UPDATE") and defect:
        assert response["allowed"] is False, f"a Component with {defect} was allowed: {obj}"
    if not response["allowed"]:
        message = response.get("status", {}).get("message", "")
        assert isinstance(message, str) and message, f"a denial without its reason: {response}"
        if defect and well_formed(obj) and (old is None or well_formed(old)):
            assert message.startswith(f"Component {obj['metadata']['name']!r}: "), f"a denial not naming it: {response}"


# -- Pods ------------------------------------------------------------------------------------------
GOOD_VALUES = st.sampled_from(["true", "false", "TRUE", "1", "3500", "http", "grpc", "info", "debug", "100m", "64Mi",
                               "app", "10"])
ANNOTATION_VALUES = fs.weighted((6, GOOD_VALUES), (1, st.sampled_from(["", "-1", "yes"])), (1, fs.HOSTILE_TEXT))
DAPR_ANNOTATIONS = st.dictionaries(st.sampled_from([
    "dapr.io/enabled", "dapr.io/app-id", "dapr.io/app-port", "dapr.io/app-protocol", "dapr.io/log-level",
    "dapr.io/sidecar-cpu-limit", "dapr.io/sidecar-memory-request", "dapr.io/enable-native-sidecar",
    "dapr.io/sidecar-image", "dapr.io/config", "dapr.io/http-max-request-size", "dapr.io/env",
    "dapr.io/volume-mounts", "dapr.io/sidecar-liveness-probe-delay-seconds", "dapr.io/enable-metrics",
    "dapr.io/api-token-secret", "dapr.io/unix-domain-socket-path", "dapr.io/placement-host-address",
]), ANNOTATION_VALUES, max_size=3)
CONTAINER = st.fixed_dictionaries({"name": st.one_of(st.sampled_from(["app", "daprd", "sidecar"]), NAMES),
                                   "image": st.just("app:1")},
                                  optional={"env": st.lists(st.fixed_dictionaries({
                                      "name": st.sampled_from(["DAPR_HTTP_PORT", "DAPR_GRPC_PORT", "X"]),
                                      "value": st.text(string.digits, max_size=5)}), max_size=2),
                                      "ports": st.lists(st.fixed_dictionaries({"containerPort": st.integers(1, 65535)}),
                                                        max_size=2)})
ASKING = st.builds(lambda asked, extra: {**extra, **asked}, st.fixed_dictionaries(
    {"dapr.io/enabled": st.sampled_from(["true", "true", "TRUE", "false"])}, optional={"dapr.io/app-id": NAMES}),
    DAPR_ANNOTATIONS)
POD_OBJ = st.fixed_dictionaries({
    "apiVersion": st.just("v1"), "kind": st.just("Pod"),
    "metadata": st.fixed_dictionaries({"annotations": fs.weighted((3, ASKING), (1, fs.maybe(DAPR_ANNOTATIONS)))},
                                      optional={"name": fs.rarely_wrong(NAMES), "generateName": NAMES,
                                                "namespace": NAMES, "labels": fs.rarely_wrong(st.dictionaries(
                                                    st.sampled_from(["app", "dapr.io/app-id"]), NAMES, max_size=2))}),
    "spec": fs.rarely_wrong(st.fixed_dictionaries(
        {"containers": fs.rarely_wrong(st.lists(CONTAINER, min_size=1, max_size=3))},
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
    event(f"{'allowed' if response['allowed'] else 'denied'}{', patched' if 'patch' in response else ''}")
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
