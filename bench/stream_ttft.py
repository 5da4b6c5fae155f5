"""Where one stream's added time to first token goes: a timeline of the sidecar's first-token path.

    python -m bench.stream_ttft [--seconds 8]

The paced model (``bench.stream_upstream``, CPU 1), the sidecar (CPU 0) and ``bench.stream_client``
at one stream (CPU 1) run as ``bench.streaming --pin`` runs them, each with stamps
(``time.perf_counter_ns``, one clock for all three processes on Linux) patched into aiohttp's
protocols and writers and into the sidecar's stream path. Prints, for each step from the client's
request leaving to its first content chunk arriving, the median over the streams of the time from
the step before. A step's time is its own work plus any wait for a core; the stamps themselves cost
a few microseconds each, so the sum runs a little above what ``bench.streaming`` reports as added.
The patches reach into aiohttp's private classes (3.14): a diagnostic, not a figure to track.
"""

from __future__ import annotations

import argparse
import os
import runpy
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import harness
from bench.streaming import component

STEPS: tuple[tuple[str, str, str], ...] = (
    ("client", "request_sent", "the client writes its request"),
    ("sidecar", "request_in", "request bytes read (client → sidecar wake-up)"),
    ("sidecar", "handler", "handler entered (aiohttp: parse, router, middleware)"),
    ("sidecar", "pipeline", "body read, JSON parsed, call checked (openai_chat)"),
    ("sidecar", "open_stream", "pipeline, resiliency, kit: the provider request built"),
    ("sidecar", "upstream_written", "aiohttp client: request made, pooled connection, written"),
    ("upstream", "request_in", "the model has the request (sidecar → model wake-up)"),
    ("upstream", "first_write", "[the model's 100 ms: not counted]"),
    ("sidecar", "chunk_in", "first chunk's bytes read (model → sidecar wake-up)"),
    ("sidecar", "body_read", "aiohttp: parsed, the reading task woken"),
    ("sidecar", "first_piece", "SSE, JSON, role + first content piece up the layers"),
    ("sidecar", "written", "relay: response made, status and headers, encoded, written"),
    ("client", "chunk_in", "the client has it (sidecar → client wake-up)"),
)


def _stamps(path: str) -> Callable[[str], None]:
    out = open(path, "a", buffering=1)  # noqa: SIM115 (open for the process's life)

    def stamp(name: str) -> None:
        out.write(f"{time.perf_counter_ns()} {name}\n")
    return stamp


def _around(owner: Any, name: str, before: str | None, after: str | None, stamp: Callable[[str], None]) -> None:
    """Wrap coroutine method ``owner.name`` with a stamp on entry and/or on return."""
    inner = getattr(owner, name)

    async def wrapped(*args: Any, **kwargs: Any) -> Any:
        if before:
            stamp(before)
        result = await inner(*args, **kwargs)
        if after:
            stamp(after)
        return result
    setattr(owner, name, wrapped)


def _instrument(role: str, stamp: Callable[[str], None]) -> None:
    from aiohttp import client_proto, client_reqrep, web, web_protocol

    def on_data(cls: Any, name: str) -> None:
        inner = cls.data_received

        def data_received(self: Any, data: bytes) -> None:
            if data:
                stamp(name)
            inner(self, data)
        cls.data_received = data_received
    on_data(web_protocol.RequestHandler, "request_in")
    on_data(client_proto.ResponseHandler, "chunk_in")
    if role == "client":
        # on entry: the sidecar may read the request before the client's send call has returned
        _around(client_reqrep.ClientRequest, "write_bytes", "request_sent", None, stamp)
    elif role == "upstream":
        _around(web.StreamResponse, "write", "first_write", None, stamp)
    else:
        from parley_sidecar.api import openai_http
        from parley_sidecar.components import http_kit
        from parley_sidecar.conversation import openai_chat
        _around(openai_http, "chat_completions", "handler", None, stamp)
        _around(openai_chat, "stream", "pipeline", None, stamp)
        _around(http_kit.open_stream, "__aenter__", "open_stream", None, stamp)
        _around(client_reqrep.ClientRequest, "write_bytes", None, "upstream_written", stamp)
        _around(http_kit.StreamBody, "read", None, "body_read", stamp)
        _around(openai_http, "_first", None, "first_piece", stamp)
        _around(web.StreamResponse, "write", None, "written", stamp)


def _timeline(directory: Path) -> list[tuple[int, str, str]]:
    events = []
    for role in ("client", "sidecar", "upstream"):
        for line in (directory / f"{role}.log").read_text().splitlines():
            ns, name = line.split()
            events.append((int(ns), role, name))
    return sorted(events)


def _steps(events: list[tuple[int, str, str]]) -> dict[int, list[float]]:
    """Per step, the µs from the step before, for each whole stream (the first and last left out)."""
    streams: list[list[tuple[int, str, str]]] = []
    for event in events:
        if event[1:] == ("client", "request_sent"):
            streams.append([])
        if streams:
            streams[-1].append(event)
    out: dict[int, list[float]] = {}
    for stream in streams[1:-1]:
        at, last = 0, 0
        for index, (role, name, _) in enumerate(STEPS):
            found = next((ns for ns, r, n in stream if (r, n) == (role, name) and ns >= at), None)
            if found is None:
                break
            if index and name != "first_write":
                out.setdefault(index, []).append((found - last) / 1000)
            at = last = found
    return out


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--role":  # a stamped process: --role ROLE DIR MODULE ARGS…
        role, directory, module = sys.argv[2:5]
        _instrument(role, _stamps(f"{directory}/{role}.log"))
        sys.argv = [module, *sys.argv[5:]]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return
    parser = argparse.ArgumentParser(prog="bench.stream_ttft")
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        stamped = [sys.executable, "-m", "bench.stream_ttft", "--role"]
        up = harness.free_port()
        upstream_argv = ["taskset", "-c", "1", *stamped, "upstream", tmp, "bench.stream_upstream", str(up)]
        with harness.serve(upstream_argv, f"http://127.0.0.1:{up}/healthz", ""):
            http = harness.free_port()
            sidecar = harness.sidecar_argv(http, harness.free_port(), harness.free_port(), harness.free_port(),
                                           component(Path(tmp), up, 100))
            with harness.serve(["taskset", "-c", "0", *stamped, "sidecar", tmp, *sidecar[2:]],
                               f"http://127.0.0.1:{http}/v1.0/healthz", ""):
                url = f"http://127.0.0.1:{http}/v1/chat/completions"
                client = ["taskset", "-c", "1", *stamped, "client", tmp, "bench.stream_client", url, "bench"]
                subprocess.run([*client, "--concurrency", "2", "--seconds", "1"], check=True, capture_output=True)
                for role in ("client", "sidecar", "upstream"):  # the warm-up's stamps out
                    (Path(tmp) / f"{role}.log").write_text("")
                subprocess.run([*client, "--seconds", str(args.seconds)], check=True, capture_output=True,
                               cwd=harness.ROOT, timeout=args.seconds + 60)
        steps = _steps(_timeline(Path(tmp)))
    streams = len(next(iter(steps.values()), []))
    print(f"# bench.stream_ttft: 1 stream, {streams} streams timed, pinned, load average before {load_before:.1f}")
    total = 0.0
    for index, (role, _, what) in enumerate(STEPS):
        if index in steps:
            median = statistics.median(steps[index])
            total += median
            print(f"{median:8.0f} µs  {role:8s} {what}")
        elif index:
            print(f"{'':8s}     {role:8s} {what}")
    print(f"{total:8.0f} µs  in all (median of each step, summed)")


if __name__ == "__main__":
    main()
