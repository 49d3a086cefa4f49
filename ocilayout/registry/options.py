"""How ``docker://`` references are reached: TLS verification and credentials, per side of a copy.

This module is light (no network code): the CLI builds :class:`RegistryOptions` from skopeo's flags and
installs them with :func:`use_options` around the library call; the registry transport reads them when it
opens a reference (:func:`options_for`). Library callers may instead build a
``RegistrySource``/``RegistryDestination`` with options of their own and hand it to ``copy``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal

from ..errors import InvalidArgument

__all__ = ["RegistryOptions", "options_for", "parse_bool", "use_options"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryOptions:
    """``tls_verify``: None (default: verified HTTPS only), True, or False (HTTPS unverified, then plain
    HTTP, as skopeo's ``--tls-verify=false``). ``creds``: ``USER[:PASSWORD]`` (never printed).
    ``authfile``: an auth.json to read instead of the default search path. ``cert_dir``: a certs.d-style
    directory (``*.crt`` CAs, ``*.cert``/``*.key`` client pairs) used instead of the per-host search path.
    ``registries_conf``: a registries.conf read instead of ``$CONTAINERS_REGISTRIES_CONF`` / the system and
    user files (:mod:`ocilayout.registry.config`)."""

    tls_verify: bool | None = None
    creds: str | None = None
    authfile: str | None = None
    #: Bytes per PATCH when a blob is uploaded in chunks.
    chunk_size: int = 64 << 20
    #: ``--cert-dir``: a certs.d-style directory of CA (``*.crt``) and client (``*.cert``/``*.key``) files.
    cert_dir: str | None = None
    registries_conf: str | None = None

    def __repr__(self) -> str:  # credentials never appear in a repr, a log or a traceback
        return (f"RegistryOptions(tls_verify={self.tls_verify!r}, creds={'<set>' if self.creds else None}, "
                f"authfile={self.authfile!r}, cert_dir={self.cert_dir!r}, registries_conf={self.registries_conf!r})")


_DEFAULT = RegistryOptions()
_SOURCE: ContextVar[RegistryOptions] = ContextVar("ocilayout_registry_source", default=_DEFAULT)
_DEST: ContextVar[RegistryOptions] = ContextVar("ocilayout_registry_dest", default=_DEFAULT)


def options_for(side: Literal["source", "destination"]) -> RegistryOptions:
    """The options in force for opening a source or a destination reference."""
    return (_SOURCE if side == "source" else _DEST).get()


@contextlib.contextmanager
def use_options(source: RegistryOptions | None = None, destination: RegistryOptions | None = None
                ) -> Iterator[None]:
    """Install options for references opened inside the ``with`` block (this thread/context only)."""
    tokens = []
    if source is not None:
        tokens.append((_SOURCE, _SOURCE.set(source)))
    if destination is not None:
        tokens.append((_DEST, _DEST.set(destination)))
    try:
        yield
    finally:
        for var, tok in reversed(tokens):
            var.reset(tok)


def parse_bool(text: str | None, flag: str) -> bool | None:
    """``--tls-verify`` values as Go's strconv.ParseBool reads them; None stays None; raises InvalidArgument."""
    if text is None:
        return None
    low = text.lower()
    if low in ("1", "t", "true"):
        return True
    if low in ("0", "f", "false"):
        return False
    raise InvalidArgument(f"{flag}: {text!r} is not a boolean (true or false)")
