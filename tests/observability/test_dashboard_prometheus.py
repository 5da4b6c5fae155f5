"""Every query of the Grafana dashboard returns data from a real Prometheus.

Debian's ``prometheus`` scrapes a running sidecar process and a running operator process every
second while ``dashboard_rig.traffic`` makes the calls a user's apps would (conversations, cache
hits, PII, a stream, failures, pod admissions, component deliveries); then each panel's query is
evaluated over that time through Prometheus' HTTP API (``/api/v1/query_range``), as Grafana does.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import yaml
from tests.observability import dashboard_rig

pytestmark = pytest.mark.skipif(dashboard_rig.prometheus_binary() is None,
                                reason="prometheus is not installed (apt-get install prometheus; .ci/run does)")

ROUNDS = 8


def finite_values(series: list[dict[str, Any]]) -> list[float]:
    return [float(v) for s in series for _, v in s["values"] if math.isfinite(float(v))]


def by_legend(series: list[dict[str, Any]], template: str) -> dict[str, float]:
    """Each series' last finite value, by its legend as Grafana would show it."""
    last: dict[str, float] = {}
    for s in series:
        values = [float(v) for _, v in s["values"] if math.isfinite(float(v))]
        if values:
            last[dashboard_rig.legend(template, s["metric"])] = values[-1]
    return last


async def test_every_panel_query_returns_data_and_the_panels_show_the_traffic() -> None:
    dashboard = dashboard_rig.load_dashboard()
    queries = dashboard_rig.queries(dashboard)
    assert len(queries) >= 18
    async with dashboard_rig.stack() as stack:
        start, end = await dashboard_rig.traffic(stack, ROUNDS, pause=0.5)
        empty: list[str] = []
        results: dict[str, list[dict[str, Any]]] = {}
        for q in queries:
            series = await stack.query_range(q.expr, start, end)
            results[f"{q.panel}/{q.ref}"] = series
            if not finite_values(series):
                empty.append(f"{q.panel} [{q.ref}]: {q.expr}")
        injected = stack.injected
    assert not empty, "queries without data:\n" + "\n".join(empty)
    # the PodMonitor shipped in deploy/ selects the pods the real injector patched, on a port they have
    monitor = yaml.safe_load((dashboard_rig.ROOT / "deploy/overlays/monitoring/podmonitor.yaml").read_text())
    assert injected
    for pod in injected:
        assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        ports = {p["name"] for c in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]
                 for p in c.get("ports", [])}
        assert {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]} <= ports

    def panel(title: str, ref: str = "A") -> dict[str, float]:
        query = next(q for q in queries if q.panel == title and q.ref == ref)
        return by_legend(results[f"{title}/{ref}"], query.legend)

    app = dashboard_rig.APP_ID
    # what a user would look for on each panel, from the traffic they know they sent
    assert {f"{app} / echo", f"{app} / llm", f"{app} / flaky"} <= set(panel("Conversation calls/s by app and component"))
    assert set(panel("Failed conversation calls/s by app and component")) == {f"{app} / flaky"}
    http_errors = set(panel("HTTP errors/s by status code, app and component"))
    assert {f"{app} / flaky / 500", f"{app} / {{name}} / 400"} <= http_errors
    tokens = panel("Tokens/s by model and app")
    assert {f"{app} gpt-4o-mini input", f"{app} gpt-4o-mini output"} <= set(tokens)
    assert max(panel("Response cache hit ratio by component").values()) > 0
    assert {"EMAIL (input)", "PHONE (input)"} <= set(panel("PII findings/s by entity type"))
    breakers = results["Circuit breakers not closed/A"]
    assert any(s["metric"]["component"] == "flaky" and s["metric"]["state"] == "open" and "1" in
               [v for _, v in s["values"]] for s in breakers), "flaky's breaker never showed open"
    assert set(panel("Component load errors (since start)")) == {"broken"}
    assert {"injected", "not_enabled"} <= set(panel("Pod admissions/s by outcome"))
    assert {"snapshot", "upsert"} <= set(panel("Component deliveries/s by kind"))
    assert "p95 gpt-4o-mini" in panel("Streams: time to first token by model (p50, p95)", "B")
