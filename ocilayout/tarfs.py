"""Named files read safely, from a directory or a tar read in place, and one deterministic tar writer.

This is the file-access layer under every transport that stores files: a layout directory (:class:`DirTree`),
an ``oci-archive:`` or ``docker-archive:`` tar (:class:`TarTree`). Layout semantics (``index.json``, ref
names, blobs by digest) live above it, in :mod:`ocilayout.store`.

**Reading a directory.** A name is opened without blocking and accepted only when it is a regular file
(``fstat``): a FIFO, a socket or a device raises LayoutError instead of hanging or streaming forever. A
symlink anywhere on the way must resolve inside the tree (UnsafePath otherwise), and a symlink loop is a
LayoutError.

**Reading a tar.** Opening scans the headers once (``tarfile`` seeks over member data) and keeps
``member name -> (data offset, size)``; a member is then a bounded ``pread`` stream over its own duplicated
file descriptor, so several threads can read different members at once and a stream stays valid after the
tree is closed. Member names are not trusted: absolute names, ``..`` components, links whose target leaves
the tree and members beneath a symlink raise :class:`UnsafePath`; links inside the tree (deduplication) are
followed with an ELOOP-style hop limit. Device, fifo and sparse members, truncated archives and non-tar files
raise :class:`LayoutError`; a compressed tar (gzip, zstd, xz, bzip2) is decompressed once into an anonymous
temp file and read in place from there; PAX/GNU long-name headers are capped at 1 MiB.

**Writing a tar** (:class:`TarWriter`): entries in the order given (callers sort them), owner 0/0 with empty
names, modes 0644/0755, one mtime (``SOURCE_DATE_EPOCH``, else 0), PAX format; written to a flock()ed temp
file beside the target, fsynced and renamed over it only by :meth:`TarWriter.commit`. Same input, same bytes.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import posixpath
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from .errors import LayoutError, NotFound, UnsafePath
from .fsutil import _kind, fsync_dir, open_regular, temp_file
from .streams import PIPELINE_MIN, Readable, pump

if TYPE_CHECKING:
    import tarfile

__all__ = ["DirTree", "Member", "TarTree", "TarWriter", "Tree", "open_regular", "source_date_epoch"]

BLOCK = 512
#: Symlink hops allowed while resolving one name (Linux's ELOOP limit).
MAX_LINK_HOPS = 40
#: PAX extended headers and GNU long names are read into memory whole: cap them.
MAX_META_HEADER = 1 << 20
# tarfile's type flags, spelled out so that importing this module (every layout read does) does not import
# tarfile (~15 ms); the tar functions import it when a tar is actually read or written.
_META_TYPES = {b"x", b"g", b"X", b"L", b"K"}  # PAX extended / global, Solaris, GNU long name / long link
_REGULAR = {b"0", b"\0", b"7"}  # REGTYPE, AREGTYPE, CONTTYPE
#: What tarfile raises for a malformed header (a bad PAX sparse map raises ValueError, a short extended
#: sparse block EOFError): all of them mean a corrupt archive, never an internal error.
_HEADER_ERRORS: tuple[type[Exception], ...] = (ValueError, EOFError, UnicodeDecodeError, OverflowError, IndexError)
_DEVICES = {b"3": "character device", b"4": "block device", b"6": "fifo"}  # CHRTYPE, BLKTYPE, FIFOTYPE


class Tree(Protocol):
    """Read-only named files (``/``-separated relative names)."""

    #: Human-readable location for messages.
    location: str

    def open(self, name: str) -> BinaryIO:
        """A stream of a regular file; raises FileNotFoundError, UnsafePath, LayoutError (not a regular file)."""
        ...

    def size(self, name: str) -> int:
        """A regular file's size; raises FileNotFoundError, UnsafePath, LayoutError."""
        ...

    def exists(self, name: str) -> bool:
        """True when ``name`` is a regular file inside the tree."""
        ...

    def close(self) -> None: ...


class DirTree:
    """Files under a directory; symlinks may be used inside it but never lead out of it."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.location = str(self.root)

    def path(self, name: str) -> Path:
        """``root/name``, after checking that every symlink on the way stays inside; raises UnsafePath."""
        path = self.root / name
        try:
            real = path.resolve(strict=False)
            inside = self.root.resolve()
        except RuntimeError as err:  # a symlink loop (Python < 3.13)
            raise LayoutError(f"{path}: too many levels of symbolic links") from err
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise LayoutError(f"{path}: too many levels of symbolic links") from err
            raise
        if real != inside and inside not in real.parents:
            raise UnsafePath(f"{path} is a symlink out of the layout {self.root}")
        return path

    def open(self, name: str) -> BinaryIO:
        return open_regular(self.path(name), "file")

    def _stat(self, name: str) -> os.stat_result:
        try:
            st = os.stat(self.path(name))
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise LayoutError(f"{self.root / name}: too many levels of symbolic links") from err
            raise
        return st

    def size(self, name: str) -> int:
        st = self._stat(name)
        if not stat.S_ISREG(st.st_mode):
            raise LayoutError(f"{self.root / name} is {_kind(st.st_mode)}, not a regular file")
        return st.st_size

    def exists(self, name: str) -> bool:
        """True when a regular file is there (even one behind a symlink out of the tree, which
        :meth:`open` and :meth:`size` then refuse: present, but unreadable)."""
        try:
            return stat.S_ISREG(os.stat(self.root / name).st_mode)
        except OSError:
            return False

    def close(self) -> None:
        """Nothing to release for a directory."""


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


class TarTree:
    """A tar file's members, read in place. Use :meth:`open`; close when done (open streams stay valid)."""

    def __init__(self, path: Path, fd: int, members: dict[str, Member]) -> None:
        self.path = path
        self.location = str(path)
        self._fd: int | None = fd
        self._members = members
        #: How the file on disk was compressed ("none" when read in place).
        self.compression = "none"

    @classmethod
    def load(cls, path: Path | str, what: str = "archive", *, decompress: bool = True) -> TarTree:
        """Index the tar at ``path`` (headers only). Raises NotFound when it is missing; LayoutError for a
        non-tar, truncated or malformed tar; UnsafePath for members or links that escape.

        A gzip/zstd/xz/bzip2-compressed tar is decompressed once, streaming, into an anonymous temp file
        (see :func:`spool_decompressed`) and read in place from there; ``compression`` says which it was.
        With ``decompress=False`` a compressed tar raises LayoutError instead.
        """
        path = Path(path)
        try:
            f = open_regular(path, what)
        except FileNotFoundError as err:
            raise NotFound(f"{path}: no such {what}") from err
        except OSError as err:
            raise LayoutError(f"cannot open {path}: {err.strerror or err}") from err
        try:
            kind = _sniff(path, f.fileno(), what, decompress)
            fd = spool_decompressed(f, kind, path, what) if kind != "none" else os.dup(f.fileno())
        finally:
            f.close()
        try:
            tree = cls(path, fd, _index_tar(path, fd, what))
        except BaseException:
            os.close(fd)
            raise
        tree.compression = kind
        return tree

    def close(self) -> None:
        """Release the tar's descriptor; streams already opened stay readable."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> TarTree:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def lookup(self, name: str) -> Member | None:
        """The member ``name`` names after following symlinks; None when nothing is there."""
        return self._members.get(_resolve(self._members, name, f"{self.location}: {name!r}"))

    def _file(self, name: str) -> Member:
        m = self.lookup(name)
        if m is None or m.kind != "file":
            raise FileNotFoundError(errno.ENOENT, f"{self.location}: no file {name} in the archive")
        return m

    def open(self, name: str) -> BinaryIO:
        if self._fd is None:
            raise LayoutError(f"{self.location}: archive is closed")
        m = self._file(name)
        return _MemberStream(self._fd, m.offset, m.size, f"{self.location}:{m.name}")  # type: ignore[return-value]

    def size(self, name: str) -> int:
        return self._file(name).size

    def exists(self, name: str) -> bool:
        m = self.lookup(name)
        return m is not None and m.kind == "file"

    def names(self) -> Iterator[str]:
        """Every member name (normalized), sorted."""
        return iter(sorted(self._members))


def _sniff(path: Path, fd: int, what: str, decompress: bool) -> str:
    from .compression import MAGIC_LEN, detect

    kind = detect(os.pread(fd, MAGIC_LEN, 0))
    if kind != "none" and not decompress:
        raise LayoutError(f"{path}: compressed {what} is not supported here; decompress it first ({kind})")
    return kind


#: Outer-archive compressions :func:`spool_decompressed` reads (xz and bzip2 through the standard library).
SPOOL_KINDS = frozenset({"gzip", "zstd", "xz", "bzip2"})


def spool_decompressed(f: BinaryIO, kind: str, path: Path, what: str = "archive") -> int:
    """Decompress ``f`` (compressed as ``kind``) once, streaming, into an anonymous temp file; returns its fd.

    The file lives in ``$TMPDIR``, else ``/var/tmp`` (containers-image's directory for big temp files: ``/tmp``
    is often a RAM-backed tmpfs), is unlinked before a byte is written (so nothing is left behind on failure,
    on close or if the process is killed) and is freed when the last descriptor on it closes; memory use is
    the codec's window, never the archive's size. Raises LayoutError for corrupt input or a full disk.
    """
    import tempfile

    from .compression import open_decompressed

    where = os.environ.get("TMPDIR") or ("/var/tmp" if os.path.isdir("/var/tmp") else None)
    tmp = tempfile.TemporaryFile(prefix=".ocilayout-spool-", dir=where)  # noqa: SIM115 - its fd is returned
    try:
        f.seek(0)
        if kind == "xz":
            import lzma

            reader: BinaryIO = lzma.LZMAFile(f, "rb")  # type: ignore[assignment]  # noqa: SIM115
        elif kind == "bzip2":
            import bz2

            reader = bz2.BZ2File(f, "rb")  # type: ignore[assignment]
        else:
            reader = open_decompressed(f, kind)
        try:
            while chunk := reader.read(1 << 20):
                tmp.write(chunk)
        finally:
            reader.close()
        tmp.flush()
        tmp.seek(0)  # the tar index reads from the descriptor's current offset
        return os.dup(tmp.fileno())
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise LayoutError(f"no space left on device while decompressing {path} ({kind})") from err
        raise LayoutError(f"{path}: corrupt {kind}-compressed {what} ({err.strerror or err})") from err
    except (EOFError, ValueError) as err:
        raise LayoutError(f"{path}: corrupt or truncated {kind}-compressed {what} ({err})") from err
    except Exception as err:
        if type(err).__name__ in ("ZstdError", "LZMAError", "error"):  # zstandard, lzma, zlib / isal_zlib
            raise LayoutError(f"{path}: corrupt {kind}-compressed {what} ({err})") from err
        raise
    finally:
        tmp.close()


def _index_tar(path: Path, fd: int, what: str = "archive") -> dict[str, Member]:
    """Scan the tar's headers: normalized name -> Member. Raises LayoutError / UnsafePath."""
    import tarfile

    header_errors: tuple[type[Exception], ...] = (tarfile.TarError, *_HEADER_ERRORS)
    file_size = os.fstat(fd).st_size
    members: dict[str, Member] = {}
    with os.fdopen(os.dup(fd), "rb") as f:
        _check_meta_header(path, fd, 0)
        try:
            tar = tarfile.open(fileobj=f, mode="r:")  # noqa: SIM115 - closed in the finally below
        except header_errors as err:
            raise LayoutError(f"{path} is not an {what} (not a tar file: {err})") from err
        try:
            while True:
                _check_meta_header(path, fd, tar.offset)
                try:
                    info = tar.next()
                except header_errors as err:
                    raise LayoutError(f"{path}: corrupt or truncated tar archive ({err})") from err
                if info is None:
                    break
                tar.members.clear()  # type: ignore[attr-defined]  # we keep our own index; tarfile's list would hold every TarInfo
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
    import tarfile

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
    import tarfile

    label = f"{path}: member"
    name = _normalize(info.name, label)
    label = f"{path}: member {info.name!r}"
    if not name:  # "./" itself
        if not info.isdir():
            raise LayoutError(f"{label} names the archive root but is not a directory")
        return
    if info.type in _DEVICES:
        raise LayoutError(f"{label} is a {_DEVICES[info.type]}; archives hold only files, dirs and links")
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



# -- writing ---------------------------------------------------------------------------------------------

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



def _header(name: str, *, size: int = 0, directory: bool = False, mtime: int = 0, link: str | None = None) -> bytes:
    import tarfile

    ti = tarfile.TarInfo(name + "/" if directory else name)
    ti.type = tarfile.DIRTYPE if directory else tarfile.SYMTYPE if link is not None else tarfile.REGTYPE
    ti.mode = 0o755 if directory or link is not None else 0o644
    if link is not None:
        ti.linkname = link
    ti.size = size
    ti.mtime = mtime
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")


class TarWriter:
    """A deterministic tar written to a temp file beside ``out``; :meth:`commit` fsyncs and renames it.

    Use as a context manager: leaving the block without :meth:`commit` (or with an error) removes the temp
    file and leaves ``out`` unchanged. Entries are written in call order; callers sort them.
    """

    def __init__(self, out: Path | str, *, mtime: int | None = None, readable: bool = False) -> None:
        self.out = Path(out)
        self.mtime = source_date_epoch(mtime)
        self._readable = readable
        self._ctx: contextlib.AbstractContextManager[tuple[Path, BinaryIO]] | None = None
        self._tmp: Path | None = None
        self._f: BinaryIO | None = None

    def __enter__(self) -> TarWriter:
        parent = self.out.parent if str(self.out.parent) else Path(".")
        self._ctx = temp_file(parent, suffix=".tar", readable=self._readable)
        self._tmp, self._f = self._ctx.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._ctx is not None
        self._ctx.__exit__(*exc)

    @property
    def _file(self) -> BinaryIO:
        assert self._f is not None, "TarWriter used outside its with block"
        return self._f

    def add_dir(self, name: str) -> None:
        self._file.write(_header(name, directory=True, mtime=self.mtime))

    def add_symlink(self, name: str, target: str) -> None:
        """A symlink entry ``name -> target`` (a relative target inside the archive)."""
        self._file.write(_header(name, mtime=self.mtime, link=target))

    def add_bytes(self, name: str, data: bytes) -> None:
        self._file.write(_header(name, size=len(data), mtime=self.mtime) + data + _pad(len(data)))

    def add_stream(self, name: str, size: int, stream: Readable,
                   progress: Callable[[int], None] | None = None) -> None:
        """Write ``size`` bytes from ``stream`` (a VerifyingReader when the caller wants them checked);
        raises SizeMismatch when it yields another count."""
        from .errors import SizeMismatch

        f = self._file
        f.write(_header(name, size=size, mtime=self.mtime))
        n = pump(stream, f, progress, pipelined=size > PIPELINE_MIN)
        if n != size:
            raise SizeMismatch(f"{name}: wrote {n} bytes, its header says {size}")
        f.write(_pad(size))

    def reserve(self, name: str, size: int) -> tuple[int, int]:
        """Write the header of a ``size``-byte member ``name`` and skip its data and padding; returns the file
        descriptor and the data's offset, for the caller to fill (``pwrite``, ``copy_file_range``) before
        :meth:`commit`. Members reserved one after another can so be filled in parallel; the padding is
        left as a hole, which reads as the zeros a tar pads with. (With ``readable``, the data written can be
        read back from the descriptor to hash it.)"""
        f = self._file
        f.write(_header(name, size=size, mtime=self.mtime))
        f.flush()
        offset = f.tell()
        f.seek(offset + size + (-size % BLOCK))
        return f.fileno(), offset

    def commit(self) -> None:
        """Finish the tar (end-of-archive blocks), fsync, rename over ``out``, fsync the directory."""
        f = self._file
        assert self._tmp is not None
        f.write(b"\x00" * (2 * BLOCK))
        f.flush()
        os.fchmod(f.fileno(), 0o644)
        os.fsync(f.fileno())
        os.replace(self._tmp, self.out)
        fsync_dir(self.out.parent if str(self.out.parent) else Path("."))


def _pad(n: int) -> bytes:
    return b"\x00" * (-n % BLOCK)
