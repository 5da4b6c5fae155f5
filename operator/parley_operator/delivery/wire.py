"""The component stream's wire format: newline-delimited JSON over one HTTPS response.

``GET /v1/stream`` with ``Authorization: Bearer <projected ServiceAccount token>`` answers
``200 application/x-ndjson`` and then, one JSON object per line:

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

``C`` is ``{"name", "namespace", "type", "version", "scopes": [..], "metadata": [{"name", "value"} |
{"name", "envRef"}]}``: the Component with every ``secretKeyRef`` replaced by the Secret's value
(UTF-8 text). Errors before the stream starts are plain JSON ``{"error": message}`` with 401
(no/invalid token), 403 (token valid but not a sidecar pod) or 503 (operator still starting;
``Retry-After`` says when to retry). This module only encodes; no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["CONTENT_TYPE", "PATH", "delete", "encode", "keepalive", "snapshot", "upsert", "withheld"]

PATH = "/v1/stream"
CONTENT_TYPE = "application/x-ndjson"


def encode(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def snapshot(
    *, namespace: str, app_id: str, keepalive: float, components: Iterable[Mapping[str, Any]],
    withheld: Iterable[tuple[str, str]],
) -> bytes:
    return encode({
        "type": "snapshot", "namespace": namespace, "appId": app_id, "keepalive": keepalive,
        "components": list(components),
        "withheld": [{"name": name, "reason": reason} for name, reason in withheld],
    })


def upsert(component: Mapping[str, Any]) -> bytes:
    return encode({"type": "upsert", "component": component})


def delete(name: str) -> bytes:
    return encode({"type": "delete", "name": name})


def withheld(name: str, reason: str) -> bytes:
    return encode({"type": "withheld", "name": name, "reason": reason})


def keepalive() -> bytes:
    return b'{"type":"keepalive"}\n'
