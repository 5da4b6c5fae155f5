"""The AWS event-stream binary framing, decoded as the bytes arrive (Bedrock's ConverseStream).

One message is: its total length and its headers' length (two big-endian uint32), the CRC32 of
those 8 bytes, the headers, the payload, and the CRC32 of everything before it. Both checksums
are verified: a message that fails either is refused, never half-trusted. A header is a name
(length byte, UTF-8), a type byte and a value; Bedrock sends strings (``:event-type``,
``:message-type``, ``:exception-type``, ``:content-type``), the other types are read so that an
unexpected one is skipped rather than misparsed. Documented at
https://docs.aws.amazon.com/transcribe/latest/dg/event-stream.html.

:class:`Decoder` holds at most one message's bytes and refuses a message larger than its cap
before reading it. No I/O here.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Mapping

from parley_sidecar import errors, records
from parley_sidecar.components import http_kit
from parley_sidecar.records import set_field as _set

__all__ = ["Decoder", "Message"]

_PRELUDE = 12
"""Total length, headers length, prelude CRC."""
_FIXED = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}
"""Header value type → its fixed size (bool true/false, byte, short, int, long, timestamp, uuid)."""


@records.frozen
class Message(records.Record):
    headers: Mapping[str, str]
    """String headers (others are skipped: nothing Bedrock sends needs them)."""
    payload: bytes

    def __init__(self, headers: Mapping[str, str], payload: bytes) -> None:
        _set(self, "headers", headers)
        _set(self, "payload", payload)


class Decoder:
    def __init__(self, *, provider: str, max_message: int) -> None:
        self._provider = provider
        self._max = max_message
        self._buffer = bytearray()

    def _malformed(self, what: str) -> errors.ProviderError:
        return errors.ProviderError(f"{self._provider} sent a malformed event-stream message ({what})", status=200)

    def feed(self, chunk: bytes) -> Iterator[Message]:
        """Each whole message the bytes complete, as it completes: those before a bad one are
        still handed over, then the error is raised."""
        self._buffer += chunk
        while len(self._buffer) >= _PRELUDE:
            total, headers_length, prelude_crc = struct.unpack_from(">III", self._buffer)
            if zlib.crc32(self._buffer[:8]) != prelude_crc:
                raise self._malformed("prelude checksum mismatch")
            if total < _PRELUDE + 4 or headers_length > total - _PRELUDE - 4:
                raise self._malformed("impossible lengths")
            if total > self._max:
                raise http_kit.ResponseTooLarge(self._provider, self._max, what="one streamed event")
            if len(self._buffer) < total:
                break
            message = bytes(self._buffer[:total])
            del self._buffer[:total]
            (message_crc,) = struct.unpack_from(">I", message, total - 4)
            if zlib.crc32(message[:-4]) != message_crc:
                raise self._malformed("message checksum mismatch")
            headers = self._headers(message[_PRELUDE:_PRELUDE + headers_length])
            yield Message(headers, message[_PRELUDE + headers_length:-4])

    def _headers(self, raw: bytes) -> dict[str, str]:
        headers: dict[str, str] = {}
        at = 0
        try:
            while at < len(raw):
                name_length = raw[at]
                name = raw[at + 1:at + 1 + name_length].decode()
                at += 1 + name_length
                kind = raw[at]
                at += 1
                if kind in (6, 7):  # bytes, string: a uint16 length first
                    (length,) = struct.unpack_from(">H", raw, at)
                    value = raw[at + 2:at + 2 + length]
                    if len(value) != length:
                        raise IndexError
                    at += 2 + length
                    if kind == 7:
                        headers[name] = value.decode()
                elif kind in _FIXED:
                    at += _FIXED[kind]
                else:
                    raise self._malformed(f"unknown header type {kind}")
            if at != len(raw):
                raise IndexError
        except (IndexError, struct.error, UnicodeDecodeError):
            raise self._malformed("bad headers") from None
        return headers

    @property
    def idle(self) -> bool:
        """No partial message is pending."""
        return not self._buffer
