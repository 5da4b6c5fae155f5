"""Hand-written HTTP cases, each sent to daprd and to parley; answers must be equal (differences.py aside).

``status`` pins daprd's own status for the case, so a case cannot pass by both servers failing the
same unexpected way (e.g. a component that neither loaded).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from tests.conformance.compare import UNSET, check_http
from tests.conformance.conftest import API_TOKEN
from tests.conformance.differences import PUBLIC_PORT_KEY_PREFIX, Answer, Case, assert_same
from tests.conformance.servers import Pair, Server

A1 = "/v1.0-alpha1/conversation/echo/converse"
A2 = "/v1.0-alpha2/conversation/echo/converse"
A2T = "/v1.0-alpha2/conversation/test-alpha2-echo/converse"


@dataclasses.dataclass(frozen=True)
class C:
    id: str
    path: str
    body: Any = UNSET
    status: int = 200
    raw: bytes | None = None
    method: str = "POST"
    headers: tuple[tuple[str, str], ...] = ()
    port: str = "http"


def text(t: str) -> dict[str, Any]:
    return {"text": t}


def user(t: str, **extra: Any) -> dict[str, Any]:
    return {"ofUser": {"content": [text(t)], **extra}}


def system(t: str, **extra: Any) -> dict[str, Any]:
    return {"ofSystem": {"content": [text(t)], **extra}}


def developer(t: str, **extra: Any) -> dict[str, Any]:
    return {"ofDeveloper": {"content": [text(t)], **extra}}


def assistant(t: str | None = None, calls: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = dict(extra)
    if t is not None:
        body["content"] = [text(t)]
    if calls is not None:
        body["toolCalls"] = calls
    return {"ofAssistant": body}


def tool_msg(tool_id: str | None, name: str, *texts: str) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "content": [text(t) for t in texts]}
    if tool_id is not None:
        body["toolId"] = tool_id
    return {"ofTool": body}


def a2(*messages: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"inputs": [{"messages": list(messages)}], **top}


def fn_tool(name: str, properties: Any = UNSET, **function: Any) -> dict[str, Any]:
    f: dict[str, Any] = {"name": name, **function}
    if properties is not UNSET:
        f["parameters"] = {"type": "object", "properties": properties}
    return {"function": f}


def sized_body(size: int) -> bytes:
    """An alpha1 body of exactly ``size`` bytes."""
    head, tail = b'{"inputs":[{"content":"', b'"}]}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"type": "object"}
    for _ in range(depth):
        value = {"type": "object", "properties": {"p": value}}
    return value


def any_value(type_: str, value: Any) -> dict[str, Any]:
    return {"@type": f"type.googleapis.com/google.protobuf.{type_}", "value": value}


ROLES = ["user", "human", "system", "assistant", "ai", "tool", "function", "generic", "", "developer", "USER", "bogus"]

# One sample per PII entity type daprd scrubs by default, plus daprd's own test texts and near misses.
PII_SAMPLES = {
    "phone-plus": "well hello there, my phone number is +2222222222",
    "phone-uk": "call +4422222222 now",
    "phone-parens": "call (555) 123-4567 today",
    "phone-dots": "Phone: 555.123.4567",
    "email": "well hello there, my email is test@test.com",
    "ipv4": "well hello there from 10.8.9.1",
    "street": "I live at 123 Main Street, Springfield",
    "credit-card": "card 4111 1111 1111 1111 ok",
    "credit-card-plain": "card 4111111111111111",
    "zip": "zip 90210",
    "zip-plus4": "zip 12345-6789",
    "po-box": "write to P.O. Box 4567",
    "ssn": "ssn 123-45-6789",
    "isbn13": "isbn 978-3-16-148410-0",
    "isbn10": "isbn 0-306-40615-2",
    "mac": "mac 00:1A:2B:3C:4D:5E",
    "iban": "iban DE89370400440532013000",
    "link-ignored": "see https://10.0.0.1/path",
    "none": "well hello there",
    "unicode": "überall test@test.com — 電話 +2222222222",
    "several": "mail test@test.com from 10.8.9.1 or call +2222222222",
    # daprd's misses and false hits (docs/pii.md lists them): parley deliberately differs.
    "ipv6": "ipv6 2001:db8::1 here",
    "date-time": "at 2024-01-15T10:30:00Z",
    "md5": "sha d41d8cd98f00b204e9800998ecf8427e",
    "guid": "guid 123e4567-e89b-12d3-a456-426614174000",
    "version": "version 1.2.3.4",
    "phone-ext": "call 555-123-4567 ext 12",
    "iban-grouped": "iban GB82 WEST 1234 5698 7654 32",
    "card-then-ssn": "card 4111111111111111 then ssn 123-45-6789",
    "link-email": "see https://test@test.com",
    "bad-ip": "999.999.999.999",
}


def pii_cases() -> list[C]:
    cases: list[C] = []
    for name, sample in PII_SAMPLES.items():
        cases += [
            C(f"a1-scrub-none-{name}", A1, {"inputs": [{"content": sample}]}),
            C(f"a1-scrub-input-{name}", A1, {"inputs": [{"content": sample, "scrubPII": True}]}),
            C(f"a1-scrub-output-{name}", A1, {"inputs": [{"content": sample}], "scrubPII": True}),
            C(f"a2-scrub-input-{name}", A2, {"inputs": [{"messages": [user(sample)], "scrubPii": True}]}),
            C(f"a2-scrub-output-{name}", A2, a2(user(sample), scrubPii=True)),
        ]
    return cases


CASES: list[C] = [
    # -- alpha1 ------------------------------------------------------------------------------------------
    C("a1-basic", A1, {"inputs": [{"content": "well hello there"}]}),
    *[C(f"a1-role-{role or 'empty'}", A1, {"inputs": [{"content": f"as {role}", "role": role}]}) for role in ROLES],
    C("a1-all-roles-joined", A1, {"inputs": [{"content": r, "role": r} for r in ROLES if r]}),
    C("a1-several-inputs", A1, {"inputs": [{"content": "one"}, {"content": "two"}, {"content": ""}]}),
    C("a1-empty-content", A1, {"inputs": [{"content": ""}]}),
    C("a1-no-content-key", A1, {"inputs": [{}]}),
    C("a1-contextID", A1, {"inputs": [{"content": "hi"}], "contextID": "chat-123"}),
    C("a1-contextID-empty", A1, {"inputs": [{"content": "hi"}], "contextID": ""}),
    C("a1-contextId-wrong-casing-ignored", A1, {"inputs": [{"content": "hi"}], "contextId": "chat-123"}),
    C("a1-name-in-body-ignored", A1, {"name": "nope", "inputs": [{"content": "hi"}]}),
    C("a1-parameters", A1, {"inputs": [{"content": "hi"}, {"content": "there"}], "parameters": {
        "s": any_value("StringValue", "x"), "i": any_value("Int64Value", "100"), "b": any_value("BoolValue", True),
        "d": any_value("DoubleValue", 0.25), "u": any_value("UInt32Value", 7),
        "st": any_value("Struct", {"a": [1, "b", None, {"c": True}]}), "v": any_value("Value", "plain"),
        "l": any_value("ListValue", [1, 2]), "dur": any_value("Duration", "1.5s"),
        "ts": any_value("Timestamp", "2024-01-15T10:30:00Z"), "e": any_value("Empty", {}),
        "by": any_value("BytesValue", "aGk=")}}),
    C("a1-parameters-int64-as-number", A1, {"inputs": [{"content": "hi"}], "parameters": {
        "i": any_value("Int64Value", 100)}}),
    C("a1-parameters-unknown-type", A1, {"inputs": [{"content": "hi"}], "parameters": {
        "x": {"@type": "type.googleapis.com/not.a.Type", "value": 1}}}, status=400),
    C("a1-parameters-missing-type", A1, {"inputs": [{"content": "hi"}], "parameters": {"x": {"value": 1}}}),
    C("a1-parameters-empty-any", A1, {"inputs": [{"content": "hi"}], "parameters": {"x": {}}}),
    C("a1-parameters-not-any", A1, {"inputs": [{"content": "hi"}], "parameters": {"x": 1}}, status=400),
    C("a1-metadata", A1, {"inputs": [{"content": "hi"}], "metadata": {"a": "b", "model": "daprGPT"}}),
    C("a1-metadata-seed-overrides", A1, {"inputs": [{"content": "hi"}],
                                         "metadata": {"model": "modelname", "key": "authKey", "cacheTTL": "10m"}}),
    C("a1-metadata-bad-cacheTTL", A1, {"inputs": [{"content": "hi"}], "metadata": {"cacheTTL": "soon"}}),
    C("a2-metadata-bad-cacheTTL", A2, a2(user("hi"), metadata={"cacheTTL": "10 minutes"})),
    C("a2-query-metadata-bad-cacheTTL", A2 + "?metadata.cacheTTL=x", a2(user("hi"))),
    C("a1-metadata-non-string", A1, {"inputs": [{"content": "hi"}], "metadata": {"a": 1}}, status=400),
    C("a1-query-metadata", A1 + "?metadata.model=x&other=1", {"inputs": [{"content": "hi"}]}),
    C("a1-temperature", A1, {"inputs": [{"content": "hi"}], "temperature": 0.7}),
    C("a1-temperature-string", A1, {"inputs": [{"content": "hi"}], "temperature": "0.5"}),
    C("a1-temperature-negative", A1, {"inputs": [{"content": "hi"}], "temperature": -3}),
    C("a1-temperature-nan-string", A1, {"inputs": [{"content": "hi"}], "temperature": "NaN"}),
    C("a1-temperature-exponent-string", A1, {"inputs": [{"content": "hi"}], "temperature": "1e-1"}),
    C("a1-temperature-padded-string", A1, {"inputs": [{"content": "hi"}], "temperature": " 1"}, status=400),
    C("a1-temperature-underscore-string", A1, {"inputs": [{"content": "hi"}], "temperature": "1_0"}, status=400),
    C("a1-temperature-infinity-string", A1, {"inputs": [{"content": "hi"}], "temperature": "-Infinity"}),
    C("a1-temperature-huge", A1, raw=b'{"inputs":[{"content":"hi"}],"temperature":1e400}', status=400),
    C("a1-temperature-bad", A1, {"inputs": [{"content": "hi"}], "temperature": "warm"}, status=400),
    C("a1-temperature-bool", A1, {"inputs": [{"content": "hi"}], "temperature": True}, status=400),
    C("a1-scrubPII-both-clean", A1, {"inputs": [{"content": "well hello there", "scrubPII": True}],
                                     "scrubPII": True}),
    C("a1-scrubPII-false", A1, {"inputs": [{"content": PII_SAMPLES["email"], "scrubPII": False}],
                                "scrubPII": False}),
    C("a1-scrub-two-inputs-output", A1, {"inputs": [{"content": PII_SAMPLES["ipv4"]},
                                                    {"content": PII_SAMPLES["email"]}], "scrubPII": True}),
    C("a1-scrubPII-wrong-casing-ignored", A1, {"inputs": [{"content": PII_SAMPLES["email"], "scrubPii": True}]}),
    C("a1-scrubPII-string", A1, {"inputs": [{"content": "x"}], "scrubPII": "yes"}, status=400),
    C("a1-unicode", A1, {"inputs": [{"content": "héllo wörld 你好 🎉 \u0000 \u200b\u00a0end\ttab"}]}),
    C("a1-unknown-fields-ignored", A1, {"inputs": [{"content": "hi", "extra": [1, {"x": None}]}],
                                        "unknown": {"deep": [1, 2]}, "cacheTTL": "10m"}),
    C("a1-proto-names", A1, {"inputs": [{"content": "hi", "scrubPII": True}], "contextID": "c"}),
    C("a1-plain-string-inputs", A1, {"inputs": ["what is Dapr", "Why use Dapr"]}),
    C("a1-null-fields", A1, {"inputs": [{"content": "hi", "role": None}], "contextID": None, "metadata": None}),
    # alpha1 errors
    C("a1-missing-inputs", A1, {"metadata": {"model": "daprGPT"}}, status=400),
    C("a1-empty-inputs", A1, {"inputs": []}, status=400),
    C("a1-null-inputs", A1, {"inputs": None}, status=400),
    C("a1-empty-object", A1, {}, status=400),
    C("a1-empty-body", A1, raw=b"", status=400),
    C("a1-whitespace-body", A1, raw=b"  \n", status=400),
    C("a1-not-found", "/v1.0-alpha1/conversation/nope/converse", {"inputs": [{"content": "hi"}]}, status=400),
    C("a1-not-found-no-inputs", "/v1.0-alpha1/conversation/nope/converse", {}, status=400),
    C("a1-not-found-scoped", "/v1.0-alpha1/conversation/scoped-echo/converse", {"inputs": [{"content": "hi"}]},
      status=400),
    C("a1-not-found-case-sensitive", "/v1.0-alpha1/conversation/ECHO/converse", {"inputs": [{"content": "hi"}]},
      status=400),
    C("a1-not-found-escaped-slash", "/v1.0-alpha1/conversation/ec%2Fho/converse", {"inputs": [{"content": "hi"}]},
      status=400),
    C("a1-not-found-unicode", "/v1.0-alpha1/conversation/%C3%A9cho/converse", {"inputs": [{"content": "hi"}]},
      status=400),
    C("a1-malformed-truncated", A1, raw=b'{"inputs":', status=400),
    C("a1-malformed-not-found", "/v1.0-alpha1/conversation/nope/converse", raw=b'{"inputs":', status=400),
    C("a1-malformed-null", A1, raw=b"null", status=400),
    C("a1-malformed-array", A1, raw=b"[]", status=400),
    C("a1-malformed-string", A1, raw=b'"hi"', status=400),
    C("a1-malformed-trailing", A1, raw=b'{"inputs":[{"content":"hi"}]} x', status=400),
    C("a1-malformed-content-number", A1, {"inputs": [{"content": 1}]}, status=400),
    C("a1-malformed-inputs-object", A1, {"inputs": {"content": "hi"}}, status=400),
    C("a1-duplicate-known-key", A1, raw=b'{"inputs":[{"content":"a"}],"inputs":[{"content":"b"}]}', status=400),
    C("a1-duplicate-unknown-key", A1, raw=b'{"inputs":[{"content":"a"}],"x":1,"x":2}'),
    C("a1-invalid-utf8", A1, raw=b'{"inputs":[{"content":"\xff\xfe"}]}', status=400),
    C("a1-content-type-text", A1, raw=b'{"inputs":[{"content":"hi"}]}', headers=(("Content-Type", "text/plain"),)),
    C("a1-content-type-form", A1, raw=b'{"inputs":[{"content":"hi"}]}',
      headers=(("Content-Type", "application/x-www-form-urlencoded"),)),
    C("a1-trailing-slash", A1 + "/", {"inputs": [{"content": "hi"}]}),
    C("a1-trailing-slashes", A1 + "//", {"inputs": [{"content": "hi"}]}),
    C("a1-double-slash", "/v1.0-alpha1//conversation/echo/converse", {"inputs": [{"content": "hi"}]}),
    C("a1-dot-segments", "/v1.0-alpha1/conversation/./nope/../echo/converse", {"inputs": [{"content": "hi"}]}),
    C("a2-leading-double-slash", "//v1.0-alpha2/conversation/echo/converse", a2(user("hi"))),
    C("a1-trailing-slash-query", A1 + "/?metadata.model=x", {"inputs": [{"content": "hi"}]}),
    C("a1-lone-surrogate-escape", A1, raw=b'{"inputs":[{"content":"a\\ud800b"}]}', status=400),
    C("a1-surrogate-pair-escape", A1, raw=b'{"inputs":[{"content":"\\ud83c\\udf89"}]}'),
    C("a1-conversationContext", A1, {"inputs": [{"content": "hi"}], "conversationContext": "chat-9"}),
    C("a1-large-2MiB", A1, {"inputs": [{"content": "x" * (2 * 1024 * 1024)}]}),
    C("a1-body-at-limit", A1, raw=sized_body(4 * 1024 * 1024)),
    C("a1-body-one-over-limit", A1, raw=sized_body(4 * 1024 * 1024 + 1), status=400),
    C("a1-too-large", A1, raw=b'{"inputs":[{"content":"' + b"x" * (4 * 1024 * 1024) + b'"}]}', status=400),
    C("a1-many-inputs", A1, {"inputs": [{"content": f"line {i}"} for i in range(2000)]}),
    # -- alpha2 ------------------------------------------------------------------------------------------
    C("a2-user", A2, a2(user("user message", name="user name"))),
    C("a2-system", A2, a2(system("system message", name="s"))),
    C("a2-developer", A2, a2(developer("developer message", name="d"))),
    C("a2-assistant-text", A2, a2(assistant("assistant message"))),
    C("a2-assistant-tool-call", A2, a2(assistant("assistant message", [
        {"id": "call_123", "function": {"name": "test_function", "arguments": "test-string"}}]))),
    C("a2-assistant-tool-call-no-text", A2, a2(assistant(None, [
        {"id": "call_1", "function": {"name": "f", "arguments": "{\"a\": 1}"}},
        {"function": {"name": "g", "arguments": ""}}]))),
    C("a2-assistant-tool-call-no-id", A2, a2(assistant("x", [{"function": {"name": "f"}}]))),
    C("a2-tool", A2, a2(tool_msg("tool-123", "tool name", "tool message"))),
    C("a2-tool-no-id", A2, a2(tool_msg(None, "tool name", "tool message"))),
    C("a2-tool-two-contents", A2, a2(tool_msg("t1", "n", "a", "b"))),
    C("a2-tool-no-content", A2, a2(tool_msg("t1", "n"))),
    C("a2-conversation", A2, a2(user("first user message"), assistant("first assistant response"),
                                user("second user message"), system("system instruction"))),
    C("a2-several-inputs", A2, {"inputs": [{"messages": [user("a"), user("b")]}, {"messages": []},
                                           {"messages": [system("c")]}]}),
    C("a2-empty-messages", A2, {"inputs": [{"messages": []}]}),
    C("a2-input-without-messages", A2, {"inputs": [{}]}),
    C("a2-empty-content-list", A2, a2({"ofUser": {"content": []}})),
    C("a2-empty-user", A2, a2({"ofUser": {}})),
    C("a2-multi-part-user", A2, a2({"ofUser": {"content": [text("a b"), text(""), text("c")]}})),
    C("a2-proto-names", A2, {"inputs": [{"messages": [{"of_user": {"content": [text("u")]}},
                                                      {"of_assistant": {"tool_calls": [
                                                          {"id": "1", "function": {"name": "f", "arguments": "x"}}]}},
                                                      {"of_tool": {"tool_id": "1", "name": "f",
                                                                   "content": [text("r")]}}],
                                        "scrub_pii": True}],
                             "context_id": "ctx", "tool_choice": "f", "scrub_pii": False,
                             "response_format": {"type": "object"}, "prompt_cache_retention": "60s",
                             "tools": [fn_tool("f", {"q": {"type": "string"}})]}),
    C("a2-contextId", A2, a2(user("hi"), contextId="ctx-1")),
    C("a2-contextID-wrong-casing-ignored", A2, a2(user("hi"), contextID="ctx-1")),
    C("a2-parameters-ignored", A2, a2(user("hi"), parameters={"max_tokens": any_value("Int64Value", "100"),
                                                              "model": any_value("StringValue", "m")})),
    C("a2-metadata", A2, a2(user("hi"), metadata={"api_key": "test-key", "version": "1.0"})),
    C("a2-temperature", A2, a2(user("hi"), temperature=0.7)),
    C("a2-temperature-zero", A2, a2(user("hi"), temperature=0)),
    C("a2-prompt-cache-retention", A2, a2(user("hi"), promptCacheRetention="86400s")),
    C("a2-prompt-cache-retention-fraction", A2, a2(user("hi"), promptCacheRetention="1.5s")),
    C("a2-prompt-cache-retention-bad", A2, a2(user("hi"), promptCacheRetention="1 day"), status=400),
    C("a2-response-format", A2, a2(user("hi"), responseFormat={
        "type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]})),
    C("a2-response-format-named", A2, a2(user("hi"), responseFormat={
        "name": "answer", "description": "d", "strict": True, "type": "object"})),
    C("a2-response-format-no-type", A2, a2(user("hi"), responseFormat={"a": 1})),
    C("a2-response-format-numbers", A2, a2(user("hi"), responseFormat={
        "type": "object", "big": 18446744073709551616, "neg": -0.0, "max": 1.7976931348623157e308, "tiny": 5e-324,
        "list": [1, 1.5, -2, 1e21, 123456789012345678]})),
    C("a2-response-format-deep", A2, a2(user("hi"), responseFormat=nested(45))),
    C("a2-response-format-depth-100", A2, a2(user("hi"), responseFormat=nested(49))),
    C("a2-response-format-depth-102", A2, a2(user("hi"), responseFormat=nested(50))),
    C("a2-response-format-deeper", A2, a2(user("hi"), responseFormat=nested(60))),
    C("a2-unknown-field-deep", A2, a2(user("hi"), unknownField=nested(60))),
    C("a2-response-format-very-deep", A2, raw=b'{"inputs":[{"messages":[{"ofUser":{"content":[{"text":"x"}]}}]}],'
      b'"responseFormat":' + b'{"a":' * 3000 + b"1" + b"}" * 3000 + b"}"),
    C("a2-response-format-duplicate-key", A2, raw=b'{"inputs":[{"messages":[{"ofUser":{"content":[{"text":"x"}]}}]}],'
      b'"responseFormat":{"type":"object","type":"string"}}', status=400),
    C("a2-metadata-duplicate-key", A2, raw=b'{"inputs":[{"messages":[{"ofUser":{"content":[{"text":"x"}]}}]}],'
      b'"metadata":{"a":"1","a":"2"}}', status=400),
    C("a2-duplicate-in-unknown", A2, raw=b'{"inputs":[{"messages":[{"ofUser":{"content":[{"text":"x"}]}}]}],'
      b'"other":{"a":"1","a":"2"}}'),
    C("a2-duplicate-spellings", A2, raw=b'{"inputs":[{"messages":[{"ofUser":{"content":[{"text":"x"}]}}]}],'
      b'"toolChoice":"auto","tool_choice":"none"}', status=400),
    C("a2-duplicate-message-type", A2, raw=b'{"inputs":[{"messages":[{"ofUser":{"content":[{"text":"x"}]},'
      b'"ofUser":{"content":[{"text":"y"}]}}]}]}', status=400),
    C("a2-response-format-string", A2, a2(user("hi"), responseFormat="json"), status=400),
    C("a2-tools", A2, a2(user("hi"), tools=[fn_tool("get_weather", {"location": {}, "unit": {}, "name": {}},
                                                    description="weather")])),
    C("a2-tools-several", A2, a2(user("hi"), tools=[fn_tool("a", {"z": {}, "y": {}}), fn_tool("b"),
                                                    fn_tool("c", {})])),
    C("a2-tools-no-parameters", A2, a2(user("hi"), tools=[{"function": {"name": "f"}}])),
    C("a2-tools-parameters-no-properties", A2, a2(user("hi"), tools=[{"function": {
        "name": "f", "parameters": {"type": "object"}}}])),
    C("a2-tools-properties-list", A2, a2(user("hi"), tools=[fn_tool("f", [1, 2])]), status=500),
    C("a2-tools-properties-string", A2, a2(user("hi"), tools=[fn_tool("f", "x")]), status=500),
    C("a2-tools-properties-number", A2, a2(user("hi"), tools=[fn_tool("f", 3)]), status=500),
    C("a2-tools-properties-null", A2, a2(user("hi"), tools=[fn_tool("f", None)]), status=500),
    C("a2-tools-properties-bool", A2, a2(user("hi"), tools=[fn_tool("f", True)]), status=500),
    C("a2-tools-untyped-entry", A2, a2(user("hi"), tools=[{}])),
    C("a2-tools-empty-function", A2, a2(user("hi"), tools=[{"function": {}}])),
    C("a2-tools-plus-assistant-calls", A2, a2(assistant("x", [{"id": "c9", "function": {"name": "g",
                                                                                        "arguments": "{}"}}]),
                                              tools=[fn_tool("f", {"p": {}})])),
    C("a2-tool-choice-auto", A2, a2(user("hi"), tools=[fn_tool("f")], toolChoice="auto")),
    C("a2-tool-choice-none", A2, a2(user("hi"), tools=[fn_tool("f")], toolChoice="none")),
    C("a2-tool-choice-required", A2, a2(user("hi"), tools=[fn_tool("f")], toolChoice="required")),
    C("a2-tool-choice-named", A2, a2(user("hi"), tools=[fn_tool("f"), fn_tool("g")], toolChoice="g")),
    C("a2-tool-choice-named-no-tools", A2, a2(user("hi"), toolChoice="anything")),
    C("a2-tool-choice-auto-no-tools", A2, a2(user("hi"), toolChoice="auto")),
    C("a2-tool-choice-none-no-tools", A2, a2(user("hi"), toolChoice="none")),
    C("a2-tool-choice-empty", A2, a2(user("hi"), tools=[fn_tool("f")], toolChoice="")),
    C("a2-tool-choice-named-untyped-tools", A2, a2(user("hi"), tools=[{}], toolChoice="f"), status=400),
    C("a2-all-fields", A2T, {
        "name": "ignored-in-favour-of-url", "contextId": "test-conversation-123",
        "inputs": [{"messages": [user("well hello there")], "scrubPII": False},
                   {"messages": [system("You are a helpful assistant")], "scrubPII": True}],
        "parameters": {"max_tokens": any_value("Int64Value", "100"), "model": any_value("StringValue", "test-model")},
        "metadata": {"api_key": "test-key", "version": "1.0"}, "scrubPii": True, "temperature": 0.7,
        "responseFormat": {"type": "object", "properties": {"answer": {"type": "string"}}},
        "promptCacheRetention": "86400s",
        "tools": [{"function": {"name": "test_function", "description": "A test function", "parameters": {
            "type": "object", "properties": {"param1": {"type": "string"}}, "required": ["param1"]}}}],
        "toolChoice": "auto"}),
    C("a2-unicode", A2, a2(user("héllo wörld 你好 🎉 \u0000\u2028 end"), tool_msg("ü", "名", "ok"))),
    C("a2-unknown-fields-ignored", A2, {"inputs": [{"messages": [{"ofUser": {"content": [
        {"text": "hi", "image": "x"}], "role": "x"}}], "extra": 1}], "stream": True, "n": 3}),
    C("a2-scrubPII-wrong-casing-ignored", A2, {"inputs": [{"messages": [user(PII_SAMPLES["email"])],
                                                           "scrubPII": True}], "scrubPII": True}),
    C("a2-scrub-tool-content", A2, {"inputs": [{"messages": [tool_msg("t", "n", PII_SAMPLES["email"])],
                                                "scrubPii": True}]}),
    C("a2-scrub-not-tool-arguments", A2, a2(assistant("x", [{"id": "1", "function": {
        "name": "f", "arguments": "test@test.com"}}]), scrubPii=True)),
    C("a2-scrub-one-input-of-two", A2, {"inputs": [{"messages": [user(PII_SAMPLES["email"])], "scrubPii": True},
                                                   {"messages": [user(PII_SAMPLES["ipv4"])]}]}),
    C("a2-usage-zero-words", A2, a2(user("   "))),
    C("a2-many-messages", A2, a2(*[user(f"m {i}") for i in range(1000)])),
    C("a2-large-2MiB", A2, a2(user("y " * (1024 * 1024)))),
    C("a2-too-large", A2, raw=b'{"inputs":[{"messages":[{"ofUser":{"content":[{"text":"'
      + b"x" * (4 * 1024 * 1024) + b'"}]}}]}]}', status=400),
    # alpha2 errors
    C("a2-missing-inputs", A2, {"toolChoice": "auto"}, status=400),
    C("a2-empty-inputs", A2, {"inputs": []}, status=400),
    C("a2-not-found", "/v1.0-alpha2/conversation/nope/converse", a2(user("hi")), status=400),
    C("a2-not-found-before-validation", "/v1.0-alpha2/conversation/nope/converse", a2({}), status=400),
    C("a2-message-without-type", A2T, {"inputs": [{"messages": [{"invalidField": {"content": "invalid"}}]}]},
      status=400),
    C("a2-message-empty", A2, a2({}), status=400),
    C("a2-message-type-after-valid", A2, a2(user("ok"), {}), status=400),
    C("a2-tool-call-without-function", A2, a2(assistant("assistant message", [{"id": "call_123"}])), status=400),
    C("a2-invalid-before-tool-choice", A2, a2({}, toolChoice="required"), status=400),
    C("a2-tool-choice-required-no-tools", A2, a2(user("hi"), toolChoice="required"), status=400),
    C("a2-tool-choice-missing-tool", A2, a2(user("hi"), tools=[fn_tool("other_tool")], toolChoice="missing_tool"),
      status=400),
    C("a2-tool-choice-case-sensitive", A2, a2(user("hi"), tools=[fn_tool("f")], toolChoice="F"), status=400),
    C("a2-two-message-types", A2, a2({**user("x"), **system("y")}), status=400),
    C("a2-two-tool-types-null", A2, a2({"ofUser": None}), status=400),
    C("a2-message-wrong-type", A2, a2({"ofUser": "hi"}), status=400),
    C("a2-content-not-list", A2, a2({"ofUser": {"content": {"text": "x"}}}), status=400),
    C("a2-text-number", A2, a2({"ofUser": {"content": [{"text": 5}]}}), status=400),
    C("a2-tools-not-list", A2, a2(user("hi"), tools={"function": {"name": "f"}}), status=400),
    C("a2-tool-choice-number", A2, a2(user("hi"), toolChoice=1), status=400),
    C("a2-malformed", A2, raw=b'{"inputs":[', status=400),
    # -- other routes and methods -------------------------------------------------------------------------
    *[C(f"method-{m.lower()}-{v}", p, method=m, status=404)
      for m in ("GET", "PUT", "DELETE", "PATCH", "OPTIONS") for v, p in (("a1", A1), ("a2", A2))],
    C("method-head-converse", A1, method="HEAD", status=404),
    C("path-v1-conversation", "/v1.0/conversation/echo/converse", {"inputs": [{"content": "hi"}]}, status=404),
    C("path-alpha3", "/v1.0-alpha3/conversation/echo/converse", {"inputs": [{"content": "hi"}]}, status=404),
    C("path-no-verb", "/v1.0-alpha1/conversation/echo", {"inputs": [{"content": "hi"}]}, status=404),
    C("path-extra-segment", A1 + "/more", {"inputs": [{"content": "hi"}]}, status=404),
    C("path-no-name", "/v1.0-alpha1/conversation//converse", {"inputs": [{"content": "hi"}]}, status=404),
    C("path-root", "/", method="GET", status=404),
    C("path-unknown", "/foo/bar", method="GET", status=404),
    C("path-state", "/v1.0/state/store", method="GET", status=404),
    C("path-healthz-post", "/v1.0/healthz", method="POST", status=404),
    C("path-healthz-delete", "/v1.0/healthz", method="DELETE", status=404),
    C("path-metadata-post", "/v1.0/metadata", method="POST", status=404),
    C("path-metadata-delete-key", "/v1.0/metadata/foo", method="DELETE", status=404),
    C("path-metadata-get-key", "/v1.0/metadata/foo", method="GET", status=404),
    # Only POST on the API port shuts down (test_lifecycle.py); these must not.
    C("path-shutdown-get", "/v1.0/shutdown", method="GET", status=404),
    C("path-shutdown-put", "/v1.0/shutdown", method="PUT", status=404),
    C("path-shutdown-public", "/v1.0/shutdown", method="POST", status=404, port="public"),
    # -- health ------------------------------------------------------------------------------------------
    C("healthz", "/v1.0/healthz", method="GET", status=204),
    C("healthz-outbound", "/v1.0/healthz/outbound", method="GET", status=204),
    C("healthz-query", "/v1.0/healthz?x=1", method="GET", status=204),
    C("healthz-public", "/v1.0/healthz", method="GET", status=204, port="public"),
    C("healthz-trailing-slash", "/v1.0/healthz/", method="GET", status=204),
    C("healthz-double-slash", "//v1.0//healthz", method="GET", status=204),
    C("healthz-head", "/v1.0/healthz", method="HEAD", status=404),
    C("healthz-public-head", "/v1.0/healthz", method="HEAD", status=405, port="public"),
    C("healthz-public-post", "/v1.0/healthz", method="POST", status=405, port="public"),
    C("healthz-public-trailing-slash", "/v1.0/healthz/", method="GET", status=204, port="public"),
    C("metadata-head", "/v1.0/metadata", method="HEAD", status=404),
    C("healthz-outbound-public", "/v1.0/healthz/outbound", method="GET", status=204, port="public"),
    *pii_cases(),
]


def _ids(cases: list[C]) -> list[str]:
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    return ids


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_http_case(pair: Pair, case: C) -> None:
    check_http(pair, case.id, case.path, case.body, raw=case.raw, method=case.method, headers=dict(case.headers),
               port=case.port, status=case.status)


# -- the API token: a second pair of servers with DAPR_API_TOKEN set ----------------------------------------
TOKEN_CASES = [
    C("token-missing", A1, {"inputs": [{"content": "hi"}]}, status=401),
    C("token-wrong", A1, {"inputs": [{"content": "hi"}]}, status=401, headers=(("dapr-api-token", "nope"),)),
    C("token-empty", A1, {"inputs": [{"content": "hi"}]}, status=401, headers=(("dapr-api-token", ""),)),
    C("token-case-of-value", A1, {"inputs": [{"content": "hi"}]}, status=401,
      headers=(("dapr-api-token", API_TOKEN.upper()),)),
    C("token-right", A1, {"inputs": [{"content": "hi"}]}, headers=(("dapr-api-token", API_TOKEN),)),
    C("token-right-header-case", A2, a2(user("hi")), headers=(("DAPR-API-TOKEN", API_TOKEN),)),
    C("token-missing-a2", A2, a2(user("hi")), status=401),
    C("token-missing-bad-body", A2, raw=b"{", status=401),
    C("token-right-bad-body", A2, raw=b"{", status=400, headers=(("dapr-api-token", API_TOKEN),)),
    C("token-missing-unknown-path", "/foo", method="GET", status=401),
    C("token-missing-wrong-method", A1, method="GET", status=401),
    C("token-right-wrong-method", A1, method="GET", status=404, headers=(("dapr-api-token", API_TOKEN),)),
    C("token-healthz-open", "/v1.0/healthz", method="GET", status=204),
    C("token-healthz-outbound-open", "/v1.0/healthz/outbound", method="GET", status=204),
    C("token-healthz-public-open", "/v1.0/healthz", method="GET", status=204, port="public"),
    C("token-metadata-closed", "/v1.0/metadata", method="GET", status=401),
    C("token-metadata-put-closed", "/v1.0/metadata/x", raw=b"y", method="PUT", status=401),
    C("token-shutdown-closed", "/v1.0/shutdown", method="POST", status=401),
    C("token-shutdown-wrong", "/v1.0/shutdown", method="POST", status=401, headers=(("dapr-api-token", "nope"),)),
    C("token-shutdown-public", "/v1.0/shutdown", method="POST", status=404, port="public"),
    C("metadata-token-right", "/v1.0/metadata", method="GET", status=200, headers=(("dapr-api-token", API_TOKEN),)),
    C("token-healthz-trailing-slash", "/v1.0/healthz/", method="GET", status=204),
    C("token-healthz-double-slash", "//v1.0/healthz", method="GET", status=204),
    C("metadata-put-public-token", f"/v1.0/metadata/{PUBLIC_PORT_KEY_PREFIX}-2", raw=b"x", method="PUT", status=204, port="public"),
    C("metadata-public-token-open", "/v1.0/metadata", method="GET", status=200, port="public"),
]


@pytest.mark.parametrize("case", TOKEN_CASES, ids=_ids(TOKEN_CASES))
def test_http_token_case(token_pair: Pair, case: C) -> None:
    check_http(token_pair, case.id, case.path, case.body, raw=case.raw, method=case.method,
               headers=dict(case.headers), port=case.port, status=case.status)
    for server in token_pair.both():
        assert server.alive(), f"{server.name} stopped after {case.id}"


# -- /v1.0/metadata -------------------------------------------------------------------------------------
@pytest.mark.parametrize("port", ["http", "public"])
def test_metadata_shape_and_components(pair: Pair, port: str) -> None:
    d, p = check_http(pair, f"metadata-{port}", "/v1.0/metadata", method="GET", port=port, status=200)
    # The scoped component is loaded by neither; the shape (top-level keys) is the same.
    assert sorted(c["name"] for c in d.body["components"]) == ["echo", "test-alpha2-echo"]
    assert sorted(d.body) == sorted(p.body)


def test_metadata_put_then_get(pair: Pair) -> None:
    for server in pair.both():
        assert server.request("PUT", "/v1.0/metadata/conformanceKey", b"value \xc3\xa9").status == 204
    d, _ = check_http(pair, "metadata-after-put", "/v1.0/metadata", method="GET", status=200)
    assert d.body["extended"]["conformanceKey"] == "value é"
    check_http(pair, "metadata-put-empty-key", "/v1.0/metadata/", raw=b"x", method="PUT", status=404)
    check_http(pair, "metadata-put-public", f"/v1.0/metadata/{PUBLIC_PORT_KEY_PREFIX}-1", raw=b"x", method="PUT",
               port="public", status=204)


def _scrape_counted(server: Server) -> Answer:
    """Scrape the metrics port twice: is the first scrape counted in dapr_http_server_request_count?"""
    answer = Answer(0, "", None)
    for _ in range(2):
        answer = server.request("GET", "/", port=server.ports["metrics"])
    counted = any(line.startswith("dapr_http_server_request_count{") and 'path="/"' in line
                  for line in str(answer.body).splitlines())
    return Answer(answer.status, answer.content_type.split(";")[0], {"scrapeCounted": counted})


def test_metrics_port_scrapes(pair: Pair) -> None:
    assert_same(Case("http/metrics-scrape-counted"), _scrape_counted(pair.daprd), _scrape_counted(pair.parley))


def test_public_port_serves_no_api(pair: Pair) -> None:
    check_http(pair, "public-no-converse", A1, {"inputs": [{"content": "hi"}]}, port="public", status=404)
    check_http(pair, "public-unknown", "/nope", method="GET", port="public", status=404)
