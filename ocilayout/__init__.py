"""ocilayout: an offline OCI image layout toolkit.

``import ocilayout`` loads no CLI, progress-bar or network code; heavier modules load on first use.
"""

from __future__ import annotations

from .descriptor import Descriptor, Platform
from .digest import Digest
from .errors import (
    Conflict,
    DigestMismatch,
    IntegrityError,
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
from .manifest import ImageConfig, Manifest, manifest_digest

__version__ = "0.1.0"

#: Public names loaded on first use, so ``import ocilayout`` stays light (name -> module).
_LAZY = {
    "ArchiveReader": "archive",
    "CopyOptions": "copy",
    "CopyResult": "copy",
    "FsckReport": "validate",
    "GcResult": "gc",
    "ImageReference": "reference",
    "LayoutReader": "store",
    "LayoutStore": "store",
    "fsck": "validate",
    "inspect_image": "inspect",
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
