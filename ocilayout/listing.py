"""``images``: one summary row per ``index.json`` entry, the data behind a ``docker images``-like table.

Naming (docs/images.md): a full reference name such as ``docker.io/library/foo:1.0`` (it contains ``/``)
splits into REPOSITORY ``docker.io/library/foo`` and TAG ``1.0``; a tag-only name such as ``v1`` is shown
under the layout's own name (its directory or archive file name, like ``oci:NAME:v1``); an untagged entry
is ``<none>`` / ``<none>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import mediatypes as mt
from .descriptor import Descriptor, Platform
from .digest import Digest
from .errors import OcilayoutError
from .graph import walk
from .manifest import ImageConfig, Manifest, load_json
from .store import LayoutReader

__all__ = ["ImageRow", "list_images", "parse_created", "split_name"]

NONE = "<none>"
_RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)")


@dataclass(frozen=True, slots=True)
class ImageRow:
    """One ``index.json`` entry summarised. ``image_id`` is the config digest (the index digest for an index)."""

    repository: str
    tag: str
    digest: Digest
    media_type: str
    image_id: Digest
    created: datetime | None
    size: int | None
    platforms: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "tag": self.tag,
            "digest": str(self.digest),
            "mediaType": self.media_type,
            "imageId": str(self.image_id),
            "created": self.created.strftime("%Y-%m-%dT%H:%M:%SZ") if self.created else None,
            "size": self.size,
            "platforms": list(self.platforms),
        }


def split_name(name: str | None, default_repository: str) -> tuple[str, str]:
    """(REPOSITORY, TAG) for an entry name, following the rules in the module docstring."""
    if not name:
        return NONE, NONE
    if "/" not in name:
        return default_repository, name
    head, _, last = name.rpartition("/")
    if "@" in last:
        return f"{head}/{last.split('@', 1)[0]}", NONE
    repo, sep, tag = last.rpartition(":")
    return (f"{head}/{repo}", tag) if sep else (name, NONE)


def parse_created(value: Any) -> datetime | None:
    """An RFC3339 timestamp (any fraction length, any offset) as an aware UTC datetime; None otherwise (also
    for Go's zero time and for instants a UTC datetime cannot hold)."""
    if not isinstance(value, str):
        return None
    m = _RFC3339.fullmatch(value.strip())
    if not m:
        return None
    y, mo, d, h, mi, s, frac, tz = m.groups()
    iso = f"{y}-{mo}-{d}T{h}:{mi}:{s}.{(frac or '0')[:6].ljust(6, '0')}{'+00:00' if tz in 'Zz' else tz}"
    try:
        dt = datetime.fromisoformat(iso).astimezone(UTC)
    except (ValueError, OverflowError):
        # Valid RFC 3339 times whose UTC instant falls outside years 1-9999 (0001-01-01T00:00:00+01:00 is
        # 0000-12-31T23:00Z; 9999-12-31T23:59:59-01:00 is in year 10000) are shown as not set (N/A).
        return None
    return None if dt.year <= 1 else dt  # Go's zero time means "not set"


def _platform_text(p: Platform | None) -> str | None:
    if p is None or (p.os in ("", "unknown") and p.architecture in ("", "unknown")):
        return None
    return str(p)


class _Summariser:
    def __init__(self, reader: LayoutReader) -> None:
        self.reader = reader

    def image(self, desc: Descriptor, m: Manifest) -> tuple[Digest, datetime | None, dict[Digest, int], str | None]:
        """(image id, created, blobs with sizes, platform) of one image manifest."""
        blobs: dict[Digest, int] = {}
        if m.is_schema1:
            created = None
            history = m.doc.get("history") or []
            if history and isinstance(history[0], dict):
                try:
                    created = parse_created(load_json(str(history[0].get("v1Compatibility", "")).encode())
                                            .get("created"))
                except (OcilayoutError, AttributeError):
                    created = None
            for d in m.schema1_layers:
                if self.reader.has_blob(d):
                    blobs[d] = self.reader.blob_size(d)
            return m.digest, created, blobs, _platform_text(desc.platform)
        cfg = m.config if "config" in m.doc else None
        created, platform = None, _platform_text(desc.platform)
        if cfg is not None:
            blobs[cfg.digest] = cfg.size
            if cfg.media_type in mt.CONFIG_TYPES:  # an artifact's config is never read as an image config
                try:
                    config = ImageConfig.parse(self.reader.read_blob_bytes(cfg), cfg.media_type)
                    created = parse_created(config.created)
                    platform = platform or _platform_text(config.platform)
                except OcilayoutError:
                    pass
        for layer in m.layers:
            blobs[layer.digest] = layer.size
        return (cfg.digest if cfg is not None else m.digest), created, blobs, platform

    def row(self, desc: Descriptor, name: str | None, default_repo: str) -> ImageRow:
        """One entry's row; the images under an index are found with :func:`ocilayout.graph.walk`, the walk
        copy and gc use (so an untyped entry is sniffed here as it is there)."""
        repo, tag = split_name(name, default_repo)
        nodes = [n for n in walk(self.reader, [desc], [], follow_subject=False) if n.manifest is not None and n.first]
        if not nodes or nodes[0].descriptor.digest != desc.digest:  # the entry itself is unreadable
            return ImageRow(repo, tag, desc.digest, desc.media_type, desc.digest, None, None, ())
        top, m = nodes[0], nodes[0].manifest
        assert m is not None
        if not m.is_index:
            image_id, created, own, platform = self.image(top.descriptor, m)
            return ImageRow(repo, tag, desc.digest, m.media_type, image_id, created, sum(own.values()),
                            (platform,) if platform else ())
        blobs: dict[Digest, int] = {}
        platforms: list[str] = []
        newest: datetime | None = None
        for node in nodes[1:]:
            cm = node.manifest
            assert cm is not None
            if cm.is_index:
                continue
            _, created, child_blobs, platform = self.image(node.descriptor, cm)
            if platform is None:
                continue  # attestations (unknown/unknown) and artifacts are not platforms
            platforms.append(platform)
            blobs.update(child_blobs)
            if created is not None and (newest is None or created > newest):
                newest = created
        return ImageRow(repo, tag, desc.digest, m.media_type, desc.digest, newest, sum(blobs.values()),
                        tuple(platforms))


def list_images(reader: LayoutReader, default_repository: str) -> list[ImageRow]:
    """One row per ``index.json`` entry, in file order. A broken entry gets a row with size None.

    Raises what :meth:`LayoutReader.entries` raises when ``index.json`` itself is unreadable.
    """
    s = _Summariser(reader)
    return [s.row(e.descriptor, e.name, default_repository) for e in reader.entries()]
