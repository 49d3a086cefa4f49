"""``index.json`` entries: their names and the one set of rules both layout writers follow.

A layout directory (:class:`~ocilayout.store.LayoutStore`) and an archive (:mod:`ocilayout.archive`) merge
entries with :func:`merge_entries`, so a tag rule never drifts between ``oci:`` and ``oci-archive:``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from .descriptor import CONTAINERD_NAME, REF_NAME, Descriptor
from .errors import InvalidManifest
from .manifest import load_json

__all__ = ["entry_name", "index_entry", "merge_entries", "parse_index_doc", "with_name"]


def entry_name(entry: Any) -> str | None:
    """An entry's name: ``org.opencontainers.image.ref.name``, else ``io.containerd.image.name``, else None."""
    ann = entry.get("annotations") if isinstance(entry, dict) else None
    if not isinstance(ann, dict):
        return None
    for key in (REF_NAME, CONTAINERD_NAME):
        value = ann.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def index_entry(root: Descriptor) -> Descriptor:
    """The descriptor to record in a destination's ``index.json``: the source's names are dropped."""
    annotations = {k: v for k, v in root.annotations.items() if k not in (REF_NAME, CONTAINERD_NAME)}
    return root.with_(annotations=annotations)


def with_name(desc: Descriptor, name: str | None) -> dict[str, Any]:
    """``desc`` as an ``index.json`` entry called ``name`` (untagged when None)."""
    annotations = {k: v for k, v in desc.annotations.items() if k != REF_NAME}
    if name is not None:
        annotations[REF_NAME] = name
    return desc.with_(annotations=annotations).to_dict()


def merge_entries(old: list[dict[str, Any]], new: list[dict[str, Any]],
                  replaced: Collection[str] = ()) -> list[dict[str, Any]]:
    """``old`` with ``new`` merged in order; each new entry goes to the end. A named entry replaces every old
    one of that name; one that also has a containerd full name (``io.containerd.image.name``) replaces the
    old entries of that full name and the old ones of its ref name that have no full name (two images
    containerd exported may share a tag ``1.0``). An untagged entry is appended unless the same digest is
    already there untagged. The untagged old entries of a digest in ``replaced`` (an in-place edit of an
    unnamed image) are dropped first; one another writer already dropped is simply not there."""
    out = [e for e in old if not (entry_name(e) is None and e.get("digest") in replaced)] if replaced else list(old)
    for entry in new:
        name = entry_name(entry)
        if name is None:
            if not any(e.get("digest") == entry.get("digest") and entry_name(e) is None for e in out):
                out.append(entry)
            continue
        full = _full_name(entry)
        if full is None:
            out = [*(e for e in out if entry_name(e) != name), entry]
        else:
            out = [*(e for e in out if _full_name(e) != full and (_full_name(e) is not None or entry_name(e) != name)),
                   entry]
    return out


def _full_name(entry: Any) -> str | None:
    ann = entry.get("annotations") if isinstance(entry, dict) else None
    full = ann.get(CONTAINERD_NAME) if isinstance(ann, dict) else None
    return full if isinstance(full, str) and full else None


def parse_index_doc(raw: bytes, location: str) -> dict[str, Any]:
    """``index.json`` as a dict whose ``manifests`` is a list of objects; raises InvalidManifest.

    The document's own fields are checked (an ambiguous index, mistyped ``annotations`` or ``subject``);
    its entries are not: each is parsed where it is used, so one broken entry hides no other.
    """
    from . import mediatypes as mt
    from .manifest import check_unambiguous
    from .schema import check_manifest

    doc = load_json(raw, f"{location}/index.json")
    manifests = doc.get("manifests") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or not isinstance(manifests if manifests is not None else [], list):
        raise InvalidManifest(f"{location}/index.json is not an OCI index")
    try:
        check_unambiguous(doc, mt.OCI_INDEX, doc.get("mediaType"))
        check_manifest({k: v for k, v in doc.items() if k != "manifests"})
    except InvalidManifest as err:
        raise InvalidManifest(f"{location}/index.json: {err}") from err
    entries = manifests or []
    if not all(isinstance(e, dict) for e in entries):
        raise InvalidManifest(f"{location}/index.json has a manifests entry that is not an object")
    doc["manifests"] = list(entries)
    return doc
