"""gRPC: raw generated stubs and the real Dapr Python SDK (in its own process), against both servers.

Raw stubs compare the status code and details of errors, or the whole response message. The
hand-written HTTP bodies that parse as protobuf are replayed over gRPC too, so every alpha1/alpha2
shape is checked on both transports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
from dapr.proto.runtime.v1 import ai_pb2, configuration_pb2, dapr_pb2, dapr_pb2_grpc, metadata_pb2, state_pb2
from google.protobuf import json_format
from google.protobuf.message import Message

from tests.conformance.compare import check_http
from tests.conformance.conftest import API_TOKEN
from tests.conformance.differences import Answer, Case, assert_same
from tests.conformance.servers import Pair, Server, clean_env
from tests.conformance.test_http import CASES, C

SDK_BATCH = Path(__file__).with_name("sdk_batch.py")
Metadata = Sequence[tuple[str, str]]


def call(server: Server, method: str, request: Message, metadata: Metadata | None = None) -> Answer:
    with grpc.insecure_channel(server.grpc_target, options=[("grpc.max_send_message_length", 64 << 20)]) as ch:
        stub = dapr_pb2_grpc.DaprStub(ch)  # type: ignore[no-untyped-call]
        try:
            response = getattr(stub, method)(request, metadata=metadata, timeout=30)
        except grpc.RpcError as exc:
            return Answer(exc.code().name, "grpc", {"details": exc.details()})
    return Answer("OK", "grpc", json_format.MessageToDict(response))


def check_grpc(pair: Pair, case_id: str, method: str, request: Message, *, metadata: Metadata | None = None,
               status: str | None = None) -> tuple[Answer, Answer]:
    case = Case(f"grpc/{case_id}", json_format.MessageToDict(request))
    d = call(pair.daprd, method, request, metadata)
    p = call(pair.parley, method, request, metadata)
    if status is not None:
        assert d.status == status, f"{case.id}: daprd answered {d} (the case expects {status})"
    assert_same(case, d, p)
    return d, p


# -- the HTTP cases, replayed over gRPC --------------------------------------------------------------------
def _replayable(case: C) -> tuple[str, Message] | None:
    if (case.method != "POST" or case.raw is not None or not isinstance(case.body, dict) or case.port != "http"
            or "?" in case.path):  # query parameters are HTTP's
        return None
    parts = case.path.strip("/").split("/")
    if len(parts) != 4 or parts[1] != "conversation" or parts[3] != "converse":
        return None
    version, name = parts[0], parts[2]
    message: Message = (ai_pb2.ConversationRequest() if version == "v1.0-alpha1"
                        else ai_pb2.ConversationRequestAlpha2())
    try:
        json_format.ParseDict(case.body, message, ignore_unknown_fields=True)
    except (json_format.ParseError, TypeError, ValueError, KeyError):
        return None
    message.name = name  # type: ignore[attr-defined]
    return ("ConverseAlpha1" if version == "v1.0-alpha1" else "ConverseAlpha2"), message


REPLAYED = [(c.id, r) for c in CASES if (r := _replayable(c)) is not None]


@pytest.mark.parametrize(("case_id", "replay"), REPLAYED, ids=[i for i, _ in REPLAYED])
def test_http_case_over_grpc(pair: Pair, case_id: str, replay: tuple[str, Message]) -> None:
    method, request = replay
    check_grpc(pair, case_id, method, request)


# -- gRPC-only cases -----------------------------------------------------------------------------------------
def a1(name: str = "echo", *texts: str, **kw: Any) -> ai_pb2.ConversationRequest:
    return ai_pb2.ConversationRequest(name=name, inputs=[ai_pb2.ConversationInput(content=t) for t in texts], **kw)


def a2(name: str = "echo", *messages: ai_pb2.ConversationMessage, **kw: Any) -> ai_pb2.ConversationRequestAlpha2:
    return ai_pb2.ConversationRequestAlpha2(name=name, inputs=[ai_pb2.ConversationInputAlpha2(messages=messages)],
                                            **kw)


def user(text: str) -> ai_pb2.ConversationMessage:
    return ai_pb2.ConversationMessage(of_user=ai_pb2.ConversationMessageOfUser(
        content=[ai_pb2.ConversationMessageContent(text=text)]))


GRPC_CASES: list[tuple[str, str, Message, str]] = [
    ("a1-basic", "ConverseAlpha1", a1("echo", "well hello there"), "OK"),
    ("a1-empty-name", "ConverseAlpha1", a1("", "hi"), "INVALID_ARGUMENT"),
    ("a1-not-found", "ConverseAlpha1", a1("nope", "hi"), "INVALID_ARGUMENT"),
    ("a1-no-inputs", "ConverseAlpha1", a1("echo"), "INVALID_ARGUMENT"),
    ("a1-not-found-no-inputs", "ConverseAlpha1", a1("nope"), "INVALID_ARGUMENT"),
    ("a1-name-with-slash", "ConverseAlpha1", a1("ec/ho", "hi"), "INVALID_ARGUMENT"),
    ("a1-unicode-name", "ConverseAlpha1", a1("échо", "hi"), "INVALID_ARGUMENT"),
    ("a1-temperature-nan", "ConverseAlpha1", a1("echo", "hi", temperature=float("nan")), "OK"),
    ("a1-large-3MiB", "ConverseAlpha1", a1("echo", "z" * (3 << 20)), "OK"),
    ("a1-too-large", "ConverseAlpha1", a1("echo", "z" * (5 << 20)), "RESOURCE_EXHAUSTED"),
    ("a2-basic", "ConverseAlpha2", a2("test-alpha2-echo", user("hi")), "OK"),
    ("a2-empty-message", "ConverseAlpha2", a2("echo", ai_pb2.ConversationMessage()), "INVALID_ARGUMENT"),
    ("a2-tool-call-without-function", "ConverseAlpha2", a2("echo", ai_pb2.ConversationMessage(
        of_assistant=ai_pb2.ConversationMessageOfAssistant(tool_calls=[ai_pb2.ConversationToolCalls(id="c")]))),
     "INVALID_ARGUMENT"),
    ("a2-tool-without-function", "ConverseAlpha2", a2("echo", user("hi"), tools=[ai_pb2.ConversationTools()],
                                                      tool_choice="x"), "INVALID_ARGUMENT"),
    ("a2-empty-input", "ConverseAlpha2", ai_pb2.ConversationRequestAlpha2(
        name="echo", inputs=[ai_pb2.ConversationInputAlpha2()]), "OK"),
    ("a2-no-inputs", "ConverseAlpha2", ai_pb2.ConversationRequestAlpha2(name="echo"), "INVALID_ARGUMENT"),
    ("a2-too-large", "ConverseAlpha2", a2("echo", user("z" * (5 << 20))), "RESOURCE_EXHAUSTED"),
    ("a2-non-ascii", "ConverseAlpha2", a2("echo", user("\u00e9\u20ac\U0001f389")), "OK"),
]


@pytest.mark.parametrize(("case_id", "method", "request_", "status"), GRPC_CASES, ids=[c[0] for c in GRPC_CASES])
def test_grpc_case(pair: Pair, case_id: str, method: str, request_: Message, status: str) -> None:
    check_grpc(pair, case_id, method, request_, status=status)


def test_grpc_other_building_blocks_are_unimplemented(pair: Pair) -> None:
    """daprd serves every building block; parley only conversation and metadata (intended difference)."""
    check_grpc(pair, "other-get-configuration", "GetConfiguration",
               configuration_pb2.GetConfigurationRequest(store_name="nope", keys=["k"]))
    check_grpc(pair, "other-get-state", "GetState", state_pb2.GetStateRequest(store_name="nope", key="k"))


# -- GetMetadata / SetMetadata (Shutdown and the extended-metadata bound: test_lifecycle.py) ---------------
def test_grpc_get_metadata(pair: Pair) -> None:
    d, p = check_grpc(pair, "metadata-get", "GetMetadata", metadata_pb2.GetMetadataRequest(), status="OK")
    assert sorted(c["name"] for c in d.body["components"]) == ["echo", "test-alpha2-echo"]
    assert d.body["extended"]["daprRuntimeVersion"] == "1.18.3"
    assert p.body["runtimeVersion"].startswith("1.18.3-parley.")
    assert sorted(d.body) == sorted({**p.body, "enabledFeatures": 1})  # parley's is empty: protojson omits it


def test_grpc_set_metadata_then_get_on_both_transports(pair: Pair) -> None:
    check_grpc(pair, "metadata-set", "SetMetadata", metadata_pb2.SetMetadataRequest(key="grpcKey", value="v é"),
               status="OK")
    check_grpc(pair, "metadata-set-empty-key", "SetMetadata", metadata_pb2.SetMetadataRequest(value="ignored"),
               status="OK")
    # daprd sets daprRuntimeVersion after the stored keys: a stored one cannot override it.
    check_grpc(pair, "metadata-set-runtime-version", "SetMetadata",
               metadata_pb2.SetMetadataRequest(key="daprRuntimeVersion", value="0.0.1"), status="OK")
    d, _ = check_grpc(pair, "metadata-get-after-set", "GetMetadata", metadata_pb2.GetMetadataRequest(), status="OK")
    assert d.body["extended"]["grpcKey"] == "v é" and "" not in d.body["extended"]
    assert d.body["extended"]["daprRuntimeVersion"] == "1.18.3"
    d, _ = check_http(pair, "metadata-after-grpc-set", "/v1.0/metadata", method="GET", status=200)
    assert d.body["extended"]["grpcKey"] == "v é"


def test_python_sdk_get_and_set_metadata(pair: Pair) -> None:
    got = compare_sdk(pair, [("metadata-set", {"api": "set_metadata", "key": "sdkKey", "value": "sdk value"}),
                             ("metadata-get", {"api": "metadata"}),
                             ("metadata-get-async", {"api": "metadata", "client": "async"})])
    assert got[1]["id"] == "conformance" and got[1]["extended"]["sdkKey"] == "sdk value"


TOKEN_CASES: list[tuple[str, Metadata | None, str]] = [
    ("token-missing", None, "UNAUTHENTICATED"),
    ("token-wrong", (("dapr-api-token", "nope"),), "UNAUTHENTICATED"),
    ("token-empty", (("dapr-api-token", ""),), "UNAUTHENTICATED"),
    ("token-right", (("dapr-api-token", API_TOKEN),), "OK"),
]


@pytest.mark.parametrize(("case_id", "metadata", "status"), TOKEN_CASES, ids=[c[0] for c in TOKEN_CASES])
@pytest.mark.parametrize("method", ["ConverseAlpha1", "ConverseAlpha2"])
def test_grpc_token(token_pair: Pair, case_id: str, metadata: Metadata | None, status: str, method: str) -> None:
    request: Message = a1("echo", "hi") if method == "ConverseAlpha1" else a2("echo", user("hi"))
    check_grpc(token_pair, f"{case_id}-{method}", method, request, metadata=metadata, status=status)


def test_grpc_token_checked_before_the_method_exists(token_pair: Pair) -> None:
    check_grpc(token_pair, "token-missing-other-method", "GetConfiguration",
               configuration_pb2.GetConfigurationRequest(store_name="nope", keys=["k"]), status="UNAUTHENTICATED")


RUNTIME_TOKEN_CASES: list[tuple[str, str, Message, Metadata | None, str]] = [
    ("token-missing-get-metadata", "GetMetadata", metadata_pb2.GetMetadataRequest(), None, "UNAUTHENTICATED"),
    ("token-wrong-get-metadata", "GetMetadata", metadata_pb2.GetMetadataRequest(), (("dapr-api-token", "x"),),
     "UNAUTHENTICATED"),
    ("token-missing-set-metadata", "SetMetadata", metadata_pb2.SetMetadataRequest(key="k", value="v"), None,
     "UNAUTHENTICATED"),
    # Shutdown without the token is refused, so the servers keep running for the cases after it.
    ("token-missing-shutdown", "Shutdown", dapr_pb2.ShutdownRequest(), None, "UNAUTHENTICATED"),
    ("token-wrong-shutdown", "Shutdown", dapr_pb2.ShutdownRequest(), (("dapr-api-token", "x"),), "UNAUTHENTICATED"),
    ("metadata-token-right", "GetMetadata", metadata_pb2.GetMetadataRequest(), (("dapr-api-token", API_TOKEN),),
     "OK"),
    ("metadata-set-token-right", "SetMetadata", metadata_pb2.SetMetadataRequest(key="k", value="v"),
     (("dapr-api-token", API_TOKEN),), "OK"),
]


@pytest.mark.parametrize(("case_id", "method", "request_", "metadata", "status"), RUNTIME_TOKEN_CASES,
                         ids=[c[0] for c in RUNTIME_TOKEN_CASES])
def test_grpc_token_for_runtime_methods(token_pair: Pair, case_id: str, method: str, request_: Message,
                                        metadata: Metadata | None, status: str) -> None:
    """The API token guards GetMetadata, SetMetadata and Shutdown too; none is exempt on daprd."""
    check_grpc(token_pair, case_id, method, request_, metadata=metadata, status=status)
    for server in token_pair.both():
        assert server.alive(), f"{server.name} stopped after {case_id}"


# -- the real Python SDK, one subprocess per batch and server -------------------------------------------------
def run_sdk(server: Server, calls: list[dict[str, Any]], **env: str) -> list[Any]:
    environ = clean_env({"DAPR_GRPC_PORT": str(server.ports["grpc"]), "DAPR_HTTP_PORT": str(server.http_port),
                         "DAPR_HEALTH_TIMEOUT": "10", "PYTHONPATH": os.pathsep.join(sys.path), **env})
    out = subprocess.run([sys.executable, str(SDK_BATCH)], input=json.dumps(calls), capture_output=True,
                         text=True, env=environ, timeout=120, check=False)
    assert out.returncode == 0, f"SDK batch against {server.name} failed:\n{out.stderr[-3000:]}"
    result: list[Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def compare_sdk(pair: Pair, calls: list[tuple[str, dict[str, Any]]], **env: str) -> list[Any]:
    batch = [c for _, c in calls]
    daprd, parley = run_sdk(pair.daprd, batch, **env), run_sdk(pair.parley, batch, **env)
    for (case_id, request), d, p in zip(calls, daprd, parley, strict=True):
        status = d.get("error", "OK") if isinstance(d, dict) else "OK"
        assert_same(Case(f"sdk/{case_id}", request),
                    Answer(status, "sdk", d), Answer(p.get("error", "OK") if isinstance(p, dict) else "OK", "sdk", p))
    return daprd


PII = "well hello there, my phone number is +2222222222 and my email is test@test.com from 10.8.9.1"
SDK_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("a1-basic", {"api": "alpha1", "name": "echo", "inputs": [{"content": "sync hello"}]}),
    ("a1-two-inputs", {"api": "alpha1", "name": "echo", "inputs": [{"content": "one"}, {"content": "two"}]}),
    ("a1-roles", {"api": "alpha1", "name": "echo", "inputs": [{"content": r, "role": r} for r in
                                                              ("user", "system", "assistant", "tool", "x")]}),
    ("a1-seed-example", {"api": "alpha1", "name": "echo", "inputs": [{
        "content": "Please write a witty haiku about the Dapr distributed programming framework at dapr.io",
        "role": "user", "scrub_pii": True}], "temperature": 0.7, "context_id": "chat-123",
        "metadata": {"model": "modelname", "key": "authKey", "cacheTTL": "10m"}}),
    ("a1-parameters", {"api": "alpha1", "name": "echo", "inputs": [{"content": "p"}],
                       "parameters": {"s": "x", "i": 100, "b": True, "f": 0.5}}),
    ("a1-scrub-inputs", {"api": "alpha1", "name": "echo", "inputs": [{"content": PII, "scrub_pii": True}]}),
    ("a1-scrub-outputs", {"api": "alpha1", "name": "echo", "inputs": [{"content": PII}], "scrub_pii": True}),
    ("a1-not-found", {"api": "alpha1", "name": "nope", "inputs": [{"content": "x"}]}),
    ("a1-no-inputs", {"api": "alpha1", "name": "echo", "inputs": []}),
    ("a2-conversation", {"api": "alpha2", "name": "echo", "inputs": [{"messages": [
        {"system": {"content": ["be brief"]}}, {"user": {"content": ["hi"], "name": "u"}},
        {"assistant": {"content": ["hello"]}}, {"developer": {"content": ["dev"]}}]}], "context_id": "ctx-2"}),
    ("a2-tools", {"api": "alpha2", "name": "echo", "inputs": [{"messages": [{"user": {"content": ["weather?"]}}]}],
                  "tools": [{"name": "get_weather", "description": "weather", "parameters": {
                      "type": "object", "properties": {"location": {"type": "string"}, "unit": {"type": "string"}}}}],
                  "tool_choice": "auto"}),
    ("a2-tool-choice-named", {"api": "alpha2", "name": "echo",
                              "inputs": [{"messages": [{"user": {"content": ["x"]}}]}],
                              "tools": [{"name": "a"}, {"name": "b"}], "tool_choice": "b"}),
    ("a2-tool-choice-missing", {"api": "alpha2", "name": "echo",
                                "inputs": [{"messages": [{"user": {"content": ["x"]}}]}],
                                "tools": [{"name": "a"}], "tool_choice": "zzz"}),
    ("a2-tool-choice-required-no-tools", {"api": "alpha2", "name": "echo",
                                          "inputs": [{"messages": [{"user": {"content": ["x"]}}]}],
                                          "tool_choice": "required"}),
    ("a2-tool-round-trip", {"api": "alpha2", "name": "echo", "inputs": [{"messages": [
        {"assistant": {"tool_calls": [{"id": "call_1", "name": "get_weather", "arguments": "{\"location\":\"x\"}"}]}},
        {"tool": {"tool_id": "call_1", "name": "get_weather", "content": ["sunny", "warm"]}}]}]}),
    ("a2-tool-call-without-function", {"api": "alpha2", "name": "echo", "inputs": [{"messages": [
        {"assistant": {"tool_calls": [{"id": "call_1"}]}}]}]}),
    ("a2-empty-message", {"api": "alpha2", "name": "echo", "inputs": [{"messages": [{"empty": {}}]}]}),
    ("a2-scrub", {"api": "alpha2", "name": "echo", "inputs": [{"messages": [{"user": {"content": [PII]}}],
                                                               "scrub_pii": True}], "scrub_pii": True}),
    ("a2-response-format", {"api": "alpha2", "name": "echo", "inputs": [{"messages": [{"user": {"content": ["j"]}}]}],
                            "response_format": {"type": "object", "properties": {"a": {"type": "string"}}},
                            "prompt_cache_retention": 86400, "temperature": 0.3, "metadata": {"k": "v"},
                            "parameters": {"max_tokens": 10}}),
    ("a2-not-found", {"api": "alpha2", "name": "nope", "inputs": [{"messages": [{"user": {"content": ["x"]}}]}]}),
    ("a1-async", {"api": "alpha1", "client": "async", "name": "echo", "inputs": [{"content": "async hello"}]}),
    ("a2-async", {"api": "alpha2", "client": "async", "name": "echo",
                  "inputs": [{"messages": [{"user": {"content": ["async world"]}}]}]}),
    ("a2-async-error", {"api": "alpha2", "client": "async", "name": "echo",
                        "inputs": [{"messages": [{"empty": {}}]}]}),
]


def test_python_sdk(pair: Pair) -> None:
    daprd = compare_sdk(pair, SDK_CALLS)
    by_id = dict(zip((i for i, _ in SDK_CALLS), daprd, strict=True))
    # The answers were compared above; these pin that the cases exercised what they claim.
    assert by_id["a1-basic"]["outputs"][0]["result"] == "sync hello"
    assert by_id["a2-tools"]["outputs"][0]["choices"][0]["finish_reason"] == "tool_calls"
    assert by_id["a1-not-found"] == {"error": "INVALID_ARGUMENT",
                                     "details": "failed finding conversation component nope"}


def test_python_sdk_with_api_token(token_pair: Pair) -> None:
    calls = [("token-a1", SDK_CALLS[0][1]), ("token-a2", SDK_CALLS[9][1])]
    right = compare_sdk(token_pair, calls, DAPR_API_TOKEN=API_TOKEN)
    assert right[0]["outputs"][0]["result"] == "sync hello"
    wrong = compare_sdk(token_pair, [("token-wrong-a1", SDK_CALLS[0][1])], DAPR_API_TOKEN="nope")
    assert wrong[0]["error"] == "UNAUTHENTICATED"
