"""Index and referrer commands: ``index create / add / remove`` and ``attach``. Parse, call the library, print.

Each takes the shared flags and output of :mod:`ocilayout.cli._write`: the digest it wrote on stdout (the
new index; the artifact manifest for attach) and in ``--digestfile``, a summary on stderr unless ``-q``, the
consumer warnings. The index commands also take ``--ref-name`` / ``--image-name``; attach writes no name.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from . import _options as _o
from . import _write as w
from ._app import app

if TYPE_CHECKING:
    from ..descriptor import Descriptor, Platform
    from ..digest import Digest
    from ..edit.index import IndexFormat

index_app = typer.Typer(name="index", help="Build or edit a multi-platform index from images of any local "
                        "transport (docs/index-attach.md).", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(index_app)

_IMAGE_HELP = "An image or index to list (repeatable): oci:PATH:TAG, oci-archive:FILE:TAG, dir:PATH, docker-archive:..."
_FLATTEN_HELP = "List the children of an index given with --image directly, instead of the index itself."
_INDEX = typer.Argument(..., metavar="INDEX", help="The index to edit (oci:PATH:TAG, oci-archive:FILE:TAG).")
_INDEX_DST = typer.Argument(None, metavar="[DESTINATION]", help="Where to write the result (default: INDEX, in place).")
_DUP_HELP = "Allow two images of one platform (default: refused; index add replaces the old entry)."


def _annotations(values: list[str], flag: str = "--annotation") -> dict[str, str]:
    from ..edit.config import parse_pairs

    return parse_pairs(flag, values)


def _platforms(values: list[str]) -> list[Platform]:
    from ..edit.config import parse_platforms

    return list(parse_platforms(values))


def _digests(values: list[str]) -> list[Digest]:
    from ..digest import Digest

    return [Digest.parse(d) for d in values]


def _format(value: str) -> IndexFormat:
    from ..errors import InvalidArgument

    if value not in ("oci", "v2s2"):
        raise InvalidArgument(f"--format {value!r}: expected one of oci, v2s2")
    return "oci" if value == "oci" else "v2s2"


def _listed(descs: tuple[Descriptor, ...]) -> str:
    return ", ".join(f"{d.platform or 'index'} {d.digest}" for d in descs)


@index_app.command("create")
def create(
    destination: str = typer.Argument(..., metavar="DESTINATION", help="Where to write the index: oci:PATH:TAG, "
                                      "oci-archive:FILE:TAG (an existing name moves)."),
    image: list[str] = typer.Option([], "--image", "-i", metavar="IMAGE", help=_IMAGE_HELP),
    flatten: bool = typer.Option(False, "--flatten", help=_FLATTEN_HELP),
    allow_duplicates: bool = typer.Option(False, "--allow-duplicate-platforms", help=_DUP_HELP),
    annotation: list[str] = typer.Option([], "--annotation", metavar="KEY=VALUE",
                                          help="An annotation on the index (repeatable; oci format only)."),
    format_: str = typer.Option("oci", "--format", "-f", metavar="oci|v2s2",
                                help="An OCI index, or a Docker manifest list (every image must be Docker v2s2)."),
    ref_name: str | None = _o.REF_NAME,
    image_name: str | None = _o.IMAGE_NAME,
    quiet: bool = _o.QUIET,
    digestfile: Path | None = _o.DIGESTFILE,
    jobs: int = _o.JOBS,
) -> None:
    """Write a new index listing the --image images (platforms from their configs), copying them in with
    one commit; two images of one platform are refused."""
    from ..edit.index import create_index

    fmt = _format(format_)
    ann = _annotations(annotation)
    names = w.naming(ref_name, image_name)
    w.check_digestfile(digestfile, destination, *image)
    res = create_index(destination, image, flatten=flatten, allow_duplicate_platforms=allow_duplicates,
                       annotations=ann, format=fmt, naming=names, jobs=jobs, progress=w.progress(quiet))
    w.report(res.descriptor.digest, digestfile=digestfile, quiet=quiet, written=destination,
             summary=f"Wrote index {res.descriptor.digest} with {len(res.added)} entries: {_listed(res.added)}")


@index_app.command("add")
def add(
    index: str = _INDEX,
    destination: str | None = _INDEX_DST,
    image: list[str] = typer.Option([], "--image", "-i", metavar="IMAGE", help=_IMAGE_HELP),
    flatten: bool = typer.Option(False, "--flatten", help=_FLATTEN_HELP),
    allow_duplicates: bool = typer.Option(False, "--allow-duplicate-platforms", help=_DUP_HELP),
    ref_name: str | None = _o.REF_NAME,
    image_name: str | None = _o.IMAGE_NAME,
    quiet: bool = _o.QUIET,
    digestfile: Path | None = _o.DIGESTFILE,
    jobs: int = _o.JOBS,
) -> None:
    """Add images to an index; an image of a platform the index lists replaces that entry (the others keep
    their digests)."""
    from ..edit.index import add_to_index

    names = w.naming(ref_name, image_name)
    target = w.check_destination(index, destination, names)
    w.check_digestfile(digestfile, index, target, *image)
    res = add_to_index(index, image, dst=destination, flatten=flatten, allow_duplicate_platforms=allow_duplicates,
                       naming=names, jobs=jobs, progress=w.progress(quiet))
    replaced = f"; replaced {_listed(res.dropped)}" if res.dropped else ""
    w.report(res.descriptor.digest, digestfile=digestfile, quiet=quiet, written=target,
             summary=f"Wrote index {res.descriptor.digest}: added {_listed(res.added)}{replaced}")


@index_app.command("remove")
def remove(
    index: str = _INDEX,
    destination: str | None = _INDEX_DST,
    platform: list[str] = typer.Option([], "--platform", metavar="os/arch[/variant]",
                                       help="Remove the entries of this platform (repeatable; os/arch: any variant)."),
    digest: list[str] = typer.Option([], "--digest", metavar="DIGEST", help="Remove the entry of this digest "
                                     "(repeatable)."),
    ref_name: str | None = _o.REF_NAME,
    image_name: str | None = _o.IMAGE_NAME,
    quiet: bool = _o.QUIET,
    digestfile: Path | None = _o.DIGESTFILE,
    jobs: int = _o.JOBS,
) -> None:
    """Remove entries from an index by platform or digest (their blobs stay until gc)."""
    from ..edit.index import remove_from_index

    platforms = _platforms(platform)
    digests = _digests(digest)
    names = w.naming(ref_name, image_name)
    target = w.check_destination(index, destination, names)
    w.check_digestfile(digestfile, index, target)
    res = remove_from_index(index, platforms=platforms, digests=digests, dst=destination, naming=names, jobs=jobs,
                            progress=w.progress(quiet))
    w.report(res.descriptor.digest, digestfile=digestfile, quiet=quiet, written=target,
             summary=f"Wrote index {res.descriptor.digest}: removed {_listed(res.dropped)}")


@app.command()
def attach(
    image: str = typer.Argument(..., metavar="IMAGE", help="The subject: oci:PATH:TAG, oci:PATH@DIGEST, "
                                "oci-archive:FILE:TAG."),
    file: Path = typer.Argument(..., metavar="FILE", help="The file to attach (an SBOM, an attestation, ...)."),
    artifact_type: str = typer.Option(..., "--artifact-type", metavar="TYPE",
                                      help="The artifact's type, e.g. application/spdx+json."),
    media_type: str = typer.Option("application/octet-stream", "--media-type", metavar="TYPE",
                                   help="The media type of FILE's layer."),
    annotation: list[str] = typer.Option([], "--annotation", metavar="KEY=VALUE",
                                         help="An annotation on the artifact manifest (repeatable)."),
    platform: str | None = typer.Option(None, "--platform", metavar="os/arch[/variant]",
                                        help="Attach to this platform's image of an index (default: IMAGE itself)."),
    quiet: bool = _o.QUIET,
    digestfile: Path | None = _o.DIGESTFILE,
) -> None:
    """Attach FILE to IMAGE as an OCI 1.1 referrer (an artifact manifest whose subject is the image), listed
    under the image's sha256-<hex> fallback tag; kept by gc and carried by copy."""
    from ..edit.attach import attach as do_attach

    ann = _annotations(annotation)
    plat = _platforms([platform])[0] if platform is not None else None
    w.check_digestfile(digestfile, image)
    res = do_attach(image, file, artifact_type=artifact_type, media_type=media_type, annotations=ann,
                    platform=plat)
    w.report(res.descriptor.digest, digestfile=digestfile, quiet=quiet,
             summary=f"Attached {res.descriptor.digest} ({artifact_type}) to {res.subject.digest}, listed under "
                     f"{res.tag}")
