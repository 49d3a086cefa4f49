"""ocilayout sync against the real docker-registry (plain HTTP on loopback), read back by skopeo 1.9.3.

Every test pushes its own small images (distinct content per tag) into its own repositories of the session
registry, syncs them with the CLI in-process, and checks what landed with the registry's own API, skopeo, or
the layout (the autouse fixture fscks every layout a test leaves).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from conftest import Registry, assert_fsck

from ocilayout.copy import copy
from ocilayout.registry.options import RegistryOptions, use_options
from ocilayout.sample import make_image
from ocilayout.semver import parse_constraint, parse_version
from ocilayout.store import LayoutStore

NO_TLS = "--src-tls-verify=false"
DEST_NO_TLS = "--dest-tls-verify=false"


def _prefix(tmp_path: Path) -> str:
    return f"s{hashlib.sha256(str(tmp_path).encode()).hexdigest()[:10]}"


def _push(registry: Registry, tmp_path: Path, images: dict[str, list[str]]) -> dict[str, str]:
    """Push one small distinct image per ``repo: [tags]`` (repos under this test's prefix); returns
    ``"repo:tag" -> manifest digest``."""
    layout = tmp_path / "pushed-src"
    store = LayoutStore.create(layout)
    digests: dict[str, str] = {}
    opts = RegistryOptions(tls_verify=False)
    for repo, tags in images.items():
        for tag in tags:
            name = f"{repo}-{tag}"
            desc = make_image(store, [{"id.txt": f"{_prefix(tmp_path)}/{repo}:{tag}\n".encode()}], tag=name)
            with use_options(opts, opts):
                copy(f"oci:{layout}:{name}", registry.ref(f"{_prefix(tmp_path)}/{repo}", tag))
            digests[f"{repo}:{tag}"] = str(desc.digest)
    return digests


def _refs(layout: Path) -> dict[str, str]:
    index = json.loads((layout / "index.json").read_text())
    return {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"] for m in index["manifests"]}


def _registry_digest(registry: Registry, repo: str, tag: str) -> str:
    accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"
    status, headers, _ = registry.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": accept})
    assert status == 200, (repo, tag, status)
    return headers["Docker-Content-Digest"]


def _yaml(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "sync.yaml"
    p.write_text(text)
    return p


# -- semver: Masterminds/semver v3's own test tables (constraints_test.go) ----------------------------------

SEMVER_CASES = [
    ("=2.0.0", "1.2.3", False), ("=2.0.0", "2.0.0", True), ("=2.0", "2.0.1", True), ("4.1", "4.1.0", True),
    ("!=4.1.0", "4.1.0", False), ("!=4.1.0", "4.1.1", True), ("!=4.1", "4.1.1", False),
    ("!=4.1", "5.1.0-alpha.1", False), ("!=4.1-alpha", "4.1.0", True), ("<11", "11.1.0", False),
    ("<1.1", "1.1.1", False), ("<=11", "11.2.3", True), ("<=1.1", "1.2.3", False), ("<=1.1", "1.1.1", True),
    (">0", "0", False), (">0", "0.0.1-alpha", False), (">0-0", "0.0.1-alpha", False),
    (">0.0.0-0", "0.0.0-alpha", True), (">1.2.3-alpha.1", "1.2.3-alpha.2", True), (">11", "11.1.0", False),
    (">11.1", "11.1.1", False), (">11.1", "11.2.1", True), (">=0", "0.0.1-alpha", False),
    (">=0-0", "0.0.1-alpha", True), (">=0.0.0-0", "3.4.5-beta.1", True), ("<0-z", "0.0.0-alpha", True),
    ("*", "1.2.3-alpha.1", False), ("*-0", "1.2.3-alpha.1", True), ("2.*", "3.4.5", False),
    ("2.1.*", "2.1.1", True), ("2.1.*", "2.2.1", False), ("2", "2.1.1", True), ("~1.2.3", "1.3.4", False),
    ("~1", "1.2.4", True), ("~1.2.3-beta.2", "1.2.4-beta.2", True), ("~1.2.3-beta.2", "1.3.4-beta.2", False),
    ("^1.2.3", "1.8.9", True), ("^1.2.3", "1.2.1", False), ("^1.2.0", "1.2.1-alpha.1", False),
    ("^1.2.0-alpha.0", "1.2.1-alpha.1", True), ("^1.2.0-alpha.2", "1.2.0-alpha.1", False),
    ("^0.2.3", "0.5.6", False), ("^0.0.3", "0.0.4", False), ("^0.0", "0.0.3", True), ("^0.0", "0.1.4", False),
    ("^0", "0.2.3", True), ("^0.2.3-beta.2", "0.2.4-beta.2", True), ("~0.0.0", "1.2.3", True),
    ("0.x.x", "1.2.3", False), ("^0.0.0", "1.2.3", False), ("1.x", "1.4", True),
    ("!=4.1-alpha", "4.1.1-alpha", False), ("!=4.x", "4.1.0", False), ("!=4.1.x", "4.2.0", True),
    ("!=4.2.x", "4.2.3", False), ("<1.x", "0.1.1", True), ("<1.1.x", "1.1.500", False),
    ("<1.1.x", "1.0.500", True), (">=1.1", "4.1.0-beta", False), ("<=1.1-a", "0.1.0-alpha", True),
    ("<=2.x", "3.0.0", False), ("<=1.1.x", "1.2.500", False), ("<=4.5", "3.7.0", True), ("<=4.5", "4.6.3", False),
    (">1.1, <2", "1.1.1", False), (">1.1, <2", "1.2.1", True), (">=1.1, <2, !=1.2.3", "1.2.3", False),
    (">1.1 <2", "1.2.1", True), (">=1.1    <2    !=1.2.3", "1.2.3", False),
    (">=1.1, <2, !=1.2.3 || > 3", "4.1.2", True), (">=1.1, <2, !=1.2.3 || > 3", "3.0.0", False),
    (">=1.1, <2, !=1.2.3 || >= 3", "3.0.0", True), ("> 1.1, <     2", "1.1.1", False),
    ("1.1 - 2", "1.1.1", True), ("1.5.0 - 4.5", "3.7.0", True), ("1.1-3", "4.3.2", False),
    ("^1.x", "1.1.1-beta1", False), ("^1.1.2-alpha", "1.2.1-beta1", True), ("^1.2.x-alpha", "1.1.1-beta1", False),
    ("~*", "2.1.1", True), ("~1.x", "2.1.1", False), ("~1.1", "1.1.1-alpha", False),
    ("~1.1-alpha", "1.1.1-beta", True), ("~1.1.1-beta", "1.1.1-alpha", False), ("~1.1.1-beta", "1.1.1", True),
    ("~1.3.6-alpha", "1.3.5-beta", False), ("~1.3.5-alpha", "1.3.5-beta", True), ("v1.2", "1.2.0", True),
]


@pytest.mark.parametrize(("constraint", "version", "expected"), SEMVER_CASES)
def test_semver_constraints_match_masterminds(constraint: str, version: str, expected: bool) -> None:
    v = parse_version(version)
    assert v is not None
    assert parse_constraint(constraint).check(v) is expected


@pytest.mark.parametrize("bad", ["foo", ">= bar", "BAR >= 1.2.3", "12.3.4.1234", "12.3.34~ 1.2.3", ""])
def test_semver_improper_constraints_are_refused(bad: str) -> None:
    from ocilayout.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="improper semver constraint"):
        parse_constraint(bad)


def test_semver_tags_that_are_no_version_never_match() -> None:
    c = parse_constraint(">= 1.0")
    assert [t for t in ["latest", "1.0", "v1.2.3", "1.2.3.4", "2.0.0-rc1", "01.2.3", "main"] if c.matches(t)] == \
        ["1.0", "v1.2.3", "01.2.3"]


# -- YAML into one oci: layout, into dir:, and back to a registry ---------------------------------------------

def test_yaml_into_one_oci_layout_then_back_into_a_registry(  # type: ignore[no-untyped-def]
        cli, skopeo, tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    digests = _push(registry, tmp_path, {"alpha": ["1.0.0", "1.1.0", "2.0.0-rc1", "latest"], "beta": ["v1", "v2"],
                                         "gamma": ["x"]})
    p = _prefix(tmp_path)
    config = _yaml(tmp_path, f"""
{registry.host}:
  tls-verify: false
  images:
    {p}/beta: []
    {p}/gamma:
      - x
  images-by-semver:
    {p}/alpha: ">= 1.1"
""")
    writes: list[Path] = []
    real = LayoutStore.update_index

    def counting(self: LayoutStore, *args: object, **kwargs: object) -> object:
        writes.append(self.root)
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(LayoutStore, "update_index", counting)
    bundle = tmp_path / "bundle"
    res = cli("sync", "--src", "yaml", "--dest", "oci", "-j", "3", config, bundle)
    assert res.exit_code == 0, res
    assert len(writes) == 1  # every image in one commit: one index.json write
    want = {f"{registry.host}/{p}/alpha:1.1.0": digests["alpha:1.1.0"],  # 2.0.0-rc1 is a prerelease: no match
            f"{registry.host}/{p}/beta:v1": digests["beta:v1"], f"{registry.host}/{p}/beta:v2": digests["beta:v2"],
            f"{registry.host}/{p}/gamma:x": digests["gamma:x"]}
    assert _refs(bundle) == want
    assert "Synced 4 images from 3 sources" in res.stderr
    assert_fsck(bundle)
    skopeo("inspect", f"oci:{bundle}:{registry.host}/{p}/beta:v2")  # skopeo reads the bundle by full reference

    # ... and back into the registry: one repository per image, under a new namespace, read by skopeo.
    res = cli("sync", "--src", "oci", "--dest", "docker", DEST_NO_TLS, bundle, f"{registry.host}/{p}/back")
    assert res.exit_code == 0, res
    for name, tag in [("alpha", "1.1.0"), ("beta", "v1"), ("beta", "v2"), ("gamma", "x")]:
        assert _registry_digest(registry, f"{p}/back/{name}", tag) == digests[f"{name}:{tag}"]
    out = tmp_path / "skopeo-pulled"
    skopeo("copy", "--src-tls-verify=false", f"docker://{registry.host}/{p}/back/beta:v2", f"oci:{out}:v2")
    assert _refs(out) == {"v2": digests["beta:v2"]}


def test_yaml_into_dir_then_back_into_a_registry(cli, skopeo, tmp_path: Path, registry: Registry) -> None:  # type: ignore[no-untyped-def]
    digests = _push(registry, tmp_path, {"alpha": ["1.0.0", "1.1.0"], "beta": ["v1", "v2", "w1"]})
    p = _prefix(tmp_path)
    config = _yaml(tmp_path, f"""
{registry.host}:
  tls-verify: false
  images:
    {p}/alpha:
      - "1.0.0"
      - "{digests['alpha:1.1.0']}"
  images-by-tag-regex:
    {p}/beta: ^v[0-9]+$
""")
    out = tmp_path / "usb"
    out.mkdir()
    res = cli("sync", "--src", "yaml", "--dest", "dir", "--scoped", config, out)
    assert res.exit_code == 0, res
    base = out / registry.host / p
    made = sorted(str(d.relative_to(out)) for d in out.rglob("manifest.json"))
    assert made == sorted(str((base / n / "manifest.json").relative_to(out))
                          for n in ["alpha:1.0.0", f"alpha@{digests['alpha:1.1.0']}", "beta:v1", "beta:v2"])
    got = json.loads(skopeo("inspect", f"dir:{base / 'beta:v2'}").stdout)
    assert got["Digest"] == digests["beta:v2"]

    res = cli("sync", "--src", "dir", "--dest", "docker", DEST_NO_TLS, out / registry.host,
              f"{registry.host}/{p}/again")
    assert res.exit_code == 0, res
    assert _registry_digest(registry, f"{p}/again/beta", "v1") == digests["beta:v1"]  # not scoped: base names
    # The image read by digest went up by digest, untagged.
    assert _registry_digest(registry, f"{p}/again/alpha", digests["alpha:1.1.0"]) == digests["alpha:1.1.0"]
    assert registry.tags(f"{p}/again/alpha") == ["1.0.0"]
    got = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{registry.host}/{p}/again/alpha:1.0.0").stdout)
    assert got["Digest"] == digests["alpha:1.0.0"]


def test_docker_repo_every_tag_into_dir_as_skopeo_names_them(cli, skopeo, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                             registry: Registry) -> None:
    digests = _push(registry, tmp_path, {"app": ["a", "b"]})
    p = _prefix(tmp_path)
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir()
    theirs.mkdir()
    res = cli("sync", "--src", "docker", "--dest", "dir", NO_TLS, f"{registry.host}/{p}/app", ours)
    assert res.exit_code == 0, res
    skopeo("sync", "--src", "docker", "--dest", "dir", "--src-tls-verify=false", f"{registry.host}/{p}/app",
           str(theirs))
    assert sorted(os.listdir(ours)) == sorted(os.listdir(theirs)) == ["app:a", "app:b"]
    again = cli("sync", "--src", "docker", "--dest", "dir", NO_TLS, f"{registry.host}/{p}/app", ours)
    assert again.exit_code == 0 and "(0 blobs copied)" in again.stderr, again  # skopeo refuses this re-run
    assert skopeo("sync", "--src", "docker", "--dest", "dir", "--src-tls-verify=false", f"{registry.host}/{p}/app",
                  str(theirs), check=False).returncode != 0
    for tag in ("a", "b"):
        assert json.loads(skopeo("inspect", f"dir:{ours}/app:{tag}").stdout)["Digest"] == digests[f"app:{tag}"]
        assert (ours / f"app:{tag}" / "manifest.json").read_bytes() == \
            (theirs / f"app:{tag}" / "manifest.json").read_bytes()
    one = tmp_path / "one"
    one.mkdir()
    res = cli("sync", "--src", "docker", "--dest", "dir", "--scoped", "--append-suffix", "-mirror", NO_TLS,
              f"{registry.host}/{p}/app:b", one)
    assert res.exit_code == 0, res
    assert [str(d.relative_to(one)) for d in sorted(one.rglob("manifest.json"))] == \
        [f"{registry.host}/{p}/app:b-mirror/manifest.json"]


# -- idempotence, dry run, digest file, keep-going ------------------------------------------------------------

def test_a_rerun_transfers_no_blob(cli, tmp_path: Path, registry: Registry) -> None:  # type: ignore[no-untyped-def]
    from test_registry import FaultProxy

    _push(registry, tmp_path, {"app": ["1", "2", "3"]})
    p = _prefix(tmp_path)
    proxy = FaultProxy(registry, lambda m, path, n: None)
    bundle = tmp_path / "bundle"
    try:
        res = cli("sync", "--src", "docker", "--dest", "oci", NO_TLS, f"{proxy.host}/{p}/app", bundle)
        assert res.exit_code == 0 and "(6 blobs copied)" in res.stderr, res  # 3 images x (config + layer)
        first = [path for m, path, _ in proxy.seen if m == "GET" and "/blobs/" in path]
        assert len(first) == 6
        # One /v2/ ping for the listing and all three images (registry.client.shared_probes), and no HEAD of
        # a source blob: the verified manifests give their sizes (RegistrySource.stat_blob).
        assert [path for m, path, _ in proxy.seen if path == "/v2/"] == ["/v2/"]
        assert [path for m, path, _ in proxy.seen if m == "HEAD"] == []
        before = (bundle / "index.json").read_bytes()
        proxy.seen.clear()
        res = cli("sync", "--src", "docker", "--dest", "oci", NO_TLS, f"{proxy.host}/{p}/app", bundle)
        assert res.exit_code == 0 and "(0 blobs copied)" in res.stderr, res
        assert [path for m, path, _ in proxy.seen if m == "GET" and "/blobs/" in path] == []
        assert (bundle / "index.json").read_bytes() == before
    finally:
        proxy.close()
    # Into a registry the same: every blob HEADs as present.
    res = cli("sync", "--src", "oci", "--dest", "docker", DEST_NO_TLS, bundle, f"{registry.host}/{p}/copy")
    assert res.exit_code == 0 and "(6 blobs copied)" in res.stderr, res
    res = cli("sync", "--src", "oci", "--dest", "docker", DEST_NO_TLS, bundle, f"{registry.host}/{p}/copy")
    assert res.exit_code == 0 and "(0 blobs copied)" in res.stderr, res


def test_parallel_images_give_the_same_bundle_as_one_at_a_time(cli, tmp_path: Path, registry: Registry) -> None:  # type: ignore[no-untyped-def]
    _push(registry, tmp_path, {"app": [f"t{i}" for i in range(6)]})
    p = _prefix(tmp_path)
    for jobs in ("1", "6"):
        res = cli("sync", "--src", "docker", "--dest", "oci", "-j", jobs, NO_TLS, f"{registry.host}/{p}/app",
                  tmp_path / f"j{jobs}")
        assert res.exit_code == 0, res
    assert (tmp_path / "j1" / "index.json").read_bytes() == (tmp_path / "j6" / "index.json").read_bytes()
    assert len(_refs(tmp_path / "j6")) == 6


def test_dry_run_writes_nothing(cli, tmp_path: Path, registry: Registry) -> None:  # type: ignore[no-untyped-def]
    _push(registry, tmp_path, {"app": ["a", "b"]})
    p = _prefix(tmp_path)
    for dest in ("oci", "dir"):
        target = tmp_path / f"never-{dest}"
        res = cli("sync", "--src", "docker", "--dest", dest, "--dry-run", "--digestfile", tmp_path / "digests",
                  NO_TLS, f"{registry.host}/{p}/app", target)
        assert res.exit_code == 0, res
        assert not target.exists() and not (tmp_path / "digests").exists()
        assert "Would have synced 2 images from 1 sources" in res.stderr
        lines = sorted(res.stdout.splitlines())  # in the registry's tag order
        want = f"oci:{target}:{registry.host}/{p}/app:a" if dest == "oci" else f"dir:{target}/app:a"
        assert lines[0] == f"docker://{registry.host}/{p}/app:a {want}"
        assert len(lines) == 2


def test_digestfile_lists_digest_and_destination(cli, tmp_path: Path, registry: Registry) -> None:  # type: ignore[no-untyped-def]
    digests = _push(registry, tmp_path, {"app": ["a", "b"]})
    p = _prefix(tmp_path)
    bundle = tmp_path / "bundle"
    res = cli("sync", "--src", "docker", "--dest", "oci", "--digestfile", tmp_path / "d", NO_TLS,
              f"{registry.host}/{p}/app", bundle)
    assert res.exit_code == 0, res
    text = (tmp_path / "d").read_text()
    assert text.endswith("\n") and text.count("\n") == 2
    assert dict(reversed(line.split(" ")) for line in text.splitlines()) == {  # in the registry's tag order
        f"oci:{bundle}:{registry.host}/{p}/app:a": digests["app:a"],
        f"oci:{bundle}:{registry.host}/{p}/app:b": digests["app:b"]}


def test_keep_going_past_a_bad_image(cli, tmp_path: Path, registry: Registry) -> None:  # type: ignore[no-untyped-def]
    digests = _push(registry, tmp_path, {"app": ["a", "b"]})
    p = _prefix(tmp_path)
    config = _yaml(tmp_path, f"""
{registry.host}:
  tls-verify: false
  images:
    {p}/app: [a, missing, b]
""")
    bundle = tmp_path / "bundle"
    res = cli("sync", "--src", "yaml", "--dest", "oci", config, bundle)  # without --keep-going: nothing committed
    assert res.exit_code == 3, res
    assert res.stderr.count("\n") == 1 and f"{p}/app:missing" in res.stderr, res
    assert not (bundle / "index.json").exists() or _refs(bundle) == {}
    res = cli("sync", "--src", "yaml", "--dest", "oci", "--keep-going", "--digestfile", tmp_path / "d", config, bundle)
    assert res.exit_code == 3, res
    assert "sync failed for 1 of 3 images" in res.stderr.splitlines()[-1]
    assert f"error: docker://{registry.host}/{p}/app:missing:" in res.stderr
    assert _refs(bundle) == {f"{registry.host}/{p}/app:a": digests["app:a"],
                             f"{registry.host}/{p}/app:b": digests["app:b"]}
    assert len((tmp_path / "d").read_text().splitlines()) == 2


def test_keep_going_into_dir_removes_only_the_failed_images_new_directories(  # type: ignore[no-untyped-def]
        cli, tmp_path: Path, registry: Registry) -> None:
    """--scoped into dir: makes parent directories per image; a failed image's (empty) ones go when the sync
    ends, never while another image may be writing into them."""
    _push(registry, tmp_path, {"app": ["a"]})
    p = _prefix(tmp_path)
    config = _yaml(tmp_path, f"""
{registry.host}:
  tls-verify: false
  images:
    {p}/app: [a]
    {p}/deep/gone: [x]
""")
    out = tmp_path / "usb"
    out.mkdir()
    res = cli("sync", "--src", "yaml", "--dest", "dir", "--scoped", "--keep-going", "-j", "2", config, out)
    assert res.exit_code == 3, res
    base = out / registry.host / p
    assert (base / "app:a" / "manifest.json").is_file()
    assert not (base / "deep").exists()  # the parent only the failed image made is gone again
    assert sorted(x.name for x in base.iterdir()) == ["app:a"]


def test_retry_times_retries_a_registry_failure(cli, tmp_path: Path, registry: Registry) -> None:  # type: ignore[no-untyped-def]
    from test_registry import FaultProxy

    digests = _push(registry, tmp_path, {"app": ["a"]})
    p = _prefix(tmp_path)
    # The client itself tries a request 5 times; the 6th GET of the manifest gets through.
    proxy = FaultProxy(registry, lambda m, path, n: ("status", 503) if "/manifests/a" in path and n <= 5 else None)
    try:
        res = cli("sync", "--src", "docker", "--dest", "oci", NO_TLS, f"{proxy.host}/{p}/app:a", tmp_path / "no")
        assert res.exit_code == 7, res
        proxy.counts.clear()
        res = cli("sync", "--src", "docker", "--dest", "oci", NO_TLS, "--retry-times", "1", "--retry-delay", "10ms",
                  f"{proxy.host}/{p}/app:a", tmp_path / "yes")
        assert res.exit_code == 0, res
    finally:
        proxy.close()
    assert _refs(tmp_path / "yes") == {f"{proxy.host}/{p}/app:a": digests["app:a"]}


# -- bad input: one line, exit 2, nothing written --------------------------------------------------------------

@pytest.mark.parametrize(("text", "message"), [
    ("reg.example:\n  images: [unclosed\n", "not valid YAML at line"),
    ("reg.example:\n  imagez:\n    app: []\n", "unknown key 'imagez'"),
    ("reg.example:\n  images-by-tag-regex:\n    app: '(['\n", "bad regular expression"),
    ("reg.example:\n  images-by-semver:\n    app: '>= one'\n", "improper semver constraint"),
    ("reg.example:\n  images:\n    App: []\n", "not a valid repository name"),
    ("reg.example:\n  images:\n    app: ['bad tag!']\n", "neither a tag nor a digest"),
    ("reg.example:\n  tls-verify: maybe\n", "tls-verify must be true or false"),
    ("reg.example:\n  credentials: {user: x}\n", "credentials: unknown key 'user'"),
    ("- just a list\n", "must be a mapping"),
])
def test_bad_yaml_is_one_line_exit_2(cli, tmp_path: Path, text: str, message: str) -> None:  # type: ignore[no-untyped-def]
    config = _yaml(tmp_path, text)
    res = cli("sync", "--src", "yaml", "--dest", "oci", config, tmp_path / "out")
    assert res.exit_code == 2, res
    assert message in res.stderr and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr, res
    assert not (tmp_path / "out").exists()


def test_bad_kinds_and_dir_to_dir_are_refused(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for args, message in [(["--src", "ftp", "--dest", "oci"], "not a valid source transport"),
                          (["--src", "oci", "--dest", "oci-archive"], "not a valid destination transport"),
                          (["--src", "dir", "--dest", "dir"], "consider using rsync"),
                          (["--src", "oci", "--dest", "oci", "-f", "v2s1"], "--format 'v2s1'"),
                          (["--src", "oci", "--dest", "oci", "--retry-delay", "soon"], "not a duration")]:
        res = cli("sync", *args, tmp_path / "src", tmp_path / "dst")
        assert res.exit_code == 2 and message in res.stderr, (args, res)
    assert not (tmp_path / "dst").exists()


def test_two_images_with_one_name_are_a_conflict(cli, tmp_path: Path, registry: Registry) -> None:  # type: ignore[no-untyped-def]
    _push(registry, tmp_path, {"one/app": ["v1"], "two/app": ["v1"]})
    p = _prefix(tmp_path)
    config = _yaml(tmp_path, f"{registry.host}:\n  tls-verify: false\n  images:\n    {p}/one/app: []\n"
                             f"    {p}/two/app: []\n")
    res = cli("sync", "--src", "yaml", "--dest", "dir", config, tmp_path / "out")
    assert res.exit_code == 6 and "use --scoped" in res.stderr, res
    assert not (tmp_path / "out").exists()
    res = cli("sync", "--src", "yaml", "--dest", "oci", config, tmp_path / "bundle")  # full names: no clash
    assert res.exit_code == 0, res
    assert len(_refs(tmp_path / "bundle")) == 2


def test_oci_source_syncs_every_tag_but_signature_tags(cli, sample: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                       registry: Registry) -> None:
    key, pw = tmp_path / "k", tmp_path / "pw"
    pw.write_text("secret\n")
    res = cli("generate-sigstore-key", "--output-prefix", key, "--passphrase-file", pw)
    assert res.exit_code == 0, res
    res = cli("sign", f"oci:{sample}:v1", "--key", f"{key}.private", "--passphrase-file", pw,
              "--identity", "example.com/app:v1")
    assert res.exit_code == 0, res
    p = _prefix(tmp_path)
    res = cli("sync", "--src", "oci", "--dest", "docker", DEST_NO_TLS, "--all", sample, f"{registry.host}/{p}")
    assert res.exit_code == 0, res
    # skopeo's naming: an oci: ref name becomes the last path component (the repository), tag latest.
    assert registry.tags(f"{p}/multi") == ["latest"]
    assert any(t.endswith(".sig") for t in registry.tags(f"{p}/v1"))  # the signature travelled with its image
    assert not any(name.endswith(".sig") for name in os.listdir(registry.storage / "docker/registry/v2/repositories"
                                                                / p))


def test_yaml_registry_settings_override_the_command_line(tmp_path: Path) -> None:
    """skopeo 1.22: tls-verify only when given, credentials only when set, cert-dir always (replacing
    --src-cert-dir). Explicit tags need no listing, so nothing is contacted."""
    from ocilayout.sync import SyncOptions, plan_sync

    config = _yaml(tmp_path, """
a.example:
  images: {app: [v1]}
b.example:
  tls-verify: yes
  credentials: {username: bob, password: pw}
  images: {app: [1.10, no]}
""")
    base = RegistryOptions(tls_verify=False, creds="cli:pw")
    plan = plan_sync("yaml", str(config), "oci", str(tmp_path / "out"), SyncOptions(source_registry=base))
    a, b, c = plan.images
    assert (str(a.source), a.name) == ("docker://a.example/app:v1", "a.example/app:v1")
    assert (str(b.source), b.name) == ("docker://b.example/app:1.10", "b.example/app:1.10")  # "1.10", not 1.1
    assert str(c.source) == "docker://b.example/app:no"  # a tag, not the boolean false
    assert a.registry is not None and b.registry is not None
    assert (a.registry.tls_verify, a.registry.creds) == (False, "cli:pw")
    assert (b.registry.tls_verify, b.registry.creds) == (True, "bob:pw")

    config.write_text("b.example:\n  cert-dir: /etc/b-certs\n  images: {app: [v1]}\n")
    (image,) = plan_sync("yaml", str(config), "oci", str(tmp_path / "out"), SyncOptions(source_registry=base)).images
    assert image.registry is not None and image.registry.cert_dir == "/etc/b-certs"


def test_sync_signs_every_image_with_a_sigstore_key(cli, tmp_path: Path, registry: Registry) -> None:  # type: ignore[no-untyped-def]
    _push(registry, tmp_path, {"app": ["a", "b"]})
    p = _prefix(tmp_path)
    key, pw = tmp_path / "k", tmp_path / "pw"
    pw.write_text("secret\n")
    assert cli("generate-sigstore-key", "--output-prefix", key, "--passphrase-file", pw).exit_code == 0
    bundle = tmp_path / "bundle"
    res = cli("sync", "--src", "docker", "--dest", "oci", NO_TLS, "--sign-by-sigstore-private-key",
              f"{key}.private", "--sign-passphrase-file", pw, f"{registry.host}/{p}/app", bundle)
    assert res.exit_code == 0, res
    for tag in ("a", "b"):
        res = cli("verify", f"oci:{bundle}:{registry.host}/{p}/app:{tag}", "--public-key", f"{key}.pub")
        assert res.exit_code == 0, res
    # Into a registry: each image is signed for its full destination reference.
    res = cli("sync", "--src", "docker", "--dest", "docker", NO_TLS, DEST_NO_TLS, "--sign-by-sigstore-private-key",
              f"{key}.private", "--sign-passphrase-file", pw, f"{registry.host}/{p}/app", f"{registry.host}/{p}/signed")
    assert res.exit_code == 0, res
    res = cli("copy", NO_TLS, f"docker://{registry.host}/{p}/signed/app:b", f"oci:{tmp_path}/back:b")
    assert res.exit_code == 0 and "1 signatures carried" in res.stderr, res
    res = cli("verify", f"oci:{tmp_path}/back:b", "--public-key", f"{key}.pub", "--identity",
              f"{registry.host}/{p}/signed/app:b")
    assert res.exit_code == 0, res
    # dir: images have no docker reference to sign for: refused before anything is copied (skopeo fails too).
    res = cli("sync", "--src", "docker", "--dest", "dir", NO_TLS, "--sign-by-sigstore-private-key",
              f"{key}.private", "--sign-passphrase-file", pw, f"{registry.host}/{p}/app", tmp_path / "dirs")
    assert res.exit_code == 2 and "cannot sign dir: images" in res.stderr, res
    assert not (tmp_path / "dirs").exists()
    res = cli("sync", "--src", "docker", "--dest", "oci", NO_TLS, "--remove-signatures",
              f"{registry.host}/{p}/app", tmp_path / "plain")
    assert res.exit_code == 0, res
    assert not any(n.endswith(".sig") for n in _refs(tmp_path / "plain"))


def test_a_sync_reuses_its_listing_and_its_connections(cli, tmp_path: Path, registry: Registry) -> None:  # type: ignore[no-untyped-def]
    """Per image only the manifest and its blobs are fetched: the tag listing shows there is no cosign
    ``.sig`` tag and no referrers fallback tag to ask for, the referrers API is asked once per registry (a
    404 says the registry has none), and every request of the sync goes over one kept-alive connection
    (one pool per registry for the whole sync, not one per image)."""
    from test_registry import FaultProxy

    _push(registry, tmp_path, {"app": ["1", "2", "3"]})
    p = _prefix(tmp_path)
    proxy = FaultProxy(registry, lambda m, path, n: None)
    peers: set[tuple[str, int]] = set()
    handle = proxy.handle

    def counting(h, method: str) -> None:  # type: ignore[no-untyped-def]
        peers.add(h.client_address)
        handle(h, method)

    proxy.handle = counting  # type: ignore[method-assign]
    try:
        res = cli("sync", "--src", "docker", "--dest", "oci", "-j", "1", "--blob-jobs", "1", NO_TLS,
                  f"{proxy.host}/{p}/app", tmp_path / "bundle")
        assert res.exit_code == 0 and "(6 blobs copied)" in res.stderr, res
        manifests = [path.rsplit("/", 1)[1] for m, path, _ in proxy.seen if "/manifests/" in path]
        assert sorted(manifests) == ["1", "2", "3"]  # no sha256-<hex>.sig, no sha256-<hex> fallback tag
        assert len([path for m, path, _ in proxy.seen if "/referrers/" in path]) == 1
        assert len(proxy.seen) == 1 + 1 + 3 * 3 + 1  # ping, tag list, 3 x (manifest, config, layer), referrers
        assert len(peers) == 1, peers
    finally:
        proxy.close()
    assert len(_refs(tmp_path / "bundle")) == 3


def test_a_listed_signature_and_referrer_are_still_carried(cli, sample: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                           registry: Registry) -> None:
    """The listing only saves requests: a ``.sig`` tag and a referrers fallback tag it shows are read."""
    key, pw = tmp_path / "k", tmp_path / "pw"
    pw.write_text("secret\n")
    assert cli("generate-sigstore-key", "--output-prefix", key, "--passphrase-file", pw).exit_code == 0
    res = cli("sign", f"oci:{sample}:v1", "--key", f"{key}.private", "--passphrase-file", pw,
              "--identity", "example.com/app:v1")
    assert res.exit_code == 0, res
    sbom = tmp_path / "sbom.json"
    sbom.write_text('{"sbom": true}\n')
    assert cli("attach", f"oci:{sample}:v1", str(sbom), "--artifact-type", "application/x-sbom").exit_code == 0
    p = _prefix(tmp_path)
    res = cli("copy", DEST_NO_TLS, f"oci:{sample}:v1", registry.ref(f"{p}/app", "v1"))
    assert res.exit_code == 0 and "1 referrers carried" in res.stderr, res
    assert any(t.endswith(".sig") for t in registry.tags(f"{p}/app"))
    conf = tmp_path / "sync.yaml"  # listed (then filtered), so the listing is what the copy consults
    conf.write_text(f"{registry.host}:\n  tls-verify: false\n  images-by-tag-regex:\n    {p}/app: '^v1$'\n")
    res = cli("sync", "--src", "yaml", "--dest", "oci", conf, tmp_path / "bundle")
    assert res.exit_code == 0, res
    from ocilayout.transports import open_source

    with open_source(f"oci:{tmp_path}/bundle:{registry.host}/{p}/app:v1") as src:
        assert len(src.signatures(src.root.digest)) == 1
        assert [d.artifact_type for d in src.referrers(src.root.digest)] == ["application/x-sbom"]


def test_the_images_of_a_sync_share_one_blob_pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Blob threads are started once for the sync (a pool of max(jobs, blob jobs)), not once per image."""
    import threading

    from ocilayout.copy import CopyOptions
    from ocilayout.sync import SyncOptions, plan_sync, run_sync

    store = LayoutStore.create(tmp_path / "src")
    for i in range(6):
        make_image(store, [{"a.txt": f"{i}a\n".encode()}, {"b.txt": f"{i}b\n".encode()}], tag=f"t{i}")
    options = SyncOptions(jobs=2, copy=CopyOptions(jobs=4))
    plan = plan_sync("oci", str(tmp_path / "src"), "dir", str(tmp_path / "out"), options)
    started: list[str] = []
    start = threading.Thread.start

    def counting(self: threading.Thread) -> None:
        started.append(self.name)
        start(self)

    monkeypatch.setattr(threading.Thread, "start", counting)
    result = run_sync(plan, options)
    assert len(result.copied) == 6 and result.blobs_copied == 6 * 3
    assert len(started) <= 2 + 4, started  # 2 image workers, at most 4 blob workers (was 2 + 6 x 3)


def test_a_dir_commit_fsyncs_the_directory_once(tmp_path: Path, sample: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The target directory is fsynced after the renames that publish the image; the staging directory is
    not (its entries move into the target), and each file's data is fsynced before its rename."""
    import ocilayout.transports.dir as dirmod

    calls: list[str] = []
    real = dirmod.fsync_dir
    monkeypatch.setattr(dirmod, "fsync_dir", lambda p: (calls.append(os.path.basename(p)), real(p))[1])
    copy(f"oci:{sample}:v1", f"dir:{tmp_path}/img")
    assert calls == ["img"]
    assert (tmp_path / "img" / "manifest.json").is_file()


def test_parallel_images_may_make_the_same_parent_directories(tmp_path: Path) -> None:
    """Images of one sync run in parallel: two that share new parent directories (``--scoped`` into dir:)
    must not fail with "file exists" when the other made them first (it happened one run in ten)."""
    import shutil
    import threading

    from ocilayout.sync import _make_parents

    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def one(i: int) -> None:
        barrier.wait()
        try:
            _make_parents(tmp_path / "reg" / "ns" / "deep" / f"app{i}")
        except BaseException as err:
            errors.append(err)

    for _ in range(20):
        threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        shutil.rmtree(tmp_path / "reg")
