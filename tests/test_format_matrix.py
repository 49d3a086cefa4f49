"""Issue 8's matrix: every local source format x every destination format x {gzip, zstd, none}.

Each result is read back by ocilayout (config bytes and diff_ids unchanged, every layer stored as asked), is
fsck-clean (the autouse oracle checks layouts and oci-archives), and is read by the real skopeo.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ocilayout.compression import MAGIC_LEN, detect
from ocilayout.copy import Conversion, CopyOptions, copy
from ocilayout.errors import UnsupportedFormat
from ocilayout.sample import build_sample_layout
from ocilayout.transports import open_destination, open_source
from ocilayout.transports.base import read_blob_bytes

KINDS = {
    "oci": lambda d: f"oci:{d}/layout:v1",
    "oci-archive": lambda d: f"oci-archive:{d}/image.tar:v1",
    "docker-archive": lambda d: f"docker-archive:{d}/image.tar:example.com/app:v1",
    "dir": lambda d: f"dir:{d}/image",
}
#: how skopeo names the same image (its docker-archive reader wants no tag when there is one image)
SKOPEO = {"oci": lambda r: r, "oci-archive": lambda r: r, "dir": lambda r: r,
          "docker-archive": lambda r: r.rsplit(":", 2)[0]}


def _layer_kinds(ref: str) -> list[str]:
    with open_source(ref) as src:
        m = src.get_manifest()
        out = []
        for layer in m.layers:
            with src.open_blob(layer) as f:
                out.append(detect(f.read(MAGIC_LEN)))
        return out


@pytest.mark.interop
@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
@pytest.mark.parametrize("dst", sorted(KINDS))
@pytest.mark.parametrize("src", sorted(KINDS))
def test_every_format_into_every_format(tmp_path: Path, src: str, dst: str, compression: str, skopeo) -> None:  # type: ignore[no-untyped-def]
    build_sample_layout(tmp_path / "sample")
    (tmp_path / "s").mkdir()
    (tmp_path / "d").mkdir()
    src_ref, dst_ref = KINDS[src](tmp_path / "s"), KINDS[dst](tmp_path / "d")
    copy(f"oci:{tmp_path}/sample:v1", src_ref)  # into docker-archive: decompressed on the way
    dst_caps = open_destination(dst_ref)
    caps = dst_caps.capabilities
    dst_caps.close()
    options = CopyOptions(convert=Conversion(compress=compression))
    # A docker-archive source is a Docker v2s2 image, and Docker cannot read zstd layers: refused with the
    # reason (--format oci converts the manifest too), never written broken.
    if compression not in caps.layer_compressions or (src == "docker-archive" and compression == "zstd"):
        with pytest.raises(UnsupportedFormat):
            copy(src_ref, dst_ref, options)
        return
    copy(src_ref, dst_ref, options)
    assert _layer_kinds(dst_ref) == [compression] * 2
    with open_source(src_ref) as a, open_source(dst_ref) as b:
        ma, mb = a.get_manifest(), b.get_manifest()
        assert read_blob_bytes(a, ma.config) == read_blob_bytes(b, mb.config)  # config bytes travel verbatim
        diff_ids = json.loads(read_blob_bytes(b, mb.config))["rootfs"]["diff_ids"]
        assert len(diff_ids) == len(mb.layers) == 2
    name = SKOPEO[dst](dst_ref)
    if dst in ("oci", "oci-archive") and mb.media_type.startswith("application/vnd.docker"):
        name = name.rsplit(":", 1)[0]  # skopeo 1.9.3 finds a Docker-typed image in a layout only as its only one
    info = json.loads(skopeo("inspect", name).stdout)
    assert len(info["Layers"]) == 2


@pytest.mark.parametrize("via", ["docker-archive", "dir", "oci-archive"])
def test_round_trips_keep_the_config_digest(tmp_path: Path, via: str) -> None:
    """oci -> X -> oci keeps the config digest (its bytes travel verbatim); where X cannot hold the manifest
    as it is (docker-archive: stores uncompressed layers and makes its own manifest) the layers come back
    as their diff_ids, and saying so is the docs' job (docs/docker-archive.md)."""
    build_sample_layout(tmp_path / "sample")
    (tmp_path / "x").mkdir()
    mid = KINDS[via](tmp_path / "x")
    copy(f"oci:{tmp_path}/sample:v1", mid)
    copy(mid, f"oci:{tmp_path}/back:v1")
    with open_source(f"oci:{tmp_path}/sample:v1") as a, open_source(f"oci:{tmp_path}/back:v1") as b:
        ma, mb = a.get_manifest(), b.get_manifest()
        assert ma.config.digest == mb.config.digest
        if via != "docker-archive":
            assert ma.raw == mb.raw  # nothing changed at all
        else:
            diff_ids = json.loads(read_blob_bytes(a, ma.config))["rootfs"]["diff_ids"]
            assert [str(d.digest) for d in mb.layers] == diff_ids
