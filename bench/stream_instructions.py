"""What a stream and a relayed chunk cost the sidecar, in instructions counted by valgrind's callgrind.

    python -m bench.stream_instructions [--streams 40] [--concurrency 4]   (needs valgrind; about 30 s)

CPU time per chunk (``bench.stream_cpu``) moves by ±15 % from run to run on a shared machine;
instruction counts move by well under 1 %, so small changes to the relay path can be told apart.
The sidecar runs under callgrind (counting off until the load starts); two paced models
(``bench.stream_upstream``, no think time, 2 ms between chunks) answer with 1 and with 20 content
chunks, each behind a ``conversation.openai`` component. This process streams ``--streams``
answers from each, ``--concurrency`` at a time, through ``/v1/chat/completions`` and through
alpha2's SSE route, with callgrind's counters zeroed and dumped around each. Prints, per route:
instructions per stream of one chunk (the request, the upstream call, the response's start and
end: what a burst of stream starts queues behind) and per extra content chunk ((20-chunk −
1-chunk) / 19: what a burst of chunks queues behind). User-space instructions only: the kernel's
work for each ``send`` is not in them (``bench.stream_cpu`` prints its share).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp
from tests.manifests import component_yaml

from bench import harness

ROUTES = {
    "openai": ("/v1/chat/completions", lambda model: {
        "model": model, "stream": True, "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "Tell me a story."}]}),
    "alpha2 SSE": ("/v1.0-alpha2/conversation/{model}/converse/stream", lambda model: {
        "inputs": [{"messages": [{"ofUser": {"content": [{"text": "Tell me a story."}]}}]}]}),
}
CHUNKS = (1, 20)


async def _streams(url: str, body: bytes, streams: int, concurrency: int) -> None:
    """``streams`` answers read to their end, ``concurrency`` at a time; any failure stops the run."""
    left = [streams]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def worker() -> None:
            while left[0] > 0:
                left[0] -= 1
                async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
                    text = await resp.read()
                    if resp.status != 200 or b"error" in text:
                        raise RuntimeError(f"status {resp.status}: {text[:300]!r}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def _callgrind(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.stream_instructions")
    parser.add_argument("--streams", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        resources = Path(tmp) / "resources"
        resources.mkdir()
        ports = {chunks: harness.free_port() for chunks in CHUNKS}
        for chunks, port in ports.items():
            (resources / f"c{chunks}.yaml").write_text(component_yaml(f"c{chunks}", "conversation.openai", {
                "key": "sk-bench", "model": "gpt-4o-mini", "endpoint": f"http://127.0.0.1:{port}/v1",
                "maxConnections": "32"}))
        upstreams = [harness.serve([sys.executable, "-m", "bench.stream_upstream", str(port), "--think-ms", "0",
                                    "--chunks", str(chunks), "--gap-ms", "2"], f"http://127.0.0.1:{port}/healthz", "")
                     for chunks, port in ports.items()]
        out = Path(tmp) / "callgrind.out"
        http = harness.free_port()
        argv = harness.sidecar_argv(http, harness.free_port(), harness.free_port(), harness.free_port(), resources)
        argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}", *argv]
        base = f"http://127.0.0.1:{http}"
        with upstreams[0], upstreams[1], harness.serve(argv, f"{base}/v1.0/healthz", "", timeout=300) as sidecar:
            pid = sidecar.proc.pid
            for route, (path, body) in ROUTES.items():
                for chunks in CHUNKS:
                    url = base + path.format(model=f"c{chunks}")
                    data = json.dumps(body(f"c{chunks}")).encode()
                    asyncio.run(_streams(url, data, 8, args.concurrency))  # warm-up: imports, pools
                    _callgrind(pid, "-i", "on")
                    _callgrind(pid, "-z")
                    asyncio.run(_streams(url, data, args.streams, args.concurrency))
                    _callgrind(pid, "-d", f"{route.replace(' ', '_')}-{chunks}")
                    _callgrind(pid, "-i", "off")
        totals: dict[str, int] = {}
        for dump in Path(tmp).glob("callgrind.out*"):
            text = dump.read_text(errors="replace")
            case = re.search(r"^desc: Trigger: .*?dump (\S+)", text, re.MULTILINE)
            total = re.search(r"^totals: (\d+)", text, re.MULTILINE)
            if case and total:
                totals[case.group(1)] = int(total.group(1))
    print(f"# bench.stream_instructions: {args.streams} streams per case, {args.concurrency} at a time, "
          f"load average before {load_before:.1f}")
    for route in ROUTES:
        key = route.replace(" ", "_")
        one, twenty = totals[f"{key}-1"] / args.streams, totals[f"{key}-20"] / args.streams
        print(f"{route}: {one:,.0f} instructions per 1-chunk stream, {(twenty - one) / 19:,.0f} per extra chunk")


if __name__ == "__main__":
    main()
