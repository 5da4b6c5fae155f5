"""Hypothesis strategies shared by the fuzz tests: JSON of the right and wrong shapes, hostile text."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

SURROGATES = st.integers(0xD800, 0xDFFF).map(chr)
"""Lone surrogates: valid in a JSON string escape (``"\\ud800"``), not in any Unicode encoding."""

HOSTILE_TEXT = st.lists(
    st.one_of(st.text(max_size=12), SURROGATES, st.sampled_from([
        "\x00", "\u202e", "\ufeff", "😀", "<script>", "%s%n", "../../", "\\", '"', "\r\n", "a" * 300,
        "alice@example.com", "+1 (555) 010-9999", "4111 1111 1111 1111", "123-45-6789", "10.0.0.1",
    ])),
    max_size=4).map("".join)
"""Text with the odd characters parsers trip on: lone surrogates, NUL, BOM, bidi marks, PII."""

HUGE_NUMBERS = st.sampled_from([
    10 ** 400, -(10 ** 400), 2 ** 63, -(2 ** 63) - 1, 2 ** 64, 2 ** 53 + 1, 1e308, -1e308, 5e-324,
    float("inf"), float("-inf"), float("nan"), 0.1, -0.0, 1e400,
])

FIELD_NAMES = st.sampled_from([
    "inputs", "content", "role", "scrubPII", "scrub_pii", "scrubPii", "temperature", "contextID", "contextId",
    "context_id", "conversationContext", "parameters", "metadata", "messages", "ofUser", "of_user", "ofSystem",
    "ofAssistant", "ofDeveloper", "ofTool", "text", "toolCalls", "tool_calls", "tools", "function", "name",
    "description", "toolChoice", "responseFormat", "promptCacheRetention", "cacheTTL", "model", "key",
    "piiEntities", "@type", "value", "id", "toolId", "arguments", "stream", "",
])
KEYS = st.one_of(FIELD_NAMES, HOSTILE_TEXT)
ANY_KEY = "x-unknown-key"

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), HUGE_NUMBERS, HOSTILE_TEXT,
)


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any JSON value (Python's reading of JSON: NaN and infinities included)."""
    return st.recursive(SCALARS, lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)), max_leaves=max_leaves)


ANY_JSON = json_values()

STRING_ANY = st.sampled_from([
    "type.googleapis.com/google.protobuf.StringValue", "type.googleapis.com/google.protobuf.Int64Value",
    "type.googleapis.com/google.protobuf.Struct", "type.googleapis.com/google.protobuf.Duration",
    "type.googleapis.com/nope.Nope", "", "not a url",
])


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, each ``weight`` times as likely as a weight of 1 (``st.one_of(s, s, t)``
    does not weight: Hypothesis keeps one of equal branches). Shrinks towards the first."""
    return st.sampled_from([s for weight, s in choices for _ in range(weight)]).flatmap(lambda s: s)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The right-shaped value three times in four, any JSON value (a wrong type) otherwise."""
    return weighted((3, strategy), (1, ANY_JSON))


def rarely_wrong(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The right-shaped value nine times in ten, any JSON value otherwise."""
    return weighted((9, strategy), (1, ANY_JSON))


PARAMETERS = st.dictionaries(KEYS, maybe(st.fixed_dictionaries({"@type": STRING_ANY}, optional={
    "value": st.one_of(HOSTILE_TEXT, st.integers(), HUGE_NUMBERS, ANY_JSON)})), max_size=3)

REQUEST_METADATA = st.dictionaries(
    st.one_of(st.sampled_from(["cacheTTL", "model", "key", "piiEntities", "maxRetries", "endpoint"]), HOSTILE_TEXT),
    maybe(st.one_of(st.sampled_from(["10s", "1m30s", "-5s", "0", "forever", "EMAIL_ADDRESS,PHONE_NUMBER",
                                     "NOPE", "", "1e9h"]), HOSTILE_TEXT)),
    max_size=3)


def _common(body: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(body, optional={
        "contextID": maybe(HOSTILE_TEXT), "conversationContext": maybe(HOSTILE_TEXT), "contextId": maybe(HOSTILE_TEXT),
        "scrubPII": maybe(st.booleans()), "temperature": maybe(st.one_of(st.floats(), HUGE_NUMBERS)),
        "parameters": maybe(PARAMETERS), "metadata": maybe(REQUEST_METADATA),
        "name": maybe(HOSTILE_TEXT), ANY_KEY: ANY_JSON,
    })


ALPHA1_INPUT = st.one_of(
    HOSTILE_TEXT,  # the seed's plain-string form
    st.fixed_dictionaries({}, optional={"content": maybe(HOSTILE_TEXT), "role": maybe(
        st.sampled_from(["user", "system", "assistant", "tool", ""]) | HOSTILE_TEXT), "scrubPII": maybe(st.booleans())}),
)
ALPHA1_BODY = _common({"inputs": maybe(st.lists(maybe(ALPHA1_INPUT), max_size=3))})

CONTENT = st.lists(maybe(st.fixed_dictionaries({"text": maybe(HOSTILE_TEXT)})), max_size=2)
TOOL_CALL = st.fixed_dictionaries({}, optional={
    "id": maybe(HOSTILE_TEXT),
    "function": maybe(st.fixed_dictionaries({}, optional={
        "name": maybe(HOSTILE_TEXT),
        "arguments": maybe(st.one_of(HOSTILE_TEXT, ANY_JSON.map(lambda v: json.dumps(v, allow_nan=True))))})),
})
MESSAGE = st.one_of(
    st.fixed_dictionaries({"ofUser": maybe(st.fixed_dictionaries({}, optional={"content": maybe(CONTENT),
                                                                                 "name": maybe(HOSTILE_TEXT)}))}),
    st.fixed_dictionaries({"ofSystem": maybe(st.fixed_dictionaries({}, optional={"content": maybe(CONTENT)}))}),
    st.fixed_dictionaries({"ofDeveloper": maybe(st.fixed_dictionaries({}, optional={"content": maybe(CONTENT)}))}),
    st.fixed_dictionaries({"ofAssistant": maybe(st.fixed_dictionaries({}, optional={
        "content": maybe(CONTENT), "toolCalls": maybe(st.lists(TOOL_CALL, max_size=2))}))}),
    st.fixed_dictionaries({"ofTool": maybe(st.fixed_dictionaries({}, optional={
        "toolId": maybe(HOSTILE_TEXT), "name": maybe(HOSTILE_TEXT), "content": maybe(CONTENT)}))}),
    st.dictionaries(FIELD_NAMES, ANY_JSON, max_size=3),  # none, two, or unknown message types
)
SCHEMA = st.one_of(
    st.fixed_dictionaries({"type": st.just("object")}, optional={
        "properties": st.dictionaries(HOSTILE_TEXT, st.fixed_dictionaries({"type": st.sampled_from(
            ["string", "integer", "number", "boolean", "array", "object", "null", "nope"])}), max_size=3),
        "required": st.lists(HOSTILE_TEXT, max_size=2)}),
    ANY_JSON,
)
TOOL = st.fixed_dictionaries({}, optional={"function": maybe(st.fixed_dictionaries({}, optional={
    "name": maybe(HOSTILE_TEXT), "description": maybe(HOSTILE_TEXT), "parameters": maybe(SCHEMA)}))})
ALPHA2_BODY = st.fixed_dictionaries(
    {"inputs": maybe(st.lists(maybe(st.fixed_dictionaries({}, optional={
        "messages": maybe(st.lists(MESSAGE, max_size=3)), "scrubPii": maybe(st.booleans()),
        "scrubPII": maybe(st.booleans())})), max_size=2))},
    optional={
        "contextId": maybe(HOSTILE_TEXT), "scrubPii": maybe(st.booleans()), "scrub_pii": maybe(st.booleans()),
        "maxTokens": maybe(st.one_of(st.integers(), HUGE_NUMBERS, HOSTILE_TEXT)),
        "temperature": maybe(st.one_of(st.floats(), HUGE_NUMBERS)), "parameters": maybe(PARAMETERS),
        "metadata": maybe(REQUEST_METADATA), "tools": maybe(st.lists(TOOL, max_size=2)),
        "toolChoice": maybe(st.sampled_from(["auto", "none", "required", "get_time", ""]) | HOSTILE_TEXT),
        "responseFormat": maybe(SCHEMA),
        "promptCacheRetention": maybe(st.sampled_from(["10s", "1.5s", "-1s", "315576000001s", "x", ""])),
        ANY_KEY: ANY_JSON,
    })


def deep(depth: int, opener: str) -> str:
    """JSON nested ``depth`` levels: ``[[[…]]]`` or ``{"a":{"a":…}}``."""
    if opener == "[":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


DEEP_BODY = st.builds(
    lambda where, depth, opener: where.replace("@", deep(depth, opener)),
    st.sampled_from(["@", '{"inputs":@}', '{"inputs":[{"content":"x"}],"parameters":{"p":@}}',
                     '{"inputs":[{"messages":[{"ofUser":{"content":[{"text":"x"}]}}]}],"responseFormat":@}',
                     '{"inputs":[{"messages":[{"ofUser":{"content":[{"text":"x"}]}}]}],"tools":[{"function":'
                     '{"name":"t","parameters":@}}]}',
                     '{"metadata":@}']),
    st.integers(1, 400), st.sampled_from(["[", "{"]),
).map(str.encode)


def encode(value: Any, ascii_only: bool) -> bytes:
    """JSON bytes; with ``ascii_only`` lone surrogates become ``\\ud800`` escapes, without it they are
    written as their (invalid) UTF-8 bytes."""
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def bodies(shape: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """Bodies from ``shape``, encoded several ways, sometimes damaged, sometimes deep or random bytes."""
    encoded = st.builds(encode, shape, st.booleans())
    damaged = st.builds(lambda raw, cut, junk: raw[:cut] + junk + raw[cut:], encoded, st.integers(0, 200),
                        st.binary(min_size=1, max_size=4))
    return weighted((8, encoded), (2, damaged), (1, DEEP_BODY), (1, st.binary(max_size=64)),
                    (1, st.sampled_from([b"", b"null", b"[]", b"{}", b'{"inputs": "\\ud800"}', b'"x"', b"1e999",
                                         b'{"inputs": [{"content": "\\udfff\\ud800"}]}', b"\xff\xfe{}",
                                         b"\xef\xbb\xbf{}"])))
