"""Fuzz of the sidecar's gRPC API: ConverseAlpha1/2 with random messages and with random bytes.

Documented answers (docs/sidecar.md "Errors", api/grpc.py): OK with the response, INVALID_ARGUMENT
for a bad request or an unknown component, RESOURCE_EXHAUSTED for a message over
--max-body-size, UNAUTHENTICATED ``Unauthorized`` without the right ``dapr-api-token``. INTERNAL is
documented for a failing component only (`echo` and an unknown component cannot fail upstream);
bytes that are not the request message at all get INTERNAL from the gRPC library itself, as
grpc-go answers in daprd (``grpc: error unmarshalling request``). Never UNKNOWN, never OK for an
unknown component or with an empty answer. The sidecar's ``dapr_grpc_io_server_completed_rpcs``
counts each call under the status the client saw.
"""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from dapr.proto.runtime.v1 import ai_pb2
from google.protobuf import descriptor as pbd
from google.protobuf.message import DecodeError, Message
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz import strategies as fs
from tests.fuzz.conftest import API_TOKEN, MAX_BODY, FuzzSidecar, HttpClient, examples

SERVICE = "/dapr.proto.runtime.v1.Dapr/"
METHODS: dict[str, tuple[type[Message], type[Message]]] = {
    "ConverseAlpha1": (ai_pb2.ConversationRequest, ai_pb2.ConversationResponse),
    "ConverseAlpha2": (ai_pb2.ConversationRequestAlpha2, ai_pb2.ConversationResponseAlpha2),
}
UNKNOWN = "no-such-component"
DOCUMENTED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED,
              grpc.StatusCode.UNAUTHENTICATED}


@pytest.fixture(scope="module")
def channel(fuzz_sidecar: FuzzSidecar) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(fuzz_sidecar.grpc) as ch:
        grpc.channel_ready_future(ch).result(timeout=10)
        yield ch


@pytest.fixture(scope="module")
def health(fuzz_sidecar: FuzzSidecar) -> Iterator[HttpClient]:
    c = HttpClient("127.0.0.1", fuzz_sidecar.http_port)
    yield c
    c.close()


# -- random protobuf messages, from the descriptors ----------------------------------------------
_INT_RANGES = {
    pbd.FieldDescriptor.TYPE_INT32: (-(2 ** 31), 2 ** 31 - 1), pbd.FieldDescriptor.TYPE_SINT32: (-(2 ** 31), 2 ** 31 - 1),
    pbd.FieldDescriptor.TYPE_SFIXED32: (-(2 ** 31), 2 ** 31 - 1), pbd.FieldDescriptor.TYPE_ENUM: (-(2 ** 31), 2 ** 31 - 1),
    pbd.FieldDescriptor.TYPE_INT64: (-(2 ** 63), 2 ** 63 - 1), pbd.FieldDescriptor.TYPE_SINT64: (-(2 ** 63), 2 ** 63 - 1),
    pbd.FieldDescriptor.TYPE_SFIXED64: (-(2 ** 63), 2 ** 63 - 1),
    pbd.FieldDescriptor.TYPE_UINT32: (0, 2 ** 32 - 1), pbd.FieldDescriptor.TYPE_FIXED32: (0, 2 ** 32 - 1),
    pbd.FieldDescriptor.TYPE_UINT64: (0, 2 ** 64 - 1), pbd.FieldDescriptor.TYPE_FIXED64: (0, 2 ** 64 - 1),
}
VALID_TEXT = fs.HOSTILE_TEXT.map(lambda t: t.encode("utf-8", "replace").decode("utf-8"))  # protobuf strings are UTF-8


def _scalar(field: pbd.FieldDescriptor) -> st.SearchStrategy[Any]:
    t = field.type
    if t == pbd.FieldDescriptor.TYPE_STRING:
        return VALID_TEXT
    if t == pbd.FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=24)
    if t == pbd.FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t in (pbd.FieldDescriptor.TYPE_DOUBLE, pbd.FieldDescriptor.TYPE_FLOAT):
        return st.floats(width=64 if t == pbd.FieldDescriptor.TYPE_DOUBLE else 32)
    if t == pbd.FieldDescriptor.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(*_INT_RANGES[t]))
    lo, hi = _INT_RANGES[t]
    return st.one_of(st.integers(lo, hi), st.sampled_from([lo, hi, 0, 1, -1 if lo < 0 else 2]))


def _fill(draw: st.DrawFn, msg: Message, depth: int) -> None:
    for field in msg.DESCRIPTOR.fields:
        if not draw(st.integers(0, 2)):  # most fields stay unset
            continue
        is_message = field.type == pbd.FieldDescriptor.TYPE_MESSAGE
        if is_message and depth <= 0:
            continue
        target = getattr(msg, field.name)
        if is_message and field.message_type.GetOptions().map_entry:
            key_f, value_f = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            for key in draw(st.lists(_scalar(key_f), max_size=2)):
                if value_f.type == pbd.FieldDescriptor.TYPE_MESSAGE:
                    _fill(draw, target[key], depth - 1)
                else:
                    target[key] = draw(_scalar(value_f))
        elif field.is_repeated:
            for _ in range(draw(st.integers(0, 3))):
                if is_message:
                    _fill(draw, target.add(), depth - 1)
                else:
                    target.append(draw(_scalar(field)))
        elif is_message:
            target.SetInParent()
            _fill(draw, target, depth - 1)
        else:
            setattr(msg, field.name, draw(_scalar(field)))


@st.composite
def requests(draw: st.DrawFn, cls: type[Message]) -> Message:
    msg = cls()
    _fill(draw, msg, depth=draw(st.integers(1, 6)))
    msg.name = draw(fs.weighted((2, st.just("echo")), (1, st.just(UNKNOWN)), (1, VALID_TEXT)))  # type: ignore[attr-defined]
    return msg


TOKENS = st.sampled_from(["ok"] * 6 + ["missing", "wrong"])


def token_metadata(which: str) -> tuple[tuple[str, str], ...]:
    return {"ok": (("dapr-api-token", API_TOKEN),), "missing": (), "wrong": (("dapr-api-token", "nope"),)}[which]


# -- the oracle ------------------------------------------------------------------------------------
def completed(port: int, method: str) -> dict[str, float]:
    """``dapr_grpc_io_server_completed_rpcs`` of one method by status, read from /metrics as Prometheus does."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
        text = resp.read().decode()
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("dapr_grpc_io_server_completed_rpcs{") and f'grpc_server_method="{SERVICE}{method}"' in line:
            status = re.search(r'grpc_server_status="([^"]*)"', line)
            if status:
                counts[status.group(1)] = counts.get(status.group(1), 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def call(channel: grpc.Channel, method: str, raw: bytes, token: str) -> tuple[grpc.StatusCode, str, bytes]:
    stub = channel.unary_unary(SERVICE + method, request_serializer=None, response_deserializer=None)
    try:
        answer = stub(raw, metadata=token_metadata(token), timeout=30)
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or "", b""
    return grpc.StatusCode.OK, "", answer


def check(fuzz_sidecar: FuzzSidecar, channel: grpc.Channel, health: HttpClient, method: str, raw: bytes,
          request: Message | None, token: str) -> None:
    """``request`` is ``raw`` parsed as the method's message, None when it does not parse."""
    port = fuzz_sidecar.metrics_port
    before = completed(port, method)
    code, details, answer = call(channel, method, raw, token)
    why = f"\n  request: {method} token={token} {raw[:400]!r}\n  parsed: {request!r}"[:1500] + \
          f"\n  answer:  {code.name} {details!r} {answer[:300]!r}"
    if token != "ok":
        assert (code, details) == (grpc.StatusCode.UNAUTHENTICATED, "Unauthorized"), "token not checked" + why
    elif request is None:
        assert code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.RESOURCE_EXHAUSTED), \
            "bytes that are not the message must fail to deserialize" + why
    else:
        assert code in DOCUMENTED, "an undocumented status" + why
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            assert len(raw) > MAX_BODY, "RESOURCE_EXHAUSTED for a small message" + why
        if request.name != "echo":  # type: ignore[attr-defined]
            assert code != grpc.StatusCode.OK, "OK for an unknown component" + why
        if code == grpc.StatusCode.OK:
            response = METHODS[method][1].FromString(answer)
            assert len(response.outputs) > 0, "OK with an empty answer" + why  # type: ignore[attr-defined]
        else:
            assert details and "Traceback" not in details, "an error without a message" + why
    if token == "ok" and request is not None:
        # what the client saw is what the sidecar's metrics count; grpc.aio sends an abort's status
        # before the servicer's code after it runs, so the count may land just after the answer
        for _ in range(100):
            after = completed(port, method)
            counted = {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}
            if counted:
                break
            time.sleep(0.02)
        assert counted == {code.name: 1.0}, f"the metrics counted {counted}" + why
    status, _, _ = health.request("GET", "/v1.0/healthz")
    assert status == 204, "the sidecar stopped answering /v1.0/healthz" + why


def parse(method: str, raw: bytes) -> Message | None:
    try:
        return METHODS[method][0].FromString(raw)
    except (DecodeError, ValueError, RuntimeError):
        return None


# -- the tests -------------------------------------------------------------------------------------
@examples("grpc_alpha1")
@given(request=requests(ai_pb2.ConversationRequest), token=TOKENS)
def test_alpha1_messages(fuzz_sidecar: FuzzSidecar, channel: grpc.Channel, health: HttpClient, request: Message,
                         token: str) -> None:
    check(fuzz_sidecar, channel, health, "ConverseAlpha1", request.SerializeToString(), request, token)


@examples("grpc_alpha2")
@given(request=requests(ai_pb2.ConversationRequestAlpha2), token=TOKENS)
def test_alpha2_messages(fuzz_sidecar: FuzzSidecar, channel: grpc.Channel, health: HttpClient, request: Message,
                         token: str) -> None:
    check(fuzz_sidecar, channel, health, "ConverseAlpha2", request.SerializeToString(), request, token)


VALID_A1 = ai_pb2.ConversationRequest(name="echo", inputs=[ai_pb2.ConversationInput(content="hi")]).SerializeToString()
VALID_A2 = ai_pb2.ConversationRequestAlpha2(name="echo", inputs=[ai_pb2.ConversationInputAlpha2(messages=[
    ai_pb2.ConversationMessage(of_user=ai_pb2.ConversationMessageOfUser(
        content=[ai_pb2.ConversationMessageContent(text="hi")]))])]).SerializeToString()


@st.composite
def raw_bytes(draw: st.DrawFn) -> tuple[str, bytes]:
    method = draw(st.sampled_from(sorted(METHODS)))
    valid = VALID_A1 if method == "ConverseAlpha1" else VALID_A2
    raw = draw(st.one_of(
        st.binary(max_size=80),
        st.builds(lambda i, b: valid[:i] + b + valid[i + 1:], st.integers(0, len(valid)), st.binary(max_size=3)),
        st.builds(lambda i: valid[:i], st.integers(0, len(valid))),
        st.sampled_from([b"\x0a\x02\xff\xfe", b"\x0a\x04echo\x12\x04\x0a\x02\xc3\x28", b"\xff" * 10]),
        st.integers(MAX_BODY - 16, MAX_BODY + 64).map(lambda n: b"\x0a\x04echo\x12" + _varint(n + 2) + b"\x0a"
                                                      + _varint(n) + b"a" * n),
    ))
    return method, raw


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


@examples("grpc_raw")
@given(case=raw_bytes())
def test_raw_bytes(fuzz_sidecar: FuzzSidecar, channel: grpc.Channel, health: HttpClient,
                   case: tuple[str, bytes]) -> None:
    method, raw = case
    check(fuzz_sidecar, channel, health, method, raw, parse(method, raw), "ok")
