"""Malformed input to both webhooks, through kopf's real server over TLS: a clear refusal, never an HTTP 500.

With ``failurePolicy: Ignore`` any HTTP error (500, 413) lets the object in unreviewed, so a body that
carries a uid is answered with a denial naming what is wrong; one that carries none is not an
AdmissionReview and gets HTTP 400 with ``{"error": ...}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import Cluster, StartOperator

COMPONENT = {"group": "dapr.io", "version": "v1alpha1", "resource": "components"}
POD = {"group": "", "version": "v1", "resource": "pods"}
MakeReview = Callable[..., dict[str, Any]]


def component(spec: Any = None, **top: Any) -> dict[str, Any]:
    return {"apiVersion": "dapr.io/v1alpha1", "kind": "Component", "metadata": {"name": "llm", "namespace": "shop"},
            "spec": spec if spec is not None else {"type": "conversation.echo", "version": "v1"}, **top}


def pod(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "web-", "annotations": {"dapr.io/enabled": "true", "dapr.io/app-id": "web"}},
        "spec": {"containers": [{"name": "app", "image": "shop/web:1"}]}}
    for path, value in changes.items():
        *parents, last = path.split("__")
        target = body
        for key in parents:
            target = target[key]
        target[last] = value
    return body


def encode(review: dict[str, Any]) -> bytes:
    return json.dumps(review).encode()


@pytest.fixture
async def operator(cluster: Cluster, start_operator: StartOperator) -> Any:
    return await start_operator()


def assert_denied(status: int, answer: Any, review: dict[str, Any], *words: str) -> None:
    assert status == 200, answer
    assert answer["kind"] == "AdmissionReview" and answer["response"]["uid"] == review["request"]["uid"]
    assert answer["response"]["allowed"] is False
    assert answer["response"]["status"]["code"] == 400
    for word in words:
        assert word in answer["response"]["status"]["message"]


@pytest.mark.parametrize(("obj", "words"), [
    (component({"type": ["conversation.openai"], "version": "v1"}), ["request.object.spec.type"]),
    (component("conversation.openai"), ["request.object.spec must be an object"]),
    (component({"version": "v1"}), ["request.object.spec.type"]),
    (component(metadata="llm"), ["request.object.metadata must be an object"]),
    (component({"type": "conversation.echo", "version": 1}), ["request.object.spec.version"]),
    (pod(), ["this webhook reviews dapr.io/v1alpha1 components", "pods"]),
], ids=["type-is-a-list", "spec-is-a-string", "no-type", "metadata-is-a-string", "version-is-a-number",
        "a-pod"])
async def test_a_malformed_component_or_another_kind_is_denied_at_validate(
    operator: Any, post: Any, make_review: MakeReview, obj: dict[str, Any], words: list[str]
) -> None:
    resource = POD if obj["kind"] == "Pod" else COMPONENT
    review = make_review(obj, resource=resource, namespace="shop")
    status, answer = await post(operator, "/validate", encode(review))
    assert_denied(status, answer, review, *words)
    assert operator.metric("parley_operator_component_validations_total", result="allowed") == 0


@pytest.mark.parametrize(("obj", "words"), [
    (pod(metadata__annotations=["dapr.io/enabled=true"]), ["request.object.metadata.annotations"]),
    (pod(metadata__annotations={"dapr.io/enabled": True}), ["request.object.metadata.annotations"]),
    (pod(spec__containers="app"), ["request.object.spec.containers"]),
    (pod(spec__containers=[{"name": "app", "env": {"A": "1"}}]), ["request.object.spec.containers[0].env"]),
    (pod(spec="none"), ["request.object.spec must be an object"]),
    (component(), ["this webhook reviews v1 pods", "components"]),
], ids=["annotations-list", "annotation-not-a-string", "containers-string", "env-mapping", "spec-string",
        "a-component"])
async def test_a_malformed_pod_or_another_kind_is_denied_at_mutate(
    operator: Any, post: Any, make_review: MakeReview, obj: dict[str, Any], words: list[str]
) -> None:
    resource = COMPONENT if obj["kind"] == "Component" else POD
    review = make_review(obj, resource=resource, namespace="shop")
    status, answer = await post(operator, "/mutate", encode(review))
    assert_denied(status, answer, review, *words)
    assert "patch" not in answer["response"]


def strip_uid(review: dict[str, Any]) -> dict[str, Any]:
    del review["request"]["uid"]
    return review


@pytest.mark.parametrize("body", [
    b"null", b"[]", b"{}", b'{"request": {}}', b'"AdmissionReview"', b"\xff\xfe{}", b"not json at all", b"",
    b"[" * 100_000 + b"]" * 100_000,
], ids=["null", "list", "empty-object", "empty-request", "string", "invalid-utf8", "not-json", "empty",
        "deep-list"])
@pytest.mark.parametrize("path", ["/validate", "/mutate"])
async def test_a_body_that_is_not_an_admission_review_gets_400_with_a_message(
    operator: Any, post: Any, path: str, body: bytes
) -> None:
    status, answer = await post(operator, path, body)
    assert status == 400
    assert answer["error"].startswith("not an AdmissionReview: ")


async def test_a_review_without_a_uid_gets_400(operator: Any, post: Any, make_review: MakeReview) -> None:
    review = strip_uid(make_review(component(), resource=COMPONENT, namespace="shop"))
    status, answer = await post(operator, "/validate", encode(review))
    assert (status, answer) == (400, {"error": "not an AdmissionReview: request.uid is missing"})


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"v": value}
    return value


@pytest.mark.parametrize("depth", [150, 5000], ids=["deeper-than-allowed", "deeper-than-the-json-parser-goes"])
async def test_deeply_nested_review_with_a_uid_is_denied(
    operator: Any, post: Any, make_review: MakeReview, depth: int
) -> None:
    obj = component({"type": "conversation.echo", "version": "v1", "metadata": [{"name": "x", "value": "PLACE"}]})
    review = make_review(obj, resource=COMPONENT, namespace="shop")
    # json.dumps itself recurses; splice the nesting in as text.
    body = encode(review).replace(b'"PLACE"', b'{"v":' * depth + b'"leaf"' + b"}" * depth)
    status, answer = await post(operator, "/validate", body)
    assert_denied(status, answer, review, "nested deeper than 100 levels")


async def test_a_large_but_genuine_review_is_still_validated(
    operator: Any, post: Any, make_review: MakeReview
) -> None:
    # Between aiohttp's default 1 MiB limit (413 before) and what kube-apiserver can send.
    obj = component({"type": "conversation.gpt", "version": "v1",
                     "metadata": [{"name": f"field{i}", "value": "x" * 1000} for i in range(2000)]})
    review = make_review(obj, resource=COMPONENT, namespace="shop")
    body = encode(review)
    assert len(body) > 1 << 20
    status, answer = await post(operator, "/validate", body)
    assert status == 200 and answer["response"]["allowed"] is False
    assert "unknown conversation type 'conversation.gpt'" in answer["response"]["status"]["message"]


async def test_a_review_over_the_size_limit_is_denied_when_its_uid_is_readable(
    operator: Any, post: Any, make_review: MakeReview
) -> None:
    review = make_review(component({"type": "conversation.echo", "version": "v1", "padding": "x" * (9 << 20)}),
                         resource=COMPONENT, namespace="shop")
    status, answer = await post(operator, "/validate", encode(review))
    assert_denied(status, answer, review, "larger than 8 MiB")
    status, answer = await post(operator, "/validate", encode(strip_uid(review)))
    assert status == 413 and "larger than 8 MiB" in answer["error"]


async def test_an_unknown_path_gets_404(operator: Any, post: Any, make_review: MakeReview) -> None:
    review = make_review(component(), resource=COMPONENT, namespace="shop")
    status, answer = await post(operator, "/validate-everything", encode(review))
    assert status == 404 and "/mutate and /validate" in answer["error"]


async def test_after_all_that_the_webhooks_still_answer(
    operator: Any, post: Any, make_review: MakeReview
) -> None:
    for body in (b"null", b"\xff", b"[" * 10_000):
        await post(operator, "/mutate", body)
    review = make_review(pod(), resource=POD, namespace="shop")
    status, answer = await post(operator, "/mutate", encode(review))
    assert status == 200 and answer["response"]["allowed"] is True and "patch" in answer["response"]
    assert operator.metric("parley_operator_errors_total", kind="malformed_review") == 3
