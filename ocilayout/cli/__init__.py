"""The ``ocilayout`` command line: a thin typer shell over the library.

Each submodule registers its commands on :data:`app`; :func:`main` is the one error boundary.
"""

from __future__ import annotations

# Command modules register themselves on import.
from . import images as _images  # noqa: F401
from . import maintenance as _maintenance  # noqa: F401
from . import sign as _sign  # noqa: F401
from ._app import app, main

__all__ = ["app", "main"]
