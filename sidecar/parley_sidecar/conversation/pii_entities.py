"""What can be scrubbed: the entity names, daprd's tokens, and the parser of ``piiEntities``.

Kept apart from the scrubber so that the daprd oracle (:mod:`.pii_daprd`) and the shared interval
code (:mod:`.pii_spans`) can name entities without importing the scrubber.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["DEFAULT_ENTITIES", "TOKENS", "Entity", "parse_entities"]


class Entity(enum.StrEnum):
    """What can be scrubbed. The order is daprd's (``NewDefaultScrubber``); it decides ties."""

    STREET_ADDRESS = "STREET_ADDRESS"
    CREDIT_CARD = "CREDIT_CARD"
    PHONE = "PHONE"
    EMAIL = "EMAIL"
    IP = "IP"  # IPv4 and IPv6
    ZIP_CODE = "ZIP_CODE"
    PO_BOX = "PO_BOX"
    SSN = "SSN"
    ISBN = "ISBN"
    MAC_ADDRESS = "MAC_ADDRESS"
    IBAN = "IBAN"

    # Enum's own __hash__ is Python code; the scrubber looks entities up once per candidate, and
    # that was a fifth of the time on text dense with numbers. Same value (name == value).
    __hash__ = str.__hash__


DEFAULT_ENTITIES: frozenset[Entity] = frozenset(Entity)
"""daprd's default set (``blacklistedEntities`` of ``NewDefaultScrubber``): all of them."""

TOKENS: Mapping[Entity, str] = MappingProxyType(
    {
        Entity.STREET_ADDRESS: "<STREET_ADDRESS>",
        Entity.CREDIT_CARD: "<CREDIT_CARD>",
        Entity.PHONE: "<PHONE_NUMBER>",
        Entity.EMAIL: "<EMAIL_ADDRESS>",
        Entity.IP: "<IP>",
        Entity.ZIP_CODE: "<ZIP_CODE>",
        Entity.PO_BOX: "<PO_BOX>",
        Entity.SSN: "<US_SSN>",
        Entity.ISBN: "<ISBN>",
        Entity.MAC_ADDRESS: "<MAC_ADDRESS>",
        Entity.IBAN: "<IBAN>",
    }
)
"""The text that replaces each entity: daprd's ``_defaultEntityConfigs``."""

_ALIASES: Mapping[str, Entity] = MappingProxyType(
    {
        **{e.value: e for e in Entity},
        **{t.strip("<>"): e for e, t in TOKENS.items()},
        "IPV4": Entity.IP,
        "IPV6": Entity.IP,
        "IP_ADDRESS": Entity.IP,
    }
)


def parse_entities(spec: str) -> frozenset[Entity]:
    """``"EMAIL,PHONE"`` → entities. Case and spaces do not matter; daprd's token names
    (``PHONE_NUMBER``, ``EMAIL_ADDRESS``, ``US_SSN``, also with the angle brackets) are accepted.

    Raises ``ValueError`` naming the first unknown entry, or if the list names nothing.
    """
    found: set[Entity] = set()
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        key = item.strip("<>").strip().upper().replace("-", "_").replace(" ", "_")
        entity = _ALIASES.get(key)
        if entity is None:
            known = ", ".join(e.value for e in Entity)
            raise ValueError(f"unknown PII entity {item!r} (known: {known})")
        found.add(entity)
    if not found:
        raise ValueError(f"no PII entity named in {spec!r}")
    return frozenset(found)

