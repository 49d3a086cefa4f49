"""A directory as a deterministic layer tar.

Entries come depth first, each directory's entries sorted by their names' bytes, the root itself not
included; names are relative (``etc``, ``etc/hosts``). Modes keep the permission bits; owners and mtimes
follow the :class:`~ocilayout.layer.entries.EntryPolicy`. A regular file seen again through another hard
link is a hard-link entry naming the first path. Symlinks are stored, never followed.

Whiteouts, as containers/storage (buildah, podman) archives a directory: a file named ``.wh.NAME`` is kept
as it is, which extractors read as the whiteout of ``NAME``, and ``.wh..wh..opq`` makes its directory opaque
(both must be empty regular files); an overlayfs whiteout (a character device 0/0) becomes ``.wh.NAME``.
(umoci 0.4.7 refuses ``.wh.`` names in a directory it archives.) The ``trusted.overlay.opaque`` xattr is not read
(no xattrs are): use ``.wh..wh..opq``.

Refused (InvalidArgument, before anything is written): a symlink whose resolution inside the tree loops, a
device node when not running as root (only root can have made it, and only root can extract it), a socket
(a tar cannot hold one), a non-empty whiteout file, a whiteout that is not a file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InvalidArgument, LayoutError, NotFound
from .reader import OPAQUE, WHITEOUT

if TYPE_CHECKING:
    import tarfile

    from .entries import EntryPolicy, TarOut

__all__ = ["write_dir"]

#: Symlink hops allowed while resolving one name (Linux's limit).
MAX_HOPS = 40


def _key(entry: os.DirEntry[str]) -> bytes:
    return os.fsencode(entry.name)


def write_dir(root: Path | str, out: TarOut, policy: EntryPolicy, *, allow_devices: bool | None = None) -> int:
    """Archive the tree under ``root`` into ``out`` (not finished: the caller calls ``out.finish()``);
    returns the entry count. ``allow_devices`` defaults to running as root. Raises NotFound (no such
    directory), InvalidArgument (see the module docstring), LayoutError (a file changed while read)."""
    import tarfile

    top = os.fspath(root)
    if not os.path.isdir(top):
        raise NotFound(f"--layer {top}: no such directory")
    if allow_devices is None:
        allow_devices = os.geteuid() == 0
    links: dict[tuple[int, int], str] = {}
    count = 0
    stack: list[tuple[list[os.DirEntry[str]], str, str]] = [(_listing(top), top, "")]
    while stack:
        entries, dirpath, prefix = stack[-1]
        if not entries:
            stack.pop()
            continue
        entry = entries.pop()
        rel = prefix + entry.name
        st = entry.stat(follow_symlinks=False)
        ti = tarfile.TarInfo(rel)
        ti.mode = stat.S_IMODE(st.st_mode)
        ti.mtime = policy.stamp(st.st_mtime)
        if policy.keep_owners:
            ti.uid, ti.gid = st.st_uid, st.st_gid
        where = os.path.join(dirpath, entry.name)
        kind = stat.S_IFMT(st.st_mode)
        if entry.name.startswith(WHITEOUT) and kind != stat.S_IFREG:
            raise InvalidArgument(f"--layer {top}: {rel} is a whiteout name but not a regular file")
        if kind == stat.S_IFDIR:
            ti.type = tarfile.DIRTYPE
            out.header(ti)
            stack.append((_listing(where), where, rel + "/"))
        elif kind == stat.S_IFREG:
            if entry.name.startswith(WHITEOUT):
                if st.st_size:
                    what = "opaque marker" if entry.name == OPAQUE else "whiteout"
                    raise InvalidArgument(f"--layer {top}: {rel} is a {what} and must be empty")
                out.header(ti)
            elif st.st_nlink > 1 and (st.st_dev, st.st_ino) in links:
                ti.type, ti.linkname = tarfile.LNKTYPE, links[(st.st_dev, st.st_ino)]
                out.header(ti)
            else:
                if st.st_nlink > 1:
                    links[(st.st_dev, st.st_ino)] = rel
                _regular(out, ti, where, st)
        elif kind == stat.S_IFLNK:
            ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(where)
            if _loops(top, prefix, ti.linkname):
                raise InvalidArgument(f"--layer {top}: symlink {rel} -> {ti.linkname} is part of a symlink loop")
            out.header(ti)
        elif kind == stat.S_IFCHR and st.st_rdev == 0:
            ti.name = prefix + WHITEOUT + entry.name
            ti.mode = 0o644
            out.header(ti)
        elif kind in (stat.S_IFCHR, stat.S_IFBLK):
            if not allow_devices:
                raise InvalidArgument(f"--layer {top}: {rel} is a device node; device nodes are only archived "
                                      "when running as root")
            ti.type = tarfile.CHRTYPE if kind == stat.S_IFCHR else tarfile.BLKTYPE
            ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            out.header(ti)
        elif kind == stat.S_IFIFO:
            ti.type = tarfile.FIFOTYPE
            out.header(ti)
        else:
            raise InvalidArgument(f"--layer {top}: {rel} is a socket, which a layer cannot hold")
        count += 1
    return count


def _listing(path: str) -> list[os.DirEntry[str]]:
    """The directory's entries, sorted so that ``pop()`` returns them in order (last = smallest)."""
    with os.scandir(path) as it:
        return sorted(it, key=_key, reverse=True)


def _regular(out: TarOut, ti: tarfile.TarInfo, path: str, st: os.stat_result) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) or not stat.S_ISREG(now.st_mode):
            raise LayoutError(f"{path} changed while it was archived")
        ti.size = now.st_size
        out.header(ti)
        out.data_from(fd, now.st_size, what=path)
    finally:
        os.close(fd)


def _loops(top: str, prefix: str, target: str) -> bool:
    """True when resolving ``target`` (a symlink in directory ``prefix`` of the tree ``top``) inside the tree,
    as the container would (absolute targets from the tree's root), takes more than MAX_HOPS symlinks.
    A target that does not exist, or passes through a non-directory, is fine (dangling)."""
    cur = [p for p in prefix.split("/") if p]
    pending = target.split("/")
    if target.startswith("/"):
        cur = []
    hops = 1
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if cur:
                cur.pop()
            continue
        path = os.path.join(top, *cur, part)
        try:
            st = os.lstat(path)
        except OSError:
            return False
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > MAX_HOPS:
                return True
            link = os.readlink(path)
            pending = link.split("/") + pending
            if link.startswith("/"):
                cur = []
            continue
        if pending and not stat.S_ISDIR(st.st_mode):
            return False
        cur.append(part)
    return False
