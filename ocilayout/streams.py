"""Moving bytes from a stream to a file in constant memory, with hashing and writing overlapped."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import BinaryIO

from .digest import CHUNK

__all__ = ["PIPELINE_MIN", "pump"]

#: Streams longer than this are worth a writer thread: hashing (in the reader) and disk writes overlap.
PIPELINE_MIN = 4 * CHUNK
_DONE = b""


def pump(reader: BinaryIO, f: BinaryIO, progress: Callable[[int], None] | None = None, *,
         pipelined: bool = True) -> int:
    """Copy ``reader`` to ``f`` until EOF; returns the byte count. Errors from either side propagate.

    With ``pipelined``, reading (and whatever hashing the reader does) runs in this thread while another
    writes; at most 8 chunks are in flight, so memory stays constant whatever the size.
    """
    if not pipelined:
        return _serial(reader, f, progress)
    chunks: queue.Queue[bytes] = queue.Queue(maxsize=8)
    failure: list[BaseException] = []

    def writer() -> None:
        try:
            while (chunk := chunks.get()) is not _DONE:
                f.write(chunk)
        except BaseException as err:
            failure.append(err)
            while chunks.get() is not _DONE:  # drain so the reader never blocks
                pass

    total = 0
    thread = threading.Thread(target=writer, name="ocilayout-writer", daemon=True)
    thread.start()
    try:
        while not failure:
            chunk = reader.read(CHUNK)
            if not chunk:
                break
            chunks.put(chunk)
            total += len(chunk)
            if progress is not None:
                progress(len(chunk))
    finally:
        chunks.put(_DONE)
        thread.join()
    if failure:
        raise failure[0]
    return total


def _serial(reader: BinaryIO, f: BinaryIO, progress: Callable[[int], None] | None) -> int:
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    total = 0
    while n := reader.readinto(buf):
        f.write(view[:n])
        total += n
        if progress is not None:
            progress(n)
    return total
