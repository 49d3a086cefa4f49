"""The command line's fast path: a plain ``ocilayout copy`` or ``sync`` parsed without typer.

Importing typer and building its click command costs ~35 ms, as much as the rest of a copy's start-up, and
``copy`` and ``sync`` are what build pipelines and mirrors run over and over. So :func:`fast_command`
parses them from :data:`GRAMMARS`, tables of the options typer declares for them (in :mod:`.images` and
:mod:`.sync`), and hands the command (:func:`ocilayout.cli._copy.run_copy`,
:func:`ocilayout.cli._sync.run_sync_command`) exactly the arguments typer would. It parses only the
unambiguous forms (``--opt VALUE``, ``--opt=VALUE``, ``-x VALUE``, flags, repeated options, the positional
arguments); anything else -- ``--help``, an unknown option, ``-qa``, ``-j4``, a value that starts with ``-``,
a number out of range, a missing argument or required option -- returns None and goes to typer, which
answers it as it always has (its help, its usage errors). ``tests/test_cli_fast.py`` derives the tables
from the typer declarations and checks that both paths call the command with equal arguments, so the two
cannot drift apart.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["GRAMMARS", "Grammar", "fast_command"]

#: One command's grammar: (module, function, positional parameter names, option -> (parameter, kind),
#: parameter -> default, the parameters of required options). Kinds: ``flag`` (True when given), ``str``,
#: ``path`` (a Path), ``int`` or ``int:MIN:MAX`` (either bound may be empty); a leading ``*`` makes the
#: option repeatable (a list, in the order given).
Grammar = tuple[str, str, tuple[str, ...], dict[str, tuple[str, str]], dict[str, Any], frozenset[str]]

#: The registry flags of copy and sync (each side, and --authfile for both).
_REGISTRY_OPTIONS: dict[str, tuple[str, str]] = {
    "--authfile": ("authfile", "str"),
    "--src-authfile": ("src_authfile", "str"),
    "--dest-authfile": ("dest_authfile", "str"),
    "--src-creds": ("src_creds", "str"),
    "--dest-creds": ("dest_creds", "str"),
    "--src-tls-verify": ("src_tls_verify", "str"),
    "--dest-tls-verify": ("dest_tls_verify", "str"),
    "--src-cert-dir": ("src_cert_dir", "str"),
    "--dest-cert-dir": ("dest_cert_dir", "str"),
    "--registries-conf": ("registries_conf", "str"),
}
_REGISTRY_DEFAULTS: dict[str, Any] = dict.fromkeys(param for param, _ in _REGISTRY_OPTIONS.values())

_COPY_OPTIONS: dict[str, tuple[str, str]] = {
    "--all": ("all_", "flag"), "-a": ("all_", "flag"),
    "--platform": ("platform", "*str"),
    "--quiet": ("quiet", "flag"), "-q": ("quiet", "flag"),
    "--digestfile": ("digestfile", "path"),
    "--jobs": ("jobs", "int:1:64"), "-j": ("jobs", "int:1:64"),
    "--remove-signatures": ("remove_signatures", "flag"),
    "--remove-referrers": ("remove_referrers", "flag"),
    "--sign-by-sigstore-private-key": ("sign_key", "str"),
    "--sign-passphrase-file": ("sign_passphrase_file", "str"),
    "--sign-identity": ("sign_identity", "str"),
    "--additional-tag": ("additional_tag", "*str"),
    "--format": ("format_", "str"), "-f": ("format_", "str"),
    "--dest-compress-format": ("compress_format", "str"),
    "--dest-compress-level": ("compress_level", "int"),
    "--dest-decompress": ("decompress", "flag"),
    "--dest-docker-archive-format": ("archive_format", "str"),
    "--preserve-digests": ("preserve_digests", "flag"),
    "--multi-arch": ("multi_arch", "str"),
    **_REGISTRY_OPTIONS,
    "--ref-name": ("ref_name", "str"),
    "--image-name": ("image_name", "str"),
}
_COPY_DEFAULTS: dict[str, Any] = {
    "all_": False, "platform": [], "quiet": False, "digestfile": None, "jobs": 4, "remove_signatures": False,
    "remove_referrers": False, "sign_key": None, "sign_passphrase_file": None, "sign_identity": None,
    "additional_tag": [], "format_": None, "compress_format": None, "compress_level": None, "decompress": False,
    "archive_format": None, "preserve_digests": False, "multi_arch": None, **_REGISTRY_DEFAULTS,
    "ref_name": None, "image_name": None,
}
_SYNC_OPTIONS: dict[str, tuple[str, str]] = {
    "--src": ("src", "str"), "-s": ("src", "str"),
    "--dest": ("dest", "str"), "-d": ("dest", "str"),
    "--all": ("all_", "flag"), "-a": ("all_", "flag"),
    "--scoped": ("scoped", "flag"),
    "--append-suffix": ("append_suffix", "str"),
    "--dry-run": ("dry_run", "flag"),
    "--keep-going": ("keep_going", "flag"),
    "--digestfile": ("digestfile", "path"),
    "--preserve-digests": ("preserve_digests", "flag"),
    "--remove-signatures": ("remove_signatures", "flag"),
    "--sign-by-sigstore-private-key": ("sign_key", "str"),
    "--sign-passphrase-file": ("sign_passphrase_file", "str"),
    "--format": ("format_", "str"), "-f": ("format_", "str"),
    "--jobs": ("jobs", "int:1:64"), "-j": ("jobs", "int:1:64"),
    "--blob-jobs": ("blob_jobs", "int:1:64"),
    "--retry-times": ("retry_times", "int:0:"),
    "--retry-delay": ("retry_delay", "str"),
    "--quiet": ("quiet", "flag"), "-q": ("quiet", "flag"),
    **_REGISTRY_OPTIONS,
}
_SYNC_DEFAULTS: dict[str, Any] = {
    "src": None, "dest": None, "all_": False, "scoped": False, "append_suffix": "", "dry_run": False,
    "keep_going": False, "digestfile": None, "preserve_digests": False, "remove_signatures": False,
    "sign_key": None, "sign_passphrase_file": None, "format_": None, "jobs": 4, "blob_jobs": 4,
    "retry_times": 0, "retry_delay": None, "quiet": False, **_REGISTRY_DEFAULTS,
}

#: Command name -> its grammar. Only commands whose body imports no typer (:mod:`._copy`, :mod:`._sync`).
GRAMMARS: dict[str, Grammar] = {
    "copy": ("ocilayout.cli._copy", "run_copy", ("source", "destination"), _COPY_OPTIONS, _COPY_DEFAULTS,
             frozenset()),
    "sync": ("ocilayout.cli._sync", "run_sync_command", ("source", "destination"), _SYNC_OPTIONS, _SYNC_DEFAULTS,
             frozenset({"src", "dest"})),
}

_NO = object()  # a value the fast path does not convert (typer reports it)


def _convert(kind: str, value: str) -> Any:
    if kind == "str":
        return value
    if kind == "path":
        return Path(value)
    try:
        number = int(value)  # what click's INT does
    except ValueError:
        return _NO
    _, *bounds = kind.split(":")
    low, high = (int(b) if b else None for b in bounds) if bounds else (None, None)
    if (low is not None and number < low) or (high is not None and number > high):
        return _NO
    return number


def fast_command(args: list[str]) -> Callable[[], None] | None:
    """The command ``args`` name, ready to run with the arguments typer would give it; None when ``args``
    are not a command of :data:`GRAMMARS` in a form this parser knows (typer then parses them)."""
    i = 0
    while i < len(args) and args[i] == "--debug":  # the root's one option (main reads it itself)
        i += 1
    if i == len(args) or args[i] not in GRAMMARS:
        return None
    module, function, positional, options, defaults, required = GRAMMARS[args[i]]
    kwargs = {name: list(value) if isinstance(value, list) else value for name, value in defaults.items()}
    given: set[str] = set()
    values: list[str] = []
    rest = args[i + 1:]
    j = 0
    while j < len(rest):
        token = rest[j]
        j += 1
        if not token.startswith("-") or token == "-":
            values.append(token)
            continue
        name, eq, value = token.partition("=")
        spec = options.get(name)
        if spec is None or (eq and not name.startswith("--")):
            return None
        param, kind = spec
        if kind == "flag":
            if eq:
                return None
            kwargs[param] = True
            continue
        if not eq:
            if j == len(rest) or rest[j].startswith("-"):
                return None
            value = rest[j]
            j += 1
        converted = _convert(kind.lstrip("*"), value)
        if converted is _NO:
            return None
        if kind.startswith("*"):
            if param not in given:
                kwargs[param] = []
            kwargs[param].append(converted)
        else:
            kwargs[param] = converted
        given.add(param)
    if len(values) != len(positional) or not required <= given:
        return None
    kwargs.update(zip(positional, values, strict=True))

    def run() -> None:
        getattr(importlib.import_module(module), function)(**kwargs)

    return run
