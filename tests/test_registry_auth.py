"""login/logout, auth.json as containers/image writes it, credential helpers, registry flags on sign/verify.

Against the real docker-registry (htpasswd Basic and the ES256 token server of conftest.py) and the real
skopeo 1.9.3 in both directions; credential helpers are a real program (tests/credential_helper.py) run
through the docker-credential protocol.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Registry

from ocilayout.errors import InvalidArgument, RegistryError
from ocilayout.registry import credentials
from ocilayout.registry.credentials import AuthFile, Credentials
from ocilayout.registry.options import RegistryOptions

pytestmark = pytest.mark.interop
NO_TLS = "--tls-verify=false"
USER, PASSWORD = "alice", "s3cret-Pa55"
B64 = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
HELPER = Path(__file__).with_name("credential_helper.py")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private HOME and XDG_RUNTIME_DIR (tmp/run, existing); no other auth environment."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    (tmp_path / "run").mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    for var in ("XDG_CONFIG_HOME", "REGISTRY_AUTH_FILE", "DOCKER_CONFIG", "OCILAYOUT_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "home"


@pytest.fixture
def helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``docker-credential-testhelper`` on PATH; returns its store directory (calls.log lists its calls)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    prog = bindir / "docker-credential-testhelper"
    prog.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{HELPER}" "$@"\n')
    prog.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("TEST_CRED_STORE", str(tmp_path / "helper-store"))
    return tmp_path / "helper-store"


def _push(cli, sample: Path, reg: Registry, repo: str = "secure/app") -> str:  # type: ignore[no-untyped-def]
    ref = reg.ref(repo, "v1")
    res = cli("copy", "-q", "--dest-tls-verify=false", "--dest-creds", f"{USER}:{PASSWORD}", f"oci:{sample}:v1", ref)
    assert res.exit_code == 0, res
    return ref


def _go_auth_json(auths: dict[str, str]) -> bytes:
    """What containers/image writes for these entries: json.MarshalIndent with a tab, keys sorted."""
    body = ",\n".join(f'\t\t"{k}": {{\n\t\t\t"auth": "{v}"\n\t\t}}' for k, v in sorted(auths.items()))
    return ('{\n\t"auths": {\n' + body + "\n\t}\n}").encode()


# -- login writes what skopeo reads ---------------------------------------------------------------------------

def test_login_writes_the_default_auth_json_that_skopeo_uses(cli, skopeo, sample: Path, home: Path,  # type: ignore[no-untyped-def]
                                                            tmp_path: Path, auth_registry: Registry) -> None:
    ref = _push(cli, sample, auth_registry)
    assert skopeo("inspect", "--raw", NO_TLS, ref, check=False).returncode != 0  # no credentials yet
    res = cli("login", NO_TLS, "-u", USER, "-p", PASSWORD, auth_registry.host)
    assert res.exit_code == 0 and "Login Succeeded!" in res.stdout, res
    path = tmp_path / "run" / "containers" / "auth.json"
    assert path.read_bytes() == _go_auth_json({auth_registry.host: B64})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700  # a new directory
    assert not [p for p in path.parent.iterdir() if p.name != "auth.json"]  # no temp file left
    skopeo("inspect", "--raw", NO_TLS, ref)  # skopeo finds ${XDG_RUNTIME_DIR}/containers/auth.json itself
    assert cli("inspect", NO_TLS, ref).exit_code == 0
    res = cli("login", "--get-login", auth_registry.host)
    assert res.exit_code == 0 and res.stdout == f"{USER}\n", res
    assert skopeo("login", "--get-login", auth_registry.host).stdout.strip() == USER
    res = cli("login", NO_TLS, auth_registry.host)  # no user, no password: the recorded ones still work
    assert res.exit_code == 0 and "Already logged in" in res.stdout, res
    res = cli("logout", auth_registry.host)
    assert res.exit_code == 0 and f"Removed login credentials for {auth_registry.host}" in res.stdout, res
    assert json.loads(path.read_text()) == {"auths": {}}
    assert skopeo("login", "--get-login", auth_registry.host, check=False).returncode != 0
    res = cli("logout", auth_registry.host)
    assert res.exit_code == 3 and "not logged into" in res.stderr, res


def test_skopeo_login_and_ours_write_the_same_bytes(cli, skopeo, sample: Path, home: Path,  # type: ignore[no-untyped-def]
                                                  tmp_path: Path, auth_registry: Registry) -> None:
    ref = _push(cli, sample, auth_registry)
    theirs, ours = tmp_path / "skopeo.json", tmp_path / "ours.json"
    skopeo("login", NO_TLS, "--authfile", str(theirs), "-u", USER, "-p", PASSWORD, auth_registry.host)
    assert cli("login", NO_TLS, "--authfile", ours, "-u", USER, "-p", PASSWORD, auth_registry.host).exit_code == 0
    assert ours.read_bytes() == theirs.read_bytes()
    ns = f"{auth_registry.host}/secure"  # a namespaced key, after the registry's
    skopeo("login", NO_TLS, "--authfile", str(theirs), "-u", USER, "-p", PASSWORD, ns)
    assert cli("login", NO_TLS, "--authfile", ours, "-u", USER, "-p", PASSWORD, ns).exit_code == 0
    assert ours.read_bytes() == theirs.read_bytes() == _go_auth_json({auth_registry.host: B64, ns: B64})
    # each reads the other's file
    assert cli("inspect", NO_TLS, "--authfile", theirs, ref).exit_code == 0
    assert cli("login", "--get-login", "--authfile", theirs, auth_registry.host).stdout == f"{USER}\n"
    skopeo("inspect", "--raw", NO_TLS, "--authfile", str(ours), ref)
    # skopeo's logout of our file, our logout of theirs
    for key in (auth_registry.host, ns):
        skopeo("logout", "--authfile", str(ours), key)
        assert cli("logout", "--authfile", theirs, key).exit_code == 0
    assert json.loads(ours.read_text()) == json.loads(theirs.read_text()) == {"auths": {}}
    assert cli("inspect", NO_TLS, "--authfile", ours, ref).exit_code == 7


def test_login_keeps_the_rest_of_the_file_and_namespaced_keys(cli, home: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                             auth_registry: Registry) -> None:
    path = tmp_path / "auth.json"
    path.write_text(json.dumps({"extra": {"keep": [1, 2]}, "auths": {"other.example": {"auth": "b3RoZXI6eA==",
                                                                                     "email": "x@example"}}}))
    path.chmod(0o644)
    key = f"{auth_registry.host}/secure"
    res = cli("login", NO_TLS, "--authfile", path, "-u", USER, "-p", PASSWORD, f"https://{key}")
    assert res.exit_code == 0, res  # a URL is cut to host[:port] (c/common's replaceURLByHostPort)
    res = cli("login", NO_TLS, "--authfile", path, "-u", USER, "-p", PASSWORD, key)  # a namespace key
    assert res.exit_code == 0, res
    doc = json.loads(path.read_text())
    assert doc == {"auths": {auth_registry.host: {"auth": B64}, key: {"auth": B64},
                             "other.example": {"auth": "b3RoZXI6eA==", "email": "x@example"}},
                   "extra": {"keep": [1, 2]}}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    res = cli("logout", "--authfile", path, key)
    assert res.exit_code == 0, res
    assert set(json.loads(path.read_text())["auths"]) == {auth_registry.host, "other.example"}
    res = cli("logout", "--all", "--authfile", path)
    assert res.exit_code == 0 and "all registries" in res.stdout, res
    assert json.loads(path.read_text()) == {"auths": {}, "extra": {"keep": [1, 2]}}


def test_login_refused_writes_nothing_and_debug_shows_no_secret(cli, home: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                auth_registry: Registry) -> None:
    path = tmp_path / "auth.json"
    res = cli("login", NO_TLS, "--authfile", path, "-u", USER, "-p", f"wrong-{PASSWORD}", auth_registry.host)
    assert res.exit_code == 7 and "invalid username/password" in res.stderr, res
    assert not path.exists()
    wrong = [f"wrong-{PASSWORD}", base64.b64encode(f"{USER}:wrong-{PASSWORD}".encode()).decode()]
    for args in (["-p", f"wrong-{PASSWORD}"], ["--password-stdin"]):
        proc = subprocess.run([sys.executable, "-m", "ocilayout", "--debug", "login", NO_TLS, "--authfile",
                               str(path), "-u", USER, *args, auth_registry.host], input=f"wrong-{PASSWORD}\n",
                              capture_output=True, text=True, timeout=120)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0 and "RegistryError" in out and "invalid username/password" in out, out[-2000:]
        assert not any(s in out for s in wrong), out[-2000:]
    assert not path.exists()


def test_password_stdin_and_no_terminal(home: Path, tmp_path: Path, auth_registry: Registry) -> None:
    path = tmp_path / "auth.json"

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ocilayout", "login", NO_TLS, "--authfile", str(path), *args,
                               auth_registry.host], input=stdin, capture_output=True, text=True, timeout=120)

    proc = run("-u", USER)  # no password, stdin is not a terminal: refuse, never read it as a password
    assert proc.returncode == 2 and "no terminal" in proc.stderr, proc
    proc = run("--password-stdin")
    assert proc.returncode == 2 and "--username" in proc.stderr, proc
    proc = run("-u", USER, "-p", "x", "--password-stdin")
    assert proc.returncode == 2, proc
    proc = run("-u", USER, "--password-stdin", stdin=f"{PASSWORD}\n")
    assert proc.returncode == 0 and "Login Succeeded!" in proc.stdout, proc
    assert json.loads(path.read_text()) == {"auths": {auth_registry.host: {"auth": B64}}}


def _on_a_terminal(args: list[str], answers: list[tuple[bytes, bytes]], done: bytes) -> tuple[int, bytes]:
    """Run ``ocilayout ARGS`` on a pseudo-terminal, typing each answer after its prompt appears; returns the
    exit code and everything the terminal showed."""
    import pty
    import select
    import time

    main, secondary = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "ocilayout", *args], stdin=secondary, stdout=secondary,
                            stderr=secondary, start_new_session=True)
    os.close(secondary)
    seen = b""

    def read_until(marker: bytes) -> None:
        nonlocal seen
        deadline = time.monotonic() + 60
        while marker not in seen and time.monotonic() < deadline and proc.poll() is None:
            ready, _, _ = select.select([main], [], [], 1)
            if ready:
                try:
                    seen += os.read(main, 4096)
                except OSError:
                    break

    for prompt, answer in answers:
        read_until(prompt)
        os.write(main, answer)
    read_until(done)
    proc.wait(timeout=60)
    with contextlib.suppress(OSError):
        while select.select([main], [], [], 0.2)[0]:
            chunk = os.read(main, 4096)
            if not chunk:
                break
            seen += chunk
    os.close(main)
    return proc.returncode, seen


def test_login_prompts_on_a_terminal_without_echoing_the_password(cli, sample: Path, home: Path,  # type: ignore[no-untyped-def]
                                                                  tmp_path: Path, auth_registry: Registry) -> None:
    path = tmp_path / "auth.json"
    code, seen = _on_a_terminal(["login", NO_TLS, "--authfile", str(path), auth_registry.host],
                                [(b"Username: ", f"{USER}\n".encode()), (b"Password: ", f"{PASSWORD}\n".encode())],
                                b"Login Succeeded!")
    assert code == 0 and b"Login Succeeded!" in seen, seen
    assert PASSWORD.encode() not in seen and USER.encode() in seen  # the user name echoes, the password never
    assert json.loads(path.read_text()) == {"auths": {auth_registry.host: {"auth": B64}}}
    ref = _push(cli, sample, auth_registry)  # --creds USER: skopeo's prompt for the password
    code, seen = _on_a_terminal(["inspect", NO_TLS, "--creds", USER, ref],
                                [(b"Password for alice: ", f"{PASSWORD}\n".encode())], b"}")
    assert code == 0 and b'"Digest"' in seen and PASSWORD.encode() not in seen, seen
    res = cli("inspect", NO_TLS, "--creds", USER, ref)  # no terminal: refused, never read from stdin
    assert res.exit_code == 2 and "no password given" in res.stderr, res


def test_login_through_the_token_server(cli, home: Path, tmp_path: Path, token_registry: Registry) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "auth.json"
    res = cli("login", NO_TLS, "--authfile", path, "-u", USER, "-p", "nope", token_registry.host)
    assert res.exit_code == 7 and "invalid username/password" in res.stderr, res
    assert not path.exists()
    res = cli("login", NO_TLS, "--authfile", path, "-u", USER, "-p", PASSWORD, token_registry.host)
    assert res.exit_code == 0, res
    assert (USER, "") in token_registry.token.requests  # type: ignore[attr-defined]  # a token for no scope
    assert not [p for p in token_registry.token.paths if "scope=" in p]  # type: ignore[attr-defined]
    assert json.loads(path.read_text()) == {"auths": {token_registry.host: {"auth": B64}}}


def test_login_errors(cli, home: Path, tmp_path: Path, auth_registry: Registry) -> None:  # type: ignore[no-untyped-def]
    for arg in (f"{auth_registry.host}/repo:tag", f"{auth_registry.host}/repo@sha256:{'a' * 64}", "noregistry/repo"):
        res = cli("login", NO_TLS, "-u", USER, "-p", PASSWORD, arg)
        assert res.exit_code == 2, res
    res = cli("login", "-u", USER, "-p", PASSWORD, auth_registry.host)  # plain HTTP without --tls-verify=false
    assert res.exit_code == 7 and "--tls-verify=false" in res.stderr, res
    res = cli("login", "--get-login", "--authfile", tmp_path / "none.json", auth_registry.host)
    assert res.exit_code == 3 and "not logged into" in res.stderr, res
    res = cli("logout", "--authfile", tmp_path / "none.json", auth_registry.host)
    assert res.exit_code == 3 and "not accessible" in res.stderr, res
    res = cli("logout", "--all", auth_registry.host)
    assert res.exit_code == 2, res
    assert not (tmp_path / "run" / "containers").exists()  # nothing written anywhere


def test_default_file_and_xdg_runtime_dir(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert credentials.write_target().path == tmp_path / "run" / "containers" / "auth.json"
    monkeypatch.delenv("XDG_RUNTIME_DIR")  # containers/image: /run/containers/UID/auth.json
    assert credentials.write_target().path == Path(f"/run/containers/{os.getuid()}/auth.json")
    assert credentials.auth_files(RegistryOptions())[0].path == Path(f"/run/containers/{os.getuid()}/auth.json")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "missing"))
    with pytest.raises(RegistryError, match="XDG_RUNTIME_DIR does not exist"):
        credentials.write_target()
    assert tmp_path / "missing" not in [f.path.parents[1] for f in credentials.auth_files(RegistryOptions())]
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    target = credentials.write_target()
    assert target.path == tmp_path / "docker" / "config.json" and target.compat
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "env.json"))
    assert credentials.write_target().path == tmp_path / "env.json"
    assert credentials.write_target(str(tmp_path / "flag.json")).path == tmp_path / "flag.json"


def test_docker_compatible_file(home: Path, tmp_path: Path, helper: Path) -> None:
    """Docker's config.json (DOCKER_CONFIG, --compat-auth-file): Hub's key is https://index.docker.io/v1/,
    namespaced keys are refused, every other key is kept."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"psFormat": "table", "auths": {}}))
    f = AuthFile(path, compat=True, explicit=True)
    credentials.store(f, "docker.io", Credentials(USER, PASSWORD))
    doc = json.loads(path.read_text())
    assert doc == {"auths": {"https://index.docker.io/v1/": {"auth": B64}}, "psFormat": "table"}
    with pytest.raises(InvalidArgument, match="namespaced"):
        credentials.store(f, "quay.io/team", Credentials(USER, PASSWORD))
    found = credentials.find(RegistryOptions(authfile=str(path)), "docker.io/library/busybox")
    assert found is not None and found[0] == Credentials(USER, PASSWORD)
    assert credentials.remove(f, "docker.io") and json.loads(path.read_text())["auths"] == {}
    path.write_text(json.dumps({"auths": {"a.example": {"auth": B64}}, "credHelpers": {"b.example": "testhelper"}}))
    credentials.remove_all(f)  # Docker's credHelpers stay (containers/image rewrites only "auths" there)
    assert json.loads(path.read_text()) == {"auths": {}, "credHelpers": {"b.example": "testhelper"}}
    assert "erase b.example" in (helper / "calls.log").read_text()


def test_key_normalisation_as_containers_image(tmp_path: Path) -> None:
    assert credentials.login_key("https://reg.example:5000/v2/") == ("reg.example:5000", "reg.example:5000")
    assert credentials.login_key("reg.example/team/app") == ("reg.example/team/app", "reg.example")
    assert credentials.login_key("docker.io") == ("docker.io", "docker.io")
    path = tmp_path / "auth.json"

    def enc(s: str) -> str:
        return base64.b64encode(s.encode()).decode()

    path.write_text(json.dumps({"auths": {
        "reg.example/team": {"auth": enc("team:t")},
        "http://reg.example/some/path": {"auth": enc("url:u")},  # normalised: only when nothing exact matches
        "other.example": {"auth": enc("nocolon")},  # no ':' -- skipped, as docker does
        "https://index.docker.io/v1/": {"auth": enc("hub:h")}}}))
    opts = RegistryOptions(authfile=str(path))

    def user(key: str) -> str | None:
        found = credentials.find(opts, key)
        return found[0].username if found else None

    assert user("reg.example/team/app") == "team"
    assert user("reg.example/solo/app") == "url"
    assert user("docker.io/library/busybox") == "hub"
    assert user("other.example/x") is None
    assert "nocolon" not in repr(credentials.find(opts, "reg.example/team/app"))


def test_symlinked_auth_file_is_replaced_not_followed(home: Path, tmp_path: Path) -> None:
    """As Go's AtomicWriteFile: the temp file is made beside the link and renamed over it; the target and
    its directory are untouched."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "real.json").write_text('{"auths": {}}')
    link_dir = tmp_path / "cfg"
    link_dir.mkdir()
    (link_dir / "auth.json").symlink_to(elsewhere / "real.json")
    credentials.store(AuthFile(link_dir / "auth.json"), "reg.example", Credentials(USER, PASSWORD))
    assert not (link_dir / "auth.json").is_symlink()
    assert json.loads((link_dir / "auth.json").read_text()) == {"auths": {"reg.example": {"auth": B64}}}
    assert (elsewhere / "real.json").read_text() == '{"auths": {}}'
    assert sorted(p.name for p in elsewhere.iterdir()) == ["real.json"]
    assert sorted(p.name for p in link_dir.iterdir()) == ["auth.json"]


# -- credential helpers ---------------------------------------------------------------------------------------

def test_cred_helpers_store_get_erase(cli, skopeo, sample: Path, home: Path, tmp_path: Path, helper: Path,  # type: ignore[no-untyped-def]
                                      auth_registry: Registry) -> None:
    ref = _push(cli, sample, auth_registry)
    path = tmp_path / "auth.json"
    original = json.dumps({"auths": {}, "credHelpers": {auth_registry.host: "testhelper"}})
    path.write_text(original)
    res = cli("login", "-v", NO_TLS, "--authfile", path, "-u", USER, "-p", PASSWORD, auth_registry.host)
    assert res.exit_code == 0 and "credential helper: testhelper" in res.stdout, res
    assert path.read_text() == original  # the secret went to the helper, not the file
    assert f"store {auth_registry.host}" in (helper / "calls.log").read_text()
    assert cli("inspect", NO_TLS, "--authfile", path, ref).exit_code == 0  # read back through the helper
    skopeo("inspect", "--raw", NO_TLS, "--authfile", str(path), ref)  # skopeo runs the same helper program
    assert cli("login", "--get-login", "--authfile", path, auth_registry.host).stdout == f"{USER}\n"
    res = cli("logout", "--authfile", path, auth_registry.host)
    assert res.exit_code == 0, res
    assert f"erase {auth_registry.host}" in (helper / "calls.log").read_text()
    res = cli("inspect", NO_TLS, "--authfile", path, ref)  # the helper says "credentials not found": anonymous
    assert res.exit_code == 7 and "authentication required" in res.stderr, res


def test_creds_store_in_docker_config(cli, sample: Path, home: Path, tmp_path: Path, helper: Path,  # type: ignore[no-untyped-def]
                                      auth_registry: Registry) -> None:
    from ocilayout.registry.credentials import helper_store

    ref = _push(cli, sample, auth_registry)
    (home / ".docker").mkdir()
    (home / ".docker" / "config.json").write_text(json.dumps({"auths": {auth_registry.host: {}},
                                                             "credsStore": "testhelper"}))
    res = cli("inspect", NO_TLS, ref)
    assert res.exit_code == 7 and "authentication required" in res.stderr, res
    helper_store("testhelper", auth_registry.host, Credentials(USER, PASSWORD))
    assert cli("inspect", NO_TLS, ref).exit_code == 0
    assert f"get {auth_registry.host}" in (helper / "calls.log").read_text()
    assert credentials.helper_list("testhelper") == {auth_registry.host: USER}


def test_failing_helper_is_an_error_without_the_secret(cli, sample: Path, home: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                       helper: Path, auth_registry: Registry,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    ref = _push(cli, sample, auth_registry)
    path = tmp_path / "auth.json"
    path.write_text(json.dumps({"auths": {}, "credHelpers": {auth_registry.host: "testhelper"}}))
    monkeypatch.setenv("TEST_CRED_FAIL", "store")  # the helper fails, repeating its input (the secret)
    res = cli("login", NO_TLS, "--authfile", path, "-u", USER, "-p", PASSWORD, auth_registry.host)
    assert res.exit_code == 7 and "docker-credential-testhelper store failed" in res.stderr, res
    assert "<redacted>" in res.stderr and PASSWORD not in res.stderr + res.stdout and B64 not in res.stderr, res
    monkeypatch.setenv("TEST_CRED_FAIL", "get")  # a lookup that fails is an error, for login too (as c/common)
    for args in (["inspect", NO_TLS, "--authfile", path, ref],
                 ["login", NO_TLS, "--authfile", path, "-u", USER, "-p", PASSWORD, auth_registry.host]):
        res = cli(*args)
        assert res.exit_code == 7 and "docker-credential-testhelper get failed" in res.stderr, res
    path.write_text(json.dumps({"auths": {}, "credHelpers": {auth_registry.host: "missing"}}))
    res = cli("inspect", NO_TLS, "--authfile", path, ref)
    assert res.exit_code == 7 and "docker-credential-missing is not installed" in res.stderr, res


# -- registry flags on sign / verify ----------------------------------------------------------------------------

def test_sign_and_verify_in_the_htpasswd_registry(cli, skopeo, sample: Path, home: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                  auth_registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    from ocilayout.signature import keys

    monkeypatch.setenv("OCILAYOUT_PASSPHRASE", "pw")
    priv, pub = keys.write_key_pair(tmp_path / "k", b"pw")
    ref = _push(cli, sample, auth_registry)
    res = cli("sign", ref, "--key", priv, NO_TLS)  # no credentials: refused, nothing signed
    assert res.exit_code == 7 and "authentication required" in res.stderr, res
    res = cli("sign", ref, "--key", priv, "--tls-verify=maybe")
    assert res.exit_code == 2, res
    res = cli("sign", ref, "--key", priv, NO_TLS, "--creds", f"{USER}:{PASSWORD}")
    assert res.exit_code == 0 and f"as {auth_registry.host}/secure/app:v1" in res.stdout, res
    assert any(t.endswith(".sig") for t in auth_registry.tags("secure/app"))
    authfile = tmp_path / "auth.json"
    assert cli("login", NO_TLS, "--authfile", authfile, "-u", USER, "-p", PASSWORD, auth_registry.host).exit_code == 0
    res = cli("verify", ref, "--public-key", pub, NO_TLS, "--authfile", authfile)
    assert res.exit_code == 0 and "Signature verified" in res.stdout, res
    res = cli("verify", ref, "--public-key", pub, NO_TLS)
    assert res.exit_code == 7, res
    # skopeo sees the signature too (1.9.3 reads cosign attachments only with use-sigstore-attachments;
    # the .sig tag is a plain OCI manifest it can inspect)
    sig_tag = next(t for t in auth_registry.tags("secure/app") if t.endswith(".sig"))
    out = skopeo("inspect", "--raw", NO_TLS, "--creds", f"{USER}:{PASSWORD}", auth_registry.ref("secure/app", sig_tag))
    assert "dev.cosignproject.cosign/signature" in out.stdout


def test_docker_hub_keys_for_helpers_and_legacy_dockercfg(home: Path, tmp_path: Path, helper: Path) -> None:
    """credHelpers get ``docker.io`` (containers/image), credsStore Docker's ``https://index.docker.io/v1/``;
    ``~/.dockercfg`` (a bare map keyed by URL) is read last."""
    (home / ".dockercfg").write_text(json.dumps({"https://index.docker.io/v1/": {"auth": B64, "email": "e"}}))
    found = credentials.find(RegistryOptions(), "docker.io/library/busybox")
    assert found is not None and found[0] == Credentials(USER, PASSWORD) and found[1] == home / ".dockercfg"
    (home / ".docker").mkdir()
    config = home / ".docker" / "config.json"
    config.write_text(json.dumps({"credsStore": "testhelper"}))
    credentials.helper_store("testhelper", "https://index.docker.io/v1/", Credentials("hub", "h"))
    found = credentials.find(RegistryOptions(), "docker.io/library/busybox")
    assert found is not None and found[0] == Credentials("hub", "h") and found[1] == config
    config.write_text(json.dumps({"credHelpers": {"docker.io": "testhelper"}}))
    credentials.helper_store("testhelper", "docker.io", Credentials("helper", "x"))
    found = credentials.find(RegistryOptions(), "docker.io/library/busybox")
    assert found is not None and found[0].username == "helper"
    assert "get docker.io" in (helper / "calls.log").read_text()


def test_logout_names_the_file_that_holds_other_credentials(cli, home: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (home / ".docker").mkdir()
    (home / ".docker" / "config.json").write_text(json.dumps({"auths": {"reg.example": {"auth": B64}}}))
    res = cli("logout", "reg.example")
    assert res.exit_code == 3 and "not logged into reg.example" in res.stderr and "config.json" in res.stderr, res
    assert json.loads((home / ".docker" / "config.json").read_text()) == {"auths": {"reg.example": {"auth": B64}}}
    assert not (tmp_path / "run" / "containers").exists()
