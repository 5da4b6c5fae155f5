"""House rules a reader relies on: layers only look down, public names are exported, no `operator` package."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SIDECAR = ROOT / "sidecar" / "parley_sidecar"
# Each layer may import only from the layers listed after it (docs/architecture.md, "Layers").
LAYERS = ["cli", "workers", "runtime", "api", "loading", "conversation", "components"]
BASE = {"errors", "durations", "settings", "metrics", "logs", "tracing", "tracing_otel", "tracing_otlp",
        "tracing_otlp_http", "tracing_otlp_grpc", "dapr_proto",
        "dapr_proto_files", "tls"}


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


@pytest.mark.parametrize("name", sorted(BASE))
def test_helper_modules_import_no_layer(name: str) -> None:
    """errors, durations, settings, metrics and logs sit beside the layers: any layer (and the
    operator) may import them, so they import none (docs/architecture.md, "Layers")."""
    for module in imports(SIDECAR / f"{name}.py"):
        assert layer_of(module) not in LAYERS, f"{name}.py imports {module}"


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


# -- the operator ---------------------------------------------------------------------------------
OPERATOR = ROOT / "operator" / "parley_operator"
# Each module or subpackage of the operator, by layer; a layer imports only its own and lower ones.
# cli → app (assembly) → handlers (kopf's registry) → the servers and clients they drive → pure
# functions → settings and the shared clients every layer may use.
OPERATOR_LAYERS: dict[str, int] = {
    "__main__": 0, "cli": 0,
    "app": 1,
    "handlers": 2,
    "webhook": 3, "delivery": 3, "certs": 3, "events": 3,
    "component": 4, "injection": 4, "admission": 4, "resiliency": 4,
    "settings": 5, "metrics": 5, "kube": 5,
}
# Pure functions (docs/architecture.md: "annotations → SidecarConfig → patch"; components + pod → what that
# pod may see): they take data and return data, so they import no I/O library and no module that does I/O.
PURE = ["injection", "component.py", "admission.py", "resiliency.py", "delivery/resolve.py",
        "delivery/review_cache.py"]
PURE_MAY_IMPORT = {"parley_operator.settings", "parley_operator.injection", "parley_operator.component",
                   "parley_operator.admission", "parley_operator.resiliency", "parley_operator.delivery.resolve",
                   "parley_operator.delivery.review_cache"}
IO_LIBRARIES = {"kopf", "aiohttp", "prometheus_client", "cryptography", "asyncio", "socket", "ssl"}
# kopf is the framework's boundary: handlers register with it, app runs it, webhook extends its server,
# kube logs in the way it does. Everything below stays usable (and testable) without it.
KOPF_ALLOWED = {"app.py", "handlers", "webhook.py", "kube.py"}


def operator_modules() -> list[Path]:
    return sorted(OPERATOR.rglob("*.py"))


def operator_layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "parley_operator" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in OPERATOR_LAYERS else None


@pytest.mark.parametrize("path", operator_modules(), ids=lambda p: str(p.relative_to(OPERATOR)))
def test_operator_layers_only_import_downwards(path: Path) -> None:
    rel = path.relative_to(OPERATOR)
    own = rel.parts[0].removesuffix(".py")
    if own == "__init__":  # the package root re-exports the public names, as kopf and httpx do
        return
    assert own in OPERATOR_LAYERS, f"{rel}: give this module a layer in OPERATOR_LAYERS"
    for module in imports(path):
        target = operator_layer(module)
        if target is not None:
            assert OPERATOR_LAYERS[target] >= OPERATOR_LAYERS[own], (
                f"{rel} imports {module}: {own} must not import {target}, a layer above it")


def _under(path: Path, entries: list[str] | set[str]) -> bool:
    rel = path.relative_to(OPERATOR).as_posix()
    return any(rel == entry or rel.startswith(entry + "/") for entry in entries)


@pytest.mark.parametrize("path", [p for p in operator_modules() if _under(p, PURE)],
                         ids=lambda p: str(p.relative_to(OPERATOR)))
def test_pure_operator_modules_do_no_io(path: Path) -> None:
    for module in imports(path):
        root = module.split(".")[0]
        assert root not in IO_LIBRARIES, f"{path.relative_to(OPERATOR)} imports {module}"
        if root == "parley_operator" and module not in ("parley_operator", "parley_operator.delivery"):
            assert any(module == m or module.startswith(m + ".") for m in PURE_MAY_IMPORT), (
                f"{path.relative_to(OPERATOR)} imports {module}, which is not pure")


@pytest.mark.parametrize("path", operator_modules(), ids=lambda p: str(p.relative_to(OPERATOR)))
def test_only_the_kopf_boundary_imports_kopf(path: Path) -> None:
    if _under(path, KOPF_ALLOWED):
        return
    assert not any(m.split(".")[0] == "kopf" for m in imports(path)), (
        f"{path.relative_to(OPERATOR)} imports kopf; only {sorted(KOPF_ALLOWED)} may")


def test_the_sidecar_never_imports_the_operator() -> None:
    for path in SIDECAR.rglob("*.py"):
        assert not any(m.split(".")[0] == "parley_operator" for m in imports(path)), path.relative_to(SIDECAR)


def test_the_component_stream_protocol_is_spelled_once() -> None:
    """Both ends import ``stream_protocol`` (a wire protocol is defined once, as Dapr's operator
    and daprd share one ``.proto``): nobody else spells its path or content type, and the two ends
    never encode or decode a line themselves."""
    protocol = SIDECAR / "loading" / "stream_protocol.py"
    for path in [*SIDECAR.rglob("*.py"), *OPERATOR.rglob("*.py")]:
        if path != protocol:
            text = path.read_text()
            assert '"/v1/stream"' not in text and "x-ndjson" not in text, f"{path.relative_to(ROOT)} spells them"
    ends = [OPERATOR / "delivery" / "hub.py", OPERATOR / "delivery" / "server.py",
            SIDECAR / "loading" / "operator_stream.py"]
    for path in ends:
        found = imports(path)
        assert "json" not in found, f"{path.relative_to(ROOT)} encodes or decodes JSON itself"
        assert "parley_sidecar.loading.stream_protocol" in found, f"{path.relative_to(ROOT)} bypasses the protocol"
