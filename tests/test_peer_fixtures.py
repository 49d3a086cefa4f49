"""The conformance corpus: every peer fixture is read, or refused with one clear OcilayoutError."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import PEER, peer_path, read_peer

from ocilayout.errors import OcilayoutError
from ocilayout.graph import WalkProblem, walk
from ocilayout.manifest import Manifest
from ocilayout.store import LayoutStore

LAYOUTS = {
    # path: expected verdict of reading every entry's graph (True = clean)
    "containers-image/oci/layout/fixtures/delete_image_multiple_images": True,
    "containers-image/oci/layout/fixtures/delete_image_only_one_image": True,
    "containers-image/oci/layout/fixtures/delete_image_two_identical_references": True,
    "containers-image/oci/layout/fixtures/delete_image_shared_blobs_dir": False,  # size 405 vs 476, blobs elsewhere
    "go-containerregistry/pkg/v1/layout/testdata/test_index": True,
    "go-containerregistry/pkg/v1/layout/testdata/test_index_one_image": True,
    "go-containerregistry/pkg/v1/layout/testdata/test_index_media_type": True,
    "go-containerregistry/pkg/v1/layout/testdata/test_gc_index": True,
    "go-containerregistry/pkg/v1/layout/testdata/test_gc_image_unknown_mediatype": False,  # no blobs/
    "regclient/testdata/testrepo": True,
    "regclient/testdata/external": False,  # subjects live in another layout
}


def _manifest_files() -> list[str]:
    if not PEER.is_dir():
        return []
    out = []
    for sub in ("containers-image/manifest/fixtures", "containers-image/internal/manifest/testdata",
                "containers-image/internal/image/fixtures"):
        out += [str(p.relative_to(PEER)) for p in sorted((PEER / sub).glob("*.json"))]
    return out


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_peer_layout_verdicts(layout: str) -> None:
    store = LayoutStore.open(peer_path(layout))
    problems: list[WalkProblem] = []
    nodes = list(walk(store, [e.descriptor for e in store.entries()], problems))
    assert nodes
    assert (not problems) == LAYOUTS[layout], problems
    for p in problems:
        assert "\n" not in p.message


@pytest.mark.parametrize("rel", _manifest_files() or ["(peer fixtures absent)"])
def test_peer_manifests_parse_or_refuse(rel: str) -> None:
    raw = read_peer(rel)
    try:
        m = Manifest.parse(raw)
    except OcilayoutError as err:
        assert str(err) and "\n" not in str(err)
        return
    assert m.raw == raw
    m.children()


def test_refusals_are_the_expected_ones() -> None:
    refused = []
    for rel in _manifest_files():
        try:
            Manifest.parse(read_peer(rel))
        except OcilayoutError:
            refused.append(Path(rel).name)
    if not refused and not PEER.is_dir():
        pytest.skip("peer fixtures absent")
    for name in ("non-json.manifest.json", "unknown-version.manifest.json",
                 "v2s1-invalid-signatures.manifest.json", "ociv1.artifact.json"):
        assert name in refused
    assert "v2s2.manifest.json" not in refused and "ociv1.manifest.json" not in refused


@pytest.mark.parametrize("tar", [
    "go-containerregistry/pkg/v1/tarball/testdata/test_image_1.tar",
    "go-containerregistry/pkg/v1/tarball/testdata/no_manifest.tar",
    "go-containerregistry/pkg/v1/tarball/testdata/null_manifest.tar",
    "go-containerregistry/pkg/v1/tarball/testdata/test_link.tar",
    "containers-image/docker/archive/fixtures/almostempty.tar",
    "regclient/testdata/layer.tar",
])
def test_docker_archives_refused_as_oci_archive(tar: str, cli) -> None:  # type: ignore[no-untyped-def]
    """docker-save tarballs are not oci-archives: a one-line refusal (they read as docker-archive:, see
    test_docker_archive.py)."""
    res = cli("inspect", f"oci-archive:{peer_path(tar)}")
    assert res.exit_code != 0 and res.stderr.startswith("ocilayout: error:") and res.stderr.count("\n") == 1


def test_docker25_save_reads_as_oci_archive(cli) -> None:  # type: ignore[no-untyped-def]
    """Docker 25+ `docker save` holds an OCI layout: it reads as an oci-archive. This one (as ggcr saved it)
    has `"manifests": null` in index.json, i.e. no images: listed as empty, inspect refuses in one line."""
    path = peer_path("go-containerregistry/pkg/v1/tarball/testdata/hello-world-v25.tar")
    tags = cli("list-tags", f"oci-archive:{path}")
    assert tags.exit_code == 0 and '"Tags": []' in tags.stdout
    res = cli("inspect", f"oci-archive:{path}")
    assert res.exit_code == 3 and "holds no images" in res.stderr and res.stderr.count("\n") == 1
