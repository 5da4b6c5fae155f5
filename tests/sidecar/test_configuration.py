"""Dapr's ``Configuration`` (``--config``): metrics on/off and label rules, API logging, tracing
validation, ignored fields named once, and bad files reported without stopping the sidecar."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from dapr.proto.runtime.v1 import metadata_pb2
from prometheus_client.parser import text_string_to_metric_families

from parley_sidecar import cli
from parley_sidecar.loading import configuration
from tests.conftest import Running, StartSidecar
from tests.sidecar.api.test_metadata_lifecycle import grpc_call

HEAD = "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: parley\nspec:\n"
CONVERSE = "/v1.0-alpha2/conversation/echo/converse"
BODY = {"inputs": [{"messages": [{"ofUser": {"content": [{"text": "secret-body-text"}]}}]}]}


def config_file(tmp_path: Path, spec: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(HEAD + spec)
    return path


async def scrape_text(running: Running) -> tuple[int, str]:
    async with running.session.get(running.metrics + "/") as resp:
        return resp.status, await resp.text()


def series(text: str, name: str) -> list[dict[str, str]]:
    """Label sets of family ``name`` (the parser renames a counter's samples ``…_total``)."""
    return [s.labels for f in text_string_to_metric_families(text) if f.name == name for s in f.samples]


def api_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "API Called" in r.getMessage()]


async def test_metric_enabled_false_leaves_the_port_answering_without_series(
        start_sidecar: StartSidecar, tmp_path: Path) -> None:
    running = await start_sidecar(config_file=config_file(tmp_path, "  metric:\n    enabled: false\n"))
    status, _ = await running.post(CONVERSE, BODY)
    assert status == 200
    status, text = await scrape_text(running)
    # as daprd: the metrics server still answers, but no request is counted
    assert status == 200
    assert series(text, "dapr_http_server_request_count") == []


async def test_a_metric_rule_rewrites_the_named_label_of_the_named_metric_only(
        start_sidecar: StartSidecar, tmp_path: Path) -> None:
    spec = """\
  metric:
    enabled: true
    rules:
    - name: dapr_http_server_request_count
      labels:
      - name: path
        regex:
          "/conversation/$1": "^/v1\\\\.0-alpha2/conversation/(\\\\w+)/converse$"
"""
    running = await start_sidecar(config_file=config_file(tmp_path, spec))
    for _ in range(2):
        assert (await running.post(CONVERSE, BODY))[0] == 200
    _, text = await scrape_text(running)
    counted = [labels for labels in series(text, "dapr_http_server_request_count") if labels["status"] == "200"]
    assert [labels["path"] for labels in counted] == ["/conversation/echo"]
    latency = {labels["path"] for labels in series(text, "dapr_http_server_latency")}
    assert CONVERSE in latency  # no rule names the latency histogram


async def test_api_logging_logs_each_call_without_body_or_token(
        start_sidecar: StartSidecar, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    spec = "  logging:\n    apiLogging:\n      enabled: true\n"
    running = await start_sidecar(config_file=config_file(tmp_path, spec), api_token="secret-token-value")
    headers = {"dapr-api-token": "secret-token-value", "User-Agent": "config-test"}
    assert (await running.post(CONVERSE, BODY, headers=headers))[0] == 200
    async with running.session.get(running.http + "/v1.0/healthz") as resp:
        assert resp.status == 204
    status, _ = await grpc_call(running.grpc, "GetMetadata", metadata_pb2.GetMetadataRequest(),
                                token="secret-token-value")
    assert status == "OK"
    lines = api_lines(caplog)
    assert any(f'method="POST {CONVERSE}"' in line and "code=200" in line and "config-test" in line
               for line in lines)
    assert any("GET /v1.0/healthz" in line and "code=204" in line for line in lines)
    assert any("gRPC API Called method=/dapr.proto.runtime.v1.Dapr/GetMetadata code=OK" in line for line in lines)
    assert not any("secret" in line for line in lines)


async def test_api_logging_can_omit_health_checks_and_obfuscate_urls(
        start_sidecar: StartSidecar, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    spec = "  logging:\n    apiLogging:\n      enabled: true\n      omitHealthChecks: true\n      obfuscateURLs: true\n"
    running = await start_sidecar(config_file=config_file(tmp_path, spec))
    async with running.session.get(running.http + "/v1.0/healthz") as resp:
        assert resp.status == 204
    assert (await running.post(CONVERSE, BODY))[0] == 200
    lines = api_lines(caplog)
    assert not any("healthz" in line for line in lines)
    assert any('"POST /v1.0-alpha2/conversation/{name}/converse"' in line for line in lines)


async def test_api_logging_is_off_by_default_and_the_flag_wins_over_the_file(
        start_sidecar: StartSidecar, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    off = config_file(tmp_path, "  logging:\n    apiLogging:\n      enabled: false\n")
    quiet = await start_sidecar(config_file=off)
    assert (await quiet.post(CONVERSE, BODY))[0] == 200
    assert api_lines(caplog) == []
    loud = await start_sidecar(config_file=off, enable_api_logging=True)
    assert (await loud.post(CONVERSE, BODY))[0] == 200
    assert len(api_lines(caplog)) == 1


async def test_ignored_fields_are_named_once(
        start_sidecar: StartSidecar, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spec = """\
  features:
  - name: Resiliency
    enabled: true
  mtls:
    enabled: true
  accessControl:
    defaultAction: deny
  nameResolution:
    component: mdns
  metric:
    enabled: true
    http:
      increasedCardinality: false
"""
    running = await start_sidecar(config_file=config_file(tmp_path, spec))
    assert (await running.post(CONVERSE, BODY))[0] == 200
    warnings = [r.getMessage() for r in caplog.records if "parley ignores Configuration field" in r.getMessage()]
    for field in ("features", "mtls", "accessControl", "nameResolution", "metric.http"):
        assert sum(f"field spec.{field}:" in w for w in warnings) == 1, (field, warnings)
    assert running.sidecar.settings.configuration.ignored == (
        "spec.features", "spec.mtls", "spec.accessControl", "spec.nameResolution", "spec.metric.http")


async def test_tracing_is_parsed_and_kept(start_sidecar: StartSidecar, tmp_path: Path) -> None:
    spec = ('  tracing:\n    samplingRate: "0.25"\n    otel:\n      endpointAddress: localhost:4317\n'
            '      isSecure: false\n      protocol: grpc\n')
    running = await start_sidecar(config_file=config_file(tmp_path, spec))
    tracing = running.sidecar.settings.configuration.tracing
    assert (tracing.enabled, tracing.sampling_rate, tracing.otel_endpoint, tracing.otel_secure,
            tracing.otel_protocol) == (True, 0.25, "localhost:4317", False, "grpc")


@pytest.mark.parametrize(("spec", "field"), [
    ("  metric:\n    enabled: maybe\n", "spec.metric.enabled"),
    ("  logging:\n    apiLogging:\n      enabled: [1]\n", "spec.logging.apiLogging.enabled"),
    ("  metric:\n    rules:\n    - name: dapr_http_server_request_count\n      labels:\n      - name: path\n"
     "        regex:\n          x: \"([a-\"\n", "spec.metric.rules[0].labels[0].regex['x']"),
    ('  tracing:\n    samplingRate: "1.5"\n', "spec.tracing.samplingRate"),
    ('  tracing:\n    samplingRate: "often"\n', "spec.tracing.samplingRate"),
    ("  tracing:\n    otel:\n      endpointAddress: localhost:4317\n      protocol: ftp\n",
     "spec.tracing.otel.protocol"),
    ("  metric: 3\n", "spec.metric"),
])
async def test_a_bad_field_is_one_clear_error_and_the_sidecar_serves(
        start_sidecar: StartSidecar, tmp_path: Path, caplog: pytest.LogCaptureFixture, spec: str, field: str) -> None:
    running = await start_sidecar(config_file=config_file(tmp_path, spec))
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and field in errors[0], errors
    assert not any(r.exc_info for r in caplog.records)
    assert (await running.post(CONVERSE, BODY))[0] == 200
    config = running.sidecar.settings.configuration
    assert config.metrics_enabled and not config.api_logging.enabled and not config.tracing.enabled


def test_cli_reads_config_and_enable_api_logging() -> None:
    settings, args = cli.settings_from_args(["--config", "c.yaml", "--enable-api-logging"], environ={})
    assert settings.config_file == Path("c.yaml") and settings.enable_api_logging is True
    assert cli.ignored_flags(args) == []
    settings, _ = cli.settings_from_args([], environ={})
    assert settings.config_file is None and settings.enable_api_logging is None
    # what the injector passes for dapr.io/config: a resource name, not a file to read
    settings, _ = cli.settings_from_args(["--mode", "kubernetes", "--config", "tracing"], environ={})
    assert settings.config_file is None and settings.kubernetes_config == "tracing"


@pytest.mark.parametrize(("text", "says"), [
    (None, "No such file or directory"),
    ("spec: [unclosed", "not YAML"),
    ("apiVersion: dapr.io/v1alpha1\nkind: Component\n", "not Configuration"),
    (b"kind: Configuration\nspec: {}\n# \xff\xfe latin-1, not UTF-8\n", "not UTF-8 text"),
])
def test_an_unusable_file_stops_the_start_as_daprd_does(tmp_path: Path, text: str | bytes | None, says: str) -> None:
    path = tmp_path / "config.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    with pytest.raises(configuration.ConfigurationError, match=says):
        configuration.load(path)


def test_the_process_exits_with_one_line_for_a_missing_file(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "parley_sidecar", "--config", str(tmp_path / "missing.yaml"),
         "--dapr-http-port", "0", "--dapr-grpc-port", "0", "--metrics-port", "0", "--dapr-public-port", "0",
         "--dapr-listen-addresses", "127.0.0.1"],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "error loading configuration" in done.stdout and "missing.yaml" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
