"""The one boundary where upstream answers become errors: messages, Retry-After, redaction."""

from __future__ import annotations

import email.utils
import json

import pytest

from parley_sidecar.components import http_kit


@pytest.mark.parametrize(("headers", "seconds"), [
    ({"Retry-After": "7"}, 7.0),
    ({"Retry-After": " 0 "}, 0.0),
    ({"Retry-After": "-3"}, 0.0),
    ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),
    ({"Retry-After": email.utils.formatdate(1_000_030.0, usegmt=True)}, 30.0),
    ({"Retry-After": email.utils.formatdate(999_000.0, usegmt=True)}, 0.0),
    ({"Retry-After": "soon"}, None),
    ({}, None),
])
def test_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    assert http_kit.parse_retry_after(headers, now=1_000_000.0) == seconds


@pytest.mark.parametrize(("body", "message"), [
    ({"error": {"message": "Rate limit reached for gpt-4o", "type": "requests"}}, "Rate limit reached for gpt-4o"),
    ({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, "Overloaded"),
    ({"message": "Too many requests"}, "Too many requests"),
    ({"Message": "User is not authorized"}, "User is not authorized"),
    ({"error": "Model is loading"}, "Model is loading"),
    ([{"error": {"code": 400, "message": "API key not valid", "status": "INVALID_ARGUMENT"}}], "API key not valid"),
    ({"detail": [{"loc": ["body"], "msg": "field required"}]}, '[{"loc": ["body"], "msg": "field required"}]'),
])
def test_upstream_message_shapes(body: object, message: str) -> None:
    assert http_kit.upstream_message(json.dumps(body).encode()) == message


def test_upstream_message_of_a_non_json_body() -> None:
    assert http_kit.upstream_message(b"<html>\n<h1>502 Bad Gateway</h1>") == "<html>"
    assert http_kit.upstream_message(b"") == ""


def test_errors_redact_secrets_and_truncate() -> None:
    body = json.dumps({"error": {"message": "key sk-abcdef123 is over quota " + "x" * 1000}}).encode()
    error = http_kit.error_for_status("openai", 429, body, {"Retry-After": "2"}, secrets=("sk-abcdef123",))
    assert error.reason.startswith("openai returned 429 Too Many Requests: key *** is over quota")
    assert len(error.reason) < 400
    assert (error.retryable, error.retry_after, error.status) == (True, 2.0, 429)


@pytest.mark.parametrize(("status", "retryable"), [(400, False), (404, False), (408, True), (409, False),
                                                   (429, True), (500, True), (501, False), (502, True),
                                                   (503, True), (529, True)])
def test_which_statuses_are_retryable(status: int, retryable: bool) -> None:
    assert http_kit.error_for_status("p", status, b"", {}).retryable is retryable


def test_rejected_keys_drop_the_upstream_text() -> None:
    body = json.dumps({"error": {"message": "Incorrect API key provided: sk-proj-****abcd"}}).encode()
    assert http_kit.error_for_status("openai", 401, body, {}).reason == "the provider rejected the API key (401)"
    error = http_kit.error_for_status("aws bedrock", 403, b'{"message": "The security token is invalid."}', {},
                                      auth_detail=True, credential="AWS credentials")
    assert error.reason == "the provider rejected the AWS credentials (403): The security token is invalid."
