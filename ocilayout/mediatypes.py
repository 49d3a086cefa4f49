"""Media-type constants and the OCI <-> Docker v2s2 mapping."""

from __future__ import annotations

__all__ = [
    "CONFIG_TYPES",
    "DOCKER_CONFIG",
    "DOCKER_FOREIGN_LAYER",
    "DOCKER_LAYER",
    "DOCKER_LAYER_TAR",
    "DOCKER_LAYER_ZSTD",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "DOCKER_V2S1",
    "DOCKER_V2S1_SIGNED",
    "INDEX_TYPES",
    "MANIFEST_TYPES",
    "OCI_CONFIG",
    "OCI_EMPTY",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_LAYER_GZIP",
    "OCI_LAYER_ZSTD",
    "OCI_MANIFEST",
    "SCHEMA1_TYPES",
    "is_index",
    "is_manifest",
    "layer_compression",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_ND = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_ND_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_ND_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
OCI_LAYOUT_VERSION = "1.0.0"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"
#: containers-image's DockerV2SchemaLayerMediaTypeUncompressed (what docker-archive layers are).
DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_FOREIGN_LAYER_TAR = "application/vnd.docker.image.rootfs.foreign.diff.tar"
DOCKER_V2S1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_V2S1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
#: The OCI 1.1 release candidates' artifact manifest (its payload is under ``blobs``); never followed.
ARTIFACT_MANIFEST = "application/vnd.oci.artifact.manifest.v1+json"

COSIGN_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"

MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
#: Image config types: configs of any other type belong to artifacts and are never parsed as image configs.
CONFIG_TYPES = frozenset({OCI_CONFIG, DOCKER_CONFIG})
SCHEMA1_TYPES = frozenset({DOCKER_V2S1, DOCKER_V2S1_SIGNED, "application/json"})

#: Layer media type -> compression name ("gzip", "zstd" or "none"); unknown types are absent.
_LAYER_COMPRESSION: dict[str, str] = {
    OCI_LAYER: "none",
    OCI_LAYER_GZIP: "gzip",
    OCI_LAYER_ZSTD: "zstd",
    OCI_LAYER_ND: "none",
    OCI_LAYER_ND_GZIP: "gzip",
    OCI_LAYER_ND_ZSTD: "zstd",
    DOCKER_LAYER: "gzip",
    DOCKER_LAYER_ZSTD: "zstd",
    DOCKER_LAYER_TAR: "none",
    DOCKER_FOREIGN_LAYER: "gzip",
    DOCKER_FOREIGN_LAYER_TAR: "none",
    "application/tar+gzip": "gzip",  # go-containerregistry test data
}

#: OCI <-> Docker equivalents for conversion.
OCI_TO_DOCKER: dict[str, str] = {
    OCI_MANIFEST: DOCKER_MANIFEST,
    OCI_INDEX: DOCKER_MANIFEST_LIST,
    OCI_CONFIG: DOCKER_CONFIG,
    OCI_LAYER_GZIP: DOCKER_LAYER,
    OCI_LAYER_ZSTD: DOCKER_LAYER_ZSTD,
    OCI_LAYER_ND_GZIP: DOCKER_FOREIGN_LAYER,
    OCI_LAYER_ND: DOCKER_FOREIGN_LAYER_TAR,
}
DOCKER_TO_OCI: dict[str, str] = {v: k for k, v in OCI_TO_DOCKER.items()}


def is_index(media_type: str | None) -> bool:
    """True for an OCI image index or a Docker manifest list."""
    return media_type in INDEX_TYPES


def is_manifest(media_type: str | None) -> bool:
    """True for a single-image manifest (OCI, Docker v2s2 or v2s1)."""
    return media_type in MANIFEST_TYPES or media_type in SCHEMA1_TYPES


def is_manifest_like(media_type: str) -> bool:
    """True for media types that name a document the walk must read (manifests, indexes, artifact manifests)."""
    return is_index(media_type) or is_manifest(media_type) or media_type == ARTIFACT_MANIFEST


def layer_compression(media_type: str) -> str | None:
    """The compression a layer media type declares ("gzip", "zstd", "none"), or None when unknown."""
    return _LAYER_COMPRESSION.get(media_type)
