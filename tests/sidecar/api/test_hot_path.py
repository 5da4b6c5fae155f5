"""Converse requests as clients send them are answered before aiohttp's router (``http._front``);
the same request on a path that needs cleaning, or with a query, still goes through the router.
Both ways must answer alike and be counted alike."""

from __future__ import annotations

import json

from tests.conftest import Running, StartSidecar
from tests.sidecar.api.test_metrics import scrape

BODIES = (
    ("/v1.0-alpha1/conversation/{}/converse", b'{"inputs": [{"content": "hi there", "role": "user"}]}'),
    ("/v1.0-alpha2/conversation/{}/converse", b'{"inputs": [{"messages": [{"ofUser": {"content": [{"text": "hi"}]}}]}]}'),
    ("/v1.0-alpha1/conversation/{}/converse", b'{"inputs": 7}'),
    ("/v1.0-alpha2/conversation/{}/converse", b"{"),
)


async def answer(running: Running, path: str, body: bytes) -> tuple[int, str, bytes]:
    async with running.session.post(running.http + path, data=body,
                                     headers={"Content-Type": "application/json"}) as resp:
        return resp.status, resp.headers["Content-Type"], await resp.read()


async def test_hot_and_routed_paths_answer_and_count_alike(sidecar: Running) -> None:
    for template, body in BODIES:
        for name in ("echo", "nope"):
            plain = await answer(sidecar, template.format(name), body)
            routed = await answer(sidecar, "/" + template.format(name), body)  # "//v1.0-…": cleaned, routed
            queried = await answer(sidecar, template.format(name) + "?unrelated=1", body)
            assert plain == routed == queried, (template, name)
    requests = {(labels["path"], labels["status"]): value
                for _, labels, value in (await scrape(sidecar))["dapr_http_server_request_count"]}
    assert requests[("/v1.0-alpha1/conversation/echo/converse", "200")] == 3
    assert requests[("/v1.0-alpha2/conversation/echo/converse", "200")] == 3
    assert requests[("/v1.0-alpha1/conversation/echo/converse", "400")] == 3
    assert requests[("/v1.0-alpha1/conversation/{name}/converse", "400")] == 6  # an unknown name is not a label


async def test_hot_and_routed_paths_check_the_token_alike(start_sidecar: StartSidecar) -> None:
    running = await start_sidecar(api_token="s3cret")
    path, body = BODIES[0]
    for given in ({}, {"dapr-api-token": "wrong"}):
        for sent in (path.format("echo"), "/" + path.format("echo")):
            async with running.session.post(running.http + sent, data=body, headers=given) as resp:
                assert (resp.status, await resp.text()) == (401, "invalid api token\n")
    async with running.session.post(running.http + path.format("echo"), data=body,
                                    headers={"dapr-api-token": "s3cret"}) as resp:
        assert resp.status == 200


async def test_other_methods_on_a_converse_path_get_daprds_fallback(sidecar: Running) -> None:
    async with sidecar.session.get(sidecar.http + "/v1.0-alpha1/conversation/echo/converse") as resp:
        assert resp.status == 404
        assert (await resp.json())["errorCode"] == "ERR_DIRECT_INVOKE"
    async with sidecar.session.put(sidecar.http + "/v1.0-alpha2/conversation/echo/converse", data=b"{}") as resp:
        assert resp.status == 404
        assert (await resp.json())["errorCode"] == "ERR_DIRECT_INVOKE"


CHATS = (
    b'{"model": "echo", "messages": [{"role": "user", "content": "hi there"}]}',
    b'{"model": "echo", "stream": true, "messages": [{"role": "user", "content": "hi there, streamed"}]}',
    b'{"model": "nope", "messages": [{"role": "user", "content": "hi"}]}',
    b"{",
)


def _stable(content_type: str, body: bytes) -> object:
    """An OpenAI answer without what differs between two answers of the same request (id, created)."""
    def strip(value: object) -> object:
        return {k: v for k, v in value.items() if k not in ("id", "created")} if isinstance(value, dict) else value
    if content_type.startswith("text/event-stream"):
        events = [event.removeprefix(b"data: ") for event in body.split(b"\n\n") if event]
        return [event if event == b"[DONE]" else strip(json.loads(event)) for event in events]
    return strip(json.loads(body))


async def test_openai_chat_on_the_hot_and_routed_paths_answers_and_counts_alike(sidecar: Running) -> None:
    for body in CHATS:
        (status, ctype, plain), (status2, ctype2, queried) = [
            await answer(sidecar, path, body) for path in ("/v1/chat/completions", "/v1/chat/completions?unrelated=1")]
        assert (status, ctype, _stable(ctype, plain)) == (status2, ctype2, _stable(ctype2, queried)), body
    requests = {(labels["path"], labels["status"]): value
                for _, labels, value in (await scrape(sidecar))["dapr_http_server_request_count"]}
    assert requests[("/v1/chat/completions", "200")] == 4
    assert requests[("/v1/chat/completions", "404")] == 2
    assert requests[("/v1/chat/completions", "400")] == 2


async def test_openai_chat_on_the_hot_and_routed_paths_checks_the_token_alike(start_sidecar: StartSidecar) -> None:
    running = await start_sidecar(api_token="s3cret")
    for given in ({}, {"Authorization": "Bearer wrong"}):
        for sent in ("/v1/chat/completions", "/v1/chat/completions?unrelated=1"):
            async with running.session.post(running.http + sent, data=CHATS[0], headers=given) as resp:
                assert resp.status == 401
                assert (await resp.json())["error"]["code"] == "invalid_api_key"
    async with running.session.post(running.http + "/v1/chat/completions", data=CHATS[0],
                                    headers={"Authorization": "Bearer s3cret"}) as resp:
        assert resp.status == 200
