"""``oci:`` layout directories: :class:`LayoutSource` (also used for archives) and :class:`LayoutDestination`.

A destination stages blobs in a flock()ed directory inside the layout (same filesystem, invisible to
readers); ``commit`` takes the layout lock (the one gc takes), re-checks the blobs it reused, merges staged
signatures with the ``.sig`` manifests the layout holds *now*, renames every staged blob into ``blobs/`` and
writes ``index.json`` once (the image's names and the ``.sig`` tags together). A failure before that write
removes what was published, so the layout is left exactly as it was.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from .. import mediatypes as mt
from ..descriptor import CONTAINERD_NAME, Descriptor
from ..digest import Digest
from ..errors import ConcurrentEdit, Conflict, LayoutError, NotFound, OcilayoutError, UnsupportedFormat
from ..fsutil import discard_temp_dir, fsync_dir, locked_temp_dir
from ..index import index_entry, merge_entries, with_name
from ..manifest import Manifest
from ..reference import ImageReference
from ..store import LayoutReader, LayoutStore, os_error
from ..streams import write_verified
from .base import BlobOpener, Capabilities, ProgressFn, Transport

if TYPE_CHECKING:
    from ..signature.model import Signature

__all__ = ["LAYOUT_CAPABILITIES", "LayoutDestination", "LayoutSource", "OciTransport", "StagingArea",
           "layout_referrers", "manifest_descriptor", "unpublish"]

#: What an OCI layout (directory or archive) can hold.
LAYOUT_CAPABILITIES = Capabilities(
    manifest_types=frozenset(mt.MANIFEST_TYPES | mt.INDEX_TYPES | mt.SCHEMA1_TYPES),
    names="ref-name",
    signatures=frozenset({"sigstore"}),
    referrers=True,
)


class LayoutSource:
    """A resolved image in an OCI layout (a directory or an archive read in place)."""

    def __init__(self, ref: ImageReference, reader: LayoutReader) -> None:
        self.ref = ref
        self._reader = reader
        self._names: frozenset[str] | None = None
        self._referrers: Callable[[Digest], list[Descriptor]] | None = None
        try:
            self.root = reader.resolve(ref.ref, ref.digest)
        except BaseException:
            reader.close()
            raise

    def get_manifest(self, desc: Descriptor | None = None) -> Manifest:
        return self._reader.get_manifest(desc or self.root)

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        return self._reader.open_blob(desc.digest, verify=False)

    def stat_blob(self, digest: Digest) -> int | None:
        return self._reader.stat_blob(digest)

    def signatures(self, manifest_digest: Digest) -> Sequence[Signature]:
        from ..signature import sig_tag

        if self._names is None:  # index.json is read once per source, not once per manifest asked about
            self._names = frozenset(self._reader.refs())
        if sig_tag(manifest_digest) not in self._names:
            return ()  # (without loading the signature code)
        from ..signature.storage import LayoutSignatures

        return LayoutSignatures(self._reader).list(manifest_digest)

    def referrers(self, manifest_digest: Digest) -> Sequence[Descriptor]:
        if self._referrers is None:
            self._referrers = layout_referrers(self._reader)
        return self._referrers(manifest_digest)

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> LayoutSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def layout_referrers(reader: LayoutReader) -> Callable[[Digest], list[Descriptor]]:
    """A lookup of the referrers a layout lists for a digest: the entries of its ``sha256-<hex>`` fallback tag
    (distribution-spec's referrers tag schema), then untagged ``index.json`` manifests whose ``subject`` it is
    (how oras-go's ``oci.Store`` records what it pushes). ``index.json`` is read once; the lookup raises
    InvalidManifest for a damaged fallback index."""
    from ..referrers import fallback_tag, referrer_descriptor

    tags: dict[str, Descriptor] = {}
    untagged: dict[Digest, list[Descriptor]] = {}
    for entry in reader.entries():
        if entry.error is not None:
            continue  # fsck reports it; it lists no referrer
        name, desc = entry.name, entry.descriptor
        if name is not None:
            tags[name] = desc
        elif desc.media_type == mt.OCI_MANIFEST:
            try:
                m = reader.get_manifest(desc)
            except OcilayoutError:
                continue  # (fsck reports it)
            if m.subject is not None:
                untagged.setdefault(m.subject.digest, []).append(referrer_descriptor(m))

    def lookup(digest: Digest) -> list[Descriptor]:
        out: list[Descriptor] = []
        tag = tags.get(fallback_tag(digest))
        if tag is not None and mt.is_index(tag.media_type):
            out.extend(reader.get_manifest(tag).manifests)
        seen = {d.digest for d in out}
        return out + [d for d in untagged.get(digest, ()) if d.digest not in seen]

    return lookup


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

    def put(self, stream: BinaryIO, expected: Descriptor | None, progress: ProgressFn | None = None,
            algorithm: str = "sha256") -> tuple[Digest, int]:
        """Write ``stream`` into the staging area, hashing as it goes; raises IntegrityError on mismatch.

        A large blob that is a plain file or an archive member is copied by the kernel
        (``copy_file_range``) while the copy is hashed; anything else is streamed through a
        :class:`VerifyingReader`. Either way the digest checked is that of the bytes written. Without
        ``expected`` the blob is named by its ``algorithm`` digest.
        """
        tmp = self.path / f"incoming-{os.urandom(8).hex()}"
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with open(fd, "r+b", buffering=0) as f:
                digest, size = write_verified(f, stream, expected, progress, algorithm)
                os.fsync(f.fileno())
            os.replace(tmp, self.path / f"{digest.algorithm}-{digest.hex}")
        except BaseException as err:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            if isinstance(err, OSError):
                raise os_error(err, f"staging a blob in {self.store.root}") from err
            raise
        with self._lock:
            self._staged[digest] = size
        return digest, size

    def put_bytes(self, data: bytes) -> Digest:
        digest, _ = self.put(io.BytesIO(data), None)
        return digest

    def publish(self) -> list[Path]:
        """Move every staged blob the layout lacks into ``blobs/`` (rename, then fsync the directories);
        returns the paths it created, so a caller can :func:`unpublish` them if its commit fails. On an
        error, what this call published is removed again."""
        created: list[Path] = []
        dirs: set[Path] = set()
        try:
            for digest in sorted(self._staged, key=str):
                directory = self.store.blob_dir(digest.algorithm, create=True)
                assert directory is not None
                final = directory / digest.hex
                staged = self.path / f"{digest.algorithm}-{digest.hex}"
                existed = os.path.lexists(final)
                os.chmod(staged, 0o644)
                os.replace(staged, final)  # an existing file of that name had the wrong size: replace it
                if not existed:
                    created.append(final)
                dirs.add(directory)
            for d in dirs:
                fsync_dir(d)
        except BaseException:
            unpublish(created)
            raise
        self._staged.clear()
        return created

    def discard(self) -> None:
        """Remove the staging directory and whatever is left in it."""
        self._fd = discard_temp_dir(self.path, self._fd)


def manifest_descriptor(manifest: Manifest, algorithm: str) -> Descriptor:
    """``manifest.descriptor`` with its digest computed with ``algorithm``."""
    desc = manifest.descriptor
    return desc if algorithm == desc.digest.algorithm else desc.with_(digest=Digest.of(manifest.raw, algorithm))


def unpublish(paths: Sequence[Path]) -> None:
    """Remove blobs a failed commit published (they were absent before it)."""
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


class LayoutDestination:
    """Destination for ``oci:PATH[:REF]``. A missing layout is created when the first blob is staged, so a
    copy the planner refuses leaves no empty layout behind."""

    capabilities = LAYOUT_CAPABILITIES

    def __init__(self, ref: ImageReference, store: LayoutStore | None = None) -> None:
        self.ref = ref
        self._store = store
        self._staging: StagingArea | None = None
        self._opening = threading.Lock()  # blob workers race to the first put: one layout, one staging area
        path = Path(ref.path)
        if store is None:
            if path.exists() and not path.is_dir():
                raise LayoutError(f"{path} exists and is not a directory")
            if (path / "oci-layout").exists():
                LayoutStore(path).check_layout_file()  # refuse a foreign or broken layout before copying
        #: (the directory, the layout) did not exist before this destination made them.
        self._created = (False, False)
        self._committed = False
        self._reused: set[Digest] = set()
        self._names: list[tuple[str | None, Descriptor]] = []
        self._signatures: dict[Digest, list[Signature]] = {}
        self._referrers: dict[Digest, list[Descriptor]] = {}
        #: Digests whose untagged entries this commit drops (``tag(..., replaces=)``).
        self.replaced: set[str] = set()
        #: (ref name, containerd name or None) -> the digest one entry of that name must still hold at
        #: commit (``tag(..., expects=)``).
        self.expected: dict[tuple[str, str | None], str] = {}

    @property
    def store(self) -> LayoutStore:
        """The layout, created (with missing parents) on first use."""
        with self._opening:
            if self._store is None:
                path = Path(self.ref.path)
                self._created = (not path.exists(), not (path / "oci-layout").exists())
                try:
                    self._store = LayoutStore.create(self.ref.path)
                except OSError as err:
                    raise LayoutError(f"cannot write layout {self.ref.path}: {err.strerror or err}") from err
            return self._store

    @property
    def staging(self) -> StagingArea:
        store = self.store
        with self._opening:
            if self._staging is None:
                try:
                    self._staging = StagingArea(store)
                except OSError as err:
                    raise LayoutError(f"cannot write layout {self.ref.path}: {err.strerror or err}") from err
            return self._staging

    def has_blob(self, desc: Descriptor) -> bool:
        if self._staging is not None and self._staging.has(desc.digest):
            return True
        reader = self._store if self._store is not None else LayoutStore(self.ref.path)
        if reader.stat_blob(desc.digest) == desc.size:
            self._reused.add(desc.digest)
            return True
        return False

    def put_blob(self, open_: BlobOpener, expected: Descriptor | None, *, media_type: str,
                 progress: ProgressFn | None = None) -> Descriptor:
        with open_() as stream:
            digest, size = self.staging.put(stream, expected, progress)
        return Descriptor(media_type, digest, size) if expected is None else expected.with_(media_type=media_type)

    def put_manifest(self, manifest: Manifest, *, algorithm: str = "sha256") -> Descriptor:
        desc = manifest_descriptor(manifest, algorithm)
        if not self.has_blob(desc):
            self.staging.put(io.BytesIO(manifest.raw), desc)
        return desc

    def tag(self, desc: Descriptor, name: str | None, *, image_name: str | None = None,
            replaces: Digest | None = None, expects: Digest | None = None) -> None:
        if replaces is not None and (replaces != desc.digest or name is not None):  # (an unchanged untagged
            self.replaced.add(str(replaces))  # image keeps its entry where it is)
        if expects is not None and name is not None:
            self.expected[(name, image_name)] = str(expects)
        entry = index_entry(desc)
        if image_name is not None:
            entry = entry.with_(annotations={**entry.annotations, CONTAINERD_NAME: image_name})
        self._names.append((name, entry))

    def put_signatures(self, manifest_digest: Digest, sigs: Sequence[Signature]) -> None:
        if not sigs:
            return  # (without loading the signature code)
        from ..signature.model import SigstoreSignature

        for sig in sigs:
            if not isinstance(sig, SigstoreSignature):
                raise UnsupportedFormat(f"{self.ref.transport}: images hold sigstore signatures only "
                                        "(GPG signatures go to dir:)")
        self._signatures.setdefault(manifest_digest, []).extend(sigs)

    def put_referrers(self, subject: Digest, referrers: Sequence[Descriptor]) -> None:
        self._referrers.setdefault(subject, []).extend(referrers)

    def stage_referrer_tags(self, current: LayoutReader) -> list[dict[str, Any]]:
        """Stage the fallback indexes (``sha256-<hex>``) that add the staged referrers to those ``current``
        lists now; returns their ``index.json`` entries (none for a subject whose list already has them all).
        Call under the lock that serialises writers."""
        from ..referrers import add_to_index, fallback_tag

        entries: list[dict[str, Any]] = []
        names = set(current.refs())
        for subject, new in self._referrers.items():
            tag = fallback_tag(subject)
            existing = current.get_manifest(current.resolve(tag)) if tag in names else None
            if existing is not None and not existing.is_index:
                raise Conflict(f"{self.ref.path}: the tag {tag} names a {existing.media_type}, not a referrers "
                               "index; it is left alone (rename it to attach referrers to that image)")
            data = add_to_index(existing.raw if existing is not None else None, new)
            if data is None:
                continue
            self.staging.put_bytes(data)
            entries.append(with_name(Descriptor(mt.OCI_INDEX, Digest.of(data), len(data)), tag))
        return entries

    def stage_signature_tags(self, current: LayoutReader) -> list[dict[str, Any]]:
        """Stage the ``.sig`` manifests that append the staged signatures to those ``current`` holds now;
        returns their ``index.json`` entries. Call under the lock that serialises signers."""
        if not self._signatures:
            return []
        from ..signature.storage import LayoutSignatures, appended_sig_blobs, sig_tag

        entries: list[dict[str, Any]] = []
        sigs = LayoutSignatures(current)
        have = set(current.refs())
        for digest, new in self._signatures.items():
            layers: list[dict[str, Any]] = []
            diff_ids: list[str] = []
            if sig_tag(digest) in have:
                _, layers, diff_ids = sigs.current(digest)
            blobs = appended_sig_blobs(layers, diff_ids, new)
            if blobs is None:
                continue
            # The old payloads the new manifest still lists are in ``current`` already (an archive keeps
            # every blob of its base), so only the new blobs are staged.
            for data, _ in blobs:
                self.staging.put_bytes(data)
            data, media_type = blobs[-1]
            entries.append(with_name(Descriptor(media_type, Digest.of(data), len(data)), sig_tag(digest)))
        return entries

    def check_expected(self, current: LayoutReader) -> None:
        """Raise ConcurrentEdit unless ``current`` (read under the writers' lock) still names every image as
        this commit's in-place edits found it: each ``expects`` name still names the digest it named, each
        untagged image ``replaces`` drops is still there."""
        if not self.expected and not self.replaced:
            return
        entries = [(e, e.descriptor) for e in current.entries() if e.descriptor is not None]
        for (name, full), digest in self.expected.items():
            # Two images may share a tag (containerd names tell them apart), and an edit may add a containerd
            # name: the image read must still be among the entries of that tag or that containerd name.
            now = [str(d.digest) for e, d in entries
                   if e.name == name or (full is not None and d.annotations.get(CONTAINERD_NAME) == full)]
            if digest not in now:
                raise ConcurrentEdit(f"{self.ref.path}: {full or name} was {digest} when this edit read it and is "
                                     f"{', '.join(now) or 'gone'} now (another writer changed it meanwhile); "
                                     "nothing was written")
        untagged = {str(d.digest) for e, d in entries if e.name is None}
        gone = sorted(self.replaced - untagged)
        if gone:
            raise ConcurrentEdit(f"{self.ref.path}: the untagged image {gone[0]} this edit replaces is gone "
                                 "(another writer changed it meanwhile); nothing was written")

    def staged_entries(self, current: LayoutReader) -> list[dict[str, Any]]:
        """The ``index.json`` entries this commit adds: the names given to :meth:`tag`, then the ``.sig``
        tags of the staged signatures (their blobs staged now, appended to what ``current`` holds)."""
        return [with_name(desc, name) for name, desc in self._names] + self.stage_signature_tags(current) + \
            self.stage_referrer_tags(current)

    def commit(self) -> None:
        """Publish staged blobs and write names and signature tags, under the layout lock gc also takes.

        Blobs the copy skipped because the layout had them are checked again under the lock: a gc that
        ran meanwhile may have removed them (they were unreferenced), and a tag must never point at a
        missing blob. Raises LayoutError then, leaving the layout unchanged.
        """
        with self.store.locked():
            gone = [d for d in self._reused if not self.store.has_blob(d)]
            if gone:
                raise LayoutError(f"{len(gone)} blob(s) this copy reused were removed by a concurrent gc; "
                                  "run the copy again")
            self.check_expected(self.store)
            new = self.staged_entries(self.store)
            replaced = frozenset(self.replaced)
            if not new:
                return
            created = self.staging.publish()
            try:
                for entry in new:
                    if not self.store.has_blob(Digest.parse(entry["digest"])):
                        raise NotFound(f"{self.store.root}: cannot tag {entry['digest']}: blob not stored")
                self.store.update_index(lambda entries: merge_entries(entries, new, replaced))
            except BaseException:
                unpublish(created)
                raise
        self._names.clear()
        self._signatures.clear()
        self._referrers.clear()
        self.replaced.clear()
        self.expected.clear()
        self._committed = True

    def close(self) -> None:
        """Drop what was staged; a layout this destination created and never committed to is removed again
        (when it still holds nothing), so a failed copy into a new path leaves no empty layout behind."""
        if self._staging is not None:
            self._staging.discard()
            self._staging = None
        dir_created, layout_created = self._created
        if layout_created and not self._committed and self._store is not None:
            self._store.remove_if_unused(remove_root=dir_created)


class OciTransport(Transport):
    """``oci:PATH[:REF|@DIGEST]``: an OCI image layout directory."""

    name = "oci"

    def open_source(self, ref: ImageReference) -> LayoutSource:
        return LayoutSource(ref, self.open_store(ref))

    def open_destination(self, ref: ImageReference) -> LayoutDestination:
        return LayoutDestination(ref)

    def list_names(self, ref: ImageReference) -> list[str]:
        return self.open_store(ref).refs()

    def open_reader(self, ref: ImageReference) -> LayoutReader:
        """The layout directory, even one whose ``oci-layout`` is missing or broken (fsck reports that)."""
        if not Path(ref.path).is_dir():
            raise NotFound(f"{ref.path}: no such layout directory")
        return LayoutStore(ref.path)

    def open_store(self, ref: ImageReference) -> LayoutStore:
        return LayoutStore.open(ref.path)

