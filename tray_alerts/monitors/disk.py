"""Disk: percent used of the filesystem holding `path`."""
from __future__ import annotations

import shutil
from typing import Callable, NamedTuple

from .base import Options, Reading, Thresholds


class Usage(NamedTuple):
    total: int
    used: int
    free: int


class DiskMonitor:
    """Percent used as `df` shows it (used / (used + available)); thresholds in percent."""

    TYPE = "disk"
    OPTIONS = {"path", "warning", "error", "critical", "hysteresis"}
    DEFAULT_INTERVAL = 60.0

    def __init__(self, name: str, path: str, thresholds: Thresholds,
                 usage: Callable[[str], Usage] = shutil.disk_usage):  # type: ignore[assignment]
        self.name, self.type, self.path = name, self.TYPE, path
        self.label = f"disk {path}"
        self.thresholds = thresholds
        self._usage = usage

    @classmethod
    def from_options(cls, name: str, options: Options, timeout: float) -> DiskMonitor:
        thresholds = Thresholds.from_options(options, options.number, hysteresis=options.number("hysteresis", 2.0),
                                             unit="%", show=lambda v: f"{v:.0f}%")
        return cls(name, options.required("path"), thresholds)

    def check(self) -> Reading:
        usage = self._usage(self.path)
        percent = 100.0 * usage.used / max(1, usage.used + usage.free)
        level = self.thresholds.classify(percent)
        return Reading(level, self.thresholds.describe(percent, level), percent,
                       {"path": self.path, "used": f"{percent:.1f}%", "free": _size(usage.free)})


def _size(count: int) -> str:
    size = float(count)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} TB"
