"""Each panel of the Grafana dashboard drawn from real data, for docs/observability.md.

    python -m bench.dashboard_png [--rounds 60] [--out docs/observability]

Runs what ``tests/observability/test_dashboard_prometheus.py`` runs (Debian's prometheus scraping a
real sidecar and a real operator, ``dashboard_rig.traffic``), for longer, then asks Prometheus for
each panel's queries over that time (``/api/v1/query_range``, as Grafana does) and draws each
result as Grafana would: one line per series, named by the panel's legend format. Needs the
``bench`` extra (matplotlib) and ``prometheus``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on a CI machine
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from tests.observability import dashboard_rig

Results = list[tuple[str, list[dict[str, Any]]]]
"""Per query of a panel: its legend format and Prometheus' ``query_range`` result."""
UNITS = {"reqps": "per second", "ms": "milliseconds", "s": "seconds", "percentunit": "ratio", "short": ""}


def slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def draw(panel: dict[str, Any], results: Results, path: Path) -> None:
    lines = [(legend_format, s) for legend_format, series in results for s in series]
    columns = 2 if len(lines) > 3 else 1
    rows = math.ceil(len(lines) / columns)
    # the legend under the plot, as Grafana's default places it; the figure grows with it
    fig, ax = plt.subplots(figsize=(7.2, 2.6 + 0.17 * rows), dpi=90)
    for legend_format, s in lines:
        points = [(datetime.fromtimestamp(float(t)), float(v)) for t, v in s["values"]]
        ax.plot([t for t, _ in points], [v if math.isfinite(v) else math.nan for _, v in points],
                linewidth=1.2, label=dashboard_rig.legend(legend_format, s["metric"]))
    ax.set_title(panel["title"], fontsize=10, loc="left")
    ax.set_ylabel(UNITS.get(panel["fieldConfig"]["defaults"].get("unit", ""), ""), fontsize=8)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    ax.set_ylim(bottom=0)
    if lines:
        fig.legend(fontsize=7, loc="lower left", ncol=columns, frameon=False, bbox_to_anchor=(0.06, 0.0))
    fig.tight_layout(rect=(0.0, 0.06 * rows / (1 + 0.065 * rows) + 0.02, 1.0, 1.0))
    fig.savefig(path)
    plt.close(fig)


async def collect(rounds: int) -> list[tuple[dict[str, Any], Results]]:
    """Each panel with its queries' results over the traffic."""
    collected: list[tuple[dict[str, Any], Results]] = []
    async with dashboard_rig.stack() as stack:
        start, end = await dashboard_rig.traffic(stack, rounds)
        for panel in dashboard_rig.panels(dashboard_rig.load_dashboard()):
            results = [(t.get("legendFormat", ""), await stack.query_range(t["expr"], start, end))
                       for t in panel["targets"]]
            collected.append((panel, results))
    return collected


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=60, help="rounds of traffic, about a second apart")
    parser.add_argument("--out", type=Path, default=dashboard_rig.ROOT / "docs" / "observability")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for panel, results in asyncio.run(collect(args.rounds)):
        path = args.out / f"{slug(panel['title'])}.png"
        draw(panel, results, path)
        print(path.relative_to(dashboard_rig.ROOT))


if __name__ == "__main__":
    main()
