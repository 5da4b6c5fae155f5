"""The real-node tier runs only on a node that ``python -m tests.cluster.node up`` brought up, from
inside its network namespace (``tests/cluster/run.sh`` does all three steps). Anywhere else the tier
is not collected: the README's test command stays the unit and API-server tiers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import measured

_ON_NODE = bool(os.environ.get("PARLEY_NODE_DIR")) and Path(os.environ.get("KUBECONFIG", "/nonexistent")).exists()
if not _ON_NODE:
    collect_ignore_glob = ["test_*.py"]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not measured.FIGURES:
        return
    terminalreporter.section("real node: measured")
    for name, value in measured.FIGURES.items():
        terminalreporter.write_line(f"{name}: {value}")
    out = os.environ.get("PARLEY_NODE_REPORT")
    if out:
        Path(out).write_text(json.dumps(measured.FIGURES, indent=1) + "\n")


@pytest.fixture(scope="session")
def node_dir() -> Path:
    return Path(os.environ["PARLEY_NODE_DIR"])
