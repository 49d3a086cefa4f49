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

Conversion (:class:`Conversion`: ``--format``, ``--dest-compress-format``, ``--dest-decompress``) is more
kinds of step, not branches in the writer: a layer whose compression changes is a BlobStep whose opener is
a :mod:`ocilayout.pipeline` transcoder (``expected=None``: the destination hashes what it writes), and a
manifest that changes is a ManifestStep whose ``render`` builds the new document from what its children
were written as (:mod:`ocilayout.convert`). Compression is detected from each layer's first bytes, never
trusted from its media type; the target comes from the options and the destination's
``layer_compressions`` (a destination that holds only "none" gets decompressed layers without a flag).
Config bytes are never changed, so a format round trip keeps the config digest.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from . import mediatypes as mt
from .descriptor import Descriptor
from .digest import Digest
from .errors import InvalidArgument, InvalidReference, NotFound, UnsupportedFormat
from .graph import walk
from .manifest import ImageConfig, Manifest, canonical_json, read_manifest
from .mediatypes import ARTIFACT_MANIFEST
from .selection import Selection, host_platform, select_root
from .transports.base import BlobOpener, Capabilities, Source, read_blob_bytes

Format = Literal["oci", "v2s2"]

if TYPE_CHECKING:
    from .signature.model import Signature

__all__ = ["BlobStep", "Conversion", "Format", "ManifestStep", "Plan", "Selection", "Signing", "cannot_modify_reason",
           "host_platform", "plan_copy", "select_root"]

@dataclass(frozen=True, slots=True, kw_only=True)
class Conversion:
    """What a copy converts: the manifest ``format`` ("oci", "v2s2"; None keeps each document's), the layer
    compression (``compress``: "gzip", "zstd", "none"; ``decompress`` is "none"; None keeps each layer's
    unless the destination cannot hold it) at ``level`` (used whenever a layer is compressed), and
    ``preserve_digests`` (refuse any change of a digest). ``threads`` codec workers per layer (0: one per
    CPU, 2 to 4, bounding memory; the output bytes do not depend on it).
    Raises InvalidArgument for contradictory or out-of-range values."""

    format: Format | None = None
    compress: str | None = None
    level: int | None = None
    decompress: bool = False
    preserve_digests: bool = False
    threads: int = 0

    def __post_init__(self) -> None:
        if self.format not in (None, "oci", "v2s2"):
            raise InvalidArgument(f"unknown manifest format {self.format!r} (oci, v2s2)")
        if self.compress not in (None, "gzip", "zstd", "none"):
            raise InvalidArgument(f"unknown compression {self.compress!r} (gzip, zstd, none)")
        if self.decompress and self.compress not in (None, "none"):
            raise InvalidArgument("--dest-decompress and --dest-compress-format exclude each other")
        if self.level is not None:
            from .compression import check_level  # (codec modules only when a level is given)

            check_level(self.compress or "gzip", self.level)

    @property
    def layers(self) -> str | None:
        """The compression asked for every layer, or None (keep)."""
        return "none" if self.decompress else self.compress

    @property
    def identity(self) -> bool:
        """True when nothing is asked for: layers and documents change only if the destination needs it."""
        return self.format is None and self.layers is None


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
    #: Subject digest -> the referrers (OCI 1.1 ``subject`` manifests) carried with it; their trees are in
    #: ``blobs`` and ``manifests`` (before the image's own, so the root stays last).
    referrers: Mapping[Digest, tuple[Descriptor, ...]] = field(default_factory=dict)


def cannot_modify_reason(src: Source, new_index: Manifest | None, signing: Signing,
                         changed: Mapping[Digest, str] | None = None) -> str | None:
    """Why the copy may not produce a document the source does not have, or None when it may.

    A new document (a platform subset of a signed index, or a signed manifest that conversion rewrites:
    ``changed`` maps each rewritten source manifest to why) has a digest no source signature covers;
    carrying the signatures would be a lie and dropping them silently a surprise, so it needs
    ``Signing(remove=True)``.
    """
    if signing.remove:
        return None
    if new_index is not None and src.signatures(src.root.digest):
        return (f"{src.ref} is signed; a subset of its platforms is a new index the signatures do not cover: "
                "pass --remove-signatures to copy it unsigned")
    for digest, why in (changed or {}).items():
        if src.signatures(digest):
            return (f"{src.ref} is signed, and converting it changes {digest} ({why}), which the signatures "
                    "do not cover: pass --remove-signatures to copy it unsigned")
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
              name: str | None = None, dest: str = "the destination", convert: Conversion = Conversion(),
              referrers: bool = True) -> Plan:
    """Plan copying ``src`` into a destination with ``caps``, named ``name``, converted as ``convert``, with
    the referrers of every manifest whose digest is kept when ``referrers`` and the destination keeps them;
    raises UnsupportedFormat with the reason when the destination cannot hold the result, the conversion
    is impossible or would change a digest under ``preserve_digests``, or the copy would change what is
    signed; NotFound when no image matches the selection, InvalidReference for a signing identity."""
    if select.index_only and read_manifest(src, src.root).is_index:
        raise UnsupportedFormat(f"--multi-arch index-only would write an index without the images it lists, "
                                f"which {dest} cannot hold (an OCI layout must contain every manifest it "
                                "references): use --multi-arch all, or system / --platform for one image")
    root, new_index = select_root(src, select)
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
    if new_index is not None:
        manifests.insert(0, (new_index.descriptor, new_index))  # the walk order: parents first
    conv = _Converter(src, caps, convert, dest, blobs)
    for desc, m in reversed(manifests):  # children first: an index changes when a child does
        conv.add(desc, m, new=m is new_index)
    if convert.preserve_digests:
        reason = conv.digest_change()
        if reason is not None:
            raise UnsupportedFormat(f"--preserve-digests: {reason}")
    reason = cannot_modify_reason(src, new_index, signing, conv.changed)
    if reason is not None:
        raise UnsupportedFormat(reason)
    for _d, m in manifests:
        target = conv.media_types[m.digest]
        if m.is_index and not caps.indexes:  # the more useful sentence first
            raise UnsupportedFormat(f"{dest} cannot hold an index; pick one image with --platform")
        if target not in caps.manifest_types:
            raise UnsupportedFormat(f"{dest} cannot hold a {target} document" if caps.manifest_types
                                    else f"{dest} cannot hold images (it takes signatures only)")
    carried: dict[Digest, Sequence[Signature]] = {}
    if not signing.remove:
        for _d, m in manifests:
            sigs = src.signatures(m.digest) if m.digest not in conv.changed else ()
            if sigs:
                carried[m.digest] = sigs
        kinds = {_kind(s) for sigs in carried.values() for s in sigs}
        if kinds - caps.signatures:
            raise UnsupportedFormat(f"{dest} cannot store {', '.join(sorted(kinds - caps.signatures))} "
                                    "signatures; pass --remove-signatures to copy the image without them")
    steps = [conv.blob_step(d) for d in sorted(blobs.values(), key=lambda d: -d.size)]
    # Children before parents (the walk yields parents first), so a manifest is never stored before what
    # it points at; a new index goes last, after the images it lists. Each keeps the digest algorithm the
    # source addressed it by.
    msteps = tuple(conv.manifest_step(d, m) for d, m in reversed(manifests))
    refs: dict[Digest, tuple[Descriptor, ...]] = {}
    if referrers and caps.referrers:
        kept = [m.digest for _d, m in manifests if m.digest not in conv.changed]
        refs, ref_manifests, ref_blobs = _referrer_trees(src, kept, blobs, conv)
        steps += [BlobStep(source=d, open=_opener(src, d), expected=d, media_type=d.media_type)
                  for d in sorted(ref_blobs.values(), key=lambda d: -d.size)]
        msteps = tuple(ManifestStep(source=d, render=_fixed(m), signing_digest=m.digest)
                       for d, m in reversed(ref_manifests)) + msteps
        if not signing.remove:
            for _d, m in ref_manifests:
                sigs = src.signatures(m.digest)
                if sigs and {_kind(s) for s in sigs} <= caps.signatures:
                    carried[m.digest] = sigs
    return Plan(root=root, blobs=tuple(steps), manifests=msteps, name=name, carried=carried, sign=sign,
                referrers=refs)


def _referrer_trees(src: Source, subjects: list[Digest], blobs: Mapping[Digest, Descriptor], conv: _Converter
                    ) -> tuple[dict[Digest, tuple[Descriptor, ...]], list[tuple[Descriptor, Manifest]],
                               dict[Digest, Descriptor]]:
    """The referrers of ``subjects`` (and of those referrers, transitively), the manifests of their trees
    (parents first) and the blobs they need beyond ``blobs``. A referrer that shares a layer the copy
    converts is left out (it would point at bytes the copy does not write), and so is one that is not stored
    or is the withdrawn OCI 1.1-rc artifact manifest."""
    refs: dict[Digest, tuple[Descriptor, ...]] = {}
    manifests: list[tuple[Descriptor, Manifest]] = []
    extra: dict[Digest, Descriptor] = {}
    seen: set[Digest] = set(subjects)
    queue = list(subjects)
    while queue:
        subject = queue.pop(0)
        kept: list[Descriptor] = []
        for ref in src.referrers(subject):
            if ref.digest in seen:
                kept.append(ref)
                continue
            if ref.media_type == ARTIFACT_MANIFEST:
                continue  # the withdrawn artifact manifest: nothing to carry
            tree_m: list[tuple[Descriptor, Manifest]] = []
            tree_b: dict[Digest, Descriptor] = {}
            try:
                for node in walk(src, [ref], follow_subject=False):
                    if not node.first:
                        continue
                    if node.manifest is not None:
                        tree_m.append((node.descriptor, node.manifest))
                    elif not (node.descriptor.urls and node.size is None):
                        tree_b.setdefault(node.descriptor.digest, node.descriptor)
            except NotFound:
                continue  # listed but not stored (a registry manifest is not a blob: no stat_blob here)
            if any(d in conv.layers and conv.layers[d].transformed for d in tree_b):
                continue
            kept.append(ref)
            for d, m in tree_m:
                if m.digest not in seen:
                    seen.add(m.digest)
                    manifests.append((d, m))
                    queue.append(m.digest)
            extra.update((d, b) for d, b in tree_b.items() if d not in blobs)
        if kept:
            refs[subject] = tuple(kept)
    return refs, manifests, extra


@dataclass(slots=True)
class _Layer:
    """What happens to one layer blob: its detected compression and the one it is written as."""

    actual: str
    target: str
    foreign: bool
    diff_id: Digest | None = None

    @property
    def transformed(self) -> bool:
        return self.actual != self.target


class _Converter:
    """Decides, document by document (children first), what each layer and manifest becomes."""

    def __init__(self, src: Source, caps: Capabilities, conv: Conversion, dest: str,
                 blobs: Mapping[Digest, Descriptor]) -> None:
        self.src, self.caps, self.conv, self.dest, self.blobs = src, caps, conv, dest, blobs
        self.layers: dict[Digest, _Layer] = {}
        #: Source manifest digest -> why it is rewritten (new documents included).
        self.changed: dict[Digest, str] = {}
        #: Source manifest digest -> the media type it is written as.
        self.media_types: dict[Digest, str] = {}
        self.formats: dict[Digest, Format | None] = {}
        self._nothing_to_do = conv.identity and caps.layer_compressions >= {"gzip", "zstd", "none"}

    # -- planning ------------------------------------------------------------------------------------------
    def _target_format(self, m: Manifest) -> Format | None:
        from .convert import format_of

        current = format_of(m.media_type)
        if m.is_schema1:
            if self.conv.format is not None:
                raise UnsupportedFormat(f"{m.digest} is a Docker schema1 manifest; converting schema1 to "
                                        f"{self.conv.format} is not supported")
            return None
        assert current is not None
        if self.conv.format is not None:
            return self.conv.format
        if self._type_of(m, current) not in self.caps.manifest_types:
            other: Format = "v2s2" if current == "oci" else "oci"
            if self._type_of(m, other) in self.caps.manifest_types:
                return other  # the destination holds only the other format (docker-archive: v2s2)
        return current

    @staticmethod
    def _type_of(m: Manifest, fmt: Format) -> str:
        if m.is_index:
            return mt.OCI_INDEX if fmt == "oci" else mt.DOCKER_MANIFEST_LIST
        return mt.OCI_MANIFEST if fmt == "oci" else mt.DOCKER_MANIFEST

    def add(self, desc: Descriptor, m: Manifest, *, new: bool) -> None:
        """Plan the document ``m`` (its children already planned)."""
        from .convert import format_of, v2s2_refusal

        target = self._target_format(m)
        self.formats[m.digest] = target
        self.media_types[m.digest] = self._type_of(m, target) if target is not None else m.media_type
        current = format_of(m.media_type)
        reasons = []
        if new:
            reasons.append("a new index of the platforms chosen")
        if target is not None and target != current:
            if target == "v2s2":
                cfg_type = None if m.is_index or "config" not in m.doc else m.config.media_type
                refusal = v2s2_refusal(m.doc, cfg_type)
                if refusal is not None:
                    raise UnsupportedFormat(f"cannot convert {m.digest} to Docker v2s2: {refusal}")
            reasons.append(f"{m.media_type} -> {self.media_types[m.digest]}")
        if m.is_index:
            kids = [str(c.digest) for c in m.manifests if c.digest in self.changed]
            if kids:
                reasons.append(f"{len(kids)} of its images change")
        elif not m.is_schema1:
            reasons.extend(self._plan_layers(m, target))
        if reasons:
            self.changed[m.digest] = "; ".join(reasons)

    def _detect(self, d: Descriptor) -> str:
        from .compression import MAGIC_LEN, detect

        with self.src.open_blob(d) as f:
            return detect(f.read(MAGIC_LEN))

    def _plan_layers(self, m: Manifest, target: Format | None) -> list[str]:
        from .compression import READABLE
        from .convert import format_of, layer_info, layer_media_type

        if self._nothing_to_do and target == format_of(m.media_type):
            return []  # no flag, a destination that holds every compression, the format kept: no reads
        reasons: list[str] = []
        refusal: str | None = None
        diff_ids: list[str] | None = None
        for i, d in enumerate(m.layers):
            info = layer_info(d.media_type)
            if info is None or d.digest not in self.blobs:
                continue  # not a layer we convert (an artifact blob, encrypted), or foreign at its URLs
            foreign, _declared = info
            plan = self.layers.get(d.digest)
            if plan is None:
                actual = self._detect(d)
                want = self.conv.layers or actual
                if want not in self.caps.layer_compressions:
                    if self.conv.layers is not None:
                        raise UnsupportedFormat(f"{self.dest} cannot store {want} layers")
                    want = "none" if "none" in self.caps.layer_compressions else "gzip"
                if want != actual and actual not in READABLE:
                    raise UnsupportedFormat(f"layer {d.digest} is {actual}-compressed, which cannot be converted "
                                            f"(to {want}): only gzip, zstd and uncompressed layers can")
                plan = self.layers[d.digest] = _Layer(actual=actual, target=want, foreign=foreign)
            if target is not None and layer_media_type(target, plan.target, plan.foreign) is None:
                refusal = refusal or (
                    f"layer {d.digest} would be zstd in a Docker v2s2 manifest, which Docker cannot read: use "
                    "--dest-compress-format gzip, or --format oci" if target == "v2s2" and plan.target == "zstd"
                    else f"{target} has no media type for {plan.target} layers ({d.digest})")
            if plan.transformed:
                reasons.append(f"layer {d.digest} {plan.actual} -> {plan.target}")
                if plan.diff_id is None:
                    if diff_ids is None:
                        diff_ids = ImageConfig.parse(read_blob_bytes(self.src, m.config)).diff_ids
                    if i < len(diff_ids):
                        plan.diff_id = Digest.parse(diff_ids[i])
        if refusal is not None and (reasons or target != format_of(m.media_type)):
            raise UnsupportedFormat(refusal)  # (a v2s2 manifest with zstd layers copied as it is is not refused)
        return reasons[:1] + ([f"and {len(reasons) - 1} more layers"] if len(reasons) > 1 else [])

    def digest_change(self) -> str | None:
        """Why some digest would change, or None when every digest is kept."""
        if not self.caps.verbatim:
            return f"{self.dest} does not store manifests as their exact bytes"
        for digest, why in self.changed.items():
            return f"{digest} would change ({why})"
        return None

    # -- steps ---------------------------------------------------------------------------------------------
    def blob_step(self, d: Descriptor) -> BlobStep:
        plan = self.layers.get(d.digest)
        if plan is None or not plan.transformed:
            return BlobStep(source=d, open=_opener(self.src, d), expected=d, media_type=d.media_type)
        from .convert import layer_media_type
        from .pipeline import Transcode, transcoder

        job = Transcode(digest=d.digest, size=d.size, source_kind=plan.actual, target_kind=plan.target,
                        level=self.conv.level, diff_id=plan.diff_id,
                        threads=self.conv.threads or max(2, min(4, os.cpu_count() or 2)))
        fmt: Format = "v2s2" if d.media_type.startswith("application/vnd.docker.") else "oci"
        media_type = layer_media_type(fmt, plan.target, plan.foreign) or d.media_type
        return BlobStep(source=d, open=transcoder(_opener(self.src, d), job), expected=None, media_type=media_type)

    def manifest_step(self, d: Descriptor, m: Manifest) -> ManifestStep:
        if m.digest not in self.changed:
            return ManifestStep(source=d, render=_fixed(m), signing_digest=m.digest)
        return ManifestStep(source=d, render=self._render(m))

    def _render(self, m: Manifest) -> Callable[[Mapping[Digest, Descriptor]], Manifest]:
        from .convert import LayerOut, convert_index, convert_manifest, format_of, layer_media_type

        target = self.formats[m.digest] or format_of(m.media_type)
        assert target is not None

        def render(written: Mapping[Digest, Descriptor]) -> Manifest:
            if m.is_index:
                kids = {str(c.digest): written[c.digest] for c in m.manifests if c.digest in written}
                doc = convert_index(m.doc, target, kids)
            else:
                outs: list[LayerOut | None] = []
                for layer in m.layers:
                    plan = self.layers.get(layer.digest)
                    if plan is None:
                        outs.append(None)
                        continue
                    w = written.get(layer.digest, layer)
                    media_type = layer_media_type(target, plan.target, plan.foreign)
                    assert media_type is not None
                    outs.append(LayerOut(media_type, str(w.digest), w.size))
                doc = convert_manifest(m.doc, target, outs)
            return Manifest.parse(canonical_json(doc))

        return render
