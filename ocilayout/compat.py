"""Consumer warnings: outputs that ocilayout writes correctly but that a known consumer rejects.

:func:`facts_of` reads what a command wrote (the written reference, as every reader sees it) into
:class:`Facts`; :func:`warnings` is a pure function of the facts and returns one sentence per problem, each
naming the flag or reference form that avoids it. The CLI prints them on stderr after ``copy`` and the edit
commands (``-q`` keeps them: they are about the result, not progress). Nothing here changes what is written.

- zstd layers: Docker before 23.0 (``docker load``, pulls) cannot decompress them.
- a single-file output (oci-archive:, docker-archive:) that holds several images: readers that load the
  file without naming an image (``podman load``, ``skopeo copy oci-archive:FILE``, ``docker-archive:FILE``)
  refuse it, because they cannot choose.
- an oci-archive entry named only by a tag (``1.0``): ``podman load`` takes ``io.containerd.image.name``,
  else the ref name, as the image's name (libimage ``nameFromAnnotations``), so it becomes
  ``localhost/1.0:latest``.
- an index inside an index: containers/image (skopeo, podman, buildah, CRI-O; still so upstream:
  "Unexpectedly received a manifest list instead of a manifest for a single image") refuses it, and umoci
  resolves its tag to several manifests ("tag is ambiguous").
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .digest import Digest
    from .reference import ImageReference
    from .transports.base import Source

__all__ = ["Facts", "facts_of", "warnings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Facts:
    """What consumers care about in a written image: its reference text, the number of zstd layers it
    reaches, whether it nests an index in an index, and, for a single-file output, how many images the
    file holds when read without a name (1 when an unnamed read resolves; 0 for directories and registries)."""

    ref: str
    zstd_layers: int = 0
    nested_index: bool = False
    single_file_images: int = 0
    #: The ref name of the written entry of a single-file OCI layout (oci-archive) when it is a bare tag with
    #: no containerd name: what ``podman load`` turns into the image name.
    archive_tag_only: str | None = None


def warnings(facts: Facts) -> list[str]:
    """One line per known consumer problem of ``facts`` (empty when there is none)."""
    out: list[str] = []
    if facts.zstd_layers:
        out.append(f"{facts.ref}: {facts.zstd_layers} zstd-compressed layer(s): Docker before 23.0 cannot load "
                   "them (copy with --dest-compress-format gzip for it)")
    if facts.single_file_images > 1:
        out.append(f"{facts.ref}: the file holds {facts.single_file_images} images: readers that load it without "
                   "a name (podman load, skopeo's unnamed archive references) refuse it (write each image to its "
                   "own file, or name one: FILE:NAME)")
    if facts.archive_tag_only is not None:
        tag = facts.archive_tag_only
        out.append(f"{facts.ref}: named only by the tag {tag!r}: podman load names the image localhost/{tag}:latest "
                   "(give --image-name REGISTRY/REPO, or --ref-name full with it)")
    if facts.nested_index:
        out.append(f"{facts.ref}: an index inside an index: containers/image tools (skopeo, podman, CRI-O) refuse "
                   "it and umoci finds its tag ambiguous (copy a single platform with --platform OS/ARCH)")
    return out


def facts_of(ref: ImageReference | str, digest: Digest | None = None) -> Facts:
    """Read the written image ``ref`` (its tree, and for a single file how many images it holds). With
    ``digest`` (what was written) the image is read by digest where the transport can, so a name that has
    become ambiguous still reads. Raises the errors of reading ``ref``."""
    import dataclasses
    from pathlib import Path

    from .errors import AmbiguousImage, OcilayoutError
    from .reference import parse_reference
    from .transports import open_source

    r = parse_reference(str(ref)) if isinstance(ref, str) else ref
    src = None
    if digest is not None:
        with contextlib.suppress(OcilayoutError):
            src = open_source(dataclasses.replace(r, ref=None, digest=digest))
    if src is None:
        src = open_source(r)
    with src:
        zstd, nested = _tree(src)
    images = 0
    tag_only = None
    if Path(r.path).is_file():  # a single file a consumer loads whole (the CLI never asks about registries)
        images = 1
        tag_only = _tag_only(r, src.root.digest)
        unnamed = parse_reference(f"{r.transport}:{_quoted(r.path)}")
        try:
            with open_source(unnamed):
                pass
        except AmbiguousImage as err:
            images = err.count
    return Facts(ref=str(r), zstd_layers=zstd, nested_index=nested, single_file_images=images,
                 archive_tag_only=tag_only)


def _tag_only(r: ImageReference, digest: Digest) -> str | None:
    """The bare-tag name of the entry for ``digest`` in the single-file layout ``r`` (None when it has a full
    or containerd name, no name, or the file is no OCI layout)."""
    from .descriptor import CONTAINERD_NAME, REF_NAME
    from .errors import OcilayoutError
    from .transports import transport

    try:
        with transport(r.transport).open_reader(r) as reader:
            entries = [e.raw for e in reader.entries() if e.ok and e.descriptor.digest == digest]
    except OcilayoutError:
        return None
    for raw in entries:
        ann = raw.get("annotations") or {}
        name = ann.get(REF_NAME)
        if isinstance(name, str) and name and "/" not in name and not ann.get(CONTAINERD_NAME):
            return name
    return None


def _quoted(path: str) -> str:
    return f"[{path}]" if ":" in path else path


def _tree(src: Source) -> tuple[int, bool]:
    from . import mediatypes as mt
    from .graph import LAYER, walk

    zstd = 0
    nested = False
    index_digests: set[object] = set()
    for node in walk(src, [src.root], follow_subject=False):
        if not node.first:
            continue
        media = node.descriptor.media_type
        if node.manifest is not None and node.manifest.is_index:
            if node.parent in index_digests:
                nested = True
            index_digests.add(node.descriptor.digest)
        elif node.role == LAYER and mt.layer_compression(media) == "zstd":
            zstd += 1
    return zstd, nested
