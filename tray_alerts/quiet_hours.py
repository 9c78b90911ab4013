"""Quiet hours: a daily window of local time (`22:00-07:00`, may cross midnight) in which a channel holds its
notifications. Whether it is quiet now and when the window ends are pure functions of the window, a Unix time and
the local time zone (zoneinfo, so a window stays right across daylight-saving changes)."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .model import Level

_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
QUIET_SUMMARY_AFTER = 5  # held rows of a channel beyond this (or its storm threshold) go out as one summary


@dataclass(frozen=True)
class QuietWindow:
    """From `start` to `end` local time every day; `end` at or before `start` means it ends the next day."""

    start: time
    end: time

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True)
class QuietHours:
    """A channel's quiet hours: its window, and the lowest level that still passes during it (None: none)."""

    window: QuietWindow
    allows: Level | None = None

    def passes(self, level: Level) -> bool:
        """Whether an alert of this level goes out during the window."""
        return self.allows is not None and level >= self.allows


@dataclass(frozen=True)
class QuietPolicy:
    """Every channel's quiet hours, and the time zone their windows are read in."""

    channels: Mapping[str, QuietHours] = field(default_factory=dict)
    zone: tzinfo | None = None

    def __post_init__(self) -> None:
        if self.zone is None and self.channels:  # read once: the stages ask for every row
            object.__setattr__(self, "zone", local_zone())

    def __bool__(self) -> bool:
        return bool(self.channels)

    def state(self, channel: str, now: float) -> QuietState | None:
        """Whether the channel is in its quiet hours now (None: it has none)."""
        hours = self.channels.get(channel)
        return None if hours is None or self.zone is None else quiet_state(hours.window, now, self.zone)


@dataclass(frozen=True)
class QuietState:
    """Quiet now or not, and when the window (the current one, else the next) ends, as a Unix time."""

    quiet: bool
    ends_at: float
    ends_text: str  # the end as local time of day: `07:00`


def parse_window(text: str) -> QuietWindow:
    """`HH:MM-HH:MM` as a window, or ValueError saying what is wrong."""
    found = _WINDOW.match(text)
    if not found:
        raise ValueError(f"not a window like 22:00-07:00: {text!r}")
    hour1, minute1, hour2, minute2 = (int(part) for part in found.groups())
    if not (hour1 < 24 and hour2 < 24 and minute1 < 60 and minute2 < 60):
        raise ValueError(f"not a time of day (00:00 to 23:59): {text!r}")
    window = QuietWindow(time(hour1, minute1), time(hour2, minute2))
    if window.start == window.end:
        raise ValueError(f"starts and ends at the same time: {text!r}")
    return window


def parse_allows(text: str) -> Level | None:
    """A level name (that level and above pass during quiet hours), or `none`."""
    if text.strip().lower() == "none":
        return None
    try:
        return Level.parse(text)
    except ValueError as error:
        raise ValueError(f"{error}, or none") from None


def quiet_state(window: QuietWindow, now: float, zone: tzinfo) -> QuietState:
    """Whether `now` is inside the window in `zone`, and when the current (or else the next) window ends. A start
    or end that a spring-forward night skips is the moment the clock jumps past it; one a fall-back night shows
    twice is its first showing."""
    today = datetime.fromtimestamp(now, zone).date()
    crosses = window.end <= window.start
    ends = []
    for offset in (-1, 0, 1):
        day = today + timedelta(days=offset)
        start = _instant(day, window.start, zone)
        end = _instant(day + timedelta(days=1) if crosses else day, window.end, zone)
        if start <= now < end:
            return QuietState(True, end, f"{window.end:%H:%M}")
        if end > now:
            ends.append(end)
    return QuietState(False, min(ends), f"{window.end:%H:%M}")


def _instant(day: date, moment: time, zone: tzinfo) -> float:
    """The Unix time at which the clock in `zone` first shows `moment` on `day` (or jumps past it)."""
    wall = datetime.combine(day, moment)
    earlier = wall.replace(tzinfo=zone, fold=0).timestamp()
    if datetime.fromtimestamp(earlier, zone).replace(tzinfo=None) == wall:
        return earlier
    later = wall.replace(tzinfo=zone, fold=1).timestamp()
    if datetime.fromtimestamp(later, zone).replace(tzinfo=None) == wall:
        return later
    # skipped by a spring-forward jump: the moment of the jump lies between the two readings
    low, high = int(min(earlier, later)), int(max(earlier, later)) + 1
    while high - low > 1:  # the first second whose local time is past `wall`
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) > wall:
            high = middle
        else:
            low = middle
    return float(high)


def local_zone(environ: Mapping[str, str] | None = None) -> tzinfo:
    """The machine's time zone with its daylight-saving rules: TZ, else /etc/localtime, else today's fixed
    offset."""
    name = (os.environ if environ is None else environ).get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    localtime = Path("/etc/localtime")
    try:
        with localtime.open("rb") as file:
            return ZoneInfo.from_file(file, key="localtime")
    except (OSError, ValueError):
        return datetime.now().astimezone().tzinfo or ZoneInfo("UTC")
