"""``attach``: OCI 1.1 referrers (SBOMs, attestations) stored next to an image in a layout.

An attached file becomes an *artifact manifest* as image-spec 1.1 defines it: an image manifest with
``artifactType``, ``config`` the empty descriptor (``application/vnd.oci.empty.v1+json``, ``{}``), one layer
(the file, titled with its name as oras does) and ``subject`` the image's manifest. It is found two ways:

* by its ``subject``, walking what ``index.json`` reaches (how oras-go's ``oci.Store`` finds predecessors);
* through the ``sha256-<hex>`` fallback tag: an index listing the referrers of that digest, as
  distribution-spec's referrers tag schema defines it, for tools that look there (``oras discover`` against a
  registry without the referrers API, cosign's ``--registry-referrers-mode`` legacy path).

The fallback index is merged inside the destination's commit under the layout lock
(:meth:`~ocilayout.transports.base.Destination.put_referrers`), so concurrent writers all survive. The rules
of that index are in :mod:`ocilayout.referrers` (shared with the registry transport).
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import mediatypes as mt
from ..descriptor import Descriptor, Platform
from ..digest import Digest
from ..errors import InvalidArgument, NotFound, UnsupportedFormat
from ..manifest import Manifest, canonical_json
from ..referrers import fallback_tag, referrer_descriptor

if TYPE_CHECKING:
    from ..reference import ImageReference
    from ..transports.base import Source

__all__ = ["EMPTY_CONFIG", "AttachResult", "attach", "list_referrers"]

#: image-spec 1.1's empty descriptor: the config of an artifact that has none.
EMPTY_JSON = b"{}"
EMPTY_CONFIG = Descriptor(mt.OCI_EMPTY, Digest.of(EMPTY_JSON), len(EMPTY_JSON)).with_(
    raw={"mediaType": mt.OCI_EMPTY, "digest": str(Digest.of(EMPTY_JSON)), "size": 2, "data": "e30="})
TITLE = "org.opencontainers.image.title"
#: RFC 6838 type/subtype (with +suffix and parameters left out), as artifactType and mediaType must be.
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")


# -- reading -------------------------------------------------------------------------------------------------

def list_referrers(source: Source, digest: Digest | None = None, *, artifact_type: str | None = None
                   ) -> list[Descriptor]:
    """The referrers ``source`` keeps for ``digest`` (default: its root), those of ``artifact_type`` only when
    given, in stored order."""
    found = source.referrers(digest or source.root.digest)
    return [d for d in found if artifact_type is None or d.artifact_type == artifact_type]


# -- attach ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class AttachResult:
    """What :func:`attach` stored: the artifact manifest's descriptor (as the referrers list names it) and the
    subject it refers to."""

    descriptor: Descriptor
    subject: Descriptor
    tag: str


def _media_type(value: str, flag: str) -> str:
    if not _MEDIA_TYPE.fullmatch(value):
        raise InvalidArgument(f"{flag} {value!r} is not a media type (type/subtype)")
    return value


def _open_file(path: Path) -> io.BufferedReader:
    from ..fsutil import open_regular

    try:
        return open_regular(path, "artifact file")  # type: ignore[return-value]
    except FileNotFoundError as err:
        raise NotFound(f"artifact file {path}: no such file") from err


def _subject(src: Source, platform: Platform | None) -> Descriptor:
    root = src.root
    if platform is not None:
        from ..selection import Selection, select_root

        root, several = select_root(src, Selection(platforms=(platform,)))
        if several is not None:
            raise InvalidArgument(f"{src.ref}: --platform {platform} matches several images; name the variant")
    return Descriptor(root.media_type, root.digest, root.size)


def attach(image: ImageReference | str, path: Path | str, *, artifact_type: str,
           media_type: str = "application/octet-stream", annotations: Mapping[str, str] | None = None,
           platform: Platform | None = None) -> AttachResult:
    """Store ``path`` as an OCI 1.1 artifact whose subject is the manifest ``image`` names (with ``platform``:
    that platform's image in the index), in the layout (or archive) ``image`` is in, and list it under the
    subject's fallback tag; one commit, streamed (constant memory). Raises NotFound (no such image, platform or
    file), InvalidArgument (a bad media type), UnsupportedFormat (a transport that keeps no referrers); on any
    error the layout is unchanged."""
    from ..reference import ImageReference, parse_reference
    from ..transports import open_destination, open_source

    ref = parse_reference(image) if isinstance(image, str) else image
    _media_type(artifact_type, "--artifact-type")
    _media_type(media_type, "--media-type")
    path = Path(path)
    with _open_file(path):  # refused before the image is opened: a missing file changes nothing
        pass
    with open_source(ref) as src:
        subject = _subject(src, platform)
        dst = open_destination(ImageReference(ref.transport, ref.path, None))
        try:
            if not dst.capabilities.referrers:
                raise UnsupportedFormat(f"{ref.transport}: cannot hold OCI referrers (attached artifacts); "
                                        "use oci: or oci-archive:")
            if not dst.has_blob(subject):  # (also: the commit re-checks it under the lock gc takes)
                raise NotFound(f"{ref}: manifest {subject.digest} is not stored in {ref.path}")
            if not dst.has_blob(EMPTY_CONFIG):
                dst.put_blob(lambda: io.BytesIO(EMPTY_JSON), EMPTY_CONFIG, media_type=mt.OCI_EMPTY)
            layer = dst.put_blob(lambda: _open_file(path), None, media_type=media_type)
            layer = layer.with_(annotations={TITLE: os.path.basename(path)})
            doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "artifactType": artifact_type,
                                   "config": EMPTY_CONFIG.to_dict(), "layers": [layer.to_dict()],
                                   "subject": subject.to_dict()}
            if annotations:
                doc["annotations"] = dict(annotations)
            manifest = Manifest.parse(canonical_json(doc))
            dst.put_manifest(manifest)
            desc = referrer_descriptor(manifest)
            dst.put_referrers(subject.digest, [desc])
            dst.commit()
        finally:
            dst.close()
    return AttachResult(descriptor=desc, subject=subject, tag=fallback_tag(subject.digest))
