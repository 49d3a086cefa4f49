"""docker:// against the real docker-registry (distribution 2.8) on loopback, and skopeo 1.9.3 on the other end.

The registry runs plain HTTP on 127.0.0.1, so every command passes ``--tls-verify=false`` as skopeo users do.
Faults (5xx/429, a connection cut mid-blob, a redirect to another host) come from a small proxy in front of
the registry; the registry itself is never mocked.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import http.server
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Registry, assert_fsck, serve_http

from ocilayout.copy import CopyOptions, Selection, copy
from ocilayout.errors import IntegrityError, RegistryError
from ocilayout.registry.auth import Credentials, find_credentials, parse_challenges
from ocilayout.registry.options import RegistryOptions, use_options
from ocilayout.store import LayoutStore
from ocilayout.transports import open_source

pytestmark = pytest.mark.interop
NO_TLS = "--tls-verify=false"
USER, PASSWORD = "alice", "s3cret-Pa55"


def _repo(tmp_path: Path, name: str = "app") -> str:
    return f"t{hashlib.sha256(str(tmp_path).encode()).hexdigest()[:12]}/{name}"


def _digest_of(layout: Path, tag: str) -> str:
    return str(LayoutStore.open(layout).resolve(tag).digest)


# -- round trips ----------------------------------------------------------------------------------------

def test_push_pull_round_trip_keeps_every_digest(cli, sample: Path, tmp_path: Path, registry: Registry) -> None:  # type: ignore[no-untyped-def]
    ref = registry.ref(_repo(tmp_path), "v1")
    res = cli("copy", "--dest-tls-verify=false", "--digestfile", tmp_path / "d", f"oci:{sample}:v1", ref)
    assert res.exit_code == 0, res
    assert (tmp_path / "d").read_text() == _digest_of(sample, "v1")
    res = cli("copy", "--src-tls-verify=false", ref, f"oci:{tmp_path}/back:v1")
    assert res.exit_code == 0, res
    assert _digest_of(tmp_path / "back", "v1") == _digest_of(sample, "v1")
    assert_fsck(tmp_path / "back")
    again = cli("copy", "--dest-tls-verify=false", f"oci:{sample}:v1", ref)
    assert again.exit_code == 0 and "0 blobs copied" in again.stderr, again  # HEAD found every blob


def test_no_tag_means_latest(cli, sample: Path, tmp_path: Path, registry: Registry) -> None:  # type: ignore[no-untyped-def]
    repo = _repo(tmp_path)
    assert cli("copy", "--dest-tls-verify=false", f"oci:{sample}:v1", f"docker://{registry.host}/{repo}").exit_code == 0
    assert registry.tags(repo) == ["latest"]
    res = cli("copy", "--src-tls-verify=false", f"docker://{registry.host}/{repo}", f"oci:{tmp_path}/back:x")
    assert res.exit_code == 0 and _digest_of(tmp_path / "back", "x") == _digest_of(sample, "v1"), res


def test_index_with_all(cli, sample: Path, tmp_path: Path, registry: Registry) -> None:  # type: ignore[no-untyped-def]
    ref = registry.ref(_repo(tmp_path), "multi")
    assert cli("copy", "--all", "--dest-tls-verify=false", f"oci:{sample}:multi", ref).exit_code == 0
    status, headers, body = registry.get(f"/v2/{_repo(tmp_path)}/manifests/multi",
                                         headers={"Accept": "application/vnd.oci.image.index.v1+json"})
    assert status == 200 and headers["Content-Type"] == "application/vnd.oci.image.index.v1+json"
    assert "sha256:" + hashlib.sha256(body).hexdigest() == _digest_of(sample, "multi")
    assert cli("copy", "--all", "--src-tls-verify=false", ref, f"oci:{tmp_path}/back:m").exit_code == 0
    assert _digest_of(tmp_path / "back", "m") == _digest_of(sample, "multi")


def test_skopeo_pulls_what_we_push(cli, skopeo, sample: Path, tmp_path: Path, registry: Registry) -> None:  # type: ignore[no-untyped-def]
    repo = _repo(tmp_path)
    res = cli("copy", "--all", "--dest-tls-verify=false", f"oci:{sample}:multi", registry.ref(repo, "m"))
    assert res.exit_code == 0, res
    want = _digest_of(sample, "multi")
    skopeo("copy", "--all", "--src-tls-verify=false", f"docker://{registry.host}/{repo}:m", f"oci:{tmp_path}/by-tag:m")
    skopeo("copy", "--all", "--src-tls-verify=false", f"docker://{registry.host}/{repo}@{want}",
           f"oci:{tmp_path}/by-digest:m")
    assert _digest_of(tmp_path / "by-tag", "m") == _digest_of(tmp_path / "by-digest", "m") == want
    out = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/{repo}:m").stdout
    assert out.encode() == (sample / "blobs/sha256" / want.split(":")[1]).read_bytes()


def test_we_pull_what_skopeo_pushes(cli, skopeo, sample: Path, tmp_path: Path, registry: Registry) -> None:  # type: ignore[no-untyped-def]
    repo = _repo(tmp_path)
    skopeo("copy", "--dest-tls-verify=false", f"oci:{sample}:v1", f"docker://{registry.host}/{repo}:s")
    skopeo("copy", "--dest-tls-verify=false", "--format", "v2s2", f"oci:{sample}:v1",
           f"docker://{registry.host}/{repo}:docker")  # a Docker v2s2 manifest, converted by skopeo
    want = _digest_of(sample, "v1")
    assert cli("copy", "--src-tls-verify=false", registry.ref(repo, "s"), f"oci:{tmp_path}/a:s").exit_code == 0
    assert cli("copy", "--src-tls-verify=false", f"docker://{registry.host}/{repo}@{want}",
               f"oci:{tmp_path}/b:s").exit_code == 0
    assert _digest_of(tmp_path / "a", "s") == _digest_of(tmp_path / "b", "s") == want
    res = cli("copy", "--src-tls-verify=false", registry.ref(repo, "docker"), f"oci:{tmp_path}/c:d")
    assert res.exit_code == 0, res
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/{repo}:docker").stdout.encode()
    assert _digest_of(tmp_path / "c", "d") == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert json.loads(raw)["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"


# -- inspect, list-tags, delete ---------------------------------------------------------------------------

def test_inspect_raw_config_and_summary(cli, skopeo, sample: Path, tmp_path: Path, registry: Registry) -> None:  # type: ignore[no-untyped-def]
    ref = registry.ref(_repo(tmp_path), "v1")
    assert cli("copy", "--dest-tls-verify=false", f"oci:{sample}:v1", ref).exit_code == 0
    raw = cli("inspect", NO_TLS, "--raw", ref)
    assert raw.exit_code == 0 and raw.stdout == cli("inspect", "--raw", f"oci:{sample}:v1").stdout
    cfg = cli("inspect", NO_TLS, "--raw", "--config", ref)
    assert cfg.stdout == cli("inspect", "--raw", "--config", f"oci:{sample}:v1").stdout
    ours = json.loads(cli("inspect", NO_TLS, ref).stdout)
    theirs = json.loads(skopeo("inspect", "--tls-verify=false", ref).stdout)
    for key in ("Name", "Digest", "RepoTags", "Architecture", "Os", "Layers", "Env", "Labels"):
        assert ours[key] == theirs[key], key
    assert list(ours)[:3] == ["Name", "Digest", "RepoTags"]
    assert json.loads(cli("inspect", NO_TLS, "--no-tags", ref).stdout)["RepoTags"] == []
    assert "Name" not in json.loads(cli("inspect", f"oci:{sample}:v1").stdout)  # layouts: as skopeo


def test_list_tags_follows_pages(cli, sample: Path, tmp_path: Path, registry: Registry,  # type: ignore[no-untyped-def]
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """distribution 2.8 sends every tag at once (it ignores ?n= on tags/list), so the proxy serves the
    registry's list in pages with ``Link: <...?last=...&n=...>; rel="next"`` as distribution 3 does."""
    import ocilayout.transports.registry as reg_mod

    repo = _repo(tmp_path)
    tags = [f"t{i}" for i in range(5)]
    for t in tags:
        assert cli("copy", "-q", "--dest-tls-verify=false", f"oci:{sample}:v1", registry.ref(repo, t)).exit_code == 0
    monkeypatch.setattr(reg_mod, "TAGS_PAGE", 2)  # three pages
    proxy = FaultProxy(registry, lambda m, p, n: ("paginate", None) if "/tags/list" in p else None)
    try:
        res = cli("list-tags", NO_TLS, f"docker://{proxy.host}/{repo}")
    finally:
        proxy.close()
    assert res.exit_code == 0, res
    assert json.loads(res.stdout) == {"Repository": f"{proxy.host}/{repo}", "Tags": tags}
    pages = [p for m, p, h in proxy.seen if "/tags/list" in p]
    assert pages == [f"/v2/{repo}/tags/list?n=2", f"/v2/{repo}/tags/list?last=t1&n=2",
                     f"/v2/{repo}/tags/list?last=t3&n=2"], pages


def test_delete_by_tag_resolves_the_digest(cli, sample: Path, tmp_path: Path, registry: Registry) -> None:  # type: ignore[no-untyped-def]
    repo = _repo(tmp_path)
    assert cli("copy", "--dest-tls-verify=false", f"oci:{sample}:v1", registry.ref(repo, "v1")).exit_code == 0
    digest = _digest_of(sample, "v1")
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    assert registry.get(f"/v2/{repo}/manifests/{digest}", headers=accept)[0] == 200
    assert cli("delete", NO_TLS, registry.ref(repo, "v1")).exit_code == 0
    assert registry.get(f"/v2/{repo}/manifests/{digest}", headers=accept)[0] == 404
    res = cli("delete", NO_TLS, registry.ref(repo, "v1"))
    assert res.exit_code == 3 and res.stderr.count("\n") == 1 and "MANIFEST_UNKNOWN" in res.stderr, res
    res = cli("delete", NO_TLS, f"docker://{registry.host}/{repo}@{digest}")  # the registry's own words
    assert res.exit_code == 3 and "MANIFEST_UNKNOWN" in res.stderr, res


def test_missing_tag_is_not_found(cli, tmp_path: Path, registry: Registry) -> None:  # type: ignore[no-untyped-def]
    res = cli("inspect", NO_TLS, registry.ref(_repo(tmp_path), "nope"))
    assert res.exit_code == 3 and "not found" in res.stderr and res.stderr.count("\n") == 1, res


def test_tls_is_verified_by_default(cli, tmp_path: Path, registry: Registry) -> None:  # type: ignore[no-untyped-def]
    """A plain-HTTP registry is refused unless --tls-verify=false: nothing falls back silently."""
    res = cli("inspect", registry.ref(_repo(tmp_path), "v1"))
    assert res.exit_code == 7 and "--tls-verify=false" in res.stderr and res.stderr.count("\n") == 1, res
    res = cli("inspect", "--tls-verify=maybe", registry.ref(_repo(tmp_path), "v1"))
    assert res.exit_code == 2, res


# -- Basic auth and credentials -------------------------------------------------------------------------

def test_basic_auth_accepted_and_refused(cli, sample: Path, tmp_path: Path, auth_registry: Registry) -> None:  # type: ignore[no-untyped-def]
    ref = auth_registry.ref("secure/app", "v1")
    good = f"{USER}:{PASSWORD}"
    res = cli("copy", "--dest-tls-verify=false", "--dest-creds", good, f"oci:{sample}:v1", ref)
    assert res.exit_code == 0 and PASSWORD not in res.stdout + res.stderr, res
    assert auth_registry.tags("secure/app") == ["v1"]
    for args in ([], ["--creds", f"{USER}:wrong-{PASSWORD}"]):
        res = cli("inspect", NO_TLS, *args, ref)
        assert res.exit_code == 7 and res.stderr.count("\n") == 1, res
        assert ("authentication refused" if args else "authentication required") in res.stderr
        assert PASSWORD not in res.stdout + res.stderr
    res = cli("inspect", NO_TLS, "--creds", good, ref)
    assert res.exit_code == 0 and PASSWORD not in res.stdout + res.stderr
    res = cli("copy", "--src-tls-verify=false", "--src-creds", f"{USER}:nope", ref, f"oci:{tmp_path}/x:v1")
    assert res.exit_code == 7 and res.stderr.count("\n") == 1 and not (tmp_path / "x").exists(), res


def test_debug_output_never_shows_credentials(sample: Path, tmp_path: Path, auth_registry: Registry) -> None:
    """--debug prints tracebacks: neither they nor any other output may carry the password or its base64."""
    import subprocess
    import sys

    ref = auth_registry.ref("secure/app", "v1")
    secrets = [PASSWORD, base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(),
               base64.b64encode(f"{USER}:wrong-{PASSWORD}".encode()).decode()]
    for args in (["copy", "--dest-tls-verify=false", "--dest-creds", f"{USER}:{PASSWORD}", f"oci:{sample}:v1", ref],
                 ["inspect", NO_TLS, "--creds", f"{USER}:wrong-{PASSWORD}", ref],
                 ["copy", "--src-tls-verify=false", "--src-creds", f"{USER}:wrong-{PASSWORD}", ref,
                  f"oci:{tmp_path}/x:v1"]):
        proc = subprocess.run([sys.executable, "-m", "ocilayout", "--debug", *args], capture_output=True, text=True,
                              timeout=120)
        out = proc.stdout + proc.stderr
        assert not any(s in out for s in secrets), out[-2000:]
        ok = "--dest-creds" in args  # the push succeeds; the others fail (--debug: a traceback, then exit 7)
        assert proc.returncode == (0 if ok else 7) and (ok or "RegistryError: " in out), out[-2000:]


def _auth_json(path: Path, host: str, user: str = USER, password: str = PASSWORD) -> Path:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"auths": {host: {"auth": token}}}))
    return path


def test_credentials_from_auth_files(cli, sample: Path, tmp_path: Path, auth_registry: Registry,  # type: ignore[no-untyped-def]
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    ref = auth_registry.ref("secure/app", "v1")
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    for var in ("XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "REGISTRY_AUTH_FILE", "DOCKER_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    assert cli("copy", "--dest-tls-verify=false", f"oci:{sample}:v1", ref).exit_code == 7  # nothing configured
    explicit = _auth_json(tmp_path / "explicit.json", auth_registry.host)
    assert cli("copy", "--dest-tls-verify=false", "--authfile", explicit, f"oci:{sample}:v1", ref).exit_code == 0
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(explicit))
    assert cli("inspect", NO_TLS, ref).exit_code == 0
    monkeypatch.delenv("REGISTRY_AUTH_FILE")
    _auth_json(home / ".docker" / "config.json", f"https://{auth_registry.host}")  # docker's legacy key form
    assert cli("inspect", NO_TLS, ref).exit_code == 0
    runtime = tmp_path / "run"
    _auth_json(runtime / "containers" / "auth.json", auth_registry.host, password="wrong")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    res = cli("inspect", NO_TLS, ref)  # the runtime file comes first, and its password is wrong
    assert res.exit_code == 7 and "refused" in res.stderr, res
    res = cli("inspect", NO_TLS, "--authfile", tmp_path / "missing.json", ref)
    assert res.exit_code == 7 and "does not exist" in res.stderr, res


def test_skopeo_reads_our_push_with_credentials(cli, skopeo, sample: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                auth_registry: Registry) -> None:
    authfile = _auth_json(tmp_path / "auth.json", auth_registry.host)
    ref = auth_registry.ref("secure/app", "v1")
    assert cli("copy", "--dest-tls-verify=false", "--authfile", authfile, f"oci:{sample}:v1", ref).exit_code == 0
    out = skopeo("inspect", "--raw", "--tls-verify=false", "--authfile", str(authfile), ref).stdout
    assert "sha256:" + hashlib.sha256(out.encode()).hexdigest() == _digest_of(sample, "v1")
    skopeo("copy", "--dest-tls-verify=false", "--dest-creds", f"{USER}:{PASSWORD}", f"oci:{sample}:multi",
           auth_registry.ref("secure/other", "m"))
    res = cli("copy", "--src-tls-verify=false", "--authfile", authfile, auth_registry.ref("secure/other", "m"),
              f"oci:{tmp_path}/o:m")
    assert res.exit_code == 0, res


def test_auth_helpers_hide_secrets() -> None:
    creds = Credentials(USER, PASSWORD)
    assert PASSWORD not in repr(creds) and USER not in repr(creds)
    assert PASSWORD not in repr(RegistryOptions(creds=f"{USER}:{PASSWORD}"))
    ch = parse_challenges('Bearer realm="https://auth.example/token",service="registry.example",'
                          'scope="repository:a/b:pull,push", Basic realm="x"')
    assert [c.scheme for c in ch] == ["bearer", "basic"]
    assert ch[0].params == {"realm": "https://auth.example/token", "service": "registry.example",
                            "scope": "repository:a/b:pull,push"}


def test_docker_hub_names_and_repo_scoped_keys(tmp_path: Path) -> None:
    from ocilayout.transports.registry import split_name

    assert split_name("busybox") == ("docker.io", "registry-1.docker.io", "library/busybox")
    assert split_name("docker.io/foo/bar") == ("docker.io", "registry-1.docker.io", "foo/bar")
    assert split_name("localhost/x") == ("localhost", "localhost", "x")
    assert split_name("127.0.0.1:5000/a/b") == ("127.0.0.1:5000", "127.0.0.1:5000", "a/b")
    path = tmp_path / "auth.json"
    enc = base64.b64encode
    path.write_text(json.dumps({"auths": {
        "reg.example/team": {"auth": enc(b"team:t").decode()},
        "reg.example": {"auth": enc(b"all:a").decode()},
        "https://index.docker.io/v1/": {"auth": enc(b"hub:h").decode()}}}))
    opts = RegistryOptions(authfile=str(path))
    assert find_credentials(opts, "reg.example", "team/app") == Credentials("team", "t")
    assert find_credentials(opts, "reg.example", "other/app") == Credentials("all", "a")
    assert find_credentials(opts, "docker.io", "library/busybox") == Credentials("hub", "h")
    assert find_credentials(opts, "elsewhere.example", "x") is None


# -- signatures -----------------------------------------------------------------------------------------

def test_signatures_travel_to_and_from_the_registry(cli, sample: Path, tmp_path: Path, registry: Registry,  # type: ignore[no-untyped-def]
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from ocilayout.signature import keys

    monkeypatch.setenv("OCILAYOUT_PASSPHRASE", "pw")
    priv, pub = keys.write_key_pair(tmp_path / "k", b"pw")
    ident = "registry.example.com/app:1"
    assert cli("sign", f"oci:{sample}:v1", "--key", priv, "--identity", ident).exit_code == 0
    repo = _repo(tmp_path)
    res = cli("copy", "--dest-tls-verify=false", f"oci:{sample}:v1", registry.ref(repo, "v1"))
    assert res.exit_code == 0 and "1 signatures carried" in res.stderr, res
    digest = _digest_of(sample, "v1")
    assert f"sha256-{digest.split(':')[1]}.sig" in registry.tags(repo)
    res = cli("copy", "--src-tls-verify=false", registry.ref(repo, "v1"), f"oci:{tmp_path}/back:v1")
    assert res.exit_code == 0 and "1 signatures carried" in res.stderr, res
    res = cli("verify", f"oci:{tmp_path}/back:v1", "--public-key", pub, "--identity", ident)
    assert res.exit_code == 0, res


# -- faults: a proxy in front of the real registry --------------------------------------------------------

class FaultProxy:
    """Forwards GET/HEAD to a registry; ``plan(method, path, n)`` (n: how many requests that path had) may
    return ("status", CODE), ("cut", None) to send half a body and drop the connection, ("redirect", None)
    to send a 307 to the same proxy under another host name, or None to pass the request on."""

    def __init__(self, upstream: Registry, plan: Callable[[str, str, int], tuple[str, Any] | None]) -> None:
        self.upstream, self.plan = upstream, plan
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.counts: dict[tuple[str, str], int] = {}
        # (late-bound: a test may wrap .handle after the server starts)
        self.server, self.host = serve_http(lambda h, m: self.handle(h, m), methods=("GET", "HEAD"))
        self.port = self.server.server_address[1]

    def handle(self, h: http.server.BaseHTTPRequestHandler, method: str) -> None:
        path = h.path
        self.seen.append((method, path, dict(h.headers)))
        storage = path.startswith("/storage")
        real = path[len("/storage"):] if storage else path
        key = (method, real)
        self.counts[key] = n = self.counts.get(key, 0) + 1
        action = None if storage else self.plan(method, real, n)
        if action is not None and action[0] == "status":
            h.send_response(action[1])
            h.send_header("Content-Length", "0")
            if action[1] == 429:
                h.send_header("Retry-After", "0")
            h.end_headers()
            return
        if action is not None and action[0] == "redirect":
            h.send_response(307)
            h.send_header("Location", f"http://localhost:{self.port}/storage{real}")
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        if action is not None and action[0] == "paginate":
            self._page(h, real)
            return
        conn = http.client.HTTPConnection(self.upstream.host, timeout=30)
        headers = {k: v for k, v in h.headers.items() if k.lower() in ("accept", "authorization", "range")}
        if storage and self.upstream.users:  # blob storage: the pre-signed URL is the credential
            user, password = next(iter(self.upstream.users.items()))
            headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        conn.request(method, real, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        h.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection"):
                h.send_header(k, v)
        h.end_headers()
        if method == "GET":
            if action is not None and action[0] == "cut":
                h.wfile.write(body[: len(body) // 2])
                h.wfile.flush()
                h.connection.shutdown(socket.SHUT_RDWR)
                h.close_connection = True
                return
            h.wfile.write(body)

    def _page(self, h: http.server.BaseHTTPRequestHandler, path: str) -> None:
        import urllib.parse

        url = urllib.parse.urlsplit(path)
        query = dict(urllib.parse.parse_qsl(url.query))
        repo = url.path[len("/v2/"):-len("/tags/list")]
        every = sorted(self.upstream.tags(repo))
        n = int(query.get("n", "100"))
        rest = [t for t in every if t > query["last"]] if "last" in query else every
        page, more = rest[:n], len(rest) > n
        body = json.dumps({"name": repo, "tags": page}).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        if more:
            h.send_header("Link", f'<{url.path}?last={page[-1]}&n={n}>; rel="next"')
        h.end_headers()
        h.wfile.write(body)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _blob_get(method: str, path: str) -> bool:
    return method == "GET" and "/blobs/sha256:" in path


@pytest.fixture
def pushed(sample: Path, tmp_path: Path, registry: Registry) -> str:
    """The sample v1 image pushed to the session registry; returns its repository."""
    repo = _repo(tmp_path)
    opts = RegistryOptions(tls_verify=False)
    with use_options(opts, opts):
        copy(f"oci:{sample}:v1", registry.ref(repo, "v1"))
    return repo


def _pull_through(proxy: FaultProxy, repo: str, dest: Path) -> None:
    opts = RegistryOptions(tls_verify=False)
    with use_options(opts, opts):
        copy(f"docker://{proxy.host}/{repo}:v1", f"oci:{dest}:v1", CopyOptions(select=Selection(), jobs=1))


def test_retries_5xx_and_429(sample: Path, tmp_path: Path, registry: Registry, pushed: str) -> None:
    def plan(method: str, path: str, n: int) -> tuple[str, Any] | None:
        if "/manifests/" in path and n <= 2:
            return ("status", 503)
        if _blob_get(method, path) and n == 1:
            return ("status", 429)
        return None

    proxy = FaultProxy(registry, plan)
    try:
        _pull_through(proxy, pushed, tmp_path / "out")
    finally:
        proxy.close()
    assert _digest_of(tmp_path / "out", "v1") == _digest_of(sample, "v1")
    assert any(n >= 3 for (m, p), n in proxy.counts.items() if "/manifests/v1" in p)


def test_broken_download_resumes_with_range(sample: Path, tmp_path: Path, registry: Registry, pushed: str) -> None:
    proxy = FaultProxy(registry, lambda m, p, n: ("cut", None) if _blob_get(m, p) and n == 1 else None)
    try:
        _pull_through(proxy, pushed, tmp_path / "out")
    finally:
        proxy.close()
    assert _digest_of(tmp_path / "out", "v1") == _digest_of(sample, "v1")
    ranges = [h.get("Range") for m, p, h in proxy.seen if _blob_get(m, p) and h.get("Range")]
    assert ranges and all(r.startswith("bytes=") and not r.startswith("bytes=0-") for r in ranges), proxy.seen


def test_endless_failures_fail_cleanly(sample: Path, tmp_path: Path, registry: Registry, pushed: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import ocilayout.registry.client as client_mod

    monkeypatch.setattr(client_mod, "BACKOFF", 0.01)
    proxy = FaultProxy(registry, lambda m, p, n: ("status", 500) if _blob_get(m, p) else None)
    try:
        with pytest.raises(RegistryError):
            _pull_through(proxy, pushed, tmp_path / "out")
    finally:
        proxy.close()
    assert not (tmp_path / "out").exists() or LayoutStore.open(tmp_path / "out").refs() == []


def test_redirects_to_another_host_carry_no_credentials(sample: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                        auth_registry: Registry) -> None:
    opts = RegistryOptions(tls_verify=False, creds=f"{USER}:{PASSWORD}")
    with use_options(opts, opts):
        copy(f"oci:{sample}:v1", auth_registry.ref("secure/app", "v1"))
    proxy = FaultProxy(auth_registry, lambda m, p, n: ("redirect", None) if _blob_get(m, p) else None)
    try:
        with use_options(opts, opts):
            copy(f"docker://{proxy.host}/secure/app:v1", f"oci:{tmp_path}/out:v1")
    finally:
        proxy.close()
    assert _digest_of(tmp_path / "out", "v1") == _digest_of(sample, "v1")
    to_storage = [h for m, p, h in proxy.seen if p.startswith("/storage")]
    at_registry = [h for m, p, h in proxy.seen if "/manifests/" in p]
    assert to_storage and not any("Authorization" in h for h in to_storage)
    assert at_registry and all(h.get("Authorization", "").startswith("Basic ") for h in at_registry)


def test_a_wrong_blob_fails_the_pull_with_nothing_committed(sample: Path, tmp_path: Path) -> None:
    """A registry of its own serves a layer with other bytes (its storage was tampered with): the
    destination's hashing catches it and the layout names nothing."""
    from conftest import start_registry, stop_registry

    reg = start_registry(tmp_path / "tampered")
    try:
        opts = RegistryOptions(tls_verify=False)
        with use_options(opts, opts):
            copy(f"oci:{sample}:v1", reg.ref("x/app", "v1"))
        with open_source(f"oci:{sample}:v1") as src:
            layer = src.get_manifest().layers[0]
        hexd = layer.digest.hex
        data = reg.storage / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"
        raw = bytearray(data.read_bytes())
        raw[-1] ^= 0xFF
        data.write_bytes(bytes(raw))
        with use_options(opts, opts), pytest.raises(IntegrityError):
            copy(reg.ref("x/app", "v1"), f"oci:{tmp_path}/out:v1")
    finally:
        stop_registry(reg)
    assert not (tmp_path / "out").exists() or LayoutStore.open(tmp_path / "out").refs() == []


# -- uploads --------------------------------------------------------------------------------------------

def _blob_at(reg: Registry, repo: str, digest: str) -> bytes | None:
    status, _, body = reg.get(f"/v2/{repo}/blobs/{digest}")
    return body if status == 200 else None


@pytest.mark.parametrize("known", [True, False])
def test_chunked_upload_of_a_large_blob(tmp_path: Path, registry: Registry, known: bool) -> None:
    """Above chunk_size (and whenever the digest is unknown) a blob goes up in PATCHes of at most
    chunk_size bytes, hashed while sent, then one PUT ?digest=."""
    import io
    import os

    from ocilayout.descriptor import Descriptor
    from ocilayout.digest import Digest
    from ocilayout.reference import parse_reference
    from ocilayout.transports.registry import RegistryDestination

    data = os.urandom(10_000 + 7)
    desc = Descriptor("application/octet-stream", Digest.of(data), len(data))
    repo = _repo(tmp_path)
    dst = RegistryDestination(parse_reference(registry.ref(repo, "x")), RegistryOptions(tls_verify=False,
                                                                                          chunk_size=4096))
    seen: list[int] = []
    try:
        got = dst.put_blob(lambda: io.BytesIO(data), desc if known else None, media_type=desc.media_type,
                           progress=seen.append)
        assert got == desc
        assert sum(seen) == len(data) and max(seen) <= 4096
        assert _blob_at(registry, repo, str(desc.digest)) == data
        liar = Descriptor("application/octet-stream", Digest.of(b"promised" * 1000), len(data))
        with pytest.raises(IntegrityError):
            dst.put_blob(lambda: io.BytesIO(data[::-1]), liar, media_type=liar.media_type)
        assert _blob_at(registry, repo, str(liar.digest)) is None
        assert _blob_at(registry, repo, str(Digest.of(data[::-1]))) is None
    finally:
        dst.close()


def test_a_lying_monolithic_upload_is_never_completed(tmp_path: Path, registry: Registry) -> None:
    import io

    from ocilayout.descriptor import Descriptor
    from ocilayout.digest import Digest
    from ocilayout.reference import parse_reference
    from ocilayout.transports.registry import RegistryDestination

    repo = _repo(tmp_path)
    promised = b"what the descriptor promises"
    liar = Descriptor("application/octet-stream", Digest.of(promised), len(promised))
    dst = RegistryDestination(parse_reference(registry.ref(repo, "x")), RegistryOptions(tls_verify=False))
    try:
        for lie in (b"something else entirely!!!!!", b"short", promised + b"and more"):
            with pytest.raises(IntegrityError):
                dst.put_blob(lambda lie=lie: io.BytesIO(lie), liar, media_type=liar.media_type)
        assert _blob_at(registry, repo, str(liar.digest)) is None
    finally:
        dst.close()


# -- Bearer tokens (a token server of our own; the registry validates its ES256 JWTs) ------------------------

def test_bearer_token_flow(cli, sample: Path, tmp_path: Path, token_registry: Registry) -> None:  # type: ignore[no-untyped-def]
    token = token_registry.token  # type: ignore[attr-defined]
    ref = token_registry.ref("tok/app", "v1")
    res = cli("copy", "--dest-tls-verify=false", f"oci:{sample}:v1", ref)  # anonymous: pull only
    assert res.exit_code == 7 and "authentication required" in res.stderr, res
    token.requests.clear()
    res = cli("copy", "--dest-tls-verify=false", "--dest-creds", f"{USER}:{PASSWORD}", f"oci:{sample}:multi", ref,
              "--all")
    assert res.exit_code == 0, res
    assert token.requests == [(USER, "repository:tok/app:pull,push")]  # one token for every request
    token.requests.clear()
    res = cli("copy", "--src-tls-verify=false", ref, f"oci:{tmp_path}/out:v1", "--all")  # anonymous pull
    assert res.exit_code == 0, res
    assert _digest_of(tmp_path / "out", "v1") == _digest_of(sample, "multi")
    assert token.requests == [(None, "repository:tok/app:pull")]
    token.requests.clear()
    other = token_registry.ref("tok/copy", "v1")
    res = cli("copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--src-creds", f"{USER}:{PASSWORD}",
              "--dest-creds", f"{USER}:{PASSWORD}", "--all", ref, other)
    assert res.exit_code == 0, res
    assert sorted(token.requests) == [(USER, "repository:tok/app:pull"), (USER, "repository:tok/copy:pull,push"),
                                      (USER, "repository:tok/copy:pull,push repository:tok/app:pull")]  # mounts
    res = cli("list-tags", NO_TLS, f"docker://{token_registry.host}/tok/copy")
    assert res.exit_code == 0 and json.loads(res.stdout)["Tags"] == ["v1"], res
    res = cli("inspect", NO_TLS, "--creds", f"{USER}:wrong", ref)
    assert res.exit_code == 7 and "refused by the token server" in res.stderr and "wrong" not in res.stderr, res


# -- TLS with a throwaway CA --------------------------------------------------------------------------------

def test_tls_verified_by_default_with_a_throwaway_ca(cli, sample: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import start_registry, stop_registry, throwaway_ca

    ca, cert, key = throwaway_ca(tmp_path / "pki")
    reg = start_registry(tmp_path / "tls-registry", tls=(cert, key))
    try:
        ref = reg.ref("tls/app", "v1")
        res = cli("copy", f"oci:{sample}:v1", ref)  # verified by default: the CA is unknown
        assert res.exit_code == 7 and "CERTIFICATE_VERIFY_FAILED" in res.stderr and res.stderr.count("\n") == 1, res
        res = cli("copy", "--dest-tls-verify=false", f"oci:{sample}:v1", ref)  # HTTPS, unverified
        assert res.exit_code == 0, res
        monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # the CA trusted: verified HTTPS works
        res = cli("copy", ref, f"oci:{tmp_path}/back:v1")
        assert res.exit_code == 0 and _digest_of(tmp_path / "back", "v1") == _digest_of(sample, "v1"), res
    finally:
        stop_registry(reg)


def test_an_unverified_client_loads_no_ca_roots(tmp_path: Path) -> None:
    """--tls-verify=false: the TLS context verifies nothing, so the system CA roots are not loaded into it
    (urllib3's default context would load them, ~35 ms of CPU); HTTPS unverified itself is tested above."""
    import ssl

    from ocilayout.registry.client import _ssl_context

    opts = RegistryOptions(tls_verify=False, cert_dir=str(tmp_path))  # an empty cert dir
    ctx = _ssl_context("example.com", opts, verify=False)
    assert ctx is not None and ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname
    assert ctx.cert_store_stats()["x509_ca"] == 0
    assert _ssl_context("example.com", RegistryOptions(cert_dir=str(tmp_path)), verify=True) is None


def test_sign_and_verify_a_registry_image(cli, sample: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """sign/verify on docker:// (verified TLS through a trusted throwaway CA): the signature is a cosign
    .sig tag in the registry, the identity defaults to the image's docker reference, and it travels on."""
    from conftest import start_registry, stop_registry, throwaway_ca

    from ocilayout.signature import keys

    ca, cert, key = throwaway_ca(tmp_path / "pki")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    monkeypatch.setenv("OCILAYOUT_PASSPHRASE", "pw")
    priv, pub = keys.write_key_pair(tmp_path / "k", b"pw")
    reg = start_registry(tmp_path / "tls-registry", tls=(cert, key))
    try:
        ref = reg.ref("signed/app", "v1")
        assert cli("copy", f"oci:{sample}:v1", ref).exit_code == 0
        res = cli("sign", ref, "--key", priv)
        ident = f"{reg.host}/signed/app:v1"
        assert res.exit_code == 0 and ident in res.stdout, res
        res = cli("verify", ref, "--public-key", pub)
        assert res.exit_code == 0 and "Signature verified" in res.stdout, res
        res = cli("verify", ref, "--public-key", pub, "--identity", "registry.example.com/other:1")
        assert res.exit_code == 8, res
        assert cli("copy", ref, f"oci:{tmp_path}/back:v1").exit_code == 0
        res = cli("verify", f"oci:{tmp_path}/back:v1", "--public-key", pub, "--identity", ident)
        assert res.exit_code == 0, res
    finally:
        stop_registry(reg)


@pytest.mark.parametrize("compression,docker", [("zstd", False), ("gzip", True), ("none", False)])
def test_skopeo_interop_per_layer_kind(cli, skopeo, tmp_path: Path, registry: Registry,  # type: ignore[no-untyped-def]
                                       compression: str, docker: bool) -> None:
    """zstd, gzip (as a Docker v2s2 image) and uncompressed layers: skopeo pulls what we push, byte for
    byte, and we pull back what skopeo pushes."""
    from ocilayout.sample import make_image

    store = LayoutStore.create(tmp_path / "src")
    make_image(store, [{"a.txt": b"a\n" * 1000}, {"b.bin": bytes(range(256)) * 64}], compression=compression,
               docker=docker, tag="t")
    want = _digest_of(tmp_path / "src", "t")
    repo = _repo(tmp_path)
    assert cli("copy", "--dest-tls-verify=false", f"oci:{tmp_path}/src:t", registry.ref(repo, "ours")).exit_code == 0
    skopeo("copy", "--src-tls-verify=false", "--preserve-digests", "--dest-oci-accept-uncompressed-layers",
           f"docker://{registry.host}/{repo}@{want}", f"oci:{tmp_path}/sk:t")
    assert _digest_of(tmp_path / "sk", "t") == want
    # skopeo 1.9.3's oci: transport skips index entries of Docker media types: it pushes from the registry.
    skopeo("copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--preserve-digests",
           f"docker://{registry.host}/{repo}:ours", f"docker://{registry.host}/{repo}2:theirs")
    res = cli("copy", "--src-tls-verify=false", registry.ref(f"{repo}2", "theirs"), f"oci:{tmp_path}/back:t")
    assert res.exit_code == 0 and _digest_of(tmp_path / "back", "t") == want, res


def test_cross_repository_mount_moves_no_bytes(sample: Path, tmp_path: Path, registry: Registry) -> None:
    """docker -> docker on one registry: blobs are mounted from the source repository (POST ?mount=&from=),
    so no blob byte is read or sent; on another registry they are copied."""
    from conftest import start_registry, stop_registry

    class Bytes:
        def __init__(self) -> None:
            self.moved = 0

        def start(self, total_bytes: int, blobs: int) -> None:
            pass

        def advance(self, nbytes: int) -> None:
            self.moved += nbytes

        def finish(self) -> None:
            pass

    opts = RegistryOptions(tls_verify=False)
    repo = _repo(tmp_path)
    other = start_registry(tmp_path / "other")
    try:
        with use_options(opts, opts):
            copy(f"oci:{sample}:multi", registry.ref(repo, "m"), CopyOptions(select=Selection(all=True)))
            same, elsewhere = Bytes(), Bytes()
            res = copy(registry.ref(repo, "m"), registry.ref(f"{repo}-mounted", "m"),
                       CopyOptions(select=Selection(all=True), progress=same))
            assert res.blobs_copied > 0 and same.moved == 0
            res2 = copy(registry.ref(repo, "m"), other.ref("x/y", "m"),
                        CopyOptions(select=Selection(all=True), progress=elsewhere))
            assert elsewhere.moved == res2.bytes_copied > 0
            with open_source(registry.ref(f"{repo}-mounted", "m")) as src:
                assert str(src.root.digest) == _digest_of(sample, "multi")
                for child in src.get_manifest().manifests:
                    for d in src.get_manifest(child).layers:
                        assert _blob_at(registry, f"{repo}-mounted", str(d.digest)) is not None
    finally:
        stop_registry(other)


def test_catalog_follows_pages(cli, sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """distribution 2.8 paginates _catalog (?n=, Link rel="next"): every repository comes back once."""
    from conftest import start_registry, stop_registry

    import ocilayout.transports.registry as reg_mod

    reg = start_registry(tmp_path / "cat", {USER: PASSWORD})
    try:
        names = ["a/one", "b/two", "c/three", "d/four", "e/five"]
        for n in names:
            res = cli("copy", "-q", "--dest-tls-verify=false", "--dest-creds", f"{USER}:{PASSWORD}", f"oci:{sample}:v1",
                      reg.ref(n, "v1"))
            assert res.exit_code == 0, res
        monkeypatch.setattr(reg_mod, "CATALOG_PAGE", 2)
        status, headers, _ = reg.get("/v2/_catalog?n=2", auth=(USER, PASSWORD))
        assert status == 200 and 'rel="next"' in headers.get("Link", "")
        res = cli("catalog", NO_TLS, "--creds", f"{USER}:{PASSWORD}", reg.host)
        assert res.exit_code == 0, res
        assert json.loads(res.stdout) == {"Registry": reg.host, "Repositories": sorted(names)}
        res = cli("catalog", NO_TLS, f"docker://{reg.host}")
        assert res.exit_code == 7 and "authentication required" in res.stderr, res
        assert cli("catalog", "bad/host").exit_code == 2
    finally:
        stop_registry(reg)


def test_no_credentials_to_urls_on_other_hosts(auth_registry: Registry) -> None:
    """A URL the registry hands out (upload Location, Link page) on another host gets no Authorization."""
    from ocilayout.registry.client import Client

    proxy = FaultProxy(auth_registry, lambda m, p, n: None)
    try:
        client = Client(auth_registry.host, auth_registry.host, "secure/app",
                        RegistryOptions(tls_verify=False, creds=f"{USER}:{PASSWORD}"))
        own = client.request("GET", "tags/list")
        own.release_conn()
        assert own.status in (200, 404)  # authenticated at the registry itself (else RegistryError)
        elsewhere = client.request("GET", f"http://{proxy.host}/v2/secure/app/tags/list")
        assert elsewhere.status == 401
        client.close()
    finally:
        proxy.close()
    assert proxy.seen and not any("Authorization" in h for _, _, h in proxy.seen)
