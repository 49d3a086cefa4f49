"""copy: platform selection, digests preserved, verification, nothing left behind on failure."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import assert_fsck, snapshot

from ocilayout.copy import CopyOptions, Selection, copy, host_platform
from ocilayout.descriptor import Platform
from ocilayout.errors import DigestMismatch, LayoutError, NotFound, RegistryError, SizeMismatch
from ocilayout.sample import make_image, make_index
from ocilayout.store import LayoutStore


def test_copy_single_image_keeps_digests(sample: Path, tmp_path: Path) -> None:
    src = LayoutStore.open(sample)
    res = copy(f"oci:{sample}:v1", f"oci:{tmp_path}/d:copied")
    assert res.descriptor.digest == src.resolve("v1").digest
    dst = LayoutStore.open(tmp_path / "d")
    assert dst.refs() == ["copied"]
    for digest, _size in dst.all_blobs():
        assert src.blob_path(digest).read_bytes() == dst.blob_path(digest).read_bytes()
    assert_fsck(tmp_path / "d")


def test_copy_all_keeps_index_digest(sample: Path, tmp_path: Path) -> None:
    src = LayoutStore.open(sample)
    res = copy(f"oci:{sample}:multi", f"oci:{tmp_path}/d:m", CopyOptions(select=Selection(all=True)))
    assert res.descriptor.digest == src.resolve("multi").digest
    m = LayoutStore.open(tmp_path / "d").get_manifest(res.descriptor)
    assert len(m.manifests) == 2
    assert_fsck(tmp_path / "d")


def test_copy_default_picks_host_platform(sample: Path, tmp_path: Path) -> None:
    res = copy(f"oci:{sample}:multi", f"oci:{tmp_path}/d:m")
    m = LayoutStore.open(tmp_path / "d").get_manifest(res.descriptor)
    assert not m.is_index and res.descriptor.platform is not None
    assert res.descriptor.platform.matches(host_platform())
    assert_fsck(tmp_path / "d")


def test_copy_platform_subset(tmp_path: Path) -> None:
    store = LayoutStore.create(tmp_path / "s")
    plats = [Platform("linux", "amd64"), Platform("linux", "arm64", "v8"), Platform("linux", "arm", "v7")]
    imgs = [make_image(store, [{"p": str(p).encode()}], platform=p) for p in plats]
    make_index(store, imgs, tag="all")
    one = copy(f"oci:{tmp_path}/s:all", f"oci:{tmp_path}/d:one", CopyOptions(select=Selection(platforms=(plats[2],))))
    assert one.descriptor.digest == imgs[2].digest
    two = copy(f"oci:{tmp_path}/s:all", f"oci:{tmp_path}/d:two",
               CopyOptions(select=Selection(platforms=(Platform.parse("linux/arm64"), Platform.parse("linux/arm/v7")))))
    sub = LayoutStore.open(tmp_path / "d").get_manifest(two.descriptor)
    assert [d.digest for d in sub.manifests] == [imgs[1].digest, imgs[2].digest]
    with pytest.raises(NotFound, match="s390x"):
        copy(f"oci:{tmp_path}/s:all", f"oci:{tmp_path}/d:x",
             CopyOptions(select=Selection(platforms=(Platform.parse("linux/s390x"),))))
    assert_fsck(tmp_path / "d")


def test_copy_skips_blobs_already_present(sample: Path, tmp_path: Path) -> None:
    first = copy(f"oci:{sample}:v1", f"oci:{tmp_path}/d:a")
    again = copy(f"oci:{sample}:v1", f"oci:{tmp_path}/d:b")
    assert first.blobs_copied == 3 and again.blobs_copied == 0 and again.blobs_skipped == 3
    assert LayoutStore.open(tmp_path / "d").refs() == ["a", "b"]


@pytest.mark.damages_layouts
@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupt_source_blob_fails_and_destination_unchanged(sample: Path, tmp_path: Path, damage: str) -> None:
    src = LayoutStore.open(sample)
    layer = src.get_manifest(src.resolve("v1")).layers[-1]
    path = src.blob_path(layer.digest)
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        del data[-5:]
    path.write_bytes(bytes(data))
    copy(f"oci:{sample}:multi", f"oci:{tmp_path}/d:keep", CopyOptions(select=Selection(all=True)))
    before = snapshot(tmp_path / "d")
    with pytest.raises((DigestMismatch, SizeMismatch)):
        copy(f"oci:{sample}:v1", f"oci:{tmp_path}/d:bad")
    assert snapshot(tmp_path / "d") == before
    assert_fsck(tmp_path / "d")


@pytest.mark.damages_layouts
def test_failed_copy_into_a_new_path_leaves_nothing(sample: Path, tmp_path: Path) -> None:
    """A copy that fails after the layout was created (a corrupt source blob) removes the layout it made,
    and the directory it made: the destination is left as it was, absent. An existing empty directory stays."""
    src = LayoutStore.open(sample)
    layer = src.get_manifest(src.resolve("v1")).layers[-1]
    path = src.blob_path(layer.digest)
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(SizeMismatch):
        copy(f"oci:{sample}:v1", f"oci:{tmp_path}/new/d:bad")
    assert not (tmp_path / "new" / "d").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(SizeMismatch):
        copy(f"oci:{sample}:v1", f"oci:{tmp_path}/empty:bad")
    assert (tmp_path / "empty").is_dir() and list((tmp_path / "empty").iterdir()) == []


def test_missing_tag_and_unsupported_transport(sample: Path, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="nope"):
        copy(f"oci:{sample}:nope", f"oci:{tmp_path}/d:x")
    assert not (tmp_path / "d" / "index.json").exists() or json.loads(
        (tmp_path / "d" / "index.json").read_bytes())["manifests"] == []
    with pytest.raises(RegistryError):  # docker:// is a transport now; nothing listens on port 1
        copy(f"oci:{sample}:v1", "docker://localhost:1/x:y")


def test_untagged_destination(sample: Path, tmp_path: Path) -> None:
    res = copy(f"oci:{sample}:v1", f"oci:{tmp_path}/d")
    store = LayoutStore.open(tmp_path / "d")
    assert store.refs() == [] and store.resolve().digest == res.descriptor.digest


def test_oci_archive_round_trip(sample: Path, tmp_path: Path) -> None:
    from ocilayout.archive import ArchiveReader

    archive = tmp_path / "img.tar"
    copy(f"oci:{sample}:v1", f"oci-archive:{archive}:v1")
    copy(f"oci:{sample}:multi", f"oci-archive:{archive}:multi", CopyOptions(select=Selection(all=True)))
    with ArchiveReader.open(archive) as reader:
        assert sorted(reader.refs()) == ["multi", "v1"]  # appending kept the first image
    res = copy(f"oci-archive:{archive}:multi", f"oci:{tmp_path}/back:m", CopyOptions(select=Selection(all=True)))
    assert res.descriptor.digest == LayoutStore.open(sample).resolve("multi").digest
    assert_fsck(tmp_path / "back")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ocilayout-tmp")]


def test_oci_archive_output_is_deterministic(sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    copy(f"oci:{sample}:v1", f"oci-archive:{tmp_path}/a.tar:v1")
    copy(f"oci:{sample}:v1", f"oci-archive:{tmp_path}/b.tar:v1")
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


def test_commit_refuses_when_gc_removed_a_reused_blob(sample: Path, tmp_path: Path) -> None:
    """A copy that skipped a blob the layout had must not tag if a concurrent gc removed it meanwhile."""
    from ocilayout.errors import LayoutError
    from ocilayout.reference import parse_reference
    from ocilayout.transports.oci import LayoutDestination

    copy(f"oci:{sample}:v1", f"oci:{tmp_path}/d:old")
    store = LayoutStore.open(tmp_path / "d")
    root = store.resolve("old")
    store.remove_ref("old")  # now every blob is unreferenced: fair game for gc
    index_before = (tmp_path / "d" / "index.json").read_bytes()
    dest = LayoutDestination(parse_reference(f"oci:{tmp_path}/d:new"))
    try:
        assert dest.has_blob(root)  # reused, not copied
        store.remove_blob(root.digest)  # what gc would do between the copy's check and its commit
        dest.tag(root, "new")
        with pytest.raises(LayoutError, match="concurrent gc"):
            dest.commit()
    finally:
        dest.close()
    assert (tmp_path / "d" / "index.json").read_bytes() == index_before


@pytest.mark.damages_layouts
@pytest.mark.parametrize("source", ["oci", "oci-archive"])
@pytest.mark.parametrize("damage", [None, "flip", "truncate"])
def test_large_blobs_kernel_copy_verified(tmp_path: Path, source: str, damage: str | None) -> None:
    """Blobs over 4 MiB from a file or an archive member go through copy_file_range; still verified."""
    store = LayoutStore.create(tmp_path / "s")
    desc = make_image(store, [{"big.bin": os.urandom(6 * 1024 * 1024)}], compression="none", tag="big")
    src = f"oci:{store.root}:big"
    if source == "oci-archive":
        copy(src, f"oci-archive:{tmp_path}/s.tar:big")
        src = f"oci-archive:{tmp_path}/s.tar:big"
    layer = store.get_manifest(desc).layers[0]
    if damage is not None:
        target = store.blob_path(layer.digest) if source == "oci" else tmp_path / "s.tar"
        data = bytearray(target.read_bytes())
        if damage == "flip":
            offset = len(data) // 2 if source == "oci" else data.index(b"big.bin") + 4096
            data[offset] ^= 0x01
        else:
            del data[-4096 if source == "oci" else len(data) // 2:]
        target.write_bytes(bytes(data))
        with pytest.raises((DigestMismatch, SizeMismatch, LayoutError, NotFound)):
            copy(src, f"oci:{tmp_path}/d:big")
        assert not (tmp_path / "d").exists() or LayoutStore.open(tmp_path / "d").refs() == []
        return
    copy(src, f"oci:{tmp_path}/d:big")
    dst = LayoutStore.open(tmp_path / "d")
    assert dst.blob_path(layer.digest).read_bytes() == store.blob_path(layer.digest).read_bytes()
    assert_fsck(tmp_path / "d")


def test_recopy_into_archive_that_has_everything(sample: Path, tmp_path: Path) -> None:
    """A second copy of the same image into an archive stages nothing and must still (re)write the tag."""
    from ocilayout.archive import ArchiveReader

    copy(f"oci:{sample}:v1", f"oci-archive:{tmp_path}/a.tar:v1")
    again = copy(f"oci:{sample}:v1", f"oci-archive:{tmp_path}/a.tar:also")
    assert again.blobs_copied == 0
    with ArchiveReader.open(tmp_path / "a.tar") as reader:
        assert reader.refs() == ["v1", "also"]
        assert reader.resolve("also").digest == reader.resolve("v1").digest
