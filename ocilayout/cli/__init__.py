"""The ``ocilayout`` command line: a thin typer shell over the library.

Each command module registers its commands on the typer app in :mod:`._app` when it is imported;
:func:`main` (the one error boundary, :mod:`._main`) imports only the module of the command it runs, and
runs a plain ``copy`` or ``sync`` without typer (:mod:`._fast`). ``ocilayout.cli.app`` is the app with every
command registered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._main import main, run

if TYPE_CHECKING:
    import typer

    app: typer.Typer

__all__ = ["app", "main", "run"]


def __getattr__(name: str) -> object:
    if name == "app":
        from ._app import full_app

        return full_app()
    raise AttributeError(f"module 'ocilayout.cli' has no attribute {name!r}")
