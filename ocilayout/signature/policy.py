"""containers-policy.json(5): parse strictly and evaluate per image, reporting every requirement.

Parsing refuses what containers/image's policy_config.go refuses: unknown or repeated keys at any level, scopes
that the transport's ValidatePolicyConfigurationScope rejects (oci, oci-archive, dir: absolute and canonical, not
``/``), invalid remapIdentity prefixes. Scopes are looked up as PolicyConfigurationIdentity/Namespaces do (the
path, then its parents; never ``PATH:TAG``), and relative key paths are read relative to the working directory.

Supported requirements: ``insecureAcceptAnything``, ``reject``, ``signedBy`` (``keyType: GPGKeys``, keyPath /
keyPaths / keyData) and ``sigstoreSigned`` (keyPath / keyPaths / keyData / keyDatas). Fulcio, PKI and Rekor
options are refused with UnsupportedFormat rather than ignored. Every ``signedIdentity`` type is implemented as
containers/image's policy_reference_match.go does.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..digest import Digest
from ..errors import InvalidReference, NotFound, OcilayoutError, SignatureError, UnsupportedFormat, VerificationError
from . import strictjson
from .dockerref import DockerReference, is_remap_prefix, parse_named, parse_normalized
from .model import SIMPLESIGNING_MEDIA_TYPE, Signature, SigstoreSignature, SimpleSigningSignature
from .payload import UntrustedPayload

__all__ = [
    "IdentityRule",
    "ImageToVerify",
    "Policy",
    "PolicyError",
    "PolicyResult",
    "RequirementResult",
    "identity_check",
    "parse_identity_rule",
    "path_scopes",
]

_MAX_POLICY_SIZE = 4 * 1024 * 1024


class PolicyError(SignatureError):
    """A policy.json that does not parse or names something unusable."""


@dataclass(frozen=True, slots=True)
class IdentityRule:
    """A ``signedIdentity`` object."""

    type: str = "matchRepoDigestOrExact"
    docker_reference: str | None = None
    docker_repository: str | None = None
    prefix: str | None = None
    signed_prefix: str | None = None


_IDENTITY_FIELDS = {
    "matchExact": (),
    "matchRepoDigestOrExact": (),
    "matchRepository": (),
    "exactReference": ("dockerReference",),
    "exactRepository": ("dockerRepository",),
    "remapIdentity": ("prefix", "signedPrefix"),
}


def _exact_keys(obj: Any, where: str, required: Sequence[str], optional: Sequence[str] = ()) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise PolicyError(f"policy: {where} must be a JSON object")
    for k in obj:
        if k not in required and k not in optional:
            raise PolicyError(f'policy: unknown key "{k[:80]}" in {where}')
    for k in required:
        if k not in obj:
            raise PolicyError(f'policy: key "{k}" missing in {where}')
    return obj


def parse_identity_rule(obj: Any) -> IdentityRule:
    """A ``signedIdentity`` object, validated; raises PolicyError."""
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise PolicyError("policy: signedIdentity must be an object with a string type")
    t = obj["type"]
    if t not in _IDENTITY_FIELDS:
        raise PolicyError(f"policy: unknown signedIdentity type {t[:80]!r}")
    _exact_keys(obj, f"signedIdentity {t}", ("type", *_IDENTITY_FIELDS[t]))
    for k in _IDENTITY_FIELDS[t]:
        if not isinstance(obj[k], str):
            raise PolicyError(f"policy: signedIdentity {t} {k} must be a string")
    try:
        if t == "exactReference":
            if parse_normalized(obj["dockerReference"]).is_name_only:
                raise PolicyError(f"policy: exactReference {obj['dockerReference']!r} has neither a tag nor a digest")
        elif t == "exactRepository":
            parse_normalized(obj["dockerRepository"])
        elif t == "remapIdentity":
            for k in ("prefix", "signedPrefix"):
                if not is_remap_prefix(obj[k]):
                    raise PolicyError(f"policy: remapIdentity {k} {obj[k][:200]!r} is not valid")
    except InvalidReference as err:
        raise PolicyError(f"policy: signedIdentity {t}: {err}") from None
    return IdentityRule(t, obj.get("dockerReference"), obj.get("dockerRepository"), obj.get("prefix"),
                        obj.get("signedPrefix"))


def _ref_matches_prefix(ref: str, prefix: str) -> bool:
    if len(ref) < len(prefix):
        return False
    if len(ref) == len(prefix):
        return ref == prefix
    return ref.startswith(prefix) and ref[len(prefix)] in ":/@"


def _repo_digest_or_exact(intended: DockerReference, sig: DockerReference) -> bool:
    if sig.is_name_only:
        return False
    if intended.tag is not None:
        return sig.string() == intended.string()
    if intended.digest is not None:
        return sig.name == intended.name
    return False


def _matches(rule: IdentityRule, intended: DockerReference | None, signed: str) -> bool:
    try:
        sig = parse_normalized(signed)
    except InvalidReference:
        return False
    t = rule.type
    if t == "exactReference":
        want = parse_normalized(rule.docker_reference or "")
        return not want.is_name_only and not sig.is_name_only and want.string() == sig.string()
    if t == "exactRepository":
        return parse_normalized(rule.docker_repository or "").name == sig.name
    if intended is None:
        return False  # dir: and oci: images have no docker identity of their own
    if t == "matchExact":
        return not intended.is_name_only and not sig.is_name_only and intended.string() == sig.string()
    if t == "matchRepository":
        return intended.name == sig.name
    if t == "remapIdentity":
        s = intended.string()
        if _ref_matches_prefix(s, rule.prefix or ""):
            try:
                intended = parse_named((rule.signed_prefix or "") + s[len(rule.prefix or ""):])
            except InvalidReference:
                return False
        return _repo_digest_or_exact(intended, sig)
    return _repo_digest_or_exact(intended, sig)  # matchRepoDigestOrExact


def identity_check(rule: IdentityRule, intended: DockerReference | None) -> Callable[[UntrustedPayload], None]:
    """An identity check for the verify functions: raises VerificationError when ``rule`` rejects the claim."""

    def check(payload: UntrustedPayload) -> None:
        if not _matches(rule, intended, payload.docker_reference):
            raise VerificationError(f"signature for identity {payload.docker_reference[:200]!r} is not accepted "
                                    f"({rule.type})")

    return check


@dataclass(frozen=True, slots=True)
class ImageToVerify:
    """An image as the policy sees it: its manifest digest, its signatures, and its docker identity if any."""

    manifest_digest: Digest
    signatures: Sequence[Signature]
    intended: DockerReference | None = None


@dataclass(frozen=True, slots=True)
class RequirementResult:
    """The verdict of one requirement: which, whether it passed, and why."""

    type: str
    passed: bool
    reason: str


@dataclass(frozen=True, slots=True)
class PolicyResult:
    """All requirement verdicts for one image; the image is allowed only when every one passed."""

    scope: str
    results: list[RequirementResult] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return bool(self.results) and all(r.passed for r in self.results)

    def raise_for_rejection(self, subject: str) -> None:
        """Return when the image is allowed; else raise VerificationError naming ``subject`` and every failed
        requirement with its reason."""
        if self.allowed:
            return
        failed = [r for r in self.results if not r.passed]
        reasons = "; ".join(f"{r.type}: {r.reason}" for r in failed) or "no requirement applies"
        raise VerificationError(f"{subject} is rejected by the policy: {reasons}")


def _b64_data(v: Any, where: str) -> bytes:
    if not isinstance(v, str):
        raise PolicyError(f"policy: {where} must be base64 text")
    try:
        return base64.b64decode(v, validate=True)
    except (binascii.Error, ValueError):
        raise PolicyError(f"policy: {where} is not valid base64") from None


class _Requirement:
    type = ""

    def evaluate(self, image: ImageToVerify) -> RequirementResult:  # pragma: no cover - abstract
        raise NotImplementedError


class _Accept(_Requirement):
    type = "insecureAcceptAnything"

    def evaluate(self, image: ImageToVerify) -> RequirementResult:
        return RequirementResult(self.type, True, "accepted without checks")


class _Reject(_Requirement):
    type = "reject"

    def evaluate(self, image: ImageToVerify) -> RequirementResult:
        return RequirementResult(self.type, False, "rejected by policy")


class _SignedBaseLayer(_Requirement):
    type = "signedBaseLayer"

    def evaluate(self, image: ImageToVerify) -> RequirementResult:
        return RequirementResult(self.type, False, "signedBaseLayer is not implemented (containers/image neither)")


def _verdict(kind: str, considered: int, errors: list[str], ok: str | None) -> RequirementResult:
    if ok is not None:
        return RequirementResult(kind, True, ok)
    if considered == 0:
        return RequirementResult(kind, False, "a signature was required, but no signature exists")
    return RequirementResult(kind, False, "; ".join(dict.fromkeys(errors)))


class _Keys:
    """Key material named by a requirement, read only when the requirement is evaluated (as containers/image)."""

    def __init__(self, paths: list[Path], datas: list[bytes]) -> None:
        self.paths = paths
        self.datas = datas

    def load(self) -> list[bytes]:
        """The key blobs; raises NotFound / PolicyError for unreadable files."""
        return [*(_read_key_path(p) for p in self.paths), *self.datas]


class _Sigstore(_Requirement):
    type = "sigstoreSigned"

    def __init__(self, keys: _Keys, rule: IdentityRule) -> None:
        self.keys = keys
        self.rule = rule

    def evaluate(self, image: ImageToVerify) -> RequirementResult:
        from .keys import load_public_key
        from .sigstore import verify_sigstore

        try:
            public_keys = [load_public_key(p) for p in self.keys.load()]  # every key must load
        except OcilayoutError as err:
            return RequirementResult(self.type, False, f"cannot use the policy's keys: {err}")
        errors: list[str] = []
        considered = 0
        for sig in image.signatures:
            if not isinstance(sig, SigstoreSignature) or sig.mime_type != SIMPLESIGNING_MEDIA_TYPE:
                continue
            considered += 1
            try:
                v = verify_sigstore(sig, public_keys, image.manifest_digest,
                                    identity_check(self.rule, image.intended))
            except OcilayoutError as err:
                errors.append(str(err))
                continue
            return _verdict(self.type, considered, errors, f"signed identity {v.docker_reference} accepted")
        return _verdict(self.type, considered, errors, None)


class _SignedBy(_Requirement):
    type = "signedBy"

    def __init__(self, key_type: str, keys: _Keys, rule: IdentityRule) -> None:
        self.key_type = key_type
        self.keys = keys
        self.rule = rule

    def evaluate(self, image: ImageToVerify) -> RequirementResult:
        from .gpg import GPGKeyring, verify_simple

        if self.key_type != "GPGKeys":
            return RequirementResult(self.type, False, f"keyType {self.key_type} is not implemented")
        sigs = [s for s in image.signatures if isinstance(s, SimpleSigningSignature)]
        if not sigs:
            return _verdict(self.type, 0, [], None)
        errors: list[str] = []
        try:
            ring = GPGKeyring.ephemeral(self.keys.load())
        except OcilayoutError as err:
            return RequirementResult(self.type, False, f"cannot use the policy's keys: {err}")
        with ring:
            for sig in sigs:
                try:
                    v = verify_simple(sig.blob, ring, ring.imported, image.manifest_digest,
                                      identity_check(self.rule, image.intended))
                except OcilayoutError as err:
                    errors.append(str(err))
                    continue
                return _verdict(self.type, len(sigs), errors,
                                f"signed by {v.key_identity}, identity {v.docker_reference} accepted")
        return _verdict(self.type, len(sigs), errors, None)


def _read_key_path(p: Path) -> bytes:
    try:
        with p.open("rb") as f:
            data = f.read(16 * 1024 * 1024 + 1)
    except OSError as err:
        raise NotFound(f"cannot read key file {str(p)!r}: {err.strerror}") from None
    if len(data) > 16 * 1024 * 1024:
        raise PolicyError(f"key file {str(p)!r} is too large")
    return data


def _path(v: Any, where: str) -> Path:
    # containers/image opens keyPath as written (os.ReadFile), so a relative one is relative to the working
    # directory of the process when the requirement is evaluated, not to the policy file.
    if not isinstance(v, str) or not v:
        raise PolicyError(f"policy: {where} must be a non-empty path string")
    return Path(v)


def _key_sources(obj: dict[str, Any], kinds: Sequence[str]) -> _Keys:
    given = [k for k in kinds if k in obj]
    if len(given) != 1:
        raise PolicyError(f"policy: exactly one of {', '.join(kinds)} must be given")
    k = given[0]
    v = obj[k]
    if k == "keyPath":
        return _Keys([_path(v, k)], [])
    if k == "keyPaths":
        if not isinstance(v, list) or not v:
            raise PolicyError("policy: keyPaths must be a non-empty array")
        return _Keys([_path(x, k) for x in v], [])
    if k == "keyData":
        return _Keys([], [_b64_data(v, k)])
    if not isinstance(v, list) or not v:
        raise PolicyError("policy: keyDatas must be a non-empty array")
    return _Keys([], [_b64_data(x, k) for x in v])


_KEY_TYPES = ("GPGKeys", "signedByGPGKeys", "X509Certificates", "signedByX509CAs")
_UNSUPPORTED_SIGSTORE = ("fulcio", "pki", "rekorPublicKeyPath", "rekorPublicKeyPaths", "rekorPublicKeyData",
                         "rekorPublicKeyDatas")


def _parse_requirement(obj: Any) -> _Requirement:
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise PolicyError("policy: a requirement must be an object with a string type")
    t = obj["type"]
    if t == "insecureAcceptAnything":
        _exact_keys(obj, t, ("type",))
        return _Accept()
    if t == "reject":
        _exact_keys(obj, t, ("type",))
        return _Reject()
    if t == "signedBaseLayer":
        _exact_keys(obj, t, ("type", "baseLayerIdentity"))
        parse_identity_rule(obj["baseLayerIdentity"])
        return _SignedBaseLayer()
    if t == "signedBy":
        _exact_keys(obj, t, ("type", "keyType"), ("keyPath", "keyPaths", "keyData", "signedIdentity"))
        if obj["keyType"] not in _KEY_TYPES:
            raise PolicyError(f"policy: unknown signedBy keyType {str(obj['keyType'])[:60]!r}")
        rule = parse_identity_rule(obj["signedIdentity"]) if "signedIdentity" in obj else IdentityRule()
        keys = _key_sources(obj, ("keyPath", "keyPaths", "keyData"))
        return _SignedBy(obj["keyType"], keys, rule)
    if t == "sigstoreSigned":
        bad = [k for k in _UNSUPPORTED_SIGSTORE if k in obj]
        if bad:
            raise UnsupportedFormat(f"policy: sigstoreSigned {bad[0]} is not supported offline by ocilayout")
        _exact_keys(obj, t, ("type",), ("keyPath", "keyPaths", "keyData", "keyDatas", "signedIdentity"))
        rule = parse_identity_rule(obj["signedIdentity"]) if "signedIdentity" in obj else IdentityRule()
        keys = _key_sources(obj, ("keyPath", "keyPaths", "keyData", "keyDatas"))
        return _Sigstore(keys, rule)
    raise PolicyError(f"policy: unknown requirement type {t[:80]!r}")


def _requirements(obj: Any, where: str) -> list[_Requirement]:
    if not isinstance(obj, list) or not obj:
        raise PolicyError(f"policy: {where} must be a non-empty array of requirements")
    return [_parse_requirement(r) for r in obj]


def _go_clean_absolute(path: str) -> str:
    """Go's ``filepath.Clean`` of an absolute path (one leading slash, no ``.``/``..``/empty components)."""
    parts: list[str] = []
    for c in path.split("/"):
        if c in ("", "."):
            continue
        if c == "..":
            if parts:
                parts.pop()
            continue
        parts.append(c)
    return "/" + "/".join(parts)


def _validate_path_scope(scope: str) -> str | None:
    """oci/internal ValidateScope and dir's ValidatePolicyConfigurationScope; the problem, or None."""
    if not scope.startswith("/"):
        return "it must be an absolute path"
    if scope == "/":
        return 'use the transport default scope "" instead of "/"'
    cleaned = _go_clean_absolute(scope)
    if cleaned != scope:
        return f"it is not in canonical form, perhaps {cleaned!r}"
    return None


def _only_default_scope(scope: str) -> str | None:
    return 'this transport supports no scope except the default ""'


#: Scope rules of the transports containers/image registers (transports.Get); other names accept any scope.
#: docker, atomic and containers-storage validate little or need a store; their scopes are accepted as written.
_SCOPE_RULES: dict[str, Callable[[str], str | None]] = {
    "oci": _validate_path_scope,
    "oci-archive": _validate_path_scope,
    "dir": _validate_path_scope,
    "docker-archive": _only_default_scope,
    "docker-daemon": _only_default_scope,
    "tarball": _only_default_scope,
    "sif": _only_default_scope,
}


def _check_scope(transport: str, scope: str) -> None:
    rule = _SCOPE_RULES.get(transport)
    if scope == "" or rule is None:
        return
    problem = rule(scope)
    if problem is not None:
        raise PolicyError(f"policy: scope {scope[:200]!r} of transport {transport[:60]!r}: {problem}")


class Policy:
    """A parsed containers-policy.json. Use :meth:`load` or :meth:`parse`."""

    def __init__(self, default: list[_Requirement], transports: dict[str, dict[str, list[_Requirement]]]) -> None:
        self.default = default
        self.transports = transports

    @classmethod
    def parse(cls, raw: bytes) -> Policy:
        """Parse policy JSON as strictly as containers/image: unknown or duplicated keys at any level, invalid
        scopes of oci/oci-archive/dir and the other registered transports are refused (PolicyError)."""
        if len(raw) > _MAX_POLICY_SIZE:
            raise PolicyError("policy file is too large")
        doc = strictjson.loads(raw, PolicyError, "policy")
        top = _exact_keys(doc, "the policy", ("default",), ("transports",))
        default = _requirements(top["default"], "default")
        transports: dict[str, dict[str, list[_Requirement]]] = {}
        tr = top.get("transports") or {}
        if not isinstance(tr, dict):
            raise PolicyError("policy: transports must be an object")
        for name, scopes in tr.items():
            if not isinstance(scopes, dict):
                raise PolicyError(f"policy: transports.{name[:60]} must be an object")
            per: dict[str, list[_Requirement]] = {}
            for scope, reqs in scopes.items():
                _check_scope(name, scope)
                per[scope] = _requirements(reqs, f"transports.{name[:60]}[{scope[:200]!r}]")
            transports[name] = per
        return cls(default, transports)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Policy:
        """Read and parse a policy file; raises NotFound / PolicyError. Relative key paths in it are read
        relative to the working directory, as containers/image reads them."""
        from ..fsutil import read_limited

        return cls.parse(read_limited(Path(path), "policy", _MAX_POLICY_SIZE, PolicyError))

    def requirements_for(self, transport: str, scopes: Sequence[str]) -> tuple[str, list[_Requirement]]:
        """The most specific matching scope among ``scopes`` (then ``""``, then the default)."""
        per = self.transports.get(transport)
        if per is not None:
            for s in scopes:
                if s in per:
                    return f"{transport}:{s}", per[s]
            if "" in per:
                return f"{transport}:", per[""]
        return "default", self.default

    def evaluate(self, transport: str, scopes: Sequence[str], image: ImageToVerify) -> PolicyResult:
        """Evaluate every requirement of the matching scope (all are reported; the list is ANDed)."""
        scope, reqs = self.requirements_for(transport, scopes)
        return PolicyResult(scope, [r.evaluate(image) for r in reqs])


def path_scopes(path: str | os.PathLike[str], ref: str | None = None) -> list[str]:
    """Policy scopes of a ``dir:`` / ``oci:`` / ``oci-archive:`` image, most specific first: the resolved path,
    then each parent directory except ``/`` (containers/image's PolicyConfigurationIdentity and
    PolicyConfigurationNamespaces). ``ref`` is ignored: containers/image never looks up ``PATH:TAG`` scopes."""
    del ref
    p = Path(path).resolve()
    return [str(p), *(str(q) for q in p.parents if str(q) != "/")]
