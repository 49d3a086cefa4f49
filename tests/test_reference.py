"""References: skopeo's grammar, round trips, and paths with colons."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ocilayout.errors import InvalidReference
from ocilayout.reference import ImageReference, parse_reference

D = "sha256:" + "c" * 64


@pytest.mark.parametrize("text,transport,path,ref,digest", [
    ("oci:/x/y", "oci", "/x/y", None, None),
    ("oci:/x/y:latest", "oci", "/x/y", "latest", None),
    ("oci:rel/dir:v1.2_3", "oci", "rel/dir", "v1.2_3", None),
    ("oci:/x:docker.io/library/foo:1.0", "oci", "/x", "docker.io/library/foo:1.0", None),
    (f"oci:/x@{D}", "oci", "/x", None, D),
    ("oci-archive:/tmp/a.tar:t", "oci-archive", "/tmp/a.tar", "t", None),
    (f"oci-archive:a.tar@{D}", "oci-archive", "a.tar", None, D),
    ("oci:[/a:b]:t", "oci", "/a:b", "t", None),
    ("oci:[/a:b]", "oci", "/a:b", None, None),
    ("docker://quay.io/foo/bar:1", "docker", "quay.io/foo/bar", "1", None),
    ("docker://localhost:5000/foo", "docker", "localhost:5000/foo", None, None),
    ("dir:/some/dir", "dir", "/some/dir", None, None),
])
def test_parse(text: str, transport: str, path: str, ref: str | None, digest: str | None) -> None:
    r = parse_reference(text)
    assert (r.transport, r.path, r.ref, str(r.digest) if r.digest else None) == (transport, path, ref, digest)
    assert parse_reference(str(r)) == r


@pytest.mark.parametrize("text", ["", "nope:/x", "oci:", "oci:/x:bad tag", "oci:/x:-lead", f"oci:/x@sha256:{'z' * 64}",
                                  "oci:[/x", "docker:/x", "docker://x/UPPER", "oci:/x:a..b/../c\x00"])
def test_invalid(text: str) -> None:
    with pytest.raises(InvalidReference):
        parse_reference(text)


def test_existing_path_with_colons(tmp_path: Path) -> None:
    d = tmp_path / "a:b"
    d.mkdir()
    assert parse_reference(f"oci:{d}") == ImageReference("oci", str(d))
    assert parse_reference(f"oci:{d}:tag") == ImageReference("oci", str(d), "tag")
    # skopeo would split at the first colon and use "a" as the path.
    assert parse_reference(f"oci:{d}:docker.io/x:1") == ImageReference("oci", str(d), "docker.io/x:1")


@given(st.from_regex(r"[a-z0-9/_.-]{1,20}", fullmatch=True),
       st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,14}[A-Za-z0-9])?", fullmatch=True))
def test_round_trip_property(path: str, tag: str) -> None:
    r = ImageReference("oci", "/" + path, tag)
    assert parse_reference(str(r)) == r
