"""alpha2's SSE stream writes a chunk of one text part spliced around its encoded text
(``api/dapr_sse._text_chunk``): every event must still be byte for byte what encoding the message
(``wire.encode``, protojson's output) gives, whatever the text holds and whatever else the chunk
carries (those take that path)."""

from __future__ import annotations

import random

from parley_sidecar.api import dapr_sse, dapr_stream, sse, wire
from parley_sidecar.components import base

ALPHABET = ['a', ' ', '"', '\\', '\n', '\t', '\x01', '\x7f', 'é', '中', '😀', '\u2028', '/', '<', '{']


def test_every_chunk_event_is_what_encoding_the_message_gives() -> None:
    rng = random.Random(16)
    deltas = [base.Delta(content="x"), base.Delta(content=""), base.Delta(finish_reason="stop"),
              base.Delta(content="done", finish_reason="length"),
              base.Delta(tool_calls=(base.ToolCallDelta(0, "call_1", "get", '{"a":1}'),)),
              base.Delta(content="and a call", tool_calls=(base.ToolCallDelta(1, "", "", "}"),))]
    deltas += [base.Delta(content="".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 12))))
               for _ in range(300)]
    for index, delta in enumerate(deltas):
        message = dapr_stream._chunk(delta, index % 3 if index < 20 else index)
        if message is None:
            continue
        assert dapr_sse._event(message) == sse.event(wire.encode(message)), delta
    # a chunk the fast path does not take (not a delta) and a complete message: the same path as before
    message = dapr_stream._chunk(base.Delta(content="x"), 0)
    assert message is not None
    message.chunk.is_delta = False
    assert dapr_sse._event(message) == sse.event(wire.encode(message))
