"""``login`` and ``logout`` as podman/skopeo do them (c/common's pkg/auth): credentials are checked against
the registry before they are recorded (:func:`check`), then written with :mod:`.credentials`.

The CLI supplies how to ask (a terminal prompt) and how to tell (stdout); nothing here prints a secret.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ..errors import InvalidArgument, NotFound, RegistryError
from . import credentials as store
from .credentials import AuthFile, Credentials
from .options import RegistryOptions

__all__ = ["check", "get_login", "login", "logout", "logout_all"]

#: ``ask(prompt, secret)``: a line the user typed (``secret``: not echoed).
Ask = Callable[[str, bool], str]
#: ``say(line)``: one line of output for the user.
Say = Callable[[str], None]


def check(registry: str, creds: Credentials, options: RegistryOptions) -> None:
    """``GET /v2/`` with ``creds`` through the registry's challenge (Basic, or a Bearer token asked for with no
    scope), as containers/image's CheckAuth. Raises RegistryError: ``invalid username/password`` when the
    registry or its token server refuses them; otherwise the registry's answer (never the credentials)."""
    from ..transports.registry import split_name
    from .client import Client

    if not creds.username or ":" in creds.username:
        raise InvalidArgument("the user name must be non-empty and hold no ':'")
    name, api, _ = split_name(f"{registry}/x")
    opts = dataclasses.replace(options, creds=f"{creds.username}:{creds.password}", authfile=None)
    client = Client(name, api, "", opts)
    try:
        resp = client.request("GET", "")
        if resp.status != 200:
            raise client.fail(resp, f"logging into {registry}")
        resp.release_conn()
    except RegistryError as err:
        if "authentication refused" in str(err) or "authentication required" in str(err):
            raise RegistryError(f"logging into {registry}: invalid username/password") from None
        raise
    finally:
        client.close()


def _existing(target: AuthFile, key: str) -> Credentials | None:
    """What a ``login`` to ``key`` finds recorded: only in ``target`` when it was named (a flag or the
    environment), else along the whole search path (as c/common's Login)."""
    if target.explicit:
        if not target.path.exists():
            return None
        found = store.find(RegistryOptions(authfile=str(target.path)), key)
    else:
        found = store.find(RegistryOptions(), key)
    return found[0] if found is not None else None


def get_login(target: AuthFile, key: str) -> str:
    """The user name recorded for ``key`` (``--get-login``). Raises NotFound when there is none."""
    creds = _existing(target, key)
    if creds is None or not creds.username:
        raise NotFound(f"not logged into {key}")
    return creds.username


def login(key: str, registry: str, target: AuthFile, options: RegistryOptions, *, username: str | None,
          password: str | None, ask: Ask | None, say: Say, verbose: bool = False) -> None:
    """Check credentials with the registry and record them in ``target`` for ``key``. With neither user
    nor password given, recorded credentials that still work are kept. Missing ones are asked for through
    ``ask`` (None: no terminal, an InvalidArgument). Raises InvalidArgument, RegistryError, OSError."""
    existing = _existing(target, key)
    if not username and not password and existing is not None and existing.password:
        say(f"Authenticating with existing credentials for {key}")
        try:
            check(registry, existing, options)
        except RegistryError:
            say("Existing credentials are invalid, please enter valid username and password")
        else:
            say(f"Existing credentials are valid. Already logged in to {registry}")
            return
    if not username:
        if ask is None:
            raise InvalidArgument("no --username given and no terminal to ask for it")
        default = existing.username if existing is not None else ""
        username = ask(f"Username ({default}): " if default else "Username: ", False).strip() or default
    if not password:
        if ask is None:
            raise InvalidArgument("no password given (use --password-stdin) and no terminal to ask for it")
        password = ask("Password: ", True)
    creds = Credentials(username.strip(), password)
    check(registry, creds, options)
    where = store.store(target, key, creds)
    if verbose:
        say(f"Used:  {where}")
    say("Login Succeeded!")


def logout(key: str, target: AuthFile) -> None:
    """Remove ``key``'s credentials from ``target`` (and its helper). Raises NotFound when there were none
    (saying where other credentials for it are, if some file holds them), RegistryError, OSError."""
    if store.remove(target, key):
        return
    elsewhere = store.find(RegistryOptions(), key) if not target.explicit else None
    hint = f" (credentials for it are in {elsewhere[1]}; remove them there)" if elsewhere and elsewhere[1] else ""
    raise NotFound(f"not logged into {key}{hint}")


def logout_all(target: AuthFile) -> None:
    """Remove every credential ``target`` holds (and those its ``credHelpers`` keep). Raises RegistryError,
    OSError."""
    store.remove_all(target)
