"""flatten and normalize (ocilayout.layer.squash, ocilayout.edit.flatten / normalize, cli/layers.py)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest
from conftest import assert_fsck
from test_append import SDE, config_of, layer_bytes, manifest_of, snapshot, tar_of, tree, unpack

from ocilayout.layer import MARKER

LONG = "deep/" + "d" * 60 + "/" + "n" * 80 + ".txt"  # > 100 characters: a PAX path
UNICODE = "etc/caf\u00e9-\u65e5\u672c.txt"


def stack_image(tmp_path: Path, layout: Path, tag: str = "v1") -> None:
    """A 3-layer image whose layers override, white out and hard-link across each other."""
    layers = [
        tar_of(("etc", "d", None), ("etc/a", "f", b"a1\n"), ("etc/b", "f", b"b\n"), ("etc/hl", "h", "etc/a"),
               ("opt", "d", None, 0o750), ("opt/keep", "f", b"k\n"), ("opt/drop", "f", b"d\n"),
               ("data", "d", None), ("data/x", "f", b"x\n"), ("link", "l", "etc/a"),
               ("bin", "d", None), ("bin/tool", "f", b"#!/bin/sh\n", 0o755), ("gone", "d", None),
               ("gone/inner", "f", b"i\n"), ("var", "d", None), ("var/lib", "d", None), ("vlib", "l", "var/lib"),
               ("alib", "l", "/var/lib"), ("var/lib/old", "f", b"o\n")),
        tar_of(("etc/.wh.b", "f", b""), ("etc/a", "f", b"a2\n", 0o600, 1_650_000_000),
               ("opt/.wh..wh..opq", "f", b""), ("opt/new", "f", b"n\n"), ("data", "f", b"data is a file now\n"),
               ("usr/lib/x", "f", b"implicit parents\n"), ("etc/hl2", "h", "bin/tool"), (".wh.gone", "f", b""),
               (LONG, "f", b"long\n"), (UNICODE, "f", b"unicode\n"),
               ("vlib/through-link", "f", b"t\n"), ("alib/.wh.old", "f", b"")),  # paths through symlinks
        tar_of((".wh.link", "f", b""), ("data", "d", None, 0o700), ("data/y", "f", b"y\n"),
               ("etc/a", "f", b"a3\n", 0o640), ("link", "l", "bin/tool"), ("gone", "d", None)),
    ]
    # Written straight into the layout: append (rightly) refuses etc/hl2, a hard link into a lower layer.
    from ocilayout import mediatypes as mt
    from ocilayout.manifest import Manifest, canonical_json
    from ocilayout.store import LayoutStore

    store = LayoutStore.create(layout)
    descs = [store.put_bytes(gzip.compress(data, mtime=0), mt.OCI_LAYER_GZIP) for data in layers]
    config = {"created": "1970-01-01T00:00:00Z", "architecture": "amd64", "os": "linux", "config": {},
              "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(d).hexdigest()}" for d in layers]},
              "history": [{"created_by": f"layer {i}"} for i in range(len(layers))]}
    cfg = store.put_bytes(canonical_json(config), mt.OCI_CONFIG)
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": cfg.to_dict(),
           "layers": [d.to_dict() for d in descs]}
    store.set_ref(tag, store.put_manifest(Manifest.from_doc(doc)))

def test_flatten_equals_the_unpacked_layer_stack(tmp_path: Path, cli, umoci, skopeo) -> None:
    img = tmp_path / "img"
    stack_image(tmp_path, img)
    r = cli("flatten", f"oci:{img}:v1", f"oci:{tmp_path / 'flat'}:v1", "-q")
    assert r.exit_code == 0, r.stderr
    assert_fsck(tmp_path / "flat")
    stacked = snapshot(unpack(umoci, img, "v1", tmp_path / "b1"))
    flat = snapshot(unpack(umoci, tmp_path / "flat", "v1", tmp_path / "b2"))
    assert flat == stacked
    # what the stack means, spelled out (so that both unpacking the same wrong way cannot pass)
    assert stacked["etc/a"][1:3] == (0o640, flat["etc/a"][2]) and "etc/b" not in stacked
    assert stacked["etc/hl"][0] == "f" and stacked["etc/hl2"][4] is not None  # links kept, old content for hl
    assert sorted(k for k in stacked if k.startswith("opt")) == ["opt", "opt/new"]
    assert stacked["data"] == ("d", 0o700) and "data/x" not in stacked and "data/y" in stacked
    assert stacked["link"] == ("l", "bin/tool") and stacked["gone"][0] == "d" and "gone/inner" not in stacked
    assert LONG in stacked and UNICODE in stacked
    assert "var/lib/through-link" in stacked and "var/lib/old" not in stacked and stacked["vlib"][0] == "l"
    info = json.loads(skopeo("inspect", "--config", f"oci:{tmp_path / 'flat'}:v1").stdout)
    assert len(info["rootfs"]["diff_ids"]) == 1
    assert info["history"] == [{"created": "1970-01-01T00:00:00Z", "created_by": "ocilayout flatten"}]
    (layer,) = manifest_of(tmp_path / "flat", "v1")["layers"]
    assert layer["annotations"] == {MARKER: "flatten"}
    with tarfile.open(fileobj=io.BytesIO(layer_bytes(tmp_path / "flat", layer))) as tf:
        names = tf.getnames()
    assert not any(os.path.basename(n).startswith(".wh.") for n in names)  # applied, none left
    assert names.index("etc") < names.index("etc/a") < names.index("etc/hl") < names.index("opt")  # sorted


def test_flatten_is_deterministic_and_platform_scoped(sample: Path, tmp_path: Path, cli) -> None:
    img = tmp_path / "img"
    stack_image(tmp_path, img)
    a = cli("flatten", f"oci:{img}:v1", f"oci:{tmp_path / 'a'}:v1", "-q")
    b = cli("flatten", f"oci:{img}:v1", f"oci:{tmp_path / 'b'}:v1", "-q", "--compress", "gzip")
    assert a.exit_code == b.exit_code == 0 and a.stdout == b.stdout
    before = {m["platform"]["architecture"]: m["digest"] for m in manifest_of(sample, "multi")["manifests"]}
    m = cli("flatten", f"oci:{sample}:multi", "-q", "--platform", "linux/arm64", "--compress", "zstd")
    assert m.exit_code == 0, m.stderr
    after = {x["platform"]["architecture"]: x["digest"] for x in manifest_of(sample, "multi")["manifests"]}
    assert after["amd64"] == before["amd64"] and after["arm64"] != before["arm64"]
    assert_fsck(sample)


@pytest.mark.damages_layouts
def test_flatten_of_a_damaged_layer_fails_and_changes_nothing(sample: Path, tmp_path: Path, cli) -> None:
    layer = manifest_of(sample, "v1")["layers"][0]
    blob = sample / "blobs" / "sha256" / layer["digest"].split(":")[1]
    blob.write_bytes(gzip.compress(b"not the layer"))
    r = cli("flatten", f"oci:{sample}:v1", f"oci:{tmp_path / 'out'}:v1")
    assert r.exit_code == 4 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "out").exists()
    before = (sample / "index.json").read_bytes()
    assert cli("flatten", f"oci:{sample}:v1").exit_code == 4  # in place: the tag stays where it was
    assert (sample / "index.json").read_bytes() == before


# -- normalize --------------------------------------------------------------------------------------------

def _two_machines(sample: Path, tmp_path: Path, cli) -> tuple[Path, Path]:
    """The same tree appended on 'two machines' (other mtimes, no SOURCE_DATE_EPOCH): different digests."""
    outs = []
    for i, when in enumerate((1_111_111_111, 1_222_222_222)):
        d = tree(tmp_path / f"in{i}")
        for p in [d, *d.rglob("*")]:
            os.utime(p, (when, when), follow_symlinks=False)
        out = tmp_path / f"m{i}"
        assert cli("append", f"oci:{sample}:v1", f"oci:{out}:v1", "-q", "--layer", d).exit_code == 0
        outs.append(out)
    assert manifest_of(outs[0], "v1") != manifest_of(outs[1], "v1")
    return outs[0], outs[1]


def test_normalize_makes_two_machines_agree_and_keeps_base_layers(sample: Path, tmp_path: Path, cli, skopeo,
                                                                  umoci, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    one, two = _two_machines(sample, tmp_path, cli)
    r1 = cli("normalize", f"oci:{one}:v1", "--timestamp", "1980-01-01T00:00:00Z")
    r2 = cli("normalize", f"oci:{two}:v1", f"oci:{tmp_path / 'n2'}:v1", "--timestamp", "315532800", "-q")
    assert r1.exit_code == r2.exit_code == 0, r1.stderr + r2.stderr
    assert r1.stdout == r2.stdout
    base = manifest_of(sample, "v1")["layers"]
    layers = manifest_of(one, "v1")["layers"]
    assert layers[:2] == base  # base layers keep their digests
    assert layers[2]["annotations"] == {MARKER: "append"}
    cfg = config_of(one, "v1")
    assert cfg["created"] == "1980-01-01T00:00:00Z"
    # set where there was a time; append without SOURCE_DATE_EPOCH wrote none, and none is invented
    assert [h.get("created") for h in cfg["history"]] == ["1980-01-01T00:00:00Z"] * 2 + [None]
    with tarfile.open(fileobj=io.BytesIO(layer_bytes(one, layers[2]))) as tf:
        members = tf.getmembers()
    assert {m.mtime for m in members} == {315532800}
    assert ".wh.hello.txt" in {os.path.basename(m.name) for m in members}  # whiteouts stay entries
    assert f"sha256:{hashlib.sha256(layer_bytes(one, layers[2])).hexdigest()}" == \
        cfg["rootfs"]["diff_ids"][2]
    skopeo("inspect", f"oci:{one}:v1")
    rootfs = unpack(umoci, one, "v1", tmp_path / "b")
    assert not (rootfs / "etc" / "hello.txt").exists() and (rootfs / "etc" / "added.conf").exists()
    again = cli("normalize", f"oci:{one}:v1", "-q", "--timestamp", "1980-01-01T00:00:00Z")
    assert again.stdout == r1.stdout  # normalizing twice changes nothing


def test_all_layers_rewrites_base_layers(sample: Path, tmp_path: Path, cli, umoci) -> None:
    r = cli("normalize", f"oci:{sample}:v1", f"oci:{tmp_path / 'out'}:v1", "-q", "--timestamp", "1",
            "--all-layers", "--compress", "none")  # umoci 0.4 reads no zstd
    assert r.exit_code == 0, r.stderr
    before = manifest_of(sample, "v1")["layers"]
    after = manifest_of(tmp_path / "out", "v1")["layers"]
    assert all(a["digest"] != b["digest"] for a, b in zip(after, before, strict=True))
    assert {a["mediaType"] for a in after} == {"application/vnd.oci.image.layer.v1.tar"}
    rootfs = unpack(umoci, tmp_path / "out", "v1", tmp_path / "b")
    assert int((rootfs / "etc" / "os-release").stat().st_mtime) == 1
    assert (rootfs / "etc" / "hello.txt").read_bytes() == b"hello from ocilayout\n"


def test_clamp_to_source_date_epoch(sample: Path, tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(SDE))  # 2023-11-14: the sample's 2024-01-01 is later
    assert cli("normalize", f"oci:{sample}:v1", f"oci:{tmp_path / 'a'}:v1", "-q").exit_code == 0
    assert config_of(tmp_path / "a", "v1")["created"] == "2023-11-14T22:13:20Z"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "2000000000")  # 2033: earlier times stay
    assert cli("normalize", f"oci:{sample}:v1", f"oci:{tmp_path / 'b'}:v1", "-q").exit_code == 0
    assert config_of(tmp_path / "b", "v1")["created"] == "2024-01-01T00:00:00Z"


def test_normalize_needs_a_time(sample: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    before = (sample / "index.json").read_bytes()
    r = cli("normalize", f"oci:{sample}:v1")
    assert r.exit_code == 2 and "SOURCE_DATE_EPOCH" in r.stderr
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "soon")
    assert cli("normalize", f"oci:{sample}:v1").exit_code == 2
    assert (sample / "index.json").read_bytes() == before


def test_every_local_format_as_source_and_destination(sample: Path, tmp_path: Path, cli, skopeo) -> None:
    """docker-archive: in, dir: out (flatten); dir: in, docker-archive: out (normalize); skopeo reads both.
    (The image stays Docker-typed: skopeo's oci: transports skip Docker-typed index entries.)"""
    darchive = tmp_path / "d.tar"
    assert cli("copy", "-q", f"oci:{sample}:v1", f"docker-archive:{darchive}:example.com/app:v1").exit_code == 0
    r = cli("flatten", f"docker-archive:{darchive}", f"dir:{tmp_path / 'flat'}", "-q")
    assert r.exit_code == 0, r.stderr
    raw = json.loads(skopeo("inspect", "--raw", f"dir:{tmp_path / 'flat'}").stdout)
    assert len(raw["layers"]) == 1
    n = cli("normalize", f"dir:{tmp_path / 'flat'}", f"docker-archive:{tmp_path / 'n.tar'}:example.com/app:v1", "-q",
            "--timestamp", "0", "--all-layers")
    assert n.exit_code == 0, n.stderr
    info = json.loads(skopeo("inspect", "--config", f"docker-archive:{tmp_path / 'n.tar'}").stdout)
    assert info["created"] == "1970-01-01T00:00:00Z" and len(info["rootfs"]["diff_ids"]) == 1


def test_gnu_tar_of_a_directory_with_its_root_entry(tmp_path: Path, cli, umoci) -> None:
    """``tar -C DIR -cf x.tar .`` (GNU tar) starts with a ``./`` entry: accepted by append, dropped by flatten."""
    import subprocess

    d = tree(tmp_path / "in")
    (d / "etc" / ".wh.hello.txt").unlink()
    subprocess.run(["tar", "-C", str(d), "-cf", str(tmp_path / "x.tar"), "."], check=True)
    r = cli("append", "--empty", f"oci:{tmp_path / 'img'}:v1", "-q", "--layer", tmp_path / "x.tar")
    assert r.exit_code == 0, r.stderr
    f = cli("flatten", f"oci:{tmp_path / 'img'}:v1", f"oci:{tmp_path / 'flat'}:v1", "-q")
    assert f.exit_code == 0, f.stderr
    stacked = snapshot(unpack(umoci, tmp_path / "img", "v1", tmp_path / "b1"))
    assert snapshot(unpack(umoci, tmp_path / "flat", "v1", tmp_path / "b2")) == stacked
    assert "usr/bin/tool2" in stacked


def test_flatten_an_image_umoci_built(tmp_path: Path, cli, umoci) -> None:
    """What umoci writes (its own whiteouts for deletions, fifo, hard link, long and non-ASCII names), flattened,
    unpacks by umoci to what the layer stack unpacks to."""
    layout, bundle = tmp_path / "u", tmp_path / "bundle"
    umoci("init", "--layout", str(layout))
    umoci("new", "--image", f"{layout}:base")
    umoci("unpack", "--rootless", "--image", f"{layout}:base", str(bundle))
    root = bundle / "rootfs"
    (root / "etc").mkdir()
    (root / "etc" / "hello.txt").write_bytes(b"hello\n")
    (root / "etc" / "remove-me.txt").write_bytes(b"bye\n")
    os.link(root / "etc" / "hello.txt", root / "etc" / "hello-hardlink")
    os.symlink("/etc/hello.txt", root / "etc" / "abs-link")
    os.mkfifo(root / "etc" / "a-fifo")
    (root / "opt" / "data").mkdir(parents=True)
    (root / "opt" / "data" / "a").write_bytes(b"a\n")
    (root / LONG).parent.mkdir(parents=True)
    (root / LONG).write_bytes(b"long\n")
    (root / UNICODE).write_bytes(b"unicode\n")
    umoci("repack", "--image", f"{layout}:v1", str(bundle))
    (root / "etc" / "remove-me.txt").unlink()
    shutil.rmtree(root / "opt" / "data")
    (root / "etc" / "hello.txt").write_bytes(b"changed in layer 2\n")
    umoci("repack", "--image", f"{layout}:v2", str(bundle))
    r = cli("flatten", f"oci:{layout}:v2", f"oci:{tmp_path / 'flat'}:v2", "-q")
    assert r.exit_code == 0, r.stderr
    stacked = snapshot(unpack(umoci, layout, "v2", tmp_path / "b1"))
    assert snapshot(unpack(umoci, tmp_path / "flat", "v2", tmp_path / "b2")) == stacked
    assert "etc/remove-me.txt" not in stacked and "opt/data" not in stacked and "etc/a-fifo" in stacked
    assert_fsck(tmp_path / "flat")
