"""One pass from uncompressed tar bytes to a spooled, compressed layer: the diff_id is hashed as the bytes
come in, the compressor writes into an :class:`~ocilayout.edit.write.Spool` that hashes the compressed bytes
(the blob digest) as it writes them. Memory is the codec's buffers, whatever the layer's size.

Compression always runs on the codec's worker threads (:func:`ocilayout.compression.open_compressor` with
``threads``), whose output does not depend on the number of threads or on how writes are chunked: the same
tar gives the same blob on any machine with the same codec library.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from .. import mediatypes as mt
from ..compression import check_level, open_compressor
from ..descriptor import Descriptor
from ..digest import Digest
from ..errors import UnsupportedFormat

if TYPE_CHECKING:
    from ..edit.overlay import OverlaySource, SpooledBlob
    from ..edit.write import Spool

__all__ = ["CODEC_THREADS", "LayerSink", "NewLayer", "layer_media_type"]

#: Codec worker threads (any number >= 1 gives the same bytes).
CODEC_THREADS = 2
COMPRESSIONS = ("gzip", "zstd", "none")

_OCI = {"gzip": mt.OCI_LAYER_GZIP, "zstd": mt.OCI_LAYER_ZSTD, "none": mt.OCI_LAYER}
_DOCKER = {"gzip": mt.DOCKER_LAYER, "zstd": mt.DOCKER_LAYER_ZSTD, "none": mt.DOCKER_LAYER_TAR}


def layer_media_type(manifest_type: str, compression: str) -> str:
    """The layer media type for ``compression`` in a manifest of ``manifest_type`` (OCI or Docker v2s2)."""
    table = _DOCKER if manifest_type == mt.DOCKER_MANIFEST else _OCI
    try:
        return table[compression]
    except KeyError:
        raise UnsupportedFormat(f"cannot write {compression!r} layers (supported: gzip, zstd, none)") from None


@dataclass(slots=True, kw_only=True)
class NewLayer:
    """A finished layer: the spooled compressed ``blob``, its ``digest``, the uncompressed ``diff_id`` and
    ``compression``. Register it with :meth:`register` (the overlay then owns the blob)."""

    blob: SpooledBlob
    digest: Digest
    diff_id: Digest
    compression: str
    uncompressed_size: int

    @property
    def size(self) -> int:
        return self.blob.size

    def register(self, overlay: OverlaySource, manifest_type: str, *, annotations: dict[str, str] | None = None
                 ) -> Descriptor:
        """Add the blob to ``overlay``; returns its descriptor for a manifest of ``manifest_type``
        (annotations only on OCI manifests: Docker v2s2 descriptors have none)."""
        media_type = layer_media_type(manifest_type, self.compression)
        desc = overlay.add_spooled(self.blob, self.digest, media_type)
        if annotations and manifest_type != mt.DOCKER_MANIFEST:
            raw: dict[str, Any] = {**desc.to_dict(), "annotations": dict(annotations)}
            desc = Descriptor.from_dict(raw)
        return desc


class _SpoolFile:
    """The file-like face of a Spool the codecs write into (they also call ``flush``)."""

    def __init__(self, spool: Spool) -> None:
        self.write = spool.write

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        pass


class LayerSink:
    """Write uncompressed tar bytes; :meth:`finish` returns the :class:`NewLayer`. Raises InvalidArgument for
    a level out of range, UnsupportedFormat for an unknown compression."""

    def __init__(self, compression: str, level: int | None = None) -> None:
        from ..edit.write import Spool

        if compression not in COMPRESSIONS:
            raise UnsupportedFormat(f"cannot write {compression!r} layers (supported: gzip, zstd, none)")
        check_level(compression, level)
        self._spool = Spool()
        self._diff = hashlib.sha256()
        self._out = open_compressor(cast(BinaryIO, _SpoolFile(self._spool)), compression, level=level,
                                    threads=CODEC_THREADS if compression != "none" else 0)
        self._compression = compression
        self.uncompressed_size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._diff.update(data)
        self._out.write(data)
        n = len(data)
        self.uncompressed_size += n
        return n

    def finish(self) -> NewLayer:
        self._out.close()
        blob, digest = self._spool.finish()
        return NewLayer(blob=blob, digest=digest, diff_id=Digest("sha256", self._diff.hexdigest()),
                        compression=self._compression, uncompressed_size=self.uncompressed_size)

    def discard(self) -> None:
        with contextlib.suppress(Exception):  # the layer is thrown away; its codec's complaint does not matter
            self._out.close()
        self._spool.discard()
