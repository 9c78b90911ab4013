"""Reminders: an event still active after `remind_every` is sent again, marked as a reminder (off by default)."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .model import Level

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReminderPolicy:
    """Seconds between reminders per level, overridden per event (a monitor's `remind_every`)."""

    levels: dict[Level, float] = field(default_factory=dict)
    events: dict[str, float] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.levels or self.events)

    def interval(self, event: str, level: Level) -> float | None:
        """How often this event at this level is reminded of, or None."""
        return self.events.get(event, self.levels.get(level))


class Reminder:
    """A background thread that asks the engine to remind of events that have been firing long enough."""

    def __init__(self, engine: Engine, policy: ReminderPolicy, tick: float = 5.0):
        self.engine, self.policy = engine, policy
        self.tick = min(tick, max(0.05, min([*policy.levels.values(), *policy.events.values(), tick]) / 4))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reminders", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2.0)

    def due(self, now: float | None = None) -> list[str]:
        """The events due a reminder now."""
        now = time.time() if now is None else now
        events = []
        for record in self.engine.active_events():
            every = self.policy.interval(record.event, record.level)
            if every and now - max(record.at, self.engine.reminded_at(record.event, record.since)) >= every:
                events.append(record.event)
        return events

    def _run(self) -> None:
        while not self._stop.wait(self.tick):
            try:
                for event in self.due():
                    self.engine.remind(event)
            except Exception:
                log.exception("reminders: a pass failed")
