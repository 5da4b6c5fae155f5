"""Time to ready and idle RSS of the sidecar, this checkout against another one, alternating.

    python -m bench.startup --baseline DIR [--starts 10] [--setups echo,every] [--env NAME=VALUE ...]
                              [--python PATH] [--daprd]

Each start runs ``python -m parley_sidecar`` (the argv of ``bench.vs_daprd``) and times exec → the
first 2xx from ``/v1.0/healthz`` and the CPU time the process spent by then (moved less by the
neighbours' load than the wall time; clock ticks of 10 ms); one second later it reads the process's ``VmRSS``,
then times the process's first gRPC call (a channel opened, ``GetMetadata`` answered: the sidecar
imports its HTTP/2 half on its first gRPC connection) and reads ``VmRSS`` again. Starts
alternate between the two checkouts (base, this, this, base, …) so that a neighbour's load on this
shared machine falls on both alike; the figures printed are the median and the range, with the
load average before and after. ``--baseline DIR`` puts ``DIR/sidecar`` first on ``PYTHONPATH``
(e.g. ``git worktree add --detach /tmp/base HEAD~1``).

Both checkouts' ``sidecar/`` trees are byte-compiled first (``compileall``; ``--no-compile`` skips
it), as ``pip install`` does in the image: this machine sets ``PYTHONDONTWRITEBYTECODE=1``, so a
module without a current ``.pyc`` is compiled from source at every start, which would time the
compiler (tens of ms, and ~1 MB of RSS per large module) instead of the sidecar.

``--env NAME=VALUE`` (repeatable) adds a third variant, ``env``: this checkout started with those
variables too, e.g. an image setting such as ``--env MALLOC_ARENA_MAX=2`` (measured in round 5 of
docs/performance.md, not taken).

``--python PATH`` adds the variant ``py``: this checkout started by another interpreter, e.g. the
kind of build the images ship (``bench.shipped_python``) against the development venv's.

``--daprd`` adds daprd (tests/daprd/build.sh's build, or ``PARLEY_DAPRD``) to the ``echo`` setup's
starts, with the same Component file: the issue's "idle RSS ≤ daprd's" in the same minutes.

Setups: ``echo`` (one echo Component, the issue's "idle RSS with echo") and ``every`` (one Component
of every type in the catalog, their upstreams never called, the issue's "≤ 60 MB with one component
of every type loaded").
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.conformance.servers import daprd_flags, find_daprd
from tests.manifests import component_yaml

from bench import harness

# The metadata each type needs to load; endpoints point at a closed loopback port (never called).
_EVERY: dict[str, dict[str, str]] = {
    "conversation.echo": {},
    "conversation.openai": {"key": "sk-bench", "endpoint": "http://127.0.0.1:9/v1"},
    "conversation.anthropic": {"key": "sk-bench", "endpoint": "http://127.0.0.1:9"},
    "conversation.googleai": {"key": "sk-bench", "endpoint": "http://127.0.0.1:9/v1"},
    "conversation.huggingface": {"key": "sk-bench", "endpoint": "http://127.0.0.1:9/v1"},
    "conversation.mistral": {"key": "sk-bench", "endpoint": "http://127.0.0.1:9/v1"},
    "conversation.ollama": {"endpoint": "http://127.0.0.1:9/v1"},
    "conversation.deepseek": {"key": "sk-bench", "endpoint": "http://127.0.0.1:9"},
    "conversation.aws.bedrock": {"accessKey": "AKIDBENCH", "secretKey": "bench", "endpoint": "http://127.0.0.1:9"},
}


def write_components(directory: Path, setup: str) -> Path:
    types = {"echo": ["conversation.echo"], "every": list(_EVERY)}[setup]
    for type_name in types:
        name = type_name.removeprefix("conversation.").replace(".", "-")
        (directory / f"{name}.yaml").write_text(component_yaml(name, type_name, _EVERY[type_name]))
    return directory


def first_grpc_call(port: int) -> float:
    """Seconds from opening a channel to the answer of the process's first gRPC call (``GetMetadata``):
    the sidecar imports its HTTP/2 half on its first gRPC connection (round 8)."""
    import grpc

    started = time.perf_counter()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        channel.unary_unary("/dapr.proto.runtime.v1.Dapr/GetMetadata")(b"", timeout=10, wait_for_ready=True)
    return time.perf_counter() - started


def one_start(resources: Path, env: dict[str, str] | None, daprd: Path | None = None,
              python: str | None = None) -> tuple[float, float, float, float, float]:
    """(exec → ready in s, CPU time spent by then in s, idle RSS one second later in MB, the first
    gRPC call's time in s, RSS half a second after it in MB); with ``daprd``, that binary is
    started instead of the sidecar, with the same Component files; with ``python``, the sidecar
    runs on that interpreter."""
    ports = {k: harness.free_port() for k in ("http", "grpc", "metrics", "internal", "public")}
    if daprd is not None:
        argv = [str(daprd), *daprd_flags("bench", resources, ports), "--log-level", "warn"]
    else:
        argv = harness.sidecar_argv(ports["http"], ports["grpc"], ports["metrics"], ports["public"], resources,
                                    python)
    with harness.serve(argv, f"http://127.0.0.1:{ports['http']}/v1.0/healthz", "", env=env) as server:
        cpu = harness.cpu_seconds(server.proc.pid)
        time.sleep(1.0)
        idle = server.rss_mb
        call = first_grpc_call(ports["grpc"])
        time.sleep(0.5)
        return server.ready_s, cpu, idle, call, server.rss_mb


def _summary(values: list[float], unit: str, digits: int) -> str:
    return (f"median {statistics.median(values):.{digits}f} {unit}, "
            f"range {min(values):.{digits}f}-{max(values):.{digits}f}")


def compile_tree(checkout: Path) -> None:
    """Write current ``.pyc`` files for ``checkout/sidecar`` (untracked, git-ignored)."""
    if not compileall.compile_dir(checkout / "sidecar", quiet=1):
        sys.exit(f"compileall failed under {checkout / 'sidecar'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--baseline", type=Path, default=None, metavar="DIR")
    parser.add_argument("--starts", type=int, default=10, help="starts per checkout and setup")
    parser.add_argument("--setups", default="echo,every")
    parser.add_argument("--no-compile", action="store_true", help="leave the .pyc files as they are")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="also start this checkout with these variables (the 'env' variant)")
    parser.add_argument("--python", default=None, metavar="PATH",
                        help="also start this checkout on that interpreter (the 'py' variant)")
    parser.add_argument("--daprd", action="store_true", help="also start daprd (setup echo only: its build has no other type)")
    args = parser.parse_args()
    daprd_bin = None
    if args.daprd:
        daprd_bin, missing = find_daprd()
        if daprd_bin is None:
            sys.exit(missing)
    if not args.no_compile:
        compile_tree(harness.ROOT)
        if args.baseline is not None:
            compile_tree(args.baseline.resolve())
    checkouts: dict[str, dict[str, str] | None] = {"this": None}
    if args.baseline is not None:
        checkouts = {"base": {"PYTHONPATH": str(args.baseline.resolve() / "sidecar")}, "this": None}
    if args.env:
        checkouts["env"] = dict(item.split("=", 1) for item in args.env)
    if args.python:
        checkouts["py"] = None
    print(f"load average before: {os.getloadavg()}", flush=True)
    for setup in args.setups.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            resources = write_components(Path(tmp), setup)
            variants = [*checkouts, *(["daprd"] if daprd_bin is not None and setup == "echo" else [])]
            ready: dict[str, list[float]] = {name: [] for name in variants}
            cpu: dict[str, list[float]] = {name: [] for name in variants}
            rss: dict[str, list[float]] = {name: [] for name in variants}
            call: dict[str, list[float]] = {name: [] for name in variants}
            called_rss: dict[str, list[float]] = {name: [] for name in variants}
            order = variants
            for i in range(args.starts):
                # base, this, this, base, …: drifting load falls on every variant alike.
                for name in order if i % 2 == 0 else order[::-1]:
                    r, c, m, g, gm = (one_start(resources, None, daprd_bin) if name == "daprd"
                                      else one_start(resources, None, python=args.python) if name == "py"
                                      else one_start(resources, checkouts[name]))
                    ready[name].append(r)
                    cpu[name].append(c)
                    rss[name].append(m)
                    call[name].append(g * 1000)
                    called_rss[name].append(gm)
            for name in variants:
                print(f"{setup:5} {name:5}  ready {_summary(ready[name], 's', 3)}; "
                      f"CPU to ready {_summary(cpu[name], 's', 2)}; "
                      f"idle RSS {_summary(rss[name], 'MB', 1)}; first gRPC call {_summary(call[name], 'ms', 1)}, "
                      f"RSS after it {_summary(called_rss[name], 'MB', 1)}", flush=True)
    print(f"load average after: {os.getloadavg()}", file=sys.stdout)


if __name__ == "__main__":
    main()
