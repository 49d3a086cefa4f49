"""Simple-signing payloads and docker references: bytes as Go writes them, parsing as containers/image does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ocilayout.errors import InvalidReference, VerificationError
from ocilayout.signature.dockerref import parse_normalized
from ocilayout.signature.payload import GPG_TYPE, SIGSTORE_TYPE, build_payload, go_json, parse_payload

DOC = Path(__file__).resolve().parent.parent.parent / "shared" / "docs" / "signatures.md"
DIGEST = "sha256:67df2339dae3a960c04998284f94ca56929c900cd74d04db9feefc56b0e43425"


def doc_text() -> str:
    if not DOC.exists():
        pytest.skip(f"{DOC} not found")
    return DOC.read_text()


def doc_json_line(prefix: str, contains: str) -> bytes:
    """The first line in signatures.md that starts with ``prefix`` and contains ``contains``."""
    for line in doc_text().splitlines():
        if line.startswith(prefix) and contains in line:
            return line.encode()
    raise AssertionError(f"no line {prefix!r}...{contains!r} in signatures.md")


# -- bytes -------------------------------------------------------------------------------------------------


def test_gpg_payload_matches_skopeo_bytes() -> None:
    want = doc_json_line('{"critical"', '"creator":"atomic 5.23.1"')
    got = build_payload(DIGEST, "registry.example.com/test/img:v1", GPG_TYPE, creator="atomic 5.23.1",
                        timestamp=1795863939)
    assert got == want


def test_sigstore_payload_matches_containers_image_bytes() -> None:
    want = doc_json_line('{"critical"', '"creator":"containers/image 5.26.2"')
    got = build_payload(DIGEST, "registry.example.com/test/img:v1", SIGSTORE_TYPE,
                        creator="containers/image 5.26.2", timestamp=1795864309)
    assert got == want


def test_sig_layer_payload_matches_bytes() -> None:
    want = doc_json_line('{"critical"', "127.0.0.1:5987/test/img:v1")
    assert len(want) == 298
    got = build_payload(DIGEST, "127.0.0.1:5987/test/img:v1", SIGSTORE_TYPE, creator="containers/image 5.22.1",
                        timestamp=1795864248)
    assert got == want


def test_cosign_null_optional_bytes() -> None:
    want = doc_json_line('{"critical"', '"optional":null')
    doc = {"critical": {"identity": {"docker-reference": "192.168.64.2:5000/cosign-signed-single-sample"},
                        "image": {"docker-manifest-digest":
                                  "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00"},
                        "type": SIGSTORE_TYPE}, "optional": None}
    assert go_json(doc) == want


def test_go_json_escapes_like_go() -> None:
    assert go_json({"b": "<&>\u2028\u2029", "a": "é\x01\x08\x0c\n\"\\"}) == (
        '{"a":"é\\u0001\\u0008\\u000c\\n\\"\\\\","b":"\\u003c\\u0026\\u003e\\u2028\\u2029"}'.encode()
    )


# -- strict parsing (signatures.md §1.3) ---------------------------------------------------------------

GOOD = build_payload(DIGEST, "busybox:latest", GPG_TYPE, creator="x", timestamp=5).decode()


def test_good_payload_parses() -> None:
    p = parse_payload(GOOD.encode(), GPG_TYPE)
    assert (p.manifest_digest, p.docker_reference, p.creator, p.timestamp) == (DIGEST, "busybox:latest", "x", 5)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (GOOD + "{}", "Extra data"),
        (GOOD.replace('"optional"', '"x":1,"optional"'), 'unknown key "x"'),
        (GOOD.replace(',"optional":{"creator":"x","timestamp":5}', ""), 'key "optional" missing'),
        (GOOD.replace('"type":', '"type":"a","type":'), 'duplicate key "type"'),
        (GOOD.replace('"docker-reference"', '"Docker-Reference"'), 'unknown key "Docker-Reference"'),
        (GOOD.replace('"type":"atomic', '"x":1,"type":"atomic'), 'unknown key "x"'),
        (GOOD.replace('"docker-manifest-digest"', '"docker-manifest-digest":"sha256:00","y"'), 'unknown key "y"'),
        (GOOD.replace('"timestamp":5', '"timestamp":NaN'), "NaN"),
        (GOOD.replace('"timestamp":5', '"timestamp":Infinity'), "Infinity"),
        (GOOD.replace('"timestamp":5', '"timestamp":1.5'), "not an integer"),
        (GOOD.replace('"timestamp":5', '"timestamp":"1"'), "must be a number"),
        (GOOD.replace('"timestamp":5', '"timestamp":1e999'), "out of range"),
        (GOOD.replace('"creator":"x"', '"creator":3'), "creator must be a string"),
        (GOOD.replace('{"creator":"x","timestamp":5}', "null"), "not null"),
        (GOOD.replace(DIGEST, "sha256:ABC"), "invalid manifest digest"),
        (GOOD.replace('"busybox:latest"', "7"), "must be a string"),
        (GOOD.replace("atomic container signature", "cosign container image signature"), "unrecognized"),
        ('{"critical":{},"critical":{},"optional":{}}', "duplicate key"),
        ("[]", "must be a JSON object"),
        ("", "Expecting value"),
    ],
)
def test_payload_rules(text: str, reason: str) -> None:
    with pytest.raises(VerificationError, match=re.escape(reason)):
        parse_payload(text.encode(), GPG_TYPE)


def test_payload_accepted_variants() -> None:
    # whitespace, integral floats, unknown optional keys, sigstore null optional
    assert parse_payload((" \n" + GOOD.replace('"timestamp":5', '"timestamp":1.0e9,"zzz":[1]') + "\n").encode(),
                         GPG_TYPE).timestamp == 1_000_000_000
    sig = GOOD.replace("atomic container signature", SIGSTORE_TYPE).replace('{"creator":"x","timestamp":5}', "null")
    assert parse_payload(sig.encode(), SIGSTORE_TYPE).creator is None


def test_payload_oversized_refused() -> None:
    with pytest.raises(VerificationError, match="limit"):
        parse_payload(b" " * (4 * 1024 * 1024 + 1), GPG_TYPE)


# -- docker references (§1.5) -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "string", "name"),
    [
        ("busybox", "docker.io/library/busybox", "docker.io/library/busybox"),
        ("busybox:latest", "docker.io/library/busybox:latest", "docker.io/library/busybox"),
        ("index.docker.io/library/busybox:latest", "docker.io/library/busybox:latest", "docker.io/library/busybox"),
        ("docker.io/busybox", "docker.io/library/busybox", "docker.io/library/busybox"),
        ("testing/manifest", "docker.io/testing/manifest", "docker.io/testing/manifest"),
        ("localhost/foo:1", "localhost/foo:1", "localhost/foo"),
        ("localhost:5000/a/b@sha256:" + "a" * 64, "localhost:5000/a/b@sha256:" + "a" * 64, "localhost:5000/a/b"),
        ("192.168.64.2:5000/cosign-signed-single-sample", "192.168.64.2:5000/cosign-signed-single-sample",
         "192.168.64.2:5000/cosign-signed-single-sample"),
        ("Example.COM/foo:Tag", "Example.COM/foo:Tag", "Example.COM/foo"),
    ],
)
def test_normalization(text: str, string: str, name: str) -> None:
    r = parse_normalized(text)
    assert (r.string(), r.name) == (string, name)


@pytest.mark.parametrize(
    "text",
    ["", "UPPERCASEISINVALID", "NotValid", "a" * 64, "foo:bar:baz", "foo@sha256:abc", "foo//bar", "-foo",
     "example.com/" + "a" * 300, "foo@md5:" + "a" * 32],
)
def test_invalid_references(text: str) -> None:
    with pytest.raises(InvalidReference):
        parse_normalized(text)


# -- duplicate keys, as containers/image's ParanoidUnmarshalJSONObject -----------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        GOOD.replace('"timestamp":5', '"timestamp":5,"extra":{"a":1,"a":2}'),  # inside an ignored optional value
        GOOD.replace('"timestamp":5', '"timestamp":5,"extra":[{"k":{"z":1,"z":[{"y":0,"y":1}]}}]'),
    ],
)
def test_duplicate_inside_ignored_optional_value_accepted(text: str) -> None:
    # skopeo decodes unknown optional values into Go's `any` with plain encoding/json: repeated keys pass there.
    assert parse_payload(text.encode(), GPG_TYPE).creator == "x"


@pytest.mark.parametrize(
    "text",
    [
        GOOD.replace('"timestamp":5', '"timestamp":5,"creator":"y"'),  # optional itself is decoded paranoidly
        GOOD.replace('"timestamp":5', '"timestamp":5,"zz":1,"zz":2'),
        GOOD.replace('"busybox:latest"', '"busybox:latest","docker-reference":"evil:1"'),
        GOOD.replace(f'"{DIGEST}"', f'"{DIGEST}","docker-manifest-digest":"{DIGEST}"'),
        GOOD.replace('"optional":', '"critical":{},"optional":'),
    ],
)
def test_duplicate_at_a_paranoid_level_refused(text: str) -> None:
    with pytest.raises(VerificationError, match="duplicate key"):
        parse_payload(text.encode(), GPG_TYPE)


def test_payload_numbers_and_depth_as_go() -> None:
    # Go decodes an ignored number into float64: one beyond its range fails even there; so does deep nesting
    for extra in ('"x":1e400', '"x":' + "9" * 400, '"x":' + "[" * 100_000 + "]" * 100_000):
        with pytest.raises(VerificationError, match="invalid signature payload"):
            parse_payload(GOOD.replace('"timestamp":5', '"timestamp":5,' + extra).encode(), GPG_TYPE)
