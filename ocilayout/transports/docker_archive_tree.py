"""A docker-archive seen as an OCI layout, so that fsck and ``images`` work on it through the seam.

:class:`DockerArchiveTree` is a :class:`~ocilayout.tarfs.Tree` over the tar (read in place) that presents:

* ``oci-layout``: the archive's own (a Docker 25+ archive's OCI part is checked as a layout), else made up;
* ``index.json``: one entry per ``RepoTags`` entry of every ``manifest.json`` item (named by the full
  normalized reference, ``docker.io/library/app:1``; an untagged item gets one unnamed entry), naming the
  item's manifest -- the OCI part's own manifest for a Docker 25+ archive, else the one the transport
  synthesizes (the same bytes and digest ``copy`` and ``inspect`` see) -- then every other entry of a Docker 25+
  archive's own ``index.json``;
* ``blobs/<alg>/<hex>``: a synthesized manifest's bytes, an item's config member, a layer member (a compressed
  ``layer.tar`` decompressed, so that it hashes to its diff_id), else the OCI part's ``blobs/`` member.

fsck then walks it with the one graph walk: every layer of a synthesized manifest is its config's diff_id, so
hashing the layer checks the diff_id; missing layers are ``blob-missing``. What is wrong with the archive
itself is collected while opening and reported through :meth:`DockerArchiveReader.format_problems`, which
also decompresses each compressed layer of a Docker 25+ image once to check its diff_id (``diff-id-mismatch``):
``archive-unsafe`` (a ``../`` or absolute path, a symlink out of the archive: nothing else is read),
``archive-manifest-invalid``, ``archive-member-missing``, ``archive-manifest-mismatch`` (a Docker 25+ item
whose ``Layers`` are not its OCI manifest's), ``diff-ids-mismatch``, ``archive-member-extra`` (a file nothing
names) and ``oci-index-incomplete`` (the OCI part's ``index.json`` does not name an item's manifest, so OCI
tools do not see it).
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any, BinaryIO

from .. import mediatypes as mt
from ..descriptor import REF_NAME
from ..digest import Digest
from ..dockertar import MANIFEST_FILE, MAX_TAR_MANIFEST, REPOSITORIES_FILE, Item, member_path, normalize_tag
from ..errors import InvalidReference, LayoutError, OcilayoutError, UnsafePath
from ..manifest import MAX_MANIFEST_SIZE, ImageConfig, Manifest, canonical_json, load_json
from ..store import LAYOUT_DOC, LayoutReader, RefEntry, blob_digest
from ..tarfs import TarTree

__all__ = ["DockerArchiveReader", "DockerArchiveTree"]

Problem = tuple[str, Digest | None, str]
#: A v1 layer directory's files (docker save, skopeo): expected, never named by manifest.json.
_V1_FILE = re.compile(r"[0-9a-f]{64}/(json|VERSION|layer\.tar)")


class DockerArchiveTree:
    """See the module docstring. Raises NotFound, LayoutError (not a tar, no manifest.json) and
    UnsupportedFormat (pre-1.10 form) as the transport does; never for what is wrong inside the archive."""

    def __init__(self, path: Path | str) -> None:
        from .docker_archive import DockerArchive

        self.location = str(path)
        self.problems: list[Problem] = []
        #: The error that stopped reading (the archive is unsafe or its manifest.json unusable), or None.
        self.fatal: OcilayoutError | None = None
        self._virtual: dict[str, bytes] = {"oci-layout": LAYOUT_DOC}
        self._blobs: dict[Digest, tuple[str, str] | bytes] = {}  # digest -> (member, compression) or bytes
        self._sizes: dict[Digest, int] = {}
        self._real_of: dict[int, Digest | None] = {}  # item -> its OCI-part manifest (None: synthesized)
        self._compressed: list[tuple[str, Digest, str]] = []  # (what, layer digest, diff_id) to decompress
        entries: list[dict[str, Any]] = []
        self._virtual["index.json"] = canonical_json({"schemaVersion": 2, "mediaType": mt.OCI_INDEX,
                                                      "manifests": entries})
        try:
            tree = TarTree.load(path, "docker-archive")
        except UnsafePath as err:
            self.tree: TarTree | None = None
            self._fail("archive-unsafe", err)
            return
        self.tree = tree
        try:
            DockerArchive.open_check(tree)  # the refusals every docker-archive reader makes
            self.archive = DockerArchive(tree, [])
            items = self._items()
            self.archive.items = [it for _, it in items]
            named: set[Digest] = set()
            used: set[str] = {MANIFEST_FILE, REPOSITORIES_FILE}
            for i, item in items:
                m = self._image(i, item, used)
                if m is None:
                    continue
                named.add(m.digest)
                base = {"mediaType": m.media_type, "digest": str(m.digest), "size": len(m.raw)}
                for tag in item.repo_tags:
                    entries.append({**base, "annotations": {REF_NAME: _full(tag)}})
                if not item.repo_tags:
                    entries.append(base)
            if self.archive.is_hybrid:
                used |= {"oci-layout", "index.json"}
                del self._virtual["oci-layout"]
                entries.extend(self._oci_entries(named, items))
            self._virtual["index.json"] = canonical_json({"schemaVersion": 2, "mediaType": mt.OCI_INDEX,
                                                          "manifests": entries})
            self._extra_members(used)
        except BaseException:
            tree.close()
            raise

    # -- building -------------------------------------------------------------------------------------
    def _fail(self, kind: str, err: OcilayoutError) -> None:
        self.fatal = self.fatal or err
        self.problems.append((kind, None, _one_line(err)))

    def _items(self) -> list[tuple[int, Item]]:
        """manifest.json's items, each checked alone: a bad one is reported and skipped."""
        assert self.tree is not None
        where = f"{self.location}: {MANIFEST_FILE}"
        try:
            size = self.tree.size(MANIFEST_FILE)
            if size > MAX_TAR_MANIFEST:
                raise LayoutError(f"{where} is {size} bytes, over the {MAX_TAR_MANIFEST}-byte limit")
            with self.tree.open(MANIFEST_FILE) as f:
                doc = load_json(f.read(), where, MAX_TAR_MANIFEST)
        except OcilayoutError as err:
            self._fail("archive-manifest-invalid", err)
            return []
        if not isinstance(doc, list) or not doc:
            self._fail("archive-manifest-invalid", LayoutError(f"{where} lists no images" if doc in (None, [])
                                                               else f"{where} is not a list of images"))
            return []
        items = []
        for i, entry in enumerate(doc):
            at = f"{where} item @{i}"
            if not isinstance(entry, dict) or not isinstance(entry.get("Layers"), list):
                self.problems.append(("archive-manifest-invalid", None, f"{at} is not an object with a Layers list"))
                continue
            tags = entry.get("RepoTags") or []
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                self.problems.append(("archive-manifest-invalid", None, f"{at}: RepoTags is not a list of strings"))
                tags = []
            try:
                config = member_path(entry.get("Config"), f"{at} Config")
            except UnsafePath as err:
                self.problems.append(("archive-unsafe", None, _one_line(err)))
                continue
            except LayoutError as err:
                self.problems.append(("archive-manifest-invalid", None, _one_line(err)))
                continue
            layers = []
            for n, text in enumerate(entry["Layers"]):
                try:
                    layers.append(member_path(text, f"{at} layer {n}"))
                except UnsafePath as err:
                    self.problems.append(("archive-unsafe", None, _one_line(err)))
                    layers.append("")  # no member: the layer is reported missing by the walk
                except LayoutError as err:
                    self.problems.append(("archive-manifest-invalid", None, _one_line(err)))
                    layers.append("")
            items.append((i, Item(config, tuple(layers), tuple(tags))))
        return items

    def _member(self, path: str, at: str, used: set[str]) -> tuple[str, int] | None:
        """(resolved member name, size) of a regular file ``path``; None (reported) when it is not there."""
        assert self.tree is not None
        if not path:
            return None
        try:
            m = self.tree.lookup(path)
        except OcilayoutError as err:  # a symlink loop
            self.problems.append(("archive-member-missing", None, f"{at} {path}: {_one_line(err)}"))
            return None
        if m is None or m.kind != "file":
            self.problems.append(("archive-member-missing", None, f"{at} {path} is missing from the archive"))
            return None
        used.add(m.name)
        return m.name, m.size

    def _image(self, i: int, item: Item, used: set[str]) -> Manifest | None:
        """Item ``i``'s manifest (the OCI part's, else synthesized), its blobs mapped; None when unusable."""
        from .docker_archive import _decompressed_size, _detect

        assert self.tree is not None
        at = f"{MANIFEST_FILE} item @{i}"
        found = self._member(item.config, f"{at}: config", used)
        if found is None:
            return None
        if found[1] > MAX_MANIFEST_SIZE:
            self.problems.append(("manifest-invalid", None, f"{at}: config {item.config} is {found[1]} bytes"))
            return None
        with self.tree.open(item.config) as f:
            config_raw = f.read()
        config_digest = Digest.of(config_raw)
        real = self.archive._real_manifest(config_digest, item)
        if real is not None:
            layers = [f"blobs/{d.digest.algorithm}/{d.digest.hex}" for d in real.layers]
            if layers != list(item.layers):
                self.problems.append(("archive-manifest-mismatch", real.digest,
                                      f"{at}: Layers {list(item.layers)} are not the layers of its OCI manifest "
                                      f"{real.digest} ({layers}): docker load and OCI tools would read different "
                                      "images"))
            used.update(item.layers)
            self._check_plain_diff_ids(at, real, config_raw)
            self._real_of[i] = real.digest
            return real
        self._blobs[config_digest] = (found[0], "none")
        self._sizes[config_digest] = found[1]
        try:
            diff_ids = [Digest.parse(d) for d in ImageConfig.parse(config_raw).diff_ids]
        except OcilayoutError as err:
            self.problems.append(("manifest-invalid", config_digest, f"{at}: config {item.config}: {_one_line(err)}"))
            diff_ids = []
        if len(diff_ids) != len(item.layers):
            self.problems.append(("diff-ids-mismatch", config_digest,
                                  f"{at} lists {len(item.layers)} layers, its config {item.config} "
                                  f"{len(diff_ids)} diff_ids"))
        layers_doc = []
        for diff_id, path in zip(diff_ids, item.layers, strict=False):
            size = 0
            if diff_id not in self._blobs:
                member = self._member(path, f"{at}: layer", used)
                if member is not None:
                    try:
                        kind = _detect(self.tree, member[0])
                        size = member[1] if kind == "none" else _decompressed_size(self.tree, member[0], kind)
                        self._blobs[diff_id] = (member[0], kind)
                        self._sizes[diff_id] = size
                    except OcilayoutError as err:
                        self.problems.append(("unreadable", diff_id, f"{at}: layer {path}: {_one_line(err)}"))
            else:
                size = self._sizes.get(diff_id, 0)
                self._member(path, f"{at}: layer", used)
            layers_doc.append({"mediaType": mt.DOCKER_LAYER_TAR, "size": size, "digest": str(diff_id)})
        doc = {"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST,
               "config": {"mediaType": mt.DOCKER_CONFIG, "size": len(config_raw), "digest": str(config_digest)},
               "layers": layers_doc}
        manifest = Manifest.parse(canonical_json(doc), mt.DOCKER_MANIFEST)
        self._blobs[manifest.digest] = manifest.raw
        self._sizes[manifest.digest] = len(manifest.raw)
        return manifest

    def _check_plain_diff_ids(self, at: str, m: Manifest, config_raw: bytes) -> None:
        """An uncompressed layer of a Docker 25+ image must be its diff_id (docker load pairs ``Layers[i]``
        with ``diff_ids[i]`` and refuses a mismatch); a compressed one is queued for :meth:`check_diff_ids`."""
        try:
            diff_ids = ImageConfig.parse(config_raw).diff_ids
        except OcilayoutError:
            return  # the walk reports the config
        for n, (layer, diff_id) in enumerate(zip(m.layers, diff_ids, strict=False)):
            kind = mt.layer_compression(layer.media_type)
            if kind == "none" and str(layer.digest) != diff_id:
                self.problems.append(("diff-id-mismatch", layer.digest,
                                      f"{at}: layer {n} {layer.digest} is uncompressed but its config's diff_id is "
                                      f"{diff_id}"))
            elif kind in ("gzip", "zstd"):
                self._compressed.append((f"{at}: layer {n} {layer.digest}", layer.digest, diff_id))

    def check_diff_ids(self) -> list[Problem]:
        """Decompress each compressed layer of a Docker 25+ image once (constant memory) and compare it with
        its config's diff_id; what the walk cannot see, since it hashes the stored (compressed) bytes."""
        from ..compression import MAGIC_LEN, detect
        from ..digest import digest_stream
        from .docker_archive import _Decompressed

        assert self.tree is not None
        out: list[Problem] = []
        done: set[tuple[Digest, str]] = set()
        for what, digest, diff_id in self._compressed:
            name = f"blobs/{digest.algorithm}/{digest.hex}"
            if (digest, diff_id) in done or not self.tree.exists(name):
                continue  # the walk reports a missing blob
            done.add((digest, diff_id))
            try:
                with self.tree.open(name) as f:
                    kind = detect(f.read(MAGIC_LEN))
                if kind not in ("gzip", "zstd"):
                    continue  # the walk reports compression-mismatch
                with _Decompressed(self.tree.open(name), kind) as stream:
                    got, _ = digest_stream(stream)  # type: ignore[arg-type]
            except (OSError, OcilayoutError) as err:
                if self._stored_ok(name, digest):
                    out.append(("unreadable", digest, f"{what} cannot be decompressed: {_one_line(err)}"))
                continue
            if str(got) != diff_id and self._stored_ok(name, digest):
                out.append(("diff-id-mismatch", digest, f"{what} decompresses to {got}, its config's diff_id is "
                            f"{diff_id} (docker load refuses it)"))
        return out

    def _stored_ok(self, name: str, digest: Digest) -> bool:
        """Whether the stored bytes hash to ``digest`` (if not, the walk reports digest-mismatch: a problem
        found while decompressing them is the same problem)."""
        from ..digest import digest_stream

        assert self.tree is not None
        with self.tree.open(name) as f:
            return digest_stream(f, digest.algorithm)[0] == digest

    def _oci_entries(self, named: set[Digest], items: list[tuple[int, Item]]) -> list[Any]:
        """The OCI part's own ``index.json`` entries not already listed; reports items it does not name."""
        assert self.tree is not None
        try:
            size = self.tree.size("index.json")
            if size > MAX_MANIFEST_SIZE:
                raise LayoutError(f"index.json is {size} bytes, over the {MAX_MANIFEST_SIZE}-byte limit")
            with self.tree.open("index.json") as f:
                doc = load_json(f.read(), f"{self.location}: index.json")
        except OcilayoutError as err:
            self.problems.append(("index-invalid", None, f"the OCI part's {_one_line(err)}"))
            return []
        manifests = doc.get("manifests") if isinstance(doc, dict) else None
        if manifests is not None and not isinstance(manifests, list):
            self.problems.append(("index-invalid", None, f"{self.location}: the OCI part's index.json has no "
                                  "manifests array"))
            manifests = None
        listed = {str(e.get("digest")) for e in manifests or [] if isinstance(e, dict)}
        for i, _item in items:
            real = self._real_of.get(i)
            if real is None or str(real) not in listed:
                self.problems.append(("oci-index-incomplete", real,
                                      f"{self.location}: the OCI part's index.json does not name the image of "
                                      f"{MANIFEST_FILE} item @{i}: OCI tools (oci-archive:, umoci) do not see it"))
        names = {str(d) for d in named}
        return [e for e in manifests or [] if not (isinstance(e, dict) and e.get("digest") in names)]

    def _extra_members(self, used: set[str]) -> None:
        """Report regular files nothing names (v1 layer directories and a Docker 25+ ``blobs/`` are expected)."""
        assert self.tree is not None
        hybrid = self.archive.is_hybrid
        for name in self.tree.names():
            m = self.tree.lookup(name)
            if m is None or m.kind != "file" or m.name != name or name in used:
                continue
            if _V1_FILE.fullmatch(name) or (hybrid and blob_digest(name) is not None):
                continue
            self.problems.append(("archive-member-extra", None,
                                  f"{self.location}: member {name} ({m.size} bytes) is named by nothing"))

    # -- the Tree protocol ----------------------------------------------------------------------------
    def _real(self, name: str) -> tuple[str, str] | bytes:
        if name in self._virtual:
            return self._virtual[name]
        digest = blob_digest(name)
        if digest is not None and digest in self._blobs:
            return self._blobs[digest]
        if self.tree is not None and (name in ("oci-layout",) or digest is not None) and self.tree.exists(name):
            return name, "none"
        raise FileNotFoundError(name)

    def open(self, name: str) -> BinaryIO:
        from .docker_archive import _Decompressed

        real = self._real(name)
        if isinstance(real, bytes):
            return io.BytesIO(real)
        assert self.tree is not None
        stream = self.tree.open(real[0])
        return stream if real[1] == "none" else _Decompressed(stream, real[1])  # type: ignore[return-value]

    def size(self, name: str) -> int:
        real = self._real(name)
        if isinstance(real, bytes):
            return len(real)
        digest = blob_digest(name)
        if digest is not None and digest in self._sizes:
            return self._sizes[digest]
        assert self.tree is not None
        return self.tree.size(real[0])

    def exists(self, name: str) -> bool:
        try:
            self._real(name)
        except FileNotFoundError:
            return False
        return True

    def close(self) -> None:
        if self.tree is not None:
            self.tree.close()


class DockerArchiveReader(LayoutReader):
    """A :class:`LayoutReader` over a :class:`DockerArchiveTree`; fsck adds :meth:`format_problems`."""

    tree: DockerArchiveTree

    def __init__(self, path: Path | str) -> None:
        super().__init__(DockerArchiveTree(path))

    def format_problems(self) -> list[tuple[str, Digest | None, str]]:
        """What opening found, then the diff_ids of compressed Docker 25+ layers (decompressed here, once)."""
        if self.tree.tree is None or self.tree.fatal is not None:
            return list(self.tree.problems)
        return [*self.tree.problems, *self.tree.check_diff_ids()]

    def entries(self) -> list[RefEntry]:
        """As :meth:`LayoutReader.entries`; raises the error that stopped reading the archive (an unsafe
        member, an unusable manifest.json), so that ``images`` never lists an archive it could not read."""
        if self.tree.fatal is not None:
            raise self.tree.fatal
        return super().entries()


def _full(tag: str) -> str:
    try:
        return normalize_tag(tag)
    except (InvalidReference, OcilayoutError):
        return tag


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())

