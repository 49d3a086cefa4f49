"""Adversarial review of the registry features (issue 9): hostile configuration files, hostile registry
answers, concurrent logins, retried uploads. Each test here failed before its fix.

Hostile answers come from a small HTTP server of our own (:class:`Hostile`): what it sends is the point
(JSON nested past the parser's recursion limit, a ``Link`` header that points back at its own page), and
no real registry sends it. Uploads are retried through the fault proxy in front of the real docker-registry.
"""

from __future__ import annotations

import fcntl
import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Registry, serve_http
from test_registry_upload import UploadProxy

import ocilayout.registry.client as client_mod
import ocilayout.registry.config as config_mod
from ocilayout.copy import CopyOptions, copy
from ocilayout.errors import InvalidArgument, RegistryError
from ocilayout.registry import credentials
from ocilayout.registry.client import Client
from ocilayout.registry.config import load_registries_conf, tls_files
from ocilayout.registry.credentials import AuthFile, Credentials
from ocilayout.registry.options import RegistryOptions, use_options
from ocilayout.store import LayoutStore

DEEP_JSON = b"[" * 200_000 + b"]" * 200_000  # json.loads raises RecursionError (not a ValueError) on it
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No host configuration leaks in: system files under tmp_path, a fake HOME, no auth env."""
    etc = tmp_path / "etc"
    monkeypatch.setattr(config_mod, "SYSTEM_CONF", etc / "containers/registries.conf")
    monkeypatch.setattr(config_mod, "SYSTEM_CONF_DIR", etc / "containers/registries.conf.d")
    monkeypatch.setattr(config_mod, "SYSTEM_CERTS_D", (etc / "containers/certs.d", etc / "docker/certs.d"))
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    (tmp_path / "run").mkdir()
    for var in ("CONTAINERS_REGISTRIES_CONF", "REGISTRY_AUTH_FILE", "DOCKER_CONFIG", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(client_mod, "BACKOFF", 0.01)
    return home


# -- registries.conf and certs.d -----------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "a = " + "[" * 3000 + "]" * 3000,
    "a = " + "{b=" * 2000 + "1" + "}" * 2000,
], ids=["arrays", "inline-tables"])
def test_registries_conf_nested_too_deeply_is_a_usage_error(cli, tmp_path: Path, text: str) -> None:  # type: ignore[no-untyped-def]
    conf = tmp_path / "deep.conf"
    conf.write_text(text)
    r = cli("inspect", "--registries-conf", conf, "docker://127.0.0.1:1/x")
    assert r.exit_code == 2, r
    assert "nested too deeply" in r.stderr and len(r.stderr.splitlines()) == 1


@pytest.mark.parametrize(("text", "message"), [
    ('[[registry]]\nlocation = "a.example"\n[[registry.mirror]]\nlocation = "b.example"\npull-from-mirror = []\n',
     "pull-from-mirror of mirror 'b.example' must be a string"),
    ("[registries]\nsearch = 5\n", "[registries.search] must be a table"),
    ('[registries]\ninsecure = "x"\n', "[registries.insecure] must be a table"),
])
def test_registries_conf_wrong_types_are_refused(tmp_path: Path, text: str, message: str) -> None:
    """Go's TOML decoder refuses these (a string field given an array, a table given a number)."""
    conf = tmp_path / "bad.conf"
    conf.write_text(text)
    with pytest.raises(InvalidArgument, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_registries_conf(str(conf))


def _ocilayout(*args: str, env: dict[str, str] | None = None, stdin: str = "") -> subprocess.CompletedProcess[str]:
    # The timeout only keeps a regression from hanging the suite; nothing here measures time.
    return subprocess.run([sys.executable, "-m", "ocilayout", *args], capture_output=True, text=True, timeout=60,
                          env=env, input=stdin)


def test_registries_conf_fifo_or_directory_is_refused_not_waited_on(tmp_path: Path) -> None:
    """A FIFO nobody writes to, given as registries.conf (or found as a drop-in), used to block forever in
    open()."""
    fifo = tmp_path / "fifo.conf"
    os.mkfifo(fifo)
    for conf, why in ((fifo, "a FIFO with nothing written to it"), (tmp_path, "is a directory")):
        r = _ocilayout("inspect", "--registries-conf", str(conf), "docker://127.0.0.1:1/x",
                       env={**os.environ, "HOME": str(tmp_path / "home")})
        assert r.returncode == 2, r
        assert r.stderr.strip() == f"ocilayout: error: registries configuration {conf}: {why}"


def test_registries_conf_from_a_pipe_or_dev_null(tmp_path: Path) -> None:
    """What skopeo users write still works: ``--registries-conf <(...)`` (a pipe with data) and /dev/null."""
    script = ('exec "$0" -m ocilayout inspect --registries-conf <(printf \'[[registry]]\\nlocation = '
              '"127.0.0.1:1"\\nblocked = true\\n\') docker://127.0.0.1:1/x')
    r = subprocess.run(["bash", "-c", script, sys.executable], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "HOME": str(tmp_path / "home")})
    assert r.returncode == 7 and "registry 127.0.0.1:1 is blocked in /dev/fd/" in r.stderr, r
    assert load_registries_conf("/dev/null").find("127.0.0.1:1/x") is None


def test_registries_conf_drop_in_fifo_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    drop = home / ".config/containers/registries.conf.d"
    drop.mkdir(parents=True)
    os.mkfifo(drop / "10-fifo.conf")
    conf = tmp_path / "registries.conf"
    conf.write_text("")
    r = _ocilayout("inspect", "--registries-conf", str(conf), "docker://127.0.0.1:1/x",
                   env={**os.environ, "HOME": str(home)})
    assert r.returncode == 2, r
    assert r.stderr.strip() == (f"ocilayout: error: registries configuration {drop / '10-fifo.conf'}: "
                                "a FIFO with nothing written to it")


def test_cert_dir_that_is_a_file_or_holds_a_fifo_is_an_error(tmp_path: Path) -> None:
    """As upstream (only a missing directory holds nothing); a FIFO *.crt used to block the TLS set-up."""
    not_dir = tmp_path / "file"
    not_dir.write_text("x")
    with pytest.raises(InvalidArgument, match="Not a directory"):
        tls_files(not_dir)
    certs = tmp_path / "certs"
    certs.mkdir()
    os.mkfifo(certs / "ca.crt")
    with pytest.raises(InvalidArgument, match=r"ca\.crt: not a regular file"):
        tls_files(certs)
    assert tls_files(tmp_path / "missing").cas == ()


def test_cert_dir_fifo_does_not_hang_a_command(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    os.mkfifo(certs / "client.cert")
    (certs / "client.key").write_text("x")
    r = _ocilayout("inspect", "--cert-dir", str(certs), "docker://127.0.0.1:1/x",
                   env={**os.environ, "HOME": str(tmp_path / "home")})
    assert r.returncode == 2, r
    assert "client.cert: not a regular file" in r.stderr


# -- auth files and helpers ------------------------------------------------------------------------------------

def test_auth_file_nested_too_deeply_is_a_registry_error(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    auth = tmp_path / "auth.json"
    auth.write_bytes(b'{"auths": ' + DEEP_JSON + b"}")
    with pytest.raises(RegistryError, match="is not valid JSON"):
        credentials.find(RegistryOptions(authfile=str(auth)), "example.com/x")
    r = cli("login", "--authfile", auth, "-u", "u", "-p", "p", "127.0.0.1:1")
    assert r.exit_code == 7, r
    assert r.stderr.strip() == f"ocilayout: error: auth file {auth} is not valid JSON"


def test_helper_answer_nested_too_deeply_is_a_registry_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    deep = tmp_path / "deep.json"
    deep.write_bytes(DEEP_JSON)
    helper = bin_dir / "docker-credential-deep"
    helper.write_text(f"#!/bin/sh\ncat >/dev/null\ncat {deep}\n")
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    with pytest.raises(RegistryError, match="get answered something"):
        credentials.helper_get("deep", "example.com")
    with pytest.raises(RegistryError, match="list did not answer a JSON object"):
        credentials.helper_list("deep")


def test_concurrent_edits_of_an_auth_file_are_serialised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The read-modify-write holds a lock on the file's directory: another editor cannot take it meanwhile
    (so its read cannot come before our write and undo it)."""
    auth = AuthFile(tmp_path / "run" / "containers" / "auth.json")
    write = credentials._write_private
    held: list[bool] = []

    def checking(path: Path, data: bytes) -> None:
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held.append(True)
        else:
            held.append(False)
        finally:
            os.close(fd)
        write(path, data)

    monkeypatch.setattr(credentials, "_write_private", checking)
    credentials.store(auth, "a.example", Credentials("u", "p"))
    credentials.remove(auth, "a.example")
    assert held == [True, True]


_STRESS = """
import sys
from pathlib import Path
from ocilayout.registry import credentials
f = credentials.AuthFile(Path(sys.argv[1]))
for i in range(int(sys.argv[3])):
    credentials.store(f, f"{sys.argv[2]}{i}.example", credentials.Credentials("u", "p"))
"""


def test_two_processes_logging_in_at_once_lose_no_entry(tmp_path: Path) -> None:
    path = tmp_path / "run" / "containers" / "auth.json"
    n = 40
    procs = [subprocess.Popen([sys.executable, "-c", _STRESS, str(path), prefix, str(n)]) for prefix in "ab"]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    auths = json.loads(path.read_bytes())["auths"]
    assert sorted(auths) == sorted(f"{p}{i}.example" for p in "ab" for i in range(n))
    assert path.stat().st_mode & 0o777 == 0o600
    assert [e.name for e in path.parent.iterdir()] == ["auth.json"]  # no lock file, no temp file left


# -- hostile registry answers ---------------------------------------------------------------------------------

Route = Callable[[http.server.BaseHTTPRequestHandler], "tuple[int, dict[str, str], bytes]"]


class Hostile:
    """An HTTP "registry" answering each path by ``routes`` (path without query -> handler); the rest 404.
    ``requests`` records (method, path, Authorization header)."""

    def __init__(self, routes: dict[str, Route]) -> None:
        self.routes = routes
        self.requests: list[tuple[str, str, str | None]] = []
        self.server, self.host = serve_http(self._answer, methods=("GET",))

    def _answer(self, h: http.server.BaseHTTPRequestHandler, method: str) -> None:
        self.requests.append((method, h.path, h.headers.get("Authorization")))
        route = self.routes.get(h.path.split("?", 1)[0])
        status, headers, body = route(h) if route else (404, {}, b"")
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hostile() -> Iterator[Callable[[dict[str, Route]], Hostile]]:
    made: list[Hostile] = []

    def make(routes: dict[str, Route]) -> Hostile:
        made.append(Hostile(routes))
        return made[-1]

    yield make
    for h in made:
        h.close()


def _ok(h: http.server.BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
    return 200, {}, b"{}"


def _client(server: Hostile, repo: str = "x", **kw: Any) -> Client:
    return Client(server.host, server.host, repo, RegistryOptions(tls_verify=False, **kw))


def test_a_tags_page_linking_to_itself_is_an_error_not_a_loop(hostile) -> None:  # type: ignore[no-untyped-def]
    def tags(h: http.server.BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        return 200, {"Link": '</v2/x/tags/list?n=1000>; rel="next"'}, b'{"name": "x", "tags": ["a"]}'

    server = hostile({"/v2/": _ok, "/v2/x/tags/list": tags})
    with pytest.raises(RegistryError, match="Link header loops"):
        list(_client(server).paginate("tags/list?n=1000", "tags"))
    assert len(server.requests) == 2  # the ping and the first page: its repeat is recognised, not requested


def test_a_tags_list_that_is_not_an_array_of_strings_is_an_error(hostile) -> None:  # type: ignore[no-untyped-def]
    server = hostile({"/v2/": _ok, "/v2/x/tags/list": lambda h: (200, {}, b'{"tags": "abc"}')})
    with pytest.raises(RegistryError, match="not an array of strings"):
        list(_client(server).paginate("tags/list", "tags"))


@pytest.mark.parametrize("path", ["/v2/x/tags/list", "/token"])
def test_answers_nested_too_deeply_are_registry_errors(hostile, path: str) -> None:  # type: ignore[no-untyped-def]
    """A token server's answer, a registry's error body and a listing: RecursionError was an internal
    error (exit 70)."""
    server: Hostile

    def ping(h: http.server.BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        return 401, {"WWW-Authenticate": f'Bearer realm="http://{server.host}/token",service="s"'}, b""

    def token(h: http.server.BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        return 200, {}, DEEP_JSON if path == "/token" else b'{"token": "t"}'

    server = hostile({"/v2/": ping, "/token": token, "/v2/x/tags/list": lambda h: (200, {}, DEEP_JSON)})
    with pytest.raises(RegistryError, match="is not JSON" if path != "/token" else "holds no token"):
        list(_client(server).paginate("tags/list", "tags"))


def test_an_error_body_nested_too_deeply_still_gives_the_status(hostile) -> None:  # type: ignore[no-untyped-def]
    server = hostile({"/v2/": _ok, "/v2/x/tags/list": lambda h: (400, {}, DEEP_JSON)})
    with pytest.raises(RegistryError, match="HTTP 400"):
        list(_client(server).paginate("tags/list", "tags"))


@pytest.mark.parametrize("loop", [True, False])
def test_a_referrers_page_linking_to_itself_is_an_error(cli, hostile, loop: bool) -> None:  # type: ignore[no-untyped-def]
    """A self-linking page is read once; a hostile artifactType reaches the terminal escaped."""
    config = b"{}"
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {
        "mediaType": "application/vnd.oci.image.config.v1+json", "size": len(config),
        "digest": "sha256:" + hashlib.sha256(config).hexdigest()}, "layers": []}).encode()
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    page = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "1" * 64, "size": 2, "artifactType": "x/\x1b[31my"}]})

    def referrers(h: http.server.BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        link = {"Link": f'<{h.path}>; rel="next"'} if loop else {}
        return 200, {"Content-Type": OCI_INDEX, **link}, page.encode()

    server = hostile({"/v2/": _ok,
                      "/v2/x/manifests/v1": lambda h: (200, {"Content-Type": OCI_MANIFEST}, manifest),
                      f"/v2/x/referrers/{digest}": referrers})
    r = cli("referrers", "--tls-verify=false", f"docker://{server.host}/x:v1")
    assert sum(1 for m, p, _ in server.requests if "/referrers/" in p) == 1
    if loop:
        assert r.exit_code == 7, r
        assert "Link header loops" in r.stderr
    else:
        assert r.exit_code == 0, r
        assert "\x1b" not in r.stdout and json.loads(r.stdout)["manifests"][0]["artifactType"] == "x/\x1b[31my"


def test_credentials_go_to_the_registry_origin_only() -> None:
    """Same host and port string, other scheme: plain HTTP from an HTTPS registry is another origin."""
    assert client_mod._origin("https://h:5000/v2/") != client_mod._origin("http://h:5000/v2/")
    assert client_mod._origin("https://h/v2/") == client_mod._origin("https://H:443/x")
    assert client_mod._origin("http://h/v2/") != client_mod._origin("http://h:8080/v2/")


def test_no_authorization_is_sent_over_http_for_an_https_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[dict[str, str]] = []

    class Resp:
        status = 200

        def __init__(self) -> None:
            self.headers: dict[str, str] = {}

    def send(method: str, url: str, headers: dict[str, str], body: object, **kw: object) -> Resp:
        sent.append(dict(headers))
        return Resp()

    c = Client("reg.example:5000", "reg.example:5000", "x", RegistryOptions(creds="u:secret"))
    c._base = "https://reg.example:5000"
    c._challenge = client_mod.Challenge("basic", {})
    monkeypatch.setattr(c, "_send", send)
    c.request("GET", "https://reg.example:5000/v2/x/tags/list")
    c.request("GET", "http://reg.example:5000/v2/x/tags/list")
    assert ["Authorization" in h for h in sent] == [True, False]


# -- upload retries and progress ------------------------------------------------------------------------------

class _Counted:
    def __init__(self) -> None:
        self.total = 0
        self.advanced = 0
        self.lock = threading.Lock()

    def start(self, total_bytes: int, blobs: int) -> None:
        self.total = total_bytes

    def advance(self, nbytes: int) -> None:
        assert nbytes >= 0
        with self.lock:
            self.advanced += nbytes

    def finish(self) -> None:
        pass


@pytest.mark.interop
def test_a_retried_upload_is_counted_once_in_progress(registry: Registry, sample: Path, tmp_path: Path) -> None:
    store = LayoutStore.open(sample)
    layer = max(store.get_manifest(store.resolve("v1")).layers, key=lambda d: d.size)
    target = f"upload {layer.digest}"
    proxy = UploadProxy(registry, lambda m, k, n: ("status", 500) if k == target and n <= 2 else None)
    repo = f"r{hashlib.sha256(str(tmp_path).encode()).hexdigest()[:12]}/app"
    progress = _Counted()
    try:
        o = RegistryOptions(tls_verify=False)
        with use_options(o, o):
            result = copy(f"oci:{sample}:v1", f"docker://{proxy.host}/{repo}:v1",
                          CopyOptions(jobs=1, progress=progress))
    finally:
        proxy.close()
    assert proxy.count("PUT", target) == 3  # the layer was sent three times
    assert progress.advanced == progress.total == result.bytes_copied


@pytest.mark.parametrize("command", ["login", "logout", "referrers", "sign", "verify"])
def test_registry_command_help_names_every_value(cli, command: str) -> None:  # type: ignore[no-untyped-def]
    """Values are named as skopeo's help names them (FILE, DIR, USER...), never typer's bare ``<str>``."""
    r = cli(command, "--help")
    assert r.exit_code == 0, r
    assert "<str>" not in r.stdout and "--authfile" in r.stdout


@pytest.mark.interop
@pytest.mark.parametrize("how", ["creds", "authfile"])
def test_a_mirror_on_another_host_gets_only_its_own_credentials(cli, hostile, registry: Registry,  # type: ignore[no-untyped-def]
                                                               sample: Path, tmp_path: Path, how: str) -> None:
    """The primary's --creds or auth.json entry never goes to a mirror; an auth.json entry for the mirror's
    host does. The mirror here asks for Basic credentials and refuses everything, so the pull falls back to
    the primary (the real registry)."""
    def ask(h: http.server.BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        return 401, {"WWW-Authenticate": 'Basic realm="mirror"'}, b""

    repo = f"m{hashlib.sha256(str(tmp_path).encode()).hexdigest()[:12]}/app"
    mirror = hostile({"/v2/": ask, f"/v2/{repo}/manifests/v1": ask})
    o = RegistryOptions(tls_verify=False)
    with use_options(o, o):
        copy(f"oci:{sample}:v1", f"docker://{registry.host}/{repo}:v1")
    conf = tmp_path / "registries.conf"
    conf.write_text(f'[[registry]]\nlocation = "{registry.host}"\ninsecure = true\n'
                    f'[[registry.mirror]]\nlocation = "{mirror.host}"\ninsecure = true\n')
    primary_secret = "primary-Pw1"
    auth = tmp_path / "auth.json"
    entries = {registry.host: "alice:" + primary_secret}
    if how == "authfile":
        entries[mirror.host] = "bob:mirror-Pw2"
    auth.write_text(json.dumps({"auths": {k: {"auth": _b64(v)} for k, v in entries.items()}}))
    flags = ["--creds", f"alice:{primary_secret}"] if how == "creds" else ["--authfile", str(auth)]
    r = cli("inspect", "--registries-conf", conf, *flags, f"docker://{registry.host}/{repo}:v1")
    assert r.exit_code == 0, r
    sent = {a for _, p, a in mirror.requests if p.startswith(f"/v2/{repo}/")}
    assert any(p.startswith(f"/v2/{repo}/") for _, p, _ in mirror.requests)  # the mirror was tried first
    assert sent == ({None} if how == "creds" else {"Basic " + _b64("bob:mirror-Pw2")})


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize("files", [{"ca.crt": "garbage\n"}, {"ca.crt": ""}, {"c.cert": "x\n", "c.key": "y\n"}])
def test_garbage_certificates_name_the_file(cli, tmp_path: Path, files: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    certs = tmp_path / "certs"
    certs.mkdir()
    for name, text in files.items():
        (certs / name).write_text(text)
    r = cli("inspect", "--cert-dir", certs, "docker://127.0.0.1:1/x")
    assert r.exit_code == 2, r
    assert str(certs / sorted(files)[0]) in r.stderr and len(r.stderr.splitlines()) == 1


@pytest.mark.interop
def test_a_mirror_whose_tag_answer_fails_its_own_digest_is_passed_over(cli, hostile, registry: Registry,  # type: ignore[no-untyped-def]
                                                                      sample: Path, tmp_path: Path) -> None:
    """By tag there is no digest to ask for, but the mirror's Docker-Content-Digest is checked: a body that
    does not match it is refused and the pull goes on to the primary. (A mirror consistent with itself is
    believed by tag, as upstream believes it: ``pull-from-mirror = "digest-only"`` is the way to distrust
    mirrors for tags.)"""
    repo = f"w{hashlib.sha256(str(tmp_path).encode()).hexdigest()[:12]}/app"
    o = RegistryOptions(tls_verify=False)
    with use_options(o, o):
        copy(f"oci:{sample}:v1", f"docker://{registry.host}/{repo}:v1")
    status, _, real = registry.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert status == 200
    real_digest = "sha256:" + hashlib.sha256(real).hexdigest()
    forged = real.replace(b'"schemaVersion"', b'"annotations":{"evil":"1"},"schemaVersion"', 1)
    mirror = hostile({"/v2/": _ok, f"/v2/{repo}/manifests/v1": lambda h: (
        200, {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": real_digest}, forged)})
    conf = tmp_path / "registries.conf"
    conf.write_text(f'[[registry]]\nlocation = "{registry.host}"\ninsecure = true\n'
                    f'[[registry.mirror]]\nlocation = "{mirror.host}"\ninsecure = true\n')
    r = cli("inspect", "--raw", "--registries-conf", conf, f"docker://{registry.host}/{repo}:v1")
    assert r.exit_code == 0, r
    assert r.stdout.encode() == real
    assert any(p == f"/v2/{repo}/manifests/v1" for _, p, _ in mirror.requests)


@pytest.mark.interop
def test_a_retry_never_reuses_a_stream_already_read(registry: Registry, tmp_path: Path) -> None:
    """An opener that hands back the same stream (against the BlobOpener contract) used to be read again by
    the retry: closed, a ValueError (an internal error); a stream left open would have been uploaded from
    where it stopped and, with no expected digest, reported as the blob written."""
    import io

    proxy = UploadProxy(registry, lambda m, k, n: ("status", 500) if k == "patch" and n == 1 else None)
    repo = f"o{hashlib.sha256(str(tmp_path).encode()).hexdigest()[:12]}/app"
    from ocilayout.reference import parse_reference
    from ocilayout.transports.registry import RegistryDestination

    stream = io.BytesIO(b"layer bytes " * 100)
    dest = RegistryDestination(parse_reference(f"docker://{proxy.host}/{repo}:v1"), RegistryOptions(tls_verify=False))
    try:
        with pytest.raises(RegistryError, match="cannot retry the blob upload"):
            dest.put_blob(lambda: stream, None, media_type="application/octet-stream")
        fresh = dest.put_blob(lambda: io.BytesIO(b"layer bytes " * 100), None, media_type="application/octet-stream")
        assert str(fresh.digest) == "sha256:" + hashlib.sha256(b"layer bytes " * 100).hexdigest()
    finally:
        dest.close()
        proxy.close()


@pytest.mark.interop
def test_credentials_are_not_sent_to_a_plain_http_token_server_of_an_https_registry(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The real registry over verified TLS, its token realm plain HTTP: the password would cross the network in
    clear. Refused (exit 7) before the token server is asked; with --tls-verify=false (an insecure choice
    already made) it is sent, as upstream sends it."""
    from conftest import TokenServer, start_registry, stop_registry, throwaway_ca

    ca, cert, key = throwaway_ca(tmp_path / "pki")
    token = TokenServer(tmp_path / "token", {"alice": "s3cret-Pa55"})
    reg = start_registry(tmp_path / "reg", token=token, tls=(cert, key))
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "ca.crt").write_bytes(ca.read_bytes())
    try:
        r = cli("inspect", "--cert-dir", certs, "--creds", "alice:s3cret-Pa55", f"docker://{reg.host}/x/y:1")
        assert r.exit_code == 7, r
        assert "plain HTTP while the registry is HTTPS" in r.stderr and "s3cret" not in r.stderr
        assert not [u for u, _ in token.requests if u]
        r = cli("inspect", "--tls-verify=false", "--creds", "alice:s3cret-Pa55", f"docker://{reg.host}/x/y:1")
        assert r.exit_code == 3, r  # authenticated, and the image is not there
        assert [u for u, _ in token.requests if u]
    finally:
        stop_registry(reg)
        token.close()


@pytest.mark.parametrize("status", [400, 405, 501])
def test_a_registry_without_the_referrers_route_falls_back_to_the_tag(cli, hostile, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                      status: int) -> None:
    """A registry that never routed /referrers/ (400, 405, 501) is read through the fallback tag: a pull
    (which asks for referrers to carry them) does not fail on it."""
    config = b"{}"
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {
        "mediaType": "application/vnd.oci.image.config.v1+json", "size": len(config),
        "digest": "sha256:" + hashlib.sha256(config).hexdigest()}, "layers": []}).encode()
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    server = hostile({"/v2/": _ok,
                      "/v2/x/manifests/v1": lambda h: (200, {"Content-Type": OCI_MANIFEST}, manifest),
                      f"/v2/x/referrers/{digest}": lambda h: (status, {}, b"unknown route")})
    r = cli("referrers", "--tls-verify=false", f"docker://{server.host}/x:v1")
    assert r.exit_code == 0, r
    assert json.loads(r.stdout)["manifests"] == []
    fallback = f"/v2/x/manifests/sha256-{digest.split(':')[1]}"
    assert any(p == fallback for _, p, _ in server.requests), server.requests
