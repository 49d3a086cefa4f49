"""Signatures that live with the image: cosign's .sig tag in oci: layouts and archives, dir: signature-N,
and the sign / verify commands (with a containers policy)."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest
from conftest import peer_path, read_peer

from ocilayout.digest import Digest
from ocilayout.errors import UnsupportedFormat
from ocilayout.sample import build_sample_layout
from ocilayout.signature import keys
from ocilayout.signature.model import SIGNATURE_ANNOTATION, SIMPLESIGNING_MEDIA_TYPE, SigstoreSignature
from ocilayout.signature.sigstore import exact_identity, sign_sigstore, verify_sigstore
from ocilayout.signature.storage import (
    LayoutSignatures,
    SignatureStorage,
    sig_config_bytes,
    sig_manifest_bytes,
    sig_tag,
    sigstore_layer,
)
from ocilayout.store import LayoutStore

DOC = Path(__file__).resolve().parent.parent.parent / "shared" / "docs" / "signatures.md"
PASS = "layout-pass"
IDENT = "registry.example.com/app:1.0"


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    build_sample_layout(tmp_path / "lay")
    return tmp_path / "lay"


@pytest.fixture
def keypair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setenv("OCILAYOUT_PASSPHRASE", PASS)
    return keys.write_key_pair(tmp_path / "k", PASS.encode())


def _key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def test_sig_manifest_and_config_bytes_match_containers_image() -> None:
    if not DOC.exists():
        pytest.skip(f"{DOC} not found")
    lines = DOC.read_text().splitlines()
    layer = next(x for x in lines if x.startswith('{"critical"') and "127.0.0.1:5987" in x).encode()
    man = next(x for x in lines if x.startswith('{"schemaVersion":2,"mediaType"')).encode()
    cfg = next(x for x in lines if x.startswith('{"architecture":""')).encode()
    b64 = re.search(rb'"dev.cosignproject.cosign/signature":"([^"]+)"', man).group(1).decode()
    sig = SigstoreSignature(SIMPLESIGNING_MEDIA_TYPE, layer, {SIGNATURE_ANNOTATION: b64})
    desc = sigstore_layer(sig)
    assert desc["digest"] == "sha256:957646e7a827a2757d89b6ca43790ea70689c952532f78e24c111cefe40833c0"
    config = sig_config_bytes([desc["digest"]])
    assert config == cfg and len(config) == 153
    manifest = sig_manifest_bytes({"mediaType": "application/vnd.oci.image.config.v1+json",
                                   "digest": str(Digest.of(config)), "size": len(config)}, [desc])
    assert manifest == man and len(manifest) == 558


def test_layout_append_never_replaces(layout: Path, skopeo) -> None:
    store = LayoutStore.open(layout)
    sigs = LayoutSignatures(store)
    assert isinstance(sigs, SignatureStorage)
    digest = store.resolve("v1").digest
    assert sigs.list(digest) == []
    k1, k2 = _key(), _key()
    s1 = sign_sigstore(k1, digest, IDENT, timestamp=1)
    s2 = sign_sigstore(k2, digest, "registry.example.com/app:1.1", timestamp=2)
    sigs.add(digest, s1)
    sigs.add(digest, s2)
    sigs.add(digest, s1)  # an exact duplicate is skipped, as containers/image does
    got = sigs.list(digest)
    assert got == [s1, s2]
    verify_sigstore(got[0], [k1.public_key()], digest, exact_identity(IDENT))
    # the stored manifest and config are exactly what containers/image would write
    desc = store.resolve(sig_tag(digest))
    raw = store.read_blob_bytes(desc)
    doc = json.loads(raw)
    cfg_raw = store.read_blob_bytes(Digest.parse(doc["config"]["digest"]))
    assert cfg_raw == sig_config_bytes([sigstore_layer(s1)["digest"], sigstore_layer(s2)["digest"]])
    assert raw == sig_manifest_bytes(doc["config"], [sigstore_layer(s1), sigstore_layer(s2)])
    assert desc.media_type == "application/vnd.oci.image.manifest.v1+json"
    # the other tags are untouched and the layout stays readable by real skopeo
    assert sorted(store.refs()) == sorted(["v1", "multi", sig_tag(digest)])
    out = skopeo("inspect", "--raw", f"oci:{layout}:{sig_tag(digest)}")
    assert out.stdout.encode().rstrip(b"\n") == raw


def test_concurrent_signers_all_survive(layout: Path) -> None:
    store = LayoutStore.open(layout)
    digest = store.resolve("v1").digest
    k = _key()
    sigs = [sign_sigstore(k, digest, f"registry.example.com/app:{i}", timestamp=i) for i in range(6)]
    errors: list[BaseException] = []

    def add(s: SigstoreSignature) -> None:
        try:
            LayoutSignatures(LayoutStore.open(layout)).add(digest, s)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=add, args=(s,)) for s in sigs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    stored = LayoutSignatures(LayoutStore.open(layout)).list(digest)
    assert sorted(s.payload for s in stored) == sorted(s.payload for s in sigs)


def test_appends_to_cosign_style_manifest(layout: Path) -> None:
    """An existing .sig manifest with cosign's field order keeps its layer when we append."""
    store = LayoutStore.open(layout)
    digest = store.resolve("v1").digest
    old = sign_sigstore(_key(), digest, IDENT, timestamp=7)
    pl = store.put_bytes(old.payload, SIMPLESIGNING_MEDIA_TYPE)
    cfg = store.put_bytes(b'{"architecture":"","created":"0001-01-01T00:00:00Z","os":"","config":{},'
                          b'"rootfs":{"type":"layers","diff_ids":["' + str(pl.digest).encode() + b'"]}}',
                          "application/vnd.oci.image.config.v1+json")
    cosign_doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                  "config": {"mediaType": cfg.media_type, "size": cfg.size, "digest": str(cfg.digest)},
                  "layers": [{"mediaType": SIMPLESIGNING_MEDIA_TYPE, "size": pl.size, "digest": str(pl.digest),
                              "annotations": dict(old.annotations)}]}
    m = store.put_bytes(json.dumps(cosign_doc).encode(), "application/vnd.oci.image.manifest.v1+json")
    store.set_ref(sig_tag(digest), m)
    new = sign_sigstore(_key(), digest, IDENT, timestamp=8)
    LayoutSignatures(store).add(digest, new)
    assert LayoutSignatures(store).list(digest) == [old, new]
    docker = store.put_bytes(json.dumps({**cosign_doc, "mediaType":
                                         "application/vnd.docker.distribution.manifest.v2+json"}).encode(),
                             "application/vnd.docker.distribution.manifest.v2+json")
    store.set_ref(sig_tag(digest), docker)
    with pytest.raises(UnsupportedFormat):
        LayoutSignatures(store).list(digest)


def test_cli_sign_verify_oci(layout: Path, keypair: tuple[Path, Path], cli) -> None:
    priv, pub = keypair
    res = cli("sign", f"oci:{layout}:v1", "--key", priv, "--identity", IDENT)
    assert res.exit_code == 0, res
    digest = LayoutStore.open(layout).resolve("v1").digest
    assert res.stdout == f"Signed {digest} as {IDENT}\n"
    assert cli("sign", f"oci:{layout}:v1", "--key", priv, "--identity", "registry.example.com/app:2").exit_code == 0
    res = cli("verify", f"oci:{layout}:v1", "--public-key", pub, "--identity", IDENT)
    assert (res.exit_code, res.stdout) == (0, f"Signature verified, digest {digest}, identity {IDENT}\n"), res
    res = cli("verify", f"oci:{layout}:v1", "--public-key", pub, "--identity", "registry.example.com/app")
    assert res.exit_code == 0 and res.stdout.count("Signature verified") == 2
    for args, code in [
        (("--public-key", pub, "--identity", "registry.example.com/app:9"), 8),
        (("--public-key", peer_path("containers-image/signature/fixtures/cosign.pub"), "--identity", IDENT), 8),
        (("--public-key", pub), 2),  # tag "v1" is no docker identity
        ((), 2),
    ]:
        r = cli("verify", f"oci:{layout}:v1", *args)
        assert r.exit_code == code and r.stderr.startswith("ocilayout: error: ") and r.stderr.count("\n") == 1, r
    r = cli("verify", f"oci:{layout}:multi", "--public-key", pub, "--identity", IDENT)
    assert r.exit_code == 8 and "no sigstore signatures" in r.stderr
    r = cli("sign", f"oci:{layout}:nope", "--key", priv, "--identity", IDENT)
    assert r.exit_code == 3


def test_cli_sign_uses_full_docker_ref_name(tmp_path: Path, keypair: tuple[Path, Path], cli) -> None:
    from ocilayout.sample import make_image

    store = LayoutStore.create(tmp_path / "l2")
    make_image(store, tag="docker.io/library/app:1.0")
    priv, pub = keypair
    res = cli("sign", f"oci:{tmp_path / 'l2'}:docker.io/library/app:1.0", "--key", priv)
    assert res.exit_code == 0 and res.stdout.endswith("as docker.io/library/app:1.0\n"), res
    res = cli("verify", f"oci:{tmp_path / 'l2'}:docker.io/library/app:1.0", "--public-key", pub)
    assert res.exit_code == 0, res


def test_cli_sign_verify_oci_archive(layout: Path, tmp_path: Path, keypair: tuple[Path, Path], cli) -> None:
    from ocilayout.archive import ArchiveReader
    from ocilayout.copy import copy

    archive = tmp_path / "img.tar"
    copy(f"oci:{layout}:v1", f"oci-archive:{archive}:v1")
    priv, pub = keypair
    for ident in (IDENT, "registry.example.com/app:1.1"):
        assert cli("sign", f"oci-archive:{archive}:v1", "--key", priv, "--identity", ident).exit_code == 0
    res = cli("verify", f"oci-archive:{archive}:v1", "--public-key", pub, "--identity", "registry.example.com/app")
    assert res.exit_code == 0 and res.stdout.count("Signature verified") == 2, res
    with ArchiveReader.open(archive) as r:
        digest = r.resolve("v1").digest
        assert sorted(r.refs()) == sorted(["v1", sig_tag(digest)])
        assert len(LayoutSignatures(r).list(digest)) == 2


def test_cli_sign_verify_dir(tmp_path: Path, keypair: tuple[Path, Path], cli) -> None:
    fix = "containers-image/signature/fixtures/dir-img-cosign-valid"
    d = tmp_path / "img"
    d.mkdir()
    for f in sorted(peer_path(fix).iterdir()):
        (d / f.name).write_bytes(read_peer(f"{fix}/{f.name}"))
    priv, pub = keypair
    assert cli("sign", f"dir:{d}", "--key", priv, "--identity", IDENT).exit_code == 0
    assert (d / "signature-1").read_bytes() == read_peer(f"{fix}/signature-1")  # appended, not replaced
    assert (d / "signature-2").read_bytes().startswith(b"\x00sigstore-json\n")
    res = cli("verify", f"dir:{d}", "--public-key", pub, "--identity", IDENT)
    assert res.exit_code == 0, res
    cosign_pub = peer_path("containers-image/signature/fixtures/cosign.pub")
    res = cli("verify", f"dir:{d}", "--public-key", cosign_pub, "--public-key", pub, "--identity",
              "192.168.64.2:5000/cosign-signed-single-sample")
    assert res.exit_code == 0 and res.stdout.count("Signature verified") == 1, res


def test_cli_verify_with_policy(layout: Path, tmp_path: Path, keypair: tuple[Path, Path], cli) -> None:
    priv, pub = keypair
    assert cli("sign", f"oci:{layout}:v1", "--key", priv, "--identity", IDENT).exit_code == 0
    pem_b64 = __import__("base64").b64encode(pub.read_bytes()).decode()
    policy = tmp_path / "policy.json"

    def write(reqs: list[dict]) -> None:
        policy.write_text(json.dumps({"default": [{"type": "reject"}],
                                      "transports": {"oci": {str(layout.resolve()): reqs}}}))

    write([{"type": "sigstoreSigned", "keyPath": str(pub),
            "signedIdentity": {"type": "exactReference", "dockerReference": IDENT}},
           {"type": "sigstoreSigned", "keyData": pem_b64, "signedIdentity": {"type": "matchRepository"}}])
    res = cli("verify", f"oci:{layout}:v1", "--policy", policy, "--identity", "registry.example.com/app:other")
    assert res.exit_code == 0, res
    assert res.stdout.count("  PASS sigstoreSigned") == 2 and f"oci:{layout.resolve()}" in res.stdout
    res = cli("verify", f"oci:{layout}:v1", "--policy", policy)  # no identity: matchRepository cannot match
    assert res.exit_code == 8 and "  PASS sigstoreSigned" in res.stdout and "  FAIL sigstoreSigned" in res.stdout
    assert res.stderr.startswith("ocilayout: error: ") and res.stderr.count("\n") == 1
    write([{"type": "sigstoreSigned", "keyPath": str(pub), "signedIdentity": {"type": "matchExact"}}])
    res = cli("verify", f"oci:{layout}:v1", "--policy", policy, "--identity", "registry.example.com/app:1.1")
    assert res.exit_code == 8 and "not accepted" in res.stdout
    res = cli("verify", f"oci:{layout}:multi", "--policy", policy, "--identity", IDENT)
    assert res.exit_code == 8 and "no signature exists" in res.stdout
    policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    assert cli("verify", f"oci:{layout}:multi", "--policy", policy).exit_code == 0
    for bad in ({"default": []}, {"default": [{"type": "sigstoreSigned"}]}, {"x": 1},
                {"default": [{"type": "reject", "extra": 1}]}):
        policy.write_text(json.dumps(bad))
        r = cli("verify", f"oci:{layout}:v1", "--policy", policy)
        assert r.exit_code == 8 and r.stderr.startswith("ocilayout: error: policy"), r
