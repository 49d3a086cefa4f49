"""``inspect``: the fields skopeo prints, with the values skopeo prints, as ordered data.

:func:`go_json` reproduces Go's ``json.MarshalIndent(v, "", "    ")`` byte for byte for these values
(sorted map keys, ``<``/``>``/``&`` escaped), so output can be diffed against skopeo's.
"""

from __future__ import annotations

import json
import re
from typing import Any

from . import mediatypes as mt
from .descriptor import Descriptor
from .errors import InvalidManifest, UnsupportedFormat
from .manifest import ImageConfig, Manifest, load_json
from .schema import check_image_config
from .selection import Selection, select_root
from .transports.base import Source, read_blob_bytes

__all__ = ["go_json", "go_time", "image_config", "inspect_image", "pretty_config"]

_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|z|[+-]\d\d:\d\d)")


def go_time(value: Any) -> str | None:
    """A timestamp as Go's time.Time marshals it (RFC3339Nano: fraction without trailing zeros)."""
    if not isinstance(value, str):
        return None
    m = _TIME.fullmatch(value)
    if not m:
        return value
    base, frac, zone = m.groups()
    frac = (frac or "")[:9].rstrip("0")
    if zone in ("z", "+00:00", "-00:00"):
        zone = "Z"
    return base + (f".{frac}" if frac else "") + zone


def go_json(obj: Any) -> str:
    """JSON text as Go's MarshalIndent with four spaces writes it."""
    text = json.dumps(obj, indent=4, ensure_ascii=False)
    for ch, esc in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"), ("\u2028", "\\u2028"),
                    ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def _sorted_map(value: Any) -> dict[str, Any] | None:
    """A JSON object with Go's sorted keys; absent or null stays null (Go's nil map), ``{}`` stays ``{}``."""
    return {k: value[k] for k in sorted(value)} if isinstance(value, dict) else None


def image_config(src: Source) -> tuple[Manifest, ImageConfig | None]:
    """The single-image manifest skopeo would show for ``src`` (host platform of an index) and its config.

    Raises UnsupportedFormat for an artifact (a config media type that is not an OCI or Docker image
    config: its config is never parsed), as skopeo refuses "image-specific operations" on artifacts, and
    InvalidManifest for a config with fields of the wrong JSON type.
    """
    root, _ = select_root(src, Selection())
    manifest = src.get_manifest(root)
    if manifest.is_schema1 or "config" not in manifest.doc:
        return manifest, None
    cfg = manifest.config
    # containers/image refuses artifacts for OCI manifests only; Docker schema2 takes any config media type
    # (skopeo's own dir: fixture uncompressed-image-s2 says application/octet-stream).
    if cfg.media_type not in mt.CONFIG_TYPES and manifest.media_type != mt.DOCKER_MANIFEST:
        raise UnsupportedFormat(f"{src.ref}: unsupported image-specific operation on artifact with type "
                                f"{cfg.media_type!r}")
    kind = cfg.media_type if cfg.media_type in mt.CONFIG_TYPES else None  # None: read by Docker's rules
    return manifest, ImageConfig.parse(read_blob_bytes(src, cfg), kind)


def _schema1_config(manifest: Manifest) -> dict[str, Any]:
    history = manifest.doc.get("history") or []
    try:
        doc = load_json(history[0]["v1Compatibility"].encode(), "schema1 v1Compatibility")
    except (IndexError, KeyError, TypeError, AttributeError, InvalidManifest) as err:
        raise InvalidManifest("schema1 manifest has no usable v1Compatibility history") from err
    try:
        check_image_config(doc, docker=True)  # skopeo decodes it as a Docker v1 image
    except InvalidManifest as err:
        raise InvalidManifest(f"schema1 v1Compatibility: {err}") from err
    out: dict[str, Any] = doc
    return out


def inspect_image(src: Source) -> dict[str, Any]:
    """skopeo's inspect output fields for ``src``: Digest, RepoTags, Created, DockerVersion, Labels,
    Architecture, Os, Layers, LayersData, Env (Name only for registries)."""
    manifest, config = image_config(src)
    if config is not None:
        doc = config.doc
        cfg = config.config
    elif manifest.is_schema1:
        doc = _schema1_config(manifest)
        cfg = doc.get("config") or {}
    else:
        doc, cfg = {}, {}
    if manifest.is_schema1:
        layers = [Descriptor("application/vnd.docker.image.rootfs.diff.tar.gzip", d, -1)
                  for d in manifest.schema1_layers]
    else:
        layers = manifest.layers
    top = src.get_manifest()
    # The reference's own manifest, by the algorithm it is stored under (a schema1 one by its payload).
    digest = top.digest if top.is_schema1 else src.root.digest
    out: dict[str, Any] = {}
    if manifest.is_schema1 and isinstance(manifest.doc.get("tag"), str) and manifest.doc["tag"]:
        out["Tag"] = manifest.doc["tag"]  # skopeo's Tag (omitempty): only schema1 manifests carry one
    out |= {
        "Digest": str(digest),
        "RepoTags": [],
        "Created": go_time(doc.get("created")),
        "DockerVersion": doc.get("docker_version") or "",
        "Labels": _sorted_map(cfg.get("Labels")),
        "Architecture": doc.get("architecture") or "",
        "Os": doc.get("os") or "",
        "Layers": [str(d.digest) for d in layers],
        "LayersData": [
            {"MIMEType": d.media_type, "Digest": str(d.digest), "Size": d.size,
             "Annotations": _sorted_map(d.raw.get("annotations"))}
            for d in layers
        ],
        "Env": list(cfg["Env"]) if isinstance(cfg.get("Env"), list) and cfg["Env"] else None,
    }
    return out


_CONFIG_KEYS = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels",
                "StopSignal", "ArgsEscaped")
_HISTORY_KEYS = ("created", "created_by", "author", "comment", "empty_layer")


def pretty_config(config: ImageConfig) -> dict[str, Any]:
    """The config as skopeo's ``inspect --config`` prints it: the OCI image struct's fields, in its order."""
    d = config.doc
    out: dict[str, Any] = {}
    if d.get("created"):
        out["created"] = go_time(d["created"])
    if d.get("author"):
        out["author"] = d["author"]
    out["architecture"] = d.get("architecture", "")
    out["os"] = d.get("os", "")
    for key in ("os.version", "os.features", "variant"):
        if d.get(key):
            out[key] = d[key]
    cfg: dict[str, Any] = d["config"] if isinstance(d.get("config"), dict) else {}
    conf: dict[str, Any] = {}
    for key in _CONFIG_KEYS:
        value = cfg.get(key)
        if value:
            conf[key] = _sorted_map(value) if isinstance(value, dict) else value
    out["config"] = conf
    rootfs: dict[str, Any] = d["rootfs"] if isinstance(d.get("rootfs"), dict) else {}
    out["rootfs"] = {"type": rootfs.get("type", ""), "diff_ids": rootfs.get("diff_ids")}
    history = []
    for h in d.get("history") or []:
        if isinstance(h, dict):
            item = {k: (go_time(h[k]) if k == "created" else h[k]) for k in _HISTORY_KEYS if h.get(k)}
            history.append(item)
    if history:
        out["history"] = history
    return out
