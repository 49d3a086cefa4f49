"""Small deterministic sample images, built by code: the demo's input and the tests' factory.

Everything here is reproducible: fixed file contents, sorted tar entries, uid/gid 0, mtime 0 and gzip
headers without timestamps, so the same call always gives the same digests.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from . import mediatypes as mt
from .descriptor import Descriptor, Platform
from .digest import Digest
from .manifest import Manifest, canonical_json
from .store import LayoutStore

__all__ = ["build_sample_layout", "make_image", "make_index", "make_layer"]

CREATED = "2024-01-01T00:00:00Z"


def make_layer(files: Mapping[str, bytes]) -> bytes:
    """An uncompressed, deterministic layer tar holding ``files`` (path -> content)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs: set[str] = set()
        for name in sorted(files):
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    ti = tarfile.TarInfo(d + "/")
                    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 0
                    tar.addfile(ti)
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(files[name]), 0o644, 0
            tar.addfile(ti, io.BytesIO(files[name]))
    return buf.getvalue()


def _compress(data: bytes, compression: str) -> tuple[bytes, str]:
    if compression == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0), mt.OCI_LAYER_GZIP
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdCompressor(level=3).compress(data), mt.OCI_LAYER_ZSTD
    if compression == "none":
        return data, mt.OCI_LAYER
    raise ValueError(f"unknown compression {compression!r}")


def make_image(
    store: LayoutStore,
    layers: Sequence[Mapping[str, bytes]] = ({"etc/hello.txt": b"hello\n"},),
    *,
    platform: Platform = Platform("linux", "amd64"),
    compression: str = "gzip",
    tag: str | None = None,
    env: Sequence[str] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",),
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    docker: bool = False,
) -> Descriptor:
    """Store a complete single-platform image (layers, config, manifest); tag it when ``tag`` is given."""
    layer_descs = []
    diff_ids = []
    for files in layers:
        tar = make_layer(files)
        diff_ids.append(str(Digest.of(tar)))
        blob, media_type = _compress(tar, compression)
        if docker:
            media_type = mt.OCI_TO_DOCKER.get(media_type, mt.DOCKER_LAYER)
        layer_descs.append(store.put_bytes(blob, media_type))
    config: dict[str, object] = {
        "created": CREATED,
        "architecture": platform.architecture,
        "os": platform.os,
    }
    if platform.variant:
        config["variant"] = platform.variant
    config["config"] = {"Env": list(env), "Cmd": ["/bin/sh"], "Labels": dict(labels or {})}
    config["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    config["history"] = [{"created": CREATED, "created_by": f"ocilayout sample layer {i}"} for i in range(len(layers))]
    cfg = store.put_bytes(canonical_json(config), mt.DOCKER_CONFIG if docker else mt.OCI_CONFIG)
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST if docker else mt.OCI_MANIFEST,
        "config": cfg.to_dict(),
        "layers": [d.to_dict() for d in layer_descs],
    }
    if annotations:
        doc["annotations"] = dict(annotations)
    desc = store.put_manifest(Manifest.from_doc(doc))
    desc = desc.with_(platform=platform)
    if tag is not None:
        store.set_ref(tag, desc)
    return desc


def make_index(store: LayoutStore, manifests: Sequence[Descriptor], *, tag: str | None = None,
               docker: bool = False) -> Descriptor:
    """Store an index over ``manifests`` (their platforms kept); tag it when ``tag`` is given."""
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST_LIST if docker else mt.OCI_INDEX,
        "manifests": [d.with_(annotations={}).to_dict() for d in manifests],
    }
    desc = store.put_manifest(Manifest.from_doc(doc))
    if tag is not None:
        store.set_ref(tag, desc)
    return desc


def build_sample_layout(path: Path | str, *, compression: str = "gzip") -> LayoutStore:
    """The built-in sample: tag ``v1`` (one platform, two layers) and ``multi`` (linux/amd64 + linux/arm64),
    layers compressed as ``compression``."""
    store = LayoutStore.create(path)
    make_image(
        store,
        [{"etc/hello.txt": b"hello from ocilayout\n", "etc/os-release": b"ID=sample\n"},
         {"usr/share/doc/readme.txt": b"second layer\n" * 100}],
        tag="v1",
        labels={"org.opencontainers.image.title": "ocilayout sample"},
        compression=compression,
    )
    amd = make_image(store, [{"arch.txt": b"amd64\n"}], platform=Platform("linux", "amd64"), compression=compression)
    arm = make_image(store, [{"arch.txt": b"arm64\n"}], platform=Platform("linux", "arm64", "v8"),
                     compression=compression)
    make_index(store, [amd, arm], tag="multi")
    return store
