"""Where registry credentials are kept: auth files and ``docker-credential-*`` helper programs.

Read and written as containers/image's ``pkg/docker/config`` does (what podman and skopeo use), so each tool
reads what the other wrote:

* files read, first match wins: ``--authfile``/``$REGISTRY_AUTH_FILE`` alone when given; else
  ``${XDG_RUNTIME_DIR}/containers/auth.json`` (``/run/containers/UID/auth.json`` when XDG_RUNTIME_DIR is
  unset), ``${XDG_CONFIG_HOME:-~/.config}/containers/auth.json``, ``${DOCKER_CONFIG:-~/.docker}/config.json``
  and the legacy ``~/.dockercfg``;
* in a file: ``credHelpers[REGISTRY]`` asks that helper; else ``auths`` keys ``host/ns/repo``, ``host/ns``,
  ``host`` (exact), then keys normalised (``https://`` prefixes and paths dropped, docker.io spellings made
  one); else -- docker's extension, which containers/image does not read -- the file's ``credsStore``;
* written: one file (:func:`write_target`), ``{"auths": {KEY: {"auth": base64(USER:PASSWORD)}}}``,
  through ``credHelpers[KEY]`` (or ``credsStore``) when the file names a helper; 0600, new directories
  0700, replaced atomically, every other key of the file kept; the read-modify-write holds a flock on the
  file's directory, so concurrent ocilayout logins never lose each other's entries.

Helpers speak docker's protocol: ``get``/``erase`` read the server URL on stdin, ``store`` a JSON
``{"ServerURL","Username","Secret"}``, ``list`` answers ``{URL: USER}``; a helper that says ``credentials
not found`` means no credentials. Nothing here prints or logs a secret: :class:`Credentials` hides them in
``repr``, and a helper's output is redacted before it goes into an error.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InvalidArgument, RegistryError
from .options import RegistryOptions

__all__ = [
    "AuthFile",
    "Credentials",
    "auth_files",
    "find",
    "helper_erase",
    "helper_get",
    "helper_list",
    "helper_store",
    "login_key",
    "normalize_key",
    "normalize_registry",
    "remove",
    "remove_all",
    "store",
    "validate_key",
    "write_target",
]

MAX_AUTH_FILE = 1 << 20
MAX_HELPER_OUTPUT = 1 << 20
HELPER_PREFIX = "docker-credential-"
#: What docker-credential-helpers' programs print when they hold nothing for a server.
NOT_FOUND_MESSAGE = "credentials not found in native keychain"
#: docker's key for Docker Hub in config.json (``docker login`` and credsStore helpers use it).
DOCKER_HUB_KEY = "https://index.docker.io/v1/"


@dataclass(frozen=True, slots=True)
class Credentials:
    """A user name and secret; ``repr`` shows neither."""

    username: str = field(repr=False)
    password: str = field(repr=False)

    def basic(self) -> str:
        """The ``Authorization: Basic`` value."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def encoded(self) -> str:
        """The auth file's ``auth`` value: base64 of ``USER:PASSWORD``."""
        return base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")

    def __repr__(self) -> str:
        return "Credentials(<redacted>)"


# -- keys --------------------------------------------------------------------------------------------------

def normalize_registry(registry: str) -> str:
    """containers/image's normalizeRegistry: Docker Hub's host names become ``index.docker.io``."""
    return "index.docker.io" if registry in ("registry-1.docker.io", "docker.io") else registry


def normalize_key(key: str, legacy: bool = False) -> str:
    """An auth file key as a registry host: ``https://host/v1/`` is ``host`` (docker.io spellings made one)."""
    stripped = key.removeprefix("http://").removeprefix("https://")
    if legacy or stripped != key:
        stripped = stripped.partition("/")[0]
    return normalize_registry(stripped)


def validate_key(key: str) -> bool:
    """containers/image's validateKey: True when ``key`` is namespaced (``host/ns``); raises InvalidArgument
    for URL prefixes, ``@`` and a tag after ``host[:port]``."""
    if key.startswith(("http://", "https://")):
        raise InvalidArgument(f"key {key} contains http[s]:// prefix")
    if "@" in key:
        raise InvalidArgument(f"key {key} contains a '@' character")
    host, slash, rest = key.partition("/")
    if slash and ":" in rest:
        raise InvalidArgument(f"key {key} contains a ':' character after host[:port]")
    if not host:
        raise InvalidArgument(f"key {key!r} has no registry")
    return bool(slash)


_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")


def login_key(arg: str) -> tuple[str, str]:
    """``(key, registry)`` for ``login``/``logout ARG`` as c/common's parseCredentialsKey with repositories
    accepted: a URL is cut to its ``host[:port]``; ``host/ns/repo`` is kept (not normalised). Raises
    InvalidArgument."""
    key = arg
    if arg.startswith(("http://", "https://")):
        key = arg.split("://", 1)[1].split("/", 1)[0].rpartition("@")[2]
    registry, slash, path = key.partition("/")
    if not registry:
        raise InvalidArgument(f"invalid registry {arg!r}")
    if slash:
        if "@" in path or ":" in path:
            raise InvalidArgument(f"reference {arg!r} contains tag or digest")
        if not ("." in registry or ":" in registry or registry == "localhost"):
            raise InvalidArgument(f"{arg!r}: {registry!r} is not a registry host (want HOST[:PORT][/REPOSITORY])")
        if not all(_COMPONENT.fullmatch(c) for c in path.split("/")):
            raise InvalidArgument(f"{arg!r} is not a valid repository name")
    validate_key(key)
    return key, registry


# -- files ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class AuthFile:
    """One auth file: ``legacy`` for ``~/.dockercfg`` (a bare map of keys), ``compat`` for a Docker
    config.json written in Docker's own form, ``explicit`` when a flag or the environment named it."""

    path: Path
    legacy: bool = False
    compat: bool = False
    explicit: bool = False


def _home() -> Path:
    return Path(os.environ.get("HOME") or Path.home())


def _default_file() -> AuthFile | None:
    """containers/image's getPathToAuth default on Linux; None when $XDG_RUNTIME_DIR names a missing
    directory (reads skip it, writes fail: see :func:`write_target`)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        if not os.path.exists(runtime):
            return None
        return AuthFile(Path(runtime) / "containers" / "auth.json")
    return AuthFile(Path(f"/run/containers/{os.getuid()}/auth.json"))


def auth_files(options: RegistryOptions) -> list[AuthFile]:
    """The files read for credentials, in order (some may not exist)."""
    explicit = options.authfile or os.environ.get("REGISTRY_AUTH_FILE")
    if explicit:
        return [AuthFile(Path(explicit))]
    out = []
    default = _default_file()
    if default is not None:
        out.append(default)
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(_home() / ".config")
    out.append(AuthFile(Path(config_home) / "containers" / "auth.json"))
    docker = os.environ.get("DOCKER_CONFIG")
    out.append(AuthFile(Path(docker) / "config.json" if docker else _home() / ".docker" / "config.json"))
    out.append(AuthFile(_home() / ".dockercfg", legacy=True))
    return out


def write_target(authfile: str | None = None, compat_authfile: str | None = None) -> AuthFile:
    """The one file login/logout edit, as c/common does: ``--authfile``, else ``--compat-auth-file`` (Docker's
    form), else ``$REGISTRY_AUTH_FILE``, else ``$DOCKER_CONFIG/config.json`` (Docker's form), else the
    default auth.json. Raises InvalidArgument, RegistryError ($XDG_RUNTIME_DIR missing)."""
    if authfile and compat_authfile:
        raise InvalidArgument("--authfile and --compat-auth-file exclude each other")
    if authfile:
        return AuthFile(Path(authfile), explicit=True)
    if compat_authfile:
        return AuthFile(Path(compat_authfile), compat=True, explicit=True)
    if os.environ.get("REGISTRY_AUTH_FILE"):
        return AuthFile(Path(os.environ["REGISTRY_AUTH_FILE"]), explicit=True)
    if os.environ.get("DOCKER_CONFIG"):
        return AuthFile(Path(os.environ["DOCKER_CONFIG"]) / "config.json", compat=True, explicit=True)
    default = _default_file()
    if default is None:
        raise RegistryError(f"{os.environ.get('XDG_RUNTIME_DIR')!r} directory set by $XDG_RUNTIME_DIR does not "
                            "exist. Either create the directory or unset $XDG_RUNTIME_DIR.")
    return default


def _load(f: AuthFile) -> dict[str, object] | None:
    """The file's JSON object (key order kept), or None when it does not exist. Raises RegistryError."""
    try:
        with f.path.open("rb") as fh:
            raw = fh.read(MAX_AUTH_FILE + 1)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as err:
        raise RegistryError(f"cannot read auth file {f.path}: {err.strerror}") from None
    if len(raw) > MAX_AUTH_FILE:
        raise RegistryError(f"auth file {f.path} is over {MAX_AUTH_FILE} bytes")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply for the parser
        raise RegistryError(f"auth file {f.path} is not valid JSON") from None
    if not isinstance(doc, dict):
        raise RegistryError(f"auth file {f.path} is not a JSON object")
    return doc


def _section(doc: dict[str, object], name: str, f: AuthFile) -> dict[str, object]:
    value = doc.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RegistryError(f"auth file {f.path}: {name!r} is not an object")
    return value


def _decode(entry: object, f: AuthFile, key: str) -> Credentials | None:
    """containers/image's decodeDockerAuth: None for an entry without ``USER:``; raises RegistryError for
    bad base64 (never showing it)."""
    if not isinstance(entry, dict):
        return None
    token = entry.get("auth")
    if not isinstance(token, str) or not token:
        return None
    try:
        text = base64.b64decode(token, validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        raise RegistryError(f"auth file {f.path}: the entry for {key} is not base64 USER:PASSWORD") from None
    user, sep, password = text.partition(":")
    if not sep:
        return None
    return Credentials(user, password.strip("\x00"))


def _lookup_order(key: str) -> list[str]:
    parts = key.split("/")
    return ["/".join(parts[:n]) for n in range(len(parts), 0, -1)]


def _find_in_file(f: AuthFile, key: str, registry: str) -> Credentials | None:
    doc = _load(f)
    if doc is None:
        return None
    if f.legacy:
        auths: dict[str, object] = doc
        helpers: dict[str, object] = {}
    else:
        auths, helpers = _section(doc, "auths", f), _section(doc, "credHelpers", f)
    helper = helpers.get(registry)
    if isinstance(helper, str):
        return helper_get(helper, registry)
    for k in ([registry] if f.legacy else _lookup_order(key)):
        if k in auths:
            return _decode(auths[k], f, k) or _from_store(doc, registry, f)
    wanted = normalize_registry(registry)
    for k, v in auths.items():
        if normalize_key(k, f.legacy) == wanted:
            return _decode(v, f, k) or _from_store(doc, registry, f)
    return _from_store(doc, registry, f)


def _from_store(doc: dict[str, object], registry: str, f: AuthFile) -> Credentials | None:
    store_name = None if f.legacy else doc.get("credsStore")
    if not isinstance(store_name, str) or not store_name:
        return None
    return helper_get(store_name, _store_server(registry))


def _store_server(registry: str) -> str:
    """The server URL docker gives a credsStore helper: Docker Hub's v1 URL, else the host."""
    return DOCKER_HUB_KEY if normalize_registry(registry) == "index.docker.io" else registry


def find(options: RegistryOptions, key: str) -> tuple[Credentials, Path | None] | None:
    """Credentials for ``key`` (``registry[/repository]``, as users write the registry: ``docker.io``,
    ``host:port``) and the file they came from (None for --creds), or None for anonymous access. Raises
    InvalidArgument (bad --creds), RegistryError (unreadable file, failing helper, missing --authfile)."""
    if options.creds is not None:
        from .auth import parse_creds

        return parse_creds(options.creds), None
    registry = key.partition("/")[0]
    for f in auth_files(options):
        if options.authfile and not f.path.exists():
            raise RegistryError(f"--authfile {f.path} does not exist")
        creds = _find_in_file(f, key, registry)
        if creds is not None:
            return creds, f.path
    return None


# -- writing --------------------------------------------------------------------------------------------------

def _make_dirs(directory: Path) -> None:
    """Create ``directory`` and missing parents, each new one 0700 (as Go's MkdirAll(dir, 0700))."""
    missing = []
    d = directory
    while not d.exists():
        missing.append(d)
        if d.parent == d:
            break
        d = d.parent
    for m in reversed(missing):
        try:
            os.mkdir(m, 0o700)
        except FileExistsError:
            continue


def _go_json(doc: object) -> bytes:
    """JSON as Go's json.MarshalIndent(v, "", "\\t") writes it (HTML characters escaped, no final newline)."""
    text = json.dumps(doc, indent="\t", ensure_ascii=False)
    for ch, esc in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"), ("\u2028", "\\u2028"),
                    ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text.encode("utf-8")


def _write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically with a 0600 file: the temp file is made beside it (O_EXCL|O_NOFOLLOW,
    0600 before any byte is written), fsynced, then renamed over ``path`` (a symlink there is replaced,
    never followed, as Go's ioutils.AtomicWriteFile does)."""
    tmp = path.parent / f".tmp-{path.name}-{os.getpid()}-{os.urandom(4).hex()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


Editor = Callable[[dict[str, object], dict[str, object], str | None], bool]


def _edit(f: AuthFile, editor: Editor) -> None:
    """Load ``f`` (missing: empty), let ``editor(auths, credHelpers, credsStore)`` change it, and write it
    back when it says it changed something. Other keys and other entries are kept as they are."""
    if f.legacy:
        raise RegistryError(f"writes to {f.path} using legacy format are not supported")
    _make_dirs(f.path.parent)
    with _locked(f.path.parent):
        _edit_locked(f, editor)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive flock(2) on ``directory`` (the auth file's; no lock file is created) while an
    edit reads, changes and replaces the file: two ocilayout logins at once both land, neither entry is
    lost. containers/image takes no lock (podman and skopeo may still race with us: the file is replaced
    atomically, so it is never corrupt, at worst one entry is lost). A directory that cannot be opened or
    locked is edited without the lock."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        yield
        return
    try:
        with contextlib.suppress(OSError):  # e.g. a file system without flock
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _edit_locked(f: AuthFile, editor: Editor) -> None:
    doc = _load(f)
    doc = {} if doc is None else doc
    auths = dict(_section(doc, "auths", f))
    helpers = dict(_section(doc, "credHelpers", f))
    store_name = doc.get("credsStore")
    if not editor(auths, helpers, store_name if isinstance(store_name, str) and store_name else None):
        return
    out: dict[str, object]
    if f.compat:  # Docker's form: only auths changes (credHelpers are Docker's, kept even by logout --all),
        out = dict(doc)  # every other key kept, top-level keys sorted (Go marshals its raw map sorted)
        out["auths"] = dict(sorted(auths.items()))
        out = dict(sorted(out.items()))
    else:  # containers' form: auths, credHelpers (when any), then whatever else the file held
        out = {"auths": dict(sorted(auths.items()))}
        if helpers:
            out["credHelpers"] = dict(sorted(helpers.items()))
        out.update((k, v) for k, v in doc.items() if k not in ("auths", "credHelpers"))
    _write_private(f.path, _go_json(out))


def _file_key(f: AuthFile, key: str) -> str:
    if f.compat:
        if "/" in key:
            raise InvalidArgument(f"credentials cannot be recorded in Docker-compatible format with namespaced key "
                                  f"{key!r}")
        return DOCKER_HUB_KEY if key == "docker.io" else key
    return key


def store(f: AuthFile, key: str, creds: Credentials) -> str:
    """Record ``creds`` for ``key`` in ``f``, or in the helper ``f`` names for it (``credHelpers[key]``,
    else ``credsStore``); returns where (for ``--verbose``). Raises InvalidArgument, RegistryError, OSError."""
    namespaced = validate_key(key)
    key = _file_key(f, key)
    where = [str(f.path)]

    def edit(auths: dict[str, object], helpers: dict[str, object], store_name: str | None) -> bool:
        helper = helpers.get(key)
        name = helper if isinstance(helper, str) else store_name
        if name is not None:
            if namespaced:
                raise InvalidArgument(f"namespaced key is not supported for credential helper {name}")
            helper_store(name, key if isinstance(helper, str) else _store_server(key), creds)
            where[0] = f"credential helper: {name}"
            return False
        auths[key] = {"auth": creds.encoded()}
        return True

    _edit(f, edit)
    return where[0]


def remove(f: AuthFile, key: str) -> bool:
    """Remove ``key``'s credentials from ``f`` and from the helper it names for ``key``; False when there
    were none (nothing is written then). Raises InvalidArgument, RegistryError, OSError."""
    namespaced = validate_key(key)
    key = _file_key(f, key)
    if not f.path.exists():
        return False
    found = [False]

    def edit(auths: dict[str, object], helpers: dict[str, object], store_name: str | None) -> bool:
        helper = helpers.get(key)
        if isinstance(helper, str) and not namespaced:
            found[0] |= helper_erase(helper, key)
        elif store_name is not None and not namespaced:
            found[0] |= helper_erase(store_name, _store_server(key))
        if key in auths:
            del auths[key]
            found[0] = True
            return True
        return False

    _edit(f, edit)
    return found[0]


def remove_all(f: AuthFile) -> None:
    """Log out of everything ``f`` holds: erase each ``credHelpers`` registry from its helper, then empty
    ``auths`` and ``credHelpers`` (as containers/image's RemoveAllAuthentication). Raises RegistryError, OSError."""
    if not f.path.exists():
        return

    def edit(auths: dict[str, object], helpers: dict[str, object], store_name: str | None) -> bool:
        for registry, helper in helpers.items():
            if isinstance(helper, str):
                helper_erase(helper, registry)
        auths.clear()
        helpers.clear()
        return True

    _edit(f, edit)


# -- helper programs ------------------------------------------------------------------------------------------

_HELPER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


def _run_helper(name: str, action: str, stdin: bytes, secret: str | None = None) -> tuple[bool, bytes]:
    """Run ``docker-credential-NAME ACTION`` with ``stdin``: (succeeded, stdout). Raises RegistryError when
    the program is missing or cannot run; ``secret`` is redacted from anything that goes into a message."""
    if not _HELPER_NAME.fullmatch(name):
        raise RegistryError(f"invalid credential helper name {name!r}")
    program = shutil.which(HELPER_PREFIX + name)
    if program is None:
        raise RegistryError(f"credential helper {HELPER_PREFIX}{name} is not installed (not found in $PATH)")
    try:
        proc = subprocess.run([program, action], input=stdin, capture_output=True, check=False)
    except OSError as err:
        raise RegistryError(f"cannot run {HELPER_PREFIX}{name}: {err.strerror}") from None
    return proc.returncode == 0, proc.stdout[:MAX_HELPER_OUTPUT]


def _helper_failure(name: str, action: str, out: bytes, secrets: tuple[str, ...] = ()) -> RegistryError:
    text = " ".join(out.decode("utf-8", "replace").split())[:300]
    for s in secrets:
        if s:
            text = text.replace(s, "<redacted>")
    return RegistryError(f"credential helper {HELPER_PREFIX}{name} {action} failed" + (f": {text}" if text else ""))


def _not_found(out: bytes) -> bool:
    return out.decode("utf-8", "replace").strip() == NOT_FOUND_MESSAGE


def helper_get(name: str, server: str) -> Credentials | None:
    """The helper's credentials for ``server``, None when it holds none (or only an identity token, which
    ocilayout cannot use). Raises RegistryError."""
    ok, out = _run_helper(name, "get", server.encode())
    if not ok:
        if _not_found(out):
            return None
        raise _helper_failure(name, "get", out)
    try:
        doc = json.loads(out)
    except (ValueError, RecursionError):
        doc = None  # the output is not shown: it may hold the secret
    if not isinstance(doc, dict) or not isinstance(doc.get("Username"), str) or not isinstance(doc.get("Secret"), str):
        raise RegistryError(f"credential helper {HELPER_PREFIX}{name} get answered something that is not "
                            '{"Username": ..., "Secret": ...}')
    if doc["Username"] == "<token>" or not doc["Username"]:
        return None
    return Credentials(doc["Username"], doc["Secret"])


def helper_store(name: str, server: str, creds: Credentials) -> None:
    """Store ``creds`` for ``server`` in the helper. Raises RegistryError (never showing the secret)."""
    payload = json.dumps({"ServerURL": server, "Username": creds.username, "Secret": creds.password}).encode()
    ok, out = _run_helper(name, "store", payload, creds.password)
    if not ok:
        raise _helper_failure(name, "store", out, (creds.password, creds.encoded()))


def helper_erase(name: str, server: str) -> bool:
    """Erase ``server`` from the helper; False when it held nothing for it. Raises RegistryError."""
    ok, out = _run_helper(name, "erase", server.encode())
    if ok:
        return True
    if _not_found(out):
        return False
    raise _helper_failure(name, "erase", out)


def helper_list(name: str) -> dict[str, str]:
    """``{server URL: user name}`` of everything the helper holds. Raises RegistryError."""
    ok, out = _run_helper(name, "list", b"")
    if not ok:
        raise _helper_failure(name, "list", out)
    try:
        doc = json.loads(out)
    except (ValueError, RecursionError):
        doc = None
    if not isinstance(doc, dict):
        raise RegistryError(f"credential helper {HELPER_PREFIX}{name} list did not answer a JSON object")
    return {str(k): str(v) for k, v in doc.items()}
