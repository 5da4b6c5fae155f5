"""Kubernetes mode: follow parley-operator's component stream and keep the store in step with it.

The operator pushes a full snapshot on every connection, then upserts, deletes and "withheld"
notices (the protocol, shared with the operator: :mod:`parley_sidecar.loading.stream_protocol`;
``docs/operator.md``). Every message is
applied through ``ComponentStore.sync({"operator": …})``, the same path file reloads take: a
Component that fails to load keeps its last good version serving, and one the operator withholds
(its Secret is missing) keeps whatever this sidecar already had.

While the operator is unreachable nothing changes here: the last-known-good set keeps serving,
and the stream is reopened with capped exponential backoff and full jitter. The token file is read
again on every attempt (kubelet rotates it), and TLS is verified against the operator's CA. Log
lines name components and counts, never a metadata value.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import ssl
from collections.abc import Mapping
from typing import Any

import aiohttp
from aiohttp.http_exceptions import LineTooLong

from parley_sidecar.components.spec import ComponentSpec
from parley_sidecar.components.store import ComponentStore
from parley_sidecar.loading import manifests
from parley_sidecar.loading import stream_protocol as protocol
from parley_sidecar.settings import OperatorLink

__all__ = ["SOURCE", "StreamRejected", "follow"]

log = logging.getLogger("parley.loading.operator")

SOURCE = "operator"


class StreamRejected(Exception):
    """The operator answered with an error status (the message holds its explanation)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


def _no_secrets(store: str, name: str, key: str) -> str | None:
    return None  # the operator resolved every secretKeyRef; one left over is an error


def _spec_of(component: Mapping[str, Any]) -> ComponentSpec:
    """A wire component → ComponentSpec, resolving ``envRef`` from this container's environment."""
    doc = manifests.Document(
        name=str(component["name"]),
        namespace=str(component.get("namespace", "")),
        type=str(component["type"]),
        version=str(component.get("version", "")),
        entries=tuple(component.get("metadata") or ()),
        secret_store="",
        scopes=tuple(component.get("scopes") or ()),
        where=f"operator component {component['name']!r}",
    )
    return manifests.to_spec(doc, secrets=_no_secrets, environ=os.environ, source=SOURCE)


class _Follower:
    """The operator's view for this pod, and how to apply it."""

    def __init__(self, store: ComponentStore, app_id: str) -> None:
        self.store = store
        self.app_id = app_id
        self.specs: dict[str, ComponentSpec] = {}
        self.withheld: dict[str, str] = {}

    async def _sync(self) -> None:
        wanted = dict(self.specs)
        for name in self.withheld:
            entry = self.store.get(name)
            if entry is not None and entry.spec.source == SOURCE:
                wanted[name] = entry.spec  # keep serving the last version we had
        for problem in await self.store.sync({SOURCE: list(wanted.values())}):
            log.error("component from the operator not loaded: %s", problem)

    def _add(self, component: Mapping[str, Any]) -> None:
        try:
            spec = _spec_of(component)
        except (manifests.ManifestError, KeyError, TypeError) as exc:
            log.error("component from the operator not loaded: %s", exc)
            return
        self.specs[spec.name] = spec
        self.withheld.pop(spec.name, None)

    async def apply(self, message: protocol.Message) -> None:
        match message:
            case protocol.Snapshot():
                self.specs, self.withheld = {}, {}
                for component in message.components:
                    self._add(component)
                self.withheld = dict(message.withheld)
                if message.app_id and message.app_id != self.app_id:
                    log.warning("the operator serves app id %r to this pod, which runs as %r",
                                message.app_id, self.app_id)
                log.info("snapshot from the operator: %d component(s)%s", len(self.specs),
                         f", {len(self.withheld)} withheld" if self.withheld else "")
                for name, reason in self.withheld.items():
                    log.warning("component %r withheld by the operator: %s", name, reason)
                await self._sync()
            case protocol.Upsert():
                self._add(message.component)
                await self._sync()
            case protocol.Delete():
                self.specs.pop(message.name, None)
                self.withheld.pop(message.name, None)
                log.info("component %r removed by the operator", message.name)
                await self._sync()
            case protocol.Withheld():
                self.withheld[message.name] = message.reason
                self.specs.pop(message.name, None)
                log.warning("component %r withheld by the operator: %s", message.name, message.reason)
                await self._sync()
            case protocol.Keepalive() | protocol.Unknown():
                pass  # an unknown kind comes from a newer operator: skipped, not an error


async def _stream_once(link: OperatorLink, follower: _Follower, on_snapshot: asyncio.Event) -> None:
    token = link.token_path.read_text(encoding="utf-8").strip()
    timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10)
    connector = aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=str(link.ca_path)))
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session, session.get(
        f"https://{link.address}{protocol.PATH}", headers={"Authorization": f"Bearer {token}"}
    ) as resp:
        if resp.status != 200:
            raise StreamRejected(resp.status, protocol.decode_error(await resp.text())[:300])
        idle = 3 * protocol.DEFAULT_KEEPALIVE  # until the snapshot names the operator's interval
        log.info("connected to the operator at %s", link.address)
        while True:
            async with asyncio.timeout(idle):
                line = await resp.content.readuntil(b"\n", max_size=protocol.MAX_LINE)
            if not line:
                raise ConnectionError("the operator closed the stream")
            message = protocol.decode(line)
            if isinstance(message, protocol.Snapshot):
                idle = 3 * message.keepalive
                on_snapshot.set()
            await follower.apply(message)


async def follow(
    link: OperatorLink,
    store: ComponentStore,
    *,
    app_id: str,
    min_delay: float = 0.5,
    max_delay: float = 30.0,
) -> None:
    """Keep ``store``'s operator-sourced components equal to the operator's view; runs until cancelled."""
    follower = _Follower(store, app_id)
    attempt = 0
    while True:
        got_snapshot = asyncio.Event()
        try:
            await _stream_once(link, follower, got_snapshot)
        except asyncio.CancelledError:
            raise
        except StreamRejected as exc:  # 429/503: busy or starting, try again; 401/403: this pod's identity is wrong
            log.log(logging.WARNING if exc.status == 429 or exc.status >= 500 else logging.ERROR,
                    "the operator refused the component stream: %s", exc)
        except LineTooLong:  # its text would quote the line, which may hold secret values
            log.error("component stream from %s sent a line over %d bytes; reconnecting", link.address,
                      protocol.MAX_LINE)
        except (OSError, aiohttp.ClientError, TimeoutError, ValueError, ssl.SSLError) as exc:
            log.warning("component stream from %s lost: %s: %s; serving the last %d component(s)",
                        link.address, type(exc).__name__, exc, len(follower.specs))
        except Exception:  # a bug here must not end Kubernetes mode for the life of the pod
            log.exception("following the component stream failed; reconnecting")
        attempt = 1 if got_snapshot.is_set() else attempt + 1
        # Full jitter keeps a fleet of sidecars from reconnecting in lockstep after an operator restart.
        delay = random.uniform(0, min(max_delay, min_delay * 2 ** (attempt - 1)))
        await asyncio.sleep(delay)
