"""Dapr's gRPC messages the sidecar serves (conversation, metadata, shutdown), without the ``dapr`` package.

``ai_pb2``, ``metadata_pb2`` and ``dapr_pb2`` here stand for the generated modules of the same names:
the same files (``dapr_proto_files``, written by ``python -m tools.dapr_protos`` from the ``dapr``
package, ``dapr.proto`` cut to ``ShutdownRequest``), so the same package, message, field names and
numbers, wire and ``json_format`` forms. The ``dapr`` package would load every building block's
messages with them (~25 ms and ~3.9 MB at start, issue #18).

The files go into a pool of their own (``POOL``), not protobuf's default one: a process may also
hold Dapr's Python SDK (a test, an app embedding the sidecar), which adds the same full names to
the default pool from different bytes, and one pool cannot hold both. An ``Any`` is still resolved
in the default pool (``json_format``, ``wire``), where the well-known types are. Type checkers see
the ``dapr`` package's stubs of the same messages (a development dependency).
"""

from __future__ import annotations

import binascii
import types
from typing import TYPE_CHECKING

from google.protobuf import any_pb2, descriptor_pool, duration_pb2, message_factory, struct_pb2

from parley_sidecar import dapr_proto_files

__all__ = ["POOL", "ai_pb2", "dapr_pb2", "metadata_pb2"]

POOL = descriptor_pool.DescriptorPool()
for _well_known in (any_pb2, duration_pb2, struct_pb2):  # what ai.proto imports
    POOL.AddSerializedFile(_well_known.DESCRIPTOR.serialized_pb)


def _module(data: str) -> types.ModuleType:
    """A stand-in for a generated ``*_pb2`` module: ``DESCRIPTOR`` and a class per top-level message."""
    file = POOL.AddSerializedFile(binascii.a2b_base64(data))
    module = types.ModuleType(file.name.rsplit("/", 1)[-1].replace(".proto", "_pb2"))
    vars(module).update(DESCRIPTOR=file, **{name: message_factory.GetMessageClass(message)
                                            for name, message in file.message_types_by_name.items()})
    return module


if TYPE_CHECKING:
    from dapr.proto.runtime.v1 import ai_pb2, dapr_pb2, metadata_pb2
else:
    _by_file = {module.DESCRIPTOR.name: module for module in map(_module, dapr_proto_files.FILES)}
    ai_pb2 = _by_file["dapr/proto/runtime/v1/ai.proto"]
    metadata_pb2 = _by_file["dapr/proto/runtime/v1/metadata.proto"]
    dapr_pb2 = _by_file["dapr/proto/runtime/v1/dapr.proto"]
