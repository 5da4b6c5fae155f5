"""Dapr's gRPC messages the sidecar serves (conversation, metadata, shutdown), without the ``dapr`` package.

``ai_pb2``, ``metadata_pb2`` and ``dapr_pb2`` here stand for the generated modules of the same names:
the same files (``dapr_proto_files``, written by ``python -m tools.dapr_protos`` from the ``dapr``
package, ``dapr.proto`` cut to ``ShutdownRequest``), so the same package, message, field names and
numbers, wire and ``json_format`` forms. The ``dapr`` package would load every building block's
messages with them (docs/performance.md, round 4: 2.5 MB of idle RSS, 13-40 ms of imports).

The files go into a pool of their own (``POOL``), not protobuf's default one: a process may also
hold Dapr's Python SDK (a test, an app embedding the sidecar), which adds the same full names to
the default pool from different bytes, and one pool cannot hold both. Type checkers see the
``dapr`` package's stubs of the same messages (a development dependency).

A JSON ``Any`` is resolved in the default pool (``json_format``, ``wire``). With the ``dapr``
package imported whole, every Dapr type (and ``google.protobuf.Timestamp``, ``google.rpc.Status``)
was there, as in daprd's registry; :func:`load_for_any` puts the same files there, byte for byte
(``dapr_proto_any``), the first time an ``Any`` names a type the pool lacks.
"""

from __future__ import annotations

import binascii
import contextlib
import functools
import importlib
import types
from typing import TYPE_CHECKING

from google.protobuf import any_pb2, descriptor_pool, duration_pb2, message_factory, struct_pb2

from parley_sidecar import dapr_proto_files

__all__ = ["POOL", "ai_pb2", "dapr_pb2", "load_for_any", "metadata_pb2"]

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


def load_for_any(full_name: str) -> bool:
    """Adds Dapr's files to protobuf's default pool if ``full_name`` (a type an ``Any`` names, not
    found there) may be one of theirs or of the well-known types they import; True if it did."""
    from parley_sidecar import dapr_proto_any

    if not full_name.startswith((*dapr_proto_any.PACKAGES, "google.protobuf.")):
        return False
    _load_every_file()
    return True


@functools.cache
def _load_every_file() -> None:
    from parley_sidecar import dapr_proto_any

    for module in dapr_proto_any.WELL_KNOWN:
        importlib.import_module(module)
    pool = descriptor_pool.Default()
    for data in dapr_proto_any.FILES:
        # TypeError: the same file from other bytes is there (another dapr version imported first): it stands
        with contextlib.suppress(TypeError):
            pool.AddSerializedFile(binascii.a2b_base64(data))


if TYPE_CHECKING:
    from dapr.proto.runtime.v1 import ai_pb2, dapr_pb2, metadata_pb2
else:
    _by_file = {module.DESCRIPTOR.name: module for module in map(_module, dapr_proto_files.FILES)}
    ai_pb2 = _by_file["dapr/proto/runtime/v1/ai.proto"]
    metadata_pb2 = _by_file["dapr/proto/runtime/v1/metadata.proto"]
    dapr_pb2 = _by_file["dapr/proto/runtime/v1/dapr.proto"]
