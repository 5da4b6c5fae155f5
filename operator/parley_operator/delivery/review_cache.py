"""Remembered TokenReview verdicts, so a sidecar that reconnects does not cost the API server a review.

Only verdicts the API server gave for genuine tokens are kept (a forged token is never cached: each
one still costs a review, which ``auth.Authenticator`` bounds instead). Entries are keyed by the
SHA-256 of the token, so the cache never holds a credential, and live until the earlier of a short
TTL and the token's own ``exp``: a cached token can never outlive its validity. The ``exp`` claim is
read without checking the signature; it only ever shortens an entry granted after a real review.
The size is bounded (least recently used dropped first). No I/O here.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import json
import time
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["ReviewCache", "token_expiry"]

V = TypeVar("V")


def token_expiry(token: str) -> float | None:
    """The ``exp`` claim (Unix seconds) of a JWT, None when the token is not a readable JWT."""
    parts = token.split(".")
    if len(parts) != 3 or len(parts[1]) > 8192:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


def _key(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class ReviewCache(Generic[V]):
    def __init__(self, *, ttl: float, max_entries: int, clock: Callable[[], float] = time.time) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._entries: collections.OrderedDict[bytes, tuple[float, V]] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str) -> V | None:
        key = _key(token)
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if self._clock() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, token: str, value: V) -> None:
        if self._max <= 0 or self._ttl <= 0:
            return
        now = self._clock()
        expires = now + self._ttl
        exp = token_expiry(token)
        if exp is not None:
            expires = min(expires, exp)
        if expires <= now:
            return
        key = _key(token)
        self._entries[key] = (expires, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
