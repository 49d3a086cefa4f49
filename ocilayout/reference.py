"""Image references in skopeo's ``transport:rest`` grammar, as one frozen value whose string round-trips.

Transports: ``oci:PATH[:REF|@DIGEST]``, ``oci-archive:FILE[:REF|@DIGEST]``, ``dir:PATH``,
``docker-archive:FILE[:NAME:TAG|:@N]`` (``:@N``, also ``@N``: the N-th image of the archive's ``manifest.json``,
from 0, as skopeo spells it) and
``docker://NAME[:TAG|@DIGEST]``.

Paths containing ``:`` are a known skopeo gap (it splits at the first colon). Here a path with colons
works whenever it exists: the longest existing prefix before a ``:`` is the path, so ``oci:/srv/a:b:tag``
reads ``/srv/a:b`` tag ``tag`` when that directory exists. A new path with a colon can be written as
``oci:[/srv/a:b]:tag`` (brackets quote the path).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from .digest import Digest
from .errors import InvalidReference

__all__ = ["TRANSPORTS", "ImageReference", "check_ref_name", "parse_reference"]

TRANSPORTS = ("oci", "oci-archive", "dir", "docker-archive", "docker")

# Patterns are strings, compiled (and cached) by ``re`` on first use: compiling them all at import would cost
# every command about 1 ms, most of it for the docker patterns few commands use.
# OCI image-spec ref.name grammar (annotations.md), which also admits full references like
# "docker.io/library/foo:1.0" as buildkit writes them.
_REF_NAME = r"[A-Za-z0-9_](?:[A-Za-z0-9._:/@+-]*[A-Za-z0-9_])?"
_DIGEST_SUFFIX = r"@([a-z0-9]+:[A-Za-z0-9]+)$"


@dataclass(frozen=True, slots=True)
class ImageReference:
    """A parsed image reference. ``str()`` gives back a string that parses to an equal value."""

    transport: str
    path: str
    ref: str | None = None
    digest: Digest | None = None
    #: ``docker-archive:FILE@N``: the N-th image in the archive (from 0).
    index: int | None = None

    def __str__(self) -> str:
        if self.transport == "docker":
            s = f"docker://{self.path}"
            if self.ref:
                s += f":{self.ref}"
            if self.digest:
                s += f"@{self.digest}"
            return s
        path = f"[{self.path}]" if ":" in self.path or self.path.startswith("[") else self.path
        s = f"{self.transport}:{path}"
        if self.digest is not None:
            return f"{s}@{self.digest}"
        if self.index is not None:
            return f"{s}:@{self.index}"
        if self.ref is not None:
            s += f":{self.ref}"
        return s


def check_ref_name(ref: str, text: str) -> str:
    """``ref`` when it is a valid OCI ref name; raises InvalidReference naming ``text`` otherwise."""
    if len(ref) > 512 or not re.fullmatch(_REF_NAME, ref):
        raise InvalidReference(f"invalid reference name {ref!r} in {text!r}")
    return ref


def _split_path(rest: str, text: str) -> tuple[str, str | None]:
    """Split ``PATH[:REF]`` where PATH may hold colons (see the module docstring)."""
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            raise InvalidReference(f"unterminated '[' in {text!r}")
        path, tail = rest[1:end], rest[end + 1 :]
        if tail and not tail.startswith(":"):
            raise InvalidReference(f"expected ':' after ']' in {text!r}")
        return path, (tail[1:] or None) if tail else None
    if ":" not in rest or os.path.exists(rest):
        return rest, None
    # The longest existing prefix ending before a ':' is the path.
    positions = [i for i, c in enumerate(rest) if c == ":"]
    for i in reversed(positions):
        if os.path.exists(rest[:i]):
            return rest[:i], rest[i + 1 :] or None
    # Nothing exists yet: skopeo's rule, split at the first colon.
    i = positions[0]
    return rest[:i], rest[i + 1 :] or None


def parse_reference(text: str) -> ImageReference:
    """Parse ``transport:rest``; raises InvalidReference with the reason."""
    if not isinstance(text, str) or not text:
        raise InvalidReference("empty image reference")
    transport, sep, rest = text.partition(":")
    if not sep or transport not in TRANSPORTS:
        known = ", ".join(f"{t}:" for t in TRANSPORTS)
        raise InvalidReference(f"invalid image reference {text!r}: want one of {known}")
    if transport == "docker":
        return _parse_docker(rest, text)
    if not rest:
        raise InvalidReference(f"invalid image reference {text!r}: missing path")
    digest = None
    if transport == "docker-archive":
        n = re.search(r":?@([0-9]+)$", rest)  # skopeo's FILE:@N, and FILE@N
        if n and not os.path.exists(rest) and not (rest.startswith("[") and rest.rfind("]") > n.start()):
            head = rest[: n.start()]
            path = head[1:-1] if head.startswith("[") and head.endswith("]") else head
            if not path:
                raise InvalidReference(f"invalid image reference {text!r}: missing path")
            if len(n.group(1)) > 9:
                raise InvalidReference(f"invalid image index in {text!r}")
            return ImageReference(transport, path, None, None, int(n.group(1)))
    m = re.search(_DIGEST_SUFFIX, rest)
    if m and not (rest.startswith("[") and rest.rfind("]") > m.start()):
        try:
            digest = Digest.parse(m.group(1))
        except Exception as err:
            raise InvalidReference(f"invalid digest in {text!r}: {err}") from err
        rest = rest[: m.start()]
        path = rest[1:-1] if rest.startswith("[") and rest.endswith("]") else rest
        if not path:
            raise InvalidReference(f"invalid image reference {text!r}: missing path")
        return ImageReference(transport, path, None, digest)
    path, ref = _split_path(rest, text)
    if not path:
        raise InvalidReference(f"invalid image reference {text!r}: missing path")
    if transport == "dir" and ref is not None:
        # dir: takes a bare path; a colon belongs to it.
        return ImageReference(transport, rest, None, None)
    if ref is not None:
        check_ref_name(ref, text)
    return ImageReference(transport, path, ref, None)


_DOCKER_NAME = (
    r"(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
)
_DOCKER_TAG = r"[\w][\w.-]{0,127}"


def _parse_docker(rest: str, text: str) -> ImageReference:
    if not rest.startswith("//"):
        raise InvalidReference(f"invalid docker reference {text!r}: want docker://NAME[:TAG|@DIGEST]")
    rest = rest[2:]
    digest = None
    if "@" in rest:
        rest, _, dig = rest.partition("@")
        try:
            digest = Digest.parse(dig)
        except Exception as err:
            raise InvalidReference(f"invalid digest in {text!r}: {err}") from err
    name, tag = rest, None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        name, tag = rest[:colon], rest[colon + 1 :]
        if not re.fullmatch(_DOCKER_TAG, tag):
            raise InvalidReference(f"invalid tag {tag!r} in {text!r}")
    if not re.fullmatch(_DOCKER_NAME, name):
        raise InvalidReference(f"invalid repository name {name!r} in {text!r}")
    return ImageReference("docker", name, tag, digest)
