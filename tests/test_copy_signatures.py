"""copy carries signatures between layouts and archives, drops them on request, signs on the way, and refuses
to make a new index that existing signatures would not cover."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import assert_fsck

from ocilayout.copy import CopyOptions, Selection, Signing, copy
from ocilayout.descriptor import Platform
from ocilayout.errors import UnsupportedFormat, VerificationError
from ocilayout.sample import make_image, make_index
from ocilayout.signature.image import sign_image, verify_image
from ocilayout.signature.keys import decrypt_private_key, generate_key_pair, load_public_key
from ocilayout.signature.storage import sig_tag
from ocilayout.store import LayoutStore

IDENT = "registry.example.com/team/app:1.0"
PASS = b"correct horse"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, object, Path, Path]:
    priv_pem, pub_pem = generate_key_pair(PASS, n=32768)
    d = tmp_path_factory.mktemp("keys")
    (d / "k.key").write_bytes(priv_pem)
    (d / "k.pub").write_bytes(pub_pem)
    (d / "pass").write_bytes(PASS + b"\n")
    return decrypt_private_key(priv_pem, PASS), load_public_key(pub_pem), d / "k.key", d / "pass"


def test_signatures_travel_oci_to_oci_and_archive(sample: Path, tmp_path: Path, keys) -> None:  # type: ignore[no-untyped-def]
    priv, pub, _, _ = keys
    sign_image(f"oci:{sample}:v1", priv, IDENT)
    res = copy(f"oci:{sample}:v1", f"oci:{tmp_path}/d:v1")
    assert res.signatures_copied == 1
    _, good = verify_image(f"oci:{tmp_path}/d:v1", [pub], IDENT)
    assert len(good) == 1
    res = copy(f"oci:{tmp_path}/d:v1", f"oci-archive:{tmp_path}/a.tar:v1")
    assert res.signatures_copied == 1
    verify_image(f"oci-archive:{tmp_path}/a.tar:v1", [pub], IDENT)
    back = copy(f"oci-archive:{tmp_path}/a.tar:v1", f"oci:{tmp_path}/back:v1")
    assert back.signatures_copied == 1
    verify_image(f"oci:{tmp_path}/back:v1", [pub], IDENT)
    assert_fsck(tmp_path / "d")
    assert_fsck(tmp_path / "back")


def test_remove_signatures(sample: Path, tmp_path: Path, keys) -> None:  # type: ignore[no-untyped-def]
    priv, pub, _, _ = keys
    sign_image(f"oci:{sample}:v1", priv, IDENT)
    res = copy(f"oci:{sample}:v1", f"oci:{tmp_path}/d:v1", CopyOptions(signing=Signing(remove=True)))
    assert res.signatures_copied == 0
    assert LayoutStore.open(tmp_path / "d").refs() == ["v1"]
    with pytest.raises(VerificationError, match="no sigstore signatures"):
        verify_image(f"oci:{tmp_path}/d:v1", [pub], IDENT)


def test_existing_destination_signatures_are_kept(sample: Path, tmp_path: Path, keys) -> None:  # type: ignore[no-untyped-def]
    priv, pub, _, _ = keys
    copy(f"oci:{sample}:v1", f"oci:{tmp_path}/d:v1")
    sign_image(f"oci:{tmp_path}/d:v1", priv, "registry.example.com/team/other:2")  # only in the destination
    sign_image(f"oci:{sample}:v1", priv, IDENT)
    copy(f"oci:{sample}:v1", f"oci:{tmp_path}/d:v1")
    store = LayoutStore.open(tmp_path / "d")
    sig_manifest = store.get_manifest(store.resolve(sig_tag(store.resolve("v1").digest)))
    assert len(sig_manifest.layers) == 2  # appended, not replaced
    verify_image(f"oci:{tmp_path}/d:v1", [pub], IDENT)
    verify_image(f"oci:{tmp_path}/d:v1", [pub], "registry.example.com/team/other:2")


def test_sign_on_the_way_cli(cli, sample: Path, tmp_path: Path, keys) -> None:  # type: ignore[no-untyped-def]
    _, pub, key, passfile = keys
    res = cli("copy", "--sign-by-sigstore-private-key", key, "--sign-passphrase-file", passfile,
              "--sign-identity", IDENT, f"oci:{sample}:v1", f"oci-archive:{tmp_path}/s.tar:v1")
    assert res.exit_code == 0, res
    assert "signed" in res.stderr
    _, good = verify_image(f"oci-archive:{tmp_path}/s.tar:v1", [pub], IDENT)
    assert [g.docker_reference for g in good] == [IDENT]
    assert good[0].manifest_digest == str(LayoutStore.open(sample).resolve("v1").digest)


def test_sign_on_the_way_bad_passphrase_writes_nothing(cli, sample: Path, tmp_path: Path, keys) -> None:  # type: ignore[no-untyped-def]
    _, _, key, _ = keys
    bad = tmp_path / "bad"
    bad.write_text("Xyzzy-not-it\n")
    res = cli("copy", "--sign-by-sigstore-private-key", key, "--sign-passphrase-file", bad,
              "--sign-identity", IDENT, f"oci:{sample}:v1", f"oci:{tmp_path}/d:v1")
    assert res.exit_code == 8 and res.stderr.count("\n") == 1 and "Xyzzy" not in res.stderr
    assert not (tmp_path / "d").exists()


def test_sign_needs_an_identity(cli, sample: Path, tmp_path: Path, keys) -> None:  # type: ignore[no-untyped-def]
    _, _, key, passfile = keys
    res = cli("copy", "--sign-by-sigstore-private-key", key, "--sign-passphrase-file", passfile,
              f"oci:{sample}:v1", f"oci:{tmp_path}/d:v1")
    assert res.exit_code == 2 and "--sign-identity" in res.stderr
    assert not (tmp_path / "d" / "index.json").exists() or LayoutStore.open(tmp_path / "d").refs() == []
    # a full docker reference as the destination tag is identity enough
    res = cli("copy", "--sign-by-sigstore-private-key", key, "--sign-passphrase-file", passfile,
              f"oci:{sample}:v1", f"oci:{tmp_path}/d:{IDENT}")
    assert res.exit_code == 0, res
    verify_image(f"oci:{tmp_path}/d:{IDENT}", [keys[1]], IDENT)


def test_platform_subset_of_signed_index_refused(tmp_path: Path, keys) -> None:  # type: ignore[no-untyped-def]
    priv, pub, _, _ = keys
    store = LayoutStore.create(tmp_path / "s")
    plats = [Platform("linux", "amd64"), Platform("linux", "arm64"), Platform("linux", "s390x")]
    imgs = [make_image(store, [{"p": str(p).encode()}], platform=p) for p in plats]
    make_index(store, imgs, tag="multi")
    sign_image(f"oci:{store.root}:multi", priv, IDENT)
    subset = CopyOptions(select=Selection(platforms=(plats[0], plats[1])))
    with pytest.raises(UnsupportedFormat, match="--remove-signatures"):
        copy(f"oci:{store.root}:multi", f"oci:{tmp_path}/d:sub", subset)
    assert not (tmp_path / "d" / "index.json").exists() or LayoutStore.open(tmp_path / "d").refs() == []
    copy(f"oci:{store.root}:multi", f"oci:{tmp_path}/d:sub",
         CopyOptions(select=subset.select, signing=Signing(remove=True)))
    # the whole index keeps its digest, so its signature travels and still verifies
    res = copy(f"oci:{store.root}:multi", f"oci:{tmp_path}/d:all", CopyOptions(select=Selection(all=True)))
    assert res.signatures_copied == 1
    verify_image(f"oci:{tmp_path}/d:all", [pub], IDENT)
    assert_fsck(tmp_path / "d")


def test_archive_destination_appends_to_its_signatures(sample: Path, tmp_path: Path, keys) -> None:  # type: ignore[no-untyped-def]
    priv, pub, _, _ = keys
    archive = f"oci-archive:{tmp_path}/a.tar:v1"
    copy(f"oci:{sample}:v1", archive)
    sign_image(archive, priv, "registry.example.com/team/other:2")  # a signature only the archive has
    sign_image(f"oci:{sample}:v1", priv, IDENT)
    res = copy(f"oci:{sample}:v1", archive)
    assert res.signatures_copied == 1
    _, a = verify_image(archive, [pub], IDENT)
    _, b = verify_image(archive, [pub], "registry.example.com/team/other:2")
    assert len(a) == len(b) == 1
    from ocilayout.archive import ArchiveReader

    with ArchiveReader.open(tmp_path / "a.tar") as reader:
        sig = reader.get_manifest(reader.resolve(sig_tag(reader.resolve("v1").digest)))
        assert len(sig.layers) == 2


def test_concurrent_signers_on_one_archive_all_survive(sample: Path, tmp_path: Path, keys) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys

    _, pub, key, _ = keys
    archive = f"oci-archive:{tmp_path}/a.tar:v1"
    copy(f"oci:{sample}:v1", archive)
    env = {**os.environ, "OCILAYOUT_PASSPHRASE": PASS.decode()}
    idents = [f"registry.example.com/team/app{i}:1" for i in range(4)]
    procs = [subprocess.Popen([sys.executable, "-m", "ocilayout", "sign", archive, "--key", str(key),
                               "--identity", ident], env=env, stderr=subprocess.PIPE) for ident in idents]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    for ident in idents:
        verify_image(archive, [pub], ident)
