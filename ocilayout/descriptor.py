"""Descriptors and platforms: the typed view of an OCI content descriptor that keeps its raw JSON."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .digest import Digest
from .errors import InvalidManifest
from .schema import check_descriptor, check_platform

__all__ = ["REF_NAME", "Descriptor", "Platform"]

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"


@dataclass(frozen=True, slots=True)
class Platform:
    """An OCI platform: os/architecture[/variant] plus the rarely used extras."""

    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None
    os_features: tuple[str, ...] = ()
    features: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse ``os/arch[/variant]`` as docker and skopeo accept it; raises ValueError."""
        parts = text.strip().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"invalid platform {text!r}: want os/arch[/variant]")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Platform:
        """Parse a platform object; raises InvalidManifest for fields of the wrong JSON type."""
        check_platform(d)
        return cls(
            os=d.get("os") or "",
            architecture=d.get("architecture") or "",
            variant=d.get("variant") or None,
            os_version=d.get("os.version") or None,
            os_features=tuple(d.get("os.features") or ()),
            features=tuple(d.get("features") or ()),
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            d["os.version"] = self.os_version
        if self.os_features:
            d["os.features"] = list(self.os_features)
        if self.variant:
            d["variant"] = self.variant
        if self.features:
            d["features"] = list(self.features)
        return d

    def matches(self, want: Platform) -> bool:
        """True when this platform satisfies ``want`` (a variant in ``want`` must match; arm64 v8 defaults)."""
        if self.os != want.os or self.architecture != want.architecture:
            return False
        if want.variant is None:
            return True
        mine = self.variant
        if mine is None and self.architecture == "arm64":
            mine = "v8"
        return mine == want.variant

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A content descriptor. ``raw`` keeps every JSON field, including ones this class does not model."""

    media_type: str
    digest: Digest
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Platform | None = None
    urls: tuple[str, ...] = ()
    artifact_type: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_dict(cls, d: Any, *, default_media_type: str = "") -> Descriptor:
        """Parse a descriptor object; raises InvalidManifest (wrong JSON types, bad size) / InvalidDigest."""
        check_descriptor(d)
        size = d.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidManifest(f"descriptor {d.get('digest')!r} has invalid size {size!r}")
        media_type = d.get("mediaType")
        if media_type is None:  # absent or null
            media_type = default_media_type
        annotations = {k: v or "" for k, v in (d.get("annotations") or {}).items()}  # null reads as "", as in Go
        plat = d.get("platform")
        return cls(
            media_type=media_type,
            digest=Digest.parse(d.get("digest", "")),
            size=size,
            annotations=annotations,
            platform=Platform.from_dict(plat) if plat is not None else None,
            urls=tuple(u or "" for u in d.get("urls") or ()),
            artifact_type=d.get("artifactType"),
            raw=d,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form; fields of ``raw`` that this class does not model are kept."""
        d: dict[str, Any] = dict(self.raw)
        d["mediaType"] = self.media_type
        d["digest"] = str(self.digest)
        d["size"] = self.size
        for key, value in (
            ("annotations", dict(self.annotations)),
            ("platform", self.platform.to_dict() if self.platform else None),
            ("urls", list(self.urls)),
            ("artifactType", self.artifact_type),
        ):
            if value:
                d[key] = value
            else:
                d.pop(key, None)
        order = ["mediaType", "artifactType", "digest", "size", "urls", "annotations", "platform"]
        return {k: d[k] for k in order if k in d} | {k: v for k, v in d.items() if k not in order}

    def with_(self, **changes: Any) -> Descriptor:
        """A copy with some fields replaced (the raw dict follows the typed fields)."""
        from dataclasses import replace

        new = replace(self, **changes)
        return replace(new, raw=new.to_dict())

