"""What ``ocilayout sync`` does with its flags; its typer declaration (and its --help) is
:func:`ocilayout.cli.sync.sync`. No typer here: the fast path (:mod:`._fast`) calls :func:`run_sync_command`
with the same arguments typer would.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import TYPE_CHECKING

from ._display import echo
from ._registry import registry_options, using

if TYPE_CHECKING:
    from ..sync import ImageOutcome, SyncResult

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str, flag: str) -> float:
    """A Go duration (``1s``, ``500ms``, ``1m30s``, ``0``) in seconds; raises InvalidArgument."""
    from ..errors import InvalidArgument

    if text == "0":
        return 0.0
    parts = re.findall(r"([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise InvalidArgument(f"{flag} {text!r}: not a duration (like 1s, 500ms, 1m30s)")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def _report(outcome: ImageOutcome) -> None:
    from ..sync import destination_name

    result = outcome.result
    if result is not None:
        echo(f"Copied {outcome.image.source} -> {destination_name(outcome.image)} ({result.descriptor.digest}, "
             f"{result.blobs_copied} blobs copied, {result.blobs_skipped} already present)", err=True)


def run_sync_command(source: str, destination: str, *, src: str, dest: str, all_: bool, scoped: bool,
                     append_suffix: str, dry_run: bool, keep_going: bool, digestfile: Path | None,
                     preserve_digests: bool, remove_signatures: bool, sign_key: str | None,
                     sign_passphrase_file: str | None, format_: str | None, jobs: int, blob_jobs: int,
                     retry_times: int, retry_delay: str | None, quiet: bool, authfile: str | None,
                     src_authfile: str | None, dest_authfile: str | None, src_creds: str | None,
                     dest_creds: str | None, src_tls_verify: str | None, dest_tls_verify: str | None,
                     src_cert_dir: str | None, dest_cert_dir: str | None, registries_conf: str | None) -> None:
    """``ocilayout sync`` with its flags as typer hands them over (the names of its declaration in
    :mod:`.sync`): plans, copies (or prints the plan with ``--dry-run``), writes ``--digestfile`` and reports.
    Raises OcilayoutError subclasses (the boundary turns them into exit codes)."""
    from ..copy import Conversion, CopyOptions, Selection, Signing
    from ..sync import SyncOptions, destination_name, plan_sync, run_sync
    from ._copy import choice
    from ._write import check_writable

    src_reg = registry_options(src_tls_verify, src_creds, src_authfile or authfile, src_cert_dir,
                               flag="--src-tls-verify", registries_conf=registries_conf)
    dst_reg = registry_options(dest_tls_verify, dest_creds, dest_authfile or authfile, dest_cert_dir,
                               flag="--dest-tls-verify", registries_conf=registries_conf)
    fmt = choice("--format", format_, ("oci", "v2s2"))
    delay = parse_duration(retry_delay, "--retry-delay") if retry_delay is not None else None
    if digestfile is not None and not dry_run:
        check_writable(digestfile)  # before anything is copied
    key = None
    if sign_key is not None:
        from .sign import _load_private_key

        key = _load_private_key(sign_key, sign_passphrase_file)  # fails before anything is copied
    copy_options = CopyOptions(select=Selection(all=all_), jobs=blob_jobs,
                               convert=Conversion(format=fmt, preserve_digests=preserve_digests),  # type: ignore[arg-type]
                               signing=Signing(remove=remove_signatures, sign_by=key))
    options = SyncOptions(scoped=scoped, append_suffix=append_suffix, copy=copy_options, jobs=jobs,
                          keep_going=keep_going, retry_times=retry_times, retry_delay=delay)
    with using(src_reg, dst_reg), _one_probe_per_registry(src, dest):
        plan = plan_sync(src, source, dest, destination, options)
        if dry_run:
            for image in plan.images:
                echo(f"{image.source} {destination_name(image)}")
            for what, err in plan.failures:
                echo(f"error: listing {what}: {err}", err=True)
            if not quiet:
                echo(f"Would have synced {len(plan.images)} images from {plan.sources} sources", err=True)
            if plan.failures:
                _raise_summary(len(plan.failures), len(plan.images) + len(plan.failures), plan.failures[0][1])
            return
        result = run_sync(plan, options, None if quiet else _report)
    if digestfile is not None:
        from ._write import write_digestfile

        lines = "".join(f"{o.result.descriptor.digest} {destination_name(o.image)}\n"
                        for o in result.copied if o.result is not None)
        write_digestfile(digestfile, lines.encode())
    _finish(result, keep_going, quiet)


def _one_probe_per_registry(src: str, dest: str) -> contextlib.AbstractContextManager[None]:
    """Listing and copying share each registry's first ``/v2/`` ping (scheme and auth challenge)."""
    if "docker" not in (src, dest) and src != "yaml":
        return contextlib.nullcontext()
    from ..registry.client import shared_probes

    return shared_probes()


def _finish(result: SyncResult, keep_going: bool, quiet: bool) -> None:
    errors = result.errors
    if not errors:
        if not quiet:
            echo(f"Synced {len(result.copied)} images from {result.sources} sources "
                 f"({result.blobs_copied} blobs copied)", err=True)
        return
    if not keep_going:
        raise errors[0][1]  # the failure that stopped the sync, with its own exit code
    for what, err in errors:
        from ._main import _message

        echo(f"error: {what}: {_message(err)}", err=True)
    _raise_summary(len(errors), len(result.outcomes) + len(result.listing_failures), errors[0][1])


def _raise_summary(failed: int, total: int, first: BaseException) -> None:
    """One line for a --keep-going sync that had failures, exiting with the first failure's code."""
    from ..errors import OcilayoutError

    code = first.exit_code if isinstance(first, OcilayoutError) else 74
    err = OcilayoutError(f"sync failed for {failed} of {total} images (see the errors above)")
    err.exit_code = code
    raise err
