"""The one write path of every edit command (ocilayout.edit.write.write_edited, cli/_write.py): the in-place
rule, untagged in-place edits, the shared naming flags and output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import assert_one_line_error, snapshot

from ocilayout.descriptor import CONTAINERD_NAME, REF_NAME


def _ok(res: Any) -> Any:
    assert res.exit_code == 0, res
    return res



def _index(layout: Path) -> list[dict[str, Any]]:
    return json.loads((layout / "index.json").read_bytes())["manifests"]  # type: ignore[no-any-return]



@pytest.fixture
def layer_dir(tmp_path: Path) -> Path:
    d = tmp_path / "files"
    (d / "etc").mkdir(parents=True)
    (d / "etc" / "added").write_text("new\n")
    return d


#: Every edit command that writes an image, as (args before SOURCE, args after DESTINATION) given a layer dir.
def _edits(layer_dir: Path) -> dict[str, tuple[list[str], list[str]]]:
    return {
        "mutate": (["mutate"], ["--env", "A=1"]),
        "append": (["append"], ["--layer", str(layer_dir)]),
        "flatten": (["flatten"], []),
        "normalize": (["normalize"], ["--timestamp", "0", "--all-layers"]),
    }


EDITS = ["mutate", "append", "flatten", "normalize"]


def _unnamed_layout(cli: Any, sample: Path, tmp_path: Path, name: str = "ko") -> Path:
    """A ko / rules_oci layout: one untagged entry."""
    out = tmp_path / name
    _ok(cli("copy", f"oci:{sample}:v1", f"oci:{out}", "--ref-name", "none"))
    (entry,) = _index(out)
    assert REF_NAME not in (entry.get("annotations") or {})
    return out


# -- untagged in-place edits -------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", EDITS)
def test_in_place_edit_of_the_only_untagged_entry_replaces_it(cli: Any, sample: Path, tmp_path: Path,
                                                               layer_dir: Path, command: str) -> None:
    layout = _unnamed_layout(cli, sample, tmp_path)
    (old,) = _index(layout)
    pre, post = _edits(layer_dir)[command]
    res = _ok(cli(*pre, f"oci:{layout}", *post, "-q"))
    (new,) = _index(layout)  # one entry, still unnamed, the edited image
    assert new["digest"] == res.stdout.strip() != old["digest"]
    assert REF_NAME not in (new.get("annotations") or {})


def test_untagged_in_place_result_is_read_by_skopeo(cli: Any, sample: Path, tmp_path: Path, layer_dir: Path,
                                                    skopeo: Any) -> None:
    layout = _unnamed_layout(cli, sample, tmp_path)
    _ok(cli("mutate", f"oci:{layout}", "--env", "EDITED=1", "-q"))
    _ok(cli("append", f"oci:{layout}", "--layer", str(layer_dir), "-q"))
    cfg = json.loads(skopeo("inspect", "--config", f"oci:{layout}").stdout)  # skopeo reads the only image
    assert "EDITED=1" in cfg["config"]["Env"]
    assert len(cfg["rootfs"]["diff_ids"]) == 3  # the sample's two layers and the appended one


def test_in_place_edit_by_digest_replaces_that_untagged_entry_and_keeps_the_tags(cli: Any, sample: Path,
                                                                                  tmp_path: Path) -> None:
    layout = _unnamed_layout(cli, sample, tmp_path)
    _ok(cli("copy", f"oci:{sample}:multi", f"oci:{layout}:multi"))
    untagged, tagged = _index(layout)
    res = _ok(cli("mutate", f"oci:{layout}@{untagged['digest']}", "--label", "x=y", "-q"))
    after = _index(layout)
    assert after[0] == tagged
    assert [e["digest"] for e in after[1:]] == [res.stdout.strip()]
    assert REF_NAME not in (after[1].get("annotations") or {})


def test_in_place_edit_of_an_untagged_archive_entry_replaces_it(cli: Any, sample: Path, tmp_path: Path) -> None:
    archive = tmp_path / "ko.tar"
    _ok(cli("copy", f"oci:{sample}:v1", f"oci-archive:{archive}", "--ref-name", "none"))
    res = _ok(cli("mutate", f"oci-archive:{archive}", "--env", "A=1", "-q"))
    from ocilayout.transports import open_source, transport

    with open_source(f"oci-archive:{archive}") as src:  # the only image: the edited one
        assert str(src.root.digest) == res.stdout.strip()
    from ocilayout.reference import parse_reference

    with transport("oci-archive").open_reader(parse_reference(f"oci-archive:{archive}")) as reader:
        assert [e.name for e in reader.entries()] == [None]


def test_in_place_edit_of_a_tagged_image_by_digest_is_refused(cli: Any, sample: Path) -> None:
    (v1,) = [e for e in _index(sample) if e["annotations"][REF_NAME] == "v1"]
    before = snapshot(sample)
    res = cli("mutate", f"oci:{sample}@{v1['digest']}", "--env", "A=1")
    assert_one_line_error(res, 2)
    assert "tagged (v1)" in res.stderr
    assert snapshot(sample) == before


def test_in_place_edit_of_an_image_inside_an_index_is_refused(cli: Any, sample: Path) -> None:
    from ocilayout.store import LayoutStore

    with LayoutStore.open(sample) as r:
        child = json.loads(r.get_manifest(r.resolve("multi")).raw)["manifests"][0]["digest"]
    before = snapshot(sample)
    res = cli("append", f"oci:{sample}@{child}", "--layer", str(sample / "oci-layout"))
    assert_one_line_error(res, 2)
    assert "not an entry of the layout's index.json" in res.stderr
    assert snapshot(sample) == before


@pytest.mark.parametrize("flags", [["--ref-name", "none"], ["--ref-name", "full", "--image-name", "example.com/a"]])
def test_in_place_edit_that_would_rename_the_image_is_refused(cli: Any, sample: Path, flags: list[str]) -> None:
    """Renaming in place would leave the old name on the old image (a full name does not replace a bare tag)."""
    before = snapshot(sample)
    res = cli("mutate", f"oci:{sample}:v1", "--env", "A=1", *flags)
    assert_one_line_error(res, 2)
    assert "keeps the name 'v1'" in res.stderr
    assert snapshot(sample) == before


def test_in_place_edit_may_add_a_containerd_name_or_name_an_untagged_image(cli: Any, sample: Path,
                                                                           tmp_path: Path) -> None:
    res = _ok(cli("mutate", f"oci:{sample}:v1", "--env", "A=1", "--image-name", "example.com/a", "-q"))
    (v1,) = [e for e in _index(sample) if e["annotations"][REF_NAME] == "v1"]
    assert v1["digest"] == res.stdout.strip()
    assert v1["annotations"][CONTAINERD_NAME] == "example.com/a:v1"
    layout = _unnamed_layout(cli, sample, tmp_path)
    res = _ok(cli("mutate", f"oci:{layout}", "--env", "A=1", "--ref-name", "tag", "--image-name",
                  "example.com/b:2", "-q"))
    (entry,) = _index(layout)  # the untagged entry became the named one
    assert entry["digest"] == res.stdout.strip() and entry["annotations"][REF_NAME] == "2"


@pytest.mark.parametrize("command", EDITS)
def test_in_place_edit_of_a_one_image_destination_is_refused_for_every_command(
        cli: Any, sample: Path, tmp_path: Path, layer_dir: Path, command: str) -> None:
    d = tmp_path / "d"
    _ok(cli("copy", f"oci:{sample}:v1", f"dir:{d}"))
    before = snapshot(d)
    pre, post = _edits(layer_dir)[command]
    res = cli(*pre, f"dir:{d}", *post)
    assert_one_line_error(res, 2)
    assert "cannot be edited in place" in res.stderr
    assert snapshot(d) == before


# -- the shared naming flags and output ----------------------------------------------------------------------------
@pytest.mark.parametrize("command", EDITS)
def test_every_edit_takes_ref_name_and_image_name(cli: Any, sample: Path, tmp_path: Path, layer_dir: Path,
                                                  command: str) -> None:
    out = tmp_path / "out"
    pre, post = _edits(layer_dir)[command]
    res = _ok(cli(*pre, f"oci:{sample}:v1", f"oci:{out}:1.0", *post, "--ref-name", "tag", "--image-name",
                  "example.com/app", "-q"))
    (entry,) = _index(out)
    assert entry["digest"] == res.stdout.strip()
    assert entry["annotations"][REF_NAME] == "1.0"
    assert entry["annotations"][CONTAINERD_NAME] == "example.com/app:1.0"


@pytest.mark.parametrize("command", EDITS)
def test_every_edit_refuses_names_that_do_not_fit_before_reading(cli: Any, sample: Path, tmp_path: Path,
                                                                 layer_dir: Path, command: str) -> None:
    pre, post = _edits(layer_dir)[command]
    res = cli(*pre, f"oci:{tmp_path}/missing:v1", f"oci:{tmp_path}/out:1.0", *post, "--ref-name", "none")
    assert_one_line_error(res, 2)  # the names are refused first (the missing source would be exit 3)
    assert not (tmp_path / "out").exists()


def test_index_commands_take_the_naming_flags(cli: Any, sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "idx"
    res = _ok(cli("index", "create", f"oci:{out}", "--image", f"oci:{sample}:v1", "--ref-name", "full",
                  "--image-name", "example.com/app:2.0", "-q"))
    (entry,) = _index(out)
    assert entry["annotations"][REF_NAME] == "example.com/app:2.0"
    assert entry["digest"] == res.stdout.strip()
    # in place: index add keeps the full name the entry had
    res = _ok(cli("index", "add", f"oci:{out}:example.com/app:2.0", "--image", f"oci:{sample}:multi",
                  "--flatten", "--allow-duplicate-platforms", "-q"))
    (entry,) = _index(out)
    assert entry["annotations"][REF_NAME] == "example.com/app:2.0"
    assert entry["digest"] == res.stdout.strip()
    # to another name, unnamed
    other = tmp_path / "other"
    res = _ok(cli("index", "remove", f"oci:{out}:2.0", f"oci:{other}", "--platform", "linux/arm64",
                  "--ref-name", "none", "-q"))
    (entry,) = _index(other)
    assert REF_NAME not in (entry.get("annotations") or {})


@pytest.mark.parametrize("command", EDITS)
def test_every_edit_reports_alike(cli: Any, sample: Path, tmp_path: Path, layer_dir: Path, command: str) -> None:
    """Digest on stdout and in --digestfile; a summary naming the destination on stderr, none with -q."""
    pre, post = _edits(layer_dir)[command]
    loud = _ok(cli(*pre, f"oci:{sample}:v1", f"oci:{tmp_path}/a:x", *post, "--digestfile", tmp_path / "a.txt"))
    assert loud.stdout.strip() == (tmp_path / "a.txt").read_text()
    assert f"oci:{tmp_path}/a:x" in loud.stderr
    quiet = _ok(cli(*pre, f"oci:{sample}:v1", f"oci:{tmp_path}/b:x", *post, "-q"))
    assert quiet.stdout == loud.stdout and quiet.stderr == ""


def test_edit_warnings_print_for_every_command(cli: Any, sample: Path, tmp_path: Path, layer_dir: Path) -> None:
    """Consumer warnings come from the shared path: an oci-archive named by a bare tag warns for append too."""
    res = _ok(cli("append", f"oci:{sample}:v1", f"oci-archive:{tmp_path}/a.tar:1.0", "--layer", str(layer_dir),
                  "-q"))
    assert "podman load names the image localhost/1.0:latest" in res.stderr


def test_no_consumer_warning_reads_a_registry_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """print_warnings asks the transport (``remote``), not the reference text, whether to read the result."""
    import ocilayout.compat
    from ocilayout.cli._write import print_warnings
    from ocilayout.transports import transport

    def never(*_a: object, **_k: object) -> object:
        raise AssertionError("a remote result was read back")

    monkeypatch.setattr(ocilayout.compat, "facts_of", never)
    assert transport("docker").remote and not transport("oci").remote
    print_warnings("docker://127.0.0.1:9/repo:1")


# -- two writers at once ------------------------------------------------------------------------------------------
def _spawn(*args: str) -> Any:
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-m", "ocilayout", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _digest_of(proc: Any) -> str:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return str(out.strip())


def test_mutate_and_append_at_once_on_other_tags_lose_nothing(sample: Path, tmp_path: Path, layer_dir: Path) -> None:
    """Each commit merges its names into index.json under the layout lock: two in-place edits of different
    tags that run at the same time both land, and every other entry stays."""
    from ocilayout.copy import copy
    from ocilayout.store import LayoutStore

    for tag in ("a", "b"):
        copy(f"oci:{sample}:v1", f"oci:{sample}:{tag}")
    others = [e for e in _index(sample) if e["annotations"][REF_NAME] not in ("a", "b")]
    for _round in range(3):
        m = _spawn("mutate", f"oci:{sample}:a", "--env", f"ROUND={_round}", "-q")
        a = _spawn("append", f"oci:{sample}:b", "--layer", str(layer_dir), "-q")
        da, db = _digest_of(m), _digest_of(a)
        with LayoutStore.open(sample) as r:
            assert str(r.resolve("a").digest) == da and str(r.resolve("b").digest) == db
        assert [e for e in _index(sample) if e["annotations"][REF_NAME] not in ("a", "b")] == others


def test_two_edits_of_one_tag_at_once_last_writer_wins_whole(sample: Path, tmp_path: Path, layer_dir: Path) -> None:
    """Two in-place edits of the same tag, started together: each writes a complete image and moves the tag
    in its own atomic commit, so the tag ends on one of the two results (the later commit), never on a mix;
    the other result is fully stored but unnamed (gc removes it). Edits are not merged."""
    from ocilayout.digest import Digest
    from ocilayout.store import LayoutStore

    m = _spawn("mutate", f"oci:{sample}:v1", "--env", "WHO=mutate", "-q")
    a = _spawn("append", f"oci:{sample}:v1", "--layer", str(layer_dir), "-q")
    results = {_digest_of(m), _digest_of(a)}
    with LayoutStore.open(sample) as r:
        final = str(r.resolve("v1").digest)
        assert final in results
        for d in results:  # both images are whole in the layout
            r.get_manifest(r.resolve(None, Digest.parse(d)))
    assert len([e for e in _index(sample) if e["annotations"].get(REF_NAME) == "v1"]) == 1


@pytest.mark.parametrize("command", EDITS)
def test_every_edit_gives_one_digest_in_oci_and_oci_archive(cli: Any, sample: Path, tmp_path: Path,
                                                           layer_dir: Path, command: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Deterministic across formats: the same edit of a multi-arch image written to a layout and to an archive
    has the same root digest, and reading it back from the archive gives the same again."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    pre, post = _edits(layer_dir)[command]
    a = _ok(cli(*pre, f"oci:{sample}:multi", f"oci:{tmp_path}/l:x", *post, "-q")).stdout
    b = _ok(cli(*pre, f"oci:{sample}:multi", f"oci-archive:{tmp_path}/a.tar:x", *post, "-q")).stdout
    assert a == b
    # the same edit again, read from each: the archive reads back as the layout does
    c = _ok(cli(*pre, f"oci-archive:{tmp_path}/a.tar:x", f"oci:{tmp_path}/c:x", *post, "-q")).stdout
    d = _ok(cli(*pre, f"oci:{tmp_path}/l:x", f"oci:{tmp_path}/d:x", *post, "-q")).stdout
    assert c == d


def test_index_commands_print_the_consumer_warnings(cli: Any, sample: Path, tmp_path: Path) -> None:
    """index create / add go through the shared output too: a nested index gets its warning."""
    res = _ok(cli("index", "create", f"oci:{tmp_path}/n:x", "--image", f"oci:{sample}:multi", "-q"))
    assert "an index inside an index" in res.stderr
    res = _ok(cli("index", "add", f"oci:{tmp_path}/n:x", "--image", f"oci:{sample}:v1", "-q"))
    assert "an index inside an index" in res.stderr


@pytest.mark.parametrize("command", EDITS)
def test_a_platform_that_is_not_the_single_images_is_not_found(cli: Any, sample: Path, tmp_path: Path,
                                                               layer_dir: Path, command: str) -> None:
    """--platform on a single image (its index.json entry names linux/amd64) edits it only when it matches:
    linux/arm64 used to edit the amd64 image anyway."""
    pre, post = _edits(layer_dir)[command]
    res = cli(*pre, f"oci:{sample}:v1", f"oci:{tmp_path}/o:x", *post, "--platform", "linux/arm64")
    assert_one_line_error(res, 3)
    assert not (tmp_path / "o").exists()
    _ok(cli(*pre, f"oci:{sample}:v1", f"oci:{tmp_path}/p:x", *post, "--platform", "linux/amd64", "-q"))


@pytest.mark.parametrize("args", [
    ["mutate", "oci:{s}:v1", "--env", "A=1"],
    ["append", "oci:{s}:v1", "--layer", "{s}/oci-layout"],
    ["flatten", "oci:{s}:v1", "oci:{t}/out:x"],
    ["copy", "oci:{s}:v1", "oci:{t}/out:x"],
    ["index", "create", "oci:{t}/out:x", "--image", "oci:{s}:v1"],
    ["attach", "oci:{s}:v1", "{s}/oci-layout", "--artifact-type", "a/b"],
])
def test_a_digestfile_inside_a_layout_read_or_written_is_refused(cli: Any, sample: Path, tmp_path: Path,
                                                                 args: list[str]) -> None:
    """--digestfile LAYOUT/index.json used to replace the layout's index.json with the digest (the layout was
    lost); now refused before anything is written, for every command that writes a digest file."""
    before = snapshot(sample)
    argv = [a.format(s=sample, t=tmp_path) for a in args]
    res = cli(*argv, "--digestfile", sample / "index.json")
    assert_one_line_error(res, 2)
    assert "is inside" in res.stderr
    assert snapshot(sample) == before
    assert not (tmp_path / "out").exists()


def test_a_digestfile_beside_an_archive_is_fine_but_not_the_archive(cli: Any, sample: Path, tmp_path: Path) -> None:
    archive = tmp_path / "a.tar"
    _ok(cli("copy", f"oci:{sample}:v1", f"oci-archive:{archive}:x", "--digestfile", tmp_path / "d.txt"))
    before = archive.read_bytes()
    res = cli("mutate", f"oci-archive:{archive}:x", "--env", "A=1", "--digestfile", archive)
    assert_one_line_error(res, 2)
    assert archive.read_bytes() == before


def test_index_remove_in_place_on_a_ko_layout_replaces_its_one_untagged_index(cli: Any, sample: Path,
                                                                             tmp_path: Path, skopeo: Any) -> None:
    layout = tmp_path / "ko"
    _ok(cli("copy", "--all", f"oci:{sample}:multi", f"oci:{layout}", "--ref-name", "none"))
    res = _ok(cli("index", "remove", f"oci:{layout}", "--platform", "linux/arm64", "-q"))
    (entry,) = _index(layout)
    assert entry["digest"] == res.stdout.strip() and REF_NAME not in (entry.get("annotations") or {})
    raw = json.loads(skopeo("inspect", "--raw", f"oci:{layout}").stdout)
    assert [m["platform"]["architecture"] for m in raw["manifests"]] == ["amd64"]
