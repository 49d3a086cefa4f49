"""Signing and verifying images where they are stored (``oci:``, ``oci-archive:``, ``dir:``).

These are the library calls behind ``ocilayout sign`` / ``ocilayout verify``; the copy engine can use
:func:`resolve_image` + :func:`~ocilayout.signature.sigstore.sign_sigstore` + :func:`store_signature`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import mediatypes as mt
from ..descriptor import REF_NAME
from ..digest import Digest
from ..errors import InvalidReference, OcilayoutError, VerificationError
from ..reference import ImageReference, parse_reference
from .dockerref import DockerReference, parse_named, parse_normalized
from .model import SIMPLESIGNING_MEDIA_TYPE, Signature, SigstoreSignature
from .policy import IdentityRule, ImageToVerify, Policy, PolicyResult, identity_check, path_scopes
from .sigstore import VerifiedSignature, sign_sigstore, verify_sigstore

__all__ = [
    "ResolvedImage",
    "evaluate_policy",
    "list_signatures",
    "resolve_image",
    "sign_image",
    "store_signature",
    "store_signatures",
    "verify_image",
]


@dataclass(frozen=True, slots=True)
class ResolvedImage:
    """An image reference with its manifest digest and, if its tag is a full docker reference, that."""

    ref: ImageReference
    manifest_digest: Digest
    docker_reference: str | None = None


def _docker_name(name: str | None) -> str | None:
    """A layout ref name usable as a signed identity: a fully qualified docker reference with a tag."""
    if not name or "/" not in name:
        return None
    try:
        r = parse_named(name)
    except InvalidReference:
        return None
    if r.is_name_only or not r.domain or parse_normalized(name).string() != name:
        return None
    return name


def resolve_image(ref: ImageReference | str) -> ResolvedImage:
    """Resolve an image reference to its manifest digest (a schema1 manifest's payload digest) and, when it
    is named by a full docker reference, that; raises NotFound, UnsupportedFormat..."""
    from ..transports import open_source

    r = parse_reference(ref) if isinstance(ref, str) else ref
    with open_source(r) as src:
        digest = src.root.digest
        if src.root.media_type in mt.SCHEMA1_TYPES:
            digest = src.get_manifest().digest
        name = src.root.annotations.get(REF_NAME)
    return ResolvedImage(r, digest, _docker_name(name))


def _location(ref: ImageReference) -> ImageReference:
    """The reference of the place an image lives (its layout, archive or directory), without a name."""
    return ImageReference(ref.transport, ref.path)


def store_signatures(image: ResolvedImage, sigs: Sequence[Signature]) -> None:
    """Append ``sigs`` to the image's stored signatures (never replacing any), in one commit of the
    image's transport; on failure nothing is stored."""
    from ..transports import open_destination

    dst = open_destination(_location(image.ref))
    try:
        dst.put_signatures(image.manifest_digest, sigs)
        dst.commit()
    finally:
        dst.close()


def store_signature(image: ResolvedImage, sig: Signature) -> None:
    """Append ``sig`` to the image's signature storage (never replacing existing ones)."""
    store_signatures(image, [sig])


def list_signatures(image: ResolvedImage) -> list[Signature]:
    """Every stored signature of the image."""
    from ..transports import open_source

    with open_source(image.ref) as src:
        return list(src.signatures(image.manifest_digest))


def _identity(image: ResolvedImage, identity: str | None) -> str:
    ident = identity or image.docker_reference
    if ident is None:
        raise InvalidReference(f"{image.ref} has no docker identity to sign or check; give --identity REF "
                               "(e.g. registry.example.com/ns/app:1.0)")
    parse_normalized(ident)
    return ident


def sign_image(ref: ImageReference | str, private_key: Any, identity: str | None = None, *,
               timestamp: int | None = None) -> tuple[ResolvedImage, SigstoreSignature]:
    """Sign an image with a sigstore private key and store the signature with it; returns both."""
    image = resolve_image(ref)
    ident = _identity(image, identity)
    sig = sign_sigstore(private_key, image.manifest_digest, ident,
                        timestamp=int(time.time()) if timestamp is None else timestamp)
    store_signature(image, sig)
    return image, sig


def _rule_for(identity: str) -> IdentityRule:
    r = parse_normalized(identity)
    if r.is_name_only:
        return IdentityRule("exactRepository", docker_repository=identity)
    return IdentityRule("exactReference", docker_reference=identity)


def verify_image(ref: ImageReference | str, public_keys: Sequence[Any], identity: str | None = None
                 ) -> tuple[ResolvedImage, list[VerifiedSignature]]:
    """Verify the image's sigstore signatures with ``public_keys``; identity by exactReference (tagged) or
    exactRepository (name only). Returns the signatures that verified; raises VerificationError if none."""
    image = resolve_image(ref)
    check = identity_check(_rule_for(_identity(image, identity)), None)
    good: list[VerifiedSignature] = []
    errors: list[str] = []
    sigs = [s for s in list_signatures(image)
            if isinstance(s, SigstoreSignature) and s.mime_type == SIMPLESIGNING_MEDIA_TYPE]
    for sig in sigs:
        try:
            good.append(verify_sigstore(sig, public_keys, image.manifest_digest, check))
        except OcilayoutError as err:
            errors.append(str(err))
    if not good:
        if not sigs:
            raise VerificationError(f"{image.ref} ({image.manifest_digest}) has no sigstore signatures")
        raise VerificationError(f"no signature of {image.ref} verified: " + "; ".join(dict.fromkeys(errors)))
    return image, good


def evaluate_policy(ref: ImageReference | str, policy: Policy, identity: str | None = None
                    ) -> tuple[ResolvedImage, PolicyResult]:
    """Evaluate a containers policy for the image (scope: its transport and path); ``identity`` is the
    docker reference the image is meant to be (for the match* signedIdentity types)."""
    image = resolve_image(ref)
    intended: DockerReference | None = None
    if identity is not None:
        intended = parse_normalized(identity)
    elif image.docker_reference is not None:
        intended = parse_normalized(image.docker_reference)
    result = policy.evaluate(image.ref.transport, path_scopes(image.ref.path, image.ref.ref),
                             ImageToVerify(image.manifest_digest, list_signatures(image), intended))
    return image, result
