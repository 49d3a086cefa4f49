"""Nothing outside the layout, ever; the image you named is the image you get (issue 7, filesystem and
resolution items handled in the file-access layer and the resolver)."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import pytest
from conftest import assert_fsck

from ocilayout.copy import copy
from ocilayout.digest import Digest
from ocilayout.errors import InvalidReference, LayoutError, NotFound, UnsafePath
from ocilayout.gc import gc
from ocilayout.sample import make_image
from ocilayout.store import LayoutStore
from ocilayout.validate import fsck


def _aged(path: Path) -> None:
    for p in path.rglob("*"):
        os.utime(p, (1, 1), follow_symlinks=False)


@pytest.mark.damages_layouts
@pytest.mark.parametrize("link", ["blobs", "blobs/sha256"])
def test_gc_never_deletes_through_a_symlinked_blob_dir(tmp_path: Path, link: str) -> None:
    outside = tmp_path / "precious"
    outside.mkdir()
    victim = outside / ("a" * 64)
    victim.write_bytes(b"not yours")
    store = LayoutStore.create(tmp_path / "l")
    target = tmp_path / "l" / link
    if link == "blobs":
        (outside / "sha256").mkdir()
        victim = outside / "sha256" / ("a" * 64)
        victim.write_bytes(b"not yours")
    if target.exists():
        os.rmdir(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(outside)
    _aged(outside)
    with pytest.raises(UnsafePath):
        gc(store, grace=0)
    assert victim.read_bytes() == b"not yours"


@pytest.mark.damages_layouts
def test_copy_never_writes_through_a_symlinked_blob_dir(sample: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    dst = LayoutStore.create(tmp_path / "d")
    os.rmdir(dst.root / "blobs")
    (dst.root / "blobs").symlink_to(outside)
    with pytest.raises(UnsafePath):
        copy(f"oci:{sample}:v1", f"oci:{dst.root}:v1")
    assert list(outside.rglob("*")) == []
    assert json.loads((dst.root / "index.json").read_bytes())["manifests"] == []


@pytest.mark.damages_layouts
def test_a_dangling_lock_symlink_creates_nothing(tmp_path: Path) -> None:
    store = LayoutStore.create(tmp_path / "l")
    make_image(store, tag="v1")
    planted = tmp_path / "planted"
    (store.root / ".ocilayout.lock").unlink(missing_ok=True)
    (store.root / ".ocilayout.lock").symlink_to(planted)
    with pytest.raises(UnsafePath):
        gc(store, dry_run=True)
    assert not planted.exists()


def _run_with_timeout(fn, seconds: float = 10.0):  # type: ignore[no-untyped-def]
    out: list[object] = []

    def target() -> None:
        try:
            out.append(fn())
        except BaseException as err:
            out.append(err)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "hung on a FIFO"
    return out[0]


@pytest.mark.damages_layouts
@pytest.mark.parametrize("where", ["blob", "index.json", "oci-layout"])
def test_a_fifo_is_refused_not_waited_on(tmp_path: Path, where: str) -> None:
    store = LayoutStore.create(tmp_path / "l")
    desc = make_image(store, tag="v1")
    m = store.get_manifest(desc)
    path = {"blob": store.blob_path(m.layers[0].digest), "index.json": store.root / "index.json",
            "oci-layout": store.root / "oci-layout"}[where]
    path.unlink()
    os.mkfifo(path)
    result = _run_with_timeout(lambda: copy(f"oci:{store.root}:v1", f"oci:{tmp_path}/d:v1"))
    assert isinstance(result, LayoutError | NotFound), result
    report = _run_with_timeout(lambda: fsck(LayoutStore(store.root)))
    assert not report.ok  # type: ignore[attr-defined]


@pytest.mark.damages_layouts
def test_a_device_as_a_blob_is_refused(tmp_path: Path) -> None:
    store = LayoutStore.create(tmp_path / "l")
    desc = make_image(store, tag="v1")
    layer = store.get_manifest(desc).layers[0]
    store.blob_path(layer.digest).unlink()
    try:
        store.blob_path(layer.digest).symlink_to("/dev/zero")  # outside the layout anyway
    except OSError:
        pytest.skip("cannot make the symlink")
    with pytest.raises((UnsafePath, LayoutError)):
        copy(f"oci:{store.root}:v1", f"oci:{tmp_path}/d:v1")


def test_tag_refuses_to_write_an_index_no_reader_could_open(tmp_path: Path) -> None:
    store = LayoutStore.create(tmp_path / "l")
    desc = make_image(store, tag="v1")
    entry = desc.with_(annotations={f"k{i}": "v" * 4000 for i in range(1100)})
    with pytest.raises(LayoutError, match="over the"):
        store.set_ref("huge", entry)
    assert store.resolve("v1").digest == desc.digest  # still readable


def test_duplicate_names_are_ambiguous_not_silently_picked(tmp_path: Path) -> None:
    store = LayoutStore.create(tmp_path / "l")
    a = make_image(store, [{"a": b"1"}])
    b = make_image(store, [{"b": b"2"}])
    store.update_index(lambda _: [a.with_(annotations={"org.opencontainers.image.ref.name": "t"}).to_dict(),
                                  b.with_(annotations={"org.opencontainers.image.ref.name": "t"}).to_dict()])
    with pytest.raises(InvalidReference, match="ambiguous") as info:
        store.resolve("t")
    assert str(a.digest) in str(info.value) and str(b.digest) in str(info.value)
    with pytest.raises(InvalidReference):
        store.remove_ref("t")  # delete refuses too
    assert store.resolve(digest=a.digest).digest == a.digest  # @digest names one


def test_a_short_tag_matching_two_full_names_is_ambiguous(tmp_path: Path) -> None:
    store = LayoutStore.create(tmp_path / "l")
    a = make_image(store, [{"a": b"1"}])
    b = make_image(store, [{"b": b"2"}])
    store.set_ref("docker.io/library/foo:1.0", a)
    store.set_ref("docker.io/library/bar:1.0", b)
    with pytest.raises(InvalidReference, match="full name"):
        store.resolve("1.0")
    assert store.resolve("docker.io/library/bar:1.0").digest == b.digest
    assert_fsck(store.root)


@pytest.mark.damages_layouts
def test_one_unsupported_entry_does_not_hide_the_others(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    store = LayoutStore.create(tmp_path / "l")
    desc = make_image(store, tag="good")
    store.update_index(lambda e: [*e, {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                       "digest": "blake3:" + "0" * 64, "size": 10,
                                       "annotations": {"org.opencontainers.image.ref.name": "odd"}}])
    assert store.resolve("good").digest == desc.digest
    assert cli("inspect", f"oci:{store.root}:good").exit_code == 0
    assert cli("list-tags", f"oci:{store.root}").exit_code == 0
    bad = cli("inspect", f"oci:{store.root}:odd")
    assert bad.exit_code == 2 and "blake3" in bad.stderr
    assert not fsck(store).ok  # fsck reports the entry


def test_sha512_images_keep_their_algorithm(tmp_path: Path) -> None:
    store = LayoutStore.create(tmp_path / "s")
    d = make_image(store)
    m = store.get_manifest(d)
    # Re-address the manifest by sha512 (its blobs stay sha256, as mixed layouts do).
    raw = m.raw
    d512 = Digest("sha512", hashlib.sha512(raw).hexdigest())
    store.put_blob(__import__("io").BytesIO(raw), d.with_(digest=d512))
    store.set_ref("v512", d.with_(digest=d512))
    for dest in (f"oci:{tmp_path}/d:v512", f"oci-archive:{tmp_path}/d.tar:v512"):
        res = copy(f"oci:{store.root}:v512", dest)
        assert res.descriptor.digest == d512
    assert LayoutStore.open(tmp_path / "d").resolve("v512").digest == d512
    assert_fsck(tmp_path / "d")


@pytest.mark.parametrize("where", ["missing/dir/digest", "adir"])
def test_an_unusable_digestfile_fails_before_the_copy(sample: Path, tmp_path: Path, cli, where: str) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "adir").mkdir()
    res = cli("copy", "-q", "--digestfile", str(tmp_path / where), f"oci:{sample}:v1", f"oci:{tmp_path}/d:v1")
    assert res.exit_code in (3, 4) and res.stderr.count("\n") == 1
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("pax", [{"GNU.sparse.map": "zz,1"},
                                 {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.realsize": "zz"}])
def test_a_malformed_sparse_header_is_a_layout_error(tmp_path: Path, cli, pax: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    import io
    import tarfile

    out = tmp_path / "bad.tar"
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
        ti = tarfile.TarInfo("oci-layout")
        ti.size = 3
        t.addfile(ti, io.BytesIO(b"abc"))
        ti = tarfile.TarInfo("blobs/x")
        ti.size = 4
        ti.pax_headers = pax
        t.addfile(ti, io.BytesIO(b"abcd"))
    res = cli("inspect", f"oci-archive:{out}")
    assert res.exit_code == 4 and "corrupt" in res.stderr and res.stderr.count("\n") == 1


@pytest.mark.damages_layouts
def test_a_symlink_loop_on_a_blob_is_reported_not_crashed(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    store = LayoutStore.create(tmp_path / "l")
    desc = make_image(store, tag="v1")
    layer = store.get_manifest(desc).layers[0]
    path = store.blob_path(layer.digest)
    path.unlink()
    path.symlink_to(path.name)  # points at itself
    res = cli("copy", "-q", f"oci:{store.root}:v1", f"oci:{tmp_path}/d:v1")
    assert res.exit_code == 4 and "symbolic links" in res.stderr
    report = fsck(store)
    assert (not report.ok and "unreadable" in report.kinds()) or "blob-missing" in report.kinds()
    assert not (tmp_path / "d" / "blobs" / "sha256" / layer.digest.hex).exists()


@pytest.mark.damages_layouts
def test_an_artifact_manifest_is_followed_or_refused_never_guessed(tmp_path: Path) -> None:
    """gc used to delete the payload of a tagged OCI 1.1-rc artifact manifest while fsck called the layout
    clean: now gc refuses, fsck reports it and copy fails, all for the same reason."""
    from ocilayout.errors import UnsupportedFormat
    from ocilayout.graph import ARTIFACT_MANIFEST

    store = LayoutStore.create(tmp_path / "l")
    payload = store.put_bytes(b"an sbom", "application/spdx+json")
    doc = {"mediaType": ARTIFACT_MANIFEST, "artifactType": "application/spdx+json",
           "blobs": [payload.to_dict()]}
    art = store.put_bytes(json.dumps(doc).encode(), ARTIFACT_MANIFEST)
    store.set_ref("sbom", art)
    _aged(store.root)
    with pytest.raises(LayoutError, match="gc refused"):
        gc(store, grace=0)
    assert store.has_blob(payload.digest)
    report = fsck(store)
    assert "manifest-invalid" in report.kinds() and "artifact manifest" in str(report.errors[0])
    with pytest.raises(UnsupportedFormat, match="artifact manifest"):
        copy(f"oci:{store.root}:sbom", f"oci:{tmp_path}/d:sbom")


def test_digestfile_into_a_device_writes_into_it_never_over_it(sample: Path, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """--digestfile /dev/null (or /dev/stdout) is written into as skopeo does; it was renamed over (as root,
    the device node became a regular file)."""
    import stat

    res = cli("copy", "-q", "--digestfile", "/dev/null", f"oci:{sample}:v1", f"oci:{tmp_path}/d:v1")
    assert res.exit_code == 0
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_gc_grace_must_be_a_finite_non_negative_number(tmp_path: Path) -> None:
    from ocilayout.errors import InvalidArgument

    store = LayoutStore.create(tmp_path / "l")
    make_image(store, tag="v1")
    orphan = store.put_bytes(b"unreferenced")
    _aged(store.root)
    for grace in (float("nan"), float("inf"), -1.0):
        with pytest.raises(InvalidArgument):
            gc(store, grace=grace)
    assert store.has_blob(orphan.digest)


def test_fsck_reports_a_name_on_two_images(tmp_path: Path) -> None:
    store = LayoutStore.create(tmp_path / "l")
    a = make_image(store, [{"a": b"1"}])
    b = make_image(store, [{"b": b"2"}])
    store.update_index(lambda _: [a.with_(annotations={"org.opencontainers.image.ref.name": "t"}).to_dict(),
                                  b.with_(annotations={"org.opencontainers.image.ref.name": "t"}).to_dict()])
    report = fsck(store)
    (dup,) = [p for p in report.problems if p.kind == "ref-name-duplicate"]
    assert str(a.digest) in dup.message and str(b.digest) in dup.message


def test_inspect_prints_the_digest_the_image_is_stored_under(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    store = LayoutStore.create(tmp_path / "s")
    d = make_image(store)
    raw = store.get_manifest(d).raw
    d512 = Digest("sha512", hashlib.sha512(raw).hexdigest())
    store.put_blob(__import__("io").BytesIO(raw), d.with_(digest=d512))
    store.set_ref("v512", d.with_(digest=d512))
    res = cli("inspect", f"oci:{store.root}:v512")
    assert json.loads(res.stdout)["Digest"] == str(d512)


@pytest.mark.damages_layouts
def test_images_refuses_a_garbage_layout_version(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    store = LayoutStore.create(tmp_path / "l")
    make_image(store, tag="v1")
    (store.root / "oci-layout").write_text('{"imageLayoutVersion": "1.x-garbage"}')
    res = cli("images", str(store.root))
    assert res.exit_code == 4 and "imageLayoutVersion" in res.stderr


@pytest.mark.damages_layouts
@pytest.mark.parametrize("where", ["index.json", "staging"])
def test_a_full_disk_leaves_nothing(sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    import errno

    from ocilayout import fsutil

    dst = tmp_path / "d"
    copy(f"oci:{sample}:v1", f"oci:{dst}:old")
    before = sorted((p.name, p.read_bytes()) for p in dst.rglob("*") if p.is_file())
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        target = Path(os.readlink(f"/proc/self/fd/{fd}"))
        in_staging = target.parent.name.startswith(".ocilayout-tmp-")
        if (target.parent == dst and target.name.startswith(".ocilayout-tmp-")) if where == "index.json" \
                else in_staging:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(fsutil.os, "fsync", fsync)
    with pytest.raises(LayoutError, match="no space left"):
        copy(f"oci:{sample}:multi", f"oci:{dst}:new")
    monkeypatch.undo()
    after = sorted((p.name, p.read_bytes()) for p in dst.rglob("*") if p.is_file())
    assert after == before  # no temp file, no published blob, index.json unchanged


def test_a_refused_copy_creates_no_layout(sample: Path, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """The planner refuses before any byte moves; the destination layout must not appear either."""
    res = cli("copy", "-q", "--platform", "linux/s390x", f"oci:{sample}:multi", f"oci:{tmp_path}/new/layout:x")
    assert res.exit_code == 3
    assert not (tmp_path / "new").exists()
    res = cli("copy", "-q", "--platform", "linux/s390x", f"oci:{sample}:multi", f"oci-archive:{tmp_path}/n.tar:x")
    assert res.exit_code == 3 and not (tmp_path / "n.tar").exists()


def test_remove_tree_takes_empty_and_full_directories_and_never_follows_a_symlink(tmp_path: Path) -> None:
    from ocilayout.fsutil import remove_tree

    (tmp_path / "empty").mkdir()
    (tmp_path / "full" / "sub").mkdir(parents=True)
    (tmp_path / "full" / "sub" / "f").write_bytes(b"x")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "keep").write_bytes(b"k")
    (tmp_path / "link").symlink_to(tmp_path / "outside")
    for name in ("empty", "full", "missing", "link"):
        remove_tree(tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "outside"]
    assert (tmp_path / "outside" / "keep").read_bytes() == b"k"
