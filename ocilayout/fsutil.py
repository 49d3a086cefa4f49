"""Small filesystem helpers: atomic writes, directory fsync, inter-process locks, safe path joins."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .errors import LayoutError, NotFound, OcilayoutError

__all__ = ["ARCHIVE_STAGING_SUFFIXES", "TMP_PREFIX", "atomic_write", "create_exclusive", "discard_temp_dir",
           "fsync_dir", "is_stale_temp", "locked", "locked_temp_dir", "open_regular", "read_limited",
           "remove_stale_beside", "stale_temp_files", "temp_file"]

#: Temp files of in-flight writes live beside their target, named with this prefix and flock()ed while alive.
TMP_PREFIX = ".ocilayout-tmp-"
#: A temp file younger than this is never judged (its writer may not have taken its lock yet).
TEMP_MIN_AGE = 60.0


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename inside it is durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def temp_file(directory: Path, suffix: str = "", *, readable: bool = False) -> Iterator[tuple[Path, BinaryIO]]:
    """A new temp file in ``directory`` (opened for writing; also for reading with ``readable``), exclusively
    flock()ed while open, removed on error.

    The lock lets ``gc`` tell a live writer's temp file from a dead one. On normal exit the caller must
    have renamed the file away (or it is removed).
    """
    token = f"{os.getpid()}-{os.urandom(8).hex()}"
    making = directory / f".ocilayout-new-{token}"
    path = directory / f"{TMP_PREFIX}{token}{suffix}"
    f = open(making, "x+b" if readable else "xb")  # noqa: SIM115 - closed below
    try:
        # Locked before it carries the temp prefix, so a gc probing it never sees it unlocked.
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(making, path)
        yield path, f
    finally:
        f.close()
        for leftover in (making, path):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def locked_temp_dir(parent: Path, suffix: str = ".d") -> tuple[Path, int]:
    """Create a temp directory in ``parent`` that is flock()ed from the moment it carries the temp prefix.

    Returns its path and the open directory fd that holds the lock (close it to release). The directory
    is made under a name gc never looks at, locked, then renamed, so no one can see it unlocked.
    """
    token = f"{os.getpid()}-{os.urandom(8).hex()}"
    making = parent / f".ocilayout-new-{token}"
    making.mkdir()
    fd = os.open(making, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        path = parent / f"{TMP_PREFIX}{token}{suffix}"
        os.rename(making, path)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            making.rmdir()
        raise
    return path, fd


def remove_tree(path: Path | str) -> None:
    """Remove a directory and everything in it, ignoring errors. An empty one (a staging directory whose
    files were committed) goes with one ``rmdir``, without importing shutil (~2 ms of every copy)."""
    try:
        os.rmdir(path)
        return
    except FileNotFoundError:
        return
    except OSError:
        pass
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def discard_temp_dir(path: Path, fd: int) -> int:
    """Remove a :func:`locked_temp_dir` and release its lock (a no-op for ``fd`` < 0); returns -1, the fd
    to store so a second call does nothing."""
    if fd >= 0:
        remove_tree(path)
        os.close(fd)
    return -1


#: Suffixes of the staging directories archive writers make beside their archives.
ARCHIVE_STAGING_SUFFIXES = (".archive", ".darchive")


def remove_stale_beside(parent: Path) -> None:
    """Remove what killed archive writers left beside their archives in ``parent``: staging directories
    (:data:`ARCHIVE_STAGING_SUFFIXES`) and temp files whose writer is gone (no live flock). Only names with
    :data:`TMP_PREFIX` are touched; the flock is taken before a temp name is visible, so no age check is
    needed (unlike inside a layout, where gc also judges blobs)."""
    import shutil

    for entry in parent.glob(TMP_PREFIX + "*"):
        if entry.is_symlink() or not is_stale_temp(entry):
            continue
        if entry.is_dir() and entry.name.endswith(ARCHIVE_STAGING_SUFFIXES):
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.is_file():
            entry.unlink(missing_ok=True)


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` atomically (temp file, fsync, rename, fsync dir)."""
    with temp_file(path.parent) as (tmp, f):
        f.write(data)
        f.flush()
        os.fchmod(f.fileno(), mode)
        os.fsync(f.fileno())
        os.replace(tmp, path)
    fsync_dir(path.parent)


def create_exclusive(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Create ``path`` (never replacing a name, a symlink included: raises FileExistsError) holding ``data``,
    with permission bits ``mode`` before the first byte, fsync'ed; a failed write removes the file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def is_stale_temp(path: Path) -> bool:
    """True when ``path`` is a temp file whose writer is gone (its flock can be taken)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


@contextlib.contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive inter-process lock (flock on ``lock_path``) for the block.

    The lock file is never opened through a symlink (a dangling ``.ocilayout.lock -> /elsewhere`` would
    otherwise create a file there) and must be a regular file; raises UnsafePath / LayoutError.
    """
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as err:
        if err.errno == errno.ELOOP:
            from .errors import UnsafePath

            raise UnsafePath(f"{lock_path} is a symlink; refusing to lock through it") from err
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise LayoutError(f"{lock_path} is {_kind(mode)}, not a regular lock file")
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_limited(path: str | os.PathLike[str], what: str, limit: int,
                 too_big: type[OcilayoutError] = LayoutError) -> bytes:
    """A small file's bytes, never reading more than ``limit`` + 1 of them.

    Raises NotFound when it does not exist, ``too_big`` when it is over ``limit`` or is a directory.
    """
    p = Path(path)
    try:
        with open_regular(p, f"{what} file") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise NotFound(f"{what} file {str(p)!r} does not exist") from None
    except LayoutError as err:
        raise too_big(str(err)) from None
    if len(data) > limit:
        raise too_big(f"{what} file {str(p)!r} is over the {limit}-byte limit")
    return data


def _kind(mode: int) -> str:
    for test, what in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return what
    return "not a regular file"


def open_regular(path: Path | str, what: str = "file") -> BinaryIO:
    """Open ``path`` for reading without blocking, accepting only a regular file (checked with ``fstat`` on
    the open descriptor, so a swap cannot fool it). Raises FileNotFoundError, LayoutError."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise LayoutError(f"{what} {path}: too many levels of symbolic links") from err
        if isinstance(err, FileNotFoundError | IsADirectoryError):
            if isinstance(err, IsADirectoryError):
                raise LayoutError(f"{what} {path} is a directory, not a file") from err
            raise
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise LayoutError(f"{what} {path} is {_kind(mode)}, not a regular file")
        os.set_blocking(fd, True)
        return open(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def stale_temp_files(root: Path, min_age: float = TEMP_MIN_AGE) -> Iterator[tuple[Path, int]]:
    """Temp files and staging directories in the layout ``root`` whose writer is gone, with their sizes.

    Entries younger than ``min_age`` seconds are skipped without being touched: a writer creates its temp
    file and flock()s it a moment later, and probing the lock in between could make that writer fail.
    """
    now = time.time()
    for p in sorted(root.glob(TMP_PREFIX + "*")):
        try:
            st = p.lstat()
        except FileNotFoundError:
            continue
        if now - st.st_mtime < min_age:
            continue
        if is_stale_temp(p):
            yield p, _tree_size(p) if p.is_dir() else st.st_size


def _tree_size(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total
