"""``oci-archive:`` tarballs: an OCI layout in a tar, read in place and written deterministically.

An oci-archive is a tar of an OCI image layout (``oci-layout``, ``index.json``, ``blobs/<alg>/<hex>``), as
skopeo / containers-image write it. The tar machinery (safe index, ``pread`` member streams, the
deterministic writer) is :mod:`ocilayout.tarfs`; this module adds the layout on top:

* :class:`ArchiveReader` is a :class:`~ocilayout.store.LayoutReader` over a :class:`~ocilayout.tarfs.TarTree`;
  a gzip/zstd/xz/bzip2-compressed outer tar (which skopeo accepts too) is decompressed once, streaming, into
  an anonymous temp file and read from there. Writing into a compressed archive is refused: ocilayout
  writes uncompressed tars, and rewriting ``a.tar.gz`` uncompressed under its old name would be a lie.
* :func:`commit_archive` streams every blob of a staging layout, of the existing archive (by offset, never
  extracted) and of ``extra`` openers into a temp tar beside the destination, verifying each blob's digest
  while copying, then fsyncs and renames. Before anything is written it checks that everything the new
  ``index.json`` entries reach is in the result, so a tag never points at a missing blob.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .descriptor import Descriptor
from .digest import CHUNK, Digest, VerifyingReader
from .errors import InvalidManifest, LayoutError, NotFound, OcilayoutError
from .index import entry_name, merge_entries, parse_index_doc
from .manifest import Manifest, canonical_json
from .store import INDEX_FILE, LAYOUT_DOC, LAYOUT_FILE, LayoutReader, LayoutStore, blob_digest, blob_relpath
from .tarfs import Member, TarTree, TarWriter, source_date_epoch

__all__ = ["ArchiveBlob", "ArchiveReader", "Member", "archive_lock", "commit_archive", "source_date_epoch"]


class ArchiveReader(LayoutReader):
    """A read-only OCI layout inside a tar file, read in place. Use :meth:`open`; close when done."""

    def __init__(self, tree: TarTree) -> None:
        super().__init__(tree)
        self.path = tree.path
        self.tar = tree

    @classmethod
    def open(cls, path: Path | str) -> ArchiveReader:
        """Index the tar at ``path`` (headers only) and check its ``oci-layout`` file.

        Raises NotFound when the file is missing; LayoutError for a non-tar, truncated or malformed archive
        or one without an ``oci-layout``; UnsafePath for members or links that escape. A compressed archive
        is decompressed into an anonymous temp file first (see :func:`~ocilayout.tarfs.spool_decompressed`).
        """
        tree = TarTree.load(path, "oci-archive")
        try:
            reader = cls(tree)
            reader.check_layout_file()
        except BaseException:
            tree.close()
            raise
        return reader

    def __enter__(self) -> ArchiveReader:
        return self

    def all_blobs(self) -> Iterator[tuple[Digest, int]]:
        """Every well-named blob (``blobs/<alg>/<hex>``, links followed) with its size, in sorted order."""
        for name in self.tar.names():
            digest = blob_digest(name)
            if digest is None:
                continue
            m = self.tar.lookup(name)
            if m is not None and m.kind == "file":
                yield digest, m.size

    def verify_blobs(self) -> int:
        """Hash every stored blob against its name; returns the count. Raises DigestMismatch."""
        count = 0
        for digest, size in self.all_blobs():
            with VerifyingReader(self._open(blob_relpath(digest)), digest, size) as r:
                while r.read(CHUNK):
                    pass
            count += 1
        return count


@dataclass(frozen=True, slots=True)
class ArchiveBlob:
    """A blob :func:`commit_archive` takes from elsewhere: an opener of its stored bytes and their size."""

    open: Callable[[], BinaryIO]
    size: int


def archive_lock(directory: Path) -> contextlib.AbstractContextManager[None]:
    """Serialize archive updates in one directory (flock on the directory itself; no lock file).

    Re-entrant within a thread, so a caller can read an archive, decide, and :func:`commit_archive` it
    under one lock (as appending a signature does). Two archives in one directory serialise too: harmless,
    and it needs no lock file beside archives.
    """
    return _dir_lock(Path(directory).resolve())


_held = threading.local()


@contextlib.contextmanager
def _dir_lock(directory: Path) -> Iterator[None]:
    held: set[Path] = _held.__dict__.setdefault("dirs", set())
    if directory in held:
        yield
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        held.add(directory)
        try:
            yield
        finally:
            held.discard(directory)
    finally:
        os.close(fd)


def commit_archive(out: Path, staging: LayoutStore, *, base: Path | None = None, epoch: int | None = None,
                   extra: Mapping[Digest, ArchiveBlob] | None = None,
                   progress: Callable[[int], None] | None = None, replaced: frozenset[str] = frozenset()) -> None:
    """Write the oci-archive ``out`` atomically from ``staging`` plus the existing archive ``base``.

    ``base`` defaults to ``out`` when it exists, so appending keeps the archive's other images. The result
    holds every blob of both (each verified against its digest while copied; old blobs streamed from the
    base archive by offset) and the base's ``index.json`` entries with the staging entries merged in (a
    named entry replaces one of the same name). Same input, same bytes (see
    :func:`~ocilayout.tarfs.source_date_epoch`). On any error ``out`` is unchanged and no temp file is
    left. Raises LayoutError, NotFound, IntegrityError, InvalidManifest.

    ``extra`` adds blobs streamed from elsewhere (copy's source): a blob goes from its source into the
    archive in one pass, never staged. ``progress`` receives the byte count of each chunk of those blobs.
    The base's untagged entries of a digest in ``replaced`` are dropped (:func:`~ocilayout.index.merge_entries`).
    """
    out = Path(out)
    mtime = source_date_epoch(epoch)
    parent = out.parent if str(out.parent) else Path(".")
    if out.is_dir():
        raise LayoutError(f"{out} is a directory; an oci-archive is a file")
    if not parent.is_dir():
        raise NotFound(f"cannot write {out}: directory {parent} does not exist")
    staging.check_layout_file()
    with archive_lock(parent):
        base_path = Path(base) if base is not None else (out if out.exists() else None)
        old = ArchiveReader.open(base_path) if base_path is not None else None
        try:
            if old is not None and old.tar.compression != "none":
                raise LayoutError(f"{base_path} is {old.tar.compression}-compressed; ocilayout writes uncompressed "
                                  "archives and cannot add to it: decompress it first")
            _write(out, staging, old, mtime, extra or {}, progress, replaced)
        finally:
            if old is not None:
                old.close()


class _Sources:
    """Where each blob of the new archive comes from (staging first: a local file is the cheapest read)."""

    def __init__(self, staging: LayoutStore, old: ArchiveReader | None, extra: Mapping[Digest, ArchiveBlob]):
        self.blobs: dict[Digest, ArchiveBlob] = {}
        if old is not None:
            for digest, size in old.all_blobs():
                self.blobs[digest] = ArchiveBlob(_opener(old, digest), size)
        self.blobs.update(extra)
        for digest, size in staging.all_blobs():
            self.blobs[digest] = ArchiveBlob(_opener(staging, digest), size)

    # graph.ContentReader, for the closure check
    def stat_blob(self, digest: Digest) -> int | None:
        blob = self.blobs.get(digest)
        return blob.size if blob is not None else None

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        blob = self.blobs.get(desc.digest)
        if blob is None:
            raise NotFound(f"blob {desc.digest} is in neither the staging layout nor the archive")
        return blob.open()

    def get_manifest(self, desc: Descriptor) -> Manifest:
        from .digest import read_verified

        if desc.size > (4 << 20):
            raise InvalidManifest(f"manifest {desc.digest} is over the size limit")
        with self.open_blob(desc) as f:
            return Manifest.parse(read_verified(f, desc), desc.media_type)


def _opener(reader: LayoutReader, digest: Digest) -> Callable[[], BinaryIO]:
    return lambda: reader.open_blob(digest, verify=False)


def _check_closure(out: Path, sources: _Sources, entries: list[dict[str, object]]) -> None:
    """Everything the new ``entries`` reach must be in ``sources`` (a foreign layer or a referrer's subject
    may be absent); raises NotFound, or the error that made a manifest unreadable."""
    from .graph import SUBJECT, WalkProblem, walk

    roots = []
    for entry in entries:
        try:
            roots.append(Descriptor.from_dict(entry))
        except OcilayoutError as err:
            raise InvalidManifest(f"index.json entry {entry_name(entry) or ''}: {err}".replace("  ", " ")) from err
    problems: list[WalkProblem] = []
    nodes = list(walk(sources, roots, problems))
    for p in problems:
        if not p.missing and p.error is not None:
            raise p.error
    for node in nodes:
        if node.size is None and node.role != SUBJECT and not node.descriptor.urls:
            raise NotFound(f"cannot write {out}: {node.descriptor.digest} ({node.role}) is in neither the "
                           "staging layout nor the existing archive")


def _write(out: Path, staging: LayoutStore, old: ArchiveReader | None, mtime: int,
           extra: Mapping[Digest, ArchiveBlob], progress: Callable[[int], None] | None,
           replaced: frozenset[str] = frozenset()) -> None:
    new_doc = parse_index_doc(staging.index_bytes(), staging.location)
    if old is not None:
        old_raw = old.index_bytes()
        doc = parse_index_doc(old_raw, old.location)
        doc["manifests"] = merge_entries(doc["manifests"], new_doc["manifests"], replaced)
        index_raw = old_raw if not new_doc["manifests"] and not replaced else canonical_json(doc)
    else:
        doc = new_doc
        index_raw = canonical_json(doc)
    sources = _Sources(staging, old, extra)
    _check_closure(out, sources, new_doc["manifests"])
    try:
        with TarWriter(out, mtime=mtime) as tar:
            tar.add_bytes(LAYOUT_FILE, LAYOUT_DOC)
            tar.add_bytes(INDEX_FILE, index_raw)
            tar.add_dir("blobs")
            current_alg = None
            for digest in sorted(sources.blobs, key=lambda d: (d.algorithm, d.hex)):
                blob = sources.blobs[digest]
                if digest.algorithm != current_alg:
                    current_alg = digest.algorithm
                    tar.add_dir(f"blobs/{current_alg}")
                with blob.open() as raw:
                    tar.add_stream(blob_relpath(digest), blob.size, VerifyingReader(raw, digest, blob.size),
                                   progress if digest in extra else None)
            tar.commit()
    except OcilayoutError as err:
        err.add_note(f"while writing {out}; it was left unchanged")
        raise
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise LayoutError(f"no space left on device while writing {out}") from err
        raise LayoutError(f"writing {out}: {err.strerror or err}") from err
