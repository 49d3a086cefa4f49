"""``index create / add / remove``: build or edit a multi-platform index from images of any local transport.

An index edit is an :class:`~ocilayout.edit.overlay.OverlaySource` whose root is the new index and whose
bases are the images it lists (:meth:`~ocilayout.edit.overlay.OverlaySource.add_source`); copy writes the
whole tree with one commit, so images from other layouts are copied in (their signatures and referrers with
them) and an in-place edit moves the name last. Children that stay keep their exact descriptors (platform,
annotations, unknown fields) and digests.

Platforms come from each image's config; when the reference resolved to a descriptor with a platform of the
same os/architecture (an ``index.json`` entry, an index child) that one is used, with its variant and
os.version. An index given with ``--image`` is listed as a nested index, or, with ``flatten``, its children
are listed directly (as the nested index described them).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .. import mediatypes as mt
from ..descriptor import CONTAINERD_NAME, REF_NAME, Descriptor, Platform
from ..digest import Digest
from ..errors import Conflict, InvalidArgument, NotFound, UnsupportedFormat
from ..manifest import ImageConfig, Manifest, canonical_json
from .overlay import OverlaySource

if TYPE_CHECKING:
    from ..copy import CopyResult, Progress
    from ..reference import ImageReference
    from ..refname import RefNaming
    from ..transports.base import Source

__all__ = ["IndexResult", "add_to_index", "create_index", "image_entries", "platform_key", "remove_from_index"]

IndexFormat = Literal["oci", "v2s2"]


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexResult:
    """What an index command wrote: the copy's result (``descriptor`` is the new index), the entries it
    added, and those it replaced or removed."""

    copy: CopyResult
    added: tuple[Descriptor, ...] = ()
    dropped: tuple[Descriptor, ...] = ()

    @property
    def descriptor(self) -> Descriptor:
        return self.copy.descriptor


def platform_key(p: Platform) -> tuple[str, str, str, str]:
    """What makes two platforms the same for an index: os, architecture, variant (arm64 means arm64/v8) and
    os.version."""
    variant = p.variant or ("v8" if p.architecture == "arm64" else "")
    return p.os, p.architecture, variant, p.os_version or ""


def _counts(p: Platform | None) -> bool:
    """Entries the duplicate rule applies to: those with a platform, except BuildKit's attestation manifests
    (``unknown/unknown``), which sit next to every image."""
    return p is not None and p.os != "unknown"


def _platform_of(source: Source, desc: Descriptor, m: Manifest) -> Platform:
    if m.is_schema1:
        raise UnsupportedFormat(f"{source.ref} is a Docker schema1 image, which an index cannot list; convert it "
                                "first (copy --format v2s2 from a registry that serves v2s2)")
    if "config" not in m.doc or m.config.media_type not in mt.CONFIG_TYPES:
        raise UnsupportedFormat(f"{source.ref} is not an image (its config is not an image config): an index "
                                "lists images and indexes")
    from ..transports.base import read_blob_bytes

    cfg = ImageConfig.parse(read_blob_bytes(source, m.config), m.config.media_type).platform
    if not cfg.os or not cfg.architecture:
        raise InvalidArgument(f"{source.ref}: its config names no os/architecture, so it has no platform")
    given = desc.platform
    if given is not None and (given.os, given.architecture) == (cfg.os, cfg.architecture):
        return given
    return cfg


def _entry(desc: Descriptor, platform: Platform | None) -> dict[str, Any]:
    annotations = {k: v for k, v in desc.annotations.items() if k not in (REF_NAME, CONTAINERD_NAME)}
    out: dict[str, Any] = {"mediaType": desc.media_type, "digest": str(desc.digest), "size": desc.size}
    if annotations:
        out["annotations"] = annotations
    if platform is not None:
        out["platform"] = platform.to_dict()
    return out


def image_entries(source: Source, *, flatten: bool = False) -> list[dict[str, Any]]:
    """The index entries for the image ``source`` names: one entry with its platform for an image; for an
    index, one entry (a nested index, no platform) or, with ``flatten``, its children as it lists them.
    Raises UnsupportedFormat for what an index cannot list, InvalidArgument for an image without a platform."""
    from ..graph import read_manifest

    desc = source.root
    m = read_manifest(source, desc)
    if not m.is_index:
        return [_entry(desc, _platform_of(source, desc, m))]
    if not flatten:
        return [_entry(desc, None)]
    out: list[dict[str, Any]] = []
    for raw in m.doc.get("manifests") or []:
        child = Descriptor.from_dict(raw)
        if mt.is_index(child.media_type):
            raise UnsupportedFormat(f"{source.ref} lists the index {child.digest}: --flatten lifts one level; "
                                    "flatten that index first")
        out.append(dict(raw))
    return out


def _descriptor(entry: Mapping[str, Any]) -> Descriptor:
    return Descriptor.from_dict(dict(entry))


def _check_duplicates(entries: Sequence[Mapping[str, Any]]) -> None:
    seen: dict[tuple[str, str, str, str], str] = {}
    for e in entries:
        d = _descriptor(e)
        if not _counts(d.platform):
            continue
        assert d.platform is not None
        key = platform_key(d.platform)
        if key in seen:
            raise Conflict(f"two images for {d.platform}: {seen[key]} and {d.digest} (pass "
                           "--allow-duplicate-platforms to list both)")
        seen[key] = str(d.digest)


def _index_doc(entries: list[dict[str, Any]], fmt: IndexFormat, annotations: Mapping[str, str]) -> dict[str, Any]:
    if fmt == "oci":
        doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}
        if annotations:
            doc["annotations"] = dict(annotations)
        return doc
    if annotations:
        raise UnsupportedFormat("a Docker manifest list (--format v2s2) has no annotations; use --format oci")
    for e in entries:
        if e.get("mediaType") != mt.DOCKER_MANIFEST:
            raise UnsupportedFormat(f"a Docker manifest list (--format v2s2) lists Docker v2s2 images only, and "
                                    f"{e.get('digest')} is {e.get('mediaType')}: use --format oci, or convert the "
                                    "image first (copy --format v2s2)")
        if "platform" not in e:
            raise UnsupportedFormat(f"a Docker manifest list needs a platform for {e.get('digest')}")
    return {"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST_LIST,
            "manifests": [{k: v for k, v in e.items() if k != "annotations"} for e in entries]}


def _open_all(refs: Sequence[ImageReference | str]) -> list[Source]:
    from ..transports import open_source

    sources: list[Source] = []
    try:
        for r in refs:
            sources.append(open_source(r))
    except BaseException:
        for s in sources:
            s.close()
        raise
    return sources


def _add_all(overlay: OverlaySource, sources: Sequence[Source]) -> None:
    """Hand every source to ``overlay`` (which then closes it); on a failure the rest are closed here."""
    for i, s in enumerate(sources):
        try:
            overlay.add_source(s)
        except BaseException:
            for rest in sources[i + 1:]:
                rest.close()
            raise


def _set_index(overlay: OverlaySource, doc: dict[str, Any], media_type: str) -> OverlaySource:
    new = Manifest.parse(canonical_json(doc), media_type)
    overlay.set_root(overlay.add_manifest(new))
    return overlay


def _building(overlay: OverlaySource, build: Callable[[OverlaySource], object]) -> OverlaySource:
    """``overlay`` after ``build`` filled it; closed when ``build`` fails."""
    try:
        build(overlay)
    except BaseException:
        overlay.close()
        raise
    return overlay


def create_index(dst: ImageReference | str, images: Sequence[ImageReference | str], *, flatten: bool = False,
                 allow_duplicate_platforms: bool = False, annotations: Mapping[str, str] | None = None,
                 format: IndexFormat = "oci", naming: RefNaming | None = None, jobs: int = 4,
                 progress: Progress | None = None) -> IndexResult:
    """Write a new index listing ``images`` (in order) to ``dst`` (named as ``dst`` and ``naming`` say; an
    existing name moves), copying each image in with one commit. Raises InvalidArgument (no image), Conflict
    (two images of one platform), UnsupportedFormat (schema1, artifacts, a v2s2 list of OCI images), NotFound."""
    from .write import edit_target, write_edited

    if not images:
        raise InvalidArgument("index create needs at least one --image")
    edit_target(None, dst, naming)  # names that cannot fit: refused before any image is read
    entries: list[dict[str, Any]] = []

    def make(_src: Source | None) -> OverlaySource:
        sources = _open_all(images)
        overlay = OverlaySource(sources[0], own_base=True)

        def build(o: OverlaySource) -> None:
            _add_all(o, sources[1:])
            entries.extend(e for s in sources for e in image_entries(s, flatten=flatten))
            if not allow_duplicate_platforms:
                _check_duplicates(entries)
            doc = _index_doc(entries, format, annotations or {})
            _set_index(o, doc, doc["mediaType"])

        return _building(overlay, build)

    result = write_edited(make, None, dst, naming=naming, jobs=jobs, progress=progress)
    return IndexResult(copy=result, added=tuple(_descriptor(e) for e in entries))


def _index_of(src: Source) -> Manifest:
    from ..graph import read_manifest

    m = read_manifest(src, src.root)
    if not m.is_index:
        raise UnsupportedFormat(f"{src.ref} is an image, not an index: use index create")
    return m


def add_to_index(index: ImageReference | str, images: Sequence[ImageReference | str], *,
                 dst: ImageReference | str | None = None, flatten: bool = False,
                 allow_duplicate_platforms: bool = False, naming: RefNaming | None = None, jobs: int = 4,
                 progress: Progress | None = None) -> IndexResult:
    """Add ``images`` to the index ``index`` names and write it to ``dst`` (default: in place, see
    :func:`~ocilayout.edit.write.write_edited`). An image whose platform the index already lists *replaces*
    that entry, where it stood (``dropped``); with ``allow_duplicate_platforms`` it is appended instead. Other
    entries keep their exact descriptors."""
    from .write import write_edited

    if not images:
        raise InvalidArgument("index add needs at least one --image")
    added: list[dict[str, Any]] = []
    dropped: list[Descriptor] = []

    def make(base: Source | None) -> OverlaySource:
        assert base is not None
        m = _index_of(base)

        def build(o: OverlaySource) -> None:
            added.clear()  # (an in-place edit raced by another writer is built again)
            dropped.clear()
            sources = _open_all(images)
            _add_all(o, sources)
            doc = json.loads(m.raw)
            current: list[dict[str, Any]] = list(doc.get("manifests") or [])
            for s in sources:
                for entry in image_entries(s, flatten=flatten):
                    current, gone = _place(current, entry, allow_duplicate_platforms)
                    dropped.extend(gone)
                    added.append(entry)
            if not allow_duplicate_platforms:
                _check_duplicates(added)
            if m.media_type == mt.DOCKER_MANIFEST_LIST:
                _index_doc(added, "v2s2", {})  # refuses what a Docker manifest list cannot list
            doc["manifests"] = current
            _set_index(o, doc, m.media_type)

        return _building(OverlaySource(base), build)

    result = write_edited(make, index, dst, naming=naming, jobs=jobs, progress=progress)
    return IndexResult(copy=result, added=tuple(_descriptor(e) for e in added), dropped=tuple(dropped))


def _place(current: list[dict[str, Any]], entry: dict[str, Any], duplicates: bool
           ) -> tuple[list[dict[str, Any]], list[Descriptor]]:
    """``current`` with ``entry`` in it: in the place of the entries of its platform (unless ``duplicates``),
    else appended; and the entries it replaced."""
    new = _descriptor(entry)
    if duplicates or not _counts(new.platform):
        return [*current, entry], []
    assert new.platform is not None
    key = platform_key(new.platform)
    out: list[dict[str, Any]] = []
    gone: list[Descriptor] = []
    for e in current:
        d = _descriptor(e)
        if _counts(d.platform) and d.platform is not None and platform_key(d.platform) == key:
            if not gone:
                out.append(entry)
            gone.append(d)
        else:
            out.append(e)
    if not gone:
        out.append(entry)
    return out, [d for d in gone if d.digest != new.digest]


def remove_from_index(index: ImageReference | str, *, platforms: Sequence[Platform] = (),
                      digests: Sequence[Digest] = (), dst: ImageReference | str | None = None,
                      naming: RefNaming | None = None, jobs: int = 4, progress: Progress | None = None
                      ) -> IndexResult:
    """Remove the entries of the index ``index`` names that match one of ``platforms`` (os/arch matches every
    variant) or ``digests``, and write it to ``dst`` (default: in place); the images' blobs stay for gc.
    Raises NotFound when a platform or digest matches no entry, InvalidArgument when nothing is asked or every
    entry would go."""
    from .write import write_edited

    if not platforms and not digests:
        raise InvalidArgument("index remove needs --platform or --digest")
    gone: list[Descriptor] = []

    def goes(d: Descriptor) -> bool:
        return d.digest in digests or (d.platform is not None and any(d.platform.matches(p) for p in platforms))

    def make(base: Source | None) -> OverlaySource:
        assert base is not None
        m = _index_of(base)
        doc = json.loads(m.raw)
        entries: list[dict[str, Any]] = list(doc.get("manifests") or [])
        descs = [_descriptor(e) for e in entries]
        for p in platforms:
            if not any(d.platform is not None and d.platform.matches(p) for d in descs):
                have = ", ".join(str(d.platform) for d in descs if d.platform is not None) or "none"
                raise NotFound(f"{index}: no entry for {p} (platforms: {have})")
        for want in digests:
            if not any(d.digest == want for d in descs):
                raise NotFound(f"{index}: no entry {want}")
        kept = [e for e, d in zip(entries, descs, strict=True) if not goes(d)]
        if not kept:
            raise InvalidArgument(f"{index}: removing {len(entries)} of {len(entries)} entries would leave an "
                                  "empty index; delete the name instead (ocilayout delete)")
        gone[:] = [d for d in descs if goes(d)]  # (built again when another writer raced an in-place edit)
        doc["manifests"] = kept
        return _building(OverlaySource(base), lambda o: _set_index(o, doc, m.media_type))

    result = write_edited(make, index, dst, naming=naming, jobs=jobs, progress=progress)
    return IndexResult(copy=result, dropped=tuple(gone))
