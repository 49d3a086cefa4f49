"""append: layers from directories and tars (ocilayout.layer, ocilayout.edit.append, cli/layers.py)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest
from conftest import assert_fsck

from ocilayout.descriptor import Platform
from ocilayout.edit.append import AppendOptions, append_layers, build_layer
from ocilayout.errors import InvalidArgument, UnsafePath
from ocilayout.layer import MARKER
from ocilayout.layer.entries import EntryPolicy
from ocilayout.store import LayoutStore
from ocilayout.transports import open_source

SDE = 1_700_000_000


# -- helpers shared with test_flatten_normalize ------------------------------------------------------------

def tar_of(*entries: tuple) -> bytes:
    """A tar of (name, kind, payload[, mode[, mtime]]) entries, in the order given: kind f (payload bytes),
    d, l (symlink target), h (hard link target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, payload, *rest in entries:
            ti = tarfile.TarInfo(name)
            ti.mode = rest[0] if rest else (0o755 if kind == "d" else 0o644)
            ti.mtime = rest[1] if len(rest) > 1 else 1_600_000_000
            if kind == "f":
                ti.size = len(payload)
                tf.addfile(ti, io.BytesIO(payload))
                continue
            ti.type = {"d": tarfile.DIRTYPE, "l": tarfile.SYMTYPE, "h": tarfile.LNKTYPE}[kind]
            if kind in "lh":
                ti.linkname = payload
            tf.addfile(ti)
    return buf.getvalue()


def manifest_of(layout: Path, tag: str) -> dict:
    with LayoutStore.open(layout) as r:
        return json.loads(r.get_manifest(r.resolve(tag)).raw)


def config_of(layout: Path, tag: str) -> dict:
    with LayoutStore.open(layout) as r:
        m = r.get_manifest(r.resolve(tag))
        with r.open_blob(m.config) as f:
            return json.loads(f.read())


def layer_bytes(layout: Path, desc: dict) -> bytes:
    algo, hexd = desc["digest"].split(":")
    data = (layout / "blobs" / algo / hexd).read_bytes()
    return gzip.decompress(data) if desc["mediaType"].endswith("gzip") else data


def unpack(umoci, layout: Path, tag: str, dest: Path) -> Path:
    umoci("unpack", "--rootless", "--image", f"{layout}:{tag}", str(dest))
    return dest / "rootfs"


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under ``root``: type, mode, content hash / link target, mtime of files, hard-link group."""
    out: dict[str, tuple] = {}
    inodes: dict[int, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath, name)
            st = p.lstat()
            rel = str(p.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("d", stat.S_IMODE(st.st_mode))
            elif stat.S_ISREG(st.st_mode):
                group = inodes.setdefault(st.st_ino, rel) if st.st_nlink > 1 else None
                out[rel] = ("f", stat.S_IMODE(st.st_mode), hashlib.sha256(p.read_bytes()).hexdigest(),
                            int(st.st_mtime), group)
            else:
                out[rel] = ("o", st.st_mode)
    return out


def tree(root: Path) -> Path:
    """A small input directory: files, a subdirectory, a symlink, a hard link, a whiteout of the sample's
    etc/hello.txt."""
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "added.conf").write_bytes(b"added\n")
    (root / "etc" / ".wh.hello.txt").write_bytes(b"")
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "tool").write_bytes(b"#!/bin/sh\necho tool\n")
    (root / "usr" / "bin" / "tool").chmod(0o755)
    os.link(root / "usr" / "bin" / "tool", root / "usr" / "bin" / "tool2")
    os.symlink("tool", root / "usr" / "bin" / "t")
    return root


# -- append from a directory -------------------------------------------------------------------------------

def test_append_directory_read_by_skopeo_and_umoci(sample: Path, tmp_path: Path, cli, skopeo, umoci,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(SDE))
    src_dir = tree(tmp_path / "in")
    out = tmp_path / "out"
    r = cli("append", f"oci:{sample}:v1", f"oci:{out}:v1", "--layer", src_dir, "--history", "add tool")
    assert r.exit_code == 0, r.stderr
    assert_fsck(out)
    digest = r.stdout.strip()
    with LayoutStore.open(out) as layout:
        assert str(layout.resolve("v1").digest) == digest  # the digest printed is the one written
    info = json.loads(skopeo("inspect", "--config", f"oci:{out}:v1").stdout)
    assert len(info["rootfs"]["diff_ids"]) == 3
    assert info["history"][-1] == {"created": "2023-11-14T22:13:20Z", "created_by": "add tool"}
    assert info["created"] == "2023-11-14T22:13:20Z"
    assert info["config"]["Labels"] == {"org.opencontainers.image.title": "ocilayout sample"}  # kept
    layer = manifest_of(out, "v1")["layers"][-1]
    assert layer["annotations"] == {MARKER: "append"}
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    tar = layer_bytes(out, layer)
    assert f"sha256:{hashlib.sha256(tar).hexdigest()}" == info["rootfs"]["diff_ids"][-1]
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        members = tf.getmembers()
    assert [m.name for m in members] == ["etc", "etc/.wh.hello.txt", "etc/added.conf", "usr", "usr/bin",
                                         "usr/bin/t", "usr/bin/tool", "usr/bin/tool2"]
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}
    assert {m.mtime for m in members} == {SDE}  # the files are newer than SOURCE_DATE_EPOCH: clamped
    assert members[-1].islnk() and members[-1].linkname == "usr/bin/tool"
    assert not any(m.pax_headers for m in members)  # plain ustar where nothing needs PAX
    rootfs = unpack(umoci, out, "v1", tmp_path / "bundle")
    assert (rootfs / "etc" / "added.conf").read_bytes() == b"added\n"
    assert not (rootfs / "etc" / "hello.txt").exists()  # whited out
    assert (rootfs / "etc" / "os-release").exists()  # the base is still there
    assert os.readlink(rootfs / "usr" / "bin" / "t") == "tool"
    assert (rootfs / "usr" / "bin" / "tool").stat().st_ino == (rootfs / "usr" / "bin" / "tool2").stat().st_ino
    assert (rootfs / "usr" / "bin" / "tool").stat().st_mode & 0o777 == 0o755


def test_base_layers_are_kept(sample: Path, tmp_path: Path, cli) -> None:
    before = manifest_of(sample, "v1")["layers"]
    assert cli("append", f"oci:{sample}:v1", f"oci:{tmp_path / 'out'}:v1", "-q", "--layer", tree(tmp_path / "in"),
               ).exit_code == 0
    after = manifest_of(tmp_path / "out", "v1")["layers"]
    assert after[:2] == before and len(after) == 3


def test_opaque_directory(sample: Path, tmp_path: Path, umoci) -> None:
    d = tmp_path / "in"
    (d / "etc").mkdir(parents=True)
    (d / "etc" / ".wh..wh..opq").write_bytes(b"")
    (d / "etc" / "only.txt").write_bytes(b"only\n")
    with open_source(f"oci:{sample}:v1") as src:
        from ocilayout.edit import write_edit

        write_edit(append_layers(src, [d], AppendOptions()), f"oci:{tmp_path / 'out'}:v1")
    rootfs = unpack(umoci, tmp_path / "out", "v1", tmp_path / "b")
    assert sorted(os.listdir(rootfs / "etc")) == ["only.txt"]
    assert (rootfs / "usr" / "share" / "doc" / "readme.txt").exists()


def test_same_input_twice_and_touched_gives_identical_digests(sample: Path, tmp_path: Path, cli,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(SDE))
    src_dir = tree(tmp_path / "in")
    first = cli("append", f"oci:{sample}:v1", f"oci:{tmp_path / 'a'}:v1", "-q", "--layer", src_dir)
    again = cli("append", f"oci:{sample}:v1", f"oci:{tmp_path / 'b'}:v1", "-q", "--layer", src_dir)
    for p in [src_dir, *src_dir.rglob("*")]:  # another machine's checkout: other mtimes, all after the epoch
        os.utime(p, (SDE + 12345, SDE + 12345), follow_symlinks=False)
    touched = cli("append", f"oci:{sample}:v1", f"oci:{tmp_path / 'c'}:v1", "-q", "--layer", src_dir)
    assert first.exit_code == again.exit_code == touched.exit_code == 0
    assert first.stdout == again.stdout == touched.stdout and first.stdout.startswith("sha256:")
    zstd = cli("append", f"oci:{sample}:v1", f"oci:{tmp_path / 'z'}:v1", "-q", "--layer", src_dir,
               "--compress", "zstd")
    zstd2 = cli("append", f"oci:{sample}:v1", f"oci:{tmp_path / 'z2'}:v1", "-q", "--layer", src_dir,
                "--compress", "zstd")
    assert zstd.stdout == zstd2.stdout != first.stdout


def test_timestamp_sets_every_time_and_mtimes_older_than_the_epoch_stay(sample: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "in"
    d.mkdir()
    (d / "old").write_bytes(b"o")
    os.utime(d / "old", (1000, 1000))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(SDE))
    clamped = build_layer(d, AppendOptions(policy=EntryPolicy(clamp=SDE), compression="none"))
    fixed = build_layer(d, AppendOptions(policy=EntryPolicy(mtime=0), compression="none"))
    try:
        with tarfile.open(fileobj=io.BytesIO(clamped.blob.open().read())) as tf:
            assert tf.getmember("old").mtime == 1000
        with tarfile.open(fileobj=io.BytesIO(fixed.blob.open().read())) as tf:
            assert tf.getmember("old").mtime == 0
        assert clamped.digest == clamped.diff_id  # uncompressed: the blob is the tar
    finally:
        clamped.blob.close()
        fixed.blob.close()


def test_keep_owners(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    (d / "f").write_bytes(b"x")
    os.chown(d / "f", 1234, 5678) if os.geteuid() == 0 else pytest.skip("chown needs root")
    layer = build_layer(d, AppendOptions(policy=EntryPolicy(keep_owners=True), compression="none"))
    try:
        with tarfile.open(fileobj=io.BytesIO(layer.blob.open().read())) as tf:
            m = tf.getmember("f")
            assert (m.uid, m.gid, m.uname) == (1234, 5678, "")
    finally:
        layer.blob.close()


# -- append from a tar --------------------------------------------------------------------------------------

@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_tar_layer_is_kept_byte_for_byte(sample: Path, tmp_path: Path, cli, umoci, compression: str) -> None:
    plain = tar_of(("opt", "d", None), ("opt/x", "f", b"from a tar\n"), ("opt/y", "h", "opt/x"))
    data = plain
    if compression == "gzip":
        data = gzip.compress(plain)
    elif compression == "zstd":
        import zstandard

        data = zstandard.ZstdCompressor().compress(plain)
    (tmp_path / "layer.tar").write_bytes(data)
    r = cli("append", f"oci:{sample}:v1", f"oci:{tmp_path / 'out'}:v1", "-q", "--layer", tmp_path / "layer.tar",
            "--compress", "none")
    assert r.exit_code == 0, r.stderr
    layer = manifest_of(tmp_path / "out", "v1")["layers"][-1]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar"
    assert layer_bytes(tmp_path / "out", layer) == plain
    assert config_of(tmp_path / "out", "v1")["rootfs"]["diff_ids"][-1] == f"sha256:{hashlib.sha256(plain).hexdigest()}"
    rootfs = unpack(umoci, tmp_path / "out", "v1", tmp_path / "b")
    assert (rootfs / "opt" / "y").read_bytes() == b"from a tar\n"


def test_several_layers_in_order(sample: Path, tmp_path: Path, cli, umoci) -> None:
    (tmp_path / "1.tar").write_bytes(tar_of(("a.txt", "f", b"one\n")))
    (tmp_path / "2.tar").write_bytes(tar_of(("a.txt", "f", b"two\n")))
    r = cli("append", f"oci:{sample}:v1", f"oci:{tmp_path / 'out'}:v1", "-q",
            "-l", tmp_path / "1.tar", "-l", tmp_path / "2.tar")
    assert r.exit_code == 0, r.stderr
    assert len(config_of(tmp_path / "out", "v1")["history"]) == 4
    assert (unpack(umoci, tmp_path / "out", "v1", tmp_path / "b") / "a.txt").read_bytes() == b"two\n"


# -- formats, platforms, in place, from nothing --------------------------------------------------------------

def test_empty_base(tmp_path: Path, cli, skopeo, umoci, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(SDE))
    r = cli("append", "--empty", f"oci:{tmp_path / 'new'}:scratch", "--platform", "linux/arm64/v8",
            "--layer", tree(tmp_path / "in"), "-q")
    assert r.exit_code == 0, r.stderr
    assert_fsck(tmp_path / "new")
    info = json.loads(skopeo("inspect", "--config", f"oci:{tmp_path / 'new'}:scratch").stdout)
    assert (info["os"], info["architecture"], info["variant"]) == ("linux", "arm64", "v8")
    assert info["created"] == "2023-11-14T22:13:20Z" and len(info["history"]) == 1
    rootfs = unpack(umoci, tmp_path / "new", "scratch", tmp_path / "b")
    assert sorted(os.listdir(rootfs)) == ["etc", "usr"]
    again = cli("append", "--base", "empty", f"oci:{tmp_path / 'new2'}:scratch", "--platform", "linux/arm64/v8",
                "--layer", tmp_path / "in", "-q")
    assert again.stdout == r.stdout  # from nothing, deterministically


def test_platform_scoped_append_changes_only_that_image(sample: Path, tmp_path: Path, cli) -> None:
    (tmp_path / "l.tar").write_bytes(tar_of(("arm-only", "f", b"x")))
    before = {m["platform"]["architecture"]: m["digest"] for m in manifest_of(sample, "multi")["manifests"]}
    r = cli("append", f"oci:{sample}:multi", f"oci:{tmp_path / 'out'}:multi", "-q", "--platform", "linux/arm64",
            "--layer", tmp_path / "l.tar")
    assert r.exit_code == 0, r.stderr
    after = {m["platform"]["architecture"]: m["digest"] for m in manifest_of(tmp_path / "out", "multi")["manifests"]}
    assert after["amd64"] == before["amd64"] and after["arm64"] != before["arm64"]
    assert_fsck(tmp_path / "out")


def test_in_place_on_oci_archive_and_to_docker_archive(sample: Path, tmp_path: Path, cli, skopeo) -> None:
    (tmp_path / "l.tar").write_bytes(tar_of(("new", "f", b"x")))
    archive = tmp_path / "img.tar"
    assert cli("copy", "-q", f"oci:{sample}:v1", f"oci-archive:{archive}:v1").exit_code == 0
    r = cli("append", f"oci-archive:{archive}:v1", "-q", "--layer", tmp_path / "l.tar", "--digestfile",
            tmp_path / "digest")
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "digest").read_text() == r.stdout.strip()
    info = json.loads(skopeo("inspect", f"oci-archive:{archive}:v1").stdout)
    assert info["Digest"] == r.stdout.strip() and len(info["Layers"]) == 3
    d = cli("append", f"oci:{sample}:v1", f"docker-archive:{tmp_path / 'd.tar'}:img:v1", "-q",
            "--layer", tmp_path / "l.tar")
    assert d.exit_code == 0, d.stderr
    dinfo = json.loads(skopeo("inspect", "--config", f"docker-archive:{tmp_path / 'd.tar'}").stdout)
    assert len(dinfo["rootfs"]["diff_ids"]) == 3
    x = cli("append", f"docker-archive:{tmp_path / 'd.tar'}", "-q", "--layer", tmp_path / "l.tar")
    assert x.exit_code == 2 and "in place" in x.stderr


def test_docker_typed_image_gets_docker_layer_types(tmp_path: Path, cli, skopeo) -> None:
    from ocilayout.sample import make_image

    store = LayoutStore.create(tmp_path / "d")
    make_image(store, tag="v1", docker=True)
    (tmp_path / "l.tar").write_bytes(tar_of(("new", "f", b"x")))
    assert cli("append", f"oci:{tmp_path / 'd'}:v1", "-q", "--layer", tmp_path / "l.tar").exit_code == 0
    layer = manifest_of(tmp_path / "d", "v1")["layers"][-1]
    assert layer["mediaType"] == "application/vnd.docker.image.rootfs.diff.tar.gzip" and "annotations" not in layer
    # skopeo's oci: transport skips Docker-typed index entries; dir: keeps the manifest as it is
    assert cli("append", f"oci:{tmp_path / 'd'}:v1", f"dir:{tmp_path / 'dir'}", "-q", "--layer",
               tmp_path / "l.tar").exit_code == 0
    info = json.loads(skopeo("inspect", "--raw", f"dir:{tmp_path / 'dir'}").stdout)
    assert info["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json" and len(info["layers"]) == 3
    assert_fsck(tmp_path / "d")


# -- bad input: one line, documented exit code, nothing changed ----------------------------------------------

def _state(layout: Path) -> dict[str, bytes]:
    return {str(p.relative_to(layout)): p.read_bytes() for p in sorted(layout.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(("entries", "needle"), [
    ((("../evil", "f", b"x"),), "leaves the root"),
    ((("/etc/passwd", "f", b"x"),), "absolute path"),
    ((("ok", "f", b"x"), ("link", "h", "../outside")), "leaves the root"),
    ((("link", "h", "missing"),), "names no earlier member"),
])
def test_bad_tar_is_refused_and_nothing_changes(sample: Path, tmp_path: Path, cli, entries, needle: str) -> None:
    (tmp_path / "bad.tar").write_bytes(tar_of(*entries))
    before = _state(sample)
    r = cli("append", f"oci:{sample}:v1", "--layer", tmp_path / "bad.tar")
    assert r.exit_code == 4 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert _state(sample) == before
    with pytest.raises(UnsafePath):
        build_layer(tmp_path / "bad.tar", AppendOptions())


def test_not_a_tar_is_refused(sample: Path, tmp_path: Path, cli) -> None:
    (tmp_path / "x.tar").write_bytes(b"this is not a tar archive at all" * 40)
    r = cli("append", f"oci:{sample}:v1", f"oci:{tmp_path / 'out'}:v1", "--layer", tmp_path / "x.tar")
    assert r.exit_code == 4 and "not a valid tar" in r.stderr
    assert not (tmp_path / "out").exists()


def test_symlink_loop_is_refused(sample: Path, tmp_path: Path, cli) -> None:
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    os.symlink("b", d / "sub" / "a")
    os.symlink("/sub/a", d / "sub" / "b")  # absolute: resolved from the tree's root, as in the container
    os.symlink("missing", d / "dangling")  # fine
    before = _state(sample)
    r = cli("append", f"oci:{sample}:v1", "--layer", d)
    assert r.exit_code == 2 and "symlink loop" in r.stderr, r.stderr
    assert _state(sample) == before
    os.remove(d / "sub" / "b")
    assert cli("append", f"oci:{sample}:v1", f"oci:{tmp_path / 'out'}:v1", "-q", "--layer", d).exit_code == 0


def test_device_node_is_refused_unless_root(sample: Path, tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    try:
        os.mknod(d / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod needs root here")  # and then no device file can be in an input dir of ours
    with pytest.raises(InvalidArgument, match="device node"):
        build_layer(d, AppendOptions(), allow_devices=False)
    layer = build_layer(d, AppendOptions(compression="none"), allow_devices=True)  # root: archived
    try:
        with tarfile.open(fileobj=io.BytesIO(layer.blob.open().read())) as tf:
            m = tf.getmember("null")
            assert m.ischr() and (m.devmajor, m.devminor) == (1, 3)
    finally:
        layer.blob.close()


def test_overlay_whiteout_device_becomes_a_whiteout(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    try:
        os.mknod(d / "gone", 0o600 | stat.S_IFCHR, 0)
    except PermissionError:
        pytest.skip("mknod needs root here")
    layer = build_layer(d, AppendOptions(compression="none"), allow_devices=False)
    try:
        with tarfile.open(fileobj=io.BytesIO(layer.blob.open().read())) as tf:
            (m,) = tf.getmembers()
            assert m.name == ".wh.gone" and m.isreg() and m.size == 0
    finally:
        layer.blob.close()


@pytest.mark.parametrize(("args", "needle"), [
    (["--compress", "lz4"], "--compress"),
    (["--level", "99"], "out of range"),
    (["--platform", "linux"], "invalid platform"),
    (["--timestamp", "yesterday"], "--timestamp"),
    (["--base", "alpine"], "--base"),
])
def test_bad_options_exit_2(sample: Path, tmp_path: Path, cli, args: list[str], needle: str) -> None:
    (tmp_path / "l.tar").write_bytes(tar_of(("f", "f", b"x")))
    before = _state(sample)
    r = cli("append", f"oci:{sample}:v1", "--layer", tmp_path / "l.tar", *args)
    assert r.exit_code == 2 and needle in r.stderr, r.stderr
    assert _state(sample) == before


def test_missing_layer_and_non_whiteout_file(sample: Path, tmp_path: Path, cli) -> None:
    assert cli("append", f"oci:{sample}:v1", "--layer", tmp_path / "nope").exit_code == 3
    d = tmp_path / "in"
    d.mkdir()
    (d / ".wh.x").write_bytes(b"not empty")
    r = cli("append", f"oci:{sample}:v1", "--layer", d)
    assert r.exit_code == 2 and "must be empty" in r.stderr
    assert cli("append", f"oci:{sample}:v1").exit_code == 2  # no --layer


def test_platform_matching_nothing(sample: Path, tmp_path: Path) -> None:
    (tmp_path / "l.tar").write_bytes(tar_of(("f", "f", b"x")))
    from ocilayout.errors import NotFound

    with open_source(f"oci:{sample}:multi") as src, pytest.raises(NotFound):
        append_layers(src, [tmp_path / "l.tar"], AppendOptions(platforms=(Platform("linux", "s390x"),)))


def test_large_layer_reaches_the_destination(sample: Path, tmp_path: Path, cli, umoci) -> None:
    """A spooled layer above the kernel-copy threshold (4 MiB) is written (it used to fail on fileno())."""
    d = tmp_path / "in"
    d.mkdir()
    data = os.urandom(6 << 20)
    (d / "big.bin").write_bytes(data)
    r = cli("append", f"oci:{sample}:v1", f"oci:{tmp_path / 'out'}:v1", "-q", "--layer", d)
    assert r.exit_code == 0, r.stderr
    assert (unpack(umoci, tmp_path / "out", "v1", tmp_path / "b") / "big.bin").read_bytes() == data


def test_socket_and_whiteout_directory_are_refused(sample: Path, tmp_path: Path, cli) -> None:
    import socket

    d = tmp_path / "in"
    d.mkdir()
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(d / "s"))
        r = cli("append", f"oci:{sample}:v1", "--layer", d)
        assert r.exit_code == 2 and "socket" in r.stderr, r.stderr
    finally:
        sock.close()
    (d / "s").unlink()
    (d / ".wh.dir").mkdir()
    r = cli("append", f"oci:{sample}:v1", "--layer", d)
    assert r.exit_code == 2 and "whiteout name but not a regular file" in r.stderr, r.stderr
