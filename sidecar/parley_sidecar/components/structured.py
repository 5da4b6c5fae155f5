"""Structured output: alpha2's ``responseFormat`` (a JSON-Schema object) as providers want it.

daprd reads ``responseFormat`` with components-contrib's ``convertToStructuredOutputDefinition``:
the optional top-level keys ``name`` (default ``"response"``), ``description`` and ``strict`` are
read off the schema, and langchaingo then rewrites each schema node with ``additionalProperties``
set (``false`` unless the schema said ``true``) at every level. We produce the same JSON for the
keys daprd understands, and differ where daprd is lossy (listed in ``docs/providers.md``):

- keys daprd drops (``format``, ``minimum``, ``anyOf``, ``$defs`` …) are kept;
- ``enum`` values keep their JSON type (daprd turns them into strings);
- a schema without a string ``type`` is an error here; daprd ignores the whole
  ``responseFormat`` with a log line and answers with free text.

OpenAI-compatible providers receive ``{"type": "json_schema", "json_schema": {name, strict,
schema}}``; Anthropic and Bedrock a forced tool whose input schema is the same node (what
langchaingo does for Anthropic). No I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = ["Definition", "definition", "openai_response_format"]

_HANDLED = frozenset({"type", "description", "enum", "properties", "required", "items", "additionalProperties"})
_TOP_ONLY = frozenset({"name", "strict"})


class Definition:
    # A plain class: nothing compares or prints one, and a frozen dataclass costs ~0.5 ms of the
    # component's load to create (docs/performance.md, round 7).
    __slots__ = ("description", "name", "schema", "strict")

    def __init__(self, name: str, description: str, strict: bool, schema: dict[str, Any]) -> None:
        self.name: Final = name
        self.description: Final = description
        self.strict: Final = strict
        self.schema: Final = schema
        """The converted schema node (daprd's shape, extra keys kept)."""


def _node(schema: Mapping[str, Any], where: str, *, top: bool = False) -> dict[str, Any]:
    kind = schema.get("type")
    if kind is None:
        raise ValueError(f"invalid response format: {where} needs a 'type'")
    out: dict[str, Any] = {"type": kind}
    description = schema.get("description")
    if isinstance(description, str) and description:
        out["description"] = description
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        out["enum"] = list(enum)
    properties = schema.get("properties")
    if kind == "object" and isinstance(properties, Mapping) and properties:
        converted: dict[str, Any] = {}
        for name, prop in properties.items():
            if not isinstance(prop, Mapping):
                raise ValueError(f"invalid response format: property {name!r} must be an object")
            converted[name] = _node(prop, f"property {name!r}")
        out["properties"] = converted
        required = schema.get("required")
        if isinstance(required, list) and required:
            out["required"] = [r for r in required if isinstance(r, str)]
    items = schema.get("items")
    if kind == "array" and isinstance(items, Mapping):
        out["items"] = _node(items, "array items")
    additional = schema.get("additionalProperties")
    out["additionalProperties"] = additional if isinstance(additional, (bool, Mapping)) else False
    for key, value in schema.items():
        if key in _HANDLED or (top and key in _TOP_ONLY):
            continue
        out[key] = value
    return out


def definition(response_format: Mapping[str, Any]) -> Definition:
    """Read alpha2's ``responseFormat``; raise ValueError (naming the part) when it is unusable."""
    if not isinstance(response_format.get("type"), str):
        raise ValueError("invalid response format: the schema needs a string 'type'")
    name = response_format.get("name")
    description = response_format.get("description")
    strict = response_format.get("strict")
    return Definition(
        name=name if isinstance(name, str) and name else "response",
        description=description if isinstance(description, str) else "",
        strict=strict if isinstance(strict, bool) else False,
        schema=_node(response_format, "the schema", top=True),
    )


def openai_response_format(defn: Definition) -> dict[str, Any]:
    """OpenAI's ``response_format`` for a definition (daprd's exact keys)."""
    return {
        "type": "json_schema",
        "json_schema": {"name": defn.name, "strict": defn.strict, "schema": defn.schema},
    }
