"""docker-archive: the Docker 25+ form written on request (``--dest-docker-archive-format oci-hybrid``): an OCI
layout plus manifest.json in one tar, manifests byte for byte, read back by us (docker-archive: and
oci-archive:), by skopeo (both transports) and by umoci, compared with the Docker 25 peer fixture."""

from __future__ import annotations

import json
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import peer_path

from ocilayout import mediatypes as mt
from ocilayout.copy import CopyOptions, copy, copy_into
from ocilayout.digest import Digest
from ocilayout.dockertar_oci import familiar, use_docker_archive_format
from ocilayout.errors import IntegrityError, InvalidArgument, UnsupportedFormat
from ocilayout.plan import Conversion
from ocilayout.reference import parse_reference
from ocilayout.sample import build_sample_layout, make_image
from ocilayout.store import LayoutStore
from ocilayout.transports import open_source
from ocilayout.transports.docker_archive import DockerArchiveDestination

V25 = "go-containerregistry/pkg/v1/tarball/testdata/hello-world-v25.tar"
HYBRID = "oci-hybrid"


@pytest.fixture
def sample_gz(tmp_path: Path) -> Path:
    build_sample_layout(tmp_path / "sample")
    return tmp_path / "sample"


def hybrid_copy(src: str, dst: str, options: CopyOptions | None = None) -> Any:
    with use_docker_archive_format(HYBRID):
        return copy(src, dst, options)


def members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return {m.name: m for m in tar.getmembers()}


def read_member(path: Path, name: str) -> bytes:
    with tarfile.open(path) as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read()


def manifest_of(ref: str) -> Any:
    with open_source(ref) as src:
        return src.get_manifest()


def _shape(path: Path) -> set[str]:
    """The kinds of member a Docker 25 save holds: blobs by digest, the layout files, docker's files."""
    return {"blobs/sha256/<hex>" if n.startswith("blobs/sha256/") else n for n in members(path)}


def test_same_file_set_and_annotations_as_docker25(tmp_path: Path, sample_gz: Path) -> None:
    """An untagged image is shaped as the hello-world-v25 fixture (docker save of an untagged image): the
    same member kinds, the same oci-layout bytes, the same manifest.json keys and RepoTags null, no
    repositories; a tagged one adds repositories and the two index annotations docker writes."""
    fixture = peer_path(V25)
    out = tmp_path / "untagged.tar"
    hybrid_copy(f"oci:{sample_gz}:v1", f"docker-archive:{out}")
    assert _shape(out) == _shape(fixture) == {"blobs", "blobs/sha256", "blobs/sha256/<hex>", "index.json",
                                              "manifest.json", "oci-layout"}
    assert read_member(out, "oci-layout") == read_member(fixture, "oci-layout")
    ours, theirs = (json.loads(read_member(p, "manifest.json")) for p in (out, fixture))
    assert list(ours[0]) == list(theirs[0]) == ["Config", "RepoTags", "Layers", "LayerSources"]
    assert ours[0]["RepoTags"] is None and theirs[0]["RepoTags"] is None
    assert read_member(out, "manifest.json").endswith(b"]\n")  # json.Encoder, as docker
    m = manifest_of(f"oci:{sample_gz}:v1")
    assert ours[0]["Layers"] == [f"blobs/sha256/{d.digest.hex}" for d in m.layers]
    assert ours[0]["Config"] == f"blobs/sha256/{m.config.digest.hex}"
    assert read_member(out, f"blobs/sha256/{m.digest.hex}") == m.raw  # verbatim
    index = json.loads(read_member(out, "index.json"))
    assert index["manifests"] == [{"mediaType": mt.OCI_MANIFEST, "digest": str(m.digest), "size": len(m.raw)}]

    tagged = tmp_path / "tagged.tar"
    hybrid_copy(f"oci:{sample_gz}:v1", f"docker-archive:{tagged}:example.com/app:1")
    index = json.loads(read_member(tagged, "index.json"))
    assert index["manifests"][0]["annotations"] == {"io.containerd.image.name": "example.com/app:1",
                                                    "org.opencontainers.image.ref.name": "1"}
    assert json.loads(read_member(tagged, "manifest.json"))[0]["RepoTags"] == ["example.com/app:1"]
    cfg = json.loads(read_member(tagged, f"blobs/sha256/{m.config.digest.hex}"))
    assert json.loads(read_member(tagged, "repositories")) == {
        "example.com/app": {"1": Digest.parse(cfg["rootfs"]["diff_ids"][-1]).hex}}
    assert _shape(tagged) == _shape(out) | {"repositories"}


def test_familiar_names_as_distribution_reference() -> None:
    assert familiar("docker.io/library/busybox:1") == ("busybox", "1")
    assert familiar("docker.io/user/app:2") == ("user/app", "2")
    assert familiar("localhost:5000/app:3") == ("localhost:5000/app", "3")
    assert familiar("docker.io/library/a/b:4") == ("library/a/b", "4")


def test_digests_kept_and_read_back_by_both_transports(tmp_path: Path, sample_gz: Path) -> None:
    """The point of the form: the manifest (gzip layers and all) is stored verbatim, so docker-archive:,
    oci-archive: and a copy back into oci: all see the source digest."""
    out = tmp_path / "h.tar"
    res = hybrid_copy(f"oci:{sample_gz}:v1", f"docker-archive:{out}:app:1")
    orig = manifest_of(f"oci:{sample_gz}:v1")
    assert res.descriptor.digest == orig.digest
    assert manifest_of(f"docker-archive:{out}:app:1").raw == orig.raw
    assert manifest_of(f"oci-archive:{out}:1").raw == orig.raw
    assert manifest_of(f"oci-archive:{out}:docker.io/library/app:1").raw == orig.raw
    copy(f"docker-archive:{out}", f"oci:{tmp_path}/back:v1")
    assert manifest_of(f"oci:{tmp_path}/back:v1").digest == orig.digest
    # the legacy form cannot keep it (v2s2 synthesized, layers decompressed): the reason this form exists
    copy(f"oci:{sample_gz}:v1", f"docker-archive:{tmp_path}/legacy.tar:app:1")
    assert manifest_of(f"docker-archive:{tmp_path}/legacy.tar").digest != orig.digest


def test_decompressed_is_exactly_what_docker25_writes(tmp_path: Path, sample_gz: Path) -> None:
    """With --dest-decompress the layers are plain tars named by their diff_ids, typed
    application/vnd.oci.image.layer.v1.tar, as a graphdriver Docker 25 saves them."""
    out = tmp_path / "plain.tar"
    hybrid_copy(f"oci:{sample_gz}:v1", f"docker-archive:{out}:app:1",
                CopyOptions(convert=Conversion(decompress=True)))
    m = manifest_of(f"oci-archive:{out}:1")
    cfg = json.loads(read_member(out, f"blobs/sha256/{m.config.digest.hex}"))
    assert [d.media_type for d in m.layers] == [mt.OCI_LAYER] * 2
    assert [str(d.digest) for d in m.layers] == cfg["rootfs"]["diff_ids"]
    item = json.loads(read_member(out, "manifest.json"))[0]
    assert item["LayerSources"] == {str(d.digest): {"mediaType": mt.OCI_LAYER, "size": d.size,
                                                    "digest": str(d.digest)} for d in m.layers}


def test_skopeo_reads_it_as_docker_archive_and_as_oci_archive(tmp_path: Path, sample_gz: Path,
                                                              skopeo: Callable[..., Any]) -> None:
    out = tmp_path / "h.tar"
    hybrid_copy(f"oci:{sample_gz}:v1", f"docker-archive:{out}:app:1")
    orig = manifest_of(f"oci:{sample_gz}:v1")
    assert skopeo("inspect", "--raw", f"oci-archive:{out}:1").stdout.encode() == orig.raw
    info = json.loads(skopeo("inspect", f"docker-archive:{out}").stdout)
    assert len(info["Layers"]) == len(orig.layers)  # skopeo decompresses them: their diff_ids
    skopeo("copy", f"docker-archive:{out}:app:1", f"oci:{tmp_path}/sk1:x")
    assert manifest_of(f"oci:{tmp_path}/sk1:x").config.digest == orig.config.digest
    skopeo("copy", f"oci-archive:{out}:1", f"oci:{tmp_path}/sk2:x")
    assert manifest_of(f"oci:{tmp_path}/sk2:x").digest == orig.digest


def test_umoci_unpacks_the_extracted_layout(tmp_path: Path, sample_gz: Path, umoci: Callable[..., Any]) -> None:
    out = tmp_path / "h.tar"
    hybrid_copy(f"oci:{sample_gz}:v1", f"docker-archive:{out}:app:1")
    (tmp_path / "x").mkdir()
    subprocess.run(["tar", "-xf", str(out), "-C", str(tmp_path / "x")], check=True)
    umoci("unpack", "--rootless", "--image", f"{tmp_path}/x:1", str(tmp_path / "bundle"))
    assert (tmp_path / "bundle/rootfs/etc/hello.txt").read_bytes() == b"hello from ocilayout\n"


def test_several_images_shared_layers_once_and_appending_keeps_the_form(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    store = LayoutStore.create(tmp_path / "src")
    shared = {"shared.txt": b"s" * 5000}
    make_image(store, [shared, {"a.txt": b"a"}], tag="a")
    make_image(store, [shared, {"b.txt": b"b"}], tag="b")
    out = tmp_path / "m.tar"
    res = cli("copy", "-q", "--dest-docker-archive-format", HYBRID, "--additional-tag", "app:latest",
              f"oci:{tmp_path}/src:a", f"docker-archive:{out}:app:a")
    assert res.exit_code == 0, res.stderr
    res = cli("copy", "-q", f"oci:{tmp_path}/src:b", f"docker-archive:{out}:app:b")  # no flag: stays hybrid
    assert res.exit_code == 0, res.stderr
    shared_digest = manifest_of(f"oci:{tmp_path}/src:a").layers[0].digest
    assert shared_digest == manifest_of(f"oci:{tmp_path}/src:b").layers[0].digest
    assert list(members(out)).count(f"blobs/sha256/{shared_digest.hex}") == 1
    items = json.loads(read_member(out, "manifest.json"))
    assert [it["RepoTags"] for it in items] == [["app:a", "app:latest"], ["app:b"]]
    for tag in ("a", "b"):
        want = manifest_of(f"oci:{tmp_path}/src:{tag}").digest
        assert manifest_of(f"docker-archive:{out}:app:{tag}").digest == want
        assert manifest_of(f"oci-archive:{out}:docker.io/library/app:{tag}").digest == want
    # a tag given again moves to the new image; the old one stays, untagged
    copy(f"oci:{tmp_path}/src:b", f"docker-archive:{out}:app:a")
    assert manifest_of(f"docker-archive:{out}:app:a").digest == manifest_of(f"oci:{tmp_path}/src:b").digest
    assert [it["RepoTags"] for it in json.loads(read_member(out, "manifest.json"))] == [["app:latest"],
                                                                                       ["app:b", "app:a"]]
    names = [e.get("annotations", {}).get("io.containerd.image.name")
             for e in json.loads(read_member(out, "index.json"))["manifests"]]
    assert names == ["docker.io/library/app:latest", "docker.io/library/app:b", "docker.io/library/app:a"]


def test_legacy_onto_hybrid_is_refused_and_hybrid_onto_legacy_converts(tmp_path: Path, sample_gz: Path) -> None:
    plain = tmp_path / "plain"
    build_sample_layout(plain, compression="none")
    hyb = tmp_path / "h.tar"
    hybrid_copy(f"oci:{sample_gz}:v1", f"docker-archive:{hyb}:app:1")
    before = hyb.read_bytes()
    with use_docker_archive_format("legacy"), pytest.raises(UnsupportedFormat, match="Docker 25\\+ archive"):
        copy(f"oci:{plain}:v1", f"docker-archive:{hyb}:app:2")
    assert hyb.read_bytes() == before
    leg = tmp_path / "l.tar"
    copy(f"oci:{plain}:v1", f"docker-archive:{leg}:app:old")
    old = manifest_of(f"docker-archive:{leg}:app:old")
    hybrid_copy(f"oci:{sample_gz}:v1", f"docker-archive:{leg}:app:new")
    assert "oci-layout" in members(leg) and not any(n.endswith("/layer.tar") for n in members(leg))
    assert manifest_of(f"docker-archive:{leg}:app:old").raw == old.raw  # the synthesized manifest, now stored
    assert manifest_of(f"oci-archive:{leg}:old").digest == old.digest
    assert manifest_of(f"docker-archive:{leg}:app:new").digest == manifest_of(f"oci:{sample_gz}:v1").digest


def test_deterministic(tmp_path: Path, sample_gz: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    for name in ("a", "b"):
        hybrid_copy(f"oci:{sample_gz}:v1", f"docker-archive:{tmp_path}/{name}.tar:app:1")
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    got = members(tmp_path / "a.tar")
    assert list(got) == sorted(got)
    assert {(m.mtime, m.uid, m.gid) for m in got.values()} == {(1700000000, 0, 0)}


def test_bad_format_name_and_an_index_are_refused(tmp_path: Path, sample_gz: Path, cli) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgument), use_docker_archive_format("docker25"):
        pass
    with pytest.raises(InvalidArgument):
        DockerArchiveDestination(parse_reference(f"docker-archive:{tmp_path}/x.tar"), "nope")
    res = cli("copy", "--dest-docker-archive-format", "docker25", f"oci:{sample_gz}:v1",
              f"docker-archive:{tmp_path}/x.tar")
    assert res.exit_code == 2 and res.stderr.count("\n") == 1 and "legacy, oci-hybrid" in res.stderr
    res = cli("copy", "-q", "--all", "--dest-docker-archive-format", HYBRID, f"oci:{sample_gz}:multi",
              f"docker-archive:{tmp_path}/x.tar")
    assert res.exit_code != 0 and res.stderr.count("\n") == 1 and not (tmp_path / "x.tar").exists()


def test_a_docker_manifest_is_stored_verbatim_too(tmp_path: Path, sample_gz: Path) -> None:
    """A Docker v2s2 image with gzip layers keeps its digest (the OCI index may name a Docker manifest)."""
    copy(f"oci:{sample_gz}:v1", f"oci:{tmp_path}/v2s2:v1", CopyOptions(convert=Conversion(format="v2s2")))
    m = manifest_of(f"oci:{tmp_path}/v2s2:v1")
    assert m.media_type == mt.DOCKER_MANIFEST
    out = tmp_path / "h.tar"
    hybrid_copy(f"oci:{tmp_path}/v2s2:v1", f"docker-archive:{out}:app:1")
    assert manifest_of(f"docker-archive:{out}").raw == m.raw
    assert manifest_of(f"oci-archive:{out}:1").raw == m.raw


def test_a_lying_opener_writes_nothing(tmp_path: Path, sample_gz: Path) -> None:
    out = tmp_path / "h.tar"
    dst = DockerArchiveDestination(parse_reference(f"docker-archive:{out}:app:1"), HYBRID)
    try:
        with open_source(f"oci:{sample_gz}:v1") as src:
            layer = src.get_manifest().layers[0]
            copy_into(src, dst)
        real = dst._blobs[layer.digest].open
        dst._blobs[layer.digest].open = lambda: _Flipped(real())
        with pytest.raises(IntegrityError):
            dst.commit()
    finally:
        dst.close()
    assert not out.exists() and list(tmp_path.iterdir()) == [sample_gz]


class _Flipped:
    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.first = True

    def read(self, n: int = -1) -> bytes:
        data: bytes = self.raw.read(n)
        if self.first and data:
            self.first = False
            return bytes([data[0] ^ 1]) + data[1:]
        return data

    def readinto(self, buf: Any) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> _Flipped:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()



def test_one_config_two_manifests_stay_two_images(tmp_path: Path, sample_gz: Path) -> None:
    """The same image gzip-compressed and uncompressed shares its config: the legacy form would merge them
    (one item per config); here they are two items, and each RepoTags entry reads back its own manifest."""
    out = tmp_path / "h.tar"
    hybrid_copy(f"oci:{sample_gz}:v1", f"docker-archive:{out}:app:gz")
    hybrid_copy(f"oci:{sample_gz}:v1", f"docker-archive:{out}:app:plain", CopyOptions(convert=Conversion(
        decompress=True)))
    gz, plain = manifest_of(f"oci-archive:{out}:gz"), manifest_of(f"oci-archive:{out}:plain")
    assert gz.config.digest == plain.config.digest and gz.digest != plain.digest
    assert gz.digest == manifest_of(f"oci:{sample_gz}:v1").digest
    items = json.loads(read_member(out, "manifest.json"))
    assert [it["Config"] for it in items] == [f"blobs/sha256/{gz.config.digest.hex}"] * 2
    assert manifest_of(f"docker-archive:{out}:app:gz").digest == gz.digest
    assert manifest_of(f"docker-archive:{out}:app:plain").digest == plain.digest


def test_oci_archive_onto_a_docker_25_archive_is_refused(tmp_path: Path, sample_gz: Path) -> None:
    """An oci-archive: write would rewrite the tar as a bare OCI layout and drop docker's manifest.json and
    repositories: refused, the archive unchanged; docker-archive: with the hybrid form adds to it."""
    hyb = tmp_path / "h.tar"
    hybrid_copy(f"oci:{sample_gz}:v1", f"docker-archive:{hyb}:app:1")
    before = hyb.read_bytes()
    with pytest.raises(UnsupportedFormat, match=r"manifest\.json"):
        copy(f"oci:{sample_gz}:multi", f"oci-archive:{hyb}:multi", CopyOptions())
    assert hyb.read_bytes() == before
    assert manifest_of(f"oci-archive:{hyb}:1").digest == manifest_of(f"oci:{sample_gz}:v1").digest  # still readable
