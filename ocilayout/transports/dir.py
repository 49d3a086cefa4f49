"""``dir:PATH``: containers/image's directory format, read and written as skopeo does.

A ``dir:`` directory holds one image (directory_transport.go, directory_dest.go):

* ``manifest.json`` -- the image's manifest (or, with ``--all``, its index / manifest list), exact bytes;
* ``version`` -- ``Directory Transport Version: 1.1\\n``;
* ``<hex>`` -- each config and layer blob, named by its bare digest hex;
* ``<hex>.manifest.json`` -- each instance manifest of an index;
* ``signature-N`` (1-based) -- signatures of the top manifest; ``<hex>.signature-N`` those of an instance.

**Reading** (:class:`DirSource`, and :class:`DirImageTree` for fsck / images) presents the directory as a
one-image layout: ``index.json`` names ``manifest.json``, ``blobs/<alg>/<hex>`` maps to ``manifest.json``,
``<hex>.manifest.json`` or ``<hex>``. Files are read through :class:`~ocilayout.tarfs.DirTree`: regular files
only (a FIFO is refused, never waited on), never through a symlink that leaves the directory.

**Writing** (:class:`DirDestination`) follows skopeo's rule for the target: a missing directory is created
(its parent must exist), an empty one is used, a non-empty one is replaced only when its ``version`` file
says it is a ``dir:`` image; anything else is refused (skopeo: "not a containers image directory, don't want
to overwrite important data"). Unlike skopeo, which deletes the old contents first and writes in place,
nothing is visible before :meth:`DirDestination.commit`: files are staged in a flock()ed directory inside
the target, and commit (under a flock on the target directory) moves old files aside, moves the new ones in
(``manifest.json`` last), and only then deletes the old ones; a failure puts everything back. Blobs the
directory already holds with the right size are kept, not copied again. Signatures of a manifest the
directory already held are kept and new ones appended (never replaced); exact duplicates are stored once.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import stat
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from .. import mediatypes as mt
from ..descriptor import Descriptor
from ..digest import Digest
from ..errors import (
    Conflict,
    InvalidManifest,
    LayoutError,
    NotFound,
    OcilayoutError,
    UnsafePath,
    UnsupportedFormat,
)
from ..fsutil import TMP_PREFIX, fsync_dir, locked_temp_dir, remove_tree, stale_temp_files
from ..manifest import MAX_MANIFEST_SIZE, Manifest, canonical_json, manifest_digest
from ..reference import ImageReference
from ..store import LayoutReader
from ..streams import write_verified
from ..tarfs import DirTree
from .base import BlobOpener, Capabilities, ProgressFn, Transport, no_referrers

if TYPE_CHECKING:
    from ..signature.model import Signature

__all__ = ["DIR_CAPABILITIES", "VERSION", "DirDestination", "DirImageTree", "DirSource", "DirTransport"]

MANIFEST_FILE = "manifest.json"
VERSION_FILE = "version"
#: The ``version`` file skopeo writes, and the only one it accepts in a directory it overwrites.
VERSION = b"Directory Transport Version: 1.1\n"
#: Names ocilayout's writers use for temp files and staging directories (never an old image's content).
_OURS = (TMP_PREFIX, ".ocilayout-new-")

#: One image per directory, any manifest or index type, both signature kinds (skopeo stores whatever
#: signatures it copies as ``signature-N``).
DIR_CAPABILITIES = Capabilities(
    manifest_types=frozenset(mt.MANIFEST_TYPES | mt.INDEX_TYPES | mt.SCHEMA1_TYPES),
    indexes=True,
    multi_image=False,
    names="none",
    signatures=frozenset({"sigstore", "simple-signing"}),
)


def _blob_name(digest: Digest) -> str:
    """A blob's file name: its bare hex, as containers/image's layerPath (``digest.Encoded()``)."""
    return digest.hex


def _instance_name(digest: Digest) -> str:
    return f"{digest.hex}.manifest.json"


def _read_small(tree: DirTree, name: str, what: str, limit: int = MAX_MANIFEST_SIZE) -> bytes:
    """A small regular file of the directory; raises NotFound, InvalidManifest (over ``limit``), LayoutError
    (a FIFO, a directory...), UnsafePath (a symlink out)."""
    try:
        size = tree.size(name)
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(f"{tree.location}: {what} not found (not a dir: image?)") from None
    if size > limit:
        raise InvalidManifest(f"{tree.location}/{name} is {size} bytes, over the {limit}-byte limit")
    with tree.open(name) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise InvalidManifest(f"{tree.location}/{name} is over the {limit}-byte limit")
    return data


class DirImageTree:
    """A ``dir:`` directory seen as a one-image OCI layout (a :class:`~ocilayout.tarfs.Tree`), so that
    :class:`~ocilayout.store.LayoutReader` -- and with it fsck, images and verified reads -- works on it.

    ``oci-layout`` and ``index.json`` are made up (the index names ``manifest.json``, read once at open);
    ``blobs/<alg>/<hex>`` is ``manifest.json`` for its digest, else ``<hex>.manifest.json`` when present,
    else ``<hex>``. Raises NotFound when the directory or ``manifest.json`` is missing, LayoutError /
    UnsafePath / InvalidManifest when ``manifest.json`` is not a small regular file inside it.
    """

    def __init__(self, root: Path | str) -> None:
        self.dir = DirTree(root)
        self.location = self.dir.location
        if not os.path.isdir(root):
            raise NotFound(f"{root}: no such dir: image directory")
        self.manifest_raw = _read_small(self.dir, MANIFEST_FILE, "manifest.json")
        try:
            media_type = Manifest.parse(self.manifest_raw).media_type
        except OcilayoutError:
            media_type = mt.OCI_MANIFEST  # fsck reads it and reports what is wrong with it
        entry = {"mediaType": media_type, "digest": str(Digest.of(self.manifest_raw)), "size": len(self.manifest_raw)}
        self._virtual = {
            "oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
            "index.json": canonical_json({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [entry]}),
        }

    def _real(self, name: str) -> str | bytes:
        """The file ``name`` maps to, or the bytes of a made-up / cached one; raises FileNotFoundError."""
        if name in self._virtual:
            return self._virtual[name]
        parts = name.split("/")
        if len(parts) == 3 and parts[0] == "blobs":
            try:
                digest = Digest.parse(f"{parts[1]}:{parts[2]}")
            except OcilayoutError:
                raise FileNotFoundError(name) from None
            if Digest.of(self.manifest_raw, digest.algorithm) == digest:
                return self.manifest_raw
            instance = _instance_name(digest)
            return instance if os.path.lexists(self.dir.root / instance) else _blob_name(digest)
        raise FileNotFoundError(name)

    def open(self, name: str) -> BinaryIO:
        real = self._real(name)
        return io.BytesIO(real) if isinstance(real, bytes) else self.dir.open(real)

    def size(self, name: str) -> int:
        real = self._real(name)
        return len(real) if isinstance(real, bytes) else self.dir.size(real)

    def exists(self, name: str) -> bool:
        try:
            real = self._real(name)
        except FileNotFoundError:
            return False
        return isinstance(real, bytes) or self.dir.exists(real)

    def close(self) -> None:
        """Nothing to release."""


class DirSource:
    """The image in a ``dir:`` directory (its ``manifest.json``: an image, or an index with ``--all``)."""

    def __init__(self, ref: ImageReference) -> None:
        self.ref = ref
        if ref.ref is not None or ref.digest is not None:
            raise UnsupportedFormat(f"{ref}: a dir: image has no tags or digests to select; name the directory")
        self._tree = DirImageTree(ref.path)
        self._reader = LayoutReader(self._tree)
        try:
            self._top = Manifest.parse(self._tree.manifest_raw)
        except OcilayoutError as err:
            raise type(err)(f"{ref.path}/manifest.json: {err}") from err
        self.root = self._top.descriptor

    def get_manifest(self, desc: Descriptor | None = None) -> Manifest:
        if desc is None or desc.digest == self.root.digest:
            return self._top
        return self._reader.get_manifest(desc)

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        return self._reader.open_blob(desc.digest, verify=False)

    def stat_blob(self, digest: Digest) -> int | None:
        return self._reader.stat_blob(digest)

    def referrers(self, manifest_digest: Digest) -> Sequence[Descriptor]:
        return ()  # this transport keeps no referrers

    def signatures(self, manifest_digest: Digest) -> Sequence[Signature]:
        if not _has_signature_files(Path(self.ref.path)):
            return ()  # (without loading the signature code)
        from ..signature.storage import DirSignatures

        return DirSignatures(self.ref.path).list(manifest_digest)

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> DirSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _sig_key(blob: bytes) -> bytes:
    """A stored signature's identity for duplicate checks: the blob it re-serializes to (a fixture's trailing
    newline does not make it another signature); unparseable bytes stand for themselves."""
    from ..signature.model import signature_from_blob

    try:
        return signature_from_blob(blob).to_blob()
    except OcilayoutError:
        return blob


def _ours(name: str) -> bool:
    return name.startswith(_OURS)


def _has_signature_files(path: Path) -> bool:
    """Whether the directory holds any ``signature-N`` / ``<hex>.signature-N`` name (False when unreadable:
    a reader then finds none either)."""
    try:
        return any("signature-" in n for n in os.listdir(path))
    except OSError:
        return False


def _regular_size(path: Path) -> int | None:
    """The size of a regular file that is not a symlink, else None."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def _write_file(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with open(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


@contextlib.contextmanager
def _dir_lock(path: Path) -> Iterator[None]:
    """flock() the directory itself for the block (every ocilayout writer of a dir: image takes it)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class DirDestination:
    """Write one image (or, with nothing but :meth:`put_signatures`, more signatures) into ``dir:PATH``."""

    capabilities = DIR_CAPABILITIES

    def __init__(self, ref: ImageReference) -> None:
        if ref.ref is not None or ref.digest is not None:
            raise UnsupportedFormat(f"{ref}: a dir: image has no tags or digests; name the directory")
        self.ref = ref
        self.path = Path(ref.path)
        self._lock = threading.Lock()
        self._staging: Path | None = None
        self._fd = -1
        self._created_root = False
        self._blobs: dict[str, int] = {}  # staged blob file -> size
        self._reused: dict[str, int] = {}  # blob file the directory already holds -> size
        self._manifests: dict[Digest, str] = {}  # staged manifest -> its file in the staging directory
        self._root: Descriptor | None = None
        self._signatures: dict[Digest, list[Signature]] = {}

    # -- the target -----------------------------------------------------------------------------------
    def _check_target(self) -> bool:
        """Whether the directory exists; raises what skopeo refuses: a missing parent (NotFound), a file or
        a dangling symlink in the way (LayoutError / UnsafePath), a non-empty directory that is not a dir:
        image (Conflict)."""
        p = self.path
        try:
            st = os.stat(p)
        except FileNotFoundError:
            if os.path.islink(p):
                raise UnsafePath(f"{p} is a dangling symlink; refusing to create a directory through it") from None
            parent = p.parent
            if not parent.is_dir():
                raise NotFound(f"{parent}: no such directory (dir: creates only the last component of {p})") from None
            return False
        if not stat.S_ISDIR(st.st_mode):
            raise LayoutError(f"{p} exists and is not a directory")
        if not [n for n in os.listdir(p) if not _ours(n)]:
            return True
        try:
            version = _read_small(DirTree(p), VERSION_FILE, "version file", 4096)
        except (NotFound, InvalidManifest, LayoutError):
            version = None
        if version != VERSION:
            why = ("no readable version file" if version is None
                   else "its version file is not 'Directory Transport Version: 1.1'")
            raise Conflict(f"{p} is not empty and is not a dir: image ({why}); refusing to overwrite it "
                           "(skopeo: not a containers image directory)")
        return True

    def _check_target_between_commits(self) -> bool:
        """:meth:`_check_target`, under the directory lock when the directory exists: another writer's commit
        moves files in one by one (``version`` last but one), and a half-committed directory must not be
        judged "not a dir: image"."""
        if self.path.is_dir() and not self.path.is_symlink():
            with _dir_lock(self.path):
                return self._check_target()
        return self._check_target()

    def _stage_dir(self) -> Path:
        """The staging directory inside the target, made on first use (after checking the target)."""
        with self._lock:
            if self._staging is None:
                if not self._check_target_between_commits():
                    try:
                        os.mkdir(self.path, 0o755)
                        self._created_root = True
                    except FileExistsError:
                        # another writer made it meanwhile: judge what is there now
                        self._check_target_between_commits()
                    except OSError as err:
                        raise LayoutError(f"cannot create {self.path}: {err.strerror or err}") from err
                try:
                    self._staging, self._fd = locked_temp_dir(self.path)
                except OSError as err:
                    raise LayoutError(f"cannot write into {self.path}: {err.strerror or err}") from err
            return self._staging

    # -- the Destination protocol ---------------------------------------------------------------------
    def has_blob(self, desc: Descriptor) -> bool:
        self._stage_dir()
        name = _blob_name(desc.digest)
        with self._lock:
            if self._blobs.get(name) == desc.size:
                return True
        if _regular_size(self.path / name) == desc.size:
            with self._lock:
                self._reused[name] = desc.size
            return True
        return False

    def put_blob(self, open_: BlobOpener, expected: Descriptor | None, *, media_type: str,
                 progress: ProgressFn | None = None) -> Descriptor:
        staging = self._stage_dir()
        tmp = staging / f"incoming-{os.urandom(8).hex()}"
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            with open(fd, "r+b", buffering=0) as f, open_() as stream:
                digest, size = write_verified(f, stream, expected, progress)
                os.fchmod(f.fileno(), 0o644)  # as directory_dest.go does, whatever the umask
                os.fsync(f.fileno())
            name = _blob_name(digest)
            os.replace(tmp, staging / name)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        with self._lock:
            self._blobs[name] = size
        return Descriptor(media_type, digest, size) if expected is None else expected.with_(media_type=media_type)

    def put_manifest(self, manifest: Manifest, *, algorithm: str = "sha256") -> Descriptor:
        staging = self._stage_dir()
        desc = manifest.descriptor
        if algorithm != desc.digest.algorithm:
            desc = desc.with_(digest=Digest.of(manifest.raw, algorithm))
        with self._lock:
            if desc.digest in self._manifests:
                return desc
            name = _instance_name(desc.digest)
            _write_file(staging / name, manifest.raw)
            self._manifests[desc.digest] = name
        return desc

    def tag(self, desc: Descriptor, name: str | None, *, image_name: str | None = None,
            replaces: Digest | None = None, expects: Digest | None = None) -> None:
        if name is not None:
            raise UnsupportedFormat(f"dir: images have no names; cannot keep {name!r} in {self.path}")
        if self._root is not None and self._root.digest != desc.digest:
            raise UnsupportedFormat(f"{self.path}: a dir: directory holds one image; copy the second elsewhere")
        if desc.digest not in self._manifests:
            raise NotFound(f"{self.path}: cannot make {desc.digest} the image: its manifest was not written")
        self._root = desc

    def put_referrers(self, subject: Digest, referrers: Sequence[Descriptor]) -> None:
        raise no_referrers(str(self.ref))

    def put_signatures(self, manifest_digest: Digest, sigs: Sequence[Signature]) -> None:
        self._signatures.setdefault(manifest_digest, []).extend(sigs)

    def commit(self) -> None:
        """Make the staged image (or, without one, the staged signatures) visible; on failure the directory
        is left as it was."""
        if self._root is not None:
            self._commit_image()
        elif self._signatures:
            self._commit_signatures()
        self._signatures.clear()

    def close(self) -> None:
        """Drop what was staged; a directory this destination created and did not commit is removed."""
        if self._fd >= 0:
            assert self._staging is not None
            remove_tree(self._staging)
            os.close(self._fd)
            self._fd = -1
            if self._created_root:
                with contextlib.suppress(OSError):
                    os.rmdir(self.path)  # only when still empty
        self._staging = None
        self._signatures.clear()

    # -- commits --------------------------------------------------------------------------------------
    def _commit_signatures(self) -> None:
        """Append staged signatures to the image already in the directory (``sign``)."""
        from ..signature.storage import DirSignatures

        if not self.path.is_dir():
            raise NotFound(f"{self.path}: no such dir: image directory")
        with _dir_lock(self.path):
            store = DirSignatures(self.path)
            written: list[Path] = []
            try:
                for digest, sigs in self._signatures.items():
                    have = {_sig_key(b) for b in store.blobs(digest)}
                    for sig in sigs:
                        blob = sig.to_blob()
                        if blob not in have:
                            written.append(store.add(digest, sig))
                            have.add(blob)
            except BaseException:
                for p in written:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(p)
                raise

    def _signature_files(self, top: Digest) -> dict[str, bytes]:
        """Every signature file of the new image: those the directory holds for a manifest it keeps, then the
        staged ones (exact duplicates once), named for the new top manifest ``top``."""
        from ..signature.storage import DirSignatures, signature_prefix

        old = DirSignatures(self.path)
        try:
            old_top: Digest | None = old.manifest_digest()
        except OcilayoutError:
            old_top = None
        assert self._root is not None
        images = {top, *(d for d in self._manifests if d != self._root.digest)}
        files: dict[str, bytes] = {}
        for digest in dict.fromkeys([*images, *self._signatures]):
            kept: dict[bytes, bytes] = {}  # what a signature is (its canonical blob) -> the bytes stored
            if old_top is not None and (digest == old_top or os.path.lexists(self.path / _instance_name(digest))):
                for blob in old.blobs(digest, signature_prefix(digest, old_top)):
                    kept.setdefault(_sig_key(blob), blob)  # stored files are kept as they are
            for sig in self._signatures.get(digest, ()):
                kept.setdefault(sig.to_blob(), sig.to_blob())
            prefix = signature_prefix(digest, top)
            for n, blob in enumerate(kept.values(), 1):
                files[f"{prefix}{n}"] = blob
        return files

    def _commit_image(self) -> None:
        assert self._root is not None and self._staging is not None
        staging, path = self._staging, self.path
        with _dir_lock(path):
            if not self._check_target():
                raise LayoutError(f"{path} was removed while the copy ran")
            changed = [n for n, size in self._reused.items() if _regular_size(path / n) != size]
            if changed:
                raise LayoutError(f"{len(changed)} blob(s) this copy reused in {path} were removed or changed by "
                                  "another writer; run the copy again")
            root_file = self._manifests[self._root.digest]
            top_raw = (staging / root_file).read_bytes()
            sig_files = (self._signature_files(manifest_digest(top_raw))
                         if self._signatures or _has_signature_files(path) else {})
            for name, data in sig_files.items():
                _write_file(staging / name, data)
            _write_file(staging / VERSION_FILE, VERSION)
            # Every file's data is fsynced before it is renamed; the staging directory's own entries need no
            # fsync: they are renamed into the target, whose fsync (in _swap) makes the result durable.
            os.rename(staging / root_file, staging / MANIFEST_FILE)
            content = sorted({*self._blobs, *(f for d, f in self._manifests.items() if d != self._root.digest)})
            order = [*content, *sorted(sig_files), VERSION_FILE, MANIFEST_FILE]
            keep = set(order) | set(self._reused)
            old = sorted(n for n in os.listdir(path) if not _ours(n) and n not in keep)
            self._swap(order, old)
            for stale, _ in stale_temp_files(path):  # a dead writer's staging (a crash mid-commit keeps the
                if stale.is_dir() and not stale.is_symlink():  # old files in it until the next commit)
                    remove_tree(stale)
                else:
                    with contextlib.suppress(OSError):
                        stale.unlink()
        self._created_root = False
        self.close()  # removes the staging directory, and with it the old files set aside

    def _swap(self, order: list[str], old: list[str]) -> None:
        """Move ``order`` from staging into the directory (what it replaces moved aside first), then the
        ``old`` leftovers aside; undo every step on failure."""
        assert self._staging is not None
        staging, path = self._staging, self.path
        aside = staging / ".old"  # made when something is first set aside (never, into an empty directory)
        journal: list[tuple[str, str]] = []
        try:
            for name in order:
                if os.path.lexists(path / name):
                    aside.mkdir(exist_ok=True)
                    os.rename(path / name, aside / name)
                    journal.append(("aside", name))
                os.rename(staging / name, path / name)
                journal.append(("placed", name))
            for name in old:
                aside.mkdir(exist_ok=True)
                os.rename(path / name, aside / name)
                journal.append(("aside", name))
            fsync_dir(path)
        except BaseException:
            for op, name in reversed(journal):
                with contextlib.suppress(OSError):
                    if op == "placed":
                        os.rename(path / name, staging / name)
                    else:
                        os.rename(aside / name, path / name)
            with contextlib.suppress(OSError):
                fsync_dir(path)
            raise


class DirTransport(Transport):
    """``dir:PATH``: containers/image's directory format."""

    name = "dir"

    def open_source(self, ref: ImageReference) -> DirSource:
        return DirSource(ref)

    def open_destination(self, ref: ImageReference) -> DirDestination:
        return DirDestination(ref)

    def list_names(self, ref: ImageReference) -> list[str]:
        raise UnsupportedFormat("listing tags is not supported for dir: references: a dir: directory holds one "
                                "untagged image (skopeo: \"Unsupported transport 'dir' for tag listing\")")

    def open_reader(self, ref: ImageReference) -> LayoutReader:
        """The directory as a one-image layout (fsck hashes every blob of the image; images lists it)."""
        return LayoutReader(DirImageTree(ref.path))
