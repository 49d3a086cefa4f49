"""``mutate``: config, annotations and platform edits in one call (docs/edit.md).

The flags every edit command shares and its output live in :mod:`ocilayout.cli._write`; the write is
:func:`ocilayout.edit.write.write_edited`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from . import _options as _o
from . import _write as w
from ._app import app


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
    user: str | None = typer.Option(None, "--user", metavar="USER[:GROUP]", help="Config User."),
    workdir: str | None = typer.Option(None, "--workdir", metavar="DIR", help="Config WorkingDir."),
    expose: list[str] = typer.Option([], "--expose", metavar="PORT[/PROTO]", help="Add an exposed port (tcp default)."),
    volume: list[str] = typer.Option([], "--volume", metavar="PATH", help="Add a volume (an absolute path)."),
    stop_signal: str | None = typer.Option(None, "--stop-signal", metavar="SIGNAL", help="Config StopSignal."),
    author: str | None = typer.Option(None, "--author", metavar="TEXT", help="The config's author."),
    created: str | None = typer.Option(None, "--created", metavar="TIME",
                                       help="The config's created time: RFC 3339, or @SECONDS (e.g. "
                                            "@$SOURCE_DATE_EPOCH)."),
    os_: str | None = typer.Option(None, "--os", metavar="OS",
                                   help="The config's os (and the index entry's platform)."),
    arch: str | None = typer.Option(None, "--arch", metavar="ARCH",
                                    help="The config's architecture (and the index entry's)."),
    variant: str | None = typer.Option(None, "--variant", metavar="VARIANT",
                                       help="The config's variant ('' removes it)."),
    history: list[str] = typer.Option([], "--history", metavar="TEXT",
                                      help="Add an empty_layer history entry created_by TEXT (repeatable)."),
    annotation: list[str] = typer.Option([], "--annotation", metavar="K=V", help="Set a manifest annotation."),
    annotation_rm: list[str] = typer.Option([], "--annotation-rm", metavar="K", help="Remove a manifest annotation."),
    index_annotation: list[str] = typer.Option([], "--index-annotation", metavar="K=V",
                                               help="Set an annotation on the (root) index document."),
    index_annotation_rm: list[str] = typer.Option([], "--index-annotation-rm", metavar="K",
                                                  help="Remove an annotation from the root index."),
    descriptor_annotation: list[str] = typer.Option([], "--descriptor-annotation", metavar="K=V",
                                                    help="Set an annotation on each edited image's entry in its "
                                                         "index (with --platform: those platforms' entries)."),
    descriptor_annotation_rm: list[str] = typer.Option([], "--descriptor-annotation-rm", metavar="K",
                                                       help="Remove an annotation from those index entries."),
    platform: list[str] = typer.Option([], "--platform", metavar="OS/ARCH[/VARIANT]",
                                       help="Edit only this platform's image of an index (repeatable)."),
    ref_name: str | None = _o.REF_NAME,
    image_name: str | None = _o.IMAGE_NAME,
    quiet: bool = _o.QUIET,
    digestfile: Path | None = _o.DIGESTFILE,
    jobs: int = _o.JOBS,
) -> None:
    """Change an image's config (env, labels, entrypoint, ...), annotations or platform, in one call.

    Writes new configs and manifests and rewrites every index above them; unchanged images keep their
    digests, unknown config fields survive. Prints the new digest. See docs/edit.md."""
    from ..edit.config import mutate as do_mutate
    from ..edit.config import parse_changes, parse_platforms
    from ..errors import InvalidArgument
    from ._write import given as _given

    changes = parse_changes(env=env, env_rm=env_rm, label=label, label_rm=label_rm, entrypoint=entrypoint, cmd=cmd,
                            user=user, workdir=workdir, expose=expose, volume=volume, stop_signal=stop_signal,
                            author=author, created=created, os=os_, arch=arch, variant=variant, history=history,
                            annotation=annotation, annotation_rm=annotation_rm, index_annotation=index_annotation,
                            index_annotation_rm=index_annotation_rm, descriptor_annotation=descriptor_annotation,
                            descriptor_annotation_rm=descriptor_annotation_rm)
    platforms = parse_platforms(platform)
    if changes.empty:
        raise InvalidArgument("mutate: nothing to change (give --env, --label, --annotation, ...; "
                              "see ocilayout mutate --help)")
    w.run_edit(lambda src: do_mutate(_given(src), changes, platforms=platforms), source, destination,
               ref_name=ref_name, image_name=image_name, quiet=quiet, digestfile=digestfile, jobs=jobs,
               summary="Mutated, written to")
