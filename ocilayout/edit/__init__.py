"""Editing images offline: an edit is a Source (:class:`OverlaySource`) that copy writes.

:func:`edit_images` rewrites the images of a tree and their parents; :func:`write_edit` writes the result
to a destination with one atomic commit; :func:`write_edited` is every edit command's write path (DESTINATION
or in place, names, one commit).
"""

from __future__ import annotations

from .overlay import OverlaySource, SpooledBlob
from .rewrite import ImageEdit, IndexEdit, edit_images
from .write import write_edit, write_edited

__all__ = ["ImageEdit", "IndexEdit", "OverlaySource", "SpooledBlob", "edit_images", "write_edit",
           "write_edited"]
