"""OCI 1.1 referrers: the transport-neutral index logic (ocilayout.referrers) and docker:// against the real
docker-registry (distribution 2.8 has no referrers API: the ``sha256-<hex>`` tag fallback is used both when
pushing a manifest with a ``subject`` and when listing)."""

from __future__ import annotations

import hashlib
import http.client
import http.server
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Registry, serve_http

from ocilayout import mediatypes as mt
from ocilayout.descriptor import Descriptor
from ocilayout.digest import Digest
from ocilayout.errors import UnsupportedFormat
from ocilayout.manifest import Manifest, canonical_json
from ocilayout.referrers import add_to_index, fallback_tag, list_referrers, parse_index, referrer_descriptor, select
from ocilayout.registry.options import RegistryOptions, use_options
from ocilayout.store import LayoutStore
from ocilayout.transports import open_source
from ocilayout.transports.registry import RegistrySource

NO_TLS = "--tls-verify=false"
SBOM = "application/vnd.example.sbom.v1"
SIG = "application/vnd.example.signature.v1"


def _repo(tmp_path: Path) -> str:
    return f"r{hashlib.sha256(str(tmp_path).encode()).hexdigest()[:12]}/app"


def _artifact(subject: Descriptor, artifact_type: str | None, payload: bytes, **annotations: str) -> Manifest:
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST}
    if artifact_type:
        doc["artifactType"] = artifact_type
    doc["config"] = {"mediaType": mt.OCI_EMPTY, "digest": str(Digest.of(b"{}")), "size": 2}
    doc["layers"] = [{"mediaType": "application/octet-stream", "digest": str(Digest.of(payload)),
                      "size": len(payload)}]
    doc["subject"] = {"mediaType": subject.media_type, "digest": str(subject.digest), "size": subject.size}
    if annotations:
        doc["annotations"] = annotations
    return Manifest.parse(canonical_json(doc))


def _subject() -> Descriptor:
    return Descriptor(media_type=mt.OCI_MANIFEST, digest=Digest.of(b"image"), size=5)


# -- the shared index logic ------------------------------------------------------------------------------

def test_fallback_tag_schema() -> None:
    d = Digest.parse("sha256:" + "ab" * 32)
    assert fallback_tag(d) == "sha256-" + "ab" * 32
    long = Digest.parse("sha512:" + "cd" * 64)
    assert fallback_tag(long) == "sha512-" + "cd" * 32  # the encoded part is cut to 64 characters


def test_referrer_descriptor_takes_artifact_type_then_config_type() -> None:
    m = _artifact(_subject(), SBOM, b"sbom", created="2024-01-01")
    d = referrer_descriptor(m)
    assert d.to_dict() == {"mediaType": mt.OCI_MANIFEST, "artifactType": SBOM, "digest": str(Digest.of(m.raw)),
                           "size": len(m.raw), "annotations": {"created": "2024-01-01"}}
    plain = _artifact(_subject(), None, b"x")
    assert referrer_descriptor(plain).artifact_type == mt.OCI_EMPTY  # no artifactType: the config's type


def test_add_to_index_keeps_entries_and_skips_known_ones() -> None:
    a = referrer_descriptor(_artifact(_subject(), SBOM, b"a"))
    b = referrer_descriptor(_artifact(_subject(), SIG, b"b"))
    first = add_to_index(None, [a])
    assert first is not None
    _, listed = parse_index(first)
    assert listed == [a]
    # an entry another tool wrote, with a field we do not model, survives byte for byte
    doc = json.loads(first)
    doc["manifests"][0]["x-other-tool"] = {"k": [1, 2]}
    second = add_to_index(json.dumps(doc).encode(), [b, a])
    assert second is not None
    again = json.loads(second)
    assert again["manifests"][0] == doc["manifests"][0] and len(again["manifests"]) == 2
    assert add_to_index(second, [a, b]) is None  # nothing new: nothing to write
    assert select(parse_index(second)[1], SIG) == [b]
    with pytest.raises(UnsupportedFormat):
        parse_index(canonical_json({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": {}}))


def test_a_transport_without_referrers_says_so(sample: Path) -> None:
    with pytest.raises(UnsupportedFormat, match="listing referrers is not supported"):
        list_referrers(f"oci-archive:{sample}.tar:v1")


# -- docker:// against the real registry ------------------------------------------------------------------

@pytest.fixture
def opts():  # type: ignore[no-untyped-def]
    o = RegistryOptions(tls_verify=False)
    with use_options(o, o):
        yield o


def _layout_with_artifacts(sample: Path, root: Path, arts: list[tuple[str, str | None, bytes]]) -> Descriptor:
    """A copy of the sample with artifacts (tag, artifactType, payload) whose subject is its v1 image."""
    import shutil

    shutil.copytree(sample, root)
    store = LayoutStore.open(root)
    subject = store.resolve("v1")
    store.put_bytes(b"{}", mt.OCI_EMPTY)
    for tag, atype, payload in arts:
        store.put_bytes(payload)
        m = _artifact(subject, atype, payload)
        store.set_ref(tag, store.put_manifest(m))
    return subject


@pytest.mark.interop
def test_pushing_referrers_fills_the_fallback_tag_and_listing_reads_it(  # type: ignore[no-untyped-def]
        cli, sample: Path, tmp_path: Path, registry: Registry) -> None:
    repo = _repo(tmp_path)
    subject = _layout_with_artifacts(sample, tmp_path / "art", [("sbom", SBOM, b"sbom"), ("sig", SIG, b"sig")])
    assert cli("copy", "--dest-tls-verify=false", f"oci:{sample}:v1", registry.ref(repo, "v1")).exit_code == 0
    res = cli("copy", "--dest-tls-verify=false", f"oci:{tmp_path}/art:sbom", registry.ref(repo, "sbom"))
    assert res.exit_code == 0, res
    tag = fallback_tag(subject.digest)
    assert tag in registry.tags(repo)
    status, headers, body = registry.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": mt.OCI_INDEX})
    assert status == 200 and headers["Content-Type"] == mt.OCI_INDEX
    _, listed = parse_index(body)
    assert [d.artifact_type for d in listed] == [SBOM]
    sbom_digest = str(LayoutStore.open(tmp_path / "art").resolve("sbom").digest)
    assert str(listed[0].digest) == sbom_digest

    res = cli("copy", "--dest-tls-verify=false", f"oci:{tmp_path}/art:sig", registry.ref(repo, "sig"))
    assert res.exit_code == 0, res
    _, _, body2 = registry.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": mt.OCI_INDEX})
    assert json.loads(body2)["manifests"][0] == json.loads(body)["manifests"][0]  # read-modify-write kept it
    out = cli("referrers", NO_TLS, registry.ref(repo, "v1"))
    assert out.exit_code == 0, out
    doc = json.loads(out.stdout)
    assert doc["mediaType"] == mt.OCI_INDEX and [m["artifactType"] for m in doc["manifests"]] == [SBOM, SIG]
    only = json.loads(cli("referrers", NO_TLS, "--artifact-type", SIG, registry.ref(repo, "v1")).stdout)
    assert [m["artifactType"] for m in only["manifests"]] == [SIG]
    by_digest = cli("referrers", NO_TLS, f"docker://{registry.host}/{repo}@{subject.digest}")
    assert json.loads(by_digest.stdout) == doc

    # pushing the same referrer again changes nothing
    res = cli("copy", "--dest-tls-verify=false", f"oci:{tmp_path}/art:sbom", registry.ref(repo, "sbom2"))
    assert res.exit_code == 0, res
    _, _, body3 = registry.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": mt.OCI_INDEX})
    assert body3 == body2


@pytest.mark.interop
def test_no_referrers_is_an_empty_index(cli, sample: Path, tmp_path: Path, registry: Registry) -> None:  # type: ignore[no-untyped-def]
    repo = _repo(tmp_path)
    assert cli("copy", "--dest-tls-verify=false", f"oci:{sample}:v1", registry.ref(repo, "v1")).exit_code == 0
    out = cli("referrers", NO_TLS, registry.ref(repo, "v1"))
    assert out.exit_code == 0 and json.loads(out.stdout)["manifests"] == [], out
    res = cli("referrers", f"oci-archive:{sample}.tar:v1")
    assert res.exit_code == 5 and "listing referrers is not supported" in res.stderr, res


class _ReferrersApi:
    """A proxy in front of the real registry that serves the referrers API itself, in two pages (as a
    registry with OCI 1.1 support would), answering ``OCI-Subject`` on manifest PUTs: the client must then
    neither read nor write the fallback tag."""

    def __init__(self, upstream: Registry, listed: list[dict[str, Any]]) -> None:
        self.upstream, self.listed = upstream, listed
        self.seen: list[tuple[str, str]] = []
        self.server, self.host = serve_http(lambda h, m: self.handle(h, m),
                                            methods=("GET", "HEAD", "PUT", "POST", "PATCH"))

    def handle(self, h: http.server.BaseHTTPRequestHandler, method: str) -> None:
        self.seen.append((method, h.path))
        if method == "GET" and "/referrers/" in h.path:
            page = 2 if "page=2" in h.path else 1
            items = self.listed[:1] if page == 1 else self.listed[1:]
            body = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": items}).encode()
            h.send_response(200)
            h.send_header("Content-Type", mt.OCI_INDEX)
            h.send_header("Content-Length", str(len(body)))
            if page == 1:
                h.send_header("Link", f'<{h.path.split("?")[0]}?page=2>; rel="next"')
            h.end_headers()
            h.wfile.write(body)
            return
        length = int(h.headers.get("Content-Length") or 0)
        body_in = h.rfile.read(length) if length else None
        conn = http.client.HTTPConnection(self.upstream.host, timeout=30)
        headers = {k: v for k, v in h.headers.items() if k.lower() in ("accept", "content-type", "range")}
        headers["Host"] = self.host
        conn.request(method, h.path, body=body_in, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        h.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                h.send_header(k, v)
        if method == "PUT" and "/manifests/" in h.path:
            h.send_header("OCI-Subject", "sha256:" + "0" * 64)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if method != "HEAD":
            h.wfile.write(data)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.interop
def test_a_registry_with_the_api_is_asked_and_paged(sample: Path, tmp_path: Path, registry: Registry,  # type: ignore[no-untyped-def]
                                                    opts: RegistryOptions) -> None:
    from ocilayout.copy import copy

    a = referrer_descriptor(_artifact(_subject(), SBOM, b"a")).to_dict()
    b = referrer_descriptor(_artifact(_subject(), SIG, b"b")).to_dict()
    api = _ReferrersApi(registry, [a, b])
    try:
        repo = _repo(tmp_path)
        copy(f"oci:{sample}:v1", f"docker://{api.host}/{repo}:v1")
        _layout_with_artifacts(sample, tmp_path / "art", [("sbom", SBOM, b"sbom")])
        copy(f"oci:{tmp_path}/art:sbom", f"docker://{api.host}/{repo}:sbom")
        ref = f"docker://{api.host}/{repo}:v1"
        assert [d.to_dict() for d in list_referrers(ref)] == [a, b]
        assert [d.to_dict() for d in list_referrers(ref, artifact_type=SIG)] == [b]
        with open_source(ref) as src:
            assert isinstance(src, RegistrySource)
            assert [d.to_dict() for d in src.referrers(src.root.digest, SIG)] == [b]
    finally:
        api.close()
    assert not any("sha256-" in p for _, p in api.seen), api.seen  # OCI-Subject: no fallback tag read/written
    assert sum(1 for m, p in api.seen if "/referrers/" in p) == 6  # three lists, two pages each


@pytest.mark.interop
def test_copy_carries_attached_referrers_to_a_registry_and_back(  # type: ignore[no-untyped-def]
        cli, sample: Path, tmp_path: Path, registry: Registry) -> None:
    """An SBOM attached offline travels with its image: pushed with the image (the registry's fallback tag
    lists it) and pulled back into a new layout, where ``attach``'s lookup finds it again."""
    sbom = tmp_path / "sbom.json"
    sbom.write_text('{"sbom": true}\n')
    assert cli("attach", f"oci:{sample}:v1", str(sbom), "--artifact-type", SBOM).exit_code == 0
    repo = _repo(tmp_path)
    res = cli("copy", "--dest-tls-verify=false", f"oci:{sample}:v1", registry.ref(repo, "v1"))
    assert res.exit_code == 0 and "1 referrers carried" in res.stderr, res
    subject = LayoutStore.open(sample).resolve("v1").digest
    assert fallback_tag(subject) in registry.tags(repo)
    res = cli("copy", "--src-tls-verify=false", registry.ref(repo, "v1"), f"oci:{tmp_path}/back:v1")
    assert res.exit_code == 0 and "1 referrers carried" in res.stderr, res
    with open_source(f"oci:{tmp_path}/back:v1") as back:
        assert [d.artifact_type for d in back.referrers(back.root.digest)] == [SBOM]
    res = cli("copy", "--remove-referrers", "--src-tls-verify=false", registry.ref(repo, "v1"),
              f"oci:{tmp_path}/bare:v1")
    assert res.exit_code == 0 and "referrers" not in res.stderr, res
    with open_source(f"oci:{tmp_path}/bare:v1") as bare:
        assert list(bare.referrers(bare.root.digest)) == []
