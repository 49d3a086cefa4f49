"""The sync command: skopeo sync's flags over :mod:`ocilayout.sync`."""

from __future__ import annotations

from pathlib import Path

import typer

from . import _options as _o
from ._app import app


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
    jobs: int = typer.Option(4, "--jobs", "-j", min=1, max=64, metavar="N",
                             help="Images copied in parallel (skopeo: one)."),
    blob_jobs: int = typer.Option(4, "--blob-jobs", min=1, max=64, metavar="N",
                                  help="Blobs copied in parallel per image."),
    retry_times: int = typer.Option(0, "--retry-times", min=0, metavar="N",
                                    help="Times to retry an image after a registry error."),
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
    flags = dict(locals())  # the parameters (nothing else is bound yet), as the fast path (_fast.py) passes them
    from ._sync import run_sync_command

    run_sync_command(**flags)
