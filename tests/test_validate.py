"""fsck: clean layouts from us, skopeo and umoci; each kind of corruption; the peer fixtures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import peer_path

from ocilayout import mediatypes as mt
from ocilayout.digest import Digest
from ocilayout.manifest import Manifest, canonical_json
from ocilayout.sample import build_sample_layout, make_image, make_layer
from ocilayout.store import LayoutStore
from ocilayout.validate import KINDS, fsck

pytestmark = pytest.mark.damages_layouts

CIMG = "containers-image/oci/layout/fixtures"
GGCR = "go-containerregistry/pkg/v1/layout/testdata"


def _errors(report) -> set[str]:
    return {p.kind for p in report.problems if p.severity == "error"}


def _v1(store: LayoutStore) -> Manifest:
    return store.get_manifest(store.resolve("v1"))


def _copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for p in [dst, *dst.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dst


@pytest.fixture
def sample(tmp_path: Path) -> LayoutStore:
    return build_sample_layout(tmp_path / "layout")


def test_sample_layout_is_clean(sample: LayoutStore) -> None:
    report = fsck(sample)
    assert report.ok, report.problems
    assert report.problems == []
    blobs = list(sample.all_blobs())
    assert report.blobs_checked == len(blobs)
    assert report.bytes_hashed == sum(size for _, size in blobs)


def test_jobs_do_not_change_the_result(tmp_path: Path) -> None:
    store = LayoutStore.create(tmp_path / "big")
    big = {f"f{i}": os.urandom(3 << 20) for i in range(3)}  # 9 MB of incompressible layer data
    make_image(store, [big, {"x": b"y"}], tag="big", compression="none")
    r1, r2 = fsck(store, jobs=1), fsck(store, jobs=4)
    assert r1.ok and r2.ok
    assert (r1.blobs_checked, r1.bytes_hashed) == (r2.blobs_checked, r2.bytes_hashed)
    assert r1.bytes_hashed > 9 << 20


def test_truncated_blob(sample: LayoutStore) -> None:
    layer = _v1(sample).layers[1]
    path = sample.blob_path(layer.digest)
    path.write_bytes(path.read_bytes()[:-10])
    report = fsck(sample)
    assert not report.ok
    assert {p.kind for p in report.problems if p.digest == layer.digest} == {"size-mismatch", "digest-mismatch"}


def test_flipped_byte(sample: LayoutStore) -> None:
    layer = _v1(sample).layers[0]
    path = sample.blob_path(layer.digest)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    report = fsck(sample)
    assert [(p.kind, p.digest) for p in report.problems] == [("digest-mismatch", layer.digest)]


def test_flipped_byte_in_manifest(sample: LayoutStore) -> None:
    desc = sample.resolve("v1")
    path = sample.blob_path(desc.digest)
    path.write_bytes(path.read_bytes().replace(b'"schemaVersion":2', b'"schemaVersion":3'))
    report = fsck(sample)
    assert ("digest-mismatch", desc.digest) in [(p.kind, p.digest) for p in report.problems]


def test_deleted_blob(sample: LayoutStore) -> None:
    cfg = _v1(sample).config
    sample.blob_path(cfg.digest).unlink()
    report = fsck(sample)
    assert [(p.kind, p.digest) for p in report.errors] == [("blob-missing", cfg.digest)]


def test_deleted_manifest_of_nested_index(sample: LayoutStore) -> None:
    index = sample.get_manifest(sample.resolve("multi"))
    child = index.manifests[1]
    sample.blob_path(child.digest).unlink()
    report = fsck(sample)
    assert [(p.kind, p.digest) for p in report.errors] == [("blob-missing", child.digest)]
    assert "manifest blob" in report.errors[0].message


def _edit_index(store: LayoutStore, edit) -> None:
    doc = json.loads((store.root / "index.json").read_bytes())
    edit(doc)
    (store.root / "index.json").write_bytes(json.dumps(doc).encode())


def test_wrong_size_in_index_json(sample: LayoutStore) -> None:
    def edit(doc):
        doc["manifests"][0]["size"] += 1

    _edit_index(sample, edit)
    report = fsck(sample)
    assert _errors(report) == {"size-mismatch"}
    assert report.errors[0].digest == sample.resolve("v1").digest


def test_invalid_digest_entry_in_index_json(sample: LayoutStore) -> None:
    def edit(doc):
        doc["manifests"].append({"mediaType": mt.OCI_MANIFEST, "digest": "sha256:../../etc/passwd", "size": 1})

    _edit_index(sample, edit)
    report = fsck(sample)
    assert _errors(report) == {"index-entry-invalid"}
    # The valid entries were still checked.
    assert report.blobs_checked == len(list(sample.all_blobs()))


@pytest.mark.parametrize("garbage", [b"{not json", b"[]", b'{"schemaVersion": 2}', b"\xff\xfe"])
def test_garbage_index_json(sample: LayoutStore, garbage: bytes) -> None:
    (sample.root / "index.json").write_bytes(garbage)
    report = fsck(sample)
    assert _errors(report) == {"index-invalid"}


def test_missing_index_json(sample: LayoutStore) -> None:
    (sample.root / "index.json").unlink()
    assert _errors(fsck(sample)) == {"index-invalid"}


def test_missing_oci_layout(sample: LayoutStore) -> None:
    (sample.root / "oci-layout").unlink()
    report = fsck(sample)
    assert _errors(report) == {"layout-file"}


def test_unsupported_layout_version(sample: LayoutStore) -> None:
    (sample.root / "oci-layout").write_text('{"imageLayoutVersion": "2.0.0"}')
    assert _errors(fsck(sample)) == {"layout-file"}


def _manual_image(store: LayoutStore, layers: list[tuple[bytes, str]], diff_ids: list[str],
                  tag: str = "t", extra_layers: list[dict] | None = None) -> Manifest:
    descs = [store.put_bytes(data, media_type) for data, media_type in layers]
    cfg = store.put_bytes(canonical_json({"architecture": "amd64", "os": "linux",
                                          "rootfs": {"type": "layers", "diff_ids": diff_ids}}), mt.OCI_CONFIG)
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": cfg.to_dict(),
           "layers": [d.to_dict() for d in descs] + (extra_layers or [])}
    m = Manifest.from_doc(doc)
    store.set_ref(tag, store.put_manifest(m))
    return m


def test_layer_declared_gzip_but_plain(tmp_path: Path) -> None:
    store = LayoutStore.create(tmp_path / "l")
    tar = make_layer({"a": b"b"})
    m = _manual_image(store, [(tar, mt.OCI_LAYER_GZIP)], [str(Digest.of(tar))])
    report = fsck(store)
    assert [(p.kind, p.digest) for p in report.problems] == [("compression-mismatch", m.layers[0].digest)]
    assert "bytes are none" in report.problems[0].message


def test_layer_declared_plain_but_zstd_and_unknown_types_skipped(tmp_path: Path) -> None:
    import zstandard

    store = LayoutStore.create(tmp_path / "l")
    tar = make_layer({"a": b"b"})
    zst = zstandard.ZstdCompressor().compress(tar)
    m = _manual_image(store, [(zst, mt.OCI_LAYER), (tar, mt.OCI_LAYER + "+encrypted")],
                      [str(Digest.of(tar))] * 2)
    report = fsck(store)
    assert [(p.kind, p.digest) for p in report.problems] == [("compression-mismatch", m.layers[0].digest)]


def test_diff_ids_count_mismatch(tmp_path: Path) -> None:
    store = LayoutStore.create(tmp_path / "l")
    tar = make_layer({"a": b"b"})
    m = _manual_image(store, [(tar, mt.OCI_LAYER)], [str(Digest.of(tar))] * 2)
    report = fsck(store)
    assert [(p.kind, p.digest) for p in report.problems] == [("diff-ids-mismatch", m.digest)]


def test_foreign_layer_absent_is_a_warning(tmp_path: Path) -> None:
    store = LayoutStore.create(tmp_path / "l")
    tar = make_layer({"a": b"b"})
    foreign = {"mediaType": mt.OCI_LAYER_ND_GZIP, "digest": str(Digest.of(b"elsewhere")), "size": 9,
               "urls": ["https://example.com/layer"]}
    nd = {"mediaType": mt.OCI_LAYER_ND, "digest": str(Digest.of(b"nd")), "size": 2}
    _manual_image(store, [(tar, mt.OCI_LAYER)], [str(Digest.of(tar))] * 3, extra_layers=[foreign, nd])
    report = fsck(store)
    assert report.ok, report.problems
    assert [p.kind for p in report.problems] == ["foreign-layer-absent"] * 2
    assert all(p.severity == "warning" for p in report.problems)


def test_missing_plain_layer_is_an_error_even_with_foreign_neighbours(tmp_path: Path) -> None:
    store = LayoutStore.create(tmp_path / "l")
    tar = make_layer({"a": b"b"})
    m = _manual_image(store, [(tar, mt.OCI_LAYER)], [str(Digest.of(tar))])
    store.blob_path(m.layers[0].digest).unlink()
    assert [(p.kind, p.severity) for p in fsck(store).problems] == [("blob-missing", "error")]


def test_data_field_mismatch(tmp_path: Path) -> None:
    import base64

    store = LayoutStore.create(tmp_path / "l")
    tar = make_layer({"a": b"b"})
    layer = store.put_bytes(tar, mt.OCI_LAYER).to_dict()
    layer["data"] = base64.b64encode(b"something else").decode()
    cfg = store.put_bytes(b'{"rootfs":{"type":"layers","diff_ids":["x"]}}', mt.OCI_CONFIG)
    m = Manifest.from_doc({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": cfg.to_dict(),
                           "layers": [layer]})
    store.set_ref("t", store.put_manifest(m))
    assert _errors(fsck(store)) == {"data-mismatch"}


def test_unparsable_manifest(tmp_path: Path) -> None:
    store = LayoutStore.create(tmp_path / "l")
    bad = store.put_bytes(b'{"schemaVersion": 2, "config": 7}', mt.OCI_MANIFEST)
    store.set_ref("bad", bad)
    report = fsck(store)
    assert [(p.kind, p.digest) for p in report.problems] == [("manifest-invalid", bad.digest)]


def test_stale_temp_file_is_info(sample: LayoutStore) -> None:
    code = ("import fcntl, os, sys; f = open(sys.argv[1], 'xb'); fcntl.flock(f, fcntl.LOCK_EX); "
            "f.write(b'partial'); f.flush()")
    tmp = sample.root / ".ocilayout-tmp-99999-deadbeefdeadbeef"
    subprocess.run([sys.executable, "-c", code, str(tmp)], check=True)
    os.utime(tmp, (1, 1))
    report = fsck(sample)
    assert report.ok
    assert [(p.kind, p.severity) for p in report.problems] == [("stale-temp-file", "info")]


def test_blob_symlinked_out_of_the_layout_is_unreadable(sample: LayoutStore, tmp_path: Path) -> None:
    layer = _v1(sample).layers[0]
    path = sample.blob_path(layer.digest)
    outside = tmp_path / "outside"
    outside.write_bytes(path.read_bytes())
    path.unlink()
    path.symlink_to(outside)
    report = fsck(sample)
    assert [(p.kind, p.digest) for p in report.problems] == [("unreadable", layer.digest)]
    assert "symlink out of the layout" in report.problems[0].message


def test_every_kind_has_a_severity() -> None:
    assert set(KINDS.values()) == {"error", "warning", "info"}


# -- layouts written by the real tools ------------------------------------------------------------------

@pytest.mark.interop
def test_skopeo_written_layout_is_clean(sample: LayoutStore, tmp_path: Path, skopeo) -> None:
    dst = tmp_path / "skopeo"
    skopeo("copy", f"oci:{sample.root}:v1", f"oci:{dst}:copied")
    skopeo("copy", "--all", f"oci:{sample.root}:multi", f"oci:{dst}:multi")
    skopeo("copy", "--dest-compress-format", "zstd", f"oci:{sample.root}:v1", f"oci:{dst}:zstd")
    report = fsck(LayoutStore.open(dst))
    assert report.ok and report.problems == [], report.problems
    assert report.blobs_checked >= 10


@pytest.mark.interop
def test_umoci_written_layout_is_clean(tmp_path: Path, umoci) -> None:
    layout = tmp_path / "umoci"
    umoci("init", "--layout", str(layout))
    umoci("new", "--image", f"{layout}:t")
    bundle = tmp_path / "bundle"
    umoci("unpack", "--rootless", "--image", f"{layout}:t", str(bundle))
    (bundle / "rootfs" / "hello.txt").write_text("hello from umoci\n")
    umoci("repack", "--image", f"{layout}:t", str(bundle))
    store = LayoutStore.open(layout)
    report = fsck(store)
    assert report.ok and report.problems == [], report.problems
    assert len(store.get_manifest(store.resolve("t")).layers) == 1


def test_skopeo_s2_fixture_plain_tar_declared_gzip(tmp_path: Path) -> None:
    """skopeo's dir: fixture declares its layer ``rootfs.diff.tar.gzip`` but stores a plain tar. Its blobs
    and manifest, byte for byte, in a layout (a Docker v2s2 manifest in an OCI layout, as ggcr writes)."""
    src = peer_path("skopeo/integration/fixtures/uncompressed-image-s2")
    store = LayoutStore.create(tmp_path / "s2")
    raw = (src / "manifest.json").read_bytes()
    for blob in src.iterdir():
        if blob.name not in ("manifest.json", "version"):
            store.put_bytes(blob.read_bytes())
    desc = store.put_bytes(raw, mt.DOCKER_MANIFEST)
    store.set_ref("s2", desc)
    layers = Manifest.parse(raw).layers
    assert [layer.media_type for layer in layers] == [mt.DOCKER_LAYER]
    report = fsck(store)
    assert [(p.kind, p.digest) for p in report.problems] == [("compression-mismatch", layers[0].digest)]
    assert "bytes are none" in report.problems[0].message


# -- peer fixtures ----------------------------------------------------------------------------------

def test_peer_multiple_images_has_one_real_defect_and_placeholder_layers() -> None:
    """Upstream's fixture: manifest 0dc27f36 (tag 1.0.0) declares its config as 585 bytes, the blob has
    584 (real skopeo refuses it too: "Size mismatch ... expected 585, got 584"), and every layer is the text
    "insert binary content here #N" declared tar+gzip. Everything else hashes correctly."""
    store = LayoutStore(peer_path(f"{CIMG}/delete_image_multiple_images"))
    report = fsck(store)
    cfg = Digest.parse("sha256:913cf3a39d377faf89ed388ad913a318a390488c9f34c46e43424795cdabffe8")
    assert [(p.kind, p.digest) for p in report.problems if p.kind != "compression-mismatch"] == [
        ("size-mismatch", cfg)]
    assert "584 bytes, its descriptor says 585" in report.problems[0].message
    placeholders = {d for d, _ in store.all_blobs() if store.blob_path(d).read_bytes().startswith(b"insert binary")}
    assert {p.digest for p in report.problems if p.kind == "compression-mismatch"} == placeholders
    assert len(placeholders) == 6
    assert report.blobs_checked == 19


def test_peer_shared_blobs_dir_rejected(tmp_path: Path) -> None:
    src = peer_path(f"{CIMG}/delete_image_shared_blobs_dir")
    manifest = Digest.parse("sha256:eaa95f3cfaac07c8a5153eb77c933269586ad0226c83405776be08547e4d2a18")
    # As a plain layout, the manifest lives outside blobs/ (in c/image's shared blob dir): missing.
    assert [(p.kind, p.digest) for p in fsck(LayoutStore(src)).problems] == [("blob-missing", manifest)]
    # With the shared blob dir merged into blobs/, the upstream defect shows: index.json says 405 bytes.
    merged = _copy_tree(src, tmp_path / "merged")
    for blob in (merged / "shared_blobs" / "sha256").iterdir():
        shutil.copy(blob, merged / "blobs" / "sha256" / blob.name)
    report = fsck(LayoutStore(merged))
    assert not report.ok
    first = report.errors[0]
    assert (first.kind, first.digest) == ("size-mismatch", manifest)
    assert "476 bytes, its descriptor says 405" in first.message
    # Further upstream defects behind it: the config is 740 bytes (declared 585), the layer is a placeholder.
    assert [p.kind for p in report.errors] == ["size-mismatch", "size-mismatch", "compression-mismatch"]


def test_peer_ggcr_unknown_mediatype_without_blobs_dir_rejected() -> None:
    report = fsck(LayoutStore(peer_path(f"{GGCR}/test_gc_image_unknown_mediatype")))
    assert not report.ok
    assert _errors(report) == {"blobs-dir-missing", "blob-missing"}  # the image-spec says blobs/ must exist


def test_peer_ggcr_test_index_clean_with_media_type_warning() -> None:
    report = fsck(LayoutStore(peer_path(f"{GGCR}/test_index")))
    assert report.ok, report.problems
    assert [p.kind for p in report.problems] == ["media-type-mismatch"]  # ref "1": OCI descriptor, docker blob
    assert report.blobs_checked == 8  # every blob, through the nested index and the docker manifest list


def test_peer_regclient_testrepo_clean() -> None:
    store = LayoutStore(peer_path("regclient/testdata/testrepo"))
    report = fsck(store)
    assert report.ok and report.problems == [], report.problems
    # Loops, subjects, artifacts and data fields: every stored blob is reachable and checked exactly once.
    assert report.blobs_checked == len(list(store.all_blobs())) == 91


def test_peer_regclient_external_subject_absent_is_a_warning() -> None:
    report = fsck(LayoutStore(peer_path("regclient/testdata/external")))
    assert report.ok
    assert {p.kind for p in report.problems} == {"subject-absent"}


def test_hash_jobs_in_flight_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory flat in the blob count: with hashing held up, the walk waits after 4 x jobs queued blobs
    instead of creating a job (a Future, before) for every blob of the layout. Speed: benchmarks/fsck_bench.py."""
    import threading

    from ocilayout import validate

    store = LayoutStore.create(tmp_path / "l")
    tars = [make_layer({f"f{i}": str(i).encode()}) for i in range(60)]
    _manual_image(store, [(t, mt.OCI_LAYER) for t in tars], [str(Digest.of(t)) for t in tars])
    gate, queued, real_queue = threading.Event(), [], validate._Checker.queue_hash
    real_hash = validate._hash_blob

    def held_hash(reader, digest):  # type: ignore[no-untyped-def]
        gate.wait()
        return real_hash(reader, digest)

    def counting_queue(self, desc, role):  # type: ignore[no-untyped-def]
        queued.append(desc.digest)
        real_queue(self, desc, role)

    monkeypatch.setattr(validate, "_hash_blob", held_hash)
    monkeypatch.setattr(validate._Checker, "queue_hash", counting_queue)
    result: list = []
    t = threading.Thread(target=lambda: result.append(fsck(store, jobs=1)))
    t.start()
    t.join(0.5)  # the walk queues what it may, then blocks (before: all 60, then waited in collect)
    in_flight = len(queued)
    gate.set()
    t.join()
    assert in_flight <= 4 * 1 + 1 + 1, in_flight  # queue + the one being hashed + the one being put
    assert result[0].ok and result[0].blobs_checked == 62, result[0].problems


def test_problem_order_does_not_depend_on_thread_timing(sample: LayoutStore) -> None:
    arm = sample.get_manifest(sample.get_manifest(sample.resolve("multi")).manifests[1])
    for layer in _v1(sample).layers + arm.layers:
        path = sample.blob_path(layer.digest)
        path.write_bytes(path.read_bytes()[:-1] + b"!")
    reports = [[(p.kind, p.digest) for p in fsck(sample, jobs=j).problems] for j in (1, 2, 4, 8)]
    assert reports[0] and all(r == reports[0] for r in reports), reports


# -- issue 7: ambiguous documents, wrong JSON types, layout rules, artifacts -------------------------------

def _put_manifest(store: LayoutStore, doc: dict, media_type: str = mt.OCI_MANIFEST, tag: str = "bad"):  # type: ignore[no-untyped-def]
    desc = store.put_bytes(json.dumps(doc).encode(), media_type)
    store.set_ref(tag, desc)
    return desc


@pytest.mark.parametrize("media_type,extra", [
    (mt.OCI_MANIFEST, {"manifests": []}),  # a manifest that is also an (empty) index
    (mt.OCI_INDEX, None),  # manifest bytes under an index descriptor
])
def test_ambiguous_manifest_is_manifest_invalid(sample: LayoutStore, media_type: str, extra: dict | None) -> None:
    doc = json.loads(_v1(sample).raw)
    doc.pop("mediaType")
    if extra:
        doc.update(extra)
    bad = _put_manifest(sample, doc, media_type)
    report = fsck(sample)
    assert [(p.kind, p.digest) for p in report.errors] == [("manifest-invalid", bad.digest)]
    assert "ambiguous" in report.errors[0].message and str(bad.digest) in report.errors[0].message


def test_index_bytes_under_a_manifest_type_are_not_followed(sample: LayoutStore) -> None:
    """Before, copy and fsck followed the list: a different image than the descriptor names."""
    index = sample.get_manifest(sample.resolve("multi"))
    doc = json.loads(index.raw)
    doc.pop("mediaType", None)
    bad = _put_manifest(sample, doc, mt.OCI_MANIFEST)
    assert [(p.kind, p.digest) for p in fsck(sample).errors] == [("manifest-invalid", bad.digest)]


def test_wrong_json_types_are_reported_with_their_location_and_the_rest_is_checked(sample: LayoutStore) -> None:
    m = _v1(sample)
    cfg = json.loads(sample.read_blob_bytes(m.config))
    cfg["config"] = {"Env": ["PATH=/bin", 5]}
    cdesc = sample.put_bytes(json.dumps(cfg).encode(), mt.OCI_CONFIG)
    doc = json.loads(m.raw)
    doc["config"] = cdesc.with_(media_type=mt.OCI_CONFIG).to_dict()
    _put_manifest(sample, doc, tag="badcfg")
    layer_doc = json.loads(m.raw)
    layer_doc["layers"][0]["urls"] = 5
    badm = _put_manifest(sample, layer_doc, tag="badurls")
    report = fsck(sample)
    assert [(p.kind, p.digest) for p in report.errors] == [("manifest-invalid", cdesc.digest),
                                                           ("manifest-invalid", badm.digest)]
    assert "config.Env[1] must be a string" in report.errors[0].message
    assert "layers[0].urls must be an array of strings" in report.errors[1].message
    assert report.blobs_checked == len(list(sample.all_blobs()))  # nothing stopped the walk


def test_wrong_json_types_in_index_json_entries(sample: LayoutStore) -> None:
    def edit(doc):  # type: ignore[no-untyped-def]
        doc["manifests"][0]["urls"] = 5
        doc["manifests"][1]["platform"] = {"os": "linux", "architecture": "arm64", "variant": ["v8"]}

    _edit_index(sample, edit)
    report = fsck(sample)
    assert [p.kind for p in report.errors] == ["index-entry-invalid"] * 2
    assert "entry 0: descriptor.urls must be" in report.errors[0].message
    assert "entry 1: descriptor.platform.variant must be" in report.errors[1].message


@pytest.mark.parametrize("extra,says", [({"layers": []}, "ambiguous"), ({"annotations": {"a": 5}}, "annotations['a']"),
                                        ({"subject": "x"}, "subject must be")])
def test_ambiguous_or_mistyped_index_json_is_index_invalid(sample: LayoutStore, extra: dict, says: str) -> None:
    """What makes every other command refuse index.json makes fsck report it (and still check the entries)."""
    from ocilayout.errors import InvalidManifest

    _edit_index(sample, lambda doc: doc.update(extra))
    report = fsck(sample)
    assert [p.kind for p in report.errors] == ["index-invalid"] and says in report.errors[0].message
    assert report.blobs_checked == len(list(sample.all_blobs()))
    with pytest.raises(InvalidManifest):
        sample.refs()


def test_huge_integer_in_a_manifest_is_manifest_invalid(tmp_path: Path) -> None:
    store = LayoutStore.create(tmp_path / "l")
    raw = b'{"schemaVersion":2,"mediaType":"%s","manifests":[],"x":%s}' % (mt.OCI_INDEX.encode(), b"7" * 5000)
    bad = store.put_bytes(raw, mt.OCI_INDEX)
    store.set_ref("big", bad)
    report = fsck(store)
    assert [(p.kind, p.digest) for p in report.problems] == [("manifest-invalid", bad.digest)]
    assert "too large" in report.problems[0].message


@pytest.mark.parametrize("version", ["1.x-garbage", "1.0", "1.0.0-rc1", "2.0.0", " 1.0.0", "01.0.0", 1, None])
def test_garbage_layout_versions_are_refused(sample: LayoutStore, version) -> None:  # type: ignore[no-untyped-def]
    (sample.root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": version}))
    assert _errors(fsck(sample)) == {"layout-file"}
    from ocilayout.errors import LayoutError

    with pytest.raises(LayoutError, match="imageLayoutVersion"):
        LayoutStore.open(sample.root)


def test_later_1x_layout_versions_are_accepted(sample: LayoutStore) -> None:
    (sample.root / "oci-layout").write_text('{"imageLayoutVersion": "1.1.0"}')
    assert fsck(sample).ok


def test_layout_without_blobs_dir_fails_fsck(tmp_path: Path) -> None:
    store = LayoutStore.create(tmp_path / "l")
    (store.root / "blobs").rmdir()
    report = fsck(store)
    assert [(p.kind, p.severity) for p in report.problems] == [("blobs-dir-missing", "error")]
    (store.root / "blobs").write_bytes(b"")  # a file is not a directory either
    assert _errors(fsck(store)) == {"blobs-dir-missing"}


@pytest.mark.parametrize("config_type", ["application/vnd.cncf.helm.config.v1+json", mt.OCI_EMPTY,
                                         "application/vnd.dev.cosign.artifact.sig.v1+json"])
def test_artifact_configs_are_never_parsed(tmp_path: Path, config_type: str) -> None:
    """An artifact's config whose bytes look like an index (naming a blob that is not there) or like a
    broken image config is only hashed: before, fsck sniffed it as a manifest and followed it."""
    store = LayoutStore.create(tmp_path / "l")
    ghost = {"mediaType": mt.OCI_MANIFEST, "digest": str(Digest.of(b"nowhere")), "size": 7}
    cfg = store.put_bytes(json.dumps({"schemaVersion": 2, "manifests": [ghost], "os": 5}).encode(), config_type)
    payload = store.put_bytes(json.dumps({"schemaVersion": 2, "manifests": [ghost]}).encode(), "application/x-p")
    _put_manifest(store, {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": cfg.to_dict(),
                          "layers": [payload.to_dict()]}, tag="art")
    report = fsck(store)
    assert report.ok and report.problems == [], report.problems
    assert report.blobs_checked == 3


def test_index_children_of_unknown_type_are_still_sniffed(tmp_path: Path) -> None:
    """ggcr writes index entries typed application/vnd.oci.descriptor.v1+json: those are followed."""
    store = LayoutStore.create(tmp_path / "l")
    tar = make_layer({"a": b"b"})
    m = _manual_image(store, [(tar, mt.OCI_LAYER)], [str(Digest.of(tar))])
    store.set_ref("odd", store.resolve("t").with_(media_type="application/vnd.oci.descriptor.v1+json"))
    store.blob_path(m.layers[0].digest).unlink()
    assert [p.kind for p in fsck(store).errors] == ["blob-missing"]
