"""Interop with the real tools, both directions: what they write we read; what we write they read."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import assert_fsck, peer_path, require_tool

from ocilayout.inspect import go_json
from ocilayout.store import LayoutStore

pytestmark = pytest.mark.interop


def _ours(cli, *args: str) -> str:  # type: ignore[no-untyped-def]
    res = cli(*args)
    assert res.exit_code == 0, res
    return res.stdout


def _without_layersdata(text: str) -> dict:
    doc = json.loads(text)
    doc.pop("LayersData", None)
    return doc


@pytest.fixture
def umoci_layout(tmp_path: Path, umoci) -> Path:  # type: ignore[no-untyped-def]
    """A two-layer image written by real umoci (manifests without mediaType, as umoci writes them)."""
    layout = tmp_path / "umoci"
    umoci("init", "--layout", str(layout))
    umoci("new", "--image", f"{layout}:base")
    bundle = tmp_path / "bundle"
    umoci("unpack", "--image", f"{layout}:base", str(bundle))
    (bundle / "rootfs" / "etc").mkdir(parents=True, exist_ok=True)
    (bundle / "rootfs" / "etc" / "hello.txt").write_text("hello from umoci\n")
    umoci("repack", "--image", f"{layout}:v1", str(bundle))
    umoci("config", "--image", f"{layout}:v1", "--config.env", "A=b&c<d>", "--config.label", "x=y",
          "--created", "2024-01-01T00:00:00.500Z")
    return layout


def test_we_read_umoci(umoci_layout: Path, cli, skopeo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ours = _ours(cli, "inspect", f"oci:{umoci_layout}:v1")
    theirs = skopeo("inspect", f"oci:{umoci_layout}:v1").stdout
    assert _without_layersdata(ours) == json.loads(theirs)
    # byte-for-byte too (Go's escaping of & < >, key order), apart from the LayersData block skopeo 1.9 omits
    assert go_json(_without_layersdata(ours)) + "\n" == theirs
    assert "\\u0026" in theirs
    assert _ours(cli, "inspect", "--config", f"oci:{umoci_layout}:v1") == \
        skopeo("inspect", "--config", f"oci:{umoci_layout}:v1").stdout
    assert _ours(cli, "inspect", "--raw", f"oci:{umoci_layout}:v1") == \
        skopeo("inspect", "--raw", f"oci:{umoci_layout}:v1").stdout
    _ours(cli, "copy", f"oci:{umoci_layout}:v1", f"oci:{tmp_path}/copy:v1")
    assert_fsck(tmp_path / "copy")
    assert_fsck(umoci_layout)


def test_umoci_reads_ours(sample: Path, cli, umoci, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _ours(cli, "copy", f"oci:{sample}:v1", f"oci:{tmp_path}/out:v1")
    stat = umoci("stat", "--image", f"{tmp_path}/out:v1", "--json").stdout
    assert len(json.loads(stat)["history"]) == 2
    umoci("unpack", "--image", f"{tmp_path}/out:v1", str(tmp_path / "bundle"))
    assert (tmp_path / "bundle" / "rootfs" / "etc" / "hello.txt").read_text() == "hello from ocilayout\n"
    # umoci can keep working on our layout, and we can read what it adds
    umoci("config", "--image", f"{tmp_path}/out:v1", "--tag", "v2", "--config.label", "by=umoci")
    assert "v2" in LayoutStore.open(tmp_path / "out").refs()
    assert_fsck(tmp_path / "out")


def test_skopeo_reads_ours_and_inspect_agrees(sample: Path, cli, skopeo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _ours(cli, "copy", "--all", f"oci:{sample}:multi", f"oci:{tmp_path}/out:multi")
    _ours(cli, "copy", f"oci:{sample}:v1", f"oci-archive:{tmp_path}/out.tar:v1")
    for ref in (f"oci:{tmp_path}/out:multi", f"oci-archive:{tmp_path}/out.tar:v1"):
        assert _without_layersdata(_ours(cli, "inspect", ref)) == json.loads(skopeo("inspect", ref).stdout)
        assert _ours(cli, "inspect", "--raw", ref) == skopeo("inspect", "--raw", ref).stdout
    skopeo("copy", "--all", f"oci:{tmp_path}/out:multi", f"oci:{tmp_path}/sk:multi")
    skopeo("copy", f"oci-archive:{tmp_path}/out.tar:v1", f"oci:{tmp_path}/sk:v1")
    sk = LayoutStore.open(tmp_path / "sk")
    src = LayoutStore.open(sample)
    assert sk.resolve("multi").digest == src.resolve("multi").digest
    assert sk.resolve("v1").digest == src.resolve("v1").digest
    assert_fsck(tmp_path / "out")
    assert_fsck(tmp_path / "sk")


def test_we_read_skopeo_archives(sample: Path, cli, skopeo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    skopeo("copy", f"oci:{sample}:v1", f"oci-archive:{tmp_path}/sk.tar:v1")
    skopeo("copy", "--all", f"oci:{sample}:multi", f"oci:{tmp_path}/sk:multi")
    listing = json.loads(_ours(cli, "list-tags", f"oci-archive:{tmp_path}/sk.tar"))
    assert listing["Tags"] == ["v1"]
    _ours(cli, "copy", f"oci-archive:{tmp_path}/sk.tar:v1", f"oci:{tmp_path}/back:v1")
    _ours(cli, "copy", "--all", f"oci:{tmp_path}/sk:multi", f"oci:{tmp_path}/back:multi")
    back = LayoutStore.open(tmp_path / "back")
    assert back.resolve("v1").digest == LayoutStore.open(sample).resolve("v1").digest
    assert_fsck(tmp_path / "back")


def test_retag_leaves_no_untagged_root(sample: Path, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """skopeo leaves the old manifest behind untagged when a tag is overwritten; we replace the entry."""
    _ours(cli, "copy", f"oci:{sample}:v1", f"oci:{tmp_path}/d:t")
    _ours(cli, "copy", f"oci:{sample}:multi", f"oci:{tmp_path}/d:t")
    entries = LayoutStore.open(tmp_path / "d").entries()
    assert len(entries) == 1 and entries[0].name == "t"


MANIFESTS = [
    "containers-image/manifest/fixtures/v2s2.manifest.json",
    "containers-image/manifest/fixtures/v2s1.manifest.json",
    "containers-image/manifest/fixtures/ociv1.manifest.json",
    "containers-image/internal/manifest/testdata/v2s1-unsigned.manifest.json",
    "containers-image/internal/manifest/testdata/oci1.index.everything.json",
    "containers-image/internal/manifest/testdata/non-json.manifest.json",
]


@pytest.mark.parametrize("rel", MANIFESTS)
def test_manifest_digest_agrees_with_skopeo(rel: str, cli, skopeo) -> None:  # type: ignore[no-untyped-def]
    path = peer_path(rel).resolve()
    theirs = skopeo("manifest-digest", str(path), check=False)
    ours = cli("manifest-digest", str(path))
    assert ours.exit_code == theirs.returncode == 0
    assert ours.stdout == theirs.stdout


def test_manifest_digest_failure_agrees_with_skopeo(cli, skopeo) -> None:  # type: ignore[no-untyped-def]
    path = peer_path("containers-image/internal/manifest/testdata/v2s1-invalid-signatures.manifest.json").resolve()
    assert skopeo("manifest-digest", str(path), check=False).returncode != 0
    res = cli("manifest-digest", str(path))
    assert res.exit_code != 0 and res.stderr.startswith("ocilayout: error:") and res.stderr.count("\n") == 1


def test_skopeo_dir_fixture_inspect(cli, skopeo) -> None:  # type: ignore[no-untyped-def]
    require_tool("skopeo")
    path = peer_path("skopeo/integration/fixtures/uncompressed-image-s2/manifest.json")
    theirs = subprocess.run(["skopeo", "manifest-digest", str(path)], capture_output=True, text=True)
    assert cli("manifest-digest", str(path)).stdout == theirs.stdout
