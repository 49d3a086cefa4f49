"""fsck: check that a layout is complete and that every reachable byte is what its descriptors promise.

:func:`fsck` walks from ``index.json`` through nested indexes, manifests, configs, layers and ``subject``
(loops are followed once), and hashes every reachable blob in a thread pool (hashlib releases the GIL), in
constant memory. It never raises for a broken layout: everything it finds is a :class:`Problem` with a
stable ``kind`` code (see :data:`KINDS`) and a severity; the layout is ``ok`` when no problem is an error.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
from concurrent.futures import Future, ThreadPoolExecutor
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
from .manifest import MAX_MANIFEST_SIZE, ImageConfig, Manifest, load_json
from .store import LayoutReader

__all__ = ["KINDS", "FsckReport", "Problem", "fsck", "sniff_manifest", "stale_temp_files"]

#: Every problem kind fsck reports, with its severity. The codes are stable (scripts match on them).
KINDS: dict[str, str] = {
    "layout-file": "error",  # oci-layout missing, unreadable or an unsupported version
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
    "stale-temp-file": "info",  # a temp file left by a writer that died (gc removes it)
}

#: Non-distributable layer types: their blobs may legitimately be absent from a layout.
_NONDISTRIBUTABLE = frozenset({mt.OCI_LAYER_ND, mt.OCI_LAYER_ND_GZIP, mt.OCI_LAYER_ND_ZSTD,
                               mt.DOCKER_FOREIGN_LAYER, mt.DOCKER_FOREIGN_LAYER_TAR})
_CONFIG_TYPES = frozenset({mt.OCI_CONFIG, mt.DOCKER_CONFIG})


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


class _Checker:
    """One fsck run: the walk runs in the caller's thread, bulk hashing in a thread pool."""

    def __init__(self, reader: LayoutReader, pool: ThreadPoolExecutor) -> None:
        self.reader = reader
        self.pool = pool
        self.problems: list[Problem] = []
        self._seen_problems: set[tuple[str, Digest | None, str]] = set()
        self.walked: set[Digest] = set()  # manifests and indexes already expanded
        self.verified: set[Digest] = set()  # blobs whose content is checked (or queued)
        self.jobs: dict[Digest, Future[tuple[Digest, int, str]]] = {}
        self.layer_kinds: dict[Digest, set[tuple[str, str]]] = {}  # digest -> {(declared kind, media type)}
        self.blobs_checked = 0
        self.bytes_hashed = 0
        self._config_layers: dict[Digest, int | None] = {}

    # -- reporting -------------------------------------------------------------------------------------
    def report(self, kind: str, digest: Digest | None, message: str) -> None:
        key = (kind, digest, message)
        if key not in self._seen_problems:
            self._seen_problems.add(key)
            self.problems.append(Problem(kind, digest, message, KINDS[kind]))

    # -- top level -------------------------------------------------------------------------------------
    def check_layout_file(self) -> None:
        try:
            self.reader.check_layout_file()
        except OcilayoutError as err:
            self.report("layout-file", None, str(err))

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
        roots = []
        for i, entry in enumerate(doc["manifests"]):
            try:
                roots.append(Descriptor.from_dict(entry))
            except OcilayoutError as err:
                self.report("index-entry-invalid", None, f"{loc}/index.json entry {i}: {err}")
        return roots

    def walk(self, roots: list[Descriptor]) -> None:
        stack: list[tuple[Descriptor, str]] = [(d, "entry") for d in reversed(roots)]
        while stack:
            desc, role = stack.pop()
            for child, child_role in reversed(self.visit(desc, role)):
                stack.append((child, child_role))

    # -- one descriptor --------------------------------------------------------------------------------
    def visit(self, desc: Descriptor, role: str) -> list[tuple[Descriptor, str]]:
        """Check one descriptor occurrence; returns the children to visit next."""
        self.check_data_field(desc)
        if not self.check_present(desc, role):
            return []
        if desc.digest in self.walked:
            return []
        if desc.media_type == ARTIFACT_MANIFEST:
            self.walked.add(desc.digest)
            self.report("manifest-invalid", desc.digest,
                        f"manifest {desc.digest} is an OCI 1.1-rc artifact manifest ({ARTIFACT_MANIFEST}), which "
                        "ocilayout does not follow (gc refuses this layout; copy fails)")
            return []
        manifest_like = mt.is_index(desc.media_type) or mt.is_manifest(desc.media_type)
        small = self.stored_size(desc) <= MAX_MANIFEST_SIZE
        sniff = sniffable(desc, role)  # the rule graph.walk applies for copy and gc
        if small and (manifest_like or desc.media_type in _CONFIG_TYPES or sniff):
            self.walked.add(desc.digest)
            raw = self.read_small(desc)
            if raw is None:
                return []
            if manifest_like:
                return self.expand(desc, raw, role)
            sniffed = sniff_manifest(raw) if sniff else None
            if sniffed is not None:
                return self.expand(desc.with_(media_type=sniffed.media_type), raw, role)
            return []
        if manifest_like:
            self.report("manifest-invalid", desc.digest,
                        f"manifest {desc.digest} is {self.stored_size(desc)} bytes, over the "
                        f"{MAX_MANIFEST_SIZE}-byte limit")
        self.queue_hash(desc, role)
        return []

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

    def check_present(self, desc: Descriptor, role: str) -> bool:
        """Report absence and a size mismatch; True when the blob is stored."""
        d = desc.digest
        try:
            present = self.reader.has_blob(d)
        except OSError as err:
            self.report("unreadable", d, f"blob {d}: {err}")
            return False
        if not present:
            if role == "subject":
                self.report("subject-absent", d, f"subject {d} is not in this layout")
            elif _is_foreign(desc):
                self.report("foreign-layer-absent", d, f"foreign layer {d} ({desc.media_type}) is not stored")
            else:
                what = "manifest" if mt.is_index(desc.media_type) or mt.is_manifest(desc.media_type) else role
                self.report("blob-missing", d, f"{what} blob {d} is missing")
            return False
        size = self.stored_size(desc)
        if role != "schema1-layer" and size >= 0 and size != desc.size:
            self.report("size-mismatch", d, f"blob {d} is {size} bytes, its descriptor says {desc.size}")
        return True

    def read_small(self, desc: Descriptor) -> bytes | None:
        """Read and verify a small blob (manifest, config) in this thread; None when unreadable."""
        d = desc.digest
        try:
            with self.reader.open_blob(d, verify=False) as f:
                raw = f.read(MAX_MANIFEST_SIZE + 1)
        except (OSError, OcilayoutError) as err:
            self.report("unreadable", d, f"blob {d}: {err}")
            return None
        self.verified.add(d)
        self.blobs_checked += 1
        self.bytes_hashed += len(raw)
        got = Digest.of(raw, d.algorithm)
        if got != d:
            self.report("digest-mismatch", d, f"blob {d} hashes to {got}")
        return raw

    def expand(self, desc: Descriptor, raw: bytes, role: str) -> list[tuple[Descriptor, str]]:
        """Parse a manifest or index, check it, and return its children."""
        try:
            m = Manifest.parse(raw, desc.media_type)
        except (OcilayoutError, ValueError, TypeError, KeyError, AttributeError) as err:
            self.report("manifest-invalid", desc.digest, f"manifest {desc.digest}: {' '.join(str(err).split())}")
            return []
        own = m.doc.get("mediaType")
        if isinstance(own, str) and own and desc.media_type and own != desc.media_type:
            self.report("media-type-mismatch", desc.digest,
                        f"manifest {desc.digest} is {own}, its descriptor says {desc.media_type}")
        children: list[tuple[Descriptor, str]] = []
        if m.is_index:
            children.extend((c, "manifest") for c in m.manifests)
        elif m.is_schema1:
            for d in m.schema1_layers:
                size = self.stored_size(Descriptor(mt.OCI_LAYER_GZIP, d, 0))
                children.append((Descriptor("", d, max(size, 0)), "schema1-layer"))
        else:
            if "config" in m.doc:
                children.append((m.config, "config"))
            children.extend((layer, "layer") for layer in m.layers)
            self.check_diff_ids(m)
        if m.subject is not None:
            children.append((m.subject, "subject"))
        return children

    def check_diff_ids(self, m: Manifest) -> None:
        cfg = m.config if "config" in m.doc else None
        if cfg is None or cfg.media_type not in _CONFIG_TYPES:
            return
        # Artifacts reuse the image config type with "{}" and non-layer "layers": only images are checked.
        if not all(_is_image_layer(layer.media_type) for layer in m.layers):
            return
        if cfg.digest not in self._config_layers:
            count: int | None = None
            if self.reader.has_blob(cfg.digest) and 0 <= self.stored_size(cfg) <= MAX_MANIFEST_SIZE:
                self.walked.add(cfg.digest)
                raw = self.read_small(cfg)
                if raw is not None:
                    try:
                        count = len(ImageConfig.parse(raw).diff_ids)
                    except OcilayoutError as err:
                        self.report("manifest-invalid", cfg.digest, f"config {cfg.digest}: {err}")
            self._config_layers[cfg.digest] = count
        count = self._config_layers[cfg.digest]
        if count is not None and count != len(m.layers):
            self.report("diff-ids-mismatch", m.digest,
                        f"manifest {m.digest} has {len(m.layers)} layers, its config {cfg.digest} "
                        f"lists {count} diff_ids")

    def queue_hash(self, desc: Descriptor, role: str) -> None:
        d = desc.digest
        if role == "layer":
            declared = mt.layer_compression(desc.media_type)
            if declared is not None:
                self.layer_kinds.setdefault(d, set()).add((declared, desc.media_type))
        if d in self.verified:
            return
        self.verified.add(d)
        self.jobs[d] = self.pool.submit(_hash_blob, self.reader, d)

    def collect(self) -> None:
        for d, fut in self.jobs.items():
            try:
                got, size, kind = fut.result()
            except (OSError, OcilayoutError) as err:
                self.report("unreadable", d, f"blob {d}: {err}")
                continue
            self.blobs_checked += 1
            self.bytes_hashed += size
            if got != d:
                self.report("digest-mismatch", d, f"blob {d} hashes to {got}")
            for declared, media_type in sorted(self.layer_kinds.get(d, ())):
                if declared != kind:
                    self.report("compression-mismatch", d,
                                f"layer {d} is declared {media_type} ({declared}) but its bytes are {kind}")


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
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="fsck") as pool:
        checker = _Checker(reader, pool)
        checker.check_layout_file()
        roots = checker.roots()
        try:
            checker.walk(roots)
        finally:
            checker.collect()
    root = getattr(reader, "root", None)
    if isinstance(root, Path) and root.is_dir():
        with contextlib.suppress(OSError):
            for path, size in stale_temp_files(root):
                checker.report("stale-temp-file", None,
                               f"{os.path.relpath(path, root)} ({size} bytes) was left by a writer that died")
    problems = checker.problems
    ok = not any(p.severity == "error" for p in problems)
    return FsckReport(location=reader.location, ok=ok, problems=problems,
                      blobs_checked=checker.blobs_checked, bytes_hashed=checker.bytes_hashed)
