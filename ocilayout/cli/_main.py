"""The command line's one error boundary (:func:`main`) and its console script (:func:`run`).

Exit codes: an :class:`~ocilayout.errors.OcilayoutError` gives its ``exit_code`` (1-8); a usage error 2; an
OS error 74 (:data:`EXIT_OS_ERROR`; a missing file 3, like NotFound); a closed output pipe 141 (quietly, as a
command killed by SIGPIPE shows in a shell); Ctrl-C 130; anything else is a bug: ``internal error``, 70.
Every message is one escaped line on stderr; tracebacks only with ``--debug`` or ``OCILAYOUT_DEBUG=1``.

typer is imported only when the command needs it: a plain ``copy`` is parsed by :mod:`._fast` (typer and the
click command it builds cost ~35 ms of a start-up that is otherwise ~50 ms); everything else, and ``copy``
with --help or anything the fast parser does not know, goes to the typer app in :mod:`._app`.
"""

from __future__ import annotations

import errno
import os
import sys

from ..errors import OcilayoutError
from . import _display

#: sysexits.h EX_IOERR: the operating system refused an operation (permission, full disk, read-only, ...).
EXIT_OS_ERROR = 74
#: An OS error that says a file is missing exits like :class:`~ocilayout.errors.NotFound`.
EXIT_NOT_FOUND = 3
#: What a shell shows for a command killed by SIGPIPE (128 + 13): the reader of our output went away.
EXIT_OUTPUT_CLOSED = 141
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130

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
        from ._fast import fast_command

        command = fast_command(args)
        if command is not None:
            rc = command()
        else:
            from ._app import command_app

            rc = command_app(args)(args=args, prog_name="ocilayout", standalone_mode=False)
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
    except KeyboardInterrupt:
        _display.error_line("interrupted")
        return EXIT_INTERRUPTED
    except Exception as err:  # typer's Exit and Abort, click usage errors, OS errors and anything unexpected
        typer = sys.modules.get("typer")  # only typer's own path can raise its exceptions
        if typer is not None and isinstance(err, typer.Exit):
            exit_code: int = err.exit_code
            return exit_code
        if typer is not None and isinstance(err, typer.Abort):
            _display.error_line("aborted")
            return 1
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
