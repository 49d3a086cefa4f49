"""Config and annotation edits (``ocilayout mutate``): a typed :class:`ConfigChanges` and :func:`apply`.

:func:`parse_changes` turns command-line text (``K=V``, ``PORT/proto``, RFC 3339 times, ``os/arch``) into a
:class:`ConfigChanges`, raising :class:`~ocilayout.errors.InvalidArgument` before anything is read.
:func:`apply` changes one :class:`~ocilayout.edit.rewrite.ImageEdit` (config JSON and manifest annotations);
:func:`mutate` runs it over a source's tree (every image, or the ``platforms`` chosen), updates the platform
an index records for an image whose ``--os/--arch/--variant`` changed, and sets ``index_annotations`` on the
root index. Fields the changes do not name, known or not, keep their values and their order.

Conventions (buildah config's, where crane and buildah differ): ``entrypoint`` and ``cmd`` take a JSON array
as it is; other text is ``["/bin/sh", "-c", TEXT]`` for the entrypoint and shell words (``shlex``) for cmd;
empty text clears them. ``--env K=V`` replaces K where it stands (else appends), ``--env-rm`` removes it;
removals apply before additions. History entries added by ``history`` are ``empty_layer`` entries whose
``created`` is ``created`` when given, else ``SOURCE_DATE_EPOCH`` when set, else absent (deterministic).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..descriptor import Platform
from ..errors import InvalidArgument

if TYPE_CHECKING:
    from ..transports.base import Source
    from .overlay import OverlaySource
    from .rewrite import ImageEdit, IndexEdit

__all__ = ["ConfigChanges", "apply", "format_time", "mutate", "parse_changes", "parse_pairs", "parse_platforms",
           "parse_time"]

@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigChanges:
    """What to change in each chosen image (None / empty: leave it). ``env`` / ``labels`` /
    ``annotations`` set keys, the ``*_rm`` tuples remove them (before the sets)."""

    env: tuple[tuple[str, str], ...] = ()
    env_rm: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    labels_rm: tuple[str, ...] = ()
    entrypoint: list[str] | None = None
    clear_entrypoint: bool = False
    cmd: list[str] | None = None
    clear_cmd: bool = False
    user: str | None = None
    workdir: str | None = None
    expose: tuple[str, ...] = ()  # "80/tcp"
    volumes: tuple[str, ...] = ()
    stop_signal: str | None = None
    author: str | None = None
    created: str | None = None  # RFC 3339, UTC, as format_time writes it
    os: str | None = None
    architecture: str | None = None
    variant: str | None = None  # "" removes it
    history: tuple[str, ...] = ()
    #: ``created`` of added history entries when ``created`` is None (SOURCE_DATE_EPOCH), else omitted.
    history_created: str | None = None
    annotations: tuple[tuple[str, str], ...] = ()
    annotations_rm: tuple[str, ...] = ()
    index_annotations: tuple[tuple[str, str], ...] = ()
    index_annotations_rm: tuple[str, ...] = field(default=())
    #: Annotations on the descriptor that lists each edited image in its index (``--descriptor-annotation``).
    descriptor_annotations: tuple[tuple[str, str], ...] = ()
    descriptor_annotations_rm: tuple[str, ...] = ()

    @property
    def changes_image(self) -> bool:
        """True when some change applies to images (not only to the root index)."""
        return any(getattr(self, f.name) not in (None, (), False) for f in fields(self)
                   if not f.name.startswith(("index_", "descriptor_")) and f.name != "history_created")

    @property
    def changes_platform(self) -> bool:
        return self.os is not None or self.architecture is not None or self.variant is not None

    @property
    def empty(self) -> bool:
        return not (self.changes_image or self.index_annotations or self.index_annotations_rm
                    or self.descriptor_annotations or self.descriptor_annotations_rm)


# -- parsing -----------------------------------------------------------------------------------------------
_KEY_ENV = re.compile(r"[^=\s][^=]*")
_PORT = re.compile(r"([0-9]{1,5})(?:/(tcp|udp|sctp))?")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})")
_EPOCH = re.compile(r"@?(0|[1-9][0-9]{0,11})")


def _pairs(flag: str, items: Sequence[str], *, key: re.Pattern[str] | None = None) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k or (key is not None and not key.fullmatch(k)):
            raise InvalidArgument(f"{flag} {item!r}: want KEY=VALUE")
        out.append((k, v))
    return tuple(out)


def parse_pairs(flag: str, items: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` items (``--annotation``) as a dict, the last of a key winning; raises InvalidArgument."""
    return dict(_pairs(flag, items))


def _keys(flag: str, items: Sequence[str]) -> tuple[str, ...]:
    for item in items:
        if not item or "=" in item:
            raise InvalidArgument(f"{flag} {item!r}: want a KEY (no '=')")
    return tuple(items)


def parse_time(text: str, flag: str = "--created") -> str:
    """RFC 3339 text (``2024-01-02T03:04:05Z``, any offset) or ``@SECONDS`` since the epoch, as the UTC
    RFC 3339 string :func:`format_time` writes; raises InvalidArgument."""
    if _EPOCH.fullmatch(text) and text.startswith("@"):
        try:
            return format_time(datetime.fromtimestamp(int(text[1:]), UTC))
        except (ValueError, OverflowError, OSError):
            raise InvalidArgument(f"{flag} {text!r}: out of range") from None
    if not _RFC3339.fullmatch(text):
        raise InvalidArgument(f"{flag} {text!r}: want an RFC 3339 time (2024-01-02T03:04:05Z) or @SECONDS")
    frac = re.search(r"\.(\d+)", text)
    base = re.sub(r"\.\d+", "", text).replace("z", "Z").replace("t", "T").replace(" ", "T")
    try:
        when = datetime.fromisoformat(base.replace("Z", "+00:00"))
    except ValueError as err:
        raise InvalidArgument(f"{flag} {text!r}: {err}") from None
    return format_time(when, frac.group(1) if frac else "")


def format_time(when: datetime, fraction: str = "") -> str:
    """``when`` in UTC as Go's RFC3339Nano writes it (``Z``, fraction without trailing zeros)."""
    text = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = fraction.rstrip("0")
    return f"{text}.{fraction}Z" if fraction else f"{text}Z"


def parse_platforms(items: Sequence[str], flag: str = "--platform") -> tuple[Platform, ...]:
    """``os/arch[/variant]`` strings as platforms; raises InvalidArgument."""
    out = []
    for item in items:
        try:
            p = Platform.parse(item)
        except ValueError as err:
            raise InvalidArgument(f"{flag}: {err}") from None
        if not all(re.fullmatch(r"[A-Za-z0-9._-]+", part) for part in item.split("/")):
            raise InvalidArgument(f"{flag}: invalid platform {item!r}: want os/arch[/variant]")
        out.append(p)
    return tuple(out)


def _port(item: str) -> str:
    m = _PORT.fullmatch(item)
    if m is None or not 1 <= int(m.group(1)) <= 65535:
        raise InvalidArgument(f"--expose {item!r}: want PORT[/tcp|udp|sctp] with PORT 1-65535")
    return f"{int(m.group(1))}/{m.group(2) or 'tcp'}"


def _entrypoint(text: str) -> list[str]:
    parsed = _json_array(text)
    return parsed if parsed is not None else ["/bin/sh", "-c", text]


def _cmd(text: str) -> list[str]:
    parsed = _json_array(text)
    if parsed is not None:
        return parsed
    try:
        return shlex.split(text)
    except ValueError as err:
        raise InvalidArgument(f"--cmd {text!r}: {err}") from None


def _json_array(text: str) -> list[str] | None:
    if not text.lstrip().startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _simple(flag: str, value: str | None) -> str | None:
    if value is not None and any(c in value for c in "\n\r\0"):
        raise InvalidArgument(f"{flag}: a value with a newline or NUL is refused")
    return value


def parse_changes(*, env: Sequence[str] = (), env_rm: Sequence[str] = (), label: Sequence[str] = (),
                  label_rm: Sequence[str] = (), entrypoint: str | None = None, cmd: str | None = None,
                  user: str | None = None, workdir: str | None = None, expose: Sequence[str] = (),
                  volume: Sequence[str] = (), stop_signal: str | None = None, author: str | None = None,
                  created: str | None = None, os: str | None = None, arch: str | None = None,
                  variant: str | None = None, history: Sequence[str] = (), annotation: Sequence[str] = (),
                  annotation_rm: Sequence[str] = (), index_annotation: Sequence[str] = (),
                  index_annotation_rm: Sequence[str] = (), descriptor_annotation: Sequence[str] = (),
                  descriptor_annotation_rm: Sequence[str] = (),
                  environ: Mapping[str, str] | None = None) -> ConfigChanges:
    """Command-line values as :class:`ConfigChanges`; raises InvalidArgument for the first bad one
    (an env without ``=``, a port out of range, a time that is not RFC 3339, ...). ``environ`` (default
    ``os.environ``) supplies ``SOURCE_DATE_EPOCH`` for the ``created`` of added history entries."""
    import os as _os

    environ = _os.environ if environ is None else environ
    for flag, value in (("--os", os), ("--arch", arch)):
        if value is not None and not re.fullmatch(r"[A-Za-z0-9._-]+", value):
            raise InvalidArgument(f"{flag} {value!r}: want a name such as linux, amd64")
    if variant and not re.fullmatch(r"[A-Za-z0-9._-]+", variant):
        raise InvalidArgument(f"--variant {variant!r}: want a name such as v8 (or '' to remove it)")
    if stop_signal is not None and not re.fullmatch(r"(SIG)?[A-Z0-9+-]+|[0-9]+", stop_signal):
        raise InvalidArgument(f"--stop-signal {stop_signal!r}: want a signal name (SIGTERM) or number")
    for v in volume:
        if not v.startswith("/"):
            raise InvalidArgument(f"--volume {v!r}: want an absolute path")
    history_created = None
    sde = environ.get("SOURCE_DATE_EPOCH")
    if history and created is None and sde:
        if not sde.isdigit():
            raise InvalidArgument(f"SOURCE_DATE_EPOCH {sde!r}: want a number of seconds")
        history_created = parse_time(f"@{sde}", "SOURCE_DATE_EPOCH")
    for h in history:
        if not h:
            raise InvalidArgument("--history: an empty text")
    return ConfigChanges(
        env=_pairs("--env", env, key=_KEY_ENV), env_rm=_keys("--env-rm", env_rm),
        labels=_pairs("--label", label), labels_rm=_keys("--label-rm", label_rm),
        entrypoint=_entrypoint(entrypoint) if entrypoint and entrypoint.strip() else None,
        clear_entrypoint=entrypoint is not None and not entrypoint.strip(),
        cmd=_cmd(cmd) if cmd and cmd.strip() else None, clear_cmd=cmd is not None and not cmd.strip(),
        user=_simple("--user", user), workdir=_simple("--workdir", workdir), expose=tuple(_port(p) for p in expose),
        volumes=tuple(volume), stop_signal=stop_signal, author=_simple("--author", author),
        created=parse_time(created) if created is not None else None,
        os=os, architecture=arch, variant=variant, history=tuple(history), history_created=history_created,
        annotations=_pairs("--annotation", annotation), annotations_rm=_keys("--annotation-rm", annotation_rm),
        index_annotations=_pairs("--index-annotation", index_annotation),
        index_annotations_rm=_keys("--index-annotation-rm", index_annotation_rm),
        descriptor_annotations=_pairs("--descriptor-annotation", descriptor_annotation),
        descriptor_annotations_rm=_keys("--descriptor-annotation-rm", descriptor_annotation_rm),
    )


# -- applying ----------------------------------------------------------------------------------------------
def _set_map(doc: dict[str, Any], key: str, sets: Sequence[tuple[str, Any]], removes: Sequence[str]) -> None:
    if not sets and not removes:
        return
    current = doc.get(key)
    mapping: dict[str, Any] = dict(current) if isinstance(current, dict) else {}
    for k in removes:
        mapping.pop(k, None)
    for k, v in sets:
        mapping[k] = v
    if isinstance(current, dict) and mapping == current:
        return
    if mapping:
        doc[key] = mapping
    else:
        doc.pop(key, None)


def _set_env(cfg: dict[str, Any], changes: ConfigChanges) -> None:
    if not changes.env and not changes.env_rm:
        return
    env = [e for e in cfg.get("Env") or [] if isinstance(e, str)]
    removed = set(changes.env_rm)
    env = [e for e in env if e.partition("=")[0] not in removed]
    for k, v in changes.env:
        item = f"{k}={v}"
        at = next((i for i, e in enumerate(env) if e.partition("=")[0] == k), None)
        if at is None:
            env.append(item)
        else:
            env[at] = item
    cfg["Env"] = env


def _add_set(cfg: dict[str, Any], key: str, items: Sequence[str]) -> None:
    if not items:
        return
    current = cfg.get(key)
    mapping: dict[str, Any] = dict(current) if isinstance(current, dict) else {}
    for item in items:
        mapping.setdefault(item, {})
    cfg[key] = mapping


def apply(edit: ImageEdit, changes: ConfigChanges) -> None:
    """Make ``changes`` in one image under edit (its config JSON and manifest annotations)."""
    top = edit.config
    cfg = top.get("config")
    if not isinstance(cfg, dict):
        cfg = {}
    before = json.dumps(cfg)
    _set_env(cfg, changes)
    _set_map(cfg, "Labels", changes.labels, changes.labels_rm)
    if changes.clear_entrypoint:
        cfg.pop("Entrypoint", None)
    elif changes.entrypoint is not None:
        cfg["Entrypoint"] = list(changes.entrypoint)
    if changes.clear_cmd:
        cfg.pop("Cmd", None)
    elif changes.cmd is not None:
        cfg["Cmd"] = list(changes.cmd)
    for key, value in (("User", changes.user), ("WorkingDir", changes.workdir), ("StopSignal", changes.stop_signal)):
        if value is not None:
            cfg[key] = value
    _add_set(cfg, "ExposedPorts", changes.expose)
    _add_set(cfg, "Volumes", changes.volumes)
    if json.dumps(cfg) != before:
        top["config"] = cfg
    if changes.author is not None:
        top["author"] = changes.author
    if changes.created is not None:
        top["created"] = changes.created
    _set_platform(top, changes)
    for text in changes.history:
        entry: dict[str, Any] = {}
        when = changes.created or changes.history_created
        if when is not None:
            entry["created"] = when
        entry["created_by"] = text
        entry["empty_layer"] = True
        history = top.get("history")
        top["history"] = [*(history if isinstance(history, list) else []), entry]
    _set_map(edit.doc, "annotations", changes.annotations, changes.annotations_rm)


def _set_platform(doc: dict[str, Any], changes: ConfigChanges) -> None:
    """``--os`` / ``--arch`` / ``--variant`` on a config or a descriptor's platform object ('' removes the
    variant)."""
    if changes.os is not None:
        doc["os"] = changes.os
    if changes.architecture is not None:
        doc["architecture"] = changes.architecture
    if changes.variant is not None:
        if changes.variant:
            doc["variant"] = changes.variant
        else:
            doc.pop("variant", None)


def _platform_update(raw: dict[str, Any], changes: ConfigChanges) -> dict[str, Any]:
    platform = dict(raw.get("platform") or {})
    _set_platform(platform, changes)
    return {**raw, "platform": platform}


def mutate(source: Source, changes: ConfigChanges, *, platforms: Sequence[Platform] = ()) -> OverlaySource:
    """The edited tree of ``source`` (see :func:`~ocilayout.edit.rewrite.edit_images`): ``changes`` made in
    every image, or in those of ``platforms``. Raises InvalidArgument for index annotations on a source
    that is no index, NotFound when ``platforms`` match nothing, and the errors of reading the source."""
    from .. import mediatypes as mt
    from .rewrite import edit_images

    root_is_index = mt.is_index(source.root.media_type)
    if (changes.index_annotations or changes.index_annotations_rm) and not root_is_index:
        raise InvalidArgument(f"{source.ref} is an image, not an index: --index-annotation needs an index")
    if (changes.descriptor_annotations or changes.descriptor_annotations_rm) and not root_is_index:
        raise InvalidArgument(f"{source.ref} is an image, not an index: --descriptor-annotation annotates an "
                              "image's entry in an index (use --annotation for the manifest)")
    root_digest = source.root.digest

    def editor(edit: ImageEdit) -> None:
        apply(edit, changes)

    def index_editor(edit: IndexEdit) -> None:
        if changes.changes_platform:
            new = {str(d.digest) for d in edit.changed.values()}
            for i, raw in enumerate(edit.doc.get("manifests") or []):
                if raw.get("digest") in new and mt.is_manifest(str(raw.get("mediaType") or mt.OCI_MANIFEST)):
                    edit.doc["manifests"][i] = _platform_update(raw, changes)
        if changes.descriptor_annotations or changes.descriptor_annotations_rm:
            targets = {str(edit.changed[d].digest if d in edit.changed else d) for d in edit.chosen}
            for raw in edit.doc.get("manifests") or []:
                if raw.get("digest") in targets:
                    _set_map(raw, "annotations", changes.descriptor_annotations, changes.descriptor_annotations_rm)
        if edit.descriptor.digest == root_digest:
            _set_map(edit.doc, "annotations", changes.index_annotations, changes.index_annotations_rm)

    overlay = edit_images(source, editor if changes.changes_image else (lambda e: None), platforms=platforms,
                          index_editor=index_editor)
    root = overlay.root
    if changes.changes_platform and not root_is_index and root.platform is not None and root.digest != root_digest:
        from ..descriptor import Descriptor

        overlay.set_root(Descriptor.from_dict(_platform_update(root.to_dict(), changes)))
    return overlay
