"""Everything the CLI prints goes through here: control characters from layout data never reach a terminal.

Ref names, platforms, file names, policy keys and error messages can hold any character a JSON string or a
file name can. Printed raw, ``\\x1b[...`` would drive the terminal and ``\\r`` or U+202E would hide or reorder
what is shown. :func:`escape` makes such text inert at print time; the library keeps its data and messages raw.

Writes that fail because the reader went away (``| head -c1``) raise :class:`OutputClosed`; the error
boundary turns that into a quiet exit 141, as a command killed by SIGPIPE shows in a shell. Other write
failures (stdout closed, ``> /dev/full``) raise :class:`OutputError`, an OS error naming the stream.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import sys
from typing import TextIO

__all__ = ["OutputClosed", "OutputError", "echo", "echo_json", "error_line", "escape", "escape_json", "silence",
           "write_bytes"]

#: What is never shown as text: C0 controls, DEL and C1 controls (category Cc), the bidirectional formatting
#: characters of Unicode TR9 (they reorder the rest of the line), the line and paragraph separators (Zl, Zp)
#: and lone surrogates (Cs: undecodable bytes of a file name, or ``"\\udXXX"`` escapes in JSON). In JSON text
#: the newline between lines is kept (a newline inside a string is always escaped by json.dumps).
_HIDDEN = "\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff"
_C0 = "\x00-\x1f"
_C0_BUT_NEWLINE = "\x00-\x09\x0b-\x1f"


@functools.cache
def _hidden(in_json: bool) -> re.Pattern[str]:
    """Compiled on first use (about 0.7 ms each): most output is printable text and needs no pattern."""
    return re.compile("[" + (_C0_BUT_NEWLINE if in_json else _C0) + _HIDDEN + "]")


class OutputClosed(Exception):
    """stdout or stderr is a pipe whose reader has gone (EPIPE). Not an error: the reader wanted no more."""


def _code(m: re.Match[str]) -> str:
    n = ord(m.group())
    if 0xDC80 <= n <= 0xDCFF:  # os.fsdecode's surrogateescape: show the undecodable byte itself
        return f"\\x{n - 0xDC00:02x}"
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"


def _json_code(m: re.Match[str]) -> str:
    return f"\\u{ord(m.group()):04x}"


def escape(text: str) -> str:
    """``text`` safe to print: C0/C1 controls, DEL, bidi overrides, line separators and lone surrogates become
    ``\\xNN`` / ``\\uNNNN``; everything else (printable Unicode, spaces, backslashes) stays as it is.

    For display only (not reversible: a literal backslash is not doubled); idempotent.
    """
    if text.isprintable():  # False for every character escaped here (and for more: the pattern decides)
        return text
    return _hidden(False).sub(_code, text)


def escape_json(text: str) -> str:
    """JSON text with the characters :func:`escape` hides written as ``\\uNNNN`` escapes: the same JSON value.

    Needed for ``json.dumps(..., ensure_ascii=False)`` output (which leaves DEL, C1, U+202E and lone surrogates
    raw); the default ``ensure_ascii=True`` output is already safe. Outside strings JSON text is ASCII, so
    every replacement falls inside a string.
    """
    if text.isascii() and "\x7f" not in text:  # json.dumps writes C0 controls as escapes, DEL it may not
        return text
    return _hidden(True).sub(_json_code, text)


class OutputError(OSError):
    """stdout or stderr cannot be written (closed descriptor, full disk, I/O error): an OS error naming it."""


def _name(stream: object) -> str:
    return "standard error" if stream is sys.stderr else "standard output"


def silence(stream: TextIO | None) -> None:
    """Point a failed std stream's descriptor at /dev/null, so the interpreter's final flush of what is still
    buffered does not fail again ("Exception ignored ... BrokenPipeError", exit 120). Only real descriptors:
    a stream without one (captured in-process) is left alone."""
    try:
        fd = stream.fileno() if stream is not None else -1
    except (OSError, ValueError, AttributeError):
        return
    if fd in (1, 2):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, fd)
        os.close(null)


def _failed(stream: TextIO | None, err: OSError) -> Exception:
    """The exception for a failed write to ``stream``, after silencing it."""
    silence(stream)
    if isinstance(err, BrokenPipeError) or err.errno == errno.EPIPE:
        return OutputClosed()
    return OutputError(err.errno, os.strerror(err.errno) if err.errno else str(err), _name(stream))


def echo(text: str = "", *, err: bool = False) -> None:
    """Print ``text`` as one line, escaped, to stdout (stderr with ``err``).

    Raises OutputClosed when the stream is a pipe nobody reads, OutputError when it cannot be written."""
    _write_line(escape(text), err)


def echo_json(text: str) -> None:
    """Print JSON text (one or more lines) to stdout with :func:`escape_json`; raises as :func:`echo`."""
    _write_line(escape_json(text), False)


def _write_line(line: str, err: bool) -> None:
    stream = sys.stderr if err else sys.stdout
    if stream is None:  # the descriptor was closed before we started
        raise OutputError(errno.EBADF, os.strerror(errno.EBADF), "standard error" if err else "standard output")
    line += "\n"
    if getattr(stream, "buffer", None) is None:  # a text-only stream (replaced sys.stdout): no short writes
        try:
            stream.write(line)
            stream.flush()
        except OSError as ex:
            raise _failed(stream, ex) from None
        return
    # A non-UTF-8 locale shows what it cannot encode as escapes.
    _write_all(stream, line.encode(stream.encoding or "utf-8", "backslashreplace"))


def write_bytes(data: bytes) -> None:
    """Write bytes to stdout unchanged (``inspect --raw``); raises as :func:`echo`."""
    if sys.stdout is None:
        raise OutputError(errno.EBADF, os.strerror(errno.EBADF), "standard output")
    _write_all(sys.stdout, data)


def _write_all(stream: TextIO, data: bytes) -> None:
    """Every byte of ``data``, or an exception. A buffered write into a pipe whose reader leaves mid-way returns
    a short count instead of raising (CPython); the next write then raises EPIPE."""
    try:
        stream.flush()  # anything written as text first keeps its place
        view = memoryview(data)
        while view:
            n = stream.buffer.write(view)
            if not n:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            view = view[n:]
        stream.buffer.flush()
    except OSError as ex:
        raise _failed(stream, ex) from None


def error_line(text: str) -> None:
    """Print ``ocilayout: <text>`` (escaped) on stderr, if there is a stderr to print on; never raises."""
    _to_stderr(f"ocilayout: {escape(text)}\n")


def help_to_stderr(text: str) -> None:
    """Our own help text (several lines, not escaped) on stderr, for a bare ``ocilayout``; never raises."""
    _to_stderr(text.rstrip("\n") + "\n")


def _to_stderr(line: str) -> None:
    stream = sys.stderr
    if stream is None:
        return
    try:
        enc = stream.encoding or "utf-8"
        stream.write(line.encode(enc, "backslashreplace").decode(enc))
        stream.flush()
    except (OSError, ValueError):  # a closed pipe or a closed file: nowhere left to say it
        pass
