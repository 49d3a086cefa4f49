"""The entry policy (owners and mtimes) and the tar writer every new layer goes through.

Headers are PAX only where needed (Python's ``tarfile`` adds an extended header only for long or non-ASCII
names, large numbers and fractional mtimes; whole-second mtimes keep headers plain ustar). The archive ends
with two zero blocks and no record padding, as Go's archive/tar writes it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from ..errors import InvalidArgument, LayoutError

if TYPE_CHECKING:
    import tarfile

__all__ = ["EntryPolicy", "TarOut", "env_epoch", "format_time", "parse_time", "parse_timestamp", "policy_for"]

BLOCK = 512
CHUNK = 1 << 20
#: PAX keys a re-emitted entry never keeps: they are regenerated from the header fields (or dropped).
_DERIVED_PAX = frozenset({"path", "linkpath", "size", "mtime", "atime", "ctime", "uid", "gid", "uname", "gname"})


class Writable(Protocol):
    def write(self, data: bytes | bytearray | memoryview, /) -> int: ...


def env_epoch() -> int | None:
    """``$SOURCE_DATE_EPOCH`` as seconds, None when unset or empty; raises InvalidArgument when malformed."""
    text = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise InvalidArgument(f"SOURCE_DATE_EPOCH must be a whole, non-negative number of seconds, not {text!r}")
    return int(text)


def parse_timestamp(text: str) -> int:
    """``--timestamp``: seconds since the epoch (``0``, ``1``) or an RFC 3339 time
    (``1980-01-01T00:00:00Z``); raises InvalidArgument."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    epoch = parse_time(text)
    if epoch is None or epoch < 0:
        raise InvalidArgument(f"--timestamp {text!r}: want seconds since 1970 or an RFC 3339 time after 1970 "
                              "(e.g. 1980-01-01T00:00:00Z)")
    return epoch


def parse_time(text: str) -> int | None:
    """An RFC 3339 time (fractions dropped) as whole seconds since the epoch, or None when it is not one."""
    try:
        when = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return int(when.timestamp() // 1)


def format_time(epoch: int) -> str:
    """Seconds since the epoch as the RFC 3339 text image configs use (``1970-01-01T00:00:00Z``)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True, kw_only=True)
class EntryPolicy:
    """How entries are stamped: mtimes set to ``mtime`` (when not None), else clamped to ``clamp`` (when not
    None), else kept (whole seconds); owners 0/0 with empty names unless ``keep_owners``."""

    mtime: int | None = None
    clamp: int | None = None
    keep_owners: bool = False

    @property
    def time(self) -> int | None:
        """The time configs and history get: the set value, else the clamp, else None (leave them)."""
        return self.mtime if self.mtime is not None else self.clamp

    def stamp(self, mtime: float) -> int:
        """The mtime an entry gets."""
        if self.mtime is not None:
            return self.mtime
        whole = int(mtime // 1)
        if self.clamp is not None and whole > self.clamp:
            return self.clamp
        return max(whole, 0)

    def restamp(self, when: str) -> str:
        """A config/history ``created`` text after the policy (set, or clamped when later); unchanged when
        the policy keeps times or the text is not a time."""
        if self.mtime is not None:
            return format_time(self.mtime)
        if self.clamp is None:
            return when
        epoch = parse_time(when)
        if epoch is not None and epoch > self.clamp:
            return format_time(self.clamp)
        return when

    def apply(self, ti: tarfile.TarInfo) -> None:
        """Stamp a (re-emitted) entry in place: mtime, owners, and no atime/ctime."""
        ti.mtime = self.stamp(ti.mtime)
        if not self.keep_owners:
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = ""
        ti.pax_headers = {k: v for k, v in ti.pax_headers.items() if k not in _DERIVED_PAX}


def policy_for(timestamp: str | None, *, keep_owners: bool = False) -> EntryPolicy:
    """``--timestamp`` (set every time) if given, else clamp to ``$SOURCE_DATE_EPOCH`` if set, else keep."""
    if timestamp is not None:
        return EntryPolicy(mtime=parse_timestamp(timestamp), keep_owners=keep_owners)
    return EntryPolicy(clamp=env_epoch(), keep_owners=keep_owners)


class TarOut:
    """Writes a tar stream into ``sink``: :meth:`header`, then exactly ``size`` bytes of data
    (:meth:`data_from`), and :meth:`finish` for the end-of-archive blocks."""

    def __init__(self, sink: Writable) -> None:
        self._sink = sink
        self._buf = bytearray(CHUNK)

    def header(self, ti: tarfile.TarInfo) -> None:
        import tarfile

        self._sink.write(ti.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape"))

    def data_from(self, fd: int, size: int, *, offset: int | None = None, what: str = "file") -> None:
        """``size`` bytes from ``fd`` (at ``offset`` with pread, else read from its position), then padding.
        Raises LayoutError when fewer bytes are there (a file that shrank while it was archived)."""
        view = memoryview(self._buf)
        left = size
        pos = offset
        while left:
            want = min(left, CHUNK)
            if pos is None:
                n = os.readv(fd, [view[:want]])
            else:
                n = os.preadv(fd, [view[:want]], pos)
                pos += n
            if n <= 0:
                raise LayoutError(f"{what}: {left} bytes short (changed while it was archived?)")
            self._sink.write(view[:n])
            left -= n
        pad = -size % BLOCK
        if pad:
            self._sink.write(bytes(pad))

    def finish(self) -> None:
        self._sink.write(bytes(2 * BLOCK))
