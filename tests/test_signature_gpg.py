"""GPG simple signing: containers/image's GPG fixtures give upstream's verdicts; real skopeo and we agree."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import materialize_peer_dir, peer_path, read_peer, require_tool

from ocilayout.digest import Digest
from ocilayout.errors import InvalidManifest, NotFound, VerificationError
from ocilayout.manifest import manifest_digest
from ocilayout.signature.gpg import GPGKeyring, sign_simple, verify_simple
from ocilayout.signature.model import SimpleSigningSignature
from ocilayout.signature.payload import GPG_TYPE, parse_payload
from ocilayout.signature.policy import ImageToVerify, Policy
from ocilayout.signature.sigstore import exact_identity
from ocilayout.signature.storage import DirSignatures

FIX = "containers-image/signature/fixtures"
SKOPEO_FIX = "skopeo/cmd/skopeo/fixtures"
DOC = Path(__file__).resolve().parent.parent.parent / "shared" / "docs" / "signatures.md"
FPR = "08CD26E446E2E95249B7A405E932F44B23E8DD43"
FPR_PRIMARY_WITH_SUBKEY = "B9F4CDB9FD8C475BFA340AC38D54A947EE396F36"
FPR_SUBKEY = "57D1D95BBC53BA0EAFF0718CD75B3109B3BAAEAF"
FPR_OTHER = "0123456789ABCDEF0123456789ABCDEF01234567"
IMAGE_DIGEST = "sha256:20bf21ed457b390829cdbeec8795a7bea1626991fda603e0d01b4e7f60427e55"


@pytest.fixture(autouse=True)
def _gpg() -> None:
    require_tool("gpg")


@pytest.fixture(scope="module")
def ring() -> Iterator[GPGKeyring]:
    peer_path(FIX)
    with GPGKeyring.ephemeral([read_peer(f"{FIX}/{n}") for n in (
        "public-key.gpg", "public-key-with-subkey.gpg", "public-key-with-revoked-subkey.gpg")]) as r:
        yield r


def materialize(name: str, dest: Path) -> Path:
    return materialize_peer_dir(f"{FIX}/{name}", dest)


def test_keyring_imports_primary_fingerprints(ring: GPGKeyring) -> None:
    assert ring.imported == [FPR, FPR_PRIMARY_WITH_SUBKEY, "6D88C5A1993648A17B2BB0DC6B8499AF63388D63"]


@pytest.mark.parametrize(
    ("name", "accepted", "error"),
    [
        ("image.signature", [FPR], None),
        ("no-optional-fields.signature", [FPR], None),
        ("subkey.signature", [FPR_PRIMARY_WITH_SUBKEY], None),
        ("subkey.signature-v3", [FPR_PRIMARY_WITH_SUBKEY], None),
        ("subkey.signature", [FPR_SUBKEY], None),
        ("image.signature", [FPR_OTHER], "is not accepted"),
        ("invalid-reference.signature", [FPR], "invalid docker reference"),
        ("invalid-blob.signature", [FPR], "invalid signature payload"),
        ("invalid-blob.signature-v3", [FPR], "invalid signature payload"),
        ("subkey-revoked.signature", ["6D88C5A1993648A17B2BB0DC6B8499AF63388D63"], "revoked"),
        ("subkey-revoked.signature-v3", ["6D88C5A1993648A17B2BB0DC6B8499AF63388D63"], "revoked"),
        ("expired.signature", [FPR], "expired"),
        ("corrupt.signature", [FPR], "bad signature"),
        ("corrupt.signature-v3", [FPR], "bad signature"),
        ("unknown-key.signature", [FPR], "not in the keyring"),
        ("unknown-key.signature-v3", [FPR], "not in the keyring"),
        ("unsigned-literal.signature", [FPR], "signature count 0"),
        ("unsigned-encrypted.signature", [FPR], "encrypted"),
    ],
)
def test_gpg_fixture_verdicts(ring: GPGKeyring, name: str, accepted: list[str], error: str | None) -> None:
    blob = read_peer(f"{FIX}/{name}")
    ident = "testing/manifest:latest" if name.startswith("subkey") else "testing/manifest"  # what each claims
    if error is None:
        v = verify_simple(blob, ring, accepted, IMAGE_DIGEST, exact_identity(ident))
        assert v.manifest_digest == IMAGE_DIGEST and v.key_identity == accepted[0]
    else:
        with pytest.raises(VerificationError, match=error):
            verify_simple(blob, ring, accepted, IMAGE_DIGEST, exact_identity(ident))


def test_gpg_identity_and_digest_rules(ring: GPGKeyring) -> None:
    blob = read_peer(f"{FIX}/image.signature")
    with pytest.raises(VerificationError, match="does not match"):
        verify_simple(blob, ring, [FPR], IMAGE_DIGEST, exact_identity("testing/manifest:latest"))
    with pytest.raises(VerificationError, match="does not match the image digest"):
        verify_simple(blob, ring, [FPR], str(Digest.of(b"x")), exact_identity("testing/manifest"))
    assert manifest_digest(read_peer(f"{FIX}/image.manifest.json")) == Digest.parse(IMAGE_DIGEST)


def _signed_by_policy(keyfile: str) -> Policy:
    raw = ('{"default":[{"type":"reject"}],"transports":{"dir":{"":[{"type":"signedBy","keyType":"GPGKeys",'
           f'"keyPath":"{peer_path(f"{FIX}/{keyfile}")}",'
           '"signedIdentity":{"type":"exactRepository","dockerRepository":"testing/manifest"}}]}}}')
    return Policy.parse(raw.encode())


@pytest.mark.parametrize(
    ("fixture", "keyfile", "passed", "reason"),
    [
        ("dir-img-valid", "public-key.gpg", True, FPR),
        ("dir-img-valid-2", "public-key.gpg", True, FPR),
        ("dir-img-mixed", "public-key.gpg", True, FPR),
        ("dir-img-valid-subkey", "public-key-with-subkey.gpg", True, FPR_PRIMARY_WITH_SUBKEY),
        ("dir-img-valid", "public-key-2.gpg", False, "not in the keyring"),
        ("dir-img-modified-manifest", "public-key.gpg", False, "does not match the image digest"),
        ("dir-img-unsigned", "public-key.gpg", False, "no signature exists"),
    ],
)
def test_gpg_dir_fixture_verdicts(tmp_path: Path, fixture: str, keyfile: str, passed: bool, reason: str) -> None:
    d = materialize(fixture, tmp_path)
    store = DirSignatures(d)
    digest = store.manifest_digest()
    sigs = store.list(digest)
    assert all(isinstance(s, SimpleSigningSignature) for s in sigs)
    [r] = _signed_by_policy(keyfile).evaluate("dir", [str(d)], ImageToVerify(digest, sigs)).results
    assert r.passed is passed, r.reason
    assert reason in r.reason


def test_gpg_dir_manifest_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidManifest):
        DirSignatures(materialize("dir-img-manifest-digest-error", tmp_path)).manifest_digest()
    with pytest.raises(NotFound):
        DirSignatures(materialize("dir-img-no-manifest", tmp_path)).manifest_digest()


# -- interop with Debian's skopeo (GPG works there) --------------------------------------------------------


@pytest.fixture
def secret_ring(monkeypatch: pytest.MonkeyPatch) -> Iterator[GPGKeyring]:
    """A throwaway GNUPGHOME with skopeo's fixture secret key, exported as $GNUPGHOME for skopeo."""
    peer_path(SKOPEO_FIX)
    with GPGKeyring.ephemeral([read_peer(f"{SKOPEO_FIX}/pubring.gpg"), read_peer(f"{SKOPEO_FIX}/secring.gpg")]) as r:
        monkeypatch.setenv("GNUPGHOME", str(r.home))
        yield r


def test_skopeo_accepts_our_gpg_signature(tmp_path: Path, secret_ring: GPGKeyring, skopeo) -> None:
    manifest = peer_path(f"{SKOPEO_FIX}/image.manifest.json")
    blob = sign_simple(secret_ring, manifest_digest(manifest.read_bytes()), "registry.example.com/test/img:v1", FPR)
    assert blob[0] in (0xA3, 0x90)  # binary OpenPGP message, as containers/image's FromBlob allow-list wants
    sig = tmp_path / "ours.sig"
    sig.write_bytes(blob)
    out = skopeo("standalone-verify", str(manifest), "registry.example.com/test/img:v1", FPR, str(sig))
    assert out.stdout.strip() == f"Signature verified, digest {IMAGE_DIGEST}"
    bad = skopeo("standalone-verify", str(manifest), "registry.example.com/test/img:v2", FPR, str(sig), check=False)
    assert bad.returncode != 0 and "does not match" in bad.stderr
    payload = parse_payload(secret_ring.verify(blob).content, GPG_TYPE)
    assert payload.creator.startswith("ocilayout ")


def test_we_accept_skopeo_gpg_signature(tmp_path: Path, secret_ring: GPGKeyring, skopeo, cli) -> None:
    manifest = peer_path(f"{SKOPEO_FIX}/image.manifest.json")
    sig = tmp_path / "skopeo.sig"
    skopeo("standalone-sign", str(manifest), "docker.io/library/busybox:latest", FPR, "-o", str(sig))
    v = verify_simple(sig.read_bytes(), secret_ring, [FPR], IMAGE_DIGEST, exact_identity("busybox:latest"))
    assert v.creator.startswith("atomic ")
    # and through the CLI, with only the public key in a keyring file (no GNUPGHOME needed)
    res = cli("standalone-verify", manifest, "index.docker.io/library/busybox:latest", FPR, sig,
              "--keyring", peer_path(f"{SKOPEO_FIX}/pubring.gpg"))
    assert res.exit_code == 0, res
    assert res.stdout == f"Signature verified using fingerprint {FPR}, digest {IMAGE_DIGEST}\n"
    res = cli("standalone-verify", manifest, "busybox", FPR, sig, "--keyring", peer_path(f"{SKOPEO_FIX}/pubring.gpg"))
    assert res.exit_code == 8 and "does not match" in res.stderr


def test_cli_gpg_sign_with_gnupghome_then_skopeo_verifies(tmp_path: Path, secret_ring: GPGKeyring, skopeo,
                                                         cli) -> None:
    manifest = peer_path(f"{SKOPEO_FIX}/image.manifest.json")
    sig = tmp_path / "cli.sig"
    res = cli("standalone-sign", manifest, "registry.example.com/x:1", FPR, "-o", sig)
    assert res.exit_code == 0, res
    out = skopeo("standalone-verify", str(manifest), "registry.example.com/x:1", FPR, str(sig))
    assert "Signature verified" in out.stdout
    res = cli("standalone-sign", manifest, "registry.example.com/x:1", FPR_OTHER, "-o", tmp_path / "no.sig")
    assert res.exit_code == 8 and res.stderr.startswith("ocilayout: error: gpg could not sign")


def test_skopeo_fixture_signatures(secret_ring: GPGKeyring) -> None:
    man = read_peer(f"{SKOPEO_FIX}/image.manifest.json")
    d = manifest_digest(man)
    verify_simple(read_peer(f"{SKOPEO_FIX}/image.signature"), secret_ring, [FPR], d,
                  exact_identity("testing/manifest"))
    with pytest.raises(VerificationError):
        verify_simple(read_peer(f"{SKOPEO_FIX}/corrupt.signature"), secret_ring, [FPR], d,
                      exact_identity("testing/manifest"))


def test_documented_skopeo_gpg_vector() -> None:
    if not DOC.exists():
        pytest.skip(f"{DOC} not found")
    text = DOC.read_text()
    pubkey = re.search(r"-----BEGIN PGP PUBLIC KEY BLOCK-----.*?-----END PGP PUBLIC KEY BLOCK-----", text, re.S)
    b64 = re.search(r"`gpg.sig` as base64[^\n]*\n```\n(.*?)```", text, re.S)
    blob = base64.b64decode("".join(b64.group(1).split()))
    assert len(blob) == 594
    assert hashlib.sha256(blob).hexdigest() == "675357fb8df8a361e4e1d9fa51a9f5eb79664a7e7d08c9358d8402e7e8455b1f"
    manifest = re.search(r"```\n(\{\"schemaVersion\":2,\"config\".*?\})\n```", text).group(1).encode() + b"\n"
    gpg_payload = next(line for line in text.splitlines() if line.startswith('{"critical"') and "atomic 5.23.1" in line)
    with GPGKeyring.ephemeral([pubkey.group(0).encode()]) as r:
        fpr = "543938F0D6E93FC87068EB78F84B21F091CDD4B5"
        assert r.imported == [fpr]
        assert r.verify(blob).content == gpg_payload.encode()
        v = verify_simple(blob, r, [fpr], manifest_digest(manifest), exact_identity("registry.example.com/test/img:v1"))
        assert v.timestamp == 1795863939


@pytest.mark.parametrize(
    ("extra", "accepted"),
    [
        ("", True),
        (',"extra":{"a":1,"a":2}', True),  # a repeat inside an ignored optional value: Go's plain decoding takes it
        (',"extra":[{"k":{"z":1,"z":2}}]', True),
        (',"creator":"y"', False),  # a repeat in optional itself: ParanoidUnmarshalJSONObject refuses it
        (',"x":' + "9" * 400, False),  # beyond float64, even where ignored
        (',"x":1e400', False),
    ],
)
def test_payload_duplicate_rules_agree_with_skopeo(tmp_path: Path, secret_ring: GPGKeyring, skopeo, cli,
                                                   extra: str, accepted: bool) -> None:
    manifest = peer_path(f"{SKOPEO_FIX}/image.manifest.json")
    payload = ('{"critical":{"identity":{"docker-reference":"registry.example.com/x:1"},"image":'
               f'{{"docker-manifest-digest":"{IMAGE_DIGEST}"}},"type":"atomic container signature"}},'
               f'"optional":{{"creator":"x"{extra}}}}}').encode()
    sig = tmp_path / "hand.sig"
    sig.write_bytes(secret_ring.sign(payload, FPR))
    theirs = skopeo("standalone-verify", str(manifest), "registry.example.com/x:1", FPR, str(sig), check=False)
    ours = cli("standalone-verify", manifest, "registry.example.com/x:1", FPR, sig)
    assert (theirs.returncode == 0, ours.exit_code == 0) == (accepted, accepted), (theirs.stderr, ours)
    if not accepted:
        assert ours.exit_code == 8
