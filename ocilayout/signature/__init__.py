"""Container image signatures: simple signing (GPG) and sigstore (cosign key pairs).

Submodules load ``cryptography`` / ``nacl`` only when a key or signature is actually used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..digest import Digest

__all__ = ["sig_tag"]


def sig_tag(manifest_digest: Digest) -> str:
    """cosign's signature tag for an image: ``<alg>-<hex>.sig`` (here, not in :mod:`.storage`, so that a
    source can tell it has no signatures without loading the signature code)."""
    return f"{manifest_digest.algorithm}-{manifest_digest.hex}.sig"
