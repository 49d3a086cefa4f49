"""Every command's ``--help`` renders: the commands are discovered from the click tree, so a new one is covered."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import typer

from ocilayout.cli import app


def _command_paths(cmd=None, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:  # type: ignore[no-untyped-def]
    """The root and every command and subcommand of the CLI, as argument paths."""
    cmd = typer.main.get_command(app) if cmd is None else cmd
    yield path
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        yield from _command_paths(sub, (*path, name))


PATHS = list(_command_paths())


def test_the_tree_is_discovered() -> None:
    """The discovery itself works (else every test below would pass on nothing)."""
    names = {p[0] for p in PATHS if p}
    assert {"copy", "inspect", "fsck", "gc", "images", "sign", "verify", "standalone-verify"} <= names
    assert () in PATHS


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "ocilayout")
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_renders(cli, path: tuple[str, ...], flag: str) -> None:  # type: ignore[no-untyped-def]
    res = cli(*path, flag)
    assert res.exit_code == 0, res
    assert res.stderr == "", res
    usage = f"Usage: ocilayout {' '.join(path)}".rstrip()
    assert res.stdout.startswith(usage), res.stdout[:300]
    assert len(res.stdout.splitlines()) > 3, res.stdout
    # every value is named (FILE, DIR, N...), never by typer's type name
    assert not re.search(r"<(str|path|text|int range|integer|int|float range|float|boolean|choice)>", res.stdout), \
        res.stdout


def test_help_text_is_never_markup(cli) -> None:  # type: ignore[no-untyped-def]
    """Brackets in help text are text: copy's ``os/arch[/variant]`` once crashed rich's markup parser (exit 70)."""
    res = cli("copy", "--help")
    assert res.exit_code == 0, res
    assert "os/arch[/variant]" in res.stdout


@pytest.mark.parametrize("path", [p for p in PATHS if p], ids=" ".join)
def test_one_command_app_matches_the_full_app(cli, capsys: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
                                              path: tuple[str, ...]) -> None:
    """main() builds only the invoked command; its help is the one the whole app gives."""
    lazy = cli(*path, "--help").stdout
    capsys.readouterr()
    app(args=[*path, "--help"], prog_name="ocilayout", standalone_mode=False)
    assert capsys.readouterr().out == lazy


def test_unknown_command_still_suggests(cli) -> None:  # type: ignore[no-untyped-def]
    res = cli("inspekt", "oci:x")
    assert res.exit_code == 2
    assert "No such command" in res.stderr and "inspect" in res.stderr
    assert res.stderr.count("\n") == 1


@pytest.mark.parametrize("args,commands", [
    (["inspect", "oci:x:v1"], ["inspect"]),
    (["--debug", "list-tags", "--help"], ["list-tags"]),
    (["standalone-verify", "-h"], ["standalone-verify"]),
    (["index", "create", "--help"], ["index"]),  # a command group alone
    (["--help", "inspect"], None),  # root help: every command
    ([], None),
    (["no-such-command"], None),  # click's "No such command" comes from the whole app
])
def test_only_the_invoked_command_is_built(args: list[str], commands: list[str] | None) -> None:
    """Start-up: typer builds a click command per registered command; main() registers only the one it runs."""
    from ocilayout.cli._app import command_app

    built = list(typer.main.get_command(command_app(args)).commands)
    assert built == (commands or list(typer.main.get_command(app).commands))


def test_command_module_table_matches_the_registered_commands() -> None:
    """main() imports only the invoked command's module, found in COMMAND_MODULES: it must name them all."""
    from typer.main import get_command_name

    from ocilayout.cli._app import COMMAND_MODULES

    registered = {info.name or get_command_name(info.callback.__name__): info.callback.__module__.rsplit(".", 1)[1]
                  for info in app.registered_commands if info.callback is not None}
    for group in app.registered_groups:  # a command group (index create/add/remove): its module names it
        sub = group.typer_instance
        assert sub is not None and sub.info.name
        modules = {i.callback.__module__.rsplit(".", 1)[1] for i in sub.registered_commands if i.callback}
        assert len(modules) == 1
        registered[str(sub.info.name)] = modules.pop()
    assert registered == COMMAND_MODULES


def test_a_command_loads_only_its_module() -> None:
    import subprocess
    import sys

    code = ("import sys\nfrom ocilayout.cli import main\n"
            "main(['manifest-digest', '--help'])\n"
            "print(sorted(m for m in sys.modules if m.startswith('ocilayout.cli.')), file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == ("['ocilayout.cli._app', 'ocilayout.cli._display', 'ocilayout.cli._fast', "
                                   "'ocilayout.cli._main', 'ocilayout.cli._options', 'ocilayout.cli._registry', "
                                   "'ocilayout.cli.images']")
    # _main: the boundary; _fast: its look for a plain copy; _options: the shared flag declarations;
    # _registry: what the registry flags do (light)


def test_bare_ocilayout_prints_the_help_as_a_usage_error(cli) -> None:  # type: ignore[no-untyped-def]
    """No command: the help, as it is (not squashed into one error line), on stderr; exit 2 like click."""
    res = cli()
    assert res.exit_code == 2, res
    assert res.stdout == ""
    assert res.stderr.startswith("Usage: ocilayout [OPTIONS] COMMAND"), res
    assert "\n  inspect " in res.stderr


def test_missing_argument_is_one_line(cli) -> None:  # type: ignore[no-untyped-def]
    res = cli("gc")
    assert (res.exit_code, res.stderr) == (2, "ocilayout: error: Missing argument 'LAYOUT'. (see 'ocilayout --help')\n")
