"""resolve(): a record plus its namespace's Secrets → the wire component, or the reason it is withheld."""

from __future__ import annotations

import base64
from typing import Any

from parley_operator import component
from parley_operator.delivery import resolve


def record(entries: list[dict[str, Any]], **top: Any) -> component.ComponentRecord:
    return component.record_of({"metadata": {"name": "llm", "namespace": "shop"},
                                "spec": {"type": "conversation.echo", "version": "v1", "metadata": entries}, **top})


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_values_env_refs_and_secrets_become_the_wire_component() -> None:
    out = resolve.resolve(record([{"name": "key", "secretKeyRef": {"name": "s", "key": "k"}},
                                  {"name": "model", "envRef": "MODEL"}, {"name": "memory", "value": "true"}],
                                 scopes=["web"]), {"s": {"k": b64("sk-1")}})
    assert isinstance(out, resolve.Resolved)
    assert out.payload == {"name": "llm", "namespace": "shop", "type": "conversation.echo", "version": "v1",
                           "scopes": ["web"], "metadata": [{"name": "key", "value": "sk-1"},
                                                           {"name": "model", "envRef": "MODEL"},
                                                           {"name": "memory", "value": "true"}]}
    assert "sk-1" not in repr(out)


def test_digest_changes_exactly_when_the_payload_does() -> None:
    rec = record([{"name": "key", "secretKeyRef": {"name": "s", "key": "k"}}])
    one = resolve.resolve(rec, {"s": {"k": b64("a")}})
    same = resolve.resolve(rec, {"s": {"k": b64("a"), "unrelated": b64("z")}})
    rotated = resolve.resolve(rec, {"s": {"k": b64("b")}})
    assert isinstance(one, resolve.Resolved) and isinstance(same, resolve.Resolved)
    assert isinstance(rotated, resolve.Resolved)
    assert one.digest == same.digest != rotated.digest


def test_withheld_reasons_name_secret_and_key_but_no_value() -> None:
    rec = record([{"name": "key", "secretKeyRef": {"name": "s", "key": "k"}}])
    cases = {
        "Secret 's' not found in namespace 'shop'": {"s": None},
        "Secret 's' has no key 'k'": {"s": {"other": b64("x")}},
        "Secret 's' key 'k' is not UTF-8 text": {"s": {"k": base64.b64encode(b"\xff\xfe").decode()}},
    }
    for reason, secrets in cases.items():
        out = resolve.resolve(rec, secrets)
        assert isinstance(out, resolve.Withheld) and out.reason == reason and out.kind == "secret_missing"


def test_key_defaults_to_the_secret_name() -> None:
    out = resolve.resolve(record([{"name": "key", "secretKeyRef": {"name": "token"}}]), {"token": {"token": b64("t")}})
    assert isinstance(out, resolve.Resolved) and out.payload["metadata"] == [{"name": "key", "value": "t"}]


def test_an_invalid_component_is_withheld_with_its_first_error() -> None:
    out = resolve.resolve(record([{"name": "timeout", "value": "x"}], scopes=["Bad", "Worse"]), {})
    assert isinstance(out, resolve.Withheld) and out.kind == "component_invalid"
    assert out.reason.startswith("invalid: spec.metadata[0].value") and out.reason.endswith("(and 2 more)")
