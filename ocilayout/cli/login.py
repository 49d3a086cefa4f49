"""login and logout, as skopeo's (c/common's pkg/auth): thin, the work is in :mod:`ocilayout.registry.login`.

The password comes from ``-p``, ``--password-stdin`` (every line, newlines dropped, as c/common reads it) or a
no-echo terminal prompt; it is never printed.
"""

from __future__ import annotations

import sys

import typer

from . import _options as _o
from ._app import app, fail
from ._display import echo

_AUTHFILE = ("auth.json to edit (default: $REGISTRY_AUTH_FILE, else $DOCKER_CONFIG/config.json, else "
             "${XDG_RUNTIME_DIR}/containers/auth.json).")
_COMPAT = "Docker config.json to write in Docker's own format (instead of --authfile)."


def _stdin_password() -> str:
    """Every line of stdin joined without its line ends (bufio.Scanner's lines, as c/common)."""
    data = sys.stdin.read() if sys.stdin is not None else ""
    return "".join(line[:-1] if line.endswith("\r") else line for line in data.split("\n"))


def _ask(prompt: str, secret: bool) -> str:
    if secret:
        import getpass

        return getpass.getpass(prompt)
    sys.stdout.write(prompt)
    sys.stdout.flush()
    line = sys.stdin.readline()
    if not line:
        raise fail("no user name given (end of input)")
    return line


def _terminal() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


@app.command()
def login(
    registry: str = typer.Argument(..., metavar="REGISTRY", help="HOST[:PORT] or HOST[:PORT]/REPOSITORY"),
    username: str | None = typer.Option(None, "--username", "-u", metavar="USER",
                                        help="User name (asked for on a terminal)."),
    password: str | None = typer.Option(None, "--password", "-p", metavar="PASSWORD",
                                        help="Password (asked for on a terminal; other users may see it in the "
                                        "process list: prefer --password-stdin)."),
    password_stdin: bool = typer.Option(False, "--password-stdin",
                                        help="Read the password from stdin (needs --username)."),
    get_login: bool = typer.Option(False, "--get-login", help="Print the user name recorded for REGISTRY."),
    authfile: str | None = typer.Option(None, "--authfile", metavar="FILE", help=_AUTHFILE),
    compat_auth_file: str | None = typer.Option(None, "--compat-auth-file", metavar="FILE", help=_COMPAT),
    tls_verify: str | None = _o.TLS_VERIFY,
    cert_dir: str | None = _o.CERT_DIR,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Say where the credentials were written."),
) -> None:
    """Check credentials with a registry, then record them in auth.json (or its credential helper)."""
    from ..registry.credentials import login_key, write_target
    from ..registry.login import get_login as recorded_user
    from ..registry.login import login as do_login
    from ..registry.options import RegistryOptions, parse_bool

    key, host = login_key(registry)
    target = write_target(authfile, compat_auth_file)
    if get_login:
        echo(recorded_user(target, key))
        return
    if password_stdin:
        if password is not None:
            raise fail("can't specify both --password-stdin and --password")
        if not username:
            raise fail("must provide --username with --password-stdin")
        password = _stdin_password()
    options = RegistryOptions(tls_verify=parse_bool(tls_verify, "--tls-verify"), cert_dir=cert_dir)
    do_login(key, host, target, options, username=username, password=password,
             ask=_ask if _terminal() and not password_stdin else None, say=echo, verbose=verbose)


@app.command()
def logout(
    registry: str | None = typer.Argument(None, metavar="REGISTRY", help="HOST[:PORT] or HOST[:PORT]/REPOSITORY"),
    all_: bool = typer.Option(False, "--all", "-a", help="Remove the credentials of every registry."),
    authfile: str | None = typer.Option(None, "--authfile", metavar="FILE", help=_AUTHFILE),
    compat_auth_file: str | None = typer.Option(None, "--compat-auth-file", metavar="FILE", help=_COMPAT),
    tls_verify: str | None = typer.Option(None, "--tls-verify", metavar="BOOL",
                                         help="Accepted as skopeo accepts it; logout contacts no registry."),
) -> None:
    """Remove recorded credentials for a registry (or, with --all, for every registry)."""
    from pathlib import Path

    from ..errors import NotFound
    from ..registry.credentials import login_key, write_target
    from ..registry.login import logout as do_logout
    from ..registry.login import logout_all
    from ..registry.options import parse_bool

    parse_bool(tls_verify, "--tls-verify")  # accepted as skopeo does; logout never contacts the registry
    for flag, path in (("--authfile", authfile), ("--compat-auth-file", compat_auth_file)):
        if path is not None and not Path(path).exists():
            raise NotFound(f"credential file is not accessible: {flag} {path} does not exist")
    target = write_target(authfile, compat_auth_file)
    if all_:
        if registry is not None:
            raise fail("--all takes no arguments")
        logout_all(target)
        echo("Removed login credentials for all registries")
        return
    if registry is None:
        raise fail("please provide a registry to log out from")
    key, _host = login_key(registry)
    do_logout(key, target)
    echo(f"Removed login credentials for {key}")
