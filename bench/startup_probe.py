"""The sidecar's command line, leaving the process the moment ``Sidecar.start`` has returned.

    python -m bench.startup_probe <parley-sidecar arguments>

What ``bench.startup_instructions`` runs under callgrind: exec → Components loaded and every
listener up (health would answer 204 from then on), without the shutdown. Imports nothing but the
sidecar, so the count is the sidecar's. ``runtime`` is imported as ``cli.main`` imports it: with
the cyclic collector off (``cli.main`` turns it off before its ``_start`` imports ``runtime``), so
the count has the collections a real start has, not those of an import done earlier.
"""

from __future__ import annotations

import gc
import os
import sys

from parley_sidecar import cli


def main() -> None:
    gc.disable()  # what cli.main does before it imports runtime; cli.main turns it off again
    from parley_sidecar import runtime

    start = runtime.Sidecar.start

    async def start_then_exit(self: runtime.Sidecar) -> None:
        await start(self)
        os._exit(0)

    runtime.Sidecar.start = start_then_exit  # type: ignore[method-assign]
    sys.argv[0] = "parley-sidecar"
    cli.main(sys.argv[1:])


if __name__ == "__main__":
    main()
