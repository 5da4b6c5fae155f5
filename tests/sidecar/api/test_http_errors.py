"""Bad input gets daprd's documented error, never a stack trace, and the next request still works."""

from __future__ import annotations

import pytest

from tests.conftest import Running, StartSidecar

A1 = "/v1.0-alpha1/conversation/echo/converse"
A2 = "/v1.0-alpha2/conversation/echo/converse"
GOOD = {"inputs": [{"content": "still fine"}]}

BAD = [
    ("invalid json", A1, b'{"inputs": [', 400, "ERR_MALFORMED_REQUEST"),
    ("json array body", A1, b"[1,2]", 400, "ERR_MALFORMED_REQUEST"),
    ("null body", A2, b"null", 400, "ERR_MALFORMED_REQUEST"),
    ("duplicate key", A1, b'{"inputs":[],"inputs":[]}', 400, "ERR_MALFORMED_REQUEST"),
    ("wrong field type", A1, b'{"inputs": "hello"}', 400, "ERR_MALFORMED_REQUEST"),
    ("temperature not a number", A2, b'{"inputs":[{"messages":[]}],"temperature":"hot"}', 400,
     "ERR_MALFORMED_REQUEST"),
    ("two message types", A2,
     b'{"inputs":[{"messages":[{"ofUser":{"content":[{"text":"a"}]},"ofSystem":{"content":[{"text":"b"}]}}]}]}',
     400, "ERR_MALFORMED_REQUEST"),
    ("any with unknown type", A1,
     b'{"inputs":[{"content":"x"}],"parameters":{"p":{"@type":"type.googleapis.com/no.Such","value":"1"}}}', 400,
     "ERR_MALFORMED_REQUEST"),
    ("empty body", A1, b"", 400, "ERR_CONVERSATION_MISSING_INPUTS"),
    ("empty inputs", A2, b'{"inputs": []}', 400, "ERR_CONVERSATION_MISSING_INPUTS"),
    ("unknown component", "/v1.0-alpha2/conversation/nope/converse", b'{"inputs":[{"messages":[]}]}', 400,
     "ERR_CONVERSATION_NOT_FOUND"),
    ("required tool choice without tools", A2,
     b'{"inputs":[{"messages":[{"ofUser":{"content":[{"text":"a"}]}}]}],"toolChoice":"required"}', 400,
     "ERR_CONVERSATION_INVALID_PARMS"),
    ("tool choice names no tool", A2,
     b'{"inputs":[{"messages":[]}],"toolChoice":"missing_tool","tools":[{"function":{"name":"other_tool"}}]}',
     400, "ERR_CONVERSATION_INVALID_PARMS"),
    ("bad cacheTTL override", A1, b'{"inputs":[{"content":"a"}],"metadata":{"cacheTTL":"soon"}}', 400,
     "ERR_CONVERSATION_INVALID_PARMS"),
]


@pytest.mark.parametrize(("path", "raw", "status", "code"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
async def test_bad_input_gets_its_error_and_the_next_request_works(
    sidecar: Running, path: str, raw: bytes, status: int, code: str
) -> None:
    got_status, body = await sidecar.post(path, raw=raw)
    assert got_status == status
    assert body["errorCode"] == code
    assert "Traceback" not in body["message"]
    assert await sidecar.post(A1, GOOD) == (200, {"outputs": [{"result": "still fine"}]})


async def test_malformed_json_to_unknown_component_is_malformed_first(sidecar: Running) -> None:
    """daprd parses the body before looking the component up."""
    status, body = await sidecar.post("/v1.0-alpha1/conversation/nope/converse", raw=b"{")
    assert (status, body["errorCode"]) == (400, "ERR_MALFORMED_REQUEST")


async def test_unknown_fields_and_proto_names_are_accepted(sidecar: Running) -> None:
    raw = b'{"inputs":[{"messages":[{"of_user":{"content":[{"text":"hey"}]}}],"scrubPII":true}],"surprise":1}'
    status, body = await sidecar.post(A2, raw=raw)
    assert status == 200
    assert body["outputs"][0]["choices"][0]["message"]["content"] == "hey"


async def test_content_type_is_ignored(sidecar: Running) -> None:
    status, body = await sidecar.post(A1, raw=b'{"inputs":[{"content":"plain"}]}',
                                      headers={"Content-Type": "text/plain"})
    assert (status, body) == (200, {"outputs": [{"result": "plain"}]})


async def test_huge_body_gets_413_json(start_sidecar: StartSidecar) -> None:
    running = await start_sidecar()
    running.sidecar.settings.limits.max_body_size  # default 4 MiB
    big = b'{"inputs":[{"content":"' + b"a" * (4 * 1024 * 1024 + 10) + b'"}]}'
    status, body = await running.post(A1, raw=big)
    assert status == 413
    assert body["errorCode"] == "ERR_BODY_READ"
    assert await running.post(A1, GOOD) == (200, {"outputs": [{"result": "still fine"}]})


async def test_two_mib_body_passes(sidecar: Running) -> None:
    text = "w " * (1024 * 1024)
    status, body = await sidecar.post(A1, {"inputs": [{"content": text}]})
    assert status == 200
    assert body["outputs"][0]["result"] == text


@pytest.mark.parametrize(("method", "path"), [
    ("GET", A1), ("PUT", A2), ("DELETE", A1), ("POST", "/v1.0/conversation/echo/converse"),
    ("GET", "/nothing/here"),
])
async def test_wrong_method_or_path_gets_daprd_fallback(sidecar: Running, method: str, path: str) -> None:
    async with sidecar.session.request(method, sidecar.http + path) as resp:
        assert resp.status == 404
        assert await resp.json() == {
            "errorCode": "ERR_DIRECT_INVOKE",
            "message": "failed getting app id either from the URL path or the header dapr-app-id",
        }
