"""Where signatures live: one small seam per transport.

:class:`SignatureStorage` is the protocol the signing code talks to. Implementations:

* :class:`DirSignatures` - containers/image ``dir:`` images: ``signature-1``, ``signature-2`` ... next to
  ``manifest.json`` (``<hex>.signature-N`` for a per-instance signature of a manifest list).
* :class:`LayoutSignatures` - cosign's ``sha256-<hex>.sig`` tag convention
  in an OCI layout.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .. import mediatypes as mt
from ..descriptor import REF_NAME, Descriptor
from ..digest import Digest
from ..errors import Conflict, InvalidManifest, NotFound, UnsupportedFormat, VerificationError
from ..fsutil import create_exclusive
from ..manifest import MAX_MANIFEST_SIZE, guess_media_type, load_json, manifest_digest
from ..store import LayoutReader, LayoutStore
from ..tarfs import DirTree
from . import sig_tag
from .model import MAX_SIGNATURE_SIZE, Signature, SigstoreSignature, signature_from_blob
from .payload import go_json

__all__ = [
    "DirSignatures",
    "LayoutSignatures",
    "SignatureStorage",
    "appended_sig_blobs",
    "sig_config_bytes",
    "sig_manifest_bytes",
    "sig_tag",
    "signature_prefix",
    "sigstore_layer",
]


@runtime_checkable
class SignatureStorage(Protocol):
    """Signatures of images by manifest digest: read all of them, append one (never replacing)."""

    def list(self, manifest_digest: Digest) -> list[Signature]:
        """Every stored signature of ``manifest_digest`` (empty when there are none)."""
        ...

    def add(self, manifest_digest: Digest, sig: Signature) -> None:
        """Append ``sig`` to the signatures of ``manifest_digest``."""
        ...


class DirSignatures:
    """Signatures of a containers/image ``dir:`` image (read and write).

    Signatures of the top manifest are ``signature-N`` (1-based, reading stops at the first gap); those of
    another instance (a manifest list member) are ``<hex>.signature-N``, as directory_transport.go names them.
    Files are read as a :class:`~ocilayout.tarfs.DirTree` reads them: regular files only (a FIFO never
    blocks), never through a symlink that leaves the directory.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._tree = DirTree(self.path)

    def __repr__(self) -> str:
        return f"DirSignatures({str(self.path)!r})"

    def manifest_bytes(self) -> bytes:
        """The top ``manifest.json``; raises NotFound when absent, InvalidManifest when oversized,
        LayoutError / UnsafePath when it is not a regular file inside the directory."""
        p = self.path / "manifest.json"
        try:
            size = self._tree.size("manifest.json")
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"{str(p)!r} does not exist (not a dir: image?)") from None
        if size > MAX_MANIFEST_SIZE:
            raise InvalidManifest(f"{str(p)!r} is over the {MAX_MANIFEST_SIZE}-byte limit")
        with self._tree.open("manifest.json") as f:
            data = f.read(MAX_MANIFEST_SIZE + 1)
        if len(data) > MAX_MANIFEST_SIZE:
            raise InvalidManifest(f"{str(p)!r} is over the {MAX_MANIFEST_SIZE}-byte limit")
        return data

    def manifest_digest(self) -> Digest:
        """Digest of the top manifest (skopeo manifest-digest rules)."""
        return manifest_digest(self.manifest_bytes())

    def prefix(self, digest: Digest) -> str:
        """The file-name prefix of ``digest``'s signatures: ``signature-`` for the top manifest (or when there
        is none yet), ``<hex>.signature-`` for another instance."""
        return signature_prefix(digest, self._top())

    def _top(self) -> Digest | None:
        try:
            return self.manifest_digest()
        except NotFound:
            return None

    def names(self, prefix: str) -> list[str]:
        """``prefix1``, ``prefix2``, ... up to the first gap (a dangling symlink counts as present)."""
        out: list[str] = []
        n = 1
        while os.path.lexists(self.path / f"{prefix}{n}"):
            out.append(f"{prefix}{n}")
            n += 1
        return out

    def read(self, name: str) -> bytes:
        """One signature file's bytes; raises VerificationError when over the size limit, LayoutError /
        UnsafePath when it is not a regular file inside the directory."""
        try:
            size = self._tree.size(name)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"signature file {str(self.path / name)!r} does not exist") from None
        if size > MAX_SIGNATURE_SIZE:
            raise VerificationError(f"signature file {str(self.path / name)!r} is over the "
                                    f"{MAX_SIGNATURE_SIZE}-byte limit")
        with self._tree.open(name) as f:
            data = f.read(MAX_SIGNATURE_SIZE + 1)
        if len(data) > MAX_SIGNATURE_SIZE:
            raise VerificationError(f"signature file {str(self.path / name)!r} is over the "
                                    f"{MAX_SIGNATURE_SIZE}-byte limit")
        return data

    def blobs(self, manifest_digest: Digest, prefix: str | None = None) -> list[bytes]:
        """The stored bytes of every signature of ``manifest_digest`` (unparsed, in order)."""
        return [self.read(n) for n in self.names(self.prefix(manifest_digest) if prefix is None else prefix)]

    def list(self, manifest_digest: Digest) -> list[Signature]:
        """Parse every signature file; raises VerificationError for one that is malformed or oversized."""
        out: list[Signature] = []
        for name in self.names(self.prefix(manifest_digest)):
            try:
                out.append(signature_from_blob(self.read(name)))
            except VerificationError as err:
                raise VerificationError(f"parsing signature {str(self.path / name)!r}: {err}") from err
        return out

    def add(self, manifest_digest: Digest, sig: Signature) -> Path:
        """Write ``sig`` as the next ``signature-N`` (exclusive create, never through a symlink, mode 0644);
        returns its path."""
        if not self.path.is_dir():
            raise NotFound(f"{str(self.path)!r} is not a directory")
        prefix = self.prefix(manifest_digest)
        blob = sig.to_blob()
        for _ in range(100):
            n = len(self.names(prefix)) + 1
            p = self.path / f"{prefix}{n}"
            try:
                create_exclusive(p, blob, 0o644)
            except FileExistsError:
                continue  # a concurrent writer took this index; try the next one
            return p
        raise Conflict(f"could not find a free signature-N name in {str(self.path)!r}")


def signature_prefix(digest: Digest, top: Digest | None) -> str:
    """``signature-`` when ``digest`` is the top manifest's (``top``; None: no manifest yet), else
    ``<hex>.signature-`` (containers/image's per-instance name)."""
    return "signature-" if top is None or top == digest else f"{digest.hex}.signature-"


# -- OCI layouts: cosign's tag convention ---------------------------------------------------------------

_OCI_CONFIG = mt.OCI_CONFIG
_OCI_MANIFEST = mt.OCI_MANIFEST


def _go_descriptor(d: dict[str, Any]) -> bytes:
    """A descriptor as Go's imgspecv1.Descriptor marshals: mediaType, digest, size, urls, annotations, data,
    platform, artifactType (empty ones left out; map keys sorted)."""
    parts = [b'"mediaType":' + go_json(d.get("mediaType", "")), b'"digest":' + go_json(d["digest"]),
             b'"size":' + go_json(int(d["size"]))]
    for key in ("urls", "annotations", "data", "platform", "artifactType"):
        if d.get(key):
            parts.append(go_json(key) + b":" + go_json(d[key]))
    return b"{" + b",".join(parts) + b"}"


def sig_config_bytes(diff_ids: Sequence[str]) -> bytes:
    """The ``.sig`` config as containers/image writes it: an empty imgspecv1.Image with rootfs diff_ids."""
    return (b'{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":'
            + go_json(list(diff_ids)) + b"}}")


def sig_manifest_bytes(config: dict[str, Any], layers: Sequence[dict[str, Any]]) -> bytes:
    """The ``.sig`` OCI image manifest bytes, field order as containers/image's (Go struct order)."""
    return (b'{"schemaVersion":2,"mediaType":' + go_json(_OCI_MANIFEST) + b',"config":' + _go_descriptor(config)
            + b',"layers":[' + b",".join(_go_descriptor(layer) for layer in layers) + b"]}")


def sigstore_layer(sig: SigstoreSignature) -> dict[str, Any]:
    """The ``.sig`` layer descriptor of a signature (payload blob + annotations)."""
    d: dict[str, Any] = {"mediaType": sig.mime_type, "digest": str(Digest.of(sig.payload)),
                         "size": len(sig.payload)}
    if sig.annotations:
        d["annotations"] = dict(sig.annotations)
    return d


def _same_layer(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a.get(k) == b.get(k) for k in ("mediaType", "size", "digest")) and \
        (a.get("annotations") or {}) == (b.get("annotations") or {})


class _Retry(Exception):
    pass


class LayoutSignatures:
    """Sigstore signatures in an OCI image layout, stored as cosign does in a registry: an OCI image manifest
    tagged ``sha256-<hex>.sig`` whose layers are the simple-signing payloads, each with the
    ``dev.cosignproject.cosign/signature`` annotation. Reading works on any layout (directory or archive);
    :meth:`add` needs a writable :class:`~ocilayout.store.LayoutStore` and appends, never replaces.
    """

    def __init__(self, layout: LayoutReader) -> None:
        self.layout = layout

    def __repr__(self) -> str:
        return f"LayoutSignatures({self.layout.location!r})"

    def current(self, manifest_digest: Digest) -> tuple[Descriptor | None, list[dict[str, Any]], list[str]]:
        """(index descriptor of the .sig manifest, its raw layer dicts, its config diff_ids)."""
        try:
            desc = self.layout.resolve(sig_tag(manifest_digest))
        except NotFound:
            return None, [], []
        raw = self.layout.read_blob_bytes(desc)
        doc = load_json(raw, "signature manifest")
        if not isinstance(doc, dict) or guess_media_type(doc, desc.media_type) != _OCI_MANIFEST:
            raise UnsupportedFormat(f"{sig_tag(manifest_digest)} is not an OCI image manifest (containers/image "
                                    "reads only those)")
        layers = doc.get("layers") or []
        if not isinstance(layers, list) or not all(isinstance(x, dict) for x in layers):
            raise InvalidManifest(f"{sig_tag(manifest_digest)}: layers must be an array of descriptors")
        diff_ids: list[str] = []
        cfg = doc.get("config")
        if isinstance(cfg, dict) and "digest" in cfg:
            try:
                cdoc = load_json(self.layout.read_blob_bytes(Descriptor.from_dict(cfg)), "signature config")
                ids = (cdoc.get("rootfs") or {}).get("diff_ids") if isinstance(cdoc, dict) else None
                diff_ids = [str(x) for x in ids] if isinstance(ids, list) else []
            except NotFound:
                diff_ids = []
        return desc, layers, diff_ids

    def list(self, manifest_digest: Digest) -> list[Signature]:
        """Every layer of the ``.sig`` manifest as a signature (its media type kept; the policy decides)."""
        _, layers, _ = self.current(manifest_digest)
        out: list[Signature] = []
        for layer in layers:
            desc = Descriptor.from_dict(layer)
            if desc.size > MAX_SIGNATURE_SIZE:
                raise VerificationError(f"signature layer {desc.digest} is over the {MAX_SIGNATURE_SIZE}-byte limit")
            payload = self.layout.read_blob_bytes(desc, limit=MAX_SIGNATURE_SIZE)
            out.append(SigstoreSignature(desc.media_type, payload, dict(desc.annotations)))
        return out

    def add(self, manifest_digest: Digest, sig: Signature) -> None:
        """Append ``sig`` (skipping an exact duplicate) and re-point the tag; concurrent adds all survive."""
        if not isinstance(sig, SigstoreSignature):
            raise UnsupportedFormat("OCI layouts hold sigstore signatures only (GPG signatures go to dir:)")
        if not isinstance(self.layout, LayoutStore):
            raise UnsupportedFormat(f"{self.layout.location} is read-only here; sign through a Destination")
        store = self.layout
        tag = sig_tag(manifest_digest)
        for _ in range(50):
            base, layers, diff_ids = self.current(manifest_digest)
            new = sigstore_layer(sig)
            if any(_same_layer(old, new) for old in layers):
                return
            desc = _store_sig_manifest(store, layers, diff_ids, sig)
            base_digest = str(base.digest) if base is not None else None

            def change(entries: list[dict[str, Any]], desc: Descriptor = desc,
                       base_digest: str | None = base_digest) -> list[dict[str, Any]]:
                named = [e for e in entries if (e.get("annotations") or {}).get(REF_NAME) == tag]
                now = named[-1].get("digest") if named else None
                if now != base_digest:
                    raise _Retry  # someone else appended meanwhile: start again from their manifest
                entry = desc.with_(annotations={REF_NAME: tag}).to_dict()
                return [*(e for e in entries if (e.get("annotations") or {}).get(REF_NAME) != tag), entry]

            try:
                store.update_index(change)
            except _Retry:
                continue
            return
        raise Conflict(f"could not update {tag}: too many concurrent writers")


def appended_sig_blobs(layers: Sequence[dict[str, Any]], diff_ids: Sequence[str],
                       sigs: Sequence[Signature]) -> list[tuple[bytes, str]] | None:
    """The blobs of a ``.sig`` manifest whose layers are ``layers`` plus ``sigs`` (exact duplicates of a
    stored layer skipped), as (bytes, media type), the manifest last; None when nothing is new. Raises
    UnsupportedFormat for a signature that is not sigstore (OCI layouts hold cosign-style ones only)."""
    layers, diff_ids = list(layers), list(diff_ids)
    blobs: list[tuple[bytes, str]] = []
    for sig in sigs:
        if not isinstance(sig, SigstoreSignature):
            raise UnsupportedFormat("OCI layouts hold sigstore signatures only (GPG signatures go to dir:)")
        new = sigstore_layer(sig)
        if any(_same_layer(old, new) for old in layers):
            continue
        blobs.append((sig.payload, sig.mime_type))
        layers.append(new)
        diff_ids.append(new["digest"])
    if not blobs:
        return None
    cfg_raw = sig_config_bytes(diff_ids)
    blobs.append((cfg_raw, _OCI_CONFIG))
    cfg = {"mediaType": _OCI_CONFIG, "digest": str(Digest.of(cfg_raw)), "size": len(cfg_raw)}
    blobs.append((sig_manifest_bytes(cfg, layers), _OCI_MANIFEST))
    return blobs


def _store_sig_manifest(store: LayoutStore, layers: Sequence[dict[str, Any]], diff_ids: Sequence[str],
                        sig: SigstoreSignature) -> Descriptor:
    """Write payload, config and manifest blobs of ``layers`` + ``sig``; returns the manifest descriptor."""
    blobs = appended_sig_blobs(layers, diff_ids, [sig])
    assert blobs is not None
    desc = None
    for data, media_type in blobs:
        desc = store.put_bytes(data, media_type)
    assert desc is not None
    return desc
