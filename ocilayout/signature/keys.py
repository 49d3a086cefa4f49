"""Sigstore / cosign key files (signatures.md §4).

Private keys are PKCS#8 DER sealed with scrypt + NaCl secretbox, in JSON, in a PEM block labelled
``ENCRYPTED COSIGN PRIVATE KEY`` (written; ``ENCRYPTED SIGSTORE PRIVATE KEY`` is read too). Passphrases are
bytes; they never appear in an exception message, a log line or a repr.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import Conflict, InvalidKey, NotFound
from . import strictjson

__all__ = [
    "COSIGN_LABEL",
    "DEFAULT_SCRYPT_N",
    "MAX_KEY_FILE_SIZE",
    "MAX_PASSPHRASE_SIZE",
    "SIGSTORE_LABEL",
    "PassphraseProvider",
    "decrypt_private_key",
    "encrypt_private_key",
    "generate_key_pair",
    "load_private_key",
    "load_public_key",
    "public_key_pem",
    "read_key_file",
    "read_passphrase_file",
    "write_key_pair",
]

COSIGN_LABEL = "ENCRYPTED COSIGN PRIVATE KEY"
SIGSTORE_LABEL = "ENCRYPTED SIGSTORE PRIVATE KEY"
#: What old readers (skopeo < 1.14, cosign < 2.2) accept.
DEFAULT_SCRYPT_N = 32768
_ALLOWED_N = frozenset({32768, 65536, 131072})
_SCRYPT_R, _SCRYPT_P = 8, 1
#: Key files are tiny; anything larger is refused unread.
MAX_KEY_FILE_SIZE = 64 * 1024
#: The longest first line of a passphrase file that is read.
MAX_PASSPHRASE_SIZE = 64 * 1024

_PEM = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.S)


def read_key_file(path: str | os.PathLike[str], what: str = "key") -> bytes:
    """Read a key file, refusing files over :data:`MAX_KEY_FILE_SIZE`; raises NotFound / InvalidKey."""
    from ..fsutil import read_limited

    return read_limited(path, what, MAX_KEY_FILE_SIZE, InvalidKey)


def _first_pem(data: bytes, what: str) -> tuple[str, bytes]:
    m = _PEM.search(data)
    if m is None:
        raise InvalidKey(f"{what} is not a PEM file")
    try:
        der = base64.b64decode(b"".join(m.group(2).split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidKey(f"{what} has invalid base64 in its PEM block") from None
    return m.group(1).decode("ascii"), der


def _scrypt_key(passphrase: bytes, salt: bytes, n: int) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=salt, length=32, n=n, r=_SCRYPT_R, p=_SCRYPT_P).derive(passphrase)


def _der_length(data: bytes, pos: int) -> tuple[int, int]:
    first = data[pos]
    pos += 1
    if first < 0x80:
        return first, pos
    n = first & 0x7F
    if n == 0 or n > 4 or pos + n > len(data):
        raise ValueError("bad DER length")
    return int.from_bytes(data[pos : pos + n], "big"), pos + n


def _looks_like_pkcs8(der: bytes) -> bool:
    """PrivateKeyInfo is SEQUENCE { INTEGER 0|1, SEQUENCE AlgorithmIdentifier, OCTET STRING ... }.

    A SEC1 ECPrivateKey is SEQUENCE { INTEGER 1, OCTET STRING ... }, which Go's ParsePKCS8PrivateKey refuses
    but Python's ``load_der_private_key`` would accept; this check keeps cosign's verdict."""
    try:
        if not der or der[0] != 0x30:
            return False
        length, pos = _der_length(der, 1)
        if pos + length != len(der):
            return False
        if der[pos] != 0x02:
            return False
        ilen, ipos = _der_length(der, pos + 1)
        if ilen != 1 or der[ipos] not in (0, 1):
            return False
        return der[ipos + ilen] == 0x30
    except (IndexError, ValueError):
        return False


def encrypt_private_key(
    private_key: Any, passphrase: bytes, *, n: int = DEFAULT_SCRYPT_N, label: str = COSIGN_LABEL
) -> bytes:
    """PEM bytes of ``private_key`` sealed as cosign does (scrypt N/8/1, nacl/secretbox over PKCS#8 DER)."""
    import nacl.secret
    import nacl.utils
    from cryptography.hazmat.primitives import serialization

    if n not in _ALLOWED_N:
        raise InvalidKey(f"unsupported scrypt N {n} (use one of {sorted(_ALLOWED_N)})")
    if label not in (COSIGN_LABEL, SIGSTORE_LABEL):
        raise InvalidKey(f"unsupported PEM label {label!r}")
    plaintext = private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    salt = os.urandom(32)
    nonce = nacl.utils.random(nacl.secret.SecretBox.NONCE_SIZE)
    key = _scrypt_key(passphrase, salt, n)
    sealed = nacl.secret.SecretBox(key).encrypt(plaintext, nonce).ciphertext
    doc = {
        "kdf": {"name": "scrypt", "params": {"N": n, "r": _SCRYPT_R, "p": _SCRYPT_P},
                "salt": base64.b64encode(salt).decode("ascii")},
        "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode("ascii")},
        "ciphertext": base64.b64encode(sealed).decode("ascii"),
    }
    body = base64.b64encode(json.dumps(doc, separators=(",", ":")).encode("ascii")).decode("ascii")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return (f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n").encode("ascii")


def decrypt_private_key(pem: bytes, passphrase: bytes) -> Any:
    """Open an encrypted cosign/sigstore private key; returns a ``cryptography`` private key.

    Raises InvalidKey for a wrong passphrase, a truncated or malformed file, unexpected KDF parameters, or a
    plaintext that is not PKCS#8 (e.g. SEC1, which cosign rejects too)."""
    import nacl.exceptions
    import nacl.secret
    from cryptography.hazmat.primitives import serialization

    label, raw = _first_pem(pem, "private key")
    if label not in (COSIGN_LABEL, SIGSTORE_LABEL):
        raise InvalidKey(f"unsupported private key PEM type {label[:60]!r}")
    doc = strictjson.loads(raw, InvalidKey, "private key is malformed")  # duplicate keys refused at every level
    try:
        kdf, cipher = doc["kdf"], doc["cipher"]
        if kdf["name"] != "scrypt":
            raise InvalidKey("encrypted key: unsupported kdf (want scrypt)")
        if cipher["name"] != "nacl/secretbox":
            raise InvalidKey("encrypted key: unsupported cipher (want nacl/secretbox)")
        params = kdf["params"]
        n, r, p = params["N"], params["r"], params["p"]
        salt = base64.b64decode(kdf["salt"], validate=True)
        nonce = base64.b64decode(cipher["nonce"], validate=True)
        box = base64.b64decode(doc["ciphertext"], validate=True)
    except InvalidKey:
        raise
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise InvalidKey("private key is malformed or truncated (not cosign's encrypted JSON)") from None
    if type(n) is not int or n not in _ALLOWED_N or r != _SCRYPT_R or p != _SCRYPT_P:
        raise InvalidKey("encrypted key: unexpected kdf parameters")
    if len(nonce) != nacl.secret.SecretBox.NONCE_SIZE:
        raise InvalidKey("encrypted key: invalid nonce length")
    key = _scrypt_key(passphrase, salt, n)
    try:
        plaintext = nacl.secret.SecretBox(key).decrypt(box, nonce)
    except nacl.exceptions.CryptoError:
        raise InvalidKey("cannot decrypt private key: wrong passphrase or corrupted key") from None
    if not _looks_like_pkcs8(plaintext):
        raise InvalidKey("decrypted private key is not PKCS#8 (SEC1 and other encodings are not accepted)")
    try:
        return serialization.load_der_private_key(plaintext, password=None)
    except (ValueError, TypeError):
        raise InvalidKey("decrypted private key is not a supported PKCS#8 key") from None
    finally:
        del plaintext, key


def load_public_key(pem: bytes) -> Any:
    """The first PEM block of a public key file (``PUBLIC KEY`` or ``RSA PUBLIC KEY``); raises InvalidKey."""
    from cryptography.hazmat.primitives import serialization

    label, der = _first_pem(pem, "public key")
    try:
        if label == "PUBLIC KEY":
            return serialization.load_der_public_key(der)
        if label == "RSA PUBLIC KEY":
            from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: F401

            return serialization.load_pem_public_key(
                b"-----BEGIN RSA PUBLIC KEY-----\n" + base64.encodebytes(der) + b"-----END RSA PUBLIC KEY-----\n"
            )
    except (ValueError, TypeError):
        raise InvalidKey("public key PEM does not hold a valid public key") from None
    raise InvalidKey(f"unsupported public key PEM type {label[:60]!r}")


def public_key_pem(public_key: Any) -> bytes:
    """PKIX ``PUBLIC KEY`` PEM, byte-identical to cosign's MarshalPublicKeyToPEM."""
    from cryptography.hazmat.primitives import serialization

    pem: bytes = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem


def generate_key_pair(passphrase: bytes, *, n: int = DEFAULT_SCRYPT_N) -> tuple[bytes, bytes]:
    """A new ECDSA P-256 key pair: (encrypted private PEM, public PEM)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return encrypt_private_key(key, passphrase, n=n), public_key_pem(key.public_key())


def write_key_pair(prefix: str | os.PathLike[str], passphrase: bytes) -> tuple[Path, Path]:
    """Generate a key pair into ``<prefix>.private`` (0600) and ``<prefix>.pub`` (0644), like skopeo.

    Each file appears atomically. Refuses (Conflict) when either file exists; leaves neither behind on failure."""
    from .output import write_new_file

    prefix = os.fspath(prefix)
    priv_path, pub_path = Path(prefix + ".private"), Path(prefix + ".pub")
    for p in (priv_path, pub_path):
        if p.exists() or p.is_symlink():
            raise Conflict(f"{str(p)!r} already exists; refusing to overwrite it")
    private_pem, public_pem = generate_key_pair(passphrase)
    write_new_file(priv_path, private_pem, 0o600)
    try:
        write_new_file(pub_path, public_pem, 0o644)
    except BaseException:
        priv_path.unlink(missing_ok=True)
        raise
    return priv_path, pub_path


def read_passphrase_file(path: str | os.PathLike[str]) -> bytes:
    """The passphrase in a file: its first line minus exactly one trailing ``\\n``, as skopeo reads it
    (containers/image pkg/cli ``ReadPassphraseFile``). A ``\\r`` before the newline is kept, as skopeo keeps it.

    The file may be a pipe (``<(...)``); only the first line is read, at most :data:`MAX_PASSPHRASE_SIZE`
    bytes of it. Raises NotFound when it cannot be opened, InvalidKey when its first line is longer."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = f.read(MAX_PASSPHRASE_SIZE + 1)
    except FileNotFoundError:
        raise NotFound(f"passphrase file {str(p)!r} does not exist") from None
    except IsADirectoryError:
        raise InvalidKey(f"passphrase file {str(p)!r} is a directory") from None
    except OSError as err:
        raise InvalidKey(f"cannot read passphrase file {str(p)!r}: {err.strerror}") from None
    line = data.partition(b"\n")[0]
    if len(line) > MAX_PASSPHRASE_SIZE:
        raise InvalidKey(f"passphrase file {str(p)!r}: the first line is over the {MAX_PASSPHRASE_SIZE}-byte limit")
    return line


#: Supplies the passphrase when a key needs one (a prompt, a file, the environment); raises InvalidKey if it can't.
PassphraseProvider = Callable[[], bytes]


def load_private_key(path: str | os.PathLike[str], passphrase: PassphraseProvider) -> Any:
    """Read and open an encrypted cosign/sigstore private key file; returns a ``cryptography`` private key.

    The file is read (and must be a PEM block of the expected type) before ``passphrase`` is called, so a wrong
    path fails without asking. Raises NotFound, InvalidKey (malformed, wrong passphrase, oversized)."""
    pem = read_key_file(path, "private key")
    label, _ = _first_pem(pem, "private key")
    if label not in (COSIGN_LABEL, SIGSTORE_LABEL):
        raise InvalidKey(f"unsupported private key PEM type {label[:60]!r}")
    return decrypt_private_key(pem, passphrase())
