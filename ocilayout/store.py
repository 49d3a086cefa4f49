"""Image layouts: a read-only view shared by directories and archives, and the writable :class:`LayoutStore`.

A layout is ``oci-layout`` + ``index.json`` + ``blobs/<alg>/<hex>``. :class:`LayoutReader` implements
everything that only reads (refs, resolution, manifests, verified blob reads) over three primitives, so a
directory and a tar archive read in place share one implementation. :class:`LayoutStore` adds the writes:

* blobs go to a flock()ed temp file inside the layout, are hashed while written, fsynced, and renamed into
  ``blobs/`` only when digest and size match;
* ``index.json`` changes only by read-modify-write under an inter-process lock, then an atomic replace,
  so concurrent writers never lose a ref.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import stat
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from . import mediatypes as mt
from .descriptor import CONTAINERD_NAME, REF_NAME, Descriptor
from .digest import Digest, VerifyingReader, read_verified
from .errors import AmbiguousImage, InvalidManifest, InvalidReference, LayoutError, NotFound, OcilayoutError, UnsafePath
from .fsutil import atomic_write, fsync_dir, locked, temp_file
from .index import entry_name, merge_entries, parse_index_doc, with_name
from .manifest import MAX_MANIFEST_SIZE, Manifest, canonical_json, load_json
from .streams import pump
from .tarfs import DirTree, Tree

__all__ = ["LayoutReader", "LayoutStore", "RefEntry"]

LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
LOCK_FILE = ".ocilayout.lock"
LAYOUT_DOC = b'{"imageLayoutVersion":"1.0.0"}'
EMPTY_INDEX = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}


@dataclass(frozen=True, slots=True)
class RefEntry:
    """One ``index.json`` entry: its position, raw JSON and name. Entries are parsed lazily: a broken one
    (an unsupported digest algorithm, a bad size) fails only where it is used (:attr:`descriptor` raises)."""

    position: int
    raw: Mapping[str, Any]
    parsed: Descriptor | None
    error: OcilayoutError | None = None

    @property
    def name(self) -> str | None:
        return entry_name(self.raw)

    @property
    def ok(self) -> bool:
        return self.parsed is not None

    @property
    def descriptor(self) -> Descriptor:
        """The entry's descriptor; raises the entry's parse error (InvalidManifest, InvalidDigest...)."""
        if self.parsed is None:
            assert self.error is not None
            raise self.error
        return self.parsed


_LAYOUT_VERSION = re.compile(r"1\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})")
_ATTACHMENT = re.compile(r"sha(256|512)-[0-9a-f]+\.(sig|att|sbom)")


def blob_relpath(digest: Digest) -> str:
    """``blobs/<alg>/<hex>`` for a validated digest."""
    return f"blobs/{digest.algorithm}/{digest.hex}"


def blob_digest(relpath: str) -> Digest | None:
    """The digest a ``blobs/<alg>/<hex>`` name stands for; None for any other name (or a malformed one)."""
    parts = relpath.split("/")
    if len(parts) != 3 or parts[0] != "blobs":
        return None
    try:
        return Digest(parts[1], parts[2])
    except OcilayoutError:
        return None


def _tag_of(name: str) -> str | None:
    """The tag of a full reference like ``docker.io/library/foo:1.0`` (None when it has no tag)."""
    last = name.rsplit("/", 1)[-1]
    if "@" in last:
        return None
    _, sep, tag = last.rpartition(":")
    return tag if sep else None


class LayoutReader:
    """Read-only access to an image layout over a :class:`~ocilayout.tarfs.Tree` (a directory or a tar)."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        #: Human-readable location for messages.
        self.location = tree.location

    # -- primitives ------------------------------------------------------------------------------------
    def _open(self, relpath: str) -> BinaryIO:
        return self.tree.open(relpath)

    def _size(self, relpath: str) -> int:
        return self.tree.size(relpath)

    def _exists(self, relpath: str) -> bool:
        return self.tree.exists(relpath)

    # -- layout files ----------------------------------------------------------------------------------
    def _read_small(self, relpath: str, what: str, limit: int = MAX_MANIFEST_SIZE) -> bytes:
        try:
            size = self._size(relpath)
        except FileNotFoundError as err:
            raise NotFound(f"{self.location}: {what} not found") from err
        if size > limit:
            raise InvalidManifest(f"{self.location}: {what} is {size} bytes, over the {limit}-byte limit")
        with self._open(relpath) as f:
            return f.read(limit + 1)

    def check_layout_file(self) -> None:
        """Raise LayoutError unless ``oci-layout`` exists and names layout version ``1.MINOR.PATCH``.

        The image-spec defines only ``1.0.0``; later 1.x versions are compatible by semver. Anything else
        (``1.x-garbage``, ``2.0.0``, a number) is refused. skopeo does not read the file at all.
        """
        try:
            raw = self._read_small(LAYOUT_FILE, "oci-layout file", 64 * 1024)
        except NotFound as err:
            raise LayoutError(f"{self.location} is not an OCI layout (no oci-layout file)") from err
        doc = load_json(raw, "oci-layout file")
        version = doc.get("imageLayoutVersion") if isinstance(doc, dict) else None
        if not isinstance(version, str) or not _LAYOUT_VERSION.fullmatch(version):
            raise LayoutError(f"{self.location}: unsupported imageLayoutVersion {str(version)[:40]!r} (want 1.0.0)")

    def format_problems(self) -> list[tuple[str, Digest | None, str]]:
        """(fsck kind, digest, message) for what is wrong with the container beneath the layout (a
        docker-archive's ``manifest.json`` and members), found when it was opened; [] for a plain layout."""
        return []

    def index_bytes(self) -> bytes:
        """The raw ``index.json``."""
        return self._read_small(INDEX_FILE, "index.json")

    def index(self) -> Manifest:
        """``index.json`` parsed as an OCI index (every entry validated)."""
        raw = self.index_bytes()
        try:
            return Manifest.parse(raw, mt.OCI_INDEX)
        except OcilayoutError as err:
            raise type(err)(f"{self.location}/index.json: {err}") from err

    def entries(self) -> list[RefEntry]:
        """Every ``index.json`` entry, in file order, parsed lazily (see :class:`RefEntry`). Raises
        InvalidManifest / NotFound when ``index.json`` itself is unreadable."""
        doc = parse_index_doc(self.index_bytes(), self.location)
        out: list[RefEntry] = []
        for i, raw in enumerate(doc["manifests"]):
            try:
                out.append(RefEntry(i, raw, Descriptor.from_dict(raw)))
            except OcilayoutError as err:
                err.add_note(f"in {self.location}/index.json entry {i}")
                out.append(RefEntry(i, raw, None, err))
        return out

    def refs(self) -> list[str]:
        """Tag names (``org.opencontainers.image.ref.name``, else ``io.containerd.image.name``), in order."""
        return [name for e in self.entries() if (name := e.name)]

    def resolve(self, ref: str | None = None, digest: Digest | None = None) -> Descriptor:
        """The ``index.json`` descriptor for a ref name, a digest, or (neither) the only image.

        Ref names match ``org.opencontainers.image.ref.name`` or ``io.containerd.image.name`` exactly, else
        the tag part of a full reference (``docker.io/library/foo:1.0`` answers to ``1.0``). A name that
        matches entries of different images is ambiguous and refused (InvalidReference, listing them), never
        picked silently. With no ref, a layout holding one entry resolves to it, and a top-level
        ``index.json`` that is itself an untagged multi-platform index resolves to the whole index (see
        :meth:`top_index_descriptor`). The result carries the media type of the document it names (an
        untyped entry is sniffed). Raises NotFound, InvalidReference, and a broken entry's own error.
        """
        return self._typed(self._resolve(ref, digest))

    def _resolve(self, ref: str | None, digest: Digest | None) -> Descriptor:
        entries = self.entries()
        if digest is not None:
            for e in entries:
                if e.ok and e.descriptor.digest == digest:
                    return e.descriptor
            if self.has_blob(digest):
                raw = self.read_blob_bytes(digest)
                return Manifest.parse(raw).descriptor
            raise NotFound(f"{self.location}: no manifest {digest}")
        if ref is None:
            # cosign attachments (sha256-<hex>.sig/.att/.sbom) are not images of their own
            entries = [e for e in entries if not ((name := e.name) and _ATTACHMENT.fullmatch(name))]
            if len(entries) == 1:
                return entries[0].descriptor
            if not entries:
                raise NotFound(f"{self.location}: the layout holds no images")
            if all(e.name is None and e.ok and e.descriptor.platform is not None for e in entries):
                return self.top_index_descriptor()
            names = ", ".join(sorted({n for e in entries if (n := e.name)})) or "untagged entries"
            raise AmbiguousImage(f"{self.location} holds {len(entries)} images; name one ({names})", len(entries))
        exact = [e for e in entries if ref in (_ann(e.raw, REF_NAME), _ann(e.raw, CONTAINERD_NAME))]
        if not exact:
            exact = [e for e in entries if (n := e.name) and "/" in n and _tag_of(n) == ref]
        if not exact:
            raise NotFound(f"{self.location}: no image tagged {ref!r}")
        first = exact[0].descriptor
        others = [e for e in exact[1:] if not e.ok or e.descriptor.digest != first.digest]
        if others:
            listed = "; ".join(f"{e.name} -> {e.raw.get('digest')}" for e in exact)
            raise InvalidReference(f"{self.location}: {ref!r} is ambiguous, it names {len(exact)} entries "
                                   f"({listed}); name one by its full name or @digest")
        return first

    def _typed(self, desc: Descriptor) -> Descriptor:
        """``desc`` with the media type of the document it names, when the descriptor does not say."""
        if mt.is_manifest_like(desc.media_type):
            return desc
        from .graph import sniff_manifest

        size = self.stat_blob(desc.digest)
        if size is None or size > MAX_MANIFEST_SIZE or size != desc.size:
            return desc
        sniffed = sniff_manifest(self.read_blob_bytes(desc))
        return desc.with_(media_type=sniffed.media_type) if sniffed is not None else desc

    def top_index_descriptor(self) -> Descriptor:
        """A descriptor for ``index.json`` itself, for layouts whose top level is a multi-platform index."""
        raw = self.index_bytes()
        return Descriptor(media_type=mt.OCI_INDEX, digest=Digest.of(raw), size=len(raw))

    # -- blobs -----------------------------------------------------------------------------------------
    def has_blob(self, digest: Digest) -> bool:
        return self._exists(blob_relpath(digest))

    def stat_blob(self, digest: Digest) -> int | None:
        """The stored size of a blob, None when it is absent."""
        try:
            return self._size(blob_relpath(digest))
        except (FileNotFoundError, NotADirectoryError):
            return None

    def blob_size(self, digest: Digest) -> int:
        """Stored size of a blob; raises NotFound."""
        size = self.stat_blob(digest)
        if size is None:
            raise NotFound(f"{self.location}: blob {digest} not found")
        return size

    def open_blob(self, desc: Descriptor | Digest, *, verify: bool = True) -> BinaryIO:
        """A stream of a blob. With ``verify`` (the default) digest and size are checked at EOF."""
        digest = desc if isinstance(desc, Digest) else desc.digest
        try:
            f = self._open(blob_relpath(digest))
        except (FileNotFoundError, NotADirectoryError) as err:
            raise NotFound(f"{self.location}: blob {digest} not found") from err
        if not verify:
            return f
        size = None if isinstance(desc, Digest) else desc.size
        return VerifyingReader(f, digest, size)  # type: ignore[return-value]

    def read_blob_bytes(self, desc: Descriptor | Digest, limit: int = MAX_MANIFEST_SIZE) -> bytes:
        """A small blob's bytes, verified; raises InvalidManifest when over ``limit``."""
        digest = desc if isinstance(desc, Digest) else desc.digest
        size = self.blob_size(digest)
        if size > limit:
            raise InvalidManifest(f"{self.location}: blob {digest} is {size} bytes, over the {limit}-byte limit")
        expected = desc if isinstance(desc, Descriptor) else Descriptor("", digest, size)
        with self.open_blob(digest, verify=False) as f:
            return read_verified(f, expected)

    def get_manifest(self, desc: Descriptor) -> Manifest:
        """The manifest or index a descriptor points to, verified against it.

        The descriptor for ``index.json`` itself (:meth:`top_index_descriptor`) reads ``index.json``.
        """
        if not self.has_blob(desc.digest) and desc.media_type == mt.OCI_INDEX:
            raw = self.index_bytes()
            if Digest.of(raw, desc.digest.algorithm) == desc.digest:
                return Manifest.parse(raw, mt.OCI_INDEX)
        raw = self.read_blob_bytes(desc)
        try:
            return Manifest.parse(raw, desc.media_type)
        except OcilayoutError as err:
            raise type(err)(f"manifest {desc.digest}: {err}") from err

    def close(self) -> None:
        """Release resources (nothing for a directory)."""
        self.tree.close()

    def __enter__(self) -> LayoutReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ann(raw: Mapping[str, Any], key: str) -> str | None:
    ann = raw.get("annotations")
    value = ann.get(key) if isinstance(ann, dict) else None
    return value if isinstance(value, str) else None


class LayoutStore(LayoutReader):
    """A writable OCI image-layout directory. Use :meth:`open` or :meth:`create`."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        super().__init__(DirTree(self.root))
        self._mutex = threading.RLock()
        self._depth = 0

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the layout's inter-process lock (re-entrant within this object, across its threads).

        ``index.json`` updates and ``gc`` take it; a writer that must check and publish atomically
        (copy's commit) holds it around both.
        """
        with self._mutex:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            with locked(self.root / LOCK_FILE):
                self._depth = 1
                try:
                    yield
                finally:
                    self._depth = 0

    @classmethod
    def open(cls, root: Path | str) -> LayoutStore:
        """Open an existing layout; raises LayoutError / NotFound."""
        store = cls(root)
        if not store.root.is_dir():
            raise NotFound(f"{store.root}: no such layout directory")
        store.check_layout_file()
        return store

    @classmethod
    def create(cls, root: Path | str) -> LayoutStore:
        """Open the layout at ``root``, creating an empty one (and missing parents) if needed."""
        store = cls(root)
        if store.root.exists() and not store.root.is_dir():
            raise LayoutError(f"{store.root} exists and is not a directory")
        if (store.root / LAYOUT_FILE).exists():
            store.check_layout_file()
            (store.root / "blobs").mkdir(exist_ok=True)
            return store
        store.root.mkdir(parents=True, exist_ok=True)
        (store.root / "blobs").mkdir(exist_ok=True)
        with locked(store.root / LOCK_FILE):
            if not (store.root / INDEX_FILE).exists():
                atomic_write(store.root / INDEX_FILE, canonical_json(EMPTY_INDEX))
            if not (store.root / LAYOUT_FILE).exists():
                atomic_write(store.root / LAYOUT_FILE, LAYOUT_DOC)
        return store

    def remove_if_unused(self, *, remove_root: bool) -> bool:
        """Remove a layout that holds nothing: an empty ``index.json``, ``oci-layout``, empty ``blobs/``
        directories and the lock file, and nothing else (no blob, no other writer's staging directory).
        The root directory goes too with ``remove_root``. Returns True when removed; never raises for a
        layout that is in use or changed meanwhile (it is then left as it is).

        For a copy that created a layout and then failed: the destination is left as it was, absent."""
        try:
            with self.locked():
                names = set(os.listdir(self.root))
                if not names <= {LAYOUT_FILE, INDEX_FILE, LOCK_FILE, "blobs"}:
                    return False
                if self.entries():
                    return False
                blob_dirs = []
                if "blobs" in names:
                    for name in os.listdir(self.root / "blobs"):
                        d = self.root / "blobs" / name
                        if not d.is_dir() or d.is_symlink() or os.listdir(d):
                            return False
                        blob_dirs.append(d)
                for d in blob_dirs:
                    d.rmdir()
                if "blobs" in names:
                    (self.root / "blobs").rmdir()
                for name in (INDEX_FILE, LAYOUT_FILE):
                    with contextlib.suppress(FileNotFoundError):
                        (self.root / name).unlink()
                (self.root / LOCK_FILE).unlink(missing_ok=True)  # (held: a waiting writer then fails cleanly)
            if remove_root:
                self.root.rmdir()
            return True
        except (OSError, OcilayoutError):
            return False

    # -- where blobs go ---------------------------------------------------------------------------------
    def blob_path(self, digest: Digest) -> Path:
        """Where a blob lives (the digest is validated, so the name cannot escape; see :meth:`blob_dir` for
        the directories on the way)."""
        return self.root / blob_relpath(digest)

    def blob_dir(self, algorithm: str, *, create: bool = False) -> Path | None:
        """``blobs/<algorithm>`` for writing or deleting, after checking that it and ``blobs/`` are real
        directories of this layout (not symlinks, FIFOs or files); None when absent and not ``create``.

        Reads may follow a symlink that stays inside the layout; writes and deletes never go through one,
        so a planted ``blobs -> /elsewhere`` cannot make gc delete or copy write outside. Raises UnsafePath.
        """
        path = self.root
        for part in ("blobs", algorithm):
            path = path / part
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                if not create:
                    return None
                with contextlib.suppress(FileExistsError):
                    os.mkdir(path, 0o755)
                st = os.lstat(path)
            if not stat.S_ISDIR(st.st_mode):
                what = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a directory"
                raise UnsafePath(f"{path} is {what}; refusing to write or delete blobs through it")
        return path

    def _final_path(self, digest: Digest) -> Path:
        directory = self.blob_dir(digest.algorithm, create=True)
        assert directory is not None
        return directory / digest.hex

    # -- writing blobs ---------------------------------------------------------------------------------
    def put_blob(self, stream: BinaryIO, expected: Descriptor | None = None, *,
                 progress: Callable[[int], None] | None = None) -> Descriptor:
        """Store a blob from ``stream``, hashing while writing; returns its descriptor.

        With ``expected``, digest and size must match or IntegrityError is raised and nothing is stored;
        a blob already present is not rewritten (the stream is not read). Without it, the sha256 digest
        is computed. ``progress`` is called with each chunk's length.
        """
        if expected is not None and self.has_blob(expected.digest) and \
                self.blob_size(expected.digest) == expected.size:
            return expected
        reader = VerifyingReader(stream, expected.digest if expected else None,
                                 expected.size if expected else None)
        try:
            with temp_file(self.root) as (tmp, f):
                pump(reader, f, progress, pipelined=False)
                f.flush()
                os.fsync(f.fileno())
                final = self._final_path(reader.digest)
                os.chmod(tmp, 0o644)
                os.replace(tmp, final)
        except OSError as err:
            raise os_error(err, f"writing a blob into {self.root}") from err
        fsync_dir(final.parent)
        if expected is not None:
            return expected
        return Descriptor(media_type="application/octet-stream", digest=reader.digest, size=reader.size)

    def put_bytes(self, data: bytes, media_type: str = "application/octet-stream") -> Descriptor:
        """Store in-memory content; returns its descriptor."""
        desc = Descriptor(media_type=media_type, digest=Digest.of(data), size=len(data))
        return self.put_blob(io.BytesIO(data), desc)

    def put_manifest(self, manifest: Manifest) -> Descriptor:
        """Store a manifest's exact bytes; returns a descriptor with its media type."""
        desc = manifest.descriptor
        self.put_blob(io.BytesIO(manifest.raw), desc)
        return desc

    # -- index.json ------------------------------------------------------------------------------------
    def update_index(self, change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> None:
        """Read-modify-write ``index.json`` under the layout lock; ``change`` maps old entries to new.

        Other top-level fields of ``index.json`` are kept. The write is atomic (temp, fsync, rename).
        """
        with self.locked():
            doc = parse_index_doc(self.index_bytes(), str(self.root))
            doc.setdefault("schemaVersion", 2)
            doc["manifests"] = change(list(doc["manifests"]))
            raw = canonical_json(doc)
            if len(raw) > MAX_MANIFEST_SIZE:
                raise LayoutError(f"{self.root}/index.json would be {len(raw)} bytes, over the "
                                  f"{MAX_MANIFEST_SIZE}-byte limit every reader applies; not written")
            try:
                atomic_write(self.root / INDEX_FILE, raw)
            except OSError as err:
                raise os_error(err, f"writing {self.root}/index.json") from err

    def set_ref(self, name: str | None, desc: Descriptor, *, require_blob: bool = True) -> None:
        """Point ``name`` at ``desc`` in ``index.json``, replacing any entry of that name.

        With ``name`` None the descriptor is added untagged unless an untagged entry of it exists.
        The descriptor's blob must already be stored (unless ``require_blob`` is False: a staging layout
        whose blobs partly live elsewhere, as when appending to an archive).
        """
        if require_blob and not self.has_blob(desc.digest):
            raise NotFound(f"{self.root}: cannot tag {desc.digest}: blob not stored")
        entry = with_name(desc, name)
        self.update_index(lambda entries: merge_entries(entries, [entry]))

    def remove_ref(self, name: str) -> Descriptor:
        """Remove the entry called ``name`` (or whose full name has that tag, as :meth:`resolve` matches);
        returns its descriptor. Blobs stay until gc. Raises NotFound."""
        full = entry_name(dict(self.resolve(name).raw)) or name
        removed: list[dict[str, Any]] = []

        def change(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
            removed.extend(e for e in entries if entry_name(e) == full)
            return [e for e in entries if entry_name(e) != full]

        self.update_index(change)
        if not removed:  # removed by another writer between resolve and the locked update
            raise NotFound(f"{self.root}: no image tagged {name!r}")
        return Descriptor.from_dict(removed[-1])

    def remove_digest(self, digest: Digest) -> int:
        """Remove every entry pointing at ``digest``; returns how many were removed."""
        count = 0

        def change(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
            nonlocal count
            kept = [e for e in entries if e.get("digest") != str(digest)]
            count = len(entries) - len(kept)
            return kept

        self.update_index(change)
        return count

    # -- housekeeping ----------------------------------------------------------------------------------
    def all_blobs(self) -> Iterator[tuple[Digest, int]]:
        """Every well-named blob file with its size (files with other names are skipped)."""
        blobs = self.root / "blobs"
        if not os.path.lexists(blobs):
            return
        self.blob_dir("sha256")  # raises UnsafePath when blobs/ is not a real directory
        for algdir in sorted(blobs.iterdir()):
            if algdir.is_symlink() or not algdir.is_dir():
                if algdir.is_symlink():
                    raise UnsafePath(f"{algdir} is a symlink; refusing to list or delete blobs through it")
                continue
            for f in sorted(algdir.iterdir()):
                try:
                    d = Digest(algdir.name, f.name)
                except OcilayoutError:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    yield d, f.lstat().st_size

    def remove_blob(self, digest: Digest) -> None:
        """Delete a blob file (gc's job; nothing checks reachability here). Never through a symlinked
        ``blobs/`` or ``blobs/<alg>`` (UnsafePath)."""
        directory = self.blob_dir(digest.algorithm)
        if directory is not None:
            with contextlib.suppress(FileNotFoundError):
                (directory / digest.hex).unlink()


def os_error(err: OSError, doing: str) -> OcilayoutError:
    """An OSError met while writing a layout as a one-line LayoutError (ENOSPC says so plainly)."""
    if err.errno == errno.ENOSPC:
        return LayoutError(f"no space left on device while {doing}")
    return LayoutError(f"{doing}: {err.strerror or err}")
