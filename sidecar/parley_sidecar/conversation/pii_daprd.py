"""daprd's PII scrubbing reproduced exactly, mistakes included: the oracle of differential tests.

:func:`scrub_like_daprd` gives what daprd 1.18 gives (``NewDefaultScrubber().ScrubTexts``, the Go
library ``aavaz-ai/pii-scrubber`` @ ``3fa450ab6973``); see ``docs/pii.md``. Nothing in the sidecar
calls it: requests are scrubbed by :class:`.pii.Scrubber`. It lives apart so that what only it
needs (daprd's patterns as they are, Go's sort) stays out of the request path. Indexes are
characters here, bytes in Go: they differ only in one corner of the interval algorithm and only
next to non-ASCII text.

It runs daprd's regular expressions unchanged, so it is as slow as they are on hostile input
(except the three rewritten in linear form, see :mod:`.pii_patterns`): test inputs only.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType

from parley_sidecar.conversation import pii_patterns as _pat
from parley_sidecar.conversation.pii_entities import DEFAULT_ENTITIES, Entity
from parley_sidecar.conversation.pii_gosort import go_sort_slice
from parley_sidecar.conversation.pii_spans import (
    Span,
    drop_ignored,
    find_emails,
    fold,
    ignored_spans,
    resolve_overlaps,
    splice,
)

__all__ = ["scrub_like_daprd"]


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
        Entity.EMAIL: (lambda _text, f: find_emails(f),),
        Entity.IP: (_regex_finder(_pat.GO_IP),),
        Entity.ZIP_CODE: (_regex_finder(_pat.GO_ZIP_CODE),),
        Entity.PO_BOX: (_regex_finder(_pat.GO_PO_BOX, folded=True),),
        Entity.SSN: (_regex_finder(_pat.GO_SSN),),
        Entity.ISBN: (_regex_finder(_pat.GO_ISBN10), _regex_finder(_pat.GO_ISBN13)),
        Entity.MAC_ADDRESS: (_regex_finder(_pat.GO_MAC_ADDRESS),),
        Entity.IBAN: (_regex_finder(_pat.GO_IBAN),),
    }
)


def _go_less(a: Span, b: Span) -> bool:
    return a.start < b.start or (a.start == b.start and a.end >= b.end)


def _sort_like_go(spans: list[Span]) -> list[Span]:
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
    folded = fold(text)
    spans: list[Span] = []
    for entity in Entity:  # daprd's order
        if entity in wanted:
            for finder in _DAPRD_FINDERS[entity]:
                spans.extend(Span(s, e, entity) for s, e in finder(text, folded))
    ordered = _sort_like_go(spans)
    kept = drop_ignored(resolve_overlaps(ordered), ignored_spans(text))
    return splice(text, kept, stop_when_stuck=True)

