"""Instructions from exec to the end of ``Sidecar.start``, this checkout against another one (callgrind).

    python -m bench.startup_instructions --baseline DIR [--runs 1] [--setups echo,every]

The CPU time that ``bench.startup`` reads moves by tens of ms with the neighbours' load on a shared
machine; an instruction count does not (two runs of one checkout agree within ~0.1 %), so it tells
variants apart that differ by a few ms. Each run starts ``python -m bench.startup_probe``
under ``valgrind --tool=callgrind`` (~25 s a run): the probe runs the sidecar's command line (the
argv of ``bench.startup``, every port chosen by the OS) and leaves with ``os._exit(0)`` as soon as
``Sidecar.start`` returns (health would answer 204 from then on), so the count covers the
interpreter, the imports, the Components' load and the listeners, not the shutdown. Threads are
counted too (gRPC's, the resolver's). ``.pyc`` files are written first, as ``bench.startup`` does.
Setups as ``bench.startup``: ``echo`` and ``every``.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import harness
from bench.startup import compile_tree, write_components

_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def count(checkout: Path, resources: Path) -> int:
    """Instructions (callgrind's ``I refs``) of one start of ``checkout``'s sidecar."""
    argv = harness.sidecar_argv(0, 0, 0, 0, resources)[3:]  # without python -m parley_sidecar
    env = {**os.environ, "PYTHONPATH": f"{checkout / 'sidecar'}{os.pathsep}{harness.ROOT}"}
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         "-m", "bench.startup_probe", *argv],
        check=False, env=env, cwd=harness.ROOT, capture_output=True, text=True, timeout=300)
    found = _REFS.search(done.stderr)
    if found is None:
        sys.exit(f"no instruction count from callgrind for {checkout}:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--baseline", type=Path, default=None, metavar="DIR")
    parser.add_argument("--runs", type=int, default=1, help="starts per checkout and setup")
    parser.add_argument("--setups", default="echo,every")
    args = parser.parse_args()
    checkouts = {"this": harness.ROOT}
    if args.baseline is not None:
        checkouts = {"base": args.baseline.resolve(), **checkouts}
    for checkout in checkouts.values():
        compile_tree(checkout)
    for setup in args.setups.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            resources = write_components(Path(tmp), setup)
            counts = {name: [count(path, resources) for _ in range(args.runs)] for name, path in checkouts.items()}
        for name, values in counts.items():
            line = f"{setup:5} {name:4}  {statistics.median(values) / 1e6:,.1f} M instructions to the end of start"
            if name == "this" and "base" in counts:
                change = statistics.median(values) / statistics.median(counts["base"]) - 1
                line += f" ({change:+.1%} against base)"
            print(line, flush=True)


if __name__ == "__main__":
    main()
