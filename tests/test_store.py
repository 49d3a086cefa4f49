"""LayoutStore: atomic verified blobs, locked index.json updates, ref names of every flavour."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from conftest import assert_fsck, peer_path

from ocilayout import mediatypes as mt
from ocilayout.descriptor import Descriptor
from ocilayout.digest import Digest
from ocilayout.errors import (
    AmbiguousImage,
    DigestMismatch,
    InvalidManifest,
    LayoutError,
    NotFound,
    SizeMismatch,
    UnsafePath,
)
from ocilayout.sample import make_image, make_index
from ocilayout.store import LayoutStore


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_put_blob_verifies_and_leaves_nothing_on_mismatch(tmp_path: Path) -> None:
    store = LayoutStore.create(tmp_path / "l")
    before = _listing(store.root)
    data = b"x" * 1000
    wrong = Descriptor(mt.OCI_LAYER, Digest.of(b"y"), len(data))
    with pytest.raises(DigestMismatch):
        store.put_blob(io.BytesIO(data), wrong)
    with pytest.raises(SizeMismatch):
        store.put_blob(io.BytesIO(data), Descriptor(mt.OCI_LAYER, Digest.of(data), 999))
    assert _listing(store.root) == before  # no temp file, no blob
    good = store.put_blob(io.BytesIO(data), Descriptor(mt.OCI_LAYER, Digest.of(data), len(data)))
    assert store.blob_path(good.digest).read_bytes() == data
    assert_fsck(store.root)


def test_retag_replaces_entry_and_untagged_is_kept(tmp_path: Path) -> None:
    store = LayoutStore.create(tmp_path / "l")
    a = make_image(store, [{"a": b"1"}], tag="t")
    b = make_image(store, [{"b": b"2"}], tag="t")
    entries = store.entries()
    assert [e.name for e in entries] == ["t"] and entries[0].descriptor.digest == b.digest
    store.set_ref(None, a)
    store.set_ref(None, a)  # idempotent
    assert len(store.entries()) == 2 and store.resolve("t").digest == b.digest
    assert_fsck(store.root)


def test_resolve_rules(tmp_path: Path) -> None:
    store = LayoutStore.create(tmp_path / "l")
    one = make_image(store, [{"a": b"1"}])
    store.set_ref("docker.io/library/foo:1.0", one)
    assert store.resolve().digest == one.digest  # only image
    assert store.resolve("docker.io/library/foo:1.0").digest == one.digest
    assert store.resolve("1.0").digest == one.digest  # tag part of a full name
    assert store.resolve(digest=one.digest).digest == one.digest
    two = make_image(store, [{"b": b"2"}], tag="other")
    with pytest.raises(AmbiguousImage, match="name one"):
        store.resolve()
    with pytest.raises(NotFound, match="no image tagged"):
        store.resolve("missing")
    assert store.resolve("other").digest == two.digest


def test_containerd_name_annotation(tmp_path: Path) -> None:
    store = LayoutStore.create(tmp_path / "l")
    desc = make_image(store, [{"a": b"1"}])
    store.set_ref(None, desc.with_(annotations={"io.containerd.image.name": "docker.io/x/y:2"}))
    assert store.refs() == ["docker.io/x/y:2"] and store.resolve("2").digest == desc.digest


def test_top_level_index_json_as_multiarch_index(tmp_path: Path) -> None:
    """Nix/ko style: index.json lists platform manifests directly, untagged."""
    store = LayoutStore.create(tmp_path / "l")
    from ocilayout.descriptor import Platform

    amd = make_image(store, [{"a": b"1"}], platform=Platform("linux", "amd64"))
    arm = make_image(store, [{"a": b"2"}], platform=Platform("linux", "arm64"))
    store.set_ref(None, amd)
    store.set_ref(None, arm)
    root = store.resolve()
    m = store.get_manifest(root)
    assert m.is_index and [d.digest for d in m.manifests] == [amd.digest, arm.digest]


def test_nested_index(tmp_path: Path) -> None:
    store = LayoutStore.create(tmp_path / "l")
    img = make_image(store, [{"a": b"1"}])
    inner = make_index(store, [img])
    outer = make_index(store, [inner], tag="nested")
    m = store.get_manifest(store.resolve("nested"))
    assert m.is_index and m.manifests[0].digest == inner.digest
    assert outer.digest == store.resolve("nested").digest
    assert_fsck(store.root)


def test_remove_ref_keeps_blobs(tmp_path: Path) -> None:
    store = LayoutStore.create(tmp_path / "l")
    desc = make_image(store, [{"a": b"1"}], tag="t")
    store.remove_ref("t")
    assert store.refs() == [] and store.has_blob(desc.digest)
    with pytest.raises(NotFound):
        store.remove_ref("t")


@pytest.mark.damages_layouts
def test_corrupt_blob_detected_on_read(tmp_path: Path) -> None:
    store = LayoutStore.create(tmp_path / "l")
    desc = make_image(store, [{"a": b"1"}], tag="t")
    path = store.blob_path(desc.digest)
    path.chmod(0o644)
    path.write_bytes(path.read_bytes()[:-3] + b"}}}")
    with pytest.raises(DigestMismatch):
        store.get_manifest(store.resolve("t"))


@pytest.mark.damages_layouts
def test_symlinked_blob_out_of_layout_refused(tmp_path: Path) -> None:
    store = LayoutStore.create(tmp_path / "l")
    desc = make_image(store, [{"a": b"1"}], tag="t")
    outside = tmp_path / "outside"
    shutil.copy(store.blob_path(desc.digest), outside)
    store.blob_path(desc.digest).unlink()
    store.blob_path(desc.digest).symlink_to(outside)
    with pytest.raises(UnsafePath):
        store.get_manifest(desc)


@pytest.mark.damages_layouts
@pytest.mark.parametrize("content", [b"", b"garbage", b'{"schemaVersion": 2, "manifests": 3}', b"[]"])
def test_garbage_index_json(tmp_path: Path, content: bytes) -> None:
    store = LayoutStore.create(tmp_path / "l")
    (store.root / "index.json").write_bytes(content)
    with pytest.raises(InvalidManifest) as info:
        store.entries()
    assert "\n" not in str(info.value)


@pytest.mark.damages_layouts
def test_not_a_layout(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(LayoutError, match="not an OCI layout"):
        LayoutStore.open(tmp_path / "d")
    with pytest.raises(NotFound):
        LayoutStore.open(tmp_path / "missing")
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "oci-layout").write_text('{"imageLayoutVersion": "2.0.0"}')
    with pytest.raises(LayoutError, match="imageLayoutVersion"):
        LayoutStore.open(tmp_path / "v")


def test_index_json_keeps_unknown_top_level_fields(tmp_path: Path) -> None:
    store = LayoutStore.create(tmp_path / "l")
    doc = json.loads((store.root / "index.json").read_bytes())
    doc["annotations"] = {"keep": "me"}
    (store.root / "index.json").write_text(json.dumps(doc))
    make_image(store, [{"a": b"1"}], tag="t")
    assert json.loads((store.root / "index.json").read_bytes())["annotations"] == {"keep": "me"}


@pytest.mark.parametrize("layout", [
    "containers-image/oci/layout/fixtures/delete_image_multiple_images",
    "go-containerregistry/pkg/v1/layout/testdata/test_index",
    "regclient/testdata/testrepo",
])
def test_peer_layouts_read(layout: str) -> None:
    from ocilayout.graph import reachable

    store = LayoutStore.open(peer_path(layout))
    assert store.entries()
    found = reachable(store)
    assert len(found) >= len(store.entries())
    for entry in store.entries():
        store.get_manifest(entry.descriptor)


def test_peer_shared_blobs_size_mismatch_rejected() -> None:
    store = LayoutStore.open(peer_path("containers-image/oci/layout/fixtures/delete_image_shared_blobs_dir"))
    with pytest.raises((SizeMismatch, NotFound)):
        store.get_manifest(store.entries()[0].descriptor)


def test_peer_ggcr_mediatype_disagrees_with_blob() -> None:
    """ggcr test_index ref 1 says OCI manifest, the blob is docker v2s2: the blob's own mediaType wins."""
    store = LayoutStore.open(peer_path("go-containerregistry/pkg/v1/layout/testdata/test_index"))
    first = store.entries()[0].descriptor
    m = store.get_manifest(first)
    assert m.media_type == json.loads(m.raw).get("mediaType", m.media_type)
