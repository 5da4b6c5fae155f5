"""Opt-in worker processes (``--workers N``): one sidecar served by N processes on the same ports.

The process that was started has done every import by now. It binds the HTTP API, gRPC API,
public and metrics ports, freezes what the imports made (``gc.freeze``) and forks workers 2..N,
so the modules' pages stay shared until a worker writes to them; then it serves as worker 1.
Each worker is a whole sidecar (``runtime.Sidecar``): it loads its components, follows the
resources path or the operator's stream itself, and serves the inherited HTTP and gRPC sockets
(the gRPC server is grpclib's, on the event loop, so it serves a socket bound before the fork as
aiohttp does); the kernel hands each new connection to one of them.

Worker 1 also serves the metrics port, with the sum over workers (each worker's samples, asked
for over a socket pair at scrape time: :meth:`metrics.Metrics.absorb`), relays extended metadata
writes so that every worker describes the same, and turns a shutdown on any worker (SIGTERM, the
shutdown API) into a shutdown of all, each draining as one sidecar drains. A worker that exits
on its own is logged, the others are stopped and the sidecar exits 1, so that Kubernetes restarts
the container: a new worker could only be forked from a process running an event loop and servers.
A worker whose link to worker 1 reads end-of-file shuts down, so none outlives it.
Per-process state is per worker (docs/sidecar.md "Worker processes"): conversation memory kept in
process is refused at load (``runtime``), and a unix socket API at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
import marshal
import os
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

from parley_sidecar import errors, runtime, tls
from parley_sidecar.api import metadata
from parley_sidecar.metrics import Metrics, Snapshot
from parley_sidecar.settings import SidecarSettings

__all__ = ["run"]

log = logging.getLogger("parley.workers")

_SCRAPE_WAIT = 2.0
"""Seconds a scrape waits for a worker's samples; a worker that is slower to answer (a long
synchronous step) is counted with its last samples, so the sum never goes down."""
_PRELOAD = ("parley_sidecar.api.grpc_h2", "aiohttp.web", "google.protobuf.descriptor_pb2", "parley_sidecar.api.grpc",
            "parley_sidecar.api.http", "parley_sidecar.components.echo", "parley_sidecar.loading.resources")
"""Imported before the fork, so that their pages are shared: what every worker would import (most
already are, through ``runtime``; listed so that a module made lazy for a faster start still is)."""
_HEADER = struct.Struct("!I")
_BACKLOG = 128  # aiohttp's TCPSite default


# -- framing: a 4-byte length, then a marshal'd tuple (plain data only; both ends are this code) --
def _frame(message: tuple[Any, ...]) -> bytes:
    body = marshal.dumps(message)
    return _HEADER.pack(len(body)) + body


async def _read(reader: asyncio.StreamReader) -> tuple[Any, ...] | None:
    """The next message, or None at end of file (the other process is gone)."""
    try:
        size = _HEADER.unpack(await reader.readexactly(_HEADER.size))[0]
        message = marshal.loads(await reader.readexactly(size))
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    assert isinstance(message, tuple)
    return message


# -- the worker's side ------------------------------------------------------------------------------
class _SharedMetadata(metadata.ExtendedMetadata):
    """Extended metadata whose writes reach every worker: a write is kept here and sent to the
    first worker, which keeps it and sends it to every other worker in the order it received them
    (its own writes too), so concurrent writes of one key end with the same value everywhere."""

    def __init__(self, send: Callable[[tuple[Any, ...]], None]) -> None:
        super().__init__()
        self._send = send

    def set(self, key: str, value: str) -> None:
        super().set(key, value)  # MetadataFull: refused here, nothing sent
        if key:
            self._send(("metadata", key, value))

    def relayed(self, key: str, value: str) -> None:
        with contextlib.suppress(errors.MetadataFull):  # the same bounds refused it where it was written
            super().set(key, value)


class _Link:
    """Worker 2..N's end of its socket pair to the first worker."""

    def __init__(self, sock: socket.socket, listeners: dict[str, list[socket.socket]]) -> None:
        self._sock = sock
        self._listeners = listeners
        self._writer: asyncio.StreamWriter | None = None
        self._pending: list[bytes] = []
        self._gone = False
        """Worker 1 has gone: nothing more is sent (uvloop raises on a write to a closed link, and a
        metadata write or shutdown call in the drain that follows would fail with it)."""
        self._task: asyncio.Task[None] | None = None

    def attach(self, sidecar: runtime.Sidecar) -> None:
        """``runtime.run``'s prepare hook: called in the worker's event loop, before the start."""
        shared = _SharedMetadata(self.send)
        sidecar.extended = shared
        sidecar.listeners = self._listeners
        sidecar.shutdown_hook = lambda force: self.send(("shutdown", force))
        self._task = asyncio.create_task(self._serve(sidecar, shared), name="worker-link")

    def send(self, message: tuple[Any, ...]) -> None:
        if self._gone:
            return
        if self._writer is None:
            self._pending.append(_frame(message))
        elif not self._writer.is_closing():
            self._writer.write(_frame(message))

    async def _serve(self, sidecar: runtime.Sidecar, shared: _SharedMetadata) -> None:
        reader, self._writer = await asyncio.open_connection(sock=self._sock)
        for frame in self._pending:
            self._writer.write(frame)
        self._pending.clear()
        while (message := await _read(reader)) is not None:
            if message[0] == "scrape":
                self.send(("metrics", message[1], sidecar.metrics.snapshot()))
            elif message[0] == "metadata":
                shared.relayed(message[1], message[2])
        self._gone = True
        self._writer.close()
        log.warning("worker 1 is gone: shutting down")
        sidecar.shutdown_requested.set()


def _work(settings: SidecarSettings, index: int, sock: socket.socket,
          listeners: dict[str, list[socket.socket]]) -> None:
    """A forked worker: run a sidecar, then leave the process without returning into the first
    worker's code (``os._exit``, whatever happens)."""
    code = 1
    try:
        log.info("worker %d/%d started (pid %d)", index + 1, settings.workers, os.getpid())
        runtime.run(settings, prepare=_Link(sock, listeners).attach)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        log.exception("worker %d failed", index + 1)
    finally:
        logging.shutdown()
        os._exit(code)


# -- binding before the fork -------------------------------------------------------------------
def _bind(hosts: list[str], port: int, label: str) -> list[socket.socket]:
    """A socket per address of each host on ``port`` (0: the first one's port for all), skipping a
    host that cannot be bound with a warning, as ``Sidecar._serve`` does; an error if none can."""
    sockets: list[socket.socket] = []
    for host in hosts:
        try:
            infos = socket.getaddrinfo(runtime._bare(host) or None, port,
                                       type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            for family, kind, proto, _, address in infos:
                sock = socket.socket(family, kind, proto)
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    if family == socket.AF_INET6:
                        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    sock.bind((address[0], port, *address[2:]))
                    sock.listen(_BACKLOG)
                except OSError:
                    sock.close()
                    raise
                sockets.append(sock)
                port = sock.getsockname()[1]
        except OSError as exc:
            log.warning("cannot listen on %s port %d (%s API): %s", host, port, label, exc.strerror or exc)
    if not sockets:
        raise OSError(f"could not listen on any of {', '.join(hosts)} port {port} ({label} API)")
    return sockets


# -- the first worker's side: it also supervises the others ---------------------------------------
class _Other:
    """Another worker, as the first one sees it."""

    def __init__(self, index: int, pid: int, sock: socket.socket) -> None:
        self.index, self.pid, self.sock = index, pid, sock
        self.writer: asyncio.StreamWriter | None = None
        self.last: Snapshot | None = {}
        """The worker's latest samples (None: its metrics are off)."""
        self.waiting: dict[int, asyncio.Future[Snapshot | None]] = {}
        self.code: int | None = None
        """Exit status once it has been reaped."""

    def send(self, message: tuple[Any, ...]) -> None:
        if self.writer is not None and not self.writer.is_closing():
            self.writer.write(_frame(message))

    async def scrape(self, seq: int) -> Snapshot | None:
        if self.code is not None or self.writer is None:
            return self.last
        future = self.waiting[seq] = asyncio.get_running_loop().create_future()
        self.send(("scrape", seq))
        try:
            return await asyncio.wait_for(future, _SCRAPE_WAIT)
        except TimeoutError:
            log.warning("worker %d did not send its metrics within %gs: its last ones are used",
                        self.index + 1, _SCRAPE_WAIT)
            return self.last
        finally:
            self.waiting.pop(seq, None)

    def kill(self, sig: signal.Signals) -> None:
        if self.code is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def reap(self, block: bool) -> bool:
        """Collect the exit status; True once it has one."""
        if self.code is None:
            done, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
            if done:
                self.code = os.waitstatus_to_exitcode(status)
        return self.code is not None


class _First:
    """The first worker's extra duties: sum the metrics, relay metadata writes, stop the others
    when it stops (SIGTERM, the shutdown API), and stop everything when another one dies."""

    def __init__(self, others: list[_Other]) -> None:
        self.others = others
        self.failed = False
        """Another worker exited on its own: the sidecar exits 1."""
        self._seq = 0
        self._sidecar: runtime.Sidecar | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def attach(self, sidecar: runtime.Sidecar, listeners: dict[str, list[socket.socket]]) -> None:
        self._sidecar = sidecar
        sidecar.listeners = listeners
        sidecar.extended = _SharedMetadata(self.send)
        sidecar.metrics_text = self.scrape
        self._tasks = [asyncio.create_task(self._follow(o), name=f"worker-{o.index + 1}") for o in self.others]
        self._tasks.append(asyncio.create_task(self._stop_others(sidecar), name="workers-stop"))

    def send(self, message: tuple[Any, ...]) -> None:
        """Its own metadata writes, to every other worker (``_SharedMetadata``'s link)."""
        for other in self.others:
            other.send(message)

    async def scrape(self) -> bytes:
        assert self._sidecar is not None
        own = self._sidecar.metrics.snapshot()
        if own is None:  # spec.metric.enabled: false, as one sidecar answers
            return b""
        self._seq += 1
        snapshots = await asyncio.gather(*(o.scrape(self._seq) for o in self.others))
        total = Metrics(self._sidecar.settings.app_id, self._sidecar.settings.namespace)
        for snapshot in (own, *snapshots):
            if snapshot is not None:
                total.absorb(snapshot)
        return total.render()

    async def _follow(self, other: _Other) -> None:
        """Read what the worker sends until it exits, then reap it."""
        assert self._sidecar is not None
        sidecar = self._sidecar
        reader, other.writer = await asyncio.open_connection(sock=other.sock)
        while (message := await _read(reader)) is not None:
            kind = message[0]
            if kind == "metrics":
                other.last = message[2]
                future = other.waiting.get(message[1])
                if future is not None and not future.done():
                    future.set_result(message[2])
            elif kind == "metadata":  # kept here, then sent to all in the order received (the writer too)
                assert isinstance(sidecar.extended, _SharedMetadata)
                sidecar.extended.relayed(message[1], message[2])
                self.send(message)
            elif kind == "shutdown":
                sidecar.request_shutdown(bool(message[1]))
        other.writer.close()
        # It closed its end as it exited: the status is moments away, and no event says when.
        while not other.reap(block=False):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        if not sidecar.shutdown_requested.is_set():
            log.error("worker %d (pid %d) exited with status %d: stopping the others, then exiting 1",
                      other.index + 1, other.pid, other.code)
            self.failed = True
            sidecar.shutdown_requested.set()

    async def _stop_others(self, sidecar: runtime.Sidecar) -> None:
        await sidecar.shutdown_requested.wait()
        # The shutdown API's dapr-force-shutdown ends this process in 100 ms; the others go at once.
        for other in self.others:
            other.kill(signal.SIGKILL if sidecar.force_exit else signal.SIGTERM)


def run(settings: SidecarSettings) -> None:
    """Bind, fork workers 2..N, serve as worker 1; exits the process when every worker is done."""
    if settings.unix_domain_socket is not None:
        raise SystemExit(
            f"parley-sidecar: --workers {settings.workers} cannot serve --unix-domain-socket: the "
            "API sockets are not shared between workers yet; use TCP ports or one worker")
    started = time.perf_counter()
    try:
        http = _bind(settings.listen_addresses, settings.ports.http, "http")
        public = _bind([settings.public_listen_address], settings.ports.public, "public")
        grpc = _bind(settings.listen_addresses, settings.ports.grpc, "grpc")
        metrics = (_bind([settings.metrics_listen_address], settings.ports.metrics, "metrics")
                   if settings.enable_metrics else [])
    except OSError as exc:
        log.error("cannot start: %s", exc)
        raise SystemExit(1) from None
    shared = {"http": http, "public": public, "grpc": grpc}
    for module in (*_PRELOAD, *(["parley_sidecar.loading.operator_stream"] if settings.operator.address else [])):
        importlib.import_module(module)
    runtime._loop_factory()  # imports the loop every worker runs (uvloop unless PARLEY_EVENT_LOOP=asyncio)
    # A single process makes the provider clients' TLS context at its first connection (tls);
    # workers share one made before the fork instead of parsing the CA bundle once each.
    tls.client_context()
    # Objects made so far (modules, classes) live as long as any worker: frozen, a worker's
    # collections never touch them, so fewer of their pages are written and copied. (CPython
    # reseeds ``random`` in each child, so trace ids and retry jitter still differ per worker.)
    gc.freeze()
    others: list[_Other] = []
    for index in range(1, settings.workers):
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            for sock in (ours, *metrics, *(o.sock for o in others)):
                sock.close()
            _work(settings, index, theirs, shared)  # never returns
        theirs.close()
        others.append(_Other(index, pid, ours))
    log.info("worker 1/%d (pid %d) forked workers %s in %.0f ms", settings.workers, os.getpid(),
             ", ".join(f"{o.index + 1} (pid {o.pid})" for o in others), (time.perf_counter() - started) * 1000)
    first = _First(others)
    code = 0
    try:
        runtime.run(settings, prepare=lambda sidecar: first.attach(sidecar, {**shared, "metrics": metrics}))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        for other in others:  # stopped already, unless this worker's start failed
            other.kill(signal.SIGTERM)
        for other in others:
            other.reap(block=True)
    failed = first.failed or any(o.code != 0 for o in others)
    log.info("parley sidecar stopped (%d workers)", settings.workers)
    sys.exit(code or int(failed))
