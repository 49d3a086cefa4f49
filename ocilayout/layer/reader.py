"""Reading layer tars without trusting them.

A member name is accepted relative and inside the root: a leading ``./`` is dropped, an absolute name or a
``..`` component raises :class:`~ocilayout.errors.UnsafePath` (a hard link's target too). Regular files,
directories, symlinks (any target: it is resolved inside the container's root when used), hard links,
devices and fifos are layer content; other entry types (GNU sparse files, volume labels...) raise
UnsupportedFormat. A tar that is not one, or ends early, raises LayoutError.
"""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING, BinaryIO

from ..compression import MAGIC_LEN, detect, open_decompressed
from ..errors import IntegrityError, LayoutError, UnsafePath, UnsupportedFormat

if TYPE_CHECKING:
    import tarfile

    from .entries import Writable

__all__ = ["OPAQUE", "WHITEOUT", "check_member", "check_name", "copy_layer_tar", "is_whiteout"]

CHUNK = 1 << 20
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


def is_whiteout(name: str) -> bool:
    """True for a whiteout or opaque-directory marker (by its last component)."""
    return posixpath.basename(name).startswith(WHITEOUT)


def check_name(name: str, what: str) -> str:
    """``name`` as a clean relative path (no ``./``, no trailing ``/``); raises UnsafePath when it is
    absolute, has a ``..`` component or is empty."""
    if name.startswith("/"):
        raise UnsafePath(f"{what}: member {name!r} has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UnsafePath(f"{what}: member {name!r} leaves the root ('..')")
    if not parts:
        raise UnsafePath(f"{what}: a member has an empty name")
    return "/".join(parts)


def check_member(ti: tarfile.TarInfo, what: str) -> str:
    """The member's clean name (see :func:`check_name`), or "" for a directory entry of the root itself
    (``./``, as ``tar -C DIR -cf x.tar .`` writes it); a hard link's target is checked the same way and stored
    clean in ``ti.linkname``. Raises UnsafePath, UnsupportedFormat for entry types layers do not hold."""
    if ti.isdir() and not ti.name.startswith("/") and not [p for p in ti.name.split("/") if p not in ("", ".")]:
        return ""
    name = check_name(ti.name, what)
    if ti.islnk():
        ti.linkname = check_name(ti.linkname, f"{what}: hard link {name!r}")
    elif not (ti.isreg() or ti.isdir() or ti.issym() or ti.ischr() or ti.isblk() or ti.isfifo()):
        raise UnsupportedFormat(f"{what}: member {name!r} has entry type {ti.type!r}, which a layer cannot hold")
    if ti.issparse():
        raise UnsupportedFormat(f"{what}: member {name!r} is a GNU sparse file, which a layer cannot hold")
    return name


class _Tee:
    """Reads ``stream`` and writes everything read into ``sink``."""

    def __init__(self, stream: BinaryIO, sink: Writable) -> None:
        self._stream, self._sink = stream, sink

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        if data:
            self._sink.write(data)
        return data


def copy_layer_tar(path: str, sink: Writable, what: str) -> int:
    """Check the tar (compressed gzip/zstd or not: detected) at ``path`` member by member while its
    uncompressed bytes go into ``sink`` unchanged; returns the member count. A hard link must name an
    earlier member of the same tar. Raises UnsafePath, UnsupportedFormat, LayoutError, IntegrityError
    (corrupt compressed data)."""
    import tarfile

    with open(path, "rb") as raw:
        kind = detect(raw.read(MAGIC_LEN))
        raw.seek(0)
        plain = open_decompressed(raw, kind)
        tee = _Tee(plain, sink)
        seen: set[str] = set()
        count = 0
        try:
            with tarfile.open(fileobj=tee, mode="r|", bufsize=CHUNK) as tf:  # type: ignore[call-overload]
                for ti in tf:
                    name = check_member(ti, what)
                    if ti.islnk() and ti.linkname not in seen:
                        raise UnsafePath(f"{what}: hard link {name!r} -> {ti.linkname!r} names no earlier member "
                                         "of this tar")
                    seen.add(name)
                    count += 1
                    tf.members.clear()  # headers are checked as they pass; none are kept
            while tee.read(CHUNK):  # the end-of-archive blocks and any padding belong to the diff_id
                pass
        except tarfile.ReadError as err:
            raise LayoutError(f"{what} is not a valid tar: {err}") from err
        except (OSError, EOFError) as err:
            raise IntegrityError(f"{what}: corrupt {kind} data: {err}") from err
        except Exception as err:
            if type(err).__name__ == "ZstdError":
                raise IntegrityError(f"{what}: corrupt zstd data: {err}") from err
            raise
    return count
