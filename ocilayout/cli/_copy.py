"""What ``ocilayout copy`` does with its flags; its typer declaration (and its --help) is
:func:`ocilayout.cli.images.copy`.

Nothing here imports typer: the command line's fast path (:mod:`._fast`) parses a plain ``copy`` without
it and calls :func:`run_copy` with the same arguments typer would, 35 ms sooner.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from . import _write as _w
from ._display import echo
from ._registry import registry_options as _registry
from ._registry import using as _using

if TYPE_CHECKING:
    from ..copy import CopyOptions, CopyResult, Selection
    from ..descriptor import Platform


def run_copy(source: str, destination: str, *, all_: bool, platform: list[str], quiet: bool, digestfile: Path | None,
             jobs: int, remove_signatures: bool, remove_referrers: bool, sign_key: str | None,
             sign_passphrase_file: str | None, sign_identity: str | None, additional_tag: list[str],
             format_: str | None, compress_format: str | None, compress_level: int | None, decompress: bool,
             archive_format: str | None, preserve_digests: bool, multi_arch: str | None, authfile: str | None,
             src_authfile: str | None, dest_authfile: str | None, src_creds: str | None, dest_creds: str | None,
             src_tls_verify: str | None, dest_tls_verify: str | None, src_cert_dir: str | None,
             dest_cert_dir: str | None, registries_conf: str | None, ref_name: str | None,
             image_name: str | None) -> None:
    """``ocilayout copy`` with its flags as typer hands them over (the names of its declaration in
    :mod:`.images`): checks every flag, copies, writes ``--digestfile``, prints the summary and the consumer
    warnings. Raises OcilayoutError subclasses (the boundary turns them into exit codes)."""
    from ..copy import Conversion, CopyOptions, Signing
    from ..copy import copy as do_copy
    from ..descriptor import Platform
    from ..errors import InvalidReference
    from .progress import progress_for

    try:
        platforms = tuple(Platform.parse(p) for p in platform)
    except ValueError as err:
        raise InvalidReference(str(err)) from err
    select = selection(all_, platforms, multi_arch)
    convert = Conversion(format=choice("--format", format_, ("oci", "v2s2")),  # type: ignore[arg-type]
                         compress=choice("--dest-compress-format", compress_format, ("gzip", "zstd", "none")),
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
    archive_format = choice("--dest-docker-archive-format", archive_format, ("legacy", "oci-hybrid"))
    with _using(src_reg, dst_reg), _archive_format(archive_format):
        result = do_copy(source, destination, options) if not additional_tag else \
            copy_tagged(source, destination, options, additional_tag)
    if digestfile is not None:
        _w.write_digestfile(digestfile, str(result.descriptor.digest).encode())
    if not quiet:
        extra = f", {result.signatures_copied} signatures carried" if result.signatures_copied else ""
        extra += ", signed" if result.signed else ""
        extra += f", {result.referrers_copied} referrers carried" if result.referrers_copied else ""
        echo(f"Copied {result.descriptor.digest} ({result.blobs_copied} blobs copied, "
             f"{result.blobs_skipped} already present{extra})", err=True)
    print_warnings(destination, result.descriptor.digest)


def copy_tagged(source: str, destination: str, options: CopyOptions, tags: list[str]) -> CopyResult:
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


def _archive_format(form: str | None) -> contextlib.AbstractContextManager[None]:
    if form is None:
        return contextlib.nullcontext()
    from ..dockertar_oci import use_docker_archive_format

    return use_docker_archive_format(form)


def choice(flag: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
    """``value`` when it is one of ``allowed`` (or None); raises InvalidArgument otherwise."""
    from ..errors import InvalidArgument

    if value is not None and value not in allowed:
        raise InvalidArgument(f"{flag} {value!r}: expected one of {', '.join(allowed)}")
    return value


def selection(all_: bool, platforms: tuple[Platform, ...], multi_arch: str | None) -> Selection:
    """--all / --platform / --multi-arch as one Selection; raises InvalidArgument when they conflict."""
    from ..copy import Selection
    from ..errors import InvalidArgument

    mode = choice("--multi-arch", multi_arch, ("all", "system", "index-only"))
    if mode is not None and all_ and mode != "all":
        raise InvalidArgument(f"--all and --multi-arch {mode} exclude each other")
    if mode == "system" and platforms:
        raise InvalidArgument("--multi-arch system and --platform exclude each other")
    return Selection(all=all_ or mode == "all", platforms=platforms, index_only=mode == "index-only")
