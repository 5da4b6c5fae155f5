"""Which Resiliency each sidecar gets: the namespace's view, with the last good version of a bad one.

Dapr's operator streams every Resiliency of the sidecar's namespace that the app is in ``scopes``
of (empty: every app). parley does the same, and also shields sidecars from a Resiliency that got
past the validating webhook (webhook off, or ``failurePolicy: Ignore`` while the operator was
away): a bad version is not delivered; the version that was good before it (same object, same uid)
keeps being served, and a bad one with no good past is listed as withheld, so a sidecar keeps what it
already has under that name. Pure: the hub feeds it kopf's index and sends what it returns.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping

from parley_operator.resiliency import ResiliencyRecord

__all__ = ["Change", "ResiliencyIndex", "Views", "diff"]

ResiliencyIndex = Mapping[str, Iterable[ResiliencyRecord]]
View = dict[str, ResiliencyRecord | str]
"""Resiliency name → the record to deliver, or why there is none (a bad one with no good version)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    name: str
    record: ResiliencyRecord | None
    """None: the sidecar must drop this Resiliency."""


class Views:
    def __init__(self) -> None:
        self._good: dict[tuple[str, str], ResiliencyRecord] = {}
        self.rejected: dict[tuple[str, str], ResiliencyRecord] = {}
        """The bad versions in the current view (the hub reports each once, by digest)."""

    def view(self, ns: str, records: Iterable[ResiliencyRecord]) -> View:
        current = {r.name: r for r in records}
        view: View = {}
        for name, record in current.items():
            key = (ns, name)
            if not record.error:
                self._good[key] = record
                self.rejected.pop(key, None)
                view[name] = record
                continue
            self.rejected[key] = record
            good = self._good.get(key)
            if good is not None and good.uid == record.uid:
                view[name] = good
            else:  # recreated bad, or never good since the operator started
                self._good.pop(key, None)
                view[name] = record.error
        for key in [k for k in (*self._good, *self.rejected) if k[0] == ns and k[1] not in current]:
            self._good.pop(key, None)
            self.rejected.pop(key, None)
        return view

    @staticmethod
    def visible(view: View, app_id: str) -> tuple[list[ResiliencyRecord], list[tuple[str, str]]]:
        """What one app gets in its snapshot: the records, and ``(name, reason)`` of those withheld.
        A withheld one has no trustworthy scopes, so every app keeps what it has under that name."""
        records = [r for r in view.values() if isinstance(r, ResiliencyRecord) and r.visible_to(app_id)]
        withheld = [(name, r) for name, r in view.items() if isinstance(r, str)]
        return records, withheld


def diff(sent: dict[str, str], view: View, app_id: str) -> Iterator[Change]:
    """Bring one stream from ``sent`` (name → digest, updated in place) to what ``app_id`` may see.
    A withheld name is left as the sidecar has it: nothing is sent for it."""
    for name, item in view.items():
        if isinstance(item, str):
            continue
        if item.visible_to(app_id):
            if sent.get(name) != item.digest:
                sent[name] = item.digest
                yield Change(name, item)
        elif name in sent:
            del sent[name]
            yield Change(name, None)
    for name in [n for n in sent if n not in view]:
        del sent[name]
        yield Change(name, None)
