"""``sync``: copy every image of a repository, a directory tree, a layout or a YAML list, as skopeo sync does.

Two steps, so ``--dry-run`` is the first alone:

* :func:`plan_sync` finds the images (tags listed from registries, ``manifest.json`` files found under a
  ``dir`` tree, ref names of an ``oci`` layout, or skopeo's YAML: :func:`load_yaml`) and names each one's
  destination with skopeo's rules (``--scoped``, ``--append-suffix``). Nothing is written.
* :func:`run_sync` copies them, ``jobs`` images at a time (skopeo copies one after another). Every image
  of a ``--dest oci`` sync goes into ONE layout and ONE commit (one ``index.json`` write, full-reference
  ref names: the air-gap bundle); ``dir`` gets one directory per image, ``docker`` one repository per
  image, each committed when its copy ends. Blobs the destination holds are skipped, so a re-run moves
  no blob.

Failures: without ``keep_going`` the first failure stops the sync (no new image starts; a ``--dest oci``
sync then commits nothing); with it every image is tried and the outcomes say which failed.
``retry_times`` retries an image (and a tag listing) that failed with a registry error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import posixpath
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .copy import CopyOptions, CopyResult, copy_into
from .digest import Digest
from .errors import (
    Conflict,
    InvalidArgument,
    InvalidReference,
    NotFound,
    OcilayoutError,
    RegistryError,
    UnsupportedFormat,
)
from .reference import ImageReference, check_ref_name, parse_reference

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from .descriptor import Descriptor
    from .manifest import Manifest
    from .registry.options import RegistryOptions
    from .semver import Constraint
    from .signature.model import Signature
    from .transports import Capabilities, Destination
    from .transports.base import BlobOpener, ProgressFn

__all__ = ["DEST_KINDS", "SOURCE_KINDS", "ImageOutcome", "RegistryEntry", "SyncImage", "SyncOptions", "SyncPlan",
           "SyncResult", "destination_name", "load_yaml", "plan_sync", "run_sync"]

SourceKind = Literal["docker", "dir", "oci", "yaml"]
DestKind = Literal["docker", "dir", "oci"]
SOURCE_KINDS: tuple[str, ...] = ("docker", "dir", "oci", "yaml")
DEST_KINDS: tuple[str, ...] = ("docker", "dir", "oci")
#: A YAML source file larger than this is refused (a list of tags is small).
MAX_YAML_SIZE = 16 << 20
_SIG_TAG = re.compile(r"(sha256|sha512)-[0-9a-f]+\.sig")


# -- options and results ----------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class SyncOptions:
    """How to sync. ``copy`` is applied to every image (selection, signatures, conversion, blob jobs);
    ``jobs`` images are copied at once. ``source_registry`` / ``destination_registry``: options for
    ``docker://`` references (None: those in force where :func:`plan_sync` / :func:`run_sync` is called).
    ``retry_delay`` None: skopeo's exponential wait (1 s, 2 s, 4 s...)."""

    scoped: bool = False
    append_suffix: str = ""
    copy: CopyOptions = field(default_factory=CopyOptions)
    jobs: int = 4
    keep_going: bool = False
    retry_times: int = 0
    retry_delay: float | None = None
    source_registry: RegistryOptions | None = None
    destination_registry: RegistryOptions | None = None

    def __post_init__(self) -> None:
        if self.jobs < 1:
            raise InvalidArgument(f"jobs must be at least 1, not {self.jobs}")
        if self.retry_times < 0:
            raise InvalidArgument(f"retry times must not be negative, not {self.retry_times}")
        if self.retry_delay is not None and self.retry_delay < 0:
            raise InvalidArgument("retry delay must not be negative")


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncImage:
    """One image to copy: where from, where to (``name``: the ref name or tag it gets there, None for an
    untagged digest), and the registry options its source is read with."""

    source: ImageReference
    destination: ImageReference
    name: str | None
    registry: RegistryOptions | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return f"{self.source} -> {self.destination}"


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncPlan:
    """What a sync copies: ``images`` in order, from ``sources`` repositories / directories / layouts;
    ``failures``: sources that could not be listed (kept only with ``keep_going``)."""

    kind: DestKind
    destination: str
    images: tuple[SyncImage, ...]
    sources: int
    failures: tuple[tuple[str, OcilayoutError | OSError], ...] = ()
    #: ``registry/repository`` -> every tag its listing found (for registry sources that were listed): the
    #: copy asks for no ``.sig`` or referrers tag the listing lacks.
    listed: Mapping[str, frozenset[str]] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class ImageOutcome:
    """The result of one image: a CopyResult, or the error that stopped it (None, None: not started)."""

    image: SyncImage
    result: CopyResult | None = None
    error: OcilayoutError | OSError | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncResult:
    """Every image's outcome, in plan order, and the listing failures of the plan."""

    outcomes: tuple[ImageOutcome, ...]
    sources: int
    listing_failures: tuple[tuple[str, OcilayoutError | OSError], ...] = ()

    @property
    def copied(self) -> list[ImageOutcome]:
        """Outcomes that succeeded."""
        return [o for o in self.outcomes if o.result is not None]

    @property
    def errors(self) -> list[tuple[str, OcilayoutError | OSError]]:
        """(what, error) for every failed listing and image, in order."""
        return list(self.listing_failures) + [(str(o.image.source), o.error) for o in self.outcomes
                                              if o.error is not None]

    @property
    def blobs_copied(self) -> int:
        """Blobs written over every image (0 on an idempotent re-run)."""
        return sum(o.result.blobs_copied for o in self.copied if o.result is not None)


# -- the YAML source ---------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryEntry:
    """One registry of skopeo's YAML: ``images`` (repository -> tags/digests; empty: every tag),
    ``by_regex`` (repository -> tag pattern), ``by_semver`` (repository -> constraint), and the options it
    is reached with (``tls_verify`` None: as on the command line; ``cert_dir``: replaces ``--src-cert-dir``,
    as skopeo does)."""

    registry: str
    images: tuple[tuple[str, tuple[str, ...]], ...] = ()
    by_regex: tuple[tuple[str, re.Pattern[str]], ...] = ()
    by_semver: tuple[tuple[str, Constraint], ...] = ()
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls_verify: bool | None = None
    cert_dir: str | None = None


_REGISTRY_KEYS = frozenset({"images", "images-by-tag-regex", "images-by-semver", "credentials", "tls-verify",
                            "cert-dir"})
_CREDENTIAL_KEYS = frozenset({"username", "password", "identitytoken"})


def _yaml_loader() -> type:
    """A SafeLoader that keeps every scalar a string except nulls: a tag written ``1.10`` stays "1.10" and
    a tag ``no`` stays "no", as Go's yaml decodes them into ``[]string`` (``tls-verify`` is read as a boolean
    by :func:`_yaml_bool`)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.yaml_implicit_resolvers = {
        ch: [(tag, rx) for tag, rx in resolvers if tag == "tag:yaml.org,2002:null"]
        for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    return Loader


_TRUE = frozenset({"y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"})
_FALSE = frozenset({"n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"})


def _yaml_bool(value: object, what: str) -> bool | None:
    """A boolean as yaml.v3 decodes one into a bool field (YAML 1.1 spellings too); None when absent."""
    if value is None:
        return None
    if isinstance(value, str) and value in _TRUE:
        return True
    if isinstance(value, str) and value in _FALSE:
        return False
    raise InvalidArgument(f"{what} must be true or false, not {value!r}")


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what} must be a mapping, not {type(value).__name__}")
    for k in value:
        if not isinstance(k, str):
            raise InvalidArgument(f"{what}: key {k!r} is not a string")
    return value


def _string(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be a string, not {value!r}")
    return value


def _repository(registry: str, repo: str, where: str) -> ImageReference:
    """``registry/repo`` as a docker reference naming a repository (no tag, no digest)."""
    try:
        ref = parse_reference(f"docker://{registry}/{repo}")
    except InvalidReference as err:
        raise InvalidArgument(f"{where}: {registry}/{repo} is not a valid repository name") from err
    if ref.ref is not None or ref.digest is not None:
        raise InvalidArgument(f"{where}: {registry}/{repo} names an image, not a repository")
    return ref


def load_yaml(path: str | os.PathLike[str]) -> list[RegistryEntry]:
    """Read skopeo's sync YAML: ``REGISTRY: {images, images-by-tag-regex, images-by-semver, credentials,
    tls-verify, cert-dir}``. Everything is checked before anything is listed or copied; raises NotFound,
    InvalidArgument (bad YAML, an unknown key, a bad regex or semver constraint, a bad name: exit 2)."""
    import yaml

    from .fsutil import read_limited
    from .semver import parse_constraint

    raw = read_limited(path, "sync YAML", MAX_YAML_SIZE, InvalidArgument)
    try:
        doc = yaml.load(raw, Loader=_yaml_loader())  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise InvalidArgument(f"{path}: not valid YAML{where}: {problem}") from None
    entries: list[RegistryEntry] = []
    for registry, cfg_value in _mapping(doc, str(path)).items():
        where = f"{path}: {registry}"
        cfg = _mapping(cfg_value, where)
        unknown = sorted(set(cfg) - _REGISTRY_KEYS)
        if unknown:
            raise InvalidArgument(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_REGISTRY_KEYS))})")
        images: list[tuple[str, tuple[str, ...]]] = []
        for repo, refs in _mapping(cfg.get("images"), f"{where}: images").items():
            repo_ref = _repository(registry, repo, f"{where}: images")
            if refs is None:
                refs = []
            if not isinstance(refs, list):
                raise InvalidArgument(f"{where}: images: {repo} must list tags or digests, not {refs!r}")
            for r in refs:
                _image_ref(repo_ref, _string(r, f"{where}: images: {repo}: a reference"), f"{where}: images: {repo}")
            images.append((repo, tuple(refs)))
        by_regex: list[tuple[str, re.Pattern[str]]] = []
        for repo, pattern in _mapping(cfg.get("images-by-tag-regex"), f"{where}: images-by-tag-regex").items():
            _repository(registry, repo, f"{where}: images-by-tag-regex")
            text = _string(pattern, f"{where}: images-by-tag-regex: {repo}")
            try:
                by_regex.append((repo, re.compile(text)))
            except re.error as err:
                raise InvalidArgument(f"{where}: images-by-tag-regex: {repo}: bad regular expression "
                                      f"{text!r}: {err}") from None
        by_semver: list[tuple[str, Constraint]] = []
        for repo, constraint in _mapping(cfg.get("images-by-semver"), f"{where}: images-by-semver").items():
            _repository(registry, repo, f"{where}: images-by-semver")
            text = _string(constraint, f"{where}: images-by-semver: {repo}")
            try:
                by_semver.append((repo, parse_constraint(text)))
            except InvalidArgument as err:
                raise InvalidArgument(f"{where}: images-by-semver: {repo}: {err}") from None
        creds = _mapping(cfg.get("credentials"), f"{where}: credentials")
        unknown = sorted(set(creds) - _CREDENTIAL_KEYS)
        if unknown:
            raise InvalidArgument(f"{where}: credentials: unknown key {unknown[0]!r} (known: username, password)")
        if creds.get("identitytoken"):
            raise UnsupportedFormat(f"{where}: credentials: identitytoken is not supported; use username/password")
        tls = _yaml_bool(cfg.get("tls-verify"), f"{where}: tls-verify")
        cert_dir = cfg.get("cert-dir")
        entries.append(RegistryEntry(
            registry=registry, images=tuple(images), by_regex=tuple(by_regex), by_semver=tuple(by_semver),
            username=_string(creds["username"], f"{where}: credentials: username") if creds.get("username") else None,
            password=_string(creds["password"], f"{where}: credentials: password") if creds.get("password") else None,
            tls_verify=tls, cert_dir=_string(cert_dir, f"{where}: cert-dir") if cert_dir is not None else None))
    return entries


def _image_ref(repo: ImageReference, text: str, where: str) -> ImageReference:
    """A tag or a digest of ``repo`` (a digest first, as skopeo tries it)."""
    try:
        return dataclasses.replace(repo, digest=Digest.parse(text))
    except Exception:
        pass
    try:
        ref = parse_reference(f"docker://{repo.path}:{text}")
    except InvalidReference:
        raise InvalidArgument(f"{where}: {text!r} is neither a tag nor a digest") from None
    if ref.path != repo.path:
        raise InvalidArgument(f"{where}: {text!r} is neither a tag nor a digest")
    return ref


# -- registry options ---------------------------------------------------------------------------------------

def _base_options(given: RegistryOptions | None, side: Literal["source", "destination"]) -> RegistryOptions:
    from .registry.options import options_for

    return given if given is not None else options_for(side)


def _entry_options(entry: RegistryEntry, base: RegistryOptions) -> RegistryOptions:
    """skopeo 1.22's per-registry overrides: cert-dir always, tls-verify when given, credentials when set."""
    changes: dict[str, Any] = {"cert_dir": entry.cert_dir}
    if entry.tls_verify is not None:
        changes["tls_verify"] = entry.tls_verify
    if entry.username or entry.password:
        changes["creds"] = f"{entry.username or ''}:{entry.password or ''}"
    return dataclasses.replace(base, **changes)


# -- planning -------------------------------------------------------------------------------------------------

def _retrying(fn: Callable[[], Any], options: SyncOptions) -> Any:
    """``fn()``, tried again ``retry_times`` times after a RegistryError (skopeo's retry.IfNecessary)."""
    attempt = 0
    while True:
        try:
            return fn()
        except RegistryError:
            if attempt >= options.retry_times:
                raise
        delay = options.retry_delay if options.retry_delay else float(2 ** attempt)
        time.sleep(delay)
        attempt += 1


def _list_tags(repo: ImageReference, registry: RegistryOptions, options: SyncOptions,
               listed: dict[str, frozenset[str]] | None = None) -> list[str]:
    """Every tag of ``repo``; also kept in ``listed`` under ``registry/repository``."""
    from .registry.options import use_options
    from .transports import transport

    def once() -> list[str]:
        with use_options(source=registry):
            return transport("docker").list_names(repo)

    tags: list[str] = _retrying(once, options)
    if listed is not None:
        from .transports.registry import split_name

        host, _, name = split_name(repo.path)
        listed[f"{host}/{name}"] = frozenset(tags)
    return tags


def _docker_name(ref: ImageReference) -> str:
    """The full docker reference skopeo's ``DockerReference().String()`` gives (``docker.io/library/...``)."""
    from .transports import transport

    names = transport("docker").repository_names(ref, tags=False)
    assert names is not None  # the registry transport always names its repositories
    tail = f"@{ref.digest}" if ref.digest is not None else f":{ref.ref or 'latest'}"
    return names[0] + tail


@dataclass(slots=True)
class _Found:
    """A source group (one repository, directory tree or layout) and the images in it."""

    refs: list[ImageReference]
    registry: RegistryOptions | None = None
    base: str = ""  # the dir tree a dir: source was found under
    listed: dict[str, frozenset[str]] = field(default_factory=dict)  # see SyncPlan.listed


def _from_docker(source: str, registry: RegistryOptions, options: SyncOptions) -> _Found:
    text = source[len("docker://"):] if source.startswith("docker://") else source
    ref = parse_reference(f"docker://{text}")
    if ref.ref is not None or ref.digest is not None:
        return _Found([ref], registry)
    listed: dict[str, frozenset[str]] = {}
    tags = _list_tags(ref, registry, options, listed)
    if not tags:
        raise NotFound(f"no images to sync found in {text!r}")
    return _Found([dataclasses.replace(ref, ref=t) for t in tags], registry, listed=listed)


def _from_dir(source: str) -> _Found:
    base = Path(source)
    if not base.is_dir():
        raise NotFound(f"invalid source directory {source!r}: no such directory")
    found: list[ImageReference] = []

    def walk(d: Path) -> None:
        if (d / "manifest.json").is_file():
            found.append(ImageReference("dir", str(d)))
            return
        for child in sorted(d.iterdir(), key=lambda p: p.name):
            if child.is_dir() and not child.is_symlink():
                walk(child)

    walk(base)
    if not found:
        raise NotFound(f"no images to sync found in {source!r}")
    return _Found(found, base=str(base))


def _from_oci(source: str) -> _Found:
    from .transports import transport

    ref = ImageReference("oci", source)
    names = [n for n in transport("oci").list_names(ref) if not _SIG_TAG.fullmatch(n)]
    return _Found([dataclasses.replace(ref, ref=n) for n in names])


def _from_yaml(source: str, base: RegistryOptions, options: SyncOptions,
               failures: list[tuple[str, OcilayoutError | OSError]]) -> list[_Found]:
    groups: list[_Found] = []
    for entry in load_yaml(source):
        registry = _entry_options(entry, base)
        for repo, refs in entry.images:
            repo_ref = _repository(entry.registry, repo, source)
            if refs:
                groups.append(_Found([_image_ref(repo_ref, r, source) for r in refs], registry))
                continue
            listed: dict[str, frozenset[str]] = {}
            try:
                tags = _list_tags(repo_ref, registry, options, listed)
            except (OcilayoutError, OSError) as err:
                if not options.keep_going:
                    raise
                failures.append((str(repo_ref), err))
                continue
            if tags:
                groups.append(_Found([dataclasses.replace(repo_ref, ref=t) for t in tags], registry, listed=listed))
        filters: list[tuple[str, Callable[[str], bool]]] = [(r, _searcher(p)) for r, p in entry.by_regex]
        filters += [(r, c.matches) for r, c in entry.by_semver]
        for repo, keep in filters:
            repo_ref = _repository(entry.registry, repo, source)
            listed = {}
            try:
                tags = _list_tags(repo_ref, registry, options, listed)
            except (OcilayoutError, OSError) as err:
                if not options.keep_going:
                    raise
                failures.append((str(repo_ref), err))
                continue
            chosen = [t for t in tags if keep(t)]
            if chosen:
                groups.append(_Found([dataclasses.replace(repo_ref, ref=t) for t in chosen], registry,
                                     listed=listed))
    return groups


def _searcher(pattern: re.Pattern[str]) -> Callable[[str], bool]:
    """Go's ``MatchString``: whether the pattern matches anywhere in the tag."""
    return lambda tag: pattern.search(tag) is not None


def _suffix(ref: ImageReference, group: _Found) -> str:
    """skopeo's ``destSuffix``: the full docker reference, the path under the dir tree, or the ref name."""
    if ref.transport == "docker":
        return _docker_name(ref)
    if ref.transport == "dir":
        rel = os.path.relpath(ref.path, group.base)
        return Path(group.base).resolve().name if rel == "." else rel.replace(os.sep, "/")
    assert ref.ref is not None
    return ref.ref


def _join(destination: str, suffix: str) -> str:
    """Go's ``path.Join``: joined with ``/`` and cleaned (a suffix starting with ``/`` does not reset it)."""
    joined = posixpath.normpath(f"{destination}/{suffix}") if destination else posixpath.normpath(suffix)
    return joined


def _destination(kind: DestKind, destination: str, suffix: str, options: SyncOptions, what: str
                 ) -> tuple[ImageReference, str | None]:
    if kind == "oci":
        name = suffix.lstrip("/") + options.append_suffix  # one layout: always the full (scoped) name
        check_ref_name(name, what)
        return ImageReference("oci", destination), name
    scoped = suffix if options.scoped else posixpath.basename(suffix)
    target = _join(destination, scoped) + options.append_suffix
    if kind == "dir":
        return ImageReference("dir", target), None
    try:
        ref = parse_reference(f"docker://{target}")
    except InvalidReference as err:
        raise InvalidReference(f"{what}: destination {target!r} is not a valid docker reference: {err}") from None
    return ref, (None if ref.digest is not None else ref.ref or "latest")


def plan_sync(src: SourceKind | str, source: str, dest: DestKind | str, destination: str,
              options: SyncOptions | None = None) -> SyncPlan:
    """Find every image ``source`` holds (``src``: docker, dir, oci, yaml) and name its copy under
    ``destination`` (``dest``: docker, dir, oci). Reads registries (tag lists), writes nothing. Raises
    InvalidArgument (bad kinds, dir to dir, bad YAML), NotFound (nothing to sync), Conflict (two images
    would get one name), RegistryError; listing failures are kept instead with ``keep_going``."""
    options = options or SyncOptions()
    if src not in SOURCE_KINDS:
        raise InvalidArgument(f"{src!r} is not a valid source transport (docker, dir, oci, yaml)")
    if dest not in DEST_KINDS:
        raise InvalidArgument(f"{dest!r} is not a valid destination transport (docker, dir, oci)")
    if src == dest == "dir":
        raise InvalidArgument("sync from 'dir' to 'dir' is not implemented, consider using rsync instead")
    if not destination:
        raise InvalidArgument("the sync destination is empty")
    base = _base_options(options.source_registry, "source")
    failures: list[tuple[str, OcilayoutError | OSError]] = []
    if src == "docker":
        groups = [_from_docker(source, base, options)]
    elif src == "dir":
        groups = [_from_dir(source)]
    elif src == "oci":
        groups = [_from_oci(source)]
    else:
        groups = _from_yaml(source, base, options, failures)
    kind: DestKind = dest  # type: ignore[assignment]  # checked against DEST_KINDS above
    images: list[SyncImage] = []
    seen: dict[tuple[str, str | None], SyncImage] = {}
    for group in groups:
        for ref in group.refs:
            dst, name = _destination(kind, destination, _suffix(ref, group), options, str(ref))
            image = SyncImage(source=ref, destination=dst, name=name, registry=group.registry)
            key = (str(dst), name)
            if key in seen:
                raise Conflict(f"{seen[key].source} and {ref} would both be copied to {_shown(dst, name)}"
                               + ("" if options.scoped or dest == "oci" else "; use --scoped"))
            seen[key] = image
            images.append(image)
    listed: dict[str, frozenset[str]] = {}
    for group in groups:  # two entries listing one repository with other options: neither is trusted
        for repo, tags in group.listed.items():
            listed[repo] = tags if listed.get(repo, tags) == tags else frozenset()
    conflicting = [repo for repo, tags in listed.items() if not tags]
    for repo in conflicting:
        del listed[repo]
    return SyncPlan(kind=kind, destination=destination, images=tuple(images), sources=len(groups),
                    failures=tuple(failures), listed=listed)


def _shown(ref: ImageReference, name: str | None) -> str:
    """As skopeo prints it: ``dir:PATH`` and ``oci:PATH:NAME`` unquoted, even when they hold colons."""
    if ref.transport == "oci":
        return f"oci:{ref.path}:{name}" if name is not None else f"oci:{ref.path}"
    if ref.transport == "dir":
        return f"dir:{ref.path}"
    return str(ref)


def destination_name(image: SyncImage) -> str:
    """The destination as skopeo's ``transports.ImageName`` prints it (``oci:PATH:NAME`` for a bundle)."""
    return _shown(image.destination, image.name)


# -- running -------------------------------------------------------------------------------------------------

class _Recording:
    """A view of a shared destination for one image: blobs and manifests go through at once (staged,
    invisible), names and signatures are kept so they can be replayed in plan order before the one commit
    (index.json entries do not depend on which image finished first), and never for an image that failed."""

    def __init__(self, inner: Destination) -> None:
        self._inner = inner
        self.ref: ImageReference = inner.ref
        self.capabilities: Capabilities = inner.capabilities
        self.names: list[tuple[Descriptor, str | None, str | None, Digest | None, Digest | None]] = []
        self.signatures: list[tuple[Digest, Sequence[Signature]]] = []
        self.referrers: list[tuple[Digest, Sequence[Descriptor]]] = []

    def has_blob(self, desc: Descriptor) -> bool:
        return self._inner.has_blob(desc)

    def put_blob(self, open_: BlobOpener, expected: Descriptor | None, *, media_type: str,
                 progress: ProgressFn | None = None) -> Descriptor:
        return self._inner.put_blob(open_, expected, media_type=media_type, progress=progress)

    def put_manifest(self, manifest: Manifest, *, algorithm: str = "sha256") -> Descriptor:
        return self._inner.put_manifest(manifest, algorithm=algorithm)

    def tag(self, desc: Descriptor, name: str | None, *, image_name: str | None = None,
            replaces: Digest | None = None, expects: Digest | None = None) -> None:
        self.names.append((desc, name, image_name, replaces, expects))

    def put_signatures(self, manifest_digest: Digest, sigs: Sequence[Signature]) -> None:
        self.signatures.append((manifest_digest, list(sigs)))

    def put_referrers(self, subject: Digest, referrers: Sequence[Descriptor]) -> None:
        self.referrers.append((subject, list(referrers)))

    def replay(self) -> None:
        for desc, name, image_name, replaces, expects in self.names:
            self._inner.tag(desc, name, image_name=image_name, replaces=replaces, expects=expects)
        for digest, sigs in self.signatures:
            self._inner.put_signatures(digest, sigs)
        for subject, refs in self.referrers:
            self._inner.put_referrers(subject, refs)

    def commit(self) -> None:  # the sync commits the shared destination once
        raise AssertionError("a recording is never committed")

    def close(self) -> None:
        pass


def _signing_for(image: SyncImage, options: CopyOptions) -> CopyOptions:
    """A registry image is signed for its full destination reference (``HOST/REPO:TAG``), as skopeo signs
    for the destination's docker reference; a bundle's ref name already is one."""
    signing = options.signing
    if signing.sign_by is None or signing.identity is not None or image.destination.transport != "docker":
        return options
    ref = image.destination
    identity = f"{ref.path}@{ref.digest}" if ref.digest is not None else f"{ref.path}:{image.name or 'latest'}"
    return dataclasses.replace(options, signing=dataclasses.replace(signing, identity=identity))


def _make_parents(path: Path) -> list[Path]:
    """Create the missing parents of ``path`` (skopeo's MkdirAll for dir: images); returns those made."""
    made: list[Path] = []
    for parent in reversed(path.parents):
        if parent.is_dir():
            continue
        try:
            parent.mkdir()
        except FileExistsError:
            continue  # there already, or made meanwhile by another image of this sync (they run in parallel)
        made.append(parent)
    return made


def _remove_empty(dirs: list[Path]) -> None:
    for d in reversed(dirs):
        try:
            d.rmdir()
        except OSError:
            break


def run_sync(plan: SyncPlan, options: SyncOptions | None = None,
             on_image: Callable[[ImageOutcome], None] | None = None) -> SyncResult:
    """Copy every image of ``plan``, ``options.jobs`` at a time; ``on_image`` hears each outcome as it ends
    (from worker threads). Never raises for an image's failure: the result says (and without
    ``keep_going`` the images not yet started are left out, outcome without result or error). A ``--dest
    oci`` plan is one commit: nothing is committed when an image failed without ``keep_going``, and a
    failed commit fails every image."""
    options = options or SyncOptions()
    signing = options.copy.signing
    if signing.sign_by is not None and signing.identity is None and plan.kind == "dir" and plan.images:
        raise InvalidArgument("cannot sign dir: images: they have no docker reference to sign for (as skopeo)")
    src_base = _base_options(options.source_registry, "source")
    dst_base = _base_options(options.destination_registry, "destination")
    stop = threading.Event()
    shared: Destination | None = None
    if plan.kind == "oci" and plan.images:
        from .transports import open_destination

        shared = open_destination(ImageReference("oci", plan.destination))
    recordings: dict[int, _Recording] = {}
    failed_dirs: list[list[Path]] = []  # parent directories made by images that failed
    made_lock = threading.Lock()
    blobs: Executor | None = None  # one pool for the blobs of every image, not one per image

    def copy_one(i: int, image: SyncImage) -> CopyResult:
        from .registry.options import use_options
        from .transports import open_destination, open_source

        with use_options(image.registry or src_base, dst_base), open_source(image.source) as source:
            if shared is not None:
                rec = _Recording(shared)
                result = copy_into(source, rec, options.copy, name=image.name, executor=blobs)
                recordings[i] = rec
                return result
            copy_options = _signing_for(image, options.copy)
            made = _make_parents(Path(image.destination.path)) if image.destination.transport == "dir" else []
            try:
                target = image.destination
                if target.digest is not None:  # a digest source into a registry: pushed untagged, by digest
                    target = dataclasses.replace(target, digest=None)
                dst = open_destination(target)
                try:
                    result = copy_into(source, dst, copy_options, name=image.name, executor=blobs)
                    if image.destination.digest is not None and result.descriptor.digest != image.destination.digest:
                        raise UnsupportedFormat(f"{image.destination}: the copy's digest would be "
                                                f"{result.descriptor.digest}; add --preserve-digests")
                    dst.commit()
                finally:
                    dst.close()
            except BaseException:
                with made_lock:  # removed when every image is done: another may be about to use them
                    failed_dirs.append(made)
                raise
            return result

    def work(i: int, image: SyncImage) -> ImageOutcome:
        if stop.is_set():
            return ImageOutcome(image)
        try:
            result: CopyResult = _retrying(lambda: copy_one(i, image), options)
        except (OcilayoutError, OSError) as err:
            err.add_note(f"syncing {image}")
            if not options.keep_going:
                stop.set()
            outcome = ImageOutcome(image, error=err)
        else:
            outcome = ImageOutcome(image, result=result)
        if on_image is not None and shared is None:
            on_image(outcome)
        return outcome

    outcomes: list[ImageOutcome] = []
    try:
        with _probes_shared(plan), contextlib.ExitStack() as stack:
            if len(plan.images) > 1:
                from concurrent.futures import ThreadPoolExecutor

                blobs = stack.enter_context(ThreadPoolExecutor(max_workers=max(options.jobs, options.copy.jobs)))
            outcomes = list(_parallel(work, plan.images, options.jobs))
        for made in failed_dirs:
            _remove_empty(made)  # (only empty ones: a directory another image wrote into stays)
        if shared is not None:
            outcomes = _commit_shared(shared, outcomes, recordings, stop.is_set())
            if on_image is not None:
                for o in outcomes:
                    if o.result is not None or o.error is not None:
                        on_image(o)
    finally:
        if shared is not None:
            shared.close()
    return SyncResult(outcomes=tuple(outcomes), sources=plan.sources, listing_failures=plan.failures)


@contextlib.contextmanager
def _probes_shared(plan: SyncPlan) -> Iterator[None]:
    """One ``/v2/`` ping and one connection pool per registry for the whole sync (each image opens its own
    client), and the tag listings of the plan known to the registry sources."""
    if not any("docker" in (i.source.transport, i.destination.transport) for i in plan.images):
        yield
        return
    from .registry.client import shared_probes
    from .transports.registry import listed_tags

    with shared_probes(), listed_tags(plan.listed):
        yield


def _commit_shared(shared: Destination, outcomes: list[ImageOutcome], recordings: dict[int, _Recording],
                   aborted: bool) -> list[ImageOutcome]:
    """Replay the names of the images that succeeded, in plan order, and commit once (not after an abort)."""
    if aborted:
        return [o if o.error is not None else ImageOutcome(o.image) for o in outcomes]
    done = [i for i, o in enumerate(outcomes) if o.result is not None]
    if not done:
        return outcomes
    try:
        for i in done:
            recordings[i].replay()
        shared.commit()
    except (OcilayoutError, OSError) as err:
        return [ImageOutcome(o.image, error=err) if o.result is not None else o for o in outcomes]
    return outcomes


def _parallel(work: Callable[[int, SyncImage], ImageOutcome], images: Sequence[SyncImage], jobs: int
              ) -> Iterator[ImageOutcome]:
    """``work`` on every image, ``jobs`` at once; outcomes in plan order."""
    if jobs == 1 or len(images) <= 1:
        for i, image in enumerate(images):
            yield work(i, image)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(jobs, len(images))) as pool:
        futures = [pool.submit(work, i, image) for i, image in enumerate(images)]
        for f in futures:
            yield f.result()
