"""``attach``: OCI 1.1 referrers in a layout (artifact manifest + the sha256-<hex> fallback tag), kept by gc,
carried by copy, merged safely by concurrent writers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_fsck, peer_path

from ocilayout import mediatypes as mt
from ocilayout.copy import CopyOptions, Selection, copy
from ocilayout.digest import Digest
from ocilayout.edit.attach import EMPTY_CONFIG, attach, list_referrers
from ocilayout.errors import UnsupportedFormat
from ocilayout.gc import gc
from ocilayout.manifest import Manifest
from ocilayout.referrers import add_to_index, fallback_tag, referrer_descriptor
from ocilayout.store import LayoutStore
from ocilayout.transports import open_source

OCILAYOUT = [sys.executable, "-m", "ocilayout"]
SPDX = "application/spdx+json"


def _sbom(tmp_path: Path, text: str = '{"spdxVersion":"SPDX-2.3"}', name: str = "sbom.spdx.json") -> Path:
    f = tmp_path / name
    f.write_text(text)
    return f


def _root(layout: Path, tag: str) -> Digest:
    with LayoutStore.open(layout) as r:
        return r.resolve(tag).digest


def _oras_lookup(layout: Path, subject: Digest) -> list[dict]:
    """What a tool that knows nothing of ocilayout does: find the sha256-<hex> tag in index.json, read that
    blob as an index, and return its entries (distribution-spec's referrers tag schema)."""
    index = json.loads((layout / "index.json").read_bytes())
    tag = f"sha256-{subject.hex}"
    entries = [e for e in index["manifests"]
               if e.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]
    assert len(entries) == 1
    alg, hex_ = entries[0]["digest"].split(":")
    doc = json.loads((layout / "blobs" / alg / hex_).read_bytes())
    assert doc["mediaType"] == mt.OCI_INDEX
    return doc["manifests"]


def _blob(layout: Path, digest: str) -> bytes:
    alg, hex_ = digest.split(":")
    return (layout / "blobs" / alg / hex_).read_bytes()


def _snapshot(path: Path) -> list[tuple[str, bytes]]:
    return sorted((str(f.relative_to(path)), f.read_bytes()) for f in path.rglob("*")
                  if f.is_file() and not f.name.startswith(".ocilayout"))


def test_attach_writes_an_oci_11_artifact_found_through_the_fallback_tag(sample: Path, tmp_path: Path, cli,
                                                                         skopeo) -> None:
    subject = _root(sample, "v1")
    sbom = _sbom(tmp_path)
    res = cli("attach", f"oci:{sample}:v1", sbom, "--artifact-type", SPDX, "--media-type", SPDX,
              "--annotation", "org.example.tool=test", "--digestfile", tmp_path / "d")
    assert res.exit_code == 0, res
    digest = res.stdout.strip()
    assert (tmp_path / "d").read_text() == digest
    found = _oras_lookup(sample, subject)
    assert [e["digest"] for e in found] == [digest]
    assert found[0]["artifactType"] == SPDX and found[0]["annotations"] == {"org.example.tool": "test"}
    doc = json.loads(_blob(sample, digest))
    assert doc["mediaType"] == mt.OCI_MANIFEST and doc["artifactType"] == SPDX
    assert doc["config"] == {"mediaType": mt.OCI_EMPTY, "digest": str(EMPTY_CONFIG.digest), "size": 2,
                             "data": "e30="}
    assert _blob(sample, doc["config"]["digest"]) == b"{}"
    (layer,) = doc["layers"]
    assert layer["mediaType"] == SPDX and layer["annotations"] == {"org.opencontainers.image.title": sbom.name}
    assert _blob(sample, layer["digest"]) == sbom.read_bytes()
    with LayoutStore.open(sample) as r:
        image = r.resolve("v1")
    assert doc["subject"] == {"mediaType": image.media_type, "digest": str(image.digest), "size": image.size}
    # skopeo reads the fallback tag as an index, and the image itself is unchanged
    raw = json.loads(skopeo("inspect", "--raw", f"oci:{sample}:{fallback_tag(subject)}").stdout)
    assert [m["digest"] for m in raw["manifests"]] == [digest]
    assert _root(sample, "v1") == subject
    assert_fsck(sample)


def test_attaching_twice_merges_and_the_same_attach_is_idempotent(sample: Path, tmp_path: Path) -> None:
    subject = _root(sample, "v1")
    a = attach(f"oci:{sample}:v1", _sbom(tmp_path), artifact_type=SPDX)
    b = attach(f"oci:{sample}:v1", _sbom(tmp_path, "sig", "sig.bin"), artifact_type="application/example.sig")
    again = attach(f"oci:{sample}:v1", _sbom(tmp_path), artifact_type=SPDX)
    assert again.descriptor.digest == a.descriptor.digest  # same file, same type: the same bytes
    assert [e["digest"] for e in _oras_lookup(sample, subject)] == [str(a.descriptor.digest),
                                                                     str(b.descriptor.digest)]
    with open_source(f"oci:{sample}:v1") as src:
        assert [d.digest for d in list_referrers(src, artifact_type=SPDX)] == [a.descriptor.digest]
        assert len(list_referrers(src)) == 2


def test_attach_to_an_index_and_into_an_archive(sample: Path, tmp_path: Path) -> None:
    copy(f"oci:{sample}:multi", f"oci-archive:{tmp_path / 'a.tar'}:multi", CopyOptions(select=Selection(all=True)))
    res = attach(f"oci-archive:{tmp_path / 'a.tar'}:multi", _sbom(tmp_path), artifact_type=SPDX)
    with open_source(f"oci-archive:{tmp_path / 'a.tar'}:multi") as src:
        assert src.get_manifest().is_index
        assert [d.digest for d in list_referrers(src)] == [res.descriptor.digest]
        assert src.get_manifest(res.descriptor).subject == res.subject


def test_gc_keeps_referrers_ours_and_umocis(sample: Path, tmp_path: Path, umoci) -> None:
    subject = _root(sample, "v1")
    first = attach(f"oci:{sample}:v1", _sbom(tmp_path), artifact_type=SPDX)
    attach(f"oci:{sample}:v1", _sbom(tmp_path, "x", "x.bin"), artifact_type="application/x")
    with LayoutStore.open(sample) as store:
        result = gc(store, grace=0)
    assert result.removed  # the first fallback index, replaced by the second
    art = json.loads(_blob(sample, str(first.descriptor.digest)))
    assert _blob(sample, art["layers"][0]["digest"])
    umoci("gc", "--layout", str(sample))  # a peer's gc walks index.json too: the referrers stay
    assert len(_oras_lookup(sample, subject)) == 2
    assert _blob(sample, art["layers"][0]["digest"]) and _blob(sample, art["config"]["digest"]) == b"{}"
    assert_fsck(sample)


@pytest.mark.parametrize("dst", ["oci", "oci-archive"])
def test_copy_carries_referrers_and_remove_referrers_drops_them(sample: Path, tmp_path: Path, cli,
                                                                dst: str) -> None:
    res = attach(f"oci:{sample}:v1", _sbom(tmp_path), artifact_type=SPDX)
    ref = f"oci:{tmp_path / 'out'}:v1" if dst == "oci" else f"oci-archive:{tmp_path / 'out.tar'}:v1"
    out = cli("copy", f"oci:{sample}:v1", ref)
    assert out.exit_code == 0, out
    assert "1 referrers carried" in out.stderr
    with open_source(ref) as src:
        (got,) = list_referrers(src)
        assert got.digest == res.descriptor.digest and got.artifact_type == SPDX
        assert src.get_manifest(got).raw == _blob(sample, str(got.digest))  # the same bytes
    assert copy(ref, f"oci:{tmp_path / 'back'}:v1").referrers_copied == 1  # and on again, out of an archive too
    with open_source(f"oci:{tmp_path / 'back'}:v1") as src:
        assert [d.digest for d in list_referrers(src)] == [res.descriptor.digest]
    bare = f"oci:{tmp_path / 'bare'}:v1"
    assert cli("copy", "--remove-referrers", f"oci:{sample}:v1", bare).exit_code == 0
    with open_source(bare) as src:
        assert list_referrers(src) == []
    assert cli("copy", "--remove-referrers", f"oci:{sample}:v1", bare).exit_code == 0
    assert fallback_tag(res.subject.digest) not in LayoutStore.open(tmp_path / "bare").refs()


def test_copy_to_a_transport_without_referrers_leaves_them(sample: Path, tmp_path: Path) -> None:
    attach(f"oci:{sample}:v1", _sbom(tmp_path), artifact_type=SPDX)
    res = copy(f"oci:{sample}:v1", f"docker-archive:{tmp_path / 'd.tar'}:example.com/app:v1")
    assert res.referrers_copied == 0
    with open_source(f"docker-archive:{tmp_path / 'd.tar'}") as src:
        assert list_referrers(src) == []


def test_recopy_does_not_rewrite_the_fallback_index(sample: Path, tmp_path: Path) -> None:
    attach(f"oci:{sample}:v1", _sbom(tmp_path), artifact_type=SPDX)
    copy(f"oci:{sample}:v1", f"oci:{tmp_path / 'out'}:v1")
    tag = fallback_tag(_root(sample, "v1"))
    before, blobs = _root(tmp_path / "out", tag), sorted((tmp_path / "out" / "blobs").rglob("*"))
    again = copy(f"oci:{sample}:v1", f"oci:{tmp_path / 'out'}:v1")
    assert again.blobs_copied == 0 and again.referrers_copied == 1
    assert _root(tmp_path / "out", tag) == before and sorted((tmp_path / "out" / "blobs").rglob("*")) == blobs


def test_concurrent_attaches_keep_every_referrer(sample: Path, tmp_path: Path) -> None:
    subject = _root(sample, "v1")
    files = [_sbom(tmp_path, f'{{"n":{i}}}', f"sbom{i}.json") for i in range(6)]
    procs = [subprocess.Popen([*OCILAYOUT, "attach", "-q", f"oci:{sample}:v1", str(f), "--artifact-type", SPDX],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for f in files]
    digests = set()
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        digests.add(out.decode().strip())
    assert {e["digest"] for e in _oras_lookup(sample, subject)} == digests and len(digests) == 6
    assert_fsck(sample)


@pytest.mark.parametrize("case", ["missing-file", "bad-type", "no-subject", "directory", "dir-transport",
                                  "bad-annotation"])
def test_bad_input_is_one_line_and_changes_nothing(sample: Path, tmp_path: Path, cli, case: str) -> None:
    sbom = _sbom(tmp_path)
    copy(f"oci:{sample}:v1", f"dir:{tmp_path / 'dirimg'}")
    args = {
        "missing-file": (f"oci:{sample}:v1", tmp_path / "nope.json", "--artifact-type", SPDX),
        "bad-type": (f"oci:{sample}:v1", sbom, "--artifact-type", "spdx"),
        "no-subject": (f"oci:{sample}:nope", sbom, "--artifact-type", SPDX),
        "directory": (f"oci:{sample}:v1", tmp_path, "--artifact-type", SPDX),
        "dir-transport": (f"dir:{tmp_path / 'dirimg'}", sbom, "--artifact-type", SPDX),
        "bad-annotation": (f"oci:{sample}:v1", sbom, "--artifact-type", SPDX, "--annotation", "novalue"),
    }[case]
    want = {"missing-file": 3, "bad-type": 2, "no-subject": 3, "directory": 4, "dir-transport": 5,
            "bad-annotation": 2}[case]
    before, before_dir = _snapshot(sample), _snapshot(tmp_path / "dirimg")
    res = cli("attach", *args)
    assert res.exit_code == want, res
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("ocilayout: error: ") and not res.stdout
    assert _snapshot(sample) == before and _snapshot(tmp_path / "dirimg") == before_dir


def test_dir_destination_refuses_put_referrers(tmp_path: Path, sample: Path) -> None:
    from ocilayout.transports import open_destination

    dst = open_destination(f"dir:{tmp_path / 'x'}")
    try:
        with pytest.raises(UnsupportedFormat, match="referrers"):
            dst.put_referrers(_root(sample, "v1"), [])
    finally:
        dst.close()


def test_fallback_index_merge_adds_nothing_twice() -> None:
    a = Manifest.parse(b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
                       b'"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"' +
                       str(EMPTY_CONFIG.digest).encode() + b'","size":2},"layers":[]}')
    da = referrer_descriptor(a)
    assert da.artifact_type == mt.OCI_EMPTY  # no artifactType: the config's media type, as distribution says
    first = add_to_index(None, [da])
    assert first is not None
    assert add_to_index(first, [da]) is None  # nothing new: the tag stays
    assert fallback_tag(Digest.parse("sha512:" + "ab" * 64)) == "sha512-" + "ab" * 32  # cut to 64


def test_regclient_referrers_are_read_and_carried(tmp_path: Path) -> None:
    """regclient's testrepo: v2's referrers through its fallback tag, v3's as untagged manifests whose tag was
    deleted, and a loop (child's referrer is an index listing child)."""
    repo = peer_path("regclient/testdata/testrepo")
    src_dir = tmp_path / "testrepo"
    shutil.copytree(repo, src_dir)
    with open_source(f"oci:{src_dir}:v2") as src:
        v2 = {d.artifact_type for d in list_referrers(src)}
    with open_source(f"oci:{src_dir}:v3") as src:
        v3 = [d.artifact_type for d in list_referrers(src)]
    assert v2 == {"application/example.sbom", "application/example.signature"}
    assert v3 == ["application/example.sbom", "application/example.sbom"]
    for tag in ("v2", "v3", "child"):
        res = copy(f"oci:{src_dir}:{tag}", f"oci:{tmp_path / 'out'}:{tag}", CopyOptions(select=Selection(all=True)))
        assert res.referrers_copied >= 1
    with open_source(f"oci:{tmp_path / 'out'}:v3") as src:
        assert [d.artifact_type for d in list_referrers(src)] == v3
    assert_fsck(tmp_path / "out")


@pytest.mark.damages_layouts
def test_a_listed_referrer_that_is_not_stored_does_not_stop_a_copy(sample: Path, tmp_path: Path) -> None:
    res = attach(f"oci:{sample}:v1", _sbom(tmp_path), artifact_type=SPDX)
    (sample / "blobs" / "sha256" / res.descriptor.digest.hex).unlink()
    out = copy(f"oci:{sample}:v1", f"oci:{tmp_path / 'out'}:v1")
    assert out.referrers_copied == 0
    assert_fsck(tmp_path / "out")


def test_attach_to_one_platform_of_an_index(sample: Path, tmp_path: Path, cli) -> None:
    with LayoutStore.open(sample) as r:
        arm = next(c for c in r.get_manifest(r.resolve("multi")).manifests if c.platform.architecture == "arm64")
    res = cli("attach", "--platform", "linux/arm64", f"oci:{sample}:multi", _sbom(tmp_path), "--artifact-type", SPDX)
    assert res.exit_code == 0, res
    assert [e["digest"] for e in _oras_lookup(sample, arm.digest)] == [res.stdout.strip()]
    assert fallback_tag(_root(sample, "multi")) not in LayoutStore.open(sample).refs()
    before = _snapshot(sample)
    bad = cli("attach", "--platform", "linux/s390x", f"oci:{sample}:multi", _sbom(tmp_path), "--artifact-type", SPDX)
    assert bad.exit_code == 3 and bad.stderr.count("\n") == 1 and _snapshot(sample) == before


def test_a_fallback_tag_that_names_an_image_is_left_alone(sample: Path, tmp_path: Path, cli) -> None:
    """regclient's testrepo tags a manifest with its own sha256-<hex>: attaching to it must not overwrite it."""
    subject = _root(sample, "v1")
    with LayoutStore.open(sample) as store:
        store.set_ref(fallback_tag(subject), store.resolve("v1"))
    before = _snapshot(sample)
    res = cli("attach", f"oci:{sample}:v1", _sbom(tmp_path), "--artifact-type", SPDX)
    assert res.exit_code == 6 and "left alone" in res.stderr and _snapshot(sample) == before
