"""Several writers on one layout, and writers killed mid-copy."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import assert_fsck

from ocilayout import mediatypes as mt
from ocilayout.digest import CHUNK
from ocilayout.manifest import Manifest, canonical_json
from ocilayout.sample import make_image
from ocilayout.store import LayoutStore

OCILAYOUT = [sys.executable, "-m", "ocilayout"]


def test_eight_concurrent_copies_keep_every_ref(tmp_path: Path) -> None:
    src = LayoutStore.create(tmp_path / "src")
    for i in range(8):
        make_image(src, [{f"f{i}": os.urandom(256 * 1024)}], tag=f"t{i}", compression="none")
    dst = tmp_path / "dst"
    procs = [subprocess.Popen([*OCILAYOUT, "copy", "-q", f"oci:{src.root}:t{i}", f"oci:{dst}:t{i}"],
                              stderr=subprocess.PIPE) for i in range(8)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    store = LayoutStore.open(dst)
    assert sorted(store.refs()) == [f"t{i}" for i in range(8)]
    for i in range(8):
        assert store.resolve(f"t{i}").digest == src.resolve(f"t{i}").digest
    assert_fsck(dst)


def test_concurrent_retags_of_one_name_leave_one_entry(tmp_path: Path) -> None:
    src = LayoutStore.create(tmp_path / "src")
    for i in range(6):
        make_image(src, [{f"f{i}": b"x" * i}], tag=f"t{i}")
    procs = [subprocess.Popen([*OCILAYOUT, "copy", "-q", f"oci:{src.root}:t{i}", f"oci:{tmp_path}/dst:same"])
             for i in range(6)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    entries = LayoutStore.open(tmp_path / "dst").entries()
    assert [e.name for e in entries] == ["same"]
    assert_fsck(tmp_path / "dst")


def _big_image(tmp_path: Path, size: int) -> Path:
    """A layout with one uncompressed layer of ``size`` bytes (streamed, never held in memory)."""
    store = LayoutStore.create(tmp_path / "big")

    class Gen(io.RawIOBase):
        def __init__(self) -> None:
            self.left = size
            self.block = os.urandom(CHUNK)

        def readable(self) -> bool:
            return True

        def readinto(self, b):  # type: ignore[no-untyped-def]
            n = min(len(b), self.left, len(self.block))
            b[:n] = self.block[:n]
            self.left -= n
            return n

    layer = store.put_blob(io.BufferedReader(Gen()))
    layer = layer.with_(media_type=mt.OCI_LAYER)
    cfg = store.put_bytes(canonical_json({"architecture": "amd64", "os": "linux",
                                          "rootfs": {"type": "layers", "diff_ids": [str(layer.digest)]}}),
                          mt.OCI_CONFIG)
    m = Manifest.from_doc({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": cfg.to_dict(),
                           "layers": [layer.to_dict()]})
    store.set_ref("big", store.put_manifest(m))
    return store.root


def _staged_bytes(root: Path) -> int:
    total = 0
    for d in root.glob(".ocilayout-tmp-*"):
        for f in (d.iterdir() if d.is_dir() else [d]):
            with contextlib.suppress(FileNotFoundError):
                total += f.stat().st_size
    return total


@pytest.mark.parametrize("transport", ["oci", "oci-archive"])
def test_sigkill_mid_copy_leaves_destination_intact(tmp_path: Path, sample: Path, transport: str) -> None:
    big = _big_image(tmp_path, 400 * 1024 * 1024)
    dst = tmp_path / ("dst" if transport == "oci" else "dst.tar")
    subprocess.run([*OCILAYOUT, "copy", "-q", f"oci:{sample}:v1", f"{transport}:{dst}:keep"], check=True)
    before = dst.read_bytes() if transport == "oci-archive" else (dst / "index.json").read_bytes()
    proc = subprocess.Popen([*OCILAYOUT, "copy", "-q", f"oci:{big}:big", f"{transport}:{dst}:big"])
    staging_root = dst if transport == "oci" else dst.parent
    deadline = time.monotonic() + 60
    while _staged_bytes(staging_root) < 20 * 1024 * 1024:
        assert proc.poll() is None, "copy finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if transport == "oci":
        assert (dst / "index.json").read_bytes() == before
        assert_fsck(dst)
        from ocilayout.gc import gc

        for left in dst.glob(".ocilayout-tmp-*"):  # gc spares temp files younger than a minute
            os.utime(left, (time.time() - 3600, time.time() - 3600))
        gc(LayoutStore.open(dst))
        assert not list(dst.glob(".ocilayout-tmp-*")), "gc leaves a dead writer's staging area"
        assert_fsck(dst)
    else:
        assert dst.read_bytes() == before
    # and the copy can simply be run again
    subprocess.run([*OCILAYOUT, "copy", "-q", f"oci:{big}:big", f"{transport}:{dst}:big"], check=True)
    if transport == "oci":
        assert sorted(LayoutStore.open(dst).refs()) == ["big", "keep"]
        assert_fsck(dst)
    else:
        from ocilayout.archive import ArchiveReader

        with ArchiveReader.open(dst) as reader:
            assert sorted(reader.refs()) == ["big", "keep"]
        # the next writer removed what the killed one left beside the archive
        assert not list(dst.parent.glob(".ocilayout-*")), list(dst.parent.glob(".ocilayout-*"))


