"""A real Prometheus scraping a real sidecar and a real operator, after traffic a user would make.

Shared by ``test_dashboard_prometheus.py`` (every panel's query returns data) and
``bench/dashboard_png.py`` (each panel drawn from the same data for ``docs/observability.md``).

- Prometheus: Debian's ``prometheus`` package (``.ci/run`` installs it), scraping every second.
- The sidecar: ``python -m parley_sidecar`` in its own process, standalone, with an ``echo``
  component that caches, ``llm`` and ``flaky`` OpenAI components in front of two OpenAI fakes
  (``flaky``'s always answers 500, so its breaker opens), and ``broken``, which fails to load.
- The operator: ``python -m parley_operator`` against kmock (``bench/operator_rig.py``), sent pod
  AdmissionReviews and holding one component stream open while a Component changes.
- Traffic per round: conversations on HTTP alpha1/alpha2 and gRPC, a cache hit, a PII finding,
  an OpenAI-API stream, a failing component, an unknown component on HTTP and gRPC.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import ssl
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import grpc
from bench import operator_rig
from bench.harness import free_port
from dapr.proto.runtime.v1 import ai_pb2, dapr_pb2_grpc
from tests.fakes.openai import OpenAIFake
from tests.manifests import component_yaml

from parley_operator.injection import patch

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "parley-dashboard.json"
SCRAPE_SECONDS = 1
RATE_WINDOW = "15s"
"""What ``$__rate_interval`` stands for here: Grafana's rule (four scrape intervals at least) with
room for the test's one-second scrapes."""
APP_ID = "checkout"


def prometheus_binary() -> str | None:
    return os.environ.get("PARLEY_PROMETHEUS") or shutil.which("prometheus")


# -- the dashboard's queries ------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    panel: str
    ref: str
    expr: str
    legend: str


def load_dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel that shows data (rows hold panels of their own when collapsed)."""
    found: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        if panel.get("type") == "row":
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


def queries(dashboard: dict[str, Any]) -> list[Query]:
    return [Query(p["title"], t["refId"], t["expr"], t.get("legendFormat", ""))
            for p in panels(dashboard) for t in p.get("targets", [])]


def concrete(expr: str) -> str:
    """The query as Grafana sends it with every app selected (``$app`` → ``.*``)."""
    return expr.replace("$__rate_interval", RATE_WINDOW).replace("$app", ".*").replace("$namespace", ".*")


def legend(template: str, labels: dict[str, str]) -> str:
    """A series' name as Grafana's ``legendFormat`` writes it ({{label}} replaced)."""
    text = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)
    return text or ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "value"


# -- the processes ----------------------------------------------------------------------------------


async def _wait_http(session: aiohttp.ClientSession, url: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while True:
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(url) as resp:
                if resp.status < 300:
                    return
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer within {within:.0f} s")
        await asyncio.sleep(0.1)


@dataclass
class Stack:
    session: aiohttp.ClientSession
    sidecar_http: str
    sidecar_grpc: str
    prometheus: str
    rig: operator_rig.Cluster
    webhook: str
    stream: str
    ssl: ssl.SSLContext
    stream_token: str
    injected: list[dict[str, Any]] = field(default_factory=list)
    """Pods as the operator's mutating webhook patched them (the PodMonitor must select them)."""

    async def query_range(self, expr: str, start: float, end: float, step: float = 1.0) -> list[dict[str, Any]]:
        async with self.session.get(self.prometheus + "/api/v1/query_range", params={
                "query": concrete(expr), "start": str(start), "end": str(end), "step": str(step)}) as resp:
            body = await resp.json()
        assert body["status"] == "success", f"{expr}: {body}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def query(self, expr: str) -> list[dict[str, Any]]:
        async with self.session.get(self.prometheus + "/api/v1/query", params={"query": concrete(expr)}) as resp:
            body = await resp.json()
        assert body["status"] == "success", f"{expr}: {body}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def wait_scraped(self, within: float = 30.0) -> None:
        """Both targets up in Prometheus."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            up = {r["metric"]["job"]: r["value"][1] for r in await self.query("up")}
            if up.get("parley-sidecar") == "1" and up.get("parley-operator") == "1":
                return
            await asyncio.sleep(0.5)
        raise AssertionError(f"Prometheus did not scrape both targets: {await self.query('up')}")


def _prometheus_config(sidecar_metrics: int, operator_metrics: int) -> str:
    # As the PodMonitors in deploy/ scrape: the sidecar at / (daprd's path), the operator at /metrics.
    return f"""\
global:
  scrape_interval: {SCRAPE_SECONDS}s
  evaluation_interval: {SCRAPE_SECONDS}s
scrape_configs:
- job_name: parley-sidecar
  metrics_path: /
  static_configs: [{{targets: ["127.0.0.1:{sidecar_metrics}"]}}]
- job_name: parley-operator
  metrics_path: /metrics
  static_configs: [{{targets: ["127.0.0.1:{operator_metrics}"]}}]
"""


@contextlib.asynccontextmanager
async def _process(argv: list[str], log: Path, env: dict[str, str] | None = None
                   ) -> AsyncIterator[asyncio.subprocess.Process]:
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(*argv, stdout=out, stderr=asyncio.subprocess.STDOUT,
                                                       env=env or {**os.environ})
        try:
            yield process
        finally:
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 20)
                except TimeoutError:
                    process.kill()
                    await process.wait()


def _components(llm: OpenAIFake, flaky: OpenAIFake) -> dict[str, str]:
    return {
        "echo.yaml": component_yaml("echo", metadata={"responseCacheTTL": "10m"}),
        "llm.yaml": component_yaml("llm", "conversation.openai", {
            "key": "sk-test", "endpoint": f"{llm.url}/v1", "model": "gpt-4o-mini", "maxRetries": "0"}),
        "flaky.yaml": component_yaml("flaky", "conversation.openai", {
            "key": "sk-test", "endpoint": f"{flaky.url}/v1", "model": "gpt-4.1", "maxRetries": "0",
            "circuitBreakerFailures": "3", "circuitBreakerTimeout": "4s"}),
        "broken.yaml": component_yaml("broken", "conversation.openai", {"model": "gpt-4o"}),  # no key: refused
    }


@contextlib.asynccontextmanager
async def stack() -> AsyncIterator[Stack]:
    binary = prometheus_binary()
    assert binary is not None, "prometheus is not installed"
    with tempfile.TemporaryDirectory(prefix="parley-dashboard-") as tmp:
        work = Path(tmp)
        resources = work / "components"
        resources.mkdir()
        llm, flaky = await OpenAIFake().start(), await OpenAIFake().start()
        flaky.fail(500, "the model is overloaded", times=100_000)
        for name, text in _components(llm, flaky).items():
            (resources / name).write_text(text)
        ports = {k: free_port() for k in ("http", "grpc", "metrics", "public", "prometheus")}
        sidecar_argv = [
            sys.executable, "-m", "parley_sidecar", "--app-id", APP_ID, "--resources-path", str(resources),
            "--dapr-http-port", str(ports["http"]), "--dapr-grpc-port", str(ports["grpc"]),
            "--metrics-port", str(ports["metrics"]), "--dapr-public-port", str(ports["public"]),
            "--dapr-listen-addresses", "127.0.0.1", "--metrics-listen-address", "127.0.0.1",
            "--dapr-public-listen-address", "127.0.0.1", "--log-as-json"]
        try:
            async with operator_rig.cluster() as rig:
                await rig.put_component("shop", "llm", "1m", create=True)
                token = await rig.add_pod("shop", "checkout-0", APP_ID)
                async with operator_rig.operator(rig) as op, \
                        _process(sidecar_argv, work / "sidecar.log") as _sidecar:
                    config = work / "prometheus.yml"
                    config.write_text(_prometheus_config(ports["metrics"], op.ports["metrics"]))
                    prom_argv = [binary, f"--config.file={config}", f"--storage.tsdb.path={work / 'tsdb'}",
                                 f"--web.listen-address=127.0.0.1:{ports['prometheus']}", "--log.level=warn"]
                    async with _process(prom_argv, work / "prometheus.log"), aiohttp.ClientSession() as session:
                        prometheus = f"http://127.0.0.1:{ports['prometheus']}"
                        await _wait_http(session, f"http://127.0.0.1:{ports['http']}/v1.0/healthz")
                        await _wait_http(session, prometheus + "/-/ready")
                        running = Stack(
                            session=session, sidecar_http=f"http://127.0.0.1:{ports['http']}",
                            sidecar_grpc=f"127.0.0.1:{ports['grpc']}", prometheus=prometheus, rig=rig,
                            webhook=f"https://127.0.0.1:{op.ports['webhook']}",
                            stream=f"https://127.0.0.1:{op.ports['stream']}/v1/stream",
                            ssl=ssl.create_default_context(cadata=op.ca_pem), stream_token=token)
                        await running.wait_scraped()
                        yield running
        finally:
            await llm.close()
            await flaky.close()


# -- the traffic ------------------------------------------------------------------------------------


def _alpha2(text: str, *, scrub: bool = False) -> dict[str, Any]:
    return {"inputs": [{"messages": [{"ofUser": {"content": [{"text": text}]}}], "scrubPii": scrub}]}


async def _post(stack: Stack, path: str, body: Any) -> int:
    async with stack.session.post(stack.sidecar_http + path, json=body) as resp:
        await resp.read()
        return resp.status


async def _admission(stack: Stack, n: int, *, enabled: bool) -> None:
    annotations = {"dapr.io/enabled": "true" if enabled else "false", "dapr.io/app-id": APP_ID}
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": f"checkout-{n}", "namespace": "shop", "annotations": annotations},
           "spec": {"containers": [{"name": "app", "image": "shop/checkout:1"}]}}
    resource, kind = {"group": "", "version": "v1", "resource": "pods"}, {"group": "", "version": "v1", "kind": "Pod"}
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": str(uuid.uuid4()), "kind": kind, "resource": resource, "requestKind": kind,
        "requestResource": resource, "name": f"checkout-{n}", "namespace": "shop", "operation": "CREATE",
        "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller", "groups": []},
        "object": pod, "oldObject": None, "dryRun": False}}
    async with stack.session.post(stack.webhook + "/mutate", json=review, ssl=stack.ssl,
                                  server_hostname=operator_rig.SERVER_NAME) as resp:
        answer = await resp.json()
    assert answer["response"]["allowed"], answer
    if "patch" in answer["response"]:
        ops = json.loads(base64.b64decode(answer["response"]["patch"]))
        stack.injected.append(patch.apply(pod, ops))


async def _follow_stream(stack: Stack, ready: asyncio.Event) -> None:
    """A sidecar's component stream, held open (the operator counts the snapshot and upserts)."""
    async with stack.session.get(stack.stream, headers={"Authorization": f"Bearer {stack.stream_token}"},
                                 ssl=stack.ssl, server_hostname=operator_rig.SERVER_NAME,
                                 timeout=aiohttp.ClientTimeout(total=None)) as resp:
        assert resp.status == 200, await resp.text()
        while line := await resp.content.readline():
            if json.loads(line)["type"] == "snapshot":
                ready.set()


async def _one_round(stack: Stack, n: int, grpc_stub: dapr_pb2_grpc.DaprStub) -> None:
    alpha1 = "/v1.0-alpha1/conversation/{}/converse"
    alpha2 = "/v1.0-alpha2/conversation/{}/converse"
    calls = [
        _post(stack, alpha1.format("echo"), {"inputs": [{"content": f"order {n} is on its way"}]}),
        _post(stack, alpha1.format("echo"), {"inputs": [{"content": "the same question every time"}]}),  # cached
        _post(stack, alpha2.format("llm"), _alpha2(f"summarise order {n}")),
        _post(stack, alpha2.format("llm"), _alpha2(f"write to jane.doe{n}@example.com", scrub=True)),
        _post(stack, alpha2.format("flaky"), _alpha2("anyone there?")),
    ]
    if n % 2:  # an unknown component every other round: its line apart from flaky's on the errors panel
        calls.append(_post(stack, alpha1.format("nope"), {"inputs": [{"content": "hi"}]}))
    if n % 2 == 0:
        calls.append(_post(stack, alpha1.format("echo"), {"inputs": [{"content": "call me on 555-0100 or "
                                                          f"at {n}@example.org", "scrubPII": True}]}))
    statuses = await asyncio.gather(*calls)
    assert statuses[:4] == [200, 200, 200, 200], statuses
    async with stack.session.post(stack.sidecar_http + "/v1/chat/completions", json={
            "model": "llm", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": f"stream order {n}"}]}) as resp:
        assert resp.status == 200
        await resp.read()
    await grpc_stub.ConverseAlpha1(ai_pb2.ConversationRequest(
        name="echo", inputs=[ai_pb2.ConversationInput(content=f"grpc {n}")]))
    with contextlib.suppress(grpc.aio.AioRpcError):
        await grpc_stub.ConverseAlpha1(ai_pb2.ConversationRequest(
            name="nope", inputs=[ai_pb2.ConversationInput(content="hi")]))
    await _admission(stack, n, enabled=n % 3 != 0)
    if n % 4 == 1:
        await stack.rig.put_component("shop", "llm", f"{n + 1}m")


async def traffic(stack: Stack, rounds: int, pause: float = 1.0) -> tuple[float, float]:
    """``rounds`` rounds of traffic ``pause`` seconds apart; returns (start, end) in Unix seconds,
    end after Prometheus has scraped the last round."""
    start = time.time()
    ready = asyncio.Event()
    follower = asyncio.create_task(_follow_stream(stack, ready))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        async with grpc.aio.insecure_channel(stack.sidecar_grpc) as channel:
            stub = dapr_pb2_grpc.DaprStub(channel)  # type: ignore[no-untyped-call]
            for n in range(rounds):
                await _one_round(stack, n, stub)
                await asyncio.sleep(pause)
        await asyncio.sleep(3 * SCRAPE_SECONDS)
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
            await follower
    return start, time.time()
