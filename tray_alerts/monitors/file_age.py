"""File age: how long ago `path` (a backup, a log, a heartbeat file) was last modified."""
from __future__ import annotations

import os
import time

from ..display import duration
from ..model import Level
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
        age = max(0.0, time.time() - modified)
        level = self.thresholds.classify(age)
        summary = self.thresholds.describe(age, level).replace("at ", "is ", 1).replace(" (", " old (", 1)
        return Reading(level, summary, age, {"path": self.path, "age": duration(age)})
