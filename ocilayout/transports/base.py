"""The transport seam: what copy reads from and writes to.

A :class:`Source` is a read-only layout view plus the descriptor the reference resolved to. A
:class:`Destination` takes blobs and manifests and makes them visible only at :meth:`Destination.commit`;
``close()`` without ``commit()`` leaves the destination as it was. Order: ``put_blob*`` ->
``put_manifest*`` -> ``commit`` -> ``close``.

Two optional methods, found by copy with ``getattr``, let a destination do better than the contract:
``add_source_blob(desc, reader, progress)`` takes a blob to stream straight from the source at commit (an
archive writes each blob once, into the tar), and ``stage_signatures(items)`` takes signatures into the same
commit. Without them, copy calls ``put_blob`` and stores signatures right after ``commit``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from ..descriptor import Descriptor
from ..manifest import Manifest
from ..reference import ImageReference
from ..store import LayoutReader

__all__ = ["Capabilities", "Destination", "Source"]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a destination can hold, as data."""

    multi_image: bool = True
    indexes: bool = True
    signatures: bool = True


@dataclass(slots=True)
class Source:
    """A resolved image: the layout it lives in and the descriptor its reference names."""

    ref: ImageReference
    reader: LayoutReader
    root: Descriptor

    def get_manifest(self, desc: Descriptor | None = None) -> Manifest:
        return self.reader.get_manifest(desc or self.root)

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        return self.reader.open_blob(desc)

    def close(self) -> None:
        self.reader.close()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Destination(Protocol):
    """The write side of a transport. Nothing is visible to readers before :meth:`commit`."""

    ref: ImageReference
    capabilities: Capabilities

    def has_blob(self, desc: Descriptor) -> bool:
        """True when the blob is already stored (or staged): copy skips it."""
        ...

    def put_blob(self, stream: BinaryIO, expected: Descriptor,
                 progress: Callable[[int], None] | None = None) -> Descriptor:
        """Stage a blob, verifying digest and size while writing; raises IntegrityError."""
        ...

    def put_manifest(self, manifest: Manifest) -> Descriptor:
        """Stage a manifest's exact bytes."""
        ...

    def commit(self, root: Descriptor) -> None:
        """Make everything staged visible and point the reference's name at ``root``."""
        ...

    def close(self) -> None:
        """Discard anything staged and not committed."""
        ...
