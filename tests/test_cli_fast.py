"""The command line's fast path (cli/_fast.py): ``copy`` and ``sync`` parsed without typer.

Its grammar must be the typer declaration's, and for every command line it accepts it must call the command
with exactly what typer would; everything else must be left to typer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main
from conftest import assert_one_line_error

from ocilayout.cli import _copy, _fast, _sync
from ocilayout.cli._app import command_app, full_app


def _kind(param: Any) -> str:
    name = type(param.type).__name__
    if param.is_flag:
        kind = "flag"
    elif name == "IntRange":
        low, high = ("" if b is None else b for b in (param.type.min, param.type.max))
        kind = f"int:{low}:{high}"
    else:
        kind = {"StringParamType": "str", "IntParamType": "int", "TyperPath": "path"}[name]
    return "*" + kind if param.multiple else kind


def _grammar_of(command: str) -> _fast.Grammar:
    """The grammar of ``command`` as its typer declaration gives it (what GRAMMARS must hold)."""
    click_command = typer.main.get_command(full_app()).commands[command]  # type: ignore[attr-defined]
    module, function = _fast.GRAMMARS[command][:2]
    positional: list[str] = []
    options: dict[str, tuple[str, str]] = {}
    defaults: dict[str, Any] = {}
    required: set[str] = set()
    for param in click_command.params:
        # what the fast parser cannot do: it must not be declared
        assert param.envvar is None and param.nargs == 1 and not param.secondary_opts, param.name
        if type(param).__name__ == "TyperArgument":
            assert param.required, param.name
            positional.append(param.name)
            continue
        kind = _kind(param)
        options.update({opt: (param.name, kind) for opt in param.opts})
        defaults[param.name] = list(param.default) if param.multiple else param.default
        if param.required:
            required.add(param.name)
    return module, function, tuple(positional), options, defaults, frozenset(required)


@pytest.mark.parametrize("command", sorted(_fast.GRAMMARS))
def test_the_fast_grammar_is_the_typer_declaration(command: str) -> None:
    assert _fast.GRAMMARS[command] == _grammar_of(command)


def _sample(kind: str) -> str:
    return {"str": "s", "path": "some/file", "int": "9", "int:1:64": "7", "int:0:": "3"}[kind.lstrip("*")]


def _every_option(command: str, short: bool) -> list[str]:
    """``command`` with every option once (long names, or the short one where there is one) and both
    arguments."""
    options = _fast.GRAMMARS[command][3]
    by_param: dict[str, list[str]] = {}
    for opt, (param, _) in options.items():
        by_param.setdefault(param, []).append(opt)
    args = [command]
    for opts in by_param.values():
        opt = min(opts, key=len) if short else max(opts, key=len)
        kind = options[opt][1]
        args += [opt] if kind == "flag" else [opt, _sample(kind)]
    return [*args, "oci:src:v1", "dir:dst"]


CORPUS = [
    ["copy", "oci:a:v1", "dir:b"],
    ["--debug", "copy", "oci:a:v1", "dir:b"],
    ["copy", "-q", "-a", "--platform", "linux/amd64", "--platform=linux/arm64/v8", "-j", "7", "x", "y"],
    ["copy", "x", "-q", "y", "--remove-signatures"],  # options between and after the arguments
    ["copy", "-j", "2", "--jobs", "3", "--format", "oci", "-f", "v2s2", "x", "y"],  # the last one given wins
    ["copy", "--dest-compress-level=-1", "--digestfile=rel/d.txt", "--src-tls-verify=false", "x", "y"],
    ["copy", "--additional-tag", "a:1", "--additional-tag=b:2", "--additional-tag", "c:3", "x", "y"],
    ["copy", "--src-creds", "user:pa=ss", "--image-name", "reg.example/app:1", "x", "y"],
    ["copy", "-", "y"],  # "-" is an argument
    _every_option("copy", short=False),
    _every_option("copy", short=True),
    ["sync", "--src", "docker", "--dest", "dir", "reg.example/app", "out"],
    ["sync", "-s", "yaml", "-d", "oci", "-j", "8", "--retry-times=2", "--retry-delay", "1s", "sync.yaml", "out"],
    ["sync", "x", "--dest=docker", "y", "--src", "dir", "--append-suffix", "", "--dry-run", "-q"],
    _every_option("sync", short=False),
    _every_option("sync", short=True),
]


def _recorded(monkeypatch: pytest.MonkeyPatch, command: str) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    module = {"copy": _copy, "sync": _sync}[command]
    monkeypatch.setattr(module, _fast.GRAMMARS[command][1],
                        lambda *args, **kwargs: calls.append({"args": args, **kwargs}))
    return calls


@pytest.mark.parametrize("args", CORPUS, ids=lambda a: " ".join(a)[:60])
def test_both_paths_call_the_command_with_the_same_arguments(monkeypatch: pytest.MonkeyPatch,
                                                              args: list[str]) -> None:
    calls = _recorded(monkeypatch, next(a for a in args if not a.startswith("-")))
    command = _fast.fast_command(args)
    assert command is not None, "the fast path declined"
    command()
    command_app(args)(args=args, prog_name="ocilayout", standalone_mode=False)
    fast, typed = calls
    assert fast == typed
    assert {k: type(v) for k, v in fast.items()} == {k: type(v) for k, v in typed.items()}  # Path, list, int


@pytest.mark.parametrize("args", [
    [], ["copy"], ["copy", "x"], ["copy", "x", "y", "z"],
    ["copy", "--help"], ["copy", "-h", "x", "y"], ["--help", "copy"], ["-h", "copy", "x", "y"],
    ["copy", "--nope", "x", "y"], ["copy", "--debug", "x", "y"],  # --debug belongs before the command
    ["copy", "-qa", "x", "y"], ["copy", "-j4", "x", "y"], ["copy", "-j=4", "x", "y"],
    ["copy", "-j", "0", "x", "y"], ["copy", "-j", "65", "x", "y"], ["copy", "-j", "many", "x", "y"],
    ["copy", "--dest-compress-level", "-1", "x", "y"],  # a value that looks like an option: typer decides
    ["copy", "--platform", "x", "y"],  # the value taken, one argument short
    ["copy", "x", "y", "--platform"], ["copy", "--all=yes", "x", "y"], ["copy", "--", "x", "y"],
    ["inspect", "oci:a:v1"], ["tag", "oci:a:v1", "v2"],
    ["sync", "--src", "dir", "a", "b"], ["sync", "--dest", "dir", "a", "b"],  # a required option missing
    ["sync", "--src", "dir", "--dest", "dir", "--retry-times", "-1", "a", "b"],
    ["sync", "--src", "dir", "--dest", "dir", "--retry-times=-1", "a", "b"],
], ids=lambda a: " ".join(a) or "(none)")
def test_what_the_fast_path_leaves_to_typer(args: list[str]) -> None:
    assert _fast.fast_command(args) is None


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_a_plain_copy_and_sync_run_without_typer_and_help_still_has_it(sample: Path, tmp_path: Path) -> None:
    proc = _run("import sys\nfrom ocilayout.cli import main\n"
                f"rc = main(['copy', '-q', 'oci:{sample}:v1', 'oci:{tmp_path / 'out'}:v1'])\n"
                "print(rc, 'typer' in sys.modules)\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "False"]
    assert (tmp_path / "out" / "index.json").exists()
    proc = _run("import sys\nfrom ocilayout.cli import main\n"
                f"rc = main(['sync', '-q', '--src', 'oci', '--dest', 'dir', '{sample}', '{tmp_path / 'dirs'}'])\n"
                "print(rc, 'typer' in sys.modules)\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "False"]
    assert (tmp_path / "dirs" / "v1" / "manifest.json").exists()
    proc = _run("import sys\nfrom ocilayout.cli import main\nrc = main(['copy', '--help'])\n"
                "print(rc, 'typer' in sys.modules, file=sys.stderr)\n")
    assert proc.returncode == 0, proc.stderr
    assert "--dest-compress-format" in proc.stdout and proc.stderr.split() == ["0", "True"]


def test_an_error_on_the_fast_path_is_the_same_one_line(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Errors of the command itself leave the fast path through the same boundary: one line, exit code."""
    res = cli("copy", f"oci:{tmp_path}/missing:v1", f"oci:{tmp_path}/out:v1")
    assert_one_line_error(res, 3)
    assert "missing" in res.stderr and not (tmp_path / "out").exists()
