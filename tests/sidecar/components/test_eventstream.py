"""The AWS event-stream decoder against an independent encoder (``tests.fakes.eventstream``)."""

from __future__ import annotations

import struct
import zlib

import pytest

from parley_sidecar import errors
from parley_sidecar.components import eventstream
from tests.fakes import eventstream as wire
from tests.fakes import recordings


def decode(pieces: list[bytes], max_message: int = 1 << 20) -> list[eventstream.Message]:
    decoder = eventstream.Decoder(provider="aws bedrock", max_message=max_message)
    return [message for piece in pieces for message in decoder.feed(piece)]


def test_messages_however_the_bytes_are_cut() -> None:
    body = b"".join(recordings.bedrock_frames("bedrock_stream_tools.json"))
    whole = decode([body])
    assert [m.headers[":event-type"] for m in whole][:3] == ["messageStart", "contentBlockDelta", "contentBlockDelta"]
    assert whole[1].payload == b'{"contentBlockIndex":0,"delta":{"text":"I will look up"}}'
    assert decode([body[i:i + 1] for i in range(len(body))]) == whole
    assert decode([body[i:i + 7] for i in range(0, len(body), 7)]) == whole


def test_headers_of_every_type_are_read_and_only_strings_kept() -> None:
    headers = (b"\x04bool\x00" + b"\x04byte\x02\x05" + b"\x03int\x04" + struct.pack(">i", 7)
               + b"\x04blob\x06\x00\x02ab" + b"\x04uuid\x09" + b"u" * 16 + b"\x04name\x07\x00\x02hi")
    prelude = struct.pack(">II", 12 + len(headers) + 2 + 4, len(headers))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + b"{}"
    message += struct.pack(">I", zlib.crc32(message))
    assert decode([message]) == [eventstream.Message({"name": "hi"}, b"{}")]


@pytest.mark.parametrize("flag", ["bad_prelude_crc", "bad_message_crc"])
def test_a_checksum_mismatch_after_good_messages(flag: str) -> None:
    good = wire.event("messageStart", b'{"role":"assistant"}')
    bad = wire.encode({":event-type": "contentBlockDelta"}, b"{}", **{flag: True})
    messages = eventstream.Decoder(provider="aws bedrock", max_message=1 << 10).feed(good + bad)
    assert next(messages).headers[":event-type"] == "messageStart"
    with pytest.raises(errors.ProviderError, match="checksum mismatch"):
        next(messages)


def test_a_message_over_the_cap_is_refused_from_its_prelude() -> None:
    big = wire.event("contentBlockDelta", b"x" * 5000)
    with pytest.raises(errors.ProviderError, match="one streamed event is larger than maxResponseBytes"):
        decode([big[:12]], max_message=4096)


def test_impossible_lengths() -> None:
    prelude = struct.pack(">II", 20, 100)
    with pytest.raises(errors.ProviderError, match="impossible lengths"):
        decode([prelude + struct.pack(">I", zlib.crc32(prelude))])
