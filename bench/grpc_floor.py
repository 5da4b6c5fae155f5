"""The floor of each way to serve a unary gRPC call in Python: bare servers, CPU per call, pinned.

    python -m bench.grpc_floor [--seconds 4] [--runs 2] [--connections 16] [--only NAME]

Each variant is a bare server (no parley) answering ``ConverseAlpha1`` with a fixed
``ConversationResponse``, run pinned to CPU 0 with ``bench.grpc_load`` on CPU 1, as
``bench.cpu_per_request`` runs parley and daprd; its user+system CPU (all threads) is divided by
the calls answered. So the figure is what the server library itself costs per call, before any of
parley's work: the floor each approach could reach. Variants alternate run by run.

- ``aio-bytes``: grpc.aio (uvloop), a generic handler, no (de)serializers: bytes in, fixed bytes out.
- ``aio-proto``: the same, the request parsed and the answer serialized by protobuf (upb).
- ``aio-opts``: aio-proto with the options parley's grpcio server had (keepalive as daprd's, the body limit).
- ``aio-tuned``: aio-bytes with ``grpc.optimization_target=throughput``, compression off,
  ``grpc.max_concurrent_streams=100`` and ``maximum_concurrent_rpcs``.
- ``sync-bytes``: grpcio's synchronous server (a thread pool of 16), fixed bytes out.
- ``sync-hop``: the sync server handing each call to an asyncio loop in another thread
  (``asyncio.run_coroutine_threadsafe``) and waiting for its answer: what parley would pay to keep
  its asyncio pipeline behind a sync server.
- ``grpclib``: grpclib's asyncio server (pure Python over h2), parsed and serialized by protobuf;
  parley's gRPC server since round 6 (docs/performance.md); pass ``--grpclib DIR`` to run the
  variant (a directory of another grpclib install, or the venv's site-packages; skipped without it).
- ``parley``: the sidecar itself with the echo component (``bench.vs_daprd``'s resources), for the
  distance from the floors in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from concurrent import futures
from pathlib import Path
from typing import Any

from bench import harness, vs_daprd
from bench.cpu_per_request import LOAD_CPU, SERVER_CPU, grpc_count

VARIANTS = ("aio-bytes", "aio-proto", "aio-opts", "aio-tuned", "sync-bytes", "sync-hop", "grpclib", "parley")
_METHOD = "ConverseAlpha1"


def _answer() -> bytes:
    from dapr.proto.runtime.v1 import ai_pb2

    return ai_pb2.ConversationResponse(
        outputs=[ai_pb2.ConversationResult(result="Please write a witty haiku about Dapr")]).SerializeToString()


async def _serve_aio(port: int, variant: str) -> None:
    import grpc
    from dapr.proto.runtime.v1 import ai_pb2

    answer = _answer()
    message = ai_pb2.ConversationResponse.FromString(answer)
    options: list[tuple[str, Any]] = [("grpc.so_reuseport", 0)]
    kwargs: dict[str, Any] = {}
    if variant == "aio-opts":
        # the options parley's grpcio server had (daprd's keepalive, the body limit) until round 6
        options += [("grpc.max_receive_message_length", 4 << 20), ("grpc.keepalive_time_ms", 10_000),
                    ("grpc.keepalive_timeout_ms", 5_000), ("grpc.keepalive_permit_without_calls", 1),
                    ("grpc.http2.min_ping_interval_without_data_ms", 8_000)]
    if variant == "aio-tuned":
        options += [("grpc.optimization_target", "throughput"), ("grpc.max_concurrent_streams", 100)]
        kwargs = {"compression": grpc.Compression.NoCompression, "maximum_concurrent_rpcs": 1000}
    server = grpc.aio.server(options=options, **kwargs)

    async def raw(request: bytes, context: Any) -> bytes:
        return answer

    async def parsed(request: Any, context: Any) -> Any:
        return message

    if variant in ("aio-proto", "aio-opts"):
        handler = grpc.unary_unary_rpc_method_handler(
            parsed, request_deserializer=ai_pb2.ConversationRequest.FromString,
            response_serializer=ai_pb2.ConversationResponse.SerializeToString)
    else:
        handler = grpc.unary_unary_rpc_method_handler(raw)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "dapr.proto.runtime.v1.Dapr", {_METHOD: handler}),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


async def _serve_grpclib(port: int) -> None:
    from dapr.proto.runtime.v1 import ai_pb2
    from grpclib import const, server  # type: ignore[import-not-found,unused-ignore]

    message = ai_pb2.ConversationResponse.FromString(_answer())

    class Service:
        async def converse(self, stream: Any) -> None:
            await stream.recv_message()
            await stream.send_message(message)

        def __mapping__(self) -> dict[str, Any]:
            return {f"/dapr.proto.runtime.v1.Dapr/{_METHOD}": const.Handler(
                self.converse, const.Cardinality.UNARY_UNARY, ai_pb2.ConversationRequest,
                ai_pb2.ConversationResponse)}

    grpclib_server = server.Server([Service()])
    await grpclib_server.start("127.0.0.1", port)
    print("ready", flush=True)
    await grpclib_server.wait_closed()


def _serve_sync(port: int, variant: str) -> None:
    import grpc

    answer = _answer()
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()

    async def pipeline(request: bytes) -> bytes:
        return answer

    def raw(request: bytes, context: Any) -> bytes:
        return answer

    def hop(request: bytes, context: Any) -> bytes:
        return asyncio.run_coroutine_threadsafe(pipeline(request), loop).result()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=[("grpc.so_reuseport", 0)])
    handler = grpc.unary_unary_rpc_method_handler(hop if variant == "sync-hop" else raw)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "dapr.proto.runtime.v1.Dapr", {_METHOD: handler}),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


def serve(port: int, variant: str) -> None:
    if variant.startswith("aio") or variant == "grpclib":
        main = _serve_aio(port, variant) if variant != "grpclib" else _serve_grpclib(port)
        try:
            import uvloop

            uvloop.run(main)
        except ImportError:
            asyncio.run(main)
    else:
        _serve_sync(port, variant)


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.grpc_floor")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--only", action="append", default=[], metavar="NAME")
    parser.add_argument("--grpclib", type=Path, default=None, metavar="DIR",
                        help="a directory where grpclib is installed (pip install --target DIR grpclib)")
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1])
        return
    names = [v for v in VARIANTS if (not args.only or v in args.only) and (v != "grpclib" or args.grpclib)]
    load_before = os.getloadavg()[0]
    procs: dict[str, tuple[subprocess.Popen[Any], int]] = {}
    cpu: dict[str, list[float]] = {}
    rps: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        for name in names:
            port = harness.free_port()
            if name == "parley":
                http = harness.free_port()
                argv = harness.sidecar_argv(http, port, harness.free_port(), harness.free_port(),
                                            vs_daprd.components(Path(tmp), harness.free_port()))
                url = f"http://127.0.0.1:{http}"
                server = stack.enter_context(harness.serve(["taskset", "-c", SERVER_CPU, *argv],
                                                           f"{url}/v1.0/healthz", url))
                procs[name] = (server.proc, port)
                continue
            proc = subprocess.Popen(["taskset", "-c", SERVER_CPU, sys.executable, "-m", "bench.grpc_floor",
                                     "--serve", str(port), name], cwd=harness.ROOT, stdout=subprocess.PIPE, text=True,
                                    env={**os.environ, "PYTHONPATH": str(args.grpclib)} if name == "grpclib" else None)
            stack.callback(proc.wait, 10)
            stack.callback(proc.terminate)
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                sys.exit(f"{name}: did not start")
            procs[name] = (proc, port)
        for run in range(args.runs + 1):  # run 0 warms up and is not counted
            for name in names if run % 2 == 0 else names[::-1]:
                proc, port = procs[name]
                before = harness.cpu_seconds(proc.pid)
                done, r, errors = grpc_count(f"127.0.0.1:{port}", "a1", args.connections,
                                             1.0 if run == 0 else args.seconds)
                spent = harness.cpu_seconds(proc.pid) - before
                if errors:
                    sys.exit(f"{name}: {errors} errors")
                if run:
                    cpu.setdefault(name, []).append(spent * 1e6 / done)
                    rps.setdefault(name, []).append(r)
    print(f"# bench.grpc_floor: {args.connections} connections, {args.seconds:g} s x {args.runs} runs, "
          f"servers on CPU {SERVER_CPU}, load on CPU {LOAD_CPU}, load average before {load_before:.1f}, "
          f"after {os.getloadavg()[0]:.1f}")
    print(f"{'variant':12} {'us/call':>9} {'(runs)':>16} {'calls/s':>9}")
    for name in names:
        runs = " ".join(f"{v:.0f}" for v in cpu[name])
        print(f"{name:12} {statistics.median(cpu[name]):9.0f} {runs:>16} {statistics.median(rps[name]):9.0f}")


if __name__ == "__main__":
    main()
