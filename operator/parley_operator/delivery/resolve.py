"""A Component record plus its namespace's Secrets → what a sidecar receives, or why it cannot.

Dapr's operator fails a whole ``ListComponents`` call when one Secret is missing; parley withholds
only that Component and says why (the reason names the Secret and key, never a value). Only
``auth.secretStore`` ``kubernetes`` (or none) is resolved here; the validating webhook refuses
other stores for ``secretKeyRef``. Pure: the caller fetches the Secrets first.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from parley_operator.component import ComponentRecord

__all__ = ["Outcome", "Resolved", "SecretData", "Withheld", "resolve"]

SecretData = Mapping[str, str]
"""A Secret's ``data``: key → base64 text, as the API returns it."""


@dataclasses.dataclass(frozen=True, slots=True)
class Resolved:
    name: str
    scopes: tuple[str, ...]
    payload: Mapping[str, Any] = dataclasses.field(repr=False)
    """The wire form ``C`` (``stream_protocol``); holds secret values: never logged."""
    digest: str = ""
    """Changes exactly when ``payload`` does; lets streams skip no-op updates."""


@dataclasses.dataclass(frozen=True, slots=True)
class Withheld:
    name: str
    scopes: tuple[str, ...]
    reason: str
    kind: str = "secret_missing"
    """``secret_missing`` or ``component_invalid`` (for metrics)."""


Outcome = Resolved | Withheld


def _secret_value(record: ComponentRecord, secrets: Mapping[str, SecretData | None], name: str,
                  key: str) -> str | Withheld:
    data = secrets.get(name)
    if data is None:
        return Withheld(record.name, record.scopes,
                        f"Secret '{name}' not found in namespace '{record.namespace}'")
    if key not in data:
        return Withheld(record.name, record.scopes, f"Secret '{name}' has no key '{key}'")
    try:
        return base64.b64decode(data[key], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return Withheld(record.name, record.scopes, f"Secret '{name}' key '{key}' is not UTF-8 text")


def resolve(record: ComponentRecord, secrets: Mapping[str, SecretData | None]) -> Outcome:
    """``secrets`` must hold an entry (None when absent) for each of ``record.secret_names``."""
    if record.errors:
        more = f" (and {len(record.errors) - 1} more)" if len(record.errors) > 1 else ""
        return Withheld(record.name, record.scopes, f"invalid: {record.errors[0]}{more}", "component_invalid")
    metadata: list[dict[str, str]] = []
    for entry in record.entries:
        if entry.secret_name:
            value = _secret_value(record, secrets, entry.secret_name, entry.secret_key)
            if isinstance(value, Withheld):
                return value
            metadata.append({"name": entry.name, "value": value})
        elif entry.env_ref:
            metadata.append({"name": entry.name, "envRef": entry.env_ref})
        else:
            metadata.append({"name": entry.name, "value": entry.value})
    payload = {"name": record.name, "namespace": record.namespace, "type": record.type,
               "version": record.version, "scopes": list(record.scopes), "metadata": metadata}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]
    return Resolved(record.name, record.scopes, payload, digest)
