"""Every intended difference between parley and daprd v1.18.3, in one reviewed list.

The differential tier sends each case to both servers and requires equal answers (status, content
type, parsed JSON body; for gRPC the status code and details or the response message; for the
OpenAI path the upstream request too). The only exceptions are the entries of :data:`DIFFERENCES`.
Each entry names:

- ``id``: a short stable name (printed at the end of the run, used in docs/compatibility.md);
- ``cases``: glob patterns over case ids (``http/…``, ``gen/…``, ``grpc/…``, ``sdk/…``,
  ``openai/…``) and, optionally, predicates on the request (``request``) and on daprd's answer
  (``daprd``) — never on parley's, so an entry cannot hide a parley regression daprd does not share;
- what parley answers instead, as one of: ``oracle`` (for parley's extensions: daprd is asked the
  equivalent standard request and parley must answer exactly that), ``expect`` (daprd's answer →
  the answer parley must give; parley's answer is still checked exactly), or ``normalise``
  (applied to both answers before comparison, only for what cannot be predicted, e.g. a Go
  error text);
- ``reason``: why parley deliberately differs.

docs/compatibility.md mirrors this list for users (``python -m tests.conformance.differences``
prints it; test_compatibility_doc.py keeps the two identical). conftest.py prints the list, with how
often each entry applied, at the end of every run.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import fnmatch
import http
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["DIFFERENCES", "LEDGER", "Answer", "Case", "Difference", "Ledger", "assert_same", "oracle_request",
           "render_markdown"]


@dataclasses.dataclass(frozen=True)
class Answer:
    """What one server answered. HTTP: status code, Content-Type, parsed body. gRPC: the status code's
    name, ``"grpc"``, and the response as a dict or ``{"details": …}``."""

    status: int | str
    content_type: str
    body: Any

    def replace(self, **changes: Any) -> Answer:
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class Case:
    """One request sent to both servers: an id (``tier/name``) and the request as sent (parsed)."""

    id: str
    request: Any = None
    size: int | None = None
    """Bytes of the request body as sent, when it was sent as HTTP."""


RequestPredicate = Callable[[Case], bool]
AnswerPredicate = Callable[[Answer], bool]
Transform = Callable[[Answer], Answer]
Expect = Callable[[Case, Answer], Answer]


@dataclasses.dataclass(frozen=True)
class Difference:
    id: str
    cases: tuple[str, ...]
    reason: str
    request: RequestPredicate | None = None
    """Applies only to cases (requests) for which this is true."""
    daprd: AnswerPredicate | None = None
    """Applies only when daprd's answer makes this true."""
    oracle: Callable[[Any], Any] | None = None
    """For parley's extensions: daprd is asked this equivalent standard request instead."""
    expect: Expect | None = None
    """(case, daprd's answer) → the answer parley must give."""
    normalise: Transform | None = None

    def matches(self, case: Case) -> bool:
        if not any(fnmatch.fnmatchcase(case.id, pattern) for pattern in self.cases):
            return False
        return self.request is None or self.request(case)

    def applies(self, case: Case, daprd: Answer) -> bool:
        return self.matches(case) and (self.daprd is None or self.daprd(daprd))


# -- helpers for the entries --------------------------------------------------------------------------
_EXTRA = re.compile(r"invalid params%!\(EXTRA (?:string|\*errors\.errorString)=(.*)\)$", re.DOTALL)


def _message(answer: Answer) -> str:
    body = answer.body
    if isinstance(body, dict):
        return str(body.get("message", body.get("details", "")))
    return ""


def _set_message(answer: Answer, text: str) -> Answer:
    body = dict(answer.body)
    body["message" if "message" in body else "details"] = text
    return answer.replace(body=body)


def _error_code(answer: Answer) -> str:
    return str(answer.body.get("errorCode", "")) if isinstance(answer.body, dict) else ""


def _invalid_params_fixed(case: Case, answer: Answer) -> Answer:
    return _set_message(answer, _EXTRA.sub(r"invalid params: \1", _message(answer)))


def _malformed_text(answer: Answer) -> Answer:
    if _error_code(answer) == "ERR_MALFORMED_REQUEST":
        return _set_message(answer, "failed deserializing HTTP body: <decoder's own words>")
    return answer


MAX_BODY = 4 * 1024 * 1024
"""daprd's and parley's default --max-body-size (4Mi)."""


def _body_too_large(case: Case, answer: Answer) -> Answer:
    return Answer(413, "application/json", {
        "errorCode": "ERR_BODY_READ",
        "message": "failed to read request body: request body larger than 4194304 bytes"})


RUNTIME_OWN = "<runtime's own>"


def _daprd_version(value: Any) -> Any:
    """``1.18.3-parley.0.1.0`` → ``1.18.3``: the daprd API level must still match."""
    return value.split("-", 1)[0] if isinstance(value, str) else value


def _metadata_runtime(answer: Answer) -> Answer:
    """HTTP /v1.0/metadata (daprd's JSON), gRPC GetMetadata (protojson) and the SDK's get_metadata()."""
    if not isinstance(answer.body, dict) or "id" not in answer.body:
        return answer
    body = dict(answer.body)
    if "runtimeVersion" in body:
        body["runtimeVersion"] = _daprd_version(body["runtimeVersion"])
    if "runtimeVersion" in body or answer.content_type == "grpc":  # not in the SDK's dataclass
        # Present in daprd's answers; protojson leaves out parley's empty list and message.
        body["enabledFeatures"] = body["appConnectionProperties"] = RUNTIME_OWN
    if isinstance(body.get("actorRuntime"), dict):
        body["actorRuntime"] = {k: v for k, v in body["actorRuntime"].items() if k != "placement"}
    body["extended"] = {k: _daprd_version(v) if k == "daprRuntimeVersion" else v
                        for k, v in body.get("extended", {}).items() if not k.startswith(PUBLIC_PORT_KEY_PREFIX)}
    # daprd lists components in load order, parley by name.
    body["components"] = sorted(body.get("components", []), key=lambda c: str(c.get("name")))
    return answer.replace(body=body)


def _metadata_limit(case: Case, answer: Answer) -> Answer:
    """daprd stores the key (204 / OK); parley refuses it (public.py, api/metadata.py)."""
    key = case.request.get("key", "") if isinstance(case.request, dict) else ""
    reason = (f"extended metadata already holds {METADATA_MAX_KEYS} keys, the most kept" if "-keys" in case.id
              else f"keys and values would exceed {METADATA_MAX_BYTES} bytes in all")
    message = f"failed setting extended metadata {key!r}: {reason}"
    if case.id.startswith(("grpc/", "sdk/")):
        return Answer("RESOURCE_EXHAUSTED", answer.content_type, {"details": message})
    return Answer(400, "application/json", {"errorCode": "ERR_METADATA_LIMIT", "message": message})


METADATA_MAX_KEYS = 100
METADATA_MAX_BYTES = 64 * 1024


PUBLIC_PORT_KEY_PREFIX = "via-public-port"
"""Extended-metadata keys the tests write through the public port (stored by daprd only)."""


def _go_not_found(case: Case, answer: Answer) -> Answer:
    return Answer(404, "text/plain; charset=utf-8", "404 page not found\n")


def _context_alias(request: Any) -> bool:
    return isinstance(request, dict) and isinstance(request.get("conversationContext"), str)


def _context_as_contextid(request: Any) -> Any:
    out = {k: v for k, v in request.items() if k != "conversationContext"}
    out.setdefault("contextID", request["conversationContext"])
    return out


# -- PII: where daprd's scrubber is wrong, parley's answer (daprd's scrubbed text → parley's) ----------
PII_IMPROVED: dict[str, str] = {
    # daprd takes the comma after a street name into the street address.
    "I live at <STREET_ADDRESS> Springfield": "I live at <STREET_ADDRESS>, Springfield",
    # daprd cuts an IPv6 address into a phone number and an IPv4 fragment (and eats the spaces).
    "ipv<PHONE_NUMBER>:<IP>here": "ipv6 <IP> here",
    # daprd's phone regex matches dates, hex digests and UUID fragments.
    "at <PHONE_NUMBER>T10:30:00Z": "at 2024-01-15T10:30:00Z",
    "sha d41d8cd98f00b204e<PHONE_NUMBER>ecf<PHONE_NUMBER>e": "sha d41d8cd98f00b204e9800998ecf8427e",
    "guid 123e<PHONE_NUMBER>-e89b-12d3-a<PHONE_NUMBER>": "guid 123e4567-e89b-12d3-a456-426614174000",
    # daprd calls a US phone number with an extension an ISBN.
    "call <ISBN> ext 12": "call <PHONE_NUMBER> ext 12",
    # daprd's street-address pattern swallows ordinary words after a phone number.
    "is <PHONE_NUMBER> <STREET_ADDRESS>t<EMAIL_ADDRESS>": "is <PHONE_NUMBER> and my email is <EMAIL_ADDRESS>",
    # daprd misses a grouped IBAN and scrubs pieces of it as a street address and phone numbers.
    "iban GB<STREET_ADDRESS>1<PHONE_NUMBER> <PHONE_NUMBER>": "iban <IBAN>",
}


def _words(text: str) -> int:
    return len(text.split())


def _scrubs_inputs(request: Any) -> bool:
    inputs = request.get("inputs") if isinstance(request, dict) else None
    return isinstance(inputs, list) and any(
        isinstance(i, dict) and any(i.get(k) for k in ("scrubPii", "scrub_pii", "scrubPII")) for i in inputs)


def _pii_daprd_wrong(answer: Answer) -> bool:
    return any(bad in json.dumps(answer.body, default=str, ensure_ascii=False) for bad in _PII_BAD_JSON)


_PII_BAD_JSON = tuple(json.dumps(k, ensure_ascii=False)[1:-1] for k in PII_IMPROVED)


def _pii_improved(case: Case, answer: Answer) -> Answer:
    """Replace daprd's wrong scrubbing by parley's; with input scrubbing echo counts the words of
    the scrubbed text, so alpha2 usage follows the text."""
    def fix(text: str) -> str:
        for bad, good in PII_IMPROVED.items():
            text = text.replace(bad, good)
        return text

    body = copy.deepcopy(answer.body)
    for output in body.get("outputs", []):
        if "result" in output:
            output["result"] = fix(output["result"])
        for choice in output.get("choices", []):
            message = choice.get("message", {})
            if "content" in message:
                message["content"] = fix(message["content"])
                if _scrubs_inputs(case.request):
                    n = _words(message["content"])
                    if "completion_tokens" in output.get("usage", {}):  # the SDK's dataclasses
                        output["usage"].update(completion_tokens=n, prompt_tokens=n, total_tokens=2 * n)
                    else:  # protojson: uint64 as strings, an all-zero usage as {}
                        output["usage"] = {"completionTokens": str(n), "promptTokens": str(n),
                                           "totalTokens": str(2 * n)} if n else {}
    return answer.replace(body=body)


MAX_JSON_DEPTH = 100


def json_depth(request: Any) -> int:
    """How deeply a request nests objects and arrays (also for raw bytes that json cannot parse)."""
    if isinstance(request, bytes):
        depth = deepest = 0
        in_string = escaped = False
        for ch in request.decode("utf-8", "replace"):
            if in_string:
                escaped, in_string = (False, True) if escaped else (ch == "\\", ch != '"')
            elif ch == '"':
                in_string = True
            elif ch in "{[":
                depth += 1
                deepest = max(deepest, depth)
            elif ch in "}]":
                depth -= 1
        return deepest
    deepest, stack = 0, [(request, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))
    return deepest


def _too_deep(case: Case, answer: Answer) -> Answer:
    return Answer(400, "application/json", {
        "errorCode": "ERR_MALFORMED_REQUEST",
        "message": f"failed deserializing HTTP body: JSON nested deeper than {MAX_JSON_DEPTH} levels"})


# -- the OpenAI path ------------------------------------------------------------------------------------
_INVOKE_PREFIX = re.compile(r"(failed conversing with component [^:]+: )(.*)", re.DOTALL)
_DAPRD_STATUS = re.compile(r"API returned unexpected status code: (\d+): (.*)", re.DOTALL)
_UNREACHABLE = re.compile(r"cannot reach openai-compatible server at \S+: connection failed \(.*\)", re.DOTALL)


def _provider_error(case: Case, answer: Answer) -> Answer:
    """daprd's (langchaingo's) upstream error text → parley's (components/http_kit.py)."""
    found = _INVOKE_PREFIX.fullmatch(_message(answer))
    if found is None:
        return answer
    prefix, rest = found.groups()
    status = _DAPRD_STATUS.fullmatch(rest)
    if status is not None:
        code, text = int(status.group(1)), status.group(2)
        rest = (f"the provider rejected the API key ({code})" if code in (401, 403)
                else f"openai-compatible server returned {code} {http.HTTPStatus(code).phrase}: {text}")
    elif rest == "empty response":
        rest = "openai-compatible server returned no choices"
    elif rest.startswith("invalid character"):
        rest = "openai-compatible server returned a malformed response (200, body is not JSON)"
    elif rest.startswith("network error"):
        rest = "cannot reach openai-compatible server at <address>: connection failed (<OS error>)"
    return _set_message(answer, prefix + rest)


_TIMED_OUT = re.compile(r"(failed conversing with component [^:]+: )(?:context deadline exceeded|request timed out after \S+s)")


def _timed_out(answer: Answer) -> Answer:
    """daprd's and parley's words for an attempt a Resiliency timeout ended → one placeholder."""
    found = _TIMED_OUT.fullmatch(_message(answer))
    return answer if found is None else _set_message(answer, found.group(1) + "<timed out>")


def _unreachable_detail(answer: Answer) -> Answer:
    text = _message(answer)
    if _UNREACHABLE.search(text):
        return _set_message(answer, _UNREACHABLE.sub(
            "cannot reach openai-compatible server at <address>: connection failed (<OS error>)", text))
    return answer


def _developer_texts(request: Any) -> set[str]:
    texts: set[str] = set()
    for item in request.get("inputs", []) if isinstance(request, dict) else []:
        for message in item.get("messages", []):
            for part in (message.get("ofDeveloper") or {}).get("content", []):
                texts.add(part.get("text", ""))
    return texts


def _developer_as_system(case: Case, answer: Answer) -> Answer:
    developer = _developer_texts(case.request)
    body = copy.deepcopy(answer.body)
    for message in body.get("messages", []):
        if message.get("role") == "user" and message.get("content") in developer:
            message["role"] = "system"
    return answer.replace(body=body)


def _named_tool_choice(case: Case, answer: Answer) -> Answer:
    body = dict(answer.body)
    choice = body.get("tool_choice")
    if isinstance(choice, str) and choice not in ("auto", "none", "required"):
        body["tool_choice"] = {"type": "function", "function": {"name": choice}}
    return answer.replace(body=body)


def _no_tool_choice_without_tools(case: Case, answer: Answer) -> Answer:
    body = dict(answer.body)
    if "tool_choice" in body and not body.get("tools"):
        del body["tool_choice"]
    return answer.replace(body=body)


OPENAI_TWO_PART_TOOL_RESULT = Answer(200, "application/json", {"outputs": [{
    "choices": [{"finishReason": "stop", "message": {"content": "reply to: sunny warm"}}],
    "model": "gpt-4o-mini", "usage": {"completionTokens": "7", "promptTokens": "11", "totalTokens": "18"}}]})
"""The fake's answer to the two-part tool result, as parley returns it (fake_openai.answer_for)."""


_BAD_TTL = "failed conversing with component echo: invalid params: metadata cacheTTL must be a duration such as 10m"


def _bad_cache_ttl(case: Case, answer: Answer) -> Answer:
    if case.id.startswith("grpc/"):
        return Answer("INVALID_ARGUMENT", "grpc", {"details": _BAD_TTL})
    return Answer(400, "application/json", {"errorCode": "ERR_CONVERSATION_INVALID_PARMS", "message": _BAD_TTL})


def _has_plain_string_inputs(request: Any) -> bool:
    return (isinstance(request, dict) and isinstance(request.get("inputs"), list)
            and any(isinstance(i, str) for i in request["inputs"]))


def _plain_strings_as_objects(request: Any) -> Any:
    return {**request, "inputs": [{"content": i} if isinstance(i, str) else i for i in request["inputs"]]}


_SCRUB_FLAGS = ("scrubPii", "scrub_pii", "scrubPII")


def _asks_scrubbing(request: Any) -> bool:
    """Whether a request (HTTP body or gRPC/SDK dict) asks for scrubbing anywhere."""
    if not isinstance(request, dict):
        return False
    inputs = request.get("inputs")
    parts = [request, *(i for i in inputs if isinstance(i, dict))] if isinstance(inputs, list) else [request]
    return any(part.get(flag) is True for part in parts for flag in _SCRUB_FLAGS)


def _has_tool_calls(answer: Answer) -> bool:
    return '"toolCalls"' in json.dumps(answer.body, default=str) or '"tool_calls"' in json.dumps(
        answer.body, default=str)


def _asks(part: Any) -> bool:
    return isinstance(part, dict) and any(part.get(flag) is True for flag in _SCRUB_FLAGS)


def _echo_call_flags(request: dict[str, Any]) -> tuple[int, list[bool]]:
    """Echo answers one call per declared tool, then every tool call of the messages, in order.
    For each: whether parley scrubbed it (the tools' definitions when the request asks anywhere;
    a message's calls when its input asks; all of them on output when the request itself asks)."""
    on_output = _asks(request)
    # Only typed tools become calls: an entry without ``function`` (``tools: [{}]``) is dropped by
    # both daprd and parley before echo sees the tools.
    tools = [t for t in request.get("tools") or [] if isinstance(t, dict) and t.get("function") is not None]
    flags = [on_output or _asks_scrubbing(request)] * len(tools)
    for item in request.get("inputs") or []:
        asked = on_output or _asks(item)
        for message in (item.get("messages") or []) if isinstance(item, dict) else []:
            for body in message.values() if isinstance(message, dict) else ():
                calls = (body.get("toolCalls") or body.get("tool_calls") or []) if isinstance(body, dict) else []
                flags += [asked] * len(calls)
    return len(tools), flags


def _tool_calls_scrubbed(case: Case, answer: Answer) -> Answer:
    """daprd's answer with the tool calls parley scrubbed as parley's scrubber leaves them: a
    message's call has its id, name and arguments scrubbed; a call echo makes for a declared tool
    has the tool's scrubbed name and its scrubbed parameter names, sorted."""
    from parley_sidecar.conversation import pii, scrubbing

    scrub = scrubbing.Scrub("oracle", pii.Scrubber(pii.DEFAULT_ENTITIES))
    declared, flags = _echo_call_flags(case.request)
    body = copy.deepcopy(answer.body)
    for output in body.get("outputs", []):
        for choice in output.get("choices", []):
            message = choice.get("message", {})
            for index, call in enumerate(message.get("toolCalls", message.get("tool_calls", []))):
                if index >= len(flags) or not flags[index]:
                    continue
                function = call.get("function", {})
                if "name" in function:
                    function["name"] = scrub.text(function["name"])
                arguments = function.get("arguments")
                if index < declared:
                    if arguments:
                        function["arguments"] = ",".join(sorted(scrub.text(a) for a in arguments.split(",")))
                    if _asks(case.request) and arguments:
                        function["arguments"] = scrub.arguments(function["arguments"])
                    continue
                if "id" in call:
                    call["id"] = scrub.text(call["id"])
                if arguments is not None:
                    function["arguments"] = scrub.arguments(arguments)
    return answer.replace(body=body)


DIFFERENCES: tuple[Difference, ...] = (
    Difference(
        id="invalid-params-message",
        cases=("http/*", "gen/*", "grpc/*", "sdk/*", "openai/*"),
        daprd=lambda d: "invalid params%!(EXTRA" in _message(d),
        expect=_invalid_params_fixed,
        reason="daprd 1.18.3 formats ERR_CONVERSATION_INVALID_PARMS with a Go format slip "
               "(`invalid params%!(EXTRA string=<reason>)`); parley writes the intended "
               "`invalid params: <reason>`, as dapr fixed upstream (#10180). Code and status are the same.",
    ),
    Difference(
        id="body-too-large-413",
        cases=("http/*",),
        request=lambda c: (c.size or 0) > MAX_BODY,
        expect=_body_too_large,
        reason="A body over --max-body-size (4Mi) is 413 Payload Too Large with ERR_BODY_READ in parley. "
               "daprd answers 400: ERR_BODY_READ `stream too large` for a body well over the limit, but "
               "for one a few bytes over it parses the truncated body and answers ERR_MALFORMED_REQUEST "
               "`unexpected EOF`. Parley tells 'too big' from 'malformed' every time.",
    ),
    Difference(
        id="json-nesting-limit",
        cases=("http/*", "gen/*"),
        request=lambda c: json_depth(c.request) > MAX_JSON_DEPTH,
        expect=_too_deep,
        reason=f"Parley refuses bodies that nest objects/arrays deeper than {MAX_JSON_DEPTH} levels "
               "(400 ERR_MALFORMED_REQUEST) instead of exhausting Python's stack; daprd accepts up to "
               "protojson's 10000 message levels. No JSON schema or tool definition comes close.",
    ),
    Difference(
        id="malformed-body-text",
        cases=("http/*", "gen/*"),
        daprd=lambda d: _error_code(d) == "ERR_MALFORMED_REQUEST",
        normalise=_malformed_text,
        reason="For a body that is not valid protojson both answer 400 ERR_MALFORMED_REQUEST with "
               "`failed deserializing HTTP body: …`; the rest of the message is the decoder's own words "
               "(Go's protojson with line:column, Python's json/json_format).",
    ),
    Difference(
        id="alpha1-plain-string-inputs",
        cases=("http/a1*", "gen/a1*"),
        request=lambda c: _has_plain_string_inputs(c.request),
        oracle=_plain_strings_as_objects,
        reason="The Dapr docs' API reference shows alpha1 `inputs` as plain strings "
               "(`{\"inputs\": [\"what is Dapr\"]}`); daprd rejects them (400 ERR_MALFORMED_REQUEST). "
               "Parley accepts them as `{\"content\": …}` (a seed extension): its answer must equal "
               "daprd's answer to the request written with objects.",
    ),
    Difference(
        id="alpha1-conversation-context",
        cases=("http/a1*", "gen/a1*"),
        request=lambda c: _context_alias(c.request),
        oracle=_context_as_contextid,
        reason="The Dapr docs' API reference names the alpha1 context `conversationContext`; daprd "
               "ignores that key. Parley reads it as `contextID` (a seed extension): its answer must "
               "equal daprd's answer to the request written with `contextID`.",
    ),
    Difference(
        id="seed-metadata-overrides",
        cases=("http/*metadata-bad-cacheTTL", "grpc/*metadata-bad-cacheTTL"),
        expect=_bad_cache_ttl,
        reason="The Dapr docs' API reference lets `metadata.model`, `metadata.key` and `metadata.cacheTTL` "
               "(in the body or as `?metadata.*=` query parameters) override the component for one "
               "request; daprd ignores them, parley applies them (a seed extension). With echo only a "
               "malformed cacheTTL is visible: parley answers 400 ERR_CONVERSATION_INVALID_PARMS, daprd "
               "200 (gRPC: INVALID_ARGUMENT, daprd OK). Valid overrides are compared like any other case "
               "(http/a1-metadata-seed-overrides).",
    ),
    Difference(
        id="pii-scrub-tool-calls",
        cases=("http/a2*", "gen/a2*", "grpc/*", "sdk/*"),
        request=lambda c: _asks_scrubbing(c.request),
        daprd=_has_tool_calls,
        expect=_tool_calls_scrubbed,
        reason="When a request asks for PII scrubbing, daprd scrubs message texts only and sends tool "
               "calls (ids, names, arguments) upstream, and returns them, as they are. Parley scrubs "
               "everything that leaves for the provider and every answer's tool calls: JSON arguments' "
               "keys, strings and numbers, arguments that are not JSON as text (docs/pii.md, \"What is "
               "scrubbed\"). With echo, whose answer repeats the request's tool calls, that shows as "
               "scrubbed tool calls in the answer.",
    ),
    Difference(
        id="pii-scrubber-improvements",
        cases=("http/*", "grpc/*", "sdk/*"),
        daprd=_pii_daprd_wrong,
        expect=_pii_improved,
        reason="daprd's PII scrubber (aavaz-ai/pii-scrubber) has misses and false hits: it cuts IPv6 "
               "addresses into <PHONE_NUMBER>/<IP> pieces, scrubs dates, hex digests and UUID pieces as "
               "phone numbers, calls a phone number with an extension an <ISBN>, misses grouped IBANs, "
               "takes the comma after a street name and swallows words after a phone number as a street. Parley keeps daprd's tokens and daprd's answers "
               "where daprd is right (every other sample is compared exactly) and is right in these "
               "cases; see docs/pii.md. The table is PII_IMPROVED.",
    ),
    Difference(
        id="grpc-other-building-blocks",
        cases=("grpc/other-*",),
        daprd=lambda d: d.status != "UNAUTHENTICATED",
        expect=lambda case, d: Answer("UNIMPLEMENTED", "grpc", {"details": "Method not found!"}),
        reason="Parley serves the conversation API and the sidecar's own methods (GetMetadata, SetMetadata, "
               "Shutdown): every other method of dapr.proto.runtime.v1.Dapr (state, pub/sub, configuration, "
               "actors, workflows, …) answers UNIMPLEMENTED, where daprd serves them. The API token is "
               "still checked first.",
    ),
    Difference(
        id="public-port-read-only",
        cases=("http/metadata-put-public*",),
        expect=_go_not_found,
        reason="daprd stores `PUT /v1.0/metadata/{key}` on the public (probe) port too, where no API "
               "token is checked: with DAPR_API_TOKEN set, anyone who reaches the probe port can write "
               "the extended metadata. Parley's public port serves only health and metadata reads "
               "(404 there); the PUT works on the API port, with the token.",
    ),
    Difference(
        id="openai-provider-error-text",
        cases=("openai/*",),
        daprd=lambda d: _error_code(d) == "ERR_CONVERSATION_INVOKE",
        expect=_provider_error,
        normalise=_unreachable_detail,
        reason="An upstream failure is 500 ERR_CONVERSATION_INVOKE in both. daprd passes langchaingo's "
               "text on (`API returned unexpected status code: 429: …`, `empty response`, `invalid "
               "character …`, `network error: failed to reach API server`); parley names the provider, "
               "the status and its meaning (`openai-compatible server returned 429 Too Many Requests: "
               "…`), and drops the upstream text of a 401/403 (providers echo parts of the key there).",
    ),
    Difference(
        id="openai-developer-role",
        cases=("openai/*/upstream",),
        request=lambda c: bool(_developer_texts(c.request)),
        expect=_developer_as_system,
        reason="daprd sends an alpha2 ofDeveloper message upstream as role `user` (langchaingo has no "
               "developer role). Parley sends `developer` to OpenAI's own API and `system` to other "
               "OpenAI-compatible servers (vLLM, llama.cpp, … and this test's fake), which do not know "
               "`developer`.",
    ),
    Difference(
        id="openai-named-tool-choice",
        cases=("openai/*/upstream",),
        daprd=lambda d: isinstance(d.body, dict) and isinstance(d.body.get("tool_choice"), str)
        and d.body["tool_choice"] not in ("auto", "none", "required"),
        expect=_named_tool_choice,
        reason="A named toolChoice goes upstream in daprd as a bare string (`\"tool_choice\": \"get_time\"`), "
               "which OpenAI's API rejects; parley sends OpenAI's form "
               "`{\"type\": \"function\", \"function\": {\"name\": \"get_time\"}}`.",
    ),
    Difference(
        id="openai-tool-choice-without-tools",
        cases=("openai/*/upstream",),
        daprd=lambda d: isinstance(d.body, dict) and "tool_choice" in d.body and not d.body.get("tools"),
        expect=_no_tool_choice_without_tools,
        reason="daprd forwards a toolChoice even when the request has no tools; OpenAI answers that with "
               "400 (`tool_choice` is only allowed with `tools`). Parley leaves it out.",
    ),
    Difference(
        id="openai-multi-part-tool-result",
        cases=("openai/a2-two-part-tool-result", "openai/a2-two-part-tool-result/calls"),
        expect=lambda case, d: Answer(1, "", None) if case.id.endswith("/calls") else OPENAI_TWO_PART_TOOL_RESULT,
        reason="A tool result with two content parts is refused by daprd before any call (500 `expected "
               "exactly one part for role tool, got 2`); parley sends it as a content array "
               "(`[{\"type\":\"text\",…},…]`), which OpenAI accepts, and answers normally.",
    ),
    Difference(
        id="openai-retries",
        cases=("openai/*-retried/calls",),
        expect=lambda case, d: Answer(4, "", None),
        reason="daprd calls the provider once and fails on 429/5xx; parley retries 408/429/5xx and "
               "connection failures (default maxRetries 3, exponential backoff from retryBackoff 500ms "
               "with jitter, honouring Retry-After) before answering the same 500. `maxRetries: \"0\"` "
               "in the Component turns this off.",
    ),
    Difference(
        id="resiliency-retries-retryable-only",
        cases=("openai/resiliency-client-error/calls",),
        expect=lambda case, d: Answer(1, "", None),
        reason="Under a Resiliency retry policy daprd's runner retries every error a component returns, "
               "a 400 from the provider too (`maxRetries: 3`: 4 calls). Parley retries only failures a "
               "retry can mend (408, 425, 429, 5xx, timeouts, connection errors) and answers a 400 after "
               "one call; 5xx failures are retried as the policy says, in both.",
    ),
    Difference(
        id="resiliency-timeout-message",
        cases=("resiliency/timeout",),
        daprd=lambda d: _error_code(d) == "ERR_CONVERSATION_INVOKE",
        normalise=_timed_out,
        reason="When a Resiliency `timeouts` policy ends a component call both answer 500 "
               "ERR_CONVERSATION_INVOKE after one upstream call. daprd's message ends with Go's "
               "`context deadline exceeded`; parley's says what ended it: `request timed out after 0.5s`.",
    ),
    Difference(
        id="metadata-runtime-fields",
        cases=("http/metadata*", "grpc/metadata*", "sdk/metadata*"),
        normalise=_metadata_runtime,
        reason="/v1.0/metadata and gRPC GetMetadata: the id, the components (name, type, version; "
               "conversation components have no capabilities in daprd either), the extended metadata, "
               "actorRuntime's status (DISABLED) and workflows are the same. The runtime version and "
               "`extended.daprRuntimeVersion` are `1.18.3-parley.<v>` (daprd: `1.18.3`; the daprd part must "
               "match). enabledFeatures, appConnectionProperties and actorRuntime.placement describe the "
               "runtime itself and are empty in parley (daprd: its feature flags, its app channel "
               "`{protocol: http, channelAddress: 127.0.0.1}`, `placement: disconnected`): parley has no "
               "preview features, never calls the app and has no actors. Components are listed by name "
               "(daprd: in load order); only conversation components are listed (parley loads no other "
               "kind, so a secret store in the resources path is listed by daprd only).",
    ),
    Difference(
        id="metadata-extended-bound",
        cases=("http/metadata-limit*", "grpc/metadata-limit*"),
        expect=_metadata_limit,
        reason=f"Extended metadata (`PUT /v1.0/metadata/{{key}}`, gRPC SetMetadata) is bounded in parley: "
               f"at most {METADATA_MAX_KEYS} keys and {METADATA_MAX_BYTES} UTF-8 bytes of keys and values "
               "together. A write beyond that is refused and changes nothing: HTTP 400 ERR_METADATA_LIMIT, "
               "gRPC RESOURCE_EXHAUSTED (the request is well-formed, the store is full: gRPC's code for "
               "an exhausted quota) with the same message; an existing key may still be replaced "
               "within the bytes. daprd stores any number (204 / OK): 50,000 PUTs of new keys grew it to "
               "473 MB.",
    ),
    Difference(
        id="metrics-port-scrapes-counted",
        cases=("http/metrics-scrape-counted",),
        expect=lambda case, d: d.replace(body={"scrapeCounted": True}),
        reason="Parley counts requests to the metrics port (Prometheus' scrapes of `/`) in "
               "dapr_http_server_request_count and dapr_http_server_latency, as it counts every HTTP port; "
               "daprd counts only its API and public ports. A dashboard summing the metric over all paths "
               "sees one request per scrape more on parley.",
    ),
)


# -- the comparison -------------------------------------------------------------------------------------
@dataclasses.dataclass
class Ledger:
    """What the run compared; printed by conftest's terminal summary."""

    compared: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    """Cases per tier (a case is one request sent to both servers)."""
    extra: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    """Further comparisons per tier within a case (OpenAI path: upstream request, number of calls)."""
    applied: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    outcomes: dict[str, collections.Counter[str]] = dataclasses.field(
        default_factory=lambda: collections.defaultdict(collections.Counter))
    """Per tier, daprd's answers by status and error code: shows what the cases exercised."""

    def tier(self, case_id: str) -> str:
        return case_id.split("/", 1)[0]


LEDGER = Ledger()


def oracle_request(case: Case, differences: Iterable[Difference] = DIFFERENCES) -> Any:
    """The request daprd is asked: the case's own, unless an extension entry gives an equivalent one."""
    request = case.request
    for diff in differences:
        if diff.oracle is not None and diff.matches(case):
            request = diff.oracle(request)
    return request


def assert_same(case: Case, daprd: Answer, parley: Answer, differences: Iterable[Difference] = DIFFERENCES) -> None:
    """Fail unless parley's answer equals daprd's, modulo the intended differences that apply."""
    expected, got = daprd, parley
    used: list[str] = []
    for diff in differences:
        if not diff.applies(case, daprd):
            continue
        used.append(diff.id)
        if diff.expect is not None:
            expected = diff.expect(case, expected)
        if diff.normalise is not None:
            expected, got = diff.normalise(expected), diff.normalise(got)
    tier = LEDGER.tier(case.id)
    if case.id.count("/") > 1:
        LEDGER.extra[tier] += 1
    else:
        LEDGER.compared[tier] += 1
        LEDGER.outcomes[tier][f"{daprd.status} {_error_code(daprd)}".strip()] += 1
    for name in used:
        LEDGER.applied[name] += 1
    if expected != got:
        note = f" (after intended differences: {', '.join(used)})" if used else ""
        raise AssertionError(
            f"{case.id}: parley differs from daprd{note}\n"
            f"  request: {_short(case.request)}\n  daprd:   {_short(daprd)}\n"
            f"  expected:{_short(expected)}\n  parley:  {_short(got)}")


def _short(value: Any, limit: int = 1500) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} chars)"


def render_markdown() -> str:
    """The list as docs/compatibility.md shows it (between its generated-section markers)."""
    blocks = []
    for diff in DIFFERENCES:
        where = ", ".join(f"`{pattern}`" for pattern in diff.cases)
        blocks.append(f"### `{diff.id}`\n\n{diff.reason}\n\n*Differential test cases: {where}.*\n")
    return "\n".join(blocks)


if __name__ == "__main__":
    print(render_markdown(), end="")
