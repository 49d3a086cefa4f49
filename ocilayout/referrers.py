"""OCI 1.1 referrers, transport-neutral: what points at a manifest through its ``subject``.

The distribution spec lists a manifest's referrers as an OCI image index of descriptors (the referrers
API, ``GET /v2/<name>/referrers/<digest>``); a registry without that API (distribution 2.8) is given the
same index under the fallback tag ``<alg>-<hex>`` (:func:`fallback_tag`), which clients keep up to date
with a read-modify-write after pushing a manifest with a ``subject``. This module holds the pieces every
transport shares; it does no I/O:

* :func:`referrer_descriptor` -- the entry for a manifest (its media type, digest, size, ``artifactType``
  -- the manifest's, else its config's media type -- and annotations);
* :func:`parse_index` / :func:`add_to_index` -- read a referrers index and add entries to it, keeping
  every other entry exactly as it was (fields we do not model included);
* :func:`select` -- the ``artifactType`` filter.

A transport that can list referrers overrides ``Transport.referrers`` (``docker://`` does; the base
raises UnsupportedFormat); :func:`list_referrers` is the library entry point.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from . import mediatypes as mt
from .descriptor import Descriptor
from .digest import Digest
from .errors import InvalidManifest, UnsupportedFormat
from .manifest import Manifest, load_json

if TYPE_CHECKING:
    from .reference import ImageReference

__all__ = ["add_to_index", "empty_index", "fallback_tag", "index_bytes", "list_referrers",
           "parse_index", "referrer_descriptor", "select"]


def fallback_tag(digest: Digest) -> str:
    """The referrers tag schema ``<alg>-<ref>``: algorithm cut to 32 characters, encoded digest to 64."""
    return f"{digest.algorithm[:32]}-{digest.hex[:64]}"


def referrer_descriptor(manifest: Manifest) -> Descriptor:
    """The descriptor a referrers index lists for ``manifest``: ``artifactType`` is the manifest's own,
    else (an image manifest) its config's media type; annotations are the manifest's."""
    doc = manifest.doc
    artifact = doc.get("artifactType")
    if not isinstance(artifact, str) or not artifact:
        cfg = doc.get("config")
        artifact = cfg.get("mediaType") if isinstance(cfg, dict) and not manifest.is_index else None
    annotations = doc.get("annotations")
    raw: dict[str, Any] = {"mediaType": manifest.media_type}
    if isinstance(artifact, str) and artifact:
        raw["artifactType"] = artifact
    raw |= {"digest": str(Digest.of(manifest.raw)), "size": len(manifest.raw)}
    if isinstance(annotations, dict) and annotations:
        raw["annotations"] = dict(annotations)
    return Descriptor.from_dict(raw)


def empty_index() -> dict[str, Any]:
    """A referrers index with no entries."""
    return {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}


def parse_index(raw: bytes, what: str = "referrers index") -> tuple[dict[str, Any], list[Descriptor]]:
    """The index document and its descriptors; raises InvalidManifest (not JSON, wrong shape) and
    UnsupportedFormat (not an OCI image index)."""
    doc = load_json(raw, what)
    if not isinstance(doc, dict):
        raise InvalidManifest(f"{what} is not a JSON object")
    if doc.get("mediaType", mt.OCI_INDEX) != mt.OCI_INDEX or doc.get("schemaVersion") != 2:
        raise UnsupportedFormat(f"{what} is not an OCI image index")
    entries = doc.get("manifests") or []
    if not isinstance(entries, list):
        raise InvalidManifest(f"{what}: manifests must be an array")
    return doc, [Descriptor.from_dict(e) for e in entries]


def add_to_index(current: bytes | None, new: Iterable[Descriptor]) -> bytes | None:
    """The fallback index with ``new`` appended (``current`` None: a fresh index), or None when every
    entry is there already (nothing to write). Entries already listed keep their exact JSON."""
    doc, listed = parse_index(current) if current is not None else (empty_index(), [])
    have = {d.digest for d in listed}
    entries = list(doc.get("manifests") or [])
    added = False
    for d in new:
        if d.digest not in have:
            entries.append(d.to_dict())
            have.add(d.digest)
            added = True
    if not added:
        return None
    doc = dict(doc)
    doc.setdefault("schemaVersion", 2)
    doc["mediaType"] = mt.OCI_INDEX
    doc["manifests"] = entries
    return index_bytes(doc)


def index_bytes(doc: dict[str, Any]) -> bytes:
    """A referrers index serialized (compact, key order kept)."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def select(descs: Sequence[Descriptor], artifact_type: str | None) -> list[Descriptor]:
    """``descs`` with ``artifactType`` equal to ``artifact_type`` (all of them when None)."""
    return [d for d in descs if artifact_type is None or d.artifact_type == artifact_type]


def list_referrers(ref: str | ImageReference, artifact_type: str | None = None) -> list[Descriptor]:
    """The referrers of the image ``ref`` names (only ``artifact_type`` ones when given), through its
    transport's :meth:`~ocilayout.transports.base.Transport.referrers`; raises UnsupportedFormat where the
    transport cannot list referrers, and what opening ``ref`` raises."""
    from .reference import parse_reference
    from .transports import transport

    r = parse_reference(ref) if isinstance(ref, str) else ref
    return transport(r.transport).referrers(r, artifact_type)
