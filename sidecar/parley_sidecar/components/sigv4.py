"""AWS Signature Version 4 for one HTTP request, with hashlib and hmac only.

Why not botocore: it adds ~18 MB of RSS and ~260 ms of import to a sidecar that only ever signs
one kind of request (``docs/decisions.md`` has the figures). The algorithm is AWS's published
one (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html);
``tests/sidecar/components/test_sigv4.py`` checks it against AWS's documented test vectors.

Canonical URI: every service but S3 encodes the (already percent-encoded) request path once more,
so a Bedrock model id ``a:b`` travels as ``a%3Ab`` and is signed as ``a%253Ab``. No I/O here.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import quote

from parley_sidecar import records
from parley_sidecar.records import set_field as _set

__all__ = ["EMPTY_SHA256", "Credentials", "Signed", "canonical_query", "sign", "signing_key"]

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@records.frozen
class Credentials(records.Record):
    access_key: str
    secret_key: str = dataclasses.field(repr=False)
    session_token: str | None = dataclasses.field(default=None, repr=False)
    expires_at: float | None = None
    """Unix time after which these must be refreshed (None: static)."""

    def __init__(self, access_key: str, secret_key: str, session_token: str | None = None,
                 expires_at: float | None = None) -> None:
        _set(self, "access_key", access_key)
        _set(self, "secret_key", secret_key)
        _set(self, "session_token", session_token)
        _set(self, "expires_at", expires_at)


@records.frozen
class Signed(records.Record):
    headers: dict[str, str]
    """Headers to add to the request: ``x-amz-date``, ``authorization`` (and the token)."""
    canonical_request: str
    string_to_sign: str
    signature: str

    def __init__(self, headers: dict[str, str], canonical_request: str, string_to_sign: str, signature: str) -> None:
        _set(self, "headers", headers)
        _set(self, "canonical_request", canonical_request)
        _set(self, "string_to_sign", string_to_sign)
        _set(self, "signature", signature)


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    """``kSigning`` = HMAC chain over date, region, service and ``aws4_request``."""
    k_date = _hmac(("AWS4" + secret_key).encode(), date)
    k_region = _hmac(k_date, region)
    k_service = _hmac(k_region, service)
    return _hmac(k_service, "aws4_request")


def _encode(text: str) -> str:
    # RFC 3986 unreserved characters stay; everything else is %XX (upper-case hex).
    return quote(text, safe="-_.~")


def canonical_query(query: Mapping[str, str] | list[tuple[str, str]]) -> str:
    """Names and values encoded, then sorted by name (and value), joined with ``&``."""
    pairs = list(query.items()) if isinstance(query, Mapping) else list(query)
    return "&".join(f"{k}={v}" for k, v in sorted((_encode(k), _encode(v)) for k, v in pairs))


def canonical_uri(path: str, service: str) -> str:
    if not path:
        return "/"
    if service == "s3":
        return path
    return quote(path, safe="/-_.~")


def sign(
    *,
    method: str,
    host: str,
    path: str,
    query: Mapping[str, str] | list[tuple[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
    payload_hash: str = EMPTY_SHA256,
    credentials: Credentials,
    region: str,
    service: str,
    now: datetime.datetime | None = None,
) -> Signed:
    """Sign one request. ``path`` is the path as sent on the wire (already percent-encoded);
    ``headers`` are extra headers to sign (``host`` and ``x-amz-date`` are always signed)."""
    when = (now or datetime.datetime.now(datetime.UTC)).astimezone(datetime.UTC)
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    signed_headers: dict[str, str] = {"host": host, "x-amz-date": amz_date}
    if credentials.session_token:
        signed_headers["x-amz-security-token"] = credentials.session_token
    for name, value in (headers or {}).items():
        signed_headers[name.lower()] = value
    names = sorted(signed_headers)
    canonical_headers = "".join(f"{n}:{' '.join(signed_headers[n].strip().split())}\n" for n in names)
    header_list = ";".join(names)
    canonical_request = "\n".join((
        method.upper(),
        canonical_uri(path, service),
        canonical_query(query or []),
        canonical_headers,
        header_list,
        payload_hash,
    ))
    scope = f"{date}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join((ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()))
    signature = hmac.new(
        signing_key(credentials.secret_key, date, region, service), string_to_sign.encode(), hashlib.sha256
    ).hexdigest()
    out = {
        "x-amz-date": amz_date,
        "authorization": (f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
                          f"SignedHeaders={header_list}, Signature={signature}"),
    }
    if credentials.session_token:
        out["x-amz-security-token"] = credentials.session_token
    return Signed(headers=out, canonical_request=canonical_request, string_to_sign=string_to_sign,
                  signature=signature)
