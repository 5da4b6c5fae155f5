"""What the real-node tier measured in this run, by name; printed at the end of the run."""

from __future__ import annotations

FIGURES: dict[str, str] = {}
