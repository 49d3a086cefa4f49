"""Everything the CLI prints goes through here: control characters from layout data never reach a terminal.

Ref names, platforms, file names, policy keys and error messages can hold any character a JSON string or a
file name can. Printed raw, ``\\x1b[...`` would drive the terminal and ``\\r`` or U+202E would hide or reorder
what is shown. :func:`escape` makes such text inert at print time; the library keeps its data and messages raw.

Writes that fail because the reader went away (``| head -c1``) raise :class:`OutputClosed`; the error
boundary turns that into a quiet exit 141, as a command killed by SIGPIPE shows in a shell.
"""

from __future__ import annotations

import errno
import re
import sys

__all__ = ["OutputClosed", "echo", "echo_json", "error_line", "escape", "escape_json", "write_bytes"]

#: What is never shown as text: C0 controls, DEL and C1 controls (category Cc), the bidirectional formatting
#: characters of Unicode TR9 (they reorder the rest of the line), the line and paragraph separators (Zl, Zp)
#: and lone surrogates (Cs: undecodable bytes of a file name, or ``"\\udXXX"`` escapes in JSON).
_HIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff]")
#: The same, minus the newline that separates the lines of indented JSON (newlines in strings are escaped).
_HIDDEN_IN_JSON = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
                             "\u2028\u2029\ud800-\udfff]")


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
    return _HIDDEN.sub(_code, text)


def escape_json(text: str) -> str:
    """JSON text with the characters :func:`escape` hides written as ``\\uNNNN`` escapes: the same JSON value.

    Needed for ``json.dumps(..., ensure_ascii=False)`` output (which leaves DEL, C1, U+202E and lone surrogates
    raw); the default ``ensure_ascii=True`` output is already safe. Outside strings JSON text is ASCII, so
    every replacement falls inside a string.
    """
    return _HIDDEN_IN_JSON.sub(_json_code, text)


def _closed_pipe(err: OSError) -> bool:
    return isinstance(err, BrokenPipeError) or err.errno == errno.EPIPE


def echo(text: str = "", *, err: bool = False) -> None:
    """Print ``text`` as one line, escaped, to stdout (stderr with ``err``); raises OutputClosed on a closed pipe."""
    _write_line(escape(text), err)


def echo_json(text: str) -> None:
    """Print JSON text (one or more lines) to stdout with :func:`escape_json`; raises OutputClosed likewise."""
    _write_line(escape_json(text), False)


def _write_line(line: str, err: bool) -> None:
    stream = sys.stderr if err else sys.stdout
    if stream is None:  # the descriptor was closed before we started
        raise OSError(errno.EBADF, "standard error is closed" if err else "standard output is closed")
    line += "\n"
    try:
        try:
            stream.write(line)
        except UnicodeEncodeError:  # a non-UTF-8 locale: show what it cannot encode as escapes
            enc = stream.encoding or "ascii"
            stream.write(line.encode(enc, "backslashreplace").decode(enc))
        stream.flush()
    except OSError as ex:
        if _closed_pipe(ex):
            raise OutputClosed from None
        raise


def write_bytes(data: bytes) -> None:
    """Write bytes to stdout unchanged (``inspect --raw``); raises OutputClosed on a closed pipe."""
    if sys.stdout is None:
        raise OSError(errno.EBADF, "standard output is closed")
    try:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except OSError as ex:
        if _closed_pipe(ex):
            raise OutputClosed from None
        raise


def error_line(text: str) -> None:
    """Print ``ocilayout: <text>`` (escaped) on stderr, if there is a stderr to print on; never raises."""
    stream = sys.stderr
    if stream is None:
        return
    line = f"ocilayout: {escape(text)}\n"
    try:
        enc = stream.encoding or "utf-8"
        stream.write(line.encode(enc, "backslashreplace").decode(enc))
        stream.flush()
    except (OSError, ValueError):  # a closed pipe or a closed file: nowhere left to say it
        pass
