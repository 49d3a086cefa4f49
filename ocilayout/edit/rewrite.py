"""Rewriting an image tree: edit image manifests and configs, then every parent up to the root.

:func:`edit_images` walks the tree a source names (an image, or an index of images, nested indexes
included), hands each image chosen by ``platforms`` to the caller's ``editor`` as an :class:`ImageEdit`
(mutable copies of the manifest and config JSON), and for every image the editor changed registers a new
config and manifest in an :class:`~ocilayout.edit.overlay.OverlaySource`; indexes above a changed image are
rewritten with the child's new digest and size (its platform, annotations and any unknown fields kept).
Images the editor did not change, and indexes none of whose children changed, keep their exact bytes and
digests: a platform-scoped edit changes that platform and the index, nothing else.

New documents are compact JSON in the key order of the original (new keys last): the same input and the
same edit give the same bytes. Unknown config and manifest fields survive untouched.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import mediatypes as mt
from ..descriptor import Descriptor, Platform
from ..digest import Digest
from ..errors import NotFound, UnsupportedFormat
from ..graph import read_manifest
from ..manifest import ImageConfig, Manifest, canonical_json
from ..transports.base import Source
from .overlay import OverlaySource

__all__ = ["ImageEdit", "IndexEdit", "edit_images"]


@dataclass(slots=True, kw_only=True)
class ImageEdit:
    """One image under edit. Change ``doc`` (the manifest JSON: ``annotations``, ``layers``) and ``config``
    (the config JSON) in place; add new blobs through ``overlay``. ``descriptor`` is how the parent named
    the image (its ``platform`` is the index's view), ``platform`` the config's."""

    overlay: OverlaySource
    descriptor: Descriptor
    manifest: Manifest
    doc: dict[str, Any]
    config: dict[str, Any]
    platform: Platform

    @property
    def layers(self) -> list[Descriptor]:
        """The layer descriptors as they stand now (after any edit so far)."""
        return [Descriptor.from_dict(d) for d in self.doc.get("layers") or []]

    @property
    def diff_ids(self) -> list[str]:
        rootfs = self.config.get("rootfs")
        ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
        return list(ids) if isinstance(ids, list) else []

    def add_layer(self, desc: Descriptor, diff_id: Digest, history: dict[str, Any] | None = None) -> None:
        """Append a layer (already added to the overlay), its diff_id and, when given, a history entry."""
        self.doc.setdefault("layers", []).append(desc.to_dict())
        rootfs = self.config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        rootfs.setdefault("diff_ids", []).append(str(diff_id))
        if history is not None:
            self.config.setdefault("history", []).append(history)

    def set_layers(self, layers: Sequence[tuple[Descriptor, Digest]], history: list[dict[str, Any]] | None) -> None:
        """Replace every layer (flatten): descriptors with their diff_ids, and the whole history when given."""
        self.doc["layers"] = [d.to_dict() for d, _ in layers]
        rootfs = self.config.setdefault("rootfs", {"type": "layers"})
        rootfs["diff_ids"] = [str(i) for _, i in layers]
        if history is not None:
            self.config["history"] = history

    @property
    def config_descriptor(self) -> Descriptor:
        return Descriptor.from_dict(self.doc["config"])


@dataclass(slots=True, kw_only=True)
class IndexEdit:
    """An index whose children were rewritten (or that an ``index_editor`` may change): ``doc`` is its JSON,
    ``changed`` the digests of children that changed (old -> new descriptor)."""

    descriptor: Descriptor
    manifest: Manifest
    doc: dict[str, Any]
    changed: dict[Digest, Descriptor] = field(default_factory=dict)
    #: The digests (as the index listed them) of the children handed to the image editor, changed or not.
    chosen: set[Digest] = field(default_factory=set)


ImageEditor = Callable[[ImageEdit], None]
IndexEditor = Callable[[IndexEdit], None]


def _skipped(child: Descriptor) -> bool:
    """Children an edit leaves alone unless asked by platform: BuildKit's attestation manifests
    (``unknown/unknown``), which describe the image they sit next to."""
    return child.platform is not None and child.platform.os == "unknown"


def edit_images(source: Source, editor: ImageEditor, *, platforms: Sequence[Platform] = (),
                index_editor: IndexEditor | None = None) -> OverlaySource:
    """The edited tree as a Source whose root is the new root (the base's root when nothing changed).

    ``editor`` is called for each image manifest chosen: every image of the tree, or those whose index
    platform matches one of ``platforms`` (an index entry without a platform is matched by its config).
    ``index_editor`` is called for every index on the way back to the root, after its children. Raises
    NotFound when ``platforms`` match no image, UnsupportedFormat for schema1 manifests and documents that
    are not images, InvalidManifest / IntegrityError for damaged input.
    """
    overlay = source if isinstance(source, OverlaySource) else OverlaySource(source)
    state = _Walk(overlay, editor, tuple(platforms), index_editor)
    new_root = state.node(overlay.root, parent_platform=None)
    if platforms and not state.matched:
        raise NotFound(f"{source.ref}: no image for {', '.join(str(p) for p in platforms)}")
    overlay.set_root(new_root)
    return overlay


class _Walk:
    def __init__(self, overlay: OverlaySource, editor: ImageEditor, platforms: tuple[Platform, ...],
                 index_editor: IndexEditor | None) -> None:
        self.overlay, self.editor, self.platforms, self.index_editor = overlay, editor, platforms, index_editor
        self.matched = 0
        self.edited: set[Digest] = set()  # the images handed to the editor (their original digests)
        self.done: dict[Digest, Descriptor] = {}  # an image listed twice is edited once

    def node(self, desc: Descriptor, parent_platform: Platform | None) -> Descriptor:
        m = read_manifest(self.overlay, desc)
        if m.is_index:
            return self._index(desc, m)
        return self._image(desc, m)

    def _index(self, desc: Descriptor, m: Manifest) -> Descriptor:
        doc = json.loads(m.raw)
        edit = IndexEdit(descriptor=desc, manifest=m, doc=doc)
        for i, raw_child in enumerate(doc.get("manifests") or []):
            child = Descriptor.from_dict(raw_child)
            if not (mt.is_index(child.media_type) or mt.is_manifest(child.media_type)):
                continue  # an artifact or unknown document: kept as it is
            if mt.is_manifest(child.media_type) and not self._wanted(child):
                continue
            new = self.done.get(child.digest) or self.node(child, child.platform)
            self.done[child.digest] = new
            if child.digest in self.edited:
                edit.chosen.add(child.digest)
            if new.digest != child.digest:
                edit.changed[child.digest] = new
                doc["manifests"][i] = child.with_(media_type=new.media_type, digest=new.digest,
                                                  size=new.size).to_dict()
        if self.index_editor is not None:
            self.index_editor(edit)
        if doc == json.loads(m.raw):
            return desc
        return self._store(desc, doc, m.media_type)

    def _wanted(self, child: Descriptor) -> bool:
        if not self.platforms:
            return not _skipped(child)
        if child.platform is None:
            return True  # decided by the config, in _image
        return any(child.platform.matches(p) for p in self.platforms)

    def _image(self, desc: Descriptor, m: Manifest) -> Descriptor:
        if m.is_schema1:
            raise UnsupportedFormat(f"{desc.digest} is a Docker schema1 manifest, which cannot be edited: "
                                    "convert it first (copy --format v2s2 from a registry that serves v2s2)")
        if "config" not in m.doc:
            raise UnsupportedFormat(f"{desc.digest} is not an image manifest (no config)")
        cfg_desc = m.config
        if cfg_desc.media_type not in mt.CONFIG_TYPES:
            raise UnsupportedFormat(f"{desc.digest} is an artifact ({cfg_desc.media_type}), not an image: "
                                    "edits apply to images")
        raw_cfg = self.overlay.blob_bytes(cfg_desc)
        cfg = ImageConfig.parse(raw_cfg, cfg_desc.media_type)
        if self.platforms:  # an index child was chosen by its descriptor already; the root by what names it too
            own = desc.platform if desc.platform is not None else cfg.platform
            if not any(own.matches(p) for p in self.platforms):
                return desc
        self.matched += 1
        self.edited.add(desc.digest)
        doc = json.loads(m.raw)
        config = json.loads(raw_cfg)
        edit = ImageEdit(overlay=self.overlay, descriptor=desc, manifest=m, doc=doc, config=config,
                         platform=cfg.platform)
        self.editor(edit)
        if config != json.loads(raw_cfg):
            new_cfg = self.overlay.add_bytes(canonical_json(config), cfg_desc.media_type,
                                             algorithm=cfg_desc.digest.algorithm)
            doc["config"] = cfg_desc.with_(digest=new_cfg.digest, size=new_cfg.size).to_dict()
        if doc == json.loads(m.raw):
            return desc
        return self._store(desc, doc, m.media_type)

    def _store(self, desc: Descriptor, doc: dict[str, Any], media_type: str) -> Descriptor:
        new = Manifest.parse(canonical_json(doc), media_type)
        if desc.digest.algorithm != "sha256":
            raise UnsupportedFormat(f"{desc.digest}: editing {desc.digest.algorithm}-addressed manifests is not "
                                    "supported yet")
        self.overlay.add_manifest(new)
        return desc.with_(media_type=new.media_type, digest=new.digest, size=len(new.raw))
