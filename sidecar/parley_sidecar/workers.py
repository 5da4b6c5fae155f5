"""Opt-in worker processes (``--workers N``): one sidecar served by N processes on the same ports.

A supervisor (the process that was started) has done every import by now and binds the HTTP API,
public and metrics ports itself, then forks N workers with the imported modules frozen
(``gc.freeze``), so their pages stay shared until a worker writes to them. Each worker is a whole
sidecar (``runtime.Sidecar``): it loads its components, follows the resources path or the operator's
stream itself, and serves the inherited HTTP sockets; the kernel hands each new connection to one of
them. grpcio can neither serve a socket bound before the fork nor survive a fork once it has a
server, so each worker starts its own gRPC server after the fork, bound with ``SO_REUSEPORT``; the
supervisor keeps that port bound (without listening) so it stays reserved and ``--dapr-grpc-port 0``
resolves to one port for all.

The supervisor serves no API. It answers the metrics port with the sum over workers (each worker's
samples, asked for over a socket pair at scrape time: :meth:`metrics.Metrics.absorb`), relays extended
metadata writes so every worker describes the same, and turns a shutdown API call on any worker into
a shutdown of all. SIGTERM to it drains every worker as one sidecar drains (block, then grace). A
worker that exits on its own is logged, the others are stopped, and the supervisor exits 1, so
Kubernetes restarts the container: restarting a worker in place would mean forking from a process
that runs an event loop. Per-process state is per worker: see docs/sidecar.md "Worker processes".
Conversation memory kept in process is refused at load (``runtime``), and a unix socket API at start.
No worker outlives the supervisor: a worker whose link reads end-of-file shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import marshal
import os
import signal
import socket
import struct
import sys
import time
from typing import Any

from aiohttp import web

from parley_sidecar import errors, runtime
from parley_sidecar.api import metadata
from parley_sidecar.metrics import Metrics, Snapshot
from parley_sidecar.settings import SidecarSettings

__all__ = ["run"]

log = logging.getLogger("parley.workers")

_SCRAPE_WAIT = 2.0
"""Seconds a scrape waits for a worker's samples; a worker that is slower to answer (a long
synchronous step) is counted with its last samples, so the sum never goes down."""
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
    supervisor, which sends it to every worker in the order it received them, so concurrent writes
    of one key end with the same value everywhere."""

    def __init__(self, link: _Link) -> None:
        super().__init__()
        self._link = link

    def set(self, key: str, value: str) -> None:
        super().set(key, value)  # MetadataFull: refused here, nothing sent
        if key:
            self._link.send(("metadata", key, value))

    def relayed(self, key: str, value: str) -> None:
        with contextlib.suppress(errors.MetadataFull):  # the same bounds refused it where it was written
            super().set(key, value)


class _Link:
    """A worker's end of its socket pair to the supervisor."""

    def __init__(self, sock: socket.socket, listeners: dict[str, list[socket.socket]]) -> None:
        self._sock = sock
        self._listeners = listeners
        self._writer: asyncio.StreamWriter | None = None
        self._pending: list[bytes] = []
        self._task: asyncio.Task[None] | None = None

    def attach(self, sidecar: runtime.Sidecar) -> None:
        """``runtime.run``'s prepare hook: called in the worker's event loop, before the start."""
        shared = _SharedMetadata(self)
        sidecar.extended = shared
        sidecar.listeners = self._listeners
        sidecar.shutdown_hook = lambda force: self.send(("shutdown", force))
        self._task = asyncio.create_task(self._serve(sidecar, shared), name="worker-link")

    def send(self, message: tuple[Any, ...]) -> None:
        if self._writer is None:
            self._pending.append(_frame(message))
        else:
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
        log.warning("the supervisor is gone: shutting down")
        sidecar.shutdown_requested.set()


def _work(settings: SidecarSettings, index: int, sock: socket.socket,
          listeners: dict[str, list[socket.socket]]) -> None:
    """The forked worker: run a sidecar, then leave the process without returning into the
    supervisor's code (``os._exit``, whatever happens)."""
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
def _bare(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def _bind(hosts: list[str], port: int, label: str, *, listen: bool) -> list[socket.socket]:
    """A socket per address of each host on ``port`` (0: the first one's port for all), skipping a
    host that cannot be bound with a warning, as ``Sidecar._serve`` does; an error if none can.
    ``listen=False``: bound with ``SO_REUSEPORT`` only, to hold the port for the workers' gRPC."""
    sockets: list[socket.socket] = []
    for host in hosts:
        try:
            infos = socket.getaddrinfo(_bare(host) or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            for family, kind, proto, _, address in infos:
                sock = socket.socket(family, kind, proto)
                try:
                    if listen:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    else:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                    if family == socket.AF_INET6:
                        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    sock.bind((address[0], port, *address[2:]))
                    if listen:
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


# -- the supervisor ---------------------------------------------------------------------------------
class _Worker:
    def __init__(self, index: int, pid: int, sock: socket.socket) -> None:
        self.index, self.pid, self.sock = index, pid, sock
        self.writer: asyncio.StreamWriter | None = None
        self.last: Snapshot | None = {}
        """The worker's latest samples (None: its metrics are off)."""
        self.waiting: dict[int, asyncio.Future[Snapshot | None]] = {}
        self.code: int | None = None
        """Exit status once it has exited."""

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


class _Supervisor:
    def __init__(self, settings: SidecarSettings, workers: list[_Worker]) -> None:
        self.settings = settings
        self.workers = workers
        self.metrics = Metrics(settings.app_id, settings.namespace)
        """The supervisor's own requests (to the metrics port), summed with the workers'."""
        self.stopping = asyncio.Event()
        self.exited = asyncio.Event()
        self.force = False
        self._seq = 0

    async def scrape(self) -> bytes:
        self._seq += 1
        snapshots = await asyncio.gather(*(w.scrape(self._seq) for w in self.workers))
        if any(s is None for s in snapshots):  # spec.metric.enabled: false, as one sidecar answers
            return b""
        total = Metrics(self.settings.app_id, self.settings.namespace)
        own = self.metrics.snapshot()
        for snapshot in (own, *snapshots):
            if snapshot is not None:
                total.absorb(snapshot)
        return total.render()

    async def follow(self, worker: _Worker) -> None:
        """Read what the worker sends until it exits, then reap it."""
        reader, worker.writer = await asyncio.open_connection(sock=worker.sock)
        while (message := await _read(reader)) is not None:
            kind = message[0]
            if kind == "metrics":
                worker.last = message[2]
                future = worker.waiting.get(message[1])
                if future is not None and not future.done():
                    future.set_result(message[2])
            elif kind == "metadata":
                for other in self.workers:
                    other.send(message)
            elif kind == "shutdown":
                log.info("worker %d was asked to shut down: shutting down every worker", worker.index + 1)
                self.force = self.force or bool(message[1])
                self.stopping.set()
        worker.writer.close()
        worker.code = await _reap(worker.pid)
        if not self.stopping.is_set():
            log.error("worker %d (pid %d) exited with status %d: stopping the others, then exiting",
                      worker.index + 1, worker.pid, worker.code)
        self.exited.set()

    async def main(self, metrics_sockets: list[socket.socket]) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        follows = [asyncio.create_task(self.follow(w), name=f"worker-{w.index + 1}") for w in self.workers]
        runner: web.AppRunner | None = None
        if metrics_sockets:
            runner = await runtime.http_runner(runtime.metrics_app(self.scrape), self.metrics, self.settings)
            for sock in metrics_sockets:
                await web.SockSite(runner, sock).start()
        stop = asyncio.create_task(self.stopping.wait())
        exit_ = asyncio.create_task(self.exited.wait())
        await asyncio.wait((stop, exit_), return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        exit_.cancel()
        if self.force:  # the shutdown API's dapr-force-shutdown: its answer gets 100 ms, then exit 1
            await asyncio.sleep(0.1)
            for w in self.workers:
                w.kill(signal.SIGKILL)
        else:
            for w in self.workers:
                w.kill(signal.SIGTERM)
        await asyncio.gather(*follows)
        if runner is not None:
            await runner.cleanup()
        failed = self.force or any(w.code != 0 for w in self.workers) or not self.stopping.is_set()
        log.info("parley sidecar stopped (%d workers)", len(self.workers))
        return 1 if failed else 0


async def _reap(pid: int) -> int:
    """The exit status of ``pid``, which has closed its link (so it is exiting)."""
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)  # noqa: ASYNC222 (WNOHANG: never blocks)
        if done:
            return os.waitstatus_to_exitcode(status)
        await asyncio.sleep(0.01)


def run(settings: SidecarSettings) -> None:
    """Bind, fork ``settings.workers`` workers, supervise them; exits the process when they are done."""
    if settings.unix_domain_socket is not None:
        raise SystemExit(
            f"parley-sidecar: --workers {settings.workers} cannot serve --unix-domain-socket: grpcio binds its "
            "unix socket itself and cannot share it between processes; use TCP ports or one worker")
    started = time.perf_counter()
    try:
        http = _bind(settings.listen_addresses, settings.ports.http, "http", listen=True)
        public = _bind([settings.public_listen_address], settings.ports.public, "public", listen=True)
        grpc_hold = _bind(settings.listen_addresses, settings.ports.grpc, "grpc", listen=False)
        metrics_sockets = (_bind([settings.metrics_listen_address], settings.ports.metrics, "metrics", listen=True)
                           if settings.enable_metrics else [])
    except OSError as exc:
        log.error("cannot start: %s", exc)
        raise SystemExit(1) from None
    settings.ports.grpc = grpc_hold[0].getsockname()[1]
    # Objects made so far (modules, classes) live as long as any process: frozen, a worker's
    # collections never touch them, so their pages are not written and stay shared.
    gc.freeze()
    workers: list[_Worker] = []
    for index in range(settings.workers):
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            for sock in (ours, *grpc_hold, *metrics_sockets, *(w.sock for w in workers)):
                sock.close()
            _work(settings, index, theirs, {"http": http, "public": public})  # never returns
        theirs.close()
        workers.append(_Worker(index, pid, ours))
    for sock in (*http, *public):  # the workers hold them; closed here, the ports close with the last worker
        sock.close()
    log.info("supervising %d workers (pids %s), forked in %.0f ms; metrics on %s", len(workers),
             ", ".join(str(w.pid) for w in workers), (time.perf_counter() - started) * 1000,
             metrics_sockets[0].getsockname()[1] if metrics_sockets else "off")
    gc.enable()
    code = asyncio.run(_Supervisor(settings, workers).main(metrics_sockets))
    for sock in grpc_hold:
        sock.close()
    sys.exit(code)
