"""Send one case to both servers and compare the answers (see differences.py for the exceptions)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tests.conformance.differences import Answer, Case, assert_same, oracle_request
from tests.conformance.servers import Pair

__all__ = ["UNSET", "check_http", "encode"]

UNSET: Any = object()


def encode(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


def check_http(pair: Pair, case_id: str, path: str, body: Any = UNSET, *, raw: bytes | None = None,
               method: str = "POST", headers: Mapping[str, str] | None = None, port: str = "http",
               status: int | None = None) -> tuple[Answer, Answer]:
    """``body`` is JSON-encoded (``raw`` is sent as is); ``status`` pins daprd's status, so a case
    cannot pass by both servers failing the same unexpected way."""
    if raw is None and body is not UNSET:
        raw = encode(body)
    request: Any = body if body is not UNSET else _parse(raw)
    case = Case(f"http/{case_id}", request, None if raw is None else len(raw))
    asked = oracle_request(case)
    daprd_raw = raw if asked is request else encode(asked)
    d = pair.daprd.request(method, path, daprd_raw, headers, port=pair.daprd.ports[port])
    p = pair.parley.request(method, path, raw, headers, port=pair.parley.ports[port])
    if status is not None:
        assert d.status == status, f"{case.id}: daprd answered {d} (the case expects {status})"
    assert_same(case, d, p)
    return d, p


def _parse(raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return raw
