"""The README's commands are the ones CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), flags=re.DOTALL)


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    test_command = bash_blocks()[1].strip()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines


def test_first_command_starts_the_example_and_curls_echo() -> None:
    first = bash_blocks()[0]
    assert "parley-sidecar" in first and "examples/components" in first
    assert "curl" in first and "/conversation/echo/converse" in first
    assert (ROOT / "examples" / "components" / "echo.yaml").exists()
