"""``dir:PATH``: containers/image's directory format (``manifest.json``, blobs named by bare hex,
``version``, ``signature-N``; ``<hex>.manifest.json`` per index instance).

Reading works for every image skopeo writes there (schema1 included). Writing images into ``dir:`` comes
with the formats issue; today the destination takes signatures only (its capabilities hold no manifest
types, so the copy planner refuses an image with a sentence saying so).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ..descriptor import Descriptor
from ..digest import Digest, read_verified
from ..errors import InvalidManifest, NotFound, UnsupportedFormat
from ..manifest import MAX_MANIFEST_SIZE, Manifest
from ..reference import ImageReference
from ..tarfs import DirTree
from .base import BlobOpener, Capabilities, ProgressFn, Transport

if TYPE_CHECKING:
    from ..signature.model import Signature

__all__ = ["DirDestination", "DirSource", "DirTransport"]

MANIFEST_FILE = "manifest.json"

#: Signatures only, for now: no manifest type is accepted, so copy refuses images with a reason.
DIR_CAPABILITIES = Capabilities(manifest_types=frozenset(), indexes=False, multi_image=False, names="none",
                                signatures=frozenset({"sigstore", "simple-signing"}))


def _blob_name(digest: Digest) -> str:
    if digest.algorithm != "sha256":
        raise UnsupportedFormat(f"dir: stores sha256 blobs only, not {digest}")
    return digest.hex


class DirSource:
    """An image in a ``dir:`` directory."""

    def __init__(self, ref: ImageReference) -> None:
        self.ref = ref
        if ref.ref is not None or ref.digest is not None:
            raise UnsupportedFormat(f"{ref}: a dir: image has no tags or digests to select; name the directory")
        self.tree = DirTree(ref.path)
        if not Path(ref.path).is_dir():
            raise NotFound(f"{ref.path}: no such dir: image directory")
        raw = self._read(MANIFEST_FILE, "manifest.json")
        manifest = Manifest.parse(raw)
        self.root = manifest.descriptor
        self._top = manifest

    def _read(self, name: str, what: str) -> bytes:
        try:
            size = self.tree.size(name)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"{self.ref.path}: {what} not found (not a dir: image?)") from None
        if size > MAX_MANIFEST_SIZE:
            raise InvalidManifest(f"{self.ref.path}/{name} is {size} bytes, over the {MAX_MANIFEST_SIZE}-byte limit")
        with self.tree.open(name) as f:
            return f.read(MAX_MANIFEST_SIZE + 1)

    def get_manifest(self, desc: Descriptor | None = None) -> Manifest:
        if desc is None or desc.digest == self.root.digest:
            return self._top
        name = f"{desc.digest.hex}.manifest.json"
        if not self.tree.exists(name):
            name = _blob_name(desc.digest)
        try:
            with self.tree.open(name) as f:
                raw = read_verified(f, desc)
        except FileNotFoundError:
            raise NotFound(f"{self.ref.path}: manifest {desc.digest} not found") from None
        return Manifest.parse(raw, desc.media_type)

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        try:
            return self.tree.open(_blob_name(desc.digest))
        except FileNotFoundError:
            raise NotFound(f"{self.ref.path}: blob {desc.digest} not found") from None

    def stat_blob(self, digest: Digest) -> int | None:
        try:
            return self.tree.size(_blob_name(digest))
        except (FileNotFoundError, NotADirectoryError, UnsupportedFormat):
            return None

    def signatures(self, manifest_digest: Digest) -> Sequence[Signature]:
        from ..signature.storage import DirSignatures

        return DirSignatures(self.ref.path).list(manifest_digest)

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> DirSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DirDestination:
    """Signatures into an existing ``dir:`` image (``signature-N`` files, as skopeo writes them)."""

    capabilities = DIR_CAPABILITIES

    def __init__(self, ref: ImageReference) -> None:
        self.ref = ref
        self._signatures: list[tuple[Digest, Signature]] = []

    def _no_images(self) -> UnsupportedFormat:
        return UnsupportedFormat("writing images into dir: is not supported yet (signatures are)")

    def has_blob(self, desc: Descriptor) -> bool:
        return False

    def put_blob(self, open_: BlobOpener, expected: Descriptor | None, *, media_type: str,
                 progress: ProgressFn | None = None) -> Descriptor:
        raise self._no_images()

    def put_manifest(self, manifest: Manifest, *, algorithm: str = "sha256") -> Descriptor:
        raise self._no_images()

    def tag(self, desc: Descriptor, name: str | None) -> None:
        raise self._no_images()

    def put_signatures(self, manifest_digest: Digest, sigs: Sequence[Signature]) -> None:
        self._signatures.extend((manifest_digest, s) for s in sigs)

    def commit(self) -> None:
        """Append each staged signature as the next ``signature-N``; on failure, the ones this commit wrote
        are removed again."""
        from ..signature.storage import DirSignatures

        store = DirSignatures(self.ref.path)
        written: list[Path] = []
        try:
            for digest, sig in self._signatures:
                written.append(store.add(digest, sig))
        except BaseException:
            for p in written:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(p)
            raise
        self._signatures.clear()

    def close(self) -> None:
        self._signatures.clear()


class DirTransport(Transport):
    """``dir:PATH``: containers/image's directory format."""

    name = "dir"
    describes = "a containers/image dir: directory"

    def open_source(self, ref: ImageReference) -> DirSource:
        return DirSource(ref)

    def open_destination(self, ref: ImageReference) -> DirDestination:
        return DirDestination(ref)
