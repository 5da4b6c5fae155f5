"""ReviewCache: a genuine token's verdict is reused briefly, never past the token's exp, never holding the token."""

from __future__ import annotations

import base64
import json

from parley_operator.delivery.review_cache import ReviewCache, token_expiry


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def jwt(**claims: object) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'RS256'})}.{part(dict(claims))}.c2lnbmF0dXJl"


def test_a_verdict_is_reused_until_the_ttl_runs_out() -> None:
    clock = Clock()
    cache: ReviewCache[str] = ReviewCache(ttl=60, max_entries=10, clock=clock)
    token = jwt(exp=clock.now + 3600)
    cache.put(token, "shop/web-1")
    clock.now += 59
    assert cache.get(token) == "shop/web-1"
    clock.now += 1
    assert cache.get(token) is None and len(cache) == 0


def test_a_verdict_never_outlives_the_tokens_expiry() -> None:
    clock = Clock()
    cache: ReviewCache[str] = ReviewCache(ttl=60, max_entries=10, clock=clock)
    token = jwt(exp=clock.now + 5)
    cache.put(token, "shop/web-1")
    clock.now += 5
    assert cache.get(token) is None
    expired = jwt(exp=clock.now - 1)
    cache.put(expired, "shop/web-1")
    assert cache.get(expired) is None and len(cache) == 0


def test_the_cache_is_bounded_dropping_the_least_recently_used() -> None:
    cache: ReviewCache[int] = ReviewCache(ttl=60, max_entries=2, clock=Clock())
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "b" is now the least recently used
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    assert len(cache) == 2


def test_the_cache_holds_a_hash_of_the_token_never_the_token() -> None:
    cache: ReviewCache[str] = ReviewCache(ttl=60, max_entries=10, clock=Clock())
    token = jwt(exp=2_000_000, sub="system:serviceaccount:shop:default")
    cache.put(token, "shop/web-1")
    held = repr(vars(cache))
    assert token not in held and token.split(".")[2] not in held


def test_zero_ttl_or_size_disables_it() -> None:
    for cache in (ReviewCache[str](ttl=0, max_entries=10), ReviewCache[str](ttl=60, max_entries=0)):
        cache.put("t", "v")
        assert cache.get("t") is None


def test_expiry_is_read_from_a_jwt_and_nothing_else() -> None:
    assert token_expiry(jwt(exp=1234)) == 1234.0
    for token in ("opaque-token", "a.b.c", jwt(exp="soon"), jwt(exp=True), jwt(sub="x"), "a." + "A" * 9000 + ".c"):
        assert token_expiry(token) is None
