"""The ``ocilayout`` command line: a thin typer shell over the library.

Each submodule registers its commands on :data:`app`; :func:`main` is the one error boundary.
"""

from __future__ import annotations

from ._app import app, main

# Command modules register themselves on import.
from . import images as _images  # noqa: E402,F401
from . import sign as _sign  # noqa: E402,F401

__all__ = ["app", "main"]
