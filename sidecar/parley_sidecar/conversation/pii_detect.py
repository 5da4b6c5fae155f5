"""Candidate spans of every entity in a text: what :class:`.pii.Scrubber` then sorts, resolves
and replaces. The rules themselves (patterns, boundary checks) are in :mod:`.pii_rules`.

Digit-based entities are looked for in a copy of the text whose dates, times, versions, prices
and UUIDs are masked (:mod:`.pii_protected`), and only in the windows around runs of 4 or more
digits (:class:`.pii_rules.Windows`).
"""

from __future__ import annotations

from collections.abc import Callable

from parley_sidecar.conversation.pii_checksums import iban_ok, isbn10_ok, isbn13_ok, luhn_ok
from parley_sidecar.conversation.pii_entities import Entity
from parley_sidecar.conversation.pii_protected import mask, protected_spans
from parley_sidecar.conversation.pii_rules import (
    CARD,
    CARD_DAPRD_SHAPES,
    CARD_DOTTED,
    CARD_DOTTED_HINT,
    IBAN_GROUPED,
    IPV4_BOUNDED,
    IPV6_HINT,
    MAC_HINT,
    PHONE_INTL,
    PHONE_NATIONAL,
    PHONE_SLASH,
    RX_PHONE,
    RX_PHONES_WITH_EXTS,
    STREET,
    STREET_STOP,
    STREET_WORD,
    F,
    Overlaps,
    Windows,
    alone,
    find_ipv6,
    glued,
    isbn_context,
    mac_span,
    phone_spans,
)
from parley_sidecar.conversation.pii_spans import HAS_DIGIT, Span, find_emails, fold, ndigits

__all__ = ["candidates"]


def candidates(text: str, *, validate: bool) -> list[Span]:
    """Every candidate span of every entity, in no particular order (the scrubber sorts)."""
    out: list[Span] = []
    if "@" in text:
        folded = fold(text)
        out.extend(Span(s, e, Entity.EMAIL) for s, e in find_emails(folded))
        if not text.isascii():
            out.extend(Span(s, e, Entity.EMAIL) for s, e in find_emails(folded, unicode=True))
    if ":" in text and IPV6_HINT.search(text):
        out.extend(Span(s, e, Entity.IP) for s, e in find_ipv6(text))
    if MAC_HINT.search(text):
        for m in F["MAC_ADDRESS"].finditer(text):
            span = mac_span(text, m)
            if span is not None:
                out.append(Span(*span, Entity.MAC_ADDRESS))
    if HAS_DIGIT.search(text) is not None:
        masked = mask(text, protected_spans(text))
        _digits(masked, text, out, validate)
    return out


def _digits(t: str, original: str, out: list[Span], validate: bool) -> None:
    """The digit-based entities, on the text with its protected spans masked."""
    win = Windows(t)
    most = win.most
    add = out.append
    folded, pos = fold(t), 0
    while (m := STREET.search(folded, pos)) is not None:
        words = m.group("words").split()
        if any(w.lower() in STREET_STOP or not STREET_WORD.fullmatch(w) for w in words):
            pos = m.start() + 1  # "5 of us met at 12 Main St": try again from the next number
            continue
        add(Span(*m.span(), Entity.STREET_ADDRESS))
        pos = m.end()
    too_long: list[tuple[int, int]] = []  # 16 digits shaped like a card: not a phone number
    if most >= 13:
        seen: set[tuple[int, int]] = set()
        for pattern in (F["CREDIT_CARD"], CARD_DAPRD_SHAPES, CARD):
            for m in win.finditer(pattern, t, 13):
                span = m.span()
                if span in seen or glued(t, *span):
                    continue
                seen.add(span)
                digits = m.group(0).replace(" ", "").replace("-", "")
                if pattern is not CARD and len(digits) == 16 and alone(t, *span):
                    too_long.append(span)
                if pattern is CARD and not validate:
                    continue  # parley's own card pattern relies on the Luhn check
                if not 13 <= len(digits) <= 19 or (validate and not luhn_ok(digits)):
                    continue
                add(Span(*span, Entity.CREDIT_CARD))
    if validate and "." in t and CARD_DOTTED_HINT.search(t):
        # Dots split the numeric windows, so dotted groups are looked for on their own; without
        # the Luhn check nothing tells them from other dotted numbers.
        for m in CARD_DOTTED.finditer(t):
            digits = m.group(0).replace(".", "")
            if 13 <= len(digits) <= 19 and luhn_ok(digits) and not glued(t, *m.span()):
                add(Span(*m.span(), Entity.CREDIT_CARD))
    _phones(t, original, win, Overlaps(too_long), add)
    if most >= 4:
        for m in win.finditer(IPV4_BOUNDED, t, 4):
            add(Span(*m.span(), Entity.IP))
    if most >= 5:
        for m in win.finditer(F["ZIP_CODE"], t, 5):
            if not glued(t, *m.span()):
                add(Span(*m.span(), Entity.ZIP_CODE))
    if "ox " in t or "OX " in t or "Ox " in t or "oX " in t:
        for m in F["PO_BOX"].finditer(t):
            add(Span(*m.span(), Entity.PO_BOX))
    if most >= 9:
        for m in win.finditer(F["SSN"], t, 9):
            if not glued(t, *m.span()):
                add(Span(*m.span(), Entity.SSN))
    if most >= 9:
        _isbns(t, win, add, validate)
    if most >= 7:
        _ibans(t, win, add, validate)


def _phones(t: str, original: str, win: Windows, too_long: Overlaps, add: Callable[[Span], None]) -> None:
    spans: list[tuple[int, int]] = []
    # A "+" and digits is a phone number even where the rest looks like a date or a version
    # ("+1 10.00.00"), so these are looked for in the text as it is.
    if "+" in original:
        for span in phone_spans(PHONE_INTL, original, 0, len(original), too_long):
            add(Span(*span, Entity.PHONE))
    extensions = False
    for start, end, digits, run_end in win.runs:
        if digits < 7:
            continue
        spans.extend(m.span() for m in RX_PHONE.finditer(t, start, end))
        spans.extend(phone_spans(PHONE_NATIONAL, t, start, end, too_long))
        spans.extend(phone_spans(PHONE_SLASH, t, start, end, too_long))
        # daprd's phone-with-extension pattern: 7+ digits, spaces, then "#", "x" or "ext".
        extensions = (
            extensions or t[run_end : run_end + 1] in ("#", "x", "X") or (t[run_end : run_end + 3].lower() == "ext")
        )
    if extensions:
        spans.extend(m.span() for m in RX_PHONES_WITH_EXTS.finditer(fold(t)))
    for start, e in spans:
        # daprd's pattern may take an opening parenthesis that is not the number's
        s = start + 1 if t[start] == "(" and ")" not in t[start:e] else start
        if ndigits(t[s:e]) < 7 or glued(t, s, e) or too_long(s, e):
            continue
        add(Span(s, e, Entity.PHONE))


def _isbns(t: str, win: Windows, add: Callable[[Span], None], validate: bool) -> None:
    for key, need, check in (("ISBN10", 9, isbn10_ok), ("ISBN13", 12, isbn13_ok)):
        for m in win.finditer(F[key], t, need):
            s, e = m.span()
            if glued(t, s, e):
                continue
            if validate:
                if not check(m.group(0).replace("-", "")):
                    continue
                if key == "ISBN10" and m.group(0).count("-") < 3 and not isbn_context(t, s):
                    continue
            add(Span(s, e, Entity.ISBN))


def _ibans(t: str, win: Windows, add: Callable[[Span], None], validate: bool) -> None:
    rxs = (F["IBAN"], IBAN_GROUPED) if validate else (F["IBAN"],)
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
    for pattern in rxs:
        for m in (m for ws, we in windows for m in pattern.finditer(t, ws, we)):
            span = m.span()
            if span in seen or glued(t, *span):
                continue
            seen.add(span)
            if validate and not iban_ok(m.group(0).replace(" ", "")):
                continue
            add(Span(*span, Entity.IBAN))

