"""Component validation through kopf's real webhook server over TLS: denied at kubectl apply."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import Cluster, StartOperator

COMPONENT = {"group": "dapr.io", "version": "v1alpha1", "resource": "components"}


def component(type_: str = "conversation.openai", metadata: list[dict[str, Any]] | None = None,
              **top: Any) -> dict[str, Any]:
    return {
        "apiVersion": "dapr.io/v1alpha1", "kind": "Component",
        "metadata": {"name": "llm", "namespace": "shop"},
        "spec": {"type": type_, "version": "v1", "metadata": metadata if metadata is not None else [
            {"name": "key", "secretKeyRef": {"name": "openai", "key": "api-key"}},
            {"name": "model", "value": "gpt-4o-mini"},
            {"name": "responseCacheTTL", "value": "10m"},
        ]},
        **top,
    }


@pytest.fixture
async def operator(cluster: Cluster, start_operator: StartOperator) -> Any:
    return await start_operator()


async def test_valid_component_is_allowed(operator: Any, review: Any) -> None:
    response = await review(operator, "/validate", component(scopes=["checkout"]), resource=COMPONENT)
    assert response == {"uid": response["uid"], "allowed": True}


@pytest.mark.parametrize(("obj", "field"), [
    (component("conversation.gpt"), "spec.type"),
    (component(metadata=[{"name": "model", "value": "gpt-4o"}]), "'key' is required"),
    (component(metadata=[{"name": "key", "value": "k"}, {"name": "timeout", "value": "ten seconds"}]),
     "spec.metadata[1].value"),
    (component(metadata=[{"name": "key", "secretKeyRef": {"key": "api-key"}}]), "spec.metadata[0].secretKeyRef.name"),
    (component(metadata=[{"name": "key", "secretKeyRef": {"name": "openai", "key": ""}}]),
     "spec.metadata[0].secretKeyRef.key"),
    (component(scopes=["Checkout_Service"]), "scopes[0]"),
    (component(scopes="checkout"), "scopes"),
], ids=["unknown-type", "missing-required", "bad-duration", "secretKeyRef-without-name",
        "secretKeyRef-empty-key", "bad-scope", "scopes-not-a-list"])
async def test_invalid_component_is_denied_naming_the_field(operator: Any, review: Any, obj: dict[str, Any],
                                                            field: str) -> None:
    response = await review(operator, "/validate", obj, resource=COMPONENT)
    assert response["allowed"] is False
    assert field in response["status"]["message"]
    assert response["status"]["message"].startswith("Component 'llm': ")


async def test_denial_never_quotes_a_secret_value(operator: Any, review: Any) -> None:
    obj = component(metadata=[{"name": "key", "value": "sk-live-0123456789"}, {"name": "maxRetries", "value": "x"}])
    response = await review(operator, "/validate", obj, resource=COMPONENT)
    assert response["allowed"] is False and "sk-live" not in str(response)


async def test_update_is_validated_too(operator: Any, review: Any) -> None:
    response = await review(operator, "/validate", component("conversation.nope"), resource=COMPONENT,
                            operation="UPDATE", old=component())
    assert response["allowed"] is False


async def test_other_component_types_pass_untouched(operator: Any, review: Any) -> None:
    obj = component("state.redis", metadata=[{"name": "redisHost", "value": "redis:6379"}], scopes=["Not_Valid!"])
    response = await review(operator, "/validate", obj, resource=COMPONENT)
    assert response == {"uid": response["uid"], "allowed": True}


async def test_questionable_but_valid_component_gets_warnings(operator: Any, review: Any) -> None:
    obj = component(metadata=[{"name": "key", "secretKeyRef": {"name": "openai"}}, {"name": "modle", "value": "x"}])
    response = await review(operator, "/validate", obj, resource=COMPONENT)
    assert response["allowed"] is True
    assert any("secretKeyRef.key" in w for w in response["warnings"])
    assert any("'modle'" in w for w in response["warnings"])
