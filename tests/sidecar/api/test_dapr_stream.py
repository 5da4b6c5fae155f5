"""Streaming on the Dapr API (parley extension): gRPC ``ConverseStreamAlpha2`` through a real
``grpc.aio`` channel, and its SSE form ``POST /v1.0-alpha2/conversation/{name}/converse/stream``
through aiohttp's client, both against a sidecar on loopback.

What a client notices: several chunks whose text makes the same answer ``ConverseAlpha2`` gives,
a ``complete`` equal to that answer (tool calls and usage included), daprd's error status before
the first chunk, scrubbed output, and a caller that leaves takes the upstream call with it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from dapr.proto.runtime.v1 import ai_pb2, dapr_pb2_grpc
from google.protobuf import json_format, struct_pb2

from parley_sidecar.api import stream_pb
from tests.conftest import Running, StartSidecar, component_yaml
from tests.fakes import OpenAIFake, Reply
from tests.sidecar.api.test_caller_gone import GONE_WITHIN, SilentUpstream, grpc_request, running, upstream  # noqa: F401  (fixtures)
from tests.sidecar.api.test_metrics import scrape

METHOD = "/dapr.proto.runtime.v1.Dapr/ConverseStreamAlpha2"
TEXT = "well hello there, how are you today"


def stream_call(channel: grpc.aio.Channel) -> Any:
    return channel.unary_stream(METHOD, request_serializer=ai_pb2.ConversationRequestAlpha2.SerializeToString,
                                response_deserializer=stream_pb.ConversationStreamResponse.FromString)


async def grpc_stream(at: Running, req: ai_pb2.ConversationRequestAlpha2,
                      metadata: Any = None) -> list[Any]:
    async with grpc.aio.insecure_channel(at.grpc) as channel:
        return [message async for message in stream_call(channel)(req, metadata=metadata)]


async def unary(at: Running, req: ai_pb2.ConversationRequestAlpha2) -> ai_pb2.ConversationResponseAlpha2:
    async with grpc.aio.insecure_channel(at.grpc) as channel:
        return await dapr_pb2_grpc.DaprStub(channel).ConverseAlpha2(req)  # type: ignore[no-any-return]


def request(text: str = TEXT, *, name: str = "echo", **fields: Any) -> ai_pb2.ConversationRequestAlpha2:
    return ai_pb2.ConversationRequestAlpha2(name=name, inputs=[ai_pb2.ConversationInputAlpha2(messages=[
        ai_pb2.ConversationMessage(of_user=ai_pb2.ConversationMessageOfUser(
            content=[ai_pb2.ConversationMessageContent(text=text)]))])], **fields)


def weather_tool() -> ai_pb2.ConversationTools:
    params = struct_pb2.Struct()
    params.update({"type": "object", "properties": {"location": {"type": "string"}, "unit": {"type": "string"}}})
    return ai_pb2.ConversationTools(function=ai_pb2.ConversationToolsFunction(name="get_weather", parameters=params))


def split(messages: list[Any]) -> tuple[list[Any], Any]:
    """The chunks, and the one complete that must end the stream."""
    *chunks, last = messages
    assert all(m.WhichOneof("response_type") == "chunk" for m in chunks)
    assert last.WhichOneof("response_type") == "complete"
    return [m.chunk for m in chunks], last.complete


def wire_of(outputs: Any) -> list[bytes]:
    """Each output's bytes: the stream's messages come from the sidecar's own descriptors (``dapr_proto``)
    and the unary answer from the dapr package's, and protobuf compares only messages of one class."""
    return [output.SerializeToString(deterministic=True) for output in outputs]


def text_of(chunks: list[Any]) -> str:
    return "".join(part.text.text for chunk in chunks for part in chunk.parts if part.WhichOneof("content_type") == "text")


async def sse(at: Running, name: str, body: Any, headers: dict[str, str] | None = None,
              query: str = "") -> tuple[int, str, Any]:
    """Status, content type and, for a stream, its events as (event name, JSON data)."""
    url = f"{at.http}/v1.0-alpha2/conversation/{name}/converse/stream{query}"
    async with at.session.post(url, json=body, headers=headers) as resp:
        text = await resp.text()
        if not resp.content_type.startswith("text/event-stream"):
            return resp.status, resp.content_type, json.loads(text)
    events = []
    for block in text.split("\n\n"):
        if not block:
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((fields.get("event", ""), json.loads(fields["data"])))
    return resp.status, resp.content_type, events


A2_BODY = {"contextId": "ctx-1", "inputs": [{"messages": [{"ofUser": {"content": [{"text": TEXT}]}}]}]}


# -- gRPC ------------------------------------------------------------------------------------------

async def test_grpc_echo_streams_chunks_that_make_the_unary_answer(sidecar: Running) -> None:
    req = request(context_id="ctx-1")
    chunks, complete = split(await grpc_stream(sidecar, req))
    whole = await unary(sidecar, req)
    assert len(chunks) >= 5  # a word at a time, not one block
    assert text_of(chunks) == TEXT == whole.outputs[0].choices[0].message.content
    assert [c.chunk_index for c in chunks] == list(range(len(chunks)))
    assert all(c.is_delta for c in chunks)
    assert chunks[-1].finish_reason == "stop"
    assert not any(c.HasField("finish_reason") for c in chunks[:-1])
    assert complete.context_id == "ctx-1"
    assert wire_of(complete.outputs) == wire_of(whole.outputs)  # the same answer, usage and all


async def test_grpc_tool_calls_and_usage(sidecar: Running) -> None:
    req = request("what is the weather", tools=[weather_tool()])
    chunks, complete = split(await grpc_stream(sidecar, req))
    calls = [p.tool_call for c in chunks for p in c.parts if p.WhichOneof("content_type") == "tool_call"]
    assert [(c.index, c.id, c.type, c.name, c.arguments) for c in calls] == [
        (0, "0", "function", "get_weather", "location,unit")]
    assert chunks[-1].finish_reason == "tool_calls"
    whole = await unary(sidecar, req)
    assert wire_of(complete.outputs) == wire_of(whole.outputs)
    assert (complete.usage.prompt_tokens, complete.usage.completion_tokens, complete.usage.total_tokens) == (4, 4, 8)


@pytest.mark.parametrize(("req", "code", "message"), [
    (request(name="nope"), grpc.StatusCode.INVALID_ARGUMENT, "failed finding conversation component nope"),
    (ai_pb2.ConversationRequestAlpha2(name="echo"), grpc.StatusCode.INVALID_ARGUMENT,
     "failed conversing with component echo: missing inputs in request"),
    (request(tool_choice="required"), grpc.StatusCode.INVALID_ARGUMENT,
     "failed conversing with component echo: invalid params: tool choice must be 'auto', 'none', 'required', "
     "or a specific tool name matching the tools available to be used"),
], ids=["unknown component", "missing inputs", "invalid params"])
async def test_grpc_errors_before_the_first_chunk_are_converse_alpha2_statuses(
        sidecar: Running, req: ai_pb2.ConversationRequestAlpha2, code: grpc.StatusCode, message: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as streamed:
        await grpc_stream(sidecar, req)
    with pytest.raises(grpc.aio.AioRpcError) as answered:
        await unary(sidecar, req)
    assert (streamed.value.code(), streamed.value.details()) == (code, message)
    assert (answered.value.code(), answered.value.details()) == (code, message)


async def test_grpc_output_scrubbing_lets_no_entity_through_any_chunk(sidecar: Running) -> None:
    text = "call me on +2222222222 or mail test@test.com from 10.8.9.1 soon"
    req = request(text, scrub_pii=True)
    chunks, complete = split(await grpc_stream(sidecar, req))
    streamed = text_of(chunks)
    whole = await unary(sidecar, req)
    assert streamed == whole.outputs[0].choices[0].message.content
    assert "<PHONE_NUMBER>" in streamed and "<EMAIL_ADDRESS>" in streamed and "<IP>" in streamed
    for secret in ("2222", "test@", "10.8"):
        assert all(secret not in part.text.text for chunk in chunks for part in chunk.parts)
    assert complete.outputs[0].choices[0].message.content == streamed


async def test_grpc_api_token_and_metrics(start_sidecar: StartSidecar) -> None:
    secured = await start_sidecar(api_token="s3cret")
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await grpc_stream(secured, request())
    assert (denied.value.code(), denied.value.details()) == (grpc.StatusCode.UNAUTHENTICATED, "Unauthorized")
    _, complete = split(await grpc_stream(secured, request(), metadata=(("dapr-api-token", "s3cret"),)))
    assert complete.outputs[0].choices[0].message.content == TEXT
    families = await scrape(secured)
    completed = {(labels["grpc_server_method"].rsplit("/", 1)[1], labels["grpc_server_status"]): value
                 for name, labels, value in families["dapr_grpc_io_server_completed_rpcs"]}
    assert completed[("ConverseStreamAlpha2", "OK")] == 1


async def test_grpc_undecodable_request_is_internal(sidecar: Running) -> None:
    async with grpc.aio.insecure_channel(sidecar.grpc) as channel:
        call = channel.unary_stream(METHOD, request_serializer=lambda raw: raw,
                                    response_deserializer=stream_pb.ConversationStreamResponse.FromString)
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            async for _ in call(b"\xff\xff\xff"):
                pass
    assert failed.value.code() == grpc.StatusCode.INTERNAL
    assert failed.value.details().startswith("grpc: error unmarshalling request")


async def test_grpc_cancel_cancels_the_upstream_call(running: Running, upstream: SilentUpstream) -> None:  # noqa: F811  (the fixture)
    async with grpc.aio.insecure_channel(running.grpc) as channel:
        call = stream_call(channel)(grpc_request())
        await upstream.wait_open(1, within=GONE_WITHIN)
        call.cancel()
        await upstream.wait_open(0, within=GONE_WITHIN)
        assert await call.code() == grpc.StatusCode.CANCELLED
    assert upstream.accepted == 1
    families = await scrape(running)
    statuses = [labels["grpc_server_status"] for name, labels, _ in families["dapr_grpc_io_server_completed_rpcs"]]
    assert statuses == ["CANCELLED"]


async def test_grpc_deadline_cancels_the_upstream_call(running: Running, upstream: SilentUpstream) -> None:  # noqa: F811  (the fixture)
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        async with grpc.aio.insecure_channel(running.grpc) as channel:
            async for _ in stream_call(channel)(grpc_request(), timeout=1):
                pass
    assert failed.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await upstream.wait_open(0, within=GONE_WITHIN)
    families = await scrape(running)
    statuses = [labels["grpc_server_status"] for name, labels, _ in families["dapr_grpc_io_server_completed_rpcs"]]
    assert statuses == ["DEADLINE_EXCEEDED"]


# -- HTTP SSE --------------------------------------------------------------------------------------

async def test_sse_events_are_the_grpc_messages_in_protojson(sidecar: Running) -> None:
    status, content_type, events = await sse(sidecar, "echo", A2_BODY)
    assert (status, content_type) == (200, "text/event-stream")
    assert all(name == "" for name, _ in events)
    grpc_messages = await grpc_stream(sidecar, request(context_id="ctx-1"))
    assert [data for _, data in events] == [json_format.MessageToDict(m) for m in grpc_messages]
    *chunks, (_, last) = events
    assert "".join(p["text"]["text"] for _, c in chunks for p in c["chunk"].get("parts", ())) == TEXT
    plain_status, plain = await sidecar.post("/v1.0-alpha2/conversation/echo/converse", A2_BODY)
    assert plain_status == 200
    assert last == {"complete": {"contextId": "ctx-1", "usage": plain["outputs"][0]["usage"],
                                 "outputs": plain["outputs"]}}


async def test_sse_tool_calls_and_usage(sidecar: Running) -> None:
    body = {"inputs": A2_BODY["inputs"], "tools": [{"function": {
        "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]}
    status, _, events = await sse(sidecar, "echo", body)
    assert status == 200
    parts = [p for _, data in events[:-1] for p in data["chunk"].get("parts", ())]
    assert [p["toolCall"] for p in parts if "toolCall" in p] == [
        {"id": "0", "type": "function", "name": "get_weather", "arguments": "city"}]
    complete = events[-1][1]["complete"]
    assert complete["usage"] == {"completionTokens": "7", "promptTokens": "7", "totalTokens": "14"}
    assert complete["outputs"][0]["choices"][0]["finishReason"] == "tool_calls"


@pytest.mark.parametrize(("name", "body", "status", "code"), [
    ("nope", A2_BODY, 400, "ERR_CONVERSATION_NOT_FOUND"),
    ("echo", {"inputs": []}, 400, "ERR_CONVERSATION_MISSING_INPUTS"),
    ("echo", {"inputs": "not a list"}, 400, "ERR_MALFORMED_REQUEST"),
], ids=["unknown component", "missing inputs", "malformed"])
async def test_sse_errors_before_the_first_event_are_daprd_json(
        sidecar: Running, name: str, body: Any, status: int, code: str) -> None:
    got_status, content_type, got = await sse(sidecar, name, body)
    plain_status, plain = await sidecar.post(f"/v1.0-alpha2/conversation/{name}/converse", body)
    assert (got_status, content_type, got["errorCode"]) == (status, "application/json", code)
    assert (got_status, got) == (plain_status, plain)


async def test_sse_api_token(start_sidecar: StartSidecar) -> None:
    secured = await start_sidecar(api_token="s3cret")
    async with secured.session.post(f"{secured.http}/v1.0-alpha2/conversation/echo/converse/stream",
                                    json=A2_BODY) as resp:
        assert (resp.status, await resp.text()) == (401, "invalid api token\n")
    status, _, events = await sse(secured, "echo", A2_BODY, headers={"dapr-api-token": "s3cret"})
    assert status == 200 and "complete" in events[-1][1]


async def test_sse_client_that_leaves_cancels_the_upstream_call(running: Running, upstream: SilentUpstream) -> None:  # noqa: F811  (the fixture)
    body = json.dumps({"inputs": A2_BODY["inputs"]}).encode()
    _, writer = await asyncio.open_connection("127.0.0.1", running.sidecar.bound["http"])
    writer.write(b"POST /v1.0-alpha2/conversation/llm/converse/stream HTTP/1.1\r\nHost: parley\r\n"
                 b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    await upstream.wait_open(1, within=GONE_WITHIN)
    writer.close()  # the client gives up before the first event
    await upstream.wait_open(0, within=GONE_WITHIN)
    assert upstream.accepted == 1
    families = await scrape(running)
    counted = {(labels["path"], labels["status"]): value
               for _, labels, value in families["dapr_http_server_request_count"]}
    assert counted[("/v1.0-alpha2/conversation/llm/converse/stream", "499")] == 1


# -- a streaming provider: OpenAI's wire format from a local fake ----------------------------------

@pytest.fixture
async def openai_fake() -> AsyncIterator[OpenAIFake]:
    fake = await OpenAIFake().start()
    yield fake
    await fake.close()


@pytest.fixture
async def llm(start_sidecar: StartSidecar, openai_fake: OpenAIFake) -> Running:
    return await start_sidecar({"llm.yaml": component_yaml("llm", "conversation.openai", {
        "key": "sk-test", "model": "gpt-4o-mini", "endpoint": openai_fake.url + "/v1"})})


async def test_grpc_relays_tool_call_argument_pieces(llm: Running, openai_fake: OpenAIFake) -> None:
    openai_fake.stream(Reply(text="Let me check.", finish="tool_calls",
                             tool_calls=(("call_1", "get_weather", {"city": "Paris", "unit": "celsius"}),)))
    chunks, complete = split(await grpc_stream(llm, request("weather in Paris?", name="llm", tools=[weather_tool()])))
    pieces = [p.tool_call for c in chunks for p in c.parts if p.WhichOneof("content_type") == "tool_call"]
    assert len(pieces) > 1  # the arguments arrive in fragments, each relayed
    assert (pieces[0].id, pieces[0].name, pieces[0].type) == ("call_1", "get_weather", "function")
    assert {p.index for p in pieces} == {0}
    arguments = "".join(p.arguments for p in pieces)
    assert json.loads(arguments) == {"city": "Paris", "unit": "celsius"}
    assert text_of(chunks) == "Let me check."
    (call,) = complete.outputs[0].choices[0].message.tool_calls
    assert (call.id, call.function.name, call.function.arguments) == ("call_1", "get_weather", arguments)
    assert complete.outputs[0].choices[0].finish_reason == "tool_calls"
    assert (complete.usage.prompt_tokens, complete.usage.completion_tokens, complete.usage.total_tokens) == (10, 5, 15)
    assert openai_fake.last.body["stream"] is True


async def test_grpc_upstream_cut_mid_stream_ends_with_an_error_status(llm: Running, openai_fake: OpenAIFake) -> None:
    openai_fake.stream(Reply(text="one two three four five six"), cut_after=3)
    received: list[Any] = []
    async with grpc.aio.insecure_channel(llm.grpc) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            async for message in stream_call(channel)(request(name="llm")):
                received.append(message)
    assert received and all(m.WhichOneof("response_type") == "chunk" for m in received)
    assert failed.value.code() == grpc.StatusCode.INTERNAL
    assert failed.value.details().startswith("failed conversing with component llm: ")
    assert "sk-test" not in failed.value.details()
    # and the next request works
    chunks, complete = split(await grpc_stream(llm, request(name="llm")))
    assert complete.outputs[0].choices[0].message.content == text_of(chunks) != ""


async def test_sse_upstream_cut_mid_stream_is_an_error_event_then_the_end(llm: Running, openai_fake: OpenAIFake) -> None:
    openai_fake.stream(Reply(text="one two three four five six"), cut_after=3)
    status, _, events = await sse(llm, "llm", A2_BODY)
    assert status == 200
    *chunks, (name, error) = events
    assert chunks and all("chunk" in data for _, data in chunks)
    assert name == "error"
    assert error["errorCode"] == "ERR_CONVERSATION_INVOKE"
    assert error["message"].startswith("failed conversing with component llm: ")


async def test_grpc_cancel_mid_stream_closes_the_upstream_stream(llm: Running, openai_fake: OpenAIFake) -> None:
    openai_fake.stream(Reply(text="one two three four five six"), stall_after=3)
    async with grpc.aio.insecure_channel(llm.grpc) as channel:
        call = stream_call(channel)(request(name="llm"))
        first = await call.read()
        assert first.WhichOneof("response_type") == "chunk"
        call.cancel()
        await openai_fake.wait_until(lambda: openai_fake.closed_by_client == 1)
    families = await scrape(llm)
    statuses = [labels["grpc_server_status"] for name, labels, _ in families["dapr_grpc_io_server_completed_rpcs"]]
    assert statuses == ["CANCELLED"]


async def test_sse_client_that_leaves_mid_stream_closes_the_upstream_stream(
        llm: Running, openai_fake: OpenAIFake) -> None:
    openai_fake.stream(Reply(text="one two three four five six"), stall_after=3)
    url = f"{llm.http}/v1.0-alpha2/conversation/llm/converse/stream"
    async with llm.session.post(url, json=A2_BODY) as resp:
        assert resp.status == 200
        line = await resp.content.readline()
        assert line.startswith(b'data: {"chunk"')
        resp.close()  # the client leaves mid-stream
    await openai_fake.wait_until(lambda: openai_fake.closed_by_client == 1)


async def test_sse_takes_query_metadata_as_converse_does(llm: Running, openai_fake: OpenAIFake) -> None:
    openai_fake.stream()
    status, _, events = await sse(llm, "llm", A2_BODY, query="?metadata.model=gpt-other&metadata.team=blue")
    assert status == 200 and "complete" in events[-1][1]
    assert openai_fake.last.body["model"] == "gpt-other"  # the Dapr docs' per-request override
    assert openai_fake.last.body["metadata"] == {"team": "blue"}


def openai_frame(delta: dict[str, Any], finish: str | None = None) -> bytes:
    chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1741569952, "model": "gpt-4o-mini",
             "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


async def test_sse_scrubbing_catches_an_entity_split_across_upstream_chunks(
        llm: Running, openai_fake: OpenAIFake) -> None:
    openai_fake.stream(frames=(
        openai_frame({"role": "assistant", "content": ""}),
        *(openai_frame({"content": piece}) for piece in ("write to te", "st@exam", "ple.com", " or not")),
        openai_frame({}, "stop"),
        b"data: [DONE]\n\n",
    ))
    status, _, events = await sse(llm, "llm", {**A2_BODY, "scrubPii": True})
    assert status == 200
    texts = [p["text"]["text"] for _, d in events[:-1] for p in d["chunk"].get("parts", ())]
    assert "".join(texts) == "write to <EMAIL_ADDRESS> or not"
    assert not any(fragment in text for text in texts for fragment in ("@", "exam", "ple.com", "st@"))
    complete = events[-1][1]["complete"]
    assert complete["outputs"][0]["choices"][0]["message"]["content"] == "write to <EMAIL_ADDRESS> or not"
