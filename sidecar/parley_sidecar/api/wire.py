"""daprd's JSON wire format for the HTTP API, through the real protobuf messages.

Parsing uses ``json_format`` with unknown fields ignored, which is what Go's protojson does for
daprd (``DiscardUnknown``): both lowerCamel and proto names, int64 as strings, ``Any`` by
``@type``. Output omits zero fields and writes int64 as strings, like protojson's defaults.

Seed extensions are applied before parsing: alpha1 ``inputs`` given as plain strings, alpha1
``conversationContext`` as the context id, and ``metadata.*`` query parameters merged into ``metadata``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

# Registers the well-known types so Any values such as Int64Value in `parameters` parse.
from google.protobuf import any_pb2, duration_pb2, json_format, struct_pb2, wrappers_pb2  # noqa: F401
from google.protobuf.message import Message

from parley_sidecar import errors

__all__ = ["decode", "encode", "error_body"]

M = TypeVar("M", bound=Message)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise errors.MalformedRequest(f"duplicate field {key!r}")
        out[key] = value
    return out


def decode(body: bytes, message: M, *, query_metadata: Mapping[str, str], plain_inputs: bool) -> M:
    """Fill ``message`` from a request body; raise MalformedRequest like daprd's 400."""
    if body.strip():
        try:
            data = json.loads(body, object_pairs_hook=_no_duplicates)
        except (ValueError, UnicodeDecodeError) as exc:
            if isinstance(exc, errors.MalformedRequest):
                raise
            raise errors.MalformedRequest(f"syntax error: {exc}") from None
        if not isinstance(data, dict):
            raise errors.MalformedRequest(f"unexpected token {json.dumps(data)[:40]}")
        if plain_inputs:
            if isinstance(data.get("inputs"), list):
                data["inputs"] = [{"content": i} if isinstance(i, str) else i for i in data["inputs"]]
            # The seed's API reference names the context `conversationContext`.
            context = data.pop("conversationContext", None)
            if isinstance(context, str) and "contextID" not in data:
                data["contextID"] = context
        try:
            json_format.ParseDict(data, message, ignore_unknown_fields=True)
        except json_format.ParseError as exc:
            raise errors.MalformedRequest(str(exc)) from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise errors.MalformedRequest(f"invalid value: {exc}") from None
    if query_metadata:
        target = message.metadata  # type: ignore[attr-defined]
        for key, value in query_metadata.items():
            if key not in target:
                target[key] = value
    return message


def encode(message: Message) -> bytes:
    """protojson's default output: zero fields omitted, int64 as strings, lowerCamel names."""
    return json.dumps(
        json_format.MessageToDict(message), separators=(",", ":"), ensure_ascii=False
    ).encode()


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"errorCode": code, "message": message}, separators=(",", ":"), ensure_ascii=False).encode()
