"""Heartbeat: a dead man's switch, bad when no ping (`tray-alerts ping NAME`) has come for `max_age`."""
from __future__ import annotations

import time
from typing import Callable

from ..channels.base import SettingError
from ..display import duration
from ..model import Level
from .base import Options, Reading


class HeartbeatMonitor:
    """The pings come from the push API or `tray-alerts ping NAME` (e.g. at the end of a cron job); before
    the first ping, the time since the monitor started counts."""

    TYPE = "heartbeat"
    OPTIONS = {"max_age", "level"}
    DEFAULT_INTERVAL = 30.0

    def __init__(self, name: str, max_age: float, level: Level = Level.ERROR):
        self.name, self.type, self.label = name, self.TYPE, f"heartbeat {name}"
        self.max_age, self.level = max_age, level
        self.started = time.time()
        self.last_ping: Callable[[str], float | None] = lambda name: None

    @classmethod
    def from_options(cls, name: str, options: Options, timeout: float) -> HeartbeatMonitor:
        max_age = options.duration("max_age", None)
        if max_age is None:
            raise SettingError("max_age", "required: how long without a ping is too long (e.g. 26h)")
        return cls(name, max_age, options.level("level", Level.ERROR))

    def check(self) -> Reading:
        pinged = self.last_ping(self.name)
        now = time.time()
        limit = duration(self.max_age)
        if pinged is None:
            waited = now - self.started
            if waited > self.max_age:
                return Reading(self.level, f"no ping since start {duration(waited)} ago (limit {limit})", waited)
            return Reading(None, f"waiting for the first ping (limit {limit})", waited)
        age = max(0.0, now - pinged)
        if age > self.max_age:
            return Reading(self.level, f"last ping {duration(age)} ago (limit {limit})", age,
                           {"last_ping": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(pinged))})
        return Reading(None, f"last ping {duration(age)} ago (limit {limit})", age)
