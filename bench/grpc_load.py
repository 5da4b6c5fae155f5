"""gRPC load for ConverseAlpha1/ConverseAlpha2: N concurrent callers, or a fixed rate, for a fixed time.

    python -m bench.grpc_load 127.0.0.1:50001 a1 --concurrency 16 --seconds 5
    python -m bench.grpc_load 127.0.0.1:50001 a2 --rate 500 --seconds 5

Closed loop (``--concurrency``): each caller sends its next request when the last one answered.
Open loop (``--rate``): requests start on a fixed schedule whatever the answers, and latency is
measured from the scheduled start, so a stalled server shows up in p99 (no coordinated omission).
Prints one JSON line: ``{"rps", "p50_ms", "p99_ms", "errors"}``. Runs in its own process (uvloop
when installed) so the client does not share an interpreter with anything else.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from dapr.proto.runtime.v1 import ai_pb2, dapr_pb2_grpc

TEXT = "Please write a witty haiku about the Dapr distributed programming framework"


def request_for(kind: str) -> tuple[str, Any]:
    if kind == "a1":
        return "ConverseAlpha1", ai_pb2.ConversationRequest(
            name="echo", inputs=[ai_pb2.ConversationInput(content=TEXT)])
    name = "openai" if kind == "openai" else "echo"
    return "ConverseAlpha2", ai_pb2.ConversationRequestAlpha2(name=name, inputs=[ai_pb2.ConversationInputAlpha2(
        messages=[ai_pb2.ConversationMessage(of_user=ai_pb2.ConversationMessageOfUser(
            content=[ai_pb2.ConversationMessageContent(text=TEXT)]))])])


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def summary(latencies: list[float], elapsed: float, errors: int) -> dict[str, float]:
    ordered = sorted(latencies)
    return {"rps": len(latencies) / elapsed if elapsed > 0 else 0.0, "p50_ms": percentile(ordered, 0.50) * 1000,
            "p99_ms": percentile(ordered, 0.99) * 1000, "errors": errors}


async def closed_loop(call: Callable[[], Awaitable[Any]], concurrency: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal errors
        while (started := time.perf_counter()) < deadline:
            try:
                await call()
            except grpc.RpcError:
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return summary(latencies, time.perf_counter() - began, errors)


async def open_loop(call: Callable[[], Awaitable[Any]], rate: float, seconds: float,
                    failures: tuple[type[BaseException], ...] = (grpc.RpcError,)) -> dict[str, float]:
    """Calls started on schedule whatever the answers; latency from the scheduled start."""
    latencies: list[float] = []
    errors = 0
    begin = time.perf_counter() + 0.05

    async def one(scheduled: float) -> None:
        nonlocal errors
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            await call()
        except failures:
            errors += 1
            return
        latencies.append(time.perf_counter() - scheduled)

    await asyncio.gather(*(one(begin + i / rate) for i in range(int(rate * seconds))))
    return summary(latencies, time.perf_counter() - begin, errors)


def install_uvloop() -> None:
    """The load clients run on uvloop when the ``fast`` extra is installed, as the sidecar does."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()


async def run(target: str, kind: str, concurrency: int, rate: float | None, seconds: float,
              channels: int = 1) -> dict[str, float]:
    """``channels`` > 1: that many connections, the calls spread over them in turn (a sidecar with
    ``--workers`` balances connections, not the calls multiplexed on one)."""
    method, request = request_for(kind)
    # A local subchannel pool each: otherwise grpcio shares one connection among equal channels.
    options = [("grpc.use_local_subchannel_pool", 1)] if channels > 1 else []
    async with contextlib.AsyncExitStack() as stack:
        stubs = []
        for _ in range(channels):
            channel = await stack.enter_async_context(grpc.aio.insecure_channel(target, options=options))
            stubs.append(getattr(dapr_pb2_grpc.DaprStub(channel), method))  # type: ignore[no-untyped-call]
        turn = itertools.cycle(stubs)

        async def call() -> Any:
            return await next(turn)(request, timeout=30)

        for _ in range(20 * channels):  # connect and warm up
            await call()
        if rate:
            return await open_loop(call, rate, seconds)
        return await closed_loop(call, concurrency, seconds)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("target")
    parser.add_argument("kind", choices=["a1", "a2", "openai"])
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--rate", type=float, default=None)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--channels", type=int, default=1, help="Connections to spread the calls over.")
    args = parser.parse_args()
    install_uvloop()
    print(json.dumps(asyncio.run(run(args.target, args.kind, args.concurrency, args.rate, args.seconds,
                                     args.channels))))


if __name__ == "__main__":
    main()
