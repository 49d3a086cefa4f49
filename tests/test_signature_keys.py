"""Encrypted cosign / sigstore keys: real Go-made keys decrypt, ours round-trip, bad keys fail cleanly."""

from __future__ import annotations

import base64
import json
import re
import stat
from pathlib import Path

import pytest

from ocilayout.errors import Conflict, InvalidKey
from ocilayout.signature import keys

DOC = Path(__file__).resolve().parent.parent.parent / "shared" / "docs" / "signatures.md"

# sigstore/cosign pkg/cosign/keys_test.go (passphrase "hello"): pemcosignkey, pemcosigneckey, pemsigstorekey.
PEMCOSIGNKEY = b"""-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----
eyJrZGYiOnsibmFtZSI6InNjcnlwdCIsInBhcmFtcyI6eyJOIjozMjc2OCwiciI6
OCwicCI6MX0sInNhbHQiOiJ4WWdoc09JTUxUWGNOT0RsclNIOUNKc1FlOVFnZmN1
cmUrMXlLdHh1TlkwPSJ9LCJjaXBoZXIiOnsibmFtZSI6Im5hY2wvc2VjcmV0Ym94
Iiwibm9uY2UiOiI0cS9PSlVmaXJkSUkrUjZ0ajZBMmcyQ0JqL25xdFNicCJ9LCJj
aXBoZXJ0ZXh0IjoiKzB4Q3NzcFN0WStBczdKanJpOWtsbHBWd2JhcUI4ZWJNdWto
eS9aVE1MSXRsL3B1YS9jWVJvbytLRGxMWWdmOW1kSjk4K1FnQW9oTktoYnJPMTcw
MHdBY1JTMjFDOE4zQUNJRUVZaWpOMllBNnMraGJSbkhjUnd4eGhDMDFtb2FvL0dO
Y1pmbEJheXZMV3pXblo4d2NDZ2ZpT1o1VXlRTEFJMHh0dnR6dEh3cTdDV1Vhd3V4
RlhlNDZzck9TUE9SNHN6bytabWErUGovSFE9PSJ9
-----END ENCRYPTED COSIGN PRIVATE KEY-----
"""
PEMCOSIGNECKEY = b"""-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----
eyJrZGYiOnsibmFtZSI6InNjcnlwdCIsInBhcmFtcyI6eyJOIjo2NTUzNiwiciI6
OCwicCI6MX0sInNhbHQiOiJHK3F5WTYrNzhNS0JzMXNGTGs1ajYwcS9kS3Z1czBW
VkhlSHZybC9POTF3PSJ9LCJjaXBoZXIiOnsibmFtZSI6Im5hY2wvc2VjcmV0Ym94
Iiwibm9uY2UiOiJRc2JGdG13WDRDK2ttV3ZCcVRaMEFGOUFYdk1jRmg1SCJ9LCJj
aXBoZXJ0ZXh0IjoiREM5T28zeldiYVQzSXYwdFVnWEdycjUxYW1samwwNlQ5MTNP
VkxPbWpuMWhnK2o2WXRUbWg3SGhZSlY1N2J5eGE0Q281bE9YYmRqbTJ3aklubEd1
Um5aZCt5OExnekpSNzFSeEhKVzgrWmRlcFJmYWJMTjdHbDgrSFZEcERVQ3NxQnRh
VngyblpGbFEwWUl1anZwbFphblNGaUVvdERLVGkxZ3VhUXIwUHNzYU01NXZxbTRY
WS9rPSJ9
-----END ENCRYPTED COSIGN PRIVATE KEY-----
"""
PEMSIGSTOREKEY = b"""-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----
eyJrZGYiOnsibmFtZSI6InNjcnlwdCIsInBhcmFtcyI6eyJOIjozMjc2OCwiciI6
OCwicCI6MX0sInNhbHQiOiI3T3VGd2VsbWZZNXVId2NoaURSc210anNwZ2ZlZjFG
Mk5lOGFDTjVLYVpZPSJ9LCJjaXBoZXIiOnsibmFtZSI6Im5hY2wvc2VjcmV0Ym94
Iiwibm9uY2UiOiJQNHk4OGhCb3ZTa09MbXN0bFVBaGJwdDJ0K2xTNUxQSCJ9LCJj
aXBoZXJ0ZXh0IjoiMnB1QzdyZldJOWh3bnJlQ2s4aUZDRlVwQlRrSzRJNlIvbFBF
cnBDekpXUGpJWXl4eGVIL1A2VW52cFJHdVhla1NNb3JMdGhLamdoQ1JlNy82NDVH
QWtoVm1LRC92eEF0S2EvbE1abENSQ3FlekJGUFd1dzNpeFRtZ2xhb2J1ZFVSbUVs
bmNGOGlZbzBTMVl6Y1ZOMVFwY2J2c0dNcUlYRzVlbmdteGp5dCtBcXlyZTF0Q0Y0
V01tU1BlaEljNlBqd2h1Q2xHaVpJUWRvTGc9PSJ9
-----END ENCRYPTED SIGSTORE PRIVATE KEY-----
"""


def doc_pem_blocks() -> list[str]:
    if not DOC.exists():
        pytest.skip(f"{DOC} not found")
    return re.findall(r"```\n(-----BEGIN [^\n]*-----\n.*?-----END [^\n]*-----)\n```", DOC.read_text(), re.S)


@pytest.mark.parametrize(
    ("priv", "pub", "passphrase", "label", "n"),
    [
        (0, 1, b"skopeo-test-passphrase", keys.COSIGN_LABEL, 32768),  # skopeo 1.13.3 generate-sigstore-key
        (2, 3, b"modern-passphrase", keys.SIGSTORE_LABEL, 65536),  # go-securesystemslib (cosign >= 2.2)
        (4, 5, b"test-passphrase", keys.COSIGN_LABEL, 32768),  # python-made, accepted by skopeo 1.9.3
    ],
)
def test_documented_keys_decrypt(priv: int, pub: int, passphrase: bytes, label: str, n: int) -> None:
    blocks = doc_pem_blocks()
    pem = blocks[priv].encode()
    assert label in blocks[priv]
    assert json.loads(base64.b64decode("".join(blocks[priv].splitlines()[1:-1])))["kdf"]["params"]["N"] == n
    key = keys.decrypt_private_key(pem, passphrase)
    assert keys.public_key_pem(key.public_key()).decode().strip() == blocks[pub]
    with pytest.raises(InvalidKey, match="wrong passphrase"):
        keys.decrypt_private_key(pem, passphrase + b"x")


def test_cosign_test_vectors() -> None:
    for pem in (PEMCOSIGNKEY, PEMSIGSTOREKEY):
        assert keys.decrypt_private_key(pem, b"hello").curve.name == "secp256r1"
    with pytest.raises(InvalidKey, match="not PKCS#8"):
        keys.decrypt_private_key(PEMCOSIGNECKEY, b"hello")  # SEC1 plaintext, refused as cosign does


@pytest.mark.parametrize("n", [32768, 65536, 131072])
def test_roundtrip_all_scrypt_presets(n: int) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    k = ec.generate_private_key(ec.SECP256R1())
    for label in (keys.COSIGN_LABEL, keys.SIGSTORE_LABEL):
        pem = keys.encrypt_private_key(k, b"pw", n=n, label=label)
        back = keys.decrypt_private_key(pem, b"pw")
        assert back.private_numbers() == k.private_numbers()


def test_generated_key_format() -> None:
    priv, pub = keys.generate_key_pair(b"secret-pass")
    text = priv.decode()
    assert text.startswith("-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n")
    body = text.splitlines()[1:-1]
    assert all(len(line) == 64 for line in body[:-1]) and 0 < len(body[-1]) <= 64
    doc_raw = base64.b64decode("".join(body))
    doc = json.loads(doc_raw)
    # Go json.Marshal field order and compactness
    assert list(doc) == ["kdf", "cipher", "ciphertext"]
    assert doc_raw.startswith(b'{"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":"')
    assert len(base64.b64decode(doc["kdf"]["salt"])) == 32 and len(base64.b64decode(doc["cipher"]["nonce"])) == 24
    # plaintext is PKCS#8: 138 bytes for P-256, so the sealed box is 16 + 138
    assert len(base64.b64decode(doc["ciphertext"])) == 16 + 138
    k = keys.decrypt_private_key(priv, b"secret-pass")
    assert keys.public_key_pem(k.public_key()) == pub
    assert pub.startswith(b"-----BEGIN PUBLIC KEY-----\n")


def _rewrap(pem: bytes, mutate) -> bytes:
    lines = pem.decode().splitlines()
    doc = json.loads(base64.b64decode("".join(lines[1:-1])))
    mutate(doc)
    body = base64.b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode()
    return f"{lines[0]}\n{body}\n{lines[-1]}\n".encode()


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d["kdf"]["params"].update(N=16384), "unexpected kdf parameters"),
        (lambda d: d["kdf"]["params"].update(r=16), "unexpected kdf parameters"),
        (lambda d: d["kdf"].update(name="pbkdf2"), "unsupported kdf"),
        (lambda d: d["cipher"].update(name="aes"), "unsupported cipher"),
        (lambda d: d["cipher"].update(nonce=base64.b64encode(b"x" * 12).decode()), "nonce"),
        (lambda d: d.pop("ciphertext"), "malformed"),
        (lambda d: d.update(ciphertext=d["ciphertext"][:-8] + "AAAAAAA="), "wrong passphrase or corrupted"),
    ],
)
def test_bad_key_documents(mutate, reason: str) -> None:
    pem, _ = keys.generate_key_pair(b"pw")
    with pytest.raises(InvalidKey, match=reason):
        keys.decrypt_private_key(_rewrap(pem, mutate), b"pw")


def test_truncated_and_foreign_keys() -> None:
    pem, pub = keys.generate_key_pair(b"pw")
    for bad in (pem[: len(pem) // 2], pem.replace(b"COSIGN", b"OTHER"), b"", b"garbage", pub):
        with pytest.raises(InvalidKey):
            keys.decrypt_private_key(bad, b"pw")
    with pytest.raises(InvalidKey):
        keys.load_public_key(pem)


def test_write_key_pair_modes_and_no_overwrite(tmp_path: Path) -> None:
    priv, pub = keys.write_key_pair(tmp_path / "k", b"pw")
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert stat.S_IMODE(pub.stat().st_mode) == 0o644
    before = priv.read_bytes()
    with pytest.raises(Conflict):
        keys.write_key_pair(tmp_path / "k", b"pw")
    assert priv.read_bytes() == before
    (tmp_path / "only.pub").write_bytes(b"x")
    with pytest.raises(Conflict):
        keys.write_key_pair(tmp_path / "only", b"pw")
    assert not (tmp_path / "only.private").exists()


def test_peer_cosign_public_keys_load() -> None:
    from conftest import read_peer

    for name in ("cosign.pub", "cosign2.pub", "some-rsa-key.pub"):
        assert keys.load_public_key(read_peer(f"containers-image/signature/fixtures/{name}")) is not None


def test_skopeo_signs_with_our_key(tmp_path: Path, skopeo) -> None:
    """Real skopeo signs with a key we generated (upstream builds); Debian's build has sigstore disabled."""
    from conftest import peer_path

    from ocilayout.signature.model import SigstoreSignature, signature_from_blob
    from ocilayout.signature.sigstore import exact_identity, verify_sigstore
    from ocilayout.signature.storage import DirSignatures

    priv, pub = keys.write_key_pair(tmp_path / "k", b"our-pass")
    (tmp_path / "pw").write_bytes(b"our-pass\n")
    src = peer_path("skopeo/integration/fixtures/uncompressed-image-s2")
    res = skopeo("copy", "--sign-by-sigstore-private-key", str(priv), "--sign-passphrase-file", str(tmp_path / "pw"),
                 "--sign-identity", "registry.example.com/t/x:1", f"dir:{src}", f"dir:{tmp_path / 'out'}", check=False)
    if "sigstore disabled" in res.stderr:
        pytest.skip("this skopeo build has sigstore signing disabled (Debian-local change); "
                    "GPG interop is tested with it instead")
    assert res.returncode == 0, res.stderr
    store = DirSignatures(tmp_path / "out")
    [sig] = store.list(store.manifest_digest())
    assert isinstance(sig, SigstoreSignature)
    assert signature_from_blob(sig.to_blob()) == sig
    verify_sigstore(sig, [keys.load_public_key(pub.read_bytes())], store.manifest_digest(),
                    exact_identity("registry.example.com/t/x:1"))
