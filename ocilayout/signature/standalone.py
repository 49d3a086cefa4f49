"""skopeo's standalone-sign / standalone-verify: a manifest's bytes, a docker reference and a signature file,
with no image around them. The CLI reads the files and prints; the choices are made here."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ..errors import InvalidKey, VerificationError
from .sigstore import VerifiedSignature

__all__ = ["MAX_KEYRING_SIZE", "standalone_sign", "standalone_verify"]

#: GPG keyring files larger than this are refused unread.
MAX_KEYRING_SIZE = 16 * 1024 * 1024

KeySource = bytes | os.PathLike[str]


def _key_bytes(source: KeySource, what: str, limit: int) -> bytes:
    if isinstance(source, bytes):
        return source
    from ..fsutil import read_limited

    return read_limited(source, what, limit, InvalidKey)


def standalone_sign(manifest: bytes, docker_reference: str, *, private_key: Any = None,
                    fingerprint: str | None = None, passphrase: bytes | None = None) -> bytes:
    """The signature file's bytes: sigstore with ``private_key``, or GPG simple signing with the secret key
    ``fingerprint`` of $GNUPGHOME (``passphrase`` for gpg, if given). Exactly one of the two must be given.

    Raises InvalidReference (bad reference, before any signing), InvalidManifest, InvalidKey, SignatureError."""
    from ..manifest import manifest_digest
    from .dockerref import parse_normalized

    if (private_key is None) == (fingerprint is None):
        raise TypeError("give exactly one of private_key and fingerprint")
    digest = manifest_digest(manifest)
    parse_normalized(docker_reference)
    if private_key is not None:
        from .sigstore import sign_sigstore

        return sign_sigstore(private_key, digest, docker_reference).to_blob()
    from .gpg import GPGKeyring, sign_simple

    assert fingerprint is not None
    with GPGKeyring() as ring:
        return sign_simple(ring, digest, docker_reference, fingerprint, passphrase=passphrase)


def standalone_verify(manifest: bytes, docker_reference: str, signature: bytes, *,
                      public_keys: Sequence[KeySource] | None = None, fingerprints: Sequence[str] | None = None,
                      keyring: Sequence[KeySource] = ()) -> VerifiedSignature:
    """Verify ``signature`` (a file's bytes) of ``manifest`` for exactly ``docker_reference``, as skopeo does.

    Sigstore when ``public_keys`` (PEM bytes or files; any of them may have signed) is given; else GPG, accepting a
    signature by one of ``fingerprints`` (signing subkey or its primary key), with the ``keyring`` blobs or files
    (at most :data:`MAX_KEYRING_SIZE` each) imported
    into a throwaway GNUPGHOME, or $GNUPGHOME when there are none. A GPG signature may be raw OpenPGP or in
    containers/image's ``\\x00simple-signing`` form.

    The reference is checked before any key is read or any crypto runs (InvalidReference); then InvalidManifest,
    NotFound (a key file), InvalidKey, or VerificationError for everything about the signature."""
    from ..manifest import manifest_digest
    from .model import SigstoreSignature, signature_from_blob
    from .sigstore import exact_identity

    if (public_keys is None) == (fingerprints is None):
        raise TypeError("give exactly one of public_keys and fingerprints")
    identity = exact_identity(docker_reference)
    digest = manifest_digest(manifest)
    if public_keys is not None:
        from .keys import MAX_KEY_FILE_SIZE, load_public_key
        from .sigstore import verify_sigstore

        keys = [load_public_key(_key_bytes(k, "public key", MAX_KEY_FILE_SIZE)) for k in public_keys]
        sig = signature_from_blob(signature)
        if not isinstance(sig, SigstoreSignature):
            raise VerificationError("the signature is not a sigstore signature (a GPG one? give a fingerprint)")
        return verify_sigstore(sig, keys, digest, identity)
    from .gpg import GPGKeyring, verify_simple

    assert fingerprints is not None
    blob = signature
    if blob[:1] == b"\x00":
        parsed = signature_from_blob(blob)
        if isinstance(parsed, SigstoreSignature):
            raise VerificationError("the signature is a sigstore signature: verify it with --public-key")
        blob = parsed.blob
    accepted = [f for f in fingerprints if f.strip()]
    blobs = [_key_bytes(k, "keyring", MAX_KEYRING_SIZE) for k in keyring]  # every file read before gpg starts
    ring = GPGKeyring.ephemeral(blobs) if blobs else GPGKeyring()
    with ring:
        return verify_simple(blob, ring, accepted, digest, identity)
