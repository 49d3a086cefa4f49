"""fsck: check that a layout is complete and that every reachable byte is what its descriptors promise.

:func:`fsck` walks from ``index.json`` through nested indexes, manifests, configs, layers and ``subject``
(loops are followed once), and hashes every reachable blob in worker threads (hashlib releases the GIL), in
memory that does not grow with the blob count (a bounded queue of hash jobs, one compact key per blob).
Configs of artifacts (a config media type that is not an image config) are hashed, never parsed.
It never raises for a broken layout: everything it finds is a :class:`Problem` with a stable ``kind`` code
(see :data:`KINDS`) and a severity; the layout is ``ok`` when no problem is an error.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import queue
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import mediatypes as mt
from .compression import MAGIC_LEN, detect
from .descriptor import Descriptor
from .digest import Digest, digest_stream
from .errors import OcilayoutError
from .fsutil import stale_temp_files
from .graph import ARTIFACT_MANIFEST, sniff_manifest, sniffable
from .graph import walk as graph_walk
from .manifest import MAX_MANIFEST_SIZE, ImageConfig, Manifest, check_unambiguous, load_json
from .schema import check_manifest
from .store import LayoutReader

__all__ = ["KINDS", "FsckReport", "Problem", "fsck", "sniff_manifest", "stale_temp_files"]

#: Every problem kind fsck reports, with its severity. The codes are stable (scripts match on them).
KINDS: dict[str, str] = {
    "layout-file": "error",  # oci-layout missing, unreadable or an unsupported version
    "blobs-dir-missing": "error",  # the layout has no blobs/ directory (the image-spec requires one)
    "index-invalid": "error",  # index.json missing, not JSON, or not an index
    "index-entry-invalid": "error",  # an index.json entry that is not a valid descriptor (bad digest, size)
    "blob-missing": "error",  # a reachable descriptor whose blob is not stored
    "size-mismatch": "error",  # stored size differs from the descriptor's size
    "digest-mismatch": "error",  # stored bytes do not hash to the blob's digest
    "manifest-invalid": "error",  # a manifest, index or config that does not parse
    "compression-mismatch": "error",  # layer bytes are not compressed as its media type declares
    "diff-ids-mismatch": "error",  # config rootfs.diff_ids count differs from the manifest's layer count
    "data-mismatch": "error",  # a descriptor's embedded ``data`` does not match its digest or size
    "unreadable": "error",  # a blob that cannot be read (permissions, symlink out of the layout)
    "foreign-layer-absent": "warning",  # a foreign / non-distributable layer not stored (allowed)
    "subject-absent": "warning",  # a referrer's subject is not in this layout (allowed by OCI 1.1)
    "media-type-mismatch": "warning",  # descriptor mediaType differs from the manifest's own mediaType
    "ref-name-duplicate": "warning",  # one ref name on entries of different images (commands refuse that name)
    "stale-temp-file": "info",  # a temp file left by a writer that died (gc removes it)
    # what a container beneath the layout reports (LayoutReader.format_problems: docker-archive)
    "archive-unsafe": "error",  # a member or manifest.json path leaving the archive (../, absolute, symlink out)
    "archive-manifest-invalid": "error",  # a docker-archive manifest.json (or one item) that cannot be used
    "archive-member-missing": "error",  # a config or layer file manifest.json names is not in the archive
    "archive-manifest-mismatch": "error",  # a Docker 25+ item whose Layers are not its OCI manifest's layers
    "diff-id-mismatch": "error",  # a docker-archive layer whose uncompressed bytes are not its config's diff_id
    "archive-member-extra": "warning",  # a file in a docker-archive that nothing names
    "oci-index-incomplete": "warning",  # a Docker 25+ archive's index.json does not name one of its images
}

#: Non-distributable layer types: their blobs may legitimately be absent from a layout.
_NONDISTRIBUTABLE = frozenset({mt.OCI_LAYER_ND, mt.OCI_LAYER_ND_GZIP, mt.OCI_LAYER_ND_ZSTD,
                               mt.DOCKER_FOREIGN_LAYER, mt.DOCKER_FOREIGN_LAYER_TAR})


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding: a stable ``kind`` code (:data:`KINDS`), the blob it concerns (if any), one line of text."""

    kind: str
    digest: Digest | None
    message: str
    severity: str = "error"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "severity": self.severity,
                "digest": str(self.digest) if self.digest else None, "message": self.message}

    def __str__(self) -> str:
        return f"{self.severity}: {self.kind}: {self.message}"


@dataclass(frozen=True, slots=True)
class FsckReport:
    """The result of :func:`fsck`. ``ok`` is True when no problem has severity "error"."""

    location: str
    ok: bool
    problems: list[Problem] = field(default_factory=list)
    blobs_checked: int = 0
    bytes_hashed: int = 0

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    def kinds(self) -> set[str]:
        """The set of problem kinds found (any severity)."""
        return {p.kind for p in self.problems}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["problems"] = [p.to_dict() for p in self.problems]
        return d


def _is_foreign(desc: Descriptor) -> bool:
    return bool(desc.urls) or desc.media_type in _NONDISTRIBUTABLE


def _is_image_layer(media_type: str) -> bool:
    return mt.layer_compression(media_type) is not None or media_type.startswith("application/vnd.oci.image.layer.")


def _key(digest: Digest) -> bytes:
    """A compact set key for a digest (32 bytes for sha256, 64 for sha512: the lengths cannot collide)."""
    return bytes.fromhex(digest.hex)


class _Checker:
    """One fsck run: the walk runs in the caller's thread, blob hashing in ``jobs`` worker threads.

    Memory stays flat in the blob count: at most ``4 * jobs`` hash jobs wait at any time (the walk blocks
    until a worker is free), each result is checked by the worker that produced it, and what is kept per
    blob is one compact key (and, for layers, the compression its bytes showed). Problems carry the walk
    position of the blob they concern, so the report is in walk order whatever the threads' timing.
    """

    def __init__(self, reader: LayoutReader, jobs: int) -> None:
        self.reader = reader
        self.problems: list[tuple[int, int, int, Problem]] = []  # (phase, walk position, arrival, problem)
        self._seen_problems: set[tuple[str, Digest | None, str]] = set()
        self._lock = threading.Lock()
        self._pos = 0  # walk position of the descriptor being visited
        #: every blob already checked or queued -> the compression its first bytes showed ("" not yet known)
        self.seen: dict[bytes, str] = {}
        self._configs: dict[bytes, int | None] = {}  # image config -> diff_ids count (None: unreadable)
        self.blobs_checked = 0
        self.bytes_hashed = 0
        self._queue: queue.Queue[tuple[int, Digest, tuple[tuple[str, str], ...]] | None] = \
            queue.Queue(maxsize=4 * max(1, jobs))
        self._failure: BaseException | None = None
        self._workers = [threading.Thread(target=self._work, name=f"fsck-{i}", daemon=True)
                         for i in range(max(1, jobs))]
        for t in self._workers:
            t.start()

    # -- reporting -------------------------------------------------------------------------------------
    def report(self, kind: str, digest: Digest | None, message: str, pos: int | None = None,
               phase: int = 0) -> None:
        """Record a problem once. ``pos`` (default: the descriptor being visited) and ``phase`` (0: found by
        the walk, 1: by reading blob contents, 2: afterwards) order the report."""
        key = (kind, digest, message)
        with self._lock:
            if key not in self._seen_problems:
                self._seen_problems.add(key)
                self.problems.append((phase, self._pos if pos is None else pos, len(self.problems),
                                      Problem(kind, digest, message, KINDS[kind])))

    def sorted_problems(self) -> list[Problem]:
        """Walk findings in walk order, then content findings in walk order, then the rest."""
        return [t[3] for t in sorted(self.problems, key=lambda t: t[:3])]

    # -- top level -------------------------------------------------------------------------------------
    def check_layout_file(self) -> None:
        try:
            self.reader.check_layout_file()
        except OcilayoutError as err:
            self.report("layout-file", None, str(err))
        for kind, digest, message in self.reader.format_problems():
            self.report(kind, digest, message)
        root = getattr(self.reader, "root", None)
        if isinstance(root, Path) and root.is_dir() and not (root / "blobs").is_dir():
            self.report("blobs-dir-missing", None, f"{self.reader.location}/blobs is not a directory (the "
                        "image-spec says it must exist, even when empty)")

    def roots(self) -> list[Descriptor]:
        loc = self.reader.location
        try:
            raw = self.reader.index_bytes()
            doc = load_json(raw, "index.json")
        except OcilayoutError as err:
            self.report("index-invalid", None, f"{loc}/index.json: {err}")
            return []
        if not isinstance(doc, dict) or not isinstance(doc.get("manifests"), list):
            self.report("index-invalid", None, f"{loc}/index.json is not an OCI index (no manifests array)")
            return []
        if doc.get("schemaVersion") != 2:
            self.report("index-invalid", None, f"{loc}/index.json has schemaVersion {doc.get('schemaVersion')!r}")
        try:
            check_manifest({k: v for k, v in doc.items() if k != "manifests"})  # entries: one by one below
            check_unambiguous(doc, mt.OCI_INDEX, doc.get("mediaType"))
        except OcilayoutError as err:
            self.report("index-invalid", None, f"{loc}/index.json: {err}")
        self.check_names(doc["manifests"])
        roots = []
        for i, entry in enumerate(doc["manifests"]):
            try:
                roots.append(Descriptor.from_dict(entry))
            except OcilayoutError as err:
                self.report("index-entry-invalid", None, f"{loc}/index.json entry {i}: {err}")
        return roots

    def check_names(self, entries: list[Any]) -> None:
        """Report ref names given to entries of different images: resolving such a name is refused."""
        from .index import entry_name

        by_name: dict[str, list[str]] = {}
        for entry in entries:
            name = entry_name(entry)
            if name is not None:
                by_name.setdefault(name, []).append(str(entry.get("digest")))
        for name, digests in sorted(by_name.items()):
            if len(set(digests)) > 1:
                self.report("ref-name-duplicate", None,
                            f"{self.reader.location}/index.json: ref name {name!r} is on {len(digests)} entries of "
                            f"different images ({', '.join(dict.fromkeys(digests))}); name one by digest")

    def walk(self, roots: list[Descriptor]) -> None:
        """Check everything reachable, in the order of :func:`ocilayout.graph.walk` (the walk copy, gc and the
        listing use: the same children, the same sniffing rule), reading each first occurrence with
        :meth:`read_node`; later occurrences get the per-descriptor checks only."""
        for node in graph_walk(self.reader, roots, [], read=self.read_node):
            if node.first:
                continue
            self._pos += 1
            self.check_data_field(node.descriptor)
            if self.check_present(node.descriptor, node.role) is not None and node.role == "layer":
                self.check_compression(node.descriptor, self.seen.get(_key(node.descriptor.digest), ""))

    # -- one descriptor --------------------------------------------------------------------------------
    def read_node(self, desc: Descriptor, role: str) -> Manifest | None:
        """Check the first occurrence of a descriptor; returns the document to expand (None for a leaf)."""
        self._pos += 1
        self.check_data_field(desc)
        size = self.check_present(desc, role)
        if size is None:
            return None
        key = _key(desc.digest)
        if key in self.seen:  # an image config already read for its manifest's diff_ids check
            if role == "layer":
                self.check_compression(desc, self.seen[key])
            return None
        if desc.media_type == ARTIFACT_MANIFEST:
            self.seen[key] = ""
            self.report("manifest-invalid", desc.digest,
                        f"manifest {desc.digest} is an OCI 1.1-rc artifact manifest ({ARTIFACT_MANIFEST}), which "
                        "ocilayout does not follow (gc refuses this layout; copy fails)")
            return None
        manifest_like = mt.is_index(desc.media_type) or mt.is_manifest(desc.media_type)
        small = size <= MAX_MANIFEST_SIZE
        sniff = sniffable(desc, role)  # the rule graph.walk applies for copy and gc
        if small and role == "config" and desc.media_type in mt.CONFIG_TYPES:
            self.image_config(desc)
            return None
        # Only what an index names (or a subject) may be a manifest of unknown type: configs and layers never.
        if small and (manifest_like or sniff):
            raw = self.read_small(desc)
            if raw is None:
                return None
            if manifest_like:
                return self.parse(desc, raw)
            sniffed = sniff_manifest(raw) if sniff else None
            if sniffed is not None:
                return self.parse(desc.with_(media_type=sniffed.media_type), raw)
            return None
        if manifest_like:
            self.report("manifest-invalid", desc.digest,
                        f"manifest {desc.digest} is {size} bytes, over the {MAX_MANIFEST_SIZE}-byte limit")
        self.queue_hash(desc, role)
        return None

    def check_data_field(self, desc: Descriptor) -> None:
        data = desc.raw.get("data") if isinstance(desc.raw, dict) else None
        if data is None:
            return
        try:
            blob = base64.b64decode(data, validate=True) if isinstance(data, str) else None
        except (binascii.Error, ValueError):
            blob = None
        if blob is None:
            self.report("data-mismatch", desc.digest, f"descriptor {desc.digest} has a data field that is not base64")
        elif len(blob) != desc.size or Digest.of(blob, desc.digest.algorithm) != desc.digest:
            self.report("data-mismatch", desc.digest,
                        f"descriptor {desc.digest}: embedded data ({len(blob)} bytes) does not match digest and size")

    def stored_size(self, desc: Descriptor) -> int:
        try:
            return self.reader.blob_size(desc.digest)
        except OcilayoutError:
            return -1

    def check_present(self, desc: Descriptor, role: str) -> int | None:
        """Report absence and a size mismatch; the stored size when the blob is stored, else None."""
        d = desc.digest
        try:
            present = self.reader.has_blob(d)
        except OSError as err:
            self.report("unreadable", d, f"blob {d}: {err}")
            return None
        if not present:
            if role == "subject":
                self.report("subject-absent", d, f"subject {d} is not in this layout")
            elif _is_foreign(desc):
                self.report("foreign-layer-absent", d, f"foreign layer {d} ({desc.media_type}) is not stored")
            else:
                what = "manifest" if mt.is_index(desc.media_type) or mt.is_manifest(desc.media_type) else role
                self.report("blob-missing", d, f"{what} blob {d} is missing")
            return None
        size = self.stored_size(desc)
        if role != "schema1-layer" and size >= 0 and size != desc.size:
            self.report("size-mismatch", d, f"blob {d} is {size} bytes, its descriptor says {desc.size}")
        return size

    def read_small(self, desc: Descriptor) -> bytes | None:
        """Read and verify a small blob (manifest, config) in this thread; None when unreadable."""
        d = desc.digest
        self.seen[_key(d)] = ""
        try:
            with self.reader.open_blob(d, verify=False) as f:
                raw = f.read(MAX_MANIFEST_SIZE + 1)
        except (OSError, OcilayoutError) as err:
            self.report("unreadable", d, f"blob {d}: {err}")
            return None
        with self._lock:
            self.blobs_checked += 1
            self.bytes_hashed += len(raw)
        got = Digest.of(raw, d.algorithm)
        if got != d:
            self.report("digest-mismatch", d, f"blob {d} hashes to {got}")
        return raw

    def image_config(self, cfg: Descriptor) -> int | None:
        """Read, verify and type-check an image config once; returns its diff_ids count (None: unusable)."""
        key = _key(cfg.digest)
        if key in self._configs:
            return self._configs[key]
        count: int | None = None
        if key not in self.seen and self.reader.has_blob(cfg.digest) and \
                0 <= self.stored_size(cfg) <= MAX_MANIFEST_SIZE:
            raw = self.read_small(cfg)
            if raw is not None:
                try:
                    count = len(ImageConfig.parse(raw, cfg.media_type).diff_ids)
                except OcilayoutError as err:
                    self.report("manifest-invalid", cfg.digest, f"config {cfg.digest}: {_one_line(err)}")
        self._configs[key] = count
        return count

    def parse(self, desc: Descriptor, raw: bytes) -> Manifest | None:
        """Parse and check a manifest or index (its children are the walk's to visit); None when invalid."""
        try:
            m = Manifest.parse(raw, desc.media_type)
        except (OcilayoutError, ValueError, TypeError, KeyError, AttributeError) as err:
            self.report("manifest-invalid", desc.digest, f"manifest {desc.digest}: {_one_line(err)}")
            return None
        own = m.doc.get("mediaType")
        if isinstance(own, str) and own and desc.media_type and own != desc.media_type:
            self.report("media-type-mismatch", desc.digest,
                        f"manifest {desc.digest} is {own}, its descriptor says {desc.media_type}")
        if not m.is_index and not m.is_schema1:
            self.check_diff_ids(m)
        return m

    def check_diff_ids(self, m: Manifest) -> None:
        cfg = m.config if "config" in m.doc else None
        if cfg is None or cfg.media_type not in mt.CONFIG_TYPES:
            return
        # Artifacts reuse the image config type with "{}" and non-layer "layers": only images are checked.
        if not all(_is_image_layer(layer.media_type) for layer in m.layers):
            return
        count = self.image_config(cfg)
        if count is not None and count != len(m.layers):
            self.report("diff-ids-mismatch", m.digest,
                        f"manifest {m.digest} has {len(m.layers)} layers, its config {cfg.digest} "
                        f"lists {count} diff_ids")

    def check_compression(self, desc: Descriptor, kind: str) -> None:
        """A layer named again: its declared compression against what its bytes showed (read when not known)."""
        declared = mt.layer_compression(desc.media_type)
        if declared is None:
            return
        if not kind:
            try:
                with self.reader.open_blob(desc.digest, verify=False) as f:
                    kind = detect(f.read(MAGIC_LEN))
            except (OSError, OcilayoutError):
                return  # reported as unreadable by the hash job
        if declared != kind:
            self.report("compression-mismatch", desc.digest,
                        f"layer {desc.digest} is declared {desc.media_type} ({declared}) but its bytes are {kind}",
                        phase=1)

    def queue_hash(self, desc: Descriptor, role: str) -> None:
        """Hand a blob to a hash worker (blocks while 4 x jobs are waiting)."""
        self.seen[_key(desc.digest)] = ""
        declared = mt.layer_compression(desc.media_type) if role == "layer" else None
        layer = ((declared, desc.media_type),) if declared is not None else ()
        self._queue.put((self._pos, desc.digest, layer))

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            try:
                self._hash_one(*job)
            except BaseException as err:  # re-raised in the walking thread by finish()
                self._failure = self._failure or err

    def _hash_one(self, pos: int, d: Digest, layer: tuple[tuple[str, str], ...]) -> None:
        try:
            got, size, kind = _hash_blob(self.reader, d)
        except (OSError, OcilayoutError) as err:
            self.report("unreadable", d, f"blob {d}: {err}", pos, 1)
            return
        self.seen[_key(d)] = kind
        with self._lock:
            self.blobs_checked += 1
            self.bytes_hashed += size
        if got != d:
            self.report("digest-mismatch", d, f"blob {d} hashes to {got}", pos, 1)
        for declared, media_type in layer:
            if declared != kind:
                self.report("compression-mismatch", d,
                            f"layer {d} is declared {media_type} ({declared}) but its bytes are {kind}", pos, 1)

    def finish(self) -> None:
        """Wait for the hash workers; re-raise an unexpected error one of them hit."""
        for _ in self._workers:
            self._queue.put(None)
        for t in self._workers:
            t.join()
        if self._failure is not None:
            raise self._failure


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def _hash_blob(reader: LayoutReader, digest: Digest) -> tuple[Digest, int, str]:
    """Hash one blob in constant memory; returns (digest of the bytes, byte count, detected compression)."""
    with reader.open_blob(digest, verify=False) as f:
        head = f.read(MAGIC_LEN)
        got, size = digest_stream(f, digest.algorithm, initial=head)
    return got, size, detect(head)


def fsck(reader: LayoutReader, *, jobs: int = 2) -> FsckReport:
    """Check a layout (any :class:`LayoutReader`: directory or archive); never raises for what it finds.

    Checks the ``oci-layout`` file, ``index.json`` and each entry, then every blob reachable from it:
    present, stored size equal to every descriptor's size, content hashing to its digest (all bytes,
    ``jobs`` threads), manifests and configs parsing, layer magic bytes matching the declared
    compression, ``rootfs.diff_ids`` count matching the layer count, embedded ``data`` fields. Stale temp
    files of dead writers are reported as info.
    """
    checker = _Checker(reader, jobs)
    try:
        checker.check_layout_file()
        roots = checker.roots()
        checker.walk(roots)
    finally:
        checker.finish()
    root = getattr(reader, "root", None)
    if isinstance(root, Path) and root.is_dir():
        with contextlib.suppress(OSError):
            for path, size in stale_temp_files(root):
                checker.report("stale-temp-file", None,
                               f"{os.path.relpath(path, root)} ({size} bytes) was left by a writer that died", phase=2)
    problems = checker.sorted_problems()
    ok = not any(p.severity == "error" for p in problems)
    return FsckReport(location=reader.location, ok=ok, problems=problems,
                      blobs_checked=checker.blobs_checked, bytes_hashed=checker.bytes_hashed)
