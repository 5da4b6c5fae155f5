"""The Dockerfiles' contract: multi-stage on a pinned slim Python base given as a build argument,
non-root, nothing but the runtime venv in the final image, entrypoints and ports that exist."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

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


_TLS_CLIENT = """
import asyncio, ssl, sys, threading, http.server
import aiohttp
server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[1], sys.argv[2])
server.socket = context.wrap_socket(server.socket, server_side=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
async def main():
    async with aiohttp.ClientSession() as session:
        try:
            async with session.head(f"https://localhost:{server.server_port}/") as resp:
                print("verified", resp.status)
        except aiohttp.ClientConnectorCertificateError:
            print("refused")
asyncio.run(main())
"""


def test_the_sidecar_images_ca_settings_still_verify_provider_certificates(tmp_path: Path) -> None:
    """The image's SSL_CERT_FILE/SSL_CERT_DIR (CA certificates looked up in a hashed directory, no
    bundle read at start): a provider's certificate from a CA in that directory is trusted, one from
    a CA not in it is refused, as aiohttp's default client context does."""
    [env] = [i for i in stages("sidecar")[-1] if i.startswith("ENV SSL_CERT_FILE=")]
    assert env == "ENV SSL_CERT_FILE=/dev/null SSL_CERT_DIR=/etc/ssl/certs"
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tmp_path, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
            "-subj", "/CN=parley test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=localhost")
    (tmp_path / "ext").write_text("subjectAltName=DNS:localhost\n")
    openssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "srv.pem", "-days", "1", "-extfile", "ext")
    for name, with_ca in (("trusted", True), ("empty", False)):
        (tmp_path / name).mkdir()
        if with_ca:
            shutil.copy(tmp_path / "ca.pem", tmp_path / name / "ca.pem")
            openssl("rehash", name)
    for name, expected in (("trusted", "verified 200"), ("empty", "refused")):
        env_vars = {**os.environ, "SSL_CERT_FILE": "/dev/null", "SSL_CERT_DIR": str(tmp_path / name)}
        out = subprocess.run([sys.executable, "-c", _TLS_CLIENT, str(tmp_path / "srv.pem"), str(tmp_path / "srv.key")],
                             env=env_vars, capture_output=True, text=True, check=True, timeout=60).stdout
        assert out.strip() == expected, name
