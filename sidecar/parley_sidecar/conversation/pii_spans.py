"""What the scrubber and the daprd oracle share: spans, daprd's interval algorithm, the finders
of daprd's ignored entities (links, git URLs) and of e-mail addresses, in linear time.

daprd's algorithm (``pii-scrubber`` ``scrubber.go``): collect candidate intervals, sort them,
make them non-overlapping, drop those that touch a link or git URL, then copy the text replacing
each interval by its token. The quirks are kept here, parametrised where parley differs.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

from parley_sidecar.conversation import pii_patterns as _pat
from parley_sidecar.conversation.pii_entities import TOKENS, Entity

__all__ = [
    "DIGITS",
    "DIGITS_OR_UNDERSCORE",
    "HAS_DIGIT",
    "RX_STRICT_LINK",
    "WORD",
    "Span",
    "drop_ignored",
    "find_emails",
    "find_git_repos",
    "fold",
    "ignored_spans",
    "ndigits",
    "resolve_overlaps",
    "splice",
]


class Span(NamedTuple):
    start: int
    end: int
    entity: Entity


_FOLD = str.maketrans(_pat.FOLD_TRANSLATION)
DIGITS = "0123456789"
DIGITS_OR_UNDERSCORE = frozenset("0123456789_")
WORD = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_DROP_DIGITS = str.maketrans("", "", DIGITS)
HAS_DIGIT = re.compile(r"\d", re.ASCII)


def fold(text: str) -> str:
    """RE2's ``(?i)`` also folds U+212A and U+017F onto k and s; same length, same offsets."""
    if "\u212a" in text or "\u017f" in text:
        return text.translate(_FOLD)
    return text


def ndigits(s: str) -> int:
    return len(s) - len(s.translate(_DROP_DIGITS))


def resolve_overlaps(ordered: Sequence[Span]) -> list[Span]:
    """daprd's "make intervals non overlapping" loop, quirks included.

    ``prev`` is the previous interval *of the sorted list*, even when that one was dropped, and
    an interval that overlaps it is cut to start one character *after* its end (so that
    character stays in clear).
    """
    out: list[Span] = []
    prev_end = -1
    for i, span in enumerate(ordered):
        start, end = span.start, span.end
        if i and start <= prev_end:
            if prev_end >= end:
                prev_end = end
                continue
            start = prev_end + 1
        out.append(Span(start, end, span.entity))
        prev_end = end
    return out


def drop_ignored(spans: Sequence[Span], ignored: Sequence[tuple[int, int]]) -> list[Span]:
    """daprd's removal of intervals that touch a link or a git URL (a literal port)."""
    if not ignored:
        return list(spans)
    kept: list[Span] = []
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


def splice(text: str, spans: Sequence[Span], *, stop_when_stuck: bool) -> tuple[str, Counter[Entity]]:
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


def ignored_spans(text: str) -> list[tuple[int, int]]:
    """Matches of daprd's ignored entities (STRICT_LINK, GIT_REPO), sorted as daprd sorts them."""
    spans: list[tuple[int, int]] = []
    if "://" in text:
        spans.extend(m.span() for m in RX_STRICT_LINK.finditer(text))
    if ".git" in text:
        spans.extend(find_git_repos(text))
    spans.sort(key=lambda s: (s[0], -s[1]))
    return spans


RX_STRICT_LINK = _pat.compile_go(_pat.STRICT_LINK_LINEAR)
_RX_GIT_REPO = _pat.compile_go(_pat.GO_GIT_REPO)
_GIT_CLASS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.@:/-~")
_GIT_CLASS_RUN = re.compile(r"[\w.@:/\-~]*", re.ASCII)


def find_git_repos(text: str) -> list[tuple[int, int]]:
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


def find_emails(folded: str, *, unicode: bool = False) -> list[tuple[int, int]]:
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

