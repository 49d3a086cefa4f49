"""Layer compression: detection by magic bytes, streaming decompressing readers, compressing writers.

This is the only module that imports codecs. ``isal`` (gzip, about twice as fast as zlib) and ``zstandard``
are imported lazily, on first use, so ``import ocilayout`` stays fast; gzip falls back to the standard
library's zlib when ``isal`` is missing.

Writers are deterministic for a given codec backend: gzip headers carry mtime 0, no file name and no
comment, and zstd frames carry the content size only when it is known up front (never here, streaming).
With ``threads`` (layer conversion), gzip is isal's threaded writer fed exact 1 MiB blocks (each block is
deflated with the previous one as dictionary, so the bytes do not depend on the thread count or on how the
caller chunks its writes) and zstd uses libzstd's worker threads (whose output is the same for any worker
count >= 1).
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
    "check_level",
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


#: Valid ``level`` ranges per kind and gzip backend.
LEVELS: dict[str, tuple[int, int]] = {"gzip:isal": (0, 3), "gzip:zlib": (0, 9), "zstd": (1, 22)}
#: Block size of the threaded gzip writer (pinned: it shapes the output bytes).
GZIP_BLOCK = 1 << 20
#: Job size of the threaded zstd writer (pinned too; each worker holds about two of these).
ZSTD_JOB = 2 << 20


def check_level(kind: str, level: int | None) -> None:
    """Raise InvalidArgument when ``level`` is out of range for ``kind`` (None is always valid)."""
    from .errors import InvalidArgument

    if level is None or kind == "none":
        return
    key = f"gzip:{gzip_backend()}" if kind == "gzip" else kind
    lo, hi = LEVELS.get(key, (level, level))
    if not lo <= level <= hi:
        raise InvalidArgument(f"compression level {level} is out of range for {key} ({lo}-{hi})")


def open_compressor(out: BinaryIO, kind: str, *, level: int | None = None, threads: int = 0) -> BinaryIO:
    """A writer that compresses into ``out`` as ``kind``; close it to finish the stream (``out`` stays open).

    gzip: isal (levels 0-3, default 2) or zlib (levels 0-9, default 6), header mtime 0 and no file name.
    zstd: zstandard, level default 3, one frame, with a checksum. "none" writes through unchanged.
    ``threads`` > 0 compresses on that many worker threads (see the module docstring; the bytes differ
    from ``threads=0`` but not between thread counts). Raises UnsupportedFormat for other kinds.
    """
    if kind == "none":
        return _Passthrough(out)  # type: ignore[return-value]
    if kind == "gzip":
        if threads > 0 and gzip_backend() == "isal":
            from isal import igzip_threaded

            lvl = 2 if level is None else level
            raw: BinaryIO = igzip_threaded._ThreadedGzipWriter(out, level=lvl, threads=threads,  # type: ignore[assignment]
                                                               block_size=GZIP_BLOCK)
            return _Reblock(raw, GZIP_BLOCK)  # type: ignore[return-value]
        if gzip_backend() == "isal":
            from isal import igzip

            lvl = 2 if level is None else level
            return igzip.IGzipFile("", "wb", lvl, out, 0)  # type: ignore[no-untyped-call,return-value]
        import gzip

        lvl = 6 if level is None else level
        return gzip.GzipFile("", "wb", lvl, out, 0)  # type: ignore[return-value]
    if kind == "zstd":
        import zstandard

        lvl = 3 if level is None else level
        if threads > 0:  # a pinned job size: it shapes the output and bounds the workers' buffers
            params = zstandard.ZstdCompressionParameters.from_level(lvl, threads=threads, job_size=ZSTD_JOB,
                                                                     write_checksum=True)
            return zstandard.ZstdCompressor(compression_params=params).stream_writer(out, closefd=False)
        cctx = zstandard.ZstdCompressor(level=lvl, write_checksum=True)
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


class _Reblock(io.RawIOBase):
    """Feeds ``raw`` exact ``block``-byte writes (the last one shorter), whatever sizes the caller writes;
    closing flushes the tail and closes ``raw``."""

    def __init__(self, raw: BinaryIO, block: int) -> None:
        self._raw = raw
        self._block = block
        self._buf = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        n = len(data)
        buf = self._buf
        view = memoryview(data).cast("B")
        if not buf and n == self._block:
            self._raw.write(bytes(view))
            return n
        buf += view
        while len(buf) >= self._block:
            self._raw.write(bytes(buf[:self._block]))
            del buf[:self._block]
        return n

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._buf:
                self._raw.write(bytes(self._buf))
                self._buf.clear()
            self._raw.close()
        finally:
            super().close()
