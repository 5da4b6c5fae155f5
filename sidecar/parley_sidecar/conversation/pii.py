"""PII scrubbing for ``scrubPII``: daprd's entities, tokens and interval algorithm, fewer mistakes.

daprd scrubs with the Go library ``github.com/aavaz-ai/pii-scrubber``, pinned by dapr 1.18 at
``aavaz-ai/pii-scrubber`` @ ``3fa450ab697374f26c7af78ffc6ebc79f2374d04`` (files ``scrubber.go``,
``entity_scrubber.go``, ``regex.go``). Its regular expressions come from ``mingrammer/commonregex`` @
``16880c65af7225cc9182d5ba383bf5c4ed71af76``. This package is an independent Python implementation:
the regular expressions are copied as data (see :mod:`.pii_patterns`), the code is not.

:class:`Scrubber` is what parley uses. It runs daprd's detectors and daprd's interval algorithm
and prints daprd's tokens, so daprd's own test strings come out byte for byte the same; but it
drops daprd's false hits (dates, times, versions, prices, UUIDs, 4-digit numbers, numbers that
fail their checksum, fragments of longer numbers), adds what daprd misses (whole IPv6 addresses,
international and grouped phone numbers, grouped IBANs and card numbers, non-ASCII e-mail
addresses) and never stops scrubbing half way through a text. Every difference is listed in
``docs/pii.md``. Its time is linear in the text's length, whatever the text.

The modules behind it: :mod:`.pii_entities` (names and tokens), :mod:`.pii_detect` (candidates)
with :mod:`.pii_rules` and :mod:`.pii_protected`, :mod:`.pii_spans` (daprd's interval algorithm)
and :mod:`.pii_checksums`. daprd's exact answers, for differential tests, are
:func:`.pii_daprd.scrub_like_daprd`.

Pure functions of their input: no I/O, no logging, no state kept between calls.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from types import MappingProxyType

from parley_sidecar.conversation.pii_detect import candidates
from parley_sidecar.conversation.pii_entities import DEFAULT_ENTITIES, TOKENS, Entity, parse_entities
from parley_sidecar.conversation.pii_spans import drop_ignored, ignored_spans, resolve_overlaps, splice

__all__ = [
    "DEFAULT_ENTITIES",
    "TOKENS",
    "Entity",
    "Scrubber",
    "parse_entities",
]


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
        spans = candidates(text, validate=self._validate)
        if not spans:
            return text, Counter()
        prio = self._priority
        spans.sort(key=lambda s: (s.start, -s.end, -prio[s.entity]))
        kept = drop_ignored(resolve_overlaps(spans), ignored_spans(text))
        if len(self._entities) < len(Entity):
            # Every entity is detected, so that a card number is not taken for a phone number just
            # because cards were not asked for; only the chosen ones are replaced.
            kept = [s for s in kept if s.entity in self._entities]
        return splice(text, kept, stop_when_stuck=False)
