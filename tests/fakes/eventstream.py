"""The AWS event-stream binary framing, written out for the Bedrock fake (its own small encoder,
so the sidecar's decoder is tested against an independent implementation).

One message: total length (uint32, big-endian), headers length (uint32), CRC32 of those 8 bytes,
the headers (name length byte, name, value type byte 7 = string, value length uint16, value), the
payload, then the CRC32 of everything before it. Documented at
https://docs.aws.amazon.com/transcribe/latest/dg/event-stream.html (the same framing serves every
AWS streaming API, Bedrock's ConverseStream included).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping

__all__ = ["encode", "event", "exception"]


def _headers(headers: Mapping[str, str]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        out += struct.pack(">B", len(raw_name)) + raw_name + struct.pack(">BH", 7, len(raw_value)) + raw_value
    return bytes(out)


def encode(headers: Mapping[str, str], payload: bytes, *, bad_prelude_crc: bool = False,
           bad_message_crc: bool = False) -> bytes:
    """One message; the ``bad_*`` flags corrupt a checksum (what a flipped bit on the wire does)."""
    head = _headers(headers)
    total = 12 + len(head) + len(payload) + 4
    prelude = struct.pack(">II", total, len(head))
    prelude_crc = zlib.crc32(prelude) ^ (1 if bad_prelude_crc else 0)
    message = prelude + struct.pack(">I", prelude_crc) + head + payload
    return message + struct.pack(">I", zlib.crc32(message) ^ (1 if bad_message_crc else 0))


def event(event_type: str, payload: bytes) -> bytes:
    return encode({":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}, payload)


def exception(exception_type: str, payload: bytes) -> bytes:
    return encode({":exception-type": exception_type, ":content-type": "application/json",
                   ":message-type": "exception"}, payload)
