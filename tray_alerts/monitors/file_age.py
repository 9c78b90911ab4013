"""File age: how long ago `path` (a backup, a log, a heartbeat file) was last modified, judged in time awake
(a night asleep does not count)."""
from __future__ import annotations

import os

from ..clock import SYSTEM_CLOCK
from ..display import duration
from ..model import Level
from ..sleep import AlwaysAwake, AwakeTime, of_it_awake
from .base import Options, Reading, Thresholds


class FileAgeMonitor:
    """Age thresholds per level (`warning = 1d`); a missing file is a bad reading at `missing` (error)."""

    TYPE = "file_age"
    OPTIONS = {"path", "warning", "error", "critical", "missing"}
    DEFAULT_INTERVAL = 60.0

    def __init__(self, name: str, path: str, thresholds: Thresholds, missing: Level = Level.ERROR):
        self.name, self.type, self.path = name, self.TYPE, path
        self.label = f"file {path}"
        self.thresholds, self.missing = thresholds, missing
        self.awake: AwakeTime = AlwaysAwake(SYSTEM_CLOCK)

    def use_awake_time(self, awake: AwakeTime) -> None:
        """Measure the age in `awake`'s time awake (the runner's clock and the sleeps it knows)."""
        self.awake = awake

    @classmethod
    def from_options(cls, name: str, options: Options, timeout: float) -> FileAgeMonitor:
        thresholds = Thresholds.from_options(options, options.duration, show=duration)
        path = os.path.expanduser(options.required("path"))
        return cls(name, path, thresholds, options.level("missing", Level.ERROR))

    def check(self) -> Reading:
        try:
            modified = os.stat(self.path).st_mtime
        except FileNotFoundError:
            self.thresholds.current = None
            return Reading(self.missing, "is missing", None, {"path": self.path})
        age, awake = max(0.0, self.awake.now() - modified), self.awake.awake_since(modified)
        level = self.thresholds.classify(awake)
        limits = self.thresholds.describe(awake, level).partition(" (")[2]
        summary = f"is {duration(age)} old{of_it_awake(age, awake)} ({limits}"
        return Reading(level, summary, awake, {"path": self.path, "age": duration(age)})
