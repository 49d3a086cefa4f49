"""Where signatures live: one small seam per transport.

:class:`SignatureStorage` is the protocol the signing code talks to. Implementations:

* :class:`DirSignatures` - containers/image ``dir:`` images: ``signature-1``, ``signature-2`` ... next to
  ``manifest.json`` (``<hex>.signature-N`` for a per-instance signature of a manifest list).
* ``LayoutSignatures`` (in :mod:`ocilayout.signature.layout`) - cosign's ``sha256-<hex>.sig`` tag convention
  in an OCI layout.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..digest import Digest
from ..errors import Conflict, NotFound
from ..manifest import MAX_MANIFEST_SIZE, manifest_digest
from .model import Signature, read_signature_file, signature_from_blob

__all__ = ["DirSignatures", "SignatureStorage"]


@runtime_checkable
class SignatureStorage(Protocol):
    """Signatures of images by manifest digest: read all of them, append one (never replacing)."""

    def list(self, manifest_digest: Digest) -> list[Signature]:
        """Every stored signature of ``manifest_digest`` (empty when there are none)."""
        ...

    def add(self, manifest_digest: Digest, sig: Signature) -> None:
        """Append ``sig`` to the signatures of ``manifest_digest``."""
        ...


class DirSignatures:
    """Signatures of a containers/image ``dir:`` image (read and write).

    Signatures of the top manifest are ``signature-N`` (1-based, reading stops at the first gap); those of
    another instance (a manifest list member) are ``<hex>.signature-N``, as directory_transport.go names them.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"DirSignatures({str(self.path)!r})"

    def manifest_bytes(self) -> bytes:
        """The top ``manifest.json``; raises NotFound when absent."""
        p = self.path / "manifest.json"
        try:
            with p.open("rb") as f:
                data = f.read(MAX_MANIFEST_SIZE + 1)
        except FileNotFoundError:
            raise NotFound(f"{str(p)!r} does not exist (not a dir: image?)") from None
        if len(data) > MAX_MANIFEST_SIZE:
            from ..errors import InvalidManifest

            raise InvalidManifest(f"{str(p)!r} is over the {MAX_MANIFEST_SIZE}-byte limit")
        return data

    def manifest_digest(self) -> Digest:
        """Digest of the top manifest (skopeo manifest-digest rules)."""
        return manifest_digest(self.manifest_bytes())

    def _prefix(self, digest: Digest) -> str:
        top: Digest | None
        try:
            top = self.manifest_digest()
        except NotFound:
            top = None
        return "signature-" if top is None or top == digest else f"{digest.hex}.signature-"

    def _paths(self, prefix: str) -> list[Path]:
        out = []
        n = 1
        while True:
            p = self.path / f"{prefix}{n}"
            if not p.exists():
                return out
            out.append(p)
            n += 1

    def list(self, manifest_digest: Digest) -> list[Signature]:
        """Parse every signature file; raises VerificationError for one that is malformed or oversized."""
        return [signature_from_blob(read_signature_file(p)) for p in self._paths(self._prefix(manifest_digest))]

    def list_blobs(self, manifest_digest: Digest) -> list[tuple[str, bytes]]:
        """(file name, raw bytes) of every signature file, unparsed."""
        return [(p.name, read_signature_file(p)) for p in self._paths(self._prefix(manifest_digest))]

    def add(self, manifest_digest: Digest, sig: Signature) -> None:
        """Write ``sig`` as the next ``signature-N`` (exclusive create, mode 0644)."""
        if not self.path.is_dir():
            raise NotFound(f"{str(self.path)!r} is not a directory")
        prefix = self._prefix(manifest_digest)
        blob = sig.to_blob()
        for _ in range(100):
            n = len(self._paths(prefix)) + 1
            p = self.path / f"{prefix}{n}"
            try:
                fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                continue  # a concurrent writer took this index; try the next one
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(blob)
                    f.flush()
                    os.fsync(f.fileno())
            except BaseException:
                p.unlink(missing_ok=True)
                raise
            return
        raise Conflict(f"could not find a free signature-N name in {str(self.path)!r}")
