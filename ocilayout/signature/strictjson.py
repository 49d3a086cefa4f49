"""JSON for documents that decide trust, parsed as containers/image's paranoid decoder (signature/internal/json.go).

Every object is a :class:`JSONObject`: a dict that also records the keys it saw more than once. A caller decides
per nesting level whether a duplicate is an error (:func:`refuse_duplicates`, like ``ParanoidUnmarshalJSONObject``)
or is ignored (Go's plain ``json.Unmarshal``, as for the values inside a payload's ``optional`` object);
:func:`loads` with ``duplicates=True`` refuses them at every level at once.

Numbers follow Go's ``float64`` decoding: ``NaN``/``Infinity`` and numbers beyond the float64 range (``1e400``,
a 400-digit integer) are refused. Nesting too deep for the parser, bad UTF-8 and bad syntax are one-line errors
of the caller's class, never a RecursionError.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..errors import OcilayoutError

__all__ = ["JSONObject", "loads", "refuse_duplicates"]


class JSONObject(dict[str, Any]):
    """A parsed JSON object; ``duplicates`` holds the keys that occurred more than once (the last value is kept)."""

    duplicates: frozenset[str] = frozenset()


class _Refused(Exception):
    """Raised inside the decoder hooks; turned into the caller's error class by :func:`loads`."""


def _finite(text: str) -> None:
    # float() of a long digit string never raises; it returns inf beyond the float64 range, as Go's ParseFloat fails.
    if not math.isfinite(float(text)):
        raise _Refused(f"number {text[:40]} is out of range")


def _parse_int(text: str) -> int:
    _finite(text)
    return int(text)


def _parse_float(text: str) -> float:
    _finite(text)
    return float(text)


def _constant(name: str) -> Any:
    raise _Refused(f"{name} is not valid JSON")


def _refusing_pairs(pairs: list[tuple[str, Any]]) -> JSONObject:
    out = JSONObject()
    for k, v in pairs:
        if k in out:
            raise _Refused(f'duplicate key "{k[:100]}"')
        out[k] = v
    return out


def _recording_pairs(pairs: list[tuple[str, Any]]) -> JSONObject:
    out = JSONObject()
    dups: set[str] = set()
    for k, v in pairs:
        if k in out:
            dups.add(k)
        out[k] = v
    if dups:
        out.duplicates = frozenset(dups)
    return out


def loads(data: bytes | str, error: type[OcilayoutError], what: str, *, duplicates: bool = True) -> Any:
    """Parse ``data``; every problem raises ``error("<what>: <reason>")`` on one line.

    With ``duplicates=True`` a key repeated in any object is refused; with ``False`` repeats are recorded in
    :attr:`JSONObject.duplicates` for the caller to refuse where the format says so."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise error(f"{what}: not UTF-8 text") from None
    else:
        text = data
    hook = _refusing_pairs if duplicates else _recording_pairs
    try:
        return json.loads(text, object_pairs_hook=hook, parse_constant=_constant, parse_int=_parse_int,
                          parse_float=_parse_float)
    except _Refused as err:
        raise error(f"{what}: {err}") from None
    except json.JSONDecodeError as err:
        raise error(f"{what}: {err.msg} at line {err.lineno} column {err.colno}") from None
    except RecursionError:
        raise error(f"{what}: JSON nested too deeply") from None
    except ValueError as err:  # e.g. Python's integer digit limit
        raise error(f"{what}: {str(err)[:200]}") from None


def refuse_duplicates(obj: Any, error: type[OcilayoutError], where: str) -> None:
    """Raise ``error`` when the object ``obj`` (parsed by :func:`loads`) repeated a key at its own level."""
    dups = getattr(obj, "duplicates", None)
    if dups:
        raise error(f'{where}: duplicate key "{sorted(dups)[0][:100]}"')
