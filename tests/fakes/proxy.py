"""A forward proxy on loopback, as a company's egress proxy would be: ``CONNECT`` tunnels for HTTPS,
absolute-form requests for plain HTTP. It records each request line and serves only the fake
hosts it was given, mapped to 127.0.0.1, so a test's traffic never leaves the machine and no name
is ever looked up."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from urllib.parse import urlsplit

__all__ = ["Proxy"]


class Proxy:
    def __init__(self, hosts: Mapping[str, int] | None = None) -> None:
        self.hosts = dict(hosts or {})
        """Fake host name → the loopback port serving it."""
        self.seen: list[str] = []
        """Each request line received, e.g. ``CONNECT fake.test:443``."""
        self.port = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Proxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _target(self, host: str) -> int | None:
        return self.hosts.get(host.lower())

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()
            return
        line, _, rest = head.partition(b"\r\n")
        method, target, version = line.decode("latin-1").split(" ", 2)
        self.seen.append(f"{method} {target}")
        if method == "CONNECT":
            host = target.rsplit(":", 1)[0]
            prefix = b""
        else:
            parts = urlsplit(target)
            host = parts.hostname or ""
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            prefix = f"{method} {path or '/'} {version}\r\n".encode() + rest
        port = self._target(host)
        if port is None:
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        if method == "CONNECT":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
        else:
            up_writer.write(prefix)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(ConnectionError, OSError, RuntimeError):
        writer.close()
