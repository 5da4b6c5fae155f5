"""Dapr's local secret stores, for ``secretKeyRef`` in standalone mode.

``secretstores.local.file`` reads a JSON file (``secretsFile``, relative to the working directory,
as daprd does); nested objects are flattened with ``nestedSeparator`` (default ``:``). With
``multiValued: "true"`` a top-level name holds several keys. ``secretstores.local.env`` reads the
process environment. Values are read when a component is (re)loaded; the resources watcher also
watches every ``secretsFile`` (:func:`secrets_files`), so a rotated file — rewritten in place,
replaced by rename, or swapped by a symlink as Kubernetes does for a mounted Secret — reloads the
components that reference it without any YAML changing. Values are never logged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

__all__ = ["SECRET_STORE_TYPES", "LocalSecrets", "SecretStoreSpec", "secrets_file", "secrets_files"]

SECRET_STORE_TYPES = ("secretstores.local.file", "secretstores.local.env")


class SecretStoreSpec:
    # A plain class: nothing compares or prints one, and a frozen dataclass costs ~0.45 ms of every
    # start to create (docs/performance.md, round 7).
    __slots__ = ("metadata", "name", "type", "where")

    def __init__(self, name: str, type: str, metadata: Mapping[str, str], where: str) -> None:
        self.name: Final = name
        self.type: Final = type
        self.metadata: Final = metadata
        self.where: Final = where


def secrets_file(spec: SecretStoreSpec, base_dir: Path | None = None) -> Path | None:
    """The file a ``secretstores.local.file`` store reads (relative to the working directory, as
    daprd resolves it), or None for another type or when ``secretsFile`` is missing."""
    if spec.type != "secretstores.local.file":
        return None
    name = next((v for k, v in spec.metadata.items() if k.lower() == "secretsfile"), "")
    if not name:
        return None
    path = Path(name)
    return path if path.is_absolute() else (base_dir or Path.cwd()) / path


def secrets_files(stores: list[SecretStoreSpec], base_dir: Path | None = None) -> list[Path]:
    """Every file the given stores read, once each: what a reload must watch besides the YAML."""
    found = (secrets_file(s, base_dir) for s in stores)
    return sorted({p for p in found if p is not None})


def _flatten(prefix: str, value: Any, sep: str, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}{sep}{key}" if prefix else str(key), inner, sep, out)
    else:
        out[prefix] = value if isinstance(value, str) else json.dumps(value)


class LocalSecrets:
    """Resolves ``(store, name, key)`` against the secret stores found in the resources path."""

    def __init__(self, stores: list[SecretStoreSpec], *, base_dir: Path | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        self._stores = {s.name: s for s in stores}
        self._base = base_dir or Path.cwd()
        self._environ = os.environ if environ is None else environ
        self.errors: list[str] = []

    def _file_secrets(self, spec: SecretStoreSpec) -> dict[str, Any]:
        meta = {k.lower(): v for k, v in spec.metadata.items()}
        path = secrets_file(spec, self._base)
        if path is None:
            raise ValueError(f"{spec.where}: secret store {spec.name!r} needs 'secretsFile'")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ValueError(f"secret store {spec.name!r}: cannot read {path}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"secret store {spec.name!r}: {path} is not valid JSON (line {exc.lineno})") from None
        except UnicodeDecodeError as exc:
            raise ValueError(f"secret store {spec.name!r}: {path} is not UTF-8 text (byte {exc.start})") from None
        if not isinstance(data, dict):
            raise ValueError(f"secret store {spec.name!r}: {path} must hold a JSON object")
        sep = meta.get("nestedseparator", ":")
        if meta.get("multivalued", "false").lower() == "true":
            out: dict[str, Any] = {}
            for name, value in data.items():
                flat: dict[str, str] = {}
                _flatten("", value, sep, flat)
                out[name] = flat
            return out
        single: dict[str, str] = {}
        _flatten("", data, sep, single)
        return {name: {name: value} for name, value in single.items()}

    def lookup(self, store: str, name: str, key: str) -> str | None:
        if not store:
            if len(self._stores) != 1:
                return None
            store = next(iter(self._stores))
        spec = self._stores.get(store)
        if spec is None:
            return None
        if spec.type == "secretstores.local.env":
            value = self._environ.get(name)
            return value if key == name else None
        try:
            secrets = self._file_secrets(spec)
        except ValueError as exc:
            self.errors.append(str(exc))
            return None
        bag = secrets.get(name)
        if not isinstance(bag, dict):
            return None
        value = bag.get(key)
        return value if isinstance(value, str) else None
