"""ocilayout: an offline OCI image layout toolkit.

``import ocilayout`` loads the exception tree only: every other public name loads its module on first use,
and no CLI, progress-bar, network, crypto or codec code loads until a function needs it.
"""

from __future__ import annotations

from .errors import (
    Conflict,
    DigestMismatch,
    IntegrityError,
    InvalidArgument,
    InvalidDigest,
    InvalidKey,
    InvalidManifest,
    InvalidReference,
    LayoutError,
    NotFound,
    OcilayoutError,
    RegistryError,
    SignatureError,
    SizeMismatch,
    UnsafePath,
    UnsupportedFormat,
    VerificationError,
)

#: typing.TYPE_CHECKING without importing typing (a quarter of what ``import ocilayout`` would cost);
#: mypy and pyright know the name.
TYPE_CHECKING = False
if TYPE_CHECKING:  # what the lazy names below are, for type checkers and IDEs
    from .archive import ArchiveReader
    from .copy import CopyOptions, CopyResult
    from .descriptor import Descriptor, Platform
    from .digest import Digest
    from .gc import GcResult
    from .inspect import inspect_image
    from .manifest import ImageConfig, Manifest, manifest_digest
    from .reference import ImageReference, parse_reference
    from .store import LayoutReader, LayoutStore
    from .transports import open_source
    from .validate import FsckReport, fsck

__version__ = "0.1.0"

#: Public names loaded on first use, so ``import ocilayout`` stays light (name -> module).
_LAZY = {
    "ArchiveReader": "archive",
    "CopyOptions": "copy",
    "CopyResult": "copy",
    "Descriptor": "descriptor",
    "Digest": "digest",
    "FsckReport": "validate",
    "GcResult": "gc",
    "ImageConfig": "manifest",
    "ImageReference": "reference",
    "LayoutReader": "store",
    "LayoutStore": "store",
    "Manifest": "manifest",
    "Platform": "descriptor",
    "fsck": "validate",
    "inspect_image": "inspect",
    "manifest_digest": "manifest",
    "open_source": "transports",
    "parse_reference": "reference",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ocilayout' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "ArchiveReader",
    "Conflict",
    "CopyOptions",
    "CopyResult",
    "Descriptor",
    "Digest",
    "DigestMismatch",
    "FsckReport",
    "GcResult",
    "ImageConfig",
    "ImageReference",
    "IntegrityError",
    "InvalidArgument",
    "InvalidDigest",
    "InvalidKey",
    "InvalidManifest",
    "InvalidReference",
    "LayoutError",
    "LayoutReader",
    "LayoutStore",
    "Manifest",
    "NotFound",
    "OcilayoutError",
    "Platform",
    "RegistryError",
    "SignatureError",
    "SizeMismatch",
    "UnsafePath",
    "UnsupportedFormat",
    "VerificationError",
    "__version__",
    "fsck",
    "inspect_image",
    "manifest_digest",
    "open_source",
    "parse_reference",
]
