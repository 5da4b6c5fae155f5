"""Annotations → SidecarConfig, row by row against Dapr's annotation table
(dapr/dapr ``pkg/injector/annotations/annotations.go`` and ``pkg/injector/patcher/sidecar.go``)."""

from __future__ import annotations

from typing import Any

import pytest

from parley_operator.injection import annotations as keys
from parley_operator.injection import config
from parley_operator.settings import InjectorSettings


def parse(annotations: dict[str, str], *, name: str = "web", **overrides: Any) -> config.Parsed:
    settings = InjectorSettings(sidecar_image="registry.test/parley-sidecar:1", **overrides)
    return config.parse(annotations, pod_name=name, settings=settings)


def test_no_annotations_give_daprs_defaults() -> None:
    parsed = parse({keys.ENABLED: "true"})
    assert parsed.invalid == ()
    c = parsed.config
    assert (c.app_id, c.image, c.app_port, c.config) == ("web", "registry.test/parley-sidecar:1", None, "")
    assert (c.log_level, c.log_as_json, c.enable_metrics, c.metrics_port) == ("info", False, True, 9090)
    assert (c.cpu_request, c.cpu_limit, c.memory_request, c.memory_limit) == ("", "", "", "")
    assert c.api_token_secret == "" and c.env == ()
    # Dapr v1.18 probe defaults (they were 3/3/6/3 up to v1.17).
    assert c.liveness == config.Probe(delay=180, timeout=3, period=10, threshold=5)
    assert c.readiness == config.Probe(delay=1, timeout=1, period=1, threshold=5)
    assert c.native_sidecar is False


# (annotation, value, SidecarConfig attribute, expected)
VALID = [
    (keys.APP_ID, "checkout", "app_id", "checkout"),
    (keys.APP_PORT, "8080", "app_port", 8080),
    (keys.APP_PORT, " 3000 ", "app_port", 3000),
    (keys.CONFIG, "tracing", "config", "tracing"),
    (keys.CONFIG, "", "config", ""),
    (keys.LOG_LEVEL, "debug", "log_level", "debug"),
    (keys.LOG_LEVEL, "WARN", "log_level", "warn"),
    (keys.LOG_AS_JSON, "true", "log_as_json", True),
    (keys.SIDECAR_IMAGE, "my.registry/parley:2", "image", "my.registry/parley:2"),
    (keys.SIDECAR_IMAGE, "", "image", "registry.test/parley-sidecar:1"),
    (keys.CPU_REQUEST, "100m", "cpu_request", "100m"),
    (keys.CPU_LIMIT, "0.5", "cpu_limit", "0.5"),
    (keys.MEMORY_REQUEST, "64Mi", "memory_request", "64Mi"),
    (keys.MEMORY_LIMIT, "1G", "memory_limit", "1G"),
    (keys.MEMORY_LIMIT, "1e9", "memory_limit", "1e9"),
    (keys.ENABLE_METRICS, "false", "enable_metrics", False),
    (keys.ENABLE_METRICS, "0", "enable_metrics", False),
    (keys.ENABLE_METRICS, "", "enable_metrics", False),  # present but empty: honoured as empty (Dapr)
    (keys.ENABLE_METRICS, "yes", "enable_metrics", True),
    (keys.ENABLE_METRICS, "On", "enable_metrics", True),
    (keys.METRICS_PORT, "9999", "metrics_port", 9999),
    (keys.API_TOKEN_SECRET, "dapr-api-token", "api_token_secret", "dapr-api-token"),
    (keys.ENV, "A=1", "env", (("A", "1"),)),
    (keys.ENV, "A=1,B=two", "env", (("A", "1"), ("B", "two"))),
    (keys.ENV, "LIST=a,b,c, NEXT=x=y", "env", (("LIST", "a,b,c"), ("NEXT", "x=y"))),  # Dapr's split rule
    (keys.ENV, "EMPTY=", "env", (("EMPTY", ""),)),
    (keys.LIVENESS_DELAY, "30", "liveness", config.Probe(delay=30, timeout=3, period=10, threshold=5)),
    (keys.LIVENESS_TIMEOUT, "7", "liveness", config.Probe(delay=180, timeout=7, period=10, threshold=5)),
    (keys.LIVENESS_PERIOD, "20", "liveness", config.Probe(delay=180, timeout=3, period=20, threshold=5)),
    (keys.LIVENESS_THRESHOLD, "9", "liveness", config.Probe(delay=180, timeout=3, period=10, threshold=9)),
    (keys.READINESS_DELAY, "0", "readiness", config.Probe(delay=0, timeout=1, period=1, threshold=5)),
    (keys.READINESS_TIMEOUT, "2", "readiness", config.Probe(delay=1, timeout=2, period=1, threshold=5)),
    (keys.READINESS_PERIOD, "4", "readiness", config.Probe(delay=1, timeout=1, period=4, threshold=5)),
    (keys.READINESS_THRESHOLD, "3", "readiness", config.Probe(delay=1, timeout=1, period=1, threshold=3)),
    (keys.ENABLE_NATIVE_SIDECAR, "true", "native_sidecar", True),
]


@pytest.mark.parametrize(("key", "value", "attribute", "expected"), VALID, ids=[f"{r[0]}={r[1]!r}" for r in VALID])
def test_valid_annotation_sets_its_field(key: str, value: str, attribute: str, expected: Any) -> None:
    parsed = parse({keys.ENABLED: "true", key: value})
    assert parsed.invalid == ()
    assert getattr(parsed.config, attribute) == expected


# (annotation, value, a phrase the message must contain)
INVALID = [
    (keys.APP_ID, "Checkout", "lowercase"),
    (keys.APP_ID, "a_b", "lowercase"),
    (keys.APP_ID, "x" * 59, "58 characters"),
    (keys.APP_PORT, "http", "must be an integer"),
    (keys.APP_PORT, "0", "between 1 and 65535"),
    (keys.APP_PORT, "70000", "between 1 and 65535"),
    (keys.APP_PORT, "", "must be an integer"),
    (keys.CONFIG, "Not_A_Name", "Configuration"),
    (keys.LOG_LEVEL, "verbose", "debug, info, warn, error, fatal"),
    (keys.LOG_AS_JSON, "maybe", "true or false"),
    (keys.SIDECAR_IMAGE, "has space:1", "image reference"),
    (keys.CPU_REQUEST, "lots", "quantity"),
    (keys.CPU_LIMIT, "1.5 cores", "quantity"),
    (keys.MEMORY_REQUEST, "64MB", "quantity"),
    (keys.MEMORY_LIMIT, "-1Gi", "quantity"),
    (keys.ENABLE_METRICS, "enabled", "true or false"),
    (keys.METRICS_PORT, "nine", "must be an integer"),
    (keys.METRICS_PORT, "3500", "used by the sidecar"),
    (keys.API_TOKEN_SECRET, "Bad/Name", "name of a Secret"),
    (keys.ENV, "JUSTANAME", "NAME=value"),
    (keys.ENV, "1BAD=x", "NAME=value"),
    (keys.ENV, "NAMESPACE=other", "set by the injector"),
    (keys.LIVENESS_DELAY, "-1", "between 0 and"),
    (keys.LIVENESS_TIMEOUT, "0", "between 1 and"),
    (keys.LIVENESS_PERIOD, "1.5", "must be an integer"),
    (keys.LIVENESS_THRESHOLD, "x", "must be an integer"),
    (keys.READINESS_DELAY, "soon", "must be an integer"),
    (keys.READINESS_TIMEOUT, "0", "between 1 and"),
    (keys.READINESS_PERIOD, "", "must be an integer"),
    (keys.READINESS_THRESHOLD, "0", "between 1 and"),
    (keys.ENABLE_NATIVE_SIDECAR, "sure", "true or false"),
]


@pytest.mark.parametrize(("key", "value", "phrase"), INVALID, ids=[f"{r[0]}={r[1]!r}" for r in INVALID])
def test_invalid_annotation_is_reported_by_name(key: str, value: str, phrase: str) -> None:
    parsed = parse({keys.ENABLED: "true", key: value})
    assert [p.annotation for p in parsed.invalid] == [key]
    message = str(parsed.invalid[0])
    assert key in message and phrase in message


def test_every_invalid_value_is_reported_not_just_the_first() -> None:
    parsed = parse({keys.APP_PORT: "x", keys.LOG_LEVEL: "loud", keys.CPU_LIMIT: "many"})
    assert {p.annotation for p in parsed.invalid} == {keys.APP_PORT, keys.LOG_LEVEL, keys.CPU_LIMIT}


def test_every_supported_key_is_covered_by_the_tables() -> None:
    covered = {row[0] for row in VALID} | {row[0] for row in INVALID} | {keys.ENABLED}
    assert set(keys.SUPPORTED) <= covered


def test_app_id_defaults_to_the_pod_name_and_is_required_without_one() -> None:
    assert parse({}, name="orders-7").config.app_id == "orders-7"
    parsed = parse({}, name="")  # a Deployment's pod: generateName only
    assert [p.annotation for p in parsed.invalid] == [keys.APP_ID]
    assert "pod template" in str(parsed.invalid[0])
    assert parse({keys.APP_ID: "orders"}, name="").invalid == ()


def test_native_sidecar_default_comes_from_settings_and_the_annotation_wins() -> None:
    assert parse({}, native_sidecar=True).config.native_sidecar is True
    assert parse({keys.ENABLE_NATIVE_SIDECAR: "false"}, native_sidecar=True).config.native_sidecar is False


def test_dapr_keys_parley_does_not_use_are_listed_as_ignored() -> None:
    parsed = parse({"dapr.io/app-protocol": "grpc", "dapr.io/placement-host-address": "", "other.io/x": "1"})
    assert parsed.invalid == ()
    assert parsed.ignored == ("dapr.io/app-protocol", "dapr.io/placement-host-address")


@pytest.mark.parametrize(("value", "wanted"), [("true", True), ("TRUE", True), ("True", True), ("1", False),
                                               ("yes", False), ("false", False), ("", False)])
def test_only_the_word_true_asks_for_injection(value: str, wanted: bool) -> None:
    # Dapr ≥ 1.18 pre-filters with EqualFold("true"); other truthy spellings are not injected.
    assert config.wants_injection({keys.ENABLED: value}) is wanted
    assert config.wants_injection({}) is False
