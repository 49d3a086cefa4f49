"""Transports: open a reference for reading (:func:`open_source`) or writing (:func:`open_destination`)."""

from __future__ import annotations

from pathlib import Path

from ..errors import NotFound, OcilayoutError, UnsupportedFormat
from ..reference import ImageReference, parse_reference
from ..store import LayoutReader, LayoutStore
from .base import Capabilities, Destination, Source

__all__ = ["Capabilities", "Destination", "Source", "open_destination", "open_layout", "open_source"]


def _ref(ref: ImageReference | str) -> ImageReference:
    return parse_reference(ref) if isinstance(ref, str) else ref


def open_layout(ref: ImageReference | str) -> LayoutReader:
    """The layout (directory or archive) a reference points into, without resolving an image."""
    ref = _ref(ref)
    if ref.transport == "oci":
        return LayoutStore.open(ref.path)
    if ref.transport == "oci-archive":
        from ..archive import ArchiveReader

        if not Path(ref.path).exists():
            raise NotFound(f"{ref.path}: no such archive")
        return ArchiveReader.open(ref.path)
    raise UnsupportedFormat(f"the {ref.transport}: transport is not supported yet (oci: and oci-archive: are)")


def open_source(ref: ImageReference | str) -> Source:
    """Open a reference for reading and resolve the image it names; raises NotFound, LayoutError..."""
    ref = _ref(ref)
    reader = open_layout(ref)
    try:
        root = reader.resolve(ref.ref, ref.digest)
    except OcilayoutError:
        reader.close()
        raise
    return Source(ref, reader, root)


def open_destination(ref: ImageReference | str) -> Destination:
    """Open a reference for writing; nothing is visible until ``commit``."""
    ref = _ref(ref)
    if ref.digest is not None:
        raise UnsupportedFormat(f"cannot write to a digest reference {ref}; name a tag or none")
    if ref.transport == "oci":
        from .oci import LayoutDestination

        return LayoutDestination(ref)
    if ref.transport == "oci-archive":
        from .oci_archive import ArchiveDestination

        return ArchiveDestination(ref)
    raise UnsupportedFormat(f"the {ref.transport}: transport is not supported yet (oci: and oci-archive: are)")
