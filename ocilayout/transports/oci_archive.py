"""``oci-archive:`` tarballs as a copy destination: a staging layout beside the file, one tar at commit."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ..descriptor import Descriptor
from ..errors import LayoutError
from ..fsutil import TMP_PREFIX
from ..manifest import Manifest
from ..reference import ImageReference
from ..store import LayoutReader
from .base import Capabilities
from .oci import LayoutDestination, index_entry

__all__ = ["ArchiveDestination"]


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
        parent = self.path.parent if str(self.path.parent) else Path(".")
        if not parent.is_dir():
            raise LayoutError(f"cannot write {self.path}: directory {parent} does not exist")
        self._dir = parent / f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(8)}.archive"
        try:
            self._inner = LayoutDestination(ImageReference("oci", str(self._dir), ref.ref))
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            if self.base is not None:
                self.base.close()
            raise

    def has_blob(self, desc: Descriptor) -> bool:
        if self._inner.has_blob(desc):
            return True
        return self.base is not None and self.base.has_blob(desc.digest) and \
            self.base.blob_size(desc.digest) == desc.size

    def put_blob(self, stream: BinaryIO, expected: Descriptor,
                 progress: Callable[[int], None] | None = None) -> Descriptor:
        return self._inner.put_blob(stream, expected, progress)

    def put_manifest(self, manifest: Manifest) -> Descriptor:
        desc = manifest.descriptor
        if self.has_blob(desc):
            return desc
        return self._inner.put_manifest(manifest)

    def commit(self, root: Descriptor) -> None:
        from ..archive import commit_archive

        self._inner.staging.publish()
        self._inner.store.set_ref(self.ref.ref, index_entry(root))
        if self.base is not None:
            self.base.close()
            self.base = None
        commit_archive(self.path, self._inner.store)

    def close(self) -> None:
        self._inner.close()
        shutil.rmtree(self._dir, ignore_errors=True)
        if self.base is not None:
            self.base.close()
            self.base = None
