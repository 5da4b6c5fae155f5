"""Spans that are never PII but that daprd's digit patterns cut into: dates, times, versions,
prices, UUIDs. The scrubber hides them (:func:`mask`) before the digit-based detectors run.
"""

from __future__ import annotations

import re

from parley_sidecar.conversation.pii_spans import ndigits

__all__ = ["mask", "protected_spans", "rx"]


def rx(pattern: str, flags: int = 0) -> re.Pattern[str]:
    return re.compile(pattern, re.ASCII | flags)


# --- protected spans ------------------------------------------------------------------------------
# Never PII, but daprd's patterns cut into them (a date-time's digits become a phone number). They
# are hidden from the digit-based detectors: replaced by NUL characters in a working copy of the
# text, so that offsets do not move. One regex for all the kinds that start with a digit: the
# engine then tries each digit once. Each kind has its own right-hand boundary.
_SEMVER_TAIL = r"(?:-[0-9A-Za-z]+(?:[.-][0-9A-Za-z]+)*)?(?:\+[0-9A-Za-z]+(?:[.-][0-9A-Za-z]+)*)?"
_PROT_DIGIT = rx(
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
    v: rx(v + r"(?<![\w.-]" + v + r")\d+(?:\.\d+)+" + _SEMVER_TAIL + r"(?![\w-]|\.\d)") for v in "vV"
}  # one pattern per letter: a pattern starting with a literal is searched much faster than [vV]
_PROT_VERSION_AT = rx(r"\d(?P<vcore>\d?(?:\.\d{1,5}){2,})" + _SEMVER_TAIL + r"(?![\w-]|\.\d)")
# Prices. Currency marks are rare, so each is looked for as a plain string first.
_CURRENCY_SYMBOLS = ("$", "€", "£", "¥", "₹")
_CURRENCY_CODES = ("USD", "EUR", "GBP", "CHF", "JPY", "CAD", "AUD", "INR", "CNY")
_CURRENCY_WORDS = ("dollar", "Dollar", "euro", "Euro", "pound", "Pound")
# An amount: 1234, 1,234,567.89, 1.234,56, 12'000. Not 10.0.0.1 (an IP address), not more than 9
# digits in a row, and not a group of a longer number ("4111 1111 1111 1111 USD" is a card number).
_NUMBER = r"(?<!\d[ -])(?:\d{1,3}(?:[.,']\d{3})+|\d{1,9})(?:[.,]\d\d?)?(?!\d|[ -]\d)"
_AMOUNT = r" ?[+-]?" + _NUMBER + r"(?: ?(?:k|K|M|bn|million|billion|thousand)(?!\w))?"
_DOTTED_QUAD = rx(r"\d\.\d{1,3}\.\d{1,3}\.\d")  # 0.100.100.0 CHF: an IP address, not an amount
_PROT_PRICE_BEFORE = rx(r"(?:[$€£¥₹]|(?<!\w)(?:USD|EUR|GBP|CHF|JPY|CAD|AUD|INR|CNY))" + _AMOUNT)
_PROT_PRICE_AFTER = rx(
    r"(?<![\w.,])"
    + _NUMBER
    + r" ?(?:[$€£¥₹]|USD|EUR|GBP|CHF|JPY|CAD|AUD|INR|CNY|[Dd]ollars?|[Ee]uros?|[Pp]ounds?)(?!\w)"
)
_UUID_HINT = rx(r"-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-")
_PROT_UUID = rx(
    r"[0-9a-fA-F](?<![\w-][0-9a-fA-F])[0-9a-fA-F]{7}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}"
    r"-[0-9a-fA-F]{12}(?![\w-])"
)


def _version_ok(core: str) -> bool:
    parts = core.split(".")
    if len(parts) == 4 and all(int(p) <= 255 for p in parts):
        return False  # a dotted quad is an IPv4 address, as in daprd
    return ndigits(core) <= 9  # 10 would take dotted phone numbers such as 01.23.45.67.89


def protected_spans(text: str) -> list[tuple[int, int]]:
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


def mask(text: str, spans: list[tuple[int, int]]) -> str:
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

