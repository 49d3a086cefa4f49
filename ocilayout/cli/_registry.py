"""skopeo's registry flags (``--tls-verify``, ``--creds``, ``--authfile``, ``--cert-dir``) as
:class:`~ocilayout.registry.options.RegistryOptions`, shared by every command that may open ``docker://``.

Light: nothing of the registry code is imported unless a flag is given.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..registry.options import RegistryOptions

__all__ = ["registry_options", "using"]

def registry_options(tls_verify: str | None, creds: str | None, authfile: str | None, cert_dir: str | None = None,
                     flag: str = "--tls-verify", *, registries_conf: str | None = None) -> RegistryOptions | None:
    """The flags as options for docker:// references (None when none is given). Raises InvalidArgument for a
    ``--tls-verify`` value that is not a boolean."""
    if tls_verify is None and creds is None and authfile is None and cert_dir is None and registries_conf is None:
        return None
    from ..registry.options import RegistryOptions, parse_bool

    verify = parse_bool(tls_verify, flag)
    return RegistryOptions(tls_verify=verify, creds=_with_password(creds), authfile=authfile, cert_dir=cert_dir,
                           registries_conf=registries_conf)


def _with_password(creds: str | None) -> str | None:
    """``--creds USER`` without ``:PASSWORD`` asks for the password on a terminal (no echo), as skopeo does;
    without a terminal it is left as given (the registry code then refuses it, exit 2)."""
    import sys

    if creds is None or ":" in creds or not creds or sys.stdin is None or not sys.stdin.isatty():
        return creds
    import getpass

    return f"{creds}:{getpass.getpass(f'Password for {creds}: ')}"


def using(source: RegistryOptions | None = None, destination: RegistryOptions | None = None
          ) -> contextlib.AbstractContextManager[None]:
    """Install the options for the references a command opens (a no-op when both are None)."""
    if source is None and destination is None:
        return contextlib.nullcontext()
    from ..registry.options import use_options

    return use_options(source, destination)
