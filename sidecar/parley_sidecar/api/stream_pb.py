"""The messages of ``ConverseStreamAlpha2``, built from their descriptor, with no code generator.

``api/proto/conversation_stream.proto`` documents them; this module describes the same file as a
``FileDescriptorProto``, adds it to ``dapr_proto.POOL`` (after ``ai_pb2``, whose alpha2 result
messages it reuses) and asks ``message_factory`` for the classes. They are ordinary protobuf
messages: ``SerializeToString``, ``json_format`` and ``wire.encode`` work on them as on ``ai_pb2``'s.

Built on first use (``stream_pb.ConversationStreamResponse`` …, through the module's
``__getattr__``), not at import: describing a file needs ``descriptor_pb2``, about 0.5 MB of RSS
that a sidecar nobody streams from should not carry. No I/O here.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from google.protobuf import message_factory

from parley_sidecar import dapr_proto
from parley_sidecar.dapr_proto import ai_pb2

if TYPE_CHECKING:
    from google.protobuf import descriptor_pb2

__all__ = [
    "FILE_NAME",
    "ConversationStreamChunk",
    "ConversationStreamComplete",
    "ConversationStreamPart",
    "ConversationStreamResponse",
    "ConversationStreamText",
    "ConversationStreamToolCall",
    "file_descriptor",
]

FILE_NAME = "parley/dapr/conversation_stream.proto"
_PACKAGE = "dapr.proto.runtime.v1"

_STRING, _BOOL, _INT32, _INT64, _MESSAGE = "string", "bool", "int32", "int64", "message"

# (name, number, type, message type or "", repeated, oneof or "", proto3 optional)
_Field = tuple[str, int, str, str, bool, str, bool]
_MESSAGES: dict[str, list[_Field]] = {
    "ConversationStreamResponse": [
        ("chunk", 1, _MESSAGE, "ConversationStreamChunk", False, "response_type", False),
        ("complete", 2, _MESSAGE, "ConversationStreamComplete", False, "response_type", False),
    ],
    "ConversationStreamChunk": [
        ("finish_reason", 1, _STRING, "", False, "", True),
        ("parts", 2, _MESSAGE, "ConversationStreamPart", True, "", False),
        ("chunk_index", 3, _INT32, "", False, "", True),
        ("is_delta", 4, _BOOL, "", False, "", True),
    ],
    "ConversationStreamPart": [
        ("text", 1, _MESSAGE, "ConversationStreamText", False, "content_type", False),
        ("tool_call", 2, _MESSAGE, "ConversationStreamToolCall", False, "content_type", False),
    ],
    "ConversationStreamText": [
        ("text", 1, _STRING, "", False, "", False),
    ],
    "ConversationStreamToolCall": [
        ("id", 1, _STRING, "", False, "", False),
        ("type", 2, _STRING, "", False, "", False),
        ("name", 3, _STRING, "", False, "", False),
        ("arguments", 4, _STRING, "", False, "", False),
        ("index", 5, _INT64, "", False, "", False),
    ],
    "ConversationStreamComplete": [
        ("context_id", 1, _STRING, "", False, "", True),
        ("usage", 2, _MESSAGE, "ConversationResultAlpha2CompletionUsage", False, "", False),
        ("outputs", 3, _MESSAGE, "ConversationResultAlpha2", True, "", False),
    ],
}


def _json_name(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)


def file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """The file as protoc would describe it (proto3 ``optional`` as a synthetic oneof, json names)."""
    from google.protobuf import descriptor_pb2  # here, not at import: see the module's docstring

    proto = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name=FILE_NAME, package=_PACKAGE, syntax="proto3", dependency=[ai_pb2.DESCRIPTOR.name])
    for message_name, fields in _MESSAGES.items():
        message = file.message_type.add(name=message_name)
        oneofs = [name for name in dict.fromkeys(f[5] for f in fields) if name]
        for oneof in oneofs:
            message.oneof_decl.add(name=oneof)
        synthetic = len(oneofs)
        for name, number, kind, type_name, repeated, oneof, optional in fields:
            field = message.field.add(
                name=name, number=number, type=getattr(proto, f"TYPE_{kind.upper()}"), json_name=_json_name(name),
                label=proto.LABEL_REPEATED if repeated else proto.LABEL_OPTIONAL)
            if type_name:
                field.type_name = f".{_PACKAGE}.{type_name}"
            if oneof:
                field.oneof_index = oneofs.index(oneof)
            elif optional:
                # protoc's encoding of proto3 `optional`: a one-member oneof named `_<field>`, after the real ones
                message.oneof_decl.add(name=f"_{name}")
                field.oneof_index = synthetic
                field.proto3_optional = True
                synthetic += 1
    return file


@functools.cache
def _classes() -> dict[str, Any]:
    pool = dapr_proto.POOL
    try:
        described = pool.FindFileByName(FILE_NAME)  # already added (the module was reloaded)
    except KeyError:
        pool.Add(file_descriptor())
        described = pool.FindFileByName(FILE_NAME)
    return {name: message_factory.GetMessageClass(described.message_types_by_name[name]) for name in _MESSAGES}


# Declared, not bound: the first access goes to __getattr__, which builds them. Typed Any: mypy
# cannot see the fields of a class made at run time (generated code would say as little without a .pyi).
ConversationStreamResponse: Any
ConversationStreamChunk: Any
ConversationStreamPart: Any
ConversationStreamText: Any
ConversationStreamToolCall: Any
ConversationStreamComplete: Any


def __getattr__(name: str) -> Any:
    """The message classes, built on first use."""
    if name in _MESSAGES:
        return _classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
