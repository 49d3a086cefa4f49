"""Digest, descriptor, manifest parsing and manifest-digest against skopeo's known values."""

from __future__ import annotations

import io
import json

import pytest
from conftest import read_peer
from hypothesis import given
from hypothesis import strategies as st

from ocilayout import mediatypes as mt
from ocilayout.descriptor import Descriptor, Platform
from ocilayout.digest import Digest, VerifyingReader, digest_stream
from ocilayout.errors import DigestMismatch, InvalidDigest, InvalidManifest, SizeMismatch, UnsupportedFormat
from ocilayout.manifest import Manifest, guess_media_type, load_json, manifest_digest

GOOD = "sha256:" + "ab" * 32


@pytest.mark.parametrize("text", [
    "sha256:" + "a" * 63, "sha256:" + "A" * 64, "sha256:../../etc/passwd", "md5:" + "a" * 32,
    "sha256:" + "a" * 64 + "/x", "sha256", "", "sha512:" + "a" * 64, "sha256:" + "a" * 62 + "/.",
    "sha256:" + "a" * 64 + "\n",
])
def test_bad_digests_are_refused_before_any_path(text: str) -> None:
    with pytest.raises(InvalidDigest):
        Digest.parse(text)


def test_digest_round_trip_and_sha512() -> None:
    d = Digest.parse(GOOD)
    assert str(d) == GOOD and d.short == "ab" * 6
    d512 = Digest.of(b"x", "sha512")
    assert Digest.parse(str(d512)) == d512 and len(d512.hex) == 128


@given(st.binary(max_size=4096))
def test_digest_stream_matches_hashlib(data: bytes) -> None:
    d, n = digest_stream(io.BytesIO(data))
    assert d == Digest.of(data) and n == len(data)


def test_verifying_reader_catches_digest_and_size() -> None:
    data = b"hello world"
    good = VerifyingReader(io.BytesIO(data), Digest.of(data), len(data))
    assert good.read() == data and good.verified
    with pytest.raises(DigestMismatch):
        VerifyingReader(io.BytesIO(data), Digest.of(b"other"), len(data)).read()
    with pytest.raises(SizeMismatch):
        VerifyingReader(io.BytesIO(data), Digest.of(data), len(data) - 1).read()
    with pytest.raises(SizeMismatch):
        r = VerifyingReader(io.BytesIO(data), Digest.of(data), len(data) + 5)
        while r.read(4):
            pass


def test_platform_parse_and_match() -> None:
    p = Platform.parse("linux/arm64/v8")
    assert str(p) == "linux/arm64/v8"
    assert Platform("linux", "arm64").matches(p)  # arm64 defaults to v8
    assert not Platform("linux", "arm", "v6").matches(Platform.parse("linux/arm/v7"))
    assert Platform("linux", "arm", "v7").matches(Platform.parse("linux/arm"))
    with pytest.raises(ValueError):
        Platform.parse("linux")


def test_descriptor_keeps_unknown_fields() -> None:
    raw = {"mediaType": mt.OCI_LAYER_GZIP, "digest": GOOD, "size": 3, "x-custom": [1], "data": "YWJj"}
    d = Descriptor.from_dict(raw)
    assert d.to_dict()["x-custom"] == [1] and d.to_dict()["data"] == "YWJj"
    with pytest.raises(InvalidManifest):
        Descriptor.from_dict({"mediaType": "x", "digest": GOOD, "size": -1})
    with pytest.raises(InvalidDigest):
        Descriptor.from_dict({"mediaType": "x", "digest": "sha256:../x", "size": 1})


def test_manifest_keeps_raw_bytes() -> None:
    raw = b'{ "schemaVersion": 2, "mediaType": "%s", "config": {"mediaType": "%s", "digest": "%s", "size": 1},' \
          b' "layers": [] }' % (mt.OCI_MANIFEST.encode(), mt.OCI_CONFIG.encode(), GOOD.encode())
    m = Manifest.parse(raw)
    assert m.raw == raw and m.digest == Digest.of(raw) and m.descriptor.size == len(raw)


@pytest.mark.parametrize("doc,hint,want", [
    ({"schemaVersion": 2, "config": {}, "layers": []}, None, mt.OCI_MANIFEST),
    ({"schemaVersion": 2, "config": {}, "layers": []}, mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST),
    ({"schemaVersion": 2, "manifests": []}, None, mt.OCI_INDEX),
    ({"schemaVersion": 2, "manifests": []}, mt.DOCKER_MANIFEST_LIST, mt.DOCKER_MANIFEST_LIST),
    ({"schemaVersion": 2, "manifests": []}, mt.OCI_MANIFEST, mt.OCI_INDEX),  # hint contradicts shape
    ({"schemaVersion": 1, "fsLayers": []}, None, mt.DOCKER_V2S1),
])
def test_media_type_without_field(doc: dict, hint: str | None, want: str) -> None:
    assert guess_media_type(doc, hint) == want


@pytest.mark.parametrize("raw", [b"", b"garbage", b"[1,2]", b'{"schemaVersion": NaN}', b"\xff\xfe",
                                 b'{"schemaVersion": 2}', b"[" * 100000])
def test_garbage_manifests_are_clear_errors(raw: bytes) -> None:
    with pytest.raises((InvalidManifest, UnsupportedFormat)) as info:
        Manifest.parse(raw)
    assert "\n" not in str(info.value)


def test_oversized_manifest_refused() -> None:
    big = json.dumps({"schemaVersion": 2, "manifests": [], "pad": "x" * (4 * 1024 * 1024)}).encode()
    with pytest.raises(InvalidManifest, match="limit"):
        load_json(big)


def test_unknown_schema_version_refused() -> None:
    with pytest.raises(UnsupportedFormat):
        Manifest.parse(read_peer("containers-image/manifest/fixtures/unknown-version.manifest.json"), mt.OCI_MANIFEST)


V2S1 = "sha256:7364fea9d84ee548ab67d4c46c6006289800c98de3fbf8c0a97138dfcc23f000"
KNOWN = {  # from KNOWN-VALUES.json, checked with skopeo manifest-digest
    "containers-image/manifest/fixtures/v2s2.manifest.json":
        "sha256:20bf21ed457b390829cdbeec8795a7bea1626991fda603e0d01b4e7f60427e55",
    "containers-image/manifest/fixtures/v2s1.manifest.json": V2S1,
    "containers-image/manifest/fixtures/v2s1-unsigned.manifest.json": V2S1,
}


@pytest.mark.parametrize("rel", sorted(KNOWN))
def test_manifest_digest_known_values(rel: str) -> None:
    assert str(manifest_digest(read_peer(rel))) == KNOWN[rel]


def test_manifest_digest_invalid_schema1_signatures_fail() -> None:
    with pytest.raises(InvalidManifest):
        manifest_digest(read_peer("containers-image/manifest/fixtures/v2s1-invalid-signatures.manifest.json"))


def test_manifest_digest_of_empty_and_non_json_is_plain_sha256() -> None:
    assert str(manifest_digest(b"")) == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert manifest_digest(b"not json") == Digest.of(b"not json")


# -- issue 7: the image you named is the image you get; bad input is a clear error -----------------------

_CFG = {"mediaType": mt.OCI_CONFIG, "digest": GOOD, "size": 2}
_LAYER = {"mediaType": mt.OCI_LAYER_GZIP, "digest": GOOD, "size": 3}
_CHILD = {"mediaType": mt.OCI_MANIFEST, "digest": GOOD, "size": 4}


def _raw(doc: dict) -> bytes:
    return json.dumps(doc).encode()


@pytest.mark.parametrize("doc,hint", [
    ({"schemaVersion": 2, "config": _CFG, "layers": [_LAYER], "manifests": [_CHILD]}, None),
    ({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": _CFG, "layers": [], "manifests": []}, None),
    ({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [_CHILD], "layers": [_LAYER]}, None),
    ({"schemaVersion": 2, "manifests": [_CHILD]}, mt.OCI_MANIFEST),  # index bytes under a manifest type
    ({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [_CHILD]}, mt.DOCKER_MANIFEST),
    ({"schemaVersion": 2, "config": _CFG, "layers": [_LAYER]}, mt.OCI_INDEX),  # the reverse
    ({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "config": _CFG, "layers": [_LAYER]}, mt.OCI_MANIFEST),
    ({"schemaVersion": 2, "config": _CFG, "layers": [], "Manifests": [_CHILD]}, mt.OCI_MANIFEST),  # Go folds case
    ({"schemaVersion": 2, "config": _CFG, "layers": [], "history": []}, mt.OCI_MANIFEST),
    ({"schemaVersion": 1, "fsLayers": [], "history": [], "layers": [_LAYER]}, None),
    ({"schemaVersion": 1, "fsLayers": [], "history": []}, mt.OCI_MANIFEST),  # schema1 under an OCI type
])
def test_ambiguous_documents_are_refused(doc: dict, hint: str | None) -> None:
    """containers/image's validateUnambiguousManifestFormat (CVE-2021-41190): skopeo refuses these."""
    with pytest.raises(InvalidManifest, match="ambiguous"):
        Manifest.parse(_raw(doc), hint)


@pytest.mark.parametrize("doc,hint,want", [
    ({"schemaVersion": 2, "config": _CFG, "layers": [], "manifests": None}, mt.OCI_MANIFEST, mt.OCI_MANIFEST),
    ({"schemaVersion": 2, "manifests": [_CHILD], "config": None}, mt.OCI_INDEX, mt.OCI_INDEX),
    ({"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST, "config": _CFG, "layers": []}, mt.OCI_MANIFEST,
     mt.DOCKER_MANIFEST),  # ggcr test_index ref 1: same kind, other family (fsck warns)
])
def test_null_format_fields_and_same_kind_types_are_not_ambiguous(doc: dict, hint: str, want: str) -> None:
    assert Manifest.parse(_raw(doc), hint).media_type == want


def _manifest(**fields) -> dict:  # type: ignore[no-untyped-def]
    return {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": dict(_CFG), "layers": [dict(_LAYER)],
            **fields}


def _index_with_platform(**fields) -> dict:  # type: ignore[no-untyped-def]
    return {"schemaVersion": 2, "manifests": [{**_CHILD, "platform": {"os": "linux", "architecture": "arm", **fields}}]}


def _with_layer(**fields) -> dict:  # type: ignore[no-untyped-def]
    return _manifest(layers=[{**_LAYER, **fields}])


@pytest.mark.parametrize("doc,where", [
    (_with_layer(urls=5), "layers[0].urls"),
    (_with_layer(urls=["https://x", 5]), "layers[0].urls[1]"),
    (_with_layer(annotations={"a": 5}), "layers[0].annotations['a']"),
    (_with_layer(annotations=["a"]), "layers[0].annotations"),
    (_with_layer(size=1.0), "layers[0].size"),
    (_with_layer(size="3"), "layers[0].size"),
    (_with_layer(size=1 << 63), "layers[0].size"),
    (_with_layer(artifactType=5), "layers[0].artifactType"),
    (_with_layer(mediaType=["x"]), "layers[0].mediaType"),
    (_with_layer(data=5), "layers[0].data"),
    (_with_layer(platform={"os": 5, "architecture": "amd64"}), "layers[0].platform.os"),
    (_manifest(subject=5), "subject"),
    (_manifest(subject={**_CHILD, "urls": 5}), "subject.urls"),
    (_manifest(annotations={"a": True}), "annotations['a']"),
    (_manifest(artifactType=5), "artifactType"),
    (_manifest(schemaVersion="2"), "schemaVersion"),
    (_manifest(layers={"0": _LAYER}), "layers"),
    (_manifest(config=[_CFG]), "config"),
    (_index_with_platform(variant=7), "manifests[0].platform.variant"),
    (_index_with_platform(variant=["v7"]), "manifests[0].platform.variant"),
    (_index_with_platform(**{"os.features": 5}), "manifests[0].platform.os.features"),
    (_index_with_platform(**{"os.version": 10}), "manifests[0].platform.os.version"),
    ({"schemaVersion": 2, "manifests": [{**_CHILD, "platform": "linux/amd64"}]}, "manifests[0].platform"),
    ({"schemaVersion": 1, "fsLayers": [{"blobSum": 5}], "history": []}, "fsLayers[0].blobSum"),
])
def test_fields_of_the_wrong_json_type_are_refused(doc: dict, where: str) -> None:
    """skopeo 1.9.3 refuses each of these ("json: cannot unmarshal number into Go struct field ...")."""
    with pytest.raises(InvalidManifest) as info:
        Manifest.parse(_raw(doc))
    assert str(info.value).startswith(where + " must be "), info.value


def test_descriptor_and_platform_type_checks_on_their_own() -> None:
    with pytest.raises(InvalidManifest, match="urls must be"):
        Descriptor.from_dict({**_LAYER, "urls": 5})
    with pytest.raises(InvalidManifest, match="variant must be a string"):
        Platform.from_dict({"os": "linux", "architecture": "arm", "variant": 7})
    # null reads as the zero value, as Go does
    p = Platform.from_dict({"os": "linux", "architecture": "amd64", "variant": None, "os.features": None})
    assert (p.os, p.variant, p.os_features) == ("linux", None, ())
    assert Descriptor.from_dict({**_LAYER, "urls": None, "annotations": None}).urls == ()


_IMG = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [GOOD]}}


@pytest.mark.parametrize("edit,where", [
    ({"os": 5}, "os"),
    ({"architecture": ["amd64"]}, "architecture"),
    ({"variant": 8}, "variant"),
    ({"os.version": 10}, "os.version"),
    ({"os.features": "x"}, "os.features"),
    ({"author": 5}, "author"),
    ({"created": "yesterday"}, "created"),
    ({"created": 1700000000}, "created"),
    ({"created": "2024-01-01 00:00:00Z"}, "created"),
    ({"created": "2024-02-30T00:00:00Z"}, "created"),
    ({"config": []}, "config"),
    ({"config": {"Env": [5]}}, "config.Env[0]"),
    ({"config": {"Env": "A=b"}}, "config.Env"),
    ({"config": {"Volumes": ["/data"]}}, "config.Volumes"),
    ({"config": {"ExposedPorts": {"80/tcp": 5}}}, "config.ExposedPorts['80/tcp']"),
    ({"config": {"ExposedPorts": ["80/tcp"]}}, "config.ExposedPorts"),
    ({"config": {"Labels": {"a": 5}}}, "config.Labels['a']"),
    ({"config": {"Cmd": "sh"}}, "config.Cmd"),  # an array in OCI configs
    ({"config": {"User": 0}}, "config.User"),
    ({"config": {"ArgsEscaped": "yes"}}, "config.ArgsEscaped"),
    ({"history": "built"}, "history"),
    ({"history": [5]}, "history[0]"),
    ({"history": [{"created_by": 5}]}, "history[0].created_by"),
    ({"history": [{"empty_layer": "true"}]}, "history[0].empty_layer"),
    ({"history": [{"created": "then"}]}, "history[0].created"),
    ({"rootfs": {"type": 5, "diff_ids": []}}, "rootfs.type"),
    ({"rootfs": {"type": "layers", "diff_ids": GOOD}}, "rootfs.diff_ids"),
    ({"rootfs": {"type": "layers", "diff_ids": [5]}}, "rootfs.diff_ids[0]"),
    ({"rootfs": "layers"}, "rootfs"),
    ({"docker_version": 20}, "docker_version"),
    ({"Size": "big"}, "Size"),
])
def test_image_config_fields_of_the_wrong_json_type_are_refused(edit: dict, where: str) -> None:
    """skopeo 1.9.3 `inspect` refuses each of these (checked on hand-built layouts)."""
    from ocilayout.manifest import ImageConfig

    with pytest.raises(InvalidManifest) as info:
        ImageConfig.parse(_raw({**_IMG, **edit}), mt.OCI_CONFIG)
    assert str(info.value).startswith(f"image config: {where} "), info.value


@pytest.mark.parametrize("edit", [
    {"os.features": None, "history": None, "created": None, "config": None},  # null is Go's zero value
    {"created": "0001-01-01T00:00:00+01:00"}, {"created": "9999-12-31T23:59:59-01:00"},
    {"created": "0000-01-01T00:00:00Z"}, {"created": "2024-02-29T23:59:59.123456789123Z"},
    {"rootfs": {"type": "layers", "diff_ids": ["not-a-digest"]}},  # skopeo only wants strings here
    {"config": {"ExposedPorts": {"80/tcp": {}}, "Volumes": {"/d": {}}, "Labels": {}, "Env": []}},
    {"x-unknown": 5},
])
def test_image_configs_skopeo_accepts_are_accepted(edit: dict) -> None:
    from ocilayout.manifest import ImageConfig

    ImageConfig.parse(_raw({**_IMG, **edit}), mt.OCI_CONFIG)


def test_docker_config_cmd_may_be_a_string() -> None:
    """Docker's strslice: Cmd/Entrypoint/Shell may be one string in a Docker config (not in an OCI one)."""
    from ocilayout.manifest import ImageConfig

    ImageConfig.parse(_raw({**_IMG, "config": {"Cmd": "sh", "Entrypoint": "/bin/x"}}), mt.DOCKER_CONFIG)
    with pytest.raises(InvalidManifest):
        ImageConfig.parse(_raw({**_IMG, "config": {"Cmd": 5}}), mt.DOCKER_CONFIG)


@pytest.mark.parametrize("media_type", [mt.OCI_EMPTY, "application/vnd.cncf.helm.config.v1+json",
                                        "application/vnd.dev.cosign.artifact.sig.v1+json", mt.OCI_MANIFEST])
def test_artifact_configs_are_never_parsed_as_image_configs(media_type: str) -> None:
    from ocilayout.manifest import ImageConfig

    with pytest.raises(UnsupportedFormat, match="not an image config"):
        ImageConfig.parse(_raw(_IMG), media_type)


@pytest.mark.parametrize("text,ok", [
    ("2024-01-01T00:00:00Z", True), ("2024-01-01T00:00:00.5+05:30", True), ("0000-01-01T00:00:00Z", True),
    ("2024-02-29T00:00:00Z", True), ("2023-02-29T00:00:00Z", False), ("1900-02-29T00:00:00Z", False),
    ("2000-02-29T00:00:00Z", True), ("2024-01-01t00:00:00z", False), ("2024-01-01T24:00:00Z", False),
    ("2024-01-01T00:00:60Z", False), ("2024-13-01T00:00:00Z", False), ("2024-01-01T00:00:00", False),
    ("2024-01-01T00:00:00,5Z", False), ("2024-01-01T00:00:00+24:00", False), ("2024-01-01T00:00:00.Z", False),
    ("24-01-01T00:00:00Z", False), ("2024-01-01T00:00:00+0100", False),
])
def test_rfc3339_as_current_go_reads_it(text: str, ok: bool) -> None:
    """Go 1.20+ time.Time JSON rules (skopeo 1.9.3, built with Go 1.19, still took `,5` and `+24:00`)."""
    from ocilayout.schema import is_rfc3339

    assert is_rfc3339(text) is ok


@pytest.mark.parametrize("raw", [
    b'{"schemaVersion": 2, "size": ' + b"1" * 5000 + b"}",
    b'{"schemaVersion": 2, "manifests": [], "x": -' + b"9" * 4301 + b"}",
])
def test_integers_over_pythons_digit_limit_are_invalid_manifest(raw: bytes) -> None:
    with pytest.raises(InvalidManifest, match="too large"):
        load_json(raw)
    with pytest.raises(InvalidManifest):
        Manifest.parse(raw)


def test_parse_created_at_the_edges_of_the_range_is_not_set() -> None:
    """Valid RFC 3339 times whose UTC instant is outside years 1-9999 are N/A in `images` (not a crash)."""
    from ocilayout.listing import parse_created

    assert parse_created("0001-01-01T00:00:00+01:00") is None
    assert parse_created("9999-12-31T23:59:59-01:00") is None
    assert parse_created("0001-01-01T00:00:00Z") is None  # Go's zero time: not set
    assert parse_created("9999-12-31T23:59:59Z").year == 9999
    assert parse_created("0002-01-02T00:00:00+01:00").day == 1
