"""GPG simple signing through the ``gpg`` binary, as skopeo does through gpgme (signatures.md §2).

A :class:`GPGKeyring` is a GNUPGHOME: either an existing one (the user's, or ``$GNUPGHOME``) or a throwaway one
holding imported keys. Signing writes a binary (not armored) OpenPGP signed message; verification accepts only
a message with exactly one good, valid, unexpired, unrevoked signature by a known key.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..digest import Digest
from ..errors import InvalidKey, SignatureError, VerificationError
from .model import MAX_SIGNATURE_SIZE
from .payload import GPG_TYPE, MAX_PAYLOAD_SIZE, build_payload, parse_payload
from .sigstore import CREATOR, IdentityCheck, VerifiedSignature

__all__ = ["GPGKeyring", "GPGVerification", "sign_simple", "verify_simple"]

_TIMEOUT = 120
_BAD_STATUS = frozenset(
    {"BADSIG", "ERRSIG", "EXPSIG", "EXPKEYSIG", "REVKEYSIG", "NO_PUBKEY", "DECRYPTION_FAILED", "NODATA", "FAILURE"}
)


def _gpg_binary() -> str:
    exe = shutil.which("gpg")
    if exe is None:
        raise SignatureError("the gpg binary is not installed; GPG simple signing needs it")
    return exe


@dataclass(frozen=True, slots=True)
class GPGVerification:
    """A cryptographically good signature: the signed content and who signed it."""

    content: bytes
    signing_fingerprint: str
    primary_fingerprint: str


def _run_limited(cmd: list[str], data: bytes, limit: int, env: dict[str, str]) -> tuple[int, bytes, bool]:
    """Run ``cmd`` with ``data`` on stdin; returns (exit code, stdout up to ``limit`` bytes, overflowed)."""
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert proc.stdin is not None and proc.stdout is not None

    def feed() -> None:
        with contextlib.suppress(OSError):
            proc.stdin.write(data)  # type: ignore[union-attr]
        with contextlib.suppress(OSError):
            proc.stdin.close()  # type: ignore[union-attr]

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    chunks: list[bytes] = []
    total = 0
    overflow = False
    deadline = time.monotonic() + _TIMEOUT
    while True:
        chunk = proc.stdout.read(65536)
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            overflow = True
            proc.kill()
            break
        chunks.append(chunk)
        if time.monotonic() > deadline:
            proc.kill()
            raise SignatureError("gpg timed out")
    proc.stdout.close()
    try:
        rc = proc.wait(timeout=_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
    writer.join(timeout=5)
    return rc, b"".join(chunks), overflow


class GPGKeyring:
    """A GNUPGHOME to sign and verify with.

    ``GPGKeyring(home)`` uses an existing directory; ``GPGKeyring.ephemeral(keys)`` creates a private temporary
    one with ``keys`` (binary or armored key blobs) imported, removed by :meth:`close` (use it as a context
    manager). :attr:`imported` lists the primary fingerprints that were imported."""

    def __init__(self, home: str | os.PathLike[str] | None = None) -> None:
        if home is None:
            home = os.environ.get("GNUPGHOME") or str(Path.home() / ".gnupg")
        self.home = Path(home)
        self.imported: list[str] = []
        self._owned = False
        self._work = Path(tempfile.mkdtemp(prefix="ocl-gpgw-"))

    @classmethod
    def ephemeral(cls, keys: Iterable[bytes] = ()) -> GPGKeyring:
        """A throwaway GNUPGHOME holding ``keys``; raises InvalidKey when a blob imports nothing."""
        home = tempfile.mkdtemp(prefix="ocl-gpg-")  # short path: gpg-agent's socket lives here
        os.chmod(home, 0o700)
        ring = cls(home)
        ring._owned = True
        try:
            for blob in keys:
                ring.import_keys(blob)
        except BaseException:
            ring.close()
            raise
        return ring

    def __repr__(self) -> str:
        return f"GPGKeyring(home={str(self.home)!r}, ephemeral={self._owned})"

    def __enter__(self) -> GPGKeyring:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["GNUPGHOME"] = str(self.home)
        env["LC_ALL"] = "C"
        return env

    def _base(self) -> list[str]:
        return [_gpg_binary(), "--homedir", str(self.home), "--batch", "--no-tty", "--no-auto-key-retrieve",
                "--no-auto-key-locate", "--no-greeting"]

    def close(self) -> None:
        """Stop a gpg-agent we started and delete a throwaway home; idempotent."""
        shutil.rmtree(self._work, ignore_errors=True)
        if self._owned and self.home.exists():
            gpgconf = shutil.which("gpgconf")
            if gpgconf:
                subprocess.run([gpgconf, "--homedir", str(self.home), "--kill", "gpg-agent"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=self._env(), timeout=30,
                               check=False)
            shutil.rmtree(self.home, ignore_errors=True)
            self._owned = False

    def import_keys(self, blob: bytes) -> list[str]:
        """Import key material; returns the primary fingerprints imported (InvalidKey when none)."""
        status = self._work / "import.status"
        proc = subprocess.run([*self._base(), "--status-file", str(status), "--import"], input=blob,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=self._env(),
                              timeout=_TIMEOUT, check=False)
        fprs: list[str] = []
        for line in status.read_text("utf-8", "replace").splitlines() if status.exists() else []:
            parts = line.split()
            if len(parts) >= 4 and parts[:2] == ["[GNUPG:]", "IMPORT_OK"] and parts[3] not in fprs:
                fprs.append(parts[3])
        if not fprs:
            raise InvalidKey(f"no OpenPGP keys could be imported (gpg exit {proc.returncode})")
        for f in fprs:
            if f not in self.imported:
                self.imported.append(f)
        return fprs

    def sign(self, data: bytes, fingerprint: str, passphrase: bytes | None = None) -> bytes:
        """A binary OpenPGP signed message over ``data`` made with key ``fingerprint``; raises SignatureError.

        The passphrase goes to gpg through a pipe in loopback pinentry mode, never on a command line."""
        extra: list[str] = []
        r_fd = None
        if passphrase is not None:
            if b"\n" in passphrase:
                raise InvalidKey("passphrase must not contain a newline")
            r_fd, w_fd = os.pipe()
            os.write(w_fd, passphrase + b"\n")  # a pipe buffer holds far more than a passphrase
            os.close(w_fd)
            extra = ["--pinentry-mode", "loopback", "--passphrase-fd", str(r_fd)]
        cmd = [*self._base(), *extra, "--no-armor", "--local-user", fingerprint, "--sign", "--output", "-"]
        try:
            proc = subprocess.run(cmd, input=data, capture_output=True, env=self._env(), timeout=_TIMEOUT,
                                  pass_fds=(r_fd,) if r_fd is not None else (), check=False)
        finally:
            if r_fd is not None:
                os.close(r_fd)
        if proc.returncode != 0 or not proc.stdout:
            reason = "wrong passphrase or no secret key" if passphrase is not None else "no usable secret key"
            raise SignatureError(f"gpg could not sign with key {fingerprint[:60]!r} ({reason}; gpg exit "
                                 f"{proc.returncode})")
        return proc.stdout

    def verify(self, blob: bytes) -> GPGVerification:
        """Check an OpenPGP signed message; returns the content and signer, or raises VerificationError.

        Accepted only with exactly one signature, GOODSIG and VALIDSIG, none of BADSIG, ERRSIG, EXPSIG,
        EXPKEYSIG, REVKEYSIG, NO_PUBKEY, DECRYPTION_FAILED, NODATA, FAILURE, and gpg exit 0."""
        if len(blob) > MAX_SIGNATURE_SIZE:
            raise VerificationError(f"signature is {len(blob)} bytes, over the {MAX_SIGNATURE_SIZE}-byte limit")
        status_path = self._work / "verify.status"
        status_path.unlink(missing_ok=True)
        cmd = [*self._base(), "--status-file", str(status_path), "--trust-model", "always", "--decrypt"]
        rc, content, overflow = _run_limited(cmd, blob, MAX_PAYLOAD_SIZE, self._env())
        if overflow:
            raise VerificationError(f"signed content is over the {MAX_PAYLOAD_SIZE}-byte limit")
        status = status_path.read_text("utf-8", "replace").splitlines() if status_path.exists() else []
        words = [line.split()[1:] for line in status if line.startswith("[GNUPG:] ") and len(line.split()) > 1]
        seen = [w[0] for w in words]
        bad = sorted(set(seen) & _BAD_STATUS)
        if len(bad) > 1 and "FAILURE" in bad:
            bad.remove("FAILURE")  # the generic line that follows a specific one
        if bad:
            reasons = {"EXPSIG": "the signature has expired", "EXPKEYSIG": "the signing key has expired",
                       "REVKEYSIG": "the signing key is revoked", "NO_PUBKEY": "the signing key is not trusted "
                       "(not in the keyring)", "BADSIG": "bad signature", "ERRSIG": "the signature cannot be checked",
                       "DECRYPTION_FAILED": "the message is encrypted, not signed", "NODATA": "no OpenPGP data",
                       "FAILURE": "gpg failed"}
            raise VerificationError("invalid GPG signature: " + "; ".join(dict.fromkeys(reasons[b] for b in bad)))
        n_sigs = seen.count("NEWSIG")
        if n_sigs != 1:
            raise VerificationError(f"invalid GPG signature: unexpected signature count {n_sigs}")
        if "GOODSIG" not in seen:
            raise VerificationError("invalid GPG signature: not a good signature")
        valid = next((w for w in words if w[0] == "VALIDSIG"), None)
        if valid is None or len(valid) < 2 or rc != 0:
            raise VerificationError(f"invalid GPG signature: not a valid signature (gpg exit {rc})")
        signing = valid[1]
        primary = valid[10] if len(valid) > 10 else signing
        return GPGVerification(content, signing, primary)


def sign_simple(
    keyring: GPGKeyring,
    manifest_digest: Digest | str,
    docker_reference: str,
    fingerprint: str,
    *,
    passphrase: bytes | None = None,
    timestamp: int | None = None,
    creator: str = CREATOR,
) -> bytes:
    """A GPG simple-signing signature (binary OpenPGP message) claiming ``docker_reference``.

    As skopeo, the reference is written verbatim (checked only at verification)."""
    payload = build_payload(
        str(manifest_digest), docker_reference, GPG_TYPE, creator=creator,
        timestamp=int(time.time()) if timestamp is None else timestamp,
    )
    return keyring.sign(payload, fingerprint, passphrase)


def verify_simple(
    blob: bytes,
    keyring: GPGKeyring,
    accepted_fingerprints: Sequence[str],
    manifest_digest: Digest | str,
    identity: IdentityCheck,
) -> VerifiedSignature:
    """Full GPG verification as containers/image: gpg verdict, key in ``accepted_fingerprints`` (the signing
    subkey's or its primary key's fingerprint), strict payload, exact digest, identity. Raises VerificationError.
    """
    accepted = {f.strip().upper() for f in accepted_fingerprints if f.strip()}
    result = keyring.verify(blob)
    if result.signing_fingerprint in accepted:
        who = result.signing_fingerprint
    elif result.primary_fingerprint in accepted:
        who = result.primary_fingerprint
    else:
        raise VerificationError(
            f"signature by key {result.signing_fingerprint} is not accepted (expected "
            f"{', '.join(sorted(accepted)) or 'none'})"
        )
    payload = parse_payload(result.content, GPG_TYPE)
    if payload.manifest_digest != str(manifest_digest):
        raise VerificationError(
            f"signature for docker digest {payload.manifest_digest} does not match the image digest {manifest_digest}"
        )
    identity(payload)
    return VerifiedSignature(payload.manifest_digest, payload.docker_reference, payload.creator, payload.timestamp,
                             key_identity=who)

