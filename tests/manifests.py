"""Dapr Component manifests as YAML text, the way a user writes them (shared by tests and bench)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence


def component_yaml(name: str, type_: str = "conversation.echo", metadata: Mapping[str, str] | None = None, *,
                   namespace: str | None = None, scopes: Sequence[str] | None = None) -> str:
    """One Component; ``metadata`` values are double-quoted strings, none is ``metadata: []`` (the CRD's
    spec.metadata is required)."""
    head = f"apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\n"
    if namespace:
        head += f"  namespace: {namespace}\n"
    entries = "".join(f"  - name: {k}\n    value: {json.dumps(v)}\n" for k, v in (metadata or {}).items())
    text = head + f"spec:\n  type: {type_}\n  version: v1\n"
    text += ("  metadata:\n" + entries) if entries else "  metadata: []\n"
    if scopes:
        text += "scopes:\n" + "".join(f"- {s}\n" for s in scopes)
    return text
