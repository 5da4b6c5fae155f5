"""PII scrubbing for ``scrubPII``: daprd's entities, tokens and interval algorithm, fewer mistakes.

daprd scrubs with the Go library ``github.com/aavaz-ai/pii-scrubber``, pinned by dapr 1.18 at
``aavaz-ai/pii-scrubber`` @ ``3fa450ab697374f26c7af78ffc6ebc79f2374d04`` (files ``scrubber.go``,
``entity_scrubber.go``, ``regex.go``). Its regular expressions come from ``mingrammer/commonregex`` @
``16880c65af7225cc9182d5ba383bf5c4ed71af76``. This module is an independent Python implementation:
the regular expressions are copied as data (see :mod:`.pii_patterns`), the code is not.

Two ways to scrub:

* :class:`Scrubber` — what parley uses. It runs daprd's detectors and daprd's interval algorithm
  and prints daprd's tokens, so daprd's own test strings come out byte for byte the same; but it
  drops daprd's false hits (dates, times, versions, prices, UUIDs, 4-digit numbers, numbers that
  fail their checksum, fragments of longer numbers), adds what daprd misses (whole IPv6 addresses,
  international and grouped phone numbers, grouped IBANs and card numbers, non-ASCII e-mail
  addresses) and never stops scrubbing half way through a text. Every difference is listed in
  ``docs/pii.md``.
* :func:`scrub_like_daprd` — daprd's behaviour reproduced exactly, mistakes included, for
  differential tests against the real daprd. (Indexes are characters here, bytes in Go: they
  differ only in one corner of the algorithm and only next to non-ASCII text; see ``docs/pii.md``.)

Both are pure functions of their input: no I/O, no logging, no state kept between calls.
"""

from __future__ import annotations

import enum
import ipaddress
import itertools
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import NamedTuple

from parley_sidecar.conversation import pii_patterns as _pat
from parley_sidecar.conversation.pii_gosort import go_sort_slice

__all__ = [
    "DEFAULT_ENTITIES",
    "TOKENS",
    "Entity",
    "Scrubber",
    "parse_entities",
    "scrub_like_daprd",
]


class Entity(enum.StrEnum):
    """What can be scrubbed. The order is daprd's (``NewDefaultScrubber``); it decides ties."""

    STREET_ADDRESS = "STREET_ADDRESS"
    CREDIT_CARD = "CREDIT_CARD"
    PHONE = "PHONE"
    EMAIL = "EMAIL"
    IP = "IP"  # IPv4 and IPv6
    ZIP_CODE = "ZIP_CODE"
    PO_BOX = "PO_BOX"
    SSN = "SSN"
    ISBN = "ISBN"
    MAC_ADDRESS = "MAC_ADDRESS"
    IBAN = "IBAN"


DEFAULT_ENTITIES: frozenset[Entity] = frozenset(Entity)
"""daprd's default set (``blacklistedEntities`` of ``NewDefaultScrubber``): all of them."""

TOKENS: Mapping[Entity, str] = MappingProxyType(
    {
        Entity.STREET_ADDRESS: "<STREET_ADDRESS>",
        Entity.CREDIT_CARD: "<CREDIT_CARD>",
        Entity.PHONE: "<PHONE_NUMBER>",
        Entity.EMAIL: "<EMAIL_ADDRESS>",
        Entity.IP: "<IP>",
        Entity.ZIP_CODE: "<ZIP_CODE>",
        Entity.PO_BOX: "<PO_BOX>",
        Entity.SSN: "<US_SSN>",
        Entity.ISBN: "<ISBN>",
        Entity.MAC_ADDRESS: "<MAC_ADDRESS>",
        Entity.IBAN: "<IBAN>",
    }
)
"""The text that replaces each entity: daprd's ``_defaultEntityConfigs``."""

_ALIASES: Mapping[str, Entity] = MappingProxyType(
    {
        **{e.value: e for e in Entity},
        **{t.strip("<>"): e for e, t in TOKENS.items()},
        "IPV4": Entity.IP,
        "IPV6": Entity.IP,
        "IP_ADDRESS": Entity.IP,
    }
)


def parse_entities(spec: str) -> frozenset[Entity]:
    """``"EMAIL,PHONE"`` → entities. Case and spaces do not matter; daprd's token names
    (``PHONE_NUMBER``, ``EMAIL_ADDRESS``, ``US_SSN``, also with the angle brackets) are accepted.

    Raises ``ValueError`` naming the first unknown entry, or if the list names nothing.
    """
    found: set[Entity] = set()
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        key = item.strip("<>").strip().upper().replace("-", "_").replace(" ", "_")
        entity = _ALIASES.get(key)
        if entity is None:
            known = ", ".join(e.value for e in Entity)
            raise ValueError(f"unknown PII entity {item!r} (known: {known})")
        found.add(entity)
    if not found:
        raise ValueError(f"no PII entity named in {spec!r}")
    return frozenset(found)


# ------------------------------------------------------------------------------------------------
# Shared pieces
# ------------------------------------------------------------------------------------------------


class _Span(NamedTuple):
    start: int
    end: int
    entity: Entity


_FOLD = str.maketrans(_pat.FOLD_TRANSLATION)
_DIGITS = "0123456789"
_DIGITS_ = frozenset("0123456789_")
_WORD = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_DROP_DIGITS = str.maketrans("", "", _DIGITS)
_HAS_DIGIT = re.compile(r"\d", re.ASCII)


def _fold(text: str) -> str:
    """RE2's ``(?i)`` also folds U+212A and U+017F onto k and s; same length, same offsets."""
    if "\u212a" in text or "\u017f" in text:
        return text.translate(_FOLD)
    return text


def _ndigits(s: str) -> int:
    return len(s) - len(s.translate(_DROP_DIGITS))


def _resolve_overlaps(ordered: Sequence[_Span]) -> list[_Span]:
    """daprd's "make intervals non overlapping" loop, quirks included.

    ``prev`` is the previous interval *of the sorted list*, even when that one was dropped, and
    an interval that overlaps it is cut to start one character *after* its end (so that
    character stays in clear).
    """
    out: list[_Span] = []
    prev_end = -1
    for i, span in enumerate(ordered):
        start, end = span.start, span.end
        if i and start <= prev_end:
            if prev_end >= end:
                prev_end = end
                continue
            start = prev_end + 1
        out.append(_Span(start, end, span.entity))
        prev_end = end
    return out


def _drop_ignored(spans: Sequence[_Span], ignored: Sequence[tuple[int, int]]) -> list[_Span]:
    """daprd's removal of intervals that touch a link or a git URL (a literal port)."""
    if not ignored:
        return list(spans)
    kept: list[_Span] = []
    i = j = 0
    n, m = len(spans), len(ignored)
    while i < n and j < m:
        ig_start, ig_end = ignored[j]
        while i < n and spans[i].end < ig_start:
            kept.append(spans[i])
            i += 1
        while i < n and spans[i].start <= ig_end:
            i += 1
        j += 1
    kept.extend(spans[i:])
    return kept


def _splice(text: str, spans: Sequence[_Span], *, stop_when_stuck: bool) -> tuple[str, Counter[Entity]]:
    """Replace each span by its token, as daprd's copy loop does.

    daprd walks the text and replaces an interval when it reaches its exact start. An interval
    that starts before the end of the previous replacement is never reached, and neither is any
    interval after it: daprd stops scrubbing there (``stop_when_stuck``). Parley instead cuts
    such an interval to start where the previous one ended, and goes on.
    """
    counts: Counter[Entity] = Counter()
    if not spans:
        return text, counts
    out: list[str] = []
    pos, n = 0, len(text)
    for span_start, end, entity in spans:
        start = span_start
        if start < pos:
            if stop_when_stuck:
                break
            start = pos
            if start >= end:
                continue
        if start >= n:
            break
        out.append(text[pos:start])
        out.append(TOKENS[entity])
        counts[entity] += 1
        pos = end
    out.append(text[pos:])
    return "".join(out), counts


def _ignored_spans(text: str) -> list[tuple[int, int]]:
    """Matches of daprd's ignored entities (STRICT_LINK, GIT_REPO), sorted as daprd sorts them."""
    spans: list[tuple[int, int]] = []
    if "://" in text:
        spans.extend(m.span() for m in _RX_STRICT_LINK.finditer(text))
    if ".git" in text:
        spans.extend(_find_git_repos(text))
    spans.sort(key=lambda s: (s[0], -s[1]))
    return spans


_RX_STRICT_LINK = _pat.compile_go(_pat.STRICT_LINK_LINEAR)
_RX_GIT_REPO = _pat.compile_go(_pat.GO_GIT_REPO)
_GIT_CLASS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.@:/-~")
_GIT_CLASS_RUN = re.compile(r"[\w.@:/\-~]*", re.ASCII)


def _find_git_repos(text: str) -> list[tuple[int, int]]:
    """``GitRepoRegex.FindAllStringIndex`` without its quadratic worst case.

    Every character a match can contain is in ``[\\w.@:/\\-~]`` and a match ends with ``.git``
    (and maybe ``/``), so matches lie inside runs of that class, before the run's last
    ``.git/``. The pattern runs only over those windows; the spans are unchanged.
    """
    found: list[tuple[int, int]] = []
    at = text.find(".git")
    while at != -1:
        start = at
        while start > 0 and text[start - 1] in _GIT_CLASS:
            start -= 1
        run = _GIT_CLASS_RUN.match(text, at)
        run_end = run.end() if run else at + 4
        last = text.rfind(".git", at, run_end)
        window_end = min(run_end, last + 5)
        found.extend(m.span() for m in _RX_GIT_REPO.finditer(text, start, window_end))
        at = text.find(".git", run_end)
    return found


_EMAIL_LOCAL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+/=?^_{|.}~-")
_EMAIL_DOMAIN = re.compile(
    r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]*[a-z0-9])?", re.ASCII | re.IGNORECASE
)
_EMAIL_DOMAIN_UNICODE = re.compile(r"(?:[^\W_](?:[^\W_]|-)*(?<!-)\.)+[^\W_](?:[^\W_]|-)*(?<!-)")


def _find_emails(folded: str, *, unicode: bool = False) -> list[tuple[int, int]]:
    """``EmailRegex.FindAllStringIndex`` in linear time.

    The local part cannot contain ``@``, so a match is: the run of local-part characters just
    before an ``@`` (not reaching back before the end of the previous match), then a domain that
    the domain pattern accepts right after the ``@``. Leftmost-first gives the whole run.

    ``unicode`` (parley only) also accepts letters and digits beyond ASCII, in both parts
    (internationalised addresses such as ``zoë@bücher.de``, which daprd lets through).
    """
    found: list[tuple[int, int]] = []
    domain_rx = _EMAIL_DOMAIN_UNICODE if unicode else _EMAIL_DOMAIN
    pos = 0
    at = folded.find("@")
    while at != -1:
        start = at
        while start > pos:
            c = folded[start - 1]
            if not (c in _EMAIL_LOCAL or (unicode and not c.isascii() and c.isalnum())):
                break
            start -= 1
        domain = domain_rx.match(folded, at + 1) if start < at else None
        if domain is not None:
            found.append((start, domain.end()))
            pos = domain.end()
            at = folded.find("@", pos)
        else:
            at = folded.find("@", at + 1)
    return found


# ------------------------------------------------------------------------------------------------
# daprd, exactly
# ------------------------------------------------------------------------------------------------

_DaprdFinder = Callable[[str, str], Iterable[tuple[int, int]]]  # (text, folded text) -> spans


def _regex_finder(pattern: str, *, folded: bool = False) -> _DaprdFinder:
    rx = _pat.compile_go(pattern)
    if folded:
        return lambda _text, f: (m.span() for m in rx.finditer(f))
    return lambda text, _f: (m.span() for m in rx.finditer(text))


_DAPRD_FINDERS: Mapping[Entity, tuple[_DaprdFinder, ...]] = MappingProxyType(
    {
        Entity.STREET_ADDRESS: (_regex_finder(_pat.GO_STREET_ADDRESS, folded=True),),
        Entity.CREDIT_CARD: (_regex_finder(_pat.GO_CREDIT_CARD),),
        Entity.PHONE: (
            _regex_finder(_pat.GO_PHONES_WITH_EXTS, folded=True),
            _regex_finder(_pat.GO_PHONE),
        ),
        Entity.EMAIL: (lambda _text, f: _find_emails(f),),
        Entity.IP: (_regex_finder(_pat.GO_IP),),
        Entity.ZIP_CODE: (_regex_finder(_pat.GO_ZIP_CODE),),
        Entity.PO_BOX: (_regex_finder(_pat.GO_PO_BOX, folded=True),),
        Entity.SSN: (_regex_finder(_pat.GO_SSN),),
        Entity.ISBN: (_regex_finder(_pat.GO_ISBN10), _regex_finder(_pat.GO_ISBN13)),
        Entity.MAC_ADDRESS: (_regex_finder(_pat.GO_MAC_ADDRESS),),
        Entity.IBAN: (_regex_finder(_pat.GO_IBAN),),
    }
)


def _go_less(a: _Span, b: _Span) -> bool:
    return a.start < b.start or (a.start == b.start and a.end >= b.end)


def _sort_like_go(spans: list[_Span]) -> list[_Span]:
    """The order daprd's ``sort.Slice`` leaves the candidates in (ties included)."""
    ordered = sorted(spans, key=lambda s: (s.start, -s.end))
    tie = any(a.start == b.start and a.end == b.end and a.entity != b.entity for a, b in itertools.pairwise(ordered))
    if not tie:
        return ordered
    go_sort_slice(spans, _go_less)
    return spans


def scrub_like_daprd(text: str, entities: Iterable[Entity] = DEFAULT_ENTITIES) -> tuple[str, Counter[Entity]]:
    """Scrub exactly as daprd 1.18 does (``NewDefaultScrubber().ScrubTexts([text])``).

    Misses and false hits included: this exists to compare parley with daprd, not to be used.
    """
    wanted = frozenset(entities)
    folded = _fold(text)
    spans: list[_Span] = []
    for entity in Entity:  # daprd's order
        if entity in wanted:
            for finder in _DAPRD_FINDERS[entity]:
                spans.extend(_Span(s, e, entity) for s, e in finder(text, folded))
    ordered = _sort_like_go(spans)
    kept = _drop_ignored(_resolve_overlaps(ordered), _ignored_spans(text))
    return _splice(text, kept, stop_when_stuck=True)


# ------------------------------------------------------------------------------------------------
# Checksums
# ------------------------------------------------------------------------------------------------


def luhn_ok(digits: str) -> bool:
    """The Luhn check of card numbers (ASCII digits only)."""
    if not (digits.isascii() and digits.isdigit()):
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def isbn10_ok(chars: str) -> bool:
    """ISBN-10: 9 digits and a check character (digit or X); weighted sum 10..1 divisible by 11."""
    if len(chars) != 10 or not chars.isascii() or not chars[:9].isdigit():
        return False
    last = chars[9]
    if last in "xX":
        check = 10
    elif last.isdigit():
        check = ord(last) - 48
    else:
        return False
    total = sum((10 - i) * (ord(c) - 48) for i, c in enumerate(chars[:9])) + check
    return total % 11 == 0


def isbn13_ok(chars: str) -> bool:
    """ISBN-13: EAN-13 check digit, and the 978/979 prefix every ISBN-13 carries."""
    if len(chars) != 13 or not chars.isascii() or not chars.isdigit() or chars[:3] not in ("978", "979"):
        return False
    total = sum((3 if i % 2 else 1) * (ord(c) - 48) for i, c in enumerate(chars))
    return total % 10 == 0


def iban_ok(compact: str) -> bool:
    """ISO 13616 mod-97 check (country letters, 2 check digits, 11–30 alphanumerics)."""
    if not (15 <= len(compact) <= 34 and compact.isascii() and compact.isalnum()):
        return False
    if not (compact[:2].isalpha() and compact[2:4].isdigit()):
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1


# ------------------------------------------------------------------------------------------------
# Parley: daprd's detectors, less wrong
# ------------------------------------------------------------------------------------------------


def _rx(pattern: str, flags: int = 0) -> re.Pattern[str]:
    return re.compile(pattern, re.ASCII | flags)


# --- protected spans ------------------------------------------------------------------------------
# Never PII, but daprd's patterns cut into them (a date-time's digits become a phone number). They
# are hidden from the digit-based detectors: replaced by NUL characters in a working copy of the
# text, so that offsets do not move. One regex for all the kinds that start with a digit: the
# engine then tries each digit once. Each kind has its own right-hand boundary.
_SEMVER_TAIL = r"(?:-[0-9A-Za-z]+(?:[.-][0-9A-Za-z]+)*)?(?:\+[0-9A-Za-z]+(?:[.-][0-9A-Za-z]+)*)?"
_PROT_DIGIT = _rx(
    r"\d(?<![\w.:/+$-]\d)(?:"
    # ISO 8601 date, optionally with a time, fraction and offset: 2024-01-15T10:30:00.123+02:00
    r"(?P<iso>\d{3}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])"
    r"(?:[Tt ](?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:[.,]\d{1,9})?)?(?:[Zz]|[+-](?:[01]\d|2[0-3]):?[0-5]\d)?)?"
    r"(?![\w/]|[.,:-]\d))"
    # year first: 2024/01/15, 2024.1.15
    r"|(?P<ymd>\d{3}(?P<s1>[./-])(?:0?[1-9]|1[0-2])(?P=s1)(?:0?[1-9]|[12]\d|3[01])(?![\w/]|[.,:-]\d))"
    # day or month first: 15.01.2024, 01/15/24 (which one is the month is checked afterwards)
    r"|(?P<dmy>(?P<d2>\d?)(?P<s2>[./-])(?P<m>0?[1-9]|[12]\d|3[01])(?P=s2)(?:\d{4}|\d{2})(?![\w/]|[.,:-]\d))"
    # clock time: 10:30, 10:30:00.123456, 9:05 pm
    r"|(?P<time>(?P<h2>\d?):[0-5]\d(?::[0-5]\d(?:[.,]\d{1,9})?)?(?: ?[AaPp]\.?[Mm]\.?(?!\w))?(?![\w:]|[.,]\d))"
    # dotted version: 1.2.3, 10.0.19041, 1.2.3-rc.1+build.5 (at most 9 digits, not an IPv4 address)
    r"|(?P<ver>(?P<vcore>\d?(?:\.\d{1,5}){2,})" + _SEMVER_TAIL + r"(?![\w-]|\.\d))"
    r")"
)
# "v" and a version of any size: v10.4.1, V2.0
_PROT_VERSION_V = {
    v: _rx(v + r"(?<![\w.-]" + v + r")\d+(?:\.\d+)+" + _SEMVER_TAIL + r"(?![\w-]|\.\d)") for v in "vV"
}  # one pattern per letter: a pattern starting with a literal is searched much faster than [vV]
_PROT_VERSION_AT = _rx(r"\d(?P<vcore>\d?(?:\.\d{1,5}){2,})" + _SEMVER_TAIL + r"(?![\w-]|\.\d)")
# Prices. Currency marks are rare, so each is looked for as a plain string first.
_CURRENCY_SYMBOLS = ("$", "€", "£", "¥", "₹")
_CURRENCY_CODES = ("USD", "EUR", "GBP", "CHF", "JPY", "CAD", "AUD", "INR", "CNY")
_CURRENCY_WORDS = ("dollar", "Dollar", "euro", "Euro", "pound", "Pound")
# An amount: 1234, 1,234,567.89, 1.234,56, 12'000. Not 10.0.0.1 (an IP address), not more than 9
# digits in a row, and not a group of a longer number ("4111 1111 1111 1111 USD" is a card number).
_NUMBER = r"(?<!\d[ -])(?:\d{1,3}(?:[.,']\d{3})+|\d{1,9})(?:[.,]\d\d?)?(?!\d|[ -]\d)"
_AMOUNT = r" ?[+-]?" + _NUMBER + r"(?: ?(?:k|K|M|bn|million|billion|thousand)(?!\w))?"
_DOTTED_QUAD = _rx(r"\d\.\d{1,3}\.\d{1,3}\.\d")  # 0.100.100.0 CHF: an IP address, not an amount
_PROT_PRICE_BEFORE = _rx(r"(?:[$€£¥₹]|(?<!\w)(?:USD|EUR|GBP|CHF|JPY|CAD|AUD|INR|CNY))" + _AMOUNT)
_PROT_PRICE_AFTER = _rx(
    r"(?<![\w.,])"
    + _NUMBER
    + r" ?(?:[$€£¥₹]|USD|EUR|GBP|CHF|JPY|CAD|AUD|INR|CNY|[Dd]ollars?|[Ee]uros?|[Pp]ounds?)(?!\w)"
)
_UUID_HINT = _rx(r"-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-")
_PROT_UUID = _rx(
    r"[0-9a-fA-F](?<![\w-][0-9a-fA-F])[0-9a-fA-F]{7}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}"
    r"-[0-9a-fA-F]{12}(?![\w-])"
)


def _version_ok(core: str) -> bool:
    parts = core.split(".")
    if len(parts) == 4 and all(int(p) <= 255 for p in parts):
        return False  # a dotted quad is an IPv4 address, as in daprd
    return _ndigits(core) <= 9  # 10 would take dotted phone numbers such as 01.23.45.67.89


def _protected_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    add = spans.append
    for m in _PROT_DIGIT.finditer(text):
        kind = m.lastgroup
        if kind == "dmy":
            a, b = int(m.group(0)[0] + m.group("d2")), int(m.group("m"))
            if not (1 <= a <= 12 or b <= 12):
                v = _PROT_VERSION_AT.match(text, m.start())
                if v is not None and _version_ok(text[v.start()] + v.group("vcore")):
                    add(v.span())
                continue
        elif kind == "time":
            if int(m.group(0)[0] + m.group("h2")) > 24:
                continue
        elif kind == "ver" and not _version_ok(m.group(0)[0] + m.group("vcore")):
            continue
        add(m.span())
    for letter, rx in _PROT_VERSION_V.items():
        if letter in text:
            spans.extend(m.span() for m in rx.finditer(text))
    for mark in (*_CURRENCY_SYMBOLS, *_CURRENCY_CODES, *_CURRENCY_WORDS):
        at = text.find(mark)
        while at != -1:
            if len(mark) < 6:  # "$12", "USD 12"
                before = _PROT_PRICE_BEFORE.match(text, at)
                if before is not None and not _DOTTED_QUAD.search(before.group(0)):
                    add(before.span())
            # "12,345 dollars", "1.234,56 €": look just before the mark
            window = _PROT_PRICE_AFTER.finditer(text, max(0, at - 40), at + len(mark) + 1)
            spans.extend(m.span() for m in window if not _DOTTED_QUAD.search(m.group(0)))
            at = text.find(mark, at + len(mark))
    for hint in _UUID_HINT.finditer(text):
        uuid = _PROT_UUID.match(text, hint.start() - 8) if hint.start() >= 8 else None
        if uuid is not None:
            spans.append(uuid.span())
    return spans


def _mask(text: str, spans: list[tuple[int, int]]) -> str:
    if not spans:
        return text
    spans.sort()
    out: list[str] = []
    pos = 0
    for span_start, end in spans:
        if end <= pos:
            continue
        start = max(span_start, pos)
        out.append(text[pos:start])
        out.append("\0" * (end - start))
        pos = end
    out.append(text[pos:])
    return "".join(out)


# --- detectors ------------------------------------------------------------------------------------
# daprd's, in their fast equivalent form (see pii_patterns), and parley's own additions.
_F = {k: _pat.compile_go(v) for k, v in _pat.FAST_PATTERNS.items()}
_RX_PHONE = _pat.compile_go(_pat.GO_PHONE)
_RX_PHONES_WITH_EXTS = _pat.compile_go(_pat.GO_PHONES_WITH_EXTS)
_RX_LONG_NUMERIC_RUN = re.compile(_pat.LONG_NUMERIC_RUN, re.ASCII)

_PHONE_INTL = _rx(r"\+(?<![\d_+]\+)\d{1,3}(?:[ .-]?\(0\))?(?:[ .-]?(?:\(\d{1,5}\)|\d{1,8}+)){1,7}(?![\d_])(?![.-]\d)")
_PHONE_NATIONAL = _rx(
    r"[(\d](?<![\d_+.,/:-][(\d])(?:(?<=\()\d{2,5}\)|(?<=\d)\d{0,4})(?:[ .-]?\d{2,8}+){1,5}(?![\d_])(?![.,:/-]\d)"
)
# German style, with a slash after the area code: 030/901820
_PHONE_SLASH = _rx(r"0(?<![\d_+.,/:-]0)\d{1,4}/\d{3,8}+(?:[ -]\d{2,5}+)?(?![\d_])(?![.,:/-]\d)")
_CARD = _rx(r"\d(?<![\d_+.-]\d)(?:\d{12,18}|\d{2,6}(?:[ -]\d{3,6}){1,5}+)(?![\d_])(?![.-]\d)")
# daprd's card shapes, but looked for at every group start (daprd's search can swallow a card's
# first group into a rejected match before it: "12345 4111 1111 1111 1111").
_CARD_DAPRD_SHAPES = _rx(r"\d(?<![\d_+.-]\d)(?:\d{3}[- ]?(?:\d{4}[- ]?){2}\d{4}|\d{14,15})(?![\d_])(?![.-]\d)")
_IBAN_GROUPED = _rx(r"[A-Z](?<!\w[A-Z])[A-Z]\d\d(?: ?[A-Z0-9]{4}){2,7}+(?: ?[A-Z0-9]{1,3})?(?!\w)")
_IPV4_BOUNDED = _rx(r"(?<![\w.])" + _pat.GO_IPV4 + r"(?!\w|\.\d)")
_IPV6_HINT = _rx(r":[0-9A-Fa-f]{0,4}:")
_IPV6_CANDIDATE = _rx(
    r"[0-9A-Fa-f:](?<![\w:.%][0-9A-Fa-f:])(?:(?<=:):|[0-9A-Fa-f]{0,3}:)[0-9A-Fa-f:.]*"
    r"(%[0-9A-Za-z_~-]+(?:\.[0-9A-Za-z_~-]+)*)?"
)
_MAC_HINT = _rx(r"[:-][0-9A-Fa-f]{2}[:-]")
_HEX_COLON_DOT = frozenset("0123456789abcdefABCDEF:.")
_MAC_GROUP = _rx(r"[:-][0-9A-Fa-f]{2}(?![0-9A-Fa-f])")
# daprd's street keywords (street|st|avenue|ave|road|rd|highway|hwy|square|sq|trail|trl|drive|dr|
# court|ct|park|parkway|pkwy|circle|cir|boulevard|blvd) as a tree, which the regex engine tries faster.
_STREET_KEYWORDS = (
    r"st(?:reet)?|sq(?:uare)?|ave(?:nue)?|r(?:oa)?d|h(?:ighwa|w)y|tr(?:ai)?l|dr(?:ive)?|c(?:our)?t"
    r"|park(?:way)?|pkwy|cir(?:cle)?|b(?:oulevard|lvd)"
)
_STREET = _rx(
    r"[1-9](?<![\w.,:/$-]\d)(?<!\d{4}[ -]\d)\d{0,4}[a-z]?(?P<words>(?:[ \t]+[a-z0-9][\w'.-]*){1,4}?)[ \t]+(?:"
    + _STREET_KEYWORDS
    + r")\b\.?",
    re.IGNORECASE,
)
_STREET_WORD = _rx(r"[a-z][\w'.-]*|\d+(?:st|nd|rd|th)", re.IGNORECASE)  # Main, O'Farrell, 5th
_STREET_STOP = frozenset(
    ("in", "the", "at", "of", "and", "or", "to", "a", "an", "on", "for", "with", "from", "by", "my", "our",
     "your", "his", "her", "their", "is", "are", "was", "were", "be", "been", "it", "this", "that", "these",
     "those", "i", "we", "you", "he", "she", "they", "me", "us", "them", "than", "then", "per", "each",
     "every", "about")
)  # fmt: skip


def _glued(src: str, start: int, end: int) -> bool:
    """True if the span is a piece of a longer number or code: a digit or ``_`` touches it, a
    ``.`` or ``-`` followed by a digit continues it, or letters touch it on both sides."""
    before = src[start - 1] if start > 0 else " "
    after = src[end] if end < len(src) else " "
    if before in _DIGITS_ or after in _DIGITS_:
        return True
    if before in _WORD and after in _WORD:
        return True
    if before in ".-" and start > 1 and src[start - 2] in _DIGITS:
        return True
    return after in ".-" and end + 1 < len(src) and src[end + 1] in _DIGITS


def _phone_spans(
    rx: re.Pattern[str], text: str, start: int, end: int, too_long: Sequence[tuple[int, int]]
) -> Iterable[tuple[int, int]]:
    """Parley's phone matches: 7 to 15 digits (E.164's limit), not part of a longer number.

    Numbers written one after the other ("555 1234 4111111111111111") make one match of more
    than 15 digits: it is cut at its last space that leaves at most 15, and the search goes on
    inside it. A refused match does not hide the matches inside it either.
    """
    pos = start
    while (m := rx.search(text, pos, end)) is not None:
        s, e = m.span()
        body = m.group(0)
        cut = _ndigits(body) > 15
        if cut:
            at = body.rfind(" ")
            while at > 0 and _ndigits(body[:at]) > 15:
                at = body.rfind(" ", 0, at)
            e = s + max(at, 0)
        ok = (
            e > s
            and _ndigits(text[s:e]) >= 7
            and not _glued(text, s, e)
            and not any(s < le and ls < e for ls, le in too_long)
        )
        if ok:
            yield s, e
        pos = e if ok and not cut else s + 1


def _alone(src: str, start: int, end: int) -> bool:
    """Not one group of a longer run of digit groups (no digit one space or hyphen away)."""
    if start > 1 and src[start - 1] in " -" and src[start - 2] in _DIGITS:
        return False
    return not (end + 1 < len(src) and src[end] in " -" and src[end + 1] in _DIGITS)


def _mac_span(text: str, m: re.Match[str]) -> tuple[int, int] | None:
    """A MAC address (6 groups) or an EUI-64 (8 groups), not part of a longer hex sequence."""
    s, e = m.span()
    if s > 0 and (text[s - 1] in _WORD or text[s - 1] in ":-"):
        return None
    sep = text[s + 2]
    groups = 6
    while groups < 8 and (tail := _MAC_GROUP.match(text, e)) is not None and text[e] == sep:
        e = tail.end()
        groups += 1
    if groups == 7 or (e < len(text) and (text[e] in _WORD or _MAC_GROUP.match(text, e) is not None)):
        return None
    return s, e


def _ipv6_address(candidate: str) -> bool:
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True


def _ipv6_prefix(candidate: str) -> str:
    """The longest valid IPv6 address that ``candidate`` starts with and that ends before a ``.``
    or ``:`` of it (``::1.`` at the end of a sentence, ``2001:db8::1:`` before a port), or ''."""
    if _ipv6_address(candidate):
        return candidate
    for i in range(len(candidate) - 1, 1, -1):
        if candidate[i] in ".:" and _ipv6_address(candidate[:i]):
            return candidate[:i]
    return ""


def _isbn_context(text: str, start: int) -> bool:
    return "ISBN" in text[max(0, start - 12) : start].upper()


class _Windows:
    """The windows of a (masked) text where digit-based patterns can match, by digit count."""

    __slots__ = ("most", "runs")

    def __init__(self, text: str) -> None:
        # (window start, window end, digits, end of the run itself), for runs of 4+ digits: no
        # pattern searched here matches fewer. Two characters on either side are too few to hold
        # a match from a neighbouring run.
        n = len(text)
        self.runs: list[tuple[int, int, int, int]] = [
            (max(0, m.start() - 2), min(n, m.end() + 2), _ndigits(m.group()), m.end())
            for m in _RX_LONG_NUMERIC_RUN.finditer(text)
        ]
        self.most = max((r[2] for r in self.runs), default=0)

    def finditer(self, rx: re.Pattern[str], text: str, min_digits: int) -> Iterable[re.Match[str]]:
        for start, end, digits, _ in self.runs:
            if digits >= min_digits:
                yield from rx.finditer(text, start, end)


class Scrubber:
    """Scrubs PII from text; build once, use from any thread (it holds no mutable state)."""

    __slots__ = ("_entities", "_priority", "_validate")

    def __init__(self, entities: frozenset[Entity] = DEFAULT_ENTITIES, *, validate_checksums: bool = True) -> None:
        self._entities = frozenset(Entity(e) for e in entities)
        self._validate = validate_checksums
        # Which entity wins when two match exactly the same text. daprd's order (for the usual
        # small number of candidates): later in its list wins. Checked card numbers beat phone
        # numbers; unchecked ISBNs lose to them.
        prio = {e: 2 * i for i, e in enumerate(Entity)}
        if validate_checksums:
            prio[Entity.CREDIT_CARD] = prio[Entity.PHONE] + 1
        else:
            prio[Entity.ISBN] = prio[Entity.PHONE] - 1
        self._priority: Mapping[Entity, int] = MappingProxyType(prio)

    @property
    def entities(self) -> frozenset[Entity]:
        return self._entities

    @property
    def validate_checksums(self) -> bool:
        return self._validate

    def __repr__(self) -> str:
        names = ",".join(sorted(e.value for e in self._entities))
        return f"Scrubber({names}, validate_checksums={self._validate})"

    def scrub(self, text: str) -> tuple[str, Counter[Entity]]:
        """Return the scrubbed text and how many of each entity were replaced."""
        if not text or not self._entities:
            return text, Counter()
        spans = self._candidates(text)
        if not spans:
            return text, Counter()
        prio = self._priority
        spans.sort(key=lambda s: (s.start, -s.end, -prio[s.entity]))
        kept = _drop_ignored(_resolve_overlaps(spans), _ignored_spans(text))
        if len(self._entities) < len(Entity):
            # Every entity is detected, so that a card number is not taken for a phone number just
            # because cards were not asked for; only the chosen ones are replaced.
            kept = [s for s in kept if s.entity in self._entities]
        return _splice(text, kept, stop_when_stuck=False)

    # -- detection ---------------------------------------------------------------------------------
    def _candidates(self, text: str) -> list[_Span]:
        out: list[_Span] = []
        if "@" in text:
            folded = _fold(text)
            out.extend(_Span(s, e, Entity.EMAIL) for s, e in _find_emails(folded))
            if not text.isascii():
                out.extend(_Span(s, e, Entity.EMAIL) for s, e in _find_emails(folded, unicode=True))
        if ":" in text and _IPV6_HINT.search(text):
            self._ipv6(text, out)
        if _MAC_HINT.search(text):
            for m in _F["MAC_ADDRESS"].finditer(text):
                span = _mac_span(text, m)
                if span is not None:
                    out.append(_Span(*span, Entity.MAC_ADDRESS))
        if _HAS_DIGIT.search(text) is not None:
            masked = _mask(text, _protected_spans(text))
            self._digits(masked, text, out)
        return out

    @staticmethod
    def _ipv6(text: str, out: list[_Span]) -> None:
        # An address contains ":h:" (0-4 hex digits between two colons): start from those, at the
        # beginning of the run of hex digits, colons and dots around them.
        pos = 0
        for hint in _IPV6_HINT.finditer(text):
            if hint.start() < pos:
                continue
            start = hint.start()
            while start > pos and text[start - 1] in _HEX_COLON_DOT:
                start -= 1
            m = _IPV6_CANDIDATE.search(text, start, hint.end())
            if m is None:
                continue
            m = _IPV6_CANDIDATE.match(text, m.start())
            if m is None:  # pragma: no cover - the search above found it
                continue
            pos = m.end()
            start = m.start()
            whole = m.group(0)
            zone = m.group(1) or ""
            addr = _ipv6_prefix(whole[: len(whole) - len(zone)])
            if not addr or _ndigits(addr) == 0:
                continue
            if len(addr) + len(zone) != len(whole):
                zone = ""  # the address was cut short: what followed it was not its zone
            end = start + len(addr) + len(zone)
            if end < len(text) and text[end] in _WORD:
                continue
            out.append(_Span(start, end, Entity.IP))

    def _digits(self, t: str, original: str, out: list[_Span]) -> None:
        """The digit-based entities, on the text with its protected spans masked."""
        validate = self._validate
        win = _Windows(t)
        most = win.most
        add = out.append
        folded, pos = _fold(t), 0
        while (m := _STREET.search(folded, pos)) is not None:
            words = m.group("words").split()
            if any(w.lower() in _STREET_STOP or not _STREET_WORD.fullmatch(w) for w in words):
                pos = m.start() + 1  # "5 of us met at 12 Main St": try again from the next number
                continue
            add(_Span(*m.span(), Entity.STREET_ADDRESS))
            pos = m.end()
        too_long: list[tuple[int, int]] = []  # 16 digits shaped like a card: not a phone number
        if most >= 13:
            seen: set[tuple[int, int]] = set()
            for rx in (_F["CREDIT_CARD"], _CARD_DAPRD_SHAPES, _CARD):
                for m in win.finditer(rx, t, 13):
                    span = m.span()
                    if span in seen or _glued(t, *span):
                        continue
                    seen.add(span)
                    digits = m.group(0).replace(" ", "").replace("-", "")
                    if rx is not _CARD and len(digits) == 16 and _alone(t, *span):
                        too_long.append(span)
                    if rx is _CARD and not validate:
                        continue  # parley's own card pattern relies on the Luhn check
                    if not 13 <= len(digits) <= 19 or (validate and not luhn_ok(digits)):
                        continue
                    add(_Span(*span, Entity.CREDIT_CARD))
        self._phones(t, original, win, too_long, add)
        if most >= 4:
            for m in win.finditer(_IPV4_BOUNDED, t, 4):
                add(_Span(*m.span(), Entity.IP))
        if most >= 5:
            for m in win.finditer(_F["ZIP_CODE"], t, 5):
                if not _glued(t, *m.span()):
                    add(_Span(*m.span(), Entity.ZIP_CODE))
        if "ox " in t or "OX " in t or "Ox " in t or "oX " in t:
            for m in _F["PO_BOX"].finditer(t):
                add(_Span(*m.span(), Entity.PO_BOX))
        if most >= 9:
            for m in win.finditer(_F["SSN"], t, 9):
                if not _glued(t, *m.span()):
                    add(_Span(*m.span(), Entity.SSN))
        if most >= 9:
            self._isbns(t, win, add)
        if most >= 7:
            self._ibans(t, win, add)

    @staticmethod
    def _phones(
        t: str, original: str, win: _Windows, too_long: list[tuple[int, int]], add: Callable[[_Span], None]
    ) -> None:
        spans: list[tuple[int, int]] = []
        # A "+" and digits is a phone number even where the rest looks like a date or a version
        # ("+1 10.00.00"), so these are looked for in the text as it is.
        if "+" in original:
            for span in _phone_spans(_PHONE_INTL, original, 0, len(original), too_long):
                add(_Span(*span, Entity.PHONE))
        extensions = False
        for start, end, digits, run_end in win.runs:
            if digits < 7:
                continue
            spans.extend(m.span() for m in _RX_PHONE.finditer(t, start, end))
            spans.extend(_phone_spans(_PHONE_NATIONAL, t, start, end, too_long))
            spans.extend(_phone_spans(_PHONE_SLASH, t, start, end, too_long))
            # daprd's phone-with-extension pattern: 7+ digits, spaces, then "#", "x" or "ext".
            extensions = (
                extensions or t[run_end : run_end + 1] in ("#", "x", "X") or (t[run_end : run_end + 3].lower() == "ext")
            )
        if extensions:
            spans.extend(m.span() for m in _RX_PHONES_WITH_EXTS.finditer(_fold(t)))
        for start, e in spans:
            # daprd's pattern may take an opening parenthesis that is not the number's
            s = start + 1 if t[start] == "(" and ")" not in t[start:e] else start
            if _ndigits(t[s:e]) < 7 or _glued(t, s, e) or any(s < le and ls < e for ls, le in too_long):
                continue
            add(_Span(s, e, Entity.PHONE))

    def _isbns(self, t: str, win: _Windows, add: Callable[[_Span], None]) -> None:
        validate = self._validate
        for key, need, check in (("ISBN10", 9, isbn10_ok), ("ISBN13", 12, isbn13_ok)):
            for m in win.finditer(_F[key], t, need):
                s, e = m.span()
                if _glued(t, s, e):
                    continue
                if validate:
                    if not check(m.group(0).replace("-", "")):
                        continue
                    if key == "ISBN10" and m.group(0).count("-") < 3 and not _isbn_context(t, s):
                        continue
                add(_Span(s, e, Entity.ISBN))

    def _ibans(self, t: str, win: _Windows, add: Callable[[_Span], None]) -> None:
        validate = self._validate
        rxs = (_F["IBAN"], _IBAN_GROUPED) if validate else (_F["IBAN"],)
        # An IBAN has a run of 7+ digits (spaces allowed) that starts at most 16 characters after
        # the IBAN does; it is at most 42 characters long (34, and spaces between groups of 4).
        windows: list[list[int]] = []
        for start, end, digits, _ in win.runs:
            if digits >= 7:
                ws, we = max(0, start - 16), min(len(t), end + 42)
                if windows and ws <= windows[-1][1]:
                    windows[-1][1] = we
                else:
                    windows.append([ws, we])
        seen: set[tuple[int, int]] = set()
        for rx in rxs:
            for m in (m for ws, we in windows for m in rx.finditer(t, ws, we)):
                span = m.span()
                if span in seen or _glued(t, *span):
                    continue
                seen.add(span)
                if validate and not iban_ok(m.group(0).replace(" ", "")):
                    continue
                add(_Span(*span, Entity.IBAN))


def _bench() -> None:  # pragma: no cover - manual timing: python -m parley_sidecar.conversation.pii
    typical = (
        "The quarterly review went well overall. Revenue grew in every region and the new onboarding flow "
        "cut support tickets noticeably. Please send questions to ops-team@example.org before the "
        "all-hands. Our auditors asked for the usual documents, which I shared last week. If anything is "
        "missing, call me on 020 7946 0958 and I will sort it out. Next steps: finalise the hiring plan, "
        "agree on the budget for the spring campaign, and schedule the customer interviews. Thanks to "
        "everyone who helped, especially the platform team, who kept things running during the migration. "
    )
    dense = (
        "Hi team, following up on yesterday's call. Please reach Maria at maria.lopez@example.com or on "
        "+1 415 555 2671 before Friday. The staging host 10.20.30.40 was rebooted at 2024-03-05T14:22:10Z "
        "after the upgrade to v1.18.3; the invoice came to $1,234.56 and ticket "
        "7f3c2a1e-9b4d-4c8e-a1f2-3d4e5f6a7b8c tracks it. We moved to 500 Market Street, and parcels go "
        "to PO Box 4411. About 40 people will come in 2024, so book the larger room on the third floor. "
    )
    scrubber = Scrubber()
    for name, sample in (("typical text, 2 PII per 600 B", typical), ("dense: 10 numbers per 500 B", dense)):
        text = (sample * 16)[:8192]
        kib = len(text.encode()) / 1024
        for label, fn in (("Scrubber", scrubber.scrub), ("scrub_like_daprd", scrub_like_daprd)):
            fn(text)
            best = float("inf")
            for _ in range(5):
                started = time.process_time()
                for _ in range(20):
                    fn(text)
                best = min(best, (time.process_time() - started) / 20)
            print(f"{name:30s} {label:17s} {best * 1000 / kib:.3f} ms/KiB")
    print(scrubber.scrub(dense)[0])


if __name__ == "__main__":  # pragma: no cover
    _bench()
