"""The live components of this sidecar, swapped in place without dropping requests.

Sources (files, the operator stream) hand specs to :meth:`ComponentStore.sync`; the store builds
a new instance, and only once its ``init`` succeeded replaces the old one. A spec that fails keeps
the last good instance serving and is reported to the caller. A replaced instance is closed when
its last in-flight request finishes. The pipeline reads with :meth:`ComponentStore.lease`.

The store is also the one place an entry's effective resiliency policy is made: the component's
own metadata (``Entry.own``) under the outbound target of the loaded Resiliency resources
(:meth:`ComponentStore.set_overlays`), so ``conversation.resiliency`` reads one policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import aiohttp

from parley_sidecar.components import base, catalog
from parley_sidecar.components.breaker import Breaker
from parley_sidecar.components.component_settings import ComponentSettings, ResiliencySettings
from parley_sidecar.components.spec import ComponentSpec

if TYPE_CHECKING:  # imported with the first Resiliency resource (loading), not at start
    from parley_sidecar.components.resiliency_resource import Outbound

__all__ = ["ComponentStore", "Entry", "LoadError"]

log = logging.getLogger("parley.components")

SessionFactory = Callable[[], aiohttp.ClientSession]
"""Hands every component one given session (tests point it at a fake); without it, each component
opens its own bounded pool (``maxConnections``)."""
Validator = Callable[[Mapping[str, Any]], None]
"""Checks resolved settings that belong to upper layers (e.g. PII entity names); raises MetadataError."""


class LoadError(Exception):
    """A spec could not become a live component; the message names it and the field at fault."""


class Entry:
    # A plain class (compared by identity, as the eq=False dataclass it was): a dataclass costs
    # ~0.3 ms of every start to create (docs/performance.md, round 7).
    __slots__ = ("breaker", "closed", "ctype", "in_flight", "instance", "own", "retired", "settings", "spec")

    def __init__(self, spec: ComponentSpec, ctype: catalog.ComponentType, settings: ComponentSettings,
                 instance: base.Conversation, breaker: Breaker | None, own: ResiliencySettings) -> None:
        self.spec = spec
        self.ctype = ctype
        self.settings = settings
        """Parsed once at load; ``settings.metadata`` may hold secrets."""
        self.instance = instance
        self.breaker = breaker
        """This instance's circuit breaker (None when ``circuitBreakerFailures`` is 0)."""
        self.own = own
        """The policy from the component's metadata alone; ``settings.resiliency`` is the effective one."""
        self.in_flight = 0
        self.retired = False
        self.closed = False


def _breaker(policy: ResiliencySettings) -> Breaker | None:
    if policy.breaker_failures <= 0:
        return None
    return Breaker(policy.breaker_failures, policy.breaker_timeout, max_requests=policy.breaker_max_requests)


def _load_factory(path: str) -> Callable[[base.ComponentContext], base.Conversation]:
    module_name, _, attr = path.partition(":")
    factory: Callable[[base.ComponentContext], base.Conversation] = getattr(
        importlib.import_module(module_name), attr
    )
    return factory


class ComponentStore:
    def __init__(self, *, session_factory: SessionFactory | None = None, validate: Validator | None = None,
                 on_load_error: Callable[[str], None] | None = None) -> None:
        self._validate = validate
        self._on_load_error = on_load_error
        """Called with the component's name each time a spec fails to load (the metrics count it)."""
        self._entries: dict[str, Entry] = {}
        self._overlays: dict[str, Outbound] = {}
        self._sources: dict[str, str] = {}
        self._session_factory = session_factory
        self._lock = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()
        self.errors: dict[str, str] = {}
        """Last load error per component name (no secret in it); cleared when it loads."""

    # -- reading -------------------------------------------------------------------------------
    def get(self, name: str) -> Entry | None:
        return self._entries.get(name)

    def entries(self) -> list[Entry]:
        return list(self._entries.values())

    @contextlib.asynccontextmanager
    async def lease(self, entry: Entry) -> AsyncIterator[base.Conversation]:
        """Use an entry's instance; a swap meanwhile closes it only after this block ends."""
        entry.in_flight += 1
        try:
            yield entry.instance
        finally:
            entry.in_flight -= 1
            if entry.retired and entry.in_flight == 0:
                self._close_later(entry)

    # -- writing -------------------------------------------------------------------------------
    async def build(self, spec: ComponentSpec) -> Entry:
        """Make a live entry from a spec, or raise :class:`LoadError` (never leaves a half-made one)."""
        ctype = catalog.lookup(spec.type, spec.version)
        if ctype is None:
            known = "" if spec.type.lower() in catalog.TYPES else " (parley has no such conversation type)"
            raise LoadError(f"{spec.describe()}: unsupported type/version {spec.type}/{spec.version}{known}")
        try:
            resolved = catalog.resolve(ctype, spec.metadata)
            if self._validate is not None:
                self._validate(resolved)
        except catalog.MetadataError as exc:
            raise LoadError(f"{spec.describe()}: {exc}") from None
        settings = ComponentSettings.of(resolved)
        context = base.ComponentContext(
            name=spec.name, type=ctype.name, session=self._session_factory() if self._session_factory else None,
            max_connections=settings.upstream.max_connections,
            max_response_bytes=settings.upstream.max_response_bytes,
        )
        try:
            instance = _load_factory(ctype.factory)(context)
            await instance.init(resolved)
        except (catalog.MetadataError, ValueError, ImportError) as exc:
            raise LoadError(f"{spec.describe()}: {exc}") from None
        own = settings.resiliency
        overlay = self._overlays.get(spec.name)
        policy = own if overlay is None else overlay.apply(own)
        return Entry(spec=spec, ctype=ctype, settings=dataclasses.replace(settings, resiliency=policy),
                     instance=instance, breaker=_breaker(policy), own=own)

    async def set_overlays(self, overlays: Mapping[str, Outbound]) -> list[str]:
        """Make ``overlays`` (component name → a Resiliency's outbound target) the policies over
        the components' own; returns the names whose effective policy changed. A changed breaker
        policy starts a closed breaker; an unchanged one keeps its state."""
        changed: list[str] = []
        async with self._lock:
            self._overlays = dict(overlays)
            for entry in self._entries.values():
                overlay = self._overlays.get(entry.spec.name)
                policy = entry.own if overlay is None else overlay.apply(entry.own)
                old = entry.settings.resiliency
                if policy == old:
                    continue
                entry.settings = dataclasses.replace(entry.settings, resiliency=policy)
                if (policy.breaker_failures, policy.breaker_timeout, policy.breaker_max_requests) != (
                        old.breaker_failures, old.breaker_timeout, old.breaker_max_requests):
                    entry.breaker = _breaker(policy)
                changed.append(entry.spec.name)
        for name in changed:
            log.info("resiliency policy of component %r updated", name)
        return changed

    async def apply(self, spec: ComponentSpec) -> bool:
        """Load or replace one component. Returns True when it changed; raises LoadError."""
        async with self._lock:
            current = self._entries.get(spec.name)
            if current is not None and current.spec == spec:
                self._sources[spec.name] = spec.source
                return False
            try:
                entry = await self.build(spec)
            except LoadError as exc:
                self.errors[spec.name] = str(exc)
                if self._on_load_error is not None:
                    self._on_load_error(spec.name)
                raise
            self.errors.pop(spec.name, None)
            self._entries[spec.name] = entry
            self._sources[spec.name] = spec.source
            if current is not None:
                self._retire(current)
            log.info("%s %s", "updated" if current else "loaded", spec.describe())
            return True

    async def remove(self, name: str) -> bool:
        async with self._lock:
            entry = self._entries.pop(name, None)
            self._sources.pop(name, None)
            self.errors.pop(name, None)
            if entry is None:
                return False
            self._retire(entry)
            log.info("removed %s", entry.spec.describe())
            return True

    async def sync(self, sources: Mapping[str, Iterable[ComponentSpec]]) -> list[str]:
        """Make the components of each given source exactly its specs; returns the load errors.

        A source is a file path or ``operator``. Sources not in ``sources`` are left alone (a broken
        file keeps its last good components). Removals run first, so a component that moved from
        one file to another is not reported as a duplicate. A spec that fails to load keeps its
        previous version serving.
        """
        errors: list[str] = []
        wanted: dict[str, ComponentSpec] = {}
        for source, specs in sources.items():
            for given in specs:
                spec = dataclasses.replace(given, source=source)
                if spec.name in wanted:
                    errors.append(f"{spec.describe()}: duplicate name, also in {wanted[spec.name].source}")
                    continue
                wanted[spec.name] = spec
        for name, source in list(self._sources.items()):
            if source in sources and name not in wanted:
                await self.remove(name)
        for spec in wanted.values():
            owner = self._sources.get(spec.name)
            if owner is not None and owner != spec.source and owner not in sources:
                errors.append(f"{spec.describe()}: name already used by {owner}")
                continue
            try:
                await self.apply(spec)
            except LoadError as exc:
                errors.append(str(exc))
        return errors

    async def aclose(self) -> None:
        async with self._lock:
            entries, self._entries = list(self._entries.values()), {}
            self._sources.clear()
        for entry in entries:
            if not entry.closed:
                entry.closed = True
                await self._close(entry)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    # -- internals -----------------------------------------------------------------------------
    def _retire(self, entry: Entry) -> None:
        entry.retired = True
        if entry.in_flight == 0:
            self._close_later(entry)

    def _close_later(self, entry: Entry) -> None:
        if entry.closed:
            return
        entry.closed = True
        task = asyncio.get_running_loop().create_task(self._close(entry))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    @staticmethod
    async def _close(entry: Entry) -> None:
        try:
            await entry.instance.aclose()
        except Exception:  # a failing close must not stop the swap
            log.exception("closing %s failed", entry.spec.describe())

