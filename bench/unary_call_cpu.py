"""CPU per unary provider call in process: ``conversation.openai``'s ``converse`` against the fake.

    python -m bench.unary_call_cpu [--calls 1500] [--rounds 5] [--concurrency 1] [--baseline DIR]
    python -m bench.unary_call_cpu --callgrind [--calls 400] [--baseline DIR]
    python -m bench.unary_call_cpu --cookies ...   (a provider that sets cookies, see below)
    python -m bench.unary_call_cpu --pipeline ...  (the whole alpha2 converse, see below)
    python -m bench.unary_call_cpu --anthropic ... (``conversation.anthropic`` instead)

The fake of OpenAI (``tests/conformance/fake_openai.py``) runs in its own process on CPU 1; each
measurement is a fresh child process on CPU 0 that loads one ``conversation.openai`` Component
(its own session and pool, as in the sidecar) pointed at the fake and calls ``converse`` ``--calls``
times after a warm-up, ``--concurrency`` at a time. It prints the child's user and system CPU per
call (``getrusage``). With ``--baseline DIR`` the children alternate between DIR's sidecar and
this checkout's, ``--rounds`` each, and the medians are compared: on a shared machine only
alternating runs in the same minutes say anything.

``--cookies`` swaps the fake for one that answers every call with two cookies, as the Cloudflare
front of api.openai.com does (``__cf_bm``, ``_cfuvid``; not marked Secure, so that a client with a
jar would send them back over plain HTTP), reached as ``localhost`` (aiohttp's jar ignores
cookies from IP addresses).

``--anthropic`` calls a ``conversation.anthropic`` Component's ``converse`` instead, against a
fake of the Messages API served by this script (one fixed answer in Anthropic's shape).

``--pipeline`` measures what the sidecar does per alpha2 converse short of the HTTP server: the
JSON body decoded (``api.wire``), ``alpha2.converse`` (rules, pipeline, resiliency, metrics, the
component's call) and the answer encoded, with the component loaded through a ``ComponentStore``.

``--callgrind`` counts instructions instead (``valgrind --tool=callgrind``, user space only, the
steady figure on a noisy machine): each checkout is run once with no measured calls and once with
``--calls``, and the difference is divided by the calls. Takes about a minute per run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVER_CPU, FAKE_CPU = "0", "1"
WARM_UP = 50
_ANSWER = (b'{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,'
           b'"message":{"role":"assistant","content":"It is sunny."},"finish_reason":"stop"}],'
           b'"usage":{"prompt_tokens":60,"completion_tokens":4,"total_tokens":64}}')
_COOKIES = ("__cf_bm=" + "a1B2c3D4e5" * 8 + "-1700000000-1.0.1.1-" + "Z" * 60
            + "; path=/; expires=Thu, 31-Dec-2099 23:59:59 GMT; domain=localhost; HttpOnly; SameSite=None",
            "_cfuvid=" + "q9W8e7R6t5" * 4 + "-1700000000000-0.0.1.1-604800000; path=/; domain=localhost; HttpOnly;"
            " SameSite=None")


_MESSAGES_ANSWER = (b'{"id":"msg_1","type":"message","role":"assistant","model":"claude-3-5-haiku-latest",'
                    b'"content":[{"type":"text","text":"It is sunny."}],"stop_reason":"end_turn",'
                    b'"stop_sequence":null,"usage":{"input_tokens":60,"output_tokens":4}}')


def _serve(port: int, *, cookies: bool) -> None:
    """The cookie-setting fake of OpenAI (``cookies``), or the fake of Anthropic's Messages API."""
    from aiohttp import web

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        resp = web.Response(body=_ANSWER, content_type="application/json")
        for cookie in _COOKIES:
            resp.headers.add("Set-Cookie", cookie)
        return resp

    async def messages(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=_MESSAGES_ANSWER, content_type="application/json")

    app = web.Application()
    if cookies:
        app.router.add_post("/v1/chat/completions", answer)
    else:
        app.router.add_post("/v1/messages", messages)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


_A2_BODY = (b'{"inputs":[{"messages":[{"ofUser":{"content":[{"text":"'
            + b"Tell me about the weather in a sentence or two, please. " * 4 + b'"}]}}]}],"temperature":0.2}')


async def _pipeline_child(port: int, calls: int, concurrency: int, warm_up: int, host: str, _: bool) -> None:
    from parley_sidecar.api import wire
    from parley_sidecar.components.spec import ComponentSpec
    from parley_sidecar.components.store import ComponentStore
    from parley_sidecar.conversation import alpha2
    from parley_sidecar.conversation.pipeline import Pipeline
    from parley_sidecar.dapr_proto import ai_pb2
    from parley_sidecar.metrics import Metrics

    store = ComponentStore()
    await store.apply(ComponentSpec("openai", "conversation.openai", "v1", {
        "key": "sk-bench", "model": "gpt-4o-mini", "endpoint": f"http://{host}:{port}/v1"}))
    pipeline = Pipeline(store, Metrics("bench"))

    async def one() -> bytes:
        req = wire.decode(_A2_BODY, ai_pb2.ConversationRequestAlpha2(), query_metadata={}, plain_inputs=False)
        req.name = "openai"
        return wire.encode(await alpha2.converse(pipeline, req))

    await _measure(one, calls, concurrency, warm_up)
    await pipeline.aclose()
    await store.aclose()


async def _measure(one: Callable[[], Awaitable[object]], calls: int, concurrency: int, warm_up: int) -> None:
    async def worker(n: int) -> None:
        for _ in range(n):
            await one()

    await asyncio.gather(*(worker(warm_up // concurrency or 1) for _ in range(concurrency)))
    before = resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.gather(*(worker(calls // concurrency) for _ in range(concurrency)))
    after = resource.getrusage(resource.RUSAGE_SELF)
    done = calls // concurrency * concurrency or 1
    print(f"{(after.ru_utime - before.ru_utime) / done * 1e6:.1f} {(after.ru_stime - before.ru_stime) / done * 1e6:.1f}")


async def _child(port: int, calls: int, concurrency: int, warm_up: int, host: str, anthropic: bool) -> None:
    from parley_sidecar.components import anthropic as anthropic_component
    from parley_sidecar.components import base, openai

    kind = "anthropic" if anthropic else "openai"
    context = base.ComponentContext(kind, f"conversation.{kind}", max_connections=64, max_response_bytes=4 << 20)
    component = (anthropic_component if anthropic else openai).create(context)
    await component.init({"key": "sk-bench", "model": "gpt-4o-mini", "endpoint": f"http://{host}:{port}/v1",
                          **({"apiType": "anthropic", "maxTokens": 1024} if anthropic else {})})
    text = "Tell me about the weather in a sentence or two, please. " * 4
    request = base.ConverseRequest(messages=(base.Message(base.Role.USER, (base.TextPart(text),)),))

    async def one() -> base.ConverseResponse:
        return await component.converse(request, timeout=30.0)

    await _measure(one, calls, concurrency, warm_up)
    await component.aclose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env(checkout: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{checkout / 'sidecar'}:{checkout}"}


def _run_child(checkout: Path, port: int, calls: int, concurrency: int, *, callgrind: bool,
               cookies: bool, pipeline: bool, anthropic: bool) -> tuple[float, float]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--port", str(port), "--calls", str(calls),
           "--concurrency", str(concurrency), *(["--cookies"] if cookies else []),
           *(["--pipeline"] if pipeline else []), *(["--anthropic"] if anthropic else [])]
    if callgrind:
        cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd, "--warm-up", "3"]
    done = subprocess.run(["taskset", "-c", SERVER_CPU, *cmd], env=_env(checkout), capture_output=True, text=True,
                          timeout=600, check=True)
    if callgrind:
        match = re.search(r"Collected : (\d+)", done.stderr)
        if match is None:
            raise SystemExit(f"no instruction count from valgrind:\n{done.stderr[-2000:]}")
        return float(match[1]), 0.0
    user, system = done.stdout.split()
    return float(user), float(system)


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.unary_call_cpu")
    parser.add_argument("--calls", type=int, default=None, help="measured calls per run (1500; 400 with --callgrind)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--baseline", type=Path, default=None, metavar="DIR")
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--cookies", action="store_true", help="a provider that sets two cookies per answer")
    parser.add_argument("--pipeline", action="store_true", help="the whole alpha2 converse, not the component alone")
    parser.add_argument("--anthropic", action="store_true", help="conversation.anthropic against its fake")
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--warm-up", type=int, default=WARM_UP, help=argparse.SUPPRESS)
    args = parser.parse_args()
    calls = args.calls if args.calls is not None else (400 if args.callgrind else 1500)
    if args.child:
        asyncio.run((_pipeline_child if args.pipeline else _child)(
            args.port, calls, args.concurrency, args.warm_up, "localhost" if args.cookies else "127.0.0.1",
            args.anthropic))
        return
    if args.serve_fake:
        _serve(args.port, cookies=args.cookies)
        return
    checkouts = {"this": ROOT} if args.baseline is None else {"base": args.baseline.resolve(), "this": ROOT}
    port = _free_port()
    if args.pipeline and (args.anthropic or args.cookies):
        parser.error("--pipeline goes with the bench fake of OpenAI only")
    serve = ([str(Path(__file__).resolve()), "--serve-fake", "--port", str(port),
              *(["--cookies"] if args.cookies else [])] if args.cookies or args.anthropic
             else ["-m", "tests.conformance.fake_openai", str(port)])
    fake = subprocess.Popen(["taskset", "-c", FAKE_CPU, sys.executable, *serve], env=_env(ROOT), cwd=ROOT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        load = os.getloadavg()[0]
        if args.callgrind:
            for name, checkout in checkouts.items():
                empty = _run_child(checkout, port, 0, args.concurrency, callgrind=True, cookies=args.cookies,
                                   pipeline=args.pipeline, anthropic=args.anthropic)[0]
                full = _run_child(checkout, port, calls, args.concurrency, callgrind=True, cookies=args.cookies,
                                   pipeline=args.pipeline, anthropic=args.anthropic)[0]
                print(f"{name}: {(full - empty) / calls / 1000:.1f} k instructions per call "
                      f"({calls} calls, concurrency {args.concurrency}{', cookies' if args.cookies else ''}"
                      f"{', pipeline' if args.pipeline else ''}{', anthropic' if args.anthropic else ''})")
        else:
            got: dict[str, list[tuple[float, float]]] = {name: [] for name in checkouts}
            for round_ in range(args.rounds):
                order = list(checkouts) if round_ % 2 == 0 else list(checkouts)[::-1]
                for name in order:
                    got[name].append(_run_child(checkouts[name], port, calls, args.concurrency, callgrind=False,
                                                  cookies=args.cookies, pipeline=args.pipeline, anthropic=args.anthropic))
            for name, runs in got.items():
                total = [u + s for u, s in runs]
                print(f"{name}: CPU per call median {statistics.median(total):.0f} µs (user "
                      f"{statistics.median(u for u, _ in runs):.0f}, system {statistics.median(s for _, s in runs):.0f}); "
                      f"runs {' '.join(f'{t:.0f}' for t in total)}; concurrency {args.concurrency}, {calls} calls")
        print(f"load average {load:.1f} before, {os.getloadavg()[0]:.1f} after")
    finally:
        fake.terminate()
        fake.wait(10)


if __name__ == "__main__":
    main()
