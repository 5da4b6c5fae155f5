"""The sidecar's command line, leaving the process the moment ``Sidecar.start`` has returned.

    python -m bench.startup_probe <parley-sidecar arguments>

What ``bench.startup_instructions`` runs under callgrind: exec → Components loaded and every
listener up (health would answer 204 from then on), without the shutdown. Imports nothing but the
sidecar, so the count is the sidecar's.
"""

from __future__ import annotations

import os
import sys

from parley_sidecar import cli, runtime

_start = runtime.Sidecar.start


async def _start_then_exit(self: runtime.Sidecar) -> None:
    await _start(self)
    os._exit(0)


if __name__ == "__main__":
    runtime.Sidecar.start = _start_then_exit  # type: ignore[method-assign]
    sys.argv[0] = "parley-sidecar"
    cli.main(sys.argv[1:])
