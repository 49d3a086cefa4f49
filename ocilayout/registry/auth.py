"""Credentials for a registry and the WWW-Authenticate challenge they answer.

Where credentials come from, first match wins (containers/image's order, read-only here):

1. ``--creds USER[:PASSWORD]`` (:attr:`RegistryOptions.creds`);
2. ``--authfile FILE``, else ``$REGISTRY_AUTH_FILE`` -- only that file when given;
3. ``${XDG_RUNTIME_DIR}/containers/auth.json``, ``~/.config/containers/auth.json``, ``~/.docker/config.json``.

An auth file's ``auths`` keys are matched most specific first: ``host/ns/repo``, ``host/ns``, ``host``, and
the legacy ``https://host`` / ``https://host/v1/`` spellings (``https://index.docker.io/v1/`` for docker.io).
Credentials live in :class:`Credentials`, whose ``repr`` hides them; nothing here prints or logs them.
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InvalidArgument, RegistryError
from .options import RegistryOptions

__all__ = ["Challenge", "Credentials", "auth_file_paths", "find_credentials", "parse_challenges"]

MAX_AUTH_FILE = 1 << 20


@dataclass(frozen=True, slots=True)
class Credentials:
    """A user name and secret; ``repr`` shows neither."""

    username: str = field(repr=False)
    password: str = field(repr=False)

    def basic(self) -> str:
        """The ``Authorization: Basic`` value."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def __repr__(self) -> str:
        return "Credentials(<redacted>)"


def parse_creds(text: str) -> Credentials:
    """``USER[:PASSWORD]`` as skopeo's --creds takes it; raises InvalidArgument (never echoing the text)."""
    user, sep, password = text.partition(":")
    if not user:
        raise InvalidArgument("--creds: the user name is empty (want USER[:PASSWORD])")
    if not sep:
        raise InvalidArgument("--creds: no password given (want USER:PASSWORD; prompting is not supported)")
    return Credentials(user, password)


def auth_file_paths(options: RegistryOptions) -> list[Path]:
    """The auth files read, in order."""
    explicit = options.authfile or os.environ.get("REGISTRY_AUTH_FILE")
    if explicit:
        return [Path(explicit)]
    out = []
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        out.append(Path(runtime) / "containers" / "auth.json")
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    out.append(Path(config_home) / "containers" / "auth.json")
    out.append(Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json")
    return out


def _keys(registry: str, repository: str) -> list[str]:
    parts = repository.split("/")
    keys = [f"{registry}/{'/'.join(parts[:n])}" for n in range(len(parts), 0, -1)]
    keys += [registry, f"https://{registry}", f"http://{registry}", f"https://{registry}/v1/",
             f"https://{registry}/v2/"]
    if registry == "docker.io":
        keys += ["https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io"]
    return keys


def _read_auth_file(path: Path) -> dict[str, object] | None:
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_AUTH_FILE + 1)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as err:
        raise RegistryError(f"cannot read auth file {path}: {err.strerror}") from None
    if len(raw) > MAX_AUTH_FILE:
        raise RegistryError(f"auth file {path} is over {MAX_AUTH_FILE} bytes")
    try:
        doc = json.loads(raw)
    except ValueError:
        raise RegistryError(f"auth file {path} is not valid JSON") from None
    auths = doc.get("auths") if isinstance(doc, dict) else None
    return auths if isinstance(auths, dict) else {}


def _decode(entry: object, path: Path, key: str) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    token = entry.get("auth")
    if not isinstance(token, str) or not token:
        return None
    try:
        user, sep, password = base64.b64decode(token, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        raise RegistryError(f"auth file {path}: the entry for {key} is not base64 USER:PASSWORD") from None
    if not sep or not user:
        raise RegistryError(f"auth file {path}: the entry for {key} is not USER:PASSWORD")
    return Credentials(user, password)


def find_credentials(options: RegistryOptions, registry: str, repository: str) -> Credentials | None:
    """Credentials for ``registry``/``repository`` (``registry`` as users write it: ``docker.io``,
    ``host:port``), or None for anonymous access. Raises InvalidArgument, RegistryError (unreadable file)."""
    if options.creds is not None:
        return parse_creds(options.creds)
    keys = _keys(registry, repository)
    for path in auth_file_paths(options):
        auths = _read_auth_file(path)
        if auths is None:
            if options.authfile:
                raise RegistryError(f"--authfile {path} does not exist")
            continue
        for key in keys:
            if key in auths:
                creds = _decode(auths[key], path, key)
                if creds is not None:
                    return creds
    return None


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
