"""Output PII scrubbing on a stream: no entity ever leaves split across pieces.

A streamed answer reaches the sidecar a few characters at a time, and an e-mail address or a card
number may arrive in three pieces. Scrubbing each piece alone would let every fragment through.
Holding the whole answer would end streaming. So :class:`Holdback` keeps back only the tail that
could still become (part of) an entity once more text arrives, and releases the rest at once;
:class:`StreamScrub` scrubs what is released with the request's ordinary scrubber
(:class:`.scrubbing.Scrub`), so the stream is scrubbed by the same rules as a whole answer.

What can be released, raw, is the text before a cut that

* follows a whitespace character: e-mail, IP, MAC addresses and the like have none, so a cut there
  never splits one, and the scrubber sees the start of the text after it as a fresh one;
* has at least :data:`TAIL` characters after it, or :data:`TAIL_NEAR_DIGITS` when a digit is in
  the :data:`TAIL_NEAR_DIGITS` characters before it. Every entity that spans whitespace has
  digits (a street address, a phone or card number in groups, a grouped IBAN, a PO box, an ISBN
  after the word "ISBN"), and what comes before its digits ("P.O. Box ", "ISBN ", "+", "(") is
  shorter than :data:`TAIL`, so text that arrives later cannot form one that reaches back over
  the cut; an entity whose digits are already here ends within :data:`TAIL_NEAR_DIGITS`;
* is stable: scrubbing the text before the cut and the text after it apart gives what scrubbing
  both together gives. This catches any entity, date or context the rules above did not foresee
  (and anything the scrubber learns later), at the price of scrubbing the held text again.

The stream's end flushes and scrubs what is held. ``docs/pii.md`` gives the cost in characters
held and in time. Tool calls are held whole and scrubbed at the end, as a whole answer's are:
their arguments are JSON that is scrubbed by key and value, which a fragment cannot be, and
clients use a call only once its arguments are complete anyway.

Fail closed, as the whole-answer scrubbing does: a scrubber failure, or a piece with a field this
module does not know, ends the stream with ``InvokeError`` and nothing unscrubbed goes out.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable
from typing import NoReturn

from parley_sidecar import errors
from parley_sidecar.components import base, streaming
from parley_sidecar.conversation import scrubbing

__all__ = ["MAX_HELD", "TAIL", "TAIL_NEAR_DIGITS", "Holdback", "StreamScrub"]

TAIL = 16
"""Characters kept back after a cut when no digit is near it: longer than any lead-in of an entity
before its digits ("P.O. Box ", "ISBN-13: " and the 12 characters the ISBN rule looks back)."""
TAIL_NEAR_DIGITS = 64
"""Characters kept back after a cut with a digit in the 64 before it: longer than a street address
of four words or a phone number with an extension, in groups."""
MAX_HELD = 2048
"""Characters held at most with no whitespace to cut at (a long URL or a base64 blob): past this,
the text is cut :data:`FORCED_TAIL` characters from its end if that cut is stable, else the stream
is refused (fail closed) rather than hold without bound."""
FORCED_TAIL = 320
"""Longer than the longest e-mail address (254 characters), the one entity with no whitespace that
can be long."""

log = logging.getLogger("parley.conversation")

_DIGIT = re.compile(r"\d")
_DELTA_FIELDS = frozenset({"content", "tool_calls", "finish_reason", "usage", "model", "served_model"})
_UNKNOWN_FIELDS = {f.name for f in dataclasses.fields(base.Delta)} - _DELTA_FIELDS
"""A field added to ``base.Delta`` that nobody decided how to scrub: every scrubbed stream refuses."""


class Holdback:
    """Decides which of the text seen so far can be released (raw); scrubs nothing itself.

    ``check`` scrubs a text without counting (for the stability test)."""

    __slots__ = ("_check", "_held", "_recent")

    def __init__(self, check: Callable[[str], str]) -> None:
        self._check = check
        self._held = ""
        self._recent = ""
        """The last released characters, for the digit test of the next cut."""

    @property
    def held(self) -> int:
        """Characters held back now."""
        return len(self._held)

    def feed(self, text: str) -> str:
        """Add ``text``; return what can go out now (possibly nothing), to be scrubbed."""
        self._held += text
        cut = self._cut()
        if cut <= 0:
            return ""
        out, self._held = self._held[:cut], self._held[cut:]
        self._recent = (self._recent + out)[-TAIL_NEAR_DIGITS:]
        return out

    def flush(self) -> str:
        """The end of the stream: everything held."""
        out, self._held = self._held, ""
        return out

    def _stable(self, cut: int) -> bool:
        held = self._held
        return self._check(held[:cut]) + self._check(held[cut:]) == self._check(held)

    def _cut(self) -> int:
        held = self._held
        end = len(held)
        position = end - TAIL
        unstable = 0
        while position > 0 and unstable < 3:
            # the latest cut at or before ``position`` that follows a whitespace character
            while position > 0 and not held[position - 1].isspace():
                position -= 1
            if position <= 0:
                break
            before = (self._recent + held[:position])[-TAIL_NEAR_DIGITS:]
            if _DIGIT.search(before) is not None and end - position < TAIL_NEAR_DIGITS:
                position = end - TAIL_NEAR_DIGITS  # then the first whitespace before it
                continue
            if self._stable(position):
                return position
            unstable += 1
            position -= 1
        if end > MAX_HELD:
            forced = end - FORCED_TAIL
            if self._stable(forced):
                return forced
            raise ValueError(f"no safe place to cut {end} characters of streamed text")
        return 0


class StreamScrub:
    """Scrubs a stream's pieces in passing: text through a :class:`Holdback`, tool calls held
    whole to the end, the end (finish reason, usage) after what was held."""

    __slots__ = ("_calls", "_finish", "_model", "_scrub", "_served", "_text", "_usage")

    def __init__(self, scrub: scrubbing.Scrub) -> None:
        self._scrub = scrub
        self._text = Holdback(scrub.peek)
        self._calls = streaming.Assembler()
        self._finish = ""
        self._usage: base.Usage | None = None
        self._model = ""
        self._served = ""  # a model's name, as ``_model``: not scrubbed

    @property
    def held(self) -> int:
        """Characters of text held back now."""
        return self._text.held

    def feed(self, delta: base.Delta) -> base.Delta | None:
        """The piece to send for ``delta`` now, if any."""
        if _UNKNOWN_FIELDS:
            self._refuse(f"a streamed piece has fields nobody decided how to scrub: {sorted(_UNKNOWN_FIELDS)}")
        self._model = delta.model or self._model
        self._served = delta.served_model or self._served
        if delta.tool_calls:
            self._calls.add(base.Delta(tool_calls=delta.tool_calls))
        self._finish = delta.finish_reason or self._finish
        self._usage = delta.usage if delta.usage is not None else self._usage
        if not delta.content:
            return None
        try:
            released = self._text.feed(delta.content)
        except errors.ParleyError:
            raise
        except Exception as exc:  # no safe cut in a text held too long: refuse
            self._refuse(str(exc))
        if not released:
            return None
        return base.Delta(content=self._scrub.text(released), model=delta.model)

    def finish(self) -> list[base.Delta]:
        """The pieces that end the stream: the rest of the text, the tool calls, the end."""
        out: list[base.Delta] = []
        rest = self._text.flush()
        if rest:
            out.append(base.Delta(content=self._scrub.text(rest), model=self._model))
        calls = self._calls.response().outputs[0].choices[0].tool_calls
        if calls:
            whole = base.ConverseResponse(outputs=(base.Output((base.Choice("tool_calls", 0, "", calls),)),))
            scrubbed = self._scrub.response(whole).outputs[0].choices[0].tool_calls
            out.append(base.Delta(
                tool_calls=tuple(base.ToolCallDelta(i, c.id, c.name, c.arguments, c.extra_content)
                                 for i, c in enumerate(scrubbed)),
                model=self._model))
        if self._finish or self._usage is not None:
            out.append(base.Delta(finish_reason=self._finish, usage=self._usage, model=self._model,
                                  served_model=self._served))
        return out

    def _refuse(self, why: str) -> NoReturn:
        log.error("PII scrubbing failed for component %r: %s", self._scrub.name, why)
        raise errors.InvokeError(self._scrub.name, "PII scrubbing failed; request refused")
