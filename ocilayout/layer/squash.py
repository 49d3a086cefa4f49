"""Applying layers and writing the result as one sorted tar: what flatten and normalize share.

:func:`spool_layer` reads a layer blob once (verifying its digest and, when known, its diff_id) into an
unlinked temporary file of its uncompressed tar and indexes its headers. :class:`Squash` applies spooled
layers in order, as an extractor would (OCI image spec, "Applying changesets"): a layer's whiteouts
(``.wh.NAME``) and opaque markers (``.wh..wh..opq``) first remove what lower layers put there, then its
entries are added (a later entry for a path replaces the earlier one; a non-directory replacing a directory
drops the directory's contents; a directory over a directory keeps them). :meth:`Squash.emit` writes the
surviving entries depth first in sorted order (a path through a symlink lands where the symlink leads,
inside the tree, as securejoin-style extractors put it), reading file data back from the spooled layers with pread;
files linked together (hard links, in the same or a lower layer) are written once and linked to the first
path written.

With ``whiteouts=False`` (normalize, one layer on its own) whiteouts and opaque markers are entries like
any other and a hard link whose target is not in the layer is kept as it is.

Memory holds the headers (one ``TarInfo`` per entry), never file data.
"""

from __future__ import annotations

import copy
import hashlib
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

from .. import mediatypes as mt
from ..digest import CHUNK, Digest, VerifyingReader
from ..errors import DigestMismatch, IntegrityError, LayoutError, NotFound, UnsupportedFormat
from .reader import OPAQUE, WHITEOUT, check_member

if TYPE_CHECKING:
    import tarfile

    from ..descriptor import Descriptor
    from ..transports.base import Source
    from .entries import EntryPolicy, TarOut

__all__ = ["SpooledTar", "Squash", "spool_layer"]

#: Symlinks followed while resolving one path (Linux's limit).
MAX_HOPS = 40
#: PAX keys regenerated from header fields when an entry is written again (its name may have changed).
_REGENERATED = frozenset({"path", "linkpath", "size", "mtime", "uid", "gid", "uname", "gname"})


@dataclass(slots=True)
class SpooledTar:
    """A layer's uncompressed tar in an unlinked temporary file, and its checked headers (clean names)."""

    file: BinaryIO
    members: list[tarfile.TarInfo]
    what: str

    @property
    def fd(self) -> int:
        return self.file.fileno()

    def close(self) -> None:
        self.file.close()


def spool_layer(source: Source, desc: Descriptor, diff_id: Digest | None) -> SpooledTar:
    """The layer ``desc`` of ``source``, uncompressed into a temporary file and indexed. Raises NotFound
    (blob absent: a foreign layer), UnsupportedFormat (not a layer type we can read), IntegrityError /
    DigestMismatch (digest or diff_id mismatch, corrupt data), UnsafePath, LayoutError (not a tar)."""
    import tarfile

    from ..compression import open_decompressed

    what = f"layer {desc.digest}"
    kind = mt.layer_compression(desc.media_type)
    if kind is None:
        raise UnsupportedFormat(f"{what} has media type {desc.media_type!r}, which is not a layer this tool reads")
    if source.stat_blob(desc.digest) is None:
        raise NotFound(f"{what} is not in {source.ref} (a foreign layer?): it cannot be read")
    tmp = tempfile.TemporaryFile()  # noqa: SIM115 (owned by the SpooledTar)
    try:
        diff = hashlib.sha256()
        with source.open_blob(desc) as raw:
            verified = VerifyingReader(raw, desc.digest, desc.size, what="layer")
            try:
                plain = open_decompressed(verified, kind)  # type: ignore[arg-type]
                while data := plain.read(CHUNK):
                    diff.update(data)
                    tmp.write(data)
                while verified.read(CHUNK):
                    pass
            except (OSError, EOFError) as err:
                raise IntegrityError(f"{what} is not valid {kind} data: {err}") from err
            except Exception as err:
                if type(err).__name__ == "ZstdError":
                    raise IntegrityError(f"{what} is not valid zstd data: {err}") from err
                raise
        got = Digest("sha256", diff.hexdigest())
        if diff_id is not None and diff_id.algorithm == "sha256" and got != diff_id:
            raise DigestMismatch(f"{what}: uncompressed content is {got}, but the image config says its diff_id "
                                 f"is {diff_id}")
        tmp.flush()
        tmp.seek(0)
        try:
            with tarfile.open(fileobj=tmp, mode="r:") as tf:
                for ti in tf:
                    ti.name = check_member(ti, what)
                members = [ti for ti in tf.getmembers() if ti.name]  # the root's own entry (./) is not kept
        except tarfile.ReadError as err:
            raise LayoutError(f"{what} is not a valid tar: {err}") from err
        return SpooledTar(tmp, members, what)
    except BaseException:
        tmp.close()
        raise


@dataclass(slots=True)
class _Content:
    """A regular file's data: where it is in a spooled layer."""

    fd: int
    offset: int
    size: int


@dataclass(slots=True)
class _Node:
    info: tarfile.TarInfo | None  # None: a directory no layer has an entry for (created implicitly)
    kids: dict[str, _Node] | None = None  # directories only
    data: _Content | None = None  # regular files only (shared by hard-linked nodes)


@dataclass(slots=True)
class Squash:
    """The tree the applied layers make (see the module docstring)."""

    whiteouts: bool = True
    root: _Node = field(default_factory=lambda: _Node(None, {}))

    def apply(self, layer: SpooledTar) -> None:
        """Apply one spooled layer on top of what is there; raises IntegrityError for a hard link to a path
        that does not exist (with whiteouts applied)."""
        if self.whiteouts:
            for ti in layer.members:
                parent, _, base = ti.name.rpartition("/")
                if not base.startswith(WHITEOUT):
                    continue
                node = self._dir(parent.split("/") if parent else [], create=False)
                if node is None or node.kids is None:
                    continue
                if base == OPAQUE:
                    node.kids.clear()
                else:
                    node.kids.pop(base[len(WHITEOUT):], None)
        for ti in layer.members:
            if self.whiteouts and ti.name.rpartition("/")[2].startswith(WHITEOUT):
                continue
            self._add(ti, layer)

    def _lookup(self, name: str) -> _Node | None:
        """The node at ``name`` (symlinks on the way followed inside the tree), or None."""
        *parents, leaf = name.split("/") if name else [""]
        node = self._dir(parents, create=False)
        if node is None or not leaf:
            return node
        assert node.kids is not None
        return node.kids.get(leaf)

    def _dir(self, parts: list[str], *, create: bool) -> _Node | None:
        """The directory ``parts`` names, resolving symlinks on the way inside the tree as an extractor does
        (absolute targets from the root, ``..`` stops at the root, at most MAX_HOPS links). With ``create``
        missing directories are made (implicit: no entry) and a non-directory in the way is replaced."""
        node, pending, hops = self.root, list(parts), 0
        trail: list[_Node] = []
        while pending:
            part = pending.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if trail:
                    trail.pop()
                node = trail[-1] if trail else self.root
                continue
            kids = node.kids
            assert kids is not None
            nxt = kids.get(part)
            if nxt is not None and nxt.kids is None and nxt.info is not None and nxt.info.issym() \
                    and hops < MAX_HOPS:
                hops += 1
                target = nxt.info.linkname
                pending = target.split("/") + pending
                if target.startswith("/"):
                    node, trail = self.root, []
                continue
            if nxt is None or nxt.kids is None:
                if not create:
                    return None
                nxt = kids[part] = _Node(None, {})
            trail.append(nxt)
            node = nxt
        return node

    def _add(self, ti: tarfile.TarInfo, layer: SpooledTar) -> None:
        *parents, leaf = ti.name.split("/")
        node = self._dir(parents, create=True)
        assert node is not None and node.kids is not None
        kids = node.kids
        if ti.isdir():
            old = kids.get(leaf)
            if old is not None and old.kids is not None:
                old.info = ti
            else:
                kids[leaf] = _Node(ti, {})
        elif ti.islnk():
            target = self._lookup(ti.linkname)
            if target is None or target.kids is not None or target.info is None:
                if self.whiteouts:
                    raise IntegrityError(f"{layer.what}: hard link {ti.name!r} -> {ti.linkname!r}: no such file")
                kids[leaf] = _Node(ti)  # normalize: a link into a lower layer stays a link
            else:
                kids[leaf] = _Node(target.info, None, target.data)
        elif ti.isreg():
            kids[leaf] = _Node(ti, None, _Content(layer.fd, ti.offset_data, ti.size))
        else:
            kids[leaf] = _Node(ti)

    def emit(self, out: TarOut, policy: EntryPolicy | None = None) -> int:
        """Write the tree (not finishing ``out``); entries stamped by ``policy`` when given, else written
        with their own metadata. Returns the entry count."""
        import tarfile

        first: dict[int, str] = {}
        count = 0
        assert self.root.kids is not None
        stack: list[tuple[list[tuple[str, _Node]], str]] = [(_sorted(self.root.kids), "")]
        while stack:
            items, prefix = stack[-1]
            if not items:
                stack.pop()
                continue
            name, node = items.pop()
            path = prefix + name
            if node.info is not None:
                ti = copy.copy(node.info)
                ti.name = path
                if policy is not None:
                    policy.apply(ti)
                else:
                    ti.pax_headers = {k: v for k, v in ti.pax_headers.items() if k not in _REGENERATED}
                data = node.data
                if data is not None and id(data) in first:
                    ti.type, ti.linkname, ti.size = tarfile.LNKTYPE, first[id(data)], 0
                    out.header(ti)
                elif data is not None:
                    first[id(data)] = path
                    ti.type, ti.size = tarfile.REGTYPE, data.size
                    out.header(ti)
                    out.data_from(data.fd, data.size, offset=data.offset, what=path)
                else:
                    if not ti.islnk():
                        ti.size = 0
                    out.header(ti)
                count += 1
            if node.kids is not None:
                stack.append((_sorted(node.kids), path + "/"))
        return count


def _sorted(kids: dict[str, _Node]) -> list[tuple[str, _Node]]:
    """Children so that ``pop()`` returns them by ascending name bytes."""
    return sorted(kids.items(), key=lambda kv: kv[0].encode("utf-8", "surrogateescape"), reverse=True)
