"""The sync command: skopeo sync's flags over :mod:`ocilayout.sync`."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from . import _options as _o
from ._app import app
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


@app.command()
def sync(
    source: str = typer.Argument(..., metavar="SOURCE",
                                 help="REGISTRY/REPO[:TAG], a directory, a layout or a YAML file"),
    destination: str = typer.Argument(..., metavar="DESTINATION", help="REGISTRY[/NAMESPACE] or a directory"),
    src: str = typer.Option(..., "--src", "-s", metavar="docker|dir|oci|yaml", help="SOURCE transport type."),
    dest: str = typer.Option(..., "--dest", "-d", metavar="docker|dir|oci", help="DESTINATION transport type."),
    all_: bool = typer.Option(False, "--all", "-a", help="Copy whole indexes (default: the host's platform)."),
    scoped: bool = typer.Option(False, "--scoped",
                                help="Prefix images at DESTINATION with the full source image path."),
    append_suffix: str = typer.Option("", "--append-suffix", metavar="SUFFIX",
                                      help="String to append to DESTINATION tags."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what would be copied; write nothing."),
    keep_going: bool = typer.Option(False, "--keep-going",
                                    help="Do not abort if an image fails; exit non-zero at the end."),
    digestfile: Path | None = typer.Option(None, "--digestfile", metavar="FILE",
                                           help="Write 'DIGEST DESTINATION' of every copied image, one a line."),
    preserve_digests: bool = typer.Option(False, "--preserve-digests", help="Fail if any digest would change."),
    remove_signatures: bool = typer.Option(False, "--remove-signatures", help="Do not copy signatures."),
    sign_key: str | None = typer.Option(None, "--sign-by-sigstore-private-key", metavar="PATH",
                                        help="Sign every copied image with this sigstore private key."),
    sign_passphrase_file: str | None = typer.Option(None, "--sign-passphrase-file", metavar="FILE",
                                                    help="Passphrase for the signing key (first line)."),
    format_: str | None = typer.Option(None, "--format", "-f", metavar="oci|v2s2",
                                       help="Manifest format to write (default: the source's)."),
    jobs: int = typer.Option(4, "--jobs", "-j", min=1, max=64, help="Images copied in parallel (skopeo: one)."),
    blob_jobs: int = typer.Option(4, "--blob-jobs", min=1, max=64, help="Blobs copied in parallel per image."),
    retry_times: int = typer.Option(0, "--retry-times", min=0, help="Times to retry an image after a registry error."),
    retry_delay: str | None = typer.Option(None, "--retry-delay", metavar="DURATION",
                                           help="Fixed delay between retries (default: 1s, 2s, 4s...)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No per-image lines on stderr."),
    authfile: str | None = _o.AUTHFILE,
    src_authfile: str | None = _o.SRC_AUTHFILE,
    dest_authfile: str | None = _o.DEST_AUTHFILE,
    src_creds: str | None = _o.SRC_CREDS,
    dest_creds: str | None = _o.DEST_CREDS,
    src_tls_verify: str | None = _o.SRC_TLS_VERIFY,
    dest_tls_verify: str | None = _o.DEST_TLS_VERIFY,
    src_cert_dir: str | None = _o.SRC_CERT_DIR,
    dest_cert_dir: str | None = _o.DEST_CERT_DIR,
    registries_conf: str | None = _o.REGISTRIES_CONF,
) -> None:
    """Copy every image of a SOURCE to a DESTINATION, as skopeo sync does, several images at once.

    --src: docker (a repository: every tag; or REPO:TAG), dir (every dir: image under a directory), oci
    (every tag of a layout), yaml (skopeo's sync YAML). --dest: docker (REGISTRY[/NAMESPACE]), dir (one
    directory per image), oci (ONE layout holding every image under its full reference, committed once).
    See docs/sync.md."""
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
