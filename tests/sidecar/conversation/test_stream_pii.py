"""Output scrubbing on streams: entities split across pieces never get through, at any split point.

Each text is streamed cut at every split point (two pieces), one character per piece, and in
word-sized pieces; what reaches the consumer must hold no raw entity, at any moment, and must
equal scrubbing the whole text at once.
"""

from __future__ import annotations

import random
import re

import pytest

from parley_sidecar import errors
from parley_sidecar.components import base
from parley_sidecar.conversation import pii, pii_stream, scrubbing

# (text, the raw entities in it): every entity type, with context around it.
TEXTS: list[tuple[str, tuple[str, ...]]] = [
    ("Write to jane.doe+news@example.co.uk today.", ("jane.doe+news@example.co.uk",)),
    ("Mail jörg@bücher.de or call 030/901820.", ("jörg@bücher.de", "030/901820")),
    ("Call +1 415 555 2671 or (415) 555-2671 ext 12 now", ("+1 415 555 2671", "(415) 555-2671 ext 12")),
    ("card 4111 1111 1111 1111 ok", ("4111 1111 1111 1111",)),
    ("card 4111111111111111 ok", ("4111111111111111",)),
    ("server 10.8.9.1 and 2001:db8:85a3::8a2e:370:7334 down", ("10.8.9.1", "2001:db8:85a3::8a2e:370:7334")),
    ("fe80::1 ok", ("fe80::1",)),
    ("I live at 123 Main Street, Springfield 62704", ("123 Main Street", "62704")),
    ("at 1234 North Martin Luther Boulevard apt", ("1234 North Martin Luther Boulevard",)),
    ("PO Box 1234 ok and P.O. Box 99 here", ("PO Box 1234", "P.O. Box 99")),
    ("ssn 078-05-1120 ok", ("078-05-1120",)),
    ("ISBN 978-3-16-148410-0 book", ("978-3-16-148410-0",)),
    ("MAC 00:1A:2B:3C:4D:5E here", ("00:1A:2B:3C:4D:5E",)),
    ("IBAN DE89 3704 0044 0532 0130 00 thanks", ("DE89 3704 0044 0532 0130 00",)),
    ("IBAN DE89370400440532013000 thanks", ("DE89370400440532013000",)),
    ("zip 12345-6789 and 94105", ("12345-6789", "94105")),
]
SCRUBBER = pii.Scrubber()


def whole(text: str) -> str:
    return SCRUBBER.scrub(text)[0]


def fragments(entity: str) -> list[str]:
    """What must never be seen: the entity, and the digits or characters that identify it."""
    return [entity, re.sub(r"\D", "", entity)] if sum(c.isdigit() for c in entity) >= 7 else [entity]


def stream(pieces: list[str]) -> tuple[list[str], scrubbing.Scrub]:
    """What the consumer receives, piece by piece (the end's pieces last)."""
    scrub = scrubbing.Scrub("c", SCRUBBER)
    scrubber = pii_stream.StreamScrub(scrub)
    out: list[str] = []
    for piece in pieces:
        sent = scrubber.feed(base.Delta(content=piece))
        if sent is not None:
            out.append(sent.content)
    out.extend(delta.content for delta in scrubber.finish() if delta.content)
    return out, scrub


def check(text: str, entities: tuple[str, ...], pieces: list[str]) -> None:
    assert "".join(pieces) == text
    out, _ = stream(pieces)
    seen = ""
    for piece in out:
        seen += piece
        flat = re.sub(r"\s", "", seen)
        for entity in entities:
            for fragment in fragments(entity):
                assert fragment not in seen and re.sub(r"\s", "", fragment) not in flat, (pieces, out)
    assert seen == whole(text), pieces


@pytest.mark.parametrize(("text", "entities"), TEXTS, ids=[t for t, _ in TEXTS])
def test_every_split_point_of_every_entity(text: str, entities: tuple[str, ...]) -> None:
    for entity in entities:  # the texts really hold what they claim
        assert entity not in whole(text)
    for cut in range(len(text) + 1):
        check(text, entities, [text[:cut], text[cut:]])
    for first in range(len(text)):  # three pieces: every cut inside, and one around, the entity
        for second in range(first + 1, len(text), 3):
            check(text, entities, [text[:first], text[first:second], text[second:]])


@pytest.mark.parametrize(("text", "entities"), TEXTS, ids=[t for t, _ in TEXTS])
def test_a_character_at_a_time(text: str, entities: tuple[str, ...]) -> None:
    check(text, entities, list(text))


def test_a_long_answer_in_random_pieces_is_scrubbed_as_a_whole() -> None:
    rng = random.Random(16)
    sentences = [t for t, _ in TEXTS] + ["The weather is fine, thanks for asking.", "Dates: 2024-01-15, v1.2.3."]
    text = " ".join(rng.choice(sentences) for _ in range(200))
    entities = tuple(e for _, es in TEXTS for e in es)
    for _ in range(5):
        pieces, at = [], 0
        while at < len(text):
            size = rng.randint(1, 12)
            pieces.append(text[at:at + size])
            at += size
        check(text, entities, pieces)


def test_text_goes_out_at_once_where_nothing_can_become_an_entity() -> None:
    words = ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "and", "keeps", "running", "far", "away", ""]
    out, _ = stream([w + " " for w in words] * 3)
    assert len(out) > len(words)  # released as it came, not held to the end


def test_what_is_held_is_bounded_by_the_tail() -> None:
    scrubber = pii_stream.StreamScrub(scrubbing.Scrub("c", SCRUBBER))
    most = 0
    for word in ("plain words only here " * 200).split(" "):
        scrubber.feed(base.Delta(content=word + " "))
        most = max(most, scrubber.held)
    assert most <= pii_stream.TAIL + len("plain ")


def test_redactions_are_counted_once() -> None:
    _, scrub = stream(list("mail a@example.com and b@example.com, call +1 415 555 2671"))
    assert scrub.found == {pii.Entity.EMAIL: 2, pii.Entity.PHONE: 1}


def test_tool_calls_are_held_and_scrubbed_whole_at_the_end() -> None:
    scrubber = pii_stream.StreamScrub(scrubbing.Scrub("c", SCRUBBER))
    assert scrubber.feed(base.Delta(tool_calls=(base.ToolCallDelta(0, "call_1", "send", '{"to": "jane@ex'),))) is None
    assert scrubber.feed(base.Delta(tool_calls=(base.ToolCallDelta(0, arguments='ample.com"}'),))) is None
    end = scrubber.finish()
    assert [d.tool_calls for d in end if d.tool_calls] == [
        (base.ToolCallDelta(0, "call_1", "send", '{"to": "<EMAIL_ADDRESS>"}'),)]


def test_finish_and_usage_come_after_what_was_held() -> None:
    scrubber = pii_stream.StreamScrub(scrubbing.Scrub("c", SCRUBBER))
    assert scrubber.feed(base.Delta(content="jane@example.com", finish_reason="stop",
                                    usage=base.Usage(3, 2, 5))) is None
    end = scrubber.finish()
    assert [d.content for d in end] == ["<EMAIL_ADDRESS>", ""]
    assert (end[-1].finish_reason, end[-1].usage) == ("stop", base.Usage(3, 2, 5))


def test_an_endless_token_is_cut_or_refused_never_held_without_bound() -> None:
    scrubber = pii_stream.StreamScrub(scrubbing.Scrub("c", SCRUBBER))
    released = 0
    for _ in range(400):
        sent = scrubber.feed(base.Delta(content="abcdefghij"))
        released += len(sent.content) if sent is not None else 0
    assert scrubber.held <= pii_stream.MAX_HELD
    assert released >= 4000 - pii_stream.MAX_HELD


class _Broken(pii.Scrubber):
    def scrub(self, text: str) -> tuple[str, object]:  # type: ignore[override]
        raise RuntimeError("scrubber bug")


def test_a_failing_scrubber_refuses_the_stream() -> None:
    scrubber = pii_stream.StreamScrub(scrubbing.Scrub("c", _Broken()))
    with pytest.raises(errors.InvokeError, match="PII scrubbing failed"):
        for word in ("many words " * 20).split(" "):
            scrubber.feed(base.Delta(content=word + " "))
