"""Editing images offline: an edit is a Source (:class:`OverlaySource`) that copy writes.

:func:`edit_images` rewrites the images of a tree and their parents; :func:`write_edit` writes the result
to a destination (the reference that was read, for in-place edits) with one atomic commit.
"""

from __future__ import annotations

from .overlay import OverlaySource, SpooledBlob
from .rewrite import ImageEdit, IndexEdit, edit_images
from .write import write_edit

__all__ = ["ImageEdit", "IndexEdit", "OverlaySource", "SpooledBlob", "edit_images", "write_edit"]
