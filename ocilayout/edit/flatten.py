"""``flatten``: every layer of an image squashed into one, whiteouts and opaque directories applied.

The layers are read once each (digests and diff_ids verified) into temporary files of their uncompressed
tars, applied in order (:class:`~ocilayout.layer.squash.Squash`) and written as one sorted tar, hashed and
compressed in the same pass. Entries keep their own metadata (modes, owners, mtimes, xattrs), so
unpacking the result gives what unpacking the layer stack gives. The history becomes one entry
(``created`` taken from the config, so the same input gives the same bytes).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..descriptor import Platform
from ..digest import Digest
from ..layer import MARKER
from ..layer.entries import TarOut
from ..layer.sink import LayerSink
from ..layer.squash import Squash, spool_layer
from .rewrite import ImageEdit, edit_images

if TYPE_CHECKING:
    from ..transports.base import Source
    from .overlay import OverlaySource

__all__ = ["FlattenOptions", "flatten"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FlattenOptions:
    """The squashed layer's ``compression`` and ``level``, its history ``created_by``, the images chosen by
    ``platforms`` (all when empty)."""

    compression: str = "gzip"
    level: int | None = None
    history: str | None = None
    platforms: tuple[Platform, ...] = field(default=())


def flatten(source: Source, options: FlattenOptions) -> OverlaySource:
    """``source`` with each chosen image's layers squashed into one. Raises what
    :func:`~ocilayout.layer.squash.spool_layer` raises (a damaged or foreign layer), NotFound when
    ``options.platforms`` match no image."""

    def editor(edit: ImageEdit) -> None:
        diff_ids = edit.diff_ids
        squash = Squash()
        with contextlib.ExitStack() as stack:
            for i, desc in enumerate(edit.layers):
                known = Digest.parse(diff_ids[i]) if i < len(diff_ids) else None
                layer = spool_layer(edit.overlay, desc, known)
                stack.callback(layer.close)
                squash.apply(layer)
            sink = LayerSink(options.compression, options.level)
            try:
                out = TarOut(sink)
                squash.emit(out)
                out.finish()
                new = sink.finish()
            except BaseException:
                sink.discard()
                raise
        desc = new.register(edit.overlay, edit.manifest.media_type, annotations={MARKER: "flatten"})
        entry: dict[str, Any] = {}
        if isinstance(edit.config.get("created"), str):
            entry["created"] = edit.config["created"]
        entry["created_by"] = options.history or "ocilayout flatten"
        edit.set_layers([(desc, new.diff_id)], [entry])

    return edit_images(source, editor, platforms=options.platforms)
