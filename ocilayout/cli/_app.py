"""The typer app and the CLI's single error boundary (:func:`main`).

Exit codes: an :class:`~ocilayout.errors.OcilayoutError` gives its ``exit_code`` (1-8); a usage error 2; an
OS error 74 (:data:`EXIT_OS_ERROR`; a missing file 3, like NotFound); a closed output pipe 141 (quietly, as a
command killed by SIGPIPE shows in a shell); Ctrl-C 130; anything else is a bug: ``internal error``, 70.
Every message is one escaped line on stderr; tracebacks only with ``--debug`` or ``OCILAYOUT_DEBUG=1``.
"""

from __future__ import annotations

import copy
import errno
import os
import sys

import typer

from ..errors import InvalidArgument, OcilayoutError
from . import _display

#: sysexits.h EX_IOERR: the operating system refused an operation (permission, full disk, read-only, ...).
EXIT_OS_ERROR = 74
#: An OS error that says a file is missing exits like :class:`~ocilayout.errors.NotFound`.
EXIT_NOT_FOUND = 3
#: What a shell shows for a command killed by SIGPIPE (128 + 13): the reader of our output went away.
EXIT_OUTPUT_CLOSED = 141
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130

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


#: errno -> the sentence shown for it (the file name follows).
_OS_ERRORS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOENT: "no such file or directory",
    errno.ENOTDIR: "not a directory",
    errno.EISDIR: "is a directory",
    errno.ELOOP: "too many levels of symbolic links, or a symbolic link where a file must be",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EEXIST: "file exists",
    errno.ENAMETOOLONG: "file name too long",
    errno.EMFILE: "too many open files",
    errno.ENFILE: "too many open files in the system",
    errno.EIO: "input/output error",
    errno.EBADF: "bad file descriptor",
    errno.EXDEV: "cross-device link",
    errno.ETXTBSY: "text file busy",
    errno.EFBIG: "file too large",
}


def describe_os_error(err: OSError) -> tuple[int, str]:
    """(exit code, one-line sentence) for an OS error: ``permission denied: /x/index.json``."""
    what = _OS_ERRORS.get(err.errno or 0) or (err.strerror or "").lower() or str(err) or type(err).__name__
    names = [os.fsdecode(f) for f in (err.filename, err.filename2) if f is not None]
    if names and err.errno is not None:
        what = f"{what}: {' -> '.join(names)}"
    return (EXIT_NOT_FOUND if err.errno == errno.ENOENT else EXIT_OS_ERROR), what


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _message(err: BaseException) -> str:
    """``str(err)`` and its notes (``add_note`` context) as one line."""
    text = str(err) or type(err).__name__
    notes = getattr(err, "__notes__", None)
    if notes:
        text += " (" + "; ".join(str(n) for n in notes) + ")"
    return text


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


def _command_app(args: list[str]) -> typer.Typer:
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


def _guard_std_fds() -> None:
    """Put /dev/null on descriptors 0-2 when they were closed at start, so no file we open lands there
    (and is then written as "stdout" by a child). ``sys.stdout`` stays None: writes still fail, as they must."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:  # not expected (the lowest free descriptor is handed out first)
                os.dup2(null, fd)
                os.close(null)


def _output_closed() -> int:
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        stream = getattr(stream, "wrapped", stream) if type(stream).__name__ == "PacifyFlushWrapper" else stream
        setattr(sys, name, stream)
        _display.silence(stream)
    return EXIT_OUTPUT_CLOSED


def _traceback() -> None:
    """``--debug``: the traceback of the error being handled, on stderr, before its one-line message."""
    import traceback

    traceback.print_exc(file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code. Every failure becomes one escaped line on stderr and its
    documented exit code; ``--debug`` (or ``OCILAYOUT_DEBUG=1``) prints the traceback before that line."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("OCILAYOUT_DEBUG") == "1"
    _guard_std_fds()
    try:
        rc = _command_app(args)(args=args, prog_name="ocilayout", standalone_mode=False)
    except (_display.OutputClosed, BrokenPipeError):  # BrokenPipeError: click's own output (--help)
        return _output_closed()
    except SystemExit:
        # click answers EPIPE while printing help with sys.exit(1), wrapping the std streams first.
        if type(sys.stdout).__name__ == "PacifyFlushWrapper":
            return _output_closed()
        raise
    except OcilayoutError as err:
        if debug:
            _traceback()
        _display.error_line(f"error: {_message(err)}")
        return err.exit_code
    except typer.Exit as ex:
        return ex.exit_code
    except KeyboardInterrupt:
        _display.error_line("interrupted")
        return EXIT_INTERRUPTED
    except typer.Abort:
        _display.error_line("aborted")
        return 1
    except Exception as err:  # click usage errors, OS errors and anything unexpected
        # typer may vendor click (typer._click): recognise its usage errors by shape, not by import.
        if hasattr(err, "format_message") and isinstance(getattr(err, "exit_code", None), int):
            if type(err).__name__ == "NoArgsIsHelpError":  # a bare "ocilayout": the help, on stderr, exit 2
                _display.help_to_stderr(err.format_message())
                help_code: int = err.exit_code  # type: ignore[attr-defined]  # checked just above
                return help_code
            _display.error_line(f"error: {_one_line(err.format_message())} (see 'ocilayout --help')")
            code: int = err.exit_code  # type: ignore[attr-defined]  # checked just above
            return code
        if debug:
            _traceback()
        if isinstance(err, OSError):
            code, text = describe_os_error(err)
            _display.error_line(f"error: {text}")
            return code
        _display.error_line(f"internal error: {type(err).__name__}: {_message(err)} (run with --debug)")
        return EXIT_INTERNAL
    return rc if isinstance(rc, int) else 0


def run() -> None:
    """The ``ocilayout`` console script: :func:`main`, then the exit without the interpreter's teardown.

    Everything a command opens is closed by then (files, temp directories and thread pools live in ``with``
    blocks), so what the teardown would do -- freeing every module's objects one by one, about 10% of the
    instructions of a short command such as ``inspect`` -- only delays the exit. stdout and stderr are
    flushed first; when that fails, or under coverage measurement (which writes its data at exit), the exit
    is the interpreter's ordinary one, as before.
    """
    code = main()
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except Exception:
        sys.exit(code)
    if "coverage" in sys.modules:
        sys.exit(code)
    os._exit(code)
