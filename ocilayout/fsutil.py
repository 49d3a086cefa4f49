"""Small filesystem helpers: atomic writes, directory fsync, inter-process locks, safe path joins."""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .errors import LayoutError, NotFound, OcilayoutError

__all__ = ["TMP_PREFIX", "atomic_write", "fsync_dir", "is_stale_temp", "locked", "locked_temp_dir", "read_limited",
           "temp_file"]

#: Temp files of in-flight writes live beside their target, named with this prefix and flock()ed while alive.
TMP_PREFIX = ".ocilayout-tmp-"


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename inside it is durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def temp_file(directory: Path, suffix: str = "") -> Iterator[tuple[Path, BinaryIO]]:
    """A new temp file in ``directory``, exclusively flock()ed while open, removed on error.

    The lock lets ``gc`` tell a live writer's temp file from a dead one. On normal exit the caller must
    have renamed the file away (or it is removed).
    """
    token = f"{os.getpid()}-{secrets.token_hex(8)}"
    making = directory / f".ocilayout-new-{token}"
    path = directory / f"{TMP_PREFIX}{token}{suffix}"
    f = open(making, "xb")  # noqa: SIM115 - closed below
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
    token = f"{os.getpid()}-{secrets.token_hex(8)}"
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


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` atomically (temp file, fsync, rename, fsync dir)."""
    with temp_file(path.parent) as (tmp, f):
        f.write(data)
        f.flush()
        os.fchmod(f.fileno(), mode)
        os.fsync(f.fileno())
        os.replace(tmp, path)
    fsync_dir(path.parent)


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
    """Hold an exclusive inter-process lock (flock on ``lock_path``) for the block."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
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
        with p.open("rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise NotFound(f"{what} file {str(p)!r} does not exist") from None
    except IsADirectoryError:
        raise too_big(f"{what} file {str(p)!r} is a directory") from None
    if len(data) > limit:
        raise too_big(f"{what} file {str(p)!r} is over the {limit}-byte limit")
    return data
