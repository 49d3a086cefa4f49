"""``oci-archive:`` tarballs: read in place through a tar index, written deterministically and atomically.

An oci-archive is a tar of an OCI image layout (``oci-layout``, ``index.json``, ``blobs/<alg>/<hex>``), as
skopeo / containers-image write it.

Reading (:class:`ArchiveReader`) never extracts: opening scans the tar headers once (``tarfile`` seeks over
member data) and keeps ``member name -> (data offset, size)``; a blob is then a bounded ``pread`` stream
over its own duplicated file descriptor, so several threads can read different blobs at once and a stream
stays valid after the reader is closed. Member names are not trusted: absolute names, ``..`` components,
links whose target leaves the tree and members beneath a symlink raise :class:`UnsafePath`; links inside
the tree (blob deduplication) are followed. Device, fifo and sparse members, truncated archives, non-tar
files and compressed archives raise :class:`LayoutError`. A gzip/zstd/xz/bzip2-compressed outer tar is
refused with "compressed oci-archive is not supported; decompress it first": it cannot be read in place.

Writing (:func:`commit_archive`) streams every blob of a staging layout plus every blob of the existing
archive (read by offset, never extracted) into a temp file beside the destination, verifying each blob's
digest while copying, then fsyncs and renames. Output bytes depend only on the content: fixed entry order,
owner 0/0 with empty names, modes 0644/0755, one mtime (``epoch``, else ``SOURCE_DATE_EPOCH``, else 0).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import os
import posixpath
import stat
import tarfile
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .descriptor import CONTAINERD_NAME, REF_NAME
from .digest import CHUNK, Digest, VerifyingReader
from .errors import InvalidManifest, LayoutError, NotFound, OcilayoutError, UnsafePath
from .fsutil import fsync_dir, temp_file
from .manifest import canonical_json, load_json
from .store import INDEX_FILE, LAYOUT_DOC, LAYOUT_FILE, LayoutReader, LayoutStore, blob_relpath
from .streams import PIPELINE_MIN, pump

__all__ = ["ArchiveReader", "Member", "archive_lock", "commit_archive", "source_date_epoch"]

BLOCK = 512
#: Symlink hops allowed while resolving one name (Linux's ELOOP limit).
MAX_LINK_HOPS = 40

_COMPRESSION_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
)
#: PAX extended headers and GNU long names are read into memory whole: cap them.
MAX_META_HEADER = 1 << 20
_META_TYPES = {tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
               tarfile.GNUTYPE_LONGLINK}
_REGULAR = {tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE}
_DEVICES = {tarfile.CHRTYPE: "character device", tarfile.BLKTYPE: "block device", tarfile.FIFOTYPE: "fifo"}


@dataclass(frozen=True, slots=True)
class Member:
    """One resolved archive entry: a regular file's data span, a directory, or a symlink (``link`` set)."""

    name: str
    kind: str  # "file", "dir" or "symlink"
    offset: int = 0
    size: int = 0
    link: str | None = None


def _normalize(name: str, what: str) -> str:
    """A member or link name as a relative path without ``./``, ``//`` or trailing ``/``; raises UnsafePath."""
    if not name or "\x00" in name:
        raise UnsafePath(f"{what} has an empty or NUL-containing name {name!r}")
    if name.startswith("/"):
        raise UnsafePath(f"{what} {name!r} is an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafePath(f"{what} {name!r} contains a '..' component")
    return "/".join(parts)


class _MemberStream(io.RawIOBase):
    """A read-only, seekable view of ``size`` bytes at ``start`` of a file, read with pread on its own fd."""

    def __init__(self, fd: int, start: int, size: int, name: str) -> None:
        super().__init__()
        self._fd = os.dup(fd)
        self._start = start
        self._size = size
        self._pos = 0
        self.name = name

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        pos = base + offset
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos

    def readinto(self, buf: Any) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        view = memoryview(buf).cast("B")
        n = min(len(view), self._size - self._pos)
        if n <= 0:
            return 0
        got = os.preadv(self._fd, [view[:n]], self._start + self._pos)
        if got == 0:
            raise LayoutError(f"{self.name}: archive member ends early (was the archive truncated?)")
        self._pos += got
        return got

    def region(self) -> tuple[int, int, int]:
        """(fd, offset, size) of the unread rest, for in-kernel copies (see :func:`ocilayout.streams.region_of`)."""
        return self._fd, self._start + self._pos, self._size - self._pos

    def readall(self) -> bytes:
        out = bytearray(max(self._size - self._pos, 0))
        view = memoryview(out)
        filled = 0
        while filled < len(out):
            n = self.readinto(view[filled:])
            if not n:
                break
            filled += n
        return bytes(out[:filled])

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


class ArchiveReader(LayoutReader):
    """A read-only OCI layout inside a tar file, read in place. Use :meth:`open`; close when done."""

    def __init__(self, path: Path | str, fd: int, members: dict[str, Member]) -> None:
        self.path = Path(path)
        self.location = str(path)
        self._fd: int | None = fd
        self._members = members

    # -- opening -------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Path | str) -> ArchiveReader:
        """Index the tar at ``path`` (headers only) and check its ``oci-layout`` file.

        Raises NotFound when the file is missing; LayoutError for a non-tar, compressed, truncated or
        malformed archive or one without an ``oci-layout``; UnsafePath for members or links that escape.
        """
        path = Path(path)
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):  # a fifo would block open(); a directory is no tar
                raise LayoutError(f"{path} is not a regular file, so not an oci-archive")
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError as err:
            raise NotFound(f"{path}: no such archive") from err
        except OSError as err:
            raise LayoutError(f"cannot open {path}: {err.strerror or err}") from err
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise LayoutError(f"{path} is not a regular file, so not an oci-archive")
            members = _index_tar(path, fd)
            reader = cls(path, fd, members)
            reader.check_layout_file()
        except BaseException:
            os.close(fd)
            raise
        return reader

    def close(self) -> None:
        """Release the archive's file descriptor; streams already opened stay readable."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ArchiveReader:
        return self

    # -- primitives ----------------------------------------------------------------------------------
    def _lookup(self, relpath: str) -> Member | None:
        """The member ``relpath`` names after following symlinks; None when nothing is there."""
        resolved = _resolve(self._members, relpath, f"{self.location}: {relpath!r}")
        return self._members.get(resolved)

    def _file(self, relpath: str) -> Member:
        m = self._lookup(relpath)
        if m is None or m.kind != "file":
            raise FileNotFoundError(errno.ENOENT, f"{self.location}: no file {relpath} in the archive")
        return m

    def _open(self, relpath: str) -> BinaryIO:
        if self._fd is None:
            raise LayoutError(f"{self.location}: archive reader is closed")
        m = self._file(relpath)
        return _MemberStream(self._fd, m.offset, m.size, f"{self.location}:{m.name}")  # type: ignore[return-value]

    def _size(self, relpath: str) -> int:
        return self._file(relpath).size

    def _exists(self, relpath: str) -> bool:
        m = self._lookup(relpath)
        return m is not None and m.kind == "file"

    # -- archive-specific ----------------------------------------------------------------------------
    def members(self) -> list[Member]:
        """Every indexed entry (hardlinks already resolved to their target's data), in name order."""
        return [self._members[k] for k in sorted(self._members)]

    def all_blobs(self) -> Iterator[tuple[Digest, int]]:
        """Every well-named blob (``blobs/<alg>/<hex>``, links followed) with its size, in sorted order."""
        for name in sorted(self._members):
            parts = name.split("/")
            if len(parts) != 3 or parts[0] != "blobs":
                continue
            try:
                digest = Digest(parts[1], parts[2])
            except OcilayoutError:
                continue
            m = self._lookup(name)
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


def _sniff(path: Path, fd: int) -> None:
    head = os.pread(fd, 8, 0)
    for magic, name in _COMPRESSION_MAGIC:
        if head.startswith(magic):
            raise LayoutError(f"{path}: compressed oci-archive is not supported; decompress it first ({name})")


def _index_tar(path: Path, fd: int) -> dict[str, Member]:
    """Scan the tar's headers: normalized name -> Member. Raises LayoutError / UnsafePath."""
    _sniff(path, fd)
    file_size = os.fstat(fd).st_size
    members: dict[str, Member] = {}
    with os.fdopen(os.dup(fd), "rb") as f:
        _check_meta_header(path, fd, 0)
        try:
            tar = tarfile.open(fileobj=f, mode="r:")  # noqa: SIM115 - closed in the finally below
        except tarfile.ReadError as err:
            raise LayoutError(f"{path} is not an oci-archive (not a tar file: {err})") from err
        try:
            while True:
                _check_meta_header(path, fd, tar.offset)
                try:
                    info = tar.next()
                except tarfile.ReadError as err:
                    raise LayoutError(f"{path}: corrupt or truncated tar archive ({err})") from err
                if info is None:
                    break
                tar.members.clear()  # we keep our own index; tarfile's list would hold every TarInfo
                _add_member(path, members, info, file_size)
            end = tar.offset
        finally:
            tar.close()
    # tarfile treats a clean EOF at a header boundary as the end: require the end-of-archive zero block.
    if os.pread(fd, BLOCK, end) != b"\x00" * BLOCK:
        raise LayoutError(f"{path}: truncated tar archive (no end-of-archive marker after {end} bytes)")
    for m in members.values():
        if m.kind == "symlink":
            _resolve(members, m.name, f"{path}: symlink {m.name!r}")
        parent = posixpath.dirname(m.name)
        while parent:
            p = members.get(parent)
            if p is not None and p.kind == "symlink":
                raise UnsafePath(f"{path}: member {m.name!r} lies beneath symlink {parent!r}")
            if p is not None and p.kind == "file":
                raise LayoutError(f"{path}: member {m.name!r} lies beneath regular file {parent!r}")
            parent = posixpath.dirname(parent)
    return members


def _check_meta_header(path: Path, fd: int, offset: int) -> None:
    """Refuse a PAX / GNU long-name header bigger than :data:`MAX_META_HEADER` before tarfile reads it whole."""
    block = os.pread(fd, BLOCK, offset)
    if len(block) < BLOCK or block == b"\x00" * BLOCK:
        return
    try:
        hdr = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return  # tarfile reports it with its own message
    if hdr.type in _META_TYPES and hdr.size > MAX_META_HEADER:
        raise LayoutError(f"{path}: tar metadata header at offset {offset} is {hdr.size} bytes, over the "
                          f"{MAX_META_HEADER}-byte limit")


def _add_member(path: Path, members: dict[str, Member], info: tarfile.TarInfo, file_size: int) -> None:
    label = f"{path}: member"
    name = _normalize(info.name, label)
    label = f"{path}: member {info.name!r}"
    if not name:  # "./" itself
        if not info.isdir():
            raise LayoutError(f"{label} names the archive root but is not a directory")
        return
    if info.type in _DEVICES:
        raise LayoutError(f"{label} is a {_DEVICES[info.type]}; oci-archives hold only files, dirs and links")
    if info.issparse():
        raise LayoutError(f"{label} is a GNU sparse file, which is not supported")
    if info.type in _REGULAR:
        if info.offset_data + info.size > file_size:
            raise LayoutError(f"{label} runs past the end of the file (truncated archive)")
        members[name] = Member(name, "file", info.offset_data, info.size)
    elif info.type == tarfile.DIRTYPE:
        members[name] = Member(name, "dir")
    elif info.type == tarfile.SYMTYPE:
        if not info.linkname or info.linkname.startswith("/"):
            raise UnsafePath(f"{label} is a symlink to absolute path {info.linkname!r}")
        if "\x00" in info.linkname:
            raise UnsafePath(f"{label} is a symlink with a NUL in its target")
        members[name] = Member(name, "symlink", link=info.linkname)
    elif info.type == tarfile.LNKTYPE:
        target = _normalize(info.linkname, f"{label}: hardlink target")
        t = members.get(target)
        if t is None:
            raise LayoutError(f"{label} is a hardlink to {info.linkname!r}, which is not an earlier member")
        if t.kind != "file":
            raise LayoutError(f"{label} is a hardlink to a {t.kind}, which is not supported")
        members[name] = Member(name, "file", t.offset, t.size)
    else:
        raise LayoutError(f"{label} has unsupported tar type {info.type!r}")


def _resolve(members: dict[str, Member], relpath: str, label: str) -> str:
    """``relpath`` with every symlink member on the way substituted, POSIX-style; raises UnsafePath.

    The result is a normalized name inside the tree (it may name nothing). ``..`` above the root and
    absolute link targets raise UnsafePath; more than :data:`MAX_LINK_HOPS` hops raise LayoutError.
    """
    if relpath.startswith("/"):
        raise UnsafePath(f"{label}: absolute path")
    todo = [p for p in reversed(relpath.split("/"))]
    done: list[str] = []
    hops = 0
    while todo:
        part = todo.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if not done:
                raise UnsafePath(f"{label} leaves the archive tree")
            done.pop()
            continue
        done.append(part)
        m = members.get("/".join(done))
        if m is not None and m.kind == "symlink":
            hops += 1
            if hops > MAX_LINK_HOPS:
                raise LayoutError(f"{label}: too many levels of symbolic links")
            assert m.link is not None
            if m.link.startswith("/"):
                raise UnsafePath(f"{label}: symlink {m.name!r} points to absolute path {m.link!r}")
            done.pop()
            todo.extend(reversed(m.link.split("/")))
    return "/".join(done)


# -- writing --------------------------------------------------------------------------------------------

def source_date_epoch(epoch: int | None = None) -> int:
    """The mtime for written entries: ``epoch``, else ``$SOURCE_DATE_EPOCH``, else 0. Raises LayoutError."""
    if epoch is None:
        text = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
        if not text:
            return 0
        try:
            epoch = int(text)
        except ValueError as err:
            raise LayoutError(f"SOURCE_DATE_EPOCH must be a whole number of seconds, not {text!r}") from err
    if epoch < 0:
        raise LayoutError(f"archive mtime must not be negative (got {epoch})")
    return epoch


def _header(name: str, *, size: int = 0, directory: bool = False, mtime: int = 0) -> bytes:
    ti = tarfile.TarInfo(name + "/" if directory else name)
    ti.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    ti.mode = 0o755 if directory else 0o644
    ti.size = size
    ti.mtime = mtime
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")


def _pad(n: int) -> bytes:
    return b"\x00" * (-n % BLOCK)


def _entry_name(entry: dict[str, Any]) -> str | None:
    ann = entry.get("annotations") or {}
    if not isinstance(ann, dict):
        return None
    return ann.get(REF_NAME) or ann.get(CONTAINERD_NAME)


def _index_doc(reader: LayoutReader) -> dict[str, Any]:
    doc = load_json(reader.index_bytes(), f"{reader.location}/index.json")
    manifests = doc.get("manifests") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or not isinstance(manifests if manifests is not None else [], list):
        raise InvalidManifest(f"{reader.location}/index.json is not an OCI index")
    doc["manifests"] = [e for e in manifests or [] if isinstance(e, dict)]
    if len(doc["manifests"]) != len(manifests or []):
        raise InvalidManifest(f"{reader.location}/index.json has a manifests entry that is not an object")
    return doc


def _merge_entries(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Old entries with ``new`` merged in: a named entry replaces old ones of that name; untagged ones are
    appended unless the same digest is already there untagged."""
    out = list(old)
    for entry in new:
        name = _entry_name(entry)
        if name is None:
            if not any(e.get("digest") == entry.get("digest") and _entry_name(e) is None for e in out):
                out.append(entry)
        else:
            out = [*(e for e in out if _entry_name(e) != name), entry]
    return out


def archive_lock(directory: Path) -> contextlib.AbstractContextManager[None]:
    """Serialize archive updates in one directory (flock on the directory itself; no lock file).

    Re-entrant within a thread, so a caller can read an archive, decide, and :func:`commit_archive` it
    under one lock (as appending a signature does).
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
                   extra: Mapping[Digest, tuple[LayoutReader, int]] | None = None,
                   progress: Callable[[int], None] | None = None) -> None:
    """Write the oci-archive ``out`` atomically from ``staging`` plus the existing archive ``base``.

    ``base`` defaults to ``out`` when it exists, so appending keeps the archive's other images. The result
    holds every blob of both (each verified against its digest while copied; old blobs streamed from the
    base archive by offset) and the base's ``index.json`` entries with the staging entries merged in (a
    named entry replaces one of the same name). Same input, same bytes (see :func:`source_date_epoch`).
    On any error ``out`` is unchanged and no temp file is left. Raises LayoutError, NotFound,
    IntegrityError, InvalidManifest.

    ``extra`` adds blobs streamed straight from another layout (digest -> (reader, size)): copy uses it so
    a blob goes from its source into the archive in one pass, never staged. ``progress`` receives the
    byte count of each chunk of those blobs.
    """
    out = Path(out)
    mtime = source_date_epoch(epoch)
    parent = out.parent
    if out.is_dir():
        raise LayoutError(f"{out} is a directory; an oci-archive is a file")
    if not parent.is_dir():
        raise NotFound(f"cannot write {out}: directory {parent} does not exist")
    staging.check_layout_file()
    with archive_lock(parent):
        base_path = Path(base) if base is not None else (out if out.exists() else None)
        old = ArchiveReader.open(base_path) if base_path is not None else None
        try:
            _write(out, staging, old, mtime, extra or {}, progress)
        finally:
            if old is not None:
                old.close()


def _write(out: Path, staging: LayoutStore, old: ArchiveReader | None, mtime: int,
           extra: Mapping[Digest, tuple[LayoutReader, int]], progress: Callable[[int], None] | None) -> None:
    new_doc = _index_doc(staging)
    if old is not None:
        old_raw = old.index_bytes()
        doc = _index_doc(old)
        doc["manifests"] = _merge_entries(doc["manifests"], new_doc["manifests"])
        index_raw = old_raw if not new_doc["manifests"] else canonical_json(doc)
    else:
        doc = new_doc
        index_raw = canonical_json(doc)

    sources: dict[Digest, tuple[LayoutReader, int]] = {}
    if old is not None:
        for digest, size in old.all_blobs():
            sources[digest] = (old, size)
    sources.update(extra)
    for digest, size in staging.all_blobs():
        sources[digest] = (staging, size)  # a local file is cheaper to read than an archive member
    for entry in doc["manifests"]:
        try:
            digest = Digest.parse(entry.get("digest"))
        except OcilayoutError as err:
            raise InvalidManifest(f"index.json entry {_entry_name(entry) or ''}: {err}".replace("  ", " ")) from err
        if digest not in sources:
            raise NotFound(f"cannot write {out}: index.json entry {digest} has no blob in the staging layout "
                           f"or the existing archive")

    try:
        with temp_file(out.parent, suffix=".tar") as (tmp, f):
            f.write(_header(LAYOUT_FILE, size=len(LAYOUT_DOC), mtime=mtime) + LAYOUT_DOC + _pad(len(LAYOUT_DOC)))
            f.write(_header(INDEX_FILE, size=len(index_raw), mtime=mtime) + index_raw + _pad(len(index_raw)))
            f.write(_header("blobs", directory=True, mtime=mtime))
            current_alg = None
            for digest in sorted(sources, key=lambda d: (d.algorithm, d.hex)):
                reader, size = sources[digest]
                if digest.algorithm != current_alg:
                    current_alg = digest.algorithm
                    f.write(_header(f"blobs/{current_alg}", directory=True, mtime=mtime))
                f.write(_header(blob_relpath(digest), size=size, mtime=mtime))
                with reader.open_blob(digest, verify=False) as raw:
                    pump(VerifyingReader(raw, digest, size), f, progress if digest in extra else None,
                         pipelined=size > PIPELINE_MIN)
                f.write(_pad(size))
            f.write(b"\x00" * (2 * BLOCK))
            f.flush()
            os.fchmod(f.fileno(), 0o644)
            os.fsync(f.fileno())
            os.replace(tmp, out)
    except OcilayoutError as err:
        err.add_note(f"while writing {out}; it was left unchanged")
        raise
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise LayoutError(f"no space left on device while writing {out}") from err
        raise LayoutError(f"writing {out}: {err.strerror or err}") from err
    fsync_dir(out.parent)
