"""A real Jaeger v2 on loopback, the trace backend of the tracing tests: it receives OTLP over HTTP
and gRPC and Zipkin's JSON, keeps traces in memory, and answers its query API, so a test reads back
what was stored. Built by ``build-backend.sh`` (never from here: a test skips, saying why, when
the binary is absent).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.conformance.servers import cache_root, free_port

__all__ = ["Jaeger", "find_jaeger", "start_jaeger"]

VERSION = os.environ.get("PARLEY_JAEGER_VERSION", "v1.75.0")

_CONFIG = """\
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp, zipkin]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{otlp_grpc}
      http:
        endpoint: 127.0.0.1:{otlp_http}
  zipkin:
    endpoint: 127.0.0.1:{zipkin}
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


def find_jaeger() -> tuple[Path | None, str]:
    """The Jaeger binary (``PARLEY_JAEGER``, else build-backend.sh's cache), or None and why not."""
    given = os.environ.get("PARLEY_JAEGER")
    path = Path(given) if given else cache_root() / "jaeger" / VERSION / "jaeger"
    if path.is_file() and os.access(path, os.X_OK):
        return path, ""
    return None, (f"Jaeger is not built ({path} is missing): run `bash tests/observability/build-backend.sh` "
                  "once (a few minutes, needs Go) or `.ci/run`")


@dataclasses.dataclass
class Jaeger:
    proc: subprocess.Popen[bytes]
    ports: dict[str, int]
    log_path: Path

    @property
    def otlp_http(self) -> str:
        return f"127.0.0.1:{self.ports['otlp_http']}"

    @property
    def otlp_grpc(self) -> str:
        return f"127.0.0.1:{self.ports['otlp_grpc']}"

    @property
    def zipkin(self) -> str:
        return f"http://127.0.0.1:{self.ports['zipkin']}/api/v2/spans"

    def _get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ports['query']}{path}", timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, None

    def trace(self, trace_id: str, *, spans: int, timeout: float = 20.0) -> dict[str, Any]:
        """The stored trace (Jaeger's JSON: ``spans`` and ``processes``) once it holds ``spans`` spans."""
        deadline = time.monotonic() + timeout
        found: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status, body = self._get(f"/api/traces/{trace_id}")
            if status == 200 and body and body.get("data"):
                found = body["data"][0]
                if len(found["spans"]) >= spans:
                    return found
            time.sleep(0.1)
        raise AssertionError(f"trace {trace_id}: {len(found.get('spans', []))} spans stored, wanted {spans}: "
                             f"{json.dumps(found)[:2000]}\njaeger log: {self.log_tail()}")

    def log_tail(self) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return ""

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_jaeger(binary: Path, workdir: Path) -> Jaeger:
    ports = {k: free_port() for k in ("otlp_http", "otlp_grpc", "zipkin", "query", "query_grpc")}
    config = workdir / "jaeger.yaml"
    config.write_text(_CONFIG.format(**ports))
    log_path = workdir / "jaeger.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([str(binary), "--config", str(config)], stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    jaeger = Jaeger(proc, ports, log_path)
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"jaeger exited with {proc.returncode}: {jaeger.log_tail()}")
        try:
            if jaeger._get("/api/services")[0] == 200:
                return jaeger
        except OSError:
            pass
        if time.monotonic() > deadline:
            jaeger.stop()
            raise RuntimeError(f"jaeger not ready after 30s: {jaeger.log_tail()}")
        time.sleep(0.1)
