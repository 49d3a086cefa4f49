"""compression: magic-byte detection, streaming readers and deterministic writers."""

from __future__ import annotations

import gzip
import io

import pytest
from conftest import peer_path
from hypothesis import given, settings
from hypothesis import strategies as st

from ocilayout import compression as c
from ocilayout.errors import UnsupportedFormat

HELLO = "containers-image/pkg/compression/fixtures"


@pytest.mark.parametrize(
    ("name", "kind"),
    [("Hello.gz", "gzip"), ("Hello.zst", "zstd"), ("Hello.bz2", "bzip2"), ("Hello.xz", "xz"),
     ("Hello.uncompressed", "none")],
)
def test_detect_peer_fixtures(name: str, kind: str) -> None:
    data = (peer_path(HELLO) / name).read_bytes()
    assert c.detect(data[: c.MAGIC_LEN]) == kind


@pytest.mark.parametrize("name", ["Hello.gz", "Hello.zst", "Hello.uncompressed"])
def test_decompress_peer_fixtures(name: str) -> None:
    data = (peer_path(HELLO) / name).read_bytes()
    with c.open_decompressed(io.BytesIO(data), c.detect(data)) as r:
        assert r.read() == b"Hello"


@pytest.mark.parametrize("name", ["Hello.bz2", "Hello.xz"])
def test_unsupported_kinds_refused(name: str) -> None:
    data = (peer_path(HELLO) / name).read_bytes()
    with pytest.raises(UnsupportedFormat):
        c.open_decompressed(io.BytesIO(data), c.detect(data))
    with pytest.raises(UnsupportedFormat):
        c.open_compressor(io.BytesIO(), "bzip2")


def test_ggcr_zstd_tar_matches_plain_tar() -> None:
    d = peer_path("go-containerregistry/pkg/crane/testdata")
    zst = (d / "content.tar.zst").read_bytes()
    assert c.detect(zst) == "zstd"
    assert c.detect((d / "content.tar").read_bytes()) == "none"
    out = io.BytesIO()
    with c.open_decompressed(io.BytesIO(zst), "zstd") as r:
        while chunk := r.read(7):  # small reads exercise the streaming path
            out.write(chunk)
    assert out.getvalue() == (d / "content.tar").read_bytes()


def test_detect_edge_cases() -> None:
    assert c.detect(b"") == "none"
    assert c.detect(b"\x1f") == "none"
    assert c.detect(b"\x50\x2a\x4d\x18\x00\x00") == "zstd"  # skippable frame (zstd:chunked)
    assert c.detect(b"ustar\x00") == "none"


def _compress(data: bytes, kind: str, level: int | None = None) -> bytes:
    out = io.BytesIO()
    with c.open_compressor(out, kind, level=level) as w:
        w.write(data)
    assert not out.closed
    return out.getvalue()


def test_gzip_writer_is_deterministic_and_readable_by_zlib() -> None:
    data = b"layer bytes " * 10000
    a, b = _compress(data, "gzip"), _compress(data, "gzip")
    assert a == b
    assert a[:2] == b"\x1f\x8b"
    assert a[3] & 0x08 == 0  # no FNAME
    assert a[4:8] == b"\x00\x00\x00\x00"  # mtime 0
    assert gzip.decompress(a) == data  # the standard library reads what isal writes


def test_zstd_writer_deterministic() -> None:
    data = bytes(range(256)) * 4000
    a = _compress(data, "zstd")
    assert a == _compress(data, "zstd")
    assert c.detect(a) == "zstd"


def test_gzip_reader_handles_multi_member() -> None:
    blob = gzip.compress(b"one ", mtime=0) + gzip.compress(b"two", mtime=0)
    assert c.open_decompressed(io.BytesIO(blob), "gzip").read() == b"one two"


def test_corrupt_gzip_raises() -> None:
    blob = bytearray(_compress(b"x" * 100000, "gzip"))
    blob[len(blob) // 2] ^= 0xFF
    with pytest.raises((OSError, EOFError, ValueError)):
        c.open_decompressed(io.BytesIO(bytes(blob)), "gzip").read()


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=200_000), kind=st.sampled_from(sorted(c.WRITABLE)))
def test_round_trip_identity(data: bytes, kind: str) -> None:
    blob = _compress(data, kind)
    if kind != "none":
        assert c.detect(blob) == kind
    with c.open_decompressed(io.BytesIO(blob), kind) as r:
        assert r.read() == data
