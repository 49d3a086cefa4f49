"""gc: exactly the unreachable blobs go; refusals; temp files; the layout stays valid for fsck and skopeo."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import peer_path

from ocilayout.digest import Digest
from ocilayout.errors import LayoutError
from ocilayout.gc import DEFAULT_GRACE, gc, reachable_digests
from ocilayout.graph import reachable
from ocilayout.sample import build_sample_layout, make_image
from ocilayout.store import LayoutStore
from ocilayout.validate import fsck

CIMG = "containers-image/oci/layout/fixtures"
GGCR = "go-containerregistry/pkg/v1/layout/testdata"


def _age(store: LayoutStore, seconds: float = 2 * DEFAULT_GRACE) -> None:
    """Make every blob look old enough to collect."""
    t = time.time() - seconds
    for d, _ in store.all_blobs():
        os.utime(store.blob_path(d), (t, t))


def _copy_tree(src: Path, dst: Path) -> LayoutStore:
    shutil.copytree(src, dst)
    for p in [dst, *dst.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return LayoutStore(dst)


def _blobs(store: LayoutStore) -> set[Digest]:
    return {d for d, _ in store.all_blobs()}


@pytest.fixture
def sample(tmp_path: Path) -> LayoutStore:
    store = build_sample_layout(tmp_path / "layout")
    # Unreachable content: an untagged image and a stray blob.
    make_image(store, [{"orphan.txt": b"nobody references me\n"}])
    store.put_bytes(b"stray bytes")
    _age(store)
    return store


def test_removes_exactly_the_unreachable_blobs(sample: LayoutStore) -> None:
    before = _blobs(sample)
    live = set(reachable(sample))
    assert live < before
    result = gc(sample)
    assert {d for d, _ in result.removed} == before - live
    assert _blobs(sample) == live
    assert result.bytes_freed == sum(s for _, s in result.removed) > 0
    assert fsck(sample).ok
    assert gc(sample).removed == []  # idempotent


def test_dry_run_deletes_nothing(sample: LayoutStore) -> None:
    before = _blobs(sample)
    result = gc(sample, dry_run=True)
    assert result.dry_run and result.removed
    assert _blobs(sample) == before
    assert {d for d, _ in gc(sample).removed} == {d for d, _ in result.removed}


def test_shared_blobs_kept_when_one_tag_goes(tmp_path: Path) -> None:
    store = LayoutStore.create(tmp_path / "l")
    base = {"base.txt": b"shared base layer\n"}
    a = make_image(store, [base, {"a": b"a"}], tag="a")
    make_image(store, [base, {"b": b"b"}], tag="b")
    shared = store.get_manifest(a).layers[0].digest
    _age(store)
    store.remove_ref("a")
    removed = {d for d, _ in gc(store).removed}
    assert shared not in removed and store.has_blob(shared)
    assert a.digest in removed
    assert len(removed) == 3  # a's manifest, config, own layer
    assert fsck(store).ok


def test_young_blobs_kept_unless_grace_zero(tmp_path: Path) -> None:
    store = build_sample_layout(tmp_path / "l")
    stray = store.put_bytes(b"just written by a copy that has not tagged yet")
    result = gc(store)
    assert result.removed == [] and [d for d, _ in result.kept_young] == [stray.digest]
    assert store.has_blob(stray.digest)
    assert [d for d, _ in gc(store, grace=0).removed] == [stray.digest]


@pytest.mark.damages_layouts
def test_refuses_when_a_manifest_is_unreadable(sample: LayoutStore) -> None:
    index = sample.get_manifest(sample.resolve("multi"))
    sample.blob_path(index.manifests[0].digest).unlink()
    before = _blobs(sample)
    with pytest.raises(LayoutError, match="gc refused"):
        gc(sample)
    assert _blobs(sample) == before


@pytest.mark.damages_layouts
def test_refuses_when_a_manifest_is_corrupt(sample: LayoutStore) -> None:
    desc = sample.resolve("v1")
    sample.blob_path(desc.digest).write_bytes(b"{}")
    before = _blobs(sample)
    with pytest.raises(LayoutError):
        gc(sample)
    assert _blobs(sample) == before


@pytest.mark.damages_layouts
def test_refuses_on_garbage_index_json(sample: LayoutStore) -> None:
    (sample.root / "index.json").write_text("nope")
    with pytest.raises(LayoutError):
        gc(sample)


@pytest.mark.damages_layouts
def test_missing_layer_does_not_block_gc(sample: LayoutStore) -> None:
    layer = sample.get_manifest(sample.resolve("v1")).layers[0]
    sample.blob_path(layer.digest).unlink()
    assert gc(sample).removed


def _writer(path: Path, hold: bool) -> subprocess.Popen[bytes]:
    code = ("import fcntl, sys, time; f = open(sys.argv[1], 'xb'); fcntl.flock(f, fcntl.LOCK_EX); "
            "f.write(b'partial blob'); f.flush(); print('ready', flush=True); "
            + ("time.sleep(60)" if hold else "pass"))
    return subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE)


def test_stale_temp_removed_live_temp_kept(sample: LayoutStore) -> None:
    stale = sample.root / ".ocilayout-tmp-11111-0123456789abcdef"
    dead = _writer(stale, hold=False)
    dead.wait(timeout=30)
    live = sample.root / ".ocilayout-tmp-22222-fedcba9876543210"
    proc = _writer(live, hold=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        old = time.time() - 600
        os.utime(stale, (old, old))
        os.utime(live, (old, old))
        result = gc(sample, grace=0)
        assert [p for p, _ in result.temp_files_removed] == [stale.name]
        assert not stale.exists()
        assert live.exists()
        assert result.live_writers == 1
        # While a writer is live no blob goes: it may be about to tag old unreferenced blobs it reused.
        assert result.removed == [] and len(result.kept_young) == 4
    finally:
        proc.kill()
        proc.wait()
    assert len(gc(sample, grace=0).removed) == 4  # the writer is gone: now they go


_STAGING = """
import io, os, sys
from ocilayout.store import LayoutStore
from ocilayout.transports.oci import StagingArea
area = StagingArea(LayoutStore.open(sys.argv[1]))
area.put(io.BytesIO(b"staged but never published" * 100), None)
print(area.path.name, flush=True)
if sys.argv[2] == "die":
    os._exit(9)  # killed: no cleanup, the flock goes with the process
sys.stdin.read()
"""


def test_dead_copy_staging_dir_removed_live_one_kept(sample: LayoutStore) -> None:
    dead = subprocess.run([sys.executable, "-c", _STAGING, str(sample.root), "die"], capture_output=True,
                          text=True, timeout=60)
    dead_dir = sample.root / dead.stdout.strip()
    assert dead_dir.is_dir() and any(dead_dir.iterdir())
    live = subprocess.Popen([sys.executable, "-c", _STAGING, str(sample.root), "hold"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout is not None
        live_dir = sample.root / live.stdout.readline().strip()
        old = time.time() - 600
        os.utime(dead_dir, (old, old))
        os.utime(live_dir, (old, old))
        result = gc(sample)
        assert [p for p, _ in result.temp_files_removed] == [dead_dir.name]
        assert result.temp_files_removed[0][1] == 2600  # the staged blob inside
        assert not dead_dir.exists() and live_dir.is_dir()
        assert result.live_writers == 1 and result.removed == []
    finally:
        live.kill()
        live.wait()


def test_fresh_temp_file_is_not_touched(sample: LayoutStore) -> None:
    fresh = sample.root / ".ocilayout-tmp-33333-0000000000000000"
    fresh.write_bytes(b"writer has not locked me yet")  # no flock: looks stale, but too young to judge
    assert gc(sample, grace=0).temp_files_removed == []
    assert fresh.exists()


def test_live_writer_protects_young_blobs_even_with_grace_zero(tmp_path: Path) -> None:
    store = build_sample_layout(tmp_path / "l")
    stray = store.put_bytes(b"written by the live copy")
    proc = _writer(store.root / ".ocilayout-tmp-44444-aaaaaaaaaaaaaaaa", hold=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        result = gc(store, grace=0)
        assert result.removed == [] and store.has_blob(stray.digest)
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.interop
def test_after_gc_fsck_and_skopeo_inspect_every_tag(sample: LayoutStore, skopeo) -> None:
    gc(sample)
    assert fsck(sample).ok
    assert sample.refs() == ["v1", "multi"]
    for name in sample.refs():
        out = skopeo("inspect", "--raw", f"oci:{sample.root}:{name}").stdout
        assert json.loads(out)["schemaVersion"] == 2
        info = json.loads(skopeo("inspect", f"oci:{sample.root}:{name}").stdout)
        assert info["Os"] == "linux" and info["Layers"]
        skopeo("inspect", "--config", f"oci:{sample.root}:{name}")
    skopeo("copy", "--all", f"oci:{sample.root}:multi", f"oci:{sample.root.parent / 'copy'}:multi")


@pytest.mark.damages_layouts
def test_peer_multiple_images_nested_index_and_shared_blobs(tmp_path: Path) -> None:
    store = _copy_tree(peer_path(f"{CIMG}/delete_image_multiple_images"), tmp_path / "l")
    _age(store)
    assert gc(store).removed == []  # every one of the 19 blobs is referenced
    store.remove_ref("latest")
    assert gc(store).removed == []  # 3.18.3 still holds the same index
    store.remove_ref("3.18.3")
    removed = {str(d) for d, _ in gc(store).removed}
    # The index and its linux/386 image go; the linux/amd64 manifest stays (tags 3.18 and 3).
    assert "sha256:a2f798327b3f25e3eff54badcb769953de235e62e3e32051d57a5e66246de4a1" in removed
    assert "sha256:f6d60fd529b234d3e28837e15294d935f55da58ce57c4f9218cad38d0be82ce3" in removed
    assert store.has_blob(Digest.parse("sha256:93cbd11a4f41467a0409b975499ae711bc6f8222de38d9f1b5a4097583195ad5"))
    assert len(removed) == 4  # index, manifest, config, layer of linux/386
    assert _blobs(store) == set(reachable(store))


@pytest.mark.damages_layouts
def test_peer_ggcr_unknown_mediatype_refused(tmp_path: Path) -> None:
    store = _copy_tree(peer_path(f"{GGCR}/test_gc_image_unknown_mediatype"), tmp_path / "l")
    with pytest.raises(LayoutError, match="gc refused"):
        gc(store)


def test_peer_ggcr_test_index_sniffs_untyped_manifest(tmp_path: Path) -> None:
    """Ref "2" has mediaType application/vnd.oci.descriptor.v1+json but is a manifest: its blobs stay."""
    store = _copy_tree(peer_path(f"{GGCR}/test_index"), tmp_path / "l")
    _age(store)
    before = _blobs(store)
    assert reachable_digests(store) == before
    assert gc(store).removed == []
    store.remove_ref("1")  # "2" shares its config and layers through the untyped descriptor
    # index.json keeps the writer's odd type; resolve reports the parsed document's (issue 6: the resolved
    # root carries the media type of the document it names)
    assert [e.descriptor.media_type for e in store.entries() if e.name == "2"] == \
        ["application/vnd.oci.descriptor.v1+json"]
    assert store.resolve("2").media_type == "application/vnd.docker.distribution.manifest.v2+json"
    gc(store)
    assert fsck(store).ok


def test_peer_regclient_testrepo_keeps_everything_then_drops_untagged_referrers(tmp_path: Path) -> None:
    store = _copy_tree(peer_path("regclient/testdata/testrepo"), tmp_path / "l")
    _age(store)
    assert gc(store).removed == []  # loops, subjects, artifacts: all 91 reachable
    for name in list(store.refs()):
        store.remove_ref(name)
    assert len(store.entries()) == 2  # the two artifacts pushed by digest only
    result = gc(store)
    assert result.removed
    kept = _blobs(store)
    assert kept == set(reachable(store)) and len(kept) > 4  # the untagged referrers pin their subjects
    assert fsck(store).ok


def test_peer_regclient_external_subject_elsewhere_is_fine(tmp_path: Path) -> None:
    store = _copy_tree(peer_path("regclient/testdata/external"), tmp_path / "l")
    _age(store)
    assert gc(store).removed == []

