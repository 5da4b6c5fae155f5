"""What tracing costs, in instructions counted by valgrind's callgrind: the same figures on a busy
machine as on a quiet one, unlike req/s and CPU time (``bench.tracing_cost``), which move by more
than the 5 % that issue #17 allows at sampling 0.01.

    python -m bench.tracing_instructions [--calls 2000]      (needs valgrind; about a minute)
    python -m bench.tracing_instructions --whole [--requests 5000] [--rates off,0.0000001,0.01,1]
                                                              (about a minute per rate)
    python -m bench.tracing_instructions --encoder           (a few seconds)

It runs itself under callgrind and counts, per call of the API port's traced front handler
(``surface.traced`` around a handler that answers as the echo hot path does, on a mocked aiohttp
request), the instructions of: tracing off (the handler alone), an unsampled call (without a
``traceparent``, and with an unsampled one from its caller, as an instrumented app sends), a sampled call
with its two spans (the call's and one attempt's, with their attributes, handed to the batch
processor) and, per span, the batch processor's export of them over OTLP/HTTP to a local sink in
another process (in batches of 512, the SDK's default). An echo request costs the whole sidecar
about 740,000 instructions with tracing off (``docs/tracing.md``, "What it costs"), which turns
these into a share of a call.

``--whole`` counts the whole sidecar instead: a real sidecar under callgrind (every thread, the
batch exporter's too), answering ``--requests`` alpha2 echo requests over 16 keep-alive
connections, for each ``samplingRate`` given (``off``: no Configuration; ``0.0000001``: traced,
never sampled), spans going over OTLP/HTTP to a local sink. Counting starts after a warm-up and
ends when the sidecar exits (its shutdown exports what is queued), so every case pays the same
shutdown; the batch processor's schedule is pushed out so that exports come in the SDK's batches
of 512 (or one at shutdown, which charges a low rate the export's fixed cost for fewer spans than a
running sidecar would batch: conservative). This is the figure the micro-count above leaves out:
the answer's extra header, the pipeline's checks, what the SDK does on the exporter thread.

``--encoder`` counts the OTLP encoding alone, per span, of 512 spans as parley records them (256
calls and their attempts): the SDK's ``encode_spans`` (its message, and serialized as the OTLP/HTTP
exporter sends it) against parley's ``tracing_otlp.encode`` (the bytes the OTLP/HTTP exporter
sends, and parsed into the message the OTLP/gRPC exporter hands its stub, serialized again there).
"""

from __future__ import annotations

import argparse
import asyncio
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
CASES = ("off", "unsampled", "joined", "sampled", "export")
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

    path = "/v1.0-alpha2/conversation/echo/converse"
    request = make_mocked_request("POST", path, headers={"Content-Type": "application/json"})
    # An app instrumented with OpenTelemetry sends its span on every call; unsampled here.
    joined = make_mocked_request("POST", path, headers={
        "Content-Type": "application/json", "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"})

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

    def run(handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]], times: int,
            sent: web.BaseRequest = request) -> None:
        for _ in range(times):
            step = handler(sent)
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
        run(traced, 100, joined)
    processor.force_flush()
    callgrind("-i", "on")
    for case, installed, handler, sent in (("off", None, front, request), ("unsampled", unsampled, traced, request),
                                           ("joined", unsampled, traced, joined), ("sampled", sampled, traced, request)):
        tracing.install(installed)
        callgrind("-z")
        run(handler, calls, sent)
        callgrind("-d", case)
    processor._batch_processor._max_export_batch_size = 512  # the SDK's default batch
    callgrind("-z")
    processor.force_flush()
    callgrind("-d", "export")
    tracing.install(None)


def _measure_encoder() -> None:
    """Run under callgrind: one dump per encoding of :func:`_encoder`, named by its index."""
    import gc

    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    from parley_sidecar import tracing, tracing_otel, tracing_otlp

    memory = InMemorySpanExporter()
    plan = tracing.Plan(1.0, "http", "127.0.0.1:1", False, "bench", "bench", False)
    tracer = tracing_otel.OtelTracer(plan, processor=SimpleSpanProcessor(memory))
    path = "/v1.0-alpha2/conversation/echo/converse"
    for _ in range(ENCODED // 2):  # the spans of bench.tracing_cost's echo calls
        call = tracing_otel.RecordedSpan(tracer, path, SpanKind.SERVER, None, {
            "dapr.protocol": "http", "dapr.api": f"POST {path}", "http.request.method": "POST", "url.full": path})
        attempt = tracing_otel.RecordedSpan(tracer, "chat", SpanKind.CLIENT, call.context, {
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "echo", "parley.component": "echo"})
        attempt.set_attributes({"gen_ai.response.finish_reasons": ("stop",), "gen_ai.usage.input_tokens": 12,
                                "gen_ai.usage.output_tokens": 12})
        attempt.end()
        call.end()
    tracer.shutdown()
    spans = memory.get_finished_spans()
    encodings = [
        lambda: encode_spans(spans),
        lambda: encode_spans(spans).SerializePartialToString(),
        lambda: tracing_otlp.encode(spans),
        lambda: ExportTraceServiceRequest.FromString(tracing_otlp.encode(spans) or b"").SerializeToString(),
    ]
    gc.collect()
    gc.disable()  # a collection falls into whichever encoding runs then (and none is needed: no cycles)
    subprocess.run(["callgrind_control", "-i", "on", str(os.getpid())], stdout=subprocess.DEVNULL, check=True)
    for index, encode in enumerate(encodings):
        encode()  # once before it is counted: the first of a kind costs more (upb's arenas and caches grow)
        subprocess.run(["callgrind_control", "-z", str(os.getpid())], stdout=subprocess.DEVNULL, check=True)
        encode()
        subprocess.run(["callgrind_control", "-d", f"encoding{index}", str(os.getpid())],
                       stdout=subprocess.DEVNULL, check=True)


ENCODED = 512
ENCODINGS = ("SDK encode_spans, the message (OTLP/gRPC)", "SDK encode_spans, serialized (OTLP/HTTP)",
             "parley's, the bytes (OTLP/HTTP)", "parley's, parsed and serialized again (OTLP/gRPC)")


def _dumps(args: list[str], child: str) -> dict[str, int]:
    """Run this script under callgrind, instrumented from where it says (``CHILD`` set to
    ``child``), with ``args``: the instructions of each dump it makes, by the dump's name."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                        sys.executable, "-m", "bench.tracing_instructions", *args],
                       env={**os.environ, CHILD: child}, cwd=Path(__file__).resolve().parents[1], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        totals = {}
        for dump in Path(tmp).glob("callgrind.out.*"):
            text = dump.read_text()
            case = re.search(r"^desc: Trigger: .*?dump (\w+)", text, re.MULTILINE)
            total = re.search(r"^totals: (\d+)", text, re.MULTILINE)
            if case and total:
                totals[case.group(1)] = int(total.group(1))
    return totals


def _encoder() -> None:
    counts = {ENCODINGS[int(name.removeprefix("encoding"))]: total / ENCODED
              for name, total in _dumps(["--encoder"], "encoder").items()}
    print(f"instructions per span, encoding {ENCODED} spans as parley records them (calls and their attempts):")
    for name in ENCODINGS:
        print(f"  {name:52} {counts[name]:10,.0f}")


WHOLE_CONNECTIONS = 16


async def _requests(port: int, count: int) -> None:
    """``count`` alpha2 echo requests over :data:`WHOLE_CONNECTIONS` keep-alive connections."""
    from bench.tracing_cost import BODY, PATH

    request = (f"POST {PATH} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(BODY)}\r\n\r\n{BODY}").encode()

    async def connection(times: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(times):
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            if not head.startswith(b"HTTP/1.1 200") or length is None:
                raise RuntimeError(f"unexpected answer: {head[:60]!r}")
            await reader.readexactly(int(length.group(1)))
        writer.close()

    await asyncio.gather(*(connection(count // WHOLE_CONNECTIONS) for _ in range(WHOLE_CONNECTIONS)))


def _whole(rates: list[str], requests: int, keep: Path | None = None) -> None:
    from bench import harness
    from bench.tracing_cost import collector, config_file

    requests -= requests % WHOLE_CONNECTIONS
    per_request: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, collector(Path(tmp), "sink") as (address, _):
        for rate in rates:
            extra = [] if rate == "off" else ["--config", str(config_file(Path(tmp), rate, address))]
            http, grpc, metrics, public = (harness.free_port() for _ in range(4))
            out = Path(tmp) / f"whole-{len(per_request)}.out"
            argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                    *harness.sidecar_argv(http, grpc, metrics, public, harness.ROOT / "examples" / "components"), *extra]
            with harness.serve(argv, f"http://127.0.0.1:{http}/v1.0/healthz", "", timeout=180,
                               env={"OTEL_BSP_SCHEDULE_DELAY": str(10**9)}) as server:
                asyncio.run(_requests(http, 800))  # warm-up, not counted
                for command in ("-i", "on"), ("-z",):
                    subprocess.run(["callgrind_control", *command, str(server.proc.pid)], check=True,
                                   stdout=subprocess.DEVNULL)
                asyncio.run(_requests(http, requests))
            total = re.search(r"^totals: (\d+)", out.read_text(errors="replace"), re.MULTILINE)
            if total is None:
                raise RuntimeError(f"no totals in {out}")
            per_request[rate] = int(total.group(1)) / requests
            if keep is not None:  # for callgrind_annotate: where the difference between rates sits
                keep.mkdir(parents=True, exist_ok=True)
                out.replace(keep / f"whole-{rate}.out")
            print(f"{rate:>10}: {per_request[rate]:10,.0f} instructions per request", flush=True)
    if "off" in per_request:
        off = per_request["off"]
        print(f"over tracing off ({requests} alpha2 echo requests each, the whole sidecar):")
        for rate, count in per_request.items():
            if rate != "off":
                print(f"  samplingRate {rate:>10}: {count - off:+10,.0f} per request ({(count - off) / off:+.1%})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--whole", action="store_true", help="count a whole sidecar under load instead")
    parser.add_argument("--requests", type=int, default=5000, help="--whole: requests counted per rate")
    parser.add_argument("--rates", default="off,0.0000001,0.01,1", help="--whole: samplingRate values")
    parser.add_argument("--keep", type=Path, help="--whole: keep each rate's callgrind output in this folder")
    parser.add_argument("--encoder", action="store_true", help="count the OTLP encoding alone, per span")
    args = parser.parse_args()
    if args.encoder:
        _measure_encoder() if os.environ.get(CHILD) else _encoder()
        return
    if args.whole:
        _whole(args.rates.split(","), args.requests, args.keep)
        return
    root = Path(__file__).resolve().parents[1]
    if os.environ.get(CHILD):
        _measure(args.calls, os.environ[CHILD])
        return
    with subprocess.Popen([sys.executable, "-c", SINK, str(root)], stdout=subprocess.PIPE, text=True) as sink:
        try:
            port = (sink.stdout.readline() if sink.stdout else "").strip()
            totals = _dumps(["--calls", str(args.calls)], f"127.0.0.1:{port}")
        finally:
            sink.terminate()
    off = totals["off"] / args.calls
    unsampled = totals["unsampled"] / args.calls - off
    sampled = totals["sampled"] / args.calls - off
    export = totals["export"] / (2 * args.calls)
    print(f"instructions per call of the traced front handler ({args.calls} calls each), over tracing off:")
    print(f"  unsampled call            {unsampled:10,.0f}")
    print(f"  unsampled, caller's trace {totals['joined'] / args.calls - off:10,.0f}  (its traceparent, flags 00)")
    print(f"  sampled call, two spans   {sampled:10,.0f}")
    print(f"  export, per span          {export:10,.0f}  (OTLP/HTTP, batches of 512)")
    for rate in (0.01, 1.0):
        extra = (1 - rate) * unsampled + rate * (sampled + 2 * export)
        print(f"sampling {rate:g}: {extra:,.0f} per call, {extra / ECHO_REQUEST:.1%} of an echo request "
              f"({ECHO_REQUEST:,} with tracing off)")


if __name__ == "__main__":
    main()
