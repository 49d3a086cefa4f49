"""``docker://HOST[:PORT]/REPO[:TAG|@DIGEST]``: a registry speaking the distribution API v2.

The only network code of ocilayout; imported when a ``docker://`` reference is first opened. A registry is
not a layout: ``open_reader``/``open_store`` stay unsupported; ``list_names`` lists tags (paginated) and
``delete_image`` deletes a manifest by digest (a tag is resolved first).

Names are normalised as Docker Hub's are: ``docker://busybox`` is ``docker.io/library/busybox:latest``
(reached at ``registry-1.docker.io``); a first component with a ``.`` or ``:`` or ``localhost`` is a host.

:class:`RegistrySource` reads manifests with every manifest/index type in ``Accept`` and verifies each
(against the digest asked for, or ``Docker-Content-Digest``); blobs are streamed, unverified, as the seam
says (the destination hashes them) and resumed with ``Range`` when a connection breaks. Signatures are read
from cosign ``sha256-<hex>.sig`` tags. A pull goes through registries.conf (:mod:`ocilayout.registry.config`):
mirrors in order, then the primary location, names rewritten; the first endpoint that serves the manifest
serves the rest. Referrers (OCI 1.1) come from the referrers API or the ``sha256-<hex>`` fallback tag.

:class:`RegistryDestination` skips blobs a HEAD finds, uploads a blob of known digest in one streamed PUT
(chunked PATCHes above ``chunk_size``, or when the digest is unknown: hashed while sent), hashing what it
sends (a lying opener fails the upload, which is never completed); manifests go up by digest, children
first, which names nothing. A blob upload failing with a connection error, 429 or 5xx starts again from a new
session. At ``commit`` the ``.sig`` manifests (appended to what the registry holds then), the referrers
fallback indexes (for manifests with a ``subject`` the registry did not index itself) and then the tags are
PUT. Pushes, deletes and listings go to the registry the reference names (registries.conf rewrites pulls
only; ``blocked`` and ``insecure`` apply to all). A registry has no transactions: a commit that fails
half-way may leave the tags it already wrote; blobs and untagged manifests left by a failed copy are the
registry's garbage to collect.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

from .. import mediatypes as mt
from ..descriptor import REF_NAME, Descriptor
from ..digest import Digest, VerifyingReader
from ..errors import (
    DigestMismatch,
    InvalidManifest,
    InvalidReference,
    NotFound,
    OcilayoutError,
    RegistryError,
    UnsupportedFormat,
)
from ..manifest import MAX_MANIFEST_SIZE, Manifest, manifest_digest
from ..reference import ImageReference
from ..registry.client import BlobReader, Client
from ..registry.options import RegistryOptions, options_for
from .base import BlobOpener, Capabilities, ProgressFn, Transport

if TYPE_CHECKING:
    from ..registry.config import RegistriesConf
    from ..signature.model import Signature

__all__ = ["ACCEPT", "REGISTRY_CAPABILITIES", "RegistryDestination", "RegistrySource", "RegistryTransport",
           "catalog", "split_name"]

#: Every manifest and index type we read, most preferred first (distribution 2.8 hides OCI manifests from
#: clients that do not list the OCI types).
ACCEPT = ", ".join([mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST, mt.OCI_MANIFEST, mt.DOCKER_MANIFEST,
                    mt.DOCKER_V2S1_SIGNED, mt.DOCKER_V2S1])
_KNOWN = frozenset(mt.MANIFEST_TYPES | mt.INDEX_TYPES | mt.SCHEMA1_TYPES)

#: A registry holds every manifest and index type, several tags per commit (one repository), names as
#: docker tags, and sigstore signatures as cosign ``.sig`` tags.
REGISTRY_CAPABILITIES = Capabilities(
    manifest_types=frozenset(mt.MANIFEST_TYPES | mt.INDEX_TYPES | {mt.DOCKER_V2S1_SIGNED}),
    indexes=True,
    multi_image=True,
    names="docker-reference",
    signatures=frozenset({"sigstore"}),
    referrers=True,
)
_TAG = r"[\w][\w.-]{0,127}"
#: First answers to GET /v2/<name>/referrers/<digest> that mean "no referrers API here" (then the tag fallback
#: is read): distribution 2.8's 404, a 200 that is not an OCI index, and what registries that never routed the
#: endpoint say (400 unknown route, 405, 406, 501).
_NO_REFERRERS_API = frozenset({200, 400, 404, 405, 406, 501})
#: Times a blob upload is tried from the start (the first included) after connection errors, 429 or 5xx.
UPLOAD_ATTEMPTS = 5
#: Tags asked for per page of ``tags/list`` (the registry may send fewer and a ``Link`` to the next page).
TAGS_PAGE = 1000
DOCKER_HUB = "docker.io"
#: Pages of the referrers API read for one manifest (each up to MAX_MANIFEST_SIZE) before giving up.
REFERRERS_PAGES = 1000


def split_name(path: str) -> tuple[str, str, str]:
    """``(registry, api_host, repository)`` of a docker reference's name, normalised as Docker Hub's."""
    first, sep, rest = path.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        registry, repo = first, rest
    else:
        registry, repo = DOCKER_HUB, path
    if registry in (DOCKER_HUB, "index.docker.io"):
        registry = DOCKER_HUB
        if "/" not in repo:
            repo = f"library/{repo}"
    api = "registry-1.docker.io" if registry == DOCKER_HUB else registry
    return registry, api, repo


def _conf(options: RegistryOptions) -> RegistriesConf:
    from ..registry.config import load_registries_conf

    return load_registries_conf(options.registries_conf)


def _client(ref: ImageReference, options: RegistryOptions, maxsize: int = 8) -> Client:
    """A client for the registry ``ref`` names, as written (pushes, deletes and listings are not rewritten
    by registries.conf, as upstream): a blocked registry is refused before any request; ``insecure`` of
    its entry applies unless ``--tls-verify`` is given."""
    registry, api, repo = split_name(ref.path)
    entry = _conf(options).check_blocked(f"{registry}/{repo}")
    return Client(registry, api, repo, options, maxsize=maxsize,
                  insecure=entry is not None and entry.endpoint.insecure)


_REPO_PATH = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")


def _pull_attempts(ref: ImageReference, options: RegistryOptions) -> list[tuple[str, Callable[[], Client]]]:
    """What a pull of ``ref`` tries, in order (registries.conf mirrors, then the primary location, each
    with the name rewritten): (``host/repository`` for messages, a client maker). A maker raises
    BlockedRegistry when that endpoint's own entry is blocked. ``--creds`` go to endpoints on the
    reference's own registry only."""
    from ..registry.config import pull_sources

    conf = _conf(options)
    registry, _, repo = split_name(ref.path)
    name = f"{registry}/{repo}"
    out: list[tuple[str, Callable[[], Client]]] = []
    for src in pull_sources(conf.find(name), name, digested=ref.digest is not None):
        preg, papi, prepo = split_name(src.name)
        if src.name != name and not _REPO_PATH.fullmatch(prepo):
            raise InvalidReference(f"registries.conf rewrites {name} to {src.name!r}, not a valid repository")
        opts = options if preg == registry or options.creds is None else dataclasses.replace(options, creds=None)

        def make(preg: str = preg, papi: str = papi, prepo: str = prepo, opts: RegistryOptions = opts,
                 insecure: bool = src.endpoint.insecure, physical: str = src.name) -> Client:
            conf.check_blocked(physical)
            return Client(preg, papi, prepo, opts, insecure=insecure)

        out.append((f"{preg}/{prepo}", make))
    return out


#: Inside :func:`listed_tags`: ``registry/repository`` -> the tags a listing found there.
_listed: Mapping[str, frozenset[str]] | None = None
#: Inside :func:`listed_tags`: base URLs whose referrers API answered that it is not there.
_no_referrers_api: set[str] = set()


@contextlib.contextmanager
def listed_tags(tags: Mapping[str, frozenset[str]]) -> Iterator[None]:
    """Within the block, a source read from a repository of ``tags`` (``registry/repository`` -> every tag
    it held when listed, as sync lists them anyway) asks for no cosign ``.sig`` tag and no referrers
    fallback tag that the listing lacks, and a registry whose referrers API answered 404 (the spec makes a
    registry with the API answer 200 for any digest) is not asked again. A tag pushed after the listing is
    not seen, as if the listing had been made a moment later."""
    global _listed, _no_referrers_api
    outer, outer_api = _listed, _no_referrers_api
    _listed, _no_referrers_api = {**(outer or {}), **tags}, set(outer_api)
    try:
        yield
    finally:
        _listed, _no_referrers_api = outer, outer_api


def _content_type(value: str | None) -> str | None:
    return value.split(";", 1)[0].strip() if value else None


def _read_small(resp: Any, what: str, limit: int = MAX_MANIFEST_SIZE) -> bytes:
    parts: list[bytes] = []
    total = 0
    try:
        while chunk := resp.read(1 << 20, decode_content=False):
            total += len(chunk)
            if total > limit:
                raise InvalidManifest(f"{what} is over the {limit}-byte limit")
            parts.append(chunk)
    finally:
        resp.release_conn()
    return b"".join(parts)


def fetch_manifest(client: Client, reference: str, what: str, expect: Descriptor | None = None
                   ) -> tuple[Manifest, Digest]:
    """GET a manifest by tag or digest and verify it: against ``reference`` when it is a digest, ``expect``'s
    size and digest, and the registry's ``Docker-Content-Digest``. Returns it and its digest. Raises NotFound,
    DigestMismatch, InvalidManifest, RegistryError."""
    resp = client.request("GET", f"manifests/{reference}", headers={"Accept": ACCEPT}, stream=True)
    if resp.status != 200:
        raise client.fail(resp, what)
    header = resp.headers.get("Docker-Content-Digest")
    ctype = _content_type(resp.headers.get("Content-Type"))
    raw = _read_small(resp, what)
    hint = ctype if ctype in _KNOWN else (expect.media_type if expect is not None else None)
    manifest = Manifest.parse(raw, hint)
    want: Digest | None = None
    if reference.count(":") == 1 and "-" not in reference.partition(":")[0]:
        want = Digest.parse(reference)
    elif expect is not None:
        want = expect.digest
    if want is None and header:
        try:
            want = Digest.parse(header)
        except Exception:
            raise RegistryError(f"{what}: the registry sent a malformed Docker-Content-Digest") from None
    digest = manifest_digest(raw, want.algorithm if want is not None else "sha256")
    if want is not None and digest != want:
        raise DigestMismatch(f"{what}: manifest digest mismatch: expected {want}, got {digest}")
    if expect is not None and len(raw) != expect.size and not manifest.is_schema1:
        raise DigestMismatch(f"{what}: manifest is {len(raw)} bytes, expected {expect.size}")
    return manifest, digest


class RegistrySource:
    """An image in a registry repository, resolved when opened (one manifest GET)."""

    def __init__(self, ref: ImageReference, options: RegistryOptions | None = None) -> None:
        self.ref = ref
        self._manifests: dict[Digest, Manifest] = {}
        reference = str(ref.digest) if ref.digest is not None else (ref.ref or "latest")
        attempts = _pull_attempts(ref, options or options_for("source"))
        failed: list[tuple[str, OcilayoutError]] = []
        for where, make in attempts:  # the first endpoint that serves the manifest serves the whole pull
            client: Client | None = None
            try:
                client = make()
                manifest, digest = fetch_manifest(client, reference, str(ref))
            except OcilayoutError as err:
                if client is not None:
                    client.close()
                failed.append((where, err))
                continue
            except BaseException:
                if client is not None:
                    client.close()
                raise
            self._client = client
            #: ``host/repository`` the image is read from (a mirror, or a rewritten location).
            self.physical = where
            break
        else:
            primary = failed[-1][1]
            if len(failed) > 1:  # the primary's error (its type and exit code), the mirrors' on the side
                primary.add_note("mirrors also failed: " + "; ".join(f"[{w}: {e}]" for w, e in failed[:-1]))
            raise primary
        self._manifests[digest] = manifest
        #: The tags of the repository read from, when a listing of it is known (:func:`listed_tags`).
        self._listing = _listed.get(self.physical) if _listed is not None else None
        self._sizes: dict[Digest, int] = {}
        self._note_sizes(digest, manifest)
        # Named by tag, the image's identity is its full docker reference (what sign/verify default to, as a
        # layout's ref name "docker.io/library/foo:1" is); copy drops source names at the destination.
        registry, _, repo = split_name(ref.path)
        names = {REF_NAME: f"{registry}/{repo}:{ref.ref or 'latest'}"} if ref.digest is None else {}
        self.root = Descriptor(media_type=manifest.media_type, digest=digest, size=len(manifest.raw),
                               annotations=names)

    def get_manifest(self, desc: Descriptor | None = None) -> Manifest:
        desc = desc or self.root
        m = self._manifests.get(desc.digest)
        if m is None:
            m, _ = fetch_manifest(self._client, str(desc.digest), f"{self.ref}: manifest {desc.digest}", desc)
            self._manifests[desc.digest] = m
            self._note_sizes(desc.digest, m)
        return m

    def _note_sizes(self, digest: Digest, manifest: Manifest) -> None:
        """Remember the size of a verified manifest and those it gives its config and layers, so
        :meth:`stat_blob` answers them without a HEAD each (a sync of many small images spent half its
        requests there). A blob the registry lacks still fails its GET; foreign layers (``urls``) are still
        asked about."""
        self._sizes[digest] = len(manifest.raw)
        if manifest.is_index or manifest.is_schema1:
            return
        try:
            blobs = ([manifest.config] if "config" in manifest.doc else []) + manifest.layers
        except (InvalidManifest, ValueError, TypeError):
            return  # the walk reports a malformed manifest itself
        for d in blobs:
            if not d.urls:
                self._sizes[d.digest] = d.size

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        reader = BlobReader(self._client, f"blobs/{desc.digest}", desc.size, f"{self.ref}: blob {desc.digest}")
        return reader  # type: ignore[return-value]  # a readable binary stream (read/readinto/close)

    def stat_blob(self, digest: Digest) -> int | None:
        known = self._sizes.get(digest)
        if known is not None:
            return known
        resp = self._client.request("HEAD", f"blobs/{digest}", follow=True)
        resp.release_conn()
        if resp.status != 200:
            return None
        length = resp.headers.get("Content-Length")
        return int(length) if length and length.isdigit() else None

    def signatures(self, manifest_digest: Digest) -> Sequence[Signature]:
        from ..signature.model import MAX_SIGNATURE_SIZE, SigstoreSignature
        from ..signature.storage import sig_tag

        if manifest_digest.algorithm != "sha256":
            return ()  # sha512-<128 hex>.sig is longer than a tag may be
        if self._listing is not None and sig_tag(manifest_digest) not in self._listing:
            return ()  # the repository's listing has no such tag: not one GET per image to learn it
        try:
            sig, _ = fetch_manifest(self._client, sig_tag(manifest_digest), f"{self.ref}: signatures")
        except NotFound:
            return ()
        out: list[Signature] = []
        for layer in sig.layers:
            if layer.size > MAX_SIGNATURE_SIZE:
                raise InvalidManifest(f"signature layer {layer.digest} is over the {MAX_SIGNATURE_SIZE}-byte limit")
            from ..digest import read_verified

            with self.open_blob(layer) as f:
                payload = read_verified(f, layer)
            out.append(SigstoreSignature(layer.media_type, payload, dict(layer.annotations)))
        return out

    def referrers(self, digest: Digest, artifact_type: str | None = None) -> list[Descriptor]:
        """The manifests whose ``subject`` is ``digest``: the referrers API (every page), else -- 404 or an
        answer that is not an OCI index, as distribution 2.8 gives, or 400/405/406/501 -- the ``sha256-<hex>``
        fallback tag's index (none: empty). Filtered by ``artifact_type`` here unless the registry says it did
        (``OCI-Filters-Applied``). Raises RegistryError, InvalidManifest, UnsupportedFormat."""
        from ..referrers import parse_index, select
        from ..registry.client import Pages, next_link

        what = f"{self.ref}: referrers of {digest}"
        if self._client.base() in _no_referrers_api:
            return self._fallback_referrers(digest, artifact_type, what)
        query = "?" + urllib.parse.urlencode({"artifactType": artifact_type}) if artifact_type else ""
        url: str | None = self._client.url(f"referrers/{digest}{query}")
        found: list[Descriptor] = []
        filtered = False
        pages = Pages(what, REFERRERS_PAGES)
        while url is not None:
            pages.visit(url)
            resp = self._client.request("GET", url, headers={"Accept": mt.OCI_INDEX}, stream=True)
            api = resp.status == 200 and _content_type(resp.headers.get("Content-Type")) == mt.OCI_INDEX
            if not api:
                if len(pages) == 1 and resp.status in _NO_REFERRERS_API:
                    resp.drain_conn()
                    resp.release_conn()
                    if _listed is not None:
                        _no_referrers_api.add(self._client.base())
                    return self._fallback_referrers(digest, artifact_type, what)
                raise self._client.fail(resp, what)
            filtered = filtered or "artifactType" in (resp.headers.get("OCI-Filters-Applied") or "")
            link = resp.headers.get("Link", "")
            _, descs = parse_index(_read_small(resp, what), what)
            found.extend(descs)
            url = next_link(link, self._client.base())
        return found if filtered else select(found, artifact_type)

    def _fallback_referrers(self, digest: Digest, artifact_type: str | None, what: str) -> list[Descriptor]:
        from ..referrers import fallback_tag, parse_index, select

        if self._listing is not None and fallback_tag(digest) not in self._listing:
            return []  # the repository's listing has no such tag
        try:
            index, _ = fetch_manifest(self._client, fallback_tag(digest), what)
        except NotFound:
            return []
        _, descs = parse_index(index.raw, f"{what} ({fallback_tag(digest)})")
        return select(descs, artifact_type)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RegistrySource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Counting:
    """Passes reads through and reports their sizes (the copy's progress and cancellation)."""

    def __init__(self, inner: VerifyingReader, progress: ProgressFn | None, limit: int | None = None) -> None:
        self._inner = inner
        self._progress = progress
        self._left = limit
        self.eof = False

    def read(self, n: int = -1) -> bytes:
        if self._left is not None:
            if self._left <= 0:
                return b""
            n = self._left if n is None or n < 0 else min(n, self._left)
        data = self._inner.read(n)
        if not data:
            self.eof = True
        if self._left is not None:
            self._left -= len(data)
        if data and self._progress is not None:
            self._progress(len(data))
        return data


class RegistryDestination:
    """Writes into one repository; tags and signatures become visible at :meth:`commit`."""

    capabilities = REGISTRY_CAPABILITIES

    def __init__(self, ref: ImageReference, options: RegistryOptions | None = None) -> None:
        self.ref = ref
        self._options = options or options_for("destination")
        self._client = _client(ref, self._options, maxsize=16)
        self._pushed: dict[Digest, Manifest] = {}
        self._tags: list[tuple[Descriptor, str]] = []
        self._sigs: dict[Digest, list[Signature]] = {}
        #: subject digest -> referrers pushed to a registry that did not answer ``OCI-Subject``
        self._referrers: dict[Digest, list[Descriptor]] = {}
        self._lock = threading.Lock()

    def has_blob(self, desc: Descriptor) -> bool:
        resp = self._client.request("HEAD", f"blobs/{desc.digest}", actions="pull,push", follow=True)
        resp.release_conn()
        length = resp.headers.get("Content-Length")
        return resp.status == 200 and length == str(desc.size)

    def _location(self, resp: Any) -> str:
        """The absolute upload URL a registry answered with; RegistryError when it sent none."""
        location = resp.headers.get("Location")
        if not isinstance(location, str) or not location:
            raise RegistryError(f"{self.ref}: the registry answered an upload request without a Location header")
        url: str = urllib.parse.urljoin(self._client.base() + "/", location)
        return url

    def _start_upload(self) -> str:
        resp = self._client.request("POST", "blobs/uploads/", actions="pull,push", body=b"",
                                    headers={"Content-Length": "0"})
        if resp.status != 202 or not resp.headers.get("Location"):
            raise self._client.fail(resp, f"{self.ref}: starting a blob upload")
        resp.release_conn()
        return self._location(resp)

    @staticmethod
    def _with_digest(location: str, digest: Digest) -> str:
        return location + ("&" if "?" in location else "?") + "digest=" + urllib.parse.quote(str(digest))

    def _cancel(self, location: str) -> None:
        with contextlib.suppress(Exception):  # best effort: the registry expires abandoned uploads anyway
            self._client.request("DELETE", location, actions="pull,push").release_conn()

    def _mount(self, stream: BinaryIO, expected: Descriptor) -> str | None:
        """Cross-repository mount: when ``stream`` reads ``expected`` from another repository of this
        registry, ask for ``POST ?mount=&from=``. Returns None when the registry mounted it (201), else the
        upload it started instead (202: no access to the other repository, or it lacks the blob)."""
        if not isinstance(stream, BlobReader):
            return self._start_upload()
        base, repo = stream.origin()
        if base != self._client.base() or repo == self._client.repository:
            return self._start_upload()
        query = urllib.parse.urlencode({"mount": str(expected.digest), "from": repo})
        try:
            resp = self._client.request("POST", f"blobs/uploads/?{query}", actions="pull,push",
                                        also=f"repository:{repo}:pull", body=b"", headers={"Content-Length": "0"})
        except RegistryError:  # no pull access to the other repository: upload the blob instead
            return self._start_upload()
        if resp.status == 201:
            resp.release_conn()
            return None
        if resp.status != 202 or not resp.headers.get("Location"):
            raise self._client.fail(resp, f"{self.ref}: starting a blob upload")
        resp.release_conn()
        return self._location(resp)

    def put_blob(self, open_: BlobOpener, expected: Descriptor | None, *, media_type: str,
                 progress: ProgressFn | None = None) -> Descriptor:
        """Upload (or mount) a blob. An upload that fails with a connection error, 429 or 5xx is started
        again from the beginning (a new upload session, ``open_`` called again) after a backoff, up to
        :data:`UPLOAD_ATTEMPTS` times; a digest or size mismatch is never retried. ``progress`` hears of each
        byte once: what a retry sends again is not counted twice."""
        import time

        from ..registry.client import TransientError, sleep_for

        reported = [0]  # bytes already reported: a retry sends them again, progress counts them once
        given: list[BinaryIO] = []

        def fresh() -> BinaryIO:
            """``open_()``, refusing a stream an earlier attempt already read (an opener that is one-shot
            against the contract: a retry would send what is left of it -- without ``expected``, silently
            as another blob)."""
            stream = open_()
            if any(stream is g for g in given):
                raise RegistryError(f"{self.ref}: cannot retry the blob upload: its opener gave the stream "
                                    "already read again (a retry needs a fresh stream of the same bytes)")
            given.append(stream)
            return stream

        for attempt in range(UPLOAD_ATTEMPTS):
            sent = [0]

            def tick(n: int, sent: list[int] = sent) -> None:
                sent[0] += n
                ahead = max(sent[0] - reported[0], 0)
                reported[0] += ahead
                assert progress is not None
                progress(ahead)  # also when 0: the copy's cancellation check runs on every chunk

            try:
                return self._put_blob_once(fresh, expected, media_type=media_type,
                                           progress=tick if progress is not None else None)
            except TransientError as err:
                if attempt + 1 >= UPLOAD_ATTEMPTS:
                    raise
                time.sleep(sleep_for(attempt, err.retry_after))
        raise AssertionError("unreachable")

    def _put_blob_once(self, open_: BlobOpener, expected: Descriptor | None, *, media_type: str,
                       progress: ProgressFn | None) -> Descriptor:
        stream = open_()
        try:
            location = self._mount(stream, expected) if expected is not None else self._start_upload()
        except BaseException:
            stream.close()
            raise
        if location is None and expected is not None:  # mounted: no byte moved (digest-addressed in the registry)
            stream.close()
            return Descriptor(media_type=media_type, digest=expected.digest, size=expected.size)
        assert location is not None
        done = False
        try:
            with stream:
                reader = (VerifyingReader(stream, expected.digest, expected.size) if expected is not None
                          else VerifyingReader(stream, algorithm="sha256"))
                if expected is not None and expected.size <= self._options.chunk_size:
                    body = _Counting(reader, progress)
                    resp = self._client.request("PUT", self._with_digest(location, expected.digest),
                                                actions="pull,push", body=body,  # type: ignore[arg-type]
                                                headers={"Content-Length": str(expected.size),
                                                         "Content-Type": "application/octet-stream"})
                    reader.read(1)  # EOF: checks size and digest (raises) even if the server stopped reading
                else:
                    location = self._patch_all(location, reader, progress)
                    resp = self._client.request("PUT", self._with_digest(location, reader.digest),
                                                actions="pull,push", body=b"", headers={"Content-Length": "0"})
            if resp.status != 201:
                raise self._client.fail(resp, f"{self.ref}: uploading blob {expected.digest if expected else ''}"
                                        .rstrip())
            resp.release_conn()
            done = True
        finally:
            if not done:
                self._cancel(location)
        return Descriptor(media_type=media_type, digest=reader.digest, size=reader.size)

    def _patch_all(self, location: str, reader: VerifyingReader, progress: ProgressFn | None) -> str:
        """Send the stream as PATCHes of at most ``chunk_size`` bytes each (chunked transfer encoding);
        returns the location to finish at. The registry's Range must account for every byte sent."""
        sent = 0
        while True:
            part = _Counting(reader, progress, self._options.chunk_size)
            resp = self._client.request("PATCH", location, actions="pull,push", body=part,  # type: ignore[arg-type]
                                        headers={"Content-Type": "application/octet-stream"})
            if resp.status != 202:
                raise self._client.fail(resp, f"{self.ref}: uploading a blob chunk")
            resp.release_conn()
            sent = reader.size
            rng = resp.headers.get("Range", "")
            m = re.fullmatch(r"(?:bytes=)?0-(\d+)", rng)
            if sent and (m is None or int(m.group(1)) + 1 != sent):
                raise RegistryError(f"{self.ref}: the registry holds {rng!r} of an upload of {sent} bytes")
            location = urllib.parse.urljoin(location, resp.headers.get("Location") or location)
            if part.eof:
                return location

    def put_manifest(self, manifest: Manifest, *, algorithm: str = "sha256") -> Descriptor:
        digest = manifest_digest(manifest.raw, algorithm)
        resp = self._client.request("PUT", f"manifests/{digest}", actions="pull,push", body=manifest.raw,
                                    headers={"Content-Type": manifest.media_type})
        if resp.status != 201:
            raise self._client.fail(resp, f"{self.ref}: pushing manifest {digest}")
        got = resp.headers.get("Docker-Content-Digest")
        handled = bool(resp.headers.get("OCI-Subject"))  # a registry with the referrers API indexed it itself
        resp.release_conn()
        if got and got != str(digest):
            raise DigestMismatch(f"{self.ref}: the registry stored manifest {digest} as {got}")
        subject = manifest.subject if not manifest.is_schema1 else None
        with self._lock:
            self._pushed[digest] = manifest
            if subject is not None and not handled:
                from ..referrers import referrer_descriptor

                self._referrers.setdefault(subject.digest, []).append(referrer_descriptor(manifest))
        return Descriptor(media_type=manifest.media_type, digest=digest, size=len(manifest.raw))

    def tag(self, desc: Descriptor, name: str | None, *, image_name: str | None = None,
            replaces: Digest | None = None, expects: Digest | None = None) -> None:
        if name is None:
            return  # pushed by digest already: an untagged image
        if not re.fullmatch(_TAG, name):
            raise InvalidReference(f"invalid tag {name!r} for {self.ref}")
        self._tags.append((desc, name))

    def put_referrers(self, subject: Digest, referrers: Sequence[Descriptor]) -> None:
        """Nothing more to do: a manifest with a ``subject`` is indexed when it is put (by the registry's
        referrers API, or by the fallback tag this destination updates at commit)."""

    def put_signatures(self, manifest_digest: Digest, sigs: Sequence[Signature]) -> None:
        from ..signature.model import SigstoreSignature

        for s in sigs:
            if not isinstance(s, SigstoreSignature):
                raise UnsupportedFormat("a registry holds sigstore signatures (cosign .sig tags) only")
        if manifest_digest.algorithm != "sha256":
            raise UnsupportedFormat(f"cannot store signatures of {manifest_digest}: a .sig tag needs sha256")
        self._sigs.setdefault(manifest_digest, []).extend(sigs)

    def _put_bytes(self, data: bytes, media_type: str) -> None:
        import io

        desc = Descriptor(media_type=media_type, digest=Digest.of(data), size=len(data))
        if not self.has_blob(desc):
            self.put_blob(lambda: io.BytesIO(data), desc, media_type=media_type)

    def _current_sig(self, digest: Digest) -> tuple[list[dict[str, Any]], list[str]]:
        from ..manifest import load_json
        from ..signature.storage import sig_tag

        try:
            m, _ = fetch_manifest(self._client, sig_tag(digest), f"{self.ref}: signatures of {digest}")
        except NotFound:
            return [], []
        if m.media_type != mt.OCI_MANIFEST:
            raise UnsupportedFormat(f"{sig_tag(digest)} is not an OCI image manifest (containers/image reads "
                                    "only those)")
        layers = [x for x in (m.doc.get("layers") or []) if isinstance(x, dict)]
        diff_ids: list[str] = []
        try:
            src = self._client.request("GET", f"blobs/{m.config.digest}", actions="pull,push", stream=True,
                                       follow=True)
            if src.status == 200:
                cdoc = load_json(_read_small(src, "signature config"), "signature config")
                ids = (cdoc.get("rootfs") or {}).get("diff_ids") if isinstance(cdoc, dict) else None
                diff_ids = [str(x) for x in ids] if isinstance(ids, list) else []
            else:
                src.release_conn()
        except InvalidManifest:
            diff_ids = []
        return layers, diff_ids

    def commit(self) -> None:
        """PUT the ``.sig`` manifests (appending to those stored now), then the tags."""
        from ..signature.storage import appended_sig_blobs, sig_tag

        for digest, sigs in self._sigs.items():
            layers, diff_ids = self._current_sig(digest)
            blobs = appended_sig_blobs(layers, diff_ids, sigs)
            if blobs is None:
                continue
            for data, media_type in blobs[:-1]:
                self._put_bytes(data, media_type)
            raw, media_type = blobs[-1]
            self._put_manifest_at(sig_tag(digest), raw, media_type)
        self._update_referrers()
        for desc, name in self._tags:
            pushed = self._pushed.get(desc.digest)
            if pushed is None:
                pushed, _ = fetch_manifest(self._client, str(desc.digest), f"{self.ref}: manifest {desc.digest}",
                                           desc)
            self._put_manifest_at(name, pushed.raw, pushed.media_type)
        self._sigs.clear()
        self._tags.clear()

    def _update_referrers(self) -> None:
        """The referrers tag fallback: for each subject, read the ``sha256-<hex>`` index, add the manifests
        pushed with that subject (other entries kept as they are) and PUT it back when it changed. Two
        writers racing may lose an entry: the registry offers no compare-and-swap (the spec says as much)."""
        from ..referrers import add_to_index, fallback_tag

        for subject, descs in self._referrers.items():
            tag = fallback_tag(subject)
            try:
                current: bytes | None = fetch_manifest(self._client, tag, f"{self.ref}: referrers tag {tag}")[0].raw
            except NotFound:
                current = None
            new = add_to_index(current, descs)
            if new is not None:
                self._put_manifest_at(tag, new, mt.OCI_INDEX)
        self._referrers.clear()

    def _put_manifest_at(self, reference: str, raw: bytes, media_type: str) -> None:
        resp = self._client.request("PUT", f"manifests/{reference}", actions="pull,push", body=raw,
                                    headers={"Content-Type": media_type})
        if resp.status != 201:
            raise self._client.fail(resp, f"{self.ref}: tagging {reference}")
        resp.release_conn()

    def close(self) -> None:
        self._sigs.clear()
        self._tags.clear()
        self._referrers.clear()
        self._client.close()


#: Repositories asked for per page of ``_catalog``.
CATALOG_PAGE = 1000


def catalog(registry: str, options: RegistryOptions | None = None) -> list[str]:
    """Every repository name ``GET /v2/_catalog`` lists (following ``Link`` pages), in the registry's
    order; ``registry`` is ``HOST[:PORT]`` (``docker.io`` is reached at ``registry-1.docker.io``). Raises
    RegistryError, NotFound (a registry without the catalog API)."""
    name, api, _ = split_name(f"{registry}/x")
    opts = options or options_for("source")
    entry = _conf(opts).check_blocked(name)
    client = Client(name, api, "", opts, insecure=entry is not None and entry.endpoint.insecure)
    try:
        return [str(r) for r in client.paginate(f"_catalog?n={CATALOG_PAGE}", "repositories",
                                                also="registry:catalog:*")]
    finally:
        client.close()


class RegistryTransport(Transport):
    """``docker://``: images in a registry (distribution API v2)."""

    name = "docker"
    remote = True

    def open_source(self, ref: ImageReference) -> RegistrySource:
        return RegistrySource(ref)

    def open_destination(self, ref: ImageReference) -> RegistryDestination:
        if ref.ref is None and ref.digest is None:  # docker://HOST/REPO means :latest, as skopeo reads it
            ref = dataclasses.replace(ref, ref="latest")
        return RegistryDestination(ref)

    def list_names(self, ref: ImageReference) -> list[str]:
        if ref.ref is not None or ref.digest is not None:
            raise InvalidReference(f"{ref}: list-tags takes a repository, without a tag or digest")
        client = _client(ref, options_for("source"))
        try:
            return [str(t) for t in client.paginate(f"tags/list?n={TAGS_PAGE}", "tags")]
        finally:
            client.close()

    def referrers(self, ref: ImageReference, artifact_type: str | None = None) -> list[Descriptor]:
        """The referrers of the image ``ref`` resolves to (read through registries.conf like any pull)."""
        with RegistrySource(ref) as src:
            return src.referrers(src.root.digest, artifact_type)

    def repository_names(self, ref: ImageReference, *, tags: bool = True) -> tuple[str, list[str]]:
        """``HOST/REPO`` (``docker.io/library/...`` normalised) and every tag of the repository."""
        registry, _, repo = split_name(ref.path)
        listed = self.list_names(dataclasses.replace(ref, ref=None, digest=None)) if tags else []
        return f"{registry}/{repo}", listed

    def delete_image(self, ref: ImageReference) -> int:
        """DELETE the manifest ``ref`` names (a tag is resolved to its digest first: distribution deletes by
        digest only, and every tag of that manifest goes with it); returns 1. Raises NotFound, RegistryError
        (deletes disabled on the registry)."""
        client = _client(ref, options_for("destination"))
        try:
            if ref.digest is not None:
                digest = ref.digest
            else:
                _, digest = fetch_manifest(client, ref.ref or "latest", str(ref))
            resp = client.request("DELETE", f"manifests/{digest}", actions="pull,push,delete")
            if resp.status not in (200, 202):
                raise client.fail(resp, f"{ref}: deleting {digest}")
            resp.release_conn()
            return 1
        finally:
            client.close()
