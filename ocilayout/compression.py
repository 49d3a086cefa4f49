"""Layer compression: detection by magic bytes, streaming decompressing readers, compressing writers.

This is the only module that imports codecs. ``isal`` (gzip, about twice as fast as zlib) and ``zstandard``
are imported lazily, on first use, so ``import ocilayout`` stays fast; gzip falls back to the standard
library's zlib when ``isal`` is missing.

Writers are deterministic for a given codec backend: gzip headers carry mtime 0, no file name and no
comment, and zstd frames carry the content size only when it is known up front (never here, streaming).
"""

from __future__ import annotations

import io
from typing import BinaryIO

from .errors import UnsupportedFormat

__all__ = [
    "COMPRESSIONS",
    "MAGIC_LEN",
    "READABLE",
    "WRITABLE",
    "detect",
    "gzip_backend",
    "open_compressor",
    "open_decompressed",
]

#: Names :func:`detect` can return.
COMPRESSIONS = ("gzip", "zstd", "bzip2", "xz", "none")
#: Kinds :func:`open_decompressed` can read and :func:`open_compressor` can write.
READABLE = frozenset({"gzip", "zstd", "none"})
WRITABLE = frozenset({"gzip", "zstd", "none"})
#: How many leading bytes :func:`detect` needs to decide.
MAGIC_LEN = 6

_GZIP = b"\x1f\x8b"
_ZSTD = b"\x28\xb5\x2f\xfd"
_BZIP2 = b"BZh"
_XZ = b"\xfd7zXZ\x00"


def detect(prefix: bytes) -> str:
    """The compression of a stream from its first bytes: "gzip", "zstd", "bzip2", "xz" or "none".

    Give at least :data:`MAGIC_LEN` bytes; anything unrecognised (including an empty prefix) is "none".
    Zstandard skippable frames (``0x184D2A5?``, used by zstd:chunked) count as zstd.
    """
    head = bytes(prefix[:MAGIC_LEN])
    if head.startswith(_GZIP):
        return "gzip"
    if head.startswith(_ZSTD):
        return "zstd"
    if len(head) >= 4 and head[0] & 0xF0 == 0x50 and head[1:4] == b"\x2a\x4d\x18":
        return "zstd"
    if head.startswith(_BZIP2):
        return "bzip2"
    if head.startswith(_XZ):
        return "xz"
    return "none"


def gzip_backend() -> str:
    """"isal" when python-isal is importable (used for gzip reading and writing), else "zlib"."""
    try:
        import isal.igzip  # noqa: F401
    except ImportError:  # pragma: no cover - isal is a declared dependency
        return "zlib"
    return "isal"


def open_decompressed(stream: BinaryIO, kind: str) -> BinaryIO:
    """A streaming reader of the decompressed bytes of ``stream`` compressed as ``kind``.

    ``kind`` is "gzip", "zstd" or "none" ("none" returns ``stream`` itself). Memory use is bounded by the
    codec's window, never by the blob size. Closing the reader leaves ``stream`` open (the caller owns it).
    Corrupt input raises the codec's error (OSError / EOFError / zstandard.ZstdError) from ``read``.
    Raises UnsupportedFormat for other kinds (bzip2, xz).
    """
    if kind == "none":
        return stream
    if kind == "gzip":
        if gzip_backend() == "isal":
            from isal import igzip

            return igzip.IGzipFile(fileobj=stream, mode="rb")  # type: ignore[no-untyped-call,return-value]
        import gzip

        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    if kind == "zstd":
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True, closefd=False)
        return io.BufferedReader(reader, buffer_size=1 << 20)
    raise UnsupportedFormat(f"cannot decompress {kind!r} layers (supported: gzip, zstd, none)")


def open_compressor(out: BinaryIO, kind: str, *, level: int | None = None) -> BinaryIO:
    """A writer that compresses into ``out`` as ``kind``; close it to finish the stream (``out`` stays open).

    gzip: isal (levels 0-3, default 2) or zlib (levels 0-9, default 6), header mtime 0 and no file name.
    zstd: zstandard, level default 3, one frame, with a checksum. "none" writes through unchanged.
    Raises UnsupportedFormat for other kinds.
    """
    if kind == "none":
        return _Passthrough(out)  # type: ignore[return-value]
    if kind == "gzip":
        if gzip_backend() == "isal":
            from isal import igzip

            lvl = 2 if level is None else level
            return igzip.IGzipFile("", "wb", lvl, out, 0)  # type: ignore[no-untyped-call,return-value]
        import gzip

        lvl = 6 if level is None else level
        return gzip.GzipFile("", "wb", lvl, out, 0)  # type: ignore[return-value]
    if kind == "zstd":
        import zstandard

        cctx = zstandard.ZstdCompressor(level=3 if level is None else level, write_checksum=True)
        return cctx.stream_writer(out, closefd=False)
    raise UnsupportedFormat(f"cannot compress to {kind!r} (supported: gzip, zstd, none)")


class _Passthrough(io.RawIOBase):
    """Writes straight through to ``out``; closing it does not close ``out``."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._out.write(data)
        return len(data)
