"""Instructions per alpha2 converse, part by part (callgrind): where parley's own work goes.

    python -m bench.converse_parts [--calls 2000] [--baseline DIR] [PART ...]

Each part runs in a fresh child under ``valgrind --tool=callgrind`` once with no calls and once
with ``--calls`` in a loop, after a warm-up; the difference divided by the calls is the part's
instruction count per call, which repeats to within 1-3 k (unlike timings on a shared machine). The
request is ``bench.unary_call_cpu``'s alpha2 body, the answer its fake's; the ``conversation.openai``
component is loaded through a ``ComponentStore`` and its ``converse`` faked (returns the parsed
answer), so no network is involved. Parts (all by default): ``decode`` (``api.wire.decode`` of the
body), ``prepare`` (``alpha2.prepare``), ``invoke`` (``resiliency.invoke``), ``call``
(``Pipeline.call``), ``converse`` (``alpha2.converse``), ``response`` (``alpha2.response``),
``encode`` (``api.wire.encode`` of the answer), ``loads`` (``json.loads`` of the provider's answer),
``parse`` (``openai_kit.parse_response``), ``build`` (``openai_kit.build_body``). With
``--baseline DIR`` each part is also counted with DIR's sidecar (this script's code).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("decode", "prepare", "invoke", "call", "converse", "response", "encode", "loads", "parse", "build")


async def _child(part: str, calls: int) -> None:
    from bench.unary_call_cpu import _A2_BODY, _ANSWER
    from parley_sidecar.api import wire
    from parley_sidecar.components import base, openai_kit
    from parley_sidecar.components.spec import ComponentSpec
    from parley_sidecar.components.store import ComponentStore
    from parley_sidecar.conversation import alpha2, resiliency
    from parley_sidecar.conversation.pipeline import Pipeline
    from parley_sidecar.dapr_proto import ai_pb2
    from parley_sidecar.metrics import Metrics

    store = ComponentStore()
    await store.apply(ComponentSpec("openai", "conversation.openai", "v1", {
        "key": "sk-bench", "model": "gpt-4o-mini", "endpoint": "http://127.0.0.1:9/v1"}))
    pipeline = Pipeline(store, Metrics("bench"))
    entry = store.get("openai")
    assert entry is not None
    component: Any = entry.instance

    def decode() -> ai_pb2.ConversationRequestAlpha2:
        return wire.decode(_A2_BODY, ai_pb2.ConversationRequestAlpha2(), query_metadata={}, plain_inputs=False)

    req = decode()
    req.name = "openai"
    prepared = await alpha2.prepare(pipeline, req)
    data = json.loads(_ANSWER)
    result = openai_kit.parse_response(data, "gpt-4o-mini", prepared.request, "openai")

    async def faked(request: base.ConverseRequest, *, timeout: float | None) -> base.ConverseResponse:
        return result

    component.converse = faked
    answer = alpha2.response(req, result)
    for _ in range(20):  # warm: lazy imports, caches, metric series
        await alpha2.converse(pipeline, req)
    for _ in range(calls):
        if part == "decode":
            decode()
        elif part == "prepare":
            await alpha2.prepare(pipeline, req)
        elif part == "invoke":
            await resiliency.invoke(store, entry, prepared.request)
        elif part == "call":
            await pipeline.call("openai", entry, prepared.request)
        elif part == "converse":
            await alpha2.converse(pipeline, req)
        elif part == "response":
            alpha2.response(req, result)
        elif part == "encode":
            wire.encode(answer)
        elif part == "loads":
            json.loads(_ANSWER)
        elif part == "parse":
            openai_kit.parse_response(data, "gpt-4o-mini", prepared.request, "openai")
        elif part == "build":
            openai_kit.build_body(prepared.request, "gpt-4o-mini", component.dialect)


def _count(checkout: Path, part: str, calls: int) -> int:
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
           str(Path(__file__).resolve()), "--child", part, "--calls", str(calls)]
    env = {**os.environ, "PYTHONPATH": f"{checkout / 'sidecar'}:{ROOT}"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=True)
    match = re.search(r"Collected : (\d+)", done.stderr)
    if match is None:
        raise SystemExit(f"no instruction count from valgrind:\n{done.stderr[-2000:]}")
    return int(match[1])


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.converse_parts")
    parser.add_argument("parts", nargs="*", metavar="PART", help=f"some of {', '.join(PARTS)} (all by default)")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--baseline", type=Path, default=None, metavar="DIR")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(_child(args.child, args.calls))
        return
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))} (parts: {', '.join(PARTS)})")
    checkouts = {"this": ROOT} if args.baseline is None else {"base": args.baseline.resolve(), "this": ROOT}
    for part in args.parts or PARTS:
        figures = []
        for name, checkout in checkouts.items():
            per_call = (_count(checkout, part, args.calls) - _count(checkout, part, 0)) / args.calls / 1000
            figures.append(f"{name} {per_call:.1f} k")
        print(f"{part:10s} {', '.join(figures)} instructions per call", flush=True)


if __name__ == "__main__":
    main()
