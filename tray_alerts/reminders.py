"""Reminders: an event still active after `remind_every` is sent again, marked as a reminder (off by default).
When one is due is the lifecycle's decision (lifecycle.reminder_due); this is the policy it reads."""
from __future__ import annotations

from dataclasses import dataclass, field

from .model import Level


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
