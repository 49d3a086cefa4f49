"""The copy pipeline: resolve, select platforms, stream verified blobs in parallel, commit last.

Blobs travel as their exact bytes and are hashed while copied (the source stream checks digest and size
at EOF, the destination hashes what it writes); manifests travel as their raw bytes, so digests never
change unless a new document is made on purpose (a ``--platform`` subset of several images makes a new
index). Nothing becomes visible in the destination before every blob and manifest is in place.
"""

from __future__ import annotations

import platform as _platform
import threading
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol

from .descriptor import Descriptor, Platform
from .digest import Digest
from .errors import NotFound
from .graph import walk
from .manifest import Manifest, canonical_json
from .reference import ImageReference
from .transports import Destination, Source, open_destination, open_source

__all__ = ["CopyOptions", "CopyResult", "Progress", "copy", "host_platform", "select_root"]

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
         "i686": "386", "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


class _Cancelled(Exception):
    """Raised inside a blob worker when another worker has already failed."""


def host_platform() -> Platform:
    """The platform of this machine, as skopeo picks by default (linux/<arch>)."""
    machine = _platform.machine().lower()
    return Platform("linux", _ARCH.get(machine, machine))


class Progress(Protocol):
    """Receives copy progress; the CLI draws a bar from it, the library never prints."""

    def start(self, total_bytes: int, blobs: int) -> None: ...
    def advance(self, nbytes: int) -> None: ...
    def finish(self) -> None: ...


@dataclass(frozen=True, kw_only=True)
class CopyOptions:
    """How to copy. ``all_platforms`` copies a whole index; ``platforms`` selects a subset of one."""

    all_platforms: bool = False
    platforms: tuple[Platform, ...] = ()
    jobs: int = 4
    progress: Progress | None = field(default=None, compare=False)
    #: Drop the source's signatures instead of carrying them along.
    remove_signatures: bool = False
    #: A decrypted sigstore private key: sign the copied image on the way (see ``sign_identity``).
    sign_by: Any = field(default=None, compare=False, repr=False)
    #: The docker reference the new signature vouches for; default: the destination's full ref name.
    sign_identity: str | None = None


@dataclass(frozen=True, slots=True)
class CopyResult:
    """What a copy wrote: the root descriptor and blob counts."""

    descriptor: Descriptor
    blobs_copied: int
    blobs_skipped: int
    bytes_copied: int
    #: Digests of every manifest and index written, root first.
    manifest_digests: tuple[Digest, ...] = ()
    signatures_copied: int = 0
    signed: bool = False


def select_root(src: Source, options: CopyOptions) -> tuple[Descriptor, Manifest | None]:
    """The descriptor to copy, and a new index to write when a platform subset of several is asked for.

    Single images are copied as they are (a ``--platform`` that does not match them is an error). An
    index is copied whole with ``all_platforms``; with ``platforms``, one match gives that image alone and
    several a new index of the matches; by default the image for the host platform is chosen, as skopeo
    does. Raises NotFound when nothing matches.
    """
    root = src.root
    manifest = src.get_manifest()
    if not manifest.is_index:
        if options.platforms and not manifest.is_schema1 and "config" in manifest.doc:
            from .manifest import ImageConfig

            plat = ImageConfig.parse(src.reader.read_blob_bytes(manifest.config)).platform
            if not any(plat.matches(p) for p in options.platforms):
                raise NotFound(f"{src.ref} is a single {plat} image, not {_plats(options.platforms)}")
        return root, None
    if options.all_platforms:
        return root, None
    children = manifest.manifests
    wanted = options.platforms or (host_platform(),)
    chosen = [c for c in children if c.platform is not None and any(c.platform.matches(p) for p in wanted)]
    if not options.platforms:
        chosen = chosen[:1]
    if not chosen:
        have = ", ".join(sorted({str(c.platform) for c in children if c.platform})) or "none"
        raise NotFound(f"{src.ref}: no image for {_plats(wanted)} in the index (platforms: {have}); "
                       "use --all or --platform")
    if len(chosen) == 1:
        return chosen[0], None
    doc = dict(manifest.doc)
    keep = {c.digest for c in chosen}
    doc["manifests"] = [d for d in manifest.doc["manifests"] if d.get("digest") in {str(k) for k in keep}]
    subset = Manifest.parse(canonical_json(doc), manifest.media_type)
    return subset.descriptor, subset


def _plats(plats: Sequence[Platform]) -> str:
    return ", ".join(str(p) for p in plats)


def copy(src: ImageReference | str, dst: ImageReference | str, options: CopyOptions | None = None) -> CopyResult:
    """Copy the image ``src`` names to ``dst``; returns what was written.

    Raises NotFound (no such image/tag/platform), IntegrityError (a blob does not match its descriptor),
    LayoutError, UnsupportedFormat. On any error the destination is left as it was.
    """
    options = options or CopyOptions()
    with open_source(src) as source:
        destination = open_destination(dst)
        try:
            return _copy(source, destination, options)
        finally:
            destination.close()


# -- signatures -------------------------------------------------------------------------------------------
def _sign_identity(dst: ImageReference, options: CopyOptions) -> str:
    """The identity a ``sign_by`` signature vouches for: ``sign_identity``, else the destination's ref name
    when it is a full docker reference. Raises InvalidReference before anything is copied."""
    from .errors import InvalidReference
    from .signature.dockerref import parse_normalized

    ident = options.sign_identity
    if ident is None and dst.ref and "/" in dst.ref:
        ident = dst.ref
    if ident is None:
        raise InvalidReference("signing while copying needs the identity to sign for (--sign-identity "
                               "registry.example.com/ns/app:1.0)")
    parse_normalized(ident)
    return ident


def _source_signatures(source: Source, digests: Sequence[Digest]) -> list[tuple[Digest, Any]]:
    """Signatures the source holds for what was copied (sigstore ``.sig`` tags in a layout)."""
    from .signature.storage import LayoutSignatures, sig_tag

    have = set(source.reader.refs())
    sigs = LayoutSignatures(source.reader)
    out: list[tuple[Digest, Any]] = []
    for digest in digests:
        if sig_tag(digest) in have:
            out.extend((digest, s) for s in sigs.list(digest))
    return out


def _signatures(source: Source, destination: Destination, root: Descriptor, written: Sequence[Digest],
                options: CopyOptions) -> tuple[list[tuple[Digest, Any]], bool]:
    """The signatures the destination must get: the source's for what was copied, unless removed, plus a new
    one for ``root`` when ``sign_by`` is set. Returns them and whether a new one was made."""
    carried = [] if options.remove_signatures else _source_signatures(source, written)
    if options.sign_by is None:
        return carried, False
    from .signature.sigstore import sign_sigstore

    identity = _sign_identity(destination.ref, options)
    return [*carried, (root.digest, sign_sigstore(options.sign_by, root.digest, identity))], True


def _copy(source: Source, destination: Destination, options: CopyOptions) -> CopyResult:
    root, new_index = select_root(source, options)
    if new_index is not None and not options.remove_signatures:
        from .errors import UnsupportedFormat
        from .signature.storage import sig_tag

        if sig_tag(source.root.digest) in source.reader.refs():
            raise UnsupportedFormat(f"{source.ref} is signed; a subset of its platforms is a new index the "
                                    "signatures do not cover: pass --remove-signatures to copy it unsigned")
    if options.sign_by is not None:
        _sign_identity(destination.ref, options)  # refuse a missing identity before copying anything
    roots = new_index.manifests if new_index is not None else [root]
    manifests: list[Manifest] = []
    blobs: dict[str, Descriptor] = {}
    for node in walk(source.reader, roots, follow_subject=False):
        if node.manifest is not None:
            manifests.append(node.manifest)
        elif node.descriptor.urls and not source.reader.has_blob(node.descriptor.digest):
            continue  # a foreign layer that lives at its URLs, as skopeo leaves it
        else:
            blobs.setdefault(str(node.descriptor.digest), node.descriptor)
    todo = [d for d in blobs.values() if not destination.has_blob(d)]
    progress = options.progress
    if progress is not None:
        progress.start(sum(d.size for d in todo), len(todo))

    failed = threading.Event()

    def tick(nbytes: int) -> None:
        if failed.is_set():
            raise _Cancelled
        if progress is not None:
            progress.advance(nbytes)

    def one(desc: Descriptor) -> None:
        if failed.is_set():
            return
        try:
            # The destination verifies digest and size while it writes: the blob is hashed once.
            with source.reader.open_blob(desc, verify=False) as stream:
                destination.put_blob(stream, desc, tick)
        except BaseException:
            failed.set()  # the other workers stop at their next chunk
            raise

    deferred = getattr(destination, "add_source_blob", None)
    if deferred is not None:
        # The destination streams these from the source itself at commit, in one verified pass.
        for desc in todo:
            deferred(desc, source.reader, progress.advance if progress is not None else None)
        todo_now: list[Descriptor] = []
    else:
        todo_now = todo
    if todo_now:
        with ThreadPoolExecutor(max_workers=max(1, min(options.jobs, len(todo_now)))) as pool:
            futures = [pool.submit(one, d) for d in sorted(todo_now, key=lambda d: -d.size)]
            wait(futures, return_when=FIRST_EXCEPTION)
        errors = [f.exception() for f in futures if f.exception() is not None]
        real = [e for e in errors if not isinstance(e, _Cancelled)]
        if real or errors:
            raise (real or errors)[0]  # type: ignore[misc]
    # Children before parents, so a manifest is never stored before what it points at.
    for manifest in reversed(manifests):
        destination.put_manifest(manifest)
    if new_index is not None:
        destination.put_manifest(new_index)
    written = [m.digest for m in manifests] + ([new_index.digest] if new_index is not None else [])
    written.sort(key=lambda d: d != root.digest)
    signatures, signed = _signatures(source, destination, root, written, options)
    # An archive takes signatures into the same single write as the image; a directory appends them to
    # each digest's .sig tag right after the image is tagged (never before: no tag for a missing image).
    stage = getattr(destination, "stage_signatures", None)
    if stage is not None and signatures:
        stage(signatures)
    destination.commit(root)
    if stage is None and signatures:
        from .signature.image import ResolvedImage, store_signature

        for digest, sig in signatures:
            store_signature(ResolvedImage(destination.ref, digest), sig)
    if progress is not None:
        progress.finish()
    return CopyResult(root, len(todo), len(blobs) - len(todo), sum(d.size for d in todo), tuple(written),
                      signatures_copied=len(signatures) - int(signed), signed=signed)
