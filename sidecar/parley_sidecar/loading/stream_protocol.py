"""The component stream's protocol, imported by both ends: parley-operator encodes, the sidecar decodes.

Dapr's operator and daprd share one ``.proto``; this module is parley's equivalent, so the path,
the message kinds and their fields are spelled once. Newline-delimited JSON over one HTTPS
response: ``GET /v1/stream`` with ``Authorization: Bearer <projected ServiceAccount token>``
answers ``200 application/x-ndjson`` and then one JSON object per line:

``{"type": "snapshot", "namespace": ns, "appId": id, "keepalive": 15, "components": [C, …],
"withheld": [{"name": n, "reason": r}, …]}``
    First line of every connection: exactly the Components this pod may see. The sidecar makes
    its operator-sourced set equal to ``components``; names in ``withheld`` keep whatever version
    the sidecar already serves (their current state cannot be delivered, e.g. a Secret is missing).
``{"type": "upsert", "component": C}``
    Created, changed, or newly in scope.
``{"type": "delete", "name": n}``
    Deleted, or no longer in scope.
``{"type": "withheld", "name": n, "reason": r}``
    Exists but cannot be delivered now; keep the last good version.
``{"type": "keepalive"}``
    Every ``keepalive`` seconds without other traffic; silence for 3× that means a dead link.
``{"type": "resiliency", "resiliency": R}``
    A ``Resiliency`` created, changed, or newly in scope (since protocol 2).
``{"type": "resiliencyDelete", "name": n}``
    A ``Resiliency`` deleted, or no longer in scope (since protocol 2).

Protocol 2 (Resiliency and Configuration) adds, to the snapshot: ``"protocol": 2``,
``"resiliencies": [R, …]`` (exactly the Resiliencies this pod is in scope of),
``"resiliencyWithheld": [{"name", "reason"}, …]`` (bad ones the operator has no good version of:
the sidecar keeps what it has for those names) and, when the pod names one (``dapr.io/config``),
``"configuration": {"name": n, "spec": {…}}`` or ``{"name": n, "error": why}`` (e.g. not found).
``R`` is ``{"apiVersion", "kind": "Resiliency", "metadata": {"name", "namespace"}, "spec", "scopes"}``,
as the user wrote it; the sidecar checks it with the same parser as a file. Compatibility both ways:
an older sidecar ignores the snapshot keys it does not know and skips the two new kinds
(:class:`Unknown`); a newer sidecar facing an older operator sees no ``protocol`` key, so it knows
that no Resiliency or Configuration is delivered (rather than that there are none) and keeps going
without them, saying so in its log.

``C`` is ``{"name", "namespace", "type", "version", "scopes": [..], "metadata": [{"name", "value"} |
{"name", "envRef"}]}``: the Component with every ``secretKeyRef`` replaced by the Secret's value
(UTF-8 text). A line of another ``type`` decodes to :class:`Unknown` and is skipped, so an older
sidecar keeps working with a newer operator. Errors before the stream starts are plain JSON
``{"error": message}`` with 401 (no/invalid token), 403 (token valid but not a sidecar pod), 429
(too many token checks at once) or 503 (operator still starting; ``Retry-After`` says when to retry).

Encoding and decoding only; no I/O, and nothing here logs (a line may hold secret values).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_KEEPALIVE",
    "MAX_LINE",
    "PATH",
    "PROTOCOL",
    "Delete",
    "Keepalive",
    "Message",
    "ProtocolError",
    "ResiliencyDelete",
    "ResiliencyUpsert",
    "Snapshot",
    "SnapshotConfiguration",
    "Unknown",
    "Upsert",
    "Withheld",
    "decode",
    "decode_error",
    "encode",
    "encode_error",
]

PATH = "/v1/stream"
CONTENT_TYPE = "application/x-ndjson"
DEFAULT_KEEPALIVE = 15.0
"""Seconds; what a sidecar assumes until the snapshot names the operator's interval."""
MAX_LINE = 64 * 1024 * 1024
"""Bytes; a snapshot is one line and may carry many components."""

PROTOCOL = 2
"""What this version speaks: 1 = Components only; 2 = also Resiliency and Configuration."""

Component = Mapping[str, Any]
Document = Mapping[str, Any]


class ProtocolError(ValueError):
    """A line that is not a message of this protocol. Its text never quotes the line."""


@dataclasses.dataclass(frozen=True, slots=True)
class SnapshotConfiguration:
    """The Configuration the pod names: its ``spec``, or why there is none to give."""

    name: str
    spec: Document | None = None
    error: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    namespace: str
    app_id: str
    keepalive: float
    components: tuple[Component, ...] = ()
    withheld: tuple[tuple[str, str], ...] = ()
    """``(name, reason)`` pairs."""
    protocol: int = 1
    """The operator's protocol; 1 (the key absent) means Resiliencies and Configurations are not delivered."""
    resiliencies: tuple[Document, ...] = ()
    resiliency_withheld: tuple[tuple[str, str], ...] = ()
    configuration: SnapshotConfiguration | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Upsert:
    component: Component


@dataclasses.dataclass(frozen=True, slots=True)
class Delete:
    name: str


@dataclasses.dataclass(frozen=True, slots=True)
class Withheld:
    name: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class ResiliencyUpsert:
    resiliency: Document


@dataclasses.dataclass(frozen=True, slots=True)
class ResiliencyDelete:
    name: str


@dataclasses.dataclass(frozen=True, slots=True)
class Keepalive:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class Unknown:
    """A message kind this version does not know (a newer operator's); to be skipped."""

    type: str


Message = Snapshot | Upsert | Delete | Withheld | ResiliencyUpsert | ResiliencyDelete | Keepalive | Unknown


def _pair_objects(pairs: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    return [{"name": name, "reason": reason} for name, reason in pairs]


def _fields(message: Message) -> dict[str, Any]:
    match message:
        case Snapshot():
            fields = {"type": "snapshot", "namespace": message.namespace, "appId": message.app_id,
                      "keepalive": message.keepalive, "components": list(message.components),
                      "withheld": _pair_objects(message.withheld)}
            if message.protocol >= 2:
                fields |= {"protocol": message.protocol, "resiliencies": list(message.resiliencies),
                           "resiliencyWithheld": _pair_objects(message.resiliency_withheld)}
                config = message.configuration
                if config is not None:
                    fields["configuration"] = ({"name": config.name, "spec": config.spec} if config.spec is not None
                                               else {"name": config.name, "error": config.error})
            return fields
        case ResiliencyUpsert():
            return {"type": "resiliency", "resiliency": message.resiliency}
        case ResiliencyDelete():
            return {"type": "resiliencyDelete", "name": message.name}
        case Upsert():
            return {"type": "upsert", "component": message.component}
        case Delete():
            return {"type": "delete", "name": message.name}
        case Withheld():
            return {"type": "withheld", "name": message.name, "reason": message.reason}
        case Keepalive():
            return {"type": "keepalive"}
        case Unknown():
            return {"type": message.type}


def encode(message: Message) -> bytes:
    """One line of the stream, newline included."""
    return json.dumps(_fields(message), separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def _text(raw: Mapping[str, Any], key: str, *, required: bool = True) -> str:
    value = raw.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise ProtocolError(f"{raw.get('type')} message: '{key}' must be a string")
    return value


def _component(value: Any, kind: str, what: str = "a component") -> Component:
    if not isinstance(value, Mapping):
        raise ProtocolError(f"{kind} message: {what} must be an object")
    return value


def _pairs(items: Any, key: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(items, list):
        raise ProtocolError(f"snapshot message: '{key}' must be a list")
    pairs: list[tuple[str, str]] = []
    for item in items:
        if not isinstance(item, Mapping):
            raise ProtocolError(f"snapshot message: a '{key}' entry must be an object")
        pairs.append((_text(item, "name"), _text(item, "reason", required=False)))
    return tuple(pairs)


def _configuration(value: Any) -> SnapshotConfiguration | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ProtocolError("snapshot message: 'configuration' must be an object")
    spec = value.get("spec")
    if spec is not None and not isinstance(spec, Mapping):
        raise ProtocolError("snapshot message: 'configuration.spec' must be an object")
    return SnapshotConfiguration(_text(value, "name"), spec, _text(value, "error", required=False))


def _snapshot(raw: Mapping[str, Any]) -> Snapshot:
    components, withheld = raw.get("components") or [], raw.get("withheld") or []
    if not isinstance(components, list) or not isinstance(withheld, list):
        raise ProtocolError("snapshot message: 'components' and 'withheld' must be lists")
    version = raw.get("protocol", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ProtocolError("snapshot message: 'protocol' must be a positive integer")
    resiliencies = raw.get("resiliencies") or []
    if not isinstance(resiliencies, list):
        raise ProtocolError("snapshot message: 'resiliencies' must be a list")
    keepalive = raw.get("keepalive")
    if keepalive is None:
        keepalive = DEFAULT_KEEPALIVE
    if isinstance(keepalive, bool) or not isinstance(keepalive, (int, float)) or not keepalive > 0:
        raise ProtocolError("snapshot message: 'keepalive' must be a positive number of seconds")
    return Snapshot(namespace=_text(raw, "namespace", required=False), app_id=_text(raw, "appId", required=False),
                    keepalive=float(keepalive), components=tuple(_component(c, "snapshot") for c in components),
                    withheld=_pairs(withheld, "withheld"), protocol=version,
                    resiliencies=tuple(_component(r, "snapshot", "a resiliency") for r in resiliencies),
                    resiliency_withheld=_pairs(raw.get("resiliencyWithheld") or [], "resiliencyWithheld"),
                    configuration=_configuration(raw.get("configuration")))


def decode(line: bytes | str) -> Message:
    """One line → its message, or :class:`ProtocolError` (also for JSON that is not an object)."""
    try:
        raw = json.loads(line)
    except (ValueError, RecursionError):  # the decoder's message quotes the line: not kept
        raise ProtocolError("a line of the stream is not JSON") from None
    if not isinstance(raw, Mapping) or not isinstance(raw.get("type"), str):
        raise ProtocolError("a line of the stream is not an object with a 'type'")
    kind = raw["type"]
    if kind == "snapshot":
        return _snapshot(raw)
    if kind == "upsert":
        return Upsert(_component(raw.get("component"), kind))
    if kind == "delete":
        return Delete(_text(raw, "name"))
    if kind == "withheld":
        return Withheld(_text(raw, "name"), _text(raw, "reason", required=False))
    if kind == "resiliency":
        return ResiliencyUpsert(_component(raw.get("resiliency"), kind, "a resiliency"))
    if kind == "resiliencyDelete":
        return ResiliencyDelete(_text(raw, "name"))
    if kind == "keepalive":
        return Keepalive()
    return Unknown(kind)


def encode_error(message: str) -> dict[str, str]:
    """The JSON body of an answer that refuses the stream (401, 403, 429, 503)."""
    return {"error": message}


def decode_error(text: str) -> str:
    """The explanation in a refusal's body; the body itself when it is not ours."""
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError):
        return text
    return str(raw["error"]) if isinstance(raw, Mapping) and "error" in raw else text
