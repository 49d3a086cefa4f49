"""docker-archive: every flavour read (docker save, skopeo, Docker 25+, multi-image, compressed, the peer
fixtures), bad input refused in one line with nothing written, and what we write read by skopeo."""

from __future__ import annotations

import gzip
import io
import json
import lzma
import os
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import zstandard
from conftest import assert_fsck, peer_path

from ocilayout import mediatypes as mt
from ocilayout.copy import CopyOptions, Selection, Signing, copy, copy_into
from ocilayout.descriptor import Platform
from ocilayout.digest import Digest
from ocilayout.errors import IntegrityError, InvalidReference, LayoutError, NotFound, UnsafePath, UnsupportedFormat
from ocilayout.manifest import canonical_json
from ocilayout.reference import ImageReference, parse_reference
from ocilayout.sample import build_sample_layout, make_image, make_layer
from ocilayout.store import LayoutStore
from ocilayout.transports import open_destination, open_source
from ocilayout.transports.base import read_blob_bytes

TARBALLS = "go-containerregistry/pkg/v1/tarball/testdata"


def one_line(err: pytest.ExceptionInfo[Exception]) -> str:
    text = str(err.value)
    assert text and "\n" not in text, text
    return text


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    """The sample layout with uncompressed layers (what a docker-archive stores)."""
    build_sample_layout(tmp_path / "plain", compression="none")
    return tmp_path / "plain"


def _config_digest(ref: str) -> Digest:
    with open_source(ref) as src:
        return src.get_manifest().config.digest


def _members(path: Path) -> list[str]:
    with tarfile.open(path) as tar:
        return tar.getnames()


def craft(path: Path, entries: Sequence[tuple[str, bytes | str]]) -> Path:
    """A tar of ``entries``: bytes are files, a str is a symlink target."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries:
            ti = tarfile.TarInfo(name)
            if isinstance(data, str):
                ti.type, ti.linkname = tarfile.SYMTYPE, data
                tar.addfile(ti)
            else:
                ti.size = len(data)
                tar.addfile(ti, io.BytesIO(data))
    return path


def docker_save(path: Path, layers: Sequence[bytes], *, diff_ids: Sequence[str] | None = None,
                names: Sequence[str] | None = None, extra: Sequence[tuple[str, bytes | str]] = (),
                repo_tags: Sequence[str] = ("example.com/app:1",)) -> Path:
    """A docker-save style archive (``<n>/layer.tar`` members) over ``layers`` (stored as given)."""
    ids = list(diff_ids) if diff_ids is not None else [
        str(Digest.of(gzip.decompress(b) if b[:2] == b"\x1f\x8b" else b)) for b in layers]
    config = canonical_json({"architecture": "amd64", "os": "linux", "config": {},
                             "rootfs": {"type": "layers", "diff_ids": ids}})
    cfg = f"{Digest.of(config).hex}.json"
    paths = list(names) if names is not None else [f"l{i}/layer.tar" for i in range(len(layers))]
    manifest = json.dumps([{"Config": cfg, "RepoTags": list(repo_tags), "Layers": paths}]).encode()
    entries: list[tuple[str, bytes | str]] = [(cfg, config)]
    entries += [(f"l{i}/layer.tar", b) for i, b in enumerate(layers)]
    entries += [*extra, ("manifest.json", manifest)]
    return craft(path, entries)


# -- references --------------------------------------------------------------------------------------------

def test_reference_grammar(tmp_path: Path) -> None:
    r = parse_reference("docker-archive:/x/a.tar@3")
    assert (r.path, r.index, r.ref) == ("/x/a.tar", 3, None) and str(r) == "docker-archive:/x/a.tar:@3"
    assert parse_reference(str(r)) == r == parse_reference("docker-archive:/x/a.tar:@3")  # skopeo's spelling
    r = parse_reference("docker-archive:/x/a.tar:example.com/app:1")
    assert (r.path, r.ref, r.index) == ("/x/a.tar", "example.com/app:1", None)
    assert parse_reference(str(r)) == r
    odd = tmp_path / "a@1"
    odd.write_bytes(b"")
    assert parse_reference(f"docker-archive:{odd}") == ImageReference("docker-archive", str(odd))
    assert parse_reference("oci:/x/a@1").index is None  # @N is docker-archive's alone
    with pytest.raises(InvalidReference):
        parse_reference("docker-archive:@1")


# -- reading -----------------------------------------------------------------------------------------------

READABLE = [
    (f"{TARBALLS}/test_image_1.tar", "", 1),
    (f"{TARBALLS}/test_bundle.tar", "@0", 1),
    (f"{TARBALLS}/test_bundle.tar", ":test_image_1", 1),
    (f"{TARBALLS}/test_link.tar", "@0", 1),
    (f"{TARBALLS}/test_link.tar", "@1", 2),  # its layer.tar is a symlink into another image's directory
    (f"{TARBALLS}/test_load_manifest.tar", "", 1),
    (f"{TARBALLS}/hello-world-v25.tar", "", 1),
    ("containers-image/docker/archive/fixtures/almostempty.tar", "", 1),
    ("skopeo/systemtest/testdata/docker-two-images.tar.xz", "@0", 1),
    ("skopeo/systemtest/testdata/docker-two-images.tar.xz", "@1", 1),
]


@pytest.mark.parametrize(("tar", "select", "layers"), READABLE)
def test_peer_archives_read_and_copy(tmp_path: Path, tar: str, select: str, layers: int) -> None:
    """Every readable peer tarball: the chosen image copies into oci: with every layer hashing to its diff_id
    (the destination verifies each), and the layout passes fsck."""
    ref = f"docker-archive:{peer_path(tar)}{select}"
    with open_source(ref) as src:
        m = src.get_manifest()
        assert len(m.layers) == layers
        cfg = read_blob_bytes(src, m.config)
        if m.media_type == mt.DOCKER_MANIFEST:  # synthesized: layers are the config's diff_ids
            assert [str(d.digest) for d in m.layers] == json.loads(cfg)["rootfs"]["diff_ids"]
    res = copy(ref, f"oci:{tmp_path}/out:x")
    assert res.descriptor.digest == m.digest
    assert_fsck(tmp_path / "out")


def test_docker25_archive_keeps_the_real_manifest_bytes() -> None:
    """A Docker 25+ save holds an OCI layout: the image is its manifest, byte for byte, not a synthesized one."""
    path = peer_path(f"{TARBALLS}/hello-world-v25.tar")
    with open_source(f"docker-archive:{path}") as src:
        m = src.get_manifest()
        assert m.media_type == mt.OCI_MANIFEST
        with tarfile.open(path) as tar:
            member = tar.extractfile(f"blobs/sha256/{m.digest.hex}")
            assert member is not None and member.read() == m.raw


@pytest.mark.parametrize(("tar", "select", "error", "words"), [
    (f"{TARBALLS}/no_manifest.tar", "", UnsupportedFormat, "pre-1.10 docker save archive"),
    (f"{TARBALLS}/null_manifest.tar", "", LayoutError, "manifest.json lists no images"),
    (f"{TARBALLS}/test_bundle.tar", "", InvalidReference, "holds 2 images; name one with :NAME:TAG or @N"),
    (f"{TARBALLS}/test_bundle.tar", "@2", NotFound, "invalid source index @2"),
    (f"{TARBALLS}/test_bundle.tar", ":nope:1", NotFound, "no image tagged docker.io/library/nope:1"),
    ("regclient/testdata/layer.tar", "", LayoutError, "not a docker-archive (no manifest.json)"),
])
def test_peer_archives_refused_in_one_line(tar: str, select: str, error: type[Exception], words: str) -> None:
    with pytest.raises(error) as info:
        open_source(f"docker-archive:{peer_path(tar)}{select}")
    assert words in one_line(info)


def test_cli_exit_codes_for_refusals(cli) -> None:  # type: ignore[no-untyped-def]
    res = cli("inspect", f"docker-archive:{peer_path(f'{TARBALLS}/no_manifest.tar')}")
    assert res.exit_code == 5 and res.stderr.count("\n") == 1 and "pre-1.10" in res.stderr
    res = cli("list-tags", f"docker-archive:{peer_path(f'{TARBALLS}/test_bundle.tar')}")
    assert res.exit_code == 0 and "test_image_2" in res.stdout and "test_image_1" in res.stdout


def test_names_are_normalized_as_containers_image_does(tmp_path: Path) -> None:
    path = docker_save(tmp_path / "a.tar", [make_layer({"a": b"a"})], repo_tags=["busybox:latest"])
    for name in ("busybox", "busybox:latest", "docker.io/library/busybox:latest"):
        with open_source(f"docker-archive:{path}:{name}") as src:
            assert src.get_manifest().layers


def test_compressed_layer_members_are_served_uncompressed(tmp_path: Path) -> None:
    """A gzip or zstd layer.tar is decompressed on the fly so it hashes to its diff_id (as c/image's GetBlob)."""
    raw = make_layer({"big.txt": b"x" * 100_000})
    path = docker_save(tmp_path / "a.tar", [gzip.compress(raw)], diff_ids=[str(Digest.of(raw))])
    with open_source(f"docker-archive:{path}") as src:
        layer = src.get_manifest().layers[0]
        assert (layer.digest, layer.size, layer.media_type) == (Digest.of(raw), len(raw), mt.DOCKER_LAYER_TAR)
        assert read_blob_bytes(src, layer, limit=1 << 20) == raw
    z = docker_save(tmp_path / "z.tar", [zstandard.ZstdCompressor().compress(raw)], diff_ids=[str(Digest.of(raw))])
    copy(f"docker-archive:{z}", f"oci:{tmp_path}/out:z")
    assert_fsck(tmp_path / "out")


@pytest.mark.parametrize("kind", ["gzip", "zstd", "xz"])
def test_compressed_outer_archives(tmp_path: Path, plain: Path, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`docker save | gzip`, .tar.zst, .tar.xz: decompressed once into an anonymous temp file, nothing left."""
    tar = tmp_path / "a.tar"
    copy(f"oci:{plain}:v1", f"docker-archive:{tar}:app:1")
    data = tar.read_bytes()
    packed = {"gzip": gzip.compress, "zstd": zstandard.ZstdCompressor().compress, "xz": lzma.compress}[kind](data)
    (tmp_path / "a.tgz").write_bytes(packed)
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setenv("TMPDIR", str(spool))
    from ocilayout.transports.docker_archive import DockerArchive

    with DockerArchive.open(tmp_path / "a.tgz") as archive:
        assert archive.tree.compression == kind
        assert os.readlink(f"/proc/self/fd/{archive.tree._fd}").startswith(str(spool))  # spooled there
        assert list(spool.iterdir()) == []  # and unlinked from the start
    copy(f"docker-archive:{tmp_path}/a.tgz:app:1", f"oci:{tmp_path}/out:v1")
    assert _config_digest(f"oci:{tmp_path}/out:v1") == _config_digest(f"oci:{plain}:v1")
    assert list(spool.iterdir()) == []
    # appending to a compressed archive would rewrite it uncompressed under its old name: refused
    with pytest.raises(LayoutError) as info:
        copy(f"oci:{plain}:v1", f"docker-archive:{tmp_path}/a.tgz:app:2")
    assert "decompress it first" in one_line(info)
    assert (tmp_path / "a.tgz").read_bytes() == packed


# -- bad input ---------------------------------------------------------------------------------------------

def _refused(tmp_path: Path, path: Path, error: type[Exception], words: str) -> None:
    with pytest.raises(error) as info:
        copy(f"docker-archive:{path}", f"oci:{tmp_path}/dst:x")
    assert words in one_line(info)
    dst = tmp_path / "dst"  # an oci: destination may have been created empty; it names nothing, holds no blob
    assert not dst.exists() or (json.loads((dst / "index.json").read_bytes())["manifests"] == []
                                and not any(p.is_file() for p in (dst / "blobs").rglob("*")))


@pytest.mark.damages_layouts
def test_missing_layer(tmp_path: Path) -> None:
    layer = make_layer({"a": b"a"})
    path = docker_save(tmp_path / "a.tar", [layer], names=["nowhere/layer.tar"])
    _refused(tmp_path, path, LayoutError, "layer nowhere/layer.tar is missing from the archive")


@pytest.mark.damages_layouts
def test_layer_path_with_dotdot(tmp_path: Path) -> None:
    path = docker_save(tmp_path / "a.tar", [make_layer({"a": b"a"})], names=["../l0/layer.tar"])
    _refused(tmp_path, path, UnsafePath, "contains a '..' component")


@pytest.mark.damages_layouts
def test_symlink_out_of_the_archive(tmp_path: Path) -> None:
    path = docker_save(tmp_path / "a.tar", [make_layer({"a": b"a"})], names=["evil/layer.tar"],
                       extra=[("evil/layer.tar", "../../etc/passwd")])
    _refused(tmp_path, path, UnsafePath, "leaves the archive tree")


@pytest.mark.damages_layouts
def test_layer_not_matching_its_diff_id(tmp_path: Path) -> None:
    layer = make_layer({"a": b"a"})
    path = docker_save(tmp_path / "a.tar", [layer], diff_ids=[str(Digest.of(b"something else"))])
    _refused(tmp_path, path, IntegrityError, "")
    with pytest.raises(IntegrityError):
        copy(f"docker-archive:{path}", f"docker-archive:{tmp_path}/out.tar:x:1")
    assert not (tmp_path / "out.tar").exists()


@pytest.mark.damages_layouts
def test_layer_count_not_matching_the_config(tmp_path: Path) -> None:
    layer = make_layer({"a": b"a"})
    path = docker_save(tmp_path / "a.tar", [layer], diff_ids=[str(Digest.of(layer))] * 2)
    _refused(tmp_path, path, LayoutError, "1 layers in manifest.json, 2 diff_ids in its config")


# -- skopeo writes, we read --------------------------------------------------------------------------------

def test_we_read_what_skopeo_writes(tmp_path: Path, sample: Path, skopeo: Callable[..., Any]) -> None:
    """skopeo's docker-archive (gzip source decompressed by skopeo, `<diffid>.tar` plus v1 symlinks)."""
    skopeo("copy", f"oci:{sample}:v1", f"docker-archive:{tmp_path}/sk.tar:example.com/app:1")
    with open_source(f"docker-archive:{tmp_path}/sk.tar") as src, open_source(f"oci:{sample}:v1") as orig:
        assert src.get_manifest().config.digest == orig.get_manifest().config.digest
    copy(f"docker-archive:{tmp_path}/sk.tar:example.com/app:1", f"oci:{tmp_path}/out:v1")
    assert_fsck(tmp_path / "out")


# -- writing -----------------------------------------------------------------------------------------------

def test_write_and_skopeo_reads_it(tmp_path: Path, plain: Path, skopeo: Callable[..., Any]) -> None:
    out = tmp_path / "a.tar"
    copy(f"oci:{plain}:v1", f"docker-archive:{out}:example.com/app:1")
    info = json.loads(skopeo("inspect", f"docker-archive:{out}").stdout)
    with open_source(f"oci:{plain}:v1") as orig:
        m = orig.get_manifest()
        assert info["Layers"] == [str(d.digest) for d in m.layers]
    # dir: keeps the v2s2 manifest and the config bytes: the same config digest
    skopeo("copy", f"docker-archive:{out}:example.com/app:1", f"dir:{tmp_path}/d")
    got = json.loads((tmp_path / "d" / "manifest.json").read_bytes())
    assert got["config"]["digest"] == str(m.config.digest)
    # and back through ocilayout: oci -> docker-archive -> oci keeps the config digest
    copy(f"docker-archive:{out}", f"oci:{tmp_path}/back:v1")
    assert _config_digest(f"oci:{tmp_path}/back:v1") == m.config.digest
    names = _members(out)
    assert names[-2:] == ["manifest.json", "repositories"]
    assert f"{m.config.digest.hex}.json" in names and all(f"{d.digest.hex}.tar" in names for d in m.layers)


def test_several_images_share_layers_and_skopeo_reads_each(tmp_path: Path, skopeo: Callable[..., Any]) -> None:
    store = LayoutStore.create(tmp_path / "src")
    shared = {"shared.txt": b"s" * 5000}
    make_image(store, [shared, {"a.txt": b"a"}], compression="none", tag="a")
    make_image(store, [shared, {"b.txt": b"b"}], compression="none", tag="b")
    out = tmp_path / "m.tar"
    dst = open_destination(f"docker-archive:{out}:app:a")
    assert dst.capabilities.multi_image
    try:
        with open_source(f"oci:{tmp_path}/src:a") as a, open_source(f"oci:{tmp_path}/src:b") as b:
            copy_into(a, dst)
            copy_into(b, dst, name="app:b")
            copy_into(b, dst, name="example.com/other:2")
        dst.commit()
    finally:
        dst.close()
    shared_hex = Digest.of(make_layer(shared)).hex
    assert _members(out).count(f"{shared_hex}.tar") == 1
    with tarfile.open(out) as tar:
        items = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        repos = json.loads(tar.extractfile("repositories").read())  # type: ignore[union-attr]
    assert [it["RepoTags"] for it in items] == [["docker.io/library/app:a"],
                                                ["docker.io/library/app:b", "example.com/other:2"]]
    assert set(repos) == {"docker.io/library/app", "example.com/other"}
    for name, tag in (("app:a", "a"), ("app:b", "b"), ("example.com/other:2", "b")):
        info = json.loads(skopeo("inspect", f"docker-archive:{out}:{name}").stdout)
        with open_source(f"oci:{tmp_path}/src:{tag}") as src:
            assert info["Layers"] == [str(d.digest) for d in src.get_manifest().layers]
    with open_source(f"oci:{tmp_path}/src:b") as src:
        layers = [str(d.digest) for d in src.get_manifest().layers]
    assert json.loads(skopeo("inspect", f"docker-archive:{out}:@1").stdout)["Layers"] == layers
    with open_source(f"docker-archive:{out}:@1") as one:
        assert one.get_manifest().config.digest == _config_digest(f"oci:{tmp_path}/src:b")


def test_append_keeps_images_and_moves_a_retag(tmp_path: Path, plain: Path) -> None:
    out = tmp_path / "a.tar"
    store = LayoutStore.create(tmp_path / "src")
    make_image(store, [{"other.txt": b"o"}], compression="none", tag="o")
    copy(f"oci:{plain}:v1", f"docker-archive:{out}:app:1")
    copy(f"oci:{tmp_path}/src:o", f"docker-archive:{out}:app:2")
    assert _config_digest(f"docker-archive:{out}:app:1") == _config_digest(f"oci:{plain}:v1")
    assert _config_digest(f"docker-archive:{out}:app:2") == _config_digest(f"oci:{tmp_path}/src:o")
    copy(f"oci:{tmp_path}/src:o", f"docker-archive:{out}:app:1")  # the tag moves to the other image
    assert _config_digest(f"docker-archive:{out}:app:1") == _config_digest(f"oci:{tmp_path}/src:o")
    with open_source(f"docker-archive:{out}@0") as first:  # the first image stays, untagged
        assert first.get_manifest().config.digest == _config_digest(f"oci:{plain}:v1")


def test_deterministic_bytes(tmp_path: Path, plain: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy(f"oci:{plain}:v1", f"docker-archive:{tmp_path}/a.tar:app:1")
    copy(f"oci:{plain}:v1", f"docker-archive:{tmp_path}/b.tar:app:1")
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    copy(f"oci:{plain}:v1", f"docker-archive:{tmp_path}/c.tar:app:1")
    with tarfile.open(tmp_path / "c.tar") as tar:
        assert {m.mtime for m in tar.getmembers()} == {1700000000}
        assert {(m.uid, m.gid) for m in tar.getmembers()} == {(0, 0)}


def test_additional_tag_cli(cli, tmp_path: Path, plain: Path, skopeo: Callable[..., Any]) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "a.tar"
    res = cli("copy", "-q", "--additional-tag", "example.com/app:2", "--additional-tag", "app:latest",
              f"oci:{plain}:v1", f"docker-archive:{out}:example.com/app:1")
    assert res.exit_code == 0, res
    with tarfile.open(out) as tar:
        items = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert items[0]["RepoTags"] == ["example.com/app:1", "example.com/app:2", "docker.io/library/app:latest"]
    skopeo("inspect", f"docker-archive:{out}:app:latest")
    for bad in ("bad tag", "UPPER:1"):  # refused before anything is copied: the archive is unchanged
        before = out.read_bytes()
        res = cli("copy", "-q", "--additional-tag", bad, f"oci:{plain}:v1", f"docker-archive:{out}:app:2")
        assert res.exit_code == 2 and res.stderr.count("\n") == 1, res
        assert out.read_bytes() == before


def test_index_picks_the_host_platform_or_platform_and_refuses_all(cli, tmp_path: Path, plain: Path) -> None:  # type: ignore[no-untyped-def]
    from ocilayout.plan import host_platform

    out = tmp_path / "a.tar"
    with open_source(f"oci:{plain}:multi") as idx:
        children = {str(c.platform): c for c in idx.get_manifest().manifests}
    res = cli("copy", "-q", "--all", f"oci:{plain}:multi", f"docker-archive:{out}:app:1")
    assert res.exit_code == 5 and "cannot hold an index; pick one image with --platform" in res.stderr
    assert not out.exists()
    copy(f"oci:{plain}:multi", f"docker-archive:{out}:app:arm",
         CopyOptions(select=Selection(platforms=(Platform("linux", "arm64", "v8"),))))
    with open_source(f"oci:{plain}@{children['linux/arm64/v8'].digest}") as arm:
        assert _config_digest(f"docker-archive:{out}:app:arm") == arm.get_manifest().config.digest
    if str(host_platform()) in children:
        copy(f"oci:{plain}:multi", f"docker-archive:{out}:app:host")
        with open_source(f"oci:{plain}@{children[str(host_platform())].digest}") as host:
            assert _config_digest(f"docker-archive:{out}:app:host") == host.get_manifest().config.digest


def test_gzip_layers_are_decompressed_for_the_archive(cli, tmp_path: Path, sample: Path, skopeo) -> None:  # type: ignore[no-untyped-def]
    """docker-archive: holds uncompressed layers only: the planner decompresses gzip layers on the way (the
    destination's capabilities ask for it; no flag), diff_ids checked, config bytes unchanged."""
    from ocilayout.transports import open_source
    from ocilayout.transports.base import read_blob_bytes

    res = cli("copy", "-q", f"oci:{sample}:v1", f"docker-archive:{tmp_path}/a.tar:app:1")
    assert res.exit_code == 0, res
    with open_source(f"oci:{sample}:v1") as src, open_source(f"docker-archive:{tmp_path}/a.tar:app:1") as out:
        sm, om = src.get_manifest(), out.get_manifest()
        assert read_blob_bytes(src, sm.config) == read_blob_bytes(out, om.config)
        assert om.config.digest == sm.config.digest
        diff_ids = json.loads(read_blob_bytes(src, sm.config))["rootfs"]["diff_ids"]
        assert [str(layer.digest) for layer in om.layers] == diff_ids
    skopeo("inspect", f"docker-archive:{tmp_path}/a.tar")


def test_signatures_are_not_dropped_silently(cli, tmp_path: Path, plain: Path) -> None:  # type: ignore[no-untyped-def]
    from ocilayout.signature.image import sign_image
    from ocilayout.signature.keys import decrypt_private_key, generate_key_pair

    priv_pem, _ = generate_key_pair(b"pw", n=32768)
    sign_image(f"oci:{plain}:v1", decrypt_private_key(priv_pem, b"pw"), "registry.example.com/app:1")
    out = tmp_path / "a.tar"
    res = cli("copy", "-q", f"oci:{plain}:v1", f"docker-archive:{out}:app:1")
    assert res.exit_code == 5 and "cannot store sigstore signatures; pass --remove-signatures" in res.stderr
    assert not out.exists()
    copy(f"oci:{plain}:v1", f"docker-archive:{out}:app:1", CopyOptions(signing=Signing(remove=True)))
    assert _config_digest(f"docker-archive:{out}:app:1") == _config_digest(f"oci:{plain}:v1")


def test_writing_to_an_index_reference_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidReference, match="@N selects an image to read"):
        open_destination(f"docker-archive:{tmp_path}/a.tar@0")


def test_docker25_hybrid_resolves_repotags_through_the_oci_index(tmp_path: Path, plain: Path) -> None:
    """What `docker save` writes since Docker 25: an OCI layout whose index.json lists the image, plus a
    manifest.json pointing into blobs/. The RepoTags entry resolves to the layout's manifest, byte for byte."""
    tar = tmp_path / "hybrid.tar"
    copy(f"oci:{plain}:v1", f"oci-archive:{tar}:docker.io/library/app:1")
    with open_source(f"oci:{plain}:v1") as orig:
        m = orig.get_manifest()
    item = [{"Config": f"blobs/sha256/{m.config.digest.hex}", "RepoTags": ["app:1"],
             "Layers": [f"blobs/sha256/{d.digest.hex}" for d in m.layers]}]
    with tarfile.open(tar, "a") as t:
        data = json.dumps(item).encode()
        ti = tarfile.TarInfo("manifest.json")
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    with open_source(f"docker-archive:{tar}:app:1") as src:
        assert src.root.digest == m.digest and src.get_manifest().raw == m.raw
    copy(f"docker-archive:{tar}:app:1", f"oci:{tmp_path}/out:v1")
    with open_source(f"oci:{tmp_path}/out:v1") as back:
        assert back.root.digest == m.digest


def test_corrupt_compressed_archive_leaves_nothing(tmp_path: Path, plain: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    copy(f"oci:{plain}:v1", f"docker-archive:{tmp_path}/a.tar:app:1")
    (tmp_path / "a.tar.gz").write_bytes(gzip.compress((tmp_path / "a.tar").read_bytes())[:-100])
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setenv("TMPDIR", str(spool))
    with pytest.raises(LayoutError) as info:
        open_source(f"docker-archive:{tmp_path}/a.tar.gz")
    assert "gzip-compressed docker-archive" in one_line(info)
    assert list(spool.iterdir()) == []


@pytest.mark.damages_layouts
def test_failed_write_leaves_the_archive_and_its_directory_as_they_were(tmp_path: Path, plain: Path) -> None:
    out = tmp_path / "out" / "a.tar"
    out.parent.mkdir()
    copy(f"oci:{plain}:v1", f"docker-archive:{out}:app:1")
    before = out.read_bytes()
    bad = docker_save(tmp_path / "bad.tar", [make_layer({"a": b"a"})], diff_ids=[str(Digest.of(b"other"))])
    with pytest.raises(IntegrityError):
        copy(f"docker-archive:{bad}", f"docker-archive:{out}:app:2")
    assert out.read_bytes() == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["a.tar"]


def test_concurrent_appends_keep_both_images(tmp_path: Path) -> None:
    import threading

    store = LayoutStore.create(tmp_path / "src")
    for i in range(4):
        make_image(store, [{f"f{i}": bytes([i]) * 1000}], compression="none", tag=f"t{i}")
    out = tmp_path / "a.tar"
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            copy(f"oci:{tmp_path}/src:t{i}", f"docker-archive:{out}:app:{i}")
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i in range(4):
        assert _config_digest(f"docker-archive:{out}:app:{i}") == _config_digest(f"oci:{tmp_path}/src:t{i}")


def test_append_to_a_docker_save_archive(tmp_path: Path, plain: Path, skopeo: Callable[..., Any]) -> None:
    """docker's own layout (v1 directories, symlinked layer.tar) is rewritten in ours, its images kept."""
    src = peer_path(f"{TARBALLS}/test_link.tar")
    out = tmp_path / "a.tar"
    out.write_bytes(src.read_bytes())
    old = [_config_digest(f"docker-archive:{src}:@{i}") for i in range(2)]
    copy(f"oci:{plain}:v1", f"docker-archive:{out}:app:new")
    assert [_config_digest(f"docker-archive:{out}:@{i}") for i in range(2)] == old
    assert _config_digest(f"docker-archive:{out}:app:new") == _config_digest(f"oci:{plain}:v1")
    for i in range(3):
        skopeo("inspect", f"docker-archive:{out}:@{i}")


def test_a_killed_writers_staging_beside_the_archive_is_removed(tmp_path: Path, plain: Path) -> None:
    """A docker-archive writer killed mid-copy leaves its staging directory beside the archive; the next
    archive writer there removes it (its flock is free), as oci-archive writers always did."""
    dead = tmp_path / ".ocilayout-tmp-1-deadbeef.darchive"
    (dead / "blobs").mkdir(parents=True)
    (dead / "blobs" / "x").write_bytes(b"left behind")
    copy(f"oci:{plain}:v1", f"docker-archive:{tmp_path}/a.tar:app:1")
    assert not dead.exists()
