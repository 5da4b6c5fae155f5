"""`dapr run` with parley as its daprd: the seed's Python quickstart, run by the real Dapr CLI.

The CLI (tests/daprd/build-cli.sh, cached) runs ``$HOME/.dapr/bin/daprd`` in self-hosted mode. A
temporary HOME holds a small wrapper there that execs parley's sidecar, so the CLI starts parley
with every flag it passes to daprd, waits for its ports, runs the app and writes the metadata PUTs.
Nothing is downloaded. The CLI passes ``--config $HOME/.dapr/config.yaml`` whether or not it exists,
and daprd, like parley, stops on a missing one; so the HOME gets the file ``dapr init`` writes.

This test needs the CLI, not daprd (it does not compare with daprd).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conformance.servers import clean_env, find_dapr_cli, free_port

NEEDS_DAPRD = False
DAPR_CLI, DAPR_CLI_MISSING = find_dapr_cli()

# The seed's component file and Python example (000: "How-To: Converse"), unchanged except for the
# import: `dapr.clients.grpc._request.ConversationInput` moved to `dapr.clients.grpc.conversation`
# in dapr 1.17 (the seed's line fails on the dapr 1.19 that parley supports).
CONVERSATION_YAML = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: echo
spec:
  type: conversation.echo
  version: v1
"""
APP_PY = """\
#dependencies
from dapr.clients import DaprClient
from dapr.clients.grpc.conversation import ConversationInput

#code
with DaprClient() as d:
    inputs = [
        ConversationInput(content="Please write a witty haiku about the Dapr distributed programming framework at dapr.io", role='user', scrub_pii=True),
    ]

    metadata = {
        'model': 'modelname',
        'key': 'authKey',
        'cacheTTL': '10m',
    }

    response = d.converse_alpha1(
        name='echo', inputs=inputs, temperature=0.7, context_id='chat-123', metadata=metadata
    )

    for output in response.outputs:
        print(f'conversation output: {output.result}')
"""
EXPECTED = ("== APP == conversation output: Please write a witty haiku about the Dapr distributed programming "
            "framework at dapr.io")


# What `dapr init` writes to $HOME/.dapr/config.yaml (dapr/cli ``pkg/standalone/standalone.go``).
DAPR_INIT_CONFIG = """\
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: daprConfig
spec:
  tracing:
    samplingRate: "1"
    zipkin:
      endpointAddress: http://localhost:9411/api/v2/spans
"""


def install_parley_as_daprd(home: Path, public_port: int) -> Path:
    """$HOME/.dapr/bin/daprd → parley. The loopback flags keep the test on 127.0.0.1 (the CLI passes
    none, so daprd and parley alike would listen on every interface)."""
    daprd = home / ".dapr" / "bin" / "daprd"
    daprd.parent.mkdir(parents=True)
    loopback = ("--dapr-listen-addresses 127.0.0.1 --metrics-listen-address 127.0.0.1 "
                f"--dapr-public-listen-address 127.0.0.1 --dapr-public-port {public_port}")
    daprd.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        exec {shlex.quote(sys.executable)} -m parley_sidecar "$@" {loopback}
        """))
    daprd.chmod(0o755)
    (home / ".dapr" / "config.yaml").write_text(DAPR_INIT_CONFIG)
    return daprd


@pytest.mark.skipif(DAPR_CLI is None, reason=DAPR_CLI_MISSING)
def test_seed_quickstart_under_dapr_run(tmp_path: Path) -> None:
    assert DAPR_CLI is not None
    home = tmp_path / "home"
    install_parley_as_daprd(home, free_port())
    app = tmp_path / "app"
    (app / "config").mkdir(parents=True)
    (app / "config" / "conversation.yaml").write_text(CONVERSATION_YAML)
    (app / "app.py").write_text(APP_PY)
    grpc_port, http_port = free_port(), free_port()
    env = clean_env({"HOME": str(home), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                     "DAPR_HEALTH_TIMEOUT": "20"})
    # The seed's command line, with free ports (the seed pins gRPC to 50001).
    argv = [str(DAPR_CLI), "run", "--app-id", "conversation", "--dapr-grpc-port", str(grpc_port),
            "--dapr-http-port", str(http_port), "--log-level", "debug", "--resources-path", "./config",
            "--", "python3", "app.py"]
    proc = subprocess.Popen(argv, cwd=app, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"dapr run did not finish in 90 s:\n{out.decode(errors='replace')[-4000:]}")
    text = out.decode(errors="replace")
    lines = text.splitlines()
    assert EXPECTED in lines, text[-4000:]
    assert proc.returncode == 0, text[-4000:]
    # parley took every flag the CLI passes to daprd, and answered the CLI's metadata PUTs first time
    # (a 5xx there costs ~15 s of CLI retries and prints a warning).
    assert "Updating metadata for appPID" in text
    assert not any("rror" in line and "metadata" in line.lower() for line in lines), text[-4000:]
    assert "Exited App successfully" in text and "Exited Dapr successfully" in text, text[-4000:]
