"""``oci:`` layout directories as a copy destination: blobs staged in the layout, published at commit."""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ..descriptor import CONTAINERD_NAME, REF_NAME, Descriptor
from ..digest import Digest, VerifyingReader
from ..errors import DigestMismatch, LayoutError, SizeMismatch
from ..fsutil import fsync_dir, locked_temp_dir
from ..manifest import Manifest
from ..reference import ImageReference
from ..store import LayoutStore
from ..streams import PIPELINE_MIN, copy_region_hashed, pump, region_of
from .base import Capabilities

__all__ = ["LayoutDestination", "StagingArea", "index_entry"]


def index_entry(root: Descriptor) -> Descriptor:
    """The descriptor to record in a destination's index.json: the source's names are dropped."""
    annotations = {k: v for k, v in root.annotations.items() if k not in (REF_NAME, CONTAINERD_NAME)}
    return root.with_(annotations=annotations)


class StagingArea:
    """A flock()ed directory inside a layout where verified blobs wait for :meth:`publish`.

    Staged blobs are invisible to readers of the layout; a process killed while staging leaves only this
    directory behind, which ``gc`` recognises as a dead writer's (its lock is free) and removes.
    """

    def __init__(self, store: LayoutStore) -> None:
        self.store = store
        self.path, self._fd = locked_temp_dir(store.root)
        self._staged: dict[Digest, int] = {}
        self._lock = threading.Lock()

    def has(self, digest: Digest) -> bool:
        with self._lock:
            return digest in self._staged

    def put(self, stream: BinaryIO, expected: Descriptor | None,
            progress: Callable[[int], None] | None = None) -> tuple[Digest, int]:
        """Write ``stream`` into the staging area, hashing as it goes; raises IntegrityError on mismatch.

        A large blob that is a plain file or an archive member is copied by the kernel
        (``copy_file_range``) while the copy is hashed; anything else is streamed through a
        :class:`VerifyingReader`. Either way the digest checked is that of the bytes written.
        """
        tmp = self.path / f"incoming-{secrets.token_hex(8)}"
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            with open(fd, "r+b", buffering=0) as f:
                digest, size = self._fill(f, stream, expected, progress)
                os.fsync(f.fileno())
            os.replace(tmp, self.path / f"{digest.algorithm}-{digest.hex}")
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        with self._lock:
            self._staged[digest] = size
        return digest, size

    @staticmethod
    def _fill(f: BinaryIO, stream: BinaryIO, expected: Descriptor | None,
              progress: Callable[[int], None] | None) -> tuple[Digest, int]:
        if expected is not None and expected.size > PIPELINE_MIN:
            region = region_of(stream)
            if region is not None:
                if region[2] != expected.size:
                    raise SizeMismatch(f"blob {expected.digest} is {region[2]} bytes, expected {expected.size}")
                got = copy_region_hashed(region, f.fileno(), expected.digest.algorithm, progress)
                if got is not None:
                    if got != expected.digest:
                        raise DigestMismatch(f"blob digest mismatch: expected {expected.digest}, got {got}")
                    return got, expected.size
        reader = VerifyingReader(stream, expected.digest if expected else None,
                                 expected.size if expected else None)
        pump(reader, f, progress, pipelined=expected is None or expected.size > PIPELINE_MIN)
        return reader.digest, reader.size

    def publish(self) -> None:
        """Move every staged blob into ``blobs/`` (rename, then fsync the directories)."""
        dirs: set[Path] = set()
        for digest in sorted(self._staged, key=str):
            final = self.store.blob_path(digest)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(self.path / f"{digest.algorithm}-{digest.hex}", 0o644)
            os.replace(self.path / f"{digest.algorithm}-{digest.hex}", final)
            dirs.add(final.parent)
        for d in dirs:
            fsync_dir(d)
        self._staged.clear()

    def discard(self) -> None:
        """Remove the staging directory and whatever is left in it."""
        if self._fd >= 0:
            shutil.rmtree(self.path, ignore_errors=True)
            os.close(self._fd)
            self._fd = -1


class LayoutDestination:
    """Copy destination for ``oci:PATH[:REF]``. The layout is created if missing."""

    capabilities = Capabilities()

    def __init__(self, ref: ImageReference) -> None:
        self.ref = ref
        try:
            self.store = LayoutStore.create(ref.path)
            self.staging = StagingArea(self.store)
            self._reused: set[Digest] = set()
        except OSError as err:
            raise LayoutError(f"cannot write layout {ref.path}: {err.strerror or err}") from err

    def has_blob(self, desc: Descriptor) -> bool:
        if self.staging.has(desc.digest):
            return True
        if self.store.has_blob(desc.digest) and self.store.blob_size(desc.digest) == desc.size:
            self._reused.add(desc.digest)
            return True
        return False

    def put_blob(self, stream: BinaryIO, expected: Descriptor,
                 progress: Callable[[int], None] | None = None) -> Descriptor:
        self.staging.put(stream, expected, progress)
        return expected

    def put_manifest(self, manifest: Manifest) -> Descriptor:
        desc = manifest.descriptor
        if not self.has_blob(desc):
            self.staging.put(io.BytesIO(manifest.raw), desc)
        return desc

    def commit(self, root: Descriptor) -> None:
        """Publish staged blobs and write the tag, under the layout lock that gc also takes.

        Blobs the copy skipped because the layout had them are checked again under the lock: a gc that
        ran meanwhile may have removed them (they were unreferenced), and a tag must never point at a
        missing blob. Raises LayoutError then, leaving the layout unchanged.
        """
        with self.store.locked():
            gone = [d for d in self._reused if not self.store.has_blob(d)]
            if gone:
                raise LayoutError(f"{len(gone)} blob(s) this copy reused were removed by a concurrent gc; "
                                  "run the copy again")
            self.staging.publish()
            self.store.set_ref(self.ref.ref, index_entry(root))

    def close(self) -> None:
        self.staging.discard()
