"""Transports: one table from a reference's transport name to the object that opens it.

Adding a transport is one module (a :class:`~ocilayout.transports.base.Transport` subclass with its
Source and Destination) and one row in :data:`TRANSPORTS`; nothing else in the package dispatches on a
transport's name. Modules are imported when a reference of theirs is first opened, so ``import ocilayout``
stays light (the registry transport will be the only network code).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from ..errors import UnsupportedFormat
from ..reference import TRANSPORTS as NAMES
from ..reference import ImageReference, parse_reference
from ..store import LayoutReader, LayoutStore
from .base import Capabilities, Destination, Source, Transport

__all__ = ["TRANSPORTS", "Capabilities", "Destination", "Source", "Transport", "open_destination", "open_layout",
           "open_source", "open_store", "transport"]

#: transport name -> "module:class" of its Transport (imported on first use).
TRANSPORTS: Mapping[str, str] = {
    "oci": "ocilayout.transports.oci:OciTransport",
    "oci-archive": "ocilayout.transports.oci_archive:OciArchiveTransport",
    "dir": "ocilayout.transports.dir:DirTransport",
    "docker-archive": "ocilayout.transports.docker_archive:DockerArchiveTransport",
    "docker": "ocilayout.transports.registry:RegistryTransport",  # the only network code (urllib3)
}
assert tuple(TRANSPORTS) == NAMES, "reference.TRANSPORTS and the transport table must list the same names"

_loaded: dict[str, Transport] = {}


def _ref(ref: ImageReference | str) -> ImageReference:
    return parse_reference(ref) if isinstance(ref, str) else ref


def transport(name: str) -> Transport:
    """The :class:`Transport` for ``name``; raises UnsupportedFormat for a name not in the table."""
    t = _loaded.get(name)
    if t is None:
        spec = TRANSPORTS.get(name)
        if spec is None:
            raise UnsupportedFormat(f"unknown transport {name!r}")
        module, _, cls = spec.partition(":")
        t = getattr(importlib.import_module(module), cls)()
        if not t.name:
            t.name = name  # a placeholder row: every operation says it is not supported
        _loaded[name] = t
    return t


def open_source(ref: ImageReference | str) -> Source:
    """Open a reference for reading and resolve the image it names; raises NotFound, LayoutError..."""
    r = _ref(ref)
    return transport(r.transport).open_source(r)


def open_destination(ref: ImageReference | str) -> Destination:
    """Open a reference for writing; nothing is visible until ``commit``."""
    r = _ref(ref)
    if r.digest is not None:
        raise UnsupportedFormat(f"cannot write to a digest reference {r}; name a tag or none")
    return transport(r.transport).open_destination(r)


def open_layout(ref: ImageReference | str) -> LayoutReader:
    """The whole layout (directory or archive) a reference points into, read-only, without resolving an
    image; raises UnsupportedFormat for transports that are not layouts."""
    r = _ref(ref)
    return transport(r.transport).open_reader(r)


def open_store(ref: ImageReference | str) -> LayoutStore:
    """The writable layout directory a reference points into (tag, delete, gc)."""
    r = _ref(ref)
    return transport(r.transport).open_store(r)
