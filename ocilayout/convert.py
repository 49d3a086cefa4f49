"""Pure document conversion: OCI <-> Docker v2s2 manifests, indexes <-> manifest lists, layer media types.

Nothing here reads or writes blobs; the planner (:mod:`ocilayout.plan`) decides what changes and calls
these to build the new documents, children first. The shapes follow containers/image
(``manifest.OCI1FromComponents`` / ``Schema2FromComponents`` and their list twins): fields are emitted in
Go's struct order, compact; Docker v2s2 has no annotations, ``artifactType`` or ``subject``, so converting
to it drops annotations and refuses the other two (see :func:`v2s2_refusal`). A document whose format does
not change keeps every field it has and only gets the new layer / child descriptors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from . import mediatypes as mt
from .descriptor import Descriptor

__all__ = ["DOCKER_LAYER_TAR", "Format", "LayerOut", "convert_index", "convert_manifest", "format_of",
           "layer_info", "layer_media_type", "v2s2_refusal"]

Format = Literal["oci", "v2s2"]

#: Docker's uncompressed layer type (containers/image DockerV2SchemaLayerMediaTypeUncompressed).
DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"

_OCI_LAYERS = {(False, "none"): mt.OCI_LAYER, (False, "gzip"): mt.OCI_LAYER_GZIP, (False, "zstd"): mt.OCI_LAYER_ZSTD,
               (True, "none"): mt.OCI_LAYER_ND, (True, "gzip"): mt.OCI_LAYER_ND_GZIP,
               (True, "zstd"): mt.OCI_LAYER_ND_ZSTD}
_DOCKER_LAYERS = {(False, "none"): DOCKER_LAYER_TAR, (False, "gzip"): mt.DOCKER_LAYER,
                  (True, "none"): mt.DOCKER_FOREIGN_LAYER_TAR, (True, "gzip"): mt.DOCKER_FOREIGN_LAYER}
#: media type -> (non-distributable / foreign, declared compression)
_LAYER_INFO: dict[str, tuple[bool, str]] = {
    **{v: k for k, v in _OCI_LAYERS.items()},
    **{v: k for k, v in _DOCKER_LAYERS.items()},
    mt.DOCKER_LAYER_ZSTD: (False, "zstd"),
}


def format_of(media_type: str) -> Format | None:
    """"oci" or "v2s2" for an OCI / Docker v2s2 manifest or index, None for anything else (schema1...)."""
    if media_type in (mt.OCI_MANIFEST, mt.OCI_INDEX):
        return "oci"
    if media_type in (mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST_LIST):
        return "v2s2"
    return None


def layer_info(media_type: str) -> tuple[bool, str] | None:
    """(foreign, declared compression) of a layer media type we can convert; None for anything else
    (artifact blobs, encrypted layers), which is carried unchanged."""
    return _LAYER_INFO.get(media_type)


def layer_media_type(fmt: Format, compression: str, foreign: bool) -> str | None:
    """The layer media type of ``fmt`` for ``compression``; None when the format has none (Docker v2s2 has no
    zstd layers Docker reads, nor foreign zstd ones)."""
    table = _OCI_LAYERS if fmt == "oci" else _DOCKER_LAYERS
    return table.get((foreign, compression))


def v2s2_refusal(doc: Mapping[str, Any], config_type: str | None) -> str | None:
    """Why an OCI manifest or index cannot become Docker v2s2, or None when it can."""
    if "artifactType" in doc:
        return "it is an artifact (artifactType), which Docker v2s2 cannot express"
    if doc.get("subject") is not None:
        return "it has a subject (a referrer), which Docker v2s2 cannot express"
    if config_type is not None and config_type not in mt.CONFIG_TYPES:
        return f"its config is {config_type}, not an image config (an artifact)"
    return None


@dataclass(frozen=True, slots=True)
class LayerOut:
    """What a layer became: its descriptor in the new manifest is the old one with these."""

    media_type: str
    digest: str
    size: int


def _docker_desc(d: Mapping[str, Any], media_type: str, digest: str, size: int) -> dict[str, Any]:
    out: dict[str, Any] = {"mediaType": media_type, "size": size, "digest": digest}
    if d.get("urls"):
        out["urls"] = list(d["urls"])
    return out


def _oci_desc(d: Mapping[str, Any], media_type: str, digest: str, size: int, *,
              keep_annotations: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": size}
    if d.get("urls"):
        out["urls"] = list(d["urls"])
    if keep_annotations and d.get("annotations"):
        out["annotations"] = dict(d["annotations"])
    return out


def convert_manifest(doc: Mapping[str, Any], target: Format, layers: Sequence[LayerOut | None]) -> dict[str, Any]:
    """A new image manifest from ``doc`` in format ``target``; ``layers[i]`` replaces layer i (None: as is).

    Same format: a copy of ``doc`` with the layer descriptors' mediaType/digest/size replaced (every other
    field kept). Other format: the target's fields only, config bytes unchanged (only the config
    descriptor's media type changes)."""
    src_layers: list[Mapping[str, Any]] = list(doc.get("layers") or [])
    if len(layers) != len(src_layers):
        raise ValueError("one LayerOut (or None) per layer")
    same = format_of(str(doc.get("mediaType", mt.OCI_MANIFEST))) == target or (
        target == "oci" and "mediaType" not in doc)
    cfg = doc["config"]
    if same:
        out = dict(doc)
        new_layers = []
        for d, new in zip(src_layers, layers, strict=True):
            nd = dict(d)
            if new is not None:
                nd.update(mediaType=new.media_type, digest=new.digest, size=new.size)
            new_layers.append(nd)
        out["layers"] = new_layers
        return out
    def pick(d: Mapping[str, Any], new: LayerOut | None) -> tuple[str, str, int]:
        if new is not None:
            return new.media_type, new.digest, new.size
        info = layer_info(str(d.get("mediaType")))  # as declared: the planner passes what it detected
        media_type = layer_media_type(target, info[1], info[0]) if info else None
        return media_type or d["mediaType"], d["digest"], d["size"]

    if target == "v2s2":
        return {"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST,
                "config": _docker_desc(cfg, mt.DOCKER_CONFIG, cfg["digest"], cfg["size"]),
                "layers": [_docker_desc(d, *pick(d, new)) for d, new in zip(src_layers, layers, strict=True)]}
    return {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
            "config": _oci_desc(cfg, mt.OCI_CONFIG, cfg["digest"], cfg["size"]),
            "layers": [_oci_desc(d, *pick(d, new)) for d, new in zip(src_layers, layers, strict=True)]}


_PLATFORM_OCI = ("architecture", "os", "os.version", "os.features", "variant")
_PLATFORM_DOCKER = ("architecture", "os", "os.version", "os.features", "variant", "features")


def convert_index(doc: Mapping[str, Any], target: Format, children: Mapping[str, Descriptor]) -> dict[str, Any]:
    """A new index from ``doc`` in format ``target``; ``children`` maps a child's source digest to what it
    was written as (children not in it stay as they are). Same format: every other field is kept. OCI ->
    Docker drops annotations; Docker -> OCI drops the platform's ``features`` (not in OCI)."""
    same = format_of(str(doc.get("mediaType", mt.OCI_INDEX))) == target or (
        target == "oci" and "mediaType" not in doc)
    entries = []
    for d in doc.get("manifests") or []:
        new = children.get(d.get("digest", ""))
        media_type, digest, size = ((new.media_type, str(new.digest), new.size) if new is not None
                                    else (d.get("mediaType"), d["digest"], d["size"]))
        if same:
            nd = dict(d)
            nd.update(mediaType=media_type, digest=digest, size=size)
            entries.append(nd)
            continue
        plat = d.get("platform")
        keys = _PLATFORM_DOCKER if target == "v2s2" else _PLATFORM_OCI
        if target == "v2s2":
            e: dict[str, Any] = {"mediaType": media_type, "size": size, "digest": digest}
        else:
            e = {"mediaType": media_type, "digest": digest, "size": size}
            if d.get("annotations"):
                e["annotations"] = dict(d["annotations"])
        if isinstance(plat, dict):
            e["platform"] = {k: plat[k] for k in keys if plat.get(k)}
            if target == "v2s2":
                e["platform"].setdefault("architecture", plat.get("architecture", ""))
                e["platform"].setdefault("os", plat.get("os", ""))
        entries.append(e)
    if same:
        out = dict(doc)
        out["manifests"] = entries
        return out
    if target == "v2s2":
        return {"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST_LIST, "manifests": entries}
    out = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}
    return out
