"""Image commands: copy, inspect, manifest-digest, list-tags, tag, delete."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from . import _options as _o
from ._app import app
from ._display import echo, escape_json, write_bytes
from ._registry import registry_options as _registry
from ._registry import using as _using

if TYPE_CHECKING:
    pass


def _write(data: bytes | str) -> None:
    """Bytes unchanged; text (JSON) with control characters as JSON escapes."""
    write_bytes(data if isinstance(data, bytes) else escape_json(data).encode())


@app.command()
def copy(
    source: str = typer.Argument(..., metavar="SOURCE-IMAGE",
                                 help="oci:PATH[:REF], oci-archive:FILE[:REF] or docker://HOST/REPO[:TAG|@DIGEST]"),
    destination: str = typer.Argument(..., metavar="DESTINATION-IMAGE"),
    all_: bool = typer.Option(False, "--all", "-a", help="Copy a whole index (every platform)."),
    platform: list[str] = typer.Option([], "--platform", metavar="OS/ARCH[/VARIANT]",
                                       help="The os/arch[/variant] to copy from an index (repeatable)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    digestfile: Path | None = typer.Option(None, "--digestfile", metavar="FILE",
                                           help="Write the copied manifest's digest here."),
    jobs: int = typer.Option(4, "--jobs", "-j", min=1, max=64, metavar="N",
                             help="Blobs copied in parallel (oci: destinations; archives are one sequential pass)."),
    remove_signatures: bool = typer.Option(False, "--remove-signatures", help="Do not carry signatures along."),
    remove_referrers: bool = typer.Option(False, "--remove-referrers",
                                          help="Do not carry OCI referrers (attached SBOMs, attestations) along."),
    sign_key: str | None = typer.Option(None, "--sign-by-sigstore-private-key", metavar="KEY",
                                        help="Sign the copied image with this sigstore private key."),
    sign_passphrase_file: str | None = typer.Option(None, "--sign-passphrase-file", metavar="FILE",
                                                    help="Passphrase for the signing key (first line)."),
    sign_identity: str | None = typer.Option(None, "--sign-identity", metavar="REF",
                                             help="Docker reference the signature vouches for."),
    additional_tag: list[str] = typer.Option([], "--additional-tag", metavar="NAME:TAG",
                                             help="Also name the image this (repeatable; docker-archive:, oci:)."),
    format_: str | None = typer.Option(None, "--format", "-f", metavar="oci|v2s2",
                                       help="Manifest format to write (layers are kept where it allows)."),
    compress_format: str | None = typer.Option(None, "--dest-compress-format", metavar="gzip|zstd|none",
                                               help="Recompress layers to this format."),
    compress_level: int | None = typer.Option(None, "--dest-compress-level", metavar="N",
                                              help="Compression level for layers that are compressed."),
    decompress: bool = typer.Option(False, "--dest-decompress", help="Write layers uncompressed."),
    archive_format: str | None = typer.Option(None, "--dest-docker-archive-format", metavar="legacy|oci-hybrid",
                                              help="docker-archive: form to write: legacy (skopeo, Docker <= 24) or "
                                              "oci-hybrid (Docker 25+: an OCI layout plus manifest.json; manifests "
                                              "kept byte for byte). Default: the appended archive's, else legacy."),
    preserve_digests: bool = typer.Option(False, "--preserve-digests",
                                          help="Fail if any digest would change (instead of converting)."),
    multi_arch: str | None = typer.Option(None, "--multi-arch", metavar="all|system|index-only",
                                          help="Which images of an index to copy (as skopeo; default system)."),
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
    ref_name: str | None = _o.REF_NAME,
    image_name: str | None = _o.IMAGE_NAME,
) -> None:
    """Copy an image between oci: layouts, oci-archive:, docker-archive: and dir: files and docker://
    registries, verifying every blob.

    Signatures (cosign .sig tags) travel with the image unless --remove-signatures. --format and the
    --dest-compress-* flags convert on the way (docs/convert.md); config bytes and diff_ids never change."""
    flags = dict(locals())  # the parameters (nothing else is bound yet), as the fast path (_fast.py) passes them
    from ._copy import run_copy

    run_copy(**flags)


@app.command()
def inspect(
    image: str = typer.Argument(..., metavar="IMAGE-NAME"),
    raw: bool = typer.Option(False, "--raw", help="Print the manifest (or config) bytes unchanged."),
    config: bool = typer.Option(False, "--config", help="Show the image config instead of the summary."),
    tls_verify: str | None = _o.TLS_VERIFY,
    creds: str | None = _o.CREDS,
    authfile: str | None = _o.AUTHFILE,
    cert_dir: str | None = _o.CERT_DIR,
    registries_conf: str | None = _o.REGISTRIES_CONF,
    no_tags: bool = typer.Option(False, "--no-tags", "-n", help="Do not list the repository's tags (registries)."),
) -> None:
    """Show an image's summary (skopeo's fields), or its raw manifest or config."""
    from ..inspect import go_json, image_config, inspect_image, pretty_config
    from ..reference import parse_reference
    from ..transports import open_source, transport

    reg = _registry(tls_verify, creds, authfile, cert_dir=cert_dir, registries_conf=registries_conf)
    with _using(reg), open_source(image) as src:
        if config:
            _manifest, cfg = image_config(src)
            if cfg is None:
                from ..errors import UnsupportedFormat

                raise UnsupportedFormat(f"{image} has no image config (schema1 or artifact)")
            _write(cfg.raw if raw else go_json(pretty_config(cfg)) + "\n")
        elif raw:
            _write(src.get_manifest().raw)
        else:
            out = inspect_image(src)
            names = transport(src.ref.transport).repository_names(parse_reference(image), tags=not no_tags)
            if names is not None:  # a registry image: skopeo's Name, and RepoTags unless --no-tags
                out = {"Name": names[0], **out, "RepoTags": names[1]}
            _write(go_json(out) + "\n")


@app.command("manifest-digest")
def manifest_digest(
    manifest: Path = typer.Argument(..., metavar="MANIFEST", help="A manifest file."),
) -> None:
    """Print a manifest file's digest, as skopeo manifest-digest does."""
    from ..errors import InvalidManifest
    from ..fsutil import read_limited
    from ..manifest import MAX_MANIFEST_SIZE
    from ..manifest import manifest_digest as digest_of

    raw = read_limited(manifest, "manifest", MAX_MANIFEST_SIZE, InvalidManifest)
    echo(str(digest_of(raw)))


@app.command("list-tags")
def list_tags(
    ref: str = typer.Argument(..., metavar="LAYOUT", help="oci:PATH, oci-archive:FILE or docker://HOST/REPO"),
    tls_verify: str | None = _o.TLS_VERIFY,
    creds: str | None = _o.CREDS,
    authfile: str | None = _o.AUTHFILE,
    cert_dir: str | None = _o.CERT_DIR,
    registries_conf: str | None = _o.REGISTRIES_CONF,
) -> None:
    """List the tags (ref names) of a layout, archive or registry repository, as JSON like skopeo list-tags."""
    from ..reference import parse_reference
    from ..transports import transport

    r = parse_reference(ref)
    with _using(_registry(tls_verify, creds, authfile, cert_dir=cert_dir, registries_conf=registries_conf)):
        tags = transport(r.transport).list_names(r)
    _write(json.dumps({"Repository": str(Path(r.path)), "Tags": tags}, indent=4) + "\n")


@app.command()
def catalog(
    registry: str = typer.Argument(..., metavar="REGISTRY", help="HOST[:PORT], or docker://HOST[:PORT]"),
    tls_verify: str | None = _o.TLS_VERIFY,
    creds: str | None = _o.CREDS,
    authfile: str | None = _o.AUTHFILE,
    cert_dir: str | None = _o.CERT_DIR,
    registries_conf: str | None = _o.REGISTRIES_CONF,
) -> None:
    """List a registry's repositories (the paginated _catalog API), as JSON."""
    import re

    from ..errors import InvalidReference
    from ..transports.registry import catalog as list_catalog

    host = registry.removeprefix("docker://").rstrip("/")
    if not re.fullmatch(r"[A-Za-z0-9.-]+(?::[0-9]+)?", host):
        raise InvalidReference(f"invalid registry {registry!r}: want HOST[:PORT]")
    with _using(_registry(tls_verify, creds, authfile, cert_dir=cert_dir, registries_conf=registries_conf)):
        repos = list_catalog(host)
    _write(json.dumps({"Registry": host, "Repositories": repos}, indent=4) + "\n")


@app.command()
def tag(
    image: str = typer.Argument(..., metavar="SOURCE-IMAGE", help="oci:PATH[:REF|@DIGEST]"),
    new_ref: str = typer.Argument(..., metavar="NEW-REF", help="A tag name, or oci:PATH:TAG in the same layout"),
) -> None:
    """Give an image in a layout another name (replacing what that name pointed at)."""
    from ..tags import tag_image

    tag_image(image, new_ref)


@app.command()
def delete(
    image: str = typer.Argument(..., metavar="IMAGE-NAME", help="oci:PATH:REF, oci:PATH@DIGEST or docker://..."),
    tls_verify: str | None = _o.TLS_VERIFY,
    creds: str | None = _o.CREDS,
    authfile: str | None = _o.AUTHFILE,
    cert_dir: str | None = _o.CERT_DIR,
    registries_conf: str | None = _o.REGISTRIES_CONF,
) -> None:
    """Remove an image's name from a layout (its blobs stay until gc), or delete a manifest from a registry
    (by digest; a tag is resolved first, and every tag of that manifest goes)."""
    from ..reference import parse_reference
    from ..transports import transport

    r = parse_reference(image)
    reg = _registry(tls_verify, creds, authfile, cert_dir=cert_dir, registries_conf=registries_conf)
    with _using(reg, reg):
        transport(r.transport).delete_image(r)
