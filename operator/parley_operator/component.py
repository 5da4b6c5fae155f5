"""Dapr ``Component`` objects as the operator sees them: parsed once, checked once. No I/O here.

:func:`validate` is the validating webhook's decision on a Component whose shape ``admission``
has already checked (a mapping ``spec`` with a string ``type``), and also feeds the "accepted" /
"invalid" Events; it reads the metadata declarations of ``parley_sidecar.components.catalog``
(the same data the sidecar loads with) and never lists a metadata name itself. Every message
names the field at fault (``spec.metadata[2].secretKeyRef.name``) and never quotes a value that
could be secret.

:class:`ComponentRecord` is what the operator keeps in its kopf index for delivery: the fields a
sidecar needs, plus the validation errors, so an invalid Component is withheld, not shipped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from parley_operator.injection import config
from parley_sidecar import durations
from parley_sidecar.components import catalog

__all__ = [
    "CONVERSATION_PREFIX",
    "ComponentRecord",
    "Entry",
    "Report",
    "is_conversation",
    "record_of",
    "scalar",
    "validate",
]

CONVERSATION_PREFIX = "conversation."
KUBERNETES_STORE = "kubernetes"


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """One ``spec.metadata[]`` item; exactly one of value / secret / env_ref is meaningful."""

    name: str
    value: str = dataclasses.field(default="", repr=False)
    secret_name: str = ""
    secret_key: str = ""
    env_ref: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class ComponentRecord:
    name: str
    namespace: str
    type: str
    version: str
    entries: tuple[Entry, ...]
    scopes: tuple[str, ...]
    errors: tuple[str, ...] = ()
    """Why this Component cannot be delivered (empty when valid)."""
    uid: str = ""
    resource_version: str = ""
    fingerprint: str = ""
    """Digest of everything above that a sidecar sees; equal fingerprints resolve equally."""

    def visible_to(self, app_id: str) -> bool:
        """Dapr's ``IsAppScoped``: no scopes means every app of the namespace."""
        return not self.scopes or app_id in self.scopes

    @property
    def secret_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.secret_name for e in self.entries if e.secret_name))


@dataclasses.dataclass(frozen=True, slots=True)
class Report:
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors


def is_conversation(body: Mapping[str, Any]) -> bool:
    spec = body.get("spec")
    return isinstance(spec, Mapping) and str(spec.get("type", "")).lower().startswith(CONVERSATION_PREFIX)


def scalar(value: Any) -> str:
    """A metadata value as the sidecar reads it; Dapr's ``DynamicValue.String()``: JSON strings
    unquoted, anything else as its JSON text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, separators=(",", ":"))


class _Checker:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def error(self, path: str, reason: str) -> None:
        self.errors.append(f"{path}: {reason}")

    def warn(self, path: str, reason: str) -> None:
        self.warnings.append(f"{path}: {reason}")


def _field_of(ctype: catalog.ComponentType, name: str) -> catalog.Field | None:
    lowered = name.lower()
    for field in ctype.all_fields():
        if lowered in (field.name.lower(), *(alias.lower() for alias in field.aliases)):
            return field
    return None


def _check_value(ctype: catalog.ComponentType, field: catalog.Field, value: str) -> str | None:
    """Convert one plain value with the catalog's own rules; the reason, or None when it parses."""
    common = field in catalog.COMMON_FIELDS
    probe = dataclasses.replace(
        ctype, fields=() if common else (dataclasses.replace(field, required=False, env=None),)
    )
    try:
        catalog.resolve(probe, {field.name: value}, env={})
    except catalog.MetadataError as exc:
        return exc.reason
    return None


def _check_entries(c: _Checker, ctype: catalog.ComponentType | None, raw: Any, store: str) -> None:
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        c.error("spec.metadata", "must be a list of {name, value} entries")
        return
    seen: dict[str, int] = {}
    provided: set[str] = set()
    for i, item in enumerate(raw):
        path = f"spec.metadata[{i}]"
        if not isinstance(item, Mapping):
            c.error(path, "must be a mapping with 'name' and 'value'")
            continue
        name = item.get("name")
        if not isinstance(name, str) or not name:
            c.error(f"{path}.name", "is required")
            continue
        if name.lower() in seen:
            c.warn(path, f"'{name}' repeats spec.metadata[{seen[name.lower()]}]; the last one wins")
        seen[name.lower()] = i
        field = _field_of(ctype, name) if ctype else None
        if ctype and field is None:
            c.warn(path, f"'{name}' is not a metadata field of {ctype.name}; it is ignored")
        ref, env_ref = item.get("secretKeyRef"), item.get("envRef")
        if ref is not None:
            if not isinstance(ref, Mapping) or not isinstance(ref.get("name"), str) or not ref.get("name"):
                c.error(f"{path}.secretKeyRef.name", f"is required (field '{name}')")
                continue
            key = ref.get("key")
            if key is None:
                c.warn(f"{path}.secretKeyRef.key", f"is not set; the key '{ref['name']}' is read (Dapr's default)")
            elif not isinstance(key, str) or not key:
                c.error(f"{path}.secretKeyRef.key", f"must name a key of Secret '{ref['name']}' (field '{name}')")
                continue
            if store not in ("", KUBERNETES_STORE):
                c.error("auth.secretStore", f"'{store}' is not supported: parley resolves secretKeyRef "
                        "from Kubernetes Secrets only; remove auth.secretStore or set it to 'kubernetes'")
            provided.add(name.lower())
        elif env_ref is not None:
            if not isinstance(env_ref, str) or not env_ref:
                c.error(f"{path}.envRef", f"must name an environment variable (field '{name}')")
                continue
            provided.add(name.lower())
        else:
            value = item.get("value")
            if isinstance(value, (Mapping, list)) and field is not None and field.kind != "string":
                c.error(f"{path}.value", f"must be a string, number or boolean (field '{name}')")
                continue
            text = scalar(value)
            if text:
                provided.add(name.lower())
            if field is not None:
                reason = _check_value(ctype, field, text) if ctype else None
                if reason:
                    c.error(f"{path}.value", f"field '{name}': {reason}")
    if ctype is None:
        return
    for field in ctype.all_fields():
        names = {field.name.lower(), *(a.lower() for a in field.aliases)}
        if field.required and not field.default and not field.env and not names & provided:
            c.error("spec.metadata", f"field '{field.name}' is required for {ctype.name}")


def validate(body: Mapping[str, Any]) -> Report:
    """Everything wrong with a conversation Component, each message naming its field.

    Other Component types get an empty report: they are none of parley's business.
    """
    if not is_conversation(body):
        return Report()
    c = _Checker()
    spec = body["spec"]
    type_name = str(spec.get("type"))
    version = spec.get("version", "")
    ctype = catalog.TYPES.get(type_name.lower())
    if ctype is None:
        c.error("spec.type", f"unknown conversation type '{type_name}'; parley serves "
                + ", ".join(sorted(catalog.TYPES)))
    elif not isinstance(version, str) or version not in ctype.versions:
        supported = ", ".join(v for v in ctype.versions if v) or "''"
        c.error("spec.version", f"'{version}' is not a version of {ctype.name} (use {supported})")
    auth = body.get("auth")
    store = str(auth.get("secretStore") or "") if isinstance(auth, Mapping) else ""
    _check_entries(c, ctype, spec.get("metadata"), store)
    timeout = spec.get("initTimeout")
    if timeout not in (None, ""):
        try:
            durations.parse_duration(str(timeout))
        except ValueError:
            c.error("spec.initTimeout", "must be a duration such as 5s or 1m30s")
    if "ignoreErrors" in spec and not isinstance(spec["ignoreErrors"], bool):
        c.error("spec.ignoreErrors", "must be true or false")
    scopes = body.get("scopes")
    if scopes is not None:
        if not isinstance(scopes, list):
            c.error("scopes", "must be a list of app ids")
        else:
            for i, app_id in enumerate(scopes):
                problem = config.validate_app_id(app_id) if isinstance(app_id, str) and app_id else (
                    "must be a non-empty app id")
                if problem:
                    c.error(f"scopes[{i}]", f"{app_id!r} is not a valid app id: {problem}")
    return Report(errors=tuple(dict.fromkeys(c.errors)), warnings=tuple(dict.fromkeys(c.warnings)))


def _entries(raw: Any) -> tuple[Entry, ...]:
    out: list[Entry] = []
    for item in raw if isinstance(raw, list) else ():
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            continue
        ref, env_ref = item.get("secretKeyRef"), item.get("envRef")
        if isinstance(ref, Mapping) and ref.get("name"):
            name = str(ref["name"])
            out.append(Entry(item["name"], secret_name=name, secret_key=str(ref.get("key") or name)))
        elif isinstance(env_ref, str) and env_ref:
            out.append(Entry(item["name"], env_ref=env_ref))
        else:
            out.append(Entry(item["name"], value=scalar(item.get("value"))))
    return tuple(out)


def record_of(body: Mapping[str, Any]) -> ComponentRecord:
    """The index entry for one conversation Component; never raises on a malformed body."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    scopes = body.get("scopes")
    record = ComponentRecord(
        name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace", "")),
        type=str(spec.get("type", "")),
        version=str(spec.get("version", "")),
        entries=_entries(spec.get("metadata")),
        scopes=tuple(s for s in scopes if isinstance(s, str)) if isinstance(scopes, list) else (),
        errors=validate(body).errors,
        uid=str(meta.get("uid", "")),
        resource_version=str(meta.get("resourceVersion", "")),
    )
    digest = hashlib.sha256(repr((record.name, record.type, record.version, record.scopes, record.errors,
                                  [dataclasses.astuple(e) for e in record.entries])).encode()).hexdigest()
    return dataclasses.replace(record, fingerprint=digest[:32])
