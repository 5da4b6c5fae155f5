"""The dashboard JSON without Prometheus: it loads in Grafana's shape, and every metric it queries
is one the sidecar or the operator exposes (a renamed metric fails here, not on a user's screen)."""

from __future__ import annotations

import re

from tests.observability import dashboard_rig

from parley_operator import metrics as operator_metrics
from parley_sidecar import metrics as sidecar_metrics

_SUFFIXES = ("_bucket", "_sum", "_count", "_total")


def exposed() -> set[str]:
    """Every sample name the two processes can expose (histograms with their suffixes)."""
    names: set[str] = set()
    for metric in vars(sidecar_metrics.Metrics("app")).values():
        if isinstance(metric, (sidecar_metrics.Counter, sidecar_metrics.Histogram, sidecar_metrics.Gauge)):
            names.add(metric.name)
            if isinstance(metric, sidecar_metrics.Histogram):
                names.update(metric.name + s for s in _SUFFIXES[:3])
    registry = operator_metrics.Metrics().registry
    for family in registry.collect():
        names.add(family.name)
        names.update(family.name + s for s in _SUFFIXES)
    return names


def test_every_queried_metric_is_exposed() -> None:
    known = exposed()
    for query in dashboard_rig.queries(dashboard_rig.load_dashboard()):
        # metric names: identifiers followed by a selector or a range, not label names or functions
        code = re.sub(r'"(?:[^"\\]|\\.)*"', '""', query.expr)  # not inside label values or regexes
        for name in re.findall(r"([a-z_][a-z0-9_]*)\s*[{\[]", code):
            assert name in known, f"{query.panel}: {name} is not a metric parley exposes"


def test_panels_have_unique_ids_a_datasource_variable_and_legends() -> None:
    dashboard = dashboard_rig.load_dashboard()
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] == "parley-overview"
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "app"}
    for panel in dashboard_rig.panels(dashboard):
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["legendFormat"], (panel["title"], target["refId"])
            assert "$__rate_interval" in target["expr"] or "rate(" not in target["expr"], panel["title"]
