"""Annotations → SidecarConfig, row by row against Dapr's annotation table
(dapr/dapr ``pkg/injector/annotations/annotations.go`` and ``pkg/injector/patcher/sidecar.go``)."""

from __future__ import annotations

from typing import Any

import pytest

from parley_operator.injection import annotations as keys
from parley_operator.injection import config
from parley_operator.settings import InjectorSettings

POD_VOLUMES = ("data", "certs")
"""The volumes of the pod these annotations sit on (``volume-mounts`` may name only these)."""


def parse(annotations: dict[str, str], *, name: str = "web", **overrides: Any) -> config.Parsed:
    settings = InjectorSettings(sidecar_image="registry.test/parley-sidecar:1", **overrides)
    return config.parse(annotations, pod_name=name, settings=settings, volumes=POD_VOLUMES)


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
    assert (c.graceful_shutdown_seconds, c.block_shutdown) == (-1, "")
    assert c.listen_addresses == "[::1],127.0.0.1"  # Dapr's default: loopback, IPv6 and IPv4
    assert (c.max_body_size, c.http_max_request_size, c.read_buffer_size, c.http_read_buffer_size) == (
        "", None, "", None)
    assert (c.enable_api_logging, c.unix_domain_socket_path, c.env_from_secret, c.volume_mounts) == (
        None, "", (), ())


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
    (keys.GRACEFUL_SHUTDOWN_SECONDS, "30", "graceful_shutdown_seconds", 30),
    (keys.GRACEFUL_SHUTDOWN_SECONDS, "-1", "graceful_shutdown_seconds", -1),
    (keys.BLOCK_SHUTDOWN_DURATION, "1m30s", "block_shutdown", "1m30s"),
    (keys.MAX_BODY_SIZE, "16Mi", "max_body_size", "16Mi"),
    (keys.HTTP_MAX_REQUEST_SIZE, "16", "http_max_request_size", 16),
    (keys.READ_BUFFER_SIZE, "16Ki", "read_buffer_size", "16Ki"),
    (keys.HTTP_READ_BUFFER_SIZE, "16", "http_read_buffer_size", 16),
    (keys.SIDECAR_LISTEN_ADDRESSES, "0.0.0.0", "listen_addresses", "0.0.0.0"),
    (keys.SIDECAR_LISTEN_ADDRESSES, "[::1], 127.0.0.1", "listen_addresses", "[::1],127.0.0.1"),
    (keys.SIDECAR_LISTEN_ADDRESSES, "localhost", "listen_addresses", "localhost"),
    (keys.ENABLE_API_LOGGING, "true", "enable_api_logging", True),
    (keys.ENABLE_API_LOGGING, "false", "enable_api_logging", False),
    (keys.UNIX_DOMAIN_SOCKET_PATH, "/tmp/dapr", "unix_domain_socket_path", "/tmp/dapr"),
    (keys.SIDECAR_WORKERS, "2", "workers", 2),
    (keys.SIDECAR_WORKERS, " 1 ", "workers", 1),
    (keys.ENV_FROM_SECRET, "OPENAI_API_KEY=openai", "env_from_secret",
     (config.SecretEnv("OPENAI_API_KEY", "openai", "openai"),)),
    (keys.ENV_FROM_SECRET, "A=creds:openai-key, B=creds:other", "env_from_secret",
     (config.SecretEnv("A", "creds", "openai-key"), config.SecretEnv("B", "creds", "other"))),
    (keys.VOLUME_MOUNTS, "data:/mnt/data, certs:/etc/certs", "volume_mounts",
     (config.VolumeMount("data", "/mnt/data", True), config.VolumeMount("certs", "/etc/certs", True))),
    (keys.VOLUME_MOUNTS_RW, "data:/mnt/scratch", "volume_mounts", (config.VolumeMount("data", "/mnt/scratch", False),)),
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
    (keys.GRACEFUL_SHUTDOWN_SECONDS, "30s", "must be an integer"),
    (keys.GRACEFUL_SHUTDOWN_SECONDS, "-5", "between -1 and"),
    (keys.BLOCK_SHUTDOWN_DURATION, "soon", "duration such as 10s"),
    (keys.MAX_BODY_SIZE, "big", "a size such as 4Mi"),
    (keys.MAX_BODY_SIZE, "0", "above 0"),
    (keys.HTTP_MAX_REQUEST_SIZE, "4Mi", "must be an integer"),
    (keys.READ_BUFFER_SIZE, "4 KB", "a size such as 4Mi"),
    (keys.HTTP_READ_BUFFER_SIZE, "0", "between 1 and"),
    (keys.SIDECAR_LISTEN_ADDRESSES, "", "IP address"),
    (keys.SIDECAR_LISTEN_ADDRESSES, "[::1],,127.0.0.1", "IP address"),
    (keys.SIDECAR_LISTEN_ADDRESSES, "[not-an-ip]", "IP address"),
    (keys.ENABLE_API_LOGGING, "loud", "true or false"),
    (keys.UNIX_DOMAIN_SOCKET_PATH, "relative/dir", "absolute directory"),
    (keys.SIDECAR_WORKERS, "two", "must be an integer"),
    (keys.SIDECAR_WORKERS, "0", "between 1 and 64"),
    (keys.SIDECAR_WORKERS, "65", "between 1 and 64"),
    (keys.ENV_FROM_SECRET, "OPENAI_API_KEY", "NAME=secret"),
    (keys.ENV_FROM_SECRET, "A=Bad_Secret", "name of a Secret"),
    (keys.ENV_FROM_SECRET, "A=creds:k:extra", "key of a Secret"),
    (keys.ENV_FROM_SECRET, "DAPR_API_TOKEN=creds", "set by the injector"),
    (keys.VOLUME_MOUNTS, "data", "volume:/path"),
    (keys.VOLUME_MOUNTS, "missing:/mnt", "no volume named 'missing'"),
    (keys.VOLUME_MOUNTS, "data:relative", "absolute"),
    (keys.VOLUME_MOUNTS_RW, "data:/var/run/secrets/parley.io", "overlaps"),
    (keys.VOLUME_MOUNTS_RW, "data:/var/run/dapr-sockets", "overlaps"),
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
    parsed = parse({"dapr.io/app-protocol": "grpc", "dapr.io/placement-host-address": "", "other.io/x": "1",
                    "dapr.io/app-prot": "typo"})
    assert parsed.invalid == ()
    # Dapr's keys parley does not act on, and a key Dapr does not have either (a typo).
    assert parsed.ignored == ("dapr.io/app-prot", "dapr.io/app-protocol", "dapr.io/placement-host-address")


def test_honoured_keys_and_app_port_and_config_are_not_reported_as_ignored() -> None:
    honoured = {keys.APP_PORT: "8080", keys.CONFIG: "appconfig", keys.GRACEFUL_SHUTDOWN_SECONDS: "30",
                keys.BLOCK_SHUTDOWN_DURATION: "10s", keys.MAX_BODY_SIZE: "8Mi", keys.HTTP_READ_BUFFER_SIZE: "8",
                keys.SIDECAR_LISTEN_ADDRESSES: "127.0.0.1", keys.ENABLE_API_LOGGING: "true",
                keys.UNIX_DOMAIN_SOCKET_PATH: "/tmp", keys.VOLUME_MOUNTS: "data:/d"}
    parsed = parse(honoured)
    assert (parsed.invalid, parsed.ignored) == ((), ())
    assert set(keys.IGNORED).isdisjoint(keys.SUPPORTED)


def test_a_variable_from_both_env_and_env_from_secret_is_refused() -> None:
    parsed = parse({keys.ENV: "KEY=plain", keys.ENV_FROM_SECRET: "KEY=creds"})
    assert [str(p) for p in parsed.invalid] == [f"annotation {keys.ENV_FROM_SECRET}: KEY also set by {keys.ENV}"]


def test_one_path_mounted_twice_is_refused() -> None:
    parsed = parse({keys.VOLUME_MOUNTS: "data:/mnt", keys.VOLUME_MOUNTS_RW: "certs:/mnt"})
    assert [p.annotation for p in parsed.invalid] == [keys.VOLUME_MOUNTS]


@pytest.mark.parametrize(("annotations", "pod_grace", "warned"), [
    ({keys.GRACEFUL_SHUTDOWN_SECONDS: "30"}, 20, True),  # needs 30 + 5
    ({keys.GRACEFUL_SHUTDOWN_SECONDS: "30"}, 35, False),
    ({keys.GRACEFUL_SHUTDOWN_SECONDS: "30"}, None, False),  # the patch sets one (patch.grace_ops)
    ({keys.GRACEFUL_SHUTDOWN_SECONDS: "30"}, 30, False),  # Kubernetes' default, filled in: the patch raises it
    ({keys.BLOCK_SHUTDOWN_DURATION: "20s"}, 25, True),  # 20 + daprd's 5 + 5
    ({}, 5, False),  # no shutdown annotation: the pod's own choice, as with daprd
])
def test_a_grace_period_too_short_for_the_sidecars_shutdown_is_named(
    annotations: dict[str, str], pod_grace: int | None, warned: bool,
) -> None:
    message = config.grace_shortfall(parse(annotations).config, pod_grace)
    assert bool(message) is warned
    if warned:
        assert f"terminationGracePeriodSeconds is {pod_grace}" in message


@pytest.mark.parametrize(("value", "wanted"), [("true", True), ("TRUE", True), ("True", True), ("1", False),
                                               ("yes", False), ("false", False), ("", False)])
def test_only_the_word_true_asks_for_injection(value: str, wanted: bool) -> None:
    # Dapr ≥ 1.18 pre-filters with EqualFold("true"); other truthy spellings are not injected.
    assert config.wants_injection({keys.ENABLED: value}) is wanted
    assert config.wants_injection({}) is False


DAPR_1_18_KEYS = (
    "dapr.io/actors-disseminate-timeout", "dapr.io/api-token-secret", "dapr.io/app-binding-options-timeout",
    "dapr.io/app-channel-address", "dapr.io/app-health-check-path", "dapr.io/app-health-probe-interval",
    "dapr.io/app-health-probe-timeout", "dapr.io/app-health-threshold", "dapr.io/app-id",
    "dapr.io/app-max-concurrency", "dapr.io/app-port", "dapr.io/app-protocol", "dapr.io/app-ssl",
    "dapr.io/app-token-secret", "dapr.io/block-shutdown-duration", "dapr.io/component-container", "dapr.io/config",
    "dapr.io/debug-port", "dapr.io/disable-builtin-k8s-secret-store", "dapr.io/disable-init-endpoints",
    "dapr.io/enable-api-logging", "dapr.io/enable-app-health-check", "dapr.io/enable-debug",
    "dapr.io/enable-metrics", "dapr.io/enable-native-sidecar", "dapr.io/enable-profiling", "dapr.io/enabled",
    "dapr.io/env", "dapr.io/env-from-secret", "dapr.io/graceful-shutdown-seconds", "dapr.io/grpc-port",
    "dapr.io/http-max-request-size", "dapr.io/http-read-buffer-size", "dapr.io/inject-pluggable-components",
    "dapr.io/internal-grpc-port", "dapr.io/log-as-json", "dapr.io/log-level", "dapr.io/max-body-size",
    "dapr.io/metrics-port", "dapr.io/placement-host-address", "dapr.io/pluggable-components",
    "dapr.io/pluggable-components-sockets-folder", "dapr.io/read-buffer-size", "dapr.io/scheduler-host-address",
    "dapr.io/sentry-request-jwt-audiences", "dapr.io/sidecar-cpu-limit", "dapr.io/sidecar-cpu-request",
    "dapr.io/sidecar-image", "dapr.io/sidecar-listen-addresses", "dapr.io/sidecar-liveness-probe-delay-seconds",
    "dapr.io/sidecar-liveness-probe-period-seconds", "dapr.io/sidecar-liveness-probe-threshold",
    "dapr.io/sidecar-liveness-probe-timeout-seconds", "dapr.io/sidecar-memory-limit",
    "dapr.io/sidecar-memory-request", "dapr.io/sidecar-readiness-probe-delay-seconds",
    "dapr.io/sidecar-readiness-probe-period-seconds", "dapr.io/sidecar-readiness-probe-threshold",
    "dapr.io/sidecar-readiness-probe-timeout-seconds", "dapr.io/sidecar-seccomp-profile-type",
    "dapr.io/sidecar-svc-annotations", "dapr.io/unix-domain-socket-path", "dapr.io/volume-mounts",
    "dapr.io/volume-mounts-rw",
)
"""Every key of ``dapr/dapr: pkg/injector/annotations/annotations.go`` at v1.18."""


def test_every_dapr_annotation_is_either_honoured_or_ignored_for_a_reason() -> None:
    assert len(DAPR_1_18_KEYS) == 64
    assert set(DAPR_1_18_KEYS) == set(keys.SUPPORTED) | set(keys.IGNORED)


def test_workers_cannot_share_a_unix_domain_socket() -> None:
    # The sidecar refuses the combination at start; the webhook says so at kubectl apply instead.
    parsed = parse({keys.ENABLED: "true", keys.SIDECAR_WORKERS: "2", keys.UNIX_DOMAIN_SOCKET_PATH: "/tmp/dapr"})
    assert [i.annotation for i in parsed.invalid] == [keys.SIDECAR_WORKERS]
    assert keys.UNIX_DOMAIN_SOCKET_PATH in parsed.invalid[0].reason
    one = parse({keys.ENABLED: "true", keys.SIDECAR_WORKERS: "1", keys.UNIX_DOMAIN_SOCKET_PATH: "/tmp/dapr"})
    assert one.invalid == ()


def test_the_workers_annotation_is_parleys_own_and_never_reported_as_ignored() -> None:
    assert parse({keys.ENABLED: "true", keys.SIDECAR_WORKERS: "2"}).ignored == ()
