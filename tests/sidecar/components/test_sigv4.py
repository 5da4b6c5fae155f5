"""The SigV4 signer against AWS's documented test vectors (aws-sig-v4-test-suite and the IAM
``ListUsers`` example of the SigV4 documentation), credentials ``AKIDEXAMPLE``."""

from __future__ import annotations

import datetime
import hashlib

import pytest

from parley_sidecar.components import sigv4

EXAMPLE = sigv4.Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
WHEN = datetime.datetime(2015, 8, 30, 12, 36, 0, tzinfo=datetime.UTC)


@pytest.mark.parametrize(("method", "path", "query", "signature"), [
    ("GET", "/", None, "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),  # get-vanilla
    ("GET", "/", [("Param2", "value2"), ("Param1", "value1")],  # get-vanilla-query-order-key-case
     "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
    ("POST", "/", None, "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),  # post-vanilla
    ("GET", "/\u1234", None, "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"),  # get-utf8
], ids=["get-vanilla", "get-vanilla-query-order-key-case", "post-vanilla", "get-utf8"])
def test_aws_test_suite(method: str, path: str, query: list[tuple[str, str]] | None, signature: str) -> None:
    signed = sigv4.sign(method=method, host="example.amazonaws.com", path=path, query=query, credentials=EXAMPLE,
                        region="us-east-1", service="service", now=WHEN)
    assert signed.signature == signature
    assert signed.headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={signature}")
    assert signed.headers["x-amz-date"] == "20150830T123600Z"


def test_documented_iam_list_users_example() -> None:
    assert sigv4.signing_key(EXAMPLE.secret_key, "20150830", "us-east-1", "iam").hex() == (
        "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9")
    signed = sigv4.sign(method="GET", host="iam.amazonaws.com", path="/",
                        query={"Action": "ListUsers", "Version": "2010-05-08"},
                        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
                        credentials=EXAMPLE, region="us-east-1", service="iam", now=WHEN)
    assert hashlib.sha256(signed.canonical_request.encode()).hexdigest() == (
        "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59")
    assert signed.signature == "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
    assert "SignedHeaders=content-type;host;x-amz-date," in signed.headers["authorization"]


def test_bedrock_paths_are_encoded_twice_and_tokens_signed() -> None:
    creds = sigv4.Credentials("AK", "SK", session_token="TOKEN")
    signed = sigv4.sign(method="POST", host="bedrock-runtime.us-east-1.amazonaws.com",
                        path="/model/a.b-v1%3A0/converse", credentials=creds, region="us-east-1",
                        service="bedrock", now=WHEN)
    lines = signed.canonical_request.split("\n")
    assert lines[1] == "/model/a.b-v1%253A0/converse"
    assert "x-amz-security-token:TOKEN" in lines
    assert signed.headers["x-amz-security-token"] == "TOKEN"
    assert "host;x-amz-date;x-amz-security-token" in signed.headers["authorization"]


def test_header_values_are_trimmed_and_spaces_folded() -> None:
    signed = sigv4.sign(method="GET", host="h", path="/", headers={"My-Header": "  a   b  c "},
                        credentials=EXAMPLE, region="r", service="s", now=WHEN)
    assert "my-header:a b c" in signed.canonical_request.split("\n")
