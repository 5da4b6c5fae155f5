"""daprd's JSON wire format for the HTTP API, through the real protobuf messages.

Parsing uses ``json_format`` with unknown fields ignored, which is what Go's protojson does for
daprd (``DiscardUnknown``): both lowerCamel and proto names, int64 as strings, ``Any`` by
``@type``. Output omits zero fields and writes int64 as strings, like protojson's defaults.

Dapr-docs extensions are applied before parsing: alpha1 ``inputs`` given as plain strings, alpha1
``conversationContext`` as the context id, and ``metadata.*`` query parameters merged into ``metadata``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, TypeVar

# Registers the well-known types so Any values such as Int64Value in `parameters` parse.
from google.protobuf import any_pb2, descriptor_pool, duration_pb2, json_format, struct_pb2, wrappers_pb2  # noqa: F401
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from parley_sidecar import dapr_proto, errors

__all__ = ["decode", "encode", "error_body", "query_metadata"]

M = TypeVar("M", bound=Message)


class _Object(dict[str, Any]):
    """A JSON object that remembers the keys it saw twice (Go's protojson decides later whether
    a duplicate matters: it does for known fields and map keys, not for ignored unknown keys)."""

    __slots__ = ("dups",)

    def __init__(self) -> None:
        super().__init__()
        self.dups: set[str] = set()


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    out = _Object()
    for key, value in pairs:
        if key in out:
            out.dups.add(key)
        out[key] = value
    return out


MAX_DEPTH = 100
"""Deepest JSON nesting accepted; deeper bodies are malformed (Python's stack, not Go's 10000 levels)."""

_FLOAT_TEXT = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\Z")
_FLOAT_WORDS = frozenset({"NaN", "Infinity", "-Infinity"})
_JSON_WKT = frozenset({"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"})
_FIELDS: dict[str, dict[str, FieldDescriptor]] = {}
_TOO_DEEP = f"JSON nested deeper than {MAX_DEPTH} levels"


def _fields(desc: Any) -> dict[str, FieldDescriptor]:
    found = _FIELDS.get(desc.full_name)
    if found is None:
        found = {}
        for fd in desc.fields:
            found[fd.name] = found[fd.json_name] = fd
        _FIELDS[desc.full_name] = found
    return found


def _bad(what: str, value: Any) -> errors.MalformedRequest:
    return errors.MalformedRequest(f"invalid value for {what}: {json.dumps(value, ensure_ascii=False)[:60]}")


def _check_json(value: Any, depth: int, *, keys_unique: bool) -> None:
    """Free JSON: not nested too deeply and, inside Struct/Value/ListValue (``keys_unique``), no key
    twice in one object (a duplicate map key for Go; in an ignored unknown field it is fine)."""
    if isinstance(value, dict):
        if depth > MAX_DEPTH:
            raise errors.MalformedRequest(_TOO_DEEP)
        if keys_unique and getattr(value, "dups", None):
            raise errors.MalformedRequest(f"duplicate map key {sorted(value.dups)[0]!r}")  # type: ignore[attr-defined]
        for item in value.values():
            if isinstance(item, (dict, list)):
                _check_json(item, depth + 1, keys_unique=keys_unique)
    elif isinstance(value, list):
        if depth > MAX_DEPTH:
            raise errors.MalformedRequest(_TOO_DEEP)
        for item in value:
            if isinstance(item, (dict, list)):
                _check_json(item, depth + 1, keys_unique=keys_unique)


def _check_any(data: Any, depth: int) -> Any:
    if not isinstance(data, dict):
        raise _bad("google.protobuf.Any", data)
    if "@type" in getattr(data, "dups", ()):
        raise errors.MalformedRequest('duplicate "@type" field')
    if "@type" not in data:
        _check_json(data, depth, keys_unique=False)
        return {}  # protojson with DiscardUnknown: an Any without @type is an empty Any
    type_url = data["@type"]
    if not isinstance(type_url, str):
        raise _bad("@type", type_url)
    name = type_url.rsplit("/", 1)[-1]
    try:
        desc = descriptor_pool.Default().FindMessageTypeByName(name)
    except KeyError:
        if not dapr_proto.load_for_any(name):
            return data  # json_format reports the unknown type
        try:
            desc = descriptor_pool.Default().FindMessageTypeByName(name)
        except KeyError:
            return data
    if desc.full_name in _JSON_WKT:
        _check_json(data.get("value"), depth + 1, keys_unique=True)
    elif desc.full_name.startswith("google.protobuf."):
        _check_json(data, depth, keys_unique=False)
    else:
        _check_message({k: v for k, v in data.items() if k != "@type"}, desc, depth)
    return data


def _check_value(value: Any, fd: FieldDescriptor, depth: int) -> Any:
    if value is None:
        return value
    if fd.type == FieldDescriptor.TYPE_MESSAGE:
        return _check_message(value, fd.message_type, depth)
    if fd.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT) and (
        isinstance(value, bool)
        or (isinstance(value, str) and value not in _FLOAT_WORDS and not _FLOAT_TEXT.match(value))
    ):
        raise _bad(f"{fd.name} (a number)", value)
    if isinstance(value, (dict, list)):
        _check_json(value, depth, keys_unique=False)  # json_format rejects it; only the depth matters
    return value


def _check_message(data: Any, desc: Any, depth: int = 1) -> Any:
    """Where Go's protojson is stricter than ``json_format``, and the nesting limit: a message must
    be a JSON object (not a string or a list), numbers are not booleans or padded strings, a known
    field or a map key may not appear twice, nothing nests deeper than MAX_DEPTH. Returns ``data``,
    with ``Any`` values lacking ``@type`` made empty (protojson's DiscardUnknown)."""
    name = desc.full_name
    if name == "google.protobuf.Any":
        return _check_any(data, depth)
    if name in _JSON_WKT:
        _check_json(data, depth, keys_unique=True)
        return data
    if name.startswith("google.protobuf."):
        _check_json(data, depth, keys_unique=False)
        return data  # Duration, Timestamp, wrappers: json_format is as strict as protojson
    if not isinstance(data, dict):
        raise _bad(f"message {desc.name}", data)
    if depth > MAX_DEPTH:
        raise errors.MalformedRequest(_TOO_DEEP)
    fields = _fields(desc)
    for key in getattr(data, "dups", ()):
        if key in fields:
            raise errors.MalformedRequest(f"duplicate field {key!r}")
    inner = depth + 1
    for key, value in data.items():
        fd = fields.get(key)
        if fd is None:
            if isinstance(value, (dict, list)):
                _check_json(value, inner, keys_unique=False)
            continue
        if value is None:
            continue
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            if isinstance(value, dict):
                if getattr(value, "dups", None):
                    raise errors.MalformedRequest(f"duplicate map key {sorted(value.dups)[0]!r}")  # type: ignore[attr-defined]
                value_fd = fd.message_type.fields_by_name["value"]
                for k, v in value.items():
                    value[k] = _check_value(v, value_fd, inner + 1)
        elif fd.is_repeated:
            if isinstance(value, list):
                for i, v in enumerate(value):
                    value[i] = _check_value(v, fd, inner + 1)
        else:
            data[key] = _check_value(value, fd, inner)
    return data


# Built once: json.loads and json.dumps build a new decoder or encoder on every call that passes
# options; these are the same objects they would build (the decoder and encoder keep no state).
_DECODER = json.JSONDecoder(object_pairs_hook=_object)
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)

_SIMPLE_DEPTH = 20
"""Deeper bodies take the full path, which enforces MAX_DEPTH."""
_MAX_EXACT = 2**53


def _fill_simple(data: Any, message: Message, depth: int = 0) -> bool:
    """Fill ``message`` from the JSON of a common request (strings, booleans, finite doubles, plain
    messages, string maps) without ``json_format``, which with the strictness walk was a fifth of
    the sidecar's CPU per echo request. Returns False, with ``message`` partly filled, as soon as
    anything else appears (numbers other than doubles, enums, bytes, well-known types, null, any
    duplicate key, a second oneof member, nesting): then :func:`decode` clears it and parses the
    slow way, so errors and edge cases keep exactly that path's behaviour."""
    if not isinstance(data, dict) or getattr(data, "dups", None) or depth > _SIMPLE_DEPTH:
        return False
    fields = _fields(message.DESCRIPTOR)
    seen: set[int] = set()
    for key, value in data.items():
        fd = fields.get(key)
        if fd is None:
            if isinstance(value, (dict, list)) or key.startswith("["):
                return False  # unknown: only the full path checks its nesting
            continue
        if fd.number in seen:
            return False  # both the JSON and the proto name: json_format's error
        seen.add(fd.number)
        oneof = fd.containing_oneof
        if oneof is not None and message.WhichOneof(oneof.name) is not None:
            return False
        kind = fd.type
        if kind == FieldDescriptor.TYPE_MESSAGE:
            sub_desc: Any = fd.message_type
            if sub_desc.full_name.startswith("google.protobuf."):
                return False
            target = getattr(message, fd.name)
            if sub_desc.GetOptions().map_entry:
                if not isinstance(value, dict) or getattr(value, "dups", None):
                    return False
                if (sub_desc.fields_by_name["key"].type != FieldDescriptor.TYPE_STRING
                        or sub_desc.fields_by_name["value"].type != FieldDescriptor.TYPE_STRING):
                    return False
                for k, v in value.items():
                    if type(v) is not str:
                        return False
                    target[k] = v
            elif fd.is_repeated:
                if type(value) is not list:
                    return False
                for item in value:
                    if not _fill_simple(item, target.add(), depth + 1):
                        return False
            else:
                target.SetInParent()
                if not _fill_simple(value, target, depth + 1):
                    return False
        elif fd.is_repeated:
            if kind != FieldDescriptor.TYPE_STRING or type(value) is not list or any(type(v) is not str for v in value):
                return False
            getattr(message, fd.name).extend(value)
        elif kind == FieldDescriptor.TYPE_STRING:
            if type(value) is not str:
                return False
            setattr(message, fd.name, value)
        elif kind == FieldDescriptor.TYPE_BOOL:
            if type(value) is not bool:
                return False
            setattr(message, fd.name, value)
        elif kind == FieldDescriptor.TYPE_DOUBLE:
            if type(value) is float:
                if not math.isfinite(value):
                    return False
            elif type(value) is not int or abs(value) > _MAX_EXACT:
                return False
            setattr(message, fd.name, float(value))
        else:
            return False
    return True


def _parse(data: Any, message: Message) -> None:
    data = _check_message(data, message.DESCRIPTOR)
    try:
        # Go's protojson allows 10000 levels of messages; MAX_DEPTH bounds the JSON already.
        json_format.ParseDict(data, message, ignore_unknown_fields=True, max_recursion_depth=10 * MAX_DEPTH)
    except json_format.ParseError as exc:
        raise errors.MalformedRequest(str(exc)) from None
    except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as exc:
        # OverflowError: an integer literal too large for a double field (protojson refuses it too)
        raise errors.MalformedRequest(f"invalid value: {exc}") from None


def query_metadata(query: Mapping[str, str]) -> dict[str, str]:
    """A request's ``?metadata.KEY=VALUE`` parameters as ``{KEY: VALUE}`` (for :func:`decode`)."""
    return {k[len("metadata."):]: v for k, v in query.items() if k.startswith("metadata.")}


def decode(body: bytes, message: M, *, query_metadata: Mapping[str, str], plain_inputs: bool) -> M:
    """Fill ``message`` from a request body; raise MalformedRequest like daprd's 400."""
    if body:  # daprd parses any non-empty body: whitespace alone is malformed
        try:
            # Strict UTF-8 (json.loads would let a surrogate's bytes through): protojson's rule.
            text = body.decode()
            if text.startswith("\ufeff"):  # json.loads' own refusal, with its words
                raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
            data = _DECODER.decode(text)
        except RecursionError:
            raise errors.MalformedRequest(f"JSON nested deeper than {MAX_DEPTH} levels") from None
        except (ValueError, UnicodeDecodeError) as exc:
            if isinstance(exc, errors.MalformedRequest):
                raise
            raise errors.MalformedRequest(f"syntax error: {exc}") from None
        if not isinstance(data, dict):
            raise errors.MalformedRequest(f"unexpected token {json.dumps(data)[:40]}")
        if plain_inputs:
            if isinstance(data.get("inputs"), list):
                data["inputs"] = [{"content": i} if isinstance(i, str) else i for i in data["inputs"]]
            # The Dapr docs' API reference names the context `conversationContext`.
            context = data.pop("conversationContext", None)
            if isinstance(context, str) and "contextID" not in data:
                data["contextID"] = context
        try:
            simple = _fill_simple(data, message)
        except (TypeError, ValueError, OverflowError):  # e.g. a lone surrogate: the full path reports it
            simple = False
        if not simple:
            message.Clear()
            _parse(data, message)
    if query_metadata:
        target = message.metadata  # type: ignore[attr-defined]
        for key, value in query_metadata.items():
            if key not in target:
                target[key] = value
    return message


_BAIL, _PLAIN, _PLAIN_LIST, _INT64, _INT64_LIST, _MESSAGE, _MESSAGE_LIST, _STRING_MAP = range(8)
_OUT_KIND: dict[FieldDescriptor, int] = {}


def _out_kind(fd: FieldDescriptor) -> int:
    """How :func:`_simple_dict` writes a field, worked out once per field (descriptor lookups cost
    more than the conversion itself)."""
    cpp, sub = fd.cpp_type, fd.message_type
    if fd.is_extension or fd.type == FieldDescriptor.TYPE_BYTES:
        return _BAIL
    if sub is not None:
        if sub.full_name.startswith("google.protobuf."):
            return _BAIL
        if sub.GetOptions().map_entry:
            string = FieldDescriptor.TYPE_STRING
            return _STRING_MAP if (sub.fields_by_name["key"].type == string
                                   and sub.fields_by_name["value"].type == string) else _BAIL
        return _MESSAGE_LIST if fd.is_repeated else _MESSAGE
    if cpp in (FieldDescriptor.CPPTYPE_STRING, FieldDescriptor.CPPTYPE_BOOL, FieldDescriptor.CPPTYPE_INT32,
               FieldDescriptor.CPPTYPE_UINT32):
        return _PLAIN_LIST if fd.is_repeated else _PLAIN
    if cpp in (FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT64):
        return _INT64_LIST if fd.is_repeated else _INT64
    return _BAIL  # floats, enums


def _simple_dict(message: Message) -> dict[str, Any] | None:
    """``MessageToDict`` for the common responses (strings, booleans, integers, plain messages,
    string maps) at a fraction of its cost; None when anything else is set (bytes, enums, floats,
    well-known types, extensions), and then :func:`encode` takes ``json_format``. Same fields in
    the same order (``ListFields``, by number), same names (``json_name``), int64 as strings."""
    out: dict[str, Any] = {}
    for fd, value in message.ListFields():
        kind = _OUT_KIND.get(fd)
        if kind is None:
            kind = _OUT_KIND[fd] = _out_kind(fd)
        if kind == _PLAIN:
            out[fd.json_name] = value
        elif kind == _MESSAGE_LIST:
            items = []
            for item in value:
                converted = _simple_dict(item)
                if converted is None:
                    return None
                items.append(converted)
            out[fd.json_name] = items
        elif kind == _MESSAGE:
            converted = _simple_dict(value)
            if converted is None:
                return None
            out[fd.json_name] = converted
        elif kind == _INT64:
            out[fd.json_name] = str(value)
        elif kind == _PLAIN_LIST:
            out[fd.json_name] = list(value)
        elif kind == _STRING_MAP:
            out[fd.json_name] = dict(value)
        elif kind == _INT64_LIST:
            out[fd.json_name] = [str(v) for v in value]
        else:
            return None
    return out


def encode(message: Message) -> bytes:
    """protojson's default output: zero fields omitted, int64 as strings, lowerCamel names."""
    data = _simple_dict(message)
    if data is not None:
        return _ENCODER.encode(data).encode()
    data = json_format.MessageToDict(message)
    if message.DESCRIPTOR.full_name == "dapr.proto.runtime.v1.ConversationResponse":
        for output in data.get("outputs", ()):
            for value in output.get("parameters", {}).values():
                # protojson writes an Any holding google.protobuf.Empty as {"@type": …, "value": {}}.
                if value.get("@type", "").rsplit("/", 1)[-1] == "google.protobuf.Empty":
                    value.setdefault("value", {})
    return _ENCODER.encode(data).encode()


def error_body(code: str, message: str) -> bytes:
    return _ENCODER.encode({"errorCode": code, "message": message}).encode()
