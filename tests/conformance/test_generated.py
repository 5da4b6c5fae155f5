"""Generated alpha1/alpha2 bodies, valid and invalid, each sent to daprd and to parley.

A hypothesis strategy builds request bodies the way clients get them wrong and right: every
message type, tools and tool choices, nested JSON (response formats, tool schemas, ``Any``
parameters), unicode, large texts, wrong types and unknown fields, then an encoding (ASCII-escaped
or raw UTF-8). CI runs a fixed number of examples, derandomised (the same bodies every run);
``PARLEY_CONFORMANCE_EXAMPLES=N`` changes the count, ``PARLEY_CONFORMANCE_RANDOM=1`` explores.

Texts in requests that ask for PII scrubbing are drawn without digits and without ``@ : - .``:
the PII scrubbers differ by design (differences.py) and the hand-written cases cover them.
"""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conformance.differences import Case, assert_same, oracle_request
from tests.conformance.servers import Pair

EXAMPLES = int(os.environ.get("PARLEY_CONFORMANCE_EXAMPLES", "400"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    derandomize=os.environ.get("PARLEY_CONFORMANCE_RANDOM", "") != "1",
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

NAMES = ["echo", "echo", "echo", "test-alpha2-echo", "nope"]
ROLES = ["user", "human", "system", "assistant", "ai", "tool", "function", "generic", "", "developer", "x"]
_NO_PII = st.characters(codec="utf-8", exclude_categories=["Cs", "Nd", "No", "Nl"], exclude_characters="@:-.")
_ANY_TEXT = st.characters(codec="utf-8", exclude_categories=["Cs"])

WRONG: st.SearchStrategy[Any] = st.one_of(
    st.integers(-5, 5), st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.none(),
    st.lists(st.integers(0, 3), max_size=2), st.dictionaries(st.sampled_from(["a", "text"]), st.integers(), max_size=2),
    st.text(max_size=5),
)


def rarely(draw: st.DrawFn, n: int) -> bool:
    """True about once in ``n`` draws (a middle value: hypothesis favours the ends of a range)."""
    return bool(draw(st.integers(0, n - 1)) == n // 2)


@st.composite
def texts(draw: st.DrawFn, scrub: bool, *, max_size: int = 40) -> str:
    if rarely(draw, 40):  # large: 48 to 144 KB
        return "lorem ipsum " * (draw(st.integers(1, 3)) * 4000)
    if draw(st.booleans()):
        return " ".join(draw(st.lists(st.sampled_from(
            ["well", "hello", "there", "\n", "  ", "\t", "dapr", "ü", "🎉", "echo"]), max_size=12)))
    return draw(st.text(_NO_PII if scrub else _ANY_TEXT, max_size=max_size))


JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-(2**60), 2**60),
                      st.floats(allow_nan=False, allow_infinity=False, width=64), st.text(max_size=8))
NESTED_JSON: st.SearchStrategy[Any] = st.recursive(
    JSON_LEAF, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                       st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=12)


def any_values() -> st.SearchStrategy[dict[str, Any]]:
    wk = "type.googleapis.com/google.protobuf."
    return st.one_of(
        st.text(max_size=10).map(lambda v: {"@type": wk + "StringValue", "value": v}),
        st.integers(-(2**63), 2**63 - 1).map(lambda v: {"@type": wk + "Int64Value", "value": str(v)}),
        st.booleans().map(lambda v: {"@type": wk + "BoolValue", "value": v}),
        st.floats(allow_nan=False, allow_infinity=False).map(lambda v: {"@type": wk + "DoubleValue", "value": v}),
        st.dictionaries(st.text(max_size=5), JSON_LEAF, max_size=3).map(lambda v: {"@type": wk + "Struct",
                                                                                   "value": v}),
        WRONG.map(lambda v: {"value": v}),  # no @type: malformed
    )


def maybe_unknown(d: dict[str, Any], draw: st.DrawFn) -> dict[str, Any]:
    if rarely(draw, 13):
        d[draw(st.sampled_from(["extra", "stream", "n", "ofUser2", "Content", "role2"]))] = draw(NESTED_JSON)
    return d


def corrupt(d: dict[str, Any], draw: st.DrawFn, keys: list[str]) -> dict[str, Any]:
    """Sometimes put a wrong type in one known field (the invalid half of the generator)."""
    if keys and rarely(draw, 16):
        d[draw(st.sampled_from(keys))] = draw(WRONG)
    return d


@st.composite
def alpha1_body(draw: st.DrawFn) -> dict[str, Any]:
    top_scrub = draw(st.sampled_from([None, False, True]))
    inputs = []
    for _ in range(0 if rarely(draw, 8) else draw(st.integers(1, 4))):
        scrub = draw(st.sampled_from([None, False, True]))
        item: dict[str, Any] = {"content": draw(texts(bool(scrub) or bool(top_scrub)))}
        if draw(st.booleans()):
            item["role"] = draw(st.sampled_from(ROLES))
        if scrub is not None:
            item["scrubPII"] = scrub
        inputs.append(corrupt(maybe_unknown(item, draw), draw, ["content", "role", "scrubPII"]))
    body: dict[str, Any] = {}
    keep_empty: bool = draw(st.booleans())
    if inputs or keep_empty:
        body["inputs"] = inputs
    if draw(st.booleans()):
        body["contextID"] = draw(st.text(max_size=12))
    if rarely(draw, 4):
        body["parameters"] = draw(st.dictionaries(st.text(max_size=6), any_values(), max_size=3))
    if rarely(draw, 4):
        body["metadata"] = draw(st.dictionaries(st.sampled_from(["model", "a", "api_key", "version", "ü"]),
                                                st.text(max_size=6), max_size=3))
    if top_scrub is not None:
        body["scrubPII"] = top_scrub
    if rarely(draw, 3):
        body["temperature"] = draw(st.one_of(st.floats(-2, 2), st.just("0.5"), st.integers(0, 2)))
    return corrupt(maybe_unknown(body, draw), draw,
                   ["inputs", "contextID", "parameters", "metadata", "scrubPII", "temperature"])


TOOL_NAMES = ["get_weather", "f", "search", "ü"]


@st.composite
def message(draw: st.DrawFn, scrub: bool) -> dict[str, Any]:
    kind = draw(st.sampled_from(["ofUser", "ofSystem", "ofDeveloper", "ofAssistant", "ofTool", "of_user", "none"]))
    if kind == "none" and not rarely(draw, 3):
        kind = "ofUser"
    if kind == "none":
        return draw(st.sampled_from([{}, {"invalidField": {"content": "x"}}]))
    body: dict[str, Any] = {}
    if draw(st.booleans()):
        body["content"] = [{"text": draw(texts(scrub))} for _ in range(draw(st.integers(0, 3)))]
    if rarely(draw, 3):
        body["name"] = draw(st.text(max_size=8))
    if kind == "ofAssistant" and draw(st.booleans()):
        calls = []
        for _ in range(draw(st.integers(1, 3))):
            call: dict[str, Any] = {}
            if draw(st.booleans()):
                call["id"] = draw(st.text(max_size=6))
            if not rarely(draw, 6):  # sometimes no function: invalid params
                call["function"] = {"name": draw(st.sampled_from(TOOL_NAMES)),
                                    "arguments": draw(st.one_of(st.text(max_size=10),
                                                                NESTED_JSON.map(json.dumps)))}
            calls.append(call)
        body["toolCalls"] = calls
    if kind == "ofTool":
        body["name"] = draw(st.sampled_from(TOOL_NAMES))
        if draw(st.booleans()):
            body["toolId"] = draw(st.text(max_size=6))
    msg = {kind: corrupt(maybe_unknown(body, draw), draw, ["content", "name"])}
    if rarely(draw, 40):  # two message types in one message: malformed
        msg["ofSystem"] = {"content": [{"text": "x"}]}
    return msg


@st.composite
def tool(draw: st.DrawFn) -> dict[str, Any]:
    if rarely(draw, 10):
        return {}
    function: dict[str, Any] = {"name": draw(st.sampled_from(TOOL_NAMES))}
    if draw(st.booleans()):
        function["description"] = draw(st.text(max_size=10))
    shape = draw(st.integers(0, 6))
    if shape <= 3:
        props = draw(st.dictionaries(st.text(max_size=6), NESTED_JSON, max_size=4))
        function["parameters"] = {"type": "object", "properties": props}
    elif shape == 4:
        function["parameters"] = draw(st.dictionaries(st.text(max_size=6), NESTED_JSON, max_size=3))
    elif shape == 5:
        function["parameters"] = {"properties": draw(st.one_of(JSON_LEAF, st.lists(JSON_LEAF, max_size=2)))}
    return {"function": function}


@st.composite
def alpha2_body(draw: st.DrawFn) -> dict[str, Any]:
    top_scrub = draw(st.sampled_from([None, False, True]))
    inputs = []
    for _ in range(0 if rarely(draw, 8) else draw(st.integers(1, 3))):
        scrub = draw(st.sampled_from([None, False, True]))
        item: dict[str, Any] = {"messages": draw(st.lists(message(bool(scrub) or bool(top_scrub)),
                                                          min_size=0 if rarely(draw, 8) else 1, max_size=4))}
        if scrub is not None:
            item[draw(st.sampled_from(["scrubPii", "scrub_pii", "scrubPII"]))] = scrub
        inputs.append(corrupt(maybe_unknown(item, draw), draw, ["messages"]))
    body: dict[str, Any] = {}
    keep_empty: bool = draw(st.booleans())
    if inputs or keep_empty:
        body["inputs"] = inputs
    if draw(st.booleans()):
        body[draw(st.sampled_from(["contextId", "context_id"]))] = draw(st.text(max_size=12))
    if draw(st.booleans()):
        body["tools"] = draw(st.lists(tool(), max_size=3))
    if draw(st.booleans()):
        body[draw(st.sampled_from(["toolChoice", "tool_choice"]))] = draw(
            st.sampled_from(["auto", "none", "required", "", *TOOL_NAMES, "missing"]))
    if rarely(draw, 4):
        body["responseFormat"] = draw(st.one_of(
            st.dictionaries(st.sampled_from(["type", "properties", "name", "strict", "items"]), NESTED_JSON,
                            max_size=4),
            st.just({"type": "object", "properties": {"answer": {"type": "string"}}})))
    if rarely(draw, 5):
        body["promptCacheRetention"] = draw(st.sampled_from(["86400s", "1.5s", "0s", "-3s", "10m", "abc", 5]))
    if rarely(draw, 4):
        body["parameters"] = draw(st.dictionaries(st.text(max_size=6), any_values(), max_size=2))
    if rarely(draw, 4):
        body["metadata"] = draw(st.dictionaries(st.sampled_from(["a", "api_key", "version", "model"]),
                                                st.text(max_size=6), max_size=3))
    if top_scrub is not None:
        body[draw(st.sampled_from(["scrubPii", "scrub_pii"]))] = top_scrub
    if rarely(draw, 3):
        body["temperature"] = draw(st.one_of(st.floats(-1, 2), st.just("0.25")))
    return corrupt(maybe_unknown(body, draw), draw,
                   ["inputs", "tools", "toolChoice", "responseFormat", "metadata", "temperature", "contextId"])


def encodings() -> st.SearchStrategy[bool]:
    return st.booleans()  # True: ASCII with \u escapes; False: raw UTF-8


def compare_generated(pair: Pair, version: str, name: str, body: dict[str, Any], ascii_only: bool) -> None:
    case = Case(f"gen/{'a1' if version == 'alpha1' else 'a2'}", body)
    path = f"/v1.0-{version}/conversation/{name}/converse"
    raw = json.dumps(body, ensure_ascii=ascii_only).encode()
    asked = oracle_request(case)
    daprd_raw = raw if asked is body else json.dumps(asked, ensure_ascii=ascii_only).encode()
    d = pair.daprd.request("POST", path, daprd_raw)
    p = pair.parley.request("POST", path, raw)
    assert_same(case, d, p)


@SETTINGS
@given(name=st.sampled_from(NAMES), body=alpha1_body(), ascii_only=encodings())
def test_generated_alpha1(pair: Pair, name: str, body: dict[str, Any], ascii_only: bool) -> None:
    compare_generated(pair, "alpha1", name, body, ascii_only)


@SETTINGS
@given(name=st.sampled_from(NAMES), body=alpha2_body(), ascii_only=encodings())
def test_generated_alpha2(pair: Pair, name: str, body: dict[str, Any], ascii_only: bool) -> None:
    compare_generated(pair, "alpha2", name, body, ascii_only)
