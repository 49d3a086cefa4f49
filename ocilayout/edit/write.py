"""Writing an edit: new layers spooled while they are hashed, and the edited tree copied to its destination.

:func:`write_edited` is the one write path of every edit command (mutate, append, flatten, normalize,
index create/add/remove): open SOURCE, build the edit, write it to DESTINATION or in place, in one commit.

The in-place rule: without a DESTINATION the result goes back where SOURCE is, which needs a destination
that keeps the other images beside it and names them by ref name (``capabilities.multi_image`` and
``names == "ref-name"``: oci:, oci-archive:). The edited image takes the place of the one SOURCE named:

- a named image (``oci:PATH:TAG``, or the only image of the layout, tagged): the new image gets its names
  (ref name and containerd name) unless ``--ref-name`` / ``--image-name`` say otherwise;
- an untagged ``index.json`` entry (``oci:PATH@sha256:...``, or the only, untagged, entry of a ko or rules_oci
  layout): the new image is added untagged and that entry is dropped in the same commit
  (:meth:`Destination.tag` ``replaces``);
- refused (InvalidArgument, nothing written): a digest that is not an ``index.json`` entry (an image inside
  an index: edit the index with ``--platform``); a *tagged* image named by digest (the tag would move
  without being named: name it, ``oci:PATH:TAG``); naming flags that would rename a named image (its old
  name would stay on the old image: write to a DESTINATION). Adding a containerd name beside the same tag
  (``--image-name``) and naming an untagged image are fine.

Two in-place edits of one image at once (two ``index add`` of a build's platforms) must both land: the
commit, under the layout's lock, checks that the name still names what the edit read
(:meth:`Destination.tag` ``expects``; an untagged entry it replaces must still be there) and raises
ConcurrentEdit otherwise, writing nothing; :func:`write_edited` then runs the edit again on what the other
writer committed (up to :data:`EDIT_ATTEMPTS` times).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..digest import Digest
from .overlay import OverlaySource, SpooledBlob

if TYPE_CHECKING:
    from ..copy import CopyResult, Progress
    from ..reference import ImageReference
    from ..refname import RefNaming
    from ..transports.base import Destination, Source

__all__ = ["EDIT_ATTEMPTS", "InPlace", "Spool", "edit_target", "in_place_name", "write_edit", "write_edited"]

#: How often an in-place edit is run when other writers keep changing its image under it.
EDIT_ATTEMPTS = 20


class Spool:
    """A write-only sink for a new blob: bytes go to an unlinked temporary file (gone if the process dies;
    ``$TMPDIR``) and are hashed as they are written. :meth:`finish` hands back the blob and its digest."""

    def __init__(self, algorithm: str = "sha256") -> None:
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 (owned by the SpooledBlob from finish())
        self._hash = hashlib.new(algorithm)
        self._algorithm = algorithm
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._hash.update(data)
        n = self._file.write(data)
        self.size += n
        return n

    def finish(self) -> tuple[SpooledBlob, Digest]:
        """The spooled blob (flushed) and the digest of everything written."""
        self._file.flush()
        return SpooledBlob(self._file, self.size), Digest(self._algorithm, self._hash.hexdigest())

    def discard(self) -> None:
        self._file.close()


def write_edit(overlay: OverlaySource, dst: Destination | ImageReference | str, *, jobs: int = 4,
               progress: Progress | None = None) -> CopyResult:
    """Copy the edited tree (every image of an index) to ``dst`` in one commit and return what was written.
    On any error the destination is unchanged; the name is the destination reference's."""
    from ..copy import CopyOptions, Selection, copy

    return copy(overlay, dst, CopyOptions(select=Selection(all=True), jobs=jobs, progress=progress))


@dataclass(frozen=True, slots=True)
class InPlace:
    """How an in-place edit names its result: the entry's ref name and containerd name (None: untagged), the
    untagged entry it replaces (None for a named image), and the digest the name named when it was read (None
    for an untagged image): the commit checks it, so an edit never drops another writer's change."""

    name: str | None
    image_name: str | None = None
    replaces: Digest | None = None
    expects: Digest | None = None


def edit_target(source: ImageReference | str | None, destination: ImageReference | str | None,
                naming: RefNaming | None = None) -> ImageReference:
    """The reference an edit writes (``destination``, or ``source`` for an in-place edit), checked before
    anything is read: names that cannot fit ``naming`` raise InvalidArgument now (for an in-place edit they
    are checked against the entry once it is read)."""
    from ..errors import InvalidArgument
    from ..reference import parse_reference

    given = destination if destination is not None else source
    if given is None:
        raise InvalidArgument("give a DESTINATION")
    target = parse_reference(given) if isinstance(given, str) else given
    if naming is not None and destination is not None:
        naming.entry(target.ref)  # raises now for names that do not fit (in place: checked against the entry)
    return target


def in_place_name(src: Source) -> InPlace:
    """What the edited image of ``src`` is called when written back in place (see the module docstring);
    raises InvalidArgument when an in-place edit would be unsafe, UnsupportedFormat when ``src`` is no layout."""
    from ..descriptor import CONTAINERD_NAME, REF_NAME
    from ..errors import InvalidArgument
    from ..transports import transport

    ref, root = src.ref, src.root
    if ref.ref is not None:
        return InPlace(root.annotations.get(REF_NAME) or ref.ref, root.annotations.get(CONTAINERD_NAME),
                       expects=root.digest)
    with transport(ref.transport).open_reader(ref) as reader:
        matching = [e for e in reader.entries() if e.ok and e.descriptor is not None
                    and e.descriptor.digest == root.digest]
    if not matching:
        raise InvalidArgument(f"{ref}: {root.digest} is not an entry of the layout's index.json (an image inside "
                              "an index, or the layout's own index): edit the index that lists it (--platform), "
                              "or give a DESTINATION")
    named = [e for e in matching if e.name]
    if named and ref.digest is not None:
        names = ", ".join(sorted({e.name for e in named if e.name}))
        raise InvalidArgument(f"{ref}: that image is tagged ({names}); name it (PATH:TAG) to move its tag, or give "
                              "a DESTINATION")
    if named:
        ann = named[0].descriptor.annotations if named[0].descriptor is not None else {}
        return InPlace(named[0].name, ann.get(CONTAINERD_NAME), expects=root.digest)
    return InPlace(None, None, root.digest)


def _check_keeps_name(src: Source, where: InPlace, naming: RefNaming | None) -> None:
    """An in-place edit of a named image keeps its ref name: naming flags that would rename it are refused
    (the old name would stay on the old image). Raises InvalidArgument."""
    from ..errors import InvalidArgument

    if naming is None or where.name is None:
        return
    new = None if naming.mode == "none" else naming.entry(where.name).ref_name
    if new != where.name:
        raise InvalidArgument(f"{src.ref}: an in-place edit keeps the name {where.name!r}, but --ref-name/--image-name "
                              f"would name it {new!r}; give a DESTINATION (the same layout may be it), then delete "
                              "the old name")


def write_edited(make: Callable[[Source | None], OverlaySource], source: ImageReference | str | None,
                 destination: ImageReference | str | None = None, *, naming: RefNaming | None = None,
                 jobs: int = 4, progress: Progress | None = None) -> CopyResult:
    """Open ``source`` (None: an edit that reads no image, such as ``index create``), build the edit with
    ``make`` and write it to ``destination`` (None: in place, see the module docstring) in one commit;
    returns what was written. Names: ``naming`` (``--ref-name`` / ``--image-name``), else the destination's
    name as typed, else (in place) the names the image had. On any error the destination is unchanged. An
    in-place edit whose image another writer changed meanwhile is run again on the new image (``make`` is
    called once per attempt). Raises InvalidArgument (an in-place edit the destination cannot take, names
    that do not fit), ConcurrentEdit (other writers won :data:`EDIT_ATTEMPTS` times) and what reading,
    editing and writing raise."""
    import random
    import time

    from ..errors import ConcurrentEdit

    for attempt in range(1, EDIT_ATTEMPTS + 1):
        try:
            return _write_edited_once(make, source, destination, naming=naming, jobs=jobs, progress=progress)
        except ConcurrentEdit:
            if attempt == EDIT_ATTEMPTS:
                raise
            time.sleep(random.uniform(0, 0.01 * attempt))  # the other writers' commits are short
    raise AssertionError("unreachable")


def _write_edited_once(make: Callable[[Source | None], OverlaySource], source: ImageReference | str | None,
                       destination: ImageReference | str | None, *, naming: RefNaming | None, jobs: int,
                       progress: Progress | None) -> CopyResult:
    import contextlib
    import dataclasses

    from ..copy import CopyOptions, Selection, copy_into
    from ..errors import InvalidArgument
    from ..transports import open_destination, open_source

    target = edit_target(source, destination, naming)
    in_place = destination is None
    if in_place:  # written by name (or untagged), never onto a digest
        target = dataclasses.replace(target, ref=None, digest=None, index=None)
    options = CopyOptions(select=Selection(all=True), jobs=jobs, progress=progress, naming=naming)
    with contextlib.ExitStack() as stack:
        src = stack.enter_context(open_source(source)) if source is not None else None
        dst = open_destination(target)
        stack.callback(dst.close)
        where: InPlace | None = None
        if in_place:
            caps = dst.capabilities
            if not (caps.multi_image and caps.names == "ref-name"):
                raise InvalidArgument(f"{source} cannot be edited in place (only layouts that name images by ref "
                                      "name, oci: and oci-archive:, keep their other images): give a DESTINATION")
            assert src is not None
            where = in_place_name(src)
            _check_keeps_name(src, where, naming)
        overlay = stack.enter_context(make(src))
        if where is None:
            result = copy_into(overlay, dst, options)
        else:
            result = copy_into(overlay, dst, options, name=where.name, image_name=where.image_name,
                               replaces=where.replaces, expects=where.expects)
        dst.commit()
    if progress is not None:
        progress.finish()
    return result
