"""Process: is a process with this name (or a command line matching a pattern) running?"""
from __future__ import annotations

import re

import psutil

from ..channels.base import SettingError
from ..model import Level
from .base import Options, Reading


class ProcessMonitor:
    """`name` matches the process name exactly; `pattern` is a regular expression searched in the command
    line. None running is a bad reading at `level` (error)."""

    TYPE = "process"
    OPTIONS = {"name", "pattern", "level"}
    DEFAULT_INTERVAL = 30.0

    def __init__(self, name: str, process_name: str = "", pattern: str = "", level: Level = Level.ERROR):
        self.name, self.type = name, self.TYPE
        self.process_name, self.level = process_name, level
        self.pattern = re.compile(pattern) if pattern else None
        self.label = f"process {process_name or pattern}"

    @classmethod
    def from_options(cls, name: str, options: Options, timeout: float) -> ProcessMonitor:
        process_name, pattern = options.text("name"), options.text("pattern")
        if bool(process_name) == bool(pattern):
            raise SettingError("name", "set either name (the process name) or pattern (a regular expression)")
        try:
            return cls(name, process_name, pattern, options.level("level", Level.ERROR))
        except re.error as error:
            raise SettingError("pattern", f"not a regular expression: {error}") from None

    def check(self) -> Reading:
        found = [process.info["pid"] for process in psutil.process_iter(["pid", "name", "cmdline", "status"])
                 if process.info.get("status") != psutil.STATUS_ZOMBIE and self._matches(process.info)]
        context = {"match": self.process_name or self.pattern.pattern}  # type: ignore[union-attr]
        if not found:
            return Reading(self.level, "is not running", 0, context)
        count = len(found)
        return Reading(None, f"is running ({count} process{'es' if count != 1 else ''})", count,
                       {**context, "pids": ", ".join(map(str, found[:10]))})

    def _matches(self, info: dict) -> bool:
        if self.pattern is None:
            return info.get("name") == self.process_name
        return bool(self.pattern.search(" ".join(info.get("cmdline") or [])))
