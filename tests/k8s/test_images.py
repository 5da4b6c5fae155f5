"""The Dockerfiles' contract: multi-stage on a pinned slim Python base given as a build argument,
non-root, nothing but the runtime venv in the final image, entrypoints and ports that exist."""

from __future__ import annotations

import re
import tomllib

import pytest

from parley_operator.settings import OperatorSettings
from parley_sidecar.settings import Ports
from tests.k8s import tools


def stages(kind: str) -> list[list[str]]:
    """The Dockerfile's instructions (continuations joined), split by FROM; stage 0 is the preamble."""
    text = (tools.ROOT / f"Dockerfile.{kind}").read_text().replace("\\\n", " ")
    out: list[list[str]] = [[]]
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            out.append([])
        out[-1].append(line)
    return out


@pytest.mark.parametrize("kind", ["sidecar", "operator"])
def test_base_image_is_a_pinned_slim_python_given_as_a_build_argument(kind: str) -> None:
    preamble, *rest = stages(kind)
    [arg] = [i for i in preamble if i.startswith("ARG BASE_IMAGE=")]
    assert re.fullmatch(r"ARG BASE_IMAGE=python:3\.1[1-9]\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", arg), arg
    assert len(rest) == 2, "two stages: build and runtime"
    assert [s[0] for s in rest] == ["FROM ${BASE_IMAGE} AS build", "FROM ${BASE_IMAGE}"]


@pytest.mark.parametrize("kind", ["sidecar", "operator"])
def test_final_stage_only_copies_the_venv_and_runs_as_non_root(kind: str) -> None:
    final = stages(kind)[-1]
    assert not [i for i in final if i.startswith("RUN")], "no RUN in the final stage: no build tools, no caches"
    copies = [i for i in final if i.startswith("COPY")]
    assert copies == ["COPY --from=build /opt/parley /opt/parley"]
    [user] = [i for i in final if i.startswith("USER")]
    uid = user.split()[1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric non-root USER (runAsNonRoot needs a number)"
    assert uid == str(OperatorSettings().injector.run_as_user), "the injector runs the sidecar as this UID"


@pytest.mark.parametrize(("kind", "script"), [("sidecar", "parley-sidecar"), ("operator", "parley-operator")])
def test_entrypoint_is_the_console_script(kind: str, script: str) -> None:
    scripts = tomllib.loads((tools.ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    final = stages(kind)[-1]
    assert f'ENTRYPOINT ["{script}"]' in final and script in scripts
    assert "ENV PATH=/opt/parley/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1" in final
    # The injector starts the sidecar by this command name.
    if kind == "sidecar":
        assert OperatorSettings().injector.sidecar_command == (script,)


def test_exposed_ports_are_the_ones_the_processes_listen_on() -> None:
    p = Ports()
    assert f"EXPOSE {p.http} {p.grpc} {p.public} {p.metrics}" in stages("sidecar")[-1]
    s = OperatorSettings()
    assert f"EXPOSE {s.webhook.port} {s.stream.port} {s.metrics_port} {s.health_port}" in stages("operator")[-1]


@pytest.mark.parametrize("kind", ["sidecar", "operator"])
def test_dependencies_come_from_wheels_only(kind: str) -> None:
    build = " ".join(stages(kind)[1])
    assert "--only-binary=:all:" in build, "no compiler needed, none in any stage"
    assert "venv --without-pip /opt/parley" in build


def test_build_context_holds_only_what_the_images_need() -> None:
    rules = [r for r in (tools.ROOT / ".dockerignore").read_text().splitlines() if r and not r.startswith("#")]
    assert rules[0] == "*", "ignore everything, then allow"
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "sidecar", "operator"}
    for kind in ("sidecar", "operator"):
        copied = {i.split()[1].rstrip("/") for i in stages(kind)[1] if i.startswith("COPY ")}
        assert copied <= allowed, f"Dockerfile.{kind} copies what .dockerignore excludes: {copied - allowed}"
