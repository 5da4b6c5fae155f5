"""Streams chat completions and times every piece: the load side of ``bench.streaming``.

    python -m bench.stream_client URL MODEL --concurrency N --seconds S [--stagger-ms T]
    python -m bench.stream_client URL MODEL --hold N      # open N streams, report when all are open

Each of N workers streams one completion after another for S seconds and records the time to
the first content chunk (from sending the request) and every gap between content chunks. Prints
one JSON line: ``ttft`` and ``gap`` percentiles in ms, streams completed, errors.

All workers start at once by default, and with streams of equal length they stay in lock-step:
every chunk interval the N streams' chunks reach the server in one burst, and a new stream's first
chunk queues behind the burst's relays. ``--stagger-ms T`` starts worker i at ``i * T / N`` ms
instead (T about one stream's length), so arrivals are spread as independent users' would be.
``--hold``
opens N streams at once, prints ``{"open": N}`` when each has its first content chunk, then reads
them to the end (the caller measures the server's memory in between).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import aiohttp


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _one(session: aiohttp.ClientSession, url: str, body: bytes, ttfts: list[float], gaps: list[float],
               first_seen: asyncio.Event | None = None) -> None:
    started = time.perf_counter()
    last = 0.0
    async with session.post(url, data=body, headers={"Content-Type": "application/json",
                                                      "Authorization": "Bearer sk-bench"}) as response:
        if response.status != 200:
            raise RuntimeError(f"status {response.status}: {(await response.text())[:200]}")
        async for line in response.content:
            if not line.startswith(b"data: {"):
                continue
            chunk = json.loads(line[6:])
            choices = chunk.get("choices") or []
            if not choices or not choices[0].get("delta", {}).get("content"):
                continue
            now = time.perf_counter()
            if last == 0.0:
                ttfts.append((now - started) * 1000)
                if first_seen is not None:
                    first_seen.set()
            else:
                gaps.append((now - last) * 1000)
            last = now


async def run(args: argparse.Namespace) -> dict[str, float]:
    body = json.dumps({"model": args.model, "stream": True, "stream_options": {"include_usage": True},
                       "messages": [{"role": "user", "content": "Tell me a story."}]}).encode()
    ttfts: list[float] = []
    gaps: list[float] = []
    errors = 0
    completed = 0
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        if args.hold:
            seen = [asyncio.Event() for _ in range(args.hold)]
            tasks = [asyncio.create_task(_one(session, args.url, body, ttfts, gaps, seen[i])) for i in range(args.hold)]
            await asyncio.wait_for(asyncio.gather(*(event.wait() for event in seen)), 120)
            print(json.dumps({"open": args.hold}), flush=True)
            results = await asyncio.gather(*tasks, return_exceptions=True)
            errors = sum(1 for result in results if isinstance(result, BaseException))
            return {"open": args.hold, "errors": errors}
        # the load lasts --seconds after the last worker has started
        all_started = time.perf_counter() + args.stagger_ms / 1000
        deadline = all_started + args.seconds

        async def worker(index: int) -> None:
            nonlocal errors, completed
            await asyncio.sleep(index * args.stagger_ms / 1000 / args.concurrency)
            while time.perf_counter() < deadline:
                # a stream started while workers are still starting runs at a lower concurrency: not counted
                counted = time.perf_counter() >= all_started
                try:
                    await _one(session, args.url, body, ttfts if counted else [], gaps if counted else [])
                    completed += counted
                except Exception as exc:  # counted; the first few are shown
                    errors += 1
                    if errors <= 3:
                        print(f"stream failed: {exc!r}", file=sys.stderr)

        await asyncio.gather(*(worker(i) for i in range(args.concurrency)))
    return {"streams": completed, "errors": errors,
            "ttft_p50": percentile(ttfts, 0.50), "ttft_p99": percentile(ttfts, 0.99),
            "gap_p50": percentile(gaps, 0.50), "gap_p99": percentile(gaps, 0.99)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.stream_client")
    parser.add_argument("url")
    parser.add_argument("model")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--hold", type=int, default=0)
    parser.add_argument("--stagger-ms", type=float, default=0.0,
                        help="start the workers spread evenly over this many ms (0: all at once)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
