"""The one exception tree of ocilayout.

::

    OcilayoutError                      exit 1 unless a leaf says otherwise
    ├── InvalidReference                exit 2   bad "transport:path[:tag]" text
    │   └── AmbiguousImage                       no name given, and the file or layout holds several images
    ├── InvalidDigest                   exit 2   not "sha256:<64 hex>" / "sha512:<128 hex>"
    ├── InvalidArgument                 exit 2   options or arguments that do not fit together
    ├── InvalidManifest                 exit 4   garbage / oversized / ill-shaped JSON
    ├── NotFound                        exit 3   missing tag, blob, file
    ├── IntegrityError                  exit 4   content does not match what was promised
    │   ├── DigestMismatch
    │   └── SizeMismatch
    ├── LayoutError                     exit 4   a layout or archive is malformed or unsafe
    │   └── UnsafePath                           "../", absolute or escaping symlink member
    ├── UnsupportedFormat               exit 5   a conversion or media type we refuse
    ├── Conflict                        exit 6   would overwrite something (a key file, a tag)
    │   └── ConcurrentEdit                       another writer changed what an in-place edit read
    ├── RegistryError                   exit 7   remote registry said no
    └── SignatureError                  exit 8   key or signature problems
        ├── InvalidKey                           undecryptable / malformed key, wrong passphrase
        └── VerificationError                    a signature that does not verify

The CLI catches :class:`OcilayoutError` once, prints ``str(err)`` and its notes on one line (control
characters escaped) and exits with ``err.exit_code``; it gives OS errors exit 74 (3 for a missing file).
Library code raises leaves, adding context with ``add_note`` or by chaining.
"""

from __future__ import annotations

__all__ = [
    "AmbiguousImage",
    "ConcurrentEdit",
    "Conflict",
    "DigestMismatch",
    "IntegrityError",
    "InvalidArgument",
    "InvalidDigest",
    "InvalidKey",
    "InvalidManifest",
    "InvalidReference",
    "LayoutError",
    "NotFound",
    "OcilayoutError",
    "RegistryError",
    "SignatureError",
    "SizeMismatch",
    "UnsafePath",
    "UnsupportedFormat",
    "VerificationError",
]


class OcilayoutError(Exception):
    """Base of every error ocilayout raises on purpose."""

    exit_code: int = 1


class InvalidReference(OcilayoutError):
    """An image reference that does not parse."""

    exit_code = 2


class AmbiguousImage(InvalidReference):
    """A reference that names no image, into a file or layout holding ``count`` of them (more than one)."""

    def __init__(self, message: str, count: int) -> None:
        super().__init__(message)
        self.count = count


class InvalidDigest(OcilayoutError):
    """A digest string that is not a supported, well-formed digest."""

    exit_code = 2


class InvalidArgument(OcilayoutError):
    """Options or arguments that contradict each other or are out of range (a usage error)."""

    exit_code = 2


class InvalidManifest(OcilayoutError):
    """Manifest, index, config or index.json that is not valid JSON of the expected shape."""

    exit_code = 4


class NotFound(OcilayoutError):
    """A tag, manifest, blob or file that does not exist."""

    exit_code = 3


class IntegrityError(OcilayoutError):
    """Content that does not match its descriptor."""

    exit_code = 4


class DigestMismatch(IntegrityError):
    """Content hashed to a different digest than expected."""


class SizeMismatch(IntegrityError):
    """Content had a different length than expected."""


class LayoutError(OcilayoutError):
    """A malformed image layout or archive."""

    exit_code = 4


class UnsafePath(LayoutError):
    """An archive member or symlink that would escape its tree."""


class UnsupportedFormat(OcilayoutError):
    """A media type, transport or conversion that is not supported or would break digests."""

    exit_code = 5


class Conflict(OcilayoutError):
    """The operation would overwrite something it must not."""

    exit_code = 6


class ConcurrentEdit(Conflict):
    """Another writer moved or removed the name (or untagged entry) an in-place edit read, before the edit
    could commit: committing would silently drop that writer's change. The edit is safe to run again."""


class RegistryError(OcilayoutError):
    """A remote registry refused or failed a request."""

    exit_code = 7


class SignatureError(OcilayoutError):
    """Signing or verification failed."""

    exit_code = 8


class InvalidKey(SignatureError):
    """A key that cannot be read: malformed, wrong passphrase, unsupported type."""


class VerificationError(SignatureError):
    """A signature that does not verify, or whose payload does not match the image."""
