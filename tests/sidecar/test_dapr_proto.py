"""``dapr_proto``'s messages are the ``dapr`` package's, byte for byte, and the sidecar needs no ``dapr``."""

from __future__ import annotations

import subprocess
import sys

from dapr.proto.runtime.v1 import ai_pb2, dapr_pb2, metadata_pb2
from google.protobuf import descriptor_pb2, json_format
from tools import dapr_protos

from parley_sidecar import dapr_proto


def test_the_checked_in_descriptors_are_what_the_installed_dapr_package_gives() -> None:
    assert dapr_protos.TARGET.read_text() == dapr_protos.render(), "run: python -m tools.dapr_protos"
    assert dapr_protos.ANY_TARGET.read_text() == dapr_protos.render_any(), "run: python -m tools.dapr_protos"


def test_every_message_is_described_as_dapr_describes_it() -> None:
    for ours, theirs in ((dapr_proto.ai_pb2, ai_pb2), (dapr_proto.metadata_pb2, metadata_pb2)):
        mine, dapr = descriptor_pb2.FileDescriptorProto(), descriptor_pb2.FileDescriptorProto()
        ours.DESCRIPTOR.CopyToProto(mine)
        theirs.DESCRIPTOR.CopyToProto(dapr)
        assert mine == dapr
    shutdown, dapr_shutdown = descriptor_pb2.DescriptorProto(), descriptor_pb2.DescriptorProto()
    dapr_proto.dapr_pb2.ShutdownRequest.DESCRIPTOR.CopyToProto(shutdown)
    dapr_pb2.ShutdownRequest.DESCRIPTOR.CopyToProto(dapr_shutdown)
    assert shutdown == dapr_shutdown


def test_a_message_reads_and_writes_as_daprs_on_the_wire_and_in_json() -> None:
    request = ai_pb2.ConversationRequestAlpha2(name="llm", context_id="c", scrub_pii=True, temperature=0.5)
    request.inputs.add().messages.add().of_user.content.add(text="hi")
    request.tools.add().function.parameters.update({"type": "object", "n": 1})
    request.parameters["p"].Pack(json_format.ParseDict({"a": [1, "b"]}, request.tools[0].function.parameters))
    request.metadata["k"] = "v"
    ours = dapr_proto.ai_pb2.ConversationRequestAlpha2.FromString(request.SerializeToString())
    assert ours.SerializeToString(deterministic=True) == request.SerializeToString(deterministic=True)
    assert json_format.MessageToJson(ours) == json_format.MessageToJson(request)
    again = dapr_proto.ai_pb2.ConversationRequestAlpha2()
    json_format.Parse(json_format.MessageToJson(request), again)
    assert again == ours


def test_the_sidecar_starts_without_the_dapr_package() -> None:
    script = ("import sys; import parley_sidecar.cli, parley_sidecar.runtime, parley_sidecar.api.grpc, "
              "parley_sidecar.api.stream_pb as s; s.ConversationStreamResponse; "
              "print(sorted(m for m in sys.modules if m == 'dapr' or m.startswith('dapr.')))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


_ANY_SCRIPT = """
import json
from parley_sidecar import errors
from parley_sidecar.api import wire
from parley_sidecar.dapr_proto import ai_pb2
for type_name, value in (("dapr.proto.runtime.v1.GetStateRequest", {"key": "k"}),
                         ("google.protobuf.Timestamp", {"value": "2026-12-07T00:00:00Z"}),
                         ("no.Such", {"value": 1})):
    body = json.dumps({"inputs": [{"content": "hi"}],
                       "parameters": {"p": {"@type": "type.googleapis.com/" + type_name, **value}}}).encode()
    try:
        request = wire.decode(body, ai_pb2.ConversationRequest(), query_metadata={}, plain_inputs=True)
        print(wire.encode(request).decode())
    except errors.MalformedRequest:
        print("malformed")
"""


def test_an_any_naming_a_dapr_type_resolves_as_with_the_dapr_package_imported() -> None:
    """Before parley had its own descriptors, importing the dapr package put every Dapr type (and the
    well-known types its files import) in protobuf's default pool, so a JSON Any naming one parsed,
    as daprd's registry parses it. Without the dapr package in the process, it still does."""
    out = subprocess.run([sys.executable, "-c", _ANY_SCRIPT], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [
        '{"inputs":[{"content":"hi"}],"parameters":{"p":{"@type":"type.googleapis.com/dapr.proto.runtime.v1.GetStateRequest","key":"k"}}}',
        '{"inputs":[{"content":"hi"}],"parameters":{"p":{"@type":"type.googleapis.com/google.protobuf.Timestamp","value":"2026-12-07T00:00:00Z"}}}',
        "malformed",
    ]
