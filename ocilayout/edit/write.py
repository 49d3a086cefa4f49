"""Writing an edit: new layers spooled while they are hashed, and the edited tree copied to its destination."""

from __future__ import annotations

import hashlib
import tempfile
from typing import TYPE_CHECKING

from ..digest import Digest
from .overlay import OverlaySource, SpooledBlob

if TYPE_CHECKING:
    from ..copy import CopyResult, Progress
    from ..reference import ImageReference
    from ..transports.base import Destination

__all__ = ["Spool", "write_edit"]


class Spool:
    """A write-only sink for a new blob: bytes go to an unlinked temporary file (gone if the process dies;
    ``$TMPDIR``) and are hashed as they are written. :meth:`finish` hands back the blob and its digest."""

    def __init__(self, algorithm: str = "sha256") -> None:
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 (owned by the SpooledBlob from finish())
        self._hash = hashlib.new(algorithm)
        self._algorithm = algorithm
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._hash.update(data)
        n = self._file.write(data)
        self.size += n
        return n

    def finish(self) -> tuple[SpooledBlob, Digest]:
        """The spooled blob (flushed) and the digest of everything written."""
        self._file.flush()
        return SpooledBlob(self._file, self.size), Digest(self._algorithm, self._hash.hexdigest())

    def discard(self) -> None:
        self._file.close()


def write_edit(overlay: OverlaySource, dst: Destination | ImageReference | str, *, jobs: int = 4,
               progress: Progress | None = None) -> CopyResult:
    """Copy the edited tree (every image of an index) to ``dst`` in one commit and return what was written.
    On any error the destination is unchanged; the name is the destination reference's."""
    from ..copy import CopyOptions, Selection, copy

    return copy(overlay, dst, CopyOptions(select=Selection(all=True), jobs=jobs, progress=progress))
