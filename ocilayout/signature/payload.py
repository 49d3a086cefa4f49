"""The simple-signing payload: building it byte-for-byte as Go does, and parsing it as strictly as
containers/image's ``strictUnmarshalJSON`` (signatures.md §1).

A payload is only parsed after its signature verified; :func:`parse_payload` enforces the rules of §1.3 and
raises :class:`VerificationError` with the reason.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidReference, VerificationError
from . import strictjson
from .dockerref import DockerReference, parse_normalized
from .strictjson import refuse_duplicates

__all__ = [
    "GPG_TYPE",
    "MAX_PAYLOAD_SIZE",
    "SIGSTORE_TYPE",
    "UntrustedPayload",
    "build_payload",
    "go_json",
    "parse_payload",
]

#: ``critical.type`` of GPG simple signing.
GPG_TYPE = "atomic container signature"
#: ``critical.type`` of sigstore / cosign.
SIGSTORE_TYPE = "cosign container image signature"
#: containers/image's iolimits.MaxSignatureBodySize.
MAX_PAYLOAD_SIZE = 4 * 1024 * 1024

_GO_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t",
               "<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_NEEDS_ESCAPE = re.compile('["\\\\\x00-\x1f<>&\u2028\u2029]')


def _go_string(s: str) -> str:
    def repl(m: re.Match[str]) -> str:
        c = m.group(0)
        return _GO_ESCAPES.get(c) or f"\\u{ord(c):04x}"

    return '"' + _NEEDS_ESCAPE.sub(repl, s) + '"'


def go_json(value: Any) -> bytes:
    """Go ``json.Marshal`` of nested maps: compact, keys sorted, HTML characters escaped, no newline."""

    def enc(v: Any) -> str:
        if v is None:
            return "null"
        if v is True:
            return "true"
        if v is False:
            return "false"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, float):
            if not math.isfinite(v):
                raise ValueError("unsupported value: non-finite float")
            return repr(int(v)) if v.is_integer() and abs(v) < 1e21 else repr(v)
        if isinstance(v, str):
            return _go_string(v)
        if isinstance(v, dict):
            return "{" + ",".join(f"{_go_string(k)}:{enc(v[k])}" for k in sorted(v)) + "}"
        if isinstance(v, list | tuple):
            return "[" + ",".join(enc(x) for x in v) + "]"
        raise TypeError(f"cannot encode {type(v).__name__} as JSON")

    return enc(value).encode("utf-8")


def build_payload(
    manifest_digest: str,
    docker_reference: str,
    signature_type: str,
    *,
    creator: str | None = None,
    timestamp: int | None = None,
    optional: dict[str, Any] | None = None,
) -> bytes:
    """The payload bytes containers/image writes (sorted keys, compact).

    ``optional`` defaults to ``{creator, timestamp}`` (only those given); pass ``optional=None`` together with
    ``creator=None, timestamp=None`` to get an empty object. The reference is written verbatim, as skopeo does.
    """
    if optional is None:
        optional = {}
        if creator is not None:
            optional["creator"] = creator
        if timestamp is not None:
            optional["timestamp"] = int(timestamp)
    doc = {
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": str(manifest_digest)},
            "type": signature_type,
        },
        "optional": optional,
    }
    return go_json(doc)


@dataclass(frozen=True, slots=True)
class UntrustedPayload:
    """What a payload claims. Only trust it after its signature verified."""

    signature_type: str
    manifest_digest: str
    docker_reference: str
    creator: str | None = None
    timestamp: int | None = None

    def reference(self) -> DockerReference:
        """The claimed identity, normalized; raises VerificationError when it does not parse."""
        try:
            return parse_normalized(self.docker_reference)
        except InvalidReference as err:
            raise VerificationError(
                f"invalid docker reference {self.docker_reference[:200]!r} in signature: {err}"
            ) from None


def _exact(obj: Any, where: str, fields: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise VerificationError(f"invalid signature payload: {where} must be a JSON object")
    refuse_duplicates(obj, VerificationError, f"invalid signature payload: {where}")
    for k in obj:
        if k not in fields:
            raise VerificationError(f'invalid signature payload: unknown key "{k[:100]}" in {where}')
    for k in fields:
        if k not in obj:
            raise VerificationError(f'invalid signature payload: key "{k}" missing in {where}')
    return obj


def _string(v: Any, where: str) -> str:
    if not isinstance(v, str):
        raise VerificationError(f"invalid signature payload: {where} must be a string")
    return v


def parse_payload(data: bytes, expected_type: str) -> UntrustedPayload:
    """Parse a verified payload with containers/image's strict rules (§1.3); raises VerificationError.

    One JSON object with exactly ``critical`` and ``optional``; no key repeated in it, in ``critical`` and its
    objects or in ``optional`` (repeats inside ignored ``optional`` values pass, as in Go); no NaN/Infinity;
    ``critical`` with exactly ``type``/``image``/``identity``; the type must equal ``expected_type``;
    ``optional`` must be an object (``null`` is allowed for sigstore only); unknown ``optional`` keys are ignored;
    ``creator`` a string, ``timestamp`` an integral number.
    """
    if len(data) > MAX_PAYLOAD_SIZE:
        raise VerificationError(f"signature payload is {len(data)} bytes, over the {MAX_PAYLOAD_SIZE}-byte limit")
    # Duplicates are refused at each level containers/image decodes paranoidly (the top, critical and its objects,
    # and optional itself), but not inside the values of optional keys it ignores (decoded into Go's `any`).
    doc = strictjson.loads(data, VerificationError, "invalid signature payload", duplicates=False)
    top = _exact(doc, "the signature payload", ("critical", "optional"))
    critical = _exact(top["critical"], "critical", ("type", "image", "identity"))
    image = _exact(critical["image"], "critical.image", ("docker-manifest-digest",))
    identity = _exact(critical["identity"], "critical.identity", ("docker-reference",))
    sig_type = _string(critical["type"], "critical.type")
    if sig_type != expected_type:
        raise VerificationError(f"unrecognized signature type {sig_type[:100]!r}, expected {expected_type!r}")
    digest = _string(image["docker-manifest-digest"], "critical.image.docker-manifest-digest")
    alg, _, hexpart = digest.partition(":")
    want = {"sha256": 64, "sha384": 96, "sha512": 128}.get(alg)
    if want is None or len(hexpart) != want or not re.fullmatch(r"[a-f0-9]+", hexpart):
        raise VerificationError(f"invalid signature payload: invalid manifest digest {digest[:150]!r}")
    reference = _string(identity["docker-reference"], "critical.identity.docker-reference")

    optional = top["optional"]
    creator: str | None = None
    timestamp: int | None = None
    if optional is None:
        if expected_type != SIGSTORE_TYPE:
            raise VerificationError("invalid signature payload: optional must be a JSON object, not null")
    elif not isinstance(optional, dict):
        raise VerificationError("invalid signature payload: optional must be a JSON object")
    else:
        refuse_duplicates(optional, VerificationError, "invalid signature payload: optional")
        if "creator" in optional:
            c = optional["creator"]
            if c is not None and not isinstance(c, str):
                raise VerificationError("invalid signature payload: optional.creator must be a string")
            creator = c or ""
        if "timestamp" in optional:
            t = optional["timestamp"]
            if t is None:
                t = 0
            if isinstance(t, bool) or not isinstance(t, int | float):
                raise VerificationError("invalid signature payload: optional.timestamp must be a number")
            if isinstance(t, float) and not t.is_integer():
                raise VerificationError("invalid signature payload: optional.timestamp is not an integer")
            if not -(2**63) <= t < 2**63:
                raise VerificationError("invalid signature payload: optional.timestamp is out of range")
            timestamp = int(t)
    return UntrustedPayload(sig_type, digest, reference, creator, timestamp)
