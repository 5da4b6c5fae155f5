"""A rotated ``secretsFile`` reaches the components that reference it, with no YAML change.

The file is rotated on a real disk the three ways it happens: rewritten in place (same length, so
only the content tells), replaced by an atomic rename, and swapped behind a ``..data`` symlink as
the kubelet updates a mounted Secret. The sidecar is real; the provider is the OpenAI fake, which
records the key each request carries.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.conftest import Running, StartSidecar, component_yaml
from tests.fakes import OpenAIFake

OLD, NEW = "sk-old-0123456789", "sk-new-9876543210"  # same length: an in-place rewrite keeps the size

STORE = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: files
spec:
  type: secretstores.local.file
  version: v1
  metadata:
  - name: secretsFile
    value: {path}
"""

REFERENCING = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: rotating
spec:
  type: conversation.openai
  version: v1
  metadata:
  - name: endpoint
    value: {endpoint}
  - name: model
    value: gpt-test
  - name: key
    secretKeyRef:
      name: openai
      key: openai
auth:
  secretStore: files
"""


def write_in_place(path: Path, value: str) -> None:
    path.write_text(json.dumps({"openai": value}))


def write_by_rename(path: Path, value: str) -> None:
    staged = path.with_name(path.name + ".tmp")
    staged.write_text(json.dumps({"openai": value}))
    os.replace(staged, path)


class SecretVolume:
    """A Secret volume as the kubelet writes it: ``secrets.json -> ..data/secrets.json``,
    ``..data -> ..<timestamp>``; an update writes a new timestamped directory, then renames a
    new ``..data`` symlink over the old one (atomic), then removes the old directory."""

    def __init__(self, root: Path) -> None:
        self.root, self.generation = root, 0
        root.mkdir()
        (root / "secrets.json").symlink_to("..data/secrets.json")

    def write(self, value: str) -> None:
        self.generation += 1
        old = (self.root / "..data").resolve() if (self.root / "..data").exists() else None
        target = self.root / f"..2026_12_06_{self.generation}"
        target.mkdir()
        (target / "secrets.json").write_text(json.dumps({"openai": value}))
        (self.root / "..data_tmp").symlink_to(target.name)
        os.replace(self.root / "..data_tmp", self.root / "..data")
        if old is not None:
            (old / "secrets.json").unlink()
            old.rmdir()


@pytest.fixture
async def fake() -> AsyncIterator[OpenAIFake]:
    server = await OpenAIFake().start()
    yield server
    await server.close()


async def key_seen(running: Running, fake: OpenAIFake, name: str) -> str:
    status, reply = await running.post(f"/v1.0-alpha1/conversation/{name}/converse", {"inputs": ["ping"]})
    assert status == 200, reply
    return fake.last.headers["authorization"].removeprefix("Bearer ")


async def wait_for_key(running: Running, fake: OpenAIFake, key: str, timeout: float = 10.0) -> None:
    """Ask until the provider receives ``key`` (a generous bound, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while await key_seen(running, fake, "rotating") != key:
        assert loop.time() < deadline, f"the rotated secret did not reach the provider within {timeout:g}s"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("rotation", ["in place", "rename", "kubernetes symlink swap"])
async def test_rotated_secrets_file_reaches_the_referencing_component(
        start_sidecar: StartSidecar, fake: OpenAIFake, tmp_path: Path, rotation: str) -> None:
    rotate: Callable[[str], None]
    if rotation == "kubernetes symlink swap":
        volume = SecretVolume(tmp_path / "secret-volume")
        secrets_path, rotate = volume.root / "secrets.json", volume.write
    else:
        secrets_path = tmp_path / "secrets.json"
        writer = write_in_place if rotation == "in place" else write_by_rename

        def rotate(value: str) -> None:
            writer(secrets_path, value)
    rotate(OLD)
    endpoint = f"{fake.url}/v1"
    running = await start_sidecar({
        "store.yaml": STORE.format(path=secrets_path),
        "rotating.yaml": REFERENCING.format(endpoint=endpoint),
        "plain.yaml": component_yaml("plain", "conversation.openai",
                                     {"endpoint": endpoint, "model": "gpt-test", "key": "sk-plain"}),
    })
    yaml_before = {p.name: p.stat().st_mtime_ns for p in running.resources.iterdir()}
    assert await key_seen(running, fake, "rotating") == OLD
    plain = running.sidecar.store.get("plain")

    rotate(NEW)
    await wait_for_key(running, fake, NEW)

    # no YAML changed, and a component that does not reference the file was not reloaded
    assert {p.name: p.stat().st_mtime_ns for p in running.resources.iterdir()} == yaml_before
    assert running.sidecar.store.get("plain") is plain
    assert await key_seen(running, fake, "plain") == "sk-plain"


async def test_a_secrets_file_that_goes_missing_keeps_the_last_good_key(
        start_sidecar: StartSidecar, fake: OpenAIFake, tmp_path: Path) -> None:
    secrets_path = tmp_path / "secrets.json"
    write_in_place(secrets_path, OLD)
    running = await start_sidecar({"store.yaml": STORE.format(path=secrets_path),
                                   "rotating.yaml": REFERENCING.format(endpoint=f"{fake.url}/v1")})
    secrets_path.unlink()  # a rotation caught half way: the component keeps serving with what it had

    async def reported() -> bool:
        loader = running.sidecar.loader
        return loader is not None and any("cannot read" in e for e in loader.errors)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not await reported():
        assert loop.time() < deadline, "the missing secrets file was not reported"
        await asyncio.sleep(0.05)
    assert await key_seen(running, fake, "rotating") == OLD
    write_by_rename(secrets_path, NEW)  # … and the file comes back
    await wait_for_key(running, fake, NEW)
