"""Signature objects and their on-disk blob format (containers/image internal/signature ``Blob``/``FromBlob``).

* :class:`SimpleSigningSignature` - a binary OpenPGP message; stored without a prefix.
* :class:`SigstoreSignature` - mime type, payload and annotations; stored as ``\\x00sigstore-json\\n`` + JSON.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import VerificationError
from . import strictjson
from .payload import go_json

__all__ = [
    "BUNDLE_ANNOTATION",
    "CERTIFICATE_ANNOTATION",
    "CHAIN_ANNOTATION",
    "MAX_SIGNATURE_SIZE",
    "SIGNATURE_ANNOTATION",
    "SIMPLESIGNING_MEDIA_TYPE",
    "Signature",
    "SigstoreSignature",
    "SimpleSigningSignature",
    "b64decode_go",
    "read_signature_file",
    "signature_from_blob",
]

#: Layer / signature mime type of sigstore simple-signing payloads.
SIMPLESIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
#: containers/image's iolimits.MaxSignatureBodySize: larger signature blobs are refused unread.
MAX_SIGNATURE_SIZE = 4 * 1024 * 1024

_SIGSTORE_PREFIX = b"\x00sigstore-json\n"
_ENVELOPE_FIELDS = frozenset({"mimetype", "payload", "annotations"})
_SIMPLE_PREFIX = b"\x00simple-signing\n"
#: First bytes of binary OpenPGP messages that FromBlob accepts without a prefix.
_OPENPGP_FIRST = frozenset(b"\xa0\xa1\xa2\xa3\xc8\x90\x91\x92\x3d\xc4\x88\x89\x8a\x8b\xc2")


def b64decode_go(text: str) -> bytes:
    """Go ``base64.StdEncoding.DecodeString``: padded standard alphabet, ``\\r``/``\\n`` ignored."""
    cleaned = text.replace("\r", "").replace("\n", "")
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        raise VerificationError("invalid base64 data in signature") from None


@dataclass(frozen=True, slots=True)
class SimpleSigningSignature:
    """A GPG simple-signing signature: a binary OpenPGP signed message."""

    blob: bytes = field(repr=False)

    def to_blob(self) -> bytes:
        """Stored form: the raw OpenPGP bytes (no prefix, for old readers)."""
        return self.blob


@dataclass(frozen=True, slots=True)
class SigstoreSignature:
    """A sigstore signature: the payload bytes plus annotations (the base64 signature among them)."""

    mime_type: str
    payload: bytes = field(repr=False)
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def signature_b64(self) -> str | None:
        """The ``dev.cosignproject.cosign/signature`` annotation, if any."""
        return self.annotations.get(SIGNATURE_ANNOTATION)

    def to_blob(self) -> bytes:
        """``\\x00sigstore-json\\n`` + JSON {mimeType, payload (base64), annotations (sorted)}, as skopeo writes."""
        body = (
            b'{"mimeType":' + go_json(self.mime_type)
            + b',"payload":' + go_json(base64.b64encode(self.payload).decode("ascii"))
            + b',"annotations":' + go_json(dict(self.annotations)) + b"}"
        )
        return _SIGSTORE_PREFIX + body


Signature = SimpleSigningSignature | SigstoreSignature


def _ci_get(doc: dict[str, Any], name: str) -> Any:
    """Go encoding/json field lookup: exact name first, then case-insensitive."""
    if name in doc:
        return doc[name]
    low = name.lower()
    for k, v in doc.items():
        if k.lower() == low:
            return v
    return None


def signature_from_blob(blob: bytes) -> Signature:
    """Parse a stored signature (``FromBlob``); raises VerificationError for unknown or malformed formats."""
    if len(blob) > MAX_SIGNATURE_SIZE:
        raise VerificationError(f"signature is {len(blob)} bytes, over the {MAX_SIGNATURE_SIZE}-byte limit")
    if not blob:
        raise VerificationError("empty signature")
    if blob[0] == 0:
        nl = blob.find(b"\n")
        if nl < 0:
            raise VerificationError("invalid signature format: missing newline after the format name")
        fmt = blob[1:nl]
        if not fmt or any(c < 0x20 or c > 0x7E for c in fmt):
            raise VerificationError("invalid signature format: non-printable format name")
        rest = blob[nl + 1 :]
        if blob.startswith(_SIMPLE_PREFIX):
            return SimpleSigningSignature(rest)
        if not blob.startswith(_SIGSTORE_PREFIX):
            raise VerificationError(f"unrecognized signature format {fmt.decode('ascii')[:50]!r}")
        # containers/image decodes this envelope with plain json.Unmarshal (last duplicate wins, field names
        # case-insensitive); ocilayout refuses any repeated key, also one repeated in another case, so the two
        # tools can never read different payloads or signatures out of one file.
        doc = strictjson.loads(rest, VerificationError, "invalid sigstore signature")
        if not isinstance(doc, dict):
            raise VerificationError("invalid sigstore signature: not a JSON object")
        folded = [k.lower() for k in doc if k.lower() in _ENVELOPE_FIELDS]
        if len(folded) != len(set(folded)):
            raise VerificationError("invalid sigstore signature: a field is given twice (in different cases)")
        mime = _ci_get(doc, "mimeType")
        payload = _ci_get(doc, "payload")
        annotations = _ci_get(doc, "annotations")
        if mime is not None and not isinstance(mime, str):
            raise VerificationError("invalid sigstore signature: mimeType must be a string")
        if payload is not None and not isinstance(payload, str):
            raise VerificationError("invalid sigstore signature: payload must be base64 text")
        if annotations is not None and (
            not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values())
        ):
            raise VerificationError("invalid sigstore signature: annotations must map strings to strings")
        return SigstoreSignature(mime or "", b64decode_go(payload or ""), dict(annotations or {}))
    if blob[0] in _OPENPGP_FIRST:
        return SimpleSigningSignature(blob)
    raise VerificationError(f"unrecognized signature format, starting with binary 0x{blob[0]:02x}")


def read_signature_file(path: str | os.PathLike[str]) -> bytes:
    """Read a signature file, refusing one over :data:`MAX_SIGNATURE_SIZE` without reading it all."""
    from ..fsutil import read_limited

    return read_limited(path, "signature", MAX_SIGNATURE_SIZE, VerificationError)
