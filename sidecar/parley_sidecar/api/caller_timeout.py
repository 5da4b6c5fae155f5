"""The ``parley-timeout`` header: a caller's budget for one conversation, on every HTTP route that
converses (alpha1/alpha2 ``/converse``, alpha2's SSE stream, OpenAI's ``/v1/chat/completions``).

``30s``, ``1m30s`` or plain seconds; it can only lower the component's own ``callTimeout`` (a gRPC
caller's deadline does the same). A call that outlives it fails as the component's own timeout
does, with :class:`errors.InvokeError`; a stream is bounded as a whole, so a stream that outlives it
ends with that error (an error event once pieces have been sent) and its upstream call is
cancelled. Each surface words a bad value in its own error shape; the rule is here, once. No
timer is armed when the header is absent (the common request).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable
from typing import TypeVar

from parley_sidecar import durations, errors

__all__ = ["HEADER", "dapr_parse", "parse", "stream_within", "within"]

T = TypeVar("T")

HEADER = "parley-timeout"
BAD_VALUE = f"the {HEADER} header must be a positive duration such as 30s"


def parse(raw: str | None) -> float | None:
    """The budget in seconds, None without the header; :class:`ValueError` (``BAD_VALUE``) for a
    value that is not a positive duration."""
    if raw is None:
        return None
    try:
        seconds = float(raw) if raw.replace(".", "", 1).isdigit() else durations.parse_duration(raw)
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        raise ValueError(BAD_VALUE)
    return seconds


def dapr_parse(raw: str | None, name: str) -> float | None:
    """:func:`parse` for the Dapr API's routes: a bad value is its 400 (``InvalidParams``) for component ``name``."""
    try:
        return parse(raw)
    except ValueError as exc:
        raise errors.InvalidParams(name, str(exc)) from None


def _expired(timeout: float, name: str) -> errors.InvokeError:
    return errors.InvokeError(name, f"no answer within the caller's timeout of {timeout:g}s ({HEADER} header)")


async def within(timeout: float, call: Awaitable[T], name: str) -> T:
    try:
        async with asyncio.timeout(timeout):
            return await call
    except TimeoutError:
        raise _expired(timeout, name) from None


async def stream_within(timeout: float, pieces: AsyncGenerator[T, None], name: str) -> AsyncGenerator[T, None]:
    """``pieces`` until ``timeout`` seconds from now; then :func:`within`'s error. Closing this
    closes ``pieces`` (a cancelled wait has already ended it, and its upstream call with it)."""
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    piece = await anext(pieces)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise _expired(timeout, name) from None
            yield piece
    finally:
        await pieces.aclose()
