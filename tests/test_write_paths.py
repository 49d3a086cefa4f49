"""The fast write paths: members of a tar reserved and filled in parallel, blobs copied by the kernel at an
offset while what was written is hashed, converted layers copied without a second hash. Each test checks
the bytes against a plain reference and that the fast path was really taken."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import random
import tarfile
from pathlib import Path

import pytest

from ocilayout import streams
from ocilayout.copy import copy
from ocilayout.digest import Digest
from ocilayout.errors import IntegrityError, SizeMismatch
from ocilayout.sample import make_image, make_layer
from ocilayout.store import LayoutStore
from ocilayout.tarfs import TarWriter

MiB = 1 << 20


def _random(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def test_reserved_members_are_the_bytes_add_stream_writes(tmp_path: Path) -> None:
    members = [("a.bin", _random(5 * MiB + 7, 1)), ("b.json", b'{"x":1}'), ("empty", b""), ("c.bin", _random(513, 2))]
    with TarWriter(tmp_path / "ref.tar", mtime=0) as tar:
        for name, data in members:
            tar.add_stream(name, len(data), io.BytesIO(data))
        tar.add_bytes("last", b"end")
        tar.commit()
    with TarWriter(tmp_path / "res.tar", mtime=0, readable=True) as tar:
        slots = [(tar.reserve(name, len(data)), data) for name, data in members]
        tar.add_bytes("last", b"end")
        for (fd, offset), data in reversed(slots):  # filled in any order, after later entries
            os.pwrite(fd, data, offset)
        tar.commit()
    assert (tmp_path / "res.tar").read_bytes() == (tmp_path / "ref.tar").read_bytes()


def test_copy_region_hashed_writes_at_an_offset(tmp_path: Path) -> None:
    data = _random(9 * MiB + 3, 3)
    (tmp_path / "src").write_bytes(data)
    prefix = b"p" * 1000
    with open(tmp_path / "src", "rb") as src, open(tmp_path / "dst", "w+b") as dst:
        dst.write(prefix)
        dst.flush()
        got = streams.copy_region_hashed((src.fileno(), 0, len(data)), dst.fileno(), "sha256", dst_offset=len(prefix))
    assert got == Digest.of(data)
    assert (tmp_path / "dst").read_bytes() == prefix + data


def _count_kernel_copies(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    copied: list[int] = []
    real = os.copy_file_range

    def counting(src: int, dst: int, count: int, offset_src: int | None = None, offset_dst: int | None = None) -> int:
        n = real(src, dst, count, offset_src, offset_dst)
        copied.append(n)
        return n

    monkeypatch.setattr(os, "copy_file_range", counting)
    return copied


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("others", [0, 1])
@pytest.mark.parametrize("kernel", ["works", "refuses"])
def test_who_copies_a_region(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared: bool, others: int,
                             kernel: str) -> None:
    """Into a file of its own, or alone, a region copy hands the bytes to copy_file_range (this thread
    hashes); into a shared file (a tar's ``copy_lock``) while other region copies run, it reads, hashes and
    writes them itself; where the filesystem refuses copy_file_range it writes them itself too. The bytes
    written and the digest are the same every way, from the middle of a file to the middle of another."""
    import threading

    data = _random(3 * streams.REGION_STEP + 12345, 4)
    (tmp_path / "src").write_bytes(b"s" * 777 + data + b"tail")
    copied = _count_kernel_copies(monkeypatch)
    if kernel == "refuses":
        def refuse(*args: object) -> int:
            raise OSError(errno.EXDEV, "cross-device")
        monkeypatch.setattr(os, "copy_file_range", refuse)
    monkeypatch.setattr(streams, "_active_regions", others)  # as if `others` copies were running
    with open(tmp_path / "src", "rb") as src, open(tmp_path / "dst", "w+b") as dst:
        dst.write(b"p" * 10)
        dst.flush()
        got = streams.copy_region_hashed((src.fileno(), 777, len(data)), dst.fileno(), "sha256", dst_offset=10,
                                         copy_lock=threading.Lock() if shared else None)
    assert got == Digest.of(data)
    assert (tmp_path / "dst").read_bytes() == b"p" * 10 + data
    by_kernel = kernel == "works" and (not shared or others == 0)
    assert sum(copied) == (len(data) if by_kernel else 0)
    assert streams._active_regions == others  # the copy is counted while it runs, and only then


def test_a_region_copy_left_alone_hands_the_rest_to_the_kernel(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy into a shared file that started beside others switches to the kernel copy at the next step
    once they are done."""
    import threading

    data = _random(4 * streams.REGION_STEP, 5)
    (tmp_path / "src").write_bytes(data)
    copied = _count_kernel_copies(monkeypatch)
    real_preadv = os.preadv
    reads = [0]

    def preadv(fd: int, buffers: list[memoryview], offset: int) -> int:
        reads[0] += 1
        if reads[0] == 3:  # the other copy finishes during the first step
            monkeypatch.setattr(streams, "_active_regions", streams._active_regions - 1)
        return real_preadv(fd, buffers, offset)

    monkeypatch.setattr(os, "preadv", preadv)
    monkeypatch.setattr(streams, "_active_regions", 1)
    with open(tmp_path / "src", "rb") as src, open(tmp_path / "dst", "w+b") as dst:
        got = streams.copy_region_hashed((src.fileno(), 0, len(data)), dst.fileno(), "sha256",
                                         copy_lock=threading.Lock())
    assert got == Digest.of(data)
    assert (tmp_path / "dst").read_bytes() == data
    assert sum(copied) == len(data) - streams.REGION_STEP  # the first step written by hand, the rest by the kernel


@pytest.mark.parametrize("others", [0, 1])
def test_a_region_that_ends_early_is_a_size_mismatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     others: int) -> None:
    import threading

    (tmp_path / "src").write_bytes(_random(2 * MiB, 6))
    monkeypatch.setattr(streams, "_active_regions", others)
    with open(tmp_path / "src", "rb") as src, open(tmp_path / "dst", "w+b") as dst, \
            pytest.raises(SizeMismatch, match="source ended"):
        streams.copy_region_hashed((src.fileno(), 0, 3 * MiB), dst.fileno(), "sha256", copy_lock=threading.Lock())
    assert streams._active_regions == others


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: f.read() for m in tar.getmembers() if m.isfile() and (f := tar.extractfile(m)) is not None}


def test_large_layers_are_copied_into_the_archive_by_the_kernel_and_hashed(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    store = LayoutStore.create(tmp_path / "src")
    big = [{f"f{i}.bin": _random(5 * MiB, 10 + i)} for i in range(3)]
    make_image(store, [*big, {"small.txt": b"small\n"}], compression="none", tag="v1")
    layers = [make_layer(files) for files in [*big, {"small.txt": b"small\n"}]]
    regions: list[int] = []
    real = streams.copy_region_hashed

    def spy(src: tuple[int, int, int], *args: object, **kwargs: object) -> Digest:
        regions.append(src[2])
        return real(src, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(streams, "copy_region_hashed", spy)
    copy(f"oci:{tmp_path / 'src'}:v1", f"docker-archive:{tmp_path / 'a.tar'}:app:1")
    # the three large layers go through the region copy (the small layer and the config are streamed)
    assert sorted(regions) == sorted(len(x) for x in layers[:3])
    members = _members(tmp_path / "a.tar")
    for layer in layers:
        assert members[f"{hashlib.sha256(layer).hexdigest()}.tar"] == layer
    monkeypatch.undo()
    copy(f"oci:{tmp_path / 'src'}:v1", f"docker-archive:{tmp_path / 'b.tar'}:app:1")
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


@pytest.mark.damages_layouts
def test_a_large_layer_that_does_not_match_fails_the_archive_write(tmp_path: Path) -> None:
    store = LayoutStore.create(tmp_path / "src")
    desc = make_image(store, [{"f.bin": _random(6 * MiB, 20)}, {"g.bin": _random(6 * MiB, 21)}],
                      compression="none", tag="v1")
    layer = store.get_manifest(desc).layers[1]
    blob = tmp_path / "src" / "blobs" / "sha256" / layer.digest.hex
    data = bytearray(blob.read_bytes())
    data[3 * MiB] ^= 1  # same size, other bytes
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))
    (tmp_path / "out").mkdir()
    with pytest.raises(IntegrityError, match="digest mismatch"):
        copy(f"oci:{tmp_path / 'src'}:v1", f"docker-archive:{tmp_path / 'out' / 'a.tar'}:app:1")
    assert list((tmp_path / "out").iterdir()) == []


def test_converted_layers_are_copied_into_the_archive_without_a_second_hash(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    store = LayoutStore.create(tmp_path / "src")
    files = {"f.bin": _random(6 * MiB, 30)}
    make_image(store, [files], compression="gzip", tag="v1")
    plain = make_layer(files)
    hashed: list[int] = []
    real = streams.copy_region_hashed

    def spy(src: tuple[int, int, int], *args: object, **kwargs: object) -> Digest | None:
        hashed.append(src[2])
        return real(src, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(streams, "copy_region_hashed", spy)
    copied = _count_kernel_copies(monkeypatch)
    copy(f"oci:{tmp_path / 'src'}:v1", f"docker-archive:{tmp_path / 'a.tar'}:app:1")
    assert sum(copied) == len(plain) and hashed == []  # staged (hashed once, as written), then a kernel copy
    assert _members(tmp_path / "a.tar")[f"{hashlib.sha256(plain).hexdigest()}.tar"] == plain


@pytest.mark.parametrize("dest", ["docker-archive:{t}/a.tar:app:1", "oci:{t}/o:v1", "dir:{t}/d"])
def test_a_decompressed_layer_is_hashed_once_on_its_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        dest: str) -> None:
    """gzip -> none: the transcoder hashes the bytes it yields (they must match the config's diff_id) and the
    destination names the blob by that digest instead of hashing the same bytes again."""
    from ocilayout.copy import CopyOptions
    from ocilayout.plan import Conversion
    from ocilayout.transports import open_source

    store = LayoutStore.create(tmp_path / "src")
    files = {"f.bin": _random(6 * MiB, 40)}
    make_image(store, [files, {"small": b"x"}], compression="gzip", tag="v1")
    plain = make_layer(files)
    verifying: list[object] = []
    real = streams.VerifyingReader

    def spy(stream: object, expected: object = None, *args: object, **kwargs: object) -> object:
        verifying.append(expected)
        return real(stream, expected, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(streams, "VerifyingReader", spy)
    ref = dest.format(t=tmp_path)
    copy(f"oci:{tmp_path / 'src'}:v1", ref, CopyOptions(convert=Conversion(decompress=True)))
    assert None not in verifying  # no blob of unknown digest was hashed by the destination
    with open_source(ref.rsplit(":", 2)[0] if ref.startswith("docker-archive") else ref) as src:
        layers = src.get_manifest().layers
        assert str(layers[0].digest) == f"sha256:{hashlib.sha256(plain).hexdigest()}"
        with src.open_blob(layers[0]) as f:
            assert f.read() == plain
