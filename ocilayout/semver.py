"""Semantic-version constraints as skopeo's ``images-by-semver`` checks them (Masterminds/semver v3).

skopeo sync parses each tag with ``semver.NewVersion`` (loose: ``v`` prefix, missing minor/patch allowed;
a tag that does not parse is skipped) and keeps it when ``semver.NewConstraint(...).Check`` says so. This
module ports both, operator by operator, including the library's rules that a prerelease version matches
only a constraint that names a prerelease, that ``x``/``X``/``*`` make a part "dirty" (a range), ``1.2 - 1.4``
hyphen ranges, ``,`` or space for AND and ``||`` for OR.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .errors import InvalidArgument

__all__ = ["Constraint", "Version", "parse_constraint", "parse_version"]

_VERSION = re.compile(r"^v?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?"
                      r"(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?"
                      r"(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?$")
_CV = (r"v?([0-9|x|X|\*]+)(\.[0-9|x|X|\*]+)?(\.[0-9|x|X|\*]+)?"
       r"(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?"
       r"(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?")
_OPS = r"=||!=|>|<|>=|=>|<=|=<|~|~>|\^"
_ONE = re.compile(rf"^\s*({_OPS})\s*({_CV})\s*$")
_RANGE = re.compile(rf"\s*({_CV})\s+-\s+({_CV})\s*")
_FIND = re.compile(rf"({_OPS})\s*({_CV})")
_VALID = re.compile(rf"^(\s*({_OPS})\s*({_CV})\s*)((?:\s+|,\s*)({_OPS})\s*({_CV})\s*)*$")
_INT32 = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Version:
    """A parsed version: numbers, prerelease and build metadata (ignored when comparing)."""

    major: int
    minor: int
    patch: int
    pre: str = ""
    metadata: str = ""

    def __str__(self) -> str:
        s = f"{self.major}.{self.minor}.{self.patch}"
        return s + (f"-{self.pre}" if self.pre else "") + (f"+{self.metadata}" if self.metadata else "")

    def compare(self, other: Version) -> int:
        """-1, 0 or 1 as semver orders them (a prerelease sorts before its release)."""
        for a, b in ((self.major, other.major), (self.minor, other.minor), (self.patch, other.patch)):
            if a != b:
                return -1 if a < b else 1
        if self.pre == other.pre:
            return 0
        if not self.pre:
            return 1
        if not other.pre:
            return -1
        return _compare_pre(self.pre, other.pre)


def _compare_pre(a: str, b: str) -> int:
    sa, sb = a.split("."), b.split(".")
    for i in range(max(len(sa), len(sb))):
        d = _compare_part(sa[i] if i < len(sa) else "", sb[i] if i < len(sb) else "")
        if d:
            return d
    return 0


def _compare_part(s: str, o: str) -> int:
    if s == o:
        return 0
    if o == "":
        return 1 if s.isdigit() else -1
    if s == "":
        return -1 if o.isdigit() else 1
    if s.isdigit() and o.isdigit():
        return 1 if int(s) > int(o) else -1
    if s.isdigit():  # numbers sort before alphanumerics
        return -1
    if o.isdigit():
        return 1
    return 1 if s > o else -1


def parse_version(text: str) -> Version | None:
    """``semver.NewVersion``: the version ``text`` spells, or None when it is none."""
    m = _VERSION.match(text)
    if m is None:
        return None
    nums = [int(g.lstrip(".")) if g else 0 for g in (m.group(1), m.group(2), m.group(3))]
    if any(n > _INT32 for n in nums):
        return None
    pre, meta = m.group(5) or "", m.group(8) or ""
    if any(len(p) > 1 and p.isdigit() and p.startswith("0") for p in pre.split(".") if pre):
        return None  # v3 refuses numeric prerelease identifiers with leading zeros
    return Version(nums[0], nums[1], nums[2], pre, meta)


@dataclass(frozen=True, slots=True)
class _One:
    op: str
    con: Version
    orig: str
    dirty: bool
    minor_dirty: bool
    patch_dirty: bool


def _is_x(s: str) -> bool:
    return s in ("x", "X", "*")


def _parse_one(text: str) -> _One:
    m = _ONE.match(text)
    if m is None:
        raise InvalidArgument(f"improper semver constraint: {text.strip()}")
    op, orig, major, minor, patch, pre = m.group(1), m.group(2), m.group(3), m.group(4) or "", m.group(5) or "", \
        m.group(6) or ""
    ver, dirty, minor_dirty, patch_dirty = orig, False, False, False
    if _is_x(major):
        ver, dirty = f"0.0.0{pre}", True
    elif _is_x(minor.lstrip(".")) or not minor:
        ver, dirty, minor_dirty = f"{major}.0.0{pre}", True, True
    elif _is_x(patch.lstrip(".")) or not patch:
        ver, dirty, patch_dirty = f"{major}{minor}.0{pre}", True, True
    con = parse_version(ver)
    if con is None:
        raise InvalidArgument(f"improper semver constraint: {text.strip()}")
    return _One(op, con, orig, dirty, minor_dirty, patch_dirty)


def _prerelease_refused(v: Version, c: _One) -> bool:
    return bool(v.pre) and not c.con.pre


def _not_equal(v: Version, c: _One) -> bool:
    if c.dirty:
        if _prerelease_refused(v, c):
            return False
        if c.con.major != v.major:
            return True
        if c.con.minor != v.minor and not c.minor_dirty:
            return True
        if c.minor_dirty:
            return False
        if c.con.patch != v.patch and not c.patch_dirty:
            return True
        if c.patch_dirty:
            if v.pre or c.con.pre:
                return _compare_pre(v.pre, c.con.pre) != 0
            return False
    return v.compare(c.con) != 0


def _greater(v: Version, c: _One) -> bool:
    if _prerelease_refused(v, c):
        return False
    if not c.dirty:
        return v.compare(c.con) == 1
    if v.major != c.con.major:
        return v.major > c.con.major
    if c.minor_dirty:
        return False
    if c.patch_dirty:
        return v.minor > c.con.minor
    return v.compare(c.con) == 1


def _less(v: Version, c: _One) -> bool:
    return not _prerelease_refused(v, c) and v.compare(c.con) < 0


def _greater_equal(v: Version, c: _One) -> bool:
    return not _prerelease_refused(v, c) and v.compare(c.con) >= 0


def _less_equal(v: Version, c: _One) -> bool:
    if _prerelease_refused(v, c):
        return False
    if not c.dirty:
        return v.compare(c.con) <= 0
    if v.major > c.con.major:
        return False
    return not (v.major == c.con.major and v.minor > c.con.minor and not c.minor_dirty)


def _tilde(v: Version, c: _One) -> bool:
    if _prerelease_refused(v, c) or v.compare(c.con) < 0:
        return False
    if (c.con.major, c.con.minor, c.con.patch) == (0, 0, 0) and not c.minor_dirty and not c.patch_dirty:
        return True
    if v.major != c.con.major:
        return False
    return not (v.minor != c.con.minor and not c.minor_dirty)


def _tilde_or_equal(v: Version, c: _One) -> bool:
    if _prerelease_refused(v, c):
        return False
    if c.dirty:
        return _tilde(v, c)
    return v.compare(c.con) == 0


def _caret(v: Version, c: _One) -> bool:
    if _prerelease_refused(v, c) or v.compare(c.con) < 0:
        return False
    if c.con.major > 0 or c.minor_dirty:
        return v.major == c.con.major
    if v.major > 0:
        return False
    if c.con.minor > 0 or c.patch_dirty:
        return v.minor == c.con.minor
    if v.minor > 0:
        return False
    return c.con.patch == v.patch


_CHECKS: dict[str, Callable[[Version, _One], bool]] = {
    "": _tilde_or_equal, "=": _tilde_or_equal, "!=": _not_equal, ">": _greater, "<": _less,
    ">=": _greater_equal, "=>": _greater_equal, "<=": _less_equal, "=<": _less_equal,
    "~": _tilde, "~>": _tilde, "^": _caret,
}


@dataclass(frozen=True, slots=True)
class Constraint:
    """``semver.NewConstraint``: OR of ANDs of single comparisons."""

    text: str
    alternatives: tuple[tuple[_One, ...], ...]

    def check(self, version: Version) -> bool:
        """Whether ``version`` satisfies some alternative (every comparison of it)."""
        return any(all(_CHECKS[c.op](version, c) for c in ands) for ands in self.alternatives)

    def matches(self, tag: str) -> bool:
        """Whether ``tag`` parses as a version that satisfies the constraint (skopeo skips other tags)."""
        v = parse_version(tag)
        return v is not None and self.check(v)


def _rewrite_range(text: str) -> str:
    out = text
    for m in _RANGE.finditer(text):
        out = out.replace(m.group(0), f">= {m.group(1)}, <= {m.group(11)}", 1)
    return out


def parse_constraint(text: str) -> Constraint:
    """Parse a constraint as Masterminds/semver v3 does; raises InvalidArgument (``improper constraint``)."""
    if not isinstance(text, str):
        raise InvalidArgument(f"a semver constraint is a string, not {text!r}")
    alternatives: list[tuple[_One, ...]] = []
    for part in _rewrite_range(text).split("||"):
        if not _VALID.match(part):
            raise InvalidArgument(f"improper semver constraint: {part.strip() or repr(part)}")
        found = [m.group(0) for m in _FIND.finditer(part)] or [part]
        alternatives.append(tuple(_parse_one(s) for s in found))
    return Constraint(text, tuple(alternatives))
