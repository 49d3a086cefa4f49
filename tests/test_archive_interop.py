"""oci-archive interop with the real tools: what we write skopeo/umoci/tar read, and what skopeo writes we read."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
from test_archive_util import check_archive

from ocilayout.archive import commit_archive
from ocilayout.sample import build_sample_layout, make_image
from ocilayout.store import LayoutStore

pytestmark = pytest.mark.interop


def test_skopeo_reads_our_archive(tmp_path: Path, skopeo) -> None:
    sample = build_sample_layout(tmp_path / "sample")
    out = tmp_path / "out.tar"
    commit_archive(out, sample)
    check_archive(out).close()

    info = json.loads(skopeo("inspect", f"oci-archive:{out}:v1").stdout)
    assert info["Digest"] == str(sample.resolve("v1").digest)
    assert info["Labels"] == {"org.opencontainers.image.title": "ocilayout sample"}
    raw = skopeo("inspect", "--raw", f"oci-archive:{out}:multi").stdout
    assert json.loads(raw)["mediaType"] == "application/vnd.oci.image.index.v1+json"

    skopeo("copy", f"oci-archive:{out}:v1", f"oci:{tmp_path / 'copied'}:x")
    copied = LayoutStore.open(tmp_path / "copied")
    assert copied.resolve("x").digest == sample.resolve("v1").digest
    skopeo("copy", "--all", f"oci-archive:{out}:multi", f"oci:{tmp_path / 'copied'}:m")
    assert copied.resolve("m").digest == sample.resolve("multi").digest
    assert not list(tmp_path.glob(".ocilayout-tmp-*"))


def test_tar_and_umoci_read_our_archive(tmp_path: Path, umoci) -> None:
    sample = build_sample_layout(tmp_path / "sample")
    s2 = LayoutStore.create(tmp_path / "s2")
    make_image(s2, [{"bin/tool": b"#!/bin/sh\necho hi\n"}], tag="v2")
    out = tmp_path / "out.tar"
    commit_archive(out, sample)
    commit_archive(out, s2)  # append: both images must survive extraction
    check_archive(out).close()

    dest = tmp_path / "x"
    dest.mkdir()
    subprocess.run(["tar", "-C", str(dest), "-xf", str(out)], check=True)
    assert sorted(p.name for p in dest.iterdir()) == ["blobs", "index.json", "oci-layout"]
    stat = umoci("stat", "--image", f"{dest}:v1").stdout
    assert "ocilayout sample layer 1" in stat
    rootless = [] if os.geteuid() == 0 else ["--rootless"]
    umoci("unpack", *rootless, "--image", f"{dest}:v1", str(tmp_path / "bundle1"))
    assert (tmp_path / "bundle1" / "rootfs" / "etc" / "hello.txt").read_bytes() == b"hello from ocilayout\n"
    umoci("unpack", *rootless, "--image", f"{dest}:v2", str(tmp_path / "bundle2"))
    assert (tmp_path / "bundle2" / "rootfs" / "bin" / "tool").read_bytes() == b"#!/bin/sh\necho hi\n"


def test_we_read_skopeo_archive(tmp_path: Path, skopeo) -> None:
    sample = build_sample_layout(tmp_path / "sample")
    out = tmp_path / "skopeo.tar"
    skopeo("copy", f"oci:{sample.root}:v1", f"oci-archive:{out}:v1")
    with check_archive(out) as r:
        assert r.refs() == ["v1"]
        desc = r.resolve("v1")
        assert desc.digest == sample.resolve("v1").digest
        m = r.get_manifest(desc)
        assert [layer.digest for layer in m.layers] == [layer.digest for layer in
                                                        sample.get_manifest(sample.resolve("v1")).layers]
        assert r.resolve() == desc

    # skopeo's multi-platform copy, then appending our own image keeps skopeo's entry readable by skopeo.
    multi = tmp_path / "multi.tar"
    skopeo("copy", "--all", f"oci:{sample.root}:multi", f"oci-archive:{multi}:multi")
    s2 = LayoutStore.create(tmp_path / "s2")
    v2 = make_image(s2, [{"v2.txt": b"two\n"}], tag="v2")
    commit_archive(multi, s2)
    with check_archive(multi) as r:
        assert r.refs() == ["multi", "v2"]
        assert r.resolve("multi").digest == sample.resolve("multi").digest
    for tag, digest in (("multi", sample.resolve("multi").digest), ("v2", v2.digest)):
        raw = skopeo("inspect", "--raw", f"oci-archive:{multi}:{tag}").stdout.encode()
        assert hashlib.sha256(raw).hexdigest() == digest.hex
    skopeo("copy", f"oci-archive:{multi}:v2", f"oci:{tmp_path / 'back'}:v2")
    assert LayoutStore.open(tmp_path / "back").resolve("v2").digest == v2.digest


def test_gnu_tar_of_layout_directory(tmp_path: Path) -> None:
    """``tar -C layout -cf x.tar .`` (./-prefixed names, dir entries) reads as an oci-archive."""
    sample = build_sample_layout(tmp_path / "sample")
    out = tmp_path / "gnu.tar"
    subprocess.run(["tar", "-C", str(sample.root), "-cf", str(out), "."], check=True)
    with check_archive(out) as r:
        assert r.refs() == ["v1", "multi"]
    # and our rewrite of it (append nothing) drops the lock file and keeps every blob
    rewritten = tmp_path / "rewritten.tar"
    commit_archive(rewritten, LayoutStore.create(tmp_path / "empty"), base=out)
    with check_archive(rewritten) as r:
        assert r.refs() == ["v1", "multi"]
        assert dict(r.all_blobs()) == dict(sample.all_blobs())
