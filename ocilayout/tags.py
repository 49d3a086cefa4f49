"""Naming images inside a layout: tag (add or move a name) and untag (remove names; blobs stay for gc)."""

from __future__ import annotations

from pathlib import Path

from .descriptor import Descriptor
from .errors import InvalidReference, NotFound
from .index import index_entry
from .reference import ImageReference, check_ref_name, parse_reference
from .transports import open_store

__all__ = ["tag_image", "untag_image"]


def _ref(ref: ImageReference | str) -> ImageReference:
    return parse_reference(ref) if isinstance(ref, str) else ref


def tag_image(image: ImageReference | str, new_name: str) -> Descriptor:
    """Point ``new_name`` (a tag, or ``oci:PATH:TAG`` of the same layout) at the image ``image`` names,
    replacing what that name pointed at; returns the image's descriptor. Raises InvalidReference,
    NotFound, UnsupportedFormat."""
    from .reference import TRANSPORTS

    src = _ref(image)
    store = open_store(src)
    name = new_name
    if new_name.partition(":")[0] in TRANSPORTS:
        dst = parse_reference(new_name)
        if dst.transport != src.transport or Path(dst.path).resolve() != Path(src.path).resolve() or not dst.ref:
            raise InvalidReference(f"{new_name} must name a tag in the same layout ({src.path}); use copy")
        name = dst.ref
    else:
        check_ref_name(name, new_name)
    desc = store.resolve(src.ref, src.digest)
    store.set_ref(name, index_entry(desc))
    return desc


def untag_image(image: ImageReference | str) -> int:
    """Remove ``oci:PATH:REF`` (that name) or ``oci:PATH@DIGEST`` (every entry of that digest) from
    ``index.json``; returns how many entries went. Blobs stay until gc. Raises NotFound, InvalidReference."""
    ref = _ref(image)
    store = open_store(ref)
    if ref.digest is not None:
        count = store.remove_digest(ref.digest)
        if count == 0:
            raise NotFound(f"{ref.path}: no index entry for {ref.digest}")
        return count
    if ref.ref is None:
        raise InvalidReference(f"{image}: name the image to delete (oci:PATH:REF or oci:PATH@DIGEST)")
    store.remove_ref(ref.ref)
    return 1
