"""Make what leaves the sidecar safe when a request asks for PII scrubbing; fail closed.

What is scrubbed (``docs/pii.md``, "What is scrubbed"):

* an input that asks (alpha1 ``scrubPII`` / alpha2 ``scrubPii`` on the input): every string of
  its messages before they go to the provider — texts, tool results, tool-call ids, names and
  arguments, message names;
* a request that asks anywhere (on an input or on the request): also what the sidecar adds or
  forwards on the request's behalf — the history that conversation memory prepends, alpha2's
  ``metadata``, the tool definitions (names, descriptions, keys and strings of parameter schemas), the
  tool choice and the response format's keys and strings;
* a request that asks on the request (as daprd): every answer's content, and (beyond daprd) its
  tool calls.

Tool-call arguments that are JSON have their keys, strings and numbers scrubbed (a card number
may be a JSON number: a number that holds PII becomes a string with the token); arguments that
are not JSON are scrubbed as text.

Fail closed: if scrubbing raises, or a request or message holds something this module does not
know how to scrub (a new field, a new part type), the request fails with
``ERR_CONVERSATION_INVOKE`` and nothing is sent. Texts larger than :data:`OFFLOAD_CHARS` are
scrubbed in a worker thread so that the event loop (health checks, other requests) keeps
answering; the redaction counter is updated back on the loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from parley_sidecar import errors
from parley_sidecar.components import base
from parley_sidecar.components.store import Entry
from parley_sidecar.conversation import pii_entities
from parley_sidecar.metrics import Metrics

if TYPE_CHECKING:
    from parley_sidecar.conversation import pii

__all__ = ["OFFLOAD_CHARS", "Scrub", "Scrubbing", "size_of_messages", "size_of_response"]

log = logging.getLogger("parley.conversation")

OFFLOAD_CHARS = 16 * 1024
"""Above this many characters to scrub, the work runs in a worker thread. bench/pii_throughput.py:
the most hostile text scrubs at about 0.3 MB/s, so below this the loop waits 50 ms at worst
(ordinary text: a few ms, less than a thread hand-off is worth)."""

_P = ParamSpec("_P")
_T = TypeVar("_T")

# Every field of a provider request, and how it is covered when a request asks for scrubbing.
# A field missing here makes every such request fail (see Scrub.request): add it, deciding.
_REQUEST_FIELDS = frozenset({
    "messages",  # scrubbed per input, by the API version's module, and history in the pipeline
    "tools", "tool_choice", "metadata", "response_format",  # scrubbed by Scrub.request
    "temperature", "prompt_cache_retention", "max_tokens",  # numbers the client set: no text
    "top_p", "seed",  # numbers too (the OpenAI-compatible API's)
    "stop", "user",  # texts sent upstream: scrubbed by Scrub.request
    "model", "api_key",  # per-request overrides, never forwarded as text (pipeline.OVERRIDE_KEYS)
})


class _Unscrubbable(Exception):
    """Something would leave the sidecar that this module cannot scrub."""


def _fail_closed(method: Callable[Concatenate[Scrub, _P], _T]) -> Callable[Concatenate[Scrub, _P], _T]:
    def guarded(scrub: Scrub, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return method(scrub, *args, **kwargs)
        except errors.ParleyError:
            raise
        except Exception as exc:  # the scrubber broke, or met something it cannot scrub: refuse
            log.error("PII scrubbing failed for component %r: %s", scrub.name, type(exc).__name__)
            raise errors.InvokeError(scrub.name, "PII scrubbing failed; request refused") from None

    guarded.__doc__ = method.__doc__
    return guarded


class Scrub:
    """Scrubs one direction of one request, counting what it replaced. One thread at a time."""

    __slots__ = ("_scrubber", "found", "name")

    def __init__(self, name: str, scrubber: pii.Scrubber) -> None:
        self.name = name
        self._scrubber = scrubber
        self.found: Counter[pii_entities.Entity] = Counter()

    def _text(self, text: str) -> str:
        if not text:
            return text
        scrubbed, found = self._scrubber.scrub(text)
        self.found.update(found)
        return scrubbed

    @_fail_closed
    def text(self, text: str) -> str:
        return self._text(text)

    @_fail_closed
    def peek(self, text: str) -> str:
        """``text`` scrubbed without counting what was found: for a stream's look at text it has
        not released yet (``pii_stream``), so nothing is counted twice."""
        return self._scrubber.scrub(text)[0] if text else text

    @_fail_closed
    def arguments(self, arguments: str) -> str:
        """Tool-call arguments: JSON keys, strings and numbers; anything else as text."""
        if not arguments.strip():
            return arguments
        try:
            value = json.loads(arguments, parse_int=_JsonNumber, parse_float=_JsonNumber,
                               object_pairs_hook=_JsonObject)
        except ValueError:
            return self._text(arguments)
        # RecursionError (nesting deeper than the parser's limit) is not caught: refused.
        changed, result = self._json(value)
        return json.dumps(result, ensure_ascii=False) if changed else arguments

    def _json(self, item: Any) -> tuple[bool, Any]:
        if isinstance(item, _JsonNumber):
            scrubbed = self._number(item)
            return scrubbed != item, scrubbed if scrubbed != item else item.value()
        if isinstance(item, str):
            scrubbed = self._text(item)
            return scrubbed != item, scrubbed
        if isinstance(item, list):
            pairs = [self._json(v) for v in item]
            return any(c for c, _ in pairs), [v for _, v in pairs]
        if isinstance(item, dict):
            # a repeated key hides its first value from the parsed view: the original text, which
            # still holds it, must not be sent, so the document is rewritten (without it)
            changed, out = isinstance(item, _JsonObject) and item.repeated, {}
            for key, v in item.items():
                new_key = self._text(key)
                c, out[new_key] = self._json(v)
                changed = changed or c or new_key != key
            return changed, out
        return False, item  # true, false, null

    def _number(self, number: _JsonNumber) -> str:
        """A JSON number as the scrubber sees it alone; its integer part too (a card number
        written ``4111111111111111.0`` is glued to its fraction as text)."""
        scrubbed = self._text(number)
        if scrubbed != number:
            return scrubbed
        whole = number.split(".")[0].split("e")[0].split("E")[0]
        scrubbed_whole = self._text(whole)
        return number if scrubbed_whole == whole else scrubbed_whole + number[len(whole):]

    @_fail_closed
    def message(self, message: base.Message) -> base.Message:
        return dataclasses.replace(message, name=self._text(message.name),
                                   parts=tuple(self._part(p) for p in message.parts))

    def _part(self, part: base.Part) -> base.Part:
        if isinstance(part, base.TextPart):
            return base.TextPart(self._text(part.text))
        if isinstance(part, base.ToolCall):
            return self._call(part)
        if isinstance(part, base.ToolResult):
            return dataclasses.replace(part, tool_id=self._text(part.tool_id), name=self._text(part.name),
                                       content=self._text(part.content))
        raise _Unscrubbable(type(part).__name__)

    def _call(self, call: base.ToolCall) -> base.ToolCall:
        # extra_content stays as it is: the provider's opaque state (Gemini's encrypted thought
        # signature), which the provider checks byte for byte and which holds no text of the user's
        return dataclasses.replace(call, id=self._text(call.id), name=self._text(call.name),
                                   arguments=self.arguments(call.arguments))

    def messages(self, messages: tuple[base.Message, ...]) -> tuple[base.Message, ...]:
        return tuple(self.message(m) for m in messages)

    @_fail_closed
    def request(self, request: base.ConverseRequest) -> base.ConverseRequest:
        """What a request sends beyond its inputs' messages: metadata, tools, tool choice,
        response format. Refuses a request type with a field nobody decided about."""
        unknown = {f.name for f in dataclasses.fields(request)} - _REQUEST_FIELDS
        if unknown:
            raise _Unscrubbable(", ".join(sorted(unknown)))
        tools = tuple(
            dataclasses.replace(t, name=self._text(t.name), description=self._text(t.description),
                                parameters=self._schema(t.parameters))
            for t in request.tools
        )
        return dataclasses.replace(
            request,
            tools=tools,
            tool_choice=self._text(request.tool_choice) if request.tool_choice else request.tool_choice,
            metadata={self._text(k): self._text(v) for k, v in request.metadata.items()},
            response_format=self._schema(request.response_format) if request.response_format else None,
            stop=tuple(self._text(s) for s in request.stop),
            user=self._text(request.user) if request.user else "",
        )

    def _schema(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        """The keys and strings of a JSON schema (property names, descriptions, enums, defaults,
        examples). Numbers are constraints (``maxLength``), not data: they stay."""

        def walk(item: Any) -> Any:
            if isinstance(item, str):
                return self._text(item)
            if isinstance(item, list):
                return [walk(v) for v in item]
            if isinstance(item, Mapping):
                return {self._text(k): walk(v) for k, v in item.items()}
            return item

        return {self._text(k): walk(v) for k, v in schema.items()}

    @_fail_closed
    def response(self, response: base.ConverseResponse) -> base.ConverseResponse:
        """Answers: content (as daprd) and tool calls (ids, names, arguments)."""
        return dataclasses.replace(response, outputs=tuple(
            base.Output(tuple(self._choice(c) for c in output.choices)) for output in response.outputs))

    def _choice(self, choice: base.Choice) -> base.Choice:
        return dataclasses.replace(choice, content=self._text(choice.content),
                                   tool_calls=tuple(self._call(t) for t in choice.tool_calls))


class _JsonObject(dict[str, Any]):
    """A JSON object that knows whether a key was repeated in it."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        self.repeated = len(self) < len(pairs)


class _JsonNumber(str):
    """A JSON number kept as its source text, so that its digits can be scrubbed as written."""

    __slots__ = ()

    def value(self) -> int | float:
        try:
            return int(self)
        except ValueError:
            return float(self)


class Scrubbing:
    """The scrubbers of a pipeline, one per entity set (built once), and the redaction counter."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._scrubbers: dict[frozenset[pii_entities.Entity] | tuple[str, ...], pii.Scrubber] = {}

    def scrubber(self, entry: Entry, requested: frozenset[pii_entities.Entity] | None) -> pii.Scrubber:
        """The request's entity set (``metadata.piiEntities``), else the component's; the names
        were checked at load (``pipeline.check_settings``), so they are parsed only when first seen."""
        key: frozenset[pii_entities.Entity] | tuple[str, ...] = (
            requested if requested is not None else entry.settings.pii_entities)
        scrubber = self._scrubbers.get(key)
        if scrubber is None:
            if isinstance(key, frozenset):
                entities = key
            else:
                entities = pii_entities.parse_entities(",".join(key)) if key else pii_entities.DEFAULT_ENTITIES
            # The detectors (~7 ms and 0.2 MB of imports) load with the first scrubbing request.
            from parley_sidecar.conversation import pii

            scrubber = self._scrubbers[key] = pii.Scrubber(entities)
        return scrubber

    def start(self, name: str, entry: Entry, requested: frozenset[pii_entities.Entity] | None) -> Scrub:
        try:
            return Scrub(name, self.scrubber(entry, requested))
        except Exception as exc:
            log.error("PII scrubber unavailable for component %r: %s", name, type(exc).__name__)
            raise errors.InvokeError(name, "PII scrubbing failed; request refused") from None

    def count(self, scrub: Scrub, direction: str) -> None:
        for entity, count in scrub.found.items():
            self._metrics.redactions.inc((entity.value, direction), count)
        scrub.found.clear()

    async def run(self, name: str, entry: Entry, requested: frozenset[pii_entities.Entity] | None, direction: str,
                  work: Callable[[Scrub], _T], size: int) -> _T:
        """``work`` with a fresh :class:`Scrub`; in a worker thread when ``size`` (characters to
        scrub) is over :data:`OFFLOAD_CHARS`. Counts what was redacted once it is done."""
        scrub = self.start(name, entry, requested)
        result = await asyncio.to_thread(work, scrub) if size > OFFLOAD_CHARS else work(scrub)
        self.count(scrub, direction)
        return result


def size_of_messages(messages: tuple[base.Message, ...]) -> int:
    total = 0
    for m in messages:
        for p in m.parts:
            if isinstance(p, base.TextPart):
                total += len(p.text)
            elif isinstance(p, base.ToolCall):
                total += len(p.arguments)
            elif isinstance(p, base.ToolResult):
                total += len(p.content)
    return total


def size_of_response(response: base.ConverseResponse) -> int:
    return sum(len(c.content) + sum(len(t.arguments) for t in c.tool_calls)
               for o in response.outputs for c in o.choices)
