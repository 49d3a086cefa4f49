"""fsck and images on docker-archive: (through Transport.open_reader and the graph walk): the peer fixtures,
what we and skopeo write, and broken archives, each problem reported with its stable kind."""

from __future__ import annotations

import gzip
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import peer_path
from test_docker_archive import TARBALLS, craft, docker_save

from ocilayout.copy import CopyOptions, Selection, copy
from ocilayout.descriptor import Platform
from ocilayout.digest import Digest
from ocilayout.dockertar_oci import use_docker_archive_format
from ocilayout.listing import list_images
from ocilayout.manifest import canonical_json
from ocilayout.sample import build_sample_layout, make_layer
from ocilayout.transports import open_layout, open_source
from ocilayout.validate import KINDS, FsckReport, fsck

GOOD = [
    f"{TARBALLS}/test_image_1.tar",
    f"{TARBALLS}/test_bundle.tar",
    f"{TARBALLS}/test_link.tar",
    f"{TARBALLS}/test_load_manifest.tar",
    "containers-image/docker/archive/fixtures/almostempty.tar",
    "skopeo/systemtest/testdata/docker-two-images.tar.xz",
]


def check(path: Path | str) -> FsckReport:
    with open_layout(f"docker-archive:{path}") as reader:
        return fsck(reader)


def kinds(report: FsckReport) -> set[str]:
    return {p.kind for p in report.problems}


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    build_sample_layout(tmp_path / "plain", compression="none")
    return tmp_path / "plain"


@pytest.mark.parametrize("tar", GOOD)
def test_peer_archives_are_clean(tar: str) -> None:
    """Every layer of every image hashed against its diff_id: the docker-save fixtures are sound."""
    path = peer_path(tar)
    report = check(path)
    assert report.ok and report.problems == [], [str(p) for p in report.problems]
    with open_layout(f"docker-archive:{path}") as reader:
        n_items = len(json.loads(reader.tree.tree.open("manifest.json").read()))  # type: ignore[attr-defined]
    assert report.blobs_checked >= 2 * n_items  # each image's config and layers at least


def test_docker25_fixture_is_sound_but_its_oci_index_names_nothing() -> None:
    """ggcr's hello-world-v25.tar: every blob sound; its index.json says "manifests": null, so OCI tools see
    no image (a warning, not an error: docker load reads manifest.json)."""
    report = check(peer_path(f"{TARBALLS}/hello-world-v25.tar"))
    assert report.ok and kinds(report) == {"oci-index-incomplete"}
    assert report.blobs_checked == 3  # manifest, config, layer


def test_null_manifest_is_an_error_and_the_pre_110_form_is_refused(cli) -> None:  # type: ignore[no-untyped-def]
    report = check(peer_path(f"{TARBALLS}/null_manifest.tar"))
    assert not report.ok and kinds(report) == {"archive-manifest-invalid"}
    res = cli("fsck", f"docker-archive:{peer_path(f'{TARBALLS}/null_manifest.tar')}")
    assert res.exit_code == 4 and "archive-manifest-invalid" in res.stdout
    res = cli("fsck", f"docker-archive:{peer_path(f'{TARBALLS}/no_manifest.tar')}")
    assert res.exit_code == 5 and res.stderr.count("\n") == 1 and "pre-1.10" in res.stderr
    res = cli("images", f"docker-archive:{peer_path(f'{TARBALLS}/null_manifest.tar')}")
    assert res.exit_code == 4 and res.stderr.count("\n") == 1 and "lists no images" in res.stderr


def test_what_we_write_in_both_forms_and_what_skopeo_writes_is_clean(tmp_path: Path, plain: Path,
                                                                    skopeo: Callable[..., Any]) -> None:
    build_sample_layout(tmp_path / "gz")
    amd = CopyOptions(select=Selection(platforms=(Platform("linux", "amd64"),)))
    copy(f"oci:{plain}:v1", f"docker-archive:{tmp_path}/legacy.tar:app:1")
    copy(f"oci:{plain}:multi", f"docker-archive:{tmp_path}/legacy.tar:app:2", amd)
    with use_docker_archive_format("oci-hybrid"):
        copy(f"oci:{tmp_path}/gz:v1", f"docker-archive:{tmp_path}/hybrid.tar:app:1")
        copy(f"oci:{tmp_path}/gz:multi", f"docker-archive:{tmp_path}/hybrid.tar:app:2", amd)
    skopeo("copy", f"oci:{plain}:v1", f"docker-archive:{tmp_path}/skopeo.tar:example.com/app:1")
    for name in ("legacy", "hybrid", "skopeo"):
        report = check(tmp_path / f"{name}.tar")
        assert report.ok and report.problems == [], (name, [str(p) for p in report.problems])
    assert check(tmp_path / "hybrid.tar").blobs_checked == 2 * 2 + 3  # 2 manifests + 2 configs + 3 layers


def test_images_lists_every_repotag_with_the_digest_copy_sees(tmp_path: Path, plain: Path, cli) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "a.tar"
    res = cli("copy", "-q", "--additional-tag", "example.com/app:latest", f"oci:{plain}:v1",
              f"docker-archive:{out}:example.com/app:1")
    assert res.exit_code == 0, res.stderr
    with open_layout(f"docker-archive:{out}") as reader:
        rows = list_images(reader, "a")
    with open_source(f"docker-archive:{out}:example.com/app:1") as src:
        digest, config = src.root.digest, src.get_manifest().config.digest
    assert [(r.repository, r.tag, r.digest, r.image_id) for r in rows] == [
        ("example.com/app", "1", digest, config), ("example.com/app", "latest", digest, config)]
    assert all(r.size and r.platforms == ("linux/amd64",) for r in rows)
    res = cli("images", "--json", f"docker-archive:{peer_path(f'{TARBALLS}/test_bundle.tar')}")
    assert res.exit_code == 0, res.stderr
    got = [(r["repository"], r["tag"]) for r in json.loads(res.stdout)]
    assert got == [("docker.io/library/test_image_2", "latest"), ("docker.io/library/test_image_1", "latest")]
    res = cli("images", f"docker-archive:{out}:example.com/app:1")
    assert res.exit_code == 2 and "name a layout" in res.stderr
    res = cli("fsck", f"docker-archive:{out}@0")
    assert res.exit_code == 2 and "drop ':@0'" in res.stderr


# -- broken archives: each a problem of a stable kind, exit 4 -----------------------------------------------

@pytest.mark.damages_layouts
def test_missing_layer_member(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    path = docker_save(tmp_path / "a.tar", [make_layer({"a": b"a"})], names=["nowhere/layer.tar"])
    report = check(path)
    assert kinds(report) == {"archive-member-missing", "blob-missing", "archive-member-extra"}
    assert any("nowhere/layer.tar is missing" in p.message for p in report.problems)
    res = cli("fsck", f"docker-archive:{path}")
    assert res.exit_code == 4 and "archive-member-missing" in res.stdout


@pytest.mark.damages_layouts
def test_missing_config_member(tmp_path: Path) -> None:
    manifest = json.dumps([{"Config": "gone.json", "RepoTags": ["a:1"], "Layers": []}]).encode()
    report = check(craft(tmp_path / "a.tar", [("manifest.json", manifest)]))
    assert not report.ok and kinds(report) == {"archive-member-missing"}


@pytest.mark.damages_layouts
def test_dotdot_layer_path(tmp_path: Path) -> None:
    path = docker_save(tmp_path / "a.tar", [make_layer({"a": b"a"})], names=["../l0/layer.tar"])
    report = check(path)
    assert "archive-unsafe" in kinds(report) and not report.ok
    assert any("'..'" in p.message for p in report.problems if p.kind == "archive-unsafe")


@pytest.mark.damages_layouts
def test_symlink_out_of_the_archive(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    path = docker_save(tmp_path / "a.tar", [make_layer({"a": b"a"})], names=["evil/layer.tar"],
                       extra=[("evil/layer.tar", "../../etc/passwd")])
    report = check(path)
    assert kinds(report) == {"archive-unsafe"} and report.blobs_checked == 0
    res = cli("fsck", f"docker-archive:{path}")
    assert res.exit_code == 4 and "leaves the archive tree" in res.stdout
    res = cli("images", f"docker-archive:{path}")
    assert res.exit_code == 4 and res.stderr.count("\n") == 1  # UnsafePath: never a listing of an unsafe archive
    assert "leaves the archive tree" in res.stderr


@pytest.mark.damages_layouts
def test_layer_not_matching_its_diff_id(tmp_path: Path) -> None:
    wrong = str(Digest.of(b"something else"))
    path = docker_save(tmp_path / "a.tar", [make_layer({"a": b"a"})], diff_ids=[wrong])
    report = check(path)
    assert kinds(report) == {"digest-mismatch"} and report.problems[0].digest == Digest.parse(wrong)


@pytest.mark.damages_layouts
def test_compressed_layer_is_hashed_decompressed(tmp_path: Path) -> None:
    layer = make_layer({"a": b"a" * 1000})
    good = docker_save(tmp_path / "good.tar", [gzip.compress(layer, mtime=0)])
    assert check(good).ok and check(good).problems == []
    bad = docker_save(tmp_path / "bad.tar", [gzip.compress(layer[:-512] + b"x" * 512, mtime=0)],
                      diff_ids=[str(Digest.of(layer))])
    assert kinds(check(bad)) == {"digest-mismatch"}


@pytest.mark.damages_layouts
def test_layer_count_not_matching_the_config(tmp_path: Path) -> None:
    layer = make_layer({"a": b"a"})
    path = docker_save(tmp_path / "a.tar", [layer], diff_ids=[str(Digest.of(layer))] * 2)
    report = check(path)
    assert "diff-ids-mismatch" in kinds(report) and not report.ok


def test_extra_member_is_a_warning(tmp_path: Path) -> None:
    path = docker_save(tmp_path / "a.tar", [make_layer({"a": b"a"})], extra=[("stray.txt", b"hello")])
    report = check(path)
    assert report.ok and kinds(report) == {"archive-member-extra"}
    assert KINDS["archive-member-extra"] == "warning" and "stray.txt" in report.problems[0].message


def _hybrid(tmp_path: Path) -> Path:
    build_sample_layout(tmp_path / "gz")
    with use_docker_archive_format("oci-hybrid"):
        copy(f"oci:{tmp_path}/gz:v1", f"docker-archive:{tmp_path}/h.tar:app:1")
    return tmp_path / "h.tar"


def _rewrite(src: Path, dst: Path, change: dict[str, bytes | None]) -> Path:
    """``src`` with some members replaced (bytes) or dropped (None)."""
    entries: list[tuple[str, bytes | str]] = []
    with tarfile.open(src) as tar:
        for m in tar.getmembers():
            if m.isfile():
                new = change.get(m.name, b"")
                if new is None:
                    continue
                f = tar.extractfile(m)
                assert f is not None
                entries.append((m.name, new or f.read()))
    return craft(dst, entries)


@pytest.mark.damages_layouts
def test_docker25_oci_part_is_checked_as_a_layout(tmp_path: Path) -> None:
    src = _hybrid(tmp_path)
    with open_source(f"oci-archive:{src}:1") as s:
        m = s.get_manifest()
    layer = f"blobs/sha256/{m.layers[0].digest.hex}"
    # a corrupt layer blob of the OCI manifest: its digest is checked
    stored = next(_member_bytes(src, layer))
    report = check(_rewrite(src, tmp_path / "corrupt.tar", {layer: stored[:-8] + b"x" * 8}))
    assert kinds(report) == {"digest-mismatch"}
    # a bad oci-layout file is the layout's own problem
    report = check(_rewrite(src, tmp_path / "layout.tar", {"oci-layout": b'{"imageLayoutVersion":"9"}'}))
    assert kinds(report) == {"layout-file"}
    # manifest.json and index.json disagreeing on the layers
    items = json.loads(next(_member_bytes(src, "manifest.json")))
    items[0]["Layers"] = list(reversed(items[0]["Layers"]))
    report = check(_rewrite(src, tmp_path / "mismatch.tar", {"manifest.json": json.dumps(items).encode()}))
    assert "archive-manifest-mismatch" in kinds(report) and not report.ok
    # index.json that does not name the image: a warning; one that is not JSON: an error
    empty = canonical_json({"schemaVersion": 2, "manifests": []})
    report = check(_rewrite(src, tmp_path / "unnamed.tar", {"index.json": empty}))
    assert report.ok and kinds(report) == {"oci-index-incomplete"}
    report = check(_rewrite(src, tmp_path / "badindex.tar", {"index.json": b"{not json"}))
    assert "index-invalid" in kinds(report) and not report.ok


def _member_bytes(path: Path, name: str) -> Any:
    with tarfile.open(path) as tar:
        f = tar.extractfile(name)
        assert f is not None
        yield f.read()


def _write_hybrid(path: Path, layer: bytes, media_type: str, diff_id: Digest) -> Path:
    """A Docker 25+ archive of one image whose config names ``diff_id`` for ``layer`` (stored as given)."""
    import io

    from ocilayout import mediatypes as mt
    from ocilayout.dockertar_oci import HybridImage, write_hybrid
    from ocilayout.manifest import Manifest

    config = canonical_json({"architecture": "amd64", "os": "linux", "config": {},
                             "rootfs": {"type": "layers", "diff_ids": [str(diff_id)]}})
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
           "config": {"mediaType": mt.OCI_CONFIG, "digest": str(Digest.of(config)), "size": len(config)},
           "layers": [{"mediaType": media_type, "digest": str(Digest.of(layer)), "size": len(layer)}]}
    manifest = Manifest.parse(canonical_json(doc))
    blobs = {Digest.of(b): ((lambda b=b: io.BytesIO(b)), len(b)) for b in (config, layer)}
    write_hybrid(path, [HybridImage(manifest, config, ["docker.io/library/a:1"])], blobs, lambda d: None)
    return path


@pytest.mark.damages_layouts
def test_docker25_layers_checked_against_their_diff_ids(tmp_path: Path) -> None:
    """The walk hashes a Docker 25+ layer as stored; its diff_id (what docker load checks) is checked on top:
    a plain layer must be its diff_id, a compressed one is decompressed once and hashed."""
    from ocilayout import mediatypes as mt

    layer = make_layer({"a": b"a" * 100})
    gz = gzip.compress(layer, mtime=0)
    good = _write_hybrid(tmp_path / "good.tar", gz, mt.OCI_LAYER_GZIP, Digest.of(layer))
    assert check(good).ok and check(good).problems == []
    wrong = Digest.of(b"not the layer")
    report = check(_write_hybrid(tmp_path / "gz.tar", gz, mt.OCI_LAYER_GZIP, wrong))
    assert kinds(report) == {"diff-id-mismatch"} and "decompresses to" in report.problems[0].message
    report = check(_write_hybrid(tmp_path / "plain.tar", layer, mt.OCI_LAYER, wrong))
    assert kinds(report) == {"diff-id-mismatch"} and "is uncompressed" in report.problems[0].message
