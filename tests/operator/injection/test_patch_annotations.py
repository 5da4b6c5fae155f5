"""The annotations issue #15 wires end to end: annotation → the injected container's flags, env and
volumes → what the sidecar's own command line makes of them (``parley_sidecar.cli``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from parley_operator.injection import annotations as keys
from parley_sidecar import cli

PodFactory = Callable[..., dict[str, Any]]
Inject = Callable[..., dict[str, Any]]
SidecarOf = Callable[[dict[str, Any]], dict[str, Any]]


def test_shutdown_size_and_logging_annotations_reach_the_sidecars_settings(
    make_pod: PodFactory, inject: Inject, sidecar_of: SidecarOf,
) -> None:
    pod = make_pod({keys.GRACEFUL_SHUTDOWN_SECONDS: "25", keys.BLOCK_SHUTDOWN_DURATION: "10s",
                    keys.MAX_BODY_SIZE: "16Mi", keys.READ_BUFFER_SIZE: "32Ki",
                    keys.SIDECAR_LISTEN_ADDRESSES: "0.0.0.0", keys.ENABLE_API_LOGGING: "true"})
    settings, args = cli.settings_from_args(sidecar_of(inject(pod))["args"], environ={})
    assert (settings.limits.graceful_shutdown, settings.limits.block_shutdown) == (25.0, 10.0)
    assert (settings.limits.max_body_size, settings.limits.read_buffer_size) == (16 << 20, 32 << 10)
    assert settings.listen_addresses == ["0.0.0.0"]
    assert settings.enable_api_logging is True
    assert cli.ignored_flags(args) == []


def test_api_logging_off_is_passed_explicitly(make_pod: PodFactory, inject: Inject, sidecar_of: SidecarOf) -> None:
    # daprd's injector too: "false" must override a Configuration that turns API logging on.
    args = sidecar_of(inject(make_pod({keys.ENABLE_API_LOGGING: "false"})))["args"]
    assert "--enable-api-logging=false" in args
    assert cli.settings_from_args(args, environ={})[0].enable_api_logging is False


def test_legacy_size_annotations_are_mib_and_kib(make_pod: PodFactory, inject: Inject, sidecar_of: SidecarOf) -> None:
    pod = make_pod({keys.HTTP_MAX_REQUEST_SIZE: "8", keys.HTTP_READ_BUFFER_SIZE: "16"})
    settings, _ = cli.settings_from_args(sidecar_of(inject(pod))["args"], environ={})
    assert (settings.limits.max_body_size, settings.limits.read_buffer_size) == (8 << 20, 16 << 10)
    both = make_pod({keys.HTTP_MAX_REQUEST_SIZE: "8", keys.MAX_BODY_SIZE: "1Mi"})
    settings, _ = cli.settings_from_args(sidecar_of(inject(both))["args"], environ={})
    assert settings.limits.max_body_size == 1 << 20  # the quantity wins, as in daprd


def test_env_from_secret_becomes_secret_key_refs(make_pod: PodFactory, inject: Inject, sidecar_of: SidecarOf) -> None:
    pod = make_pod({keys.ENV_FROM_SECRET: "OPENAI_API_KEY=openai, ANTHROPIC_API_KEY=llm-keys:anthropic",
                    keys.ENV: "PLAIN=1"})
    env = {e["name"]: e for e in sidecar_of(inject(pod))["env"]}
    assert env["OPENAI_API_KEY"] == {"name": "OPENAI_API_KEY",
                                     "valueFrom": {"secretKeyRef": {"name": "openai", "key": "openai"}}}
    assert env["ANTHROPIC_API_KEY"] == {"name": "ANTHROPIC_API_KEY",
                                        "valueFrom": {"secretKeyRef": {"name": "llm-keys", "key": "anthropic"}}}
    assert env["PLAIN"] == {"name": "PLAIN", "value": "1"}


def test_volume_mounts_put_the_pods_own_volumes_into_the_sidecar(
    make_pod: PodFactory, inject: Inject, sidecar_of: SidecarOf,
) -> None:
    volumes = [{"name": "ca-bundle", "configMap": {"name": "corp-ca"}}, {"name": "scratch", "emptyDir": {}}]
    pod = make_pod({keys.VOLUME_MOUNTS: "ca-bundle:/etc/corp-ca", keys.VOLUME_MOUNTS_RW: "scratch:/tmp/scratch"},
                   volumes=volumes)
    injected = inject(pod)
    mounts = {m["name"]: m for m in sidecar_of(injected)["volumeMounts"]}
    assert mounts["ca-bundle"] == {"name": "ca-bundle", "mountPath": "/etc/corp-ca", "readOnly": True}
    assert mounts["scratch"] == {"name": "scratch", "mountPath": "/tmp/scratch", "readOnly": False}
    # The pod's volumes are only referenced, never copied or changed.
    assert [v for v in injected["spec"]["volumes"] if v["name"] in ("ca-bundle", "scratch")] == volumes


def test_unix_domain_socket_path_shares_an_in_memory_directory(
    make_pod: PodFactory, inject: Inject, sidecar_of: SidecarOf,
) -> None:
    pod = make_pod({keys.UNIX_DOMAIN_SOCKET_PATH: "/tmp/dapr"}, containers=[
        {"name": "app", "image": "app:1"},
        {"name": "worker", "image": "w:1", "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
    ], volumes=[{"name": "data", "emptyDir": {}}])
    injected = inject(pod)
    assert {"name": "dapr-unix-domain-socket", "emptyDir": {"medium": "Memory"}} in injected["spec"]["volumes"]
    sidecar = sidecar_of(injected)
    assert {"name": "dapr-unix-domain-socket", "mountPath": "/var/run/dapr-sockets"} in sidecar["volumeMounts"]
    app, worker = injected["spec"]["containers"][:2]
    assert app["volumeMounts"] == [{"name": "dapr-unix-domain-socket", "mountPath": "/tmp/dapr"}]
    assert worker["volumeMounts"] == [{"name": "data", "mountPath": "/data"},
                                      {"name": "dapr-unix-domain-socket", "mountPath": "/tmp/dapr"}]
    settings, _ = cli.settings_from_args(sidecar["args"], environ={})
    assert settings.unix_domain_socket == Path("/var/run/dapr-sockets")


def test_a_long_shutdown_gets_a_long_enough_grace_period(make_pod: PodFactory, inject: Inject) -> None:
    # An LLM call of 20 s must finish in a rollout: Kubernetes' 30 s would kill the sidecar first.
    injected = inject(make_pod({keys.GRACEFUL_SHUTDOWN_SECONDS: "30", keys.BLOCK_SHUTDOWN_DURATION: "10s"}))
    assert injected["spec"]["terminationGracePeriodSeconds"] == 10 + 30 + 5
    # The API server fills in the default (30) before admission: that is raised the same way.
    defaulted = inject(make_pod({keys.GRACEFUL_SHUTDOWN_SECONDS: "30"}, terminationGracePeriodSeconds=30))
    assert defaulted["spec"]["terminationGracePeriodSeconds"] == 30 + 5


def test_the_pods_own_grace_period_and_short_shutdowns_are_left_alone(make_pod: PodFactory, inject: Inject) -> None:
    own = inject(make_pod({keys.GRACEFUL_SHUTDOWN_SECONDS: "60"}, terminationGracePeriodSeconds=90))
    assert own["spec"]["terminationGracePeriodSeconds"] == 90
    short = inject(make_pod({keys.GRACEFUL_SHUTDOWN_SECONDS: "20"}))
    assert "terminationGracePeriodSeconds" not in short["spec"]  # 20 + 5 fits in Kubernetes' 30 s
    assert "terminationGracePeriodSeconds" not in inject(make_pod())["spec"]


def test_app_port_is_passed_on_but_changes_nothing(make_pod: PodFactory, inject: Inject, sidecar_of: SidecarOf) -> None:
    # A conversation sidecar never calls its app; the flag is accepted, and named as not applying.
    args = sidecar_of(inject(make_pod({keys.APP_PORT: "8080"})))["args"]
    assert args[args.index("--app-port") + 1] == "8080"
    assert cli.ignored_flags(cli.settings_from_args(args, environ={})[1]) == ["--app-port"]


def test_workers_annotation_becomes_the_workers_flag(make_pod: PodFactory, inject: Inject, sidecar_of: SidecarOf) -> None:
    args = sidecar_of(inject(make_pod({keys.SIDECAR_WORKERS: "2"})))["args"]
    assert args[args.index("--workers") + 1] == "2"
    settings, parsed = cli.settings_from_args(args, environ={})
    assert settings.workers == 2 and cli.ignored_flags(parsed) == []
    # One worker, the default, is daprd's command line: no flag at all.
    assert "--workers" not in sidecar_of(inject(make_pod({keys.SIDECAR_WORKERS: "1"})))["args"]
    assert "--workers" not in sidecar_of(inject(make_pod({})))["args"]
