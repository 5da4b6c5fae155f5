"""Fixtures shared by the sidecar's test folders."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from parley_sidecar.components.spec import ComponentSpec
from parley_sidecar.components.store import ComponentStore, Entry

Build = Callable[..., Awaitable[Entry]]


@pytest.fixture
def build(store: ComponentStore) -> Build:
    """Load a component into the store (as a Component file would) and return its entry.

    ``store`` is the nearest one to the test: each folder or module that uses ``build`` defines its own.
    """

    async def make(type_: str, metadata: dict[str, str], name: str = "c") -> Entry:
        await store.apply(ComponentSpec(name=name, type=type_, version="v1", metadata=metadata, source="test"))
        entry = store.get(name)
        assert entry is not None
        return entry

    return make
