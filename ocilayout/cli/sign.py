"""Signing commands (generate-sigstore-key, standalone-sign/verify, sign, verify).

Thin: parse arguments, call :mod:`ocilayout.signature`, print. Nothing heavy is imported at module load.
Passphrases come from ``--passphrase-file`` (its first line minus one ``\\n``, as skopeo), ``$OCILAYOUT_PASSPHRASE``,
or a terminal prompt; they are never echoed, logged or put in an error message.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from ..errors import Conflict, InvalidKey, InvalidManifest
from . import _options as _o
from ._app import app, fail
from ._display import echo
from ._registry import registry_options, using

PASSPHRASE_ENV = "OCILAYOUT_PASSPHRASE"
_MAX_SMALL_FILE = 4 * 1024 * 1024


def _read_manifest(path: str) -> bytes:
    """A manifest file of at most 4 MiB, never reading more."""
    from ..fsutil import read_limited

    return read_limited(path, "manifest", _MAX_SMALL_FILE, InvalidManifest)


def _passphrase(passphrase_file: str | None, *, confirm: bool, required: bool = True) -> bytes | None:
    """The passphrase from a file's first line, the environment, or a no-echo prompt."""
    if passphrase_file is not None:
        from ..signature.keys import read_passphrase_file

        return read_passphrase_file(passphrase_file)
    env = os.environ.get(PASSPHRASE_ENV)
    if env is not None:
        return env.encode("utf-8")
    if not required:
        return None
    if sys.stdin is None or not sys.stdin.isatty():
        raise InvalidKey(f"a passphrase is needed: use --passphrase-file or ${PASSPHRASE_ENV} (no terminal to ask)")
    import getpass

    first = getpass.getpass("Passphrase: ")
    if confirm and getpass.getpass("Repeat passphrase: ") != first:
        raise InvalidKey("the passphrases do not match")
    return first.encode("utf-8")


def _passphrase_provider(passphrase_file: str | None) -> Callable[[], bytes]:
    """A keys.PassphraseProvider over the CLI's sources; it asks only when called."""

    def provide() -> bytes:
        passphrase = _passphrase(passphrase_file, confirm=False)
        assert passphrase is not None
        return passphrase

    return provide


def _load_private_key(key_path: str, passphrase_file: str | None) -> Any:
    """The CLI's way to open a private key: the library loads it, asking the CLI's passphrase sources."""
    from ..signature.keys import load_private_key

    return load_private_key(key_path, _passphrase_provider(passphrase_file))


def _load_public_keys(paths: list[str]) -> list[Any]:
    from ..signature.keys import load_public_key, read_key_file

    return [load_public_key(read_key_file(p, "public key")) for p in paths]


def _write_output(path: str, data: bytes) -> None:
    """A new signature file (0644), written atomically; an existing file is never replaced (Conflict)."""
    from ..signature.output import write_new_file

    write_new_file(path, data, 0o644)


@app.command("generate-sigstore-key")
def generate_sigstore_key(
    output_prefix: str = typer.Option(..., "--output-prefix", metavar="PREFIX",
                                      help="Write PREFIX.private and PREFIX.pub."),
    passphrase_file: str | None = typer.Option(None, "--passphrase-file", metavar="FILE",
                                               help="Read the passphrase from the "
                                               "first line of this file."),
) -> None:
    """Generate an ECDSA P-256 sigstore key pair (private key encrypted as cosign/skopeo expect)."""
    from ..signature.keys import write_key_pair

    passphrase = _passphrase(passphrase_file, confirm=True)
    assert passphrase is not None
    priv, pub = write_key_pair(output_prefix, passphrase)
    echo(f"Key written to {priv} and {pub}")


@app.command("standalone-sign")
def standalone_sign(
    manifest: str = typer.Argument(..., metavar="MANIFEST"),
    docker_reference: str = typer.Argument(..., metavar="DOCKER-REFERENCE"),
    fingerprint: str | None = typer.Argument(None, metavar="[KEY-FINGERPRINT]",
                                             help="GPG key to sign with (when --key is not given)."),
    output: str = typer.Option(..., "--output", "-o", metavar="FILE", help="Write the signature here."),
    key: str | None = typer.Option(None, "--key", metavar="FILE",
                                   help="Sigstore private key (sign with sigstore instead of GPG)."),
    passphrase_file: str | None = typer.Option(None, "--passphrase-file", metavar="FILE",
                                               help="Read the private key's passphrase from FILE."),
) -> None:
    """Sign a manifest file: sigstore with --key, or GPG simple signing with KEY-FINGERPRINT."""
    from ..signature.dockerref import parse_normalized
    from ..signature.standalone import standalone_sign as sign_manifest

    if (key is None) == (fingerprint is None):
        raise fail("give either --key PRIVATE-KEY (sigstore) or a KEY-FINGERPRINT (GPG), not both")
    # Bad arguments fail before a passphrase is asked for.
    if Path(output).exists() or Path(output).is_symlink():
        raise Conflict(f"{output!r} already exists; refusing to overwrite it")
    raw = _read_manifest(manifest)
    parse_normalized(docker_reference)
    if key is not None:
        blob = sign_manifest(raw, docker_reference, private_key=_load_private_key(key, passphrase_file))
    else:
        blob = sign_manifest(raw, docker_reference, fingerprint=fingerprint,
                             passphrase=_passphrase(passphrase_file, confirm=False, required=False))
    _write_output(output, blob)


@app.command("standalone-verify")
def standalone_verify(
    manifest: str = typer.Argument(..., metavar="MANIFEST"),
    docker_reference: str = typer.Argument(..., metavar="DOCKER-REFERENCE"),
    third: str = typer.Argument(..., metavar="KEY-FINGERPRINT[,...]|SIGNATURE"),
    fourth: str | None = typer.Argument(None, metavar="[SIGNATURE]"),
    public_key: list[str] = typer.Option([], "--public-key", metavar="FILE",
                                         help="Sigstore public key (repeatable); then the arguments are MANIFEST "
                                         "DOCKER-REFERENCE SIGNATURE."),
    keyring: list[str] = typer.Option([], "--keyring", metavar="FILE",
                                      help="GPG public key file to trust (repeatable); without it $GNUPGHOME / "
                                      "~/.gnupg is used."),
) -> None:
    """Verify a signature of a manifest file, as skopeo standalone-verify.

    Sigstore: MANIFEST DOCKER-REFERENCE --public-key PUB SIGNATURE.
    GPG: MANIFEST DOCKER-REFERENCE FINGERPRINT[,FINGERPRINT...] SIGNATURE [--keyring FILE].
    """
    from ..signature.model import read_signature_file
    from ..signature.standalone import standalone_verify as verify_manifest

    if public_key:
        if fourth is not None:
            raise fail("with --public-key give MANIFEST DOCKER-REFERENCE SIGNATURE (no fingerprint)")
        sig_path = third
    else:
        if fourth is None:
            raise fail("give MANIFEST DOCKER-REFERENCE KEY-FINGERPRINT SIGNATURE, or use --public-key")
        sig_path = fourth
    raw_manifest = _read_manifest(manifest)
    blob = read_signature_file(sig_path)
    if public_key:
        result = verify_manifest(raw_manifest, docker_reference, blob, public_keys=[Path(p) for p in public_key])
        echo(f"Signature verified, digest {result.manifest_digest}")
        return
    result = verify_manifest(raw_manifest, docker_reference, blob, fingerprints=third.split(","),
                             keyring=[Path(k) for k in keyring])
    echo(f"Signature verified using fingerprint {result.key_identity}, digest {result.manifest_digest}")


@app.command("sign")
def sign(
    image: str = typer.Argument(..., metavar="IMAGE", help="oci:PATH[:REF], oci-archive:FILE[:REF], dir:PATH or "
                               "docker://HOST/REPO:TAG"),
    key: str = typer.Option(..., "--key", metavar="FILE", help="Sigstore private key."),
    identity: str | None = typer.Option(None, "--identity", metavar="DOCKER-REFERENCE",
                                        help="Docker reference to claim (default: the image's ref name when it "
                                        "is a full docker reference)."),
    passphrase_file: str | None = typer.Option(None, "--passphrase-file", metavar="FILE",
                                                help="Read the private key's passphrase from FILE."),
    tls_verify: str | None = _o.TLS_VERIFY,
    creds: str | None = _o.CREDS,
    authfile: str | None = _o.AUTHFILE,
    cert_dir: str | None = _o.CERT_DIR,
    registries_conf: str | None = _o.REGISTRIES_CONF,
) -> None:
    """Sign an image with a sigstore key and store the signature with it (cosign's .sig tag in layouts and
    registries)."""
    from ..signature.image import sign_image

    # bad flags fail before a passphrase is asked
    reg = registry_options(tls_verify, creds, authfile, cert_dir, registries_conf=registries_conf)
    private_key = _load_private_key(key, passphrase_file)
    with using(reg, reg):
        resolved, sig = sign_image(image, private_key, identity)
    from ..signature.payload import SIGSTORE_TYPE, parse_payload

    claimed = parse_payload(sig.payload, SIGSTORE_TYPE).docker_reference
    echo(f"Signed {resolved.manifest_digest} as {claimed}")


@app.command("verify")
def verify(
    image: str = typer.Argument(..., metavar="IMAGE", help="oci:PATH[:REF], oci-archive:FILE[:REF], dir:PATH or "
                               "docker://HOST/REPO:TAG"),
    public_key: list[str] = typer.Option([], "--public-key", metavar="FILE",
                                          help="Sigstore public key (repeatable)."),
    identity: str | None = typer.Option(None, "--identity", metavar="DOCKER-REFERENCE",
                                        help="Docker reference the signature must claim (with a policy: the "
                                        "reference the image is meant to be)."),
    policy: str | None = typer.Option(None, "--policy", metavar="FILE",
                                      help="containers-policy.json to evaluate instead."),
    tls_verify: str | None = _o.TLS_VERIFY,
    creds: str | None = _o.CREDS,
    authfile: str | None = _o.AUTHFILE,
    cert_dir: str | None = _o.CERT_DIR,
    registries_conf: str | None = _o.REGISTRIES_CONF,
) -> None:
    """Verify an image's stored signatures with public keys, or evaluate a containers policy.json."""
    reg = registry_options(tls_verify, creds, authfile, cert_dir, registries_conf=registries_conf)
    with using(reg, reg):
        _verify(image, public_key, identity, policy)


def _verify(image: str, public_key: list[str], identity: str | None, policy: str | None) -> None:
    if policy is not None:
        if public_key:
            raise fail("give either --policy or --public-key, not both")
        from ..signature.image import evaluate_policy
        from ..signature.policy import Policy

        resolved, result = evaluate_policy(image, Policy.load(policy), identity)
        echo(f"{resolved.ref} {resolved.manifest_digest} (policy scope {result.scope})")
        for r in result.results:
            echo(f"  {'PASS' if r.passed else 'FAIL'} {r.type}: {r.reason}")
        result.raise_for_rejection(str(resolved.ref))
        return
    if not public_key:
        raise fail("give --public-key PUB (repeatable) or --policy policy.json")
    from ..signature.image import verify_image

    resolved, good = verify_image(image, _load_public_keys(public_key), identity)
    for v in good:
        echo(f"Signature verified, digest {v.manifest_digest}, identity {v.docker_reference}")
