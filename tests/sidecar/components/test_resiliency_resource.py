"""Dapr ``Resiliency`` documents: what is read, what is refused (naming the field), how it overlays."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from parley_sidecar.components.component_settings import ResiliencySettings
from parley_sidecar.components.resiliency_resource import ResiliencyError, parse
from parley_sidecar.loading import manifests

OWN = ResiliencySettings(timeout=60.0, max_retries=3, backoff=0.5, breaker_failures=5, breaker_timeout=30.0,
                         fallback=("other",), deadline=120.0)


def doc(policies: dict[str, Any], targets: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "dapr.io/v1alpha1", "kind": "Resiliency", "metadata": {"name": "res"},
            "spec": {"policies": policies, "targets": {"components": targets or {}}}, **extra}


def test_policies_of_a_target_override_the_fields_they_set() -> None:
    resiliency = parse(doc(
        {"timeouts": {"fast": "2s"},
         "retries": {"steady": {"policy": "constant", "duration": "100ms", "maxRetries": 4},
                     "grow": {"policy": "exponential", "initialInterval": "50ms", "maxInterval": "2s",
                              "maxRetries": -1, "matching": {"httpStatusCodes": "429,500-504"}}},
         "circuitBreakers": {"cb": {"maxRequests": 2, "interval": "10s", "timeout": "45s",
                                    "trip": "consecutiveFailures > 3"}}},
        {"gpt": {"outbound": {"timeout": "fast", "retry": "steady", "circuitBreaker": "cb"}},
         "claude": {"outbound": {"retry": "grow"}}},
    ), "res.yaml")
    gpt = resiliency.targets["gpt"].apply(OWN)
    assert (gpt.timeout, gpt.max_retries, gpt.backoff_policy, gpt.backoff) == (2.0, 4, "constant", 0.1)
    assert (gpt.breaker_failures, gpt.breaker_timeout, gpt.breaker_max_requests) == (4, 45.0, 2)
    assert (gpt.deadline, gpt.fallback) == (120.0, ("other",))  # a Resiliency has neither
    claude = resiliency.targets["claude"].apply(OWN)
    assert (claude.timeout, claude.max_retries, claude.backoff_policy) == (60.0, -1, "exponential")
    assert (claude.backoff, claude.max_interval, claude.breaker_failures) == (0.05, 2.0, 5)


def test_defaults_are_dapr_kits_and_bare_integers_are_milliseconds() -> None:
    resiliency = parse(doc({"timeouts": {"t": 1500}, "retries": {"r": {}}, "circuitBreakers": {"c": {}}},
                           {"gpt": {"outbound": {"timeout": "t", "retry": "r", "circuitBreaker": "c"}}}), "f")
    gpt = resiliency.targets["gpt"].apply(OWN)
    assert (gpt.timeout, gpt.max_retries, gpt.backoff_policy, gpt.backoff) == (1.5, -1, "constant", 5.0)
    assert (gpt.breaker_failures, gpt.breaker_timeout) == (6, 60.0)  # consecutiveFailures > 5


@pytest.mark.parametrize(("policies", "targets", "field"), [
    ({"timeouts": {"t": "soon"}}, {}, "spec.policies.timeouts.t"),
    ({"timeouts": {"t": "-1s"}}, {}, "spec.policies.timeouts.t"),
    ({"retries": {"r": {"policy": "linear"}}}, {}, "spec.policies.retries.r.policy"),
    ({"retries": {"r": {"maxRetries": "many"}}}, {}, "spec.policies.retries.r.maxRetries"),
    ({"retries": {"r": {"maxRetries": -2}}}, {}, "spec.policies.retries.r.maxRetries"),
    ({"retries": {"r": {"duration": [1]}}}, {}, "spec.policies.retries.r.duration"),
    ({"retries": {"r": {"matching": {"httpStatusCodes": "700"}}}}, {},
     "spec.policies.retries.r.matching.httpStatusCodes"),
    ({"circuitBreakers": {"c": {"trip": "totalFailures > 3"}}}, {}, "spec.policies.circuitBreakers.c.trip"),
    ({"circuitBreakers": {"c": {"trip": "consecutiveFailures == 3"}}}, {}, "spec.policies.circuitBreakers.c.trip"),
    ({"circuitBreakers": {"c": {"maxRequests": 0}}}, {}, "spec.policies.circuitBreakers.c.maxRequests"),
    ({"retries": "r"}, {}, "spec.policies.retries"),
    ({}, {"gpt": {"outbound": {"retry": "nope"}}}, "spec.targets.components.gpt.outbound.retry"),
    ({}, {"gpt": {"outbound": {"timeout": "nope"}}}, "spec.targets.components.gpt.outbound.timeout"),
    ({}, {"gpt": {"outbound": {"circuitBreaker": "nope"}}}, "spec.targets.components.gpt.outbound.circuitBreaker"),
])
def test_a_malformed_resiliency_is_refused_naming_the_field(policies: dict[str, Any], targets: dict[str, Any],
                                                            field: str) -> None:
    with pytest.raises(ResiliencyError) as caught:
        parse(doc(policies, targets), "res.yaml")
    assert f"'{field}" in str(caught.value)
    assert str(caught.value).startswith("res.yaml, resiliency 'res': field")


def test_scopes_must_be_app_ids() -> None:
    with pytest.raises(ResiliencyError, match="'scopes'"):
        parse(doc({}, scopes="app"), "res.yaml")
    assert parse(doc({}, scopes=["a", "b"]), "res.yaml").scopes == ("a", "b")


def test_manifests_reads_resiliency_documents_beside_components() -> None:
    text = yaml.safe_dump_all([
        {"apiVersion": "dapr.io/v1alpha1", "kind": "Component", "metadata": {"name": "echo"},
         "spec": {"type": "conversation.echo", "version": "v1"}},
        doc({"timeouts": {"t": "1s"}}, {"echo": {"outbound": {"timeout": "t"}}}),
        doc({"timeouts": {"t": "later"}}),
        {"kind": "Configuration", "metadata": {"name": "c"}},
    ])
    parsed = manifests.parse_documents(text, "all.yaml")
    assert [c.name for c in parsed.components] == ["echo"]
    assert [r.name for r in parsed.resiliencies] == ["res"]
    assert parsed.resiliency_errors == [
        "all.yaml (document 3), resiliency 'res': field 'spec.policies.timeouts.t': "
        "invalid duration 'later': use a number of seconds or Go form like 30s, 10m, 1h30m"]
    assert parsed.skipped == ["all.yaml (document 4): kind 'Configuration'"]
