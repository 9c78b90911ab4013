"""The dashboard's Monitors section: each monitor's last reading and level, and for the numeric ones a day of
readings as chart points with the uptime over 24 h and 7 d. The charts are read from the state file at most
every CHARTS_EVERY seconds (the page asks every 2 s; a day of readings changes slowly)."""
from __future__ import annotations

import threading
from typing import Any, Callable, Sequence

from .. import readings
from ..clock import Clock
from ..monitors.runner import MonitorStatus
from ..state import StateStore

CHARTS_EVERY = 30.0  # seconds (monotonic) a day of chart points is kept before it is read again
CHART_POINTS = 96  # one point per 15 minutes over a day


def monitor_card(status: MonitorStatus, rows: Sequence[readings.ReadingRow], now: float) -> dict[str, Any]:
    """One monitor as the page shows it, from its status and its readings of the last week (oldest first)."""
    reading = status.reading
    summary = readings.summarise(rows, now)
    return {"name": status.name, "type": status.type, "label": status.label,
            "level": None if reading is None else (reading.level.value if reading.level else "ok"),
            "message": status.message, "value": reading.value if reading else None, "checked_at": status.checked_at,
            "held_until": status.held_until, "up_day": summary.up_day, "up_week": summary.up_week,
            "low": summary.low, "high": summary.high,
            "points": [[at, value, bad] for at, value, bad in
                       readings.chart_points(rows, now - readings.DAY, now, CHART_POINTS)]}


class MonitorPanel:
    """The Monitors section: live statuses, with charts read again once they are CHARTS_EVERY old."""

    def __init__(self, statuses: Callable[[], Sequence[MonitorStatus]], store: StateStore, clock: Clock):
        self.statuses, self.store, self.clock = statuses, store, clock
        self._rows: dict[str, list[readings.ReadingRow]] = {}
        self._read_at: float | None = None
        self._lock = threading.Lock()

    def view(self) -> list[dict[str, Any]]:
        """Every monitor's card, in settings order."""
        now = self.clock.time()
        statuses = list(self.statuses())
        with self._lock:
            stale = self._read_at is None or not 0 <= self.clock.monotonic() - self._read_at < CHARTS_EVERY
            if stale:
                self._read_at = self.clock.monotonic()
        if stale:  # the reads happen outside the lock; a second caller meanwhile shows the previous rows
            fresh = {status.name: readings.load(self.store, status.name, now - readings.WEEK) for status in statuses}
            with self._lock:
                self._rows = fresh
        with self._lock:
            rows = dict(self._rows)
        return [monitor_card(status, rows.get(status.name, []), now) for status in statuses]
