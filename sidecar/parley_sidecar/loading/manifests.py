"""Dapr ``Component`` YAML → :class:`ComponentSpec`, with every problem named (file, component, field).

Accepts what daprd accepts in ``--resources-path``: multi-document files, ``apiVersion:
dapr.io/v1alpha1``, ``kind: Component``, ``spec.metadata`` entries with ``value``, ``secretKeyRef``
or ``envRef``, ``auth.secretStore`` and ``scopes``; and ``kind: Resiliency`` documents, checked by
``components.resiliency_resource``. Other kinds (Configuration, Subscription …) and
non-conversation component types are skipped by the caller with a log line.
Secret references are resolved here through the given lookups. No file I/O here: callers pass text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from parley_sidecar.components.spec import ComponentSpec

if TYPE_CHECKING:
    from parley_sidecar.components import resiliency_resource

__all__ = ["Document", "ManifestError", "Parsed", "SecretLookup", "parse_documents", "to_spec"]

SecretLookup = Callable[[str, str, str], str | None]
"""``(store, secret name, key) -> value``; None when the store or the secret is missing."""


class ManifestError(ValueError):
    """A manifest problem, phrased for the person who wrote the file."""


class Document:
    """One YAML document that is a Dapr Component, before secrets are resolved.

    Plain classes here, not dataclasses: nothing compares or prints them, and a dataclass costs
    0.3-0.5 ms of every start to create (docs/performance.md, round 7)."""

    __slots__ = ("entries", "name", "namespace", "scopes", "secret_store", "type", "version", "where")

    def __init__(self, name: str, namespace: str, type: str, version: str,
                 entries: tuple[Mapping[str, Any], ...], secret_store: str, scopes: tuple[str, ...],
                 where: str) -> None:
        self.name: Final = name
        self.namespace: Final = namespace
        self.type: Final = type
        self.version: Final = version
        self.entries: Final = entries
        self.secret_store: Final = secret_store
        self.scopes: Final = scopes
        self.where: Final = where
        """``file.yaml (document 2)`` for error messages."""


class Parsed:
    """What one file holds."""

    __slots__ = ("components", "errors", "resiliencies", "resiliency_errors", "skipped")

    def __init__(self) -> None:
        self.components: list[Document] = []
        self.resiliencies: list[resiliency_resource.Resiliency] = []
        self.skipped: list[str] = []
        """Documents of other kinds."""
        self.errors: list[str] = []
        """Malformed Components."""
        self.resiliency_errors: list[str] = []
        """Malformed Resiliencies (kept apart: the caller keeps the file's last good ones then)."""


def parse_documents(text: str, where: str) -> Parsed:
    """Split a YAML text into Component and Resiliency documents; a YAML syntax error fails the
    whole file (raises ManifestError)."""
    # Imported here, not at the top: in Kubernetes the operator's stream brings Components as JSON,
    # and importing PyYAML costs a sidecar that never reads a file ~10 ms of its start.
    import yaml

    try:
        raw_docs = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise ManifestError(f"{where}: not valid YAML{line}") from None
    parsed = Parsed()
    for index, raw in enumerate(raw_docs, start=1):
        label = where if len(raw_docs) == 1 else f"{where} (document {index})"
        if not isinstance(raw, dict):
            parsed.errors.append(f"{label}: expected a mapping, got {type(raw).__name__}")
            continue
        kind = raw.get("kind")
        if kind == "Resiliency":
            # Imported here: most sidecars have no Resiliency, and its model costs ~2 ms of a start.
            from parley_sidecar.components import resiliency_resource

            try:
                parsed.resiliencies.append(resiliency_resource.parse(raw, label))
            except resiliency_resource.ResiliencyError as exc:
                parsed.resiliency_errors.append(str(exc))
            continue
        if kind != "Component":
            parsed.skipped.append(f"{label}: kind {kind!r}")
            continue
        try:
            parsed.components.append(_document(raw, label))
        except ManifestError as exc:
            parsed.errors.append(str(exc))
    return parsed


def _document(raw: Mapping[str, Any], label: str) -> Document:
    meta = raw.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise ManifestError(f"{label}: field 'metadata.name' is required")
    name = meta["name"]
    where = f"{label}, component {name!r}"
    spec = raw.get("spec")
    if not isinstance(spec, dict):
        raise ManifestError(f"{where}: field 'spec' is required")
    ctype = spec.get("type")
    if not isinstance(ctype, str) or not ctype:
        raise ManifestError(f"{where}: field 'spec.type' is required")
    version = spec.get("version", "")
    if not isinstance(version, str):
        raise ManifestError(f"{where}: field 'spec.version' must be a string")
    entries = spec.get("metadata") or []
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ManifestError(f"{where}: field 'spec.metadata' must be a list of {{name, value}} entries")
    auth = raw.get("auth") or {}
    store = auth.get("secretStore", "") if isinstance(auth, dict) else ""
    scopes = raw.get("scopes") or []
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise ManifestError(f"{where}: field 'scopes' must be a list of app ids")
    return Document(
        name=name,
        namespace=str(meta.get("namespace") or ""),
        type=ctype,
        version=version,
        entries=tuple(entries),
        secret_store=str(store or ""),
        scopes=tuple(scopes),
        where=where,
    )


def _scalar(value: Any) -> str:
    """Dapr metadata values are strings; YAML may give numbers or booleans."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise TypeError(type(value).__name__)


def to_spec(
    doc: Document,
    *,
    secrets: SecretLookup,
    environ: Mapping[str, str],
    source: str,
) -> ComponentSpec:
    """Resolve a document's metadata entries into plain strings; raise ManifestError naming the field."""
    values: dict[str, str] = {}
    for position, entry in enumerate(doc.entries):
        field = entry.get("name")
        if not isinstance(field, str) or not field:
            raise ManifestError(f"{doc.where}: spec.metadata[{position}] has no 'name'")
        ref = entry.get("secretKeyRef")
        env_ref = entry.get("envRef")
        if ref is not None:
            if not isinstance(ref, dict) or not ref.get("name"):
                raise ManifestError(f"{doc.where}: field {field!r}: secretKeyRef needs 'name'")
            secret_name = str(ref["name"])
            key = str(ref.get("key") or secret_name)
            value = secrets(doc.secret_store, secret_name, key)
            if value is None:
                store = doc.secret_store or "the local secret store"
                raise ManifestError(
                    f"{doc.where}: field {field!r}: secret {secret_name!r} key {key!r} not found in {store}"
                )
        elif env_ref is not None:
            if not isinstance(env_ref, str) or not env_ref:
                raise ManifestError(f"{doc.where}: field {field!r}: envRef must name a variable")
            if env_ref not in environ:
                raise ManifestError(f"{doc.where}: field {field!r}: environment variable {env_ref!r} is not set")
            value = environ[env_ref]
        else:
            raw = entry.get("value", "")
            try:
                value = "" if raw is None else _scalar(raw)
            except TypeError as exc:
                raise ManifestError(f"{doc.where}: field {field!r}: value must be a string, got {exc}") from None
        values[field] = value
    return ComponentSpec(
        name=doc.name,
        type=doc.type,
        version=doc.version,
        metadata=values,
        scopes=doc.scopes,
        namespace=doc.namespace,
        source=source,
    )
