"""Memory used and load average, with per-level thresholds (psutil)."""
from __future__ import annotations

import os

import psutil

from ..channels.base import SettingError
from .base import Options, Reading, Thresholds


class MemoryMonitor:
    """Percent of memory in use (psutil's `percent`: what is not available to new programs)."""

    TYPE = "memory"
    OPTIONS = {"warning", "error", "critical", "hysteresis"}
    DEFAULT_INTERVAL = 30.0

    def __init__(self, name: str, thresholds: Thresholds):
        self.name, self.type, self.label = name, self.TYPE, "memory"
        self.thresholds = thresholds

    @classmethod
    def from_options(cls, name: str, options: Options, timeout: float) -> MemoryMonitor:
        return cls(name, Thresholds.from_options(options, options.number, hysteresis=options.number("hysteresis", 2.0),
                                                 show=lambda v: f"{v:.0f}%"))

    def check(self) -> Reading:
        memory = psutil.virtual_memory()
        level = self.thresholds.classify(memory.percent)
        return Reading(level, self.thresholds.describe(memory.percent, level), memory.percent,
                       {"used": f"{memory.percent:.1f}%", "available": f"{memory.available / 2**30:.1f} GB"})


class LoadMonitor:
    """Load average over 1, 5 or 15 minutes (`period`), optionally per CPU (`per_cpu = yes`)."""

    TYPE = "load"
    OPTIONS = {"warning", "error", "critical", "hysteresis", "period", "per_cpu"}
    DEFAULT_INTERVAL = 30.0
    PERIODS = {"1": 0, "5": 1, "15": 2}

    def __init__(self, name: str, thresholds: Thresholds, period: str = "1", per_cpu: bool = False):
        self.name, self.type = name, self.TYPE
        self.label = f"load ({period} min{' per CPU' if per_cpu else ''})"
        self.thresholds, self.period, self.per_cpu = thresholds, period, per_cpu

    @classmethod
    def from_options(cls, name: str, options: Options, timeout: float) -> LoadMonitor:
        period = options.text("period", "1").removesuffix("m").removesuffix("min").strip()
        if period not in cls.PERIODS:
            raise SettingError("period", f"must be 1, 5 or 15 (minutes), not {period!r}")
        thresholds = Thresholds.from_options(options, options.number, hysteresis=options.number("hysteresis", 0.0),
                                             show=lambda v: f"{v:.2f}")
        return cls(name, thresholds, period, options.flag("per_cpu", False))

    def check(self) -> Reading:
        load = os.getloadavg()[self.PERIODS[self.period]]
        cpus = os.cpu_count() or 1
        value = load / cpus if self.per_cpu else load
        level = self.thresholds.classify(value)
        return Reading(level, self.thresholds.describe(value, level), value, {"load": f"{load:.2f}", "cpus": cpus})
