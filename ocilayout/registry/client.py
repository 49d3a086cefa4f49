"""HTTP to one repository of a registry (distribution API v2), over urllib3.

:class:`Client` promises:

* the base URL is found once by pinging ``/v2/``: HTTPS verified by default; with ``tls_verify=False``,
  HTTPS unverified and then plain HTTP (as containers/image does for an insecure registry);
* authentication: anonymous, ``Basic``, or the ``Bearer`` token flow (a token per scope, fetched before a
  request once the registry said it uses tokens, so a destination's ``pull,push`` scope is an upgrade of a
  source's ``pull``; refreshed when it expires);
* retries with exponential backoff on connection errors, 429 and 5xx, for requests whose body can be sent
  again (none, or bytes); a streamed upload is sent once;
* redirects (blob storage) are followed by hand, without the Authorization header when the host changes;
* :class:`BlobReader` resumes a broken download with ``Range``.

Credentials and tokens live only in request headers; no message raised here contains them.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import SSLError

from ..errors import InvalidArgument, NotFound, RegistryError
from .auth import Challenge, Credentials, find_credentials, parse_challenges
from .options import RegistryOptions

__all__ = ["MAX_PAGES", "RETRY_STATUS", "BlobReader", "Client", "Pages", "TransientError", "next_link",
           "shared_probes", "sleep_for"]

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
#: Attempts for a request that can be repeated (the first one included).
ATTEMPTS = 5
BACKOFF = 0.25
MAX_ERROR_BODY = 64 << 10
MAX_TOKEN_BODY = 1 << 20
#: Pages a ``Link``-paginated listing may have (tags, catalog, referrers).
MAX_PAGES = 10000


class TransientError(RegistryError):
    """A failure worth trying again from the start: a connection error, 429 or 5xx (``retry_after``: the
    registry's Retry-After header, if any). Raised for requests that were not retried here (streamed
    bodies), so that the caller can start over (a new upload session)."""

    def __init__(self, message: str, retry_after: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def sleep_for(attempt: int, retry_after: str | None) -> float:
    """Seconds to wait before attempt ``attempt + 1``: Retry-After (at most 10 s) or exponential backoff."""
    return _sleep_for(attempt, retry_after)


def _sleep_for(attempt: int, retry_after: str | None) -> float:
    if retry_after and retry_after.isdigit():
        return min(float(retry_after), 10.0)
    return float(min(BACKOFF * (2 ** attempt), 8.0))


def _error_text(resp: urllib3.BaseHTTPResponse) -> str:
    """The registry's error codes and messages (bounded), or the status line."""
    cached = getattr(resp, "_body", None)  # a preloaded response keeps its body there; read() gives b""
    try:
        body = cached[:MAX_ERROR_BODY] if isinstance(cached, bytes) else resp.read(MAX_ERROR_BODY, decode_content=True)
    except Urllib3Error:
        body = b""
    try:
        doc = json.loads(body)
        errs = doc.get("errors") if isinstance(doc, dict) else None
        if isinstance(errs, list) and errs:
            parts = []
            for e in errs[:3]:
                if isinstance(e, dict):
                    code, msg = e.get("code", ""), e.get("message", "")
                    parts.append(f"{code}: {msg}" if msg else str(code))
            if parts:
                return "; ".join(parts)
    except (ValueError, RecursionError):  # not JSON, or nested too deeply for the parser
        pass
    return f"HTTP {resp.status} {resp.reason or ''}".strip()


#: Inside :func:`shared_probes`: (api host, tls_verify) -> (base URL, challenge) of the first ``/v2/`` ping.
_probes: dict[tuple[str, bool | None], tuple[str, Challenge | None]] | None = None
#: Inside :func:`shared_probes`: connection pools by (registry, api host, verify, cert dir).
_pools: dict[tuple[str, str, bool, str | None], urllib3.PoolManager] | None = None
#: Idle connections a shared pool keeps per host (the clients of a sync's parallel images use it at once).
SHARED_MAXSIZE = 64
_pools_lock = threading.Lock()


@contextlib.contextmanager
def shared_probes() -> Iterator[None]:
    """Within the block, every Client (any thread) reuses the first ``/v2/`` ping of a host (its scheme and
    auth challenge) and one connection pool (and TLS context) per registry and TLS setting, closed when the
    block ends. sync opens one client per image; without this each would probe HTTPS, then HTTP, and open
    its own connections."""
    global _probes, _pools
    outer, _probes = _probes, (_probes if _probes is not None else {})
    outer_pools, _pools = _pools, (_pools if _pools is not None else {})
    try:
        yield
    finally:
        if outer_pools is None:
            for pool in _pools.values():
                pool.clear()
        _probes, _pools = outer, outer_pools


class Client:
    """Requests to ``/v2/<repository>/...`` of ``api_host``; ``registry`` is the name users write
    (``docker.io``, ``host:port``) and keys credentials."""

    def __init__(self, registry: str, api_host: str, repository: str, options: RegistryOptions,
                 *, maxsize: int = 8, insecure: bool = False) -> None:
        self.registry = registry
        self.api_host = api_host
        self.repository = repository
        self.options = options
        # --tls-verify decides when given; else registries.conf's ``insecure`` (as containers/image does)
        verify = options.tls_verify if options.tls_verify is not None else not insecure
        self.verify = verify
        self._pool, self._own_pool = self._pool_for(registry, api_host, options, verify, maxsize), _pools is None
        self._base: str | None = None
        self._creds: Credentials | None = None
        self._creds_loaded = False
        self._challenge: Challenge | None = None
        self._tokens: dict[str, tuple[str, float]] = {}
        self._token_lock = threading.Lock()
        if not verify:
            import warnings

            warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)

    # -- set-up ---------------------------------------------------------------------------------------

    @property
    def where(self) -> str:
        """``registry/repository`` (the registry alone for registry-wide requests), for messages."""
        return f"{self.registry}/{self.repository}" if self.repository else self.registry

    @staticmethod
    def _pool_for(registry: str, api_host: str, options: RegistryOptions, verify: bool, maxsize: int
                  ) -> urllib3.PoolManager:
        """A new pool, or inside :func:`shared_probes` the block's pool for these settings."""
        def make(maxsize: int = maxsize) -> urllib3.PoolManager:
            return urllib3.PoolManager(
                num_pools=4, maxsize=maxsize, block=False, retries=False,
                cert_reqs="CERT_REQUIRED" if verify else "CERT_NONE",
                ssl_context=_ssl_context(registry, options, verify),
                timeout=urllib3.Timeout(connect=30.0, read=300.0), blocksize=1 << 20)

        pools = _pools
        if pools is None:
            return make()
        key = (registry, api_host, verify, options.cert_dir)
        with _pools_lock:
            pool = pools.get(key)
            if pool is None:
                pool = pools[key] = make(max(maxsize, SHARED_MAXSIZE))
        return pool

    def close(self) -> None:
        if self._own_pool:  # a shared pool is closed when its shared_probes block ends
            self._pool.clear()

    def _credentials(self) -> Credentials | None:
        if not self._creds_loaded:
            self._creds = find_credentials(self.options, self.registry, self.repository)
            self._creds_loaded = True
        return self._creds

    def base(self) -> str:
        """``scheme://host``, found by pinging ``/v2/``; raises RegistryError when nothing answers."""
        if self._base is not None:
            return self._base
        memo, key = _probes, (self.api_host, self.verify)
        if memo is not None and key in memo:
            self._base, self._challenge = memo[key]
            return self._base
        schemes = ["https"] if self.verify else ["https", "http"]
        last: str = ""
        for scheme in schemes:
            url = f"{scheme}://{self.api_host}/v2/"
            try:  # the HTTPS probe of an insecure registry is tried once: a TLS error does not go away
                resp = self._send("GET", url, {}, None, stream=False, repeatable=scheme == schemes[-1])
            except RegistryError as err:
                last = str(err)
                continue
            if resp.status in (200, 401):
                self._base = f"{scheme}://{self.api_host}"
                if resp.status == 401:
                    self._note_challenge(resp)
                if memo is not None:
                    memo[key] = (self._base, self._challenge)
                return self._base
            last = f"{url}: {_error_text(resp)}"
        hint = ("" if not self.verify
                else " (plain HTTP or an untrusted certificate: --tls-verify=false, or its CA in --cert-dir)")
        raise RegistryError(f"cannot reach registry {self.registry}: {last}{hint}")

    def _note_challenge(self, resp: urllib3.BaseHTTPResponse) -> Challenge | None:
        for ch in parse_challenges(resp.headers.get("WWW-Authenticate", "")):
            if ch.scheme in ("bearer", "basic"):
                self._challenge = ch
                return ch
        return None

    # -- auth -----------------------------------------------------------------------------------------

    def _scope(self, actions: str, also: str | None = None) -> str:
        """The token scope(s), space-separated: this repository's ``actions``, plus ``also``."""
        if not self.repository:  # registry-wide requests (the catalog) name their scope in ``also``
            return also or ""
        return f"repository:{self.repository}:{actions}" + (f" {also}" if also else "")

    def _auth_header(self, actions: str, also: str | None = None) -> str | None:
        ch = self._challenge
        if ch is None:
            return None
        creds = self._credentials()
        if ch.scheme == "basic":
            return creds.basic() if creds is not None else None
        scope = self._scope(actions, also)
        with self._token_lock:  # blob workers share the cache: one token request per scope, not one each
            tok = self._tokens.get(scope)
            if tok is None or tok[1] <= time.monotonic():
                tok = self._fetch_token(ch, scope, creds)
                self._tokens[scope] = tok
        return f"Bearer {tok[0]}"

    def _fetch_token(self, ch: Challenge, scope: str, creds: Credentials | None) -> tuple[str, float]:
        realm = ch.params.get("realm")
        if not realm or urllib.parse.urlsplit(realm).scheme not in ("http", "https"):
            raise RegistryError(f"{self.registry}: the token challenge has no usable realm")
        query = [("scope", one) for one in scope.split(" ") if one]  # none: a login check
        if ch.params.get("service"):
            query.append(("service", ch.params["service"]))
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        if (creds is not None and self.verify and urllib.parse.urlsplit(realm).scheme == "http"
                and self.base().startswith("https://")):
            raise RegistryError(f"{self.registry}: the token server {_safe(realm)} is plain HTTP while the registry "
                                "is HTTPS: credentials are not sent in clear (--tls-verify=false allows it)")
        headers = {"Authorization": creds.basic()} if creds is not None else {}
        resp = self._send("GET", url, headers, None, stream=False, repeatable=True)
        if resp.status in (401, 403):
            raise RegistryError(f"{self.registry}: authentication refused by the token server (check --creds or "
                                "the auth file)")
        if resp.status != 200:
            raise RegistryError(f"{self.registry}: token server answered {_error_text(resp)}")
        try:
            doc = json.loads(resp.data[:MAX_TOKEN_BODY])
        except (ValueError, RecursionError):
            doc = None
        token = (doc.get("token") or doc.get("access_token")) if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"{self.registry}: the token server's answer holds no token")
        expires = doc.get("expires_in") if isinstance(doc, dict) else None
        life = float(expires) if isinstance(expires, int | float) and expires > 0 else 60.0
        return token, time.monotonic() + max(life - 10.0, 1.0)

    # -- requests -------------------------------------------------------------------------------------

    def _send(self, method: str, url: str, headers: Mapping[str, str], body: bytes | BinaryIO | None, *,
              stream: bool, repeatable: bool) -> urllib3.BaseHTTPResponse:
        """One request with retries (when ``repeatable``) on connection errors, 429 and 5xx."""
        attempts = ATTEMPTS if repeatable else 1
        for attempt in range(attempts):
            try:
                resp = self._pool.request(method, url, headers=dict(headers), body=body,
                                          preload_content=not stream, decode_content=False, redirect=False,
                                          retries=False)
            except Urllib3Error as err:
                if attempt + 1 < attempts and not isinstance(err, SSLError):  # a TLS failure does not go away
                    time.sleep(_sleep_for(attempt, None))
                    continue
                cls = RegistryError if isinstance(err, SSLError) else TransientError
                raise cls(f"{method} {_safe(url)}: {type(err).__name__}: {_reason(err)}") from None
            if resp.status in RETRY_STATUS and attempt + 1 < attempts:
                retry_after = resp.headers.get("Retry-After")
                resp.drain_conn()
                resp.release_conn()
                time.sleep(_sleep_for(attempt, retry_after))
                continue
            return resp
        raise AssertionError("unreachable")

    def url(self, path: str) -> str:
        """The absolute URL of ``/v2/<repository>/<path>`` (``/v2/<path>`` for a registry-wide client)."""
        return f"{self.base()}/v2/{self.repository}/{path}" if self.repository else f"{self.base()}/v2/{path}"

    def request(self, method: str, path_or_url: str, *, actions: str = "pull", also: str | None = None,
                headers: Mapping[str, str] | None = None, body: bytes | BinaryIO | None = None,
                stream: bool = False, follow: bool = False) -> urllib3.BaseHTTPResponse:
        """Send a request with authentication (token scope: this repository's ``actions``, plus the full
        scope ``also``, e.g. the repository a blob is mounted from); a 401 is answered once. With
        ``follow``, redirects are followed (no Authorization to another host). Raises RegistryError when
        authentication is refused or the registry cannot be reached; other statuses are the caller's."""
        url = path_or_url if "://" in path_or_url else self.url(path_or_url)
        repeatable = body is None or isinstance(body, bytes)
        hdrs = dict(headers or {})
        # Credentials go to the registry's own origin (scheme, host, port) only, never to a URL it points
        # elsewhere (an upload Location, a Link page, a redirect), nor over plain HTTP when it is HTTPS.
        ours = _origin(url) == _origin(self.base())
        auth = self._auth_header(actions, also) if ours else None
        if auth:
            hdrs["Authorization"] = auth
        resp = self._send(method, url, hdrs, body, stream=stream, repeatable=repeatable)
        if resp.status == 401 and ours:
            had = self._challenge
            ch = self._note_challenge(resp)
            creds = self._credentials()
            if ch is not None and repeatable and (ch != had or (ch.scheme == "bearer" and "Authorization" in hdrs)
                                                  or (ch.scheme == "basic" and creds is not None and not auth)):
                resp.drain_conn()
                resp.release_conn()
                if ch.scheme == "bearer":
                    self._tokens.pop(self._scope(actions, also), None)
                auth = self._auth_header(actions, also)
                if auth:
                    hdrs["Authorization"] = auth
                resp = self._send(method, url, hdrs, body, stream=stream, repeatable=repeatable)
            if resp.status == 401:
                what = "refused" if self._credentials() is not None else "required"
                raise RegistryError(f"{self.where}: authentication {what} (HTTP 401; "
                                    "check --creds or the auth file)")
        if resp.status == 403:
            raise RegistryError(f"{self.where}: access denied (HTTP 403): {_error_text(resp)}")
        hops = 0
        origin = _origin(url)
        while follow and resp.status in (301, 302, 303, 307, 308) and hops < 5:
            location = resp.headers.get("Location")
            if not location:
                break
            resp.drain_conn()
            resp.release_conn()
            url = urllib.parse.urljoin(url, location)
            if _origin(url) != origin:
                hdrs.pop("Authorization", None)
            resp = self._send("GET" if resp.status == 303 else method, url, hdrs, body, stream=stream,
                              repeatable=repeatable)
            hops += 1
        return resp

    def fail(self, resp: urllib3.BaseHTTPResponse, what: str) -> RegistryError | NotFound:
        """The error for an unexpected answer (NotFound for 404, TransientError for 429 and 5xx), with the
        registry's own message."""
        text = _error_text(resp)
        resp.release_conn()
        if resp.status == 404:
            return NotFound(f"{what}: not found ({text})")
        if resp.status in RETRY_STATUS:
            return TransientError(f"{what}: {text}", resp.headers.get("Retry-After"))
        return RegistryError(f"{what}: {text}")

    def paginate(self, path: str, key: str, *, also: str | None = None) -> Iterator[Any]:
        """Every item of ``key`` across the pages of a ``Link: <...>; rel="next"`` list (tags, catalog)."""
        pages = Pages(f"{self.where}: listing {key}")
        url: str | None = path
        while url is not None:
            pages.visit(url if "://" in url else self.url(url))
            resp = self.request("GET", url, also=also)
            if resp.status != 200:
                raise self.fail(resp, f"{self.where}: listing {key}")
            try:
                doc = json.loads(resp.data[: 16 << 20])
            except (ValueError, RecursionError):
                raise RegistryError(f"{self.registry}: the {key} list is not JSON") from None
            items = doc.get(key) if isinstance(doc, dict) else None
            if items is not None and not (isinstance(items, list) and all(isinstance(i, str) for i in items)):
                raise RegistryError(f"{self.registry}: the {key} list is not an array of strings")
            yield from (items or [])
            url = next_link(resp.headers.get("Link", ""), self.base())


def _ssl_context(registry: str, options: RegistryOptions, verify: bool) -> ssl.SSLContext | None:
    """A TLS context with the certs.d CAs added to the system roots and the client certificate loaded;
    None (urllib3's default) when the directory holds neither. Raises InvalidArgument for unreadable files."""
    from .config import cert_dir_for, tls_files

    files = tls_files(cert_dir_for(registry, options.cert_dir))
    if not files.cas and not files.client_pairs:
        return None if verify else _unverified_context()
    ctx = ssl.create_default_context()  # the system roots (SSL_CERT_FILE / SSL_CERT_DIR honoured)
    where = ""
    try:
        for ca in files.cas:
            where = str(ca)
            ctx.load_verify_locations(cafile=str(ca))
        if files.client_pairs:  # an SSLContext holds one client chain: the first pair, in name order
            cert, key = files.client_pairs[0]
            where = f"{cert} and {key}"
            ctx.load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, OSError) as err:
        reason = getattr(err, "reason", None) or getattr(err, "strerror", None) or err
        raise InvalidArgument(f"certificates for {registry}: {where}: {reason}") from None
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Pages:
    """Guards a ``Link``-paginated listing: :meth:`visit` raises RegistryError when a page's URL was read
    already (a registry whose next page points back: it would never end) or after ``limit`` pages (a
    listing is never cut short silently). URLs are compared absolute."""

    def __init__(self, what: str, limit: int = MAX_PAGES) -> None:
        self._what = what
        self._limit = limit
        self._seen: set[str] = set()

    def visit(self, url: str) -> None:
        if url in self._seen:
            raise RegistryError(f"{self._what}: the registry's next page ({_safe(url)}) was read already: "
                                "its Link header loops")
        if len(self._seen) >= self._limit:
            raise RegistryError(f"{self._what}: over {self._limit} pages")
        self._seen.add(url)

    def __len__(self) -> int:
        return len(self._seen)


def _unverified_context() -> ssl.SSLContext:
    """TLS without verification (``--tls-verify=false``), without loading the system CA roots that nothing
    would check (urllib3's default context loads them: ~35 ms of CPU per pool)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def next_link(header: str, base: str) -> str | None:
    """The absolute URL of a ``Link: <...>; rel="next"`` header, None when there is no next page."""
    for part in header.split(","):
        if 'rel="next"' in part or "rel=next" in part:
            start, end = part.find("<"), part.find(">")
            if 0 <= start < end:
                return urllib.parse.urljoin(base + "/", part[start + 1 : end])
    return None


def _origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of ``url``, the port made explicit: credentials go to one origin only, so an
    ``https://host`` registry pointing to ``http://host`` (plain text) or another port gets none."""
    s = urllib.parse.urlsplit(url)
    try:
        port = s.port
    except ValueError:
        port = -1
    scheme = s.scheme.lower()
    return scheme, (s.hostname or "").lower(), port if port is not None else {"https": 443, "http": 80}.get(scheme)


def _safe(url: str) -> str:
    """A URL without its query (pre-signed storage URLs carry secrets there)."""
    s = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((s.scheme, s.netloc.rpartition("@")[2], s.path, "", ""))


def _reason(err: BaseException) -> str:
    reason = getattr(err, "reason", None) or err
    text = str(reason)
    return text.split(": ", 1)[-1] if "object at 0x" in text else text


class BlobReader:
    """A blob's bytes from ``GET /v2/<name>/blobs/<digest>``, resuming with ``Range`` after a broken
    connection (up to :data:`ATTEMPTS` times); bytes are NOT verified here (the destination does)."""

    def __init__(self, client: Client, path: str, size: int | None, what: str) -> None:
        self._client = client
        self._path = path
        self._size = size
        self._what = what
        self._offset = 0
        self._retries = 0
        self._resp: urllib3.BaseHTTPResponse | None = None
        self._open(0)

    def origin(self) -> tuple[str, str]:
        """(``scheme://host`` of the registry, repository) this blob is read from: a destination on the
        same registry mounts the blob from there instead of uploading it."""
        return self._client.base(), self._client.repository

    def _open(self, offset: int) -> None:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        resp = self._client.request("GET", self._path, headers=headers, stream=True, follow=True)
        if resp.status == 206 and offset:
            rng = resp.headers.get("Content-Range", "")
            if not rng.startswith(f"bytes {offset}-"):
                resp.release_conn()
                raise RegistryError(f"{self._what}: the registry resumed at the wrong offset ({rng!r})")
        elif resp.status == 200:
            skip = offset  # the server ignored Range: read and drop what we already have
            while skip:
                chunk = resp.read(min(skip, 1 << 20), decode_content=False)
                if not chunk:
                    break
                skip -= len(chunk)
        else:
            raise self._client.fail(resp, self._what)
        self._resp = resp

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self._resp is None:
            return b""
        amt = None if n is None or n < 0 else n
        while True:
            try:
                data = self._resp.read(amt, decode_content=False)
            except Urllib3Error as err:
                self._resp.release_conn()
                if self._retries + 1 >= ATTEMPTS:
                    raise RegistryError(f"{self._what}: download broke off at byte {self._offset}: "
                                        f"{_reason(err)}") from None
                self._retries += 1
                time.sleep(_sleep_for(self._retries - 1, None))
                self._open(self._offset)
                continue
            self._offset += len(data)
            return data

    def readinto(self, buf: bytearray | memoryview) -> int:
        data = self.read(len(buf))
        k = len(data)
        memoryview(buf)[:k] = data
        return k

    def close(self) -> None:
        if self._resp is not None:
            self._resp.release_conn()
            self._resp = None

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

