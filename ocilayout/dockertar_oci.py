"""The Docker 25+ ``docker save`` form ("oci-hybrid"): an OCI image layout plus ``manifest.json`` in one tar.

Since Docker 25 ``docker save`` writes an OCI layout (``oci-layout``, ``index.json``, ``blobs/sha256/<hex>``
holding configs, layers and the image manifests) and, beside it, the ``manifest.json`` and ``repositories``
files ``docker load`` and containers-image read, with every path pointing into ``blobs/`` (moby
``image/tarexport/save.go``). The same tar is thus a docker-archive *and* an oci-archive.

What :func:`write_hybrid` writes, entry for entry as moby's ``saveSession.save`` (checked against ggcr's
``hello-world-v25.tar``):

* ``blobs/``, ``blobs/sha256/`` and every config, layer and manifest blob, sorted by name; **manifests are
  stored byte for byte** (so their digests survive), layers in the compression they arrive in;
* ``index.json`` (Go's ``json.Marshal`` of an OCI index): one entry per name with the annotations
  ``io.containerd.image.name`` (the full reference, ``docker.io/library/app:1``) and
  ``org.opencontainers.image.ref.name`` (the tag), one entry without annotations for an untagged image;
* ``manifest.json`` (``json.Encoder``: a trailing newline): ``Config``, ``RepoTags`` (familiar names,
  ``app:1``; ``null`` when untagged), ``Layers`` and ``LayerSources`` (each layer's descriptor by diff_id);
* ``oci-layout`` (``{"imageLayoutVersion": "1.0.0"}``, docker's spelling) and, when any image is named,
  ``repositories`` (``{familiar name: {tag: top layer diff_id hex}}``).

Not written: the per-layer v1 ``json`` blobs docker also drops into ``blobs/`` (nothing references them and
nothing reads them; ``gc`` of the extracted layout would delete them).

The form is chosen per destination: :func:`use_docker_archive_format` (the CLI's
``--dest-docker-archive-format``), else the form of the archive appended to, else ``legacy``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from . import mediatypes as mt
from .descriptor import CONTAINERD_NAME, REF_NAME, Descriptor
from .digest import Digest, VerifyingReader, read_verified
from .errors import IntegrityError, InvalidArgument, InvalidManifest
from .manifest import MAX_MANIFEST_SIZE, ImageConfig, Manifest

__all__ = ["FORMATS", "HybridImage", "familiar", "requested_format", "use_docker_archive_format", "write_hybrid"]

#: The docker-archive forms ocilayout writes: skopeo's / Docker <= 24's, and Docker 25+'s.
FORMATS = ("legacy", "oci-hybrid")
#: ``oci-layout`` as moby writes it (with a space: 31 bytes).
OCI_LAYOUT = b'{"imageLayoutVersion": "1.0.0"}'

_FORMAT: ContextVar[str | None] = ContextVar("ocilayout_docker_archive_format", default=None)


@contextmanager
def use_docker_archive_format(form: str | None) -> Iterator[None]:
    """docker-archive destinations opened inside the block write ``form`` ("legacy" or "oci-hybrid"; None:
    keep the appended archive's form). Raises InvalidArgument for another name."""
    if form is not None and form not in FORMATS:
        raise InvalidArgument(f"docker-archive format {form!r}: expected one of {', '.join(FORMATS)}")
    token = _FORMAT.set(form)
    try:
        yield
    finally:
        _FORMAT.reset(token)


def requested_format() -> str | None:
    """The form :func:`use_docker_archive_format` asked for here, or None."""
    return _FORMAT.get()


def familiar(full: str) -> tuple[str, str]:
    """``docker.io/library/app:1`` -> (``app``, ``1``): distribution/reference's FamiliarName and tag."""
    slash, colon = full.rfind("/"), full.rfind(":")
    name, tag = (full[:colon], full[colon + 1:]) if colon > slash else (full, "latest")
    if name.startswith("docker.io/"):
        name = name[len("docker.io/"):]
        if name.startswith("library/") and name.count("/") == 1:
            name = name[len("library/"):]
    return name, tag


@dataclass(slots=True)
class HybridImage:
    """One image to write: its manifest (stored verbatim), its config's bytes and its names (full refs)."""

    manifest: Manifest
    config_raw: bytes
    repo_tags: list[str]


Opener = Callable[[], BinaryIO]


def _go(obj: Any, *, newline: bool = False) -> bytes:
    """Compact JSON as Go's encoding/json writes it (struct field order as given, maps by sorted key)."""
    out = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return out + b"\n" if newline else out


def _blob(digest: Digest) -> str:
    return f"blobs/{digest.algorithm}/{digest.hex}"


def check_image(manifest: Manifest, config_raw: bytes) -> list[Digest]:
    """The config's diff_ids, one per layer of ``manifest``; raises IntegrityError when the counts differ
    (``docker load`` pairs ``Layers[i]`` with ``diff_ids[i]``), InvalidManifest for a bad config."""
    diff_ids = [Digest.parse(d) for d in ImageConfig.parse(config_raw).diff_ids]
    if len(diff_ids) != len(manifest.layers):
        raise IntegrityError(f"manifest {manifest.digest} has {len(manifest.layers)} layers, its config "
                             f"{manifest.config.digest} {len(diff_ids)} diff_ids")
    return diff_ids


def read_config(open_: Opener, desc: Descriptor) -> bytes:
    """A config's bytes through ``open_``, verified; raises InvalidManifest when it is too big."""
    if desc.size > MAX_MANIFEST_SIZE:
        raise InvalidManifest(f"config {desc.digest} is over the {MAX_MANIFEST_SIZE}-byte limit")
    with open_() as f:
        return read_verified(f, desc)


def documents(images: Sequence[HybridImage]) -> dict[str, bytes]:
    """``index.json``, ``manifest.json``, ``oci-layout`` and (when any image is named) ``repositories``."""
    entries: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    repos: dict[str, dict[str, str]] = {}
    for img in images:
        m = img.manifest
        diff_ids = check_image(m, img.config_raw)
        base = {"mediaType": m.media_type, "digest": str(m.digest), "size": len(m.raw)}
        for full in img.repo_tags:
            name, tag = familiar(full)
            entries.append({**base, "annotations": {CONTAINERD_NAME: full, REF_NAME: tag}})
            if diff_ids:
                repos.setdefault(name, {})[tag] = diff_ids[-1].hex
        if not img.repo_tags:
            entries.append(base)
        sources = {}
        for diff_id, layer in zip(diff_ids, m.layers, strict=True):
            src: dict[str, Any] = {"mediaType": layer.media_type, "size": layer.size, "digest": str(layer.digest)}
            if layer.urls:
                src["urls"] = list(layer.urls)
            sources[str(diff_id)] = src
        items.append({"Config": _blob(m.config.digest),
                      "RepoTags": ["{}:{}".format(*familiar(t)) for t in img.repo_tags] or None,
                      "Layers": [_blob(d.digest) for d in m.layers],
                      "LayerSources": dict(sorted(sources.items()))})
    docs = {
        "index.json": _go({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}),
        "manifest.json": _go(items, newline=True),
        "oci-layout": OCI_LAYOUT,
    }
    if repos:
        docs["repositories"] = _go({k: dict(sorted(v.items())) for k, v in sorted(repos.items())}, newline=True)
    return docs


def write_hybrid(path: Path, images: Sequence[HybridImage], blobs: Mapping[Digest, tuple[Opener, int]],
                 progress: Callable[[Digest], Callable[[int], None] | None]) -> None:
    """Write ``images`` as one Docker 25+ tar at ``path`` (atomically: a temp file renamed at the end).
    ``blobs`` opens every config and layer (by digest, with its size); each is verified while it is streamed.
    Raises IntegrityError (a blob not given, of another size, or not hashing to its digest; a config whose
    diff_ids do not match the layer count) or InvalidManifest (a config that does not parse); on any error
    ``path`` is left as it was. ``progress(digest)`` gives the callback for a blob's bytes, or None."""
    from .tarfs import TarWriter

    docs = documents(images)
    files: dict[str, tuple[Digest, int, Opener | bytes]] = {}
    for img in images:
        m = img.manifest
        files[_blob(m.digest)] = (m.digest, len(m.raw), m.raw)
        for d in [m.config, *m.layers]:
            found = blobs.get(d.digest)
            if found is None:
                raise IntegrityError(f"cannot write {path}: blob {d.digest} of {m.digest} was not given")
            if found[1] != d.size:
                raise IntegrityError(f"blob {d.digest} is {found[1]} bytes, its descriptor says {d.size}")
            files[_blob(d.digest)] = (d.digest, d.size, found[0])
    algorithms = sorted({name.split("/")[1] for name in files})
    with TarWriter(path) as tar:
        tar.add_dir("blobs")
        for alg in algorithms:
            tar.add_dir(f"blobs/{alg}")
            for name in sorted(n for n in files if n.split("/")[1] == alg):
                digest, size, what = files[name]
                if isinstance(what, bytes):
                    tar.add_bytes(name, what)
                    continue
                with what() as raw:
                    tar.add_stream(name, size, VerifyingReader(raw, digest, size), progress(digest))
        for name in sorted(docs):
            tar.add_bytes(name, docs[name])
        tar.commit()
