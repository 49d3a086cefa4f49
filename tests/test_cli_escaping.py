"""Text from layouts never reaches the terminal raw: tables, fsck and gc output, JSON and error messages escape
control characters (ESC, CR, DEL, C1, bidi overrides, lone surrogates) while the data itself is unchanged."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from ocilayout.cli._display import escape, escape_json

EVIL = "v1\x1b[31m\rEVIL\u202e\x9b"
#: What must never appear in anything printed: C0 controls (but newline), DEL, C1, bidi overrides, separators.
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def _clean(text: str) -> None:
    assert not RAW.search(text), repr(text)
    assert not any(0xD800 <= ord(c) <= 0xDFFF for c in text), repr(text)


def _retag(layout: Path, old: str, new: str) -> None:
    doc = json.loads((layout / "index.json").read_bytes())
    for entry in doc["manifests"]:
        if entry.get("annotations", {}).get("org.opencontainers.image.ref.name") == old:
            entry["annotations"]["org.opencontainers.image.ref.name"] = new
    (layout / "index.json").write_text(json.dumps(doc))


@pytest.mark.parametrize("raw,shown", [
    ("\x1b[31m", "\\x1b[31m"),
    ("a\rb\nc\td", "a\\x0db\\x0ac\\x09d"),
    ("\x00\x7f\x9b", "\\x00\\x7f\\x9b"),
    ("abc\u202edef\u2066", "abc\\u202edef\\u2066"),
    ("line\u2028sep", "line\\u2028sep"),
    ("bad-\udcff-byte", "bad-\\xff-byte"),  # os.fsdecode of an undecodable file name byte
    ("lone \ud800", "lone \\ud800"),
    ("café ✓ 日本語 é \u00a0 emoji 👍\u200d", "café ✓ 日本語 é \u00a0 emoji 👍\u200d"),
    ("back\\slash", "back\\slash"),
])
def test_escape(raw: str, shown: str) -> None:
    assert escape(raw) == shown
    assert escape(escape(raw)) == escape(raw)  # idempotent
    _clean(escape(raw))


def test_escape_json_keeps_the_value() -> None:
    obj = {"k\x1b": [EVIL, "\x7f\x85\u2028\u202e", "\ud800", "plain ✓"], "n": 1}
    text = escape_json(json.dumps(obj, indent=4, ensure_ascii=False))
    _clean(text)
    assert json.loads(text) == obj
    assert text.count("\n") == json.dumps(obj, indent=4).count("\n")  # JSON's own newlines are kept


def test_json_dumps_default_is_already_safe() -> None:
    """Why the JSON outputs that use json.dumps' default (ensure_ascii=True) need no second pass."""
    _clean(json.dumps({"a": EVIL + "\ud800\u2028"}))


@pytest.mark.damages_layouts
def test_ref_name_with_controls_in_tables_and_json(cli, sample: Path) -> None:  # type: ignore[no-untyped-def]
    _retag(sample, "v1", EVIL)
    res = cli("images", sample)
    assert res.exit_code == 0, res
    _clean(res.stdout)
    header, *rows = res.stdout.splitlines()
    (row,) = [r for r in rows if escape(EVIL) in r]
    assert row.index("e6f6") == header.index("IMAGE ID")  # escaped before the widths are taken: aligned
    res = cli("images", "--json", sample)
    assert res.exit_code == 0, res
    _clean(res.stdout)
    assert EVIL in [r["tag"] for r in json.loads(res.stdout)]  # the data itself is unchanged
    res = cli("list-tags", f"oci:{sample}")
    assert res.exit_code == 0, res
    _clean(res.stdout)
    assert EVIL in json.loads(res.stdout)["Tags"]


@pytest.mark.damages_layouts
def test_platform_with_controls_in_images_table(cli, sample: Path) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads((sample / "index.json").read_bytes())
    doc["manifests"][0]["platform"]["variant"] = "v8\x1b]0;pwned\x07"
    (sample / "index.json").write_text(json.dumps(doc))
    res = cli("images", sample)
    _clean(res.stdout + res.stderr)
    assert "\\x1b]0;pwned\\x07" in res.stdout


def test_gc_and_fsck_escape_file_names(cli, sample: Path) -> None:  # type: ignore[no-untyped-def]
    stale = sample / ".ocilayout-tmp-\x1b[2J\rgone"
    stale.write_bytes(b"x")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    for args in (("fsck", sample), ("gc", "--dry-run", sample)):
        res = cli(*args)
        assert res.exit_code == 0, res
        _clean(res.stdout + res.stderr)
        assert ".ocilayout-tmp-\\x1b[2J\\x0dgone" in res.stdout, res
    stale.unlink()


def _image_with_config(layout: Path, raw_config: bytes, tag: str) -> None:
    from ocilayout import mediatypes as mt
    from ocilayout.manifest import Manifest
    from ocilayout.store import LayoutStore

    store = LayoutStore.open(layout)
    base = store.get_manifest(store.resolve("v1"))
    cfg = store.put_bytes(raw_config, mt.OCI_CONFIG)
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": cfg.to_dict(),
           "layers": [d.to_dict() for d in base.layers]}
    store.set_ref(tag, store.put_manifest(Manifest.from_doc(doc)))


def test_inspect_json_escapes_c1_bidi_and_lone_surrogates(cli, sample: Path) -> None:  # type: ignore[no-untyped-def]
    """inspect writes JSON as Go does (non-ASCII raw), so C1, DEL, U+202E and lone surrogates need JSON escapes."""
    from ocilayout.store import LayoutStore

    store = LayoutStore.open(sample)
    config = json.loads(store.read_blob_bytes(store.get_manifest(store.resolve("v1")).config))
    labels = {"evil": "\x9b31m\u202e\x7f\x1b", "ok": "日本語"}
    config["config"]["Labels"] = labels
    _image_with_config(sample, json.dumps(config).encode(), "lab")
    for args in (("inspect", f"oci:{sample}:lab"), ("inspect", "--config", f"oci:{sample}:lab")):
        res = cli(*args)
        assert res.exit_code == 0, res
        _clean(res.stdout)
        doc = json.loads(res.stdout)
        assert (doc["Labels"] if "Labels" in doc else doc["config"]["Labels"]) == labels
        assert "日本語" in res.stdout  # printable Unicode stays as it is
    # A lone surrogate (a "\ud800" escape in a JSON string) once made inspect fail: exit 70, UnicodeEncodeError.
    config["config"]["Labels"] = {"lone": "\ud800"}
    _image_with_config(sample, json.dumps(config).encode(), "lone")
    res = cli("inspect", f"oci:{sample}:lone")
    assert res.exit_code == 0, res
    _clean(res.stdout)
    assert json.loads(res.stdout)["Labels"] == {"lone": "\ud800"}


def test_error_messages_are_escaped(cli, sample: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Library messages keep data raw (a layout path here); the CLI's boundary escapes what it prints."""
    evil_dir = tmp_path / "\x1b[2J\rlayout\u202e"
    sample.rename(evil_dir)
    res = cli("inspect", f"oci:{evil_dir}:nope")
    assert res.exit_code == 3, res
    _clean(res.stderr)
    assert "\\x1b[2J\\x0dlayout\\u202e" in res.stderr
    assert res.stderr.count("\n") == 1
    res = cli("fsck", evil_dir)
    assert res.exit_code == 0, res
    _clean(res.stdout + res.stderr)
    assert "\\x1b[2J\\x0dlayout\\u202e" in res.stderr
    evil_dir.rename(sample)


def test_unknown_policy_keys_are_escaped(cli, sample: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    policy = tmp_path / "policy.json"
    policy.write_text('{"default": [{"type": "insecureAcceptAnything", "\\u001b[31mevil\\r": 1}]}')
    res = cli("verify", "--policy", policy, f"oci:{sample}:v1")
    assert res.exit_code != 0, res
    _clean(res.stdout + res.stderr)
    assert "\\x1b[31mevil\\x0d" in res.stderr
