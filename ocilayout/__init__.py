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

__all__ = [
    "Conflict",
    "Descriptor",
    "Digest",
    "DigestMismatch",
    "ImageConfig",
    "IntegrityError",
    "InvalidDigest",
    "InvalidKey",
    "InvalidManifest",
    "InvalidReference",
    "LayoutError",
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
    "manifest_digest",
]
