"""Signing commands (generate-sigstore-key, standalone-sign/verify, sign, verify).

Thin: parse arguments, call :mod:`ocilayout.signature`, print. Nothing heavy is imported at module load.
Passphrases come from ``--passphrase-file`` (first line), ``$OCILAYOUT_PASSPHRASE``, or a terminal prompt;
they are never echoed, logged or put in an error message.
"""

from __future__ import annotations

import os
import sys

import typer

from ..errors import InvalidKey, InvalidManifest, OcilayoutError
from ._app import app, fail
from ._display import echo

PASSPHRASE_ENV = "OCILAYOUT_PASSPHRASE"
_MAX_SMALL_FILE = 4 * 1024 * 1024


def _read_small(path: str, what: str, limit: int = _MAX_SMALL_FILE) -> bytes:
    """Read a file of at most ``limit`` bytes without reading more than that."""
    from ..fsutil import read_limited

    return read_limited(path, what, limit, InvalidManifest)


def _passphrase(passphrase_file: str | None, *, confirm: bool, required: bool = True) -> bytes | None:
    """The passphrase from a file's first line, the environment, or a no-echo prompt."""
    if passphrase_file is not None:
        data = _read_small(passphrase_file, "passphrase", 64 * 1024)
        line = data.split(b"\n", 1)[0]
        return line[:-1] if line.endswith(b"\r") else line
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


def _load_private_key(key_path: str, passphrase_file: str | None):
    from ..signature.keys import decrypt_private_key, read_key_file

    pem = read_key_file(key_path, "private key")
    passphrase = _passphrase(passphrase_file, confirm=False)
    assert passphrase is not None
    return decrypt_private_key(pem, passphrase)


def _load_public_keys(paths: list[str]) -> list:
    from ..signature.keys import load_public_key, read_key_file

    return [load_public_key(read_key_file(p, "public key")) for p in paths]


def _write_file(path: str, data: bytes) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except OSError as err:
        raise OcilayoutError(f"cannot write {path!r}: {err.strerror}") from None


@app.command("generate-sigstore-key")
def generate_sigstore_key(
    output_prefix: str = typer.Option(..., "--output-prefix", help="Write PREFIX.private and PREFIX.pub."),
    passphrase_file: str | None = typer.Option(None, "--passphrase-file", help="Read the passphrase from the "
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
    output: str = typer.Option(..., "--output", "-o", help="Write the signature here."),
    key: str | None = typer.Option(None, "--key", help="Sigstore private key (sign with sigstore instead of GPG)."),
    passphrase_file: str | None = typer.Option(None, "--passphrase-file"),
) -> None:
    """Sign a manifest file: sigstore with --key, or GPG simple signing with KEY-FINGERPRINT."""
    from ..manifest import manifest_digest
    from ..signature.dockerref import parse_normalized

    if (key is None) == (fingerprint is None):
        raise fail("give either --key PRIVATE-KEY (sigstore) or a KEY-FINGERPRINT (GPG), not both")
    digest = manifest_digest(_read_small(manifest, "manifest"))
    parse_normalized(docker_reference)
    if key is not None:
        from ..signature.sigstore import sign_sigstore

        sig = sign_sigstore(_load_private_key(key, passphrase_file), digest, docker_reference)
        _write_file(output, sig.to_blob())
        return
    from ..signature.gpg import GPGKeyring, sign_simple

    assert fingerprint is not None
    passphrase = _passphrase(passphrase_file, confirm=False, required=False)
    with GPGKeyring() as ring:
        blob = sign_simple(ring, digest, docker_reference, fingerprint, passphrase=passphrase)
    _write_file(output, blob)


@app.command("standalone-verify")
def standalone_verify(
    manifest: str = typer.Argument(..., metavar="MANIFEST"),
    docker_reference: str = typer.Argument(..., metavar="DOCKER-REFERENCE"),
    third: str = typer.Argument(..., metavar="KEY-FINGERPRINT[,...]|SIGNATURE"),
    fourth: str | None = typer.Argument(None, metavar="[SIGNATURE]"),
    public_key: list[str] = typer.Option([], "--public-key", help="Sigstore public key (repeatable); then the "
                                         "arguments are MANIFEST DOCKER-REFERENCE SIGNATURE."),
    keyring: list[str] = typer.Option([], "--keyring", help="GPG public key file to trust (repeatable); "
                                      "without it $GNUPGHOME / ~/.gnupg is used."),
) -> None:
    """Verify a signature of a manifest file, as skopeo standalone-verify.

    Sigstore: MANIFEST DOCKER-REFERENCE --public-key PUB SIGNATURE.
    GPG: MANIFEST DOCKER-REFERENCE FINGERPRINT[,FINGERPRINT...] SIGNATURE [--keyring FILE].
    """
    from ..manifest import manifest_digest
    from ..signature.model import read_signature_file

    if public_key:
        if fourth is not None:
            raise fail("with --public-key give MANIFEST DOCKER-REFERENCE SIGNATURE (no fingerprint)")
        sig_path, fingerprints = third, None
    else:
        if fourth is None:
            raise fail("give MANIFEST DOCKER-REFERENCE KEY-FINGERPRINT SIGNATURE, or use --public-key")
        sig_path, fingerprints = fourth, third
    raw_manifest = _read_small(manifest, "manifest")
    blob = read_signature_file(sig_path)
    from ..signature.sigstore import exact_identity

    identity = exact_identity(docker_reference)  # fails before any crypto on a bad reference
    digest = manifest_digest(raw_manifest)
    if fingerprints is None:
        from ..errors import VerificationError
        from ..signature.model import SigstoreSignature, signature_from_blob
        from ..signature.sigstore import verify_sigstore

        keys = _load_public_keys(public_key)
        sig = signature_from_blob(blob)
        if not isinstance(sig, SigstoreSignature):
            raise VerificationError("the signature is not a sigstore signature (a GPG one? give a fingerprint)")
        result = verify_sigstore(sig, keys, digest, identity)
        echo(f"Signature verified, digest {result.manifest_digest}")
        return
    from ..signature.gpg import GPGKeyring, verify_simple
    from ..signature.model import SigstoreSignature, signature_from_blob

    if blob[:1] == b"\x00":
        sig = signature_from_blob(blob)
        if isinstance(sig, SigstoreSignature):
            from ..errors import VerificationError

            raise VerificationError("the signature is a sigstore signature: verify it with --public-key")
        blob = sig.blob
    accepted = [f for f in fingerprints.split(",") if f.strip()]
    if keyring:
        ring = GPGKeyring.ephemeral(_read_small(k, "keyring", 16 * 1024 * 1024) for k in keyring)
    else:
        ring = GPGKeyring()
    with ring:
        result = verify_simple(blob, ring, accepted, digest, identity)
    echo(f"Signature verified using fingerprint {result.key_identity}, digest {result.manifest_digest}")


@app.command("sign")
def sign(
    image: str = typer.Argument(..., metavar="IMAGE", help="oci:PATH[:REF], oci-archive:FILE[:REF] or dir:PATH"),
    key: str = typer.Option(..., "--key", help="Sigstore private key."),
    identity: str | None = typer.Option(None, "--identity", help="Docker reference to claim (default: the "
                                        "image's ref name when it is a full docker reference)."),
    passphrase_file: str | None = typer.Option(None, "--passphrase-file"),
) -> None:
    """Sign an image with a sigstore key and store the signature with it (cosign's .sig tag in layouts)."""
    from ..signature.image import sign_image

    private_key = _load_private_key(key, passphrase_file)
    resolved, sig = sign_image(image, private_key, identity)
    from ..signature.payload import SIGSTORE_TYPE, parse_payload

    claimed = parse_payload(sig.payload, SIGSTORE_TYPE).docker_reference
    echo(f"Signed {resolved.manifest_digest} as {claimed}")


@app.command("verify")
def verify(
    image: str = typer.Argument(..., metavar="IMAGE", help="oci:PATH[:REF], oci-archive:FILE[:REF] or dir:PATH"),
    public_key: list[str] = typer.Option([], "--public-key", help="Sigstore public key (repeatable)."),
    identity: str | None = typer.Option(None, "--identity", help="Docker reference the signature must claim "
                                        "(with a policy: the reference the image is meant to be)."),
    policy: str | None = typer.Option(None, "--policy", help="containers-policy.json to evaluate instead."),
) -> None:
    """Verify an image's stored signatures with public keys, or evaluate a containers policy.json."""
    from ..errors import VerificationError

    if policy is not None:
        if public_key:
            raise fail("give either --policy or --public-key, not both")
        from ..signature.image import evaluate_policy
        from ..signature.policy import Policy

        resolved, result = evaluate_policy(image, Policy.load(policy), identity)
        echo(f"{resolved.ref} {resolved.manifest_digest} (policy scope {result.scope})")
        for r in result.results:
            echo(f"  {'PASS' if r.passed else 'FAIL'} {r.type}: {r.reason}")
        if not result.allowed:
            failed = next(r for r in result.results if not r.passed)
            raise VerificationError(f"{resolved.ref} is rejected by the policy: {failed.type}: {failed.reason}")
        return
    if not public_key:
        raise fail("give --public-key PUB (repeatable) or --policy policy.json")
    from ..signature.image import verify_image

    resolved, good = verify_image(image, _load_public_keys(public_key), identity)
    for v in good:
        echo(f"Signature verified, digest {v.manifest_digest}, identity {v.docker_reference}")
