"""Shared fixtures: a real parley sidecar on loopback, started in-process on ports the OS picks."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from parley_sidecar.runtime import Sidecar
from parley_sidecar.settings import Ports, SidecarSettings
from tests.manifests import component_yaml  # noqa: F401  (re-exported: tests import it from here)

ECHO = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: {name}
spec:
  type: conversation.echo
  version: v1
  metadata:
  - name: key
    value: testkey
"""


@dataclasses.dataclass
class Running:
    sidecar: Sidecar
    resources: Path
    session: aiohttp.ClientSession

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.sidecar.bound['http']}"

    @property
    def grpc(self) -> str:
        return f"127.0.0.1:{self.sidecar.bound['grpc']}"

    @property
    def metrics(self) -> str:
        return f"http://127.0.0.1:{self.sidecar.bound['metrics']}"

    @property
    def public(self) -> str:
        return f"http://127.0.0.1:{self.sidecar.bound['public']}"

    async def post(self, path: str, body: Any = None, *, raw: bytes | None = None,
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {"data": raw} if raw is not None else {"json": body}
        async with self.session.post(self.http + path, headers=headers, **kwargs) as resp:
            text = await resp.text()
            try:
                import json

                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text


StartSidecar = Callable[..., Coroutine[Any, Any, Running]]


@pytest.fixture
async def start_sidecar(tmp_path: Path) -> AsyncIterator[StartSidecar]:
    started: list[Running] = []
    session = aiohttp.ClientSession()

    async def start(files: dict[str, str] | None = None, **overrides: Any) -> Running:
        resources = tmp_path / f"components{len(started)}"
        resources.mkdir()
        for fname, text in (files if files is not None else {"echo.yaml": ECHO.format(name="echo")}).items():
            (resources / fname).write_text(text)
        settings = SidecarSettings(app_id="test-app", resources_paths=[resources],
                                   ports=Ports(http=0, grpc=0, metrics=0, public=0),
                                   listen_addresses=["127.0.0.1"], public_listen_address="127.0.0.1",
                                   metrics_listen_address="127.0.0.1", reload_interval=0.05)
        for key, value in overrides.items():
            setattr(settings, key, value)
        sidecar = Sidecar(settings)
        await sidecar.start()
        running = Running(sidecar, resources, session)
        started.append(running)
        return running

    yield start
    for running in started:
        await running.sidecar.stop()
    await session.close()


@pytest.fixture
async def sidecar(start_sidecar: StartSidecar) -> Running:
    """A sidecar with daprd's two test components, `echo` and `test-alpha2-echo`."""
    return await start_sidecar({
        "echo.yaml": ECHO.format(name="echo"),
        "alpha2.yaml": ECHO.format(name="test-alpha2-echo"),
    })
