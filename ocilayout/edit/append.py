"""``append``: new layers from tars or directories on top of an image (or of an empty one).

Each input becomes one layer, made once and shared by every image it is appended to: a directory is
archived deterministically (:mod:`ocilayout.layer.fromdir`), a tar (gzip/zstd-compressed or not, detected)
is checked member by member and kept byte for byte uncompressed (its diff_id is its own hash), and both
are compressed in the same pass that hashes them. The base image's layers are never read or recompressed.
New layers carry :data:`~ocilayout.layer.MARKER` (``append``) on OCI manifests; the config gets the
diff_ids and one history entry per layer.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import mediatypes as mt
from ..descriptor import Descriptor, Platform
from ..digest import Digest
from ..errors import InvalidArgument, NotFound
from ..layer import MARKER
from ..layer.entries import EntryPolicy, TarOut, format_time
from ..layer.sink import LayerSink, NewLayer
from ..manifest import Manifest, canonical_json
from .overlay import OverlaySource
from .rewrite import ImageEdit, edit_images

if TYPE_CHECKING:
    from ..reference import ImageReference
    from ..transports.base import Source

__all__ = ["AppendOptions", "append_layers", "build_layer", "empty_image"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendOptions:
    """How new layers are made: ``compression`` ("gzip", "zstd", "none") at ``level``, entries of directories
    stamped by ``policy`` (its time also becomes the history's and config's ``created``), history
    ``created_by`` text, the images chosen by ``platforms`` (all when empty)."""

    compression: str = "gzip"
    level: int | None = None
    policy: EntryPolicy = field(default_factory=EntryPolicy)
    history: str | None = None
    platforms: tuple[Platform, ...] = ()


def build_layer(path: Path | str, options: AppendOptions, *, allow_devices: bool | None = None) -> NewLayer:
    """One layer from a directory or a tar file; raises NotFound, InvalidArgument (see fromdir), UnsafePath /
    UnsupportedFormat / LayoutError (a bad tar), IntegrityError (corrupt compressed tar)."""
    from ..layer.fromdir import write_dir
    from ..layer.reader import copy_layer_tar

    text = os.fspath(path)
    if not os.path.exists(text):
        raise NotFound(f"--layer {text}: no such file or directory")
    sink = LayerSink(options.compression, options.level)
    try:
        if os.path.isdir(text):
            out = TarOut(sink)
            write_dir(text, out, options.policy, allow_devices=allow_devices)
            out.finish()
        elif os.path.isfile(text):
            copy_layer_tar(text, sink, f"--layer {text}")
        else:
            raise InvalidArgument(f"--layer {text} is neither a directory nor a tar file")
        return sink.finish()
    except BaseException:
        sink.discard()
        raise


class _Registered:
    """A new layer registered once in the overlay, described per manifest type."""

    def __init__(self, layer: NewLayer) -> None:
        self.layer = layer
        self.done = False

    def descriptor(self, edit: ImageEdit, command: str) -> Descriptor:
        if not self.done:
            self.done = True
            return self.layer.register(edit.overlay, edit.manifest.media_type, annotations={MARKER: command})
        from ..layer.sink import layer_media_type

        raw: dict[str, Any] = {"mediaType": layer_media_type(edit.manifest.media_type, self.layer.compression),
                               "digest": str(self.layer.digest), "size": self.layer.size}
        if edit.manifest.media_type != mt.DOCKER_MANIFEST:
            raw["annotations"] = {MARKER: command}
        return Descriptor.from_dict(raw)

    def close(self) -> None:
        if not self.done:
            self.layer.blob.close()


def history_entry(created_by: str, policy: EntryPolicy) -> dict[str, Any]:
    """A history entry: ``created`` only when the policy gives a time (deterministic), then ``created_by``."""
    entry: dict[str, Any] = {}
    if policy.time is not None:
        entry["created"] = format_time(policy.time)
    entry["created_by"] = created_by
    return entry


def append_layers(source: Source, layers: Sequence[Path | str], options: AppendOptions) -> OverlaySource:
    """``source`` with one new layer per entry of ``layers`` appended to each chosen image (see the module
    docstring). Raises InvalidArgument for no layers, what :func:`build_layer` raises, NotFound when
    ``options.platforms`` match no image."""
    if not layers:
        raise InvalidArgument("append needs at least one --layer")
    made: list[_Registered] = []
    try:
        for path in layers:
            made.append(_Registered(build_layer(path, options)))

        def editor(edit: ImageEdit) -> None:
            for reg in made:
                desc = reg.descriptor(edit, "append")
                edit.add_layer(desc, reg.layer.diff_id, history_entry(options.history or "ocilayout append",
                                                                      options.policy))
            if options.policy.time is not None:
                edit.config["created"] = format_time(options.policy.time)

        return edit_images(source, editor, platforms=options.platforms)
    finally:
        for reg in made:
            reg.close()


class _NoBlobs:
    """The base of an image made from nothing: it holds no blobs of its own."""

    def __init__(self, ref: ImageReference, root: Descriptor) -> None:
        self.ref, self.root = ref, root

    def get_manifest(self, desc: Descriptor | None = None) -> Manifest:
        raise NotFound(f"{(desc or self.root).digest} is not in an empty image")

    def open_blob(self, desc: Descriptor) -> Any:
        raise NotFound(f"blob {desc.digest} is not in an empty image")

    def stat_blob(self, digest: Any) -> int | None:
        return None

    def signatures(self, manifest_digest: Any) -> Sequence[Any]:
        return ()

    def referrers(self, manifest_digest: Any) -> Sequence[Descriptor]:
        return ()

    def close(self) -> None:
        pass

    def __enter__(self) -> _NoBlobs:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def empty_image(ref: ImageReference, platform: Platform, policy: EntryPolicy) -> OverlaySource:
    """A source naming a new OCI image with no layers for ``platform`` (config: os, architecture, variant,
    an empty ``config``, empty rootfs and history; ``created`` when the policy gives a time)."""
    config: dict[str, Any] = {}
    if policy.time is not None:
        config["created"] = format_time(policy.time)
    config |= {"architecture": platform.architecture, "os": platform.os}
    if platform.variant:
        config["variant"] = platform.variant
    config |= {"config": {}, "rootfs": {"type": "layers", "diff_ids": []}, "history": []}
    raw_cfg = canonical_json(config)
    cfg_desc = Descriptor(media_type=mt.OCI_CONFIG, digest=Digest.of(raw_cfg), size=len(raw_cfg))
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": cfg_desc.to_dict(), "layers": []}
    manifest = Manifest.parse(canonical_json(doc), mt.OCI_MANIFEST)
    overlay = OverlaySource(_NoBlobs(ref, manifest.descriptor))
    overlay.add_bytes(raw_cfg, mt.OCI_CONFIG)
    overlay.set_root(overlay.add_manifest(manifest))
    return overlay

