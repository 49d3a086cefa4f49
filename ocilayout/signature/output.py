"""Writing what the signing commands produce (key files, signature files): whole, with its mode, never over
anything that exists."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from ..errors import Conflict, NotFound
from ..fsutil import create_exclusive, fsync_dir, temp_file

__all__ = ["write_new_file"]

#: link(2) is refused by some filesystems (vfat, some FUSE and network mounts); fall back to O_EXCL there.
_NO_LINK = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV})


def _exists(path: Path) -> Conflict:
    return Conflict(f"{str(path)!r} already exists; refusing to overwrite it")


def write_new_file(path: str | os.PathLike[str], data: bytes, mode: int) -> Path:
    """Create ``path`` holding ``data`` with permission bits ``mode``, atomically: readers see no file or all of it.

    The bytes go to a temp file beside it (already ``mode`` before the first byte is written), which is then
    hard-linked into place; link(2) never replaces an existing name, a dangling symlink included. Raises Conflict
    when ``path`` exists (nothing is changed), NotFound when its directory does not; other OS errors propagate.
    Nothing is left behind on failure."""

    p = Path(path)
    if p.exists() or p.is_symlink():
        raise _exists(p)
    parent = p.parent
    try:
        with temp_file(parent) as (tmp, f):
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            try:
                os.link(tmp, p, follow_symlinks=False)
            except OSError as err:
                if err.errno not in _NO_LINK:
                    raise
                create_exclusive(p, data, mode)
        with contextlib.suppress(OSError):
            fsync_dir(parent)
    except FileExistsError:
        raise _exists(p) from None
    except IsADirectoryError:
        raise _exists(p) from None
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(f"cannot write {str(p)!r}: its directory does not exist") from None
    except OSError as err:  # EACCES, EROFS, ENOSPC...: name the file asked for, not the temp file
        raise OSError(err.errno, err.strerror, str(p)) from err
    return p
