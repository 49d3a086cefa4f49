"""The transport seam: one walk for every command, staged signatures, the transport table, layering."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from conftest import assert_fsck

from ocilayout import mediatypes as mt
from ocilayout.copy import copy
from ocilayout.gc import reachable_digests
from ocilayout.listing import list_images
from ocilayout.reference import TRANSPORTS as NAMES
from ocilayout.sample import make_image
from ocilayout.store import LayoutStore
from ocilayout.transports import TRANSPORTS, transport
from ocilayout.validate import fsck

PKG = Path(__file__).resolve().parent.parent / "ocilayout"


def _untyped_entry(tmp_path: Path) -> tuple[LayoutStore, str]:
    """A layout whose only index.json entry has no mediaType (as some writers produce)."""
    store = LayoutStore.create(tmp_path / "src")
    d = make_image(store, [{"a.txt": b"a\n"}, {"b.txt": b"b\n"}])
    entry = {k: v for k, v in d.to_dict().items() if k not in ("mediaType", "platform")}
    entry["annotations"] = {"org.opencontainers.image.ref.name": "x"}
    store.update_index(lambda _: [entry])
    return store, str(d.digest)


def test_copy_of_an_untyped_entry_copies_the_whole_image(tmp_path: Path) -> None:
    """Regression (issue 6, F1): copy's walk did not sniff untyped entries and committed one blob."""
    store, digest = _untyped_entry(tmp_path)
    assert fsck(store).ok
    res = copy(f"oci:{store.root}:x", f"oci:{tmp_path}/dst:x")
    assert res.blobs_copied == 3 and str(res.descriptor.digest) == digest  # config + 2 layers
    assert res.descriptor.media_type == mt.OCI_MANIFEST  # the parsed document's type
    assert_fsck(tmp_path / "dst")
    res = copy(f"oci:{store.root}:x", f"oci-archive:{tmp_path}/dst.tar:x")
    assert res.blobs_copied == 3


def test_every_walker_agrees_on_an_untyped_entry(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    store, _ = _untyped_entry(tmp_path)
    blobs = {d for d, _ in store.all_blobs()}
    assert reachable_digests(store) == blobs  # gc keeps config and layers
    report = fsck(store)
    assert report.ok and report.blobs_checked == len(blobs)
    (row,) = list_images(store, "src")
    assert row.size is not None and row.platforms == ("linux/amd64",)
    out = cli("inspect", f"oci:{store.root}:x")
    assert out.exit_code == 0 and len(json.loads(out.stdout)["Layers"]) == 2
    assert cli("gc", "--force", str(store.root)).exit_code == 0
    assert {d for d, _ in store.all_blobs()} == blobs


@pytest.mark.parametrize("dest", ["oci", "oci-archive"])
def test_failure_while_storing_signatures_leaves_destination_as_it_was(
        tmp_path: Path, dest: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fault injected while the signatures are staged, inside commit: nothing of the copy is visible."""
    from ocilayout.signature import storage
    from ocilayout.signature.model import SIMPLESIGNING_MEDIA_TYPE, SigstoreSignature

    src = LayoutStore.create(tmp_path / "s")
    d = make_image(src, tag="v1")
    sig = SigstoreSignature(SIMPLESIGNING_MEDIA_TYPE, b"{}", {"dev.cosignproject.cosign/signature": "AAAA"})
    src_sigs = storage.LayoutSignatures(src)
    src_sigs.add(d.digest, sig)
    target = tmp_path / ("d" if dest == "oci" else "d.tar")
    copy(f"oci:{src.root}:v1", f"{dest}:{target}:old")  # the destination holds something already
    before = _snapshot(target)

    def boom(*args: object, **kwargs: object) -> object:
        raise OSError(28, "No space left on device")

    make_image(src, [{"new.txt": b"new\n"}], tag="v2")
    src_sigs.add(src.resolve("v2").digest, sig)
    monkeypatch.setattr(storage, "sig_manifest_bytes", boom)
    with pytest.raises(OSError):
        copy(f"oci:{src.root}:v2", f"{dest}:{target}:v2")
    assert _snapshot(target) == before


def _snapshot(target: Path) -> dict[str, bytes]:
    if target.is_file():
        return {"": target.read_bytes()}
    return {str(p.relative_to(target)): p.read_bytes() for p in sorted(target.rglob("*"))
            if p.is_file() and not p.name.startswith(".ocilayout")}


def test_the_transport_table_lists_every_parsed_transport() -> None:
    assert tuple(TRANSPORTS) == NAMES
    for name in NAMES:
        assert transport(name).name == name


# -- layering ---------------------------------------------------------------------------------------------

def _imports(path: Path) -> set[str]:
    """Every ocilayout module ``path`` imports (at any level, lazily or not), as dotted names."""
    rel = path.relative_to(PKG.parent).with_suffix("")
    package = list(rel.parts[:-1])
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            names = [f"{mod}.{a.name}" for a in node.names]
            out.update(n for n in [mod, *names] if n.startswith("ocilayout"))
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("ocilayout"))
    return out


FORMATS = ("model", "payload", "keys", "sigstore", "gpg", "policy", "storage", "dockerref")
#: (importer prefix, forbidden import prefix): lower layers never reach up.
RULES = [
    *((f"ocilayout.signature.{f}", p) for f in FORMATS
      for p in ("ocilayout.transports", "ocilayout.copy", "ocilayout.plan", "ocilayout.cli",
                "ocilayout.signature.image")),
    ("ocilayout.transports", "ocilayout.signature.image"),
    ("ocilayout.transports", "ocilayout.copy"),
    ("ocilayout.transports", "ocilayout.plan"),
    ("ocilayout.transports", "ocilayout.edit"),
    ("ocilayout.transports", "ocilayout.sync"),
    ("ocilayout.referrers", "ocilayout.transports.registry"),
    ("ocilayout.edit", "ocilayout.cli"),
    ("ocilayout.inspect", "ocilayout.copy"),
    ("ocilayout.graph", "ocilayout.transports"),
    ("ocilayout.store", "ocilayout.transports"),
    ("ocilayout.tarfs", "ocilayout.store"),
]


def test_no_upward_imports() -> None:
    """A layering check in the spirit of crane's depcheck: nothing imports the CLI, formats never import
    transports or the copy engine, transports never import what orchestrates them."""
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        mod = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        for imp in _imports(path):
            if not mod.startswith(("ocilayout.cli", "ocilayout.__main__")) and imp.startswith("ocilayout.cli"):
                bad.append(f"{mod} -> {imp}")
            for importer, forbidden in RULES:
                if (mod == importer or mod.startswith(importer + ".")) and imp.startswith(forbidden):
                    bad.append(f"{mod} -> {imp}")
    assert not bad, bad


def test_the_layering_check_sees_lazy_imports(tmp_path: Path) -> None:
    """The check must catch an import inside a function (that is how the old cycle hid)."""
    f = PKG / "signature" / "storage.py"
    assert any(i.startswith("ocilayout.store") for i in _imports(f))
    fake = PKG / "signature" / "_layering_probe.py"
    fake.write_text("def f():\n    from ..transports import open_source\n")
    try:
        assert "ocilayout.transports" in _imports(fake)
    finally:
        fake.unlink()
