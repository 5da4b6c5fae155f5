"""Metrics scraped over HTTP and parsed with prometheus_client's own parser."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ECHO, Running, component_yaml


async def scrape(running: Running) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    async with running.session.get(running.metrics + "/") as resp:
        assert resp.status == 200
        text = await resp.text()
    families: dict[str, list[tuple[str, dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        families.setdefault(family.name, []).extend((s.name, s.labels, s.value) for s in family.samples)
    return families


async def test_exposition_uses_daprd_names_without_total_suffix(sidecar: Running) -> None:
    await sidecar.post("/v1.0-alpha1/conversation/echo/converse", {"inputs": ["hi"]})
    async with sidecar.session.get(sidecar.metrics + "/") as resp:
        text = await resp.text()
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "# TYPE dapr_http_server_request_count counter" in text
    assert "# TYPE dapr_component_conversation_count counter" in text
    assert "dapr_http_server_request_count{" in text
    assert "_count_total" not in text


async def test_daprd_metric_names_count_requests(sidecar: Running) -> None:
    for _ in range(3):
        await sidecar.post("/v1.0-alpha1/conversation/echo/converse", {"inputs": ["hi"]})
    await sidecar.post("/v1.0-alpha1/conversation/nope/converse", {"inputs": ["hi"]})
    families = await scrape(sidecar)
    requests = {(labels["path"], labels["status"]): value
                for name, labels, value in families["dapr_http_server_request_count"]}
    assert requests[("/v1.0-alpha1/conversation/echo/converse", "200")] == 3
    # an unknown component name is user text: it is reported as the route template
    assert requests[("/v1.0-alpha1/conversation/{name}/converse", "400")] == 1
    conv = [(labels, v) for name, labels, v in families["dapr_component_conversation_count"]]
    assert conv == [({"app_id": "test-app", "component": "echo", "namespace": "", "success": "true"}, 3.0)]
    latency_counts = [v for name, labels, v in families["dapr_component_conversation_latencies"]
                      if name.endswith("_count")]
    assert latency_counts == [3.0]


async def test_genai_token_usage_is_recorded(sidecar: Running) -> None:
    await sidecar.post("/v1.0-alpha1/conversation/echo/converse", {"inputs": ["one two three"]})
    families = await scrape(sidecar)
    sums = {labels["gen_ai_token_type"]: v for name, labels, v in families["gen_ai_client_token_usage"]
            if name == "gen_ai_client_token_usage_sum"}
    assert sums == {"input": 3.0, "output": 3.0}
    durations = [labels for name, labels, v in families["gen_ai_client_operation_duration_seconds"]
                 if name.endswith("_count")]
    assert durations == [{"app_id": "test-app", "gen_ai_operation_name": "chat", "gen_ai_provider_name": "echo",
                          "component": "echo", "gen_ai_request_model": "", "gen_ai_response_model": "",
                          "error_type": ""}]


async def test_redactions_are_counted_by_entity_without_text(sidecar: Running) -> None:
    await sidecar.post("/v1.0-alpha1/conversation/echo/converse",
                       {"inputs": [{"content": "mail test@test.com and 10.8.9.1", "scrubPII": True}]})
    async with sidecar.session.get(sidecar.metrics + "/") as resp:
        text = await resp.text()
    assert "test@test.com" not in text
    families = await scrape(sidecar)
    redactions = {labels["entity"]: v for name, labels, v in families["parley_pii_redactions"]}
    assert redactions == {"EMAIL": 1.0, "IP": 1.0}


async def test_a_component_that_fails_to_load_is_counted_by_name(start_sidecar: Any) -> None:
    broken = component_yaml("broken", "conversation.openai", {"model": "gpt-4o-mini"})  # no key: refused
    running = await start_sidecar({"echo.yaml": ECHO.format(name="echo"), "broken.yaml": broken})
    families = await scrape(running)
    assert [(labels, value) for _, labels, value in families["parley_component_load_errors"]] == [
        ({"component": "broken"}, 1.0)]
    status, _ = await running.post("/v1.0-alpha1/conversation/echo/converse", {"inputs": ["hi"]})
    assert status == 200  # the other components serve
