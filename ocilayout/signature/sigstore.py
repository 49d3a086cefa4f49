"""Sigstore (cosign key pair) signing and verification of the simple-signing payload (signatures.md §3.1).

Signing: ECDSA P-256 over SHA-256 of the exact payload bytes, ASN.1 DER, standard base64 in the
``dev.cosignproject.cosign/signature`` annotation. Verification, as containers/image's VerifySigstorePayload:
crypto first (any trusted key may match; ECDSA signatures in DER or IEEE-P1363 r||s, as sigstore/sigstore's
verifier), then the strict payload rules, then the digest, then the identity.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .. import __version__
from ..digest import Digest
from ..errors import InvalidKey, VerificationError
from .dockerref import DockerReference, parse_normalized
from .model import SIGNATURE_ANNOTATION, SIMPLESIGNING_MEDIA_TYPE, SigstoreSignature, b64decode_go
from .payload import SIGSTORE_TYPE, UntrustedPayload, build_payload, parse_payload

__all__ = [
    "CREATOR",
    "VerifiedSignature",
    "exact_identity",
    "sign_sigstore",
    "sign_sigstore_payload",
    "verify_sigstore",
    "verify_sigstore_crypto",
]

#: ``optional.creator`` we write.
CREATOR = f"ocilayout {__version__}"

#: A check of the signed identity: raises VerificationError when it is not accepted.
IdentityCheck = Callable[[UntrustedPayload], None]


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    """What a signature that passed every check says."""

    manifest_digest: str
    docker_reference: str
    creator: str | None
    timestamp: int | None
    key_identity: str | None = None


def exact_identity(expected: str) -> IdentityCheck:
    """skopeo standalone-verify's rule: normalized strings equal (no implied tag).

    Raises InvalidReference right away when ``expected`` does not parse, before any crypto work."""
    want: DockerReference = parse_normalized(expected)

    def check(payload: UntrustedPayload) -> None:
        got = payload.reference()
        if got.string() != want.string():
            raise VerificationError(
                f"docker reference {payload.docker_reference[:200]} does not match {expected}"
            )

    return check


def sign_sigstore_payload(private_key: Any, payload: bytes) -> SigstoreSignature:
    """Sign ``payload`` bytes with an ECDSA key: the signature object with the base64 DER signature."""
    import base64

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    if not isinstance(private_key, ec.EllipticCurvePrivateKey):
        raise InvalidKey("only ECDSA private keys can sign (P-256 interoperates with skopeo and cosign)")
    der = private_key.sign(payload, ec.ECDSA(hashes.SHA256()))
    return SigstoreSignature(
        SIMPLESIGNING_MEDIA_TYPE, payload, {SIGNATURE_ANNOTATION: base64.b64encode(der).decode("ascii")}
    )


def sign_sigstore(
    private_key: Any,
    manifest_digest: Digest | str,
    docker_reference: str,
    *,
    timestamp: int | None = None,
    creator: str = CREATOR,
) -> SigstoreSignature:
    """A sigstore signature claiming ``docker_reference`` for ``manifest_digest``.

    The reference must parse as a docker reference (InvalidReference otherwise) but is written verbatim.
    This is the function the copy engine uses to sign on the way."""
    parse_normalized(docker_reference)
    payload = build_payload(
        str(manifest_digest), docker_reference, SIGSTORE_TYPE, creator=creator,
        timestamp=int(time.time()) if timestamp is None else timestamp,
    )
    return sign_sigstore_payload(private_key, payload)


def _asn1_length(data: bytes, pos: int) -> tuple[int, int] | None:
    """Go encoding/asn1's length rules (definite, minimal); (length, next position) or None."""
    if pos >= len(data):
        return None
    first = data[pos]
    pos += 1
    if first < 0x80:
        return first, pos
    n = first & 0x7F
    if n == 0 or pos + n > len(data) or data[pos] == 0:
        return None  # indefinite form, truncated, or a superfluous leading zero
    length = int.from_bytes(data[pos : pos + n], "big")
    if length < 0x80:
        return None  # the short form was due
    return length, pos + n


def _asn1_integer(data: bytes, pos: int, end: int) -> int | None:
    """The position after a minimally encoded INTEGER at ``pos`` (within ``end``), or None."""
    if pos >= end or data[pos] != 0x02:
        return None
    got = _asn1_length(data, pos + 1)
    if got is None:
        return None
    length, start = got
    if length == 0 or start + length > end:
        return None
    if length > 1 and ((data[start], data[start + 1] >> 7) in ((0, 0), (0xFF, 1))):
        return None  # not minimally encoded
    return start + length


def _go_parses_as_asn1(sig: bytes) -> bool:
    """Whether Go's ``asn1.Unmarshal(sig, &struct{R, S *big.Int}{})`` succeeds: a SEQUENCE that starts with two
    INTEGERs (trailing data, inside or after it, is allowed there). sigstore's ECDSA verifier reads such a
    signature as ASN.1 DER and anything else as IEEE-P1363 r||s."""
    if not sig or sig[0] != 0x30:
        return False
    got = _asn1_length(sig, 1)
    if got is None:
        return False
    length, start = got
    end = start + length
    if end > len(sig):
        return False
    second = _asn1_integer(sig, start, end)
    return second is not None and _asn1_integer(sig, second, end) is not None


def _ecdsa_der(signature: bytes) -> bytes | None:
    """The DER form to verify, as sigstore/sigstore's ECDSAVerifier decides (pkg/signature/ecdsa.go, since
    v1.8.3): ASN.1 as it is, else IEEE-P1363 r||s of any even length up to 132 bytes; None when neither."""
    if _go_parses_as_asn1(signature):
        return signature  # verified strictly as DER, as Go's ecdsa.VerifyASN1 does
    if not signature or len(signature) > 132 or len(signature) % 2:
        return None
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    half = len(signature) // 2
    return encode_dss_signature(int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big"))


def _verify_one(public_key: Any, signature: bytes, payload: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            der = _ecdsa_der(signature)
            if der is None:
                return False
            public_key.verify(der, payload, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, payload, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, payload)
        else:
            raise InvalidKey(f"unsupported public key type {type(public_key).__name__}")
    except InvalidSignature:
        return False
    except ValueError:  # e.g. a DER structure that does not parse
        return False
    return True


def verify_sigstore_crypto(sig: SigstoreSignature, public_keys: Sequence[Any]) -> None:
    """The cryptographic check alone: some key in ``public_keys`` signed ``sig.payload``; raises
    VerificationError (missing annotation, bad base64, no key matches)."""
    if not public_keys:
        raise VerificationError("no public key to verify with")
    b64 = sig.signature_b64
    if b64 is None:
        raise VerificationError(f"signature annotation {SIGNATURE_ANNOTATION} is missing")
    raw = b64decode_go(b64)
    if not any(_verify_one(k, raw, sig.payload) for k in public_keys):
        raise VerificationError("cryptographic signature verification failed: no trusted key signed this payload")


def verify_sigstore(
    sig: SigstoreSignature,
    public_keys: Sequence[Any],
    manifest_digest: Digest | str,
    identity: IdentityCheck,
) -> VerifiedSignature:
    """Full verification: crypto, strict payload, exact digest string, identity; raises VerificationError."""
    if sig.mime_type != SIMPLESIGNING_MEDIA_TYPE:
        raise VerificationError(f"signature has unexpected mime type {sig.mime_type[:100]!r}")
    verify_sigstore_crypto(sig, public_keys)
    payload = parse_payload(sig.payload, SIGSTORE_TYPE)
    if payload.manifest_digest != str(manifest_digest):
        raise VerificationError(
            f"signature for docker digest {payload.manifest_digest} does not match the image digest {manifest_digest}"
        )
    identity(payload)
    return VerifiedSignature(payload.manifest_digest, payload.docker_reference, payload.creator, payload.timestamp)
