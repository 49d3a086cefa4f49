"""Which image of a source a command means: the root as it is, an index's host-platform image, or the
platforms asked for. Shared by ``copy`` (through :mod:`ocilayout.plan`) and ``inspect``, which picks the
image skopeo would show without loading the copy planner.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from .descriptor import Descriptor, Platform
from .errors import InvalidArgument, NotFound
from .manifest import ImageConfig, Manifest, canonical_json, read_manifest
from .transports.base import Source, read_blob_bytes

__all__ = ["Selection", "host_platform", "select_root"]

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
         "i686": "386", "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def host_platform() -> Platform:
    """The platform of this machine, as skopeo picks by default (linux/<arch>)."""
    machine = os.uname().machine.lower()  # what platform.machine() returns on POSIX, without its import
    return Platform("linux", _ARCH.get(machine, machine))


@dataclass(frozen=True, slots=True, kw_only=True)
class Selection:
    """Which images of an index to copy: ``all`` of it, the ``platforms`` listed, or (neither) the host's.
    Raises InvalidArgument when both are given: they exclude each other."""

    all: bool = False
    platforms: tuple[Platform, ...] = ()
    #: skopeo's ``--multi-arch index-only``: the index without the images it lists (refused: see plan_copy).
    index_only: bool = False

    def __post_init__(self) -> None:
        if self.all and self.platforms:
            raise InvalidArgument("--all and --platform exclude each other")
        if self.index_only and (self.all or self.platforms):
            raise InvalidArgument("--multi-arch index-only excludes --all and --platform")


def _plats(plats: Sequence[Platform]) -> str:
    return ", ".join(str(p) for p in plats)


def select_root(src: Source, selection: Selection) -> tuple[Descriptor, Manifest | None]:
    """The descriptor to copy, and a new index to write when a platform subset of several is asked for.

    Single images are copied as they are (a ``platforms`` that does not match them is an error). An index
    is copied whole with ``all``; with ``platforms``, one match gives that image alone and several a new
    index of the matches; by default the image for the host platform is chosen, as skopeo does. Raises
    NotFound when nothing matches.
    """
    root = src.root
    manifest = read_manifest(src, root)
    if not manifest.is_index:
        if selection.platforms and not manifest.is_schema1 and "config" in manifest.doc:
            cfg = manifest.config
            plat = ImageConfig.parse(read_blob_bytes(src, cfg), cfg.media_type).platform
            if not any(plat.matches(p) for p in selection.platforms):
                raise NotFound(f"{src.ref} is a single {plat} image, not {_plats(selection.platforms)}")
        return root, None
    if selection.all:
        return root, None
    children = manifest.manifests
    wanted = selection.platforms or (host_platform(),)
    chosen = [c for c in children if c.platform is not None and any(c.platform.matches(p) for p in wanted)]
    if not selection.platforms:
        chosen = chosen[:1]
    if not chosen:
        have = ", ".join(sorted({str(c.platform) for c in children if c.platform})) or "none"
        raise NotFound(f"{src.ref}: no image for {_plats(wanted)} in the index (platforms: {have}); "
                       "use --all or --platform")
    if len(chosen) == 1:
        return chosen[0], None
    doc = dict(manifest.doc)
    keep = {str(c.digest) for c in chosen}
    doc["manifests"] = [d for d in manifest.doc["manifests"] if d.get("digest") in keep]
    subset = Manifest.parse(canonical_json(doc), manifest.media_type)
    return subset.descriptor, subset
