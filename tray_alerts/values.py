"""Parsers for setting values people write by hand: durations (`30s`, `5m`), yes/no, and lists (`a, b`)."""
from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", re.IGNORECASE)
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DURATION = 366 * 86400.0  # a year: longer is a typo, and would overflow dates


def parse_duration(text: str) -> float:
    """Seconds from `30`, `30s`, `500ms`, `5m`, `2h` or `1d`; must be more than zero."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 5m, 2h)")
    seconds = float(match.group(1)) * _DURATION_UNITS[(match.group(2) or "s").lower()]
    if seconds <= 0:
        raise ValueError(f"must be more than zero: {text!r}")
    if seconds > MAX_DURATION:
        raise ValueError(f"longer than a year: {text!r}")
    return seconds


def parse_bool(text: str) -> bool:
    """yes/no, true/false, on/off, 1/0."""
    lowered = text.strip().lower()
    if lowered in ("1", "yes", "true", "on"):
        return True
    if lowered in ("0", "no", "false", "off"):
        return False
    raise ValueError(f"not yes or no: {text!r}")


def parse_list(text: str) -> tuple[str, ...]:
    """`a, b` as ('a', 'b'): the comma-separated items of one value, blanks dropped."""
    return tuple(item.strip() for item in text.split(",") if item.strip())
