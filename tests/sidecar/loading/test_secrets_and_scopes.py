"""secretKeyRef from a local.file secret store, envRef, and scopes, as in daprd's standalone mode."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from parley_sidecar.components.store import ComponentStore
from parley_sidecar.loading.resources import ResourcesLoader

SECRET_STORE = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: localsecretstore
spec:
  type: secretstores.local.file
  version: v1
  metadata:
  - name: secretsFile
    value: {path}
  - name: nestedSeparator
    value: ":"
"""
OPENAI_LIKE = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: {name}
spec:
  type: conversation.echo
  version: v1
  metadata:
  - name: key
    secretKeyRef:
      name: {secret}
      key: {secret}
  - name: model
    envRef: PARLEY_TEST_MODEL
auth:
  secretStore: localsecretstore
{scopes}"""


async def load(tmp_path: Path, files: dict[str, str], environ: dict[str, str]) -> tuple[ComponentStore, list[str]]:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    store = ComponentStore()
    loader = ResourcesLoader([tmp_path], store, app_id="myapp", environ=environ)
    return store, await loader.load()


async def test_secret_key_ref_and_env_ref_are_resolved(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({"openai": {"key": "sk-from-file"}}))
    store, problems = await load(tmp_path, {
        "store.yaml": SECRET_STORE.format(path=secrets),
        "c.yaml": OPENAI_LIKE.format(name="c", secret="openai:key", scopes=""),
    }, {"PARLEY_TEST_MODEL": "gpt-test"})
    assert problems == []
    entry = store.get("c")
    assert entry is not None
    assert dict(entry.spec.metadata) == {"key": "sk-from-file", "model": "gpt-test"}
    assert "sk-from-file" not in repr(entry.spec)


async def test_missing_secret_names_the_field_not_the_value(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({"other": "sk-unrelated"}))
    caplog.set_level(logging.ERROR)
    store, problems = await load(tmp_path, {
        "store.yaml": SECRET_STORE.format(path=secrets),
        "c.yaml": OPENAI_LIKE.format(name="c", secret="openai", scopes=""),
    }, {"PARLEY_TEST_MODEL": "m"})
    assert store.get("c") is None
    assert len(problems) == 1
    assert "c.yaml" in problems[0] and "'c'" in problems[0] and "'key'" in problems[0]
    assert "sk-unrelated" not in caplog.text


async def test_scopes_exclude_other_apps(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({"k": "v"}))
    store, problems = await load(tmp_path, {
        "store.yaml": SECRET_STORE.format(path=secrets),
        "mine.yaml": OPENAI_LIKE.format(name="mine", secret="k", scopes="scopes:\n- myapp\n"),
        "theirs.yaml": OPENAI_LIKE.format(name="theirs", secret="k", scopes="scopes:\n- otherapp\n"),
    }, {"PARLEY_TEST_MODEL": "m"})
    assert problems == []
    assert store.get("mine") is not None
    assert store.get("theirs") is None


async def test_a_secrets_file_that_is_not_utf8_is_named_and_its_bytes_are_not_shown(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.json"
    secrets.write_bytes(b'{"openai": {"key": "sk-\xff\xfe-latin1"}}')
    store, problems = await load(tmp_path, {
        "store.yaml": SECRET_STORE.format(path=secrets),
        "c.yaml": OPENAI_LIKE.format(name="c", secret="openai:key", scopes=""),
    }, {"PARLEY_TEST_MODEL": "m"})
    assert store.get("c") is None
    assert any("secrets.json is not UTF-8 text" in p for p in problems), problems
    assert not any("sk-" in p for p in problems)
