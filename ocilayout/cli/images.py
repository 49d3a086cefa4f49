"""Image commands: copy, inspect, manifest-digest, list-tags, tag, delete."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from . import _registry as _reg
from . import _write as _w
from ._app import app
from ._display import echo, escape_json, write_bytes
from ._registry import registry_options as _registry
from ._registry import using as _using

if TYPE_CHECKING:
    from ..copy import CopyOptions, CopyResult, Selection
    from ..descriptor import Platform


def _write(data: bytes | str) -> None:
    """Bytes unchanged; text (JSON) with control characters as JSON escapes."""
    write_bytes(data if isinstance(data, bytes) else escape_json(data).encode())


def _write_digestfile(path: Path, data: bytes) -> None:
    """A regular file (or a new one) is replaced atomically; anything else that exists (``/dev/stdout``, a
    FIFO, ``/dev/full``) is written into as skopeo's os.WriteFile does, never renamed over."""
    import os
    import stat

    from ..fsutil import atomic_write

    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    if st is None or stat.S_ISREG(st.st_mode):
        atomic_write(path, data)
        return
    with open(path, "wb") as f:
        f.write(data)


def _check_writable(path: Path) -> None:
    """Raise NotFound / LayoutError now when ``path`` cannot be written later (missing or read-only
    directory, a directory in the way)."""
    import os

    from ..errors import LayoutError, NotFound

    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise NotFound(f"--digestfile {path}: directory {parent} does not exist")
    if path.is_dir():
        raise LayoutError(f"--digestfile {path} is a directory")
    if path.exists() and not path.is_file():  # a device or a pipe is written into, not replaced
        if not os.access(path, os.W_OK):
            raise LayoutError(f"--digestfile {path} is not writable")
        return
    if not os.access(parent, os.W_OK | os.X_OK):
        raise LayoutError(f"--digestfile {path}: directory {parent} is not writable")


def _copy_tagged(source: str, destination: str, options: CopyOptions, tags: list[str]) -> CopyResult:
    """Copy, then name the image with every one of ``tags`` too, in the same commit."""
    from ..copy import copy_into
    from ..errors import UnsupportedFormat
    from ..reference import check_ref_name
    from ..transports import open_destination, open_source

    for tag in tags:  # before anything is copied (a destination checks its own grammar on top)
        check_ref_name(tag, f"--additional-tag {tag}")
    with open_source(source) as src:
        dst = open_destination(destination)
        try:
            if not dst.capabilities.multi_image:
                raise UnsupportedFormat(f"{destination} holds one name per copy; --additional-tag is not supported")
            result = copy_into(src, dst, options)
            for tag in tags:
                dst.tag(result.descriptor, tag)
            dst.commit()
        finally:
            dst.close()
    if options.progress is not None:
        options.progress.finish()
    return result


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
    jobs: int = typer.Option(4, "--jobs", "-j", min=1, max=64,
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
    authfile: str | None = _reg.AUTHFILE,
    src_authfile: str | None = _reg.SRC_AUTHFILE,
    dest_authfile: str | None = _reg.DEST_AUTHFILE,
    src_creds: str | None = _reg.SRC_CREDS,
    dest_creds: str | None = _reg.DEST_CREDS,
    src_tls_verify: str | None = _reg.SRC_TLS_VERIFY,
    dest_tls_verify: str | None = _reg.DEST_TLS_VERIFY,
    src_cert_dir: str | None = _reg.SRC_CERT_DIR,
    dest_cert_dir: str | None = _reg.DEST_CERT_DIR,
    registries_conf: str | None = _reg.REGISTRIES_CONF,
    ref_name: str | None = _w.REF_NAME,
    image_name: str | None = _w.IMAGE_NAME,
) -> None:
    """Copy an image between oci: layouts, oci-archive:, docker-archive: and dir: files and docker://
    registries, verifying every blob.

    Signatures (cosign .sig tags) travel with the image unless --remove-signatures. --format and the
    --dest-compress-* flags convert on the way (docs/convert.md); config bytes and diff_ids never change."""
    from ..copy import Conversion, CopyOptions, Signing
    from ..copy import copy as do_copy
    from ..descriptor import Platform
    from ..errors import InvalidReference
    from .progress import progress_for

    try:
        platforms = tuple(Platform.parse(p) for p in platform)
    except ValueError as err:
        raise InvalidReference(str(err)) from err
    select = _selection(all_, platforms, multi_arch)
    convert = Conversion(format=_choice("--format", format_, ("oci", "v2s2")),  # type: ignore[arg-type]
                         compress=_choice("--dest-compress-format", compress_format, ("gzip", "zstd", "none")),
                         level=compress_level, decompress=decompress, preserve_digests=preserve_digests)
    _w.check_digestfile(digestfile, source, destination)  # before anything is copied: a copy must not commit, then fail
    key = None
    if sign_key is not None:
        from .sign import _load_private_key

        key = _load_private_key(sign_key, sign_passphrase_file)  # fails before anything is copied
    from ._write import check_destination, naming, print_warnings

    names = naming(ref_name, image_name)
    if names is not None:
        check_destination(source, destination, names)  # names that do not fit: refused before any read
    options = CopyOptions(select=select, convert=convert, jobs=jobs, progress=progress_for("Copying", quiet),
                          signing=Signing(remove=remove_signatures, sign_by=key, identity=sign_identity),
                          naming=names, remove_referrers=remove_referrers)
    src_reg = _registry(src_tls_verify, src_creds, src_authfile or authfile, flag="--src-tls-verify",
                        cert_dir=src_cert_dir, registries_conf=registries_conf)
    dst_reg = _registry(dest_tls_verify, dest_creds, dest_authfile or authfile, flag="--dest-tls-verify",
                        cert_dir=dest_cert_dir, registries_conf=registries_conf)
    archive_format = _choice("--dest-docker-archive-format", archive_format, ("legacy", "oci-hybrid"))
    with _using(src_reg, dst_reg), _archive_format(archive_format):
        result = do_copy(source, destination, options) if not additional_tag else \
            _copy_tagged(source, destination, options, additional_tag)
    if digestfile is not None:
        _write_digestfile(digestfile, str(result.descriptor.digest).encode())
    if not quiet:
        extra = f", {result.signatures_copied} signatures carried" if result.signatures_copied else ""
        extra += ", signed" if result.signed else ""
        extra += f", {result.referrers_copied} referrers carried" if result.referrers_copied else ""
        echo(f"Copied {result.descriptor.digest} ({result.blobs_copied} blobs copied, "
             f"{result.blobs_skipped} already present{extra})", err=True)
    print_warnings(destination, result.descriptor.digest)


def _archive_format(form: str | None) -> contextlib.AbstractContextManager[None]:
    if form is None:
        return contextlib.nullcontext()
    from ..dockertar_oci import use_docker_archive_format

    return use_docker_archive_format(form)


def _choice(flag: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
    """``value`` when it is one of ``allowed`` (or None); raises InvalidArgument otherwise."""
    from ..errors import InvalidArgument

    if value is not None and value not in allowed:
        raise InvalidArgument(f"{flag} {value!r}: expected one of {', '.join(allowed)}")
    return value


def _selection(all_: bool, platforms: tuple[Platform, ...], multi_arch: str | None) -> Selection:
    """--all / --platform / --multi-arch as one Selection; raises InvalidArgument when they conflict."""
    from ..copy import Selection
    from ..errors import InvalidArgument

    mode = _choice("--multi-arch", multi_arch, ("all", "system", "index-only"))
    if mode is not None and all_ and mode != "all":
        raise InvalidArgument(f"--all and --multi-arch {mode} exclude each other")
    if mode == "system" and platforms:
        raise InvalidArgument("--multi-arch system and --platform exclude each other")
    return Selection(all=all_ or mode == "all", platforms=platforms, index_only=mode == "index-only")


@app.command()
def inspect(
    image: str = typer.Argument(..., metavar="IMAGE-NAME"),
    raw: bool = typer.Option(False, "--raw", help="Print the manifest (or config) bytes unchanged."),
    config: bool = typer.Option(False, "--config", help="Show the image config instead of the summary."),
    tls_verify: str | None = _reg.TLS_VERIFY,
    creds: str | None = _reg.CREDS,
    authfile: str | None = _reg.AUTHFILE,
    cert_dir: str | None = _reg.CERT_DIR,
    registries_conf: str | None = _reg.REGISTRIES_CONF,
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
    tls_verify: str | None = _reg.TLS_VERIFY,
    creds: str | None = _reg.CREDS,
    authfile: str | None = _reg.AUTHFILE,
    cert_dir: str | None = _reg.CERT_DIR,
    registries_conf: str | None = _reg.REGISTRIES_CONF,
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
    tls_verify: str | None = _reg.TLS_VERIFY,
    creds: str | None = _reg.CREDS,
    authfile: str | None = _reg.AUTHFILE,
    cert_dir: str | None = _reg.CERT_DIR,
    registries_conf: str | None = _reg.REGISTRIES_CONF,
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
    tls_verify: str | None = _reg.TLS_VERIFY,
    creds: str | None = _reg.CREDS,
    authfile: str | None = _reg.AUTHFILE,
    cert_dir: str | None = _reg.CERT_DIR,
    registries_conf: str | None = _reg.REGISTRIES_CONF,
) -> None:
    """Remove an image's name from a layout (its blobs stay until gc), or delete a manifest from a registry
    (by digest; a tag is resolved first, and every tag of that manifest goes)."""
    from ..reference import parse_reference
    from ..transports import transport

    r = parse_reference(image)
    reg = _registry(tls_verify, creds, authfile, cert_dir=cert_dir, registries_conf=registries_conf)
    with _using(reg, reg):
        transport(r.transport).delete_image(r)
