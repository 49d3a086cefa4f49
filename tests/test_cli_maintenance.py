"""CLI: fsck, gc, images: exit codes, JSON shape, one-line errors without tracebacks."""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ocilayout.cli.maintenance import human_duration, human_size
from ocilayout.listing import parse_created, split_name
from ocilayout.sample import build_sample_layout, make_image
from ocilayout.store import LayoutStore


@pytest.fixture
def sample(tmp_path: Path) -> LayoutStore:
    return build_sample_layout(tmp_path / "sample")


def _one_line_error(res, code: int) -> None:
    assert res.exit_code == code, res
    lines = res.stderr.strip().splitlines()
    assert lines[-1].startswith("ocilayout: error: "), res
    assert "Traceback" not in res.stderr


# -- fsck ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("form", ["bare", "oci"])
def test_fsck_clean_exit_0(cli, sample: LayoutStore, form: str) -> None:
    arg = str(sample.root) if form == "bare" else f"oci:{sample.root}"
    res = cli("fsck", arg)
    assert res.exit_code == 0, res
    assert res.stdout == ""
    assert "11 blobs" in res.stderr


@pytest.mark.damages_layouts
def test_fsck_problems_exit_4_one_line_each(cli, sample: LayoutStore) -> None:
    m = sample.get_manifest(sample.resolve("v1"))
    sample.blob_path(m.layers[0].digest).unlink()
    sample.blob_path(m.config.digest).write_bytes(b"{}")
    res = cli("fsck", sample.root)
    _one_line_error(res, 4)
    lines = res.stdout.splitlines()
    assert lines == [line for line in lines if line.startswith("error: ")]
    assert {line.split(":")[1].strip() for line in lines} == {"blob-missing", "size-mismatch", "digest-mismatch",
                                                           "diff-ids-mismatch"}  # "{}" lists no diff_ids
    assert "fsck found 4 errors" in res.stderr


def test_fsck_json_shape(cli, sample: LayoutStore) -> None:
    (sample.root / "oci-layout").unlink()
    res = cli("fsck", "--json", sample.root)
    assert res.exit_code == 4
    doc = json.loads(res.stdout)
    assert set(doc) == {"location", "ok", "problems", "blobs_checked", "bytes_hashed"}
    assert doc["ok"] is False
    assert doc["problems"] == [{"kind": "layout-file", "severity": "error", "digest": None,
                                "message": doc["problems"][0]["message"]}]
    clean = json.loads(cli("fsck", "--json", f"oci:{build_sample_layout(sample.root.parent / 'b').root}").stdout)
    assert clean["ok"] is True and clean["problems"] == [] and clean["blobs_checked"] == 11


def test_fsck_missing_layout_exit_3(cli, tmp_path: Path) -> None:
    _one_line_error(cli("fsck", tmp_path / "nope"), 3)


@pytest.mark.parametrize("arg", ["docker://busybox", "oci:/x:tag-is-not-a-layout", "bogus:thing"])
def test_fsck_bad_arguments(cli, sample: LayoutStore, arg: str) -> None:
    if "tag-is" in arg:
        arg = f"oci:{sample.root}:v1"
    res = cli("fsck", arg)
    assert res.exit_code in (2, 3, 5), res
    if not arg.startswith("bogus"):
        _one_line_error(res, res.exit_code)


@pytest.mark.interop
def test_fsck_oci_archive(cli, sample: LayoutStore, tmp_path: Path, skopeo) -> None:
    archive = tmp_path / "img.tar"
    skopeo("copy", f"oci:{sample.root}:v1", f"oci-archive:{archive}:v1")
    res = cli("fsck", f"oci-archive:{archive}")
    assert res.exit_code == 0, res
    res = cli("images", "--json", f"oci-archive:{archive}")
    assert res.exit_code == 0, res
    assert [(r["repository"], r["tag"]) for r in json.loads(res.stdout)] == [("img", "v1")]


# -- gc ------------------------------------------------------------------------------------------------

def _orphan(store: LayoutStore) -> int:
    make_image(store, [{"orphan": b"x" * 5000}])
    old = time.time() - 7200
    for d, _ in store.all_blobs():
        os.utime(store.blob_path(d), (old, old))
    return len(list(store.all_blobs()))


def test_gc_dry_run_then_real(cli, sample: LayoutStore) -> None:
    total = _orphan(sample)
    res = cli("gc", "--dry-run", sample.root)
    assert res.exit_code == 0, res
    assert res.stdout.count("would remove sha256:") == 3
    assert "would remove 3 blobs and 0 temp files" in res.stdout
    assert len(list(sample.all_blobs())) == total
    res = cli("gc", f"oci:{sample.root}")
    assert res.exit_code == 0, res
    assert res.stdout.count("removed sha256:") == 3
    assert len(list(sample.all_blobs())) == total - 3
    assert cli("fsck", sample.root).exit_code == 0


def test_gc_json_shape(cli, sample: LayoutStore) -> None:
    _orphan(sample)
    doc = json.loads(cli("gc", "--json", sample.root).stdout)
    assert set(doc) == {"location", "dry_run", "removed", "kept_young", "temp_files_removed", "live_writers",
                        "reachable", "bytes_freed"}
    assert len(doc["removed"]) == 3 and doc["bytes_freed"] == sum(r["size"] for r in doc["removed"])
    assert all(set(r) == {"digest", "size"} for r in doc["removed"])


def test_gc_young_blobs_need_force(cli, sample: LayoutStore) -> None:
    make_image(sample, [{"fresh": b"y"}])
    res = cli("gc", sample.root)
    assert "removed 0 blobs" in res.stdout and "--force" in res.stderr
    res = cli("gc", "--force", sample.root)
    assert "removed 3 blobs" in res.stdout


@pytest.mark.damages_layouts
def test_gc_refusal_is_one_line(cli, sample: LayoutStore) -> None:
    sample.blob_path(sample.resolve("multi").digest).unlink()
    _one_line_error(cli("gc", sample.root), 4)


def test_gc_rejects_archives(cli, tmp_path: Path) -> None:
    _one_line_error(cli("gc", f"oci-archive:{tmp_path / 'x.tar'}"), 5)


# -- images --------------------------------------------------------------------------------------------

def test_images_table(cli, sample: LayoutStore) -> None:
    desc = make_image(sample, [{"a": b"b"}])
    sample.set_ref("docker.io/library/foo:1.0", desc)
    sample.set_ref(None, make_image(sample, [{"c": b"d"}]))
    res = cli("images", sample.root)
    assert res.exit_code == 0, res
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE", "PLATFORM"]
    rows = [line.split() for line in lines[1:]]
    v1 = sample.get_manifest(sample.resolve("v1"))
    assert rows[0][:3] == ["sample", "v1", v1.config.digest.hex[:12]]
    assert rows[0][3:6] == [*human_duration((datetime.now(UTC) - parse_created("2024-01-01T00:00:00Z"))
                                            .total_seconds()).split(), "ago"][:3]
    size = v1.config.size + sum(layer.size for layer in v1.layers)
    assert human_size(size) in rows[0]
    assert rows[1][:3] == ["sample", "multi", sample.resolve("multi").digest.hex[:12]]
    assert rows[1][-1] == "linux/amd64,linux/arm64/v8"
    assert rows[2][:2] == ["docker.io/library/foo", "1.0"]
    assert rows[3][:2] == ["<none>", "<none>"]


def test_images_json(cli, sample: LayoutStore) -> None:
    res = cli("images", "--json", f"oci:{sample.root}")
    rows = json.loads(res.stdout)
    assert [r["tag"] for r in rows] == ["v1", "multi"]
    assert rows[0]["created"] == "2024-01-01T00:00:00Z"
    assert rows[0]["imageId"] == str(sample.get_manifest(sample.resolve("v1")).config.digest)
    assert rows[1]["platforms"] == ["linux/amd64", "linux/arm64/v8"]
    assert rows[1]["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert all(isinstance(r["size"], int) and r["size"] > 0 for r in rows)


@pytest.mark.damages_layouts
def test_images_broken_entry_still_listed(cli, sample: LayoutStore) -> None:
    sample.blob_path(sample.resolve("v1").digest).unlink()
    rows = json.loads(cli("images", "--json", sample.root).stdout)
    assert rows[0]["size"] is None and rows[1]["size"] > 0


@pytest.mark.damages_layouts
def test_images_garbage_index_is_one_line(cli, sample: LayoutStore) -> None:
    (sample.root / "index.json").write_text("{")
    _one_line_error(cli("images", sample.root), 4)


def test_images_regclient_testrepo(cli, tmp_path: Path) -> None:
    from conftest import peer_path

    src = peer_path("regclient/testdata/testrepo")
    rows = {r["tag"]: r for r in json.loads(cli("images", "--json", src).stdout)}
    assert rows["b1"]["platforms"] == ["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm/v6"]
    assert rows["v1"]["repository"] == "testrepo"
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_split_name() -> None:
    assert split_name("docker.io/library/foo:1.0", "d") == ("docker.io/library/foo", "1.0")
    assert split_name("localhost:5000/foo", "d") == ("localhost:5000/foo", "<none>")
    assert split_name("localhost:5000/foo:bar", "d") == ("localhost:5000/foo", "bar")
    assert split_name("reg.io/foo@sha256:" + "a" * 64, "d") == ("reg.io/foo", "<none>")
    assert split_name("v1", "dir") == ("dir", "v1")
    assert split_name(None, "dir") == ("<none>", "<none>")


def test_human_size_like_docker() -> None:
    assert [human_size(n) for n in (0, 999, 1000, 1234, 12_345_678, 1_000_000_000, 145_000)] == [
        "0B", "999B", "1kB", "1.23kB", "12.3MB", "1GB", "145kB"]


def test_human_duration_like_docker() -> None:
    cases = {0.5: "Less than a second", 1: "1 second", 59: "59 seconds", 60: "About a minute",
             3599: "59 minutes", 3600: "About an hour", 5400: "2 hours", 47 * 3600: "47 hours",
             3 * 86400: "3 days", 20 * 86400: "2 weeks", 90 * 86400: "3 months", 800 * 86400: "2 years"}
    assert {k: human_duration(k) for k in cases} == cases
    assert human_duration(timedelta(days=365 * 5).total_seconds()) == "5 years"


def test_parse_created() -> None:
    assert parse_created("2024-01-01T00:00:00.123456789Z") == datetime(2024, 1, 1, 0, 0, 0, 123456, UTC)
    assert parse_created("2024-01-01T02:00:00+02:00") == datetime(2024, 1, 1, tzinfo=UTC)
    assert parse_created("0001-01-01T00:00:00Z") is None
    assert parse_created("yesterday") is None and parse_created(None) is None
