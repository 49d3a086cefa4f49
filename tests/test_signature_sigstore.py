"""Sigstore signatures: upstream fixtures and documented vectors give upstream's verdicts; our bytes match."""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import pytest
from conftest import materialize_peer_dir, peer_path, read_peer

from ocilayout.digest import Digest
from ocilayout.errors import InvalidManifest, NotFound, UnsupportedFormat, VerificationError
from ocilayout.manifest import manifest_digest
from ocilayout.signature import keys
from ocilayout.signature.model import (
    SIGNATURE_ANNOTATION,
    SIMPLESIGNING_MEDIA_TYPE,
    SigstoreSignature,
    signature_from_blob,
)
from ocilayout.signature.policy import IdentityRule, ImageToVerify, Policy, identity_check
from ocilayout.signature.sigstore import exact_identity, sign_sigstore, verify_sigstore, verify_sigstore_crypto
from ocilayout.signature.storage import DirSignatures, SignatureStorage

FIX = "containers-image/signature/fixtures"
DOC = Path(__file__).resolve().parent.parent.parent / "shared" / "docs" / "signatures.md"
COSIGN_REPO = "192.168.64.2:5000/cosign-signed-single-sample"


def materialize(name: str, dest: Path) -> Path:
    return materialize_peer_dir(f"{FIX}/{name}", dest)


def pub(name: str):
    return keys.load_public_key(read_peer(f"{FIX}/{name}"))


def doc_text() -> str:
    if not DOC.exists():
        pytest.skip(f"{DOC} not found")
    return DOC.read_text()


def doc_blocks() -> list[str]:
    return re.findall(r"```\n(-----BEGIN [^\n]*-----\n.*?-----END [^\n]*-----)\n```", doc_text(), re.S)


def doc_local_manifest() -> bytes:
    m = re.search(r"```\n(\{\"schemaVersion\":2,\"config\".*?\})\n```", doc_text())
    assert m
    return m.group(1).encode() + b"\n"


def doc_signature_file() -> bytes:
    m = re.search(r"\\x00sigstore-json\n(\{\"mimeType\".*?\}\})\n", doc_text())
    assert m
    return b"\x00sigstore-json\n" + m.group(1).encode()


# -- documented vectors ------------------------------------------------------------------------------------


def test_documented_manifest_digest() -> None:
    raw = doc_local_manifest()
    assert len(raw) == 345
    assert str(manifest_digest(raw)) == "sha256:67df2339dae3a960c04998284f94ca56929c900cd74d04db9feefc56b0e43425"


def test_skopeo_signature_vector_verifies() -> None:
    raw, blob = doc_local_manifest(), doc_signature_file()
    assert len(blob) == 651
    gokey = keys.load_public_key(doc_blocks()[1].encode())
    sig = signature_from_blob(blob)
    assert isinstance(sig, SigstoreSignature)
    d = manifest_digest(raw)
    v = verify_sigstore(sig, [gokey], d, exact_identity("registry.example.com/test/img:v1"))
    assert (v.creator, v.timestamp) == ("containers/image 5.26.2", 1795864309)
    rule = IdentityRule("exactReference", docker_reference="registry.example.com/test/img:v1")
    verify_sigstore(sig, [gokey], d, identity_check(rule, None))
    with pytest.raises(VerificationError, match="not accepted"):
        rule2 = IdentityRule("exactReference", docker_reference="registry.example.com/test/img:v2")
        verify_sigstore(sig, [gokey], d, identity_check(rule2, None))
    with pytest.raises(VerificationError, match="does not match"):
        verify_sigstore(sig, [gokey], d, exact_identity("registry.example.com/test/img:v2"))
    for other in (keys.load_public_key(doc_blocks()[3].encode()), pub("cosign.pub")):
        with pytest.raises(VerificationError, match="cryptographic"):
            verify_sigstore(sig, [other], d, exact_identity("registry.example.com/test/img:v1"))
    # any of several keys may match
    verify_sigstore(sig, [pub("cosign.pub"), gokey], d, exact_identity("registry.example.com/test/img:v1"))


def test_envelope_bytes_match_skopeo() -> None:
    blob = doc_signature_file()
    parsed = signature_from_blob(blob)
    assert isinstance(parsed, SigstoreSignature)
    rebuilt = SigstoreSignature(SIMPLESIGNING_MEDIA_TYPE, parsed.payload,
                                {SIGNATURE_ANNOTATION: parsed.annotations[SIGNATURE_ANNOTATION]})
    assert rebuilt.to_blob() == blob


def test_sig_layer_vector_verifies_with_python_key() -> None:
    text = doc_text()
    layer = next(line for line in text.splitlines() if line.startswith('{"critical"') and "127.0.0.1:5987" in line)
    man = next(line for line in text.splitlines() if line.startswith('{"schemaVersion":2,"mediaType"'))
    sig_b64 = re.search(r'"dev.cosignproject.cosign/signature":"([^"]+)"', man).group(1)
    py32k = keys.load_public_key(doc_blocks()[5].encode())
    sig = SigstoreSignature(SIMPLESIGNING_MEDIA_TYPE, layer.encode(), {SIGNATURE_ANNOTATION: sig_b64})
    verify_sigstore(sig, [py32k], "sha256:67df2339dae3a960c04998284f94ca56929c900cd74d04db9feefc56b0e43425",
                    exact_identity("127.0.0.1:5987/test/img:v1"))


# -- upstream fixtures through DirSignatures and the policy ---------------------------------------------


def policy_for(key: str, identity: dict) -> Policy:
    raw = ('{"default":[{"type":"reject"}],"transports":{"dir":{"":[{"type":"sigstoreSigned","keyPath":"'
           + str(peer_path(f"{FIX}/{key}")) + '","signedIdentity":' + __import__("json").dumps(identity) + "}]}}}")
    return Policy.parse(raw.encode())


def evaluate_dir(tmp_path: Path, name: str, key: str, identity: dict):
    d = materialize(name, tmp_path)
    store = DirSignatures(d)
    digest = store.manifest_digest()
    return policy_for(key, identity).evaluate("dir", [str(d)], ImageToVerify(digest, store.list(digest)))


EXACT_REPO = {"type": "exactRepository", "dockerRepository": COSIGN_REPO}


@pytest.mark.parametrize(
    ("fixture", "key", "identity", "passed", "reason"),
    [
        ("dir-img-cosign-valid", "cosign.pub", EXACT_REPO, True, ""),
        ("dir-img-cosign-valid", "cosign2.pub", EXACT_REPO, False, "cryptographic"),
        ("dir-img-cosign-valid", "cosign.pub", {"type": "matchRepository"}, False, "not accepted"),
        ("dir-img-cosign-valid", "cosign.pub", {"type": "exactReference", "dockerReference": COSIGN_REPO + ":x"},
         False, "not accepted"),
        ("dir-img-cosign-valid-with-tag", "cosign.pub",
         {"type": "exactReference", "dockerReference": "192.168.64.2:5000/skopeo-signed:tag"}, True, ""),
        ("dir-img-cosign-valid-2", "cosign.pub", EXACT_REPO, True, ""),
        ("dir-img-cosign-mixed", "cosign.pub", EXACT_REPO, True, ""),
        ("dir-img-cosign-modified-manifest", "cosign.pub", EXACT_REPO, False, "does not match the image digest"),
        ("dir-img-cosign-other-attachment", "cosign.pub", EXACT_REPO, False, "no signature exists"),
        ("dir-img-cosign-key-rekor-valid", "cosign2.pub",
         {"type": "exactRepository", "dockerRepository": "192.168.64.2:5000/cosign-signed/key-1"}, True, ""),
        ("dir-img-cosign-key-rekor-valid", "cosign.pub",
         {"type": "exactRepository", "dockerRepository": "192.168.64.2:5000/cosign-signed/key-1"}, False,
         "cryptographic"),
    ],
)
def test_cosign_fixture_verdicts(tmp_path: Path, fixture: str, key: str, identity: dict, passed: bool,
                                 reason: str) -> None:
    result = evaluate_dir(tmp_path, fixture, key, identity)
    assert result.scope == "dir:"
    [r] = result.results
    assert r.passed is passed, r.reason
    assert reason in r.reason


def test_cosign_per_signature_verdicts(tmp_path: Path) -> None:
    cosign, cosign2 = pub("cosign.pub"), pub("cosign2.pub")
    d = materialize("dir-img-cosign-mixed", tmp_path)
    store = DirSignatures(d)
    digest = store.manifest_digest()
    s1, s2 = store.list(digest)
    for k in (cosign, cosign2):  # unknown-cosign-key.signature fails with both keys
        with pytest.raises(VerificationError, match="cryptographic"):
            verify_sigstore(s1, [k], digest, exact_identity(COSIGN_REPO))
    verify_sigstore(s2, [cosign], digest, exact_identity(COSIGN_REPO))
    d2 = materialize("dir-img-cosign-valid-2", tmp_path)
    for s in DirSignatures(d2).list(digest):
        assert verify_sigstore(s, [cosign], digest, exact_identity(COSIGN_REPO)).creator is None


def test_cosign_manifest_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidManifest):
        DirSignatures(materialize("dir-img-cosign-manifest-digest-error", tmp_path)).manifest_digest()
    with pytest.raises(NotFound):
        DirSignatures(materialize("dir-img-cosign-no-manifest", tmp_path)).manifest_digest()


def _cert_key(sig: SigstoreSignature):
    from cryptography import x509

    return x509.load_pem_x509_certificate(sig.annotations["dev.sigstore.cosign/certificate"].encode()).public_key()


@pytest.mark.parametrize("fixture", ["dir-img-cosign-fulcio-rekor-valid", "dir-img-cosign-pki-valid"])
def test_certificate_signatures_verify_with_cert_key_but_policy_is_refused(tmp_path: Path, fixture: str) -> None:
    d = materialize(fixture, tmp_path)
    store = DirSignatures(d)
    digest = store.manifest_digest()
    [sig] = store.list(digest)
    assert isinstance(sig, SigstoreSignature)
    if fixture.endswith("pki-valid"):
        assert "\n" in sig.annotations[SIGNATURE_ANNOTATION]  # Go's decoder ignores the embedded newlines
    verify_sigstore_crypto(sig, [_cert_key(sig)])
    with pytest.raises(VerificationError):
        verify_sigstore_crypto(sig, [pub("cosign.pub")])
    with pytest.raises(UnsupportedFormat):
        Policy.parse(b'{"default":[{"type":"sigstoreSigned","fulcio":{},"signedIdentity":{"type":"matchExact"}}]}')


# -- our own signatures ------------------------------------------------------------------------------------


def test_sign_then_verify_and_bytes(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    k = ec.generate_private_key(ec.SECP256R1())
    d = Digest.parse("sha256:67df2339dae3a960c04998284f94ca56929c900cd74d04db9feefc56b0e43425")
    sig = sign_sigstore(k, d, "registry.example.com/test/img:v1", timestamp=1795864309,
                        creator="containers/image 5.26.2")
    ref = doc_signature_file()
    assert sig.payload == signature_from_blob(ref).payload  # same payload bytes as skopeo
    raw_sig = base64.b64decode(sig.signature_b64)
    assert raw_sig[0] == 0x30 and 68 <= len(raw_sig) <= 72  # ASN.1 DER
    verify_sigstore(sig, [k.public_key()], d, exact_identity("registry.example.com/test/img:v1"))
    with pytest.raises(VerificationError, match="does not match the image digest"):
        verify_sigstore(sig, [k.public_key()], Digest.of(b"other"), exact_identity("registry.example.com/test/img:v1"))
    tampered = SigstoreSignature(sig.mime_type, sig.payload.replace(b"v1", b"v2"), dict(sig.annotations))
    with pytest.raises(VerificationError, match="cryptographic"):
        verify_sigstore(tampered, [k.public_key()], d, exact_identity("registry.example.com/test/img:v2"))
    # (IEEE-P1363 r||s: see test_ecdsa_ieee_p1363_accepted_as_current_sigstore)
    missing = SigstoreSignature(sig.mime_type, sig.payload, {})
    with pytest.raises(VerificationError, match="missing"):
        verify_sigstore(missing, [k.public_key()], d, exact_identity("registry.example.com/test/img:v1"))


def test_dir_signatures_append_and_read(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    d = materialize("dir-img-cosign-valid", tmp_path)
    store = DirSignatures(d)
    assert isinstance(store, SignatureStorage)
    digest = store.manifest_digest()
    k = ec.generate_private_key(ec.SECP256R1())
    store.add(digest, sign_sigstore(k, digest, COSIGN_REPO + ":v1"))
    store.add(digest, sign_sigstore(k, digest, COSIGN_REPO + ":v2"))
    names = sorted(p.name for p in d.iterdir())
    assert names == ["manifest.json", "signature-1", "signature-2", "signature-3"]
    s1, _s2, s3 = store.list(digest)
    verify_sigstore(s1, [pub("cosign.pub")], digest, exact_identity(COSIGN_REPO))  # the original is untouched
    verify_sigstore(s3, [k.public_key()], digest, exact_identity(COSIGN_REPO + ":v2"))
    other = Digest.of(b"instance")
    store.add(other, sign_sigstore(k, other, COSIGN_REPO + ":v1"))
    assert (d / f"{other.hex}.signature-1").exists()
    assert len(store.list(other)) == 1


def test_oversized_and_garbage_signature_files(tmp_path: Path) -> None:
    d = materialize("dir-img-cosign-valid", tmp_path)
    store = DirSignatures(d)
    with (d / "signature-2").open("wb") as f:
        f.truncate(10 * 1024 * 1024)
    with pytest.raises(VerificationError, match="limit"):
        store.list(store.manifest_digest())
    shutil.copy(d / "manifest.json", d / "signature-2")
    with pytest.raises(VerificationError, match="unrecognized signature format"):
        store.list(store.manifest_digest())
    for blob in (b"\x00sigstore-json\n{", b"\x00other\nx", b"\x00sigstore-json", b""):
        with pytest.raises(VerificationError):
            signature_from_blob(blob)


def _with_raw_signature(sig: SigstoreSignature, raw: bytes) -> SigstoreSignature:
    return SigstoreSignature(sig.mime_type, sig.payload, {SIGNATURE_ANNOTATION: base64.b64encode(raw).decode()})


@pytest.mark.parametrize("curve", ["SECP256R1", "SECP384R1"])
def test_ecdsa_ieee_p1363_accepted_as_current_sigstore(curve: str) -> None:
    """sigstore/sigstore's ECDSAVerifier (>= 1.8.3, so skopeo 1.22) reads a signature that is not ASN.1 as
    IEEE-P1363 r||s: any even length up to 132 bytes, split in two halves. Vectors made here with cryptography."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    k = ec.generate_private_key(getattr(ec, curve)())
    size = (k.curve.key_size + 7) // 8
    d = Digest.of(b"manifest")
    ident = exact_identity("registry.example.com/test/img:v1")
    sig = sign_sigstore(k, d, "registry.example.com/test/img:v1", timestamp=1)
    r, s = decode_dss_signature(base64.b64decode(sig.signature_b64 or ""))
    p1363 = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    assert verify_sigstore(_with_raw_signature(sig, p1363), [k.public_key()], d, ident).manifest_digest == str(d)
    # Go's big.Int.SetBytes ignores leading zeros: wider halves are the same numbers and verify too
    wide = r.to_bytes(size + 2, "big") + s.to_bytes(size + 2, "big")
    verify_sigstore(_with_raw_signature(sig, wide), [k.public_key()], d, ident)
    other = ec.generate_private_key(getattr(ec, curve)())
    bad = [
        p1363[:-1],  # odd length
        r.to_bytes(70, "big") + s.to_bytes(70, "big"),  # over 132 bytes
        p1363[: size - 1] + bytes([p1363[size - 1] ^ 1]) + p1363[size:],  # r changed
        s.to_bytes(size, "big") + r.to_bytes(size, "big"),  # halves swapped
        b"",
    ]
    for raw in bad:
        with pytest.raises(VerificationError, match="cryptographic"):
            verify_sigstore(_with_raw_signature(sig, raw), [k.public_key()], d, ident)
    with pytest.raises(VerificationError, match="cryptographic"):
        verify_sigstore(_with_raw_signature(sig, p1363), [other.public_key()], d, ident)


def test_ecdsa_asn1_is_never_reread_as_p1363() -> None:
    """A signature Go's asn1.Unmarshal parses (SEQUENCE of two INTEGERs, trailing bytes allowed) is verified as
    DER only, strictly: DER with trailing garbage is refused, not retried as r||s."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from ocilayout.signature.sigstore import _go_parses_as_asn1

    k = ec.generate_private_key(ec.SECP256R1())
    d = Digest.of(b"manifest")
    sig = sign_sigstore(k, d, "registry.example.com/test/img:v1", timestamp=1)
    der = base64.b64decode(sig.signature_b64 or "")
    assert _go_parses_as_asn1(der) and _go_parses_as_asn1(der + b"\x00\x00")
    with pytest.raises(VerificationError, match="cryptographic"):
        verify_sigstore(_with_raw_signature(sig, der + b"\x00\x00"), [k.public_key()], d,
                        exact_identity("registry.example.com/test/img:v1"))
    assert not _go_parses_as_asn1(b"\x30\x80" + der[2:])  # indefinite length
    assert not _go_parses_as_asn1(b"\x30\x81\x06\x02\x01\x01\x02\x01\x01")  # non-minimal length
    assert not _go_parses_as_asn1(b"\x30\x06\x02\x01\x01\x04\x01\x01")  # second element not an INTEGER
    assert not _go_parses_as_asn1(b"\x30\x07\x02\x02\x00\x01\x02\x01\x01")  # non-minimal INTEGER
    assert _go_parses_as_asn1(b"\x30\x09\x02\x01\x01\x02\x01\x01\x05\x00\x00")  # extra element inside


def test_envelope_duplicate_keys_refused() -> None:
    good = b'\x00sigstore-json\n{"mimeType":"m","payload":"eA==","annotations":{}}'
    assert signature_from_blob(good).payload == b"x"
    for bad in (b'\x00sigstore-json\n{"mimeType":"m","payload":"eA==","payload":"eQ==","annotations":{}}',
                b'\x00sigstore-json\n{"mimeType":"m","payload":"eA==","PAYLOAD":"eQ==","annotations":{}}',
                b'\x00sigstore-json\n{"mimeType":"m","payload":"eA==","annotations":{"a":"1","a":"2"}}',
                b'\x00sigstore-json\n{"mimeType":"m","payload":"eA==","annotations":{},"x":NaN}',
                b'\x00sigstore-json\n' + b'[' * 100_000 + b']' * 100_000):
        with pytest.raises(VerificationError, match="invalid sigstore signature"):
            signature_from_blob(bad)
