"""Recorded streaming exchanges (``tests/fakes/recorded/``), transcribed from the providers'
documentation pages named at the top of each file, loaded as the frames a fake sends verbatim.

An SSE file: ``#`` lines (source and what to expect), then the body exactly as sent; its frames
are its events, each ending with its blank line. Unstreamed answers are JSON: ``source``, ``expect``
and ``answers``, the bodies in the order a conversation gets them. A Bedrock file is JSON (the documentation shows
the decoded events, never the binary framing): a list of ``{"headers": {…}, "payload": …}``,
encoded here with real CRCs by ``tests.fakes.eventstream``.
"""

from __future__ import annotations

import json
import pathlib

from tests.fakes import eventstream

__all__ = ["answers", "bedrock_frames", "sse_frames"]

_HERE = pathlib.Path(__file__).parent / "recorded"


def sse_frames(name: str) -> tuple[bytes, ...]:
    lines = (_HERE / name).read_text().splitlines(keepends=True)
    body = "".join(line for line in lines if not line.startswith("# ")).lstrip("\n")
    return tuple(f"{event}\n\n".encode() for event in body.split("\n\n") if event.strip())


def bedrock_frames(name: str) -> tuple[bytes, ...]:
    data = json.loads((_HERE / name).read_text())
    return tuple(eventstream.encode(message["headers"], json.dumps(message["payload"], separators=(",", ":")).encode())
                 for message in data["messages"])


def answers(name: str) -> list[object]:
    """The recorded unstreamed answers (JSON bodies) of ``name``, in order."""
    data = json.loads((_HERE / name).read_text())
    return list(data["answers"])
