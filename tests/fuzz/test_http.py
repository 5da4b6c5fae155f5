"""Fuzz of the sidecar's Dapr HTTP API: whatever arrives, the answer is one of the documented ones.

Documented answers (docs/sidecar.md "Endpoints" and "Errors", api/http.py, api/public.py):

- 200 with a JSON object (converse, ``GET /v1.0/metadata``), 204 with no body (health, ``PUT
  /v1.0/metadata/{key}``);
- ``{"errorCode": "ERR_…", "message": "…"}`` JSON with the code's own status: 400 for
  ERR_MALFORMED_REQUEST / ERR_CONVERSATION_NOT_FOUND / ERR_CONVERSATION_MISSING_INPUTS /
  ERR_CONVERSATION_INVALID_PARMS, 413 ERR_BODY_READ, 404 ERR_DIRECT_INVOKE for any other path or
  method;
- 401 ``invalid api token`` (plain text, as daprd) when the token is missing or wrong, except on
  the health endpoints.

500 ERR_CONVERSATION_INVOKE is documented only for a failing component; `echo` and an unknown
component cannot fail upstream, so no 5xx is ever right here. After every example the sidecar
still answers ``GET /v1.0/healthz`` with 204.
"""

from __future__ import annotations

import json
import string
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz import strategies as fs
from tests.fuzz.conftest import API_TOKEN, MAX_BODY, FuzzSidecar, HttpClient, examples

ERROR_STATUS = {
    "ERR_MALFORMED_REQUEST": 400, "ERR_CONVERSATION_NOT_FOUND": 400, "ERR_CONVERSATION_MISSING_INPUTS": 400,
    "ERR_CONVERSATION_INVALID_PARMS": 400, "ERR_BODY_READ": 413, "ERR_DIRECT_INVOKE": 404,
    "ERR_METADATA_LIMIT": 400,  # PUT /v1.0/metadata/{key} beyond the store's bounds (api/public.py)
}
EXEMPT = {"/v1.0/healthz", "/v1.0/healthz/outbound"}
UNKNOWN = "no-such-component"


@pytest.fixture(scope="module")
def client(fuzz_sidecar: FuzzSidecar) -> Iterator[HttpClient]:
    c = HttpClient("127.0.0.1", fuzz_sidecar.http_port)
    yield c
    c.close()


pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

# -- the oracle ------------------------------------------------------------------------------------
def clean(path: str) -> str:
    """The path as daprd routes it (docs: ``//`` merged, trailing ``/`` dropped, dot segments resolved)."""
    parts: list[str] = []
    for segment in urllib.parse.unquote(path.split("?", 1)[0]).split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if parts:
                parts.pop()
            continue
        parts.append(segment)
    return "/" + "/".join(parts)


def describe(method: str, path: str, headers: dict[str, str], body: bytes | None, status: int, ctype: str,
             answer: bytes) -> str:
    body = body or b""
    return (f"\n  request: {method} {path} headers={headers!r} body={body[:600]!r}"
            f"{'…' if body and len(body) > 600 else ''}\n  answer:  {status} {ctype} {answer[:600]!r}")


def check_documented(method: str, path: str, headers: dict[str, str], body: bytes | None,
                     status: int, ctype: str, answer: bytes) -> Any:
    """Asserts the answer is a documented one; returns the parsed JSON body (or None)."""
    why = describe(method, path, headers, body, status, ctype, answer)
    assert status < 500, "a 5xx where no component can fail" + why
    if status == 400 and answer.startswith(b'{"errorCode":"ERR_MALFORMED_REQUEST","message":"malformed HTTP request: '):
        return None  # the HTTP parser refused the request (e.g. a method it does not know): never routed
    token_ok = headers.get("dapr-api-token") == API_TOKEN
    if clean(path).startswith("/v1/") and (status == 200 or answer.startswith(b'{"error":')):
        return check_openai(method, status, ctype, answer, token_ok, why)  # the OpenAI API (docs/openai.md)
    if not token_ok and clean(path) not in EXEMPT:
        assert (status, answer if method != "HEAD" else b"invalid api token\n") == (401, b"invalid api token\n"), (
            "a missing or wrong token must get daprd's 401 `invalid api token`" + why)
        return None
    assert status != 401, "401 with the right token" + why
    if status == 204:
        assert answer == b"", "204 with a body" + why
        return None
    assert ctype == "application/json", "an answer that is not JSON" + why
    if method == "HEAD":
        return None
    try:
        parsed = json.loads(answer)
    except ValueError:
        raise AssertionError("a body that does not parse as JSON" + why) from None
    assert isinstance(parsed, dict), "a JSON answer that is not an object" + why
    if status == 200:
        return parsed
    assert set(parsed) == {"errorCode", "message"}, "not the documented error shape" + why
    assert isinstance(parsed["message"], str) and parsed["message"], "an error without a message" + why
    assert "Traceback" not in parsed["message"], "a stack trace reached the client" + why
    assert ERROR_STATUS.get(parsed["errorCode"]) == status, "an errorCode with another status" + why
    return parsed


def check_openai(method: str, status: int, ctype: str, answer: bytes, token_ok: bool, why: str) -> Any:
    """OpenAI's shapes under ``/v1/``: a JSON object or an event stream, errors as ``{"error": {…}}``."""
    if status == 200:
        assert ctype in ("application/json", "text/event-stream"), "an answer that is neither JSON nor SSE" + why
        return json.loads(answer) if ctype == "application/json" and method != "HEAD" else None
    parsed = json.loads(answer)
    assert set(parsed) == {"error"} and set(parsed["error"]) == {"message", "type", "param", "code"}, (
        "not OpenAI's error shape" + why)
    assert parsed["error"]["message"] and "Traceback" not in parsed["error"]["message"], "a bad message" + why
    assert (status == 401) == (not token_ok and parsed["error"]["code"] == "invalid_api_key"), "a wrong 401" + why
    return None


def send(client: HttpClient, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, Any]:
    status, ctype, answer = client.request(method, path, body, headers)
    parsed = check_documented(method, path, headers, body, status, ctype, answer)
    alive = client.request("GET", "/v1.0/healthz")
    assert alive[0] == 204, f"the sidecar stopped answering /v1.0/healthz after {method} {path}: {alive}"
    return status, parsed


# -- request parts -------------------------------------------------------------------------------
TOKENS = st.sampled_from(["ok"] * 6 + ["missing", "wrong", "case"])


def token_headers(which: str) -> dict[str, str]:
    return {"ok": {"dapr-api-token": API_TOKEN}, "missing": {}, "wrong": {"dapr-api-token": "nope"},
            "case": {"dapr-api-token": API_TOKEN.upper()}}[which]


HEADER_VALUES = st.text(alphabet=string.printable.strip() + " ", max_size=40).map(str.strip)
EXTRA_HEADERS = st.dictionaries(
    st.sampled_from(["Content-Type", "Accept", "Content-Encoding", "Transfer-Encoding-X", "dapr-app-id",
                     "traceparent", "X-Forwarded-For", "Expect-X", "Accept-Charset", "x-fuzz"]),
    st.one_of(HEADER_VALUES, st.sampled_from(["application/json", "text/plain; charset=latin-1", "gzip",
                                              "application/json; charset=utf-16", "multipart/form-data"])),
    max_size=3)

SEGMENT = st.one_of(
    st.text(alphabet=string.ascii_letters + string.digits + "-._~", min_size=1, max_size=12),
    fs.HOSTILE_TEXT.map(lambda t: urllib.parse.quote(t.encode("utf-8", "surrogatepass"), safe="")),
    st.sampled_from(["%ff", "%c0%af", "%00", "%2F", "..", ".", "", "%2e%2e", "echo", "converse", "v1.0"]),
)
COMPONENT = fs.weighted((2, st.just("echo")), (1, st.just(UNKNOWN)), (1, SEGMENT))
QUERY = st.one_of(st.just(""), st.lists(st.tuples(
    st.one_of(st.sampled_from(["metadata.cacheTTL", "metadata.model", "metadata.key", "metadata.piiEntities",
                               "metadata.", "raw_response"]), SEGMENT),
    SEGMENT), max_size=3).map(lambda pairs: "?" + "&".join(f"{k}={v}" for k, v in pairs)))


def converse_path(version: str, name: str, query: str) -> str:
    return f"/v1.0-{version}/conversation/{name}/converse{query}"


def check_converse(version: str, name: str, status: int, parsed: Any) -> None:
    if clean(f"/{name}") != f"/{name}" or name in ("", "%2F"):
        return  # the path means another route once cleaned: only the general oracle applies
    if urllib.parse.unquote(name) != "echo":
        assert status != 200, f"a 200 from {version} for the unknown component {name!r}: {parsed}"
    if status == 200:
        outputs = parsed.get("outputs")
        assert isinstance(outputs, list) and outputs, f"a 200 from {version} without outputs: {parsed}"


# -- the tests -----------------------------------------------------------------------------------
@examples("http_alpha1")
@given(name=COMPONENT, query=QUERY, body=fs.bodies(fs.ALPHA1_BODY), token=TOKENS, extra=EXTRA_HEADERS)
def test_alpha1_converse(client: HttpClient, name: str, query: str, body: bytes, token: str,
                         extra: dict[str, str]) -> None:
    headers = {**extra, **token_headers(token)}
    status, parsed = send(client, "POST", converse_path("alpha1", name, query), body, headers)
    if token == "ok":
        check_converse("alpha1", name, status, parsed)


@examples("http_alpha2")
@given(name=COMPONENT, query=QUERY, body=fs.bodies(fs.ALPHA2_BODY), token=TOKENS, extra=EXTRA_HEADERS)
def test_alpha2_converse(client: HttpClient, name: str, query: str, body: bytes, token: str,
                         extra: dict[str, str]) -> None:
    headers = {**extra, **token_headers(token)}
    status, parsed = send(client, "POST", converse_path("alpha2", name, query), body, headers)
    if token == "ok":
        check_converse("alpha2", name, status, parsed)


@examples("http_raw_body")
@given(version=st.sampled_from(["alpha1", "alpha2"]), name=st.sampled_from(["echo", UNKNOWN]),
       body=st.one_of(st.binary(max_size=300), st.binary(min_size=MAX_BODY - 2, max_size=MAX_BODY + 2),
                      st.integers(MAX_BODY - 64, 3 * MAX_BODY).map(lambda n: b'{"inputs":["' + b"a" * n + b'"]}')))
def test_raw_bytes_and_sizes(client: HttpClient, version: str, name: str, body: bytes) -> None:
    """Random bytes, and bodies around --max-body-size (413 ERR_BODY_READ above it)."""
    status, parsed = send(client, "POST", converse_path(version, name, ""), body, token_headers("ok"))
    check_converse(version, name, status, parsed)
    if len(body) > MAX_BODY:
        assert (status, parsed["errorCode"]) == (413, "ERR_BODY_READ"), f"{len(body)} bytes: {status} {parsed}"


KNOWN_PATHS = st.sampled_from([
    "/v1.0-alpha1/conversation/echo/converse", "/v1.0-alpha2/conversation/echo/converse",
    f"/v1.0-alpha1/conversation/{UNKNOWN}/converse", "/v1.0/healthz", "/v1.0/healthz/outbound",
    "/v1.0/metadata", "/v1.0/metadata/cliPID", "/v1.0-alpha1/conversation/echo", "/v1.0/invoke/app/method/x",
    "/v1.0/state/store", "/", "/v1/chat/completions", "/v1/models", "/metrics", "/v1.0-alpha3/conversation/echo/converse",
])


@st.composite
def mangled_paths(draw: st.DrawFn) -> str:
    """A known path with daprd-router variations (extra slashes, dot segments, case), or random segments."""
    if draw(st.booleans()):
        return "/" + "/".join(draw(st.lists(SEGMENT, max_size=5))) + draw(QUERY)
    path = draw(KNOWN_PATHS)
    segments = path.split("/")
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(1, len(segments)))  # after the leading "": the path still starts with "/"
        segments.insert(i, draw(st.sampled_from(["", ".", "..", "x/.."]) | SEGMENT))
    if draw(st.booleans()):
        segments = [s.upper() if draw(st.booleans()) else s for s in segments]
    return "/".join(segments) + draw(st.sampled_from(["", "/", "//"])) + draw(QUERY)


METHODS = st.one_of(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE"]),
                    st.text(alphabet=string.ascii_uppercase, min_size=1, max_size=10))


@examples("http_any_request")
@given(method=METHODS, path=mangled_paths(), body=st.one_of(st.none(), fs.bodies(fs.ANY_JSON)), token=TOKENS,
       extra=EXTRA_HEADERS)
def test_any_request(client: HttpClient, method: str, path: str, body: bytes | None, token: str,
                     extra: dict[str, str]) -> None:
    """Any method, path, headers and body: a documented answer, never a 5xx."""
    status, parsed = send(client, method, path, body, {**extra, **token_headers(token)})
    route = clean(path)
    if token == "ok" and method == "GET" and route == "/v1.0/metadata" and status == 200:
        assert parsed.get("id") == "fuzz-app", parsed


def plain_key(segment: str) -> bool:
    """A key that names itself: not a dot segment, no ``/``, percent-escapes of valid UTF-8 only."""
    try:
        key = urllib.parse.unquote(segment, errors="strict")
    except UnicodeDecodeError:
        return False
    return key not in ("", ".", "..") and "/" not in key


@examples("http_metadata_put")
@given(key=SEGMENT.filter(plain_key),
       value=st.one_of(st.binary(max_size=200), fs.HOSTILE_TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")),
                       st.binary(min_size=5000, max_size=6000)))
def test_put_extended_metadata(client: HttpClient, key: str, value: bytes) -> None:
    """``PUT /v1.0/metadata/{key}`` answers 204 and ``GET /v1.0/metadata`` then shows the value; beyond the
    store's bounds it answers 400 ERR_METADATA_LIMIT and changes nothing."""
    name = urllib.parse.unquote(key)
    _, before = send(client, "GET", "/v1.0/metadata", None, token_headers("ok"))
    status, error = send(client, "PUT", f"/v1.0/metadata/{key}", value, token_headers("ok"))
    assert status == 204 or (status, error["errorCode"]) == (400, "ERR_METADATA_LIMIT"), \
        f"PUT /v1.0/metadata/{key} answered {status} {error}"
    status, parsed = send(client, "GET", "/v1.0/metadata", None, token_headers("ok"))
    assert status == 200
    stored = parsed.get("extended", {}).get(name)
    expected = value.decode("utf-8", "replace") if error is None else before.get("extended", {}).get(name)
    assert stored == expected, f"extended[{name!r}] is {stored!r}"
