"""What the sidecar adds on the provider path, and what provider components cost in memory.

    python -m bench.provider_overhead [--rate 200] [--seconds 4] [--rounds 3]

1. Latency. A fake OpenAI server (``tests/fakes/openai.py``) runs in its own process; a parley
   sidecar (``python -m parley_sidecar``, daprd's flags) runs in another with one
   ``conversation.openai`` component pointing at it. This process is the client: it sends an
   open-loop load at ``--rate`` requests/s (each request scheduled at a fixed time, so a slow
   answer cannot slow the offered load) alternately straight to the fake (an OpenAI chat body)
   and through the sidecar (an alpha2 converse body), in ``--rounds`` interleaved windows of
   ``--seconds`` each, so both paths see the same machine state. Every text is unique: no cache
   can answer. Reported: p50/p99 of each path and the difference, which is what the sidecar adds;
   then the same one request at a time. When the real daprd with ``conversation.openai`` is built
   (``tests/daprd/build.sh``'s cache, or ``PARLEY_DAPRD``), it is measured as a third path in the
   same windows, as the anchor to compare with.
2. Memory. Idle RSS of a sidecar with one component of every provider type loaded (openai,
   anthropic, googleai, huggingface, mistral, ollama, deepseek, aws.bedrock), next to one with
   only echo.

Targets: ≤ 1 ms added at p50, ≤ 3 ms at p99, idle RSS with every provider ≤ 70 MB. All traffic
stays on 127.0.0.1 and every loop is bounded in time.

    python -m bench.provider_overhead --sdk-python /tmp/sdkvenv/bin/python

3. The client-layer comparison of docs/decisions.md: RSS and import time that the official SDKs
   (``openai``, ``anthropic``, ``botocore``) add over ``import aiohttp``, and client CPU per call
   of the OpenAI SDK against plain aiohttp on the same fake. The SDKs live in a throwaway venv
   (``python -m venv /tmp/sdkvenv && /tmp/sdkvenv/bin/pip install openai anthropic botocore
   aiohttp``), never in the project.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from tests.manifests import component_yaml

from bench import harness

KEY = "sk-bench-not-a-real-key"


# -- the fake, when this file runs as its child process ------------------------------------------


async def _serve_fake(port_file: str) -> None:
    sys.path.insert(0, str(harness.ROOT))
    from tests.fakes import OpenAIFake

    fake = await OpenAIFake(keep=100).start()  # an unbounded log would make GC pauses grow
    Path(port_file).write_text(str(fake.port))  # noqa: ASYNC240  (once, before serving)
    try:
        await asyncio.Event().wait()
    finally:
        await fake.close()


def start_fake() -> tuple[subprocess.Popen[bytes], int]:
    with tempfile.NamedTemporaryFile(delete=False) as f:
        port_file = f.name
    os.unlink(port_file)
    proc = subprocess.Popen([sys.executable, "-m", "bench.provider_overhead", "--serve-fake", port_file],
                            cwd=harness.ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not os.path.exists(port_file) or not Path(port_file).read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the fake OpenAI server did not start")
        time.sleep(0.02)
    port = int(Path(port_file).read_text())
    os.unlink(port_file)
    return proc, port


# -- components -----------------------------------------------------------------------------------


def every_provider(fake_port: int) -> dict[str, str]:
    url = f"http://127.0.0.1:{fake_port}"
    return {
        "openai.yaml": component_yaml("openai", "conversation.openai", {"key": KEY, "endpoint": f"{url}/v1"}),
        "anthropic.yaml": component_yaml("anthropic", "conversation.anthropic", {"key": KEY, "endpoint": url}),
        "googleai.yaml": component_yaml("googleai", "conversation.googleai", {"key": KEY, "endpoint": url}),
        "huggingface.yaml": component_yaml("huggingface", "conversation.huggingface", {"key": KEY, "endpoint": url}),
        "mistral.yaml": component_yaml("mistral", "conversation.mistral", {"key": KEY, "endpoint": url}),
        "ollama.yaml": component_yaml("ollama", "conversation.ollama", {"endpoint": url}),
        "deepseek.yaml": component_yaml("deepseek", "conversation.deepseek", {"key": KEY, "endpoint": url}),
        "bedrock.yaml": component_yaml("bedrock", "conversation.aws.bedrock",
                                       {"endpoint": url, "accessKey": "AKIDBENCH", "secretKey": "bench/secret"}),
    }


def write(files: dict[str, str]) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="parley-bench-"))
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


# -- load -----------------------------------------------------------------------------------------


async def _one(session: aiohttp.ClientSession, url: str, body: bytes, out: list[float], errors: list[int]) -> None:
    started = time.perf_counter()
    try:
        async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
            await resp.read()
            if resp.status != 200:
                errors.append(resp.status)
                return
    except aiohttp.ClientError:
        errors.append(0)
        return
    out.append((time.perf_counter() - started) * 1000)


async def open_loop(session: aiohttp.ClientSession, url: str, make_body: object, rate: float, seconds: float,
                    out: list[float], errors: list[int]) -> None:
    """Send at a fixed schedule; the window is bounded by ``seconds`` plus the last answers."""
    assert callable(make_body)
    count = int(rate * seconds)
    start = time.perf_counter()
    tasks = []
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_one(session, url, make_body(i), out, errors)))
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def closed_loop(session: aiohttp.ClientSession, url: str, make_body: object, count: int,
                      out: list[float], errors: list[int]) -> None:
    """One request at a time (daprd-oracle §3's "1 connection" figures are taken this way)."""
    assert callable(make_body)
    for i in range(count):
        await _one(session, url, make_body(i), out, errors)


def _direct_body(i: int) -> bytes:
    return json.dumps({"model": "gpt-4o-mini", "temperature": 0,
                       "messages": [{"role": "user", "content": f"bench question {i} {time.time_ns()}"}]}).encode()


def _converse_body(i: int) -> bytes:
    return json.dumps({"inputs": [{"messages": [{"ofUser": {"content": [
        {"text": f"bench question {i} {time.time_ns()}"}]}}]}]}).encode()


def _stats(values: list[float]) -> dict[str, float]:
    return {"p50": _pct(values, 0.50), "p99": _pct(values, 0.99), "mean": statistics.fmean(values)}


async def measure(paths: dict[str, tuple[str, object]], rate: float, seconds: float, rounds: int) -> dict[str, object]:
    """``paths``: name → (url, body maker). Windows interleave the paths, round after round."""
    loaded: dict[str, list[float]] = {name: [] for name in paths}
    serial: dict[str, list[float]] = {name: [] for name in paths}
    errors: dict[str, list[int]] = {name: [] for name in paths}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        for url, make in paths.values():
            await open_loop(session, url, make, rate, 1.0, [], [])  # warm-up: connections, caches
        for _ in range(rounds):
            for name, (url, make) in paths.items():
                await open_loop(session, url, make, rate, seconds, loaded[name], errors[name])
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        for _ in range(rounds):
            for name, (url, make) in paths.items():
                await closed_loop(session, url, make, 300, serial[name], errors[name])
    return {
        "rate": rate,
        "requests_per_path": len(loaded["direct"]),
        "loaded": {name: _stats(v) for name, v in loaded.items()},
        "one_connection": {name: _stats(v) for name, v in serial.items()},
        "errors": {name: len(v) for name, v in errors.items()},
    }


def find_daprd() -> Path | None:
    """The real daprd with conversation.openai, as tests/daprd/build.sh caches it (optional)."""
    given = os.environ.get("PARLEY_DAPRD")
    cache = Path(os.environ.get("PARLEY_CACHE") or Path.home() / ".cache" / "parley")
    path = Path(given) if given else cache / "daprd" / "v1.18.3-conversation_echo+conversation_openai" / "daprd"
    return path if path.is_file() and os.access(path, os.X_OK) else None


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {port}")


def idle_rss(files: dict[str, str], settle: float = 2.0) -> float:
    http, grpc, metrics, public = (harness.free_port() for _ in range(4))
    argv = harness.sidecar_argv(http, grpc, metrics, public, write(files))
    with harness.serve(argv, f"http://127.0.0.1:{http}/v1.0/healthz", "") as server:
        time.sleep(settle)
        return server.rss_mb


_PROBE = """
import time
t0 = time.perf_counter()
{code}
t1 = time.perf_counter()
rss = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS:")][0]
print((t1 - t0) * 1000, rss / 1024)
"""
_SDK_CASES = {
    "aiohttp only": "import aiohttp",
    "openai SDK + AsyncOpenAI()": "import aiohttp, openai; openai.AsyncOpenAI(api_key='x')",
    "anthropic SDK + AsyncAnthropic()": "import aiohttp, anthropic; anthropic.AsyncAnthropic(api_key='x')",
    "botocore bedrock-runtime client": (
        "import aiohttp, botocore.session; botocore.session.get_session().create_client("
        "'bedrock-runtime', region_name='us-east-1', aws_access_key_id='a', aws_secret_access_key='b')"),
}
_PERCALL = """
import asyncio, json, sys, time
import aiohttp, openai
URL = sys.argv[1]

async def timed(one):
    for _ in range(50):
        await one()
    started = time.process_time()
    for _ in range(600):
        await one()
    return (time.process_time() - started) / 600 * 1000

async def main():
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()
    async with aiohttp.ClientSession() as s:
        async def plain():
            async with s.post(URL + "/chat/completions", data=body,
                              headers={"Authorization": "Bearer x", "Content-Type": "application/json"}) as r:
                return json.loads(await r.read())
        print("plain aiohttp", await timed(plain))
    client = openai.AsyncOpenAI(api_key="x", base_url=URL, max_retries=0)
    async def sdk():
        return await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    print("openai SDK", await timed(sdk))

asyncio.run(main())
"""


def sdk_comparison(python: str) -> None:
    rows: dict[str, tuple[float, float]] = {}
    for name, code in _SDK_CASES.items():
        samples = [subprocess.run([python, "-c", _PROBE.format(code=code)], capture_output=True, text=True,
                                  check=True, timeout=60).stdout.split() for _ in range(7)]
        rows[name] = (statistics.median(float(t) for t, _ in samples), statistics.median(float(r) for _, r in samples))
    base_t, base_r = rows["aiohttp only"]
    for name, (t, r) in rows.items():
        print(f"{name:34s} import {t:7.1f} ms (+{t - base_t:7.1f})   RSS {r:6.1f} MB (+{r - base_r:5.1f})")
    fake, port = start_fake()
    try:
        out = subprocess.run([python, "-c", _PERCALL, f"http://127.0.0.1:{port}/v1"], capture_output=True,
                             text=True, check=True, timeout=120).stdout
    finally:
        fake.terminate()
        fake.wait(10)
    for line in out.splitlines():
        name, _, value = line.rpartition(" ")
        print(f"client CPU per call, {name}: {float(value):.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second offered to each path")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of one measuring window")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved windows per path")
    parser.add_argument("--no-daprd", action="store_true", help="do not measure the real daprd even when built")
    parser.add_argument("--sdk-python", metavar="PYTHON",
                        help="only compare client layers, with this interpreter of a venv holding the SDKs")
    parser.add_argument("--serve-fake", metavar="PORT_FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        asyncio.run(_serve_fake(args.serve_fake))
        return
    if args.sdk_python:
        sdk_comparison(args.sdk_python)
        return

    fake, fake_port = start_fake()
    try:
        wait_port(fake_port)
        resources = write({"openai.yaml": component_yaml("openai", "conversation.openai", {
            "key": KEY, "model": "gpt-4o-mini", "endpoint": f"http://127.0.0.1:{fake_port}/v1"})})
        with contextlib.ExitStack() as stack:
            http, grpc, metrics, public = (harness.free_port() for _ in range(4))
            sidecar = stack.enter_context(harness.serve(
                harness.sidecar_argv(http, grpc, metrics, public, resources),
                f"http://127.0.0.1:{http}/v1.0/healthz", ""))
            paths: dict[str, tuple[str, object]] = {
                "direct": (f"http://127.0.0.1:{fake_port}/v1/chat/completions", _direct_body),
                "parley": (f"http://127.0.0.1:{http}/v1.0-alpha2/conversation/openai/converse", _converse_body),
            }
            daprd = None if args.no_daprd else find_daprd()
            if daprd is not None:
                d_http, d_grpc, d_metrics, d_internal = (harness.free_port() for _ in range(4))
                stack.enter_context(harness.serve(
                    [str(daprd), "--app-id", "bench", "--resources-path", str(resources),
                     "--dapr-http-port", str(d_http), "--dapr-grpc-port", str(d_grpc),
                     "--metrics-port", str(d_metrics), "--dapr-internal-grpc-port", str(d_internal),
                     "--dapr-listen-addresses", "127.0.0.1", "--metrics-listen-address", "127.0.0.1",
                     "--log-level", "warn"],
                    f"http://127.0.0.1:{d_http}/v1.0/healthz", ""))
                paths["daprd"] = (f"http://127.0.0.1:{d_http}/v1.0-alpha2/conversation/openai/converse",
                                  _converse_body)
            result = asyncio.run(measure(paths, args.rate, args.seconds, args.rounds))
            result["sidecar_rss_after_load_mb"] = round(sidecar.rss_mb, 1)
        result["idle_rss_echo_only_mb"] = round(idle_rss({"echo.yaml": component_yaml("echo")}), 1)
        result["idle_rss_every_provider_mb"] = round(idle_rss(every_provider(fake_port)), 1)
    finally:
        fake.terminate()
        fake.wait(10)
    report(result, args)


def report(result: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"provider path: {result['requests_per_path']} requests per path at {args.rate:.0f} req/s "
          f"({args.rounds} interleaved windows of {args.seconds:g}s each), errors {result['errors']}")
    for mode, title in (("loaded", f"open loop at {args.rate:.0f} req/s"), ("one_connection", "one at a time")):
        rows = result[mode]
        base = rows["direct"]
        print(f"  {title}:")
        for name, row in rows.items():
            added = "" if name == "direct" else (
                f"   added p50 {row['p50'] - base['p50']:+6.2f} ms, p99 {row['p99'] - base['p99']:+6.2f} ms")
            print(f"    {name:7s} p50 {row['p50']:7.2f} ms   p99 {row['p99']:7.2f} ms{added}")
    loaded = result["loaded"]
    added_p50 = loaded["parley"]["p50"] - loaded["direct"]["p50"]
    added_p99 = loaded["parley"]["p99"] - loaded["direct"]["p99"]
    print(f"  parley at {args.rate:.0f} req/s adds p50 {added_p50:+.2f} ms, p99 {added_p99:+.2f} ms "
          f"(targets ≤ 1 ms / ≤ 3 ms: {'met' if added_p50 <= 1 and added_p99 <= 3 else 'MISSED'})")
    every, echo = result["idle_rss_every_provider_mb"], result["idle_rss_echo_only_mb"]
    print(f"RSS: after the load {result['sidecar_rss_after_load_mb']} MB; idle with echo only {echo} MB, "
          f"with one component of every provider type {every} MB (+{every - echo:.1f} MB); "
          f"target ≤ 70 MB: {'met' if every <= 70 else 'MISSED'}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
