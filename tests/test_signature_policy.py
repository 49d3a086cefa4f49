"""containers-policy.json: strict parsing, signedIdentity matching as policy_reference_match.go, evaluation."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from conftest import peer_path, read_peer

from ocilayout.digest import Digest
from ocilayout.errors import UnsupportedFormat, VerificationError
from ocilayout.signature.dockerref import parse_normalized
from ocilayout.signature.payload import GPG_TYPE, UntrustedPayload
from ocilayout.signature.policy import (
    IdentityRule,
    ImageToVerify,
    Policy,
    PolicyError,
    identity_check,
    parse_identity_rule,
    path_scopes,
)
from ocilayout.signature.storage import DirSignatures

FIX = "containers-image/signature/fixtures"
D = "sha256:" + "ab" * 32


def accepts(rule: IdentityRule, intended: str | None, signed: str) -> bool:
    check = identity_check(rule, parse_normalized(intended) if intended else None)
    try:
        check(UntrustedPayload(GPG_TYPE, D, signed))
    except VerificationError:
        return False
    return True


R = IdentityRule


@pytest.mark.parametrize(
    ("rule", "intended", "signed", "ok"),
    [
        (R(), "busybox:latest", "docker.io/library/busybox:latest", True),
        (R(), "busybox:latest", "busybox", False),  # name-only signature
        (R(), "busybox:latest", "busybox:other", False),
        (R(), f"busybox@{D}", "busybox:v2", True),  # digest-only intended: same repository suffices
        (R(), f"busybox@{D}", "other:v2", False),
        (R(), "busybox", "busybox:latest", False),  # name-only intended
        (R(), None, "busybox:latest", False),  # dir:/oci: have no identity of their own
        (R(), "busybox:latest", "UPPERCASE:x", False),
        (R("matchExact"), "busybox:latest", "busybox:latest", True),
        (R("matchExact"), f"busybox@{D}", "busybox:latest", False),
        (R("matchExact"), f"busybox@{D}", f"busybox@{D}", True),
        (R("matchExact"), "busybox", "busybox", False),
        (R("matchRepository"), "busybox:latest", "busybox", True),
        (R("matchRepository"), "busybox:latest", "index.docker.io/library/busybox:1", True),
        (R("matchRepository"), "busybox:latest", "quay.io/busybox:latest", False),
        (R("exactReference", docker_reference="r.example/a:1"), None, "r.example/a:1", True),
        (R("exactReference", docker_reference="r.example/a:1"), None, "r.example/a:2", False),
        (R("exactReference", docker_reference="r.example/a:1"), None, "r.example/a", False),
        (R("exactRepository", docker_repository="r.example/a"), None, "r.example/a", True),
        (R("exactRepository", docker_repository="r.example/a"), None, "r.example/a:9", True),
        (R("exactRepository", docker_repository="r.example/a"), None, "r.example/b:9", False),
        (R("remapIdentity", prefix="mirror:5000/vendor", signed_prefix="vendor.example.com"),
         "mirror:5000/vendor/app:1", "vendor.example.com/app:1", True),
        (R("remapIdentity", prefix="mirror:5000/vendor", signed_prefix="vendor.example.com"),
         "mirror:5000/vendor/app:1", "mirror:5000/vendor/app:1", False),
        (R("remapIdentity", prefix="mirror:5000/vendor", signed_prefix="vendor.example.com"),
         "mirror:5000/vendorx/app:1", "mirror:5000/vendorx/app:1", True),  # not a prefix match: unchanged
        (R("remapIdentity", prefix="mirror:5000/vendor", signed_prefix="vendor.example.com"),
         None, "vendor.example.com/app:1", False),
    ],
)
def test_signed_identity_matching(rule: IdentityRule, intended: str | None, signed: str, ok: bool) -> None:
    assert accepts(rule, intended, signed) is ok


@pytest.mark.parametrize(
    "obj",
    [{"type": "nope"}, {"type": "exactReference"}, {"type": "exactReference", "dockerReference": "busybox"},
     {"type": "exactRepository", "dockerRepository": "BAD"}, {"type": "matchExact", "x": 1}, [], {"type": 3}],
)
def test_bad_identity_rules(obj: object) -> None:
    with pytest.raises(PolicyError):
        parse_identity_rule(obj)


def test_upstream_policy_fixture_parses_and_evaluates() -> None:
    p = Policy.parse(read_peer(f"{FIX}/policy.json"))
    img = ImageToVerify(Digest.parse(D), [])
    res = p.evaluate("dir", ["/some/where"], img)
    assert res.scope == "dir:" and res.allowed
    res = p.evaluate("oci", ["/some/where"], img)
    assert res.scope == "default" and not res.allowed and res.results[0].reason == "rejected by policy"
    # keys are read when evaluated: the fixture's "/keys/..." paths and "nonsense" keyData just fail
    sig_scope = p.transports["docker"]["example.com/sigstore/key-data-example"]
    assert not sig_scope[0].evaluate(img).passed


@pytest.mark.parametrize(
    ("doc", "error"),
    [
        ({}, PolicyError),
        ({"default": []}, PolicyError),
        ({"default": [{"type": "reject"}], "x": 1}, PolicyError),
        ({"default": [{"type": "sigstoreSigned", "keyPath": "/a", "keyData": "YQ=="}]}, PolicyError),
        ({"default": [{"type": "sigstoreSigned", "keyData": "%%%"}]}, PolicyError),
        ({"default": [{"type": "signedBy", "keyType": "Other", "keyPath": "/a"}]}, PolicyError),
        ({"default": [{"type": "sigstoreSigned", "fulcio": {}}]}, UnsupportedFormat),
        ({"default": [{"type": "sigstoreSigned", "keyPath": "/a", "rekorPublicKeyPath": "/r"}]}, UnsupportedFormat),
        ({"default": [{"type": "whatever"}]}, PolicyError),
    ],
)
def test_policy_parse_errors(doc: dict, error: type[Exception]) -> None:
    with pytest.raises(error):
        Policy.parse(json.dumps(doc).encode())
    with pytest.raises(PolicyError):
        Policy.parse(b'{"default":[{"type":"reject"}],"default":NaN}')


def _dir_image(tmp_path: Path, name: str) -> ImageToVerify:
    d = tmp_path / name
    d.mkdir()
    for f in sorted(peer_path(f"{FIX}/{name}").iterdir()):
        (d / f.name).write_bytes(read_peer(f"{FIX}/{name}/{f.name}"))
    store = DirSignatures(d)
    digest = store.manifest_digest()
    return ImageToVerify(digest, store.list(digest))


def test_signed_by_key_data_and_and_semantics(tmp_path: Path) -> None:
    img = _dir_image(tmp_path, "dir-img-valid")
    key = base64.b64encode(read_peer(f"{FIX}/public-key.gpg")).decode()
    ident = {"type": "exactRepository", "dockerRepository": "testing/manifest"}
    ok = {"type": "signedBy", "keyType": "GPGKeys", "keyData": key, "signedIdentity": ident}
    p = Policy.parse(json.dumps({"default": [ok]}).encode())
    assert p.evaluate("dir", [], img).allowed
    # the default identity rule (matchRepoDigestOrExact) needs an identity dir: images do not have
    p = Policy.parse(json.dumps({"default": [{**ok, "signedIdentity": {"type": "matchRepoDigestOrExact"}}]}).encode())
    [r] = p.evaluate("dir", [], img).results
    assert not r.passed and "not accepted" in r.reason
    # ...but --identity supplies one
    def with_identity(ref: str) -> ImageToVerify:
        return ImageToVerify(img.manifest_digest, img.signatures, parse_normalized(ref))

    assert p.evaluate("dir", [], with_identity("testing/manifest:latest")).allowed  # what signature-1 claims
    assert not p.evaluate("dir", [], with_identity("testing/manifest:other")).allowed
    p = Policy.parse(json.dumps({"default": [ok, {"type": "reject"}]}).encode())
    res = p.evaluate("dir", [], img)
    assert [r.passed for r in res.results] == [True, False] and not res.allowed
    p = Policy.parse(json.dumps({"default": [{**ok, "keyType": "signedByGPGKeys"}]}).encode())
    assert "not implemented" in p.evaluate("dir", [], img).results[0].reason
    # sigstore requirements ignore GPG signatures, and vice versa
    p = Policy.parse(json.dumps({"default": [{"type": "sigstoreSigned", "keyPath": str(peer_path(
        f"{FIX}/cosign.pub")), "signedIdentity": ident}]}).encode())
    assert "no signature exists" in p.evaluate("dir", [], img).results[0].reason


def test_scope_selection(tmp_path: Path) -> None:
    # containers/image's PolicyConfigurationIdentity (the resolved path) then PolicyConfigurationNamespaces (its
    # parents, not "/"). A "PATH:TAG" scope is valid to write (ValidateScope accepts it) but is never looked up.
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    scopes = path_scopes(sub, "v1")
    assert scopes[:2] == [str(sub.resolve()), str((tmp_path / "a").resolve())]
    assert "/" not in scopes and not any(":" in s for s in scopes)
    doc = {"default": [{"type": "reject"}], "transports": {"oci": {
        str((tmp_path / "a").resolve()): [{"type": "insecureAcceptAnything"}],
        f"{sub.resolve()}:v2": [{"type": "reject"}]}}}
    p = Policy.parse(json.dumps(doc).encode())
    img = ImageToVerify(Digest.parse(D), [])
    assert p.evaluate("oci", scopes, img).allowed
    res = p.evaluate("oci", path_scopes(sub, "v2"), img)
    assert res.allowed and res.scope == f"oci:{(tmp_path / 'a').resolve()}"  # the :v2 scope does not apply
    assert p.evaluate("oci-archive", scopes, img).scope == "default"


# -- fail closed, as containers/image's policy_config.go ------------------------------------------------------

ACCEPT = '[{"type":"insecureAcceptAnything"}]'
REJECT = '[{"type":"reject"}]'


@pytest.mark.parametrize(
    "text",
    [
        f'{{"default":{REJECT},"default":{ACCEPT}}}',  # the example: the last key would accept everything
        f'{{"default":{REJECT},"transports":{{}},"transports":{{"oci":{{"":{ACCEPT}}}}}}}',
        f'{{"default":{REJECT},"transports":{{"oci":{{"":{REJECT}}},"oci":{{"":{ACCEPT}}}}}}}',
        f'{{"default":{REJECT},"transports":{{"oci":{{"/srv":{REJECT},"/srv":{ACCEPT}}}}}}}',
        '{"default":[{"type":"reject","type":"insecureAcceptAnything"}]}',
        '{"default":[{"type":"sigstoreSigned","keyData":"YQ==","signedIdentity":'
        '{"type":"matchRepository","type":"matchExact"}}]}',
    ],
)
def test_duplicate_keys_refused_at_every_level(text: str) -> None:
    with pytest.raises(PolicyError, match="duplicate key"):
        Policy.parse(text.encode())


def test_deeply_nested_policy_is_a_policy_error() -> None:
    for raw in (b'{"default":' + b"[" * 100_000 + b"]" * 100_000 + b"}", b"[" * 100_000):
        with pytest.raises(PolicyError, match="nested too deeply"):
            Policy.parse(raw)


@pytest.mark.parametrize("transport", ["oci", "oci-archive", "dir"])
@pytest.mark.parametrize(
    ("scope", "reason"),
    [
        ("relative/path", "absolute"),
        ("/", 'default scope ""'),
        ("/srv/images/", "canonical"),
        ("/srv//images", "canonical"),
        ("/srv/./images", "canonical"),
        ("/srv/x/../images", "canonical"),
    ],
)
def test_path_scopes_validated(transport: str, scope: str, reason: str) -> None:
    doc = {"default": [{"type": "insecureAcceptAnything"}], "transports": {transport: {scope: [{"type": "reject"}]}}}
    with pytest.raises(PolicyError, match=re.escape(reason)):
        Policy.parse(json.dumps(doc).encode())


def test_valid_scopes_and_other_transports() -> None:
    doc = {"default": [{"type": "reject"}], "transports": {
        "oci": {"": [{"type": "reject"}], "/srv/images": [{"type": "reject"}], "/srv/a:tag": [{"type": "reject"}]},
        "docker": {"docker.io/library/busybox": [{"type": "reject"}], "relative-ok": [{"type": "reject"}]},
        "madeup": {"anything at all/": [{"type": "reject"}]},  # unknown transports are not validated
        "docker-archive": {"": [{"type": "reject"}]}}}
    Policy.parse(json.dumps(doc).encode())
    for transport in ("docker-archive", "docker-daemon", "tarball", "sif"):
        bad = {"default": [{"type": "reject"}], "transports": {transport: {"/x": [{"type": "reject"}]}}}
        with pytest.raises(PolicyError, match="no scope except the default"):
            Policy.parse(json.dumps(bad).encode())


def test_relative_key_path_is_relative_to_the_working_directory(tmp_path: Path, monkeypatch) -> None:
    # containers/image reads keyPath with os.ReadFile: relative to the process's directory, not the policy's
    img = _dir_image(tmp_path, "dir-img-valid")
    poldir = tmp_path / "policydir"
    poldir.mkdir()
    (poldir / "key.gpg").write_bytes(read_peer(f"{FIX}/public-key.gpg"))  # beside the policy: must not be used
    ident = {"type": "exactRepository", "dockerRepository": "testing/manifest"}
    (poldir / "policy.json").write_text(json.dumps({"default": [
        {"type": "signedBy", "keyType": "GPGKeys", "keyPath": "key.gpg", "signedIdentity": ident}]}))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    p = Policy.load(poldir / "policy.json")
    [r] = p.evaluate("dir", [], img).results
    assert not r.passed and "cannot read key file" in r.reason
    (cwd / "key.gpg").write_bytes(read_peer(f"{FIX}/public-key.gpg"))
    assert p.evaluate("dir", [], img).allowed


def test_raise_for_rejection_lists_every_failure() -> None:
    from ocilayout.signature.policy import PolicyResult, RequirementResult

    ok = PolicyResult("default", [RequirementResult("insecureAcceptAnything", True, "accepted")])
    ok.raise_for_rejection("oci:/x:v1")
    bad = PolicyResult("oci:/x", [RequirementResult("reject", False, "rejected by policy"),
                                  RequirementResult("insecureAcceptAnything", True, "accepted"),
                                  RequirementResult("sigstoreSigned", False, "no signature exists")])
    with pytest.raises(VerificationError) as err:
        bad.raise_for_rejection("oci:/x:v1")
    assert str(err.value) == ("oci:/x:v1 is rejected by the policy: reject: rejected by policy; "
                              "sigstoreSigned: no signature exists")
    with pytest.raises(VerificationError):
        PolicyResult("default", []).raise_for_rejection("oci:/x:v1")


@pytest.mark.parametrize(
    ("prefix", "ok"),
    [("docker.io", True), ("docker.io/library", True), ("mirror:5000/vendor", True), ("busybox", True),
     ("UPPER/x", True), ("a/B", False), ("example.com/ns:tag", False), ("example.com/ns@sha256:" + "a" * 64, False),
     ("", False), ("-bad", False), ("example.com/", False), ("example.com//x", False)],
)
def test_remap_identity_prefixes_validated(prefix: str, ok: bool) -> None:
    # validateIdentityRemappingPrefix; the same 16 verdicts as skopeo 1.9.3 on these and a few more
    for rule in ({"type": "remapIdentity", "prefix": prefix, "signedPrefix": "docker.io"},
                 {"type": "remapIdentity", "prefix": "docker.io", "signedPrefix": prefix}):
        if ok:
            assert parse_identity_rule(rule).type == "remapIdentity"
        else:
            with pytest.raises(PolicyError, match="is not valid"):
                parse_identity_rule(rule)


@pytest.mark.parametrize(
    "doc",
    [
        *(f'{{"default":{REJECT},"transports":{{"{t}":{{"{s}":{REJECT}}}}}}}'
          for t in ("oci", "oci-archive", "dir", "docker-archive", "tarball", "docker")
          for s in ("", "/", "/a", "/a/", "a/b", "/a//b", "/a/./b", "/a/../b", "/a/b:tag")),
        f'{{"default":{REJECT},"default":{ACCEPT}}}',
        f'{{"default":{REJECT},"transports":{{"oci":{{"":{REJECT},"":{ACCEPT}}}}}}}',
        '{"default":[{"type":"reject","type":"reject"}]}',
        '{"default":[{"type":"reject"}],"x":NaN}',
    ],
)
def test_policy_refusals_agree_with_skopeo(tmp_path: Path, doc: str) -> None:
    import subprocess

    from conftest import require_tool

    exe = require_tool("skopeo")
    pol = tmp_path / "policy.json"
    pol.write_text(doc)
    proc = subprocess.run([exe, "--policy", str(pol), "copy", f"oci:{tmp_path}/none:v1", f"dir:{tmp_path}/out"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0  # the source does not exist; what matters is whether the policy loaded
    skopeo_refuses = "Error loading trust policy" in proc.stderr
    try:
        Policy.parse(doc.encode())
        we_refuse = False
    except PolicyError:
        we_refuse = True
    assert we_refuse == skopeo_refuses, proc.stderr
