"""The ``docker save`` tarball format: ``manifest.json`` items, ``repositories`` and the legacy v1 metadata.

Pure format code (no I/O): parsing what docker, skopeo and Docker 25+ write, and producing the bytes
:mod:`ocilayout.transports.docker_archive` writes. Layouts as found in the wild:

* ``docker save`` (Docker 1.10-24): ``manifest.json``, ``repositories``, ``<config hex>.json`` and one
  directory per v1 layer id holding ``layer.tar`` (often a symlink to another image's), ``json``, ``VERSION``;
* skopeo / containers-image: ``<diffid hex>.tar`` layers and ``<config hex>.json`` at the top, the v1
  directories holding ``layer.tar -> ../<diffid hex>.tar`` symlinks;
* Docker 25+: a whole OCI layout (``oci-layout``, ``index.json``, ``blobs/``) plus ``manifest.json`` whose
  paths point into ``blobs/``;
* the pre-1.10 form with ``repositories`` and v1 directories but no ``manifest.json`` (refused, as
  containers-image does).

The v1 layer ids written are computed as containers-image's ``writeLegacyMetadataLocked`` computes them
(a chain id per layer, the id a digest of the layer's v1 json): unique and stable, not Docker's own.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .digest import Digest
from .errors import InvalidManifest, InvalidReference, LayoutError, UnsafePath

__all__ = [
    "MANIFEST_FILE",
    "REPOSITORIES_FILE",
    "Item",
    "LegacyLayer",
    "legacy_layers",
    "manifest_bytes",
    "member_path",
    "normalize_tag",
    "parse_manifest",
    "repositories_bytes",
]

MANIFEST_FILE = "manifest.json"
REPOSITORIES_FILE = "repositories"
#: containers-image's iolimits.MaxTarFileManifestSize.
MAX_TAR_MANIFEST = 1 << 20
#: The config fields the top layer's v1 json copies (as containers-image does).
_V1_FIELDS = ("architecture", "config", "container", "container_config", "created", "docker_version", "os")


@dataclass(frozen=True, slots=True)
class Item:
    """One ``manifest.json`` entry: the config's and layers' member paths and the image's names."""

    config: str
    layers: tuple[str, ...]
    repo_tags: tuple[str, ...] = ()


def member_path(text: object, what: str) -> str:
    """A ``manifest.json`` path as a normalized member name; raises LayoutError (not a string) or UnsafePath
    (absolute, or any ``..`` component: a docker-archive never needs one)."""
    if not isinstance(text, str) or not text:
        raise LayoutError(f"{what} is not a path string ({text!r})")
    if "\x00" in text or text.startswith("/"):
        raise UnsafePath(f"{what} {text!r} is an absolute or NUL-containing path")
    if ".." in text.split("/"):
        raise UnsafePath(f"{what} {text!r} contains a '..' component")
    return posixpath.normpath(text)


def parse_manifest(raw: bytes, location: str) -> list[Item]:
    """The items of a ``manifest.json``; raises InvalidManifest (not JSON) or LayoutError (wrong shape,
    ``null`` or no items), UnsafePath (a path leaving the archive)."""
    from .manifest import load_json

    doc = load_json(raw, f"{location}: manifest.json", MAX_TAR_MANIFEST)
    if doc is None or doc == []:
        raise LayoutError(f"{location}: manifest.json lists no images")
    if not isinstance(doc, list):
        raise LayoutError(f"{location}: manifest.json is not a list of images")
    items = []
    for i, entry in enumerate(doc):
        where = f"{location}: manifest.json item @{i}"
        if not isinstance(entry, dict):
            raise LayoutError(f"{where} is not an object")
        layers = entry.get("Layers")
        if not isinstance(layers, list):
            raise LayoutError(f"{where} has no Layers list")
        tags = entry.get("RepoTags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise LayoutError(f"{where}: RepoTags is not a list of strings")
        items.append(Item(member_path(entry.get("Config"), f"{where} Config"),
                          tuple(member_path(p, f"{where} layer") for p in layers), tuple(tags)))
    return items


def normalize_tag(text: str) -> str:
    """``NAME[:TAG]`` as the fully qualified ``domain/path:tag`` RepoTags holds (``:latest`` when no tag is
    given, as containers-image's TagNameOnly); raises InvalidReference for a digest or a bad name."""
    from .signature.dockerref import parse_normalized

    ref = parse_normalized(text)
    if ref.digest is not None:
        raise InvalidReference(f"docker-archive names images by NAME:TAG, not by digest ({text!r})")
    return f"{ref.name}:{ref.tag or 'latest'}"


def same_tag(stored: str, wanted: str) -> bool:
    """True when the RepoTags entry ``stored`` names ``wanted`` (a :func:`normalize_tag` result)."""
    try:
        return normalize_tag(stored) == wanted
    except InvalidReference:
        return False


def _go_json(obj: Any) -> bytes:
    """Compact JSON with sorted keys, as Go's json.Marshal writes a map."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode("utf-8")


def manifest_bytes(items: Sequence[Item]) -> bytes:
    """``manifest.json`` for ``items``, in order (containers-image's field order)."""
    doc = [{"Config": it.config, "RepoTags": list(it.repo_tags), "Layers": list(it.layers)} for it in items]
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def repositories_bytes(repos: Mapping[str, Mapping[str, str]]) -> bytes:
    """``repositories``: ``{name: {tag: top v1 layer id}}``, keys sorted."""
    return _go_json({k: dict(v) for k, v in repos.items()})


@dataclass(frozen=True, slots=True)
class LegacyLayer:
    """One v1 layer directory: its id, the diff id of its ``layer.tar`` and its ``json``."""

    id: str
    diff_id: Digest
    json: bytes


def legacy_layers(config: Mapping[str, Any], diff_ids: Sequence[Digest]) -> list[LegacyLayer]:
    """The v1 layer directories of one image, bottom first (the last is the image's top layer)."""
    out: list[LegacyLayer] = []
    chain: str | None = None
    parent = ""
    for i, diff_id in enumerate(diff_ids):
        layer: dict[str, Any] = {}
        if parent:
            layer["parent"] = parent
        if i == len(diff_ids) - 1:
            for attr in _V1_FIELDS:
                layer[attr] = config.get(attr)
        chain = str(diff_id) if chain is None else str(Digest.of(f"{chain} {diff_id}".encode()))
        layer["layer_id"] = chain
        layer_id = Digest.of(_go_json(layer)).hex
        del layer["layer_id"]
        layer["id"] = layer_id
        out.append(LegacyLayer(layer_id, diff_id, _go_json(layer)))
        parent = layer_id
    return out


def split_tag(repo_tag: str) -> tuple[str, str]:
    """``name:tag`` -> (name, tag); raises InvalidManifest when there is no tag."""
    slash = repo_tag.rfind("/")
    colon = repo_tag.rfind(":")
    if colon <= slash:
        raise InvalidManifest(f"RepoTags entry {repo_tag!r} has no tag")
    return repo_tag[:colon], repo_tag[colon + 1 :]
