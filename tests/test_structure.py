"""House rules a reader relies on: layers only look down, public names are exported, no `operator` package."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SIDECAR = ROOT / "sidecar" / "parley_sidecar"
# Each layer may import only from the layers listed after it (architecture.md, style.md §2).
LAYERS = ["cli", "runtime", "api", "loading", "conversation", "components"]
BASE = {"errors", "durations", "settings", "metrics", "logs"}


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "parley_sidecar" or len(parts) < 2:
        return None
    return parts[1]


def imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
            found.extend(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.extend(a.name for a in node.names)
    return found


@pytest.mark.parametrize("path", sorted(SIDECAR.rglob("*.py")), ids=lambda p: str(p.relative_to(SIDECAR)))
def test_layers_only_import_downwards(path: Path) -> None:
    rel = path.relative_to(SIDECAR)
    own = rel.parts[0].removesuffix(".py")
    if own not in LAYERS:
        return
    allowed = set(LAYERS[LAYERS.index(own):]) | BASE
    for module in imports(path):
        target = layer_of(module)
        if target is None or target in BASE or target == own:
            continue
        if target in LAYERS:
            assert target in allowed, f"{rel} imports {module}: {own} must not import {target}"


def test_provider_modules_are_imported_only_through_the_catalog() -> None:
    providers = {"openai", "anthropic", "googleai", "huggingface", "mistral", "ollama", "deepseek", "bedrock"}
    for path in SIDECAR.rglob("*.py"):
        if path.parent.name == "components" and path.stem in providers | {"openai_kit", "sigv4"}:
            continue
        for module in imports(path):
            parts = module.split(".")
            assert not (len(parts) >= 3 and parts[:2] == ["parley_sidecar", "components"] and parts[2] in providers), (
                f"{path.relative_to(SIDECAR)} imports provider module {module}")


@pytest.mark.parametrize("package", ["parley_sidecar"])
def test_public_names_are_exported(package: str) -> None:
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(set(module.__all__))
    for name in module.__all__:
        assert hasattr(module, name), name


def test_no_top_level_operator_package() -> None:
    assert not (ROOT / "operator" / "__init__.py").exists()
