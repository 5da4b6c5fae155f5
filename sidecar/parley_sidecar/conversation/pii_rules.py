"""The scrubber's detectors: daprd's patterns in their fast form, parley's own, and the checks
that drop a candidate (part of a longer number, a hex digest, an address cut short).

Every search here is linear in the text: patterns have a bounded length or are anchored at a
character that cannot repeat inside a match, and each loop moves forward. Hostile inputs for
each are in ``tests/sidecar/conversation/test_pii_linear.py``.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Iterable

from parley_sidecar.conversation import pii_patterns as _pat
from parley_sidecar.conversation.pii_protected import rx
from parley_sidecar.conversation.pii_spans import DIGITS, DIGITS_OR_UNDERSCORE, WORD, ndigits

__all__ = [
    "CARD",
    "CARD_DAPRD_SHAPES",
    "CARD_DOTTED",
    "CARD_DOTTED_HINT",
    "IBAN_GROUPED",
    "IPV4_BOUNDED",
    "IPV6_CANDIDATE",
    "IPV6_HINT",
    "IPV6_MAX_CHARS",
    "MAC_HINT",
    "PHONE_INTL",
    "PHONE_NATIONAL",
    "PHONE_SLASH",
    "RX_LONG_NUMERIC_RUN",
    "RX_PHONE",
    "RX_PHONES_WITH_EXTS",
    "STREET",
    "STREET_STOP",
    "STREET_WORD",
    "F",
    "Overlaps",
    "Windows",
    "alone",
    "find_ipv6",
    "glued",
    "isbn_context",
    "mac_span",
    "phone_spans",
]

# --- detectors ------------------------------------------------------------------------------------
# daprd's, in their fast equivalent form (see pii_patterns), and parley's own additions.
F = {k: _pat.compile_go(v) for k, v in _pat.FAST_PATTERNS.items()}
RX_PHONE = _pat.compile_go(_pat.GO_PHONE)
RX_PHONES_WITH_EXTS = _pat.compile_go(_pat.GO_PHONES_WITH_EXTS)
RX_LONG_NUMERIC_RUN = re.compile(_pat.LONG_NUMERIC_RUN, re.ASCII)

PHONE_INTL = rx(r"\+(?<![\d_+]\+)\d{1,3}(?:[ .-]?\(0\))?(?:[ .-]?(?:\(\d{1,5}\)|\d{1,8}+)){1,7}(?![\d_])(?![.-]\d)")
PHONE_NATIONAL = rx(
    r"[(\d](?<![\d_+.,/:-][(\d])(?:(?<=\()\d{2,5}\)|(?<=\d)\d{0,4})(?:[ .-]?\d{2,8}+){1,5}(?![\d_])(?![.,:/-]\d)"
)
# German style, with a slash after the area code: 030/901820
PHONE_SLASH = rx(r"0(?<![\d_+.,/:-]0)\d{1,4}/\d{3,8}+(?:[ -]\d{2,5}+)?(?![\d_])(?![.,:/-]\d)")
CARD = rx(r"\d(?<![\d_+.-]\d)(?:\d{12,18}|\d{2,6}(?:[ -]\d{3,6}){1,5}+)(?![\d_])(?![.-]\d)")
# daprd's card shapes, but looked for at every group start (daprd's search can swallow a card's
# first group into a rejected match before it: "12345 4111 1111 1111 1111").
CARD_DAPRD_SHAPES = rx(r"\d(?<![\d_+.-]\d)(?:\d{3}[- ]?(?:\d{4}[- ]?){2}\d{4}|\d{14,15})(?![\d_])(?![.-]\d)")
# A card number written in dotted groups, 4111.1111.1111.1111 (no other pattern takes dots: they
# split the numeric windows). The Luhn check decides; a version or a date never has 13 digits.
CARD_DOTTED = rx(r"\d(?<![\d_+.-]\d)\d{1,5}(?:\.\d{3,6}){2,5}+(?![\d_])(?![.-]\d)")
CARD_DOTTED_HINT = rx(r"\d{3}\.\d{3}")
IBAN_GROUPED = rx(r"[A-Z](?<!\w[A-Z])[A-Z]\d\d(?: ?[A-Z0-9]{4}){2,7}+(?: ?[A-Z0-9]{1,3})?(?!\w)")
IPV4_BOUNDED = rx(r"(?<![\w.])" + _pat.GO_IPV4 + r"(?!\w|\.\d)")
IPV6_HINT = rx(r":[0-9A-Fa-f]{0,4}:")
IPV6_CANDIDATE = rx(
    r"[0-9A-Fa-f:](?<![\w:.%][0-9A-Fa-f:])(?:(?<=:):|[0-9A-Fa-f]{0,3}:)[0-9A-Fa-f:.]*"
    r"(%[0-9A-Za-z_~-]+(?:\.[0-9A-Za-z_~-]+)*)?"
)
MAC_HINT = rx(r"[:-][0-9A-Fa-f]{2}[:-]")
_HEX_COLON_DOT = frozenset("0123456789abcdefABCDEF:.")
_MAC_GROUP = rx(r"[:-][0-9A-Fa-f]{2}(?![0-9A-Fa-f])")
# daprd's street keywords (street|st|avenue|ave|road|rd|highway|hwy|square|sq|trail|trl|drive|dr|
# court|ct|park|parkway|pkwy|circle|cir|boulevard|blvd) as a tree, which the regex engine tries faster.
_STREET_KEYWORDS = (
    r"st(?:reet)?|sq(?:uare)?|ave(?:nue)?|r(?:oa)?d|h(?:ighwa|w)y|tr(?:ai)?l|dr(?:ive)?|c(?:our)?t"
    r"|park(?:way)?|pkwy|cir(?:cle)?|b(?:oulevard|lvd)"
)
STREET = rx(
    r"[1-9](?<![\w.,:/$-]\d)(?<!\d{4}[ -]\d)\d{0,4}[a-z]?(?P<words>(?:[ \t]+[a-z0-9][\w'.-]*){1,4}?)[ \t]+(?:"
    + _STREET_KEYWORDS
    + r")\b\.?",
    re.IGNORECASE,
)
STREET_WORD = rx(r"[a-z][\w'.-]*|\d+(?:st|nd|rd|th)", re.IGNORECASE)  # Main, O'Farrell, 5th
STREET_STOP = frozenset(
    ("in", "the", "at", "of", "and", "or", "to", "a", "an", "on", "for", "with", "from", "by", "my", "our",
     "your", "his", "her", "their", "is", "are", "was", "were", "be", "been", "it", "this", "that", "these",
     "those", "i", "we", "you", "he", "she", "they", "me", "us", "them", "than", "then", "per", "each",
     "every", "about")
)  # fmt: skip


class Overlaps:
    """Spans to test others against: does ``(start, end)`` overlap any of them? O(log n) a query
    (a scan of every span per candidate was quadratic in texts full of both)."""

    __slots__ = ("_ends", "_starts")

    def __init__(self, spans: Iterable[tuple[int, int]]) -> None:
        ordered = sorted(spans)
        self._starts = [s for s, _ in ordered]
        # _ends[i]: the furthest end among the first i + 1 spans by start
        self._ends: list[int] = []
        furthest = -1
        for _, e in ordered:
            furthest = max(furthest, e)
            self._ends.append(furthest)

    def __call__(self, start: int, end: int) -> bool:
        k = bisect.bisect_left(self._starts, end)  # the spans that start before ``end``
        return k > 0 and self._ends[k - 1] > start


def glued(src: str, start: int, end: int) -> bool:
    """True if the span is a piece of a longer number or code: a digit or ``_`` touches it, a
    ``.`` or ``-`` followed by a digit continues it, or letters touch it on both sides."""
    before = src[start - 1] if start > 0 else " "
    after = src[end] if end < len(src) else " "
    if before in DIGITS_OR_UNDERSCORE or after in DIGITS_OR_UNDERSCORE:
        return True
    if before in WORD and after in WORD:
        return True
    if before in ".-" and start > 1 and src[start - 2] in DIGITS:
        return True
    return after in ".-" and end + 1 < len(src) and src[end + 1] in DIGITS


def phone_spans(
    pattern: re.Pattern[str], text: str, start: int, end: int, too_long: Overlaps
) -> Iterable[tuple[int, int]]:
    """Parley's phone matches: 7 to 15 digits (E.164's limit), not part of a longer number.

    Numbers written one after the other ("555 1234 4111111111111111") make one match of more
    than 15 digits: it is cut at its last space that leaves at most 15, and the search goes on
    inside it. A refused match does not hide the matches inside it either.
    """
    pos = start
    while (m := pattern.search(text, pos, end)) is not None:
        s, e = m.span()
        body = m.group(0)
        cut = ndigits(body) > 15
        if cut:
            at = body.rfind(" ")
            while at > 0 and ndigits(body[:at]) > 15:
                at = body.rfind(" ", 0, at)
            e = s + max(at, 0)
        ok = (
            e > s
            and ndigits(text[s:e]) >= 7
            and not glued(text, s, e)
            and not too_long(s, e)
        )
        if ok:
            yield s, e
        pos = e if ok and not cut else s + 1


def alone(src: str, start: int, end: int) -> bool:
    """Not one group of a longer run of digit groups (no digit one space or hyphen away)."""
    if start > 1 and src[start - 1] in " -" and src[start - 2] in DIGITS:
        return False
    return not (end + 1 < len(src) and src[end] in " -" and src[end + 1] in DIGITS)


def mac_span(text: str, m: re.Match[str]) -> tuple[int, int] | None:
    """A MAC address (6 groups) or an EUI-64 (8 groups), not part of a longer hex sequence."""
    s, e = m.span()
    if s > 0 and (text[s - 1] in WORD or text[s - 1] in ":-"):
        return None
    sep = text[s + 2]
    groups = 6
    while groups < 8 and (tail := _MAC_GROUP.match(text, e)) is not None and text[e] == sep:
        e = tail.end()
        groups += 1
    if groups == 7 or (e < len(text) and (text[e] in WORD or _MAC_GROUP.match(text, e) is not None)):
        return None
    return s, e


def _ipv6_address(candidate: str) -> bool:
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True


# The longest IPv6 address in text: six groups of four and a dotted quad,
# ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255. Nothing longer is ever valid.
IPV6_MAX_CHARS = 45


def _ipv6_prefix(candidate: str) -> str:
    """The longest valid IPv6 address that ``candidate`` starts with and that ends before a ``.``
    or ``:`` of it (``::1.`` at the end of a sentence, ``2001:db8::1:`` before a port), or ''.

    Only the first ``IPV6_MAX_CHARS`` + 1 characters can hold it: looking at every prefix of a
    long run of ``1:`` parsed a prefix per colon, each as long as the run (quadratic; 40 KB took
    seconds)."""
    candidate = candidate[: IPV6_MAX_CHARS + 1]
    if _ipv6_address(candidate):
        return candidate
    for i in range(len(candidate) - 1, 1, -1):
        if candidate[i] in ".:" and _ipv6_address(candidate[:i]):
            return candidate[:i]
    return ""


_HEX_COLON_DOT_RUN = rx(r"[0-9A-Fa-f:.]*")


def find_ipv6(text: str) -> list[tuple[int, int]]:
    """IPv6 addresses: whole, with a zone if one follows, not glued to a word character.

    An address contains ``:h:`` (0-4 hex digits between two colons): the search starts from those
    hints, at the beginning of the run of hex digits, colons and dots around them. Inside such a
    run every character follows one of them, so only the run's first character can start a
    candidate (``IPV6_CANDIDATE``'s look-behind): one attempt per run, and a run without a
    candidate is skipped whole. Each character is walked over a bounded number of times.
    """
    found: list[tuple[int, int]] = []
    pos = 0  # everything before it is decided
    for hint in IPV6_HINT.finditer(text):
        if hint.start() < pos:
            continue
        start = hint.start()
        while start > pos and text[start - 1] in _HEX_COLON_DOT:
            start -= 1
        m = IPV6_CANDIDATE.match(text, start)
        if m is None:
            run = _HEX_COLON_DOT_RUN.match(text, hint.end())
            pos = run.end() if run is not None else hint.end()
            continue
        pos = m.end()
        whole = m.group(0)
        zone = m.group(1) or ""
        addr = _ipv6_prefix(whole[: len(whole) - len(zone)])
        if not addr or ndigits(addr) == 0:
            continue
        if len(addr) + len(zone) != len(whole):
            zone = ""  # the address was cut short: what followed it was not its zone
        end = start + len(addr) + len(zone)
        if end < len(text) and text[end] in WORD:
            continue
        found.append((start, end))
    return found


def isbn_context(text: str, start: int) -> bool:
    return "ISBN" in text[max(0, start - 12) : start].upper()


class Windows:
    """The windows of a (masked) text where digit-based patterns can match, by digit count."""

    __slots__ = ("most", "runs")

    def __init__(self, text: str) -> None:
        # (window start, window end, digits, end of the run itself), for runs of 4+ digits: no
        # pattern searched here matches fewer. Two characters on either side are too few to hold
        # a match from a neighbouring run.
        n = len(text)
        self.runs: list[tuple[int, int, int, int]] = [
            (max(0, m.start() - 2), min(n, m.end() + 2), ndigits(m.group()), m.end())
            for m in RX_LONG_NUMERIC_RUN.finditer(text)
        ]
        self.most = max((r[2] for r in self.runs), default=0)

    def finditer(self, pattern: re.Pattern[str], text: str, min_digits: int) -> Iterable[re.Match[str]]:
        for start, end, digits, _ in self.runs:
            if digits >= min_digits:
                yield from pattern.finditer(text, start, end)

