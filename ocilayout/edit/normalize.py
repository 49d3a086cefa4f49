"""``normalize``: make an image reproducible.

Times: the config's ``created``, every history entry's ``created`` and the manifest's
``org.opencontainers.image.created`` annotation are set to the policy's time (``--timestamp``) or clamped
to it (``SOURCE_DATE_EPOCH``: later times become it, earlier ones stay). Layers: those carrying
:data:`~ocilayout.layer.MARKER` (written by this tool), or every layer with ``all_layers``, are rewritten
as one sorted tar (whiteouts kept as entries), mtimes set or clamped, owners 0/0 without names (unless the
policy keeps owners), atime/ctime dropped, and recompressed with a pinned codec: the layer's own
compression (or ``compression``) at the codec's default level (or ``level``). Other layers keep their
bytes and digests. The same input and options give the same digests, and normalizing twice changes
nothing the second time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import mediatypes as mt
from ..descriptor import Descriptor, Platform
from ..digest import Digest
from ..errors import InvalidArgument
from ..layer import MARKER
from ..layer.entries import EntryPolicy, TarOut
from ..layer.sink import LayerSink, NewLayer, layer_media_type
from ..layer.squash import Squash, spool_layer
from .rewrite import ImageEdit, edit_images

if TYPE_CHECKING:
    from ..transports.base import Source
    from .overlay import OverlaySource

__all__ = ["NormalizeOptions", "normalize"]

CREATED_ANNOTATION = "org.opencontainers.image.created"


@dataclass(frozen=True, slots=True, kw_only=True)
class NormalizeOptions:
    """``policy`` must give a time (set or clamp); ``all_layers`` rewrites base layers too; ``compression``
    and ``level`` pin the codec (default: each layer's own compression, the codec's default level)."""

    policy: EntryPolicy
    all_layers: bool = False
    compression: str | None = None
    level: int | None = None
    platforms: tuple[Platform, ...] = field(default=())


def normalize(source: Source, options: NormalizeOptions) -> OverlaySource:
    """``source`` normalized (see the module docstring). Raises InvalidArgument when the policy gives no
    time, what :func:`~ocilayout.layer.squash.spool_layer` raises for a rewritten layer, NotFound when
    ``options.platforms`` match no image."""
    policy = options.policy
    if policy.time is None:
        raise InvalidArgument("normalize needs a time: give --timestamp or set SOURCE_DATE_EPOCH")
    done: dict[Digest, NewLayer | None] = {}

    def editor(edit: ImageEdit) -> None:
        cfg = edit.config
        if isinstance(cfg.get("created"), str):
            cfg["created"] = policy.restamp(cfg["created"])
        for entry in cfg.get("history") or []:
            if isinstance(entry, dict) and isinstance(entry.get("created"), str):
                entry["created"] = policy.restamp(entry["created"])
        ann = edit.doc.get("annotations")
        if isinstance(ann, dict) and isinstance(ann.get(CREATED_ANNOTATION), str):
            ann[CREATED_ANNOTATION] = policy.restamp(ann[CREATED_ANNOTATION])
        diff_ids = edit.diff_ids
        rootfs = cfg.get("rootfs")
        for i, raw in enumerate(edit.doc.get("layers") or []):
            desc = Descriptor.from_dict(raw)
            if not (options.all_layers or MARKER in desc.annotations):
                continue
            known = Digest.parse(diff_ids[i]) if i < len(diff_ids) else None
            if desc.digest not in done:
                done[desc.digest] = _rewrite(edit, desc, known, options)
            new = done[desc.digest]
            if new is None or new.digest == desc.digest:
                continue
            if not edit.overlay.is_new(new.digest):
                new.register(edit.overlay, edit.manifest.media_type)
            raw["mediaType"] = layer_media_type(edit.manifest.media_type, new.compression)
            raw["digest"], raw["size"] = str(new.digest), new.size
            if edit.manifest.media_type != mt.DOCKER_MANIFEST:
                raw.setdefault("annotations", {}).setdefault(MARKER, "normalize")
            if isinstance(rootfs, dict) and i < len(diff_ids):
                rootfs["diff_ids"][i] = str(new.diff_id)

    return edit_images(source, editor, platforms=options.platforms)


def _rewrite(edit: ImageEdit, desc: Descriptor, diff_id: Digest | None, options: NormalizeOptions) -> NewLayer | None:
    """The layer rewritten; None when it comes out byte for byte the same."""
    kind = options.compression or mt.layer_compression(desc.media_type) or "gzip"
    layer = spool_layer(edit.overlay, desc, diff_id)
    try:
        squash = Squash(whiteouts=False)
        squash.apply(layer)
        sink = LayerSink(kind, options.level)
        try:
            out = TarOut(sink)
            squash.emit(out, options.policy)
            out.finish()
            new = sink.finish()
        except BaseException:
            sink.discard()
            raise
    finally:
        layer.close()
    if new.digest == desc.digest:
        new.blob.close()
        return None
    return new
