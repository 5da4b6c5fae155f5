"""Real clients nobody here wrote (dapr-agents, the JavaScript SDK, the Python SDK), each run against the
real daprd and against parley in the same test, so the test is proven right on daprd first.

The clients live outside this venv (dapr-agents pins another ``dapr``; the JavaScript SDK is an npm
package): ``tests/clients/install.sh`` installs them under ``$PARLEY_CACHE/clients`` and the tests run
small apps of ours on them as subprocesses. A client that is not installed skips its tests, saying
so; without daprd the whole tier skips, as the differential tier does.

The OpenAI-speaking clients (``test_openai_*.py``, ``test_langchain_*.py``: the ``openai`` Python
package and LangChain from the test extra, the ``openai`` npm package from install.sh) run against
parley alone, since daprd has no OpenAI API: one parley process with ``echo`` and ``llm``
(``conversation.openai`` on the OpenAI fake), its API token given to the clients as their API key.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.conformance.servers import Pair, Server, cache_root, find_daprd, parley_argv, start_pair, start_server
from tests.fakes.agent_openai import AgentOpenAIFake, ThreadedFake
from tests.fakes.anthropic import AnthropicFake
from tests.fakes.bedrock import BedrockFake
from tests.fakes.openai import OpenAIFake
from tests.fakes.server import FakeServer
from tests.manifests import component_yaml

if TYPE_CHECKING:
    import openai

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
DAPRD, DAPRD_MISSING = find_daprd()
APP_ID = "clients"
AGENTS_VERSION = "1.0.9"
JS_VERSION = "3.18.0"
SERVERS = ("daprd", "parley")
INSTALL_HINT = "run `bash tests/clients/install.sh` (or `.ci/run`)"


def clients_dir() -> Path:
    return cache_root() / "clients"


def agents_python() -> tuple[Path | None, str]:
    """dapr-agents' venv interpreter, or None and why not."""
    home = clients_dir() / f"dapr-agents-{AGENTS_VERSION}"
    python = home / "venv" / "bin" / "python"
    if not (home / ".installed").is_file() or not python.is_file():
        return None, f"dapr-agents {AGENTS_VERSION} is not installed ({home} is missing): {INSTALL_HINT}"
    return python, ""


def js_modules() -> tuple[Path | None, str]:
    """The npm project holding @dapr/dapr (its node_modules), or None and why not."""
    home = clients_dir() / f"dapr-js-{JS_VERSION}"
    if shutil.which("node") is None:
        return None, "node is not on PATH (the JavaScript SDK tests need Node.js 20 or later)"
    package = home / "node_modules" / "@dapr" / "dapr" / "package.json"
    if not (home / ".installed").is_file() or not package.is_file():
        return None, f"@dapr/dapr {JS_VERSION} is not installed ({home} is missing): {INSTALL_HINT}"
    if json.loads(package.read_text()).get("version") != JS_VERSION:
        return None, f"{package} is not version {JS_VERSION}: {INSTALL_HINT}"
    return home, ""


OPENAI_CLIENT_TESTS = ("test_openai_", "test_langchain_")
"""Modules of OpenAI-speaking clients: daprd has no OpenAI API, so they run on parley alone."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tier ``daprd`` and skip it without daprd, at collection (before any server starts)."""
    for item in items:
        if HERE not in Path(str(item.path)).parents or Path(str(item.path)).name.startswith(OPENAI_CLIENT_TESTS):
            continue
        item.add_marker(pytest.mark.daprd)
        if DAPRD is None:
            item.add_marker(pytest.mark.skip(reason=DAPRD_MISSING))


def sidecar_env(server: Server, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment an app gets next to its sidecar (as ``dapr run`` sets it), nothing else of ours."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DAPR_", "PARLEY_", "PYTEST", "VIRTUAL_ENV")) and k not in ("PYTHONPATH", "APP_ID")}
    env.update({"DAPR_HTTP_PORT": str(server.ports["http"]), "DAPR_GRPC_PORT": str(server.ports["grpc"]),
                "DAPR_RUNTIME_HOST": "127.0.0.1", "DAPR_HOST": "127.0.0.1"})
    env.update(extra or {})
    return env


def run_app(argv: Sequence[str], server: Server, *, timeout: float = 120.0,
            env: Mapping[str, str] | None = None, cwd: Path | None = None) -> dict[str, Any]:
    """Run one client app against ``server``; its ``RESULT {json}`` line, parsed. A crash fails the test
    with the app's output and the sidecar's log tail."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False,
                          env=sidecar_env(server, env), cwd=cwd or HERE)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
            return result
    raise AssertionError(f"{argv[-1]} against {server.name} printed no result (exit {proc.returncode}).\n"
                         f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}\n"
                         f"{server.name} log:\n{server.log_tail()}")


@pytest.fixture(scope="session")
def clients_dir_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clients")


def _components(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


@pytest.fixture(scope="session")
def agent_fake() -> Iterator[ThreadedFake]:
    fake = ThreadedFake(AgentOpenAIFake()).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def llm_pair(agent_fake: ThreadedFake, clients_dir_tmp: Path) -> Iterator[Pair]:
    """daprd and parley with one conversation component, ``llm`` (conversation.openai on the fake)."""
    assert DAPRD is not None
    resources = _components(clients_dir_tmp / "components-llm", {"llm.yaml": component_yaml(
        "llm", "conversation.openai", {"key": "sk-clients-0123456789", "model": "gpt-4o-mini",
                                       "endpoint": agent_fake.endpoint})})
    try:
        running = start_pair(DAPRD, "clients-llm", APP_ID, resources, clients_dir_tmp / "logs")
    except RuntimeError as exc:
        pytest.skip(f"the daprd build lacks conversation.openai or failed to load it: {exc}")
    yield running
    running.stop()


@pytest.fixture(scope="session")
def echo_pair(clients_dir_tmp: Path) -> Iterator[Pair]:
    """daprd and parley with the ``echo`` component."""
    assert DAPRD is not None
    resources = _components(clients_dir_tmp / "components-echo", {"echo.yaml": component_yaml("echo")})
    running = start_pair(DAPRD, "clients-echo", APP_ID, resources, clients_dir_tmp / "logs")
    yield running
    running.stop()


def pick(pair: Pair, name: str) -> Server:
    return pair.daprd if name == "daprd" else pair.parley


# -- OpenAI-speaking clients: parley alone, with echo and with conversation.openai on the fake --------

OPENAI_TOKEN = "parley-openai-clients-token"
"""The sidecar's DAPR_API_TOKEN: the clients send it as their API key (``Authorization: Bearer``)."""
FAKE_KEY = "sk-fake-openai-0123456789"


AWS_ACCESS, AWS_SECRET = "AKIDCLIENTSFAKE", "clients/secret+key/0123456789"


@dataclasses.dataclass(frozen=True)
class ProviderType:
    """One provider type behind the OpenAI API: its component ``p-<name>`` on a fake of its own."""

    name: str
    make: Callable[[], FakeServer]
    component: Callable[[str], tuple[str, dict[str, str]]]
    """The fake's URL → the Component's type and metadata."""


PROVIDER_TYPES = (
    ProviderType("azure", lambda: OpenAIFake(flavor="azure"), lambda url: ("conversation.openai", {
        "key": "azure-key", "apiType": "azure", "endpoint": url, "apiVersion": "2024-10-21", "model": "my-gpt4o"})),
    ProviderType("googleai", lambda: OpenAIFake(flavor="gemini"), lambda url: ("conversation.googleai", {
        "key": "AIza-test-key", "endpoint": f"{url}/v1beta/openai/"})),
    ProviderType("huggingface", OpenAIFake, lambda url: ("conversation.huggingface", {
        "key": "hf_testtoken", "model": "org/model-7b", "endpoint": f"{url}/hf-inference/models/{{{{model}}}}/v1"})),
    ProviderType("mistral", lambda: OpenAIFake(flavor="mistral"), lambda url: ("conversation.mistral", {
        "key": "mistral-key", "endpoint": f"{url}/v1"})),
    ProviderType("ollama", lambda: OpenAIFake(flavor="ollama"), lambda url: ("conversation.ollama", {
        "endpoint": f"{url}/v1", "model": "llama3.2:latest"})),
    ProviderType("deepseek", lambda: OpenAIFake(flavor="deepseek"), lambda url: ("conversation.deepseek", {
        "key": "ds-key", "endpoint": url})),
    ProviderType("anthropic", AnthropicFake, lambda url: ("conversation.anthropic", {
        "key": "sk-ant-test", "endpoint": f"{url}/v1"})),
    ProviderType("bedrock", lambda: BedrockFake(credentials={AWS_ACCESS: AWS_SECRET}), lambda url: (
        "conversation.aws.bedrock", {"endpoint": url, "accessKey": AWS_ACCESS, "secretKey": AWS_SECRET,
                                     "model": "anthropic.claude-3-haiku-20240307-v1:0"})),
)
"""Every provider type besides OpenAI's own (``llm``), each behind a fake that streams its wire format."""


@dataclasses.dataclass
class OpenAISidecar:
    """A parley process on loopback: echo, ``llm`` (conversation.openai on ``fake``) and one
    ``p-<type>`` component per :data:`PROVIDER_TYPES` on ``providers[type]``."""

    server: Server
    fake: ThreadedFake
    providers: dict[str, ThreadedFake]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.http_port}/v1"


@pytest.fixture
def client(openai_sidecar: OpenAISidecar) -> Iterator[openai.OpenAI]:
    """The official ``openai`` package's client on the sidecar's ``/v1``, with its API token; no
    retries, so a test sees the first answer."""
    import openai  # only the OpenAI-speaking client tests need it

    with openai.OpenAI(base_url=openai_sidecar.base_url, api_key=OPENAI_TOKEN, max_retries=0) as made:
        yield made


@pytest.fixture(scope="session")
def openai_fake() -> Iterator[ThreadedFake]:
    fake = ThreadedFake(OpenAIFake(FAKE_KEY)).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def openai_sidecar(openai_fake: ThreadedFake, clients_dir_tmp: Path) -> Iterator[OpenAISidecar]:
    providers = {p.name: ThreadedFake(p.make()).start() for p in PROVIDER_TYPES}
    files = {
        "echo.yaml": component_yaml("echo"),
        "llm.yaml": component_yaml("llm", "conversation.openai", {
            "key": FAKE_KEY, "model": "gpt-4o-mini", "endpoint": openai_fake.endpoint}),
    }
    for p in PROVIDER_TYPES:
        ctype, metadata = p.component(providers[p.name].fake.url)
        files[f"p-{p.name}.yaml"] = component_yaml(f"p-{p.name}", ctype, metadata)
    resources = _components(clients_dir_tmp / "components-openai", files)
    logs = clients_dir_tmp / "logs"
    logs.mkdir(exist_ok=True)
    server = start_server("parley-openai", parley_argv(), APP_ID, resources, logs, env={"DAPR_API_TOKEN": OPENAI_TOKEN})
    yield OpenAISidecar(server, openai_fake, providers)
    server.stop()
    for fake in providers.values():
        fake.stop()


@pytest.fixture
def fake(openai_sidecar: OpenAISidecar) -> Iterator[OpenAISidecar]:
    """The sidecar with its ``llm`` fake emptied of scripted replies and recorded requests."""
    openai_sidecar.fake.fake.clear()
    openai_sidecar.fake.take()
    yield openai_sidecar
    openai_sidecar.fake.fake.clear()
