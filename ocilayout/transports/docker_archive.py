"""``docker-archive:FILE[:NAME:TAG|@N]``: ``docker save`` tarballs, read in place and written deterministically.

Reading (:class:`DockerArchiveSource`) goes through a :class:`~ocilayout.tarfs.TarTree`: an uncompressed
archive is never extracted, a gzip/zstd/xz/bzip2 one is decompressed once into an anonymous temp file. The
image is chosen as containers-image's ``ChooseManifestItem`` does: ``:NAME:TAG`` matches a ``RepoTags``
entry (both normalized, so ``busybox:latest`` finds ``docker.io/library/busybox:latest``), ``@N`` is the
N-th ``manifest.json`` item, no selector needs an archive of exactly one image.

A docker-save archive stores no manifest: one is synthesized (Docker v2s2, canonical JSON, the config's
bytes verbatim, layer digests = the config's ``diff_ids``, layers served uncompressed, a compressed
``layer.tar`` decompressed on the fly, as containers-image's GetBlob does). The layer media type is the
honest ``...rootfs.diff.tar`` (containers-image labels them ``.tar.gzip`` although they are not). A Docker
25+ archive also holds an OCI layout: when the item's config is that of a manifest in it (found through
``index.json``, else among its small blobs), that manifest's exact bytes are the image.

Writing (:class:`DockerArchiveDestination`) keeps blob openers until ``commit``, then writes the whole tar
in one pass (:class:`~ocilayout.tarfs.TarWriter`, under the directory lock): ``<config hex>.json``,
``<diffid hex>.tar``, the v1 directories (``json``, ``VERSION``, ``layer.tar`` symlink), ``manifest.json``
with ``RepoTags`` and ``repositories``. Several images go into one archive with shared layers stored once;
an existing archive's images are kept (a tag given again moves to the new image). Layers must be
uncompressed, manifests are not stored byte for byte, signatures cannot be kept: the capabilities say so
and the copy planner refuses what does not fit.

On request (``archive_format="oci-hybrid"``, :func:`~ocilayout.dockertar_oci.use_docker_archive_format`, the
CLI's ``--dest-docker-archive-format``) or when appending to such an archive, the Docker 25+ form is written
instead (:mod:`ocilayout.dockertar_oci`): an OCI layout plus ``manifest.json``, manifests stored verbatim,
layers as they come (:data:`HYBRID_CAPABILITIES`). fsck and images read any archive through
:mod:`.docker_archive_tree`.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from .. import mediatypes as mt
from ..descriptor import Descriptor
from ..digest import CHUNK, Digest, VerifyingReader
from ..dockertar import MANIFEST_FILE, REPOSITORIES_FILE, Item, normalize_tag, parse_manifest, same_tag
from ..errors import (
    AmbiguousImage,
    IntegrityError,
    InvalidArgument,
    InvalidManifest,
    InvalidReference,
    LayoutError,
    NotFound,
    OcilayoutError,
    UnsupportedFormat,
)
from ..manifest import MAX_MANIFEST_SIZE, ImageConfig, Manifest, canonical_json
from ..reference import ImageReference
from ..store import blob_digest
from ..tarfs import TarTree
from .base import BlobOpener, Capabilities, ProgressFn, Transport, no_referrers

if TYPE_CHECKING:
    import threading

    from ..signature.model import Signature
    from ..store import LayoutReader

__all__ = ["DOCKER_ARCHIVE_CAPABILITIES", "HYBRID_CAPABILITIES", "DockerArchive", "DockerArchiveDestination",
           "DockerArchiveSource", "DockerArchiveTransport"]

DOCKER_ARCHIVE_CAPABILITIES = Capabilities(
    manifest_types=frozenset({mt.DOCKER_MANIFEST, mt.OCI_MANIFEST}),
    layer_compressions=frozenset({"none"}),
    indexes=False,
    multi_image=True,
    names="docker-reference",
    signatures=frozenset(),
    verbatim=False,
)
#: The Docker 25+ form (:mod:`ocilayout.dockertar_oci`): manifests stored verbatim, layers as they come.
HYBRID_CAPABILITIES = Capabilities(
    manifest_types=frozenset({mt.DOCKER_MANIFEST, mt.OCI_MANIFEST}),
    layer_compressions=frozenset({"gzip", "zstd", "none"}),
    indexes=False,
    multi_image=True,
    names="docker-reference",
    signatures=frozenset(),
    verbatim=True,
)


@dataclass(slots=True)
class _Image:
    """One ``manifest.json`` item resolved: its manifest (synthesized or the real one) and where blobs are."""

    item: Item
    manifest: Manifest
    config_raw: bytes
    repo_tags: tuple[str, ...]
    #: digest -> (member name, compression of the member: "none" or the kind to decompress)
    blobs: dict[Digest, tuple[str, str]] = field(default_factory=dict)
    sizes: dict[Digest, int] = field(default_factory=dict)

    @property
    def config(self) -> Descriptor:
        return self.manifest.config

    @property
    def layers(self) -> list[Descriptor]:
        return self.manifest.layers


class DockerArchive:
    """A docker-save archive's ``manifest.json`` and the blobs its images need, read in place."""

    def __init__(self, tree: TarTree, items: list[Item]) -> None:
        self.tree = tree
        self.location = tree.location
        self.items = items
        self._images: dict[int, _Image] = {}
        self._layout: list[Manifest] | None = None

    @classmethod
    def open(cls, path: Path | str) -> DockerArchive:
        """Index the tar and parse its ``manifest.json``. Raises NotFound (no file), LayoutError (not a tar,
        no or bad manifest.json), UnsupportedFormat (the pre-1.10 form without manifest.json), UnsafePath."""
        tree = TarTree.load(path, "docker-archive")
        try:
            cls.open_check(tree)
            raw = _read_small(tree, MANIFEST_FILE, 1 << 20)
            return cls(tree, parse_manifest(raw, str(path)))
        except BaseException:
            tree.close()
            raise

    @staticmethod
    def open_check(tree: TarTree) -> None:
        """Raise what every reader refuses: no manifest.json (UnsupportedFormat for the pre-1.10 form, else
        LayoutError, naming oci-archive: for an OCI layout tar)."""
        path = tree.location
        if not tree.exists(MANIFEST_FILE):
            if tree.exists(REPOSITORIES_FILE):
                raise UnsupportedFormat(f"{path} is a pre-1.10 docker save archive (repositories and v1 layer "
                                        "directories, no manifest.json), which is not supported (nor by skopeo)")
            if tree.exists("oci-layout"):
                raise LayoutError(f"{path} has no manifest.json: it is an OCI layout archive; use oci-archive:")
            raise LayoutError(f"{path} is not a docker-archive (no manifest.json)")

    def close(self) -> None:
        self.tree.close()

    def __enter__(self) -> DockerArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def is_hybrid(self) -> bool:
        """True for the Docker 25+ form: the tar is also an OCI layout (``oci-layout`` and ``index.json``)."""
        return self.tree.exists("oci-layout") and self.tree.exists("index.json")

    def layout_manifests(self) -> list[Manifest]:
        """The Docker 25+ OCI part's manifests (see :meth:`_layout_manifests`), read once; [] otherwise."""
        if not self.is_hybrid:
            return []
        if self._layout is None:
            self._layout = list(self._layout_manifests())
        return self._layout

    def names(self) -> list[str]:
        """Every RepoTags entry, in stored order."""
        return [t for it in self.items for t in it.repo_tags]

    def choose(self, ref: ImageReference) -> int:
        """The item ``ref`` selects (``:NAME:TAG``, ``@N`` or the only one); raises NotFound, InvalidReference."""
        if ref.index is not None:
            if ref.index >= len(self.items):
                raise NotFound(f"{ref}: invalid source index @{ref.index}, the archive holds "
                               f"{len(self.items)} image(s)")
            return ref.index
        if ref.ref is not None:
            wanted = normalize_tag(ref.ref)
            for i, it in enumerate(self.items):
                if any(same_tag(t, wanted) for t in it.repo_tags):
                    return i
            raise NotFound(f"{ref}: no image tagged {wanted} in the archive (tags: "
                           f"{', '.join(self.names()) or 'none'})")
        if len(self.items) != 1:
            raise AmbiguousImage(f"{ref}: the archive holds {len(self.items)} images; name one with "
                                 ":NAME:TAG or @N", len(self.items))
        return 0

    def image(self, i: int) -> _Image:
        """Item ``i`` resolved (config read and checked, layer sizes known); raises LayoutError, NotFound,
        InvalidManifest, UnsafePath."""
        img = self._images.get(i)
        if img is None:
            img = self._images[i] = self._resolve(self.items[i], i)
        return img

    def images(self) -> Iterator[_Image]:
        for i in range(len(self.items)):
            yield self.image(i)

    def _resolve(self, item: Item, i: int) -> _Image:
        where = f"{self.location}: manifest.json item @{i}"
        config_raw = self._member_bytes(item.config, f"{where}: config")
        config_digest = Digest.of(config_raw)
        real = self._real_manifest(config_digest, item)
        if real is not None:
            img = _Image(item, real, config_raw, item.repo_tags)
            for d in [real.config, *real.layers]:
                name = _blob_name(d.digest)
                img.blobs[d.digest] = (name, "none")
                img.sizes[d.digest] = d.size
            return img
        try:
            config = ImageConfig.parse(config_raw)
        except InvalidManifest as err:
            raise InvalidManifest(f"{where}: config {item.config}: {err}") from err
        diff_ids = config.diff_ids
        if not isinstance(config.doc.get("rootfs"), dict):
            raise InvalidManifest(f"{where}: config {item.config} has no rootfs")
        if len(diff_ids) != len(item.layers):
            raise LayoutError(f"{where}: {len(item.layers)} layers in manifest.json, {len(diff_ids)} diff_ids in "
                              "its config")
        blobs: dict[Digest, tuple[str, str]] = {config_digest: ("", "config")}
        sizes = {config_digest: len(config_raw)}
        layers = []
        by_path: dict[str, Digest] = {}
        for text, path in zip(diff_ids, item.layers, strict=True):
            try:
                diff_id = Digest.parse(text)
            except OcilayoutError as err:
                raise InvalidManifest(f"{where}: config diff_id {text!r}: {err}") from err
            if path in by_path and by_path[path] != diff_id:
                raise LayoutError(f"{where}: layer {path} is used for two different diff_ids")
            by_path[path] = diff_id
            if diff_id not in blobs:
                m = self.tree.lookup(path)
                if m is None or m.kind != "file":
                    raise LayoutError(f"{where}: layer {path} is missing from the archive")
                kind = _detect(self.tree, path)
                blobs[diff_id] = (path, kind)
                sizes[diff_id] = m.size if kind == "none" else _decompressed_size(self.tree, path, kind)
            layers.append({"mediaType": mt.DOCKER_LAYER_TAR, "size": sizes[diff_id], "digest": str(diff_id)})
        doc = {"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST,
               "config": {"mediaType": mt.DOCKER_CONFIG, "size": len(config_raw), "digest": str(config_digest)},
               "layers": layers}
        manifest = Manifest.parse(canonical_json(doc), mt.DOCKER_MANIFEST)
        return _Image(item, manifest, config_raw, item.repo_tags, blobs, sizes)

    def _member_bytes(self, path: str, what: str) -> bytes:
        m = self.tree.lookup(path)
        if m is None or m.kind != "file":
            raise LayoutError(f"{what} {path} is missing from the archive")
        return _read_small(self.tree, path, MAX_MANIFEST_SIZE)

    def _real_manifest(self, config_digest: Digest, item: Item) -> Manifest | None:
        """A Docker 25+ archive's OCI-layout manifest for ``config_digest`` whose blobs are all here, or None.
        The one whose layers are the item's ``Layers`` wins (one config may have a gzip and a plain manifest)."""
        found = None
        for manifest in self.layout_manifests():
            if manifest.is_index or manifest.is_schema1 or "config" not in manifest.doc:
                continue
            if manifest.config.digest != config_digest:
                continue
            if all(self.tree.exists(_blob_name(d.digest)) and self.tree.size(_blob_name(d.digest)) == d.size
                   for d in [manifest.config, *manifest.layers]):
                if [_blob_name(d.digest) for d in manifest.layers] == list(item.layers):
                    return manifest
                found = found or manifest
        return found

    def _layout_manifests(self) -> Iterator[Manifest]:
        """Manifests reachable from ``index.json``, then any other small JSON blob that parses as one."""
        seen: set[Digest] = set()
        try:
            index = Manifest.parse(_read_small(self.tree, "index.json", MAX_MANIFEST_SIZE))
        except OcilayoutError:
            index = None
        todo = list(index.manifests) if index is not None and index.is_index else []
        while todo:
            d = todo.pop(0)
            if d.digest in seen or len(seen) > 1000:
                continue
            seen.add(d.digest)
            m = self._blob_manifest(_blob_name(d.digest), d.digest)
            if m is not None:
                yield m
                if m.is_index:
                    todo.extend(m.manifests)
        for name in self.tree.names():
            digest = blob_digest(name)
            if digest is not None and digest not in seen and self.tree.size(name) <= 64 << 10:
                m = self._blob_manifest(name, digest)
                if m is not None:
                    yield m

    def _blob_manifest(self, name: str, digest: Digest) -> Manifest | None:
        if not self.tree.exists(name) or self.tree.size(name) > MAX_MANIFEST_SIZE:
            return None
        raw = _read_small(self.tree, name, MAX_MANIFEST_SIZE)
        if not raw.lstrip().startswith(b"{") or Digest.of(raw, digest.algorithm) != digest:
            return None
        try:
            return Manifest.parse(raw)
        except OcilayoutError:
            return None

    def find(self, digest: Digest) -> tuple[_Image, int] | None:
        """The resolved image holding blob ``digest`` and its size (resolving items as needed), or None."""
        for img in self._images.values():
            if digest in img.sizes:
                return img, img.sizes[digest]
        for img in self.images():
            if digest in img.sizes:
                return img, img.sizes[digest]
        return None

    def open_blob(self, img: _Image, digest: Digest) -> BinaryIO:
        """Blob ``digest`` of ``img`` as the manifest describes it (uncompressed layers); raises NotFound."""
        where = img.blobs.get(digest)
        if where is None:
            raise NotFound(f"{self.location}: blob {digest} is not in the archive")
        name, kind = where
        if kind == "config":
            return io.BytesIO(img.config_raw)
        stream = self.tree.open(name)
        if kind == "none":
            return stream
        return _Decompressed(stream, kind)  # type: ignore[return-value]


def _blob_name(digest: Digest) -> str:
    return f"blobs/{digest.algorithm}/{digest.hex}"


def _read_small(tree: TarTree, name: str, limit: int) -> bytes:
    size = tree.size(name)
    if size > limit:
        raise LayoutError(f"{tree.location}: {name} is {size} bytes, over the {limit}-byte limit")
    with tree.open(name) as f:
        return f.read()


def _detect(tree: TarTree, name: str) -> str:
    from ..compression import MAGIC_LEN, detect

    with tree.open(name) as f:
        kind = detect(f.read(MAGIC_LEN))
    if kind not in ("none", "gzip", "zstd"):
        raise UnsupportedFormat(f"{tree.location}: layer {name} is {kind}-compressed, which is not supported")
    return kind


class _Decompressed(io.RawIOBase):
    """A decompressing view of a member stream; closing it closes both."""

    def __init__(self, raw: BinaryIO, kind: str) -> None:
        from ..compression import open_decompressed

        super().__init__()
        self._raw = raw
        self._inner = open_decompressed(raw, kind)
        self._kind = kind
        self.name = getattr(raw, "name", "layer")

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        view = memoryview(buf).cast("B")
        try:
            data = self._inner.read(len(view))
        except OcilayoutError:
            raise
        except Exception as err:  # the codec's error for a corrupt member
            raise LayoutError(f"{self.name}: corrupt {self._kind}-compressed layer ({err})") from err
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._inner.close()
            self._raw.close()
        super().close()


def _decompressed_size(tree: TarTree, name: str, kind: str) -> int:
    n = 0
    with _Decompressed(tree.open(name), kind) as f:
        while chunk := f.read(CHUNK):
            n += len(chunk)
    return n


class DockerArchiveSource:
    """One image of a docker-archive (see the module docstring)."""

    def __init__(self, ref: ImageReference) -> None:
        if ref.digest is not None:
            raise InvalidReference(f"{ref}: a docker-archive image is named by :NAME:TAG or @N, not a digest")
        self.ref = ref
        self.archive = DockerArchive.open(ref.path)
        try:
            self.image = self.archive.image(self.archive.choose(ref))
        except BaseException:
            self.archive.close()
            raise
        self.root = self.image.manifest.descriptor

    def get_manifest(self, desc: Descriptor | None = None) -> Manifest:
        if desc is None or desc.digest == self.root.digest:
            return self.image.manifest
        raise NotFound(f"{self.ref}: manifest {desc.digest} is not in the archive")

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        return self.archive.open_blob(self.image, desc.digest)

    def stat_blob(self, digest: Digest) -> int | None:
        return self.image.sizes.get(digest)

    def referrers(self, manifest_digest: Digest) -> Sequence[Descriptor]:
        return ()  # this transport keeps no referrers

    def signatures(self, manifest_digest: Digest) -> Sequence[Signature]:
        return ()

    def close(self) -> None:
        self.archive.close()

    def __enter__(self) -> DockerArchiveSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(slots=True)
class _Blob:
    open: BlobOpener
    size: int


@dataclass(slots=True)
class _Out:
    """One image of the archive being written."""

    config: Descriptor
    layers: list[Descriptor]
    repo_tags: list[str]


class DockerArchiveDestination:
    """Destination for ``docker-archive:FILE[:NAME:TAG]`` (see the module docstring)."""

    capabilities = DOCKER_ARCHIVE_CAPABILITIES

    def __init__(self, ref: ImageReference, archive_format: str | None = None) -> None:
        """``archive_format``: "legacy", "oci-hybrid" (Docker 25+), or None for the form
        :func:`~ocilayout.dockertar_oci.use_docker_archive_format` asked for, else the appended archive's,
        else legacy. Raises UnsupportedFormat for legacy onto a Docker 25+ archive."""
        from ..fsutil import locked_temp_dir, remove_stale_beside

        if ref.index is not None:
            raise InvalidReference(f"cannot write to {ref}: @N selects an image to read; name it :NAME:TAG")
        self.ref = ref
        self.path = Path(ref.path)
        self.default_tag = normalize_tag(ref.ref) if ref.ref is not None else None
        if self.path.is_dir():
            raise LayoutError(f"{self.path} is a directory; docker-archive: wants a file")
        parent = self.path.parent if str(self.path.parent) else Path(".")
        if not parent.is_dir():
            raise NotFound(f"cannot write {self.path}: directory {parent} does not exist")
        self._parent = parent
        self._blobs: dict[Digest, _Blob] = {}
        #: Blobs put without an expected digest: staged in ``_dir`` and hashed by put_blob as it wrote them.
        self._staged: set[Digest] = set()
        self._manifests: dict[Digest, Manifest] = {}
        self._tags: list[tuple[Descriptor, str | None]] = []
        self._progress: ProgressFn | None = None
        self._dir_fd = -1
        self.base: DockerArchive | None = DockerArchive.open(self.path) if self.path.exists() else None
        try:
            self.hybrid = self._choose_form(archive_format)
        except BaseException:
            self.close()
            raise
        self.capabilities = HYBRID_CAPABILITIES if self.hybrid else DOCKER_ARCHIVE_CAPABILITIES
        remove_stale_beside(parent)  # what killed writers of archives here left behind
        try:
            self._dir, self._dir_fd = locked_temp_dir(parent, ".darchive")
        except BaseException:
            self.close()
            raise

    def _choose_form(self, asked: str | None) -> bool:
        """Whether to write the Docker 25+ form (see ``__init__``)."""
        from ..dockertar_oci import FORMATS, requested_format

        asked = asked if asked is not None else requested_format()
        if asked is not None and asked not in FORMATS:
            raise InvalidArgument(f"docker-archive format {asked!r}: expected one of {', '.join(FORMATS)}")
        base_hybrid = self.base is not None and self.base.is_hybrid
        if asked == "legacy" and base_hybrid:
            raise UnsupportedFormat(f"{self.path} is a Docker 25+ archive (an OCI layout plus manifest.json); "
                                    "appending in the legacy form would drop its manifests: append with "
                                    "--dest-docker-archive-format oci-hybrid or write a new file")
        return asked == "oci-hybrid" or (asked is None and base_hybrid)

    def has_blob(self, desc: Descriptor) -> bool:
        blob = self._blobs.get(desc.digest)
        if blob is not None:
            return blob.size == desc.size
        if self.base is not None:
            try:
                found = self.base.find(desc.digest)
            except OcilayoutError:
                return False
            return found is not None and found[1] == desc.size
        return False

    def put_blob(self, open_: BlobOpener, expected: Descriptor | None, *, media_type: str,
                 progress: ProgressFn | None = None) -> Descriptor:
        if expected is not None:
            self._blobs[expected.digest] = _Blob(open_, expected.size)
            self._progress = progress
            return expected.with_(media_type=media_type)
        from ..streams import write_verified

        tmp = self._dir / f"blob-{len(self._blobs)}-{os.urandom(4).hex()}"
        with open_() as src, open(tmp, "xb") as out:
            digest, size = write_verified(out, src, None, progress)  # hashed as written, write overlapped
        final = self._dir / digest.hex
        os.replace(tmp, final)
        self._blobs[digest] = _Blob(lambda: open(final, "rb"), size)  # noqa: SIM115 - the caller closes it
        self._staged.add(digest)
        return Descriptor(media_type, digest, size)

    def put_manifest(self, manifest: Manifest, *, algorithm: str = "sha256") -> Descriptor:
        from .oci import manifest_descriptor

        if manifest.is_index:
            raise UnsupportedFormat(f"{self.ref.path}: a docker-archive cannot hold an index; pick one image "
                                    "with --platform")
        if manifest.is_schema1 or "config" not in manifest.doc:
            raise UnsupportedFormat(f"{self.ref.path}: a docker-archive holds only images with a config "
                                    f"(not {manifest.media_type})")
        if self.hybrid:
            return self._put_hybrid_manifest(manifest, algorithm)
        for layer in manifest.layers:
            kind = mt.layer_compression(layer.media_type)
            if kind not in ("none", None):
                raise UnsupportedFormat(f"{self.ref.path}: docker-archive layers are uncompressed; {layer.digest} "
                                        f"is {kind}")
            if layer.digest.algorithm != "sha256":
                raise UnsupportedFormat(f"docker-archive stores sha256 layers only, not {layer.digest}")
        desc = manifest_descriptor(manifest, algorithm)
        self._manifests[desc.digest] = manifest
        return desc

    def _put_hybrid_manifest(self, manifest: Manifest, algorithm: str) -> Descriptor:
        """Docker 25+ form: the manifest is stored verbatim, layers as they are; sha256 only (docker's paths)."""
        if algorithm != "sha256" or any(d.digest.algorithm != "sha256" for d in [manifest.config, *manifest.layers]):
            raise UnsupportedFormat(f"{self.ref.path}: a docker-archive stores sha256 digests only")
        desc = manifest.descriptor
        if desc.digest.algorithm != "sha256":
            desc = desc.with_(digest=Digest.of(manifest.raw, "sha256"))
        self._manifests[desc.digest] = manifest
        return desc

    def tag(self, desc: Descriptor, name: str | None, *, image_name: str | None = None,
            replaces: Digest | None = None, expects: Digest | None = None) -> None:
        """Name the image ``desc`` at commit (its manifest must have been put by then); raises
        InvalidReference for a name that is not ``NAME[:TAG]``."""
        self._tags.append((desc, normalize_tag(name) if name is not None else None))

    def put_referrers(self, subject: Digest, referrers: Sequence[Descriptor]) -> None:
        raise no_referrers(str(self.ref))

    def put_signatures(self, manifest_digest: Digest, sigs: Sequence[Signature]) -> None:
        if sigs:
            raise UnsupportedFormat(f"{self.ref.path}: a docker-archive cannot store signatures; pass "
                                    "--remove-signatures to copy the image without them")

    def _opener(self, digest: Digest, current: DockerArchive | None) -> _Blob | None:
        blob = self._blobs.get(digest)
        if blob is not None:
            return blob
        if current is not None:
            found = current.find(digest)
            if found is not None:
                img, size = found
                arch = current
                return _Blob(lambda: arch.open_blob(img, digest), size)
        return None

    def commit(self) -> None:
        from ..archive import archive_lock

        if self.base is not None:
            self.base.close()
            self.base = None
        if not self._tags:
            return
        with archive_lock(self._parent):
            current = DockerArchive.open(self.path) if self.path.exists() else None
            try:
                if current is not None and current.tree.compression != "none":
                    raise LayoutError(f"{self.path} is {current.tree.compression}-compressed; ocilayout writes "
                                      "uncompressed archives and cannot add to it: decompress it first")
                if self.hybrid:
                    self._write_hybrid(current)
                else:
                    self._write(current)
            except OcilayoutError as err:
                err.add_note(f"while writing {self.path}; it was left unchanged")
                raise
            except OSError as err:
                raise LayoutError(f"writing {self.path}: {err.strerror or err}") from err
            finally:
                if current is not None:
                    current.close()

    def _images(self, current: DockerArchive | None) -> tuple[list[_Out], dict[Digest, _Blob], dict[Digest, bytes]]:
        outs: list[_Out] = []
        by_config: dict[Digest, _Out] = {}
        blobs: dict[Digest, _Blob] = {}
        configs: dict[Digest, bytes] = {}
        new_tags = {t for _, t in self._tags if t is not None}
        if current is not None:
            for img in current.images():
                tags = [t for t in img.repo_tags if not any(same_tag(t, n) for n in new_tags)]
                out = by_config.get(img.config.digest)
                if out is None:
                    out = by_config[img.config.digest] = _Out(img.config, list(img.layers), [])
                    outs.append(out)
                out.repo_tags.extend(t for t in tags if t not in out.repo_tags)
                configs[img.config.digest] = img.config_raw
                for d in [img.config, *img.layers]:
                    blobs.setdefault(d.digest, _Blob(_bind(current, img, d.digest), d.size))
        for desc, tag in self._tags:
            manifest = self._manifests.get(desc.digest)
            if manifest is None:
                raise NotFound(f"cannot write {self.path}: {desc.digest} was named but its manifest was not put")
            config, layers = manifest.config, manifest.layers
            for d in [config, *layers]:
                blob = self._opener(d.digest, current)
                if blob is None:
                    raise NotFound(f"cannot write {self.path}: blob {d.digest} was neither given nor is in the archive")
                if blob.size != d.size:
                    raise IntegrityError(f"blob {d.digest} is {blob.size} bytes, its descriptor says {d.size}")
                blobs[d.digest] = blob
            if config.digest not in configs:
                if config.size > MAX_MANIFEST_SIZE:
                    raise InvalidManifest(f"config {config.digest} is over the {MAX_MANIFEST_SIZE}-byte limit")
                with blobs[config.digest].open() as f:
                    from ..digest import read_verified

                    configs[config.digest] = read_verified(f, config)
            diff_ids = ImageConfig.parse(configs[config.digest]).diff_ids
            if diff_ids != [str(d.digest) for d in layers]:
                raise IntegrityError(f"the layers of {manifest.digest} are not its config's diff_ids: a docker-archive "
                                     "stores uncompressed layers named by their diff_id")
            out = by_config.get(config.digest)
            if out is None:
                out = by_config[config.digest] = _Out(config, list(layers), [])
                outs.append(out)
            if tag is not None and tag not in out.repo_tags:
                out.repo_tags.append(tag)
        return outs, blobs, configs

    def _verify_unused(self) -> None:
        """Read and check every blob that was put but that no named image uses (copy never puts one): an
        opener that lies fails the commit even when its bytes would not be written."""
        used = {d.digest for m in self._manifests.values() for d in [m.config, *m.layers]}
        for digest, blob in self._blobs.items():
            if digest in used:
                continue
            with blob.open() as raw:
                r = VerifyingReader(raw, digest, blob.size)
                while r.read(CHUNK):
                    pass

    def _write(self, current: DockerArchive | None) -> None:
        from ..dockertar import legacy_layers, manifest_bytes, repositories_bytes, split_tag
        from ..tarfs import TarWriter

        self._verify_unused()
        outs, blobs, configs = self._images(current)
        items = [Item(f"{o.config.digest.hex}.json", tuple(f"{d.digest.hex}.tar" for d in o.layers),
                      tuple(o.repo_tags)) for o in outs]
        files: dict[str, tuple[Digest, _Blob]] = {}
        for o in outs:
            files[f"{o.config.digest.hex}.json"] = (o.config.digest, blobs[o.config.digest])
            for d in o.layers:
                files[f"{d.digest.hex}.tar"] = (d.digest, blobs[d.digest])
        legacy: dict[str, tuple[str, bytes]] = {}
        repos: dict[str, dict[str, str]] = {}
        for o in outs:
            config_doc = ImageConfig.parse(configs[o.config.digest]).doc
            v1 = legacy_layers(config_doc, [d.digest for d in o.layers])
            for layer in v1:
                legacy.setdefault(layer.id, (f"{layer.diff_id.hex}.tar", layer.json))
            if v1:
                for tag in o.repo_tags:
                    name, t = split_tag(tag)
                    repos.setdefault(name, {})[t] = v1[-1].id
        with TarWriter(self.path, readable=True) as tar:
            slots = []
            fd = -1
            for name in sorted(files):
                digest, blob = files[name]
                fd, offset = tar.reserve(name, blob.size)
                slots.append((digest, blob, offset))
            if slots:
                self._fill(fd, slots)
            for layer_id in sorted(legacy):
                target, doc = legacy[layer_id]
                tar.add_dir(layer_id)
                tar.add_bytes(f"{layer_id}/VERSION", b"1.0")
                tar.add_bytes(f"{layer_id}/json", doc)
                tar.add_symlink(f"{layer_id}/layer.tar", f"../{target}")
            tar.add_bytes(MANIFEST_FILE, manifest_bytes(items))
            tar.add_bytes(REPOSITORIES_FILE, repositories_bytes(repos))
            tar.commit()

    def _write_hybrid(self, current: DockerArchive | None) -> None:
        """Write every image (the archive's own first, a retag moving to the new image) in the Docker 25+
        form (:func:`ocilayout.dockertar_oci.write_hybrid`)."""
        from ..dockertar_oci import HybridImage, read_config, write_hybrid

        self._verify_unused()
        images: list[HybridImage] = []
        by_digest: dict[Digest, HybridImage] = {}
        blobs: dict[Digest, tuple[BlobOpener, int]] = {}
        new_tags = {t for _, t in self._tags if t is not None}
        if current is not None:
            _check_index_covered(current)
            for img in current.images():
                out = by_digest.get(img.manifest.digest)
                if out is None:
                    out = by_digest[img.manifest.digest] = HybridImage(img.manifest, img.config_raw, [])
                    images.append(out)
                for t in img.repo_tags:
                    try:
                        full = normalize_tag(t)
                    except InvalidReference:
                        full = t  # kept as stored (the legacy writer keeps it too)
                    if full not in new_tags and full not in out.repo_tags:
                        out.repo_tags.append(full)
                for d in [img.config, *img.layers]:
                    blobs.setdefault(d.digest, (_bind(current, img, d.digest), d.size))
        for desc, tag in self._tags:
            manifest = self._manifests.get(desc.digest)
            if manifest is None:
                raise NotFound(f"cannot write {self.path}: {desc.digest} was named but its manifest was not put")
            for d in [manifest.config, *manifest.layers]:
                blob = self._opener(d.digest, current)
                if blob is None:
                    raise NotFound(f"cannot write {self.path}: blob {d.digest} was neither given nor is in the archive")
                blobs[d.digest] = (blob.open, blob.size)
            out = by_digest.get(desc.digest)
            if out is None:
                config_raw = read_config(blobs[manifest.config.digest][0], manifest.config)
                out = by_digest[desc.digest] = HybridImage(manifest, config_raw, [])
                images.append(out)
            if tag is not None and tag not in out.repo_tags:
                out.repo_tags.append(tag)
        write_hybrid(self.path, images, blobs, lambda d: self._progress if d in self._blobs else None)


    def _fill(self, fd: int, slots: list[tuple[Digest, _Blob, int]]) -> None:
        """Write each blob into the member data reserved for it at ``offset`` of the tar ``fd``, several at
        once (the first failure stops the others at their next chunk; it is raised).

        A blob that is a file region (a layout's blob file, a member of the archive appended to) is copied
        and hashed by :func:`~ocilayout.streams.copy_region_hashed`; a
        blob this destination staged itself (a converted layer, hashed as put_blob wrote it) is copied by
        the kernel without hashing it again; anything else is streamed through a VerifyingReader.
        """
        import threading
        from concurrent.futures import ThreadPoolExecutor

        failed = threading.Event()
        copy_lock = threading.Lock()  # one kernel copy into the tar at a time; hashing in parallel

        def tick(progress: ProgressFn | None) -> ProgressFn:
            def advance(n: int) -> None:
                if failed.is_set():
                    raise _Stopped
                if progress is not None:
                    progress(n)
            return advance

        def one(digest: Digest, blob: _Blob, offset: int) -> None:
            try:
                self._fill_one(fd, digest, blob, offset, tick(self._progress if digest in self._blobs else None),
                               copy_lock)
            except BaseException:
                failed.set()
                raise

        slots = sorted(slots, key=lambda s: -s[1].size)  # largest first: the pool ends together
        with ThreadPoolExecutor(max_workers=max(1, min(4, len(slots)))) as pool:
            futures = [pool.submit(one, *slot) for slot in slots]
        errors = [e for f in futures if (e := f.exception()) is not None]
        real = [e for e in errors if not isinstance(e, _Stopped)]
        if errors:
            raise (real or errors)[0]

    def _fill_one(self, fd: int, digest: Digest, blob: _Blob, offset: int, progress: ProgressFn,
                  copy_lock: threading.Lock) -> None:
        from ..errors import DigestMismatch, SizeMismatch
        from ..streams import PIPELINE_MIN, copy_region, copy_region_hashed, pwrite_all, region_of

        with blob.open() as raw:
            region = region_of(raw) if blob.size > PIPELINE_MIN else None
            if region is not None:
                if region[2] != blob.size:
                    raise SizeMismatch(f"blob {digest} is {region[2]} bytes, expected {blob.size}")
                if digest in self._staged:
                    if copy_region(region, fd, offset, progress, copy_lock=copy_lock):
                        return
                else:
                    got = copy_region_hashed(region, fd, digest.algorithm, progress, dst_offset=offset,
                                             copy_lock=copy_lock)
                    if got != digest:
                        raise DigestMismatch(f"blob digest mismatch: expected {digest}, got {got}")
                    return
            n = pwrite_all(VerifyingReader(raw, digest, blob.size), fd, offset, progress)
        if n != blob.size:
            raise SizeMismatch(f"blob {digest}: wrote {n} bytes, its member is {blob.size}")

    def close(self) -> None:
        from ..fsutil import discard_temp_dir

        self._dir_fd = discard_temp_dir(self._dir, self._dir_fd) if self._dir_fd >= 0 else -1
        if self.base is not None:
            self.base.close()
            self.base = None


def _check_index_covered(archive: DockerArchive) -> None:
    """Refuse to rewrite a Docker 25+ archive whose ``index.json`` names manifests no ``manifest.json`` item
    resolves to (an index, an attestation): rewriting from ``manifest.json`` would drop them silently."""
    if not archive.is_hybrid:
        return
    try:
        index = Manifest.parse(_read_small(archive.tree, "index.json", MAX_MANIFEST_SIZE))
    except OcilayoutError:
        return  # nothing usable to keep (ggcr's hello-world-v25 has "manifests": null)
    resolved = {img.manifest.digest for img in archive.images()}
    extra = [str(d.digest) for d in (index.manifests if index.is_index else []) if d.digest not in resolved]
    if extra:
        raise UnsupportedFormat(f"{archive.location}: index.json names {len(extra)} manifest(s) that no "
                                f"manifest.json image is ({', '.join(extra[:3])}); rewriting the archive would "
                                "drop them: write the new image to another file")


class _Stopped(Exception):
    """Raised in a blob writer when another one has already failed."""


def _bind(archive: DockerArchive, img: _Image, digest: Digest) -> BlobOpener:
    return lambda: archive.open_blob(img, digest)


class DockerArchiveTransport(Transport):
    """``docker-archive:FILE[:NAME:TAG|@N]``: a ``docker save`` tarball."""

    name = "docker-archive"

    def open_source(self, ref: ImageReference) -> DockerArchiveSource:
        return DockerArchiveSource(ref)

    def open_destination(self, ref: ImageReference) -> DockerArchiveDestination:
        return DockerArchiveDestination(ref)

    def list_names(self, ref: ImageReference) -> list[str]:
        with DockerArchive.open(ref.path) as archive:
            return archive.names()

    def open_reader(self, ref: ImageReference) -> LayoutReader:
        """The archive as an OCI layout (fsck hashes every image's blobs and reports what is wrong with the
        archive itself; images lists every RepoTags entry): see :mod:`.docker_archive_tree`."""
        from .docker_archive_tree import DockerArchiveReader

        return DockerArchiveReader(ref.path)

