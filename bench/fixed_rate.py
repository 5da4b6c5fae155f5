"""HTTP POSTs at a fixed rate for a fixed time (wrk has no fixed-rate mode).

    python -m bench.fixed_rate URL BODY_JSON --rate 500 --seconds 5

Open loop: requests start on schedule whatever the answers; latency counts from the scheduled
start (no coordinated omission). Prints one JSON line ``{"rps", "p50_ms", "p99_ms", "errors"}``;
non-2xx answers count as errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp

from bench.grpc_load import summary


async def run(url: str, body: bytes, rate: float, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=256)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(20):  # connect and warm up
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
        begin = time.perf_counter() + 0.05

        async def one(scheduled: float) -> None:
            nonlocal errors
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    ok = resp.status < 300
            except aiohttp.ClientError:
                ok = False
            if not ok:
                errors += 1
                return
            latencies.append(time.perf_counter() - scheduled)

        await asyncio.gather(*(one(begin + i / rate) for i in range(int(rate * seconds))))
        return summary(latencies, time.perf_counter() - begin, errors)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("body")
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(run(args.url, args.body.encode(), args.rate, args.seconds))))


if __name__ == "__main__":
    main()
