"""A Component as the runtime sees it: parsed, secrets resolved, not yet instantiated. No I/O here."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

__all__ = ["ComponentSpec"]


@dataclasses.dataclass(frozen=True, slots=True)
class ComponentSpec:
    name: str
    type: str
    version: str = ""
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)
    """Plain values, ``secretKeyRef``/``envRef`` already resolved; may hold secrets, so never printed."""
    scopes: tuple[str, ...] = ()
    namespace: str = ""
    source: str = ""
    """Where it came from (a file path, or ``operator``); used in log lines and to sync per source."""

    def describe(self) -> str:
        """For log lines: never includes metadata values."""
        return f"component {self.name!r} ({self.type}) from {self.source or 'unknown source'}"
