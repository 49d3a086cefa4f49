"""Planning a copy: what is written, in which order, and what is refused before anything is.

:func:`plan_copy` reads only manifests (and, for ``--platform`` on a single image, its config) through a
:class:`~ocilayout.transports.base.Source` and the destination's
:class:`~ocilayout.transports.base.Capabilities`; it never writes. It decides:

* the platforms (:func:`select_root`): a single image as it is; an index whole with ``Selection(all=True)``,
  else the host platform or the ``platforms`` asked for, a new index only when several are chosen;
* the steps: every blob (with its own opener, so a destination may call it later) and every manifest,
  children first, the root last;
* what cannot be done and why (:func:`cannot_modify_reason` and the capability checks), raising
  UnsupportedFormat with the sentence before any byte moves;
* the signatures carried along (only for manifests whose digest does not change) and the new one to make.

Conversion (format, compression) will be more kinds of step here, not branches in the writer.
"""

from __future__ import annotations

import platform as _platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import mediatypes as mt
from .descriptor import Descriptor, Platform
from .digest import Digest
from .errors import InvalidArgument, InvalidReference, NotFound, UnsupportedFormat
from .graph import LAYER, read_manifest, walk
from .manifest import ImageConfig, Manifest, canonical_json
from .transports.base import BlobOpener, Capabilities, Source, read_blob_bytes

if TYPE_CHECKING:
    from .signature.model import Signature

__all__ = ["BlobStep", "ManifestStep", "Plan", "Selection", "Signing", "cannot_modify_reason", "host_platform",
           "plan_copy", "select_root"]

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
         "i686": "386", "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def host_platform() -> Platform:
    """The platform of this machine, as skopeo picks by default (linux/<arch>)."""
    machine = _platform.machine().lower()
    return Platform("linux", _ARCH.get(machine, machine))


@dataclass(frozen=True, slots=True, kw_only=True)
class Selection:
    """Which images of an index to copy: ``all`` of it, the ``platforms`` listed, or (neither) the host's.
    Raises InvalidArgument when both are given: they exclude each other."""

    all: bool = False
    platforms: tuple[Platform, ...] = ()

    def __post_init__(self) -> None:
        if self.all and self.platforms:
            raise InvalidArgument("--all and --platform exclude each other")


@dataclass(frozen=True, slots=True, kw_only=True)
class Signing:
    """Signatures on the way: drop the source's (``remove``), and/or sign the result with ``sign_by`` (a
    decrypted sigstore private key) for ``identity`` (default: the destination's full ref name)."""

    remove: bool = False
    sign_by: Any = field(default=None, compare=False, repr=False)
    identity: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BlobStep:
    """One blob to write: the source's descriptor, an opener of the bytes to write, and what they must
    hash to (None when a stage transforms them: the destination hashes what it writes)."""

    source: Descriptor
    open: BlobOpener
    expected: Descriptor | None
    media_type: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ManifestStep:
    """One manifest to write. ``render`` gets what each source blob was written as (digest -> descriptor)
    and returns the manifest; for a manifest copied as it is, it returns the source's exact bytes."""

    source: Descriptor
    render: Callable[[Mapping[Digest, Descriptor]], Manifest]
    #: The digest signatures are keyed by (a schema1 manifest's payload digest), when it does not change.
    signing_digest: Digest | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """Everything a copy writes, decided before the first byte moves."""

    root: Descriptor
    blobs: tuple[BlobStep, ...]
    manifests: tuple[ManifestStep, ...]  # children first; the root is the last
    name: str | None
    carried: Mapping[Digest, Sequence[Signature]]
    sign: Callable[[Digest], Signature] | None = None


def _plats(plats: Sequence[Platform]) -> str:
    return ", ".join(str(p) for p in plats)


def select_root(src: Source, selection: Selection) -> tuple[Descriptor, Manifest | None]:
    """The descriptor to copy, and a new index to write when a platform subset of several is asked for.

    Single images are copied as they are (a ``platforms`` that does not match them is an error). An index
    is copied whole with ``all``; with ``platforms``, one match gives that image alone and several a new
    index of the matches; by default the image for the host platform is chosen, as skopeo does. Raises
    NotFound when nothing matches.
    """
    root = src.root
    manifest = read_manifest(src, root)
    if not manifest.is_index:
        if selection.platforms and not manifest.is_schema1 and "config" in manifest.doc:
            cfg = manifest.config
            plat = ImageConfig.parse(read_blob_bytes(src, cfg), cfg.media_type).platform
            if not any(plat.matches(p) for p in selection.platforms):
                raise NotFound(f"{src.ref} is a single {plat} image, not {_plats(selection.platforms)}")
        return root, None
    if selection.all:
        return root, None
    children = manifest.manifests
    wanted = selection.platforms or (host_platform(),)
    chosen = [c for c in children if c.platform is not None and any(c.platform.matches(p) for p in wanted)]
    if not selection.platforms:
        chosen = chosen[:1]
    if not chosen:
        have = ", ".join(sorted({str(c.platform) for c in children if c.platform})) or "none"
        raise NotFound(f"{src.ref}: no image for {_plats(wanted)} in the index (platforms: {have}); "
                       "use --all or --platform")
    if len(chosen) == 1:
        return chosen[0], None
    doc = dict(manifest.doc)
    keep = {str(c.digest) for c in chosen}
    doc["manifests"] = [d for d in manifest.doc["manifests"] if d.get("digest") in keep]
    subset = Manifest.parse(canonical_json(doc), manifest.media_type)
    return subset.descriptor, subset


def cannot_modify_reason(src: Source, new_index: Manifest | None, signing: Signing) -> str | None:
    """Why the copy may not produce a document the source does not have, or None when it may.

    A new document (today: a platform subset of a signed index) has a digest no source signature covers;
    carrying the signatures would be a lie and dropping them silently a surprise, so it needs
    ``Signing(remove=True)``.
    """
    if new_index is None or signing.remove:
        return None
    if src.signatures(src.root.digest):
        return (f"{src.ref} is signed; a subset of its platforms is a new index the signatures do not cover: "
                "pass --remove-signatures to copy it unsigned")
    return None


def _sign_identity(dst_name: str | None, signing: Signing) -> str:
    """The identity a new signature vouches for: ``signing.identity``, else the destination's ref name when
    it is a full docker reference. Raises InvalidReference."""
    from .signature.dockerref import parse_normalized

    ident = signing.identity
    if ident is None and dst_name and "/" in dst_name:
        ident = dst_name
    if ident is None:
        raise InvalidReference("signing while copying needs the identity to sign for (--sign-identity "
                               "registry.example.com/ns/app:1.0)")
    parse_normalized(ident)
    return ident


def _kind(sig: Signature) -> str:
    from .signature.model import SimpleSigningSignature

    return "simple-signing" if isinstance(sig, SimpleSigningSignature) else "sigstore"


def _fixed(manifest: Manifest) -> Callable[[Mapping[Digest, Descriptor]], Manifest]:
    return lambda _written: manifest


def _opener(src: Source, desc: Descriptor) -> BlobOpener:
    return lambda: src.open_blob(desc)


def plan_copy(src: Source, caps: Capabilities, *, select: Selection = Selection(), signing: Signing = Signing(),
              name: str | None = None, dest: str = "the destination") -> Plan:
    """Plan copying ``src`` into a destination with ``caps``, named ``name``; raises UnsupportedFormat with
    the reason when the destination cannot hold the result or the copy would change what is signed,
    NotFound when no image matches the selection, InvalidReference for a signing identity."""
    root, new_index = select_root(src, select)
    reason = cannot_modify_reason(src, new_index, signing)
    if reason is not None:
        raise UnsupportedFormat(reason)
    sign = None
    if signing.sign_by is not None:
        identity = _sign_identity(name, signing)  # refused before anything is copied
        key = signing.sign_by

        def sign(digest: Digest) -> Signature:
            from .signature.sigstore import sign_sigstore

            return sign_sigstore(key, digest, identity)

    roots = new_index.manifests if new_index is not None else [root]
    manifests: list[tuple[Descriptor, Manifest]] = []
    blobs: dict[Digest, Descriptor] = {}
    for node in walk(src, roots, follow_subject=False):
        if node.manifest is not None:
            if node.first:
                manifests.append((node.descriptor, node.manifest))
        elif node.descriptor.urls and node.size is None:
            continue  # a foreign layer that lives at its URLs, as skopeo leaves it
        elif node.first:
            blobs.setdefault(node.descriptor.digest, node.descriptor)
        if node.role == LAYER and node.first:
            kind = mt.layer_compression(node.descriptor.media_type)
            if kind is not None and kind not in caps.layer_compressions:
                raise UnsupportedFormat(f"{dest} cannot store {kind} layers ({node.descriptor.digest}); "
                                        "layer conversion is not supported yet")
    if new_index is not None:
        manifests.insert(0, (new_index.descriptor, new_index))  # the walk order: parents first
    documents = [m for _, m in manifests]
    for m in documents:
        if m.media_type not in caps.manifest_types:
            raise UnsupportedFormat(f"{dest} cannot hold a {m.media_type} document" if caps.manifest_types
                                    else f"{dest} cannot hold images (it takes signatures only)")
        if m.is_index and not caps.indexes:
            raise UnsupportedFormat(f"{dest} cannot hold an index; pick one image with --platform")
    carried: dict[Digest, Sequence[Signature]] = {}
    if not signing.remove:
        for m in documents:
            sigs = src.signatures(m.digest)
            if sigs:
                carried[m.digest] = sigs
        kinds = {_kind(s) for sigs in carried.values() for s in sigs}
        if kinds - caps.signatures:
            raise UnsupportedFormat(f"{dest} cannot store {', '.join(sorted(kinds - caps.signatures))} "
                                    "signatures; pass --remove-signatures to copy the image without them")
    steps = [BlobStep(source=d, open=_opener(src, d), expected=d, media_type=d.media_type)
             for d in sorted(blobs.values(), key=lambda d: -d.size)]
    # Children before parents (the walk yields parents first), so a manifest is never stored before what
    # it points at; a new index goes last, after the images it lists. Each keeps the digest algorithm the
    # source addressed it by.
    msteps = tuple(ManifestStep(source=d, render=_fixed(m), signing_digest=m.digest) for d, m in reversed(manifests))
    return Plan(root=root, blobs=tuple(steps), manifests=msteps, name=name, carried=carried, sign=sign)
