"""The content graph: one walk from roots through indexes, manifests, configs, layers and subjects.

copy (what to transfer), gc (what is reachable), fsck (what to check) and listing all use :func:`walk`, so
they agree on what an image holds:

* a descriptor typed as a manifest or index is read through the reader (verified) and parsed;
* a descriptor reached as an ``index.json`` entry, an index child or a ``subject`` whose media type does
  not say what it is (empty, ``application/octet-stream``, an artifact type) is *sniffed*: when its bytes
  (at most :data:`~ocilayout.manifest.MAX_MANIFEST_SIZE`, verified) parse as a schemaVersion 2 manifest or
  index, it is one, and its node carries the document's media type. Configs and layers are never sniffed;
* the OCI 1.1-rc artifact manifest (``application/vnd.oci.artifact.manifest.v1+json``, withdrawn from the
  spec) is manifest-like but not supported: reading it is a problem (gc refuses, fsck reports, copy fails),
  never a silent leaf whose payload looks unreachable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Protocol

from . import mediatypes as mt
from .descriptor import Descriptor
from .digest import Digest, read_verified
from .errors import NotFound, OcilayoutError
from .manifest import MAX_MANIFEST_SIZE, Manifest, read_manifest
from .mediatypes import is_manifest_like

if TYPE_CHECKING:
    from .store import LayoutReader

__all__ = [
    "ARTIFACT_MANIFEST",
    "ContentReader",
    "Node",
    "NodeReader",
    "WalkProblem",
    "is_manifest_like",
    "reachable",
    "read_manifest",
    "sniff_manifest",
    "sniffable",
    "walk",
]

#: The OCI 1.1 release candidates' artifact manifest (its payload is under ``blobs``); never followed.
ARTIFACT_MANIFEST = mt.ARTIFACT_MANIFEST

#: Roles a node can be reached in.
ENTRY, CHILD, CONFIG, LAYER, SUBJECT, SCHEMA1_LAYER = "entry", "manifest", "config", "layer", "subject", \
    "schema1-layer"
_SNIFFED_ROLES = frozenset({ENTRY, CHILD, SUBJECT})
_CONFIG_TYPES = frozenset({mt.OCI_CONFIG, mt.DOCKER_CONFIG})


class ContentReader(Protocol):
    """What the walk needs from a layout, archive or transport source."""

    def get_manifest(self, desc: Descriptor) -> Manifest:
        """The manifest ``desc`` names, verified against it; raises NotFound, IntegrityError, InvalidManifest."""
        ...

    def stat_blob(self, digest: Digest) -> int | None:
        """The stored size of a blob, None when it is not stored."""
        ...

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        """A stream of the blob's stored bytes (the walk verifies what it reads)."""
        ...


@dataclass(frozen=True, slots=True)
class Node:
    """One occurrence of a descriptor in the graph.

    ``descriptor`` carries the parsed document's media type when the blob was sniffed. ``manifest`` is set
    for manifests and indexes that were read. ``first`` is False for later occurrences of a digest already
    yielded (they are not expanded again). ``size`` is the stored size, None when the blob is absent.
    """

    descriptor: Descriptor
    parent: Digest | None
    role: str
    manifest: Manifest | None = None
    size: int | None = None
    first: bool = True


@dataclass(frozen=True, slots=True)
class WalkProblem:
    """A manifest-like node that could not be read, or a blob that is absent, found while walking."""

    digest: Digest
    parent: Digest | None
    role: str
    message: str
    error: Exception | None = None

    @property
    def missing(self) -> bool:
        return isinstance(self.error, NotFound)


def sniffable(desc: Descriptor, role: str) -> bool:
    """True when a descriptor reached in ``role`` says too little and its blob must be sniffed for a manifest."""
    mtype = desc.media_type
    return role in _SNIFFED_ROLES and not is_manifest_like(mtype) and mtype not in _CONFIG_TYPES \
        and mt.layer_compression(mtype) is None and not mtype.startswith("application/vnd.oci.image.layer.")


def sniff_manifest(raw: bytes) -> Manifest | None:
    """``raw`` parsed as a schemaVersion 2 manifest or index when it is one, else None (never raises)."""
    try:
        m = Manifest.parse(raw)
    except (OcilayoutError, ValueError, TypeError, KeyError, AttributeError):
        return None
    return m if not m.is_schema1 and (m.is_index or "layers" in m.doc) else None


def _sniff(reader: ContentReader, desc: Descriptor, size: int) -> Manifest | None:
    if size > MAX_MANIFEST_SIZE or size != desc.size:
        return None
    with reader.open_blob(desc) as f:
        raw = read_verified(f, desc)
    return sniff_manifest(raw)


#: A caller's own reading of a node (fsck checks as it reads): the document to expand, or None for a leaf.
NodeReader = Callable[[Descriptor, str], "Manifest | None"]


def walk(reader: ContentReader, roots: Iterable[Descriptor], problems: list[WalkProblem] | None = None,
         *, follow_subject: bool = True, role: str = ENTRY, read: NodeReader | None = None) -> Iterator[Node]:
    """Yield every descriptor reachable from ``roots``, parents before children, each digest expanded once.

    Manifests and indexes are read and parsed (verified against their descriptors); untyped entries are
    sniffed (see the module docstring). With ``problems`` given, an unreadable manifest-like node or an
    absent blob is recorded there and the walk goes on; without it, an unreadable manifest raises (an
    absent leaf blob does not: the caller finds it when it reads it). ``role`` is the role of the roots.

    ``read`` replaces how a first occurrence is read (fsck: it checks presence, sizes and digests as it
    reads, and must follow what the default would: :func:`sniffable` says what to sniff); the order, the
    children of each document and the once-per-digest rule stay the walk's. Nodes then carry no size.
    """
    seen: set[Digest] = set()
    stack: list[tuple[Descriptor, Digest | None, str]] = [(d, None, role) for d in reversed(list(roots))]
    while stack:
        desc, parent, node_role = stack.pop()
        if desc.digest in seen:
            size = None if read is not None else reader.stat_blob(desc.digest)
            yield Node(desc, parent, node_role, None, size, first=False)
            continue
        seen.add(desc.digest)
        manifest: Manifest | None
        if read is not None:
            manifest = read(desc, node_role)
            if manifest is not None and not is_manifest_like(desc.media_type):
                desc = desc.with_(media_type=manifest.media_type)  # sniffed
            yield Node(desc, parent, node_role, manifest, None)
            if manifest is not None:
                for child, child_role in reversed(_children(reader, manifest, follow_subject)):
                    stack.append((child, desc.digest, child_role))
            continue
        try:
            size = reader.stat_blob(desc.digest)
        except (OSError, OcilayoutError) as err:
            if problems is None:
                raise
            problems.append(WalkProblem(desc.digest, parent, node_role, f"blob {desc.digest}: {err}", err))
            yield Node(desc, parent, node_role, None, None)
            continue
        manifest = None
        try:
            if is_manifest_like(desc.media_type):
                manifest = read_manifest(reader, desc)
            elif size is not None and sniffable(desc, node_role):
                manifest = _sniff(reader, desc, size)
                if manifest is not None:
                    desc = desc.with_(media_type=manifest.media_type)
            elif size is None and problems is not None:
                problems.append(WalkProblem(desc.digest, parent, node_role, f"blob {desc.digest} is missing",
                                            NotFound(f"blob {desc.digest} is missing")))
        except (OSError, OcilayoutError) as err:
            if problems is None:
                raise
            problems.append(WalkProblem(desc.digest, parent, node_role, str(err), err))
            yield Node(desc, parent, node_role, None, size)
            continue
        yield Node(desc, parent, node_role, manifest, size)
        if manifest is not None:
            for child, child_role in reversed(_children(reader, manifest, follow_subject)):
                stack.append((child, desc.digest, child_role))


def _children(reader: ContentReader, m: Manifest, follow_subject: bool) -> list[tuple[Descriptor, str]]:
    out: list[tuple[Descriptor, str]] = []
    if m.is_index:
        out.extend((c, CHILD) for c in m.manifests)
    elif m.is_schema1:
        for d in m.schema1_layers:
            try:
                size = reader.stat_blob(d) or 0
            except (OSError, OcilayoutError):
                size = 0  # the node itself reports it when it is read
            out.append((Descriptor(mt.DOCKER_LAYER, d, size), SCHEMA1_LAYER))
    else:
        if "config" in m.doc:
            out.append((m.config, CONFIG))
        out.extend((layer, LAYER) for layer in m.layers)
    if follow_subject and m.subject is not None:
        out.append((m.subject, SUBJECT))
    return out


def reachable(reader: LayoutReader, roots: Iterable[Descriptor] | None = None,
              problems: list[WalkProblem] | None = None) -> dict[Digest, Descriptor]:
    """Every digest reachable from ``roots`` (default: every ``index.json`` entry of the layout), with the
    descriptor it was first reached by."""
    if roots is None:
        roots = [e.descriptor for e in reader.entries()]
    out: dict[Digest, Descriptor] = {}
    for node in walk(reader, roots, problems):
        out.setdefault(node.descriptor.digest, node.descriptor)
    return out
