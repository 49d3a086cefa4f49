"""Shared test fixtures: peer fixtures, real tools, in-process CLI runs."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PEER = Path(os.environ.get("OCILAYOUT_PEER_FIXTURES", ROOT.parent / "shared" / "peer-fixtures"))
#: Set by .ci/run: a missing interop tool is then a failure, never a skip.
REQUIRE_TOOLS = os.environ.get("OCILAYOUT_REQUIRE_TOOLS") == "1"


def peer_path(rel: str) -> Path:
    """A path inside ../shared/peer-fixtures; skips the test when the folder is absent."""
    if not PEER.is_dir():
        pytest.skip(f"peer fixtures not found at {PEER}")
    return PEER / rel


def read_peer(rel: str) -> bytes:
    """Bytes of a peer fixture file, following the text-file 'symlinks' upstream git stored as paths."""
    p = peer_path(rel)
    data = p.read_bytes()
    for _ in range(5):
        if len(data) < 256 and data.startswith(b"../") and b"\n" not in data.strip():
            p = (p.parent / data.decode().strip()).resolve()
            data = p.read_bytes()
        else:
            break
    return data


def materialize_peer_dir(rel: str, dest: Path) -> Path:
    """Copy a peer-fixture directory (e.g. a dir: image) into ``dest``, resolving the text-file 'symlinks'
    upstream git stored; returns the copy."""
    src = peer_path(rel)
    out = dest / src.name
    out.mkdir(parents=True)
    for f in sorted(src.iterdir()):
        (out / f.name).write_bytes(read_peer(f"{rel}/{f.name}"))
    return out


def require_tool(name: str) -> str:
    """Path of a real tool (skopeo, umoci, docker-registry, gpg); in CI a missing tool fails the test."""
    path = shutil.which(name)
    if path is None:
        if REQUIRE_TOOLS:
            pytest.fail(f"{name} is required in CI (OCILAYOUT_REQUIRE_TOOLS=1) but not installed")
        pytest.skip(f"{name} not installed")
    return path


@pytest.fixture
def skopeo() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real skopeo (insecure policy, no network); raises on non-zero exit unless check=False."""
    exe = require_tool("skopeo")

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [exe, "--insecure-policy", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr}")
        return proc

    return run


@pytest.fixture
def umoci() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real umoci; raises on non-zero exit unless check=False."""
    exe = require_tool("umoci")

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [exe, *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr}")
        return proc

    return run


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.exit_code, self.stdout, self.stderr = code, out, err

    def __repr__(self) -> str:
        return f"CliResult(exit_code={self.exit_code}, stdout={self.stdout[:500]!r}, stderr={self.stderr[:500]!r})"


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``ocilayout ARGS`` in-process; returns exit code, stdout, stderr."""
    from ocilayout.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        cap = capsys.readouterr()
        return CliResult(code, cap.out, cap.err)

    return run


def snapshot(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root`` and its bytes: compare two to show that nothing changed."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def assert_one_line_error(res: CliResult, code: int | None = None) -> None:
    """A failed command's output as the CLI promises it: a non-zero exit (``code`` when given) and one
    ``ocilayout: error:`` line on stderr, no traceback."""
    assert res.exit_code != 0, res
    if code is not None:
        assert res.exit_code == code, res
    assert res.stderr.startswith("ocilayout: error: "), res
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr, res


def assert_fsck(path: Path | str) -> None:
    """Every test that writes a layout ends with this: the layout must pass fsck."""
    from ocilayout.store import LayoutStore
    from ocilayout.validate import fsck

    report = fsck(LayoutStore.open(path))
    assert report.ok, [str(p) for p in report.problems]


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    """A fresh copy of the built-in sample layout (tags v1 and multi)."""
    from ocilayout.sample import build_sample_layout

    path = tmp_path / "sample"
    build_sample_layout(path)
    return path


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "damages_layouts: the test corrupts layouts on purpose; skip the fsck")


@pytest.fixture(autouse=True)
def _fsck_written_layouts(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """After every test, every OCI layout it left under its tmp_path must pass fsck (unless it is marked
    ``damages_layouts``): the standing oracle for 'nothing the tools write is ever broken'."""
    if request.node.get_closest_marker("damages_layouts") or "tmp_path" not in request.fixturenames:
        yield
        return
    root = request.getfixturevalue("tmp_path")  # set up before this fixture, so torn down after it
    yield
    from ocilayout.store import LayoutStore
    from ocilayout.validate import fsck

    for marker in sorted(root.rglob("oci-layout")):
        layout = marker.parent
        if any(part.startswith(".ocilayout-") for part in layout.relative_to(root).parts):
            continue  # a writer's staging area
        report = fsck(LayoutStore(layout))
        errors = [str(p) for p in report.problems if getattr(p, "severity", "error") == "error"]
        assert not errors, f"{layout} fails fsck after the test: {errors}"
    # Archives too: every tar that opens as an oci-archive must be sound (a tar that is not one -- a
    # docker save, a layer -- is not judged here).
    from ocilayout.archive import ArchiveReader
    from ocilayout.errors import OcilayoutError

    for tar in sorted(root.rglob("*.tar")):
        if any(part.startswith(".ocilayout-") for part in tar.relative_to(root).parts) or not tar.is_file():
            continue
        try:
            reader = ArchiveReader.open(tar)
        except OcilayoutError:
            continue
        with reader:
            report = fsck(reader)
        errors = [str(p) for p in report.problems if getattr(p, "severity", "error") == "error"]
        assert not errors, f"{tar} fails fsck after the test: {errors}"
    # and every tar that opens as a docker-archive (either form), as `fsck docker-archive:` sees it
    from ocilayout.transports import open_layout
    from ocilayout.transports.docker_archive import DockerArchive

    for tar in sorted(root.rglob("*.tar")):
        if any(part.startswith(".ocilayout-") for part in tar.relative_to(root).parts) or not tar.is_file():
            continue
        try:
            DockerArchive.open(tar).close()
        except OcilayoutError:
            continue
        with open_layout(f"docker-archive:{tar}") as reader:
            report = fsck(reader)
        errors = [str(p) for p in report.problems if getattr(p, "severity", "error") == "error"]
        assert not errors, f"{tar} fails fsck docker-archive: after the test: {errors}"


# -- a real registry on loopback (docker-registry, CNCF distribution 2.8) ----------------------------------

class Registry:
    """A running ``docker-registry``: ``host`` is ``127.0.0.1:PORT``; ``users`` the htpasswd accounts."""

    def __init__(self, host: str, storage: Path, users: dict[str, str], proc: subprocess.Popen[bytes]) -> None:
        self.host, self.storage, self.users, self.proc = host, storage, users, proc

    def ref(self, repo: str, tag: str | None = None) -> str:
        return f"docker://{self.host}/{repo}" + (f":{tag}" if tag else "")

    def get(self, path: str, *, auth: tuple[str, str] | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """A plain request to the registry (the test's own view, not ocilayout's client)."""
        import base64
        import urllib.error
        import urllib.request

        req = urllib.request.Request(f"http://{self.host}{path}", headers=headers or {})
        if auth is not None:
            req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    def tags(self, repo: str) -> list[str]:
        status, _, body = self.get(f"/v2/{repo}/tags/list", auth=next(iter(self.users.items()), None))
        if status == 404:
            return []
        import json

        return sorted(json.loads(body).get("tags") or [])


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_registry(root: Path, users: dict[str, str] | None = None, *, token: TokenServer | None = None,
                   tls: tuple[Path, Path] | None = None, client_cas: Path | None = None) -> Registry:
    """Start ``docker-registry`` on a free loopback port with storage (and htpasswd) under ``root``; waits
    until ``/v2/`` answers. ``client_cas``: with ``tls``, require client certificates signed by that CA.
    Stop it with :func:`stop_registry`."""
    import time
    import urllib.error
    import urllib.request

    exe = require_tool("docker-registry")
    users = users or {}
    root.mkdir(parents=True, exist_ok=True)
    storage = root / "storage"
    auth = ""
    if users:
        htpasswd = require_tool("htpasswd")
        lines = []
        for user, password in users.items():
            out = subprocess.run([htpasswd, "-Bbn", user, password], capture_output=True, text=True, check=True)
            lines.append(out.stdout.strip())
        (root / "htpasswd").write_text("\n".join(lines) + "\n")
        auth = f"auth:\n  htpasswd: {{realm: basic-realm, path: {root / 'htpasswd'}}}\n"
    if token is not None:
        auth = (f"auth:\n  token: {{realm: '{token.realm}', service: {token.service}, issuer: {token.issuer}, "
                f"rootcertbundle: {token.cert_path}}}\n")
        users = dict(token.users)
    for _ in range(5):
        port = _free_port()
        config = root / "config.yml"
        config.write_text(
            "version: 0.1\nlog: {level: error}\n"
            f"storage:\n  filesystem: {{rootdirectory: {storage}}}\n  delete: {{enabled: true}}\n"
            f"http:\n  addr: 127.0.0.1:{port}\n"
            + (f"  tls: {{certificate: {tls[0]}, key: {tls[1]}"
               + (f", clientcas: [{client_cas}]" if client_cas else "") + "}\n" if tls else "") + auth)
        log = open(root / "registry.log", "ab")  # noqa: SIM115 - the process writes it until stopped
        proc = subprocess.Popen([exe, "serve", str(config)], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            if tls:  # ready when the port accepts connections
                import socket

                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    return Registry(f"127.0.0.1:{port}", storage, users, proc)
                except OSError:
                    time.sleep(0.05)
                    continue
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2).close()
                return Registry(f"127.0.0.1:{port}", storage, users, proc)
            except urllib.error.HTTPError as err:
                if err.code == 401:
                    return Registry(f"127.0.0.1:{port}", storage, users, proc)
            except OSError:
                pass
            time.sleep(0.05)
        proc.kill()
        proc.wait()
    raise AssertionError(f"docker-registry did not start: {(root / 'registry.log').read_text()[-2000:]}")


def stop_registry(reg: Registry) -> None:
    reg.proc.terminate()
    try:
        reg.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        reg.proc.kill()
        reg.proc.wait()


#: Every method a test server may answer.
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def serve_http(handle: Callable[..., None], *, methods: tuple[str, ...] = HTTP_METHODS, http11: bool = True
               ) -> tuple[Any, str]:
    """A threaded HTTP server on a free loopback port that hands each request of ``methods`` to
    ``handle(request_handler, method)`` (others get the standard 501), logging nothing. Returns the server
    (``shutdown()`` and ``server_close()`` it) and its ``127.0.0.1:PORT``."""
    import http.server
    import threading

    def answer(method: str) -> Callable[[http.server.BaseHTTPRequestHandler], None]:
        return lambda h: handle(h, method)

    attrs: dict[str, Any] = {"protocol_version": "HTTP/1.1" if http11 else "HTTP/1.0",
                             "log_message": lambda self, *args: None}
    attrs |= {f"do_{m}": answer(m) for m in methods}
    handler = type("Handler", (http.server.BaseHTTPRequestHandler,), attrs)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"127.0.0.1:{server.server_address[1]}"


class TokenServer:
    """A token server for distribution's ``auth: token``: ``GET /token?service=..&scope=repository:NAME:ACTIONS``
    answers an ES256 JWT (``x5c``: its self-signed certificate, the registry's root bundle). Anonymous callers
    get ``pull`` only; ``users`` (Basic) get what they ask for. ``requests`` records (user, scopes) per call
    (several ``scope`` parameters joined by a space)."""

    service = "test-registry"
    issuer = "test-issuer"

    def __init__(self, root: Path, users: dict[str, str]) -> None:
        import datetime

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.users = users
        self.requests: list[tuple[str | None, str]] = []
        self.paths: list[str] = []  # every request's path and query, as sent
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test token signer")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self._key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(self._key, hashes.SHA256()))
        root.mkdir(parents=True, exist_ok=True)
        self.cert_path = root / "token.crt"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self._der = cert.public_bytes(serialization.Encoding.DER)
        self._http, host = serve_http(lambda h, _m: self._answer(h), methods=("GET",), http11=False)
        self.realm = f"http://{host}/token"

    def _answer(self, h: object) -> None:
        import base64
        import json
        import time
        import urllib.parse

        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        self.paths.append(h.path)  # type: ignore[attr-defined]
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(h.path).query)  # type: ignore[attr-defined]
        auth = h.headers.get("Authorization", "")  # type: ignore[attr-defined]
        user = None
        if auth.startswith("Basic "):
            name, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            if self.users.get(name) != password:
                h.send_response(401)  # type: ignore[attr-defined]
                h.send_header("Content-Length", "0")  # type: ignore[attr-defined]
                h.end_headers()  # type: ignore[attr-defined]
                return
            user = name
        scopes = query.get("scope", [])
        self.requests.append((user, " ".join(scopes)))
        access = []
        for scope in scopes:
            if scope.startswith("repository:"):
                _, repo, actions = scope.split(":", 2)
                granted = [a for a in actions.split(",") if user is not None or a == "pull"]
                access.append({"type": "repository", "name": repo, "actions": granted})

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        now = int(time.time())
        header = {"alg": "ES256", "typ": "JWT", "x5c": [base64.b64encode(self._der).decode()]}
        claims = {"iss": self.issuer, "sub": user or "", "aud": self.service, "exp": now + 300, "nbf": now - 10,
                  "iat": now, "jti": b64(os.urandom(12)), "access": access}
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        token = f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
        body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
        h.send_response(200)  # type: ignore[attr-defined]
        h.send_header("Content-Type", "application/json")  # type: ignore[attr-defined]
        h.send_header("Content-Length", str(len(body)))  # type: ignore[attr-defined]
        h.end_headers()  # type: ignore[attr-defined]
        h.wfile.write(body)  # type: ignore[attr-defined]

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()


@pytest.fixture
def token_registry(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A fresh registry with Bearer token auth; its token server (``.token``) knows ``alice``/``s3cret-Pa55``."""
    token = TokenServer(tmp_path / "token", {"alice": "s3cret-Pa55"})
    reg = start_registry(tmp_path / "token-registry", token=token)
    reg.token = token  # type: ignore[attr-defined]
    yield reg
    stop_registry(reg)
    token.close()


def throwaway_ca(root: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it: (ca.pem, server.pem, server.key)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ocilayout test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    root.mkdir(parents=True, exist_ok=True)
    paths = (root / "ca.pem", root / "server.pem", root / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One anonymous registry for the session (tests use their own repository names)."""
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    yield reg
    stop_registry(reg)


@pytest.fixture
def auth_registry(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A fresh registry with htpasswd Basic auth (user ``alice``, password ``s3cret-Pa55``)."""
    reg = start_registry(tmp_path / "auth-registry", {"alice": "s3cret-Pa55"})
    yield reg
    stop_registry(reg)


@pytest.fixture
def insecure_registry_options():  # type: ignore[no-untyped-def]
    """docker:// references opened in the test use --tls-verify=false (plain HTTP on loopback)."""
    from ocilayout.registry.options import RegistryOptions, use_options

    opts = RegistryOptions(tls_verify=False)
    with use_options(opts, opts):
        yield opts
