"""Spans as a real Jaeger stores them, for a few calls, with ids and times taken out: run it with two
trees and diff the outputs to show that a change to how parley records or exports spans leaves what
the backend stores unchanged (``docs/tracing.md``, round 5).

    PYTHONPATH=TREE/sidecar:. python -m bench.tracing_stored > TREE.json
        (from this checkout, once with each tree's sidecar; needs Jaeger: tests/observability/build-backend.sh)
    diff BEFORE.json AFTER.json

For OTLP/HTTP and OTLP/gRPC it starts a sidecar (``samplingRate: "1"``) and sends: an alpha2 call
to a fake OpenAI (a call span and an attempt span), one to an unknown component (a 4xx), a gRPC
call, and a call without a ``traceparent`` (a new trace); then it prints each trace as Jaeger's
query API returns it: span names, kinds, tags and their types, status, parent links and the
process's resource tags (host, pid and instance id left out), and the answer's ``traceparent`` flags.
Jaeger's warnings name the caller's random span ids, so those lines differ between runs.
"""

from __future__ import annotations

import http.client
import json
import tempfile
from pathlib import Path
from typing import Any

from tests.conformance.fake_openai import FakeOpenAI
from tests.conformance.servers import parley_argv
from tests.manifests import component_yaml
from tests.observability import test_tracing_backend as rig
from tests.observability.jaeger import start_jaeger

_HOST_TAGS = {"host.name", "hostname", "ip", "process.pid", "process.parent_pid", "process.command_line",
              "process.command_args", "service.instance.id"}


def _normalized(stored: dict[str, Any]) -> dict[str, Any]:
    """``stored`` with trace and span ids numbered in order of appearance, and no times."""
    ids: dict[str, str] = {}

    def number(value: str) -> str:
        return ids.setdefault(value, f"id{len(ids)}")

    spans = []
    for span in sorted(stored["spans"], key=lambda s: s["startTime"]):
        out = {k: v for k, v in span.items() if k not in ("startTime", "duration", "processID")}
        out["traceID"], out["spanID"] = number(span["traceID"]), number(span["spanID"])
        out["references"] = [{**r, "traceID": number(r["traceID"]), "spanID": number(r["spanID"])}
                             for r in span.get("references", [])]
        out["tags"] = sorted(span.get("tags", []), key=lambda t: t["key"])
        spans.append(out)
    processes = {key: {**p, "tags": sorted((t for t in p.get("tags", []) if t["key"] not in _HOST_TAGS),
                                           key=lambda t: t["key"])}
                 for key, p in stored["processes"].items()}
    return {"spans": spans, "processes": processes}


def main() -> None:
    if rig.JAEGER is None:
        raise SystemExit(rig.JAEGER_MISSING)
    tmp = Path(tempfile.mkdtemp())
    (tmp / "jaeger").mkdir()
    jaeger = start_jaeger(rig.JAEGER, tmp / "jaeger")
    fake = FakeOpenAI().start()
    components = tmp / "components"
    components.mkdir()
    (components / "echo.yaml").write_text(component_yaml("echo", metadata={"key": "testkey"}))
    (components / "llm.yaml").write_text(component_yaml("llm", "conversation.openai", {
        "key": "sk-traced-0000", "model": "gpt-4o-mini", "endpoint": fake.endpoint}))
    cases: list[dict[str, Any]] = []
    try:
        for protocol in ("http", "grpc"):
            address = jaeger.otlp_http if protocol == "http" else jaeger.otlp_grpc
            server = rig.start(f"parley-{protocol}", parley_argv(), components, tmp, rig.otel(address, protocol))
            try:
                trace_id, _, traceparent = rig.new_caller()
                status, headers = rig.post(server, rig.A2.format(name="llm"), traceparent)
                cases.append({"case": f"{protocol}: llm", "status": status, "flags": headers["traceparent"][-2:],
                              "trace": _normalized(jaeger.trace(trace_id, spans=2))})
                trace_id, _, traceparent = rig.new_caller()
                status, _ = rig.post(server, rig.A2.format(name="unknown"), traceparent)
                cases.append({"case": f"{protocol}: unknown component", "status": status,
                              "trace": _normalized(jaeger.trace(trace_id, spans=1))})
                trace_id, _, traceparent = rig.new_caller()
                rig.grpc_converse(server, traceparent)
                cases.append({"case": f"{protocol}: gRPC echo", "trace": _normalized(jaeger.trace(trace_id, spans=2))})
                conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30)
                conn.request("POST", rig.A2.format(name="echo"), body=rig.body("hello"))
                answer = conn.getresponse()
                answer.read()
                conn.close()
                started = answer.getheader("traceparent") or ""
                cases.append({"case": f"{protocol}: no caller", "flags": started[-2:],
                              "trace": _normalized(jaeger.trace(started.split("-")[1], spans=2))})
            finally:
                server.stop()
    finally:
        fake.stop()
        jaeger.stop()
    print(json.dumps(cases, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
