"""Layer commands: append, flatten, normalize (docs/layers.md).

Each reads SOURCE, builds the edit as an overlay of it and writes that to DESTINATION (any writable
transport) in one commit; without DESTINATION the edit is written onto SOURCE itself, which needs a
destination that holds several names (oci:, oci-archive:). The new root digest goes to stdout (and to
--digestfile).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ._app import app
from ._display import echo

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
    from ..descriptor import Platform
    from ..errors import InvalidArgument

    try:
        return tuple(Platform.parse(p) for p in values)
    except ValueError as err:
        raise InvalidArgument(f"--platform: {err}") from err


def _compression(value: str | None, flag: str = "--compress") -> str | None:
    from ..errors import InvalidArgument

    if value is not None and value not in ("gzip", "zstd", "none"):
        raise InvalidArgument(f"{flag} {value!r}: expected one of gzip, zstd, none")
    return value


def _given(build: Callable[[Source], OverlaySource]) -> Callable[[Source | None], OverlaySource]:
    """``build`` for commands that always read a SOURCE."""

    def run(src: Source | None) -> OverlaySource:
        assert src is not None
        return build(src)

    return run


def _run(source: str | None, destination: str | None, build: Callable[[Source | None], OverlaySource],
         digestfile: Path | None, quiet: bool, verb: str) -> None:
    """Open SOURCE (None: nothing to read), build the overlay, write it to DESTINATION (default SOURCE),
    print the new digest."""
    import contextlib

    from ..edit import write_edit
    from ..errors import InvalidArgument
    from ..transports import open_destination, open_source
    from .images import _check_writable, _write_digestfile

    target = destination or source
    assert target is not None
    if digestfile is not None:
        _check_writable(digestfile)
    with contextlib.ExitStack() as stack:
        src = stack.enter_context(open_source(source)) if source is not None else None
        dst = open_destination(target)
        stack.callback(dst.close)
        caps = dst.capabilities
        if destination is None and not (caps.multi_image and caps.names == "ref-name"):
            raise InvalidArgument(f"{source} cannot be edited in place (only layouts that name images by ref "
                                  "name, oci: and oci-archive:, keep their other images): give a DESTINATION")
        overlay = stack.enter_context(build(src))
        result = write_edit(overlay, dst)
    digest = str(result.descriptor.digest)
    if digestfile is not None:
        _write_digestfile(digestfile, digest.encode())
    if not quiet:
        echo(f"{verb} {target}", err=True)
    echo(digest)


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
    platform: list[str] = typer.Option([], "--platform", help=_PLATFORM_HELP + " With --empty: the new image's."),
    digestfile: Path | None = typer.Option(None, "--digestfile", help="Write the new manifest's digest here."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the digest."),
) -> None:
    """Append layers made from tars or directories (deterministic: sorted, owners 0/0, mtimes clamped to
    SOURCE_DATE_EPOCH); existing layers are kept as they are."""
    from ..edit.append import AppendOptions, append_layers, empty_image
    from ..errors import InvalidArgument
    from ..layer.entries import policy_for
    from ..plan import host_platform
    from ..reference import parse_reference

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

        _run(None, dest, build, digestfile, quiet, "Appended to an empty image in")
        return
    _run(images[0], images[1] if len(images) > 1 else None, _given(lambda src: append_layers(src, layer, options)),
         digestfile, quiet, "Appended layers, written to")


@app.command()
def flatten(
    source: str = typer.Argument(..., metavar="SOURCE", help=_SRC_HELP),
    destination: str | None = typer.Argument(None, metavar="[DESTINATION]", help=_DST_HELP),
    compress: str = typer.Option("gzip", "--compress", metavar="gzip|zstd|none", help="Compression of the layer."),
    level: int | None = typer.Option(None, "--level", metavar="N", help="Compression level (codec default)."),
    history: str | None = typer.Option(None, "--history", metavar="TEXT",
                                       help="created_by of the one history entry (default 'ocilayout flatten')."),
    platform: list[str] = typer.Option([], "--platform", help=_PLATFORM_HELP),
    digestfile: Path | None = typer.Option(None, "--digestfile", help="Write the new manifest's digest here."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the digest."),
) -> None:
    """Squash every layer of the image into one, whiteouts and opaque directories applied."""
    from ..edit.flatten import FlattenOptions
    from ..edit.flatten import flatten as do_flatten

    options = FlattenOptions(compression=_compression(compress) or "gzip", level=level, history=history,
                             platforms=_platforms(platform))
    _run(source, destination, _given(lambda src: do_flatten(src, options)), digestfile, quiet,
         "Flattened, written to")


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
    platform: list[str] = typer.Option([], "--platform", help=_PLATFORM_HELP),
    digestfile: Path | None = typer.Option(None, "--digestfile", help="Write the new manifest's digest here."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the digest."),
) -> None:
    """Make the image reproducible: times in config, history and layer tars set (--timestamp) or clamped
    (SOURCE_DATE_EPOCH), tar entries sorted, owners fixed, pinned recompression."""
    from ..edit.normalize import NormalizeOptions
    from ..edit.normalize import normalize as do_normalize
    from ..layer.entries import policy_for

    options = NormalizeOptions(policy=policy_for(timestamp, keep_owners=keep_owners), all_layers=all_layers,
                               compression=_compression(compress), level=level, platforms=_platforms(platform))
    _run(source, destination, _given(lambda src: do_normalize(src, options)), digestfile, quiet,
         "Normalized, written to")
