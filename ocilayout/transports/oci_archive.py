"""``oci-archive:`` tarballs as a copy destination: a staging layout beside the file, one tar at commit."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from ..descriptor import Descriptor
from ..digest import Digest
from ..errors import LayoutError
from ..fsutil import TMP_PREFIX, is_stale_temp, locked_temp_dir
from ..graph import walk
from ..manifest import Manifest
from ..reference import ImageReference
from ..store import LayoutReader
from .base import Capabilities
from .oci import LayoutDestination, index_entry

__all__ = ["ArchiveDestination"]


def _remove_stale_staging(parent: Path) -> None:
    """Remove what killed archive writers left beside their archives: staging layouts and temp tars whose
    writer is gone (no live flock inside). Only names with ocilayout's temp prefix are touched."""
    for entry in parent.glob(TMP_PREFIX + "*"):
        if not is_stale_temp(entry):
            continue
        if entry.is_dir() and entry.name.endswith(".archive"):
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.is_file():
            entry.unlink(missing_ok=True)


class ArchiveDestination:
    """Copy destination for ``oci-archive:FILE[:REF]``.

    Blobs are staged in a temporary layout in the archive's directory (same filesystem); ``commit``
    writes the whole archive atomically, keeping the images an existing archive already holds. Blobs the
    existing archive has are not staged again.
    """

    capabilities = Capabilities()

    def __init__(self, ref: ImageReference) -> None:
        from ..archive import ArchiveReader

        self.ref = ref
        self.path = Path(ref.path)
        if self.path.is_dir():
            raise LayoutError(f"{self.path} is a directory; oci-archive: wants a file (use oci: for a layout)")
        self.base: LayoutReader | None = ArchiveReader.open(self.path) if self.path.exists() else None
        self._deferred: dict[Digest, tuple[LayoutReader, int]] = {}
        self._signatures: list[tuple[Digest, Any]] = []
        self._progress: Callable[[int], None] | None = None
        parent = self.path.parent if str(self.path.parent) else Path(".")
        if not parent.is_dir():
            raise LayoutError(f"cannot write {self.path}: directory {parent} does not exist")
        _remove_stale_staging(parent)
        self._dir, self._dir_fd = locked_temp_dir(parent, ".archive")
        try:
            self._inner = LayoutDestination(ImageReference("oci", str(self._dir), ref.ref))
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            os.close(self._dir_fd)
            if self.base is not None:
                self.base.close()
            raise

    def has_blob(self, desc: Descriptor) -> bool:
        if desc.digest in self._deferred or self._inner.has_blob(desc):
            return True
        return self.base is not None and self.base.has_blob(desc.digest) and \
            self.base.blob_size(desc.digest) == desc.size

    def put_blob(self, stream: BinaryIO, expected: Descriptor,
                 progress: Callable[[int], None] | None = None) -> Descriptor:
        return self._inner.put_blob(stream, expected, progress)

    def add_source_blob(self, desc: Descriptor, reader: LayoutReader,
                        progress: Callable[[int], None] | None = None) -> None:
        """Take a blob straight from ``reader`` at commit (verified as it is written): one pass, no staging.

        ``reader`` must stay open until :meth:`commit`.
        """
        self._deferred[desc.digest] = (reader, desc.size)
        self._progress = progress

    def stage_signatures(self, items: Sequence[tuple[Digest, Any]]) -> None:
        """Sigstore signatures (manifest digest, signature) to write with the image at :meth:`commit`,
        appended to the ``.sig`` manifests the archive holds for those digests then."""
        self._signatures.extend(items)

    def _merge_signatures(self, base: LayoutReader | None) -> None:
        """Stage :attr:`_signatures` on top of ``base``'s current ``.sig`` manifests (call under the lock)."""
        from ..signature.storage import LayoutSignatures, sig_tag

        staging = self._inner.store
        for digest in dict.fromkeys(d for d, _ in self._signatures):
            tag = sig_tag(digest)
            if base is not None and tag in base.refs() and tag not in staging.refs():
                # seed the staging layout with the archive's current .sig manifest, so adding appends to it
                old = base.resolve(tag)
                for node in walk(base, [old]):
                    with base.open_blob(node.descriptor) as f:
                        staging.put_blob(f, node.descriptor)
                staging.set_ref(tag, old)
        store = LayoutSignatures(staging)
        for digest, sig in self._signatures:
            store.add(digest, sig)

    def put_manifest(self, manifest: Manifest) -> Descriptor:
        desc = manifest.descriptor
        if self.has_blob(desc):
            return desc
        return self._inner.put_manifest(manifest)

    def commit(self, root: Descriptor) -> None:
        from ..archive import ArchiveReader, archive_lock, commit_archive

        self._inner.staging.publish()
        # The image may be wholly in the existing archive already (a re-copy): commit_archive checks that
        # every entry's blob is in the staging layout or the archive.
        self._inner.store.set_ref(self.ref.ref, index_entry(root), require_blob=False)
        if self.base is not None:
            self.base.close()
            self.base = None
        with archive_lock(self.path.parent):
            if self._signatures:  # merged with the archive as it is now, under the lock other writers take
                base = ArchiveReader.open(self.path) if self.path.exists() else None
                try:
                    self._merge_signatures(base)
                finally:
                    if base is not None:
                        base.close()
            commit_archive(self.path, self._inner.store, extra=self._deferred, progress=self._progress)

    def close(self) -> None:
        self._inner.close()
        if self._dir_fd >= 0:
            shutil.rmtree(self._dir, ignore_errors=True)
            os.close(self._dir_fd)
            self._dir_fd = -1
        if self.base is not None:
            self.base.close()
            self.base = None
