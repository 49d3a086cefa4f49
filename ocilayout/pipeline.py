"""Byte stages for layer conversion: verify -> decompress -> diff_id check -> compress, as a BlobOpener.

:func:`transcoder` returns a :data:`~ocilayout.transports.base.BlobOpener` whose stream is the converted
layer. It is pull-style: a producer thread reads the source blob (hashing it against its descriptor),
decompresses it, hashes the uncompressed tar (the diff_id, checked against the image config's), and
compresses it (gzip/zstd on codec worker threads) into a bounded queue; the destination reads from the
queue on its own thread and hashes what it writes. Decompression, compression and destination hashing
overlap, so both cores work, and at most ``_QUEUE`` chunks plus the codecs' windows are in memory
whatever the blob size. Every source byte is read once.

Failures (a source blob that does not match its digest, corrupt compressed data, a diff_id that does not
match the config) are raised from the reader's ``read`` before it reports EOF, so the destination never
keeps the blob.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from .digest import CHUNK, Digest, VerifyingReader
from .errors import DigestMismatch, IntegrityError, OcilayoutError

if TYPE_CHECKING:
    from .transports.base import BlobOpener

__all__ = ["Transcode", "transcoder"]

_QUEUE = 4
_EOF = b""
#: Conversions running at once. One conversion already keeps two cores busy (the producer decompressing and
#: hashing, the codec's workers compressing, the destination hashing and writing); more only add memory.
_SLOTS = threading.BoundedSemaphore(max(1, (os.cpu_count() or 2) // 2))


@dataclass(frozen=True, slots=True, kw_only=True)
class Transcode:
    """One layer conversion: the source blob (``digest``, ``size``) compressed as ``source_kind``, written
    as ``target_kind`` at ``level`` (None: the codec default) with ``threads`` codec workers; ``diff_id``
    is what the uncompressed bytes must hash to (None: not checked)."""

    digest: Digest
    size: int
    source_kind: str
    target_kind: str
    level: int | None = None
    diff_id: Digest | None = None
    threads: int = 2


def transcoder(open_source: BlobOpener, job: Transcode) -> BlobOpener:
    """An opener of ``job``'s converted bytes, read from ``open_source()`` (see the module docstring)."""

    def open_() -> BinaryIO:
        return _PipeReader(open_source, job)  # type: ignore[return-value]

    return open_


class _Sink(io.RawIOBase):
    """The producer's output: chunks into the reader's queue; drops them once the reader has gone."""

    def __init__(self, pipe: _PipeReader) -> None:
        self._pipe = pipe

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        n = len(data)
        if n:
            self._pipe._put(bytes(data))
        return n


class _PipeReader(io.RawIOBase):
    """The converted stream; a producer thread fills it (started on the first read)."""

    def __init__(self, open_source: BlobOpener, job: Transcode) -> None:
        import queue

        self._open_source = open_source
        self._job = job
        self._queue: queue.Queue[bytes] = queue.Queue(maxsize=_QUEUE)
        self._cancel = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._buf = memoryview(b"")
        self._eof = False
        #: The algorithm of :meth:`yielded_digest`, when this stream knows the digest of the bytes it yields:
        #: a decompression (target "none") yields exactly the bytes whose diff_id the producer hashes.
        self.yields_digest: str | None = (job.diff_id.algorithm if job.diff_id else "sha256") \
            if job.target_kind == "none" else None
        self._yielded: Digest | None = None

    def readable(self) -> bool:
        return True

    def _put(self, chunk: bytes) -> None:
        import queue

        while not self._cancel.is_set():
            try:
                self._queue.put(chunk, timeout=0.1)
                return
            except queue.Full:
                continue

    def _produce(self) -> None:
        job = self._job
        try:
            while not _SLOTS.acquire(timeout=0.1):
                if self._cancel.is_set():
                    return
            try:
                self._convert()
            finally:
                _SLOTS.release()
        except OcilayoutError as err:
            self._error = err
        except Exception as err:  # codec errors: corrupt data
            self._error = IntegrityError(f"layer {job.digest} is not valid {job.source_kind} data: {err}")
        except BaseException as err:  # pragma: no cover - interpreter shutdown
            self._error = err
        finally:
            self._put(_EOF)

    def _convert(self) -> None:
        """Verify, decompress, hash, compress into the queue; raises on a mismatch or corrupt data."""
        from .compression import open_compressor, open_decompressed

        job = self._job
        with self._open_source() as raw:
            verified = VerifyingReader(raw, job.digest, job.size, what="layer")
            plain = open_decompressed(verified, job.source_kind)  # type: ignore[arg-type]
            diff = hashlib.new(job.diff_id.algorithm if job.diff_id else "sha256")
            out = open_compressor(_Sink(self), job.target_kind, level=job.level,  # type: ignore[arg-type]
                                  threads=job.threads)
            try:
                buf = bytearray(CHUNK)
                view = memoryview(buf)
                while not self._cancel.is_set():
                    n = _fill(plain, view)
                    if not n:
                        break
                    diff.update(view[:n])
                    out.write(view[:n] if n < CHUNK else buf)
            finally:
                out.close()
            while verified.read(CHUNK):  # what follows the compressed stream is hashed too
                pass
        if self._cancel.is_set():
            return
        got = Digest(diff.name, diff.hexdigest())
        self._yielded = got
        if job.diff_id is not None and got != job.diff_id:
            raise DigestMismatch(f"layer {job.digest}: uncompressed content is {got}, but the image config "
                                 f"says its diff_id is {job.diff_id}")

    def _next(self) -> bool:
        if self._eof:
            return False
        if self._thread is None:
            self._thread = threading.Thread(target=self._produce, name="ocilayout-transcode", daemon=True)
            self._thread.start()
        chunk = self._queue.get()
        if not chunk:
            self._eof = True
            self._thread.join()
            if self._error is not None:
                raise self._error
            return False
        self._buf = memoryview(chunk)
        return True

    def yielded_digest(self) -> Digest:
        """The digest of every byte this stream yielded (see :attr:`yields_digest`), once it has reported
        EOF without an error; raises IntegrityError before that."""
        if not self._eof or self._error is not None or self._yielded is None or self.yields_digest is None:
            raise IntegrityError(f"layer {self._job.digest}: the converted stream was not read to its end")
        return self._yielded

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buf:
            if not self._next():
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            parts = []
            while chunk := self.read(CHUNK):
                parts.append(chunk)
            return b"".join(parts)
        while not self._buf:
            if not self._next():
                return b""
        out = bytes(self._buf[:n])
        self._buf = self._buf[len(out):]
        return out

    def close(self) -> None:
        if self.closed:
            return
        self._cancel.set()
        thread = self._thread
        if thread is not None:
            while thread.is_alive():
                with contextlib.suppress(Exception):  # queue.Empty
                    self._queue.get(timeout=0.1)
            thread.join()
        super().close()


def _fill(stream: BinaryIO, view: memoryview) -> int:
    """Read until ``view`` is full or EOF; returns the byte count."""
    total = 0
    size = len(view)
    while total < size:
        data = stream.read(size - total)
        if not data:
            break
        view[total:total + len(data)] = data
        total += len(data)
    return total
