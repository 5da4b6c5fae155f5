#!/usr/bin/env python3
"""Pack a root filesystem directory as a one-layer docker-archive image (stdlib only).

    pack_rootfs.py ROOTFS OUT.tar IMAGE[:TAG] [--created RFC3339] [--created-by TEXT]

The result is what `docker save` writes (manifest.json + config + one uncompressed layer tar), so
`docker load` and `ctr -n k8s.io images import` both accept it. The layer is deterministic for a given
tree (sorted entries, numeric owners, no user/group names); `--created` defaults to the mtime of
ROOTFS/var/lib/dpkg/status (or of ROOTFS), so packing the same tree twice gives the same image ID.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import io
import json
import os
import platform
import sys
import tarfile
import tempfile

ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def write_layer(rootfs: str, fileobj) -> None:
    with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(rootfs):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, rootfs)
            names = sorted(filenames) + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
            if rel_dir != ".":
                _add(tar, dirpath, rel_dir)
            for name in sorted(names):
                path = os.path.join(dirpath, name)
                _add(tar, path, os.path.normpath(os.path.join(rel_dir, name)))


def _add(tar: tarfile.TarFile, path: str, arcname: str) -> None:
    info = tar.gettarinfo(path, arcname)  # handles hard links, symlinks, devices, fifos
    if info is None:  # sockets and the like cannot go into a tar
        print(f"pack_rootfs: skipping {arcname} (unsupported file type)", file=sys.stderr)
        return
    info.uname = info.gname = ""
    if info.isreg():
        with open(path, "rb") as f:
            tar.addfile(info, f)
    else:
        tar.addfile(info)


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, mtime
    tar.addfile(info, io.BytesIO(data))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("rootfs")
    ap.add_argument("out")
    ap.add_argument("image", help="repository[:tag] recorded in manifest.json")
    ap.add_argument("--created", help="RFC 3339 creation time (default: mtime of var/lib/dpkg/status)")
    ap.add_argument("--created-by", default="debootstrap", help="history entry text")
    args = ap.parse_args()

    rootfs = os.path.abspath(args.rootfs)
    if not os.path.isdir(rootfs):
        ap.error(f"{rootfs} is not a directory")
    image = args.image if ":" in args.image.rsplit("/", 1)[-1] else args.image + ":latest"
    if args.created:
        created = args.created
    else:
        stamp = os.path.join(rootfs, "var/lib/dpkg/status")
        mtime = os.stat(stamp if os.path.exists(stamp) else rootfs).st_mtime
        created = datetime.datetime.fromtimestamp(int(mtime), datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    epoch = int(datetime.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC).timestamp())

    out = os.path.abspath(args.out)
    workdir = tempfile.mkdtemp(prefix=".pack-", dir=os.path.dirname(out))
    try:
        layer_path = os.path.join(workdir, "layer.tar")
        with open(layer_path, "wb") as f:
            write_layer(rootfs, f)
        diff_id = sha256_file(layer_path)

        config = {
            "architecture": ARCH.get(platform.machine(), platform.machine()),
            "os": "linux",
            "created": created,
            "config": {"Env": [DEFAULT_PATH], "Cmd": ["bash"]},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
            "history": [{"created": created, "created_by": args.created_by}],
        }
        config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
        config_id = hashlib.sha256(config_bytes).hexdigest()
        repo, tag = image.rsplit(":", 1)
        manifest = [{"Config": f"{config_id}.json", "RepoTags": [image], "Layers": [f"{diff_id}/layer.tar"]}]

        tmp_out = os.path.join(workdir, "image.tar")
        with tarfile.open(tmp_out, "w", format=tarfile.PAX_FORMAT) as tar:
            d = tarfile.TarInfo(diff_id)
            d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o755, epoch
            tar.addfile(d)
            add_bytes(tar, f"{diff_id}/VERSION", b"1.0", epoch)
            info = tar.gettarinfo(layer_path, f"{diff_id}/layer.tar")
            info.uname = info.gname = ""
            info.uid = info.gid = 0
            info.mode, info.mtime = 0o644, epoch
            with open(layer_path, "rb") as f:
                tar.addfile(info, f)
            add_bytes(tar, f"{config_id}.json", config_bytes, epoch)
            add_bytes(tar, "manifest.json", json.dumps(manifest).encode(), epoch)
            add_bytes(tar, "repositories", json.dumps({repo: {tag: diff_id}}).encode(), epoch)
        os.replace(tmp_out, out)
    finally:
        for name in os.listdir(workdir):
            os.unlink(os.path.join(workdir, name))
        os.rmdir(workdir)
    print(f"sha256:{config_id}")  # the image ID docker will give it
    return 0


if __name__ == "__main__":
    sys.exit(main())
