"""The content graph of a layout: walk from roots through indexes, manifests, configs, layers, subjects.

One walk serves gc (what is reachable), fsck (what is missing or broken) and copy (what to transfer).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from . import mediatypes as mt
from .descriptor import Descriptor
from .digest import Digest
from .errors import OcilayoutError
from .manifest import Manifest
from .store import LayoutReader

__all__ = ["Node", "Problem", "reachable", "walk"]


@dataclass(frozen=True, slots=True)
class Node:
    """One reachable descriptor; ``manifest`` is set for manifests and indexes that parsed."""

    descriptor: Descriptor
    parent: Digest | None
    manifest: Manifest | None = None


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong found while walking: a missing or unreadable child."""

    digest: Digest
    parent: Digest | None
    message: str


def _is_manifest_like(desc: Descriptor) -> bool:
    return mt.is_index(desc.media_type) or mt.is_manifest(desc.media_type)


def walk(reader: LayoutReader, roots: Iterable[Descriptor], problems: list[Problem] | None = None,
         *, follow_subject: bool = True) -> Iterator[Node]:
    """Yield every descriptor reachable from ``roots`` once, parents before children.

    Manifests and indexes are read and parsed (verified against their descriptors). With ``problems``
    given, missing or broken manifests are recorded there and the walk goes on; without it, the first
    one raises. Loops (an index that refers back to itself through ``subject``) are followed once.
    """
    seen: set[Digest] = set()
    stack: list[tuple[Descriptor, Digest | None]] = [(d, None) for d in reversed(list(roots))]
    while stack:
        desc, parent = stack.pop()
        if desc.digest in seen:
            continue
        seen.add(desc.digest)
        manifest = None
        if _is_manifest_like(desc):
            try:
                manifest = reader.get_manifest(desc)
            except OcilayoutError as err:
                if problems is None:
                    raise
                problems.append(Problem(desc.digest, parent, str(err)))
                yield Node(desc, parent, None)
                continue
        elif problems is not None and not reader.has_blob(desc.digest) and not desc.urls:
            problems.append(Problem(desc.digest, parent, f"blob {desc.digest} is missing"))
        yield Node(desc, parent, manifest)
        if manifest is not None:
            children = manifest.children()
            if not follow_subject and manifest.subject is not None:
                children = [c for c in children if c.digest != manifest.subject.digest]
            if manifest.is_schema1:
                children = [Descriptor(mt.OCI_LAYER_GZIP, d, reader.blob_size(d)) for d in manifest.schema1_layers
                            if reader.has_blob(d)]
            for child in reversed(children):
                stack.append((child, desc.digest))


def reachable(reader: LayoutReader, roots: Iterable[Descriptor] | None = None,
              problems: list[Problem] | None = None) -> dict[Digest, Descriptor]:
    """Every digest reachable from ``roots`` (default: all ``index.json`` entries)."""
    if roots is None:
        roots = [e.descriptor for e in reader.entries()]
    out: dict[Digest, Descriptor] = {}
    for node in walk(reader, roots, problems):
        out[node.descriptor.digest] = node.descriptor
    return out
