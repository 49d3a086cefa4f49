"""Layout maintenance commands: ``fsck``, ``gc`` and ``images``. Parse, call the library, print."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ..errors import IntegrityError, InvalidReference
from ._app import app
from ._display import echo, echo_json, escape

if TYPE_CHECKING:
    from ..reference import ImageReference
    from ..store import LayoutReader


def _echo_json(obj: Any) -> None:
    echo_json(json.dumps(obj, indent=2))


def _layout_ref(text: str) -> ImageReference:
    """``oci:PATH``, ``oci-archive:FILE`` (any layout transport) or a bare layout directory, as a reference
    to the whole layout; raises InvalidReference when it names an image in it."""
    from ..reference import TRANSPORTS, ImageReference, parse_reference

    if text.partition(":")[0] not in TRANSPORTS:
        return ImageReference("oci", text)
    ref = parse_reference(text)
    if ref.ref is not None or ref.digest is not None or ref.index is not None:
        what = ref.ref or ref.digest or f"@{ref.index}"
        raise InvalidReference(f"{text}: name a layout, not an image in it (drop ':{what}')")
    return ref


def _open_reader(text: str) -> LayoutReader:
    """A reader over the layout ``text`` names (directory or archive); raises NotFound when it is absent."""
    from ..transports import open_layout

    return open_layout(_layout_ref(text))


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def human_size(size: float) -> str:
    """Bytes as docker shows them (go-units HumanSizeWithPrecision(size, 3), decimal): ``12.3MB``."""
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    return f"{size:.3g}{units[i]}"


def human_duration(seconds: float) -> str:
    """A duration as docker shows it (go-units HumanDuration): "About a minute", "3 weeks", "2 years"."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = math.floor(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


@app.command()
def fsck(
    layout: str = typer.Argument(..., metavar="LAYOUT", help="oci:PATH, oci-archive:FILE, docker-archive:FILE, "
                                 "dir:PATH or a layout directory"),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    jobs: int = typer.Option(2, "--jobs", "-j", min=1, metavar="N", help="Threads hashing blobs."),
) -> None:
    """Check a layout: every reachable blob present, sized and hashed right; manifests and configs sound.

    Exits 0 when clean (warnings allowed), 4 when any error was found.
    """
    from ..validate import fsck as run_fsck

    with _open_reader(layout) as reader:
        report = run_fsck(reader, jobs=jobs)
    if as_json:
        _echo_json(report.to_dict())
    else:
        for p in report.problems:
            echo(str(p))
        echo(f"{report.location}: {report.blobs_checked} blobs, {report.bytes_hashed} bytes checked, "
                   f"{_n(len(report.errors), 'error')}, {_n(len(report.problems) - len(report.errors), 'note')}",
                   err=True)
    if not report.ok:
        raise IntegrityError(f"{report.location}: fsck found {_n(len(report.errors), 'error')}")


def _grace_seconds(value: float) -> float:
    """--grace must be a finite number >= 0: NaN compares false with every age, so it would act as --force."""
    if not math.isfinite(value) or value < 0:
        raise typer.BadParameter(f"{value} is not a number of seconds >= 0")
    return value


@app.command()
def gc(
    layout: str = typer.Argument(..., metavar="LAYOUT", help="oci:PATH or a layout directory"),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Only list what would be removed."),
    grace: float = typer.Option(3600.0, "--grace", metavar="SECONDS", callback=_grace_seconds,
                                help="Keep unreferenced blobs modified less than this long ago."),
    force: bool = typer.Option(False, "--force", help="Grace 0: also remove fresh unreferenced blobs "
                               "(ignored while another writer is live)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Remove blobs nothing in index.json reaches, and temp files of writers that died."""
    from ..gc import gc as run_gc
    from ..transports import open_store

    result = run_gc(open_store(_layout_ref(layout)), dry_run=dry_run, grace=0.0 if force else grace)
    if as_json:
        _echo_json(result.to_dict())
        return
    verb = "would remove" if dry_run else "removed"
    for digest, size in result.removed:
        echo(f"{verb} {digest} ({human_size(size)})")
    for name, size in result.temp_files_removed:
        echo(f"{verb} {name} ({human_size(size)}, stale temp file)")
    echo(f"{verb} {len(result.removed)} blobs and {len(result.temp_files_removed)} temp files, "
               f"{human_size(result.bytes_freed)} ({result.bytes_freed} bytes)")
    if result.kept_young:
        echo(f"kept {len(result.kept_young)} unreferenced blobs younger than the grace period "
                   "(a copy may be writing them; --force removes them)", err=True)


@app.command()
def images(
    layout: str = typer.Argument(..., metavar="LAYOUT", help="oci:PATH, oci-archive:FILE, docker-archive:FILE, "
                                 "dir:PATH or a layout directory"),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
) -> None:
    """List a layout's images like `docker images`: REPOSITORY TAG IMAGE ID CREATED SIZE PLATFORM."""
    from ..listing import list_images

    path = _layout_ref(layout).path
    name = Path(path).name
    if name.endswith(".tar"):
        name = name[:-4]
    with _open_reader(layout) as reader:
        reader.check_layout_file()  # fsck reports a bad oci-layout; a listing refuses to read past it
        rows = list_images(reader, name or path)
    if as_json:
        _echo_json([r.to_dict() for r in rows])
        return
    now = datetime.now(UTC)
    table: list[tuple[str, ...]] = [("REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "PLATFORM")]
    for r in rows:
        created = f"{human_duration((now - r.created).total_seconds())} ago" if r.created else "N/A"
        size = human_size(r.size) if r.size is not None else "N/A"
        table.append(tuple(escape(c) for c in (r.repository, r.tag, r.image_id.short, created, size,
                                               ",".join(r.platforms))))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        echo("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
