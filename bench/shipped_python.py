"""The interpreter parley ships with, for the benches: a venv of Debian's ``/usr/bin/python3``.

    python -m bench.shipped_python [--base /usr/bin/python3]     # prints its python's path
    PARLEY_BENCH_PYTHON=$(python -m bench.shipped_python) python -m bench.cpu_per_request ...
    python -m bench.startup --python "$(python -m bench.shipped_python)" --daprd

Why: the development venv (``.ci/run``) is made by whatever ``python3`` comes first on the PATH;
on this machine that is a pyenv build configured without ``--enable-optimizations`` or LTO. The
images run an optimized build: the real-node tier's is Debian bookworm's ``python3``
(``tests/cluster/images.sh``), the published one ``python:3.11-slim``, both built with
profile-guided optimization. Timing parley on the first undersells what a pod runs, so the benches
can start parley with the second: ``harness.sidecar_argv`` honours ``PARLEY_BENCH_PYTHON``.

The venv lives under ``~/.cache/parley`` and is built once per ``pyproject.toml``: this checkout
installed editable with the image's extras (``fast``, ``tracing``), plus the ``dapr`` package,
whose stubs ``bench.grpc_load`` calls with. ``--baseline DIR`` runs still put ``DIR/sidecar``
first on ``PYTHONPATH``, so both checkouts run on the same interpreter.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from bench import harness


def build(base: str) -> Path:
    """The venv's python, made (or remade when ``pyproject.toml`` or ``base`` changed) first."""
    key = hashlib.sha256((harness.ROOT / "pyproject.toml").read_bytes() + base.encode()).hexdigest()[:12]
    venv = Path.home() / ".cache" / "parley" / f"shipped-python-{key}"
    python = venv / "bin" / "python"
    if (venv / ".done").exists():
        return python
    shutil.rmtree(venv, ignore_errors=True)
    print(f"bench.shipped_python: building {venv} from {base}", file=sys.stderr)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-e", f"{harness.ROOT}[fast,tracing]",
                    "dapr>=1.19,<1.20"], check=True)
    (venv / ".done").touch()
    return python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--base", default="/usr/bin/python3", help="the interpreter to make the venv from")
    print(build(parser.parse_args().base))


if __name__ == "__main__":
    main()
