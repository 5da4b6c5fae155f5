"""OTLP protobuf bytes (an ``ExportTraceServiceRequest``) for parley's spans, written directly.

The OTLP exporters' own encoder (``encode_spans`` of opentelemetry-exporter-otlp-proto-common)
builds a upb message per span, attribute and value in Python and copies each into its parent:
222,000 instructions a span under callgrind, four fifths of a sampled call (``docs/tracing.md``,
"Round 6"). The wire format needs none of that: varints, length-delimited fields, fixed64 times
and a fixed32 for the span's flags. :func:`encode` writes the same fields ``encode_spans`` sets,
in field-number order as upb writes them, so its bytes are those of
``encode_spans(spans).SerializeToString()`` (``tests/sidecar/test_tracing_otlp.py`` checks both
the parsed message and the bytes): spans grouped by resource, then by instrumentation scope, in
the order they first appear, under the first equal resource or scope met, as the SDK groups them.

What parley never makes is left to the SDK: a span with events or links, an attribute whose value
is not a string, bool, int, float, bytes or a sequence of them (a mapping), an int outside int64,
a string that is not UTF-8 (a lone surrogate), or an attribute key that is not a string: then
:func:`encode` answers None and the exporter calls the SDK's encoder (whose logging of an
attribute it cannot encode, and dropping of it, is then the SDK's own).

Imported only when tracing is on (``tracing_otlp_http``, ``tracing_otlp_grpc``).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanKind, StatusCode

from parley_sidecar import tracing_otel

__all__ = ["encode"]

_BYTE = tuple(bytes((i,)) for i in range(128))
_INT64 = 1 << 63
_UINT64 = (1 << 64) - 1
_DOUBLE = struct.Struct("<d").pack
_FLAGS = (b"\x85\x01\x00\x01\x00\x00", b"\x85\x01\x00\x03\x00\x00")
"""Span field 16 (``flags``, fixed32): the SDK writes "has is-remote" (0x100), and "is remote"
(0x200) when the parent is a remote span context; never the W3C trace flags."""
_KEY_ROOM = 256
"""Attribute keys kept encoded (parley's are a few dozen fixed names): no more, whatever a span carries."""


class _Unsupported(Exception):
    """Something :func:`encode` leaves to the SDK's encoder."""


def _varint(n: int) -> bytes:
    if n < 0x80:
        return _BYTE[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: its tag, the payload's length and the payload."""
    return tag + _varint(len(payload)) + payload


def _text(tag: bytes, text: str) -> bytes:
    """A string field; proto3 leaves out an empty one (as upb does for a non-oneof field)."""
    return _field(tag, text.encode()) if text else b""


# -- AnyValue: every member is in the oneof ``value``, so even an empty string, 0 or False is written.

def _str_value(value: str) -> bytes:
    return _field(b"\x0a", value.encode())


def _bool_value(value: bool) -> bytes:
    return b"\x10\x01" if value else b"\x10\x00"


def _int_value(value: int) -> bytes:
    if not -_INT64 <= value < _INT64:
        raise _Unsupported  # upb refuses it: the SDK logs the attribute and leaves it out
    return b"\x18" + _varint(value & _UINT64)


def _float_value(value: float) -> bytes:
    return b"\x21" + _DOUBLE(value)


def _bytes_value(value: bytes) -> bytes:
    return _field(b"\x3a", value)


def _array_value(values: Iterable[Any]) -> bytes:
    return _field(b"\x2a", b"".join([_field(b"\x0a", _value(v)) for v in values]))


_BY_TYPE: dict[type, Callable[[Any], bytes]] = {
    str: _str_value, bool: _bool_value, int: _int_value, float: _float_value, bytes: _bytes_value,
    tuple: _array_value, list: _array_value}


def _value(value: Any) -> bytes:
    """An ``AnyValue``'s fields, for the types the SDK's ``_encode_value`` knows, in its order."""
    write = _BY_TYPE.get(type(value))
    if write is not None:
        return write(value)
    if value is None:
        return b""
    if isinstance(value, bool):
        return _bool_value(value)
    if isinstance(value, str):
        return _str_value(value)
    if isinstance(value, int):
        return _int_value(value)
    if isinstance(value, float):
        return _float_value(value)
    if isinstance(value, bytes):
        return _bytes_value(value)
    if isinstance(value, Sequence):
        return _array_value(value)
    raise _Unsupported  # a mapping (kvlist_value), or a type the SDK's encoder refuses


_KEYS: dict[str, bytes] = {}
"""An attribute key's field (``KeyValue.key``), encoded once: parley's keys are a few dozen names."""
_STRING_ROOM = 1024
_STRINGS: dict[tuple[str, str], bytes] = {}
"""Spans' short string attributes (a field under 128 bytes) by key and value, encoded once: most
of parley's repeat (``dapr.protocol``, ``gen_ai.operation.name``, the component, the API path).
At most :data:`_STRING_ROOM` of them (about 250 kB); past that, new ones are encoded each time."""


def _key(key: str) -> bytes:
    """``KeyValue.key``'s field for ``key``, kept for the next span."""
    if type(key) is not str:
        raise _Unsupported
    encoded = _field(b"\x0a", key.encode())
    if len(_KEYS) < _KEY_ROOM:
        _KEYS[key] = encoded
    return encoded


def _attributes(tag: bytes, attributes: Mapping[str, Any] | None,
                strings: dict[tuple[str, str], bytes] | None = None) -> list[bytes]:
    """One ``KeyValue`` field (``tag``) per attribute. Short strings and small ints, most of a
    span's, are written by one bytes format when every length takes one byte (a ``KeyValue`` of
    at most 127 bytes): under callgrind half the instructions of the nested functions.
    ``strings``: short string attributes' fields by key and value, to reuse."""
    if not attributes:
        return []
    out = []
    for key, value in attributes.items():
        kind = type(value)
        if kind is str and strings is not None and (field := strings.get((key, value))) is not None:
            out.append(field)
            continue
        key_field = _KEYS.get(key) or _key(key)
        if kind is str:
            encoded = value.encode()
            size = len(key_field) + len(encoded) + 4  # the KeyValue: key, value's tag and length, AnyValue's
            if size < 0x80:
                field = b"%b%c%b\x12%c\x0a%c%b" % (tag, size, key_field, len(encoded) + 2, len(encoded), encoded)
                if strings is not None and len(strings) < _STRING_ROOM:
                    strings[(key, value)] = field
                out.append(field)
                continue
        elif kind is int and 0 <= value < 0x80 and len(key_field) < 0x7C:
            out.append(b"%b%c%b\x12\x02\x18%c" % (tag, len(key_field) + 4, key_field, value))
            continue
        out.append(_field(tag, key_field + _field(b"\x12", _value(value))))
    return out


_KINDS = tuple((kind, b"\x30" + _BYTE[kind.value + 1]) for kind in SpanKind)
"""Span field 6 (``kind``) by the SDK's kind: OTLP's numbers are one more (0 is "unspecified")."""
_STATUS = {StatusCode.UNSET: b"\x7a\x00", StatusCode.OK: b"\x7a\x02\x18\x01", StatusCode.ERROR: b"\x7a\x02\x18\x02"}
"""Span field 15 (``status``) without a message, by code: written even when empty (unset)."""


def _kind(kind: SpanKind) -> bytes:
    # By identity: an enum's ``value`` and its hash are Python code (2,800 instructions a span).
    for member, field in _KINDS:
        if kind is member:
            return field
    raise _Unsupported


def _readable(span: ReadableSpan) -> tracing_otel.SpanFields:
    """What :func:`_span` writes, read from any SDK span through its properties."""
    if span.events or span.links or span.dropped_events or span.dropped_links:
        raise _Unsupported
    context = span.get_span_context()
    if context is None:
        raise _Unsupported  # the SDK's encoder fails on it too, and says so
    return (span.name, context, span.parent, span.kind, span.start_time, span.end_time, span.attributes,
            span.status, span.resource, span.instrumentation_scope)


def _span(fields: tracing_otel.SpanFields, dropped: int) -> bytes:
    """A ``Span`` message's fields, as ``trace_encoder._encode_span`` sets them (``dropped``: the
    attributes the span limits left out)."""
    name, context, parent, kind, start, end, attributes, status, _, _ = fields
    trace_state = context.trace_state
    parts = [b"\x0a\x10%b\x12\x08%b" % (context.trace_id.to_bytes(16), context.span_id.to_bytes(8))]
    if trace_state:
        parts.append(_text(b"\x1a", ",".join([f"{k}={v}" for k, v in trace_state.items()])))
    if parent is not None:
        parts.append(b"\x22\x08" + parent.span_id.to_bytes(8))
    if name:
        parts.append(_field(b"\x2a", name.encode()))
    parts.append(_kind(kind))
    if start:
        parts.append(b"\x39" + start.to_bytes(8, "little"))
    if end:
        parts.append(b"\x41" + end.to_bytes(8, "little"))
    parts += _attributes(b"\x4a", attributes, _STRINGS)
    if dropped:
        parts += (b"\x50", _varint(dropped))
    description = status.description
    if description:
        code = _STATUS[status.status_code][2:]
        parts.append(_field(b"\x7a", _text(b"\x12", description) + code))
    else:
        parts.append(_STATUS[status.status_code])
    parts.append(_FLAGS[parent is not None and parent.is_remote])
    return b"".join(parts)


def _resource(resource: Resource) -> bytes:
    """``ResourceSpans.resource``: ``trace_encoder`` writes the attributes alone."""
    return _field(b"\x0a", b"".join(_attributes(b"\x0a", resource.attributes)))


def _scope(scope: InstrumentationScope | None) -> bytes:
    """``ScopeSpans.scope``: name, version and attributes (an empty message for no scope)."""
    if scope is None:
        return b"\x0a\x00"
    return _field(b"\x0a", _text(b"\x0a", scope.name) + _text(b"\x12", scope.version or "")
                  + b"".join(_attributes(b"\x1a", scope.attributes)))


def encode(spans: Sequence[ReadableSpan]) -> bytes | None:
    """The ``ExportTraceServiceRequest`` for ``spans``, serialized; None when a span has what
    parley's spans never have (events, links, a mapping value: the module's docstring), for the
    exporter to call the SDK's encoder instead."""
    # Resource -> scope -> encoded spans, by equality (the SDK's defaultdicts); a batch's spans
    # share one resource and one scope object, so identity answers most lookups without a hash.
    groups: dict[Resource, dict[InstrumentationScope | None, list[bytes]]] = {}
    last_resource: Resource | None = None
    last_scope: object = groups  # nothing a span's scope can be
    spans_of: list[bytes] = []
    try:
        for span in spans:
            # parley's own spans carry their fields in one tuple: 18,000 instructions fewer a span
            # than the SDK's properties (MappingProxyType, tuple copies, ABC isinstance checks).
            if type(span) is tracing_otel.FinishedSpan:
                fields = span.fields
                attributes = fields[6]
                dropped = attributes.dropped if type(attributes) is BoundedAttributes else 0
            else:
                fields = _readable(span)
                dropped = span.dropped_attributes
            resource = fields[8]
            scope = fields[9] or None
            if resource is not last_resource or scope is not last_scope:
                scopes = groups.setdefault(resource, {})
                spans_of = scopes.setdefault(scope, [])
                last_resource, last_scope = resource, scope
            spans_of.append(_field(b"\x12", _span(fields, dropped)))
        out = []
        for resource, scopes in groups.items():
            parts = [_resource(resource)]
            for scope, encoded in scopes.items():
                parts.append(_field(b"\x12", _scope(scope) + b"".join(encoded)
                                    + _text(b"\x1a", (scope.schema_url if scope else "") or "")))
            parts.append(_text(b"\x1a", resource.schema_url))
            out.append(_field(b"\x0a", b"".join(parts)))
        return b"".join(out)
    except (_Unsupported, UnicodeEncodeError):
        return None
