"""The signing commands end to end: outputs, exit codes, one-line errors, and no secret in any output."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import peer_path, read_peer

from ocilayout.errors import InvalidKey
from ocilayout.signature import keys
from ocilayout.signature.payload import SIGSTORE_TYPE, build_payload
from ocilayout.signature.sigstore import sign_sigstore_payload

PASS = "correct horse battery staple"
FIX = "containers-image/signature/fixtures"
REF = "registry.example.com/test/img:v1"


@pytest.fixture
def keypair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli) -> tuple[Path, Path]:
    monkeypatch.setenv("OCILAYOUT_PASSPHRASE", PASS)
    res = cli("generate-sigstore-key", "--output-prefix", tmp_path / "k")
    assert res.exit_code == 0, res
    monkeypatch.delenv("OCILAYOUT_PASSPHRASE")
    return tmp_path / "k.private", tmp_path / "k.pub"


@pytest.fixture
def passfile(tmp_path: Path) -> Path:
    p = tmp_path / "pass.txt"
    p.write_text(PASS + "\nsecond line is ignored\n")
    return p


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    p = tmp_path / "manifest.json"
    p.write_bytes(b'{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json",'
                  b'"digest":"sha256:' + b"a" * 64 + b'","size":2},"layers":[]}\n')
    return p


def one_error_line(res, code: int | None = None) -> str:
    assert res.exit_code != 0, res
    if code is not None:
        assert res.exit_code == code, res
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ocilayout: error: "), res
    assert "Traceback" not in res.stderr
    return lines[0]


def secrets_of(private: Path) -> list[str]:
    """Strings that must never be printed: the passphrase and forms of the private key."""
    key = keys.decrypt_private_key(private.read_bytes(), PASS.encode())
    scalar = key.private_numbers().private_value.to_bytes(32, "big")
    return [PASS, scalar.hex(), scalar.hex().upper(), base64.b64encode(scalar).decode(),
            str(key.private_numbers().private_value)]


def test_generate_modes_and_overwrite(tmp_path: Path, keypair: tuple[Path, Path], cli, passfile: Path) -> None:
    priv, pub = keypair
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600 and stat.S_IMODE(pub.stat().st_mode) == 0o644
    assert keys.decrypt_private_key(priv.read_bytes(), PASS.encode())
    line = one_error_line(cli("generate-sigstore-key", "--output-prefix", tmp_path / "k", "--passphrase-file",
                              passfile), 6)
    assert "refusing to overwrite" in line
    res = cli("generate-sigstore-key", "--output-prefix", tmp_path / "f", "--passphrase-file", passfile)
    assert res.exit_code == 0 and PASS not in res.stdout + res.stderr
    # --passphrase-file uses the first line only, like skopeo
    assert keys.decrypt_private_key((tmp_path / "f.private").read_bytes(), PASS.encode())


def test_generate_without_passphrase_source_fails_cleanly(tmp_path: Path, cli, monkeypatch) -> None:
    monkeypatch.delenv("OCILAYOUT_PASSPHRASE", raising=False)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)
    line = one_error_line(cli("generate-sigstore-key", "--output-prefix", tmp_path / "k"), 8)
    assert "passphrase" in line
    assert not (tmp_path / "k.private").exists()


def test_sign_and_verify_roundtrip(tmp_path: Path, keypair, manifest: Path, passfile: Path, cli) -> None:
    priv, pub = keypair
    sig = tmp_path / "sig"
    res = cli("standalone-sign", manifest, REF, "--key", priv, "--passphrase-file", passfile, "-o", sig)
    assert res.exit_code == 0 and res.stdout == "" and res.stderr == "", res
    assert sig.read_bytes().startswith(b"\x00sigstore-json\n{\"mimeType\":")
    from ocilayout.manifest import manifest_digest

    d = manifest_digest(manifest.read_bytes())
    res = cli("standalone-verify", manifest, "registry.example.com/test/img:v1", "--public-key", pub, sig)
    assert (res.exit_code, res.stdout) == (0, f"Signature verified, digest {d}\n"), res
    for s in secrets_of(priv):
        assert s not in res.stdout + res.stderr
    # other reference, other key, other manifest
    assert "does not match" in one_error_line(cli("standalone-verify", manifest, "registry.example.com/test/img:v2",
                                                  "--public-key", pub, sig), 8)
    other = peer_path(f"{FIX}/cosign.pub")
    assert "cryptographic" in one_error_line(cli("standalone-verify", manifest, REF, "--public-key", other, sig), 8)
    m2 = tmp_path / "m2.json"
    m2.write_bytes(manifest.read_bytes() + b" ")
    assert "does not match the image digest" in one_error_line(
        cli("standalone-verify", m2, REF, "--public-key", pub, sig), 8)


def test_verify_cosign_fixture(cli) -> None:
    res = cli("standalone-verify", peer_path(f"{FIX}/dir-img-cosign-valid/manifest.json"),
              "192.168.64.2:5000/cosign-signed-single-sample", "--public-key", peer_path(f"{FIX}/cosign.pub"),
              peer_path(f"{FIX}/dir-img-cosign-valid/signature-1"))
    assert res.exit_code == 0 and res.stdout.startswith("Signature verified, digest sha256:634a8f35"), res


def _signed_payload(tmp_path: Path, name: str, payload: bytes) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives.asymmetric import ec

    k = ec.generate_private_key(ec.SECP256R1())
    sig = tmp_path / name
    sig.write_bytes(sign_sigstore_payload(k, payload).to_blob())
    pub = tmp_path / (name + ".pub")
    pub.write_bytes(keys.public_key_pem(k.public_key()))
    return sig, pub


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda p: p.replace(b'"type":', b'"extra":true,"type":'), 'unknown key "extra" in critical'),
        (lambda p: p.replace(b'"type":', b'"type":"x","type":'), "duplicate key"),
        (lambda p: p.replace(b'"timestamp":1', b'"timestamp":NaN'), "NaN"),
        (lambda p: p.replace(b"sha256:", b"sha256:0"), "invalid manifest digest"),
        (lambda p: p.replace(REF.encode(), b"UPPERCASE/x:1"), "invalid docker reference"),
    ],
)
def test_bad_payloads_rejected(tmp_path: Path, manifest: Path, cli, mutate, reason: str) -> None:
    from ocilayout.manifest import manifest_digest

    good = build_payload(str(manifest_digest(manifest.read_bytes())), REF, SIGSTORE_TYPE, creator="t", timestamp=1)
    sig, pub = _signed_payload(tmp_path, "bad", mutate(good))
    assert reason in one_error_line(cli("standalone-verify", manifest, REF, "--public-key", pub, sig), 8)


def test_wrong_passphrase_truncated_key_and_bad_args(tmp_path: Path, keypair, manifest: Path, cli,
                                                      monkeypatch) -> None:
    priv, pub = keypair
    monkeypatch.setenv("OCILAYOUT_PASSPHRASE", "wrong")
    assert "wrong passphrase" in one_error_line(
        cli("standalone-sign", manifest, REF, "--key", priv, "-o", tmp_path / "s"), 8)
    assert not (tmp_path / "s").exists()
    trunc = tmp_path / "trunc.private"
    trunc.write_bytes(priv.read_bytes()[:300])
    monkeypatch.setenv("OCILAYOUT_PASSPHRASE", PASS)
    one_error_line(cli("standalone-sign", manifest, REF, "--key", trunc, "-o", tmp_path / "s"), 8)
    assert "invalid docker reference" in one_error_line(
        cli("standalone-sign", manifest, "NotValid", "--key", priv, "-o", tmp_path / "s"), 2)
    one_error_line(cli("standalone-sign", manifest, REF, "ABCDEF", "--key", priv, "-o", tmp_path / "s"), 2)
    one_error_line(cli("standalone-sign", tmp_path / "missing.json", REF, "--key", priv, "-o", tmp_path / "s"), 3)
    one_error_line(cli("standalone-verify", manifest, REF, "--public-key", pub, tmp_path / "nosig"), 3)
    one_error_line(cli("standalone-verify", manifest, REF, "FPR", "--public-key", pub, tmp_path / "nosig"), 2)
    one_error_line(cli("standalone-verify", manifest, REF, "--public-key", priv, tmp_path / "nosig"), 3)


def test_huge_signature_file_refused_unread(tmp_path: Path, keypair, manifest: Path, cli) -> None:
    _, pub = keypair
    big = tmp_path / "big.sig"
    with big.open("wb") as f:
        f.write(b"\x00sigstore-json\n")
        f.truncate(10 * 1024 * 1024)
    assert "limit" in one_error_line(cli("standalone-verify", manifest, REF, "--public-key", pub, big), 8)
    assert "limit" in one_error_line(cli("standalone-verify", manifest, REF, "ABC", big), 8)


def test_gpg_fixture_through_cli(cli) -> None:
    args = [peer_path(f"{FIX}/image.manifest.json"), "testing/manifest", "08CD26E446E2E95249B7A405E932F44B23E8DD43"]
    ring = ["--keyring", peer_path(f"{FIX}/public-key.gpg")]
    res = cli("standalone-verify", *args, peer_path(f"{FIX}/image.signature"), *ring)
    assert res.exit_code == 0 and res.stdout.startswith(
        "Signature verified using fingerprint 08CD26E446E2E95249B7A405E932F44B23E8DD43, digest sha256:20bf21ed"), res
    for bad in ("expired.signature", "corrupt.signature", "invalid-reference.signature"):
        path = peer_path(f"{FIX}/{bad}")
        if len(read_peer(f"{FIX}/{bad}")) != path.stat().st_size:
            pytest.skip("fixture stored as a link")
        one_error_line(cli("standalone-verify", *args, path, *ring), 8)


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ocilayout", *args], capture_output=True, text=True, env=env,
                          timeout=120, check=False)


def test_no_secret_in_debug_tracebacks(tmp_path: Path, keypair, manifest: Path) -> None:
    priv, pub = keypair
    secrets = secrets_of(priv)
    env = dict(os.environ, OCILAYOUT_PASSPHRASE=PASS)
    ok = _run(["--debug", "standalone-sign", str(manifest), REF, "--key", str(priv), "-o", str(tmp_path / "s")], env)
    assert ok.returncode == 0, ok.stderr
    # failures with --debug print a traceback; none may carry the passphrase or key material
    env_wrong = dict(os.environ, OCILAYOUT_PASSPHRASE=PASS + "-wrong")
    runs = [
        _run(["--debug", "standalone-sign", str(manifest), REF, "--key", str(priv), "-o", str(tmp_path / "t")],
             env_wrong),
        _run(["--debug", "standalone-sign", str(manifest), "BAD REF", "--key", str(priv), "-o", str(tmp_path / "t")],
             env),
        _run(["--debug", "standalone-verify", str(manifest), "other.example/x:1", "--public-key", str(pub),
              str(tmp_path / "s")], env),
        _run(["standalone-sign", str(manifest), REF, "--key", str(priv), "-o", str(tmp_path / "u")], env_wrong),
    ]
    assert "Traceback" in runs[0].stderr  # --debug really shows tracebacks
    for r in [ok, *runs]:
        assert r.returncode != 0 or r is ok
        for s in secrets:
            assert s not in r.stdout and s not in r.stderr, f"secret leaked in {r.args}"
        assert (PASS + "-wrong") not in r.stderr


def test_imports_stay_light() -> None:
    code = ("import sys, ocilayout.cli.sign, ocilayout.signature.keys, ocilayout.signature.sigstore, "
            "ocilayout.signature.gpg, ocilayout.signature.policy, ocilayout.signature.storage, "
            "ocilayout.signature.image;"
            "print(sorted(m for m in ('cryptography', 'nacl') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_secret_free_reprs() -> None:
    from ocilayout.signature.gpg import GPGKeyring
    from ocilayout.signature.model import SigstoreSignature

    s = SigstoreSignature("m", b"PAYLOAD-BYTES", {})
    assert "PAYLOAD-BYTES" not in repr(s)
    with GPGKeyring.ephemeral() as r:
        assert "ephemeral=True" in repr(r)


# -- fail closed, one error class per kind ---------------------------------------------------------------------


def test_policy_refusals_are_one_line_exit_8(tmp_path: Path, cli) -> None:
    pol = tmp_path / "policy.json"
    cases = {
        b'{"default":' + b"[" * 100_000 + b"]" * 100_000 + b"}": "nested too deeply",
        b'{"default":[{"type":"reject"}],"default":[{"type":"insecureAcceptAnything"}]}': "duplicate key",
        b'{"default":[{"type":"reject"}],"transports":{"oci":{"srv/x":[{"type":"reject"}]}}}': "absolute path",
        b'{"default":[{"type":"reject"}],"transports":{"oci":{"/":[{"type":"reject"}]}}}': 'default scope ""',
        b'{"default":[{"type":"reject"}],"transports":{"dir":{"/srv/":[{"type":"reject"}]}}}': "canonical",
    }
    for raw, reason in cases.items():
        pol.write_bytes(raw)
        assert reason in one_error_line(cli("verify", f"oci:{tmp_path / 'none'}:v1", "--policy", pol), 8)


def test_policy_rejection_comes_from_the_library(tmp_path: Path, cli, sample: Path) -> None:
    pol = tmp_path / "policy.json"
    import json

    pol.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}], "transports": {"oci": {
        str(sample.resolve()): [{"type": "reject"}, {"type": "reject"}]}}}))
    res = cli("verify", f"oci:{sample}:v1", "--policy", pol)
    line = one_error_line(res, 8)
    assert line.endswith("is rejected by the policy: reject: rejected by policy; reject: rejected by policy")
    assert res.stdout.count("FAIL reject") == 2


def test_passphrase_file_strips_one_newline_only(tmp_path: Path, cli) -> None:
    # containers/image pkg/cli ReadPassphraseFile: the first line, strings.TrimSuffix(line, "\n"): a CRLF file
    # keeps its "\r", so a key made from it opens in skopeo with the same file
    pf = tmp_path / "crlf.txt"
    pf.write_bytes(b"pw\r\nignored\n")
    assert cli("generate-sigstore-key", "--output-prefix", tmp_path / "k", "--passphrase-file", pf).exit_code == 0
    priv = (tmp_path / "k.private").read_bytes()
    assert keys.decrypt_private_key(priv, b"pw\r")
    with pytest.raises(InvalidKey):
        keys.decrypt_private_key(priv, b"pw")
    for content, want in ((b"pw", b"pw"), (b"pw\n\n", b"pw"), (b"  pw \n", b"  pw "), (b"\n", b""), (b"", b"")):
        pf.write_bytes(content)
        assert keys.read_passphrase_file(pf) == want


def test_oversized_passphrase_and_keyring_are_key_errors(tmp_path: Path, cli, keypair, manifest: Path) -> None:
    priv, _ = keypair
    big = tmp_path / "big"
    with big.open("wb") as f:
        f.truncate(17 * 1024 * 1024)  # one line of NULs, longer than any limit
    line = one_error_line(cli("standalone-sign", manifest, REF, "--key", priv, "--passphrase-file", big,
                              "-o", tmp_path / "s"), 8)
    assert "passphrase file" in line and "limit" in line
    assert not (tmp_path / "s").exists()
    line = one_error_line(cli("generate-sigstore-key", "--output-prefix", tmp_path / "n", "--passphrase-file", big), 8)
    assert "limit" in line
    sig = tmp_path / "gpg.sig"
    sig.write_bytes(read_peer(f"{FIX}/image.signature"))
    line = one_error_line(cli("standalone-verify", manifest, REF, "ABCD", sig, "--keyring", big), 8)
    assert "keyring" in line and "limit" in line
    # a long file whose first line is short is fine, as skopeo reads only the first line
    long = tmp_path / "long"
    long.write_bytes(PASS.encode() + b"\n" + b"x" * (1024 * 1024))
    assert keys.read_passphrase_file(long) == PASS.encode()


def test_standalone_sign_output_is_new_atomic_0644(tmp_path: Path, keypair, manifest: Path, cli,
                                                   monkeypatch) -> None:
    priv, _ = keypair
    monkeypatch.setenv("OCILAYOUT_PASSPHRASE", PASS)
    out = tmp_path / "out" / "sig"
    out.parent.mkdir()
    res = cli("standalone-sign", manifest, REF, "--key", priv, "-o", out)
    assert res.exit_code == 0, res
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert sorted(p.name for p in out.parent.iterdir()) == ["sig"]  # no temp file left
    before = out.read_bytes()
    assert "refusing to overwrite" in one_error_line(cli("standalone-sign", manifest, REF, "--key", priv, "-o", out), 6)
    assert out.read_bytes() == before
    dangling = tmp_path / "out" / "link"
    dangling.symlink_to(tmp_path / "elsewhere")
    one_error_line(cli("standalone-sign", manifest, REF, "--key", priv, "-o", dangling), 6)
    assert not (tmp_path / "elsewhere").exists()
    one_error_line(cli("standalone-sign", manifest, REF, "--key", priv, "-o", tmp_path / "no" / "dir" / "s"), 3)


def test_write_new_file_refuses_existing_and_leaves_nothing(tmp_path: Path) -> None:
    from ocilayout.errors import Conflict, NotFound
    from ocilayout.signature.output import write_new_file

    p = write_new_file(tmp_path / "a", b"one", 0o600)
    assert p.read_bytes() == b"one" and stat.S_IMODE(p.stat().st_mode) == 0o600
    with pytest.raises(Conflict):
        write_new_file(tmp_path / "a", b"two", 0o600)
    assert p.read_bytes() == b"one"
    (tmp_path / "d").mkdir()
    with pytest.raises(Conflict):
        write_new_file(tmp_path / "d", b"x", 0o644)
    with pytest.raises(NotFound):
        write_new_file(tmp_path / "missing" / "x", b"x", 0o644)
    assert sorted(q.name for q in tmp_path.iterdir()) == ["a", "d"]


def test_load_private_key_asks_for_the_passphrase_only_when_needed(tmp_path: Path, keypair) -> None:
    from ocilayout.errors import NotFound

    priv, pub = keypair
    asked: list[int] = []

    def provider() -> bytes:
        asked.append(1)
        return PASS.encode()

    with pytest.raises(NotFound):
        keys.load_private_key(tmp_path / "missing", provider)
    with pytest.raises(InvalidKey):
        keys.load_private_key(pub, provider)  # not a private key: refused before asking
    assert asked == []
    assert keys.load_private_key(priv, provider) and asked == [1]


def test_key_file_with_duplicate_json_keys_refused() -> None:
    pem, _ = keys.generate_key_pair(b"pw")
    lines = pem.decode().splitlines()
    raw = base64.b64decode("".join(lines[1:-1]))
    dup = raw.replace(b'"ciphertext":', b'"ciphertext":"AAAA","ciphertext":', 1)
    bad = f"{lines[0]}\n{base64.b64encode(dup).decode()}\n{lines[-1]}\n".encode()
    with pytest.raises(InvalidKey, match="duplicate key"):
        keys.decrypt_private_key(bad, b"pw")


def test_standalone_verify_library(tmp_path: Path, keypair, manifest: Path) -> None:
    from ocilayout.errors import InvalidReference, VerificationError
    from ocilayout.signature.standalone import standalone_sign, standalone_verify

    priv, pub = keypair
    key = keys.decrypt_private_key(priv.read_bytes(), PASS.encode())
    raw = manifest.read_bytes()
    blob = standalone_sign(raw, REF, private_key=key)
    v = standalone_verify(raw, REF, blob, public_keys=[pub])
    assert v.docker_reference == REF
    assert standalone_verify(raw, REF, blob, public_keys=[pub.read_bytes()]).manifest_digest == v.manifest_digest
    with pytest.raises(InvalidReference):
        standalone_verify(raw, "NOT VALID", blob, public_keys=[tmp_path / "missing"])  # reference first
    with pytest.raises(VerificationError, match="sigstore signature"):
        standalone_verify(raw, REF, blob, fingerprints=["ABCD"])
