"""JSON type checks for the image-spec documents ocilayout reads, as Go's ``encoding/json`` enforces them.

skopeo decodes descriptors, platforms, manifests, indexes and image configs into typed Go structs, so a
field of the wrong JSON type (``"os": 5``, ``"urls": 5``, ``"Volumes": ["/x"]``) fails the whole read. These
checks refuse the same documents, naming the field by its JSON path (``layers[0].urls``). Like Go, ``null``
is accepted wherever a value is (it reads as the zero value), and unknown fields are ignored. Every check
raises :class:`~ocilayout.errors.InvalidManifest`.

Timestamps follow Go 1.20+ ``time.Time`` JSON rules (strict RFC 3339): ``T`` and ``Z`` upper case, a ``.``
before the fraction, month/day/hour/minute/second and the offset in range. skopeo 1.9.3 (Go 1.19) also took
``,`` fractions and ``+24:00`` offsets; current skopeo refuses them, and so does ocilayout.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .errors import InvalidManifest

__all__ = ["check_descriptor", "check_image_config", "check_manifest", "check_platform", "is_rfc3339"]

_INT64 = (-(1 << 63), (1 << 63) - 1)
_RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.\d+)?(?:Z|([+-])(\d\d):(\d\d))")
_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _fail(path: str, want: str, value: Any) -> InvalidManifest:
    return InvalidManifest(f"{path} must be {want}, not {_kind(value)}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def is_rfc3339(text: str) -> bool:
    """True when ``text`` is a timestamp Go's ``time.Time`` accepts in JSON (strict RFC 3339, years 0000-9999)."""
    m = _RFC3339.fullmatch(text)
    if not m:
        return False
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    if not 1 <= month <= 12 or hour > 23 or minute > 59 or second > 59:
        return False
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if not 1 <= day <= (29 if month == 2 and leap else _DAYS[month - 1]):
        return False
    return m.group(7) is None or (int(m.group(8)) <= 23 and int(m.group(9)) <= 59)


class _Doc:
    """Typed access to one JSON object at ``path``; each method checks one field's type."""

    __slots__ = ("d", "path")

    def __init__(self, d: Any, path: str) -> None:
        if not isinstance(d, dict):
            raise _fail(path or "document", "an object", d)
        self.d: Mapping[str, Any] = d
        self.path = path

    def _get(self, key: str) -> tuple[Any, str]:
        return self.d.get(key), _join(self.path, key)

    def string(self, *keys: str) -> None:
        for key in keys:
            v, p = self._get(key)
            if v is not None and not isinstance(v, str):
                raise _fail(p, "a string", v)

    def boolean(self, *keys: str) -> None:
        for key in keys:
            v, p = self._get(key)
            if v is not None and not isinstance(v, bool):
                raise _fail(p, "a boolean", v)

    def integer(self, key: str) -> None:
        v, p = self._get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or not _INT64[0] <= v <= _INT64[1]):
            raise _fail(p, "an integer", v)

    def str_list(self, *keys: str, or_string: bool = False) -> None:
        for key in keys:
            v, p = self._get(key)
            if v is None or (or_string and isinstance(v, str)):
                continue
            if not isinstance(v, list):
                raise _fail(p, "an array of strings", v)
            for i, item in enumerate(v):
                if item is not None and not isinstance(item, str):
                    raise _fail(f"{p}[{i}]", "a string", item)

    def str_map(self, *keys: str) -> None:
        for key in keys:
            v, p = self._get(key)
            if v is None:
                continue
            if not isinstance(v, dict):
                raise _fail(p, "an object of strings", v)
            for k, item in v.items():
                if item is not None and not isinstance(item, str):
                    raise _fail(f"{p}[{k!r}]", "a string", item)

    def set_map(self, *keys: str) -> None:
        """A Go ``map[string]struct{}`` (``ExposedPorts``, ``Volumes``): an object whose values are objects."""
        for key in keys:
            v, p = self._get(key)
            if v is None:
                continue
            if not isinstance(v, dict):
                raise _fail(p, "an object", v)
            for k, item in v.items():
                if item is not None and not isinstance(item, dict):
                    raise _fail(f"{p}[{k!r}]", "an object ({})", item)

    def obj(self, key: str) -> _Doc | None:
        v, p = self._get(key)
        return None if v is None else _Doc(v, p)

    def obj_list(self, key: str) -> list[_Doc]:
        v, p = self._get(key)
        if v is None:
            return []
        if not isinstance(v, list):
            raise _fail(p, "an array", v)
        return [_Doc(item, f"{p}[{i}]") for i, item in enumerate(v) if item is not None]

    def time(self, key: str) -> None:
        v, p = self._get(key)
        if v is None:
            return
        if not isinstance(v, str):
            raise _fail(p, "an RFC 3339 timestamp string", v)
        if not is_rfc3339(v):
            raise InvalidManifest(f"{p} {v[:64]!r} is not an RFC 3339 timestamp")


def check_platform(d: Any, path: str = "platform") -> None:
    """An image-spec platform object (``os``, ``architecture``, ``variant``, ``os.version``: strings;
    ``os.features``, ``features``: arrays of strings)."""
    doc = _Doc(d, path)
    doc.string("architecture", "os", "os.version", "variant")
    doc.str_list("os.features", "features")


def _descriptor(doc: _Doc) -> None:
    doc.string("mediaType", "digest", "artifactType", "data")
    doc.integer("size")
    doc.str_list("urls")
    doc.str_map("annotations")
    plat = doc.obj("platform")
    if plat is not None:
        check_platform(plat.d, plat.path)


def check_descriptor(d: Any, path: str = "descriptor") -> None:
    """An image-spec descriptor's field types (digest syntax and size sign are checked by the parser)."""
    _descriptor(_Doc(d, path))


def check_manifest(d: Any) -> None:
    """The field types of a manifest, index or Docker schema1 manifest (whatever fields it has)."""
    doc = _Doc(d, "")
    doc.integer("schemaVersion")
    doc.string("mediaType", "artifactType", "name", "tag", "architecture")
    doc.str_map("annotations")
    for key in ("config", "subject"):
        sub = doc.obj(key)
        if sub is not None:
            _descriptor(sub)
    for key in ("layers", "manifests"):
        for sub in doc.obj_list(key):
            _descriptor(sub)
    for layer in doc.obj_list("fsLayers"):
        layer.string("blobSum")
    for entry in doc.obj_list("history"):
        entry.string("v1Compatibility")


def _container_config(doc: _Doc, *, docker: bool) -> None:
    # The OCI ImageConfig fields, plus the Docker Schema2Config ones skopeo also decodes (it reads an OCI
    # config as both imgspecv1.Image and Schema2V1Image).
    doc.string("User", "WorkingDir", "StopSignal", "Hostname", "Domainname", "Image", "MacAddress")
    doc.boolean("ArgsEscaped", "AttachStdin", "AttachStdout", "AttachStderr", "Tty", "OpenStdin", "StdinOnce",
             "NetworkDisabled")
    doc.set_map("ExposedPorts", "Volumes")
    doc.str_map("Labels")
    # Docker's strslice.StrSlice takes a single string too; the OCI struct wants an array.
    doc.str_list("Env", "OnBuild")
    doc.str_list("Entrypoint", "Cmd", "Shell", or_string=docker)
    doc.integer("StopTimeout")
    doc.obj("Healthcheck")


def check_image_config(d: Any, *, docker: bool = False) -> None:
    """An image config's field types (OCI image-spec config, plus the Docker fields skopeo decodes).

    ``docker`` is True for ``application/vnd.docker.container.image.v1+json`` configs, whose ``Cmd``,
    ``Entrypoint`` and ``Shell`` may be a single string.
    """
    doc = _Doc(d, "")
    doc.time("created")
    doc.string("author", "architecture", "os", "os.version", "variant", "id", "parent", "comment", "container",
            "docker_version")
    doc.str_list("os.features")
    doc.integer("Size")
    for key in ("config", "container_config"):
        sub = doc.obj(key)
        if sub is not None:
            _container_config(sub, docker=docker)
    rootfs = doc.obj("rootfs")
    if rootfs is not None:
        rootfs.string("type")
        rootfs.str_list("diff_ids")
    for entry in doc.obj_list("history"):
        entry.time("created")
        entry.string("created_by", "author", "comment")
        entry.boolean("empty_layer")
