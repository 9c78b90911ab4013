"""Heartbeat: a dead man's switch, bad when no ping (`tray-alerts ping NAME`) has come for `max_age` of time
awake (a night asleep does not count)."""
from __future__ import annotations

import time
from typing import Callable

from ..channels.base import SettingError
from ..clock import SYSTEM_CLOCK
from ..display import duration
from ..model import Level
from ..sleep import AlwaysAwake, AwakeTime, of_it_awake
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
        self.awake: AwakeTime = AlwaysAwake(SYSTEM_CLOCK)
        self.started = self.awake.now()
        self.last_ping: Callable[[str], float | None] = lambda name: None

    def use_awake_time(self, awake: AwakeTime) -> None:
        """Measure ages in `awake`'s time awake (the runner's clock and the sleeps it knows); started from now."""
        self.awake = awake
        self.started = awake.now()

    @classmethod
    def from_options(cls, name: str, options: Options, timeout: float) -> HeartbeatMonitor:
        max_age = options.duration("max_age", None)
        if max_age is None:
            raise SettingError("max_age", "required: how long without a ping is too long (e.g. 26h)")
        return cls(name, max_age, options.level("level", Level.ERROR))

    def check(self) -> Reading:
        pinged = self.last_ping(self.name)
        now = self.awake.now()
        limit = duration(self.max_age)
        if pinged is None:
            waited, awake = max(0.0, now - self.started), self.awake.awake_since(self.started)
            if awake > self.max_age:
                return Reading(self.level, f"no ping since start {duration(waited)} ago{of_it_awake(waited, awake)}"
                                           f" (limit {limit})", awake)
            return Reading(None, f"waiting for the first ping (limit {limit})", awake)
        age, awake = max(0.0, now - pinged), self.awake.awake_since(pinged)
        summary = f"last ping {duration(age)} ago{of_it_awake(age, awake)} (limit {limit})"
        if awake > self.max_age:
            return Reading(self.level, summary, awake,
                           {"last_ping": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(pinged))})
        return Reading(None, summary, awake)
