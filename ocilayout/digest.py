"""Content digests: validated on construction, so a :class:`Digest` is always safe to build a path from."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from .errors import DigestMismatch, InvalidDigest, SizeMismatch

if TYPE_CHECKING:
    from hashlib import _Hash

__all__ = ["ALGORITHMS", "CHUNK", "SMALL_HASH", "Digest", "VerifyingReader", "digest_stream", "new_hash",
           "read_verified"]

#: Supported algorithms and the exact hex length of their encoded value.
ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}
#: Read size for streaming blob work.
CHUNK = 1 << 20

_HEX = re.compile(r"[a-f0-9]+")
#: Data up to this size is hashed by the interpreter's own small sha2 module, not OpenSSL's (see new_hash)...
SMALL_HASH = 256 << 10
#: ... until this many bytes have been hashed that way (that module is ~6x slower per byte than OpenSSL's,
#: so past ~1 MiB loading OpenSSL, ~3 ms, has paid for itself).
_SMALL_BUDGET = [1 << 20]


def new_hash(algorithm: str, size: int | None = None) -> _Hash:
    """A new hash object for ``algorithm`` (sha256, sha512); raises ValueError for another.

    While OpenSSL's ``_hashlib`` is not loaded, data known to be at most :data:`SMALL_HASH` bytes (``size``:
    manifests, configs, index.json) is hashed by the interpreter's built-in ``_sha256`` / ``_sha512``, for
    the first MiB: loading OpenSSL costs a short command such as ``inspect`` about 3 ms, more than hashing its
    documents. Anything larger, of unknown size, or after that gets hashlib's OpenSSL object, several times
    faster per byte. The digests are the same.
    """
    if size is not None and size <= SMALL_HASH and size <= _SMALL_BUDGET[0] and "_hashlib" not in sys.modules:
        try:
            if algorithm == "sha256":
                import _sha256  # type: ignore[import-not-found]

                _SMALL_BUDGET[0] -= size
                return _sha256.sha256()  # type: ignore[no-any-return]
            if algorithm == "sha512":
                import _sha512  # type: ignore[import-not-found]

                _SMALL_BUDGET[0] -= size
                return _sha512.sha512()  # type: ignore[no-any-return]
        except ImportError:  # pragma: no cover - an interpreter built without them
            pass
    import hashlib

    return hashlib.new(algorithm)


@dataclass(frozen=True, slots=True)
class Digest:
    """An ``algorithm:hex`` content digest of a supported algorithm.

    Construction validates: the algorithm is sha256 or sha512 and ``hex`` is exactly the right number of
    lowercase hex characters. Nothing else (``/``, ``..``, upper case) can get into a path built from it.
    """

    algorithm: str
    hex: str

    def __post_init__(self) -> None:
        length = ALGORITHMS.get(self.algorithm)
        if length is None:
            raise InvalidDigest(f"unsupported digest algorithm {self.algorithm!r} (want sha256 or sha512)")
        if len(self.hex) != length or not _HEX.fullmatch(self.hex):
            raise InvalidDigest(
                f"invalid {self.algorithm} digest value {self.hex[:80]!r}: want {length} lowercase hex characters"
            )

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse ``sha256:<hex>``; raises :class:`InvalidDigest`."""
        if not isinstance(text, str):
            raise InvalidDigest(f"digest must be a string, not {type(text).__name__}")
        algorithm, sep, value = text.partition(":")
        if not sep:
            raise InvalidDigest(f"invalid digest {text[:80]!r}: missing 'algorithm:'")
        return cls(algorithm, value)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        """The digest of ``data``."""
        h = new_hash(algorithm, len(data))
        h.update(data)
        return cls(algorithm, h.hexdigest())

    @property
    def short(self) -> str:
        """The first 12 hex characters, as `docker images` shows an image ID."""
        return self.hex[:12]

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def digest_stream(stream: BinaryIO, algorithm: str = "sha256", *, initial: bytes = b"") -> tuple[Digest, int]:
    """Hash ``initial`` then ``stream`` to its end in constant memory; returns the digest and the byte count
    (``initial`` lets a caller look at a stream's first bytes and still hash them)."""
    h = new_hash(algorithm)
    h.update(initial)
    size = len(initial)
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    readinto = getattr(stream, "readinto", None)
    while True:
        if readinto is not None:
            n = readinto(buf)
            if not n:
                break
            h.update(view[:n])
        else:
            chunk = stream.read(CHUNK)
            if not chunk:
                break
            n = len(chunk)
            h.update(chunk)
        size += n
    return Digest(algorithm, h.hexdigest()), size


def read_verified(stream: BinaryIO, desc: Any) -> bytes:
    """All of a small blob's bytes from ``stream``, checked against ``desc`` (a Descriptor): never more than
    its declared size + 1 is read, so a device or an endless stream cannot exhaust memory. Raises
    SizeMismatch, DigestMismatch."""
    reader = VerifyingReader(stream, desc.digest, desc.size)
    parts: list[bytes] = []
    while chunk := reader.read(CHUNK):  # raises SizeMismatch once past the declared size; checks at EOF
        parts.append(chunk)
    return b"".join(parts)


class VerifyingReader:
    """A read-only stream that hashes what passes through and checks it at EOF.

    When the underlying stream ends, the byte count and digest are compared with ``expected_digest`` /
    ``expected_size`` (either may be None); a mismatch raises :class:`DigestMismatch` or
    :class:`SizeMismatch` from the ``read`` call that hit EOF, before any caller can commit the data.
    Reading past ``expected_size`` raises at once, so a wrong-size stream never fills a disk.
    """

    def __init__(
        self,
        stream: BinaryIO,
        expected_digest: Digest | None = None,
        expected_size: int | None = None,
        *,
        algorithm: str | None = None,
        what: str = "blob",
    ) -> None:
        self._stream = stream
        self.expected_digest = expected_digest
        self.expected_size = expected_size
        alg = algorithm or (expected_digest.algorithm if expected_digest else "sha256")
        self._hash = new_hash(alg, expected_size)
        self.size = 0
        self._done = False
        self._what = what

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n if n is not None and n >= 0 else -1)
        self._account(data)
        if not data or n is None or n < 0:
            self._finish()
        return data

    def readinto(self, buf: bytearray | memoryview) -> int:
        inner = getattr(self._stream, "readinto", None)
        if inner is None:
            data = self._stream.read(len(buf))
            k = len(data)
            buf[:k] = data
        else:
            k = inner(buf) or 0
        self._account(memoryview(buf)[:k])
        if not k:
            self._finish()
        return k

    def _account(self, data: bytes | memoryview) -> None:
        if data:
            self.size += len(data)
            if self.expected_size is not None and self.size > self.expected_size:
                raise SizeMismatch(
                    f"{self._what} {self.expected_digest or ''} is larger than its declared size "
                    f"{self.expected_size}".replace("  ", " ")
                )
            self._hash.update(data)

    def _finish(self) -> None:
        if self._done:
            return
        self._done = True
        if self.expected_size is not None and self.size != self.expected_size:
            raise SizeMismatch(
                f"{self._what} {self.expected_digest or ''} is {self.size} bytes, expected {self.expected_size}"
                .replace("  ", " ")
            )
        got = self.digest
        if self.expected_digest is not None and got != self.expected_digest:
            raise DigestMismatch(f"{self._what} digest mismatch: expected {self.expected_digest}, got {got}")

    @property
    def digest(self) -> Digest:
        """Digest of what was read so far (the whole stream once EOF was reached)."""
        return Digest(self._hash.name, self._hash.hexdigest())

    @property
    def verified(self) -> bool:
        """True once EOF was reached and every expectation held."""
        return self._done

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> VerifyingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
