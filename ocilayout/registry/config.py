"""registries.conf and certs.d, read as containers/image reads them (no network, no urllib3).

registries.conf (containers-registries.conf(5), containers/image ``pkg/sysregistriesv2``):

* Which files: ``--registries-conf FILE``, else ``$CONTAINERS_REGISTRIES_CONF`` (an explicit file must
  exist); else ``~/.config/containers/registries.conf`` when it exists (and then only the user drop-in
  directory ``~/.config/containers/registries.conf.d``), else ``/etc/containers/registries.conf`` (missing
  is fine) plus the drop-ins of ``/etc/containers/registries.conf.d`` and then the user one. With an
  explicit file, both drop-in directories are still read, as upstream does.
* Drop-ins are the ``*.conf`` files of each directory in name order, v2 format only; a ``[[registry]]``
  of a later file replaces one with the same ``prefix``.
* v2: ``[[registry]]`` with ``prefix`` (default: ``location``; ``*.example.com`` matches subdomains),
  ``location``, ``insecure``, ``blocked``, ``mirror-by-digest-only`` and ``[[registry.mirror]]``
  (``location``, ``insecure``, ``pull-from-mirror`` = ``all`` | ``digest-only`` | ``tag-only``).
  v1: ``[registries.search|insecure|block] registries = [...]``. Both in one file is an error. Other keys
  (aliases, short-name-mode, credential helpers, ...) are tolerated and not used here.
* :meth:`RegistriesConf.find` is the entry with the longest matching prefix (``prefix`` followed by the
  end, ``/``, ``:`` or ``@``); :func:`pull_sources` lists the mirrors a pull tries, then the primary
  location, each with the reference rewritten (``location`` + what follows the prefix).

certs.d: :func:`cert_dir_for` is ``--cert-dir`` when given, else the first existing
``HOST[:PORT]`` directory of ``~/.config/containers/certs.d``, ``/etc/containers/certs.d``,
``/etc/docker/certs.d`` (upstream's order). :func:`tls_files` lists its ``*.crt`` (CAs, added to the
system roots) and ``*.cert``/``*.key`` pairs (client certificates; one without the other is an error).
"""

from __future__ import annotations

import os
import stat
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidArgument, NotFound, RegistryError

__all__ = ["BlockedRegistry", "Endpoint", "PullSource", "RegistriesConf", "RegistryEntry", "TlsFiles",
           "cert_dir_for", "load_registries_conf", "pull_sources", "tls_files"]

#: The system files; tests point them elsewhere.
SYSTEM_CONF = Path("/etc/containers/registries.conf")
SYSTEM_CONF_DIR = Path("/etc/containers/registries.conf.d")
USER_CONF = ".config/containers/registries.conf"
USER_CONF_DIR = ".config/containers/registries.conf.d"
USER_CERTS_D = ".config/containers/certs.d"
SYSTEM_CERTS_D = (Path("/etc/containers/certs.d"), Path("/etc/docker/certs.d"))
ENV = "CONTAINERS_REGISTRIES_CONF"
MAX_CONF_SIZE = 4 << 20
PULL_FROM_MIRROR = ("all", "digest-only", "tag-only")


class BlockedRegistry(RegistryError):
    """A reference whose registry registries.conf blocks (exit 7, before any request)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A place images are read from: ``host[:port][/namespace]``; ``insecure`` allows unverified TLS and
    plain HTTP (unless ``--tls-verify`` says otherwise)."""

    location: str
    insecure: bool = False
    pull_from_mirror: str = ""


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """One ``[[registry]]`` (or v1 entry) after validation."""

    prefix: str
    endpoint: Endpoint
    mirrors: tuple[Endpoint, ...] = ()
    blocked: bool = False
    mirror_by_digest_only: bool = False


@dataclass(frozen=True, slots=True)
class PullSource:
    """An endpoint a pull tries and the reference's name rewritten for it (``host/repository``)."""

    endpoint: Endpoint
    name: str
    mirror: bool


@dataclass(frozen=True, slots=True)
class RegistriesConf:
    """The merged configuration; ``sources`` are the files read (for messages)."""

    registries: tuple[RegistryEntry, ...] = ()
    sources: tuple[str, ...] = ()

    def find(self, name: str) -> RegistryEntry | None:
        """The entry with the longest prefix matching ``name`` (``host[/path]``, no tag), or None."""
        best: RegistryEntry | None = None
        for reg in self.registries:
            if _matching_prefix(name, reg.prefix) != -1 and (best is None or len(reg.prefix) > len(best.prefix)):
                best = reg
        return best

    def describe(self) -> str:
        return ", ".join(self.sources) if self.sources else "registries.conf"

    def check_blocked(self, name: str) -> RegistryEntry | None:
        """The entry for ``name``; raises BlockedRegistry when it is blocked."""
        reg = self.find(name)
        if reg is not None and reg.blocked:
            raise BlockedRegistry(f"registry {reg.prefix} is blocked in {self.describe()}")
        return reg


def _matching_prefix(ref: str, prefix: str) -> int:
    """The length of ``ref`` that ``prefix`` matches, -1 when it does not (containers/image's
    refMatchingPrefix, its documented ``example.com`` matches ``example.com:5000`` quirk included)."""
    if prefix.startswith("*."):
        index = ref.find(prefix[1:])
        if index == -1 or "/" in ref[:index]:
            return -1
        index += len(prefix) - 1
        return index if index == len(ref) or ref[index] in ":/@" else -1
    if not ref.startswith(prefix):
        return -1
    if len(ref) == len(prefix) or ref[len(prefix)] in ":/@":
        return len(prefix)
    return -1


def pull_sources(entry: RegistryEntry | None, name: str, *, digested: bool) -> list[PullSource]:
    """The endpoints a pull of ``name`` (``host/repository``) tries, in order: the mirrors allowed for a
    pull by digest or by tag, then the primary location; each with ``name`` rewritten."""
    if entry is None:
        return [PullSource(Endpoint(name), name, mirror=False)]
    chosen: list[tuple[Endpoint, bool]] = []
    for m in entry.mirrors:
        if entry.mirror_by_digest_only:
            if digested:
                chosen.append((m, True))
        elif not ((m.pull_from_mirror == "digest-only" and not digested)
                  or (m.pull_from_mirror == "tag-only" and digested)):
            chosen.append((m, True))
    chosen.append((entry.endpoint, False))
    return [PullSource(ep, _rewrite(ep, name, entry.prefix), mirror) for ep, mirror in chosen]


def _rewrite(ep: Endpoint, name: str, prefix: str) -> str:
    n = _matching_prefix(name, prefix)
    if n == -1:
        raise InvalidArgument(f"registries.conf: invalid prefix {prefix!r} for {name!r}")
    if not ep.location:  # a wildcard prefix without a location: the reference as it is
        return name
    return ep.location + name[n:]


# -- loading --------------------------------------------------------------------------------------------

@dataclass
class _Parsed:
    registries: dict[str, RegistryEntry] = field(default_factory=dict)


def _bad(path: Path, text: str) -> InvalidArgument:
    return InvalidArgument(f"registries configuration {path}: {text}")


def _location(path: Path, value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _bad(path, f"{what} must be a string")
    trimmed = value.rstrip("/")
    if trimmed.startswith(("http://", "https://")):
        raise _bad(path, f"invalid location '{value}': URI schemes are not supported")
    return trimmed


def _flag(path: Path, table: dict[str, Any], key: str) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise _bad(path, f"{key} must be true or false")
    return value


def _v1_lists(path: Path, doc: dict[str, Any]) -> dict[str, list[str]] | None:
    """The v1 ``[registries.*]`` lists, None when the file has none (an empty list still makes a v1 file,
    as the Go TOML decoder sees it)."""
    v1 = doc.get("registries")
    if not isinstance(v1, dict):
        return None
    lists: dict[str, list[str]] = {}
    for kind in ("search", "insecure", "block"):
        sect = v1.get(kind)
        if sect is None:
            continue
        if not isinstance(sect, dict):
            raise _bad(path, f"[registries.{kind}] must be a table")
        regs = sect.get("registries")
        if regs is None:
            continue
        if not isinstance(regs, list) or not all(isinstance(r, str) for r in regs):
            raise _bad(path, f"[registries.{kind}] registries must be a list of strings")
        lists[kind] = regs
    return lists or None


def _v2_set(doc: dict[str, Any]) -> bool:
    keys = ("registry", "unqualified-search-registries", "credential-helpers", "short-name-mode",
            "additional-layer-store-auth-helper", "aliases")
    return any(doc.get(k) not in (None, [], {}, "") for k in keys)


def _parse_file(path: Path, *, v2_only: bool) -> list[RegistryEntry]:
    """The validated entries of one file (v1 converted to v2), deduplicated by prefix (first wins) and
    sorted by prefix as upstream keeps them. Raises InvalidArgument (bad file), OSError (unreadable)."""
    data = _read_conf(path)
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise _bad(path, f"not valid TOML: {err}") from None
    except RecursionError:  # tomllib recurses per nested array or inline table
        raise _bad(path, "not valid TOML: nested too deeply") from None
    v1 = _v1_lists(path, doc)
    raw: list[dict[str, Any]]
    if v1 is not None:
        if v2_only:
            raise _bad(path, "registry must be in v2 format but is in v1")
        if _v2_set(doc):
            raise _bad(path, "mixing sysregistry v1/v2 is not supported")
        order: list[str] = []
        flags: dict[str, dict[str, Any]] = {}
        for kind, key in (("search", None), ("block", "blocked"), ("insecure", "insecure")):
            for loc in v1.get(kind, []):
                loc = _location(path, loc, "a v1 registry")
                if loc not in flags:
                    order.append(loc)
                    flags[loc] = {"location": loc, "prefix": loc}
                if key is not None:
                    flags[loc][key] = True
        raw = [flags[loc] for loc in order]
    else:
        regs = doc.get("registry", [])
        if not isinstance(regs, list) or not all(isinstance(r, dict) for r in regs):
            raise _bad(path, "[[registry]] must be an array of tables")
        raw = regs
    entries: list[RegistryEntry] = []
    for table in raw:
        entries.append(_entry(path, table))
    _check_conflicts(path, entries)
    unique: dict[str, RegistryEntry] = {}
    for e in entries:
        unique.setdefault(e.prefix, e)
    return [unique[p] for p in sorted(unique)]


def _read_conf(path: Path) -> bytes:
    """The bytes of ``path`` (symlinks followed), at most :data:`MAX_CONF_SIZE`; never waits for a writer
    that is not there. A file, ``/dev/null`` (no configuration, a common idiom), or a pipe
    (``--registries-conf <(...)``, as skopeo reads one) that holds data or has a writer; a FIFO nobody
    writes to (open() would block forever) and a directory are refused. Raises InvalidArgument, OSError
    (FileNotFoundError: missing)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO's open() does not wait
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise _bad(path, "is a directory")
        os.set_blocking(fd, True)  # a pipe's writer is waited for; with no writer a read is EOF at once
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(MAX_CONF_SIZE + 1)
    finally:
        os.close(fd)
    if not data and stat.S_ISFIFO(mode):
        raise _bad(path, "a FIFO with nothing written to it")
    if len(data) > MAX_CONF_SIZE:
        raise _bad(path, f"over the {MAX_CONF_SIZE}-byte limit")
    return data


def _entry(path: Path, table: dict[str, Any]) -> RegistryEntry:
    location = _location(path, table.get("location"), "location")
    prefix = _location(path, table.get("prefix"), "prefix")
    if not prefix:
        if not location:
            raise _bad(path, "invalid condition: both location and prefix are unset")
        prefix = location
    elif not location and not prefix.startswith("*."):
        raise _bad(path, "invalid condition: location is unset and prefix is not in the format: *.example.com")
    if prefix.startswith("*.") and any(c in prefix for c in "/@:"):
        raise _bad(path, f"Wildcarded prefix should be in the format: *.example.com. Current prefix {prefix!r} "
                         "is incorrectly formatted")
    if table.get("pull-from-mirror"):
        raise _bad(path, f"pull-from-mirror must not be set for a non-mirror registry {prefix!r}")
    by_digest = _flag(path, table, "mirror-by-digest-only")
    mirrors_raw = table.get("mirror", [])
    if not isinstance(mirrors_raw, list) or not all(isinstance(m, dict) for m in mirrors_raw):
        raise _bad(path, "[[registry.mirror]] must be an array of tables")
    mirrors: list[Endpoint] = []
    for m in mirrors_raw:
        loc = _location(path, m.get("location"), "mirror location")
        if not loc:
            raise _bad(path, "invalid condition: mirror location is unset")
        mode = m.get("pull-from-mirror", "")
        if not isinstance(mode, str):
            raise _bad(path, f"pull-from-mirror of mirror {loc!r} must be a string")
        if by_digest and mode:
            raise _bad(path, f"cannot set mirror usage mirror-by-digest-only for the registry ({prefix!r}) and "
                             f"pull-from-mirror for per-mirror ({loc!r}) at the same time")
        if mode and mode not in PULL_FROM_MIRROR:
            raise _bad(path, f"unsupported pull-from-mirror value {mode!r} for mirror {loc!r}")
        mirrors.append(Endpoint(loc, _flag(path, m, "insecure"), mode))
    return RegistryEntry(prefix=prefix, endpoint=Endpoint(location, _flag(path, table, "insecure")),
                         mirrors=tuple(mirrors), blocked=_flag(path, table, "blocked"),
                         mirror_by_digest_only=by_digest)


def _check_conflicts(path: Path, entries: list[RegistryEntry]) -> None:
    """A location named several times must agree on ``insecure`` and ``blocked`` (as upstream)."""
    seen: dict[str, RegistryEntry] = {}
    for e in entries:
        key = e.endpoint.location or e.prefix
        other = seen.setdefault(key, e)
        for attr, value, theirs in (("insecure", e.endpoint.insecure, other.endpoint.insecure),
                                    ("blocked", e.blocked, other.blocked)):
            if value != theirs:
                raise _bad(path, f"registry '{e.endpoint.location}' is defined multiple times with conflicting "
                                 f"'{attr}' setting")


def _home() -> Path:
    return Path(os.environ.get("HOME") or os.path.expanduser("~"))


def _drop_ins(dirs: list[Path]) -> list[Path]:
    out: list[Path] = []
    for d in dirs:
        try:
            names = sorted(e.name for e in os.scandir(d) if e.name.endswith(".conf") and not e.is_dir())
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as err:
            raise InvalidArgument(f"reading registries.conf.d {d}: {err.strerror or err}") from None
        out.extend(d / n for n in names)
    return out


def load_registries_conf(explicit: str | None = None) -> RegistriesConf:
    """The configuration in force: ``explicit`` (``--registries-conf``), else ``$CONTAINERS_REGISTRIES_CONF``,
    else the user or system file, plus drop-ins (see the module docstring). Raises NotFound (an explicit
    file that does not exist), InvalidArgument (a malformed file). Parsed files are cached by path, inode,
    size and mtime: an edited file is read again."""
    chosen = explicit or os.environ.get(ENV) or None
    home = _home()
    dirs: list[Path]
    if chosen:
        main, must_exist = Path(chosen), True
        dirs = [SYSTEM_CONF_DIR, home / USER_CONF_DIR]
    elif (home / USER_CONF).exists():
        main, must_exist = home / USER_CONF, True
        dirs = [home / USER_CONF_DIR]
    else:
        main, must_exist = SYSTEM_CONF, False
        dirs = [SYSTEM_CONF_DIR, home / USER_CONF_DIR]
    drop_ins = _drop_ins(dirs)
    key = (str(main), must_exist, tuple(_stamp(p) for p in (main, *drop_ins)))
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
    if cached is not None:
        return cached
    conf = _load(main, must_exist, drop_ins)
    with _CACHE_LOCK:
        if len(_CACHE) > 16:
            _CACHE.clear()
        _CACHE[key] = conf
    return conf


#: Parsed configurations by the files' identities (path, inode, size, mtime): a pull opens several clients.
_CACHE: dict[tuple[Any, ...], RegistriesConf] = {}
_CACHE_LOCK = threading.Lock()


def _stamp(path: Path) -> tuple[str, int, int, int] | str:
    try:
        st = path.stat()
    except OSError:
        return str(path)
    return str(path), st.st_ino, st.st_size, st.st_mtime_ns


def _load(main: Path, must_exist: bool, drop_ins: list[Path]) -> RegistriesConf:
    merged: dict[str, RegistryEntry] = {}
    sources: list[str] = []
    try:
        for e in _parse_file(main, v2_only=False):
            merged[e.prefix] = e
        sources.append(str(main))
    except FileNotFoundError:
        if must_exist:
            raise NotFound(f"registries configuration {main} does not exist") from None
    except OSError as err:
        raise InvalidArgument(f"registries configuration {main}: {err.strerror or err}") from None
    for path in drop_ins:
        try:
            entries = _parse_file(path, v2_only=True)
        except FileNotFoundError:
            continue  # removed since the listing: upstream ignores that race too
        except OSError as err:
            raise InvalidArgument(f"registries configuration {path}: {err.strerror or err}") from None
        for e in entries:
            merged[e.prefix] = e
        sources.append(str(path))
    return RegistriesConf(tuple(merged[p] for p in sorted(merged)), tuple(sources))


# -- certs.d ----------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TlsFiles:
    """What a certs.d directory holds: CA files and (certificate, key) pairs."""

    cas: tuple[Path, ...] = ()
    client_pairs: tuple[tuple[Path, Path], ...] = ()


def _check_regular(path: Path) -> None:
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        raise InvalidArgument(f"certificate file {path}: {err.strerror or err}") from None
    if not stat.S_ISREG(mode):
        raise InvalidArgument(f"certificate file {path}: not a regular file")


def cert_dir_for(host: str, explicit: str | None = None) -> Path | None:
    """``explicit`` (``--cert-dir``), else the first existing ``DIR/host`` of the certs.d search path
    (user, /etc/containers, /etc/docker), else None. ``host`` is ``HOST[:PORT]`` as the user wrote it."""
    if explicit:
        return Path(explicit)
    if not host or "/" in host or host in (".", ".."):
        return None
    for base in (_home() / USER_CERTS_D, *SYSTEM_CERTS_D):
        d = base / host
        try:
            if d.exists():
                return d
        except PermissionError:
            continue
    return None


def tls_files(directory: Path | None) -> TlsFiles:
    """The CAs (``*.crt``) and client pairs (``X.cert`` + ``X.key``) of ``directory`` in name order; a
    missing directory holds nothing. Raises InvalidArgument for a ``.cert`` without its ``.key`` (or the
    reverse), as containers/image does."""
    if directory is None:
        return TlsFiles()
    try:
        names = sorted(e.name for e in os.scandir(directory))
    except FileNotFoundError:  # as upstream: a missing directory holds nothing; unreadable is an error
        return TlsFiles()
    except OSError as err:
        raise InvalidArgument(f"certificate directory {directory}: {err.strerror or err}") from None
    present = set(names)
    for name in names:  # a FIFO or device would block the TLS set-up reading it; a directory cannot be read
        if name.endswith((".crt", ".cert", ".key")):
            _check_regular(directory / name)
    cas: list[Path] = []
    pairs: list[tuple[Path, Path]] = []
    for name in names:
        if name.endswith(".crt"):
            cas.append(directory / name)
        elif name.endswith(".cert"):
            key = name[: -len(".cert")] + ".key"
            if key not in present:
                raise InvalidArgument(f"{directory}: missing key {key} for client certificate {name}. Note that "
                                      "CA certificates should use the extension .crt")
            pairs.append((directory / name, directory / key))
        elif name.endswith(".key"):
            cert = name[: -len(".key")] + ".cert"
            if cert not in present:
                raise InvalidArgument(f"{directory}: missing client certificate {cert} for key {name}")
    return TlsFiles(tuple(cas), tuple(pairs))
