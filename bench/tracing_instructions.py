"""What tracing costs, in instructions counted by valgrind's callgrind: the same figures on a busy
machine as on a quiet one, unlike req/s and CPU time (``bench.tracing_cost``), which move by more
than the 5 % that issue #17 allows at sampling 0.01.

    python -m bench.tracing_instructions [--calls 2000]      (needs valgrind; about a minute)

It runs itself under callgrind and counts, per call of the API port's traced front handler
(``surface.traced`` around a handler that answers as the echo hot path does, on a mocked aiohttp
request), the instructions of: tracing off (the handler alone), an unsampled call, a sampled call
with its two spans (the call's and one attempt's, with their attributes, handed to the batch
processor) and, per span, the batch processor's export of them over OTLP/HTTP to a local sink in
another process (in batches of 512, the SDK's default). An echo request costs the whole sidecar
about 740,000 instructions with tracing off (``docs/tracing.md``, "What it costs"), which turns
these into a share of a call.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path

CHILD = "PARLEY_TRACING_INSTRUCTIONS_SINK"
"""Set (to the sink's address) in the run under callgrind."""
CASES = ("off", "unsampled", "sampled", "export")
ECHO_REQUEST = 740_000
"""Instructions of a whole echo request with tracing off (callgrind on the sidecar under wrk)."""
SINK = ("import http.server, sys\nsys.path.insert(0, sys.argv[1])\nfrom bench.tracing_cost import _Sink\n"
        "s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Sink)\nprint(s.server_address[1], flush=True)\n"
        "s.serve_forever()\n")


def _measure(calls: int, sink: str) -> None:
    from aiohttp import web
    from aiohttp.test_utils import make_mocked_request
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from parley_sidecar import tracing, tracing_otel
    from parley_sidecar.api import surface

    request = make_mocked_request("POST", "/v1.0-alpha2/conversation/echo/converse",
                                  headers={"Content-Type": "application/json"})

    async def front(_: web.BaseRequest) -> web.StreamResponse:
        if tracing.recording():  # as resiliency's attempt does
            scope = tracing.attempt("chat", {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "echo",
                                             "parley.component": "echo"})
            if scope is not None:
                scope.answered({"gen_ai.response.finish_reasons": ("stop",), "gen_ai.usage.input_tokens": 12,
                                "gen_ai.usage.output_tokens": 12})
                scope.close()
        return web.Response(body=b'{"outputs":[]}', content_type="application/json")

    def tracer(rate: float) -> tuple[tracing_otel.OtelTracer, BatchSpanProcessor]:
        plan = tracing.Plan(rate, "http", sink, False, "bench", "bench", False)
        # No export while the calls are counted: the export is counted on its own, below.
        processor = BatchSpanProcessor(tracing_otel._exporter(plan), max_queue_size=4 * calls,
                                       schedule_delay_millis=10**9, max_export_batch_size=4 * calls)
        return tracing_otel.OtelTracer(plan, processor=processor), processor

    def run(handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]], times: int) -> None:
        for _ in range(times):
            step = handler(request)
            assert isinstance(step, Coroutine)  # driven by hand: no event loop in the count
            with contextlib.suppress(StopIteration):
                step.send(None)

    def callgrind(*args: str) -> None:
        subprocess.run(["callgrind_control", *args, str(os.getpid())], stdout=subprocess.DEVNULL, check=True)

    traced = surface.traced(front)
    unsampled, _ = tracer(0.0)
    sampled, processor = tracer(1.0)
    for installed in (None, unsampled, sampled):  # warm every path up before counting
        tracing.install(installed)
        run(traced, 100)
    processor.force_flush()
    callgrind("-i", "on")
    for case, installed, handler in (("off", None, front), ("unsampled", unsampled, traced),
                                     ("sampled", sampled, traced)):
        tracing.install(installed)
        callgrind("-z")
        run(handler, calls)
        callgrind("-d", case)
    processor._batch_processor._max_export_batch_size = 512  # the SDK's default batch
    callgrind("-z")
    processor.force_flush()
    callgrind("-d", "export")
    tracing.install(None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[1]
    if os.environ.get(CHILD):
        _measure(args.calls, os.environ[CHILD])
        return
    with tempfile.TemporaryDirectory() as tmp, subprocess.Popen(
            [sys.executable, "-c", SINK, str(root)], stdout=subprocess.PIPE, text=True) as sink:
        try:
            port = (sink.stdout.readline() if sink.stdout else "").strip()
            out = Path(tmp) / "callgrind.out"
            subprocess.run(["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                            sys.executable, "-m", "bench.tracing_instructions", "--calls", str(args.calls)],
                           env={**os.environ, CHILD: f"127.0.0.1:{port}"}, cwd=root, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            totals = {}
            for dump in Path(tmp).glob("callgrind.out.*"):
                text = dump.read_text()
                case = re.search(r"^desc: Trigger: .*?dump (\w+)", text, re.MULTILINE)
                total = re.search(r"^totals: (\d+)", text, re.MULTILINE)
                if case and total:
                    totals[case.group(1)] = int(total.group(1))
        finally:
            sink.terminate()
    off = totals["off"] / args.calls
    unsampled = totals["unsampled"] / args.calls - off
    sampled = totals["sampled"] / args.calls - off
    export = totals["export"] / (2 * args.calls)
    print(f"instructions per call of the traced front handler ({args.calls} calls each), over tracing off:")
    print(f"  unsampled call            {unsampled:10,.0f}")
    print(f"  sampled call, two spans   {sampled:10,.0f}")
    print(f"  export, per span          {export:10,.0f}  (OTLP/HTTP, batches of 512)")
    for rate in (0.01, 1.0):
        extra = (1 - rate) * unsampled + rate * (sampled + 2 * export)
        print(f"sampling {rate:g}: {extra:,.0f} per call, {extra / ECHO_REQUEST:.1%} of an echo request "
              f"({ECHO_REQUEST:,} with tracing off)")


if __name__ == "__main__":
    main()
