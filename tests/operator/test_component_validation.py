"""validate(): every rule, each message naming the field; the catalog is the only list of metadata."""

from __future__ import annotations

from typing import Any

import pytest

from parley_operator import component


def make(type_: str = "conversation.anthropic", entries: list[dict[str, Any]] | None = None,
         **top: Any) -> dict[str, Any]:
    spec = top.pop("spec", {})
    return {"apiVersion": "dapr.io/v1alpha1", "kind": "Component", "metadata": {"name": "llm", "namespace": "ns"},
            "spec": {"type": type_, "version": "v1",
                     "metadata": entries if entries is not None else [{"name": "key", "value": "k"}], **spec},
            **top}


VALID = [
    make(),
    make("conversation.echo", []),
    make("conversation.echo", None, spec={"version": ""}),
    make(entries=[{"name": "key", "secretKeyRef": {"name": "s", "key": "k"}}]),
    make(entries=[{"name": "key", "envRef": "ANTHROPIC_KEY"}]),
    make(entries=[{"name": "KEY", "value": "k"}]),  # names match case-insensitively, as in Dapr
    make(entries=[{"name": "key", "value": "k"}, {"name": "cacheTTL", "value": "10m"}]),  # an alias
    make(entries=[{"name": "key", "value": "k"}, {"name": "maxTokens", "value": 2048}]),  # a YAML number
    make(entries=[{"name": "key", "value": "k"}, {"name": "memory", "value": True}]),
    make("conversation.ollama", []),  # no required field without a default
    make(scopes=["checkout", "web-2"]),
    make(spec={"initTimeout": "30s", "ignoreErrors": True}),
    make("state.redis", [{"secretKeyRef": {}}], scopes=[1]),  # not ours: never judged
]


@pytest.mark.parametrize("body", VALID, ids=range(len(VALID)))
def test_valid(body: dict[str, Any]) -> None:
    assert component.validate(body).errors == ()


INVALID = [
    (make("conversation.gpt5"), "spec.type: unknown conversation type 'conversation.gpt5'"),
    (make(spec={"version": "v2"}), "spec.version: 'v2' is not a version of conversation.anthropic"),
    (make(entries=[]), "spec.metadata: field 'key' is required for conversation.anthropic"),
    (make(entries=[{"name": "key", "value": ""}]), "field 'key' is required"),
    (make(entries="key=k"), "spec.metadata: must be a list"),
    (make(entries=["key"]), "spec.metadata[0]: must be a mapping"),
    (make(entries=[{"value": "k"}]), "spec.metadata[0].name: is required"),
    (make(entries=[{"name": "key", "secretKeyRef": {"key": "k"}}]), "spec.metadata[0].secretKeyRef.name"),
    (make(entries=[{"name": "key", "secretKeyRef": "s"}]), "spec.metadata[0].secretKeyRef.name"),
    (make(entries=[{"name": "key", "secretKeyRef": {"name": "s", "key": ""}}]), "spec.metadata[0].secretKeyRef.key"),
    (make(entries=[{"name": "key", "envRef": ""}]), "spec.metadata[0].envRef"),
    (make(entries=[{"name": "key", "value": "k"}, {"name": "timeout", "value": "soon"}]),
     "spec.metadata[1].value: field 'timeout': invalid duration"),
    (make(entries=[{"name": "key", "value": "k"}, {"name": "maxTokens", "value": "many"}]),
     "spec.metadata[1].value: field 'maxTokens': must be an integer"),
    (make(entries=[{"name": "key", "value": "k"}, {"name": "memory", "value": "sometimes"}]),
     "field 'memory': must be true or false"),
    (make(entries=[{"name": "key", "value": "k"}, {"name": "endpoint", "value": "not a url"}]),
     "field 'endpoint': must be an absolute URL"),
    (make(entries=[{"name": "key", "value": "k"}, {"name": "apiType", "value": "openai"}]),
     "field 'apiType': must be one of anthropic, foundry"),
    (make(entries=[{"name": "key", "value": "k"}, {"name": "cacheMaxBytes", "value": "lots"}]),
     "field 'cacheMaxBytes'"),
    (make(entries=[{"name": "key", "value": "k"}, {"name": "timeout", "value": {"s": 1}}]),
     "spec.metadata[1].value: must be a string, number or boolean"),
    (make(entries=[{"name": "key", "secretKeyRef": {"name": "s"}}], auth={"secretStore": "vault"}),
     "auth.secretStore: 'vault' is not supported"),
    (make(scopes="checkout"), "scopes: must be a list of app ids"),
    (make(scopes=["Checkout"]), "scopes[0]: 'Checkout' is not a valid app id"),
    (make(scopes=["ok", ""]), "scopes[1]"),
    (make(scopes=["x" * 60]), "at most 58 characters"),
    (make(spec={"initTimeout": "whenever"}), "spec.initTimeout: must be a duration"),
    (make(spec={"ignoreErrors": "yes"}), "spec.ignoreErrors: must be true or false"),
]


@pytest.mark.parametrize(("body", "message"), INVALID, ids=[m for _, m in INVALID])
def test_invalid_names_the_field(body: dict[str, Any], message: str) -> None:
    errors = component.validate(body).errors
    assert any(message in e for e in errors), errors


def test_every_problem_is_reported() -> None:
    body = make(entries=[{"name": "timeout", "value": "x"}], scopes=["Bad"])
    assert len(component.validate(body).errors) == 3  # timeout, key required, scope


def test_messages_never_quote_values() -> None:
    body = make(entries=[{"name": "key", "value": "sk-ant-secret"}, {"name": "maxTokens", "value": "sk-ant-x"},
                         {"name": "apiType", "value": "sk-ant-y"}])
    report = component.validate(body)
    assert report.errors and "sk-ant" not in str(report)


@pytest.mark.parametrize(("entries", "warning"), [
    ([{"name": "key", "value": "k"}, {"name": "modle", "value": "x"}], "'modle' is not a metadata field"),
    ([{"name": "key", "secretKeyRef": {"name": "anthropic"}}], "key 'anthropic' is read (Dapr's default)"),
    ([{"name": "key", "value": "a"}, {"name": "Key", "value": "b"}], "repeats spec.metadata[0]"),
])
def test_warnings_for_what_is_allowed_but_probably_a_mistake(entries: list[dict[str, Any]], warning: str) -> None:
    report = component.validate(make(entries=entries))
    assert report.ok and any(warning in w for w in report.warnings), report


def test_record_keeps_what_delivery_needs() -> None:
    record = component.record_of(make(entries=[
        {"name": "key", "secretKeyRef": {"name": "anthropic"}}, {"name": "model", "envRef": "MODEL"},
        {"name": "maxTokens", "value": 512}, {"name": "memory", "value": False}, {"name": "opts", "value": {"a": 1}},
    ], scopes=["web"]))
    assert record.entries == (
        component.Entry("key", secret_name="anthropic", secret_key="anthropic"),
        component.Entry("model", env_ref="MODEL"),
        component.Entry("maxTokens", value="512"),
        component.Entry("memory", value="false"),
        component.Entry("opts", value='{"a":1}'),
    )
    assert record.secret_names == ("anthropic",) and record.scopes == ("web",) and record.errors == ()
    assert record.visible_to("web") and not record.visible_to("batch")
    assert component.record_of(make(scopes=[])).visible_to("anyone")


def test_fingerprint_changes_with_content_only() -> None:
    a, b = component.record_of(make()), component.record_of(make())
    assert a.fingerprint == b.fingerprint
    changed = component.record_of(make(entries=[{"name": "key", "value": "other"}]))
    assert changed.fingerprint != a.fingerprint


def test_malformed_bodies_make_records_with_errors_not_exceptions() -> None:
    record = component.record_of({"metadata": {"name": "x"}, "spec": {"type": "conversation.openai",
                                                                      "metadata": "nope"}, "scopes": "web"})
    assert record.errors and record.entries == () and record.scopes == ()
