"""Credentials for a registry and the WWW-Authenticate challenge they answer.

Where credentials come from, first match wins (containers/image's order):

1. ``--creds USER[:PASSWORD]`` (:attr:`RegistryOptions.creds`);
2. the auth files and credential helpers of :mod:`.credentials` (``--authfile``/``$REGISTRY_AUTH_FILE``
   alone when given; else auth.json, Docker's config.json, ``~/.dockercfg``; ``credHelpers``/``credsStore``).

Credentials live in :class:`Credentials`, whose ``repr`` hides them; nothing here prints or logs them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidArgument
from .credentials import Credentials, auth_files, find
from .options import RegistryOptions

__all__ = ["Challenge", "Credentials", "auth_file_paths", "find_credentials", "parse_challenges", "parse_creds"]


def parse_creds(text: str) -> Credentials:
    """``USER[:PASSWORD]`` as skopeo's --creds takes it; raises InvalidArgument (never echoing the text)."""
    user, sep, password = text.partition(":")
    if not user:
        raise InvalidArgument("--creds: the user name is empty (want USER[:PASSWORD])")
    if not sep:
        raise InvalidArgument("--creds: no password given (want USER:PASSWORD; it is asked for only on a terminal)")
    return Credentials(user, password)


def auth_file_paths(options: RegistryOptions) -> list[Path]:
    """The auth files read, in order."""
    return [f.path for f in auth_files(options)]


def find_credentials(options: RegistryOptions, registry: str, repository: str) -> Credentials | None:
    """Credentials for ``registry``/``repository`` (``registry`` as users write it: ``docker.io``,
    ``host:port``), or None for anonymous access. Raises InvalidArgument, RegistryError (unreadable file,
    failing credential helper)."""
    found = find(options, f"{registry}/{repository}" if repository else registry)
    return found[0] if found is not None else None


@dataclass(frozen=True, slots=True)
class Challenge:
    """One WWW-Authenticate challenge: its scheme (lower case) and parameters."""

    scheme: str
    params: dict[str, str]


_PARAM = r'\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?'


def parse_challenges(header: str) -> list[Challenge]:
    """Parse ``Bearer realm="...",service="...",scope="..."`` / ``Basic realm="..."`` (several may be given)."""
    out: list[Challenge] = []
    pos = 0
    while pos < len(header):
        m = re.compile(r"\s*,?\s*([A-Za-z][A-Za-z0-9_-]*)(?:\s+|$)").match(header, pos)
        if m is None:
            break
        scheme = m.group(1).lower()
        pos = m.end()
        params: dict[str, str] = {}
        while True:
            p = re.compile(_PARAM).match(header, pos)
            if p is None or not p.group(0).strip():
                break
            value = p.group(2) if p.group(2) is not None else (p.group(3) or "")
            params[p.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
            pos = p.end()
        out.append(Challenge(scheme, params))
    return out
