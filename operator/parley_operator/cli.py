"""``parley-operator``: flags and environment variables → :class:`OperatorSettings`, then run.

Every flag has an environment variable (``PARLEY_`` + the flag in upper snake case), so the
Deployment can set either. ``POD_NAMESPACE`` and ``POD_NAME`` come from the downward API.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from parley_operator.settings import OperatorSettings

__all__ = ["build_parser", "main", "settings_from_args"]

log = logging.getLogger("parley.operator")


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    d = OperatorSettings()

    def default(flag: str, value: object) -> str:
        return env.get("PARLEY_" + flag.upper().replace("-", "_"), str(value))

    p = argparse.ArgumentParser(prog="parley-operator", allow_abbrev=False,
                                description="Injects parley sidecars and delivers conversation Components to them.")
    p.add_argument("--namespace", action="append", default=[], help="Watch only this namespace; repeatable.")
    p.add_argument("--sidecar-image", default=default("sidecar-image", d.injector.sidecar_image))
    p.add_argument("--sidecar-image-pull-policy", default=default("sidecar-image-pull-policy",
                                                                  d.injector.image_pull_policy))
    p.add_argument("--native-sidecar", default=default("native-sidecar", "false"),
                   help="Inject into initContainers by default (dapr.io/enable-native-sidecar overrides).")
    p.add_argument("--service-name", default=default("service-name", d.certs.service_name))
    p.add_argument("--webhook-port", type=int, default=int(default("webhook-port", d.webhook.port)))
    p.add_argument("--stream-port", type=int, default=int(default("stream-port", d.stream.port)))
    p.add_argument("--metrics-port", type=int, default=int(default("metrics-port", d.metrics_port)))
    p.add_argument("--health-port", type=int, default=int(default("health-port", d.health_port)))
    p.add_argument("--webhook-configuration", default=default("webhook-configuration",
                                                              d.webhook.mutating_configuration),
                   help="Name of the Mutating- and ValidatingWebhookConfiguration whose caBundle to keep current.")
    p.add_argument("--cert-secret", default=default("cert-secret", d.certs.secret_name))
    p.add_argument("--cert-dir", default=default("cert-dir", d.certs.mounted_dir),
                   help="Mounted tls.crt/tls.key/ca.crt (cert-manager); generated into --cert-secret if absent.")
    p.add_argument("--work-dir", default=default("work-dir", d.certs.work_dir.parent))
    p.add_argument("--resync-seconds", type=float, default=float(default("resync-seconds", d.stream.resync)))
    p.add_argument("--log-level", default=default("log-level", "info"))
    return p


def settings_from_args(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> OperatorSettings:
    env = os.environ if environ is None else environ
    args = build_parser(env).parse_args(list(argv))
    s = OperatorSettings()
    s.namespaces = tuple(args.namespace)
    s.pod_name = env.get("POD_NAME", "")
    s.certs.namespace = env.get("POD_NAMESPACE", s.certs.namespace)
    s.certs.service_name = args.service_name
    s.certs.secret_name = args.cert_secret
    s.certs.mounted_dir = Path(args.cert_dir)
    s.certs.work_dir = Path(args.work_dir) / "tls"
    s.injector.sidecar_image = args.sidecar_image
    s.injector.image_pull_policy = args.sidecar_image_pull_policy
    s.injector.native_sidecar = args.native_sidecar.lower() in ("1", "true", "yes", "on")
    s.webhook.port = args.webhook_port
    s.webhook.mutating_configuration = s.webhook.validating_configuration = args.webhook_configuration
    s.stream.port = args.stream_port
    s.stream.resync = args.resync_seconds
    s.metrics_port = args.metrics_port
    s.health_port = args.health_port
    s.log_level = args.log_level
    s.injector.control_plane_address = f"{s.certs.service_name}.{s.certs.namespace}.svc:{s.stream.port}"
    return s


async def _run(settings: OperatorSettings) -> None:
    from parley_operator.app import Operator

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await Operator(settings).run(stop_flag=stop)


def main(argv: Sequence[str] | None = None) -> None:
    settings = settings_from_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=getattr(logging, settings.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    asyncio.run(_run(settings))
