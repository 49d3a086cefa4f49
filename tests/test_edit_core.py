"""The edit core: an edit is an OverlaySource that copy writes (ocilayout.edit)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import assert_fsck

from ocilayout import mediatypes as mt
from ocilayout.descriptor import Platform
from ocilayout.edit import ImageEdit, edit_images, write_edit
from ocilayout.edit.write import Spool
from ocilayout.errors import NotFound
from ocilayout.sample import make_layer
from ocilayout.store import LayoutStore
from ocilayout.transports import open_source


def _set_env(edit: ImageEdit) -> None:
    edit.config.setdefault("config", {})["Env"] = ["A=1"]


def _manifest_of(layout: Path, tag: str) -> dict:
    with LayoutStore.open(layout) as r:
        return json.loads(r.get_manifest(r.resolve(tag)).raw)


def _index_children(layout: Path, tag: str) -> dict[str, str]:
    doc = _manifest_of(layout, tag)
    return {f"{c['platform']['os']}/{c['platform']['architecture']}": c["digest"] for c in doc["manifests"]}


def test_config_edit_into_new_layout_read_by_skopeo(sample: Path, tmp_path: Path, skopeo) -> None:
    with open_source(f"oci:{sample}:v1") as src:
        overlay = edit_images(src, _set_env)
        assert overlay.root.digest != src.root.digest
        write_edit(overlay, f"oci:{tmp_path / 'out'}:edited")
        overlay.close()
    assert_fsck(tmp_path / "out")
    info = json.loads(skopeo("inspect", "--config", f"oci:{tmp_path / 'out'}:edited").stdout)
    assert info["config"]["Env"] == ["A=1"]
    assert info["config"]["Labels"] == {"org.opencontainers.image.title": "ocilayout sample"}  # kept


def test_unknown_config_fields_survive_and_no_op_keeps_digest(sample: Path) -> None:
    with open_source(f"oci:{sample}:v1") as src:
        same = edit_images(src, lambda e: None)
        assert same.root == src.root and not same.is_new(src.root.digest)

        def edit(e: ImageEdit) -> None:
            e.config["x-vendor"] = {"kept": True}

        first = edit_images(src, edit)
        cfg = json.loads(first.blob_bytes(first.get_manifest().config))
        assert cfg["x-vendor"] == {"kept": True} and cfg["rootfs"]["type"] == "layers"
        again = edit_images(src, edit)
        assert again.root.digest == first.root.digest  # same edit, same bytes


def test_platform_scoped_edit_changes_only_that_child(sample: Path, tmp_path: Path) -> None:
    before = _index_children(sample, "multi")
    with open_source(f"oci:{sample}:multi") as src:
        overlay = edit_images(src, _set_env, platforms=[Platform("linux", "arm64")])
        write_edit(overlay, f"oci:{tmp_path / 'out'}:multi")
    after = _index_children(tmp_path / "out", "multi")
    assert after["linux/amd64"] == before["linux/amd64"]
    assert after["linux/arm64"] != before["linux/arm64"]
    assert_fsck(tmp_path / "out")


def test_platform_that_matches_nothing_is_not_found(sample: Path) -> None:
    with open_source(f"oci:{sample}:multi") as src, pytest.raises(NotFound, match="s390x"):
        edit_images(src, _set_env, platforms=[Platform("linux", "s390x")])


def test_in_place_edit_moves_the_tag_and_keeps_old_blobs(sample: Path) -> None:
    with LayoutStore.open(sample) as r:
        old = r.resolve("v1")
    with open_source(f"oci:{sample}:v1") as src:
        write_edit(edit_images(src, _set_env), f"oci:{sample}:v1")
    with LayoutStore.open(sample) as r:
        new = r.resolve("v1")
        assert new.digest != old.digest
        assert r.stat_blob(old.digest) is not None  # left for gc
    assert_fsck(sample)


def test_appended_spooled_layer(sample: Path, tmp_path: Path, umoci) -> None:
    tar = make_layer({"added.txt": b"appended\n"})
    with open_source(f"oci:{sample}:v1") as src:
        def append(e: ImageEdit) -> None:
            spool = Spool()
            spool.write(tar)
            blob, digest = spool.finish()
            desc = e.overlay.add_spooled(blob, digest, mt.OCI_LAYER)
            e.add_layer(desc, digest, {"created_by": "test append"})

        write_edit(edit_images(src, append), f"oci:{tmp_path / 'out'}:v1")
    assert_fsck(tmp_path / "out")
    umoci("unpack", "--rootless", "--image", f"{tmp_path / 'out'}:v1", str(tmp_path / "bundle"))
    assert (tmp_path / "bundle" / "rootfs" / "added.txt").read_bytes() == b"appended\n"
    assert (tmp_path / "bundle" / "rootfs" / "etc" / "hello.txt").exists()
