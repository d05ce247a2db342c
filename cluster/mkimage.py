#!/usr/bin/env python3
"""Write a container image as a docker-archive tarball (what `docker load`, `ctr images import`
and `kind load image-archive` read) from folders and files on this machine: no registry and no
image builder needed.

Each --layer is a folder (its contents become the layer's root) or a tarball used as is; layers
are stacked in order. Layers that are tarballs keep their digest, so images built on the same
base share it and containerd stores it once.

    mkimage.py --tag registry.k8s.io/etcd:<tag> --layer /tmp/etcd-root \\
        --entrypoint /usr/local/bin/etcd --out etcd.tar
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile

EPOCH = 0  # fixed mtimes make a layer's digest depend on its content only


def _reset(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime = EPOCH
    info.uname = info.gname = ""
    return info


def folder_to_layer(folder: str, dest: str) -> None:
    """Tar a folder reproducibly (sorted, fixed mtimes, numeric owners kept)."""
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(dirs) + sorted(files):
                path = os.path.join(root, name)
                arc = os.path.relpath(path, folder)
                tar.add(path, arcname=arc, recursive=False, filter=_reset)


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build(args: argparse.Namespace) -> None:
    work = tempfile.mkdtemp(prefix="mkimage-", dir=os.path.dirname(os.path.abspath(args.out)))
    try:
        layers: list[tuple[str, str]] = []  # (path, sha256)
        for i, layer in enumerate(args.layer):
            if os.path.isdir(layer):
                dest = os.path.join(work, f"layer{i}.tar")
                folder_to_layer(layer, dest)
            elif os.path.isfile(layer):
                dest = layer
            else:
                raise SystemExit(f"mkimage: layer {layer!r} is neither a folder nor a file")
            layers.append((dest, sha256_file(dest)))
        config = {
            "architecture": args.architecture,
            "os": "linux",
            "created": "1970-01-01T00:00:00Z",
            "config": {
                "Env": args.env
                or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                **({"Entrypoint": args.entrypoint} if args.entrypoint else {}),
                **({"Cmd": args.cmd} if args.cmd else {}),
                **({"User": args.user} if args.user else {}),
                **({"WorkingDir": args.workdir} if args.workdir else {}),
                **({"StopSignal": args.stop_signal} if args.stop_signal else {}),
            },
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{d}" for _, d in layers]},
            "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "mkimage.py"}]
            * len(layers),
        }
        config_bytes = json.dumps(config, sort_keys=True).encode()
        config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
        manifest = [
            {
                "Config": config_name,
                "RepoTags": args.tag,
                "Layers": [f"{d}/layer.tar" for _, d in layers],
            }
        ]
        tmp_out = args.out + ".tmp"
        with tarfile.open(tmp_out, "w", format=tarfile.PAX_FORMAT) as tar:

            def add_bytes(name: str, data: bytes) -> None:
                info = _reset(tarfile.TarInfo(name))
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))

            add_bytes(config_name, config_bytes)
            seen = set()
            for path, digest in layers:
                if digest in seen:
                    continue
                seen.add(digest)
                tar.add(path, arcname=f"{digest}/layer.tar", filter=_reset)
            add_bytes("manifest.json", json.dumps(manifest).encode())
        os.replace(tmp_out, args.out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tag", action="append", required=True, help="image name:tag (repeatable)")
    p.add_argument("--layer", action="append", required=True, help="folder or layer tarball")
    p.add_argument("--entrypoint", nargs="+", help="entrypoint argv")
    p.add_argument("--cmd", nargs="+", help="default arguments")
    p.add_argument(
        "--env", action="append", help="KEY=VALUE (repeatable; replaces the PATH default)"
    )
    p.add_argument("--architecture", default="amd64", help="GOARCH of the layers' binaries")
    p.add_argument("--user", help="user to run as")
    p.add_argument("--workdir", help="working directory")
    p.add_argument("--stop-signal", help="signal that stops the container")
    p.add_argument("--out", required=True, help="docker-archive tarball to write")
    build(p.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
