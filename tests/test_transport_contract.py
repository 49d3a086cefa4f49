"""One contract for every transport that can hold images, and a source x destination matrix.

Each transport in :data:`WRITABLE` gets every test here for free: add a row to ``REFS`` when a new
transport module lands (dir:, docker://). What a destination cannot hold is read from its
:class:`~ocilayout.transports.base.Capabilities`, never from its name: the sample is built with uncompressed
layers for a destination without gzip, an index is narrowed to one platform for one without indexes,
signatures are only put where they can be stored, and manifests compared byte for byte only where they are
stored verbatim (elsewhere the config and layers must be the same).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ocilayout.copy import CopyOptions, Selection, copy, copy_into
from ocilayout.descriptor import Descriptor, Platform
from ocilayout.digest import Digest
from ocilayout.errors import IntegrityError, NotFound, OcilayoutError, UnsupportedFormat
from ocilayout.manifest import Manifest, canonical_json
from ocilayout.sample import build_sample_layout
from ocilayout.signature.model import SIMPLESIGNING_MEDIA_TYPE, SigstoreSignature
from ocilayout.transports import open_destination, open_source
from ocilayout.transports.base import Capabilities, Source, read_blob_bytes

#: The session's loopback registry, set by :func:`_docker_rows` before a "docker" row runs.
_REGISTRY: list[Any] = []


def _docker_ref(d: Path, name: str) -> str:
    """A repository of its own per directory, in the session registry."""
    return f"docker://{_REGISTRY[0].host}/contract/{hashlib.sha256(str(d).encode()).hexdigest()[:16]}:{name}"


#: transport -> how to name an image called NAME at a fresh location under a directory.
REFS: dict[str, Callable[[Path, str], str]] = {
    "oci": lambda d, name: f"oci:{d}/layout:{name}",
    "oci-archive": lambda d, name: f"oci-archive:{d}/image.tar:{name}",
    "docker-archive": lambda d, name: f"docker-archive:{d}/image.tar:{name}",
    # the Docker 25+ form: the same transport with use_docker_archive_format("oci-hybrid") (see _formats)
    "docker-archive-oci": lambda d, name: f"docker-archive:{d}/image.tar:{name}",
    # one image per directory, no names: every NAME is the same location (a new copy replaces the old)
    "dir": lambda d, name: f"dir:{d}/dir-image",
    "docker": _docker_ref,
}
WRITABLE = sorted(REFS)
SIG = SigstoreSignature(SIMPLESIGNING_MEDIA_TYPE, b'{"critical":{}}', {"dev.cosignproject.cosign/signature": "AA=="})
AMD64 = Selection(platforms=(Platform("linux", "amd64"),))


def caps(kind: str, tmp_path: Path) -> Capabilities:
    """The capabilities of a ``kind`` destination (opened in a scratch directory and closed)."""
    scratch = tmp_path / f"caps-{kind}"
    scratch.mkdir(exist_ok=True)
    dst = open_destination(REFS[kind](scratch, "probe"))
    try:
        return dst.capabilities
    finally:
        dst.close()


def make_sample(tmp_path: Path, *kinds: str) -> Path:
    """The built-in sample, its layers uncompressed when one of ``kinds`` cannot store gzip."""
    plain = any("gzip" not in caps(k, tmp_path).layer_compressions for k in kinds)
    build_sample_layout(tmp_path / "sample", compression="none" if plain else "gzip")
    return tmp_path / "sample"


def whole(kind: str, tmp_path: Path) -> Selection:
    """All of an index where the destination can hold one, else the linux/amd64 image."""
    return Selection(all=True) if caps(kind, tmp_path).indexes else AMD64


def same_image(a: Source, b: Source, verbatim: bool) -> None:
    """``a`` and ``b`` hold the same image: the same manifest bytes when stored verbatim, else the same config
    and layers (a destination that does not store manifests makes its own)."""
    if verbatim:
        assert a.root.digest == b.root.digest and a.get_manifest().raw == b.get_manifest().raw
        return
    ma, mb = a.get_manifest(), b.get_manifest()
    assert ma.config.digest == mb.config.digest and [d.digest for d in ma.layers] == [d.digest for d in mb.layers]


@pytest.fixture(autouse=True)
def _docker_rows(request: pytest.FixtureRequest) -> None:
    """A "docker" row gets the session registry (real docker-registry on loopback, plain HTTP)."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and "docker" in callspec.params.values():
        _REGISTRY[:] = [request.getfixturevalue("registry")]
        request.getfixturevalue("insecure_registry_options")


@pytest.fixture(autouse=True)
def _formats(request: pytest.FixtureRequest) -> Iterator[None]:
    """A "docker-archive-oci" row writes the Docker 25+ form (for the whole test: in a matrix cell with
    both docker-archive rows, both sides are written in that form)."""
    from ocilayout.dockertar_oci import use_docker_archive_format

    callspec = getattr(request.node, "callspec", None)
    hybrid = callspec is not None and "docker-archive-oci" in callspec.params.values()
    with use_docker_archive_format("oci-hybrid" if hybrid else None):
        yield


def _location(ref: str) -> Path:
    return Path(ref.split(":", 1)[1].rsplit(":", 1)[0])


def _state(ref: str) -> object:
    if ref.startswith("docker://"):  # what a registry names: its tags (uploaded blobs name nothing)
        reg = _REGISTRY[0]
        repo = ref[len("docker://"):].split("/", 1)[1].rsplit(":", 1)[0]
        accept = {"Accept": "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"}
        return {t: reg.get(f"/v2/{repo}/manifests/{t}", headers=accept)[2] for t in reg.tags(repo)}
    p = _location(ref)
    if not p.exists():
        return None
    if p.is_file():
        return p.read_bytes()
    return sorted((str(f.relative_to(p)), f.read_bytes()) for f in p.rglob("*")
                  if f.is_file() and not f.name.startswith(".ocilayout"))


@pytest.mark.parametrize("kind", WRITABLE)
def test_round_trip_reads_back_every_byte(tmp_path: Path, kind: str) -> None:
    sample = make_sample(tmp_path, kind)
    ref = REFS[kind](tmp_path, "v1")
    res = copy(f"oci:{sample}:v1", ref)
    with open_source(ref) as src, open_source(f"oci:{sample}:v1") as orig:
        assert orig.root.digest == res.descriptor.digest
        same_image(src, orig, caps(kind, tmp_path).verbatim)
        m = src.get_manifest()
        for d in [m.config, *m.layers]:
            assert src.stat_blob(d.digest) == d.size
            assert read_blob_bytes(src, d, limit=1 << 30) == read_blob_bytes(orig, d, limit=1 << 30)


@pytest.mark.parametrize("kind", WRITABLE)
def test_nothing_is_visible_before_commit(tmp_path: Path, kind: str) -> None:
    sample = make_sample(tmp_path, kind)
    copy(f"oci:{sample}:v1", REFS[kind](tmp_path, "old"))
    before = _state(REFS[kind](tmp_path, "x"))
    with open_source(f"oci:{sample}:multi") as src:
        dst = open_destination(REFS[kind](tmp_path, "new"))
        try:
            res = copy_into(src, dst, CopyOptions(select=whole(kind, tmp_path)))
            if dst.capabilities.signatures:
                dst.put_signatures(res.descriptor.digest, [SIG])
        finally:
            dst.close()  # no commit
    assert _state(REFS[kind](tmp_path, "x")) == before


@pytest.mark.damages_layouts
@pytest.mark.parametrize("kind", WRITABLE)
def test_a_lying_opener_fails_and_keeps_nothing(tmp_path: Path, kind: str) -> None:
    sample = make_sample(tmp_path, kind)
    copy(f"oci:{sample}:v1", REFS[kind](tmp_path, "old"))
    before = _state(REFS[kind](tmp_path, "x"))
    data = b"what the descriptor promises"
    liar = Descriptor("application/octet-stream", Digest.of(data), len(data))
    dst = open_destination(REFS[kind](tmp_path, "new"))
    try:
        with pytest.raises(IntegrityError):
            dst.put_blob(lambda: io.BytesIO(b"something else entirely!!!!!"), liar, media_type=liar.media_type)
            dst.tag(liar, "new")
            dst.commit()  # a destination that defers the blob finds the lie here
    finally:
        dst.close()
    assert _state(REFS[kind](tmp_path, "x")) == before


@pytest.mark.parametrize("kind", WRITABLE)
def test_unknown_digest_is_hashed_by_the_destination(tmp_path: Path, kind: str) -> None:
    dst = open_destination(REFS[kind](tmp_path, "x"))
    try:
        got = dst.put_blob(lambda: io.BytesIO(b"new layer bytes"), None, media_type="application/x-test")
    finally:
        dst.close()
    assert got.digest == Digest.of(b"new layer bytes") and got.size == 15 and got.media_type == "application/x-test"


@pytest.mark.parametrize("kind", WRITABLE)
def test_several_names_and_signatures_in_one_commit(tmp_path: Path, kind: str) -> None:
    sample = make_sample(tmp_path, kind)
    dst = open_destination(REFS[kind](tmp_path, "a"))
    cap = dst.capabilities  # a one-image destination (dir:) gets the one-image and signature halves
    try:
        with open_source(f"oci:{sample}:v1") as one, open_source(f"oci:{sample}:multi") as two:
            r1 = copy_into(one, dst)
            if cap.multi_image:
                r2 = copy_into(two, dst, CopyOptions(select=whole(kind, tmp_path)), name="b")
            if cap.signatures:
                dst.put_signatures(r1.descriptor.digest, [SIG])
                dst.put_signatures(r1.descriptor.digest, [SIG])  # an exact duplicate is stored once
        dst.commit()
    finally:
        dst.close()
    with open_source(REFS[kind](tmp_path, "a")) as src, open_source(f"oci:{sample}:v1") as orig:
        same_image(src, orig, cap.verbatim)
        if cap.signatures:
            assert list(src.signatures(src.root.digest)) == [SIG]
    if not cap.multi_image:
        return
    with open_source(REFS[kind](tmp_path, "b")) as src:
        if cap.indexes:
            assert src.root.digest == r2.descriptor.digest and src.get_manifest().is_index
        else:
            with open_source(f"oci:{sample}@{r2.descriptor.digest}") as child:
                same_image(src, child, cap.verbatim)


@pytest.mark.parametrize("kind", WRITABLE)
def test_image_name_is_kept_by_ref_name_destinations_and_ignored_by_others(tmp_path: Path, kind: str) -> None:
    """``tag(..., image_name=)``: a layout records it as io.containerd.image.name; the image reads back by it."""
    from ocilayout.refname import RefNaming

    sample = make_sample(tmp_path, kind)
    ref = REFS[kind](tmp_path, "1.0")
    if caps(kind, tmp_path).names != "ref-name":
        copy_into_ref = open_destination(ref)
        try:
            with open_source(f"oci:{sample}:v1") as src, open_source(f"oci:{sample}:v1") as orig:
                copy_into(src, copy_into_ref, image_name="example.com/app:1.0")  # accepted, not kept
                copy_into_ref.commit()
                with open_source(ref) as back:
                    same_image(back, orig, caps(kind, tmp_path).verbatim)
        finally:
            copy_into_ref.close()
        return
    copy(f"oci:{sample}:v1", ref, CopyOptions(naming=RefNaming("tag", "example.com/app")))
    named = ref.rsplit(":", 1)[0] + ":example.com/app:1.0"
    with open_source(ref) as by_tag, open_source(named) as by_full:
        assert by_tag.root.digest == by_full.root.digest
        assert by_full.root.annotations["io.containerd.image.name"] == "example.com/app:1.0"


@pytest.mark.parametrize("kind", WRITABLE)
def test_tag_replaces_drops_the_untagged_entry_or_is_ignored(tmp_path: Path, kind: str) -> None:
    """``tag(..., replaces=OLD)`` (an in-place edit of an unnamed image): a destination holding untagged
    entries beside others (multi_image, ref-name) drops OLD's untagged entry in the same commit and keeps the
    rest; every other destination accepts it and writes the image as without it."""
    sample = make_sample(tmp_path, kind)
    cap = caps(kind, tmp_path)
    if not (cap.multi_image and cap.names == "ref-name"):
        dst = open_destination(REFS[kind](tmp_path, "1.0"))
        try:
            with open_source(f"oci:{sample}:v1") as src:
                copy_into(src, dst, CopyOptions(select=whole(kind, tmp_path)), replaces=src.root.digest)
            dst.commit()
        finally:
            dst.close()
        with open_source(REFS[kind](tmp_path, "1.0")) as back, open_source(f"oci:{sample}:v1") as orig:
            same_image(back, orig, cap.verbatim)
        return
    ref = REFS[kind](tmp_path, "1.0")
    unnamed = ref.rsplit(":", 1)[0]
    copy(f"oci:{sample}:v1", ref)  # a named image that must survive
    with open_source(f"oci:{sample}:v1") as v1, open_source(f"oci:{sample}:multi") as multi:
        old, new = v1.root.digest, multi.root.digest
        for src, replaces in ((v1, None), (multi, old)):
            dst = open_destination(unnamed)
            try:
                copy_into(src, dst, CopyOptions(select=Selection(all=True)), name=None, replaces=replaces)
                dst.commit()
            finally:
                dst.close()
    from ocilayout.transports import transport

    loc = open_destination(unnamed).ref
    with transport(loc.transport).open_reader(loc) as reader:
        entries = [(e.name, e.descriptor.digest) for e in reader.entries() if e.descriptor is not None]
    assert entries == [("1.0", old), (None, new)]


@pytest.mark.parametrize("kind", WRITABLE)
def test_referrers_are_kept_with_the_image_or_refused(tmp_path: Path, kind: str) -> None:
    """A destination whose capabilities say it keeps referrers lists them for their subject after commit
    (a duplicate once); any other refuses put_referrers with UnsupportedFormat."""
    from ocilayout.edit.attach import EMPTY_CONFIG, EMPTY_JSON
    from ocilayout.referrers import referrer_descriptor

    sample = make_sample(tmp_path, kind)
    ref = REFS[kind](tmp_path, "v1")
    dst = open_destination(ref)
    try:
        with open_source(f"oci:{sample}:v1") as src:
            subject = copy_into(src, dst).descriptor
        art = Manifest.parse(canonical_json({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/example", "config": EMPTY_CONFIG.to_dict(), "layers": [],
            "subject": Descriptor(subject.media_type, subject.digest, subject.size).to_dict()}))
        desc = referrer_descriptor(art)
        if not dst.capabilities.referrers:
            with pytest.raises(UnsupportedFormat):
                dst.put_referrers(subject.digest, [desc])
            return
        dst.put_blob(lambda: io.BytesIO(EMPTY_JSON), EMPTY_CONFIG, media_type=EMPTY_CONFIG.media_type)
        dst.put_manifest(art)
        dst.put_referrers(subject.digest, [desc])
        dst.put_referrers(subject.digest, [desc])
        dst.commit()
    finally:
        dst.close()
    with open_source(ref) as src:
        assert list(src.referrers(subject.digest)) == [desc]
        assert src.get_manifest(desc).raw == art.raw


@pytest.mark.parametrize("kind", WRITABLE)
def test_recopy_skips_what_is_there(tmp_path: Path, kind: str) -> None:
    sample = make_sample(tmp_path, kind)
    first = copy(f"oci:{sample}:v1", REFS[kind](tmp_path, "v1"))
    again = copy(f"oci:{sample}:v1", REFS[kind](tmp_path, "v1"))
    assert first.blobs_copied > 0 and again.blobs_copied == 0 and again.blobs_skipped == first.blobs_copied


@pytest.mark.parametrize("kind", WRITABLE)
def test_missing_image_is_not_found(tmp_path: Path, kind: str) -> None:
    with pytest.raises(OcilayoutError) as info:
        open_source(REFS[kind](tmp_path, "nope"))
    assert isinstance(info.value, NotFound)


# -- the matrix -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["v1", "multi"])
@pytest.mark.parametrize("dst_kind", WRITABLE)
@pytest.mark.parametrize("src_kind", WRITABLE)
def test_matrix(tmp_path: Path, src_kind: str, dst_kind: str, which: str) -> None:
    """Every source transport into every destination transport, single image and whole index (one platform
    where a side cannot hold an index); the image is unchanged (the same manifest bytes where the destination
    stores them verbatim) and reads back (the fsck oracle checks every layout and archive after)."""
    sample = make_sample(tmp_path, src_kind, dst_kind)
    both_index = caps(src_kind, tmp_path).indexes and caps(dst_kind, tmp_path).indexes
    select = Selection(all=True) if both_index else AMD64
    src_ref = REFS[src_kind](tmp_path / "src", which)
    (tmp_path / "src").mkdir()
    copy(f"oci:{sample}:{which}", src_ref, CopyOptions(select=select))
    dst_ref = REFS[dst_kind](tmp_path / "dst", which)
    (tmp_path / "dst").mkdir()
    res = copy(src_ref, dst_ref, CopyOptions(select=select))
    with open_source(src_ref) as a, open_source(dst_ref) as b:
        assert a.root.digest == res.descriptor.digest
        same_image(a, b, caps(dst_kind, tmp_path).verbatim)
