"""Docker references as containers/image's fork of docker/distribution parses and prints them.

:func:`parse_normalized` is ``reference.ParseNormalizedNamed``: ``busybox`` becomes ``docker.io/library/busybox``,
``index.docker.io`` becomes ``docker.io``, and no default tag is added. Signature identity checks compare the
:meth:`DockerReference.string` and :attr:`DockerReference.name` forms exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InvalidReference

__all__ = ["DockerReference", "is_remap_prefix", "parse_named", "parse_normalized"]

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]*)"
_NAME_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_NAME_COMPONENT}(?:/{_NAME_COMPONENT})*"
_REFERENCE = re.compile(rf"({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?", re.ASCII)
_ANCHORED_NAME = re.compile(rf"(?:({_DOMAIN})/)?({_NAME_COMPONENT}(?:/{_NAME_COMPONENT})*)", re.ASCII)
_IDENTIFIER = re.compile(r"[a-f0-9]{64}")
_DOMAIN_ONLY = re.compile(_DOMAIN, re.ASCII)
_NAME_ONLY = re.compile(_NAME, re.ASCII)
_DOMAIN_PREFIX = re.compile(rf"{_DOMAIN}/", re.ASCII)
_DIGEST_HEX = {"sha256": 64, "sha384": 96, "sha512": 128}
_NAME_MAX = 255
_DEFAULT_DOMAIN = "docker.io"
_LEGACY_DOMAIN = "index.docker.io"


@dataclass(frozen=True, slots=True)
class DockerReference:
    """A parsed ``[domain/]path[:tag][@digest]`` reference (always named)."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """``domain/path`` (reference.Named.Name())."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def is_name_only(self) -> bool:
        """Neither a tag nor a digest (reference.IsNameOnly)."""
        return self.tag is None and self.digest is None

    def string(self) -> str:
        """``name[:tag][@digest]`` (reference.Named.String())."""
        out = self.name
        if self.tag is not None:
            out += ":" + self.tag
        if self.digest is not None:
            out += "@" + self.digest
        return out

    def __str__(self) -> str:
        return self.string()


def _check_digest(text: str) -> None:
    alg, _, hexpart = text.partition(":")
    want = _DIGEST_HEX.get(alg)
    if want is None:
        raise InvalidReference(f"invalid docker reference: unsupported digest algorithm in {text[:100]!r}")
    if len(hexpart) != want or not re.fullmatch(r"[a-f0-9]+", hexpart):
        raise InvalidReference(f"invalid docker reference: invalid digest {text[:100]!r}")


def parse_named(text: str) -> DockerReference:
    """reference.Parse of an already-qualified reference, which must be named; raises InvalidReference."""
    if not isinstance(text, str):
        raise InvalidReference("docker reference must be a string")
    m = _REFERENCE.fullmatch(text)
    if m is None:
        if text == "":
            raise InvalidReference("invalid docker reference: repository name must have at least one component")
        if _REFERENCE.fullmatch(text.lower()) is not None:
            raise InvalidReference(f"invalid docker reference {text[:200]!r}: repository name must be lowercase")
        raise InvalidReference(f"invalid docker reference format {text[:200]!r}")
    name, tag, digest = m.group(1), m.group(2), m.group(3)
    if len(name) > _NAME_MAX:
        raise InvalidReference(f"docker reference name is longer than {_NAME_MAX} characters")
    nm = _ANCHORED_NAME.fullmatch(name)
    assert nm is not None
    domain, path = nm.group(1) or "", nm.group(2)
    if digest is not None:
        _check_digest(digest)
    return DockerReference(domain, path, tag, digest)


def parse_normalized(text: str) -> DockerReference:
    """reference.ParseNormalizedNamed as in containers/image; raises InvalidReference."""
    if not isinstance(text, str):
        raise InvalidReference("docker reference must be a string")
    if _IDENTIFIER.fullmatch(text):
        raise InvalidReference(f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings")
    i = text.find("/")
    if i == -1 or (not any(c in text[:i] for c in ".:") and text[:i] != "localhost"):
        domain, remainder = _DEFAULT_DOMAIN, text
    else:
        domain, remainder = text[:i], text[i + 1 :]
    if domain == _LEGACY_DOMAIN:
        domain = _DEFAULT_DOMAIN
    if domain == _DEFAULT_DOMAIN and "/" not in remainder:
        remainder = "library/" + remainder
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        raise InvalidReference(f"invalid docker reference {text[:200]!r}: repository name must be lowercase")
    return parse_named(domain + "/" + remainder)


def is_remap_prefix(text: str) -> bool:
    """A valid ``prefix`` / ``signedPrefix`` of a remapIdentity rule: a host[:port], or a name that starts with
    one (no tag, no digest), as containers/image's validateIdentityRemappingPrefix (which, like it, lets
    ``shortname`` through)."""
    return bool(_DOMAIN_ONLY.fullmatch(text) or (_NAME_ONLY.fullmatch(text) and _DOMAIN_PREFIX.match(text)))
