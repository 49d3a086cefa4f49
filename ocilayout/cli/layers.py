"""Layer commands: append, flatten, normalize (docs/layers.md).

Each reads SOURCE, builds the edit as an overlay of it and writes it with the shared write path and flags
(:mod:`ocilayout.cli._write`): DESTINATION, or in place onto SOURCE for oci: and oci-archive:.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from . import _options as _o
from . import _write as w
from ._app import app

if TYPE_CHECKING:
    from ..descriptor import Platform
    from ..edit.overlay import OverlaySource
    from ..transports.base import Source

_SRC_HELP = "oci:PATH[:REF], oci-archive:FILE[:REF], dir:PATH or docker-archive:FILE[:REF]"
_DST_HELP = "Where to write the result (default: SOURCE itself, for oci: and oci-archive:)."
_PLATFORM_HELP = "os/arch[/variant]: edit only this image of an index (repeatable; default every image)."
_TS_HELP = ("Set every time to this (seconds, or RFC 3339 like 1980-01-01T00:00:00Z); default: clamp to "
            "$SOURCE_DATE_EPOCH when set.")


def _platforms(values: list[str]) -> tuple[Platform, ...]:
    from ..edit.config import parse_platforms

    return parse_platforms(values)


def _compression(value: str | None, flag: str = "--compress") -> str | None:
    from ..errors import InvalidArgument

    if value is not None and value not in ("gzip", "zstd", "none"):
        raise InvalidArgument(f"{flag} {value!r}: expected one of gzip, zstd, none")
    return value


@app.command()
def append(
    images: list[str] = typer.Argument(..., metavar="SOURCE [DESTINATION]",
                                       help=f"{_SRC_HELP}; with --empty, only DESTINATION."),
    layer: list[Path] = typer.Option([], "--layer", "-l", metavar="TAR|DIR",
                                     help="A layer tar (gzip/zstd/none, detected) or a directory (repeatable)."),
    compress: str = typer.Option("gzip", "--compress", metavar="gzip|zstd|none", help="Compression of new layers."),
    level: int | None = typer.Option(None, "--level", metavar="N", help="Compression level (codec default)."),
    history: str | None = typer.Option(None, "--history", metavar="TEXT",
                                       help="created_by of the new history entries (default 'ocilayout append')."),
    timestamp: str | None = typer.Option(None, "--timestamp", metavar="TIME", help=_TS_HELP),
    keep_owners: bool = typer.Option(False, "--keep-owners", help="Keep files' uid/gid (default 0/0)."),
    empty: bool = typer.Option(False, "--empty", help="Start from an empty image (no SOURCE)."),
    base: str | None = typer.Option(None, "--base", metavar="empty", help="--base empty is --empty."),
    platform: list[str] = typer.Option([], "--platform", metavar="OS/ARCH[/VARIANT]",
                                       help=_PLATFORM_HELP + " With --empty: the new image's."),
    ref_name: str | None = _o.REF_NAME,
    image_name: str | None = _o.IMAGE_NAME,
    quiet: bool = _o.QUIET,
    digestfile: Path | None = _o.DIGESTFILE,
    jobs: int = _o.JOBS,
) -> None:
    """Append layers made from tars or directories (deterministic: sorted, owners 0/0, mtimes clamped to
    SOURCE_DATE_EPOCH); existing layers are kept as they are."""
    from ..edit.append import AppendOptions, append_layers, empty_image
    from ..errors import InvalidArgument
    from ..layer.entries import policy_for
    from ..reference import parse_reference
    from ..selection import host_platform

    if base is not None and base != "empty":
        raise InvalidArgument(f"--base {base!r}: the only base is 'empty' (give the image as SOURCE instead)")
    empty = empty or base == "empty"
    if not 1 <= len(images) <= (1 if empty else 2):
        raise InvalidArgument("with --empty give only DESTINATION" if empty else "give SOURCE and, optionally, "
                              "DESTINATION")
    platforms = _platforms(platform)
    options = AppendOptions(compression=_compression(compress) or "gzip", level=level, history=history,
                            policy=policy_for(timestamp, keep_owners=keep_owners),
                            platforms=() if empty else platforms)
    if empty:
        if len(platforms) > 1:
            raise InvalidArgument("--empty makes one image: give at most one --platform")
        plat = platforms[0] if platforms else host_platform()
        dest = images[0]
        ref = parse_reference(dest)

        def build(_src: Source | None) -> OverlaySource:
            return append_layers(empty_image(ref, plat, options.policy), layer, options)

        w.run_edit(build, None, dest, ref_name=ref_name, image_name=image_name, quiet=quiet, digestfile=digestfile,
                   jobs=jobs, summary="Appended to an empty image in")
        return
    w.run_edit(lambda src: append_layers(w.given(src), layer, options), images[0],
               images[1] if len(images) > 1 else None, ref_name=ref_name, image_name=image_name, quiet=quiet,
               digestfile=digestfile, jobs=jobs, summary="Appended layers, written to")


@app.command()
def flatten(
    source: str = typer.Argument(..., metavar="SOURCE", help=_SRC_HELP),
    destination: str | None = typer.Argument(None, metavar="[DESTINATION]", help=_DST_HELP),
    compress: str = typer.Option("gzip", "--compress", metavar="gzip|zstd|none", help="Compression of the layer."),
    level: int | None = typer.Option(None, "--level", metavar="N", help="Compression level (codec default)."),
    history: str | None = typer.Option(None, "--history", metavar="TEXT",
                                       help="created_by of the one history entry (default 'ocilayout flatten')."),
    platform: list[str] = typer.Option([], "--platform", metavar="OS/ARCH[/VARIANT]", help=_PLATFORM_HELP),
    ref_name: str | None = _o.REF_NAME,
    image_name: str | None = _o.IMAGE_NAME,
    quiet: bool = _o.QUIET,
    digestfile: Path | None = _o.DIGESTFILE,
    jobs: int = _o.JOBS,
) -> None:
    """Squash every layer of the image into one, whiteouts and opaque directories applied."""
    from ..edit.flatten import FlattenOptions
    from ..edit.flatten import flatten as do_flatten

    options = FlattenOptions(compression=_compression(compress) or "gzip", level=level, history=history,
                             platforms=_platforms(platform))
    w.run_edit(lambda src: do_flatten(w.given(src), options), source, destination, ref_name=ref_name,
               image_name=image_name, quiet=quiet, digestfile=digestfile, jobs=jobs, summary="Flattened, written to")


@app.command()
def normalize(
    source: str = typer.Argument(..., metavar="SOURCE", help=_SRC_HELP),
    destination: str | None = typer.Argument(None, metavar="[DESTINATION]", help=_DST_HELP),
    timestamp: str | None = typer.Option(None, "--timestamp", metavar="TIME", help=_TS_HELP),
    all_layers: bool = typer.Option(False, "--all-layers",
                                    help="Rewrite base layers too (default: only layers ocilayout wrote)."),
    keep_owners: bool = typer.Option(False, "--keep-owners", help="Keep entries' uid/gid and names."),
    compress: str | None = typer.Option(None, "--compress", metavar="gzip|zstd|none",
                                        help="Codec of rewritten layers (default: each layer's own)."),
    level: int | None = typer.Option(None, "--level", metavar="N", help="Compression level (codec default)."),
    platform: list[str] = typer.Option([], "--platform", metavar="OS/ARCH[/VARIANT]", help=_PLATFORM_HELP),
    ref_name: str | None = _o.REF_NAME,
    image_name: str | None = _o.IMAGE_NAME,
    quiet: bool = _o.QUIET,
    digestfile: Path | None = _o.DIGESTFILE,
    jobs: int = _o.JOBS,
) -> None:
    """Make the image reproducible: times in config, history and layer tars set (--timestamp) or clamped
    (SOURCE_DATE_EPOCH), tar entries sorted, owners fixed, pinned recompression."""
    from ..edit.normalize import NormalizeOptions
    from ..edit.normalize import normalize as do_normalize
    from ..layer.entries import policy_for

    options = NormalizeOptions(policy=policy_for(timestamp, keep_owners=keep_owners), all_layers=all_layers,
                               compression=_compression(compress), level=level, platforms=_platforms(platform))
    w.run_edit(lambda src: do_normalize(w.given(src), options), source, destination, ref_name=ref_name,
               image_name=image_name, quiet=quiet, digestfile=digestfile, jobs=jobs, summary="Normalized, written to")
