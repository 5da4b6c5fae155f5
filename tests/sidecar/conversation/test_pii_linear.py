"""Scrubbing time grows linearly with the text, for every entity type, on hostile input.

A request with ``scrubPII`` is scrubbed on the sidecar's event loop: a scrubber that is quadratic
on some text lets one request stall every other one, health checks included (100 KB of ``"1:"``
once blocked the sidecar for 14 s). Each case below is text built to make one detector (or the
protected-span and ignored-span logic) work hard: long runs of digits, dots, colons, ``@``, hex,
spaces, and near-matches repeated.

No timing assertion: the time for 8n characters is compared with the time for n characters in
the same run. Linear gives about 8, quadratic 64; the bound, 30, leaves room for a loaded
machine, and each size is timed several times, keeping the best.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest

from parley_sidecar.conversation.pii import Entity, Scrubber

SCRUBBER = Scrubber()
N = 5_000
GROWTH = 8
BOUND = 30.0  # linear: ~8; quadratic: 64


def repeat(unit: str) -> Callable[[int], str]:
    return lambda n: (unit * (n // len(unit) + 1))[:n]


def long_run(head: str, body: str, tail: str) -> Callable[[int], str]:
    return lambda n: head + body * max(1, (n - len(head) - len(tail)) // len(body)) + tail


CASES: dict[str, Callable[[int], str]] = {
    # IP: IPv6 (every prefix of a long run of "1:" was parsed: quadratic), IPv4
    "ipv6-digit-colon": repeat("1:"),
    "ipv6-colons": repeat(":"),
    "ipv6-double-colons": repeat("1::"),
    "ipv6-hex-colon": repeat("f:"),
    "ipv6-after-a-word": long_run("g", "1:", ""),  # no candidate can start: every hint walked back
    "ipv6-zones": repeat("1::1%a"),
    "ipv6-mapped": repeat("::ffff:1.1.1.1"),
    "ipv6-sentence-ends": repeat("::1."),
    "ipv4-dots": repeat("1.1.1.1."),
    "ipv4-long-dotted": repeat("255."),
    # EMAIL
    "email-at-signs": repeat("@"),
    "email-local-part-without-domain": long_run("", "a", "@"),
    "email-near-matches": repeat("a@b."),
    "email-domain-without-dot": long_run("a@", "b-", ""),
    "email-non-ascii": repeat("zë@"),
    # PHONE
    "phone-digit-space": repeat("1 "),
    "phone-plus": repeat("+1 "),
    "phone-parenthesis": repeat("(1"),
    "phone-hyphens": repeat("1-"),
    "phone-extensions": repeat("5551234 ext "),
    "phone-slash": repeat("030/"),
    "phone-next-to-16-digit-numbers": repeat("1234567812345678 a 555 1234 b "),
    # CREDIT_CARD
    "card-groups": repeat("4111 1111 "),
    "card-dotted-groups": repeat("4111.1111."),
    "card-digits": repeat("1"),
    "card-valid-numbers": repeat("4111111111111111 "),
    # SSN, ZIP_CODE
    "ssn-near-matches": repeat("123-45-"),
    "ssn-glued": repeat("123-45-6789-"),
    "zip-plus-four-near-matches": repeat("12345-"),
    "zip-spaced": repeat("12345 6789 "),
    # STREET_ADDRESS, PO_BOX
    "street-keywords": repeat("1 st "),
    "street-stop-words": repeat("1 in a b st "),
    "street-long-words": repeat("1 " + "a" * 300 + " "),
    "street-spaces": long_run("1 a", " ", "st"),
    "po-box": repeat("P.O. Box 1 "),
    "po-box-near-matches": repeat("ox "),
    # ISBN, MAC_ADDRESS, IBAN
    "isbn-hyphens": repeat("978-"),
    "isbn-digits": repeat("9780306406157"),
    "mac-colons": repeat("00:"),
    "mac-hyphens": repeat("00-"),
    "mac-too-long": repeat("00:11:22:33:44:55:"),
    "iban-near-matches": repeat("DE89 "),
    "iban-letters-and-digits": repeat("AA11AAAA1111111"),
    # protected spans (dates, versions, prices, UUIDs) and ignored spans (links, git URLs)
    "versions": repeat("1.2.3 "),
    "version-tails": repeat("v1.1-a-"),
    "dates-and-times": repeat("15.01.2024 10:30 "),
    "prices": repeat("$1,111,111"),
    "uuid-near-matches": repeat("-aaaa-aaaa-"),
    "links": repeat("http://a."),
    "unclosed-link-parentheses": repeat("https://a.b/("),
    "git-urls": repeat("git@a:"),
}


def _best(text: str, runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        SCRUBBER.scrub(text)
        best = min(best, time.perf_counter() - started)
    return best


def growth(make: Callable[[int], str]) -> float:
    """time(8n) / time(n), the lowest of up to four measurements, each of the best of several
    runs of n. A linear scrubber usually passes on the first; a slow one fails in seconds."""
    small, large = make(N), make(N * GROWTH)
    SCRUBBER.scrub(small)  # warm up
    ratio = float("inf")
    for _ in range(4):
        base = max(_best(small, 5), 1e-6)
        ratio = min(ratio, _best(large, 1) / base)
        if ratio < BOUND:
            break
    return ratio


@pytest.mark.parametrize("make", CASES.values(), ids=CASES.keys())
def test_scrubbing_time_grows_linearly(make: Callable[[int], str]) -> None:
    ratio = growth(make)
    assert ratio < BOUND, f"scrubbing 8x the text took {ratio:.0f}x the time: super-linear"


def test_a_long_run_of_digits_and_colons_still_gets_its_address_scrubbed() -> None:
    # The fix cut the search for an address, not the answer: the run starts with an address.
    text = "1:" * 20_000
    scrubbed, counts = SCRUBBER.scrub(text)
    assert scrubbed.startswith("<IP>:1:")
    assert counts == Counter({Entity.IP: 1})
