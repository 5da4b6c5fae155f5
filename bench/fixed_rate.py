"""HTTP POSTs at a fixed rate for a fixed time (wrk has no fixed-rate mode).

    python -m bench.fixed_rate URL BODY_JSON --rate 500 --seconds 5

Open loop: requests start on schedule whatever the answers; latency counts from the scheduled
start (no coordinated omission). Prints one JSON line ``{"rps", "p50_ms", "p99_ms", "errors"}``;
non-2xx answers count as errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json

import aiohttp

from bench.grpc_load import install_uvloop, open_loop


class _NotOK(Exception):
    """A non-2xx answer: counted as an error, like a connection failure."""


async def run(url: str, body: bytes, rate: float, seconds: float) -> dict[str, float]:
    connector = aiohttp.TCPConnector(limit=256)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post() -> None:
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                if resp.status >= 300:
                    raise _NotOK

        for _ in range(20):  # connect and warm up; answers do not count yet
            with contextlib.suppress(_NotOK):
                await post()
        return await open_loop(post, rate, seconds, failures=(aiohttp.ClientError, _NotOK))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("body")
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    install_uvloop()
    print(json.dumps(asyncio.run(run(args.url, args.body.encode(), args.rate, args.seconds))))


if __name__ == "__main__":
    main()
