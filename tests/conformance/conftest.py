"""The differential tier: the real daprd and parley side by side on loopback, every case sent to both.

Server pairs are session-scoped processes (started once, concurrently, killed at the end). The whole
tier is skipped, with the reason, when the daprd binary is absent: it comes from ``PARLEY_DAPRD`` or
from ``tests/daprd/build.sh``'s cache (never built from here). At the end of the run the intended
differences (differences.py) are printed with how often each applied.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conformance.differences import DIFFERENCES, LEDGER
from tests.conformance.servers import Pair, find_daprd, start_pair
from tests.manifests import component_yaml

DAPRD, DAPRD_MISSING = find_daprd()
HERE = Path(__file__).parent
API_TOKEN = "conformance-token"
APP_ID = "conformance"


# daprd's two test component names, plus one scoped to another app (loaded by neither server).
ECHO_KEY = {"key": "testkey"}
COMPONENTS = {
    "echo.yaml": component_yaml("echo", metadata=ECHO_KEY),
    "alpha2.yaml": component_yaml("test-alpha2-echo", metadata=ECHO_KEY),
    "scoped.yaml": component_yaml("scoped-echo", metadata=ECHO_KEY, scopes=["some-other-app"]),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tier ``daprd``; without daprd skip it, except modules that say ``NEEDS_DAPRD = False``
    (dapr run, the docs check). Done at collection, before any session fixture starts a server."""
    for item in items:
        if HERE not in Path(str(item.path)).parents:
            continue
        item.add_marker(pytest.mark.daprd)
        module = getattr(item, "module", None)
        if DAPRD is None and getattr(module, "NEEDS_DAPRD", True):
            item.add_marker(pytest.mark.skip(reason=DAPRD_MISSING))


def write_components(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


@pytest.fixture(scope="session")
def conformance_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("conformance")


@pytest.fixture(scope="session")
def pair(conformance_dir: Path) -> Iterator[Pair]:
    """daprd and parley with the echo components, no API token."""
    assert DAPRD is not None
    resources = write_components(conformance_dir / "components", COMPONENTS)
    running = start_pair(DAPRD, "plain", APP_ID, resources, conformance_dir / "logs")
    yield running
    running.stop()


@pytest.fixture(scope="session")
def token_pair(conformance_dir: Path) -> Iterator[Pair]:
    """The same, with DAPR_API_TOKEN set in both environments."""
    assert DAPRD is not None
    resources = write_components(conformance_dir / "components-token", COMPONENTS)
    running = start_pair(DAPRD, "token", APP_ID, resources, conformance_dir / "logs",
                         env={"DAPR_API_TOKEN": API_TOKEN})
    yield running
    running.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    if not LEDGER.compared:
        return
    tr = terminalreporter
    tr.section("parley vs daprd: cases compared and intended differences")
    total = sum(LEDGER.compared.values())
    tiers = ", ".join(f"{tier} {count}" for tier, count in sorted(LEDGER.compared.items()))
    extra = "".join(f"; plus {n} {tier} upstream-request and call-count comparisons"
                    for tier, n in sorted(LEDGER.extra.items()))
    tr.write_line(f"{total} cases compared with daprd ({tiers}{extra}).")
    for tier, outcomes in sorted(LEDGER.outcomes.items()):
        tr.write_line(f"  {tier}: daprd answered " + ", ".join(f"{k} x{v}" for k, v in outcomes.most_common()))
    tr.write_line(f"Answers were equal except for these {len(DIFFERENCES)} intended differences "
                  "(tests/conformance/differences.py, docs/compatibility.md):")
    for diff in DIFFERENCES:
        tr.write_line(f"  - {diff.id} (applied {LEDGER.applied.get(diff.id, 0)}x): {diff.reason}")
