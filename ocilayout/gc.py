"""gc: delete the blobs of a layout that nothing in ``index.json`` reaches, and temp files of dead writers.

Safety rules (docs/gc.md explains them):

* reachability is computed from ``index.json`` with :func:`ocilayout.graph.walk` (the walk copy and fsck
  use): through indexes, manifests, configs, layers and subjects; untyped entries are sniffed for a
  manifest and followed when they are one;
* if any manifest-like descriptor on the way is missing or unreadable, gc refuses (LayoutError): it cannot
  prove what that manifest referenced is unreachable;
* the layout lock is held from the walk to the last unlink, so no ``set_ref`` lands in between;
* blobs modified less than ``grace`` seconds ago are kept: a concurrent copy writes blobs first and tags
  last, and its fresh blobs are unreferenced until then;
* while another ocilayout writer is live in the layout (its temp file or staging directory is flock()ed),
  no blob is removed at all;
* temp files and staging directories are removed only when their writer is gone (the flock is free) and
  they are over a minute old.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import graph
from .digest import Digest
from .errors import InvalidArgument, LayoutError, OcilayoutError
from .fsutil import TMP_PREFIX, fsync_dir, stale_temp_files
from .store import LayoutStore

__all__ = ["DEFAULT_GRACE", "GcResult", "gc", "reachable_digests"]

#: Unreferenced blobs younger than this (seconds, by mtime) are kept unless the caller forces.
DEFAULT_GRACE = 3600.0

@dataclass(frozen=True, slots=True)
class GcResult:
    """What gc removed (or, with ``dry_run``, would remove)."""

    location: str
    dry_run: bool
    removed: list[tuple[Digest, int]] = field(default_factory=list)
    kept_young: list[tuple[Digest, int]] = field(default_factory=list)
    temp_files_removed: list[tuple[str, int]] = field(default_factory=list)
    live_writers: int = 0
    reachable: int = 0

    @property
    def bytes_freed(self) -> int:
        """Bytes of blobs and temp files removed (or that would be)."""
        return sum(s for _, s in self.removed) + sum(s for _, s in self.temp_files_removed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "dry_run": self.dry_run,
            "removed": [{"digest": str(d), "size": s} for d, s in self.removed],
            "kept_young": [{"digest": str(d), "size": s} for d, s in self.kept_young],
            "temp_files_removed": [{"path": p, "size": s} for p, s in self.temp_files_removed],
            "live_writers": self.live_writers,
            "reachable": self.reachable,
            "bytes_freed": self.bytes_freed,
        }


def reachable_digests(store: LayoutStore) -> set[Digest]:
    """Every digest reachable from ``index.json`` (through :func:`ocilayout.graph.walk`, the walk copy and
    fsck use); raises LayoutError when that cannot be decided.

    A missing or unreadable manifest, index or untyped entry makes the answer unknowable (what it
    referenced would look unreachable), and so does an ``index.json`` entry that cannot be parsed: both
    raise. A missing layer or config, a missing foreign layer and a referrer's subject that is not in the
    layout are fine: they reference nothing stored here.
    """
    try:
        roots = [e.descriptor for e in store.entries()]
    except OcilayoutError as err:
        raise LayoutError(f"gc refused: cannot read index.json: {err}") from err
    problems: list[graph.WalkProblem] = []
    seen: set[Digest] = set()
    for node in graph.walk(store, roots, problems):
        seen.add(node.descriptor.digest)
    for p in problems:
        if p.missing and p.role in (graph.CONFIG, graph.LAYER, graph.SCHEMA1_LAYER, graph.SUBJECT):
            continue
        raise LayoutError(f"gc refused: {store.root}: cannot read {p.digest} ({p.message}); run ocilayout fsck")
    return seen


def gc(store: LayoutStore, *, dry_run: bool = False, grace: float = DEFAULT_GRACE) -> GcResult:
    """Remove unreachable blobs older than ``grace`` seconds and stale temp files; returns what went.

    Holds the layout lock throughout. With ``dry_run`` nothing is deleted and the result lists what would
    be. While another ocilayout writer is live in the layout (a temp file or staging directory whose flock
    is held) no blob is removed at all, whatever ``grace`` says: that writer may be about to tag blobs that
    look unreferenced now, including old ones it decided to reuse. Stale temp files still go. Raises
    LayoutError when reachability cannot be decided (see :func:`reachable_digests`); nothing is deleted.
    Raises InvalidArgument for a NaN, infinite or negative ``grace`` (NaN compares false and would act as 0).
    """
    import math

    if not math.isfinite(grace) or grace < 0:
        raise InvalidArgument(f"grace must be a finite number of seconds >= 0, not {grace!r}")
    root = store.root
    with store.locked():
        live = _live_writers(store)
        keep = reachable_digests(store)
        now = time.time()
        removed: list[tuple[Digest, int]] = []
        young: list[tuple[Digest, int]] = []
        for digest, size in store.all_blobs():
            if digest in keep:
                continue
            try:
                mtime = store.blob_path(digest).lstat().st_mtime
            except FileNotFoundError:
                continue
            if live or now - mtime < grace:
                young.append((digest, size))
                continue
            removed.append((digest, size))
        temps = [(p, s) for p, s in stale_temp_files(root)]
        if removed and not dry_run and _live_writers(store):
            # A writer started while we walked: it may be about to tag a blob we picked. Keep them all.
            live, young, removed = max(live, 1), young + removed, []
        if not dry_run:
            dirs: set[Path] = set()
            for digest, _ in removed:
                store.remove_blob(digest)
                dirs.add(store.blob_path(digest).parent)
            for path, _ in temps:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
            for d in sorted(dirs):
                with contextlib.suppress(OSError):
                    fsync_dir(d)
    return GcResult(
        location=str(root), dry_run=dry_run, removed=removed, kept_young=young,
        temp_files_removed=[(os.path.relpath(p, root), s) for p, s in temps],
        live_writers=live, reachable=len(keep),
    )


def _live_writers(store: LayoutStore) -> int:
    """How many temp files or staging directories in the layout belong to a live writer.

    Entries too young to probe safely (see :func:`stale_temp_files`) count as live.
    """
    stale = {p for p, _ in stale_temp_files(store.root)}
    return sum(1 for p in store.root.glob(TMP_PREFIX + "*") if p not in stale)
