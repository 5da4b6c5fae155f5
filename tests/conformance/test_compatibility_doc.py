"""docs/compatibility.md lists exactly the intended differences of tests/conformance/differences.py."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conformance.differences import DIFFERENCES, render_markdown

NEEDS_DAPRD = False
DOC = Path(__file__).resolve().parents[2] / "docs" / "compatibility.md"


def test_compatibility_doc_mirrors_differences() -> None:
    text = DOC.read_text()
    found = re.search(r"<!-- BEGIN generated[^>]*-->\n(.*)<!-- END generated -->", text, re.DOTALL)
    assert found is not None, "docs/compatibility.md lost its generated-section markers"
    assert found.group(1) == render_markdown(), (
        "docs/compatibility.md is out of date: regenerate its list with `python -m tests.conformance.differences`")


def test_every_difference_is_reviewable() -> None:
    ids = [d.id for d in DIFFERENCES]
    assert len(ids) == len(set(ids))
    for diff in DIFFERENCES:
        assert diff.cases and diff.reason.strip(), diff.id
        assert (diff.expect, diff.normalise, diff.oracle) != (None, None, None), f"{diff.id} changes nothing"
