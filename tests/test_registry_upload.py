"""Blob upload retry: an upload that fails with a connection error, 429 or 5xx starts again from a new upload
session (the opener called again), with backoff and a bounded number of attempts; a digest mismatch is never
retried. Faults come from a proxy in front of the real docker-registry that forwards every method (bodies
included, chunked PATCHes decoded) and breaks the requests a plan names."""

from __future__ import annotations

import hashlib
import http.client
import http.server
import io
import socket
import threading
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Registry, serve_http

import ocilayout.registry.client as client_mod
from ocilayout.copy import CopyOptions, copy
from ocilayout.descriptor import Descriptor
from ocilayout.digest import Digest
from ocilayout.errors import DigestMismatch, RegistryError
from ocilayout.reference import parse_reference
from ocilayout.registry.options import RegistryOptions, use_options
from ocilayout.store import LayoutStore
from ocilayout.transports.registry import UPLOAD_ATTEMPTS, RegistryDestination

pytestmark = pytest.mark.interop
Plan = Callable[[str, str, int], "tuple[str, Any] | None"]


def _repo(tmp_path: Path) -> str:
    return f"u{hashlib.sha256(str(tmp_path).encode()).hexdigest()[:12]}/app"


class UploadProxy:
    """Forwards every request to ``upstream`` (Host rewritten, so upload Locations point back here).
    ``plan(method, key, n)`` sees ``key`` = ``upload <digest>`` for the request that finishes an upload
    (PUT ...?digest=), ``patch`` for chunk uploads, ``post`` for starting one, else the path; ``n`` counts
    requests with that key. It may return ("status", CODE) or ("cut", None): half the body is read and the
    connection dropped without an answer."""

    def __init__(self, upstream: Registry, plan: Plan) -> None:
        self.upstream, self.plan = upstream, plan
        self.counts: dict[tuple[str, str], int] = {}
        self.lock = threading.Lock()
        self.server, self.host = serve_http(lambda h, m: self.handle(h, m))

    @staticmethod
    def key(method: str, path: str) -> str:
        url = urllib.parse.urlsplit(path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if method == "PUT" and "/blobs/uploads/" in url.path:
            return f"upload {query.get('digest', '')}"
        if method == "PATCH":
            return "patch"
        if method == "POST" and url.path.endswith("/blobs/uploads/"):
            return "post"
        return url.path

    def count(self, method: str, key: str) -> int:
        return self.counts.get((method, key), 0)

    def _body(self, h: http.server.BaseHTTPRequestHandler, limit: int | None = None) -> bytes:
        if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(h.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    h.rfile.readline()
                    return b"".join(parts)
                parts.append(h.rfile.read(size))
                h.rfile.readline()
        length = int(h.headers.get("Content-Length") or 0)
        return h.rfile.read(length if limit is None else min(limit, length))

    def handle(self, h: http.server.BaseHTTPRequestHandler, method: str) -> None:
        key = self.key(method, h.path)
        with self.lock:
            n = self.counts[(method, key)] = self.counts.get((method, key), 0) + 1
        action = self.plan(method, key, n)
        if action is not None and action[0] == "cut":
            length = int(h.headers.get("Content-Length") or 0)
            self._body(h, length // 2)
            h.connection.shutdown(socket.SHUT_RDWR)
            h.close_connection = True
            return
        body = self._body(h)
        if action is not None and action[0] == "status":
            h.send_response(action[1])
            if action[1] == 429:
                h.send_header("Retry-After", "0")
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        conn = http.client.HTTPConnection(self.upstream.host, timeout=60)
        headers = {k: v for k, v in h.headers.items()
                   if k.lower() in ("accept", "content-type", "range", "authorization")}
        headers["Host"] = self.host
        conn.request(method, h.path, body=body if method in ("POST", "PUT", "PATCH") else None, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        h.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if method != "HEAD":
            h.wfile.write(data)
        conn.close()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def _fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_mod, "BACKOFF", 0.01)


def _layer(sample: Path) -> Descriptor:
    """The sample v1 image's (single, largest) layer."""
    store = LayoutStore.open(sample)
    m = store.get_manifest(store.resolve("v1"))
    return max(m.layers, key=lambda d: d.size)


def _push(sample: Path, proxy: UploadProxy, repo: str, **opts: Any) -> None:
    o = RegistryOptions(tls_verify=False, **opts)
    with use_options(o, o):
        copy(f"oci:{sample}:v1", f"docker://{proxy.host}/{repo}:v1", CopyOptions(jobs=1))


def _pulled_digest(registry: Registry, repo: str) -> str:
    status, _, body = registry.get(f"/v2/{repo}/manifests/v1",
                                   headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert status == 200
    return "sha256:" + hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize("fault", [("status", 500), ("status", 503), ("status", 429), ("cut", None)])
def test_a_failed_monolithic_upload_starts_over(sample: Path, tmp_path: Path, registry: Registry,
                                                fault: tuple[str, Any]) -> None:
    layer = _layer(sample)
    target = f"upload {layer.digest}"
    proxy = UploadProxy(registry, lambda m, k, n: fault if k == target and n <= 2 else None)
    repo = _repo(tmp_path)
    try:
        _push(sample, proxy, repo)
    finally:
        proxy.close()
    assert proxy.count("PUT", target) == 3  # two failures, then the upload that worked
    blobs = sum(1 for (m, k) in proxy.counts if m == "PUT" and k.startswith("upload "))
    assert proxy.count("POST", "post") == blobs + 2  # each retry opened a new upload session
    assert _pulled_digest(registry, repo) == str(LayoutStore.open(sample).resolve("v1").digest)
    status, _, body = registry.get(f"/v2/{repo}/blobs/{layer.digest}")
    assert status == 200 and "sha256:" + hashlib.sha256(body).hexdigest() == str(layer.digest)


def test_a_failed_chunked_upload_starts_over(sample: Path, tmp_path: Path, registry: Registry) -> None:
    """With small chunks every blob goes up as PATCHes: a 503 on the second PATCH starts that blob again."""
    proxy = UploadProxy(registry, lambda m, k, n: ("status", 503) if k == "patch" and n == 2 else None)
    repo = _repo(tmp_path)
    layer = _layer(sample)
    try:
        _push(sample, proxy, repo, chunk_size=max(1, layer.size // 3))
    finally:
        proxy.close()
    assert _pulled_digest(registry, repo) == str(LayoutStore.open(sample).resolve("v1").digest)
    uploads = sum(1 for (m, k) in proxy.counts if m == "PUT" and k.startswith("upload "))
    assert proxy.count("POST", "post") == uploads + 1


def test_endless_failures_stop_after_the_bounded_attempts(sample: Path, tmp_path: Path, registry: Registry) -> None:
    layer = _layer(sample)
    target = f"upload {layer.digest}"
    proxy = UploadProxy(registry, lambda m, k, n: ("status", 500) if k == target else None)
    repo = _repo(tmp_path)
    try:
        with pytest.raises(RegistryError, match="uploading blob"):
            _push(sample, proxy, repo)
    finally:
        proxy.close()
    assert proxy.count("PUT", target) == UPLOAD_ATTEMPTS
    assert registry.tags(repo) == []  # nothing named


def test_a_digest_mismatch_is_not_retried(tmp_path: Path, registry: Registry) -> None:
    proxy = UploadProxy(registry, lambda m, k, n: None)
    opened = []

    def lying() -> io.BytesIO:
        opened.append(1)
        return io.BytesIO(b"wrong")

    try:
        dest = RegistryDestination(parse_reference(f"docker://{proxy.host}/{_repo(tmp_path)}:v1"),
                                   RegistryOptions(tls_verify=False))
        try:
            want = Descriptor(media_type="application/octet-stream", digest=Digest.of(b"right"), size=5)
            with pytest.raises(DigestMismatch):
                dest.put_blob(lying, want, media_type=want.media_type)
        finally:
            dest.close()
    finally:
        proxy.close()
    assert opened == [1] and proxy.count("POST", "post") == 1
