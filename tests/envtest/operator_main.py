"""Run parley-operator the way its Deployment does, but on loopback for the envtest tier.

    python -m tests.envtest.operator_main WORK_DIR [parley-operator flags...]

Identical to the ``parley-operator`` console script (same flags, same environment variables,
``KUBECONFIG`` holding the ServiceAccount token it logs in with) except for what a pod gets from
its network namespace and a test cannot: every listener binds 127.0.0.1 instead of 0.0.0.0, the
serving certificate also names 127.0.0.1 (the API server calls the webhooks at that address), the
certificate work dir is under WORK_DIR, and kopf's liveness endpoint (hard-wired to 0.0.0.0) is off.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

from parley_operator import cli
from parley_operator.app import Operator


async def _run(work_dir: Path, argv: list[str]) -> None:
    settings = cli.settings_from_args(argv)
    settings.webhook.addr = settings.stream.addr = settings.metrics_addr = "127.0.0.1"
    settings.health_port = 0
    settings.certs.extra_sans = ("127.0.0.1",)
    settings.certs.work_dir = work_dir / "tls"
    settings.certs.mounted_dir = work_dir / "no-cert-manager"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await Operator(settings).run(stop_flag=stop)


def main() -> None:
    work_dir, argv = Path(sys.argv[1]), sys.argv[2:]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    asyncio.run(_run(work_dir, argv))


if __name__ == "__main__":
    main()
