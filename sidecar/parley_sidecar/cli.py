"""``parley-sidecar``: daprd's command line, so anything that starts daprd can start parley.

Every daprd flag is accepted (spelled ``--flag value``, ``--flag=value`` or Go's ``-flag``). Flags
that parley uses fill :class:`SidecarSettings`; the rest do not apply (actors, placement, app
channel …) and are named in one log line. Environment variables as daprd: ``DAPR_API_TOKEN``,
``NAMESPACE``.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from parley_sidecar import durations
from parley_sidecar.settings import RUNTIME_VERSION, SidecarSettings

__all__ = ["build_parser", "main", "settings_from_args"]

log = logging.getLogger("parley.cli")

# daprd flags (cmd/daprd/options/options.go, dapr/kit logger and metrics options) that do not apply
# to a conversation-only sidecar. Accepted so `dapr run` and injectors can pass them.
IGNORED_VALUE_FLAGS = (
    "dapr-internal-grpc-port", "dapr-internal-grpc-listen-address", "app-port", "profile-port",
    "app-protocol", "control-plane-trust-domain", "control-plane-namespace",
    "sentry-address", "sentry-request-jwt-audiences", "allowed-origins", "app-max-concurrency",
    "app-health-check-path",
    "app-health-probe-interval", "app-health-probe-timeout", "app-health-threshold", "app-channel-address",
    "disable-init-endpoints", "placement-host-address", "scheduler-host-address", "scheduler-job-streams",
    "actors-disseminate-timeout", "hot-reload-reconcile-interval", "app-binding-options-timeout",
    "reminders-service", "actors-service", "metrics-push-endpoint",
)
IGNORED_BOOL_FLAGS = (
    "enable-profiling", "build-info", "wait", "enable-mtls", "app-ssl", "disable-builtin-k8s-secret-store",
    "enable-app-health-check", "metrics-push-enable",
)


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1", "t", "yes"):
        return True
    if lowered in ("false", "0", "f", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is out of range")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {value}")
    return value


def _size(flag: str, text: str) -> int:
    try:
        value = durations.parse_size(text)
    except ValueError as exc:
        raise SystemExit(f"parley-sidecar: {flag}: {exc}") from None
    if value <= 0:
        raise SystemExit(f"parley-sidecar: {flag}: must be above 0, got {text!r}")
    return value


def _duration(text: str) -> float:
    try:
        seconds = durations.parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"duration {text!r} is negative")
    return seconds


def _env_workers(env: Mapping[str, str]) -> int:
    raw = env.get("PARLEY_WORKERS", "")
    try:
        return _positive(raw) if raw else 1
    except argparse.ArgumentTypeError as exc:
        raise SystemExit(f"parley-sidecar: PARLEY_WORKERS: {exc}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="parley-sidecar",
        description="Dapr's conversation API as a sidecar (daprd-compatible flags).",
        allow_abbrev=False,
    )
    p.add_argument("--app-id", default="", help="The application's id (required by daprd; defaults to 'parley').")
    p.add_argument("--resources-path", action="append", default=[], metavar="DIR",
                   help="Directory or file of Component YAML; repeatable.")
    p.add_argument("--components-path", action="append", default=[], metavar="DIR",
                   help="Deprecated alias of --resources-path.")
    p.add_argument("--dapr-http-port", type=_port, default=int(os.environ.get("DAPR_HTTP_PORT", 3500)))
    p.add_argument("--dapr-grpc-port", type=_port, default=int(os.environ.get("DAPR_GRPC_PORT", 50001)))
    p.add_argument("--metrics-port", type=_port, default=int(os.environ.get("DAPR_METRICS_PORT", 9090)))
    p.add_argument("--dapr-public-port", type=_port, default=3501)
    p.add_argument("--dapr-listen-addresses", default="", help="Comma-separated API listen addresses.")
    p.add_argument("--dapr-public-listen-address", default="")
    p.add_argument("--metrics-listen-address", default="0.0.0.0")
    p.add_argument("--enable-metrics", type=_bool, nargs="?", const=True, default=True)
    p.add_argument("--mode", default="standalone", help="standalone or kubernetes (daprd's).")
    p.add_argument("--config", default="", metavar="FILE", help="Dapr Configuration resource (YAML).")
    p.add_argument("--enable-api-logging", type=_bool, nargs="?", const=True, default=None,
                   help="Log one line per API call (overrides spec.logging.apiLogging.enabled).")
    p.add_argument("--log-level", default="info", help="debug, info, warn, error or fatal.")
    p.add_argument("--log-as-json", type=_bool, nargs="?", const=True, default=False)
    # None when not given: daprd lets the quantity flags win over their deprecated integer forms.
    p.add_argument("--max-body-size", default=None, help="Largest request body, e.g. 4Mi (default 4Mi).")
    p.add_argument("--dapr-http-max-request-size", type=_positive, default=None, help="Deprecated: MiB.")
    p.add_argument("--read-buffer-size", default=None,
                   help="Largest request head, e.g. 4Ki (default 4Ki; Go's 4 KiB of slack are added).")
    p.add_argument("--dapr-http-read-buffer-size", type=_positive, default=None, help="Deprecated: KiB.")
    p.add_argument("--dapr-graceful-shutdown-seconds", type=int, default=5,
                   help="Seconds in-flight requests get after SIGTERM (negative: the default, 5).")
    p.add_argument("--dapr-block-shutdown-duration", type=_duration, default=0.0,
                   help="Keep serving this long after SIGTERM before shutting down, e.g. 10s (default off).")
    p.add_argument("--unix-domain-socket", default="", metavar="DIR",
                   help="Serve the HTTP and gRPC APIs on unix sockets in DIR instead of TCP.")
    # parley's own (daprd fixes or lacks these): Go durations such as 10s, 1m.
    p.add_argument("--http-read-header-timeout", type=_duration, default="10s",
                   help="Close an HTTP connection that has not sent a complete request head in this time (0: never).")
    p.add_argument("--http-idle-timeout", type=_duration, default="60s",
                   help="Close an HTTP keep-alive connection idle for this long (0: never).")
    p.add_argument("--grpc-max-connection-idle", type=_duration, default="3m",
                   help="Send GOAWAY to a gRPC connection with no call for this long (0: never).")
    # Default None: PARLEY_WORKERS is read with the rest of the environment (settings_from_args),
    # so that a bad value fails a start, not --help or --version.
    p.add_argument("--workers", type=_positive, default=None,
                   help="Processes serving the API, sharing its ports (default 1, or PARLEY_WORKERS); see "
                        "docs/sidecar.md, Worker processes.")
    p.add_argument("--control-plane-address", default="",
                   help="host:port of parley-operator's component stream (Kubernetes mode).")
    p.add_argument("--version", action="store_true", help="Print the runtime version and exit.")
    for flag in IGNORED_VALUE_FLAGS:
        p.add_argument(f"--{flag}", dest=f"ignored_{flag}", action="append", help=argparse.SUPPRESS)
    for flag in IGNORED_BOOL_FLAGS:
        p.add_argument(f"--{flag}", dest=f"ignored_{flag}", nargs="?", const="true", action="append",
                       help=argparse.SUPPRESS)
    # The Dapr CLI leaves stray positional values when it blanks a flag (dapr/cli ``pkg/standalone/run.go``).
    p.add_argument("stray", nargs="*", help=argparse.SUPPRESS)
    return p


_GO_FLAG = re.compile(r"-[a-z][a-z0-9-]+(=.*)?", re.DOTALL)


def _normalise(argv: Sequence[str]) -> list[str]:
    """Go's flag package also accepts ``-flag``; argparse wants ``--flag``."""
    return [f"-{a}" if _GO_FLAG.fullmatch(a) else a for a in argv]


def settings_from_args(
    argv: Sequence[str], environ: Mapping[str, str] | None = None
) -> tuple[SidecarSettings, argparse.Namespace]:
    env = os.environ if environ is None else environ
    args = build_parser().parse_args(_normalise(argv))
    s = SidecarSettings()
    s.app_id = args.app_id or "parley"
    s.resources_paths = [Path(p) for p in (*args.resources_path, *args.components_path)]
    s.ports.http, s.ports.grpc = args.dapr_http_port, args.dapr_grpc_port
    s.ports.metrics, s.ports.public = args.metrics_port, args.dapr_public_port
    if args.dapr_listen_addresses:
        s.listen_addresses = [a.strip() for a in args.dapr_listen_addresses.split(",") if a.strip()]
    s.public_listen_address = args.dapr_public_listen_address or s.public_listen_address
    s.metrics_listen_address = args.metrics_listen_address
    s.enable_metrics = args.enable_metrics
    s.logging.level, s.logging.as_json = args.log_level, args.log_as_json
    if args.max_body_size is not None:
        s.limits.max_body_size = _size("--max-body-size", args.max_body_size)
    elif args.dapr_http_max_request_size is not None:
        s.limits.max_body_size = args.dapr_http_max_request_size << 20
    if args.read_buffer_size is not None:
        s.limits.read_buffer_size = _size("--read-buffer-size", args.read_buffer_size)
    elif args.dapr_http_read_buffer_size is not None:
        s.limits.read_buffer_size = args.dapr_http_read_buffer_size << 10
    if args.dapr_graceful_shutdown_seconds >= 0:  # daprd: a negative value (the injector's -1) is its default
        s.limits.graceful_shutdown = float(args.dapr_graceful_shutdown_seconds)
    s.limits.block_shutdown = args.dapr_block_shutdown_duration
    s.unix_domain_socket = Path(args.unix_domain_socket) if args.unix_domain_socket else None
    s.connections.read_header_timeout = args.http_read_header_timeout
    s.connections.idle_timeout = args.http_idle_timeout
    s.connections.grpc_max_idle = args.grpc_max_connection_idle
    s.api_token = env.get("DAPR_API_TOKEN", "")
    s.namespace = env.get("NAMESPACE", "")
    s.operator.address = args.control_plane_address or env.get("PARLEY_OPERATOR_ADDRESS", "")
    s.operator.namespace = s.namespace
    if args.mode == "kubernetes":
        # There --config names a Configuration resource the operator would deliver, not a file.
        s.kubernetes_config = args.config
    else:
        s.config_file = Path(args.config) if args.config else None
    s.enable_api_logging = args.enable_api_logging
    s.workers = args.workers if args.workers is not None else _env_workers(env)
    return s, args


def ignored_flags(args: argparse.Namespace) -> list[str]:
    return sorted(
        f"--{key.removeprefix('ignored_').replace('_', '-')}"
        for key, value in vars(args).items()
        if key.startswith("ignored_") and value is not None
    )


def main(argv: Sequence[str] | None = None) -> None:
    settings, args = settings_from_args(sys.argv[1:] if argv is None else argv)
    if args.version:
        print(RUNTIME_VERSION)
        return
    # Start-up allocates some 80,000 long-lived objects (modules, classes, servers) and almost no
    # garbage: the cyclic collector's passes over that growing heap cost ~20 ms of the start and
    # free next to nothing. runtime turns it back on once started, after freezing what start built.
    gc.disable()
    try:
        _start(settings, args)
    finally:  # a start that failed never reached runtime's enable; a caller in-process keeps its collector
        gc.enable()


def _start(settings: SidecarSettings, args: argparse.Namespace) -> None:
    from parley_sidecar import logs, runtime

    try:
        logs.setup(settings.logging.level, as_json=settings.logging.as_json, app_id=settings.app_id)
    except ValueError as exc:
        raise SystemExit(f"parley-sidecar: --log-level: {exc}") from None
    skipped = ignored_flags(args)
    if skipped:
        log.info("ignoring daprd flags that do not apply to parley: %s", " ".join(skipped))
    if args.stray:
        log.info("ignoring %d stray positional argument(s)", len(args.stray))
    if settings.workers > 1:
        from parley_sidecar import workers

        workers.run(settings)
    else:
        runtime.run(settings)
