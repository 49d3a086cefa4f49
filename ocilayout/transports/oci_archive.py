"""``oci-archive:`` tarballs: read through :class:`~ocilayout.transports.oci.LayoutSource` over an
:class:`~ocilayout.archive.ArchiveReader`; written by :class:`ArchiveDestination`, one tar per commit."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..descriptor import Descriptor
from ..digest import Digest
from ..errors import LayoutError, NotFound, UnsupportedFormat
from ..fsutil import discard_temp_dir, locked_temp_dir, remove_stale_beside
from ..index import merge_entries
from ..manifest import Manifest
from ..reference import ImageReference
from ..store import LayoutReader, LayoutStore
from .base import BlobOpener, ProgressFn, Transport
from .oci import LAYOUT_CAPABILITIES, LayoutDestination, LayoutSource, manifest_descriptor

if TYPE_CHECKING:
    from ..archive import ArchiveBlob
    from ..signature.model import Signature

__all__ = ["ArchiveDestination", "OciArchiveTransport"]


class ArchiveDestination:
    """Destination for ``oci-archive:FILE[:REF]``.

    Blobs with a known digest are not copied anywhere before commit: their openers are kept and the
    archive is written in one pass, each blob streamed from its source into the tar and verified on the
    way. Manifests, signatures and blobs whose digest is not known yet are staged in a temporary layout in
    the archive's directory. ``commit`` rewrites the whole archive atomically under the directory lock,
    keeping the images the archive holds then.
    """

    capabilities = LAYOUT_CAPABILITIES

    def __init__(self, ref: ImageReference) -> None:
        from ..archive import ArchiveReader

        self.ref = ref
        self.path = Path(ref.path)
        if self.path.is_dir():
            raise LayoutError(f"{self.path} is a directory; oci-archive: wants a file (use oci: for a layout)")
        parent = self.path.parent if str(self.path.parent) else Path(".")
        if not parent.is_dir():
            raise LayoutError(f"cannot write {self.path}: directory {parent} does not exist")
        self.base: LayoutReader | None = ArchiveReader.open(self.path) if self.path.exists() else None
        if self.base is not None and self.base.tree.exists("manifest.json"):
            self.base.close()
            raise UnsupportedFormat(f"{self.path} is a Docker 25+ archive (an OCI layout with docker's manifest.json); "
                                    "rewriting it as oci-archive: would drop manifest.json and repositories: "
                                    "write to it with docker-archive: --dest-docker-archive-format oci-hybrid")
        self._deferred: dict[Digest, ArchiveBlob] = {}
        self._progress: ProgressFn | None = None
        remove_stale_beside(parent)
        self._dir, self._dir_fd = locked_temp_dir(parent, ".archive")
        try:
            self._inner = LayoutDestination(ImageReference("oci", str(self._dir), ref.ref),
                                            LayoutStore.create(self._dir))
        except BaseException:
            self.close()
            raise

    def has_blob(self, desc: Descriptor) -> bool:
        if desc.digest in self._deferred or self._inner.has_blob(desc):
            return True
        return self.base is not None and self.base.stat_blob(desc.digest) == desc.size

    def put_blob(self, open_: BlobOpener, expected: Descriptor | None, *, media_type: str,
                 progress: ProgressFn | None = None) -> Descriptor:
        if expected is None:  # its size is needed for the tar header: stage it now
            return self._inner.put_blob(open_, None, media_type=media_type, progress=progress)
        from ..archive import ArchiveBlob

        self._deferred[expected.digest] = ArchiveBlob(open_, expected.size)
        self._progress = progress
        return expected.with_(media_type=media_type)

    def put_manifest(self, manifest: Manifest, *, algorithm: str = "sha256") -> Descriptor:
        desc = manifest_descriptor(manifest, algorithm)
        if self.has_blob(desc):
            return desc
        return self._inner.put_manifest(manifest, algorithm=algorithm)

    def tag(self, desc: Descriptor, name: str | None, *, image_name: str | None = None,
            replaces: Digest | None = None, expects: Digest | None = None) -> None:
        self._inner.tag(desc, name, image_name=image_name, replaces=replaces, expects=expects)

    def put_signatures(self, manifest_digest: Digest, sigs: Sequence[Signature]) -> None:
        self._inner.put_signatures(manifest_digest, sigs)

    def put_referrers(self, subject: Digest, referrers: Sequence[Descriptor]) -> None:
        self._inner.put_referrers(subject, referrers)

    def commit(self) -> None:
        from ..archive import ArchiveReader, archive_lock, commit_archive

        if self.base is not None:
            self.base.close()
            self.base = None
        parent = self.path.parent if str(self.path.parent) else Path(".")
        with archive_lock(parent):
            # Signatures are appended to the .sig manifests the archive holds now (and referrers merged into
            # its fallback indexes), under the lock other writers of this directory take: all survive.
            current = ArchiveReader.open(self.path) if self.path.exists() else None
            try:
                inner = self._inner
                inner.check_expected(current if current is not None else inner.store)
                new = inner.staged_entries(current if current is not None else inner.store)
                inner.staging.publish()
                if new:
                    # Entries may point at blobs only the archive or the deferred openers hold;
                    # commit_archive checks the closure of every new entry before it writes.
                    inner.store.update_index(lambda entries: merge_entries(entries, new, inner.replaced))
            finally:
                if current is not None:
                    current.close()
            if not new and not self._deferred and self.path.exists():
                return  # nothing to add
            commit_archive(self.path, inner.store, extra=self._deferred, progress=self._progress,
                           replaced=frozenset(inner.replaced))

    def close(self) -> None:
        inner = getattr(self, "_inner", None)
        if inner is not None:
            inner.close()
        self._dir_fd = discard_temp_dir(self._dir, self._dir_fd)
        if self.base is not None:
            self.base.close()
            self.base = None


class OciArchiveTransport(Transport):
    """``oci-archive:FILE[:REF|@DIGEST]``: a tar of an OCI layout, read in place."""

    name = "oci-archive"

    def open_source(self, ref: ImageReference) -> LayoutSource:
        return LayoutSource(ref, self.open_reader(ref))

    def open_destination(self, ref: ImageReference) -> ArchiveDestination:
        return ArchiveDestination(ref)

    def list_names(self, ref: ImageReference) -> list[str]:
        with self.open_reader(ref) as reader:
            return reader.refs()

    def open_reader(self, ref: ImageReference) -> LayoutReader:
        from ..archive import ArchiveReader

        if not Path(ref.path).exists():
            raise NotFound(f"{ref.path}: no such archive")
        return ArchiveReader.open(ref.path)
