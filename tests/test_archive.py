"""oci-archive reading in place and deterministic writing: round trips, append, determinism, bad input."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import random
import tarfile
import threading
from pathlib import Path

import pytest
from test_archive_util import Entry, check_archive, layout_entries, tree, write_tar

from ocilayout.archive import ArchiveReader, commit_archive
from ocilayout.descriptor import Descriptor
from ocilayout.digest import Digest
from ocilayout.errors import DigestMismatch, InvalidManifest, LayoutError, NotFound, OcilayoutError, UnsafePath
from ocilayout.fsutil import TMP_PREFIX
from ocilayout.graph import reachable
from ocilayout.sample import build_sample_layout, make_image
from ocilayout.store import LayoutStore


@pytest.fixture
def sample(tmp_path: Path) -> LayoutStore:
    return build_sample_layout(tmp_path / "sample")


@pytest.fixture
def sample_tar(tmp_path: Path, sample: LayoutStore) -> Path:
    """A plain tarfile-made archive of the sample layout (not written by commit_archive)."""
    return write_tar(tmp_path / "plain.tar", layout_entries(sample))


def one_line_error(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    msg = str(excinfo.value)
    assert msg and "\n" not in msg, repr(msg)
    return msg


def no_temp_files(directory: Path) -> None:
    assert not [p.name for p in directory.iterdir() if p.name.startswith(TMP_PREFIX)]


# -- reading ----------------------------------------------------------------------------------------------

def test_read_plain_tar_of_layout(sample: LayoutStore, sample_tar: Path) -> None:
    with check_archive(sample_tar) as r:
        assert r.refs() == ["v1", "multi"]
        assert r.resolve("v1") == sample.resolve("v1")
        m = r.get_manifest(r.resolve("multi"))
        assert m.is_index and len(m.manifests) == 2
        assert dict(r.all_blobs()) == dict(sample.all_blobs())


def test_dot_slash_names_and_dir_entries(tmp_path: Path, sample: LayoutStore) -> None:
    entries = [Entry("./", type=tarfile.DIRTYPE), Entry("./blobs/", type=tarfile.DIRTYPE),
               Entry("./blobs/sha256/", type=tarfile.DIRTYPE), *layout_entries(sample, prefix="./")]
    with check_archive(write_tar(tmp_path / "a.tar", entries)) as r:
        assert r.refs() == ["v1", "multi"]


def test_gnu_and_pax_long_names(tmp_path: Path, sample: LayoutStore) -> None:
    entries = layout_entries(sample, prefix="./")
    data = b"a sha512 blob\n"
    d512 = Digest.of(data, "sha512")
    entries.append(Entry(f"./blobs/sha512/{d512.hex}", data))  # 143 characters: needs a long-name header
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        with check_archive(write_tar(tmp_path / f"long{fmt}.tar", entries, fmt)) as r:
            assert r.has_blob(d512)
            assert r.read_blob_bytes(Descriptor("application/octet-stream", d512, len(data))) == data


def test_stream_protocol_and_threads(sample: LayoutStore, sample_tar: Path) -> None:
    r = ArchiveReader.open(sample_tar)
    digests = [d for d, _ in r.all_blobs()]
    d0 = digests[0]
    expected = sample.blob_path(d0).read_bytes()
    with r._open(f"blobs/sha256/{d0.hex}") as s:
        assert s.read(3) == expected[:3]
        buf = bytearray(5)
        assert s.readinto(buf) == 5 and bytes(buf) == expected[3:8]
        assert s.read() == expected[8:]
        assert s.read(10) == b""
        s.seek(0)
        assert s.read() == expected
    assert s.closed

    results: dict[Digest, str] = {}

    def worker(d: Digest) -> None:
        for _ in range(20):
            with r.open_blob(d) as f:
                data = f.read()
            results[d] = hashlib.sha256(data).hexdigest()

    threads = [threading.Thread(target=worker, args=(d,)) for d in digests]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {d: d.hex for d in digests}

    stream = r.open_blob(d0)
    r.close()  # streams already open keep their own descriptor
    assert stream.read() == expected
    stream.close()
    with pytest.raises(LayoutError, match="closed"):
        r.open_blob(d0)


def test_links_inside_tree_are_followed(tmp_path: Path, sample: LayoutStore) -> None:
    entries = layout_entries(sample)
    blobs = [e for e in entries if e.name.startswith("blobs/")]
    first, second = blobs[0], blobs[1]
    # Deduplicated storage: the data lives elsewhere, the blob names are links to it.
    entries = [e for e in entries if e not in (first, second)]
    entries += [Entry("store/one", first.data), Entry(first.name, type=tarfile.LNKTYPE, link="store/one"),
                Entry("store/two", second.data), Entry("store/alias", type=tarfile.SYMTYPE, link="two"),
                Entry(second.name, type=tarfile.SYMTYPE, link="../../store/alias")]
    with check_archive(write_tar(tmp_path / "links.tar", entries)) as r:
        assert r.refs() == ["v1", "multi"]
        assert r.blob_size(Digest.parse("sha256:" + second.name.rsplit("/", 1)[1])) == len(second.data)


def test_last_member_of_a_name_wins(tmp_path: Path, sample: LayoutStore) -> None:
    entries = layout_entries(sample)
    bogus = Entry("index.json", b'{"schemaVersion":2,"manifests":[]}')
    with check_archive(write_tar(tmp_path / "dup.tar", [bogus, *entries])) as r:
        assert r.refs() == ["v1", "multi"]


def test_peer_docker25_save_reads_as_oci_archive(tmp_path: Path) -> None:
    from conftest import peer_path

    path = peer_path("go-containerregistry/pkg/v1/tarball/testdata/hello-world-v25.tar")
    nothing_before = tree(tmp_path)
    with ArchiveReader.open(path) as r:
        r.check_layout_file()
        assert r.verify_blobs() == 4
        mdesc = Descriptor("application/vnd.oci.image.manifest.v1+json",
                           Digest.parse("sha256:411caf340c828657e915a83ed561a79d2b8150dabad4dc079d881cbfe6f86afe"),
                           447)
        m = r.get_manifest(mdesc)
        assert m.config.size == 581
        assert [layer.size for layer in m.layers] == [10752]
        assert len(reachable(r, [mdesc])) == 3
        # Its index.json says "manifests": null (Go's nil slice): either no refs, or a clear one-line error.
        try:
            refs = r.refs()
        except InvalidManifest as err:
            assert "\n" not in str(err) and "index.json" in str(err)
        else:
            assert refs == []
            with pytest.raises(NotFound):
                r.resolve()
    assert tree(tmp_path) == nothing_before


# -- bad archives -----------------------------------------------------------------------------------------

def _bad(tmp_path: Path, sample: LayoutStore, extra: list[Entry], *, before: bool = False) -> Path:
    entries = layout_entries(sample)
    return write_tar(tmp_path / "bad.tar", extra + entries if before else entries + extra)


@pytest.mark.parametrize(("extra", "exc", "words"), [
    ([Entry("../evil", b"x")], UnsafePath, "'..'"),
    ([Entry("blobs/../../evil", b"x")], UnsafePath, "'..'"),
    ([Entry("/etc/evil", b"x")], UnsafePath, "absolute"),
    ([Entry("blobs/sha256/link", type=tarfile.SYMTYPE, link="/etc/passwd")], UnsafePath, "absolute"),
    ([Entry("blobs/sha256/link", type=tarfile.SYMTYPE, link="../../../etc/passwd")], UnsafePath, "leaves"),
    ([Entry("up", type=tarfile.SYMTYPE, link="blobs/../.."), ], UnsafePath, "leaves"),
    ([Entry("blobs/sha256/hard", type=tarfile.LNKTYPE, link="../outside")], UnsafePath, "'..'"),
    ([Entry("blobs/sha256/hard", type=tarfile.LNKTYPE, link="/etc/shadow")], UnsafePath, "absolute"),
    ([Entry("blobs/sha256/hard", type=tarfile.LNKTYPE, link="no/such/member")], LayoutError, "earlier member"),
    ([Entry("dir", type=tarfile.SYMTYPE, link="."), Entry("dir/x", b"x")], UnsafePath, "beneath symlink"),
    ([Entry("loop", type=tarfile.SYMTYPE, link="loop")], LayoutError, "too many levels"),
    ([Entry("dev/null", type=tarfile.CHRTYPE)], LayoutError, "character device"),
    ([Entry("dev/sda", type=tarfile.BLKTYPE)], LayoutError, "block device"),
    ([Entry("pipe", type=tarfile.FIFOTYPE)], LayoutError, "fifo"),
])
def test_malicious_members_refused(tmp_path: Path, sample: LayoutStore, extra: list[Entry],
                                   exc: type[Exception], words: str) -> None:
    path = _bad(tmp_path, sample, extra)
    before = tree(tmp_path)
    with pytest.raises(exc) as excinfo:
        ArchiveReader.open(path)
    msg = one_line_error(excinfo)
    assert words in msg and str(path) in msg
    assert extra[-1].name.split("/")[-1] in msg or extra[0].name.split("/")[-1] in msg
    assert tree(tmp_path) == before  # nothing extracted, nothing written


def test_truncated_archives(tmp_path: Path, sample_tar: Path) -> None:
    data = sample_tar.read_bytes()
    with tarfile.open(sample_tar) as tar:
        infos = tar.getmembers()
    big = max(infos, key=lambda i: i.size)
    cuts = {
        "inside a member's data": big.offset_data + big.size // 2,
        "inside a header": infos[-1].offset + 100,
        "at a header boundary (no end marker)": infos[-1].offset,
        "after the last member's data": infos[-1].offset_data + 512,
    }
    for what, cut in cuts.items():
        p = tmp_path / "cut.tar"
        p.write_bytes(data[:cut])
        with pytest.raises(LayoutError) as excinfo:
            ArchiveReader.open(p)
        msg = one_line_error(excinfo)
        assert "truncated" in msg, (what, msg)


@pytest.mark.parametrize(("content", "words"), [
    (b"", "not a tar"),
    (b"this is not a tar file at all\n" * 100, "not a tar"),
    (random.Random(7).randbytes(4096), "not a tar"),
    (b"\x00" * 10240, "not an OCI layout"),  # a valid, empty tar
])
def test_garbage_refused(tmp_path: Path, content: bytes, words: str) -> None:
    p = tmp_path / "garbage.tar"
    p.write_bytes(content)
    with pytest.raises(LayoutError) as excinfo:
        ArchiveReader.open(p)
    assert words in one_line_error(excinfo)


def test_huge_pax_header_refused(tmp_path: Path, sample: LayoutStore) -> None:
    p = tmp_path / "pax.tar"
    with tarfile.open(p, "w", format=tarfile.PAX_FORMAT) as tar:
        for e in layout_entries(sample):
            ti = tarfile.TarInfo(e.name)
            ti.size = len(e.data)
            if e.name == "index.json":
                ti.pax_headers = {"comment": "x" * (2 << 20)}
            tar.addfile(ti, io.BytesIO(e.data))
    with pytest.raises(LayoutError) as excinfo:
        ArchiveReader.open(p)
    assert "metadata header" in one_line_error(excinfo)


def test_mutated_archives_fail_cleanly(tmp_path: Path, sample: LayoutStore) -> None:
    """Random byte flips and cuts (mostly in the headers): only one-line OcilayoutErrors, never a crash."""
    out = tmp_path / "a.tar"
    commit_archive(out, sample)
    data = out.read_bytes()
    rng = random.Random(1)
    failures = 0
    for _ in range(300):
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(4096) if rng.random() < 0.7 else rng.randrange(len(b))] = rng.randrange(256)
        if rng.random() < 0.2:
            b = b[: rng.randrange(len(b))]
        p = tmp_path / "f.tar"
        p.write_bytes(bytes(b))
        try:
            with ArchiveReader.open(p) as r:
                for desc in reachable(r).values():
                    with r.open_blob(desc) as f:
                        f.read()
                r.verify_blobs()
        except OcilayoutError as err:
            failures += 1
            assert str(err) and "\n" not in str(err), str(err)
    assert failures > 100  # most mutations must be caught


@pytest.mark.parametrize("kind", ["gzip", "zstd", "xz", "bzip2"])
def test_compressed_archive_reads_and_refuses_appending(tmp_path: Path, sample_tar: Path, sample: LayoutStore,
                                                        kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A compressed oci-archive (skopeo accepts them) is decompressed once into an anonymous temp file and
    read from there: same blobs, nothing left in $TMPDIR; adding to it is refused, the file unchanged."""
    import bz2
    import lzma

    import zstandard

    data = sample_tar.read_bytes()
    packed = {"gzip": lambda b: gzip.compress(b), "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
              "xz": lzma.compress, "bzip2": bz2.compress}[kind](data)
    p = tmp_path / "a.tar.z"
    p.write_bytes(packed)
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setenv("TMPDIR", str(spool))
    with ArchiveReader.open(p) as r, ArchiveReader.open(sample_tar) as plain:
        assert r.tar.compression == kind
        assert os.readlink(f"/proc/self/fd/{r.tar._fd}").startswith(str(spool))  # spooled there, never named
        assert list(r.all_blobs()) == list(plain.all_blobs())
        assert r.verify_blobs() > 0
        assert list(spool.iterdir()) == []  # unlinked before a byte was written
    staging = LayoutStore.create(tmp_path / "staging")
    make_image(staging, tag="extra")
    with pytest.raises(LayoutError) as excinfo:
        commit_archive(p, staging)
    assert f"{kind}-compressed" in one_line_error(excinfo) and "decompress it first" in one_line_error(excinfo)
    assert p.read_bytes() == packed
    assert [f.name for f in tmp_path.iterdir() if f.name.startswith(TMP_PREFIX)] == []


def test_corrupt_compressed_archive_is_one_line(tmp_path: Path, sample_tar: Path) -> None:
    p = tmp_path / "a.tar.gz"
    p.write_bytes(gzip.compress(sample_tar.read_bytes())[:-200])
    with pytest.raises(LayoutError) as excinfo:
        ArchiveReader.open(p)
    assert "gzip-compressed" in one_line_error(excinfo)


def test_tar_without_layout_file(tmp_path: Path) -> None:
    p = write_tar(tmp_path / "x.tar", [Entry("hello.txt", b"hi")])
    with pytest.raises(LayoutError) as excinfo:
        ArchiveReader.open(p)
    assert "not an OCI layout" in one_line_error(excinfo)


def test_missing_archive_and_directory(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        ArchiveReader.open(tmp_path / "nope.tar")
    with pytest.raises(LayoutError) as excinfo:
        ArchiveReader.open(tmp_path)
    one_line_error(excinfo)


@pytest.mark.damages_layouts
def test_corrupt_blob_byte_raises_digest_mismatch(tmp_path: Path, sample: LayoutStore, sample_tar: Path) -> None:
    desc = sample.resolve("v1")
    layer = sample.get_manifest(desc).layers[0]
    with ArchiveReader.open(sample_tar) as r:
        offset = r.tar.lookup(f"blobs/sha256/{layer.digest.hex}").offset
    data = bytearray(sample_tar.read_bytes())
    data[offset + 10] ^= 0xFF
    sample_tar.write_bytes(bytes(data))
    with ArchiveReader.open(sample_tar) as r:
        assert r.refs() == ["v1", "multi"]  # the index and manifests are intact
        with pytest.raises(DigestMismatch) as excinfo, r.open_blob(layer) as f:
            f.read()
        assert str(layer.digest) in one_line_error(excinfo)
        with pytest.raises(DigestMismatch):
            r.verify_blobs()


@pytest.mark.damages_layouts
def test_oversized_index_json(tmp_path: Path, sample: LayoutStore) -> None:
    entries = [e for e in layout_entries(sample) if e.name != "index.json"]
    filler = b" " * (4 * 1024 * 1024)
    entries.append(Entry("index.json", b'{"schemaVersion":2,"manifests":[]}' + filler))
    with ArchiveReader.open(write_tar(tmp_path / "big.tar", entries)) as r, pytest.raises(InvalidManifest) as ei:
        r.refs()
    assert "over the" in one_line_error(ei)


# -- writing ----------------------------------------------------------------------------------------------

def test_commit_round_trip_and_layout(tmp_path: Path, sample: LayoutStore) -> None:
    out = tmp_path / "out.tar"
    commit_archive(out, sample)
    with check_archive(out) as r:
        assert r.refs() == ["v1", "multi"]
        for name in ("v1", "multi"):
            assert r.resolve(name) == sample.resolve(name)
        assert dict(r.all_blobs()) == dict(sample.all_blobs())
    with tarfile.open(out) as tar:
        infos = tar.getmembers()
    names = [i.name for i in infos]
    blobs = sorted(f"blobs/{d.algorithm}/{d.hex}" for d, _ in sample.all_blobs())
    assert names == ["oci-layout", "index.json", "blobs", "blobs/sha256", *blobs]
    for i in infos:
        assert (i.uid, i.gid, i.uname, i.gname, i.mtime) == (0, 0, "", "", 0)
        assert i.mode == (0o755 if i.isdir() else 0o644)
        assert not i.pax_headers
    assert out.stat().st_size % 512 == 0
    no_temp_files(tmp_path)


def test_commit_skips_lock_and_temp_files(tmp_path: Path, sample: LayoutStore) -> None:
    (sample.root / ".ocilayout.lock").write_bytes(b"")
    (sample.root / f"{TMP_PREFIX}123-abc").write_bytes(b"half a blob")
    (sample.root / "blobs" / "sha256" / f"{TMP_PREFIX}x").write_bytes(b"junk")
    out = tmp_path / "out.tar"
    commit_archive(out, sample)
    with tarfile.open(out) as tar:
        assert not [n for n in tar.getnames() if "ocilayout" in n]
    check_archive(out).close()


def test_deterministic_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = build_sample_layout(tmp_path / "a")
    b = build_sample_layout(tmp_path / "b")  # same content, different files and mtimes
    os.utime(b.root / "index.json", (1, 1))
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    commit_archive(tmp_path / "1.tar", a)
    commit_archive(tmp_path / "2.tar", b)
    assert (tmp_path / "1.tar").read_bytes() == (tmp_path / "2.tar").read_bytes()

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    commit_archive(tmp_path / "3.tar", a)
    commit_archive(tmp_path / "4.tar", b)
    assert (tmp_path / "3.tar").read_bytes() == (tmp_path / "4.tar").read_bytes()
    assert (tmp_path / "3.tar").read_bytes() != (tmp_path / "1.tar").read_bytes()
    with tarfile.open(tmp_path / "3.tar") as tar:
        assert {i.mtime for i in tar.getmembers()} == {1700000000}
    commit_archive(tmp_path / "5.tar", a, epoch=42)  # an explicit epoch beats the environment
    with tarfile.open(tmp_path / "5.tar") as tar:
        assert {i.mtime for i in tar.getmembers()} == {42}
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(LayoutError) as excinfo:
        commit_archive(tmp_path / "6.tar", a)
    assert "SOURCE_DATE_EPOCH" in one_line_error(excinfo)
    assert not (tmp_path / "6.tar").exists()
    for n in range(1, 6):
        check_archive(tmp_path / f"{n}.tar").close()

    # Appending the same content again changes nothing.
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    before = (tmp_path / "1.tar").read_bytes()
    commit_archive(tmp_path / "1.tar", a)
    assert (tmp_path / "1.tar").read_bytes() == before


def test_sha512_blob_gets_pax_long_name(tmp_path: Path, sample: LayoutStore) -> None:
    data = b"sha512 content\n"
    desc = Descriptor("application/octet-stream", Digest.of(data, "sha512"), len(data))
    sample.put_blob(io.BytesIO(data), desc)
    out = tmp_path / "out.tar"
    commit_archive(out, sample)
    with tarfile.open(out) as tar:
        assert f"blobs/sha512/{desc.digest.hex}" in tar.getnames()
    with check_archive(out) as r:
        assert r.read_blob_bytes(desc) == data


def test_append_keeps_other_images_and_retag_replaces(tmp_path: Path, sample: LayoutStore) -> None:
    out = tmp_path / "out.tar"
    commit_archive(out, sample)

    s2 = LayoutStore.create(tmp_path / "s2")
    v2 = make_image(s2, [{"v2.txt": b"two\n"}], tag="v2")
    commit_archive(out, s2)
    with check_archive(out) as r:
        assert r.refs() == ["v1", "multi", "v2"]
        assert r.resolve("v2").digest == v2.digest
        assert r.resolve("v1") == sample.resolve("v1")
    assert not any(p.name.startswith(TMP_PREFIX) for p in tmp_path.iterdir())

    s3 = LayoutStore.create(tmp_path / "s3")
    v1b = make_image(s3, [{"new.txt": b"replaced\n"}], tag="v1")
    commit_archive(out, s3)
    with check_archive(out) as r:
        assert r.refs() == ["multi", "v2", "v1"]
        assert r.resolve("v1").digest == v1b.digest
        assert r.has_blob(sample.resolve("v1").digest)  # no implicit gc

    # Untagged entries: appended once, not duplicated.
    s4 = LayoutStore.create(tmp_path / "s4")
    untagged = make_image(s4, [{"u.txt": b"u\n"}])
    s4.set_ref(None, untagged)
    commit_archive(out, s4)
    commit_archive(out, s4)
    with check_archive(out) as r:
        digests = [e.descriptor.digest for e in r.entries() if e.name is None]
        assert digests == [untagged.digest]


def test_explicit_base(tmp_path: Path, sample: LayoutStore) -> None:
    base = tmp_path / "base.tar"
    commit_archive(base, sample)
    s2 = LayoutStore.create(tmp_path / "s2")
    make_image(s2, [{"b.txt": b"b\n"}], tag="extra")
    out = tmp_path / "new.tar"
    base_bytes = base.read_bytes()
    commit_archive(out, s2, base=base)
    assert base.read_bytes() == base_bytes
    with check_archive(out) as r:
        assert r.refs() == ["v1", "multi", "extra"]


def test_append_to_plain_tar_with_links(tmp_path: Path, sample: LayoutStore) -> None:
    """A base archive whose blobs are hardlinks/symlinks: the output holds them as plain files."""
    entries = layout_entries(sample)
    blob = next(e for e in entries if e.name.startswith("blobs/"))
    entries = [e for e in entries if e is not blob]
    entries += [Entry("data", blob.data), Entry(blob.name, type=tarfile.LNKTYPE, link="data")]
    base = write_tar(tmp_path / "base.tar", entries)
    out = tmp_path / "out.tar"
    commit_archive(out, LayoutStore.create(tmp_path / "empty"), base=base)
    with tarfile.open(out) as tar:
        assert tar.getmember(blob.name).isfile() and "data" not in tar.getnames()
    with check_archive(out) as r:
        assert r.refs() == ["v1", "multi"]


@pytest.mark.damages_layouts
def test_failed_commit_leaves_destination_unchanged(tmp_path: Path, sample: LayoutStore) -> None:
    out = tmp_path / "out.tar"
    commit_archive(out, sample)
    original = out.read_bytes()

    # 1. a corrupt blob in staging
    s2 = LayoutStore.create(tmp_path / "s2")
    v2 = make_image(s2, [{"v2.txt": b"two\n" * 1000}], tag="v2")
    layer = s2.get_manifest(v2).layers[0]
    p = s2.blob_path(layer.digest)
    p.write_bytes(b"X" + p.read_bytes()[1:])
    with pytest.raises(DigestMismatch) as excinfo:
        commit_archive(out, s2)
    assert str(layer.digest) in one_line_error(excinfo)
    assert out.read_bytes() == original
    no_temp_files(tmp_path)

    # 2. an index entry whose blob is nowhere
    s3 = LayoutStore.create(tmp_path / "s3")
    v3 = make_image(s3, [{"v3.txt": b"three\n"}], tag="v3")
    s3.blob_path(v3.digest).unlink()
    with pytest.raises(NotFound) as excinfo:
        commit_archive(out, s3)
    one_line_error(excinfo)
    assert out.read_bytes() == original
    no_temp_files(tmp_path)

    # 3. the base archive is truncated / corrupt
    s4 = LayoutStore.create(tmp_path / "s4")
    make_image(s4, [{"v4.txt": b"four\n"}], tag="v4")
    truncated = original[: len(original) // 2]
    out.write_bytes(truncated)
    with pytest.raises(LayoutError) as excinfo:
        commit_archive(out, s4)
    assert "truncated" in one_line_error(excinfo)
    assert out.read_bytes() == truncated
    no_temp_files(tmp_path)

    # 4. a base blob with a flipped byte
    out.write_bytes(original)
    with ArchiveReader.open(out) as r:
        member = r.tar.lookup(f"blobs/sha256/{sample.get_manifest(sample.resolve('v1')).layers[0].digest.hex}")
    corrupt = bytearray(original)
    corrupt[member.offset] ^= 0x01
    out.write_bytes(bytes(corrupt))
    with pytest.raises(DigestMismatch):
        commit_archive(out, s4)
    assert out.read_bytes() == bytes(corrupt)
    no_temp_files(tmp_path)

    # 5. the destination is not an archive at all: refused, not clobbered
    out.write_bytes(b"precious notes\n" * 50)
    with pytest.raises(LayoutError):
        commit_archive(out, s4)
    assert out.read_bytes() == b"precious notes\n" * 50
    no_temp_files(tmp_path)

    # 6. a base archive with an escaping symlink: refused before anything is written anywhere
    evil = _bad(tmp_path, sample, [Entry("blobs/sha256/x", type=tarfile.SYMTYPE, link="../../../../etc/passwd")])
    before = tree(tmp_path)
    with pytest.raises(UnsafePath) as excinfo:
        commit_archive(tmp_path / "new.tar", s4, base=evil)
    assert "blobs/sha256/x" in one_line_error(excinfo)
    assert tree(tmp_path) == before


def test_commit_refuses_directory_and_missing_parent(tmp_path: Path, sample: LayoutStore) -> None:
    with pytest.raises(LayoutError):
        commit_archive(tmp_path, sample)
    with pytest.raises(NotFound):
        commit_archive(tmp_path / "no" / "such" / "x.tar", sample)


def test_concurrent_appends_keep_every_tag(tmp_path: Path) -> None:
    out = tmp_path / "out.tar"
    stores = []
    for i in range(4):
        s = LayoutStore.create(tmp_path / f"s{i}")
        make_image(s, [{f"f{i}.txt": b"%d\n" % i}], tag=f"t{i}")
        stores.append(s)
    errors: list[BaseException] = []

    def run(s: LayoutStore) -> None:
        try:
            commit_archive(out, s)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with check_archive(out) as r:
        assert sorted(r.refs()) == ["t0", "t1", "t2", "t3"]
    no_temp_files(tmp_path)


def test_copy_from_and_into_a_gzipped_oci_archive(tmp_path: Path, sample_tar: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """Through the transport: a .tar.gz oci-archive copies out; copying into it is refused, file unchanged."""
    p = tmp_path / "a.tar.gz"
    packed = gzip.compress(sample_tar.read_bytes())
    p.write_bytes(packed)
    res = cli("copy", "-q", f"oci-archive:{p}:v1", f"oci:{tmp_path}/out:v1")
    assert res.exit_code == 0, res
    res = cli("copy", "-q", f"oci:{tmp_path}/out:v1", f"oci-archive:{p}:again")
    assert res.exit_code == 4 and "gzip-compressed" in res.stderr and res.stderr.count("\n") == 1
    assert p.read_bytes() == packed
    assert [f.name for f in tmp_path.iterdir() if f.name.startswith(".ocilayout")] == []
