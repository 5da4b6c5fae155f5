"""Standalone mode: Component and Resiliency files from ``--resources-path`` directories, hot-reloaded.

Polls the directories (a few ``stat`` calls every 250 ms: cheaper in memory than an inotify
library, and it works on every filesystem a pod mounts, ConfigMap symlink swaps included). On any
change every file is read again and handed to the store per file, so a broken file keeps its last
good components and a deleted file removes its own. Resiliency documents are read in the same
pass (those whose ``scopes`` leave this app out are skipped, as daprd does); a file whose
Resiliency is malformed, or targets a component that is not loaded, keeps its last good
Resiliencies applied. Their component targets go to the store, which makes each component's
effective policy (``ComponentStore.set_overlays``); files later in path order win a conflict.

The ``secretsFile`` of every local file secret store is watched too (its identity, mtime, size and
a digest of its content), since a rotated secret changes no YAML: the reload resolves the
``secretKeyRef`` values again and the store replaces only the components whose resolved metadata
changed, i.e. those that reference a rotated value.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from parley_sidecar.components.spec import ComponentSpec
from parley_sidecar.components.store import ComponentStore
from parley_sidecar.loading import manifests, secrets

if TYPE_CHECKING:  # imported by manifests with the first Resiliency document, not at start
    from parley_sidecar.components.resiliency_resource import Outbound, Resiliency

__all__ = ["ResourcesLoader"]

log = logging.getLogger("parley.loading")

_SUFFIXES = (".yaml", ".yml")
_SETTLE_SECONDS = 0.05
"""A change is read once the files have looked the same for this long..."""
_SETTLE_TRIES = 20
"""...or after this many checks (a file rewritten without pause for a second is read as it is)."""
Signature = tuple[tuple[str, int, int], ...]
SecretsSignature = tuple[tuple[str, int, int, int, int, bytes], ...]
"""Per secrets file: path, device, inode, mtime, size and a digest of the content. The digest is
there because a rewrite within the filesystem's mtime granularity and of the same size (a key of
the same length) changes nothing else; the file is small, so hashing it each poll is cheap."""


class ResourcesLoader:
    def __init__(
        self,
        paths: Sequence[Path],
        store: ComponentStore,
        *,
        app_id: str,
        environ: Mapping[str, str] | None = None,
        interval: float = 0.25,
        on_resiliency_error: Callable[[str], None] | None = None,
    ) -> None:
        self._paths = list(paths)
        self._store = store
        self._app_id = app_id
        self._environ = os.environ if environ is None else environ
        self._interval = interval
        self._signature: Signature = ()
        self._secrets_files: list[Path] = []
        self._secrets_signature: SecretsSignature = ()
        self.errors: list[str] = []
        self._resiliencies: dict[str, list[Resiliency]] = {}
        """Per file: its last good Resiliencies (in scope for this app)."""
        self._on_resiliency_error = on_resiliency_error
        """Called with the file's name for each Resiliency problem (the metrics count it)."""
        self.resiliency_errors: list[str] = []

    def _files(self) -> list[Path]:
        files: list[Path] = []
        for path in self._paths:
            if path.is_dir():
                files.extend(sorted(p for p in path.iterdir() if p.suffix in _SUFFIXES and p.is_file()))
            elif path.is_file():
                files.append(path)
        return files

    def _signature_now(self) -> Signature:
        sig: list[tuple[str, int, int]] = []
        for file in self._files():
            try:
                st = file.stat()
            except OSError:
                continue
            sig.append((str(file), st.st_mtime_ns, st.st_size))
        return tuple(sig)

    def _secrets_signature_now(self) -> SecretsSignature:
        """The state of the watched secrets files. ``stat`` and ``open`` follow symlinks, so a
        Kubernetes Secret volume's ``..data`` swap shows as a new inode behind the same path."""
        sig: list[tuple[str, int, int, int, int, bytes]] = []
        for file in self._secrets_files:
            try:
                with open(file, "rb") as f:
                    st = os.fstat(f.fileno())
                    digest = hashlib.blake2b(f.read(), digest_size=16).digest()
            except OSError:
                sig.append((str(file), 0, 0, 0, -1, b""))  # missing now: its return is a change too
                continue
            sig.append((str(file), st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size, digest))
        return tuple(sig)

    def _read(self) -> tuple[Signature, dict[str, str | OSError | UnicodeDecodeError]]:
        """Blocking part of a load (run in a thread): the signature and every file's text."""
        texts: dict[str, str | OSError | UnicodeDecodeError] = {}
        for file in self._files():
            try:
                texts[str(file)] = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                texts[str(file)] = exc
        return self._signature_now(), texts

    async def load(self) -> list[str]:
        """Read every file and sync the store; returns (and logs) the problems found."""
        self._signature, texts = await asyncio.to_thread(self._read)
        problems: list[str] = []
        documents: dict[str, list[manifests.Document]] = {}
        stores: list[secrets.SecretStoreSpec] = []
        # A file that cannot be read, or has a bad Resiliency, keeps its last good ones.
        resiliencies = {source: self._resiliencies[source] for source in texts if source in self._resiliencies}
        resiliency_problems: list[tuple[str, str]] = []
        for source, text in texts.items():
            if not isinstance(text, str):
                problems.append(f"{source}: cannot read: {text}")
                continue
            try:
                parsed = manifests.parse_documents(text, source)
            except manifests.ManifestError as exc:
                problems.append(str(exc))
                continue
            problems.extend(parsed.errors)
            if parsed.resiliency_errors:
                resiliency_problems.extend((source, problem) for problem in parsed.resiliency_errors)
                resiliencies.setdefault(source, [])
            else:
                resiliencies[source] = [r for r in parsed.resiliencies if self._in_scope(r)]
            docs = parsed.components
            for item in parsed.skipped:
                log.debug("skipped %s (not a Component)", item)
            documents[source] = []
            for doc in docs:
                if doc.type in secrets.SECRET_STORE_TYPES:
                    meta = {str(e.get("name")): str(e.get("value", "")) for e in doc.entries}
                    stores.append(secrets.SecretStoreSpec(doc.name, doc.type, meta, doc.where))
                elif not doc.type.lower().startswith("conversation."):
                    log.info("skipped %s (%s): parley serves only conversation.* components", doc.where, doc.type)
                elif doc.scopes and self._app_id not in doc.scopes:
                    log.info("skipped %s: app id %r is not in its scopes", doc.where, self._app_id)
                else:
                    documents[source].append(doc)
        # Watch the secrets files from now on; their state is taken before any value is read, so
        # a rotation during this load is seen by the next poll (at worst one extra reload).
        self._secrets_files = secrets.secrets_files(stores)
        self._secrets_signature = await asyncio.to_thread(self._secrets_signature_now)
        lookup = secrets.LocalSecrets(stores, environ=self._environ)
        wanted: dict[str, list[ComponentSpec]] = {}
        for source, docs in documents.items():
            wanted[source] = []
            for doc in docs:
                try:
                    wanted[source].append(
                        manifests.to_spec(doc, secrets=lookup.lookup, environ=self._environ, source=source)
                    )
                except manifests.ManifestError as exc:
                    problems.append(str(exc))
                    current = self._store.get(doc.name)
                    if current is not None and current.spec.source == source:
                        wanted[source].append(current.spec)  # keep the last good version serving
        problems.extend(lookup.errors)
        # Files that disappeared since the last load give up their components.
        present = {path for path, _, _ in self._signature}
        for entry in self._store.entries():
            source = entry.spec.source
            if source not in wanted and source not in ("operator", "builtin") and source not in present:
                wanted[source] = []
        problems.extend(await self._store.sync(wanted))
        for problem in problems:
            log.error("component not loaded: %s", problem)
        self.errors = problems
        await self._apply_resiliencies(resiliencies, resiliency_problems)
        return problems

    def _in_scope(self, resiliency: Resiliency) -> bool:
        if resiliency.scopes and self._app_id not in resiliency.scopes:
            log.info("skipped %s: app id %r is not in its scopes", resiliency.where, self._app_id)
            return False
        return True

    async def _apply_resiliencies(self, found: dict[str, list[Resiliency]], problems: list[tuple[str, str]]) -> None:
        """Check targets against the loaded components, keep each bad file's last good set, and
        hand the merged targets to the store. Problems are logged, never raised."""
        loaded = {entry.spec.name for entry in self._store.entries()}
        for source, items in list(found.items()):
            missing = [f"{r.where}: field 'spec.targets.components.{name}': no component named {name!r} is loaded"
                       for r in items for name in r.targets if name not in loaded]
            if missing and items is not self._resiliencies.get(source):
                problems.extend((source, problem) for problem in missing)
                found[source] = self._resiliencies.get(source, [])
        self._resiliencies = found  # files gone since the last load give up their Resiliencies
        overlays: dict[str, Outbound] = {}
        if any(found.values()):  # then manifests has imported the module
            from parley_sidecar.components import resiliency_resource

            overlays = resiliency_resource.overlays(
                resiliency for source in sorted(found) for resiliency in found[source])
        await self._store.set_overlays(overlays)
        for source, problem in problems:
            log.error("resiliency not applied (the last good one stays): %s", problem)
            if self._on_resiliency_error is not None:
                self._on_resiliency_error(source)
        self.resiliency_errors = [problem for _, problem in problems]

    async def _settle(self) -> None:
        """Wait (briefly, boundedly) until the files stop changing. A file rewritten in place
        (truncated, then written: ``cat >``, ``echo >``, most scripts) read between the two would be
        empty, and its components would be dropped until the next poll, failing calls meanwhile."""
        seen = self._signature_now()
        for _ in range(_SETTLE_TRIES):
            await asyncio.sleep(_SETTLE_SECONDS)
            now = self._signature_now()
            if now == seen:
                return
            seen = now

    async def watch(self) -> None:
        """Reload whenever a file is added, changed or removed, or a secrets file is rotated;
        runs until cancelled."""
        while True:
            await asyncio.sleep(self._interval)
            try:
                if (self._signature_now() != self._signature
                        or self._secrets_signature_now() != self._secrets_signature):
                    await self._settle()
                    await self.load()
            except asyncio.CancelledError:
                raise
            except Exception:  # a reload bug must not stop later reloads
                log.exception("reloading components failed; keeping the current set")
