"""The image commands through the CLI: output, exit codes, one-line errors, nothing written outside."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest
from conftest import assert_fsck, assert_one_line_error, snapshot

from ocilayout.store import LayoutStore


def test_copy_inspect_list_tag_delete(cli, sample: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dst = tmp_path / "d"
    res = cli("copy", "--digestfile", tmp_path / "dig", f"oci:{sample}:v1", f"oci:{dst}:v1")
    assert res.exit_code == 0, res
    want = str(LayoutStore.open(sample).resolve("v1").digest)
    assert (tmp_path / "dig").read_text() == want
    summary = json.loads(cli("inspect", f"oci:{dst}:v1").stdout)
    assert summary["Digest"] == want and summary["Architecture"] == "amd64" and len(summary["Layers"]) == 2
    assert summary["LayersData"][0]["Digest"] == summary["Layers"][0]
    assert cli("tag", f"oci:{dst}:v1", "latest").exit_code == 0
    assert cli("tag", f"oci:{dst}@{want}", f"oci:{dst}:also").exit_code == 0
    assert json.loads(cli("list-tags", f"oci:{dst}").stdout)["Tags"] == ["v1", "latest", "also"]
    assert cli("delete", f"oci:{dst}:v1").exit_code == 0
    assert json.loads(cli("list-tags", f"oci:{dst}").stdout)["Tags"] == ["latest", "also"]
    assert LayoutStore.open(dst).has_blob(LayoutStore.open(sample).resolve("v1").digest)  # blobs stay
    assert cli("delete", f"oci:{dst}@{want}").exit_code == 0
    assert json.loads(cli("list-tags", f"oci:{dst}").stdout)["Tags"] == []
    assert_fsck(dst)


def test_platform_options(cli, sample: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    res = cli("copy", "--platform", "linux/arm64", f"oci:{sample}:multi", f"oci:{tmp_path}/d:arm")
    assert res.exit_code == 0, res
    assert json.loads(cli("inspect", f"oci:{tmp_path}/d:arm").stdout)["Architecture"] == "arm64"
    assert_one_line_error(cli("copy", "--platform", "linux", f"oci:{sample}:multi", f"oci:{tmp_path}/d:x"), 2)
    assert_one_line_error(cli("copy", "--all", "--platform", "linux/arm64", f"oci:{sample}:multi",
                              f"oci:{tmp_path}/d:x"))
    assert_one_line_error(cli("copy", "--platform", "windows/amd64", f"oci:{sample}:multi", f"oci:{tmp_path}/d:x"), 3)
    assert_fsck(tmp_path / "d")


@pytest.mark.parametrize("ref,code", [
    ("oci:{s}@sha256:../../../../etc/passwd", 2),
    ("oci:{s}@sha256:" + "A" * 64, 2),
    ("oci:{s}:missing", 3),
    ("oci:{s}/nonexistent:v1", 3),
    ("bogus:{s}", 2),
    ("docker://localhost:1/x:y", 7),  # nothing listens there: RegistryError after the retries
])
def test_bad_references(cli, sample: Path, tmp_path: Path, ref: str, code: int) -> None:  # type: ignore[no-untyped-def]
    res = cli("copy", ref.format(s=sample), f"oci:{tmp_path}/d:x")
    assert_one_line_error(res, code)
    assert not (tmp_path / "d").exists() or LayoutStore.open(tmp_path / "d").refs() == []


@pytest.mark.damages_layouts
def test_digest_with_path_characters_in_index_json(cli, sample: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads((sample / "index.json").read_bytes())
    doc["manifests"][0]["digest"] = "sha256:../../../../../etc/passwd"
    (sample / "index.json").write_text(json.dumps(doc))
    assert_one_line_error(cli("inspect", f"oci:{sample}:v1"), 2)
    assert_one_line_error(cli("copy", f"oci:{sample}:v1", f"oci:{tmp_path}/d:x"))


@pytest.mark.damages_layouts
def test_oversized_and_garbage_json(cli, sample: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = LayoutStore.open(sample)
    desc = store.resolve("v1")
    path = store.blob_path(desc.digest)
    path.write_bytes(b"{" + b" " * (5 * 1024 * 1024) + b"}")
    assert_one_line_error(cli("inspect", f"oci:{sample}:v1"), 4)
    (sample / "index.json").write_bytes(b"\x00garbage")
    assert_one_line_error(cli("inspect", f"oci:{sample}:v1"), 4)
    assert_one_line_error(cli("list-tags", f"oci:{sample}"), 4)


@pytest.mark.damages_layouts
def test_truncated_blob_fails_copy_and_destination_unchanged(cli, sample: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("copy", f"oci:{sample}:multi", f"oci:{tmp_path}/d:keep").exit_code == 0
    before = snapshot(tmp_path / "d")
    store = LayoutStore.open(sample)
    layer = store.get_manifest(store.resolve("v1")).layers[0]
    with open(store.blob_path(layer.digest), "r+b") as f:
        f.truncate(10)
    res = cli("copy", f"oci:{sample}:v1", f"oci:{tmp_path}/d:new")
    assert_one_line_error(res, 4)
    assert snapshot(tmp_path / "d") == before
    assert_fsck(tmp_path / "d")


def _evil_archive(path: Path, member: tarfile.TarInfo, data: bytes = b"") -> None:
    with tarfile.open(path, "w") as tar:
        for name, content in (("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
                              ("index.json", b'{"schemaVersion":2,"manifests":[]}')):
            ti = tarfile.TarInfo(name)
            ti.size = len(content)
            tar.addfile(ti, io.BytesIO(content))
        tar.addfile(member, io.BytesIO(data) if data else None)


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink"])
def test_unsafe_archive_members(cli, tmp_path: Path, kind: str) -> None:  # type: ignore[no-untyped-def]
    evil = tmp_path / "evil.tar"
    if kind == "dotdot":
        ti = tarfile.TarInfo("../../escaped")
        ti.size = 3
        _evil_archive(evil, ti, b"bad")
    elif kind == "absolute":
        ti = tarfile.TarInfo("/tmp/escaped")
        ti.size = 3
        _evil_archive(evil, ti, b"bad")
    elif kind == "symlink":
        ti = tarfile.TarInfo("blobs/sha256/" + "a" * 64)
        ti.type, ti.linkname = tarfile.SYMTYPE, "../../../../etc/passwd"
        _evil_archive(evil, ti)
    else:
        ti = tarfile.TarInfo("blobs/sha256/" + "a" * 64)
        ti.type, ti.linkname = tarfile.LNKTYPE, "/etc/passwd"
        _evil_archive(evil, ti)
    listing = sorted(os.listdir(tmp_path))
    res = cli("copy", f"oci-archive:{evil}", f"oci:{tmp_path}/d:x")
    assert_one_line_error(res, 4)
    assert sorted(os.listdir(tmp_path)) == listing  # nothing written, not even the destination


def test_debug_shows_traceback_and_keeps_the_exit_code(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    res = cli("--debug", "inspect", f"oci:{tmp_path}/none:v1")
    assert res.exit_code == 3, res  # NotFound's documented code, not Python's 1
    assert "Traceback" in res.stderr and "NotFound" in res.stderr
    assert res.stderr.rstrip().splitlines()[-1].startswith("ocilayout: error: ")


def test_manifest_digest_cli(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "m.json"
    f.write_bytes(b'{"schemaVersion":2}')
    res = cli("manifest-digest", f)
    assert res.exit_code == 0 and res.stdout.startswith("sha256:") and res.stdout.endswith("\n")
    assert_one_line_error(cli("manifest-digest", tmp_path / "missing.json"), 3)
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (4 * 1024 * 1024 + 1))
    assert_one_line_error(cli("manifest-digest", big), 4)


def test_archive_commands(cli, sample: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    archive = tmp_path / "a.tar"
    assert cli("copy", f"oci:{sample}:v1", f"oci-archive:{archive}:v1").exit_code == 0
    assert cli("copy", "--all", f"oci:{sample}:multi", f"oci-archive:{archive}:multi").exit_code == 0
    assert sorted(json.loads(cli("list-tags", f"oci-archive:{archive}").stdout)["Tags"]) == ["multi", "v1"]
    assert json.loads(cli("inspect", f"oci-archive:{archive}:v1").stdout)["Os"] == "linux"
    assert_one_line_error(cli("copy", f"oci:{sample}:v1", f"oci-archive:{tmp_path}"), 4)  # a directory
    assert_one_line_error(cli("copy", f"oci:{sample}:v1", f"oci-archive:{tmp_path}/no/such/dir/a.tar"), 4)


def test_progress_bar_only_on_a_terminal(sample: Path, tmp_path: Path) -> None:
    """On a TTY stderr gets a progress bar; piped, and with -q, it gets none."""
    import pty
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "ocilayout", "copy", f"oci:{sample}:multi", f"oci:{tmp_path}/tty:m", "--all"]
    leader, follower = pty.openpty()
    import fcntl
    import struct
    import termios

    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a real terminal's size
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    assert proc.wait(timeout=60) == 0
    os.close(leader)
    assert b"Copying" in seen and b"blobs" in seen, seen
    piped = subprocess.run([*cmd[:-3], f"oci:{sample}:v1", f"oci:{tmp_path}/pipe:v1"], capture_output=True)
    assert piped.returncode == 0 and b"Copying (" not in piped.stderr
    quiet = subprocess.run([*cmd[:-3], "-q", f"oci:{sample}:v1", f"oci:{tmp_path}/q:v1"], capture_output=True)
    assert quiet.returncode == 0 and quiet.stderr == b""


# -- issue 7: bad input is a clear error; artifacts are not images; edge-of-range times ---------------------

def _retag_with(layout: Path, *, config: dict | None = None, config_type: str | None = None,
                manifest_edit=None, tag: str = "t") -> None:  # type: ignore[no-untyped-def]
    """Tag ``tag``: the sample's v1 with its config replaced (and the manifest edited), bytes written by hand."""
    from ocilayout import mediatypes as mt

    store = LayoutStore.open(layout)
    m = store.get_manifest(store.resolve("v1"))
    doc = json.loads(m.raw)
    if config is not None:
        cdesc = store.put_bytes(json.dumps(config).encode())
        doc["config"] = {"mediaType": config_type or mt.OCI_CONFIG, "digest": str(cdesc.digest), "size": cdesc.size}
    if manifest_edit is not None:
        manifest_edit(doc)
    store.set_ref(tag, store.put_bytes(json.dumps(doc).encode(), mt.OCI_MANIFEST))


def _sample_config(sample: Path) -> dict:
    store = LayoutStore.open(sample)
    return json.loads(store.read_blob_bytes(store.get_manifest(store.resolve("v1")).config))


_BAD_CONFIGS = {
    "numeric os": {"os": 5},
    "number in Env": {"config": {"Env": ["A=b", 5]}},
    "Volumes as a list": {"config": {"Volumes": ["/data"]}},
    "history as a string": {"history": "built by hand"},
    "created not RFC 3339": {"created": "yesterday"},
    "diff_ids not a list": {"rootfs": {"type": "layers", "diff_ids": "sha256:x"}},
}


@pytest.mark.damages_layouts
@pytest.mark.parametrize("what", sorted(_BAD_CONFIGS))
def test_inspect_refuses_configs_of_the_wrong_json_type(cli, sample: Path, what: str) -> None:  # type: ignore[no-untyped-def]
    _retag_with(sample, config={**_sample_config(sample), **_BAD_CONFIGS[what]})
    for args in (("inspect",), ("inspect", "--config")):
        res = cli(*args, f"oci:{sample}:t")
        assert_one_line_error(res, 4)
        assert "image config: " in res.stderr
    assert cli("inspect", "--raw", f"oci:{sample}:t").exit_code == 0  # the manifest itself is fine
    res = cli("fsck", sample)
    assert res.exit_code == 4 and "error: manifest-invalid: config sha256:" in res.stdout, res


@pytest.mark.damages_layouts
@pytest.mark.parametrize("edit", [
    lambda d: d["layers"][0].update(urls=5),
    lambda d: d["layers"][0].update(annotations={"n": 1}),
    lambda d: d.update(subject="sha256:abc"),
    lambda d: d.update(manifests=[]),  # ambiguous: an image manifest that is also an index
])
def test_inspect_refuses_mistyped_or_ambiguous_manifests(cli, sample: Path, edit) -> None:  # type: ignore[no-untyped-def]
    _retag_with(sample, manifest_edit=edit)
    assert_one_line_error(cli("inspect", f"oci:{sample}:t"), 4)
    assert_one_line_error(cli("copy", f"oci:{sample}:t", f"oci:{sample}-copy:t"), 4)
    assert not (sample.parent / f"{sample.name}-copy").exists() or \
        LayoutStore.open(sample.parent / f"{sample.name}-copy").refs() == []


def test_inspect_refuses_artifacts_but_shows_their_raw_manifest(cli, sample: Path) -> None:  # type: ignore[no-untyped-def]
    """skopeo: 'unsupported image-specific operation on artifact with type ...'; the config is not parsed."""
    _retag_with(sample, config={"name": "chart", "version": 5}, config_type="application/vnd.cncf.helm.config.v1+json")
    res = cli("inspect", f"oci:{sample}:t")
    assert_one_line_error(res, 5)
    assert "artifact with type 'application/vnd.cncf.helm.config.v1+json'" in res.stderr
    assert json.loads(cli("inspect", "--raw", f"oci:{sample}:t").stdout)["schemaVersion"] == 2
    assert cli("fsck", sample).exit_code == 0
    row = next(r for r in json.loads(cli("images", "--json", sample).stdout) if r["tag"] == "t")
    assert row["created"] is None and row["platforms"] == []  # nothing read from the artifact's config


@pytest.mark.parametrize("created", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_edge_of_range_times_in_inspect_and_images(cli, sample: Path, created: str) -> None:  # type: ignore[no-untyped-def]
    """Valid RFC 3339 times whose UTC instant is outside years 1-9999: inspect prints them as skopeo does
    (Go keeps the offset), images shows N/A (before: OverflowError, exit 70)."""
    _retag_with(sample, config={**_sample_config(sample), "created": created})
    res = cli("inspect", f"oci:{sample}:t")
    assert res.exit_code == 0 and json.loads(res.stdout)["Created"] == created, res
    res = cli("images", sample)
    assert res.exit_code == 0, res
    assert [line.split()[3] for line in res.stdout.splitlines() if line.split()[1:2] == ["t"]] == ["N/A"]
    assert [r["created"] for r in json.loads(cli("images", "--json", sample).stdout) if r["tag"] == "t"] == [None]


@pytest.mark.interop
@pytest.mark.damages_layouts
def test_skopeo_and_ocilayout_agree_on_mistyped_configs(cli, sample: Path, skopeo) -> None:  # type: ignore[no-untyped-def]
    accepted = {"null fields": {"history": None, "os.features": None},
                "year 1, +01:00": {"created": "0001-01-01T00:00:00+01:00"},
                "diff_ids not digests": {"rootfs": {"type": "layers", "diff_ids": ["x"]}}}
    for i, (what, edit) in enumerate([*_BAD_CONFIGS.items(), *accepted.items()]):
        _retag_with(sample, config={**_sample_config(sample), **edit}, tag=f"t{i}")
        theirs = skopeo("inspect", f"oci:{sample}:t{i}", check=False).returncode == 0
        ours = cli("inspect", f"oci:{sample}:t{i}").exit_code == 0
        assert ours == theirs == (what in accepted), (what, ours, theirs)
