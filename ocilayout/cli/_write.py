"""What every write command shares on the command line (docs/edit.md "Flags every edit takes").

The naming flags (``--ref-name`` / ``--image-name``), ``--digestfile``, ``-q`` and ``--jobs`` (declared once,
in :mod:`._options`) mean the same in every command, and the output is the same: the new digest on stdout
(and in ``--digestfile``), a progress bar and a one-line summary on stderr unless ``-q``, then the consumer
warnings (:mod:`ocilayout.compat`), which ``-q`` keeps. The write itself is
:func:`ocilayout.edit.write.write_edited`. No typer here (``copy``'s fast path uses these helpers).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ._display import echo

if TYPE_CHECKING:
    from ..copy import CopyResult
    from ..digest import Digest
    from ..edit.overlay import OverlaySource
    from ..refname import RefNaming
    from ..transports.base import Source
    from .progress import BarProgress

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
    """The reference an edit or copy writes (``destination``, else ``source``), its names checked against
    ``names`` before anything is read; raises InvalidArgument."""
    from ..edit.write import edit_target

    edit_target(source, destination, names)
    return destination if destination is not None else source


def write_digestfile(path: Path, data: bytes) -> None:
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


def check_writable(path: Path) -> None:
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


def check_digestfile(digestfile: Path | None, *refs: str | None) -> None:
    """Refuse an unwritable ``--digestfile`` before anything is written, and one inside (or equal to) the
    local location of one of ``refs`` (the images read and written): writing the digest there would
    overwrite a layout's ``index.json``, a blob or the archive itself. Raises NotFound, LayoutError,
    InvalidArgument."""
    if digestfile is None:
        return
    import os

    from ..errors import InvalidArgument, OcilayoutError
    from ..reference import parse_reference
    from ..transports import transport
    check_writable(digestfile)
    target = Path(os.path.realpath(digestfile))
    for ref in refs:
        if ref is None:
            continue
        try:
            r = parse_reference(ref)
            if transport(r.transport).remote:
                continue
        except OcilayoutError:
            continue  # reported where the reference is used
        where = Path(os.path.realpath(r.path))
        if target == where or where in target.parents:
            raise InvalidArgument(f"--digestfile {digestfile} is inside {ref}: writing the digest there would "
                                  "overwrite what the command reads or writes")


def progress(quiet: bool) -> BarProgress | None:
    """The progress bar of a write (None with ``-q`` or when stderr is no terminal)."""
    from .progress import progress_for

    return progress_for("Writing", quiet)


def report(digest: Digest | str, *, digestfile: Path | None, quiet: bool, summary: str | None = None,
           written: str | None = None) -> None:
    """The end of every edit command: ``digest`` into ``digestfile`` and on stdout, ``summary`` on stderr
    unless ``quiet``, and the consumer warnings for ``written`` (the reference written; None: none apply)."""
    text = str(digest)
    if digestfile is not None:
        write_digestfile(digestfile, text.encode())
    echo(text)
    if summary is not None and not quiet:
        echo(summary, err=True)
    if written is not None:
        from ..digest import Digest as _Digest

        print_warnings(written, digest if isinstance(digest, _Digest) else _Digest.parse(text))


def given(src: Source | None) -> Source:
    """The SOURCE of a command that always reads one (``run_edit`` opens it whenever it is given)."""
    assert src is not None
    return src


def run_edit(make: Callable[[Source | None], OverlaySource], source: str | None, destination: str | None, *,
             ref_name: str | None, image_name: str | None, quiet: bool, digestfile: Path | None, jobs: int,
             summary: str) -> CopyResult:
    """Parse the shared flags, write the edit ``make`` builds (:func:`~ocilayout.edit.write.write_edited`:
    DESTINATION, or in place onto SOURCE) and :func:`report` it; ``summary`` is followed by the reference
    written."""
    from ..edit.write import write_edited

    names = naming(ref_name, image_name)
    target = check_destination(source, destination, names) if source is not None else destination
    assert target is not None
    check_digestfile(digestfile, source, target)
    bar = progress(quiet)
    result = write_edited(make, source, destination, naming=names, jobs=jobs, progress=bar)
    report(result.descriptor.digest, digestfile=digestfile, quiet=quiet, summary=f"{summary} {target}",
           written=target)
    return result


def print_warnings(ref: str, digest: Digest | None = None) -> None:
    """The consumer warnings for what ``ref`` now holds (the image ``digest`` when given), one
    ``ocilayout: warning:`` line each on stderr; none for a remote transport (a registry: reading the result
    back would cost round trips). Advisory: the write is done, so a result that cannot be read back here (a
    name another writer made ambiguous) gives no warning rather than an error."""
    from ..compat import facts_of, warnings
    from ..errors import OcilayoutError
    from ..reference import parse_reference
    from ..transports import transport

    try:
        if transport(parse_reference(ref).transport).remote:
            return
        lines = warnings(facts_of(ref, digest))
    except (OcilayoutError, OSError):
        return
    for line in lines:
        echo(f"ocilayout: warning: {line}", err=True)
