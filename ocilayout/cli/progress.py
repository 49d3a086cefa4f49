"""A tqdm progress bar for copies, drawn on stderr only when it is a terminal."""

from __future__ import annotations

import sys
import threading
from typing import Any


class BarProgress:
    """Implements :class:`ocilayout.copy.Progress` with one byte-counting bar."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._bar: Any = None
        self._lock = threading.Lock()

    def start(self, total_bytes: int, blobs: int) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total_bytes, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                         desc=f"{self._label} ({blobs} blobs)", leave=False, dynamic_ncols=True)

    def advance(self, nbytes: int) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.update(nbytes)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def progress_for(label: str, quiet: bool) -> BarProgress | None:
    """A bar when stderr is a TTY and not ``quiet``; otherwise None (also when stderr was closed at start)."""
    if quiet or sys.stderr is None or not sys.stderr.isatty():
        return None
    return BarProgress(label)
