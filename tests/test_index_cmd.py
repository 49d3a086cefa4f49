"""``index create / add / remove``: multi-platform indexes from images of several layouts, read by skopeo and
umoci; add / remove keep the other children's descriptors; bad input changes nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import assert_fsck, assert_one_line_error

from ocilayout import mediatypes as mt
from ocilayout.descriptor import Platform
from ocilayout.digest import Digest
from ocilayout.edit.attach import attach, list_referrers
from ocilayout.edit.index import create_index
from ocilayout.sample import make_image
from ocilayout.store import LayoutStore
from ocilayout.transports import open_source

AMD = Platform("linux", "amd64")
ARM = Platform("linux", "arm64", "v8")
S390 = Platform("linux", "s390x")


def _layout(path: Path, images: dict[str, Platform], *, docker: bool = False) -> Path:
    store = LayoutStore.create(path)
    for tag, plat in images.items():
        make_image(store, [{"who": f"{path.name} {tag}\n".encode()}], platform=plat, tag=tag, docker=docker)
    return path


def _doc(layout: Path, tag: str) -> dict:
    with LayoutStore.open(layout) as r:
        return json.loads(r.get_manifest(r.resolve(tag)).raw)


def _digest(layout: Path, tag: str) -> str:
    with LayoutStore.open(layout) as r:
        return str(r.resolve(tag).digest)


def _snapshot(path: Path) -> list[tuple[str, bytes]]:
    return sorted((str(f.relative_to(path)), f.read_bytes()) for f in path.rglob("*")
                  if f.is_file() and not f.name.startswith(".ocilayout"))


@pytest.fixture
def two(tmp_path: Path) -> tuple[Path, Path]:
    """An amd64 image in one layout, arm64 and s390x images in another."""
    return _layout(tmp_path / "a", {"amd": AMD}), _layout(tmp_path / "b", {"arm": ARM, "s390": S390, "arm2": ARM})


def test_create_from_two_layouts_read_by_skopeo_and_umoci(two: tuple[Path, Path], tmp_path: Path, cli, skopeo,
                                                          umoci) -> None:
    a, b = two
    out = tmp_path / "out"
    res = cli("index", "create", f"oci:{out}:multi", "--image", f"oci:{a}:amd", "--image", f"oci:{b}:arm",
              "--annotation", "org.opencontainers.image.version=1.0", "--digestfile", tmp_path / "d")
    assert res.exit_code == 0, res
    digest = res.stdout.strip()
    assert (tmp_path / "d").read_text() == digest == _digest(out, "multi")
    raw = json.loads(skopeo("inspect", "--raw", f"oci:{out}:multi").stdout)
    assert raw["mediaType"] == mt.OCI_INDEX and raw["annotations"] == {"org.opencontainers.image.version": "1.0"}
    assert [(m["digest"], m["platform"]) for m in raw["manifests"]] == [
        (_digest(a, "amd"), {"architecture": "amd64", "os": "linux"}),
        (_digest(b, "arm"), {"architecture": "arm64", "os": "linux", "variant": "v8"})]
    # the images were copied in: skopeo copies the whole index out, and reads each platform's config
    skopeo("copy", "--all", f"oci:{out}:multi", f"oci:{tmp_path / 'copied'}:multi")
    assert _digest(tmp_path / "copied", "multi") == digest
    cfg = json.loads(skopeo("inspect", "--config", "--override-arch", "arm64", "--override-variant", "v8",
                            f"oci:{out}:multi").stdout)
    assert cfg["architecture"] == "arm64"
    assert "multi" in umoci("ls", "--layout", str(out)).stdout
    umoci("gc", "--layout", str(out))  # umoci walks the index and every image it lists: nothing is lost
    assert_fsck(out)
    assert_fsck(tmp_path / "copied")


def test_create_refuses_two_images_of_one_platform_unless_asked(two: tuple[Path, Path], tmp_path: Path,
                                                                cli) -> None:
    _, b = two
    out = tmp_path / "out"
    res = cli("index", "create", f"oci:{out}:m", "--image", f"oci:{b}:arm", "--image", f"oci:{b}:arm2")
    assert res.exit_code == 6 and "linux/arm64/v8" in res.stderr and res.stderr.count("\n") == 1
    assert not out.exists()
    res = cli("index", "create", f"oci:{out}:m", "--allow-duplicate-platforms", "--image", f"oci:{b}:arm",
              "--image", f"oci:{b}:arm2")
    assert res.exit_code == 0, res
    assert len(_doc(out, "m")["manifests"]) == 2


def test_nested_index_kept_or_flattened(sample: Path, two: tuple[Path, Path], tmp_path: Path) -> None:
    _, b = two
    multi = _doc(sample, "multi")
    create_index(f"oci:{tmp_path / 'n'}:x", [f"oci:{sample}:multi", f"oci:{b}:s390"])
    nested = _doc(tmp_path / "n", "x")["manifests"]
    assert nested[0] == {"mediaType": mt.OCI_INDEX, "digest": _digest(sample, "multi"),
                         "size": len(json.dumps(multi, separators=(",", ":")))} and "platform" not in nested[0]
    create_index(f"oci:{tmp_path / 'f'}:x", [f"oci:{sample}:multi", f"oci:{b}:s390"], flatten=True)
    flat = _doc(tmp_path / "f", "x")["manifests"]
    assert flat[:2] == multi["manifests"]  # the children exactly as the nested index described them
    assert flat[2]["platform"] == {"architecture": "s390x", "os": "linux"}
    assert_fsck(tmp_path / "n")
    assert_fsck(tmp_path / "f")


def test_docker_manifest_list_when_every_child_is_docker(tmp_path: Path, cli, skopeo) -> None:
    """Written to dir: (containers/image's oci: transport only sees OCI media types in index.json)."""
    d = _layout(tmp_path / "d", {"amd": AMD, "arm": ARM}, docker=True)
    o = _layout(tmp_path / "o", {"arm": ARM})
    res = cli("index", "create", f"dir:{tmp_path / 'out'}", "--format", "v2s2", "--image", f"oci:{d}:amd",
              "--image", f"oci:{d}:arm")
    assert res.exit_code == 0, res
    raw = json.loads(skopeo("inspect", "--raw", f"dir:{tmp_path / 'out'}").stdout)
    assert raw["mediaType"] == mt.DOCKER_MANIFEST_LIST
    assert {m["mediaType"] for m in raw["manifests"]} == {mt.DOCKER_MANIFEST}
    skopeo("copy", "--all", f"dir:{tmp_path / 'out'}", f"dir:{tmp_path / 'copied'}")
    res = cli("index", "create", f"oci:{tmp_path / 'bad'}:list", "--format", "v2s2", "--image", f"oci:{d}:amd",
              "--image", f"oci:{o}:arm")
    assert res.exit_code == 5 and "Docker" in res.stderr and not (tmp_path / "bad").exists()


def test_add_replaces_the_same_platform_and_keeps_the_others(two: tuple[Path, Path], tmp_path: Path,
                                                             cli) -> None:
    a, b = two
    out = tmp_path / "out"
    create_index(f"oci:{out}:multi", [f"oci:{a}:amd", f"oci:{b}:arm"])
    before = _doc(out, "multi")
    res = cli("index", "add", f"oci:{out}:multi", "--image", f"oci:{b}:arm2", "--image", f"oci:{b}:s390")
    assert res.exit_code == 0, res
    assert "replaced linux/arm64/v8 " + _digest(b, "arm") in res.stderr
    after = _doc(out, "multi")
    assert after["manifests"][0] == before["manifests"][0]  # amd64: the same descriptor, byte for byte
    assert after["manifests"][1]["digest"] == _digest(b, "arm2")  # in the old entry's place
    assert after["manifests"][2]["digest"] == _digest(b, "s390")
    assert res.stdout.strip() == _digest(out, "multi")
    with open_source(f"oci:{out}:multi") as src:  # the added image's blobs were copied from the other layout
        child = src.get_manifest(src.get_manifest().manifests[2])
        assert all(src.stat_blob(d.digest) == d.size for d in [child.config, *child.layers])
    assert_fsck(out)


def test_add_with_duplicates_appends_and_into_another_destination(two: tuple[Path, Path], tmp_path: Path) -> None:
    from ocilayout.edit.index import add_to_index

    a, b = two
    create_index(f"oci:{tmp_path / 'out'}:multi", [f"oci:{a}:amd", f"oci:{b}:arm"])
    before = _snapshot(tmp_path / "out")
    res = add_to_index(f"oci:{tmp_path / 'out'}:multi", [f"oci:{b}:arm2"], dst=f"oci-archive:{tmp_path / 'x.tar'}:m",
                       allow_duplicate_platforms=True)
    assert _snapshot(tmp_path / "out") == before  # the source index is left alone
    with open_source(f"oci-archive:{tmp_path / 'x.tar'}:m") as src:
        assert src.root.digest == res.descriptor.digest
        assert [str(d.digest) for d in src.get_manifest().manifests] == [
            _digest(a, "amd"), _digest(b, "arm"), _digest(b, "arm2")]


def test_remove_by_platform_and_digest_keeps_the_others(two: tuple[Path, Path], tmp_path: Path, cli) -> None:
    a, b = two
    out = tmp_path / "out"
    create_index(f"oci:{out}:multi", [f"oci:{a}:amd", f"oci:{b}:arm", f"oci:{b}:s390"])
    before = _doc(out, "multi")["manifests"]
    res = cli("index", "remove", f"oci:{out}:multi", "--platform", "linux/arm64")
    assert res.exit_code == 0, res
    assert _doc(out, "multi")["manifests"] == [before[0], before[2]]
    res = cli("index", "remove", f"oci:{out}:multi", "--digest", before[2]["digest"])
    assert res.exit_code == 0, res
    assert _doc(out, "multi")["manifests"] == [before[0]]
    with LayoutStore.open(out) as r:  # the removed images' blobs stay for gc
        assert r.stat_blob(Digest.parse(before[1]["digest"])) is not None
    assert_fsck(out)


@pytest.mark.parametrize("case", ["unknown-platform", "bad-platform", "unknown-digest", "bad-digest", "empty",
                                  "nothing-asked", "not-an-index", "missing-image", "add-missing-image",
                                  "bad-annotation"])
def test_bad_input_is_one_line_and_changes_nothing(two: tuple[Path, Path], tmp_path: Path, cli, case: str) -> None:
    a, b = two
    out = tmp_path / "out"
    create_index(f"oci:{out}:multi", [f"oci:{a}:amd"])
    args, code = {
        "unknown-platform": (("remove", f"oci:{out}:multi", "--platform", "linux/ppc64le"), 3),
        "bad-platform": (("remove", f"oci:{out}:multi", "--platform", "linux"), 2),
        "unknown-digest": (("remove", f"oci:{out}:multi", "--digest", "sha256:" + "0" * 64), 3),
        "bad-digest": (("remove", f"oci:{out}:multi", "--digest", "sha256:xyz"), 2),
        "empty": (("remove", f"oci:{out}:multi", "--platform", "linux/amd64"), 2),
        "nothing-asked": (("remove", f"oci:{out}:multi"), 2),
        "not-an-index": (("add", f"oci:{a}:amd", "--image", f"oci:{b}:arm"), 5),
        "missing-image": (("create", f"oci:{out}:multi", "--image", f"oci:{a}:amd", "--image", f"oci:{b}:nope"), 3),
        "add-missing-image": (("add", f"oci:{out}:multi", "--image", f"oci:{tmp_path}/nowhere:x"), 3),
        "bad-annotation": (("create", f"oci:{out}:multi", "--image", f"oci:{a}:amd", "--annotation", "x"), 2),
    }[case]
    before = [_snapshot(p) for p in (a, b, out)]
    res = cli("index", *args)
    assert res.exit_code == code, res
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("ocilayout: error: ") and not res.stdout
    assert [_snapshot(p) for p in (a, b, out)] == before


def test_an_artifact_is_not_an_image_to_list(two: tuple[Path, Path], tmp_path: Path, cli) -> None:
    a, _ = two
    sbom = tmp_path / "sbom.json"
    sbom.write_text("{}")
    art = attach(f"oci:{a}:amd", sbom, artifact_type="application/spdx+json")
    res = cli("index", "create", f"oci:{tmp_path / 'out'}:m", "--image", f"oci:{a}@{art.descriptor.digest}")
    assert res.exit_code == 5 and "not an image" in res.stderr and not (tmp_path / "out").exists()


def test_archive_in_place_and_referrers_travel(two: tuple[Path, Path], tmp_path: Path, cli) -> None:
    """An index built in an oci-archive, edited in place; an image's referrers come with it into the index."""
    a, b = two
    sbom = tmp_path / "sbom.json"
    sbom.write_text("{}")
    art = attach(f"oci:{b}:arm", sbom, artifact_type="application/spdx+json")
    tar = tmp_path / "multi.tar"
    assert cli("index", "create", f"oci-archive:{tar}:multi", "--image", f"oci:{a}:amd").exit_code == 0
    res = cli("index", "add", f"oci-archive:{tar}:multi", "--image", f"oci:{b}:arm")
    assert res.exit_code == 0, res
    with open_source(f"oci-archive:{tar}:multi") as src:
        children = src.get_manifest().manifests
        assert [c.platform for c in children] == [AMD, ARM]
        assert [d.digest for d in list_referrers(src, children[1].digest)] == [art.descriptor.digest]


def test_images_from_dir_and_docker_archive_and_a_refused_destination(two: tuple[Path, Path], tmp_path: Path,
                                                                      cli) -> None:
    """Every local format is a source; a destination that holds no index refuses and gets nothing."""
    from ocilayout.copy import copy

    a, b = two
    copy(f"oci:{a}:amd", f"docker-archive:{tmp_path / 'amd.tar'}:example.com/app:amd")
    copy(f"oci:{b}:arm", f"dir:{tmp_path / 'arm'}")
    images = ["--image", f"docker-archive:{tmp_path / 'amd.tar'}", "--image", f"dir:{tmp_path / 'arm'}"]
    res = cli("index", "create", f"oci:{tmp_path / 'out'}:m", *images)
    assert res.exit_code == 0, res
    again = cli("index", "create", f"oci:{tmp_path / 'again'}:m", *images)
    assert again.stdout == res.stdout  # the same images, the same index digest
    with open_source(f"oci:{tmp_path / 'out'}:m") as src:
        assert [c.platform for c in src.get_manifest().manifests] == [Platform("linux", "amd64"), ARM]
    res = cli("index", "create", f"docker-archive:{tmp_path / 'x.tar'}:example.com/x:1", *images)
    assert res.exit_code == 5 and "index" in res.stderr and not (tmp_path / "x.tar").exists()


def test_after_remove_umoci_unpacks_the_one_platform_left(two: tuple[Path, Path], tmp_path: Path, cli,
                                                          umoci) -> None:
    """umoci 0.4.7 cannot choose a platform in an index of several ("tag is ambiguous"); an index of one is
    unpacked, so removing arm64 leaves an index umoci unpacks to the amd64 root filesystem."""
    a, b = two
    out = tmp_path / "out"
    create_index(f"oci:{out}:m", [f"oci:{a}:amd", f"oci:{b}:arm"])
    assert cli("index", "remove", f"oci:{out}:m", "--platform", "linux/arm64/v8").exit_code == 0
    umoci("unpack", "--rootless", "--image", f"{out}:m", str(tmp_path / "bundle"))
    assert (tmp_path / "bundle" / "rootfs" / "who").read_text() == "a amd\n"


# -- concurrent in-place edits -------------------------------------------------------------------------------

def _race_first_commit(monkeypatch: pytest.MonkeyPatch, rival: Callable[[], object], every: bool = False,
                       archive: bool = False) -> list[int]:
    """Run ``rival`` (another writer's whole edit) just before the first commit of an edit (or before every
    one), as a second process would between our read and our commit; returns the count of commits tried."""
    from ocilayout.transports.oci import LayoutDestination
    from ocilayout.transports.oci_archive import ArchiveDestination

    cls: Any = ArchiveDestination if archive else LayoutDestination
    real = cls.commit
    commits = [0]
    racing = [False]

    def commit(self: Any) -> None:
        commits[0] += 1
        if not racing[0] and (every or commits[0] == 1):
            racing[0] = True
            try:
                rival()
            finally:
                racing[0] = False
        real(self)

    monkeypatch.setattr(cls, "commit", commit)
    return commits


@pytest.mark.parametrize("transport", ["oci", "oci-archive"])
def test_an_add_raced_by_another_add_runs_again_and_both_land(two: tuple[Path, Path], tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch, transport: str) -> None:
    """Two `index add` of one index at once: the one that commits second finds the name moved, writes
    nothing, and adds its image to what the other committed (before: the last commit won, one child lost)."""
    from ocilayout.edit.index import add_to_index

    a, b = two
    out = f"{transport}:{tmp_path / ('out' if transport == 'oci' else 'out.tar')}:multi"
    create_index(out, [f"oci:{a}:amd"])
    commits = _race_first_commit(monkeypatch, lambda: add_to_index(out, [f"oci:{b}:s390"]),
                                 archive=transport == "oci-archive")
    res = add_to_index(out, [f"oci:{b}:arm"])
    with open_source(out) as src:
        assert src.root.digest == res.descriptor.digest
        children = [str(d.digest) for d in src.get_manifest().manifests]
    assert children == [_digest(a, "amd"), _digest(b, "s390"), _digest(b, "arm")]
    assert commits[0] == 3  # ours (refused: the rival moved the name), the rival's, ours again
    if transport == "oci":
        assert_fsck(tmp_path / "out")


def test_an_untagged_image_edited_twice_at_once_keeps_both_edits(sample: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A ko/rules_oci layout (one untagged entry) mutated in place by two writers: one entry, both edits."""
    from ocilayout.copy import copy
    from ocilayout.edit.config import ConfigChanges, mutate
    from ocilayout.edit.write import write_edited

    ko = tmp_path / "ko"
    copy(f"oci:{sample}:v1", f"oci:{ko}:v1")
    index = json.loads((ko / "index.json").read_text())
    for entry in index["manifests"]:
        entry.pop("annotations", None)
    (ko / "index.json").write_text(json.dumps(index))

    def edit(key: str) -> object:
        return write_edited(lambda src: mutate(src, ConfigChanges(env=((key, "1"),))), f"oci:{ko}")

    _race_first_commit(monkeypatch, lambda: edit("RIVAL"))
    edit("OURS")
    entries = json.loads((ko / "index.json").read_text())["manifests"]
    assert len(entries) == 1 and "annotations" not in entries[0]
    with open_source(f"oci:{ko}") as src:
        from ocilayout.inspect import image_config

        _, config = image_config(src)
        assert config is not None
        env = json.loads(config.raw)["config"]["Env"]
    assert "RIVAL=1" in env and "OURS=1" in env
    assert_fsck(ko)


def test_an_edit_that_keeps_losing_gives_up_and_changes_nothing(two: tuple[Path, Path], tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch, cli) -> None:
    from ocilayout.edit import write as edit_write
    from ocilayout.edit.index import remove_from_index

    a, b = two
    out = tmp_path / "out"
    create_index(f"oci:{out}:multi", [f"oci:{a}:amd", f"oci:{b}:arm", f"oci:{b}:s390"])
    monkeypatch.setattr(edit_write, "EDIT_ATTEMPTS", 3)
    present = [True]

    def rival() -> None:  # every time our edit commits, another writer has removed or re-added s390 first
        from ocilayout.edit.index import add_to_index

        if present[0]:
            remove_from_index(f"oci:{out}:multi", platforms=[S390])
        else:
            add_to_index(f"oci:{out}:multi", [f"oci:{b}:s390"])
        present[0] = not present[0]

    _race_first_commit(monkeypatch, rival, every=True)
    before = _digest(out, "multi")
    res = cli("index", "add", f"oci:{out}:multi", "--image", f"oci:{b}:arm2")
    assert_one_line_error(res, 6)
    assert "another writer changed it meanwhile" in res.stderr
    after = [m["digest"] for m in _doc(out, "multi")["manifests"]]
    assert after == [_digest(a, "amd"), _digest(b, "arm")]  # the rival's three edits landed, ours never did
    assert _digest(out, "multi") != before
    assert_fsck(out)


def test_concurrent_adds_into_one_index_keep_every_image(tmp_path: Path) -> None:
    """Five processes add five platforms to one index at once: every one is listed at the end."""
    import subprocess
    import sys

    plats = {"amd": AMD, "arm": ARM, "s390": S390, "ppc": Platform("linux", "ppc64le"),
             "riscv": Platform("linux", "riscv64"), "i386": Platform("linux", "386")}
    images = _layout(tmp_path / "images", plats)
    out = tmp_path / "out"
    create_index(f"oci:{out}:multi", [f"oci:{images}:amd"])
    procs = [subprocess.Popen([sys.executable, "-m", "ocilayout", "index", "add", "-q", f"oci:{out}:multi",
                               "--image", f"oci:{images}:{tag}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for tag in plats if tag != "amd"]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    children = {m["digest"] for m in _doc(out, "multi")["manifests"]}
    assert children == {_digest(images, tag) for tag in plats}
    assert_fsck(out)
