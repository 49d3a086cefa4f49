"""How an image is named in a layout's ``index.json``: the three conventions build tools use.

================  ===========================================  ==================================================
``--ref-name``    ``index.json`` entry annotations             written (and read) by
================  ===========================================  ==================================================
``tag``           ``org.opencontainers.image.ref.name: 1.0``   containerd ``ctr export``, BuildKit ``type=oci``,
                  ``io.containerd.image.name:``                Docker 25+ ``docker save``, skopeo (tag only)
                  ``registry.example.com/app:1.0``
``full``          ``org.opencontainers.image.ref.name:``       Jib, rules_img
                  ``registry.example.com/app:1.0``
``none``          no name                                      ko, rules_oci, Nix
================  ===========================================  ==================================================

:func:`entry_name` decides, from the mode, the name the destination reference gives (``oci:PATH:NAME``, a tag
or a full reference) and ``--image-name``, what one entry holds. Full names are normalized as containerd and
docker do (``app`` -> ``docker.io/library/app``). Without a mode the destination's name is written as it was
typed (a tag, or a full reference), which is what ocilayout always did; ``--image-name`` alone means ``tag``.
The reader (``LayoutReader.resolve``) answers to all three: a ref name, a containerd name, and the tag part of
a full reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .errors import InvalidArgument, InvalidReference

__all__ = ["MODES", "EntryName", "RefNameMode", "RefNaming", "entry_name"]

RefNameMode = Literal["tag", "full", "none"]
MODES: tuple[RefNameMode, ...] = ("tag", "full", "none")


@dataclass(frozen=True, slots=True)
class EntryName:
    """What one ``index.json`` entry is called: its ``org.opencontainers.image.ref.name`` (None: untagged)
    and, for containerd's convention, its ``io.containerd.image.name``."""

    ref_name: str | None
    image_name: str | None = None


@dataclass(frozen=True, slots=True)
class RefNaming:
    """The user's choice: a convention (None: the name as typed) and a full ``image_name``."""

    mode: RefNameMode | None = None
    image_name: str | None = None

    def entry(self, dest_name: str | None) -> EntryName:
        """See :func:`entry_name`."""
        return entry_name(self.mode, dest_name, self.image_name)


def _full(text: str, what: str) -> tuple[str, str | None]:
    """(normalized repository name, tag or None) of a docker reference; raises InvalidArgument."""
    from .signature.dockerref import parse_normalized

    try:
        ref = parse_normalized(text)
    except InvalidReference as err:
        raise InvalidArgument(f"{what} {text!r}: {err}") from None
    if ref.digest is not None:
        raise InvalidArgument(f"{what} {text!r}: a layout names images by NAME:TAG, not by digest")
    return ref.name, ref.tag


def _is_full(name: str) -> bool:
    return "/" in name


def entry_name(mode: RefNameMode | None, dest_name: str | None, image_name: str | None = None) -> EntryName:
    """The entry name for ``mode`` given the destination's name (``oci:PATH:NAME``: a tag such as ``1.0``
    or a full reference such as ``registry.example.com/app:1.0``) and ``image_name`` (a full reference,
    with or without a tag). Raises InvalidArgument when they disagree or a mode lacks what it needs."""
    if mode is None and image_name is None:
        return EntryName(dest_name)
    if mode not in (None, *MODES):
        raise InvalidArgument(f"--ref-name {mode!r}: expected one of {', '.join(MODES)}")
    if mode == "none":
        if dest_name is not None or image_name is not None:
            given = f"--image-name {image_name}" if image_name is not None else f"the name {dest_name!r}"
            raise InvalidArgument(f"--ref-name none writes an unnamed entry, but {given} was given: drop it")
        return EntryName(None)
    # tag or full: one repository name and one tag, from the destination name and --image-name
    repo: str | None = None
    tag: str | None = None
    if dest_name is not None:
        if _is_full(dest_name):
            repo, tag = _full(dest_name, "destination name")
        else:
            tag = dest_name
    if image_name is not None:
        name, itag = _full(image_name, "--image-name")
        if repo is not None and name != repo:
            raise InvalidArgument(f"--image-name {image_name} and the destination name {dest_name} disagree")
        if itag is not None and tag is not None and itag != tag:
            raise InvalidArgument(f"--image-name {image_name} has tag {itag!r}, the destination names {tag!r}")
        repo, tag = name, tag or itag
    if tag is None:
        tag = "latest" if repo is not None else None
    if tag is None:
        raise InvalidArgument(f"--ref-name {mode or 'tag'} needs a name: oci:PATH:TAG or --image-name NAME:TAG")
    if mode == "full":
        if repo is None:
            raise InvalidArgument(f"--ref-name full needs a full reference: --image-name REGISTRY/REPO (the "
                                  f"destination names only the tag {tag!r})")
        return EntryName(f"{repo}:{tag}")
    return EntryName(tag, f"{repo}:{tag}" if repo is not None else None)
