"""Plain-value parsers shared by settings and wire adapters: durations and flags.

They raise ``ValueError`` with a short help text; callers wrap it in the error that
says where the value came from.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["duration_seconds", "flag"]

_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_UNIT = r"(?:ms|h|m|s)"
_DURATION = re.compile(rf"(?:{_NUMBER}{_UNIT})+")
_DURATION_PART = re.compile(rf"({_NUMBER})({_UNIT})")
_UNIT_SECONDS: Final[dict[str, float]] = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_HELP = "expected seconds (30, 1.5) or a duration with units ms, s, m, h " \
                 "('250ms', '30s', '1m30s', '1h')"
_TRUE: Final = frozenset({"true", "1", "yes", "on"})
_FALSE: Final = frozenset({"false", "0", "no", "off"})
_BOOL_HELP = "expected a boolean: true/false, yes/no, on/off or 1/0"


def duration_seconds(value: object) -> float:
    """Seconds from a number or a string like ``"30"``, ``"250ms"``, ``"1m30s"``, ``"6m0s"``."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(_DURATION_HELP)
    try:
        seconds = _duration_text(value) if isinstance(value, str) else float(value)
    except OverflowError:  # an int too large for a float
        seconds = float("inf")
    if not 0 <= seconds < float("inf"):  # also false for NaN
        raise ValueError("a duration must be a finite number of seconds, zero or more")
    return seconds


def _duration_text(text: str) -> float:
    cleaned = text.strip().lower()
    if re.fullmatch(_NUMBER, cleaned):
        return float(cleaned)
    if not _DURATION.fullmatch(cleaned):
        raise ValueError(_DURATION_HELP)
    return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(cleaned))


def flag(value: object) -> bool:
    """A bool from a bool, 0/1, or true/false, yes/no, on/off in any case."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        cleaned = value.strip().lower()
        if cleaned in _TRUE:
            return True
        if cleaned in _FALSE:
            return False
    raise ValueError(_BOOL_HELP)
