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
