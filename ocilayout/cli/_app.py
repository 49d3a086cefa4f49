"""The typer app and the CLI's single error boundary."""

from __future__ import annotations

import os
import sys
from typing import Any

import typer

from ..errors import OcilayoutError

app = typer.Typer(
    name="ocilayout",
    help="Offline OCI image toolkit: copy, inspect, check and sign oci: and oci-archive: images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_state: dict[str, Any] = {"debug": False}


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
) -> None:
    _state["debug"] = debug or os.environ.get("OCILAYOUT_DEBUG") == "1"


def debug_enabled() -> bool:
    return bool(_state["debug"])


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one error line to stderr and return an Exit to raise."""
    typer.echo(f"ocilayout: error: {message}", err=True)
    return typer.Exit(code)


def _one_line_text(text: str) -> str:
    return " ".join(text.split())


def _one_line(err: BaseException) -> str:
    return _one_line_text(str(err) or type(err).__name__)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code. Library errors become one line on stderr, no traceback."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:]) or os.environ.get("OCILAYOUT_DEBUG") == "1"
    try:
        rc = app(args=argv, prog_name="ocilayout", standalone_mode=False)
    except OcilayoutError as err:
        if debug:
            raise
        print(f"ocilayout: error: {_one_line(err)}", file=sys.stderr)
        return err.exit_code
    except typer.Exit as ex:
        return ex.exit_code
    except KeyboardInterrupt:
        print("ocilayout: interrupted", file=sys.stderr)
        return 130
    except typer.Abort:
        print("ocilayout: aborted", file=sys.stderr)
        return 1
    except Exception as err:  # click usage errors and anything unexpected
        # typer may vendor click (typer._click): recognise its usage errors by shape, not by import.
        if hasattr(err, "format_message") and isinstance(getattr(err, "exit_code", None), int):
            print(f"ocilayout: error: {_one_line_text(err.format_message())} (see 'ocilayout --help')",
                  file=sys.stderr)
            return err.exit_code
        if debug:
            raise
        if isinstance(err, OSError):
            print(f"ocilayout: error: {_one_line(err)}", file=sys.stderr)
            return 1
        print(f"ocilayout: internal error: {type(err).__name__}: {_one_line(err)} (run with --debug)",
              file=sys.stderr)
        return 70
    return rc if isinstance(rc, int) else 0
