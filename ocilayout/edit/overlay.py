"""A Source that is another Source plus new content: what every edit (mutate, append, flatten, normalize,
index, attach) hands to copy.

An edit never writes anything itself. It reads the base image, makes new blobs (configs in memory, layers in
unlinked temporary files) and new manifests, and registers them here; :func:`ocilayout.copy.copy` then
writes the overlay like any other source, so the destination's atomic commit, locking, digest checks and
gc safety apply unchanged. In-place editing is a copy onto the reference that was read: the old blobs stay
(for gc), the name moves last.

Digests are computed here for what is added (the bytes are hashed as they are registered); ``open_blob``
returns the stored bytes, which the destination verifies as it writes them.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, BinaryIO, cast

from ..descriptor import Descriptor
from ..digest import Digest
from ..errors import NotFound
from ..manifest import Manifest
from ..transports.base import Source

if TYPE_CHECKING:
    from ..signature.model import Signature

__all__ = ["OverlaySource", "SpooledBlob"]


class SpooledBlob:
    """A blob held in an (unlinked) temporary file, read by independent positioned readers.

    The file is owned by the blob: :meth:`close` closes it. Readers use ``os.pread``, so several threads may
    read the same blob at once."""

    def __init__(self, file: BinaryIO, size: int) -> None:
        self._file = file
        self._fd = file.fileno()
        self.size = size

    def open(self) -> BinaryIO:
        """A new buffered reader over the whole blob (with ``region()``: destinations copy it in the kernel)."""
        return cast(BinaryIO, _SpoolReader(_PReader(self._fd, self.size), 1 << 20))

    def close(self) -> None:
        self._file.close()


class _SpoolReader(io.BufferedReader):
    """A reader of a spooled blob that says where its unread bytes are (see ``streams.region_of``): without
    it a large blob reached ``fileno()``, which a buffered reader over a raw pread stream does not have."""

    def region(self) -> tuple[int, int, int]:
        raw = cast(_PReader, self.raw)
        pos = self.tell()
        return raw._fd, pos, raw._size - pos


class _PReader(io.RawIOBase):
    def __init__(self, fd: int, size: int) -> None:
        self._fd, self._size, self._pos = fd, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(buf), self._size - self._pos)
        if n <= 0:
            return 0
        data = os.pread(self._fd, n, self._pos)
        buf[: len(data)] = data
        self._pos += len(data)
        return len(data)


class OverlaySource:
    """``base`` with added blobs and manifests, rooted at :attr:`root` (the base's root until
    :meth:`set_root`). Signatures and referrers are those of the base, for the manifests the overlay did not
    add. :meth:`add_source` adds more bases (images from other layouts an index lists).

    Closing the overlay closes the spooled blobs; the base is closed only with ``own_base=True``.
    """

    def __init__(self, base: Source, *, own_base: bool = False) -> None:
        self.base = base
        self.ref = base.ref
        self.root: Descriptor = base.root
        self._own_base = own_base
        self._bytes: dict[Digest, bytes] = {}
        self._spooled: dict[Digest, SpooledBlob] = {}
        self._manifests: dict[Digest, Manifest] = {}
        self._lock = threading.Lock()
        self._sources: list[Source] = []  # more bases (add_source), owned by the overlay
        self._owner: dict[Digest, Source] = {}

    # -- adding content -------------------------------------------------------------------------------------
    def add_bytes(self, data: bytes, media_type: str, *, algorithm: str = "sha256") -> Descriptor:
        """Register a small blob (a config, an artifact file) held in memory; returns its descriptor."""
        digest = Digest.of(data, algorithm)
        with self._lock:
            self._bytes.setdefault(digest, data)
        return Descriptor(media_type=media_type, digest=digest, size=len(data))

    def add_spooled(self, blob: SpooledBlob, digest: Digest, media_type: str) -> Descriptor:
        """Register a blob already hashed while it was spooled (a new layer); the overlay owns ``blob``."""
        with self._lock:
            old = self._spooled.get(digest)
            if old is not None:
                blob.close()  # the same bytes made twice (two platforms, one new layer)
            else:
                self._spooled[digest] = blob
        return Descriptor(media_type=media_type, digest=digest, size=blob.size)

    def add_manifest(self, manifest: Manifest) -> Descriptor:
        """Register a new manifest or index; returns its descriptor."""
        with self._lock:
            self._manifests.setdefault(manifest.digest, manifest)
        return manifest.descriptor

    def add_source(self, source: Source) -> Descriptor:
        """Add another base (an image from another layout, for ``index create`` / ``index add``): the manifests
        and blobs its tree holds are read from it (the overlay owns and closes it). Returns its root. Raises
        what reading its manifests raises."""
        from ..graph import walk

        with self._lock:
            self._sources.append(source)
        for node in walk(source, [source.root], follow_subject=False):
            with self._lock:
                self._owner.setdefault(node.descriptor.digest, source)
        return source.root

    def _source_for(self, digest: Digest) -> Source:
        """The base that holds ``digest``: the one whose tree has it, else the first that stores it."""
        owner = self._owner.get(digest)
        if owner is not None or not self._sources:
            return owner or self.base
        for src in (self.base, *self._sources):
            if src.stat_blob(digest) is not None:
                return src
        return self.base

    def set_root(self, desc: Descriptor) -> None:
        """Make ``desc`` (an added manifest, or one of the base) the image this source names."""
        self.root = desc

    def is_new(self, digest: Digest) -> bool:
        """True for content this overlay added."""
        return digest in self._manifests or digest in self._bytes or digest in self._spooled

    # -- Source --------------------------------------------------------------------------------------------
    def get_manifest(self, desc: Descriptor | None = None) -> Manifest:
        desc = desc or self.root
        m = self._manifests.get(desc.digest)
        if m is not None:
            return m
        return self._source_for(desc.digest).get_manifest(desc)

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        if desc.digest in self._manifests:
            return io.BytesIO(self._manifests[desc.digest].raw)
        if desc.digest in self._bytes:
            return io.BytesIO(self._bytes[desc.digest])
        spooled = self._spooled.get(desc.digest)
        if spooled is not None:
            return spooled.open()
        return self._source_for(desc.digest).open_blob(desc)

    def stat_blob(self, digest: Digest) -> int | None:
        if digest in self._manifests:
            return len(self._manifests[digest].raw)
        if digest in self._bytes:
            return len(self._bytes[digest])
        if digest in self._spooled:
            return self._spooled[digest].size
        return self._source_for(digest).stat_blob(digest)

    def signatures(self, manifest_digest: Digest) -> Sequence[Signature]:
        if self.is_new(manifest_digest):
            return ()
        return self._source_for(manifest_digest).signatures(manifest_digest)

    def referrers(self, manifest_digest: Digest) -> Sequence[Descriptor]:
        """The base's referrers of a manifest the overlay did not add (a new manifest has none yet)."""
        if self.is_new(manifest_digest):
            return ()
        return self._source_for(manifest_digest).referrers(manifest_digest)

    def blob_bytes(self, desc: Descriptor) -> bytes:
        """A small blob's verified bytes, from the overlay or the base; raises NotFound, IntegrityError."""
        from ..transports.base import read_blob_bytes

        if desc.digest in self._bytes:
            return self._bytes[desc.digest]
        if not self.is_new(desc.digest) and self._source_for(desc.digest).stat_blob(desc.digest) is None:
            raise NotFound(f"blob {desc.digest} is not in {self.ref}")
        return read_blob_bytes(self, desc)

    def close(self) -> None:
        for blob in self._spooled.values():
            blob.close()
        self._spooled.clear()
        for src in self._sources:
            src.close()
        self._sources.clear()
        if self._own_base:
            self.base.close()

    def __enter__(self) -> OverlaySource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
