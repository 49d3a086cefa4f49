"""ocilayout mutate (config, annotations, platform), ref-name conventions and consumer warnings."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from conftest import assert_fsck, assert_one_line_error, snapshot

from ocilayout.compat import Facts, facts_of, warnings
from ocilayout.descriptor import CONTAINERD_NAME, REF_NAME
from ocilayout.edit.config import parse_changes, parse_time
from ocilayout.errors import InvalidArgument
from ocilayout.refname import EntryName, entry_name
from ocilayout.store import LayoutStore


def _ok(res: Any) -> Any:
    assert res.exit_code == 0, res
    return res




def _config(skopeo: Any, ref: str, *extra: str) -> dict[str, Any]:
    return json.loads(skopeo("inspect", "--config", *extra, ref).stdout)  # type: ignore[no-any-return]


def _index(layout: Path) -> list[dict[str, Any]]:
    return json.loads((layout / "index.json").read_bytes())["manifests"]  # type: ignore[no-any-return]


def _blob(layout: Path, digest: str) -> dict[str, Any]:
    return json.loads((layout / "blobs" / "sha256" / digest.split(":")[1]).read_bytes())  # type: ignore[no-any-return]


def _children(layout: Path, tag: str) -> dict[str, str]:
    with LayoutStore.open(layout) as r:
        doc = json.loads(r.get_manifest(r.resolve(tag)).raw)
    return {"/".join(filter(None, (c["platform"]["os"], c["platform"]["architecture"],
                                   c["platform"].get("variant")))): c["digest"] for c in doc["manifests"]}


# -- every option, read back by skopeo -------------------------------------------------------------------------
def test_every_config_option_read_by_skopeo(cli: Any, sample: Path, tmp_path: Path, skopeo: Any) -> None:
    out = tmp_path / "out"
    res = _ok(cli("mutate", f"oci:{sample}:v1", f"oci:{out}:v2",
                  "--env", "A=1", "--env", "PATH=/bin", "--env-rm", "NOPE", "--label", "x=y",
                  "--label-rm", "org.opencontainers.image.title", "--entrypoint", '["/bin/app","-v"]',
                  "--cmd", 'serve "a b"', "--user", "1000:1000", "--workdir", "/w", "--expose", "80",
                  "--expose", "53/udp", "--volume", "/data", "--stop-signal", "SIGINT", "--author", "me",
                  "--created", "2024-01-02T03:04:05+01:00", "--history", "mutated by test",
                  "--annotation", "org.example.a=b", "--digestfile", tmp_path / "dig"))
    digest = res.stdout.strip()
    assert (tmp_path / "dig").read_text() == digest and digest.startswith("sha256:")
    cfg = _config(skopeo, f"oci:{out}:v2")
    c = cfg["config"]
    assert c["Env"] == ["PATH=/bin", "A=1"]  # replaced where it stood, then appended
    assert c["Labels"] == {"x": "y"}
    assert c["Entrypoint"] == ["/bin/app", "-v"] and c["Cmd"] == ["serve", "a b"]
    assert c["User"] == "1000:1000" and c["WorkingDir"] == "/w" and c["StopSignal"] == "SIGINT"
    assert c["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}} and c["Volumes"] == {"/data": {}}
    assert cfg["author"] == "me" and cfg["created"] == "2024-01-02T02:04:05Z"
    assert cfg["history"][-1] == {"created": "2024-01-02T02:04:05Z", "created_by": "mutated by test",
                                  "empty_layer": True}
    assert len(cfg["history"]) == 3 and len(cfg["rootfs"]["diff_ids"]) == 2  # layers untouched
    raw = json.loads(skopeo("inspect", "--raw", f"oci:{out}:v2").stdout)
    assert raw["annotations"] == {"org.example.a": "b"}
    assert _index(out)[0]["digest"] == digest


def test_entrypoint_and_cmd_forms(cli: Any, sample: Path, tmp_path: Path, skopeo: Any) -> None:
    _ok(cli("mutate", f"oci:{sample}:v1", f"oci:{tmp_path}/a:x", "--entrypoint", "exec /app --flag", "--cmd", ""))
    c = _config(skopeo, f"oci:{tmp_path}/a:x")["config"]
    assert c["Entrypoint"] == ["/bin/sh", "-c", "exec /app --flag"]  # buildah config's string form
    assert "Cmd" not in c  # '' removes
    _ok(cli("mutate", f"oci:{tmp_path}/a:x", "--entrypoint", "", "--cmd", '["a"]'))
    c = _config(skopeo, f"oci:{tmp_path}/a:x")["config"]
    assert "Entrypoint" not in c and c["Cmd"] == ["a"]


def test_platform_fields_update_config_and_index_entry(cli: Any, sample: Path, skopeo: Any) -> None:
    _ok(cli("mutate", f"oci:{sample}:v1", "--os", "linux", "--arch", "arm64", "--variant", "v8"))
    cfg = _config(skopeo, f"oci:{sample}:v1", "--override-arch", "arm64")
    assert (cfg["os"], cfg["architecture"], cfg["variant"]) == ("linux", "arm64", "v8")
    entry = next(e for e in _index(sample) if e["annotations"][REF_NAME] == "v1")
    assert entry["platform"] == {"architecture": "arm64", "os": "linux", "variant": "v8"}
    _ok(cli("mutate", f"oci:{sample}:v1", "--variant", ""))
    assert "variant" not in _config(skopeo, f"oci:{sample}:v1", "--override-arch", "arm64")


def test_unknown_config_fields_survive(cli: Any, sample: Path, tmp_path: Path) -> None:
    from ocilayout.edit import edit_images, write_edit
    from ocilayout.transports import open_source

    def vendor(e: Any) -> None:
        e.config["x-vendor"] = {"kept": [1, 2]}
        e.config.setdefault("config", {})["x-inner"] = "also"

    with open_source(f"oci:{sample}:v1") as src:
        write_edit(edit_images(src, vendor), f"oci:{tmp_path}/base:v1")
    res = _ok(cli("mutate", f"oci:{tmp_path}/base:v1", f"oci:{tmp_path}/out:v1", "--env", "A=1"))
    manifest = _blob(tmp_path / "out", res.stdout.strip())
    cfg = _blob(tmp_path / "out", manifest["config"]["digest"])
    assert cfg["x-vendor"] == {"kept": [1, 2]} and cfg["config"]["x-inner"] == "also"
    before = _blob(tmp_path / "base", _blob(tmp_path / "base", _index(tmp_path / "base")[0]["digest"])
                   ["config"]["digest"])
    assert list(cfg) == list(before)  # key order kept


def test_umoci_unpacks_the_mutated_image(cli: Any, sample: Path, tmp_path: Path, umoci: Any) -> None:
    _ok(cli("mutate", f"oci:{sample}:v1", f"oci:{tmp_path}/o:v1", "--env", "GREETING=hi", "--workdir", "/etc"))
    umoci("unpack", "--rootless", "--image", f"{tmp_path}/o:v1", str(tmp_path / "bundle"))
    spec = json.loads((tmp_path / "bundle" / "config.json").read_text())
    assert "GREETING=hi" in spec["process"]["env"] and spec["process"]["cwd"] == "/etc"
    assert (tmp_path / "bundle" / "rootfs" / "etc" / "hello.txt").exists()


# -- multi-arch scoping ------------------------------------------------------------------------------------------
def test_platform_scoped_edit_keeps_other_platforms(cli: Any, sample: Path, tmp_path: Path, skopeo: Any) -> None:
    before = _children(sample, "multi")
    old_index = next(e for e in _index(sample) if e["annotations"][REF_NAME] == "multi")["digest"]
    _ok(cli("mutate", f"oci:{sample}:multi", "--platform", "linux/arm64", "--env", "ARM=1", "--variant", "",
            "--index-annotation", "org.example.built=yes"))
    after = _children(sample, "multi")
    assert after["linux/amd64"] == before["linux/amd64"]  # the other platform keeps its digest
    assert "linux/arm64/v8" not in after and after["linux/arm64"] != before["linux/arm64/v8"]
    entry = next(e for e in _index(sample) if e["annotations"][REF_NAME] == "multi")
    assert entry["digest"] != old_index
    assert _blob(sample, entry["digest"])["annotations"] == {"org.example.built": "yes"}
    assert "ARM=1" in _config(skopeo, f"oci:{sample}:multi", "--override-arch", "arm64")["config"]["Env"]
    assert "ARM=1" not in _config(skopeo, f"oci:{sample}:multi", "--override-arch", "amd64")["config"]["Env"]
    assert_fsck(sample)


def test_descriptor_annotation_on_the_chosen_index_entries_only(cli: Any, sample: Path, tmp_path: Path,
                                                                skopeo: Any) -> None:
    """``--descriptor-annotation`` annotates the descriptor that lists an image in its index: the chosen
    platform's entry changes, the images themselves (and the other entry) keep their digests and bytes."""
    before = _children(sample, "multi")
    out = tmp_path / "out"
    _ok(cli("mutate", f"oci:{sample}:multi", f"oci:{out}:multi", "--platform", "linux/arm64",
            "--descriptor-annotation", "org.example.stage=beta"))
    assert _children(out, "multi") == before  # no image changed
    index = _blob(out, next(e for e in _index(out) if e["annotations"][REF_NAME] == "multi")["digest"])
    notes = {c["platform"]["architecture"]: c.get("annotations", {}) for c in index["manifests"]}
    assert notes == {"amd64": {}, "arm64": {"org.example.stage": "beta"}}
    raw = json.loads(skopeo("inspect", "--raw", f"oci:{out}:multi").stdout)
    assert raw["manifests"][1]["annotations"] == {"org.example.stage": "beta"}
    _ok(cli("mutate", f"oci:{out}:multi", "--descriptor-annotation-rm", "org.example.stage"))
    index = _blob(out, next(e for e in _index(out) if e["annotations"][REF_NAME] == "multi")["digest"])
    assert all("annotations" not in c for c in index["manifests"])
    assert_fsck(out)
    snap = snapshot(sample)
    assert_one_line_error(cli("mutate", f"oci:{sample}:v1", "--descriptor-annotation", "a=b"), 2)  # a single image
    assert snapshot(sample) == snap


def test_platform_that_matches_nothing_changes_nothing(cli: Any, sample: Path) -> None:
    before = snapshot(sample)
    assert_one_line_error(cli("mutate", f"oci:{sample}:multi", "--platform", "linux/s390x", "--env", "A=1"), 3)
    assert snapshot(sample) == before


# -- in place, other formats, determinism --------------------------------------------------------------------------
def test_in_place_on_oci_moves_only_that_tag(cli: Any, sample: Path) -> None:
    entries = {e["annotations"][REF_NAME]: e["digest"] for e in _index(sample)}
    res = _ok(cli("mutate", f"oci:{sample}:v1", "--label", "in=place", "-q"))
    now = {e["annotations"][REF_NAME]: e["digest"] for e in _index(sample)}
    assert now["multi"] == entries["multi"] and now["v1"] == res.stdout.strip() != entries["v1"]
    assert (sample / "blobs" / "sha256" / entries["v1"].split(":")[1]).exists()  # left for gc


def test_in_place_on_oci_archive(cli: Any, sample: Path, tmp_path: Path, skopeo: Any) -> None:
    archive = tmp_path / "a.tar"
    _ok(cli("copy", f"oci:{sample}:v1", f"oci-archive:{archive}:one"))
    two = _ok(cli("copy", "--all", "-q", "--digestfile", tmp_path / "two", f"oci:{sample}:multi",
                  f"oci-archive:{archive}:two"))
    assert two.exit_code == 0
    res = _ok(cli("mutate", f"oci-archive:{archive}:one", "--env", "IN=archive"))
    assert "IN=archive" in _config(skopeo, f"oci-archive:{archive}:one")["config"]["Env"]
    with tarfile.open(archive) as tf:
        index = json.loads(tf.extractfile("index.json").read())  # type: ignore[union-attr]
    names = {e["annotations"][REF_NAME]: e["digest"] for e in index["manifests"]}
    assert names["one"] == res.stdout.strip()
    assert names["two"] == (tmp_path / "two").read_text()  # the other entry is untouched


def test_mutate_into_dir_and_docker_archive(cli: Any, sample: Path, tmp_path: Path, skopeo: Any) -> None:
    _ok(cli("mutate", f"oci:{sample}:v1", f"dir:{tmp_path}/d", "--env", "TO=dir"))
    assert "TO=dir" in _config(skopeo, f"dir:{tmp_path}/d")["config"]["Env"]
    _ok(cli("mutate", f"oci:{sample}:v1", f"docker-archive:{tmp_path}/d.tar:app:1", "--env", "TO=docker"))
    assert "TO=docker" in _config(skopeo, f"docker-archive:{tmp_path}/d.tar")["config"]["Env"]
    # and back: a docker-archive source edited into a layout
    _ok(cli("mutate", f"docker-archive:{tmp_path}/d.tar", f"oci:{tmp_path}/o:back", "--label", "round=trip"))
    # (a v2s2 manifest in an OCI layout, which skopeo 1.9.3's oci: lookup skips: read it with ocilayout)
    cfg = json.loads(_ok(cli("inspect", "--config", f"oci:{tmp_path}/o:back")).stdout)
    assert cfg["config"]["Labels"]["round"] == "trip" and "TO=docker" in cfg["config"]["Env"]


def test_in_place_needs_a_layout_name(cli: Any, sample: Path, tmp_path: Path) -> None:
    _ok(cli("copy", f"oci:{sample}:v1", f"dir:{tmp_path}/d"))
    before = snapshot(tmp_path / "d")
    assert_one_line_error(cli("mutate", f"dir:{tmp_path}/d", "--env", "A=1"), 2)
    assert snapshot(tmp_path / "d") == before
    assert_one_line_error(cli("mutate", f"oci:{sample}", "--env", "A=1"), 2)  # untagged: would leave two images


def test_same_edit_twice_gives_the_same_digest(cli: Any, sample: Path, tmp_path: Path) -> None:
    args = ["--env", "A=1", "--label", "l=v", "--history", "h", "--created", "@0", "--platform", "linux/arm64"]
    one = _ok(cli("mutate", f"oci:{sample}:multi", f"oci:{tmp_path}/1:m", *args)).stdout
    two = _ok(cli("mutate", f"oci:{sample}:multi", f"oci-archive:{tmp_path}/2.tar:m", *args)).stdout
    assert one == two and one.startswith("sha256:")


def test_history_created_from_source_date_epoch(cli: Any, sample: Path, tmp_path: Path, skopeo: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "86400")
    _ok(cli("mutate", f"oci:{sample}:v1", f"oci:{tmp_path}/o:x", "--history", "step"))
    cfg = _config(skopeo, f"oci:{tmp_path}/o:x")
    assert cfg["history"][-1]["created"] == "1970-01-02T00:00:00Z"
    assert cfg["created"] != "1970-01-02T00:00:00Z"  # only --created changes the image's own time
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    _ok(cli("mutate", f"oci:{sample}:v1", f"oci:{tmp_path}/o:y", "--history", "step"))
    assert "created" not in _config(skopeo, f"oci:{tmp_path}/o:y")["history"][-1]


@pytest.mark.parametrize("args", [
    ["--env", "NOEQUALS"], ["--env", "=v"], ["--label", "novalue"], ["--platform", "linux"],
    ["--platform", "linux/amd64/v1/extra"], ["--platform", "linux/am d64"], ["--expose", "0"],
    ["--expose", "65536"], ["--expose", "80/http"], ["--created", "2024-01-01"], ["--created", "yesterday"],
    ["--created", "2024-02-30T00:00:00Z"], ["--created", "@999999999999"], ["--created", "1700000000"],
    ["--volume", "relative"], ["--os", "linux/x"], ["--env-rm", "A=1"],
    ["--ref-name", "short"], ["--ref-name", "none"], ["--ref-name", "full"], ["--image-name", "UPPER/case:1"],
    ["--index-annotation", "a=b"], [],
])
def test_bad_input_is_one_line_exit_2_and_nothing_changes(cli: Any, sample: Path, tmp_path: Path,
                                                          args: list[str]) -> None:
    before = snapshot(sample)
    changes = ["--env", "OK=1"] if args and args[0] in ("--platform", "--ref-name", "--image-name") else []
    assert_one_line_error(cli("mutate", f"oci:{sample}:v1", *args, *changes), 2)
    assert_one_line_error(cli("mutate", f"oci:{sample}:v1", f"oci:{tmp_path}/new:v1", *args, *changes), 2)
    assert snapshot(sample) == before and not (tmp_path / "new").exists()


def test_parse_time_forms() -> None:
    assert parse_time("2024-01-02T03:04:05.120000Z") == "2024-01-02T03:04:05.12Z"
    assert parse_time("2024-01-02t03:04:05-02:30") == "2024-01-02T05:34:05Z"
    assert parse_time("@1700000000") == "2023-11-14T22:13:20Z"
    with pytest.raises(InvalidArgument):
        parse_time("2024-01-02T03:04:05")  # no offset: not RFC 3339


def test_removals_apply_before_additions() -> None:
    changes = parse_changes(env=["A=2"], env_rm=["A"], label=["k=v"], label_rm=["k"])
    assert changes.env == (("A", "2"),) and changes.labels_rm == ("k",)


# -- ref names ------------------------------------------------------------------------------------------------
def test_entry_name_rules() -> None:
    assert entry_name(None, "v1") == EntryName("v1")
    assert entry_name(None, "registry.example.com/app:1.0") == EntryName("registry.example.com/app:1.0")
    assert entry_name("tag", "1.0", "registry.example.com/app") == EntryName("1.0", "registry.example.com/app:1.0")
    assert entry_name("tag", "registry.example.com/app:1.0") == EntryName("1.0", "registry.example.com/app:1.0")
    assert entry_name("tag", None, "app") == EntryName("latest", "docker.io/library/app:latest")
    assert entry_name("tag", "1.0") == EntryName("1.0")
    assert entry_name("full", "1.0", "registry.example.com/app") == EntryName("registry.example.com/app:1.0")
    assert entry_name("full", None, "app:2") == EntryName("docker.io/library/app:2")
    assert entry_name("none", None) == EntryName(None)
    assert entry_name(None, "1.0", "registry.example.com/app") == EntryName("1.0", "registry.example.com/app:1.0")
    for mode, dest, image in [("none", "v1", None), ("full", "v1", None), ("tag", None, None),
                              ("tag", "1.0", "r.example.com/app:2.0"), ("full", "a.example/x:1", "b.example/y:1"),
                              ("tag", None, "app@sha256:" + "a" * 64)]:
        with pytest.raises(InvalidArgument):
            entry_name(mode, dest, image)  # type: ignore[arg-type]


def _annotations(layout: Path) -> list[dict[str, str]]:
    return [e.get("annotations", {}) for e in _index(layout)]


def test_copy_ref_name_conventions_read_by_skopeo(cli: Any, sample: Path, tmp_path: Path, skopeo: Any) -> None:
    full = "registry.example.com/team/app:1.0"
    _ok(cli("copy", f"oci:{sample}:v1", f"oci:{tmp_path}/tag:1.0", "--ref-name", "tag", "--image-name", full))
    assert _annotations(tmp_path / "tag") == [{CONTAINERD_NAME: full, REF_NAME: "1.0"}]
    skopeo("inspect", f"oci:{tmp_path}/tag:1.0")
    _ok(cli("copy", f"oci:{sample}:v1", f"oci:{tmp_path}/full:1.0", "--ref-name", "full",
            "--image-name", "registry.example.com/team/app"))
    assert _annotations(tmp_path / "full") == [{REF_NAME: full}]
    skopeo("inspect", f"oci:{tmp_path}/full:{full}")
    _ok(cli("copy", f"oci:{sample}:v1", f"oci:{tmp_path}/none", "--ref-name", "none"))
    assert _annotations(tmp_path / "none") == [{}]
    skopeo("inspect", f"oci:{tmp_path}/none")
    for d in ("tag", "full", "none"):
        assert_fsck(tmp_path / d)
    assert_one_line_error(cli("copy", f"oci:{sample}:v1", f"dir:{tmp_path}/dir", "--ref-name", "none"), 2)
    assert not (tmp_path / "dir").exists()


def test_mutate_ref_name_full_and_in_place_keeps_names(cli: Any, sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    _ok(cli("mutate", f"oci:{sample}:v1", f"oci:{out}:1.0", "--env", "A=1", "--ref-name", "tag",
            "--image-name", "registry.example.com/app"))
    _ok(cli("mutate", f"oci:{out}:1.0", "--env", "B=2"))  # in place: the containerd name stays
    assert _annotations(out) == [{CONTAINERD_NAME: "registry.example.com/app:1.0", REF_NAME: "1.0"}]


def _write_layout(root: Path, sample: Path, entries: list[dict[str, Any]]) -> None:
    """A layout as a build tool writes it: the sample's blobs, and ``entries`` as index.json."""
    import shutil

    shutil.copytree(sample, root)
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": entries}))


@pytest.mark.parametrize("convention,annotations,refs", [
    ("containerd", {CONTAINERD_NAME: "docker.io/library/app:1.0", REF_NAME: "1.0"},
     ["1.0", "docker.io/library/app:1.0"]),
    ("jib", {REF_NAME: "registry.example.com/app:1.0"}, ["registry.example.com/app:1.0", "1.0"]),
    ("ko", {}, [None]),
])
def test_reading_each_convention(cli: Any, sample: Path, tmp_path: Path, skopeo: Any, convention: str,
                                 annotations: dict[str, str], refs: list[str | None]) -> None:
    with LayoutStore.open(sample) as r:
        desc = r.resolve("v1")
    entry = {"mediaType": desc.media_type, "digest": str(desc.digest), "size": desc.size}
    if annotations:
        entry["annotations"] = annotations
    layout = tmp_path / convention
    _write_layout(layout, sample, [entry])
    for ref in refs:
        text = f"oci:{layout}" + (f":{ref}" if ref else "")
        assert json.loads(_ok(cli("inspect", text)).stdout)["Digest"] == str(desc.digest)
        res = _ok(cli("mutate", text, f"oci:{tmp_path}/out-{convention}:x", "--env", "A=1"))
        assert res.stdout.startswith("sha256:")
    if convention == "containerd":  # skopeo (tag only) reads the same layout
        skopeo("inspect", f"oci:{layout}:1.0")


def test_two_containerd_images_sharing_a_tag_both_stay(cli: Any, sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    _ok(cli("copy", f"oci:{sample}:v1", f"oci:{out}:1.0", "--image-name", "r.example.com/a"))
    _ok(cli("copy", f"oci:{sample}:multi", f"oci:{out}:1.0", "--image-name", "r.example.com/b"))
    assert [a[CONTAINERD_NAME] for a in _annotations(out)] == ["r.example.com/a:1.0", "r.example.com/b:1.0"]
    _ok(cli("copy", f"oci:{sample}:multi", f"oci:{out}:1.0", "--image-name", "r.example.com/a"))  # replaces a
    assert [a[CONTAINERD_NAME] for a in _annotations(out)] == ["r.example.com/b:1.0", "r.example.com/a:1.0"]
    assert json.loads(_ok(cli("inspect", f"oci:{out}:r.example.com/b:1.0")).stdout)["Digest"]


# -- consumer warnings ---------------------------------------------------------------------------------------------
def test_warnings_are_pure_and_name_the_fix() -> None:
    assert warnings(Facts(ref="oci:x:y")) == []
    lines = warnings(Facts(ref="oci-archive:a.tar", zstd_layers=2, nested_index=True, single_file_images=3,
                           archive_tag_only="1.0"))
    assert len(lines) == 4
    assert "--dest-compress-format gzip" in lines[0] and "Docker before 23" in lines[0]
    assert "3 images" in lines[1] and "podman load" in lines[1]
    assert "localhost/1.0:latest" in lines[2] and "--image-name" in lines[2]
    assert "--platform" in lines[3]


def test_zstd_warning_after_copy_and_mutate(cli: Any, sample: Path, tmp_path: Path) -> None:
    res = _ok(cli("copy", "-q", "--dest-compress-format", "zstd", f"oci:{sample}:v1", f"oci:{tmp_path}/z:v1"))
    assert "ocilayout: warning:" in res.stderr and "2 zstd-compressed layer(s)" in res.stderr  # -q keeps it
    res = _ok(cli("mutate", f"oci:{tmp_path}/z:v1", "--env", "A=1"))
    assert "zstd" in res.stderr
    res = _ok(cli("copy", f"oci:{sample}:v1", f"oci:{tmp_path}/g:v1"))
    assert "warning" not in res.stderr


def test_several_images_in_an_archive_warns_and_skopeo_agrees(cli: Any, sample: Path, tmp_path: Path,
                                                              skopeo: Any) -> None:
    archive = tmp_path / "a.tar"
    res = _ok(cli("copy", f"oci:{sample}:v1", f"oci-archive:{archive}:1", "--image-name", "r.example.com/one"))
    assert "warning" not in res.stderr
    skopeo("inspect", f"oci-archive:{archive}")  # one image: an unnamed read works
    res = _ok(cli("copy", f"oci:{sample}:multi", f"oci-archive:{archive}:2", "--image-name", "r.example.com/two"))
    assert "holds 2 images" in res.stderr and res.stderr.count("\n") == 2
    assert skopeo("inspect", f"oci-archive:{archive}", check=False).returncode != 0  # what the warning says
    assert facts_of(f"oci-archive:{archive}:1").single_file_images == 2


def test_tag_only_archive_name_warns_for_podman(cli: Any, sample: Path, tmp_path: Path) -> None:
    res = _ok(cli("copy", f"oci:{sample}:v1", f"oci-archive:{tmp_path}/a.tar:1.0"))
    assert "podman load names the image localhost/1.0:latest" in res.stderr and "--image-name" in res.stderr
    for flags in (["--image-name", "r.example.com/app"], ["--ref-name", "full", "--image-name", "r.example.com/a"]):
        res = _ok(cli("copy", *flags, f"oci:{sample}:v1", f"oci-archive:{tmp_path}/b{len(flags)}.tar:1.0"))
        assert "warning" not in res.stderr, res
    with tarfile.open(tmp_path / "b2.tar") as tf:  # the archive keeps the containerd name too
        entry = json.loads(tf.extractfile("index.json").read())["manifests"][0]  # type: ignore[union-attr]
    assert entry["annotations"] == {CONTAINERD_NAME: "r.example.com/app:1.0", REF_NAME: "1.0"}
    res = _ok(cli("copy", f"oci:{sample}:v1", f"oci:{tmp_path}/dir:1.0"))  # a directory is not podman-loaded
    assert "warning" not in res.stderr


def test_several_images_in_a_docker_archive_warns(cli: Any, sample: Path, tmp_path: Path, skopeo: Any) -> None:
    archive = tmp_path / "d.tar"
    assert "warning" not in _ok(cli("copy", f"oci:{sample}:v1", f"docker-archive:{archive}:a:1")).stderr
    res = _ok(cli("mutate", f"oci:{sample}:v1", f"docker-archive:{archive}:b:1", "--env", "B=1"))
    assert "holds 2 images" in res.stderr
    assert skopeo("inspect", f"docker-archive:{archive}", check=False).returncode != 0


def test_nested_index_warning_and_the_consumers_that_refuse_it(cli: Any, sample: Path, tmp_path: Path,
                                                                skopeo: Any, umoci: Any) -> None:
    from ocilayout import mediatypes as mt
    from ocilayout.edit import OverlaySource, write_edit
    from ocilayout.manifest import Manifest, canonical_json
    from ocilayout.transports import open_source

    with open_source(f"oci:{sample}:multi") as src:
        overlay = OverlaySource(src)
        inner = src.root.with_(annotations={})
        outer = Manifest.parse(canonical_json({"schemaVersion": 2, "mediaType": mt.OCI_INDEX,
                                               "manifests": [inner.to_dict()]}), mt.OCI_INDEX)
        overlay.set_root(overlay.add_manifest(outer))
        write_edit(overlay, f"oci:{tmp_path}/n:nested")
    facts = facts_of(f"oci:{tmp_path}/n:nested")
    assert facts.nested_index and not facts_of(f"oci:{sample}:multi").nested_index
    res = _ok(cli("mutate", f"oci:{tmp_path}/n:nested", "--env", "A=1", "--platform", "linux/amd64"))
    assert "an index inside an index" in res.stderr
    # what the warning says: containers/image and umoci refuse it
    refused = skopeo("copy", f"oci:{tmp_path}/n:nested", f"dir:{tmp_path}/d", check=False)
    assert refused.returncode != 0 and "manifest list instead of a manifest" in refused.stderr
    assert umoci("unpack", "--rootless", "--image", f"{tmp_path}/n:nested", str(tmp_path / "b"),
                 check=False).returncode != 0


def test_ko_style_layout_edited_into_an_unnamed_layout(cli: Any, sample: Path, tmp_path: Path, skopeo: Any) -> None:
    """ko and rules_oci list the platform manifests themselves in index.json, with no names."""
    with LayoutStore.open(sample) as r:
        index = json.loads(r.get_manifest(r.resolve("multi")).raw)
    _write_layout(tmp_path / "ko", sample, index["manifests"])
    out = tmp_path / "out"
    res = _ok(cli("mutate", f"oci:{tmp_path}/ko", f"oci:{out}", "--ref-name", "none", "--env", "KO=1",
                  "--platform", "linux/arm64"))
    assert _annotations(out) == [{}] and _index(out)[0]["digest"] == res.stdout.strip()
    children = _blob(out, res.stdout.strip())["manifests"]
    assert children[0] == index["manifests"][0]  # amd64 untouched
    cfg = _config(skopeo, f"oci:{out}", "--override-arch", "arm64")
    assert "KO=1" in cfg["config"]["Env"]
    assert_fsck(out)


def test_an_in_place_edit_of_one_of_two_containerd_images_sharing_a_tag(cli: Any, sample: Path,
                                                                        tmp_path: Path) -> None:
    """The commit's check that the edited image is still what was read looks at that image's entry, not at
    the other one of the same tag (it once saw two digests for "1.0" and gave up after 20 attempts)."""
    out = tmp_path / "o"
    _ok(cli("copy", f"oci:{sample}:v1", f"oci:{out}:1.0", "--image-name", "r.example.com/a"))
    _ok(cli("copy", f"oci:{sample}:multi", f"oci:{out}:1.0", "--image-name", "r.example.com/b"))
    before_a = json.loads(_ok(cli("inspect", f"oci:{out}:r.example.com/a:1.0")).stdout)["Digest"]
    res = _ok(cli("mutate", f"oci:{out}:r.example.com/b:1.0", "--env", "B=1"))
    assert [a[CONTAINERD_NAME] for a in _annotations(out)] == ["r.example.com/a:1.0", "r.example.com/b:1.0"]
    assert json.loads(_ok(cli("inspect", f"oci:{out}:r.example.com/a:1.0")).stdout)["Digest"] == before_a
    assert json.loads(_ok(cli("inspect", "--raw", f"oci:{out}:r.example.com/b:1.0")).stdout)
    assert res.stdout.strip() != before_a
