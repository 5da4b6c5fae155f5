"""Requests the fuzz (tests/fuzz) found answered with a 500 or with aiohttp's text instead of daprd's JSON.

Each is the minimal reproducer the fuzz shrank to, sent on a raw socket so no client library
normalises it on the way.
"""

from __future__ import annotations

import asyncio
import gzip
import json

import pytest

from tests.conftest import Running

A1 = "/v1.0-alpha1/conversation/echo/converse"


async def raw(running: Running, head: str, body: bytes = b"") -> tuple[int, str, bytes]:
    port = running.sidecar.bound["http"]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.encode() + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head_part, _, payload = answer.partition(b"\r\n\r\n")
    lines = head_part.decode().split("\r\n")
    ctype = next((line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("content-type:")), "")
    return int(lines[0].split()[1]), ctype, payload


def malformed(payload: bytes) -> str:
    answer = json.loads(payload)
    assert answer["errorCode"] == "ERR_MALFORMED_REQUEST", answer
    return str(answer["message"])


@pytest.mark.parametrize("encoding, body", [
    ("gzip", b"\x00\x00"),  # not gzip at all
    ("gzip", gzip.compress(b'{"inputs":[{"content":"hi"}]}')),  # daprd never decodes a request body either
    ("br", b"\x00"),
])
async def test_a_content_encoding_is_not_decoded_as_daprd(sidecar: Running, encoding: str, body: bytes) -> None:
    status, ctype, payload = await raw(sidecar, f"POST {A1} HTTP/1.1\r\nHost: x\r\nContent-Encoding: {encoding}\r\n",
                                       body)
    assert (status, ctype) == (400, "application/json")
    malformed(payload)


@pytest.mark.parametrize("body", [
    b'{"temperature": 1' + b"0" * 400 + b"}",  # an integer too large for a double
    b'{"inputs": [{"content": "hi", "\xed\xa0\x80": null}]}',  # a surrogate's bytes: not UTF-8
])
async def test_bodies_that_are_not_protojson_are_malformed(sidecar: Running, body: bytes) -> None:
    status, ctype, payload = await raw(sidecar, f"POST {A1} HTTP/1.1\r\nHost: x\r\n", body)
    assert (status, ctype) == (400, "application/json")
    malformed(payload)


async def test_a_method_the_parser_does_not_know_gets_json(sidecar: Running) -> None:
    status, ctype, payload = await raw(sidecar, "A /v1.0/healthz HTTP/1.1\r\nHost: x\r\n")
    assert (status, ctype) == (400, "application/json")
    assert malformed(payload).startswith("malformed HTTP request: ")
    async with sidecar.session.get(sidecar.http + "/v1.0/healthz") as resp:
        assert resp.status == 204


async def test_an_extended_metadata_key_may_hold_braces(sidecar: Running) -> None:
    status, _, _ = await raw(sidecar, "PUT /v1.0/metadata/%7Bx%7D HTTP/1.1\r\nHost: x\r\n", b"v")
    assert status == 204
    async with sidecar.session.get(sidecar.http + "/v1.0/metadata") as resp:
        assert (await resp.json())["extended"]["{x}"] == "v"


@pytest.mark.parametrize("method", ["ConverseAlpha1", "ConverseAlpha2", "GetMetadata"])
async def test_bytes_that_are_not_the_message_get_internal_as_grpc_go_answers(sidecar: Running, method: str) -> None:
    import grpc

    async with grpc.aio.insecure_channel(sidecar.grpc) as channel:
        call = channel.unary_unary(f"/dapr.proto.runtime.v1.Dapr/{method}",
                                   request_serializer=lambda b: b, response_deserializer=lambda b: b)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(b"\x00", timeout=10)
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert (info.value.details() or "").startswith("grpc: error unmarshalling request: ")
