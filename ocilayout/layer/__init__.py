"""Layer tars: a deterministic writer (from a directory, or re-emitting entries of existing layers), a
validating reader, whiteout-aware squashing, and one-pass hashing + compression into a spool.

* :mod:`.entries` -- the entry policy (owners, mtimes) and the header writer every new tar goes through.
* :mod:`.fromdir` -- a directory as a layer tar (sorted, hardlinks, whiteouts; refuses what a layer
  cannot hold).
* :mod:`.reader` -- reading layer tars without trusting them (names, link targets, entry types).
* :mod:`.squash` -- applying layers (whiteouts, opaque directories) and emitting the result sorted.
* :mod:`.sink` -- uncompressed bytes in, diff_id + compressed digest out, in one pass, constant memory.

Layers this tool creates carry the annotation :data:`MARKER` on their descriptor (OCI manifests), which
``normalize`` uses to tell them from base layers.
"""

from __future__ import annotations

#: Layer descriptor annotation on layers ocilayout wrote (value: the command that wrote it).
MARKER = "io.github.ocilayout.layer.created-by"

__all__ = ["MARKER"]
