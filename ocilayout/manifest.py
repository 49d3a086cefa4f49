"""Manifests, indexes and image configs that keep their raw bytes.

Existing content is never re-serialized: :attr:`Manifest.raw` is what travels. New documents are made with
:func:`canonical_json`, which is deterministic.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import mediatypes as mt
from .descriptor import Descriptor, Platform
from .digest import Digest
from .errors import InvalidManifest, UnsupportedFormat
from .schema import check_image_config, check_manifest

if TYPE_CHECKING:
    from .graph import ContentReader

__all__ = [
    "MAX_MANIFEST_SIZE",
    "ImageConfig",
    "Manifest",
    "canonical_json",
    "guess_media_type",
    "load_json",
    "manifest_digest",
    "read_manifest",
]

#: Manifests, indexes, configs and index.json larger than this are refused (as containers/image does).
MAX_MANIFEST_SIZE = 4 * 1024 * 1024


def _reject_constant(name: str) -> Any:
    raise InvalidManifest(f"invalid JSON: {name} is not allowed")


def load_json(raw: bytes, what: str = "manifest", limit: int = MAX_MANIFEST_SIZE) -> Any:
    """Parse JSON bytes strictly (UTF-8, no NaN/Infinity, size-limited); raises InvalidManifest."""
    if len(raw) > limit:
        raise InvalidManifest(f"{what} is {len(raw)} bytes, over the {limit}-byte limit")
    try:
        text = raw.decode("utf-8")
        return json.loads(text, parse_constant=_reject_constant)
    except UnicodeDecodeError as err:
        raise InvalidManifest(f"{what} is not UTF-8 text") from err
    except json.JSONDecodeError as err:
        raise InvalidManifest(f"{what} is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}") from err
    except ValueError as err:  # an integer over Python's 4,300-digit conversion limit
        raise InvalidManifest(f"{what} JSON has a number too large to read: {str(err).split(';')[0]}") from err
    except RecursionError as err:
        raise InvalidManifest(f"{what} JSON is nested too deeply") from err


def canonical_json(obj: Any) -> bytes:
    """Deterministic compact JSON for documents we create (key order as given, no spaces)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def guess_media_type(doc: Any, hint: str | None = None) -> str:
    """The media type of a parsed manifest-like document.

    The document's own ``mediaType`` wins; otherwise ``hint`` (the parent descriptor's type) when it is a
    manifest or index type; otherwise the shape (``manifests`` -> OCI index, ``config`` + ``layers`` -> OCI
    manifest, ``schemaVersion: 1`` -> Docker v2s1). umoci and skopeo write manifests without ``mediaType``.
    """
    if not isinstance(doc, dict):
        raise InvalidManifest("manifest is not a JSON object")
    own = doc.get("mediaType")
    if isinstance(own, str) and own:
        return own
    if doc.get("schemaVersion") == 1:
        return mt.DOCKER_V2S1_SIGNED if "signatures" in doc else mt.DOCKER_V2S1
    fields = format_fields(doc)  # a field set to null is absent, as for Go
    # A hint is taken when it is a manifest or index type that does not contradict the shape.
    if hint and (mt.is_index(hint) or mt.is_manifest(hint)) and ("manifests" in fields) == mt.is_index(hint):
        return hint
    if "manifests" in fields:
        return mt.OCI_INDEX
    if "config" in fields or "layers" in fields:
        return mt.OCI_MANIFEST
    raise InvalidManifest("cannot tell what kind of manifest this is (no mediaType, config or manifests)")


#: The "essential" fields that tell manifest formats apart (containers/image manifest.AllowedManifestFields).
_FORMAT_FIELDS = ("config", "fsLayers", "history", "layers", "manifests")
_ALLOWED_FIELDS: dict[str, frozenset[str]] = {
    **{t: frozenset({"config", "layers"}) for t in mt.MANIFEST_TYPES},
    **{t: frozenset({"manifests"}) for t in mt.INDEX_TYPES},
    **{t: frozenset({"fsLayers", "history"}) for t in (mt.DOCKER_V2S1, mt.DOCKER_V2S1_SIGNED)},
}


def format_fields(doc: Mapping[str, Any]) -> set[str]:
    """The format fields (``config``, ``fsLayers``, ``history``, ``layers``, ``manifests``) a document sets to
    a non-null value. Keys match case-insensitively, as Go's encoding/json matches struct fields."""
    found: dict[str, Any] = {}
    lowered = {f.lower(): f for f in _FORMAT_FIELDS}
    for key, value in doc.items():
        name = lowered.get(key.lower())
        if name is not None:
            found[name] = value  # the last spelling wins, as in Go
    return {name for name, value in found.items() if value is not None}


def check_unambiguous(doc: Mapping[str, Any], *claims: str | None) -> None:
    """Refuse a document whose format fields contradict any media type claimed for it.

    ``claims`` are the types it is said to be: the descriptor's, the document's own ``mediaType``, the one it is
    read as. Unknown types claim nothing. A manifest may hold only ``config``/``layers``, an index only
    ``manifests``, schema1 only ``fsLayers``/``history`` (containers/image's validateUnambiguousManifestFormat,
    the CVE-2021-41190 class). Raises InvalidManifest.
    """
    fields = format_fields(doc)
    for claim in dict.fromkeys(c for c in claims if c in _ALLOWED_FIELDS):
        unexpected = sorted(fields - _ALLOWED_FIELDS[claim])
        if unexpected:
            raise InvalidManifest(f"rejecting ambiguous manifest: unexpected fields {unexpected} in a document "
                                  f"that is supposedly {claim}")


def _schema1_payload(raw: bytes, doc: dict[str, Any]) -> bytes:
    """The JWS payload of a signed schema1 manifest (libtrust's ParsePrettySignature)."""
    import base64  # (schema1 only: not loaded by every command that parses a manifest)

    sigs = doc.get("signatures")
    if not isinstance(sigs, list) or not sigs:
        raise InvalidManifest("schema1 manifest has invalid signatures (must be a non-empty array)")
    payload: bytes | None = None
    for sig in sigs:
        try:
            protected = sig["protected"]
            header = json.loads(base64.urlsafe_b64decode(protected + "=" * (-len(protected) % 4)))
            length = int(header["formatLength"])
            tail_b64 = header["formatTail"]
            tail = base64.urlsafe_b64decode(tail_b64 + "=" * (-len(tail_b64) % 4))
        except (KeyError, TypeError, ValueError) as err:
            raise InvalidManifest("schema1 manifest has a malformed JWS signature header") from err
        if length < 0 or length > len(raw):
            raise InvalidManifest("schema1 manifest JWS formatLength is out of range")
        candidate = raw[:length] + tail
        if payload is not None and candidate != payload:
            raise InvalidManifest("schema1 manifest signatures disagree about the payload")
        payload = candidate
    assert payload is not None
    return payload


def manifest_digest(raw: bytes, algorithm: str = "sha256") -> Digest:
    """The digest skopeo's ``manifest-digest`` prints: sha256 of the bytes (even non-JSON ones), except for
    signed schema1 manifests, whose digest is over the JWS payload with the signatures removed.
    Raises InvalidManifest for a schema1 manifest whose signatures are malformed."""
    try:
        doc = load_json(raw)
    except InvalidManifest:
        doc = None  # skopeo hashes bytes it cannot parse as they are
    if isinstance(doc, dict) and doc.get("schemaVersion") == 1 and "signatures" in doc:
        return Digest.of(_schema1_payload(raw, doc), algorithm)
    return Digest.of(raw, algorithm)


@dataclass(frozen=True, slots=True)
class Manifest:
    """A manifest or index: the exact bytes plus a parsed view.

    ``media_type`` is the document's own, else the parent's hint, else its shape (see
    :func:`guess_media_type`).
    """

    raw: bytes
    media_type: str
    doc: Mapping[str, Any] = field(repr=False, compare=False)
    digest: Digest = field(compare=False)
    _parsed: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def parse(cls, raw: bytes, media_type_hint: str | None = None) -> Manifest:
        """Parse manifest bytes; raises InvalidManifest (garbage, oversized, wrong shape)."""
        doc = load_json(raw)
        if not isinstance(doc, dict):
            raise InvalidManifest("manifest is not a JSON object")
        check_manifest(doc)
        media_type = guess_media_type(doc, media_type_hint)
        check_unambiguous(doc, media_type_hint, doc.get("mediaType"), media_type)
        digest = manifest_digest(raw) if media_type in mt.SCHEMA1_TYPES else Digest.of(raw)
        m = cls(raw=raw, media_type=media_type, doc=doc, digest=digest)
        m._validate()
        return m

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Manifest:
        """A new manifest from a dict we created (serialized with :func:`canonical_json`)."""
        return cls.parse(canonical_json(doc))

    def _validate(self) -> None:
        sv = self.doc.get("schemaVersion")
        if self.is_schema1:
            if sv != 1:
                raise InvalidManifest("schema1 manifest must have schemaVersion 1")
            return
        if sv != 2:
            raise UnsupportedFormat(f"unsupported manifest schemaVersion {sv!r}")
        if self.is_index:
            # Go writes an empty list as null (ggcr's Docker 25 saves do): read it as [].
            if not isinstance(self.doc.get("manifests", []), list | None):
                raise InvalidManifest("index manifests must be an array")
            self.manifests  # noqa: B018 - parse children eagerly to validate them
        elif mt.is_manifest(self.media_type):
            if self.media_type in mt.MANIFEST_TYPES or "config" in self.doc:
                self.config  # noqa: B018
            layers = self.doc.get("layers")
            if layers is not None and not isinstance(layers, list):
                raise InvalidManifest("manifest layers must be an array")
            self.layers  # noqa: B018
        else:
            raise UnsupportedFormat(f"unsupported manifest media type {self.media_type!r}")

    @property
    def is_index(self) -> bool:
        return mt.is_index(self.media_type)

    @property
    def is_schema1(self) -> bool:
        return self.media_type in mt.SCHEMA1_TYPES

    @property
    def descriptor(self) -> Descriptor:
        """A descriptor for these bytes (no annotations or platform)."""
        extra = {}
        if isinstance(self.doc.get("artifactType"), str):
            extra["artifact_type"] = self.doc["artifactType"]
        return Descriptor(media_type=self.media_type, digest=Digest.of(self.raw), size=len(self.raw), **extra)

    @property
    def config(self) -> Descriptor:
        """The config descriptor of an image manifest; raises InvalidManifest when there is none."""
        if "config" not in self._parsed:
            cfg = self.doc.get("config")
            if cfg is None:
                raise InvalidManifest("manifest has no config descriptor")
            self._parsed["config"] = Descriptor.from_dict(cfg, default_media_type=mt.OCI_CONFIG)
        config: Descriptor = self._parsed["config"]
        return config

    @property
    def layers(self) -> list[Descriptor]:
        """Layer descriptors of an image manifest (empty for indexes and schema1)."""
        if self.is_index or self.is_schema1:
            return []
        if "layers" not in self._parsed:
            self._parsed["layers"] = [Descriptor.from_dict(d, default_media_type=mt.OCI_LAYER_GZIP)
                                      for d in self.doc.get("layers") or []]
        return list(self._parsed["layers"])

    @property
    def manifests(self) -> list[Descriptor]:
        """Child descriptors of an index (empty for image manifests)."""
        if not self.is_index:
            return []
        if "manifests" not in self._parsed:
            self._parsed["manifests"] = [Descriptor.from_dict(d) for d in self.doc.get("manifests") or []]
        return list(self._parsed["manifests"])

    @property
    def subject(self) -> Descriptor | None:
        if "subject" not in self._parsed:
            s = self.doc.get("subject")
            self._parsed["subject"] = Descriptor.from_dict(s) if s is not None else None
        subject: Descriptor | None = self._parsed["subject"]
        return subject

    @property
    def annotations(self) -> Mapping[str, str]:
        a = self.doc.get("annotations")
        return a if isinstance(a, dict) else {}

    @property
    def schema1_layers(self) -> list[Digest]:
        """Layer blob digests of a schema1 manifest, base layer first."""
        if not self.is_schema1:
            return []
        fs = self.doc.get("fsLayers") or []
        return [Digest.parse(x["blobSum"]) for x in reversed(fs)]

    def children(self) -> list[Descriptor]:
        """Every descriptor this document points at: manifests, config, layers, subject."""
        out: list[Descriptor] = []
        if self.is_index:
            out.extend(self.manifests)
        elif not self.is_schema1:
            if "config" in self.doc:
                out.append(self.config)
            out.extend(self.layers)
        subj = self.subject
        if subj is not None:
            out.append(subj)
        return out


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """An image configuration blob: raw bytes plus the parsed JSON."""

    raw: bytes
    doc: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def parse(cls, raw: bytes, media_type: str | None = None) -> ImageConfig:
        """Parse an image config of ``media_type`` (OCI or Docker); raises InvalidManifest for garbage and for
        fields of the wrong JSON type (see :mod:`ocilayout.schema`), UnsupportedFormat for a media type that
        is not an image config (an artifact's config is never read as one). Without ``media_type`` the
        config is checked by the more lenient Docker rules."""
        if media_type is not None and media_type not in mt.CONFIG_TYPES:
            raise UnsupportedFormat(f"{media_type!r} is not an image config media type (an artifact?)")
        doc = load_json(raw, "image config")
        if not isinstance(doc, dict):
            raise InvalidManifest("image config is not a JSON object")
        try:
            check_image_config(doc, docker=media_type != mt.OCI_CONFIG)
        except InvalidManifest as err:
            raise InvalidManifest(f"image config: {err}") from err
        return cls(raw=raw, doc=doc)

    @property
    def platform(self) -> Platform:
        d = self.doc
        return Platform(
            os=d.get("os") or "",
            architecture=d.get("architecture") or "",
            variant=d.get("variant") or None,
            os_version=d.get("os.version") or None,
        )

    @property
    def diff_ids(self) -> list[str]:
        rootfs = self.doc.get("rootfs") or {}
        ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
        return list(ids) if isinstance(ids, list) else []

    @property
    def config(self) -> Mapping[str, Any]:
        c = self.doc.get("config")
        return c if isinstance(c, dict) else {}

    @property
    def labels(self) -> Mapping[str, str]:
        labels = self.config.get("Labels")
        return labels if isinstance(labels, dict) else {}

    @property
    def env(self) -> list[str]:
        env = self.config.get("Env")
        return list(env) if isinstance(env, list) else []

    @property
    def created(self) -> str | None:
        c = self.doc.get("created")
        return c if isinstance(c, str) else None


def read_manifest(reader: ContentReader, desc: Descriptor) -> Manifest:
    """``reader.get_manifest(desc)``, refusing the artifact manifest the walk never follows (UnsupportedFormat)."""
    if desc.media_type == mt.ARTIFACT_MANIFEST:
        raise UnsupportedFormat(f"{desc.digest} is an OCI artifact manifest ({mt.ARTIFACT_MANIFEST}, withdrawn "
                                "from OCI 1.1); ocilayout does not follow it")
    return reader.get_manifest(desc)
