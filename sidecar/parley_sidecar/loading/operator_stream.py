"""Kubernetes mode: follow parley-operator's component stream and keep the store in step with it.

The operator pushes a full snapshot on every connection, then upserts, deletes and "withheld"
notices (the protocol, shared with the operator: :mod:`parley_sidecar.loading.stream_protocol`;
``docs/operator.md``). Every message is
applied through ``ComponentStore.sync({"operator": …})``, the same path file reloads take: a
Component that fails to load keeps its last good version serving, and one the operator withholds
(its Secret is missing) keeps whatever this sidecar already had.

Resiliencies come the same way (protocol 2): each is checked with the parser files use
(``components.resiliency_resource``) and their component targets become the store's overlays
(``ComponentStore.set_overlays``), live. A bad one is logged and the last good version of that
Resiliency stays; a target naming a component this sidecar does not have is warned about and the
rest applies (it takes effect if that component arrives). The first snapshot also carries the
Configuration the pod names, which :func:`configuration_of` hands to the runtime at start.

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

from parley_sidecar.components import resiliency_resource
from parley_sidecar.components.resiliency_resource import Resiliency
from parley_sidecar.components.spec import ComponentSpec
from parley_sidecar.components.store import ComponentStore
from parley_sidecar.loading import configuration, manifests
from parley_sidecar.loading import stream_protocol as protocol
from parley_sidecar.settings import Configuration, OperatorLink

__all__ = ["CONFIGURATION_WAIT", "SOURCE", "StreamRejected", "configuration_of", "follow"]

log = logging.getLogger("parley.loading.operator")

SOURCE = "operator"
CONFIGURATION_WAIT = 120.0
"""Seconds the start waits for the operator's first snapshot when the pod names a Configuration
(daprd retries ``GetConfiguration`` while the operator is unavailable, then stops)."""


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
        self.resiliencies: dict[str, Resiliency] = {}
        """Name → the last good version of each Resiliency the operator sent this pod."""
        self._missing: set[tuple[str, str]] = set()
        """(Resiliency, component) targets already warned about as naming no loaded component."""

    async def _sync(self) -> None:
        wanted = dict(self.specs)
        for name in self.withheld:
            entry = self.store.get(name)
            if entry is not None and entry.spec.source == SOURCE:
                wanted[name] = entry.spec  # keep serving the last version we had
        for problem in await self.store.sync({SOURCE: list(wanted.values())}):
            log.error("component from the operator not loaded: %s", problem)
        self._warn_missing()

    def _parse(self, document: Mapping[str, Any]) -> Resiliency | None:
        namespace = str((document.get("metadata") or {}).get("namespace") or "")
        try:
            return resiliency_resource.parse(document, f"operator, namespace {namespace!r}")
        except resiliency_resource.ResiliencyError as exc:
            log.error("resiliency from the operator not applied (the last good one stays): %s", exc)
            return None

    async def _overlay(self) -> None:
        # A conflict goes to the last by name, as files go by path.
        await self.store.set_overlays(resiliency_resource.overlays(
            self.resiliencies[name] for name in sorted(self.resiliencies)))
        self._warn_missing()

    def _warn_missing(self) -> None:
        loaded = {entry.spec.name for entry in self.store.entries()}
        missing = {(r.name, target) for r in self.resiliencies.values() for target in r.targets
                   if target not in loaded}
        for name, target in sorted(missing - self._missing):
            log.warning("resiliency %r: field 'spec.targets.components.%s': no component named %r is loaded; "
                        "the rest applies, and this target applies if it arrives", name, target, target)
        self._missing = missing

    async def _resiliency_snapshot(self, message: protocol.Snapshot) -> None:
        if message.protocol < 2:
            if self.resiliencies:
                self.resiliencies = {}
                await self._overlay()
            log.info("the operator does not deliver Resiliency or Configuration resources (an older "
                     "parley-operator); only components apply")
            return
        kept = {name for name, _ in message.resiliency_withheld}
        found: dict[str, Resiliency] = {name: self.resiliencies[name] for name in kept if name in self.resiliencies}
        for name, reason in message.resiliency_withheld:
            log.warning("resiliency %r withheld by the operator: %s", name, reason)
        for document in message.resiliencies:
            parsed = self._parse(document)
            name = str((document.get("metadata") or {}).get("name") or "")
            if parsed is not None:
                found[parsed.name] = parsed
            elif name in self.resiliencies:
                found[name] = self.resiliencies[name]
        self.resiliencies = found
        log.info("resiliencies from the operator: %s", ", ".join(sorted(found)) or "none")
        await self._overlay()

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
                await self._resiliency_snapshot(message)
            case protocol.ResiliencyUpsert():
                parsed = self._parse(message.resiliency)
                if parsed is not None:
                    self.resiliencies[parsed.name] = parsed
                    log.info("resiliency %r from the operator applied", parsed.name)
                    await self._overlay()
            case protocol.ResiliencyDelete():
                if self.resiliencies.pop(message.name, None) is not None:
                    log.info("resiliency %r removed by the operator", message.name)
                    await self._overlay()
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


async def _stream_once(link: OperatorLink, follower: _Follower, on_snapshot: asyncio.Event,
                       first: asyncio.Future[protocol.Snapshot] | None) -> None:
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
            if isinstance(message, protocol.Snapshot) and first is not None and not first.done():
                first.set_result(message)  # after applying: the start sees the components in too


async def follow(
    link: OperatorLink,
    store: ComponentStore,
    *,
    app_id: str,
    min_delay: float = 0.5,
    max_delay: float = 30.0,
    first_snapshot: asyncio.Future[protocol.Snapshot] | None = None,
) -> None:
    """Keep ``store``'s operator-sourced components and Resiliency overlays equal to the operator's
    view; runs until cancelled. ``first_snapshot`` gets the first snapshot once it is applied."""
    follower = _Follower(store, app_id)
    attempt = 0
    while True:
        got_snapshot = asyncio.Event()
        try:
            await _stream_once(link, follower, got_snapshot, first_snapshot)
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


async def configuration_of(first: asyncio.Future[protocol.Snapshot], name: str, *,
                           timeout: float = CONFIGURATION_WAIT) -> Configuration:
    """The Configuration ``name`` (``dapr.io/config``) from the operator's first snapshot, read as
    ``--config FILE`` is. Like daprd, a Configuration that does not exist, or an operator that does
    not answer in time, stops the start (:class:`configuration.ConfigurationError`). An older operator
    that delivers no Configurations: a warning, and the defaults (what parley did before)."""
    try:
        async with asyncio.timeout(timeout):
            snapshot = await asyncio.shield(first)
    except TimeoutError:
        raise configuration.ConfigurationError(
            f"error loading configuration {name!r}: no snapshot from the operator within {timeout:g} s") from None
    delivered = snapshot.configuration
    if snapshot.protocol < 2:
        log.warning("the operator does not deliver Configurations (an older parley-operator): Configuration "
                    "%r (dapr.io/config) is not applied; the defaults apply", name)
        return Configuration()
    if delivered is None or delivered.name != name:
        raise configuration.ConfigurationError(
            f"error loading configuration {name!r}: the operator sent none for this pod (its dapr.io/config "
            f"annotation is {delivered.name if delivered else 'unset'!r})")
    if delivered.spec is None:
        raise configuration.ConfigurationError(f"error loading configuration: {delivered.error}")
    log.info("Configuration %r from the operator (read once, at start, as daprd does)", name)
    return configuration.from_document({"kind": "Configuration", "spec": dict(delivered.spec)},
                                       f"{name!r} (from the operator)")
