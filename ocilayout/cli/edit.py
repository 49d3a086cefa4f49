"""Edit commands: mutate (config, annotations, platform), and the helpers every edit command shares.

:func:`write_edited` is how an edit command writes its result (M2/M3's commands use it too): DST, or in
place onto SRC for a layout; ``--ref-name`` / ``--image-name``; the new digest on stdout and in
``--digestfile``; consumer warnings (:mod:`ocilayout.compat`) on stderr.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ._app import app
from ._display import echo

if TYPE_CHECKING:
    from ..copy import CopyResult
    from ..digest import Digest
    from ..edit.overlay import OverlaySource
    from ..refname import RefNaming
    from ..transports.base import Source

REF_NAME_HELP = ("How the image is named in an oci:/oci-archive: index.json: tag (containerd/BuildKit: the tag, "
                 "plus io.containerd.image.name with --image-name), full (Jib: the full reference), none "
                 "(ko/rules_oci: unnamed). Default: the destination's name as typed.")
IMAGE_NAME_HELP = "The full reference (REGISTRY/REPO[:TAG]) --ref-name tag or full records."


def naming(ref_name: str | None, image_name: str | None) -> RefNaming | None:
    """``--ref-name`` / ``--image-name`` as a RefNaming (None when neither is given); raises InvalidArgument."""
    from ..errors import InvalidArgument
    from ..refname import MODES, RefNaming

    if ref_name is None and image_name is None:
        return None
    if ref_name is not None and ref_name not in MODES:
        raise InvalidArgument(f"--ref-name {ref_name!r}: expected one of {', '.join(MODES)}")
    return RefNaming(ref_name, image_name)


def check_destination(source: str, destination: str | None, names: RefNaming | None) -> str:
    """The reference to write (``destination``, or ``source`` for an in-place edit), checked before anything
    is read: an in-place edit needs a named image (``oci:PATH:TAG``); names must fit the mode."""
    from ..errors import InvalidArgument
    from ..reference import parse_reference

    src = parse_reference(source)
    if destination is None:
        if src.ref is None:
            raise InvalidArgument(f"{source}: an in-place edit writes back onto a named image of a layout "
                                  "(oci:PATH:TAG, oci-archive:FILE:TAG); give a DESTINATION")
        destination = source
    dst = parse_reference(destination)
    if names is not None:
        names.entry(dst.ref)  # raises now for names that do not fit
    return destination


def write_edited(make: Callable[[Source], OverlaySource], source: str, destination: str | None, *,
                 names: RefNaming | None = None, quiet: bool = False, digestfile: Path | None = None,
                 jobs: int = 4) -> CopyResult:
    """Open ``source``, build the edit with ``make``, write it to ``destination`` (None: in place) in one
    commit, print the new root digest on stdout (and into ``digestfile``), then the consumer warnings.
    An in-place edit without --ref-name keeps the names the entry had (its tag and containerd name)."""
    from ..copy import CopyOptions, Selection, copy_into
    from ..descriptor import CONTAINERD_NAME, REF_NAME
    from ..errors import InvalidArgument
    from ..transports import open_destination, open_source
    from .images import _check_writable, _write_digestfile
    from .progress import progress_for

    in_place = destination is None
    target = check_destination(source, destination, names)
    if digestfile is not None:
        _check_writable(digestfile)
    progress = progress_for("Writing", quiet)
    with open_source(source) as src:
        overlay = make(src)
        try:
            dst = open_destination(target)
            try:
                if in_place and dst.capabilities.names != "ref-name":
                    raise InvalidArgument(f"{source}: in-place edits are for oci: and oci-archive: layouts; give "
                                          "a DESTINATION")
                options = CopyOptions(select=Selection(all=True), jobs=jobs, progress=progress, naming=names)
                if in_place and names is None:
                    ann = src.root.annotations
                    result = copy_into(overlay, dst, options, name=ann.get(REF_NAME) or dst.ref.ref,
                                       image_name=ann.get(CONTAINERD_NAME))
                else:
                    result = copy_into(overlay, dst, options)
                dst.commit()
            finally:
                dst.close()
        finally:
            overlay.close()
    if progress is not None:
        progress.finish()
    digest = str(result.descriptor.digest)
    if digestfile is not None:
        _write_digestfile(digestfile, digest.encode())
    echo(digest)
    print_warnings(target, result.descriptor.digest)
    return result


def print_warnings(ref: str, digest: Digest | None = None) -> None:
    """The consumer warnings for what ``ref`` now holds (the image ``digest`` when given), one
    ``ocilayout: warning:`` line each on stderr. Advisory: the write is done, so a result that cannot be
    read back here (a name another writer made ambiguous) gives no warning rather than an error."""
    from ..compat import facts_of, warnings
    from ..errors import OcilayoutError

    try:
        lines = warnings(facts_of(ref, digest))
    except (OcilayoutError, OSError):
        return
    for line in lines:
        echo(f"ocilayout: warning: {line}", err=True)


@app.command()
def mutate(
    source: str = typer.Argument(..., metavar="SOURCE-IMAGE",
                                 help="oci:PATH[:REF], oci-archive:FILE[:REF], dir:PATH, docker-archive:FILE"),
    destination: str | None = typer.Argument(None, metavar="[DESTINATION-IMAGE]",
                                             help="Where to write (default: in place, for oci: and oci-archive:)."),
    env: list[str] = typer.Option([], "--env", metavar="K=V", help="Set an environment variable (repeatable)."),
    env_rm: list[str] = typer.Option([], "--env-rm", metavar="K", help="Remove an environment variable."),
    label: list[str] = typer.Option([], "--label", metavar="K=V", help="Set a config label (repeatable)."),
    label_rm: list[str] = typer.Option([], "--label-rm", metavar="K", help="Remove a config label."),
    entrypoint: str | None = typer.Option(None, "--entrypoint", metavar="JSON|TEXT",
                                          help="A JSON array, or TEXT run as /bin/sh -c TEXT (as buildah config); "
                                               "'' removes it."),
    cmd: str | None = typer.Option(None, "--cmd", metavar="JSON|TEXT",
                                   help="A JSON array, or TEXT split into shell words (as buildah config); "
                                        "'' removes it."),
    user: str | None = typer.Option(None, "--user", help="Config User."),
    workdir: str | None = typer.Option(None, "--workdir", help="Config WorkingDir."),
    expose: list[str] = typer.Option([], "--expose", metavar="PORT[/PROTO]", help="Add an exposed port (tcp default)."),
    volume: list[str] = typer.Option([], "--volume", metavar="PATH", help="Add a volume (an absolute path)."),
    stop_signal: str | None = typer.Option(None, "--stop-signal", metavar="SIGNAL", help="Config StopSignal."),
    author: str | None = typer.Option(None, "--author", help="The config's author."),
    created: str | None = typer.Option(None, "--created", metavar="TIME",
                                       help="The config's created time: RFC 3339, or @SECONDS (e.g. "
                                            "@$SOURCE_DATE_EPOCH)."),
    os_: str | None = typer.Option(None, "--os", help="The config's os (and the index entry's platform)."),
    arch: str | None = typer.Option(None, "--arch", help="The config's architecture (and the index entry's)."),
    variant: str | None = typer.Option(None, "--variant", help="The config's variant ('' removes it)."),
    history: list[str] = typer.Option([], "--history", metavar="TEXT",
                                      help="Add an empty_layer history entry created_by TEXT (repeatable)."),
    annotation: list[str] = typer.Option([], "--annotation", metavar="K=V", help="Set a manifest annotation."),
    annotation_rm: list[str] = typer.Option([], "--annotation-rm", metavar="K", help="Remove a manifest annotation."),
    index_annotation: list[str] = typer.Option([], "--index-annotation", metavar="K=V",
                                               help="Set an annotation on the (root) index document."),
    index_annotation_rm: list[str] = typer.Option([], "--index-annotation-rm", metavar="K",
                                                  help="Remove an annotation from the root index."),
    platform: list[str] = typer.Option([], "--platform", metavar="OS/ARCH[/VARIANT]",
                                       help="Edit only this platform's image of an index (repeatable)."),
    ref_name: str | None = typer.Option(None, "--ref-name", metavar="tag|full|none", help=REF_NAME_HELP),
    image_name: str | None = typer.Option(None, "--image-name", metavar="NAME", help=IMAGE_NAME_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output (warnings still print)."),
    digestfile: Path | None = typer.Option(None, "--digestfile", help="Write the new manifest's digest here."),
    jobs: int = typer.Option(4, "--jobs", "-j", min=1, max=64, help="Blobs copied in parallel."),
) -> None:
    """Change an image's config (env, labels, entrypoint, ...), annotations or platform, in one call.

    Writes new configs and manifests and rewrites every index above them; unchanged images keep their
    digests, unknown config fields survive. Prints the new digest. See docs/edit.md."""
    from ..edit.config import mutate as do_mutate
    from ..edit.config import parse_changes, parse_platforms
    from ..errors import InvalidArgument

    changes = parse_changes(env=env, env_rm=env_rm, label=label, label_rm=label_rm, entrypoint=entrypoint, cmd=cmd,
                            user=user, workdir=workdir, expose=expose, volume=volume, stop_signal=stop_signal,
                            author=author, created=created, os=os_, arch=arch, variant=variant, history=history,
                            annotation=annotation, annotation_rm=annotation_rm, index_annotation=index_annotation,
                            index_annotation_rm=index_annotation_rm)
    platforms = parse_platforms(platform)
    if changes.empty:
        raise InvalidArgument("mutate: nothing to change (give --env, --label, --annotation, ...; "
                              "see ocilayout mutate --help)")
    names = naming(ref_name, image_name)
    write_edited(lambda src: do_mutate(src, changes, platforms=platforms), source, destination, names=names,
                 quiet=quiet, digestfile=digestfile, jobs=jobs)
