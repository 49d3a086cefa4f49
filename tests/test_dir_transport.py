"""dir: images, read and written exactly as containers/image's directory transport does (skopeo 1.9.3 is the
peer): the file set byte for byte, skopeo's overwrite rule, signatures (sigstore and GPG) carried both ways,
and bad input refused with nothing written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import assert_fsck, materialize_peer_dir, peer_path, read_peer

from ocilayout.copy import CopyOptions, Selection, copy, copy_into
from ocilayout.errors import Conflict, LayoutError, NotFound, UnsafePath, UnsupportedFormat
from ocilayout.signature import keys
from ocilayout.signature.gpg import GPGKeyring
from ocilayout.signature.model import signature_from_blob
from ocilayout.transports import open_destination, open_source
from ocilayout.transports.dir import VERSION

Skopeo = Callable[..., subprocess.CompletedProcess[str]]
SKOPEO_FIX = "skopeo/cmd/skopeo/fixtures"
FPR = "08CD26E446E2E95249B7A405E932F44B23E8DD43"
GPG_IDENT = "docker.io/library/busybox:latest"
IDENT = "registry.example.com/app:1.0"
PASS = "dir-pass"


def tree(path: Path) -> dict[str, bytes]:
    """Every entry of a directory (recursively) with its bytes; symlinks as 'link:TARGET'."""
    out: dict[str, bytes] = {}
    for p in sorted(path.rglob("*")):
        rel = str(p.relative_to(path))
        if p.is_symlink():
            out[rel] = b"link:" + os.readlink(p).encode()
        elif p.is_file():
            out[rel] = p.read_bytes()
        else:
            out[rel] = b"<dir>"
    return out


def no_image(layout: Path) -> bool:
    """True when nothing was written: no layout, or (oci: makes the empty layout when the destination is
    opened, before the plan refuses) one whose index.json names nothing."""
    return not layout.exists() or json.loads((layout / "index.json").read_bytes())["manifests"] == []


def fsck_dir(cli, path: Path) -> None:  # type: ignore[no-untyped-def]
    res = cli("fsck", f"dir:{path}")
    assert res.exit_code == 0, res


@pytest.fixture
def keypair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setenv("OCILAYOUT_PASSPHRASE", PASS)
    return keys.write_key_pair(tmp_path / "k", PASS.encode())


@pytest.fixture
def gnupg(monkeypatch: pytest.MonkeyPatch) -> Iterator[GPGKeyring]:
    """A throwaway GNUPGHOME holding skopeo's fixture secret key, exported for skopeo."""
    peer_path(SKOPEO_FIX)
    with GPGKeyring.ephemeral([read_peer(f"{SKOPEO_FIX}/pubring.gpg"), read_peer(f"{SKOPEO_FIX}/secring.gpg")]) as r:
        monkeypatch.setenv("GNUPGHOME", str(r.home))
        yield r


# -- the format, against skopeo ----------------------------------------------------------------------------

@pytest.mark.parametrize(("tag", "flags"), [("v1", []), ("multi", ["--all"])])
def test_we_write_exactly_what_skopeo_writes(sample: Path, tmp_path: Path, cli, skopeo: Skopeo, tag: str,
                                             flags: list[str]) -> None:
    skopeo("copy", *flags, f"oci:{sample}:{tag}", f"dir:{tmp_path}/theirs")
    res = cli("copy", *flags, f"oci:{sample}:{tag}", f"dir:{tmp_path}/ours")
    assert res.exit_code == 0, res
    ours, theirs = tree(tmp_path / "ours"), tree(tmp_path / "theirs")
    assert ours == theirs  # same names (bare hex blobs, <hex>.manifest.json, version), same bytes
    assert ours["version"] == VERSION == b"Directory Transport Version: 1.1\n"
    if flags:
        assert sum(n.endswith(".manifest.json") for n in ours) == 2
    fsck_dir(cli, tmp_path / "ours")


def test_skopeo_reads_what_we_write(sample: Path, tmp_path: Path, cli, skopeo: Skopeo) -> None:
    assert cli("copy", "--all", f"oci:{sample}:multi", f"dir:{tmp_path}/d").exit_code == 0
    raw = skopeo("inspect", "--raw", f"dir:{tmp_path}/d").stdout
    with open_source(f"oci:{sample}:multi") as src:
        assert raw.encode() == src.get_manifest().raw
        want = src.root.digest
    skopeo("copy", "--all", f"dir:{tmp_path}/d", f"oci:{tmp_path}/back:x")
    with open_source(f"oci:{tmp_path}/back:x") as back:
        assert back.root.digest == want
    assert_fsck(tmp_path / "back")
    # a single image too, inspected by skopeo (its summary agrees with ours)
    assert cli("copy", f"oci:{sample}:v1", f"dir:{tmp_path}/one").exit_code == 0
    theirs = json.loads(skopeo("inspect", f"dir:{tmp_path}/one").stdout)
    ours = json.loads(cli("inspect", f"dir:{tmp_path}/one").stdout)
    assert {k: ours[k] for k in theirs} == theirs  # 1.9.3 lacks LayersData, which 1.22 (and ocilayout) print


def test_we_read_what_skopeo_writes(sample: Path, tmp_path: Path, cli, skopeo: Skopeo) -> None:
    skopeo("copy", "--all", f"oci:{sample}:multi", f"dir:{tmp_path}/sk")
    assert json.loads(cli("inspect", "--raw", f"dir:{tmp_path}/sk").stdout)["manifests"]
    assert cli("copy", "--all", f"dir:{tmp_path}/sk", f"oci:{tmp_path}/out:m").exit_code == 0
    with open_source(f"oci:{tmp_path}/out:m") as a, open_source(f"oci:{sample}:multi") as b:
        assert a.root.digest == b.root.digest
    assert_fsck(tmp_path / "out")
    fsck_dir(cli, tmp_path / "sk")
    # the default copy from a dir: index picks the host platform, as from any index
    assert cli("copy", f"dir:{tmp_path}/sk", f"oci:{tmp_path}/out:host").exit_code == 0
    res = cli("images", f"dir:{tmp_path}/sk")
    assert res.exit_code == 0 and res.stdout.count("\n") == 2 and "<none>" in res.stdout


def test_round_trip_oci_dir_oci_keeps_every_digest(sample: Path, tmp_path: Path, cli) -> None:
    assert cli("copy", "--all", f"oci:{sample}:multi", f"dir:{tmp_path}/d").exit_code == 0
    assert cli("copy", "--all", f"dir:{tmp_path}/d", f"oci:{tmp_path}/back:multi").exit_code == 0
    with open_source(f"oci:{sample}:multi") as a, open_source(f"oci:{tmp_path}/back:multi") as b:
        assert a.root.digest == b.root.digest and a.get_manifest().raw == b.get_manifest().raw
        for child in a.get_manifest().manifests:
            ma, mb = a.get_manifest(child), b.get_manifest(child)
            assert ma.raw == mb.raw and ma.config.digest == mb.config.digest
    blobs = sorted(p.name for p in (sample / "blobs/sha256").iterdir())
    with open_source(f"oci:{sample}:v1") as v1:  # the sample's v1 image is not part of multi
        others = {d.digest.hex for d in [v1.root, v1.get_manifest().config, *v1.get_manifest().layers]}
    assert sorted(p.name for p in (tmp_path / "back/blobs/sha256").iterdir()) == sorted(set(blobs) - others)
    assert_fsck(tmp_path / "back")


@pytest.mark.damages_layouts  # s2's copies keep its mislabelled layer: fsck is checked here, by hand
@pytest.mark.parametrize(("fixture", "problems"), [("skopeo/integration/fixtures/uncompressed-image-s1", set()),
                                                   ("skopeo/integration/fixtures/uncompressed-image-s2",
                                                    {"compression-mismatch"})])
def test_peer_dir_images_read_and_copy(tmp_path: Path, cli, skopeo: Skopeo, fixture: str, problems: set[str]) -> None:
    """skopeo's own dir: fixtures (s1 is a signed schema1 image, neither has a version file; s2's layer is an
    uncompressed tar its manifest calls gzip, and its config is typed application/octet-stream)."""
    src = materialize_peer_dir(fixture, tmp_path / "in")
    theirs = json.loads(skopeo("inspect", f"dir:{src}").stdout)
    ours = json.loads(cli("inspect", f"dir:{src}").stdout)
    assert {k: ours[k] for k in theirs} == theirs
    assert cli("copy", f"dir:{src}", f"dir:{tmp_path}/ours").exit_code == 0
    skopeo("copy", f"dir:{src}", f"dir:{tmp_path}/theirs")
    assert tree(tmp_path / "ours") == tree(tmp_path / "theirs")
    assert cli("copy", f"dir:{src}", f"oci:{tmp_path}/lay:x").exit_code == 0
    for where in (f"oci:{tmp_path}/lay", f"dir:{src}", f"dir:{tmp_path}/ours"):
        res = cli("fsck", "--json", where)
        assert {p["kind"] for p in json.loads(res.stdout)["problems"]} == problems
        assert res.exit_code == (4 if problems else 0)
    with open_source(f"dir:{src}") as a, open_source(f"oci:{tmp_path}/lay:x") as b:
        assert a.get_manifest().raw == b.get_manifest().raw


SIG_FIXTURE_DIRS = [
    "dir-img-valid", "dir-img-valid-2", "dir-img-valid-subkey", "dir-img-mixed", "dir-img-unsigned",
    "dir-img-modified-manifest", "dir-img-cosign-valid", "dir-img-cosign-valid-2", "dir-img-cosign-valid-with-tag",
    "dir-img-cosign-mixed", "dir-img-cosign-modified-manifest", "dir-img-cosign-other-attachment",
    "dir-img-cosign-fulcio-rekor-valid", "dir-img-cosign-key-rekor-valid", "dir-img-cosign-pki-valid",
]


@pytest.mark.parametrize("name", SIG_FIXTURE_DIRS)
def test_signature_fixture_dirs_read(tmp_path: Path, cli, name: str) -> None:
    """containers/image's signature fixtures: manifest.json and signature-N only (no blobs, no version)."""
    d = materialize_peer_dir(f"containers-image/signature/fixtures/{name}", tmp_path)
    res = cli("inspect", "--raw", f"dir:{d}")
    assert res.exit_code == 0 and res.stdout.encode() == (d / "manifest.json").read_bytes()
    with open_source(f"dir:{d}") as src:
        digest = src.get_manifest().digest
        sigs = src.signatures(digest)
    files = sorted(p.name for p in d.iterdir() if p.name.startswith("signature-"))
    assert [signature_from_blob((d / f).read_bytes()) for f in files] == list(sigs)
    assert (len(sigs) == 0) == (name == "dir-img-unsigned")
    res = cli("copy", f"dir:{d}", f"dir:{tmp_path}/out")  # its blobs are not there: refused, nothing written
    assert res.exit_code == 3 and "not found" in res.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize(("name", "code", "words"), [
    ("dir-img-no-manifest", 3, "manifest.json not found"),
    ("dir-img-cosign-no-manifest", 3, "manifest.json not found"),
    ("dir-img-manifest-digest-error", 4, "schema1"),
    ("dir-img-cosign-manifest-digest-error", 4, "schema1"),
])
def test_signature_fixture_dirs_refused(tmp_path: Path, cli, skopeo: Skopeo, name: str, code: int,
                                        words: str) -> None:
    d = materialize_peer_dir(f"containers-image/signature/fixtures/{name}", tmp_path)
    assert skopeo("inspect", f"dir:{d}", check=False).returncode != 0
    res = cli("inspect", f"dir:{d}")
    assert res.exit_code == code and words in res.stderr and res.stderr.count("\n") == 1, res


# -- signatures ---------------------------------------------------------------------------------------------

def test_sigstore_signatures_travel_oci_dir_archive(sample: Path, tmp_path: Path, keypair: tuple[Path, Path], cli,
                                                    skopeo: Skopeo) -> None:
    priv, pub = keypair
    assert cli("sign", f"oci:{sample}:v1", "--key", priv, "--identity", IDENT).exit_code == 0
    with open_source(f"oci:{sample}:v1") as src:
        [sig] = src.signatures(src.root.digest)
    res = cli("copy", f"oci:{sample}:v1", f"dir:{tmp_path}/d")
    assert res.exit_code == 0 and "1 signatures carried" in res.stderr
    assert (tmp_path / "d/signature-1").read_bytes() == sig.to_blob()
    assert not (tmp_path / "d/signature-2").exists()
    # skopeo carries our signature file dir: -> dir: byte for byte, and so do we
    skopeo("copy", f"dir:{tmp_path}/d", f"dir:{tmp_path}/sk")
    assert (tmp_path / "sk/signature-1").read_bytes() == sig.to_blob()
    # sign and verify work on dir: (a second signature is appended)
    assert cli("sign", f"dir:{tmp_path}/sk", "--key", priv, "--identity", IDENT).exit_code == 0
    res = cli("verify", f"dir:{tmp_path}/sk", "--public-key", pub, "--identity", IDENT)
    assert res.exit_code == 0 and res.stdout.count("Signature verified") == 2, res
    # and back: dir: -> oci-archive: -> oci: keeps both
    assert cli("copy", f"dir:{tmp_path}/sk", f"oci-archive:{tmp_path}/a.tar:v1").exit_code == 0
    assert cli("copy", f"oci-archive:{tmp_path}/a.tar:v1", f"oci:{tmp_path}/lay:v1").exit_code == 0
    res = cli("verify", f"oci:{tmp_path}/lay:v1", "--public-key", pub, "--identity", IDENT)
    assert res.exit_code == 0 and res.stdout.count("Signature verified") == 2, res
    assert cli("copy", f"oci:{tmp_path}/lay:v1", f"dir:{tmp_path}/again").exit_code == 0
    assert tree(tmp_path / "again") == tree(tmp_path / "sk")


def test_instance_signatures_of_an_index(sample: Path, tmp_path: Path, keypair: tuple[Path, Path], cli,
                                         skopeo: Skopeo) -> None:
    priv, _ = keypair
    with open_source(f"oci:{sample}:multi") as src:
        child = src.get_manifest().manifests[0].digest
    assert cli("sign", f"oci:{sample}@{child}", "--key", priv, "--identity", IDENT).exit_code == 0
    assert cli("sign", f"oci:{sample}:multi", "--key", priv, "--identity", IDENT).exit_code == 0
    assert cli("copy", "--all", f"oci:{sample}:multi", f"dir:{tmp_path}/d").exit_code == 0
    names = sorted(tree(tmp_path / "d"))
    assert "signature-1" in names and f"{child.hex}.signature-1" in names
    skopeo("copy", "--all", f"dir:{tmp_path}/d", f"dir:{tmp_path}/sk")
    assert tree(tmp_path / "sk") == tree(tmp_path / "d")
    # one platform out of the index: the instance becomes manifest.json, its signatures signature-N (as skopeo)
    skopeo("copy", "--override-arch", "amd64", f"dir:{tmp_path}/d", f"dir:{tmp_path}/sk-one")
    assert cli("copy", "--platform", "linux/amd64", f"dir:{tmp_path}/d", f"dir:{tmp_path}/one").exit_code == 0
    assert tree(tmp_path / "one") == tree(tmp_path / "sk-one")
    assert "signature-1" in tree(tmp_path / "one")
    assert cli("copy", "--all", f"dir:{tmp_path}/sk", f"oci:{tmp_path}/lay:m").exit_code == 0
    with open_source(f"oci:{tmp_path}/lay:m") as back, open_source(f"oci:{sample}:multi") as orig:
        assert [s.to_blob() for s in back.signatures(child)] == [s.to_blob() for s in orig.signatures(child)]
        top = back.root.digest
        assert [s.to_blob() for s in back.signatures(top)] == [s.to_blob() for s in orig.signatures(top)]


def test_carried_signature_files_are_what_skopeo_writes(sample: Path, tmp_path: Path, cli, skopeo: Skopeo) -> None:
    """Copying re-serializes a signature (containers/image's FromBlob then Blob: a fixture's trailing newline
    goes, for one): every signature file of the fixtures, carried dir: -> dir:, has skopeo's bytes."""
    base = tmp_path / "base"
    copy(f"oci:{sample}:v1", f"dir:{base}")
    n = 0
    for name in SIG_FIXTURE_DIRS:
        d = materialize_peer_dir(f"containers-image/signature/fixtures/{name}", tmp_path / "fix")
        for sig in sorted(d.glob("signature-*")):
            src = tmp_path / f"src{n}"
            shutil.copytree(base, src)
            (src / "signature-1").write_bytes(sig.read_bytes())
            skopeo("copy", f"dir:{src}", f"dir:{tmp_path}/sk{n}")
            assert cli("copy", f"dir:{src}", f"dir:{tmp_path}/ours{n}").exit_code == 0
            assert (tmp_path / f"ours{n}/signature-1").read_bytes() == (tmp_path / f"sk{n}/signature-1").read_bytes()
            n += 1
    assert n >= 15  # 18 in the fixture set today


def _gpg_policy(tmp_path: Path) -> Path:
    pol = tmp_path / "policy.json"
    pol.write_text(json.dumps({"default": [{"type": "reject"}], "transports": {"dir": {"": [{
        "type": "signedBy", "keyType": "GPGKeys", "keyPath": str(peer_path(f"{SKOPEO_FIX}/pubring.gpg")),
        "signedIdentity": {"type": "exactReference", "dockerReference": GPG_IDENT}}]}}}))
    return pol


def test_gpg_signatures_made_by_skopeo_carried_dir_to_dir(sample: Path, tmp_path: Path, gnupg: GPGKeyring, cli,
                                                          skopeo: Skopeo) -> None:
    skopeo("copy", "--sign-by", FPR, "--sign-identity", GPG_IDENT, f"oci:{sample}:v1", f"dir:{tmp_path}/signed")
    gpg_sig = (tmp_path / "signed/signature-1").read_bytes()
    res = cli("copy", f"dir:{tmp_path}/signed", f"dir:{tmp_path}/ours")
    assert res.exit_code == 0 and "1 signatures carried" in res.stderr, res
    assert tree(tmp_path / "ours") == tree(tmp_path / "signed")
    # skopeo verifies what we carried, with a signedBy policy; the same policy rejects an unsigned copy
    exe = shutil.which("skopeo")
    assert exe is not None
    pol = str(_gpg_policy(tmp_path))
    ok = subprocess.run([exe, "--policy", pol, "copy", f"dir:{tmp_path}/ours", f"dir:{tmp_path}/checked"],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "checked/signature-1").read_bytes() == gpg_sig
    res = cli("verify", f"dir:{tmp_path}/ours", "--policy", pol)  # and so do we
    assert res.exit_code == 0 and f"PASS signedBy: signed by {FPR}" in res.stdout, res
    assert cli("copy", "--remove-signatures", f"dir:{tmp_path}/ours", f"dir:{tmp_path}/bare").exit_code == 0
    assert not (tmp_path / "bare/signature-1").exists()
    bad = subprocess.run([exe, "--policy", pol, "copy", f"dir:{tmp_path}/bare", f"dir:{tmp_path}/nope"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "rejected" in bad.stderr
    assert cli("verify", f"dir:{tmp_path}/bare", "--policy", pol).exit_code == 8
    # an OCI layout holds sigstore signatures only: refused with the reason, unless --remove-signatures
    res = cli("copy", f"dir:{tmp_path}/ours", f"oci:{tmp_path}/lay:v1")
    assert res.exit_code == 5 and "cannot store simple-signing signatures" in res.stderr
    assert "--remove-signatures" in res.stderr and no_image(tmp_path / "lay")
    res = cli("copy", f"dir:{tmp_path}/ours", f"oci-archive:{tmp_path}/a.tar")
    assert res.exit_code == 5 and not (tmp_path / "a.tar").exists()
    assert cli("copy", "--remove-signatures", f"dir:{tmp_path}/ours", f"oci:{tmp_path}/lay:v1").exit_code == 0


def test_recopy_keeps_signatures_and_stores_duplicates_once(sample: Path, tmp_path: Path,
                                                            keypair: tuple[Path, Path], cli) -> None:
    priv, _ = keypair
    d = tmp_path / "d"
    assert cli("copy", f"oci:{sample}:v1", f"dir:{d}").exit_code == 0
    assert cli("sign", f"dir:{d}", "--key", priv, "--identity", IDENT).exit_code == 0
    first = (d / "signature-1").read_bytes()
    res = cli("copy", f"oci:{sample}:v1", f"dir:{d}")  # same image again: signatures of it kept, blobs reused
    assert res.exit_code == 0 and "0 blobs copied, 3 already present" in res.stderr, res
    assert (d / "signature-1").read_bytes() == first and not (d / "signature-2").exists()
    assert cli("copy", f"dir:{d}", f"dir:{tmp_path}/e").exit_code == 0
    assert cli("copy", f"dir:{d}", f"dir:{tmp_path}/e").exit_code == 0  # a carried duplicate is stored once
    assert sorted(n for n in tree(tmp_path / "e") if n.startswith("signature-")) == ["signature-1"]
    # a stored file that only differs from the carried signature's bytes by formatting is the same signature:
    # kept as it is, not doubled (the re-copy carries it re-serialized)
    (d / "signature-1").write_bytes(first + b"\n")
    assert cli("copy", f"dir:{d}", f"dir:{d}").exit_code == 0
    assert (d / "signature-1").read_bytes() == first + b"\n" and not (d / "signature-2").exists()
    assert cli("sign", f"dir:{d}", "--key", priv, "--identity", IDENT).exit_code == 0
    assert (d / "signature-2").exists() and not (d / "signature-3").exists()
    # another image replaces the directory: the old image's signatures go with it
    assert cli("copy", f"oci:{sample}:multi", f"dir:{d}").exit_code == 0
    assert not (d / "signature-1").exists()


# -- the target directory: skopeo's overwrite rule, atomic commit, no writes through symlinks ---------------

def test_overwrite_rule_matches_skopeo(sample: Path, tmp_path: Path, cli, skopeo: Skopeo) -> None:
    for kind in ("plain", "badversion"):
        d = tmp_path / kind
        d.mkdir()
        (d / "important.txt").write_text("keep me")
        if kind == "badversion":
            (d / "version").write_text("Directory Transport Version: 1.0\n")
        before = tree(d)
        theirs = skopeo("copy", f"oci:{sample}:v1", f"dir:{d}", check=False)
        assert theirs.returncode != 0 and "not a containers image directory" in theirs.stderr
        assert tree(d) == before
        res = cli("copy", f"oci:{sample}:v1", f"dir:{d}")
        assert res.exit_code == 6 and "refusing to overwrite" in res.stderr, res
        assert tree(d) == before
    # an empty directory is used; a dir: image is replaced (its old files removed) by both tools alike
    (tmp_path / "empty").mkdir()
    assert cli("copy", f"oci:{sample}:v1", f"dir:{tmp_path}/empty").exit_code == 0
    for who in ("ours", "theirs"):
        d = tmp_path / who
        skopeo("copy", "--all", f"oci:{sample}:multi", f"dir:{d}")
        (d / "signature-1").write_bytes(b"\x00sigstore-json\n{}")
        (d / "leftover.tmp").write_text("x")
    assert cli("copy", f"oci:{sample}:v1", f"dir:{tmp_path}/ours").exit_code == 0
    skopeo("copy", f"oci:{sample}:v1", f"dir:{tmp_path}/theirs")
    assert tree(tmp_path / "ours") == tree(tmp_path / "theirs") == tree(tmp_path / "empty")


@pytest.mark.parametrize("case", ["missing-parent", "dangling-symlink", "a-file"])
def test_unusable_targets_refused(sample: Path, tmp_path: Path, cli, case: str) -> None:
    target = tmp_path / "x"
    if case == "missing-parent":
        target = tmp_path / "no" / "such"
    elif case == "dangling-symlink":
        target.symlink_to(tmp_path / "elsewhere")
    else:
        target.write_text("a file")
    before = tree(tmp_path)
    res = cli("copy", f"oci:{sample}:v1", f"dir:{target}")
    assert res.exit_code in {3, 4}, res
    assert res.stderr.startswith("ocilayout: error:") and res.stderr.count("\n") == 1
    assert tree(tmp_path) == before


@pytest.mark.damages_layouts
def test_failed_copy_leaves_the_directory_as_it_was(sample: Path, tmp_path: Path, cli) -> None:
    d = tmp_path / "d"
    assert cli("copy", "--all", f"oci:{sample}:multi", f"dir:{d}").exit_code == 0
    before = tree(d)
    src = tmp_path / "src"
    assert cli("copy", f"oci:{sample}:v1", f"dir:{src}").exit_code == 0
    with open_source(f"dir:{src}") as s:
        layer = s.get_manifest().layers[-1]
    (src / layer.digest.hex).write_bytes(b"x" * layer.size)  # right size, wrong bytes
    res = cli("copy", f"dir:{src}", f"dir:{d}")
    assert res.exit_code == 4 and "digest" in res.stderr, res
    assert tree(d) == before
    res = cli("copy", f"dir:{src}", f"dir:{tmp_path}/new")  # a new directory is not left behind
    assert res.exit_code == 4 and not (tmp_path / "new").exists()


def test_failure_inside_commit_is_rolled_back(sample: Path, tmp_path: Path, cli,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "d"
    assert cli("copy", "--all", f"oci:{sample}:multi", f"dir:{d}").exit_code == 0
    (d / "signature-1").write_bytes(b"\x00sigstore-json\n{}")
    before = tree(d)
    real = os.rename
    failed: list[str] = []

    def failing(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> None:
        if Path(b) == d / "manifest.json" and not failed:  # the last step of the swap, once (not the undo)
            failed.append(str(a))
            raise OSError(28, "No space left on device")
        real(a, b)

    monkeypatch.setattr(os, "rename", failing)
    res = cli("copy", f"oci:{sample}:v1", f"dir:{d}")
    monkeypatch.undo()
    assert res.exit_code == 74 and failed, res
    assert tree(d) == before


def test_dead_writers_staging_removed_live_ones_kept(sample: Path, tmp_path: Path, cli) -> None:
    d = tmp_path / "d"
    assert cli("copy", f"oci:{sample}:v1", f"dir:{d}").exit_code == 0
    dead = d / ".ocilayout-tmp-1-dead.d"
    (dead / ".old").mkdir(parents=True)
    (dead / ".old" / "manifest.json").write_text("{}")
    os.utime(dead, (1, 1))
    live = open_destination(f"dir:{d}")  # another copy, staging right now
    try:
        with open_source(f"oci:{sample}:multi") as src:
            copy_into(src, live, CopyOptions(select=Selection(all=True)))
        [busy] = [p for p in d.glob(".ocilayout-tmp-*") if p != dead]
        os.utime(busy, (1, 1))  # old, but its writer holds the lock
        staging = [busy.name]
        assert cli("copy", f"oci:{sample}:v1", f"dir:{d}").exit_code == 0
        assert not dead.exists() and sorted(p.name for p in d.glob(".ocilayout-tmp-*")) == staging
        live.commit()
    finally:
        live.close()
    assert not list(d.glob(".ocilayout-*"))
    with open_source(f"dir:{d}") as src:
        assert src.get_manifest().is_index


def test_never_writes_through_symlinks(sample: Path, tmp_path: Path, cli) -> None:
    d = tmp_path / "d"
    assert cli("copy", f"oci:{sample}:multi", f"dir:{d}").exit_code == 0  # some image, to be replaced
    with open_source(f"oci:{sample}:v1") as src:
        layer = src.get_manifest().layers[0]
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("manifest.json", "signature-1", layer.digest.hex):
        (outside / name).write_bytes(b"precious")
        target = d / name
        if target.exists():
            target.unlink()
        target.symlink_to(outside / name)
    assert cli("copy", f"oci:{sample}:v1", f"dir:{d}").exit_code == 0
    assert {p.name: p.read_bytes() for p in outside.iterdir()} == dict.fromkeys(
        ("manifest.json", "signature-1", layer.digest.hex), b"precious")
    assert not any(p.is_symlink() for p in d.iterdir())
    fsck_dir(cli, d)


def test_one_image_per_directory(sample: Path, tmp_path: Path) -> None:
    dst = open_destination(f"dir:{tmp_path}/d")
    assert not dst.capabilities.multi_image and dst.capabilities.names == "none"
    try:
        with open_source(f"oci:{sample}:v1") as one, open_source(f"oci:{sample}:multi") as two:
            copy_into(one, dst)
            with pytest.raises(UnsupportedFormat, match="holds one image"):
                copy_into(two, dst, CopyOptions(select=Selection(all=True)), name=None)
            with pytest.raises(UnsupportedFormat, match="no names"):
                copy_into(two, dst, CopyOptions(select=Selection(all=True)), name="b")
    finally:
        dst.close()
    assert not (tmp_path / "d").exists()


def test_concurrent_copies_into_one_new_directory(sample: Path, tmp_path: Path) -> None:
    import threading

    d = tmp_path / "d"
    errors: list[BaseException] = []
    results = []

    def one(tag: str) -> None:
        try:
            results.append(copy(f"oci:{sample}:{tag}", f"dir:{d}", CopyOptions(select=Selection(all=True))))
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=one, args=(t,)) for t in ("v1", "multi", "v1", "multi")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # the one failure allowed: a copy that reused a blob another copy's commit then replaced is told to run
    # again (never "cannot create": the directory made by one writer is used by the others)
    assert all(isinstance(e, LayoutError) and "run the copy again" in str(e) for e in errors), errors
    assert len(results) + len(errors) == 4 and results
    with open_source(f"dir:{d}") as src:  # the last commit's image, whole
        assert src.root.digest in {r.descriptor.digest for r in results}
    assert not list(d.glob(".ocilayout-*"))
    names = set(tree(d))
    m = json.loads((d / "manifest.json").read_bytes())
    want = {"manifest.json", "version"} | ({f"{x['digest'][7:]}.manifest.json" for x in m["manifests"]}
                                            if "manifests" in m else {x["digest"][7:] for x in m["layers"]})
    assert want <= names


def test_directory_made_by_another_writer_meanwhile_is_used(sample: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "d"
    real = os.mkdir

    def racing(path: str | os.PathLike[str], mode: int = 0o777) -> None:
        if Path(path) == d:
            real(path, mode)  # the other writer wins the race...
        real(path, mode)  # ...so ours finds it there

    monkeypatch.setattr(os, "mkdir", racing)
    copy(f"oci:{sample}:v1", f"dir:{d}")
    with open_source(f"dir:{d}") as src:
        assert src.get_manifest().layers


def test_copy_with_signing_into_dir(sample: Path, tmp_path: Path, keypair: tuple[Path, Path], cli) -> None:
    priv, pub = keypair
    res = cli("copy", "--sign-by-sigstore-private-key", priv, "--sign-identity", IDENT, f"oci:{sample}:v1",
              f"dir:{tmp_path}/d")
    assert res.exit_code == 0 and "signed" in res.stderr, res
    assert (tmp_path / "d/signature-1").read_bytes().startswith(b"\x00sigstore-json\n")
    res = cli("verify", f"dir:{tmp_path}/d", "--public-key", pub, "--identity", IDENT)
    assert res.exit_code == 0 and res.stdout.count("Signature verified") == 1, res


def test_reused_blob_removed_before_commit(sample: Path, tmp_path: Path) -> None:
    d = tmp_path / "d"
    copy(f"oci:{sample}:v1", f"dir:{d}")
    before = tree(d)
    dst = open_destination(f"dir:{d}")
    try:
        with open_source(f"oci:{sample}:v1") as src:
            res = copy_into(src, dst)
            assert res.blobs_copied == 0
            layer = src.get_manifest().layers[0]
        os.unlink(d / layer.digest.hex)  # another writer replaced the image meanwhile
        del before[layer.digest.hex]
        with pytest.raises(LayoutError, match="run the copy again"):
            dst.commit()
    finally:
        dst.close()
    assert tree(d) == before


# -- bad input ------------------------------------------------------------------------------------------------

@pytest.fixture
def src_dir(sample: Path, tmp_path: Path) -> Path:
    d = tmp_path / "src"
    copy(f"oci:{sample}:v1", f"dir:{d}")
    return d


def _layer(d: Path) -> str:
    return str(json.loads((d / "manifest.json").read_bytes())["layers"][0]["digest"]).split(":")[1]


@pytest.mark.damages_layouts
@pytest.mark.parametrize(("damage", "code", "words"), [
    ("missing-blob", 3, "not found"),
    ("digest-mismatch", 4, "digest"),
    ("symlink-out", 4, "symlink out of"),
    ("garbage-manifest", 4, "not valid JSON"),
    ("fifo-manifest", 4, "FIFO"),
    ("no-manifest", 3, "manifest.json not found"),
])
def test_bad_dir_input_is_refused_and_nothing_written(src_dir: Path, tmp_path: Path, cli, damage: str, code: int,
                                                      words: str) -> None:
    layer = src_dir / _layer(src_dir)
    if damage == "missing-blob":
        layer.unlink()
    elif damage == "digest-mismatch":
        layer.write_bytes(b"y" * layer.stat().st_size)
    elif damage == "symlink-out":
        (tmp_path / "outside").write_bytes(layer.read_bytes())
        layer.unlink()
        layer.symlink_to(tmp_path / "outside")
    elif damage == "garbage-manifest":
        (src_dir / "manifest.json").write_bytes(b"{not json")
    elif damage == "fifo-manifest":
        (src_dir / "manifest.json").unlink()
        os.mkfifo(src_dir / "manifest.json")
    else:
        (src_dir / "manifest.json").unlink()
    for dst in (f"dir:{tmp_path}/out", f"oci:{tmp_path}/lay:v1"):
        res = cli("copy", f"dir:{src_dir}", dst)
        assert res.exit_code == code and words in res.stderr, res
        assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists() and no_image(tmp_path / "lay")
    res = cli("fsck", f"dir:{src_dir}")
    assert res.exit_code == (3 if damage == "no-manifest" else 4), res


def test_fsck_reports_dir_problems_by_kind(src_dir: Path, cli) -> None:
    fsck_dir(cli, src_dir)
    (src_dir / _layer(src_dir)).write_bytes(b"short")
    res = cli("fsck", "--json", f"dir:{src_dir}")
    assert res.exit_code == 4
    assert "size-mismatch" in {p["kind"] for p in json.loads(res.stdout)["problems"]}


def test_list_tags_is_refused_as_skopeo_does(src_dir: Path, cli, skopeo: Skopeo) -> None:
    theirs = skopeo("list-tags", f"dir:{src_dir}", check=False)
    assert theirs.returncode != 0 and "Unsupported transport 'dir' for tag listing" in theirs.stderr
    res = cli("list-tags", f"dir:{src_dir}")
    assert res.exit_code == 5 and "Unsupported transport 'dir' for tag listing" in res.stderr


def test_missing_or_escaping_manifest(src_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        open_source(f"dir:{tmp_path}/nothing")
    (src_dir / "manifest.json").rename(tmp_path / "elsewhere.json")
    (src_dir / "manifest.json").symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(UnsafePath):
        open_source(f"dir:{src_dir}")


def test_non_image_directory_refused_before_any_byte_moves(sample: Path, tmp_path: Path) -> None:
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a").write_text("x")
    dst = open_destination(f"dir:{tmp_path}/junk")
    try:
        with open_source(f"oci:{sample}:v1") as src, pytest.raises(Conflict):
            copy_into(src, dst)
    finally:
        dst.close()
    assert sorted(p.name for p in (tmp_path / "junk").iterdir()) == ["a"]
