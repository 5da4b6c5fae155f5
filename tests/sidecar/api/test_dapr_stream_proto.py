"""``api/proto/conversation_stream.proto`` (what a Dapr SDK would compile) and ``api/stream_pb``
(the descriptor the sidecar builds in code) describe the same messages, field for field."""

from __future__ import annotations

import re
from pathlib import Path

from google.protobuf import descriptor_pb2

from parley_sidecar.api import stream_pb

PROTO = Path(stream_pb.__file__).with_name("proto") / "conversation_stream.proto"
_SCALARS = {
    descriptor_pb2.FieldDescriptorProto.TYPE_STRING: "string",
    descriptor_pb2.FieldDescriptorProto.TYPE_BOOL: "bool",
    descriptor_pb2.FieldDescriptorProto.TYPE_INT32: "int32",
    descriptor_pb2.FieldDescriptorProto.TYPE_INT64: "int64",
}


def render(file: descriptor_pb2.FileDescriptorProto) -> list[str]:
    """The descriptor as proto3 source, one statement per line (the subset the file uses)."""
    lines = [f'syntax = "{file.syntax}";', f"package {file.package};", *(f'import "{d}";' for d in file.dependency)]
    prefix = f".{file.package}."
    for message in file.message_type:
        lines.append(f"message {message.name} {{")
        open_oneof: int | None = None
        for field in message.field:
            in_real_oneof = field.HasField("oneof_index") and not field.proto3_optional
            if open_oneof is not None and (not in_real_oneof or field.oneof_index != open_oneof):
                lines.append("}")
                open_oneof = None
            if in_real_oneof and open_oneof is None:
                open_oneof = field.oneof_index
                lines.append(f"oneof {message.oneof_decl[open_oneof].name} {{")
            kind = field.type_name.removeprefix(prefix) if field.type_name else _SCALARS[field.type]
            label = ("repeated " if field.label == field.LABEL_REPEATED
                     else "optional " if field.proto3_optional else "")
            lines.append(f"{label}{kind} {field.name} = {field.number};")
        if open_oneof is not None:
            lines.append("}")
        lines.append("}")
    return lines


def source_lines(text: str) -> list[str]:
    without_comments = re.sub(r"//[^\n]*", "", text)
    return [line.strip() for line in without_comments.splitlines() if line.strip()]


def test_the_proto_file_and_the_built_descriptor_agree() -> None:
    assert source_lines(PROTO.read_text()) == render(stream_pb.file_descriptor())


def test_the_messages_are_registered_where_dapr_sdks_look_for_them() -> None:
    assert stream_pb.ConversationStreamResponse.DESCRIPTOR.full_name == "dapr.proto.runtime.v1.ConversationStreamResponse"
    complete = stream_pb.ConversationStreamComplete.DESCRIPTOR
    assert complete.fields_by_name["outputs"].message_type.full_name == "dapr.proto.runtime.v1.ConversationResultAlpha2"
    # a round trip through the wire format, as a client compiled from the .proto sees it
    message = stream_pb.ConversationStreamResponse()
    message.chunk.parts.add().tool_call.arguments = '{"city"'
    message.chunk.chunk_index = 0
    again = stream_pb.ConversationStreamResponse.FromString(message.SerializeToString())
    assert again == message and again.chunk.HasField("chunk_index")
