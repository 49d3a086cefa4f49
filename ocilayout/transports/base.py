"""The transport seam: what copy (and sign, verify, inspect) read from and write to.

Three protocols, each implemented once per transport module and registered in one table
(:data:`ocilayout.transports.TRANSPORTS`):

* :class:`Source` -- the read side of one resolved image. ``root`` is the descriptor the reference named,
  with the media type of the parsed document. ``get_manifest`` reads and verifies; ``open_blob`` returns the
  blob's *stored bytes, unverified* (callers verify: copy lets the destination hash what it writes, so every
  byte is hashed once; :func:`read_blob_bytes` verifies small blobs). A file-backed stream may offer
  ``region()`` (see :func:`ocilayout.streams.region_of`) for in-kernel copies. ``referrers`` lists the OCI 1.1
  referrers stored with an image.
* :class:`Destination` -- the write side. The call order is::

      has_blob / put_blob*  ->  put_manifest*  ->  tag*  ->  put_signatures* / put_referrers*  ->  commit()
      ->  close()

  Nothing staged is visible to readers before :meth:`Destination.commit`, which makes blobs, manifests,
  names and signatures visible in one step. Any read error or digest/size mismatch from an opener MUST fail
  the put (or the commit, for a blob the destination deferred) and keep nothing. ``close()`` without
  ``commit()`` names nothing new (a local destination also removes what it staged). A failed ``commit()``
  leaves the destination exactly as it was, signatures included.
* :class:`Transport` -- opens references of one transport name; operations a transport does not support
  raise :class:`~ocilayout.errors.UnsupportedFormat` with a sentence saying so.

:class:`Capabilities` says, as data, what a destination can hold; the copy planner reads it and refuses (or,
later, converts) what does not fit, instead of copy growing special cases per transport.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Literal, Protocol

from ..descriptor import Descriptor
from ..digest import Digest, read_verified
from ..errors import InvalidManifest, UnsupportedFormat
from ..manifest import MAX_MANIFEST_SIZE, Manifest
from ..reference import ImageReference

if TYPE_CHECKING:
    from ..signature.model import Signature
    from ..store import LayoutReader, LayoutStore

__all__ = ["BlobOpener", "Capabilities", "Destination", "ProgressFn", "Source", "Transport", "no_referrers",
           "read_blob_bytes"]

#: Opens a blob's bytes. A destination may call it later (at commit), from another thread, and again to
#: retry a failed upload from the start (each call is a fresh stream of the same bytes).
BlobOpener = Callable[[], BinaryIO]
#: Receives the byte count of each chunk written.
ProgressFn = Callable[[int], None]

SignatureKind = Literal["sigstore", "simple-signing"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Capabilities:
    """What a destination can hold. Read by the copy planner (``ocilayout.plan``), nowhere else."""

    #: Manifest and index media types ``put_manifest`` accepts.
    manifest_types: frozenset[str]
    #: Layer compressions it can store ("gzip", "zstd", "none").
    layer_compressions: frozenset[str] = frozenset({"gzip", "zstd", "none"})
    #: Whether it can hold an index / manifest list.
    indexes: bool = True
    #: Whether several ``tag()`` calls can go into one commit (sync writes N images at once).
    multi_image: bool = True
    #: How images are named: OCI ref names, docker references (RepoTags), or not at all.
    names: Literal["ref-name", "docker-reference", "none"] = "ref-name"
    #: Signature kinds it can store; empty when it cannot keep any.
    signatures: frozenset[SignatureKind] = frozenset({"sigstore"})
    #: Whether manifests are stored as their exact bytes (docker-archive's legacy form cannot).
    verbatim: bool = True
    #: Whether it keeps OCI 1.1 referrers (manifests whose ``subject`` is an image) as such:
    #: :meth:`Destination.put_referrers` lists them under the ``sha256-<hex>`` fallback tag.
    referrers: bool = False


class Source(Protocol):
    """The read side of one resolved image (see the module docstring for the contract)."""

    ref: ImageReference
    #: The descriptor the reference resolved to; its media type is that of the parsed document.
    root: Descriptor

    def get_manifest(self, desc: Descriptor | None = None) -> Manifest:
        """The manifest ``desc`` (default: the root) names, verified; raises NotFound, IntegrityError,
        InvalidManifest, UnsupportedFormat."""
        ...

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        """The blob's stored bytes, NOT verified (the caller hashes them); raises NotFound."""
        ...

    def stat_blob(self, digest: Digest) -> int | None:
        """The stored size of a blob, None when the source does not have it (a foreign layer, say)."""
        ...

    def signatures(self, manifest_digest: Digest) -> Sequence[Signature]:
        """Signatures stored with the image for ``manifest_digest``; empty when there are none."""
        ...

    def referrers(self, manifest_digest: Digest) -> Sequence[Descriptor]:
        """Descriptors of the OCI 1.1 referrers stored with the image whose ``subject`` is ``manifest_digest``
        (SBOMs, attestations: each with its ``artifactType``); empty when there are none or the source keeps
        none. Raises InvalidManifest for a damaged referrers index."""
        ...

    def close(self) -> None:
        """Release resources; streams already opened stay readable."""
        ...

    def __enter__(self) -> Source: ...
    def __exit__(self, *exc: object) -> None: ...


class Destination(Protocol):
    """The write side of a transport (see the module docstring for the call order and failure rules)."""

    ref: ImageReference
    capabilities: Capabilities

    def has_blob(self, desc: Descriptor) -> bool:
        """True when the blob is already stored or staged with that size: copy skips it."""
        ...

    def put_blob(self, open_: BlobOpener, expected: Descriptor | None, *, media_type: str,
                 progress: ProgressFn | None = None) -> Descriptor:
        """Stage a blob. With ``expected``, digest and size must match (IntegrityError otherwise, nothing
        kept); without it, the destination hashes what it writes. Returns the stored blob's descriptor
        (``media_type``, the digest and size written). A destination may call ``open_`` later, at commit."""
        ...

    def put_manifest(self, manifest: Manifest, *, algorithm: str = "sha256") -> Descriptor:
        """Stage a manifest's exact bytes, addressed by an ``algorithm`` digest (the one the source used: a
        sha512 image stays sha512); returns its descriptor. Children must be put before parents."""
        ...

    def tag(self, desc: Descriptor, name: str | None, *, image_name: str | None = None,
            replaces: Digest | None = None, expects: Digest | None = None) -> None:
        """Name ``desc`` (a staged or stored manifest) at commit; ``None`` adds it untagged. ``image_name``
        is the full reference a destination that records one beside the name keeps (a layout: containerd's
        ``io.containerd.image.name``); others ignore it. ``replaces`` is the digest of an *untagged* image
        ``desc`` takes the place of (an in-place edit of an unnamed image): a destination that holds untagged
        entries (a layout) drops that digest's untagged entries in the same commit; others ignore it.
        ``expects`` is the digest ``name`` named when the image was read (an in-place edit of a named image):
        a layout refuses the commit (:class:`~ocilayout.errors.ConcurrentEdit`) when another writer moved or
        removed the name meanwhile, and so an untagged image ``replaces`` names that is gone; others ignore
        it."""
        ...

    def put_signatures(self, manifest_digest: Digest, sigs: Sequence[Signature]) -> None:
        """Stage signatures to append (never replace) to those stored for ``manifest_digest`` at commit.
        Raises UnsupportedFormat for a kind the destination cannot store."""
        ...

    def put_referrers(self, subject: Digest, referrers: Sequence[Descriptor]) -> None:
        """Stage referrers (manifests already put whose ``subject`` is ``subject``) to list with the image: at
        commit they are merged with those the destination holds *then* (concurrent writers all survive).
        Raises UnsupportedFormat where ``capabilities.referrers`` is False."""
        ...

    def commit(self) -> None:
        """Make everything staged visible at once; on failure the destination is left as it was."""
        ...

    def close(self) -> None:
        """Release resources; without a commit, names nothing new and drops what was staged."""
        ...


class Transport:
    """One transport name and what it can open. Subclasses override what they support; the rest raises
    UnsupportedFormat, so callers never probe for methods."""

    name: str = ""
    #: Whether the images live on a service (a registry) rather than in a local file or directory: reading
    #: what was written back costs network round trips, so the consumer warnings (``compat``) skip it.
    remote: bool = False

    def _unsupported(self, what: str) -> UnsupportedFormat:
        return UnsupportedFormat(f"{what} is not supported for {self.name}: references")

    def open_source(self, ref: ImageReference) -> Source:
        """Open ``ref`` for reading and resolve the image it names; raises NotFound, LayoutError..."""
        raise self._unsupported("reading images")

    def open_destination(self, ref: ImageReference) -> Destination:
        """Open ``ref`` for writing; nothing is visible until ``commit``."""
        raise self._unsupported("writing images")

    def list_names(self, ref: ImageReference) -> list[str]:
        """The names (tags) the location ``ref`` holds, in stored order."""
        raise self._unsupported("listing tags")

    def repository_names(self, ref: ImageReference, *, tags: bool = True) -> tuple[str, list[str]] | None:
        """For ``inspect``: the repository's docker name and (with ``tags``) its tags, as skopeo prints
        ``Name`` and ``RepoTags`` for registry images; None where images have no docker repository."""
        return None

    def delete_image(self, ref: ImageReference) -> int:
        """Delete the image ``ref`` names; returns how many names (or manifests) went. Layouts remove the
        name from ``index.json`` (blobs stay until gc); raises UnsupportedFormat where deleting is not
        supported."""
        from ..tags import untag_image  # open_store raises UnsupportedFormat for a transport that is no layout

        return untag_image(ref)

    def referrers(self, ref: ImageReference, artifact_type: str | None = None) -> list[Descriptor]:
        """OCI 1.1: descriptors of the manifests whose ``subject`` is the image ``ref`` names (only those of
        ``artifact_type`` when given), as a referrers index lists them (``ocilayout.referrers``)."""
        raise self._unsupported("listing referrers")

    def open_reader(self, ref: ImageReference) -> LayoutReader:
        """The whole layout ``ref`` points into, read-only (fsck, images); raises UnsupportedFormat when the
        transport is not a layout."""
        raise self._unsupported("layout maintenance (fsck, images)")

    def open_store(self, ref: ImageReference) -> LayoutStore:
        """The writable layout directory ``ref`` points into (tag, delete, gc)."""
        raise self._unsupported("editing a layout in place (tag, delete, gc)")


def no_referrers(what: str) -> UnsupportedFormat:
    """The refusal of :meth:`Destination.put_referrers` in a destination that cannot keep referrers."""
    return UnsupportedFormat(f"{what} cannot hold OCI referrers (attached artifacts); use oci: or oci-archive:")


def read_blob_bytes(source: Source, desc: Descriptor, limit: int = MAX_MANIFEST_SIZE) -> bytes:
    """A small blob's bytes from ``source``, verified against ``desc``; raises InvalidManifest over ``limit``,
    IntegrityError on a mismatch, NotFound."""
    if desc.size > limit:
        raise InvalidManifest(f"blob {desc.digest} is {desc.size} bytes, over the {limit}-byte limit")
    with source.open_blob(desc) as f:
        return read_verified(f, desc)
