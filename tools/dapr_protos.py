"""Writes ``sidecar/parley_sidecar/dapr_proto_files.py`` and ``dapr_proto_any.py``: Dapr's descriptors.

    python -m tools.dapr_protos           # rewrite both files from the installed ``dapr`` package
    python -m tools.dapr_protos --check   # exit 1 if a checked-in file differs (tests compare too)

The sidecar answers Dapr's conversation, metadata and shutdown methods; the ``dapr`` package's
generated modules would give it those messages only with every other building block's (importing
``dapr.proto.runtime.v1`` loads all of them: 13-40 ms of imports and 2.5 MB of idle RSS,
docs/performance.md round 4). So this script takes,
from the installed ``dapr`` package, the files the sidecar needs, whole (``ai.proto``,
``metadata.proto``) or cut down to the messages it uses (``dapr.proto``: ``ShutdownRequest``,
without the service and its dependencies), and writes them as serialized ``FileDescriptorProto``
bytes. Same file names, package, messages, fields and numbers, so the wire and ``json_format``
forms are Dapr's; ``parley_sidecar.dapr_proto`` builds the classes from them.

``dapr_proto_any.py`` holds every file of the ``dapr`` package (and ``google/rpc/status.proto``, which
one of them imports) byte for byte as the package adds them to protobuf's default pool (a file
``dapr_proto_files`` holds with the same bytes is named there, not repeated). The sidecar
loads them only when a JSON ``Any`` names a type it does not know (``wire``): with the ``dapr``
package imported whole, as before, those types resolved, as they do in daprd.
"""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FileDescriptor

PACKAGE = Path(__file__).resolve().parents[1] / "sidecar" / "parley_sidecar"
TARGET = PACKAGE / "dapr_proto_files.py"
ANY_TARGET = PACKAGE / "dapr_proto_any.py"

# file name → the top-level messages kept (None: the whole file). Order: dependencies first.
KEEP: dict[str, list[str] | None] = {
    "dapr/proto/runtime/v1/ai.proto": None,
    "dapr/proto/runtime/v1/metadata.proto": None,
    "dapr/proto/runtime/v1/dapr.proto": ["ShutdownRequest"],
}
# The well-known types come from the installed protobuf at run time, not from this file.
_WELL_KNOWN = "google/protobuf/"


def _installed(name: str) -> FileDescriptor:
    from dapr.proto.runtime.v1 import ai_pb2, dapr_pb2, metadata_pb2  # the build needs the dapr package

    files: dict[str, FileDescriptor] = {m.DESCRIPTOR.name: m.DESCRIPTOR for m in (ai_pb2, dapr_pb2, metadata_pb2)}
    return files[name]


def _referenced(message: descriptor_pb2.DescriptorProto) -> set[str]:
    names = {field.type_name.lstrip(".") for field in message.field if field.type_name}
    for nested in message.nested_type:
        names |= _referenced(nested)
    return names


def file_protos() -> list[descriptor_pb2.FileDescriptorProto]:
    """The kept files, each cut to its kept messages; fails if a kept message needs a file not kept."""
    protos = []
    for name, messages in KEEP.items():
        installed = _installed(name)
        proto = descriptor_pb2.FileDescriptorProto()
        installed.CopyToProto(proto)
        if messages is not None:
            kept = [m for m in proto.message_type if m.name in messages]
            if sorted(m.name for m in kept) != sorted(messages):
                sys.exit(f"{name} lacks one of {messages}")
            del proto.message_type[:], proto.service[:], proto.enum_type[:]
            proto.message_type.extend(kept)
            needed = {n for m in kept for n in _referenced(m)}
            files = {installed.pool.FindMessageTypeByName(n).file.name for n in needed}
            missing = {f for f in files if f != name and f not in KEEP and not f.startswith(_WELL_KNOWN)}
            if missing:
                sys.exit(f"{name}: kept messages need {sorted(missing)}, not kept")
            del proto.dependency[:]
            proto.dependency.extend(sorted(f for f in files if f != name))
        for dependency in proto.dependency:
            if not dependency.startswith(_WELL_KNOWN) and dependency not in list(KEEP)[:list(KEEP).index(name)]:
                sys.exit(f"{name} depends on {dependency}, not kept before it")
        protos.append(proto)
    return protos


def _b64_lines(data: bytes) -> list[str]:
    text = base64.b64encode(data).decode()
    return [f'    "{text[i:i + 100]}"' for i in range(0, len(text), 100)]


def every_file() -> list[FileDescriptor]:
    """Every file the ``dapr`` package adds to the default pool, dependencies first."""
    import importlib
    import pkgutil

    import dapr.proto
    from google.protobuf import descriptor_pool

    for module in pkgutil.walk_packages(dapr.proto.__path__, "dapr.proto."):
        if module.name.endswith("_pb2"):
            importlib.import_module(module.name)
    pool = descriptor_pool.Default()
    ordered: list[FileDescriptor] = []

    def visit(file: FileDescriptor) -> None:
        if file in ordered or file.name.startswith(_WELL_KNOWN):
            return
        for dependency in file.dependencies:
            visit(dependency)
        ordered.append(file)

    names = sorted(m.DESCRIPTOR.name for m in list(sys.modules.values())
                   if m.__name__.startswith("dapr.proto.") and m.__name__.endswith("_pb2"))
    for name in names:
        visit(pool.FindFileByName(name))
    return ordered


def render_any() -> str:
    import dapr.version

    files = every_file()
    well_known = sorted({d.name for f in files for d in f.dependencies if d.name.startswith(_WELL_KNOWN)})
    lines = [
        '"""Generated by ``python -m tools.dapr_protos`` from the dapr package '
        f'{dapr.version.__version__}; do not edit.',
        "",
        "Every file of the dapr package (and the files it imports but the well-known types), as",
        "serialized ``FileDescriptorProto``s in base64, dependencies first; ``dapr_proto.load_for_any``",
        "adds them to protobuf's default pool when a JSON ``Any`` names a type not there.",
        '"""',
        "",
        "from parley_sidecar import dapr_proto_files",
        "",
        "# google.protobuf modules to import first (the well-known types these files import)",
        "WELL_KNOWN: tuple[str, ...] = (",
        *(f'    "google.protobuf.{n.removeprefix(_WELL_KNOWN).removesuffix(".proto")}_pb2",' for n in well_known),
        ")",
        "# the packages of the types these files define",
        f"PACKAGES: tuple[str, ...] = {tuple(sorted({f.package + '.' for f in files}))!r}",
        "FILES: tuple[str, ...] = (",
    ]
    # A file dapr_proto_files holds byte for byte (ai.proto, metadata.proto) is named there, not repeated.
    kept = {proto.name: (index, proto.SerializeToString(deterministic=True))
            for index, proto in enumerate(file_protos())}
    for file in files:
        lines.append(f"    # {file.name}")
        index, data = kept.get(file.name, (-1, b""))
        if data == file.serialized_pb:
            lines.append(f"    dapr_proto_files.FILES[{index}]")
        else:
            lines.extend(_b64_lines(file.serialized_pb))
        lines.append("    ,")
    lines.append(")")
    return "\n".join(lines) + "\n"


def render() -> str:
    import dapr.version

    lines = [
        '"""Generated by ``python -m tools.dapr_protos`` from the dapr package '
        f'{dapr.version.__version__}; do not edit.',
        "",
        "Serialized ``FileDescriptorProto``s in base64, dependencies first; ``dapr_proto`` loads them.",
        '"""',
        "",
        "FILES: tuple[str, ...] = (",
    ]
    for proto in file_protos():
        lines.append(f"    # {proto.name}")
        lines.extend(_b64_lines(proto.SerializeToString(deterministic=True)))
        lines.append("    ,")
    lines.append(")")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the checked-in file is not current")
    args = parser.parse_args()
    for target, text in ((TARGET, render()), (ANY_TARGET, render_any())):
        if not args.check:
            target.write_text(text)
        elif not target.exists() or target.read_text() != text:
            sys.exit(f"{target} is not what the installed dapr package gives: run python -m tools.dapr_protos")


if __name__ == "__main__":
    main()
