"""Rendering deploy/ the way a user does (``kubectl kustomize``, ``helm template``) and validating it.

The tools are looked up in the test-binary cache that ``tests/envtest/setup-k8s.sh`` fills
(``${PARLEY_CACHE:-~/.cache/parley}``: kubectl v1.33.13, helm v3.19.5), then on ``PATH``; a test
that needs one that is missing skips and says how to get it.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BASE = DEPLOY / "base"
CHART = DEPLOY / "helm" / "parley"
CRDS = ROOT / "crds"

K8S_VERSION = "v1.33.13"
HELM_VERSION = "v3.19.5"
NAMESPACE = "parley-system"

# Kubernetes versions whose published schemas every rendered object must satisfy: the chart's
# floor (kubeVersion >=1.27), the version the envtest tier runs, and the newest the validator knows.
SCHEMA_VERSIONS = ("1.27", "1.33", "1.37")


def cache_root() -> Path:
    return Path(os.environ.get("PARLEY_CACHE") or Path.home() / ".cache" / "parley")


def k8s_bin_dir() -> Path:
    return Path(os.environ.get("PARLEY_K8S_BIN") or cache_root() / "k8s" / K8S_VERSION / "bin")


@functools.cache
def find_tool(name: str) -> str | None:
    """``kubectl`` or ``helm``: the pinned builds setup-k8s.sh caches (the same on every machine), else PATH."""
    candidates = [str(k8s_bin_dir() / name), str(cache_root() / "helm" / HELM_VERSION / name), shutil.which(name)]
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    return None


def require_tool(name: str) -> str:
    path = find_tool(name)
    if path is None:
        how = {"kubectl": "install kubectl or run tests/envtest/setup-k8s.sh kubectl",
               "helm": "install helm or run tests/envtest/setup-k8s.sh helm"}[name]
        pytest.skip(f"{name} not found on PATH or in {k8s_bin_dir()} ({how})")
    return path


def load_docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def run(argv: Sequence[str], *, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


@functools.cache
def kustomize(path: str) -> tuple[dict[str, Any], ...]:
    """``kubectl kustomize PATH`` → the objects, as a user's ``kubectl apply -k`` would send them."""
    kubectl = require_tool("kubectl")
    out = run([kubectl, "kustomize", path])
    assert out.returncode == 0, out.stderr
    return tuple(load_docs(out.stdout))


def helm_template(*set_values: str, namespace: str = NAMESPACE, release: str = "parley",
                  expect_ok: bool = True, set_string: tuple[str, ...] = ()) -> tuple[dict[str, Any], ...] | str:
    """``helm template`` the chart (with ``--include-crds``); the error text when it must fail."""
    return _helm_template(tuple(set_values), namespace, release, expect_ok, set_string)


@functools.cache
def _helm_template(set_values: tuple[str, ...], namespace: str, release: str,
                   expect_ok: bool, set_string: tuple[str, ...]) -> tuple[dict[str, Any], ...] | str:
    helm = require_tool("helm")
    argv = [helm, "template", release, str(CHART), "--namespace", namespace, "--include-crds",
            "--kube-version", "v1.33.0"]
    for value in set_values:
        argv += ["--set", value]
    for value in set_string:
        argv += ["--set-string", value]
    env_home = cache_root() / "helm-home"
    env_home.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
                         env={**os.environ, "HELM_CACHE_HOME": str(env_home / "cache"),
                              "HELM_CONFIG_HOME": str(env_home / "config"),
                              "HELM_DATA_HOME": str(env_home / "data")})
    if not expect_ok:
        assert out.returncode != 0, "helm template should have failed"
        return out.stderr
    assert out.returncode == 0, out.stderr
    return tuple(load_docs(out.stdout))


def by_kind(objects: Iterable[Mapping[str, Any]], kind: str) -> list[Mapping[str, Any]]:
    return [o for o in objects if o.get("kind") == kind]


def one(objects: Iterable[Mapping[str, Any]], kind: str, name: str = "parley-operator") -> Mapping[str, Any]:
    found = [o for o in objects if o.get("kind") == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def container(objects: Iterable[Mapping[str, Any]], name: str = "operator") -> Mapping[str, Any]:
    deployment = one(objects, "Deployment")
    matches = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    assert len(matches) == 1
    return matches[0]


def validate(obj: Mapping[str, Any], version: str) -> None:
    """Strict schema validation (no unknown fields) for Kubernetes ``version``; each distinct object
    is validated once per version, however many renders contain it."""
    _validate(json.dumps(obj, sort_keys=True), version)


@functools.cache
def _validate(obj_json: str, version: str) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(json.loads(obj_json), version, strict=True)
