"""Helpers shared by the oci-archive tests: an archive checker and a raw tar builder for crafted archives."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ocilayout.archive import ArchiveReader
from ocilayout.digest import CHUNK
from ocilayout.graph import reachable
from ocilayout.store import LayoutStore


def check_archive(path: Path) -> ArchiveReader:
    """Open ``path``, walk everything reachable from index.json and read every reachable blob verified.

    Also hashes every stored blob against its name. Returns the (open) reader; raises on any problem.
    """
    reader = ArchiveReader.open(path)
    reader.check_layout_file()
    for desc in reachable(reader).values():
        if not reader.has_blob(desc.digest):
            raise AssertionError(f"{path}: reachable blob {desc.digest} missing")
        with reader.open_blob(desc) as f:
            while f.read(CHUNK):
                pass
    assert reader.verify_blobs() == len(list(reader.all_blobs()))
    return reader


@dataclass
class Entry:
    """One crafted tar member: a file (data), dir, symlink or hardlink (link), or any raw tar type."""

    name: str
    data: bytes = b""
    type: bytes = tarfile.REGTYPE
    link: str = ""


def layout_entries(store: LayoutStore, prefix: str = "") -> list[Entry]:
    """Members for a plain tar of a layout directory (oci-layout, index.json, every blob)."""
    out = [Entry(prefix + "oci-layout", (store.root / "oci-layout").read_bytes()),
           Entry(prefix + "index.json", (store.root / "index.json").read_bytes())]
    for digest, _ in store.all_blobs():
        out.append(Entry(f"{prefix}blobs/{digest.algorithm}/{digest.hex}", store.blob_path(digest).read_bytes()))
    return out


def write_tar(path: Path, entries: Iterable[Entry], fmt: int = tarfile.PAX_FORMAT) -> Path:
    """Write exactly ``entries`` with Python's tarfile (no name checks: malicious names go through)."""
    with tarfile.open(path, "w", format=fmt) as tar:
        for e in entries:
            ti = tarfile.TarInfo(e.name)
            ti.type = e.type
            ti.linkname = e.link
            ti.mode = 0o755 if e.type == tarfile.DIRTYPE else 0o644
            if e.type in (tarfile.REGTYPE, tarfile.AREGTYPE):
                ti.size = len(e.data)
                tar.addfile(ti, io.BytesIO(e.data))
            else:
                tar.addfile(ti)
    return path


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for directories), to compare before and after."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() and not p.is_symlink() else None)
            for p in sorted(root.rglob("*"))}
