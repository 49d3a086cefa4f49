"""registries.conf and certs.d (ocilayout.registry.config), parsed as containers/image parses them and used
against the real docker-registry on loopback: rewrites, mirrors (down, then working), insecure, blocked,
the v1 format; CAs and client certificates from a certs.d directory against a TLS registry.

Every test here runs with the system files moved into its tmp_path (the autouse fixture), so the host's
/etc/containers and ~/.config never leak in.
"""

from __future__ import annotations

import datetime
import hashlib
import http.server
import ipaddress
from pathlib import Path

import pytest
from conftest import Registry, assert_fsck, serve_http, start_registry, stop_registry

import ocilayout.registry.config as config_mod
from ocilayout.errors import InvalidArgument, NotFound
from ocilayout.registry.config import (
    Endpoint,
    RegistryEntry,
    cert_dir_for,
    load_registries_conf,
    pull_sources,
    tls_files,
)
from ocilayout.store import LayoutStore

pytestmark = pytest.mark.interop


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """System and user configuration under tmp_path; returns the fake HOME."""
    etc = tmp_path / "etc"
    monkeypatch.setattr(config_mod, "SYSTEM_CONF", etc / "containers/registries.conf")
    monkeypatch.setattr(config_mod, "SYSTEM_CONF_DIR", etc / "containers/registries.conf.d")
    monkeypatch.setattr(config_mod, "SYSTEM_CERTS_D", (etc / "containers/certs.d", etc / "docker/certs.d"))
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("CONTAINERS_REGISTRIES_CONF", raising=False)
    import ocilayout.registry.client as client_mod

    monkeypatch.setattr(client_mod, "BACKOFF", 0.01)  # endpoints that are down fail fast
    return home


def _repo(tmp_path: Path, name: str = "app") -> str:
    return f"c{hashlib.sha256(str(tmp_path).encode()).hexdigest()[:12]}/{name}"


def _digest(layout: Path, tag: str) -> str:
    return str(LayoutStore.open(layout).resolve(tag).digest)


def _conf(tmp_path: Path, text: str, name: str = "registries.conf") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# -- parsing, as sysregistriesv2 does --------------------------------------------------------------------

def test_longest_prefix_wins_and_the_rest_is_appended(tmp_path: Path) -> None:
    conf = load_registries_conf(str(_conf(tmp_path, """
[[registry]]
prefix = "example.test"
location = "mirror.test"
[[registry]]
prefix = "example.test/x"
location = "127.0.0.1:5000/y"
[[registry]]
location = "other.test/"
""")))
    entry = conf.find("example.test/x/app")
    assert entry is not None and entry.prefix == "example.test/x"
    assert [s.name for s in pull_sources(entry, "example.test/x/app", digested=False)] == ["127.0.0.1:5000/y/app"]
    assert conf.find("example.test/xy/app").prefix == "example.test"  # type: ignore[union-attr]  # not x
    assert conf.find("example.test:5000/app").prefix == "example.test"  # type: ignore[union-attr]  # upstream quirk
    assert conf.find("other.test/a").endpoint.location == "other.test"  # type: ignore[union-attr]  # "/" trimmed
    assert conf.find("nothing.test/a") is None


def test_wildcard_prefixes_match_subdomains_only(tmp_path: Path) -> None:
    conf = load_registries_conf(str(_conf(tmp_path, """
[[registry]]
prefix = "*.example.test"
insecure = true
""")))
    assert conf.find("a.example.test/app") is not None
    assert conf.find("a.b.example.test:5000/app") is not None
    assert conf.find("example.test/app") is None
    assert conf.find("evil.test/a.example.test/app") is None  # the match must be in the host
    entry = conf.find("a.example.test/app")
    assert [s.name for s in pull_sources(entry, "a.example.test/app", digested=False)] == ["a.example.test/app"]
    bad = _conf(tmp_path, '[[registry]]\nprefix = "*.example.test/ns"\nlocation = "x.test"\n', "bad.conf")
    with pytest.raises(InvalidArgument, match="Wildcarded prefix"):
        load_registries_conf(str(bad))


def test_mirrors_by_digest_and_by_tag() -> None:
    entry = RegistryEntry(prefix="example.test", endpoint=Endpoint("example.test"), mirrors=(
        Endpoint("all.test"), Endpoint("digest.test", pull_from_mirror="digest-only"),
        Endpoint("tag.test", pull_from_mirror="tag-only")))
    by_tag = [s.name for s in pull_sources(entry, "example.test/app", digested=False)]
    by_digest = [s.name for s in pull_sources(entry, "example.test/app", digested=True)]
    assert by_tag == ["all.test/app", "tag.test/app", "example.test/app"]
    assert by_digest == ["all.test/app", "digest.test/app", "example.test/app"]
    only = RegistryEntry(prefix="example.test", endpoint=Endpoint("example.test"),
                         mirrors=(Endpoint("m.test"),), mirror_by_digest_only=True)
    assert [s.name for s in pull_sources(only, "example.test/app", digested=False)] == ["example.test/app"]
    assert [s.mirror for s in pull_sources(only, "example.test/app", digested=True)] == [True, False]


@pytest.mark.parametrize(("text", "match"), [
    ('[[registry]]\nlocation = "https://example.test"\n', "URI schemes are not supported"),
    ('[[registry]]\ninsecure = true\n', "both location and prefix are unset"),
    ('[[registry]]\nlocation = "a.test"\npull-from-mirror = "all"\n', "non-mirror registry"),
    ('[[registry]]\nlocation = "a.test"\n[[registry.mirror]]\nlocation = "m.test"\npull-from-mirror = "x"\n',
     "unsupported pull-from-mirror"),
    ('[[registry]]\nlocation = "a.test"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = "m.test"\n'
     'pull-from-mirror = "all"\n', "at the same time"),
    ('[[registry]]\nlocation = "a.test"\n[[registry.mirror]]\ninsecure = true\n', "mirror location is unset"),
    ('[[registry]]\nprefix = "p.test"\nlocation = "a.test"\n[[registry]]\nprefix = "q.test"\nlocation = "a.test"\n'
     'insecure = true\n', "conflicting 'insecure'"),
    ('[registries.insecure]\nregistries = ["a.test"]\n[[registry]]\nlocation = "b.test"\n', "mixing sysregistry v1/v2"),
    ('unqualified-search-registries = ["b.test"]\n[registries.search]\nregistries = []\n', "mixing sysregistry v1/v2"),
    ("[[registry]\n", "not valid TOML"),
])
def test_invalid_files_are_refused(cli, tmp_path: Path, text: str, match: str) -> None:  # type: ignore[no-untyped-def]
    path = _conf(tmp_path, text)
    with pytest.raises(InvalidArgument, match=match):
        load_registries_conf(str(path))
    res = cli("inspect", "--registries-conf", str(path), "docker://a.test/app:v1")
    assert res.exit_code == 2 and match.split("'")[0] in res.stderr and "Traceback" not in res.stderr, res


def test_unknown_keys_are_tolerated(tmp_path: Path) -> None:
    conf = load_registries_conf(str(_conf(tmp_path, """
unqualified-search-registries = ["docker.io"]
short-name-mode = "enforcing"
some-future-key = 3
[aliases]
"app" = "example.test/app"
[[registry]]
location = "a.test"
future-field = "x"
[[registry.mirror]]
location = "m.test"
another = 1
""")))
    entry = conf.find("a.test/app")
    assert entry is not None and [m.location for m in entry.mirrors] == ["m.test"]


def test_v1_format(tmp_path: Path) -> None:
    conf = load_registries_conf(str(_conf(tmp_path, """
[registries.search]
registries = ["docker.io"]
[registries.insecure]
registries = ["plain.test:5000", "both.test"]
[registries.block]
registries = ["blocked.test", "both.test"]
""")))
    assert conf.find("plain.test:5000/app").endpoint.insecure  # type: ignore[union-attr]
    blocked = conf.find("blocked.test/app")
    assert blocked is not None and blocked.blocked and not blocked.endpoint.insecure
    both = conf.find("both.test/a")
    assert both is not None and both.blocked and both.endpoint.insecure
    assert not conf.find("docker.io/library/x").blocked  # type: ignore[union-attr]  # search only


def test_which_files_are_read(tmp_path: Path, _isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """System file + system drop-ins + user drop-ins by default; the user file replaces the system one (and
    its drop-ins); the environment variable or the flag names the main file (drop-ins still apply)."""
    home = _isolated
    sys_file, sys_dir = config_mod.SYSTEM_CONF, config_mod.SYSTEM_CONF_DIR
    sys_dir.mkdir(parents=True)
    sys_file.write_text('[[registry]]\nlocation = "sys.test"\n[[registry]]\nlocation = "over.test"\n')
    (sys_dir / "10-a.conf").write_text('[[registry]]\nlocation = "over.test"\ninsecure = true\n')
    (sys_dir / "20-b.conf").write_text('[[registry]]\nlocation = "dropin.test"\n')
    (sys_dir / "30-c.ignore").write_text("not toml at all [")
    user_dir = home / ".config/containers/registries.conf.d"
    user_dir.mkdir(parents=True)
    (user_dir / "99-user.conf").write_text('[[registry]]\nlocation = "userdrop.test"\nblocked = true\n')

    conf = load_registries_conf()
    assert {r.prefix for r in conf.registries} == {"sys.test", "over.test", "dropin.test", "userdrop.test"}
    assert conf.find("over.test/a").endpoint.insecure  # type: ignore[union-attr]  # the later drop-in replaced it

    env_file = _conf(tmp_path, '[[registry]]\nlocation = "env.test"\n', "env.conf")
    monkeypatch.setenv("CONTAINERS_REGISTRIES_CONF", str(env_file))
    assert {r.prefix for r in load_registries_conf().registries} == {"env.test", "over.test", "dropin.test",
                                                                     "userdrop.test"}
    flag_file = _conf(tmp_path, '[[registry]]\nlocation = "flag.test"\n', "flag.conf")
    assert "flag.test" in {r.prefix for r in load_registries_conf(str(flag_file)).registries}
    monkeypatch.delenv("CONTAINERS_REGISTRIES_CONF")

    (home / ".config/containers/registries.conf").write_text('[[registry]]\nlocation = "user.test"\n')
    assert {r.prefix for r in load_registries_conf().registries} == {"user.test", "userdrop.test"}

    (user_dir / "50-v1.conf").write_text('[registries.block]\nregistries = ["x.test"]\n')
    with pytest.raises(InvalidArgument, match="must be in v2 format"):
        load_registries_conf()


def test_a_changed_file_is_read_again(tmp_path: Path) -> None:
    """Parsed configurations are cached by the files' identities (a pull opens several clients); an edit,
    a new drop-in or a removed one is seen by the next load."""
    import os

    path = _conf(tmp_path, '[[registry]]\nlocation = "a.test"\n')
    first = load_registries_conf(str(path))
    assert load_registries_conf(str(path)) is first
    path.write_text('[[registry]]\nlocation = "b.test"\n')
    os.utime(path, ns=(1, 1))
    assert [r.prefix for r in load_registries_conf(str(path)).registries] == ["b.test"]
    config_mod.SYSTEM_CONF_DIR.mkdir(parents=True)
    drop = config_mod.SYSTEM_CONF_DIR / "x.conf"
    drop.write_text('[[registry]]\nlocation = "c.test"\n')
    assert [r.prefix for r in load_registries_conf(str(path)).registries] == ["b.test", "c.test"]
    drop.unlink()
    assert [r.prefix for r in load_registries_conf(str(path)).registries] == ["b.test"]


def test_an_explicit_file_must_exist(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotFound):
        load_registries_conf(str(tmp_path / "nope.conf"))
    monkeypatch.setenv("CONTAINERS_REGISTRIES_CONF", str(tmp_path / "nope.conf"))
    res = cli("inspect", "docker://a.test/app:v1")
    assert res.exit_code == 3 and "does not exist" in res.stderr, res
    monkeypatch.delenv("CONTAINERS_REGISTRIES_CONF")
    assert load_registries_conf().registries == ()  # no system file: an empty configuration


# -- against the real registry ----------------------------------------------------------------------------

class _Down:
    """An HTTP endpoint that answers 503 to everything (a mirror that is down); counts requests."""

    def __init__(self) -> None:
        self.hits = 0
        self.server, self.host = serve_http(self._answer, methods=("GET", "HEAD", "POST", "PUT"), http11=False)

    def _answer(self, h: http.server.BaseHTTPRequestHandler, method: str) -> None:
        self.hits += 1
        h.send_response(503)
        h.send_header("Content-Length", "0")
        h.end_headers()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def down():  # type: ignore[no-untyped-def]
    d = _Down()
    yield d
    d.close()


@pytest.fixture
def pushed(cli, sample: Path, tmp_path: Path, registry: Registry) -> str:  # type: ignore[no-untyped-def]
    """The sample's v1 image at REGISTRY/<repo>/mirror/app:v1 and REGISTRY/<repo>/y/app:v1; returns <repo>."""
    base = _repo(tmp_path, "base").split("/")[0]
    for where in ("mirror/app", "y/app"):
        res = cli("copy", "--dest-tls-verify=false", f"oci:{sample}:v1", registry.ref(f"{base}/{where}", "v1"))
        assert res.exit_code == 0, res
    return base


def test_rewrite_to_another_location_with_insecure(cli, sample: Path, tmp_path: Path, registry: Registry,  # type: ignore[no-untyped-def]
                                                   pushed: str) -> None:
    """example.test/x/app is read from 127.0.0.1:PORT/<repo>/y/app, over plain HTTP because the entry says
    insecure (no --tls-verify flag at all)."""
    conf = _conf(tmp_path, f'[[registry]]\nprefix = "example.test/x"\nlocation = "{registry.host}/{pushed}/y"\n'
                           "insecure = true\n")
    res = cli("copy", "--registries-conf", str(conf), "docker://example.test/x/app:v1", f"oci:{tmp_path}/out:v1")
    assert res.exit_code == 0, res
    assert _digest(tmp_path / "out", "v1") == _digest(sample, "v1")
    assert_fsck(tmp_path / "out")
    res = cli("inspect", "--registries-conf", str(conf), "--raw", "docker://example.test/x/app:v1")
    assert res.exit_code == 0 and res.stdout == cli("inspect", "--raw", f"oci:{sample}:v1").stdout, res


def test_insecure_allows_plain_http_and_the_flag_wins(cli, tmp_path: Path, registry: Registry, pushed: str,  # type: ignore[no-untyped-def]
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    ref = registry.ref(f"{pushed}/y/app", "v1")
    assert cli("inspect", "--raw", ref).exit_code == 7  # plain HTTP, verified TLS required
    conf = _conf(tmp_path, f'[[registry]]\nlocation = "{registry.host}"\ninsecure = true\n')
    monkeypatch.setenv("CONTAINERS_REGISTRIES_CONF", str(conf))
    assert cli("inspect", "--raw", ref).exit_code == 0
    assert cli("list-tags", f"docker://{registry.host}/{pushed}/y/app").exit_code == 0
    res = cli("inspect", "--raw", "--tls-verify=true", ref)
    assert res.exit_code == 7, res  # an explicit --tls-verify overrides the file, as in containers/image


def test_mirror_down_then_a_working_one(cli, sample: Path, tmp_path: Path, registry: Registry, pushed: str,  # type: ignore[no-untyped-def]
                                        down: _Down) -> None:
    """Mirrors are tried in order: the first answers 503, the second serves the image; the primary (a
    name that does not resolve) is never reached."""
    conf = _conf(tmp_path, f"""
[[registry]]
prefix = "example.test/x"
location = "primary.invalid/x"
[[registry.mirror]]
location = "{down.host}/m"
insecure = true
[[registry.mirror]]
location = "{registry.host}/{pushed}/mirror"
insecure = true
""")
    res = cli("copy", "--registries-conf", str(conf), "docker://example.test/x/app:v1", f"oci:{tmp_path}/out:v1")
    assert res.exit_code == 0, res
    assert down.hits > 0
    assert _digest(tmp_path / "out", "v1") == _digest(sample, "v1")


def test_digest_only_mirrors_serve_digests_only_and_the_primary_is_the_fallback(  # type: ignore[no-untyped-def]
        cli, sample: Path, tmp_path: Path, registry: Registry, pushed: str, down: _Down) -> None:
    conf = _conf(tmp_path, f"""
[[registry]]
prefix = "example.test/x"
location = "{registry.host}/{pushed}/y"
insecure = true
[[registry.mirror]]
location = "{down.host}/m"
insecure = true
pull-from-mirror = "digest-only"
""")
    res = cli("inspect", "--registries-conf", str(conf), "--raw", "docker://example.test/x/app:v1")
    assert res.exit_code == 0 and down.hits == 0, res  # a pull by tag skips the mirror
    digest = _digest(sample, "v1")
    res = cli("inspect", "--registries-conf", str(conf), "--raw", f"docker://example.test/x/app@{digest}")
    assert res.exit_code == 0 and down.hits > 0, res  # by digest: the mirror (down), then the primary


def test_every_endpoint_failing_reports_the_primary(cli, tmp_path: Path, registry: Registry, pushed: str,  # type: ignore[no-untyped-def]
                                                    down: _Down) -> None:
    conf = _conf(tmp_path, f"""
[[registry]]
prefix = "example.test/x"
location = "{registry.host}/{pushed}/y"
insecure = true
[[registry.mirror]]
location = "{down.host}/m"
insecure = true
""")
    res = cli("inspect", "--registries-conf", str(conf), "docker://example.test/x/missing:v1")
    assert res.exit_code == 3, res  # the primary's NotFound, not the mirror's 503
    assert "mirrors also failed" in res.stderr and down.host in res.stderr, res


def test_blocked_is_refused_before_any_request(cli, sample: Path, tmp_path: Path, down: _Down) -> None:  # type: ignore[no-untyped-def]
    conf = _conf(tmp_path, f'[[registry]]\nlocation = "{down.host}"\nblocked = true\ninsecure = true\n')
    key, pw = tmp_path / "key", tmp_path / "pw"
    pw.write_text("secret\n")
    assert cli("generate-sigstore-key", "--output-prefix", str(key), "--passphrase-file", str(pw)).exit_code == 0
    for args in (["copy", f"docker://{down.host}/app:v1", f"oci:{tmp_path}/out:v1"],
                 ["copy", f"oci:{sample}:v1", f"docker://{down.host}/app:v1"],
                 ["inspect", f"docker://{down.host}/app:v1"],
                 ["list-tags", f"docker://{down.host}/app"],
                 ["delete", f"docker://{down.host}/app:v1"],
                 ["catalog", down.host],
                 ["sign", "--key", str(key) + ".private", "--passphrase-file", str(pw), f"docker://{down.host}/app:v1"],
                 ["verify", "--public-key", str(key) + ".pub", f"docker://{down.host}/app:v1"]):
        res = cli(*args[:1], "--registries-conf", str(conf), *args[1:])
        assert res.exit_code == 7 and f"registry {down.host} is blocked in {conf}" in res.stderr, (args, res)
        assert len(res.stderr.strip().splitlines()) == 1
    assert down.hits == 0
    assert not (tmp_path / "out").exists()


def test_v1_format_against_the_registry(cli, sample: Path, tmp_path: Path, registry: Registry, pushed: str,  # type: ignore[no-untyped-def]
                                        down: _Down) -> None:
    conf = _conf(tmp_path, f'[registries.insecure]\nregistries = ["{registry.host}"]\n'
                           f'[registries.block]\nregistries = ["{down.host}"]\n')
    res = cli("copy", "--registries-conf", str(conf), registry.ref(f"{pushed}/y/app", "v1"), f"oci:{tmp_path}/o:v1")
    assert res.exit_code == 0, res
    assert _digest(tmp_path / "o", "v1") == _digest(sample, "v1")
    res = cli("inspect", "--registries-conf", str(conf), f"docker://{down.host}/app:v1")
    assert res.exit_code == 7 and "blocked" in res.stderr and down.hits == 0, res


def test_pushes_are_not_rewritten(cli, sample: Path, tmp_path: Path, registry: Registry, pushed: str) -> None:  # type: ignore[no-untyped-def]
    """A push goes to the registry the reference names, as upstream: the prefix/location rewrite and the
    mirrors are for pulls only."""
    repo = _repo(tmp_path, "pushed")
    conf = _conf(tmp_path, f'[[registry]]\nprefix = "{registry.host}/{repo}"\nlocation = "elsewhere.invalid/z"\n'
                           'insecure = true\n')
    res = cli("copy", "--registries-conf", str(conf), f"oci:{sample}:v1", registry.ref(repo, "v1"))
    assert res.exit_code == 0, res
    assert registry.tags(repo) == ["v1"]


# -- certs.d against a TLS registry ---------------------------------------------------------------------

def _pki(root: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ocilayout certs.d test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))

    def leaf(cn: str, usage: x509.ObjectIdentifier, san: bool) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        b = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
             .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
             .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if san:
            b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                critical=False)
        cert = b.sign(ca_key, hashes.SHA256())
        return (cert.public_bytes(serialization.Encoding.PEM),
                key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))

    root.mkdir(parents=True, exist_ok=True)
    out = {"ca": root / "ca.pem", "server": root / "server.pem", "server_key": root / "server.key",
           "client": root / "client.pem", "client_key": root / "client-key.pem"}
    out["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    s_cert, s_key = leaf("127.0.0.1", ExtendedKeyUsageOID.SERVER_AUTH, True)
    c_cert, c_key = leaf("ocilayout client", ExtendedKeyUsageOID.CLIENT_AUTH, False)
    out["server"].write_bytes(s_cert)
    out["server_key"].write_bytes(s_key)
    out["client"].write_bytes(c_cert)
    out["client_key"].write_bytes(c_key)
    return out


@pytest.fixture
def tls_registry(tmp_path: Path):  # type: ignore[no-untyped-def]
    pki = _pki(tmp_path / "pki")
    reg = start_registry(tmp_path / "tls-registry", tls=(pki["server"], pki["server_key"]))
    reg.pki = pki  # type: ignore[attr-defined]
    yield reg
    stop_registry(reg)


@pytest.fixture
def mtls_registry(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A TLS registry that requires a client certificate signed by the CA (``http.tls.clientcas``)."""
    pki = _pki(tmp_path / "mpki")
    reg = start_registry(tmp_path / "mtls-registry", tls=(pki["server"], pki["server_key"]), client_cas=pki["ca"])
    reg.pki = pki  # type: ignore[attr-defined]
    yield reg
    stop_registry(reg)


def _certs_dir(root: Path, pki: dict[str, Path], *, client: bool = False) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "ca.crt").write_bytes(pki["ca"].read_bytes())
    if client:
        (root / "client.cert").write_bytes(pki["client"].read_bytes())
        (root / "client.key").write_bytes(pki["client_key"].read_bytes())
    return root


def test_tls_refused_without_the_ca_and_accepted_with_a_cert_dir(cli, sample: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                 tls_registry: Registry, skopeo) -> None:
    ref = tls_registry.ref("tls/app", "v1")
    res = cli("copy", f"oci:{sample}:v1", ref)
    assert res.exit_code == 7 and "certificate" in res.stderr.lower(), res
    certs = _certs_dir(tmp_path / "certs", tls_registry.pki)  # type: ignore[attr-defined]
    res = cli("copy", "--dest-cert-dir", str(certs), f"oci:{sample}:v1", ref)
    assert res.exit_code == 0, res
    res = cli("copy", "--src-cert-dir", str(certs), ref, f"oci:{tmp_path}/back:v1")
    assert res.exit_code == 0 and _digest(tmp_path / "back", "v1") == _digest(sample, "v1"), res
    assert cli("inspect", "--cert-dir", str(certs), "--raw", ref).exit_code == 0
    assert cli("list-tags", "--cert-dir", str(certs), f"docker://{tls_registry.host}/tls/app").exit_code == 0
    # the same directory is what skopeo reads
    skopeo("inspect", "--raw", "--cert-dir", str(certs), f"docker://{tls_registry.host}/tls/app:v1")


def test_per_host_certs_d_search_path(cli, sample: Path, tmp_path: Path, tls_registry: Registry,  # type: ignore[no-untyped-def]
                                      _isolated: Path) -> None:
    pki = tls_registry.pki  # type: ignore[attr-defined]
    host = tls_registry.host
    ref = tls_registry.ref("tls/app", "v1")
    assert cli("copy", f"oci:{sample}:v1", ref).exit_code == 7
    docker_d = config_mod.SYSTEM_CERTS_D[1] / host
    _certs_dir(docker_d, pki)
    assert cert_dir_for(host) == docker_d
    assert cli("copy", f"oci:{sample}:v1", ref).exit_code == 0
    # the user directory comes first: an empty one there hides /etc/docker/certs.d (only one directory is read)
    user_d = _isolated / ".config/containers/certs.d" / host
    user_d.mkdir(parents=True)
    assert cert_dir_for(host) == user_d
    assert cli("inspect", "--raw", ref).exit_code == 7
    _certs_dir(user_d, pki)
    assert cli("inspect", "--raw", ref).exit_code == 0


def test_a_client_certificate_without_its_key_is_an_error(cli, tmp_path: Path, tls_registry: Registry) -> None:  # type: ignore[no-untyped-def]
    certs = _certs_dir(tmp_path / "certs", tls_registry.pki)  # type: ignore[attr-defined]
    (certs / "client.cert").write_bytes(tls_registry.pki["client"].read_bytes())  # type: ignore[attr-defined]
    with pytest.raises(InvalidArgument, match=r"missing key client\.key for client certificate client\.cert"):
        tls_files(certs)
    res = cli("inspect", "--cert-dir", str(certs), tls_registry.ref("tls/app", "v1"))
    assert res.exit_code == 2 and "missing key client.key" in res.stderr, res
    (certs / "client.cert").unlink()
    (certs / "other.key").write_text("x")
    with pytest.raises(InvalidArgument, match=r"missing client certificate other\.cert for key other\.key"):
        tls_files(certs)


def test_client_certificate_from_the_cert_dir(cli, sample: Path, tmp_path: Path, mtls_registry: Registry,  # type: ignore[no-untyped-def]
                                              skopeo) -> None:
    pki = mtls_registry.pki  # type: ignore[attr-defined]
    ref = mtls_registry.ref("mtls/app", "v1")
    ca_only = _certs_dir(tmp_path / "ca-only", pki)
    res = cli("copy", "--dest-cert-dir", str(ca_only), f"oci:{sample}:v1", ref)
    assert res.exit_code == 7, res  # the registry wants a client certificate
    with_client = _certs_dir(tmp_path / "with-client", pki, client=True)
    res = cli("copy", "--dest-cert-dir", str(with_client), f"oci:{sample}:v1", ref)
    assert res.exit_code == 0, res
    out = skopeo("inspect", "--raw", "--cert-dir", str(with_client), f"docker://{mtls_registry.host}/mtls/app:v1")
    assert out.stdout == cli("inspect", "--raw", f"oci:{sample}:v1").stdout


def test_skopeo_reads_the_same_files_the_same_way(cli, skopeo, sample: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                  registry: Registry, pushed: str, down: _Down) -> None:
    """One configuration (a rewrite with a down mirror and a working one, a digest-only mirror, a blocked
    registry, v1 insecure in a drop-in is refused, so plain v2 here), read by ocilayout and by skopeo 1.9.3:
    the same references succeed with the same bytes, and the same ones are refused."""
    digest = _digest(sample, "v1")
    conf = _conf(tmp_path, f"""
[[registry]]
prefix = "example.test/x"
location = "primary.invalid/x"
[[registry.mirror]]
location = "{down.host}/m"
insecure = true
[[registry.mirror]]
location = "{registry.host}/{pushed}/mirror"
insecure = true
pull-from-mirror = "tag-only"

[[registry]]
prefix = "example.test/d"
location = "{registry.host}/{pushed}/y"
insecure = true
[[registry.mirror]]
location = "{down.host}/d"
insecure = true
pull-from-mirror = "digest-only"

[[registry]]
location = "{registry.host}/{pushed}/y/app"
blocked = true
""")
    want = cli("inspect", "--raw", f"oci:{sample}:v1").stdout
    cases = {
        "docker://example.test/x/app:v1": True,  # down mirror, then the tag-only mirror
        f"docker://example.test/x/app@{digest}": False,  # tag-only mirror skipped, the primary does not resolve
        "docker://example.test/d/app:v1": False,  # primary location rewritten onto a blocked repository
        f"docker://example.test/d/other@{digest}": False,  # digest-only mirror down, primary lacks it
        f"docker://{registry.host}/{pushed}/mirror/app:v1": False,  # not insecure: plain HTTP refused
    }
    for ref, ok in cases.items():
        ours = cli("inspect", "--registries-conf", str(conf), "--raw", ref)
        theirs = skopeo("--registries-conf", str(conf), "inspect", "--raw", ref, check=False)
        assert (ours.exit_code == 0) == ok == (theirs.returncode == 0), (ref, ours, theirs.stderr)
        if ok:
            assert ours.stdout == theirs.stdout == want
    blocked = cli("inspect", "--registries-conf", str(conf), "--raw", "docker://example.test/d/app:v1")
    assert "is blocked" in blocked.stderr, blocked
