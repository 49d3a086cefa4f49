"""The copy pipeline: plan (:mod:`ocilayout.plan`), write the plan into a destination, commit last.

Blobs travel as their exact bytes and are hashed once, by the destination, while it writes them (the
source stream is not verified twice); manifests travel as their raw bytes, so digests never change unless a
new document is made on purpose (a ``--platform`` subset of several images makes a new index). Nothing
becomes visible in the destination before :meth:`~ocilayout.transports.base.Destination.commit`: on any
error, the destination is left as it was.

``copy(src, dst)`` opens both references, writes and commits. :func:`copy_into` writes into an open
destination without committing, so sync and mutation can put several images into one commit.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from .descriptor import Descriptor
from .digest import Digest
from .errors import InvalidArgument
from .plan import BlobStep, Conversion, Plan, Selection, Signing, host_platform, plan_copy
from .reference import ImageReference
from .refname import RefNaming
from .transports import Destination, Source, open_destination, open_source

if TYPE_CHECKING:
    from concurrent.futures import Executor

__all__ = ["Conversion", "CopyOptions", "CopyResult", "Progress", "Selection", "Signing", "copy", "copy_into",
           "host_platform",
           "write_plan"]


class _Cancelled(Exception):
    """Raised inside a blob worker when another worker has already failed."""


class Progress(Protocol):
    """Receives copy progress; the CLI draws a bar from it, the library never prints."""

    def start(self, total_bytes: int, blobs: int) -> None: ...
    def advance(self, nbytes: int) -> None: ...
    def finish(self) -> None: ...


@dataclass(frozen=True, kw_only=True)
class CopyOptions:
    """How to copy: which images (``select``), what happens to signatures (``signing``), what is converted
    (``convert``: manifest format, layer compression), how many blobs move at once (``jobs``) and who hears
    about progress."""

    select: Selection = field(default_factory=Selection)
    signing: Signing = field(default_factory=Signing)
    convert: Conversion = field(default_factory=Conversion)
    jobs: int = 4
    progress: Progress | None = field(default=None, compare=False)
    #: How the image is named in an oci:/oci-archive: destination (``--ref-name``, ``--image-name``; see
    #: :mod:`ocilayout.refname`); None: the destination reference's name as typed.
    naming: RefNaming | None = None
    #: Leave the OCI 1.1 referrers (attached SBOMs, attestations) of the copied manifests behind.
    remove_referrers: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CopyResult:
    """What a copy wrote: the root descriptor and blob counts."""

    descriptor: Descriptor
    blobs_copied: int
    blobs_skipped: int
    bytes_copied: int
    #: Digests of every manifest and index written, root first (a schema1 manifest's payload digest).
    manifest_digests: tuple[Digest, ...] = ()
    signatures_copied: int = 0
    signed: bool = False
    #: How many referrers (attached artifacts) were carried with the image.
    referrers_copied: int = 0


def _as_source(src: Source | ImageReference | str) -> tuple[Source, bool]:
    if isinstance(src, ImageReference | str):
        return open_source(src), True
    return src, False


def _as_destination(dst: Destination | ImageReference | str) -> tuple[Destination, bool]:
    if isinstance(dst, ImageReference | str):
        return open_destination(dst), True
    return dst, False


def copy(src: Source | ImageReference | str, dst: Destination | ImageReference | str,
         options: CopyOptions | None = None) -> CopyResult:
    """Copy the image ``src`` names to ``dst`` and commit; returns what was written.

    Either side may be a reference (opened and closed here) or an open Source / Destination (left open
    for the caller). Raises NotFound (no such image/tag/platform), IntegrityError (a blob does not match
    its descriptor), LayoutError, UnsupportedFormat (with the reason the copy was refused). On any error
    the destination is left as it was.
    """
    source, own_source = _as_source(src)
    try:
        destination, own_destination = _as_destination(dst)
        try:
            result = copy_into(source, destination, options)
            destination.commit()
            if options is not None and options.progress is not None:
                options.progress.finish()
            return result
        finally:
            if own_destination:
                destination.close()
    finally:
        if own_source:
            source.close()


_DEST_NAME = object()


def copy_into(source: Source, destination: Destination, options: CopyOptions | None = None, *,
              name: str | object | None = _DEST_NAME, image_name: str | None = None,
              replaces: Digest | None = None, expects: Digest | None = None,
              executor: Executor | None = None) -> CopyResult:
    """Plan the copy and write it into ``destination`` without committing (see :func:`copy`), naming the
    image ``name`` (default: the destination reference's name; None: untagged) and ``image_name`` (see
    :meth:`Destination.tag`), or as ``options.naming`` says. Several calls before one ``commit()`` put
    several images into one write (sync). ``replaces``: the untagged image the copy takes the place of;
    ``expects``: the digest ``name`` must still name at commit (both: see :meth:`Destination.tag`).
    ``executor``: where the blobs are written (sync shares one between its images); None: a pool of
    ``options.jobs`` threads for this copy."""
    options = options or CopyOptions()
    tag = destination.ref.ref if name is _DEST_NAME else name
    if tag is not None and not isinstance(tag, str):
        raise InvalidArgument(f"an image name is a string or None, not {tag!r}")
    if options.naming is not None and options.naming != RefNaming():
        if destination.capabilities.names != "ref-name":
            raise InvalidArgument(f"--ref-name and --image-name name images in oci: and oci-archive: layouts; "
                                  f"{destination.ref} names them otherwise")
        entry = options.naming.entry(tag)
        tag, image_name = entry.ref_name, entry.image_name
    plan = plan_copy(source, destination.capabilities, select=options.select, signing=options.signing,
                     name=image_name or tag, dest=str(destination.ref), convert=options.convert,
                     referrers=not options.remove_referrers)
    return write_plan(plan, destination, jobs=options.jobs, progress=options.progress, name=tag,
                      image_name=image_name, replaces=replaces, expects=expects, executor=executor)


def write_plan(plan: Plan, destination: Destination, *, jobs: int = 4, progress: Progress | None = None,
               name: str | object | None = _DEST_NAME, image_name: str | None = None,
               replaces: Digest | None = None, expects: Digest | None = None,
               executor: Executor | None = None) -> CopyResult:
    """Write a plan: blobs in a thread pool (``executor``, else one of ``jobs`` threads; largest first; the
    first failure stops the others at their next chunk), then manifests children first, the name
    (``name``, default the plan's, and ``image_name``, see :meth:`Destination.tag`), the signatures. Does
    not commit."""
    todo = [s for s in plan.blobs if s.expected is None or not destination.has_blob(s.expected)]
    if progress is not None:
        progress.start(sum(s.source.size for s in todo), len(todo))
    written: dict[Digest, Descriptor] = {s.source.digest: s.source for s in plan.blobs}
    _put_blobs(todo, destination, jobs, progress, written, executor)
    root = plan.root
    manifest_digests: list[Digest] = []
    for step in plan.manifests:
        manifest = step.render(written)
        desc = destination.put_manifest(manifest, algorithm=step.source.digest.algorithm)
        written[step.source.digest] = desc
        manifest_digests.append(manifest.digest)
        root = plan.root.with_(media_type=desc.media_type, digest=desc.digest, size=desc.size)
    tag = plan.name if name is _DEST_NAME else name
    assert tag is None or isinstance(tag, str)
    destination.tag(root, tag, image_name=image_name, replaces=replaces, expects=expects)
    carried = 0
    for digest, sigs in plan.carried.items():
        destination.put_signatures(digest, sigs)
        carried += len(sigs)
    if plan.sign is not None:
        destination.put_signatures(root.digest, [plan.sign(root.digest)])
    for subject, refs in plan.referrers.items():
        destination.put_referrers(subject, refs)
    manifest_digests.reverse()  # root first
    return CopyResult(descriptor=root, blobs_copied=len(todo), blobs_skipped=len(plan.blobs) - len(todo),
                      bytes_copied=sum(s.source.size for s in todo), manifest_digests=tuple(manifest_digests),
                      signatures_copied=carried, signed=plan.sign is not None,
                      referrers_copied=sum(len(r) for r in plan.referrers.values()))


def _put_blobs(todo: list[BlobStep], destination: Destination, jobs: int, progress: Progress | None,
               written: dict[Digest, Descriptor], executor: Executor | None = None) -> None:
    if not todo:
        return
    from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait  # (and logging): copying

    failed = threading.Event()

    def tick(nbytes: int) -> None:
        if failed.is_set():
            raise _Cancelled
        if progress is not None:
            progress.advance(nbytes)

    def one(step: BlobStep) -> None:
        if failed.is_set():
            return
        try:
            written[step.source.digest] = destination.put_blob(step.open, step.expected,
                                                               media_type=step.media_type, progress=tick)
        except BaseException:
            failed.set()  # the other workers stop at their next chunk
            raise

    def serial(steps: list[BlobStep]) -> None:
        for step in steps:
            one(step)

    # Converted blobs (no expected digest: a transcoder stage) go one after another on one worker: each
    # already keeps both cores busy, and more at once would only add memory. Plain copies fill the rest.
    converted = [s for s in todo if s.expected is None]
    plain = [s for s in todo if s.expected is not None]

    def submit_all(pool: Executor) -> list[Future[None]]:
        futures = [pool.submit(serial, converted)] if converted else []
        return futures + [pool.submit(one, s) for s in plain]

    if executor is not None:
        futures = submit_all(executor)
        wait(futures)  # a failure stops the others at their next chunk (or before they start)
    else:
        with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(plain) + bool(converted)))) as pool:
            futures = submit_all(pool)
            wait(futures, return_when=FIRST_EXCEPTION)
    errors = [e for f in futures if (e := f.exception()) is not None]
    if errors:
        real = [e for e in errors if not isinstance(e, _Cancelled)]
        raise (real or errors)[0]
