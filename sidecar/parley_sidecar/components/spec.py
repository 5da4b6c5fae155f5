"""A Component as the runtime sees it: parsed, secrets resolved, not yet instantiated. No I/O here."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from parley_sidecar import records
from parley_sidecar.records import FACTORY
from parley_sidecar.records import set_field as _set

__all__ = ["ComponentSpec"]


@records.frozen
class ComponentSpec(records.Record):
    name: str
    type: str
    version: str = ""
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)
    """Plain values, ``secretKeyRef``/``envRef`` already resolved; may hold secrets, so never printed."""
    scopes: tuple[str, ...] = ()
    namespace: str = ""
    source: str = ""
    """Where it came from (a file path, or ``operator``); used in log lines and to sync per source."""

    def __init__(self, name: str, type: str, version: str = "",
                 metadata: Mapping[str, str] = FACTORY, scopes: tuple[str, ...] = (), namespace: str = "",
                 source: str = "") -> None:
        _set(self, "name", name)
        _set(self, "type", type)
        _set(self, "version", version)
        _set(self, "metadata", {} if metadata is FACTORY else metadata)
        _set(self, "scopes", scopes)
        _set(self, "namespace", namespace)
        _set(self, "source", source)

    def describe(self) -> str:
        """For log lines: never includes metadata values."""
        return f"component {self.name!r} ({self.type}) from {self.source or 'unknown source'}"
