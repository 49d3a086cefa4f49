"""skopeo's registry flags (``--tls-verify``, ``--creds``, ``--authfile``, ``--cert-dir``) as
:class:`~ocilayout.registry.options.RegistryOptions`, shared by every command that may open ``docker://``.

Light: nothing of the registry code is imported unless a flag is given.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from ..registry.options import RegistryOptions

__all__ = [
    "AUTHFILE",
    "AUTHFILE_HELP",
    "CERT_DIR",
    "CERT_DIR_HELP",
    "CONF_HELP",
    "CREDS",
    "CREDS_HELP",
    "REGISTRIES_CONF",
    "TLS_HELP",
    "TLS_VERIFY",
    "registry_options",
    "using",
]

TLS_HELP = "Require HTTPS with verified certificates for docker:// (default true; false also allows plain HTTP)."
CREDS_HELP = "USER:PASSWORD for the docker:// registry (never printed)."
AUTHFILE_HELP = "auth.json to read registry credentials from (default: $REGISTRY_AUTH_FILE, then the usual files)."
CERT_DIR_HELP = "Directory of *.crt CAs and *.cert/*.key client certificates for docker:// (default: certs.d)."
CONF_HELP = "registries.conf to use (default: $CONTAINERS_REGISTRIES_CONF, then the user or system file)."

# The option declarations every single-image command shares (copy and sync have --src-/--dest- forms).
TLS_VERIFY = typer.Option(None, "--tls-verify", metavar="BOOL", help=TLS_HELP)
CREDS = typer.Option(None, "--creds", metavar="USER:PASSWORD", help=CREDS_HELP)
AUTHFILE = typer.Option(None, "--authfile", metavar="FILE", help=AUTHFILE_HELP)
CERT_DIR = typer.Option(None, "--cert-dir", metavar="DIR", help=CERT_DIR_HELP)
REGISTRIES_CONF = typer.Option(None, "--registries-conf", metavar="FILE", help=CONF_HELP)
# ... and the two sides of copy and sync.
SRC_AUTHFILE = typer.Option(None, "--src-authfile", metavar="FILE", help="--authfile for the source only.")
DEST_AUTHFILE = typer.Option(None, "--dest-authfile", metavar="FILE", help="--authfile for the destination only.")
SRC_CREDS = typer.Option(None, "--src-creds", metavar="USER:PASSWORD", help=CREDS_HELP)
DEST_CREDS = typer.Option(None, "--dest-creds", metavar="USER:PASSWORD", help=CREDS_HELP)
SRC_TLS_VERIFY = typer.Option(None, "--src-tls-verify", metavar="BOOL", help=TLS_HELP)
DEST_TLS_VERIFY = typer.Option(None, "--dest-tls-verify", metavar="BOOL", help=TLS_HELP)
SRC_CERT_DIR = typer.Option(None, "--src-cert-dir", metavar="DIR", help=CERT_DIR_HELP)
DEST_CERT_DIR = typer.Option(None, "--dest-cert-dir", metavar="DIR", help=CERT_DIR_HELP)


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
