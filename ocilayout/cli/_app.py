"""The typer app: the root options and the table of which module declares which command.

The error boundary around it is :func:`ocilayout.cli._main.main`.
"""

from __future__ import annotations

import copy

import typer

from ..errors import InvalidArgument

app = typer.Typer(
    name="ocilayout",
    help="Offline OCI image toolkit: copy, inspect, check and sign oci: and oci-archive: images.",
    no_args_is_help=True,
    add_completion=False,
    # Help text is plain text, never rich markup: "[/variant]" in an option's help must print as it is.
    # (This also keeps rich from loading for --help.)
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors (or set OCILAYOUT_DEBUG=1)."),
) -> None:
    """Declares the global options; :func:`main` reads ``--debug`` itself, before typer runs."""


def fail(message: str) -> InvalidArgument:
    """An error to raise for arguments that do not fit together (exit 2 at the boundary)."""
    return InvalidArgument(message)


#: Command name -> the module (in this package) that defines it. tests/test_cli_help.py checks it against the
#: commands the modules register, so a new command that is missing here fails a test.
COMMAND_MODULES = {
    "copy": "images", "inspect": "images", "manifest-digest": "images", "list-tags": "images", "tag": "images",
    "delete": "images", "catalog": "images", "referrers": "referrers",
    "fsck": "maintenance", "gc": "maintenance", "images": "maintenance",
    "generate-sigstore-key": "sign", "standalone-sign": "sign", "standalone-verify": "sign", "sign": "sign",
    "verify": "sign",
    "login": "login", "logout": "login",
    "mutate": "edit",
    "index": "index", "attach": "index",
    "append": "layers", "flatten": "layers", "normalize": "layers",
    "sync": "sync",
}


def full_app() -> typer.Typer:
    """The app with every command registered (imports every command module)."""
    import importlib

    for module in sorted(set(COMMAND_MODULES.values())):
        importlib.import_module(f"{__package__}.{module}")
    return app


def command_app(args: list[str]) -> typer.Typer:
    """The app holding only the command ``args`` name, or the whole app when they name none.

    Start-up cost: only the named command's module is imported, and only its click command is built (typer
    builds one for every registered command before it parses anything: about 4 ms for all of ours). Help of
    the root and unknown commands (click's "No such command" with suggestions) use the whole app.
    """
    import importlib

    from typer.main import get_command_name

    name = next((a for a in args if not a.startswith("-")), None)
    if name is None or name not in COMMAND_MODULES or any(a in ("-h", "--help") for a in args[: args.index(name)]):
        return full_app()
    importlib.import_module(f"{__package__}.{COMMAND_MODULES[name]}")
    for info in app.registered_commands:
        if (info.name or get_command_name(info.callback.__name__ if info.callback else "")) == name:
            one = copy.copy(app)
            one.registered_commands, one.registered_groups = [info], []
            return one
    for group in app.registered_groups:  # a command group (``index create``): the group alone
        if group.name == name or (group.typer_instance is not None and group.typer_instance.info.name == name):
            one = copy.copy(app)
            one.registered_commands, one.registered_groups = [], [group]
            return one
    return full_app()


