"""Who should know: the routing table from level (or event) to channel names, as plain data."""
from __future__ import annotations

from typing import Iterable, Mapping

from .model import Level

DEFAULT_ROUTES: dict[Level, tuple[str, ...]] = {
    Level.INFO: ("log", "desktop"),
    Level.WARNING: ("log", "desktop", "slack"),
    Level.ERROR: ("log", "desktop", "slack", "email"),
    Level.CRITICAL: ("log", "desktop", "slack", "email", "sms"),
}


class Routing:
    """Level -> channel names, with optional per-event overrides (a monitor's own `channels`)."""

    def __init__(
        self,
        routes: Mapping[Level | str, Iterable[str]],
        events: Mapping[str, Iterable[str]] | None = None,
    ):
        self.routes: dict[Level, tuple[str, ...]] = {level: () for level in Level}
        for level, names in routes.items():
            self.routes[Level.parse(level)] = _unique(names)
        self.events: dict[str, tuple[str, ...]] = {
            event: _unique(names) for event, names in (events or {}).items()
        }

    @classmethod
    def coerce(cls, value: Routing | Mapping[Level | str, Iterable[str]]) -> Routing:
        """A Routing as is, or one made from a plain level -> names mapping."""
        return value if isinstance(value, Routing) else cls(value)

    def channels_for(self, event: str, level: Level) -> tuple[str, ...]:
        """The channel names an alert of this event and level goes to."""
        override = self.events.get(event)
        return override if override is not None else self.routes[level]

    def names(self) -> set[str]:
        """Every channel name the table mentions."""
        found = {name for names in self.routes.values() for name in names}
        found.update(name for names in self.events.values() for name in names)
        return found


def _unique(names: Iterable[str]) -> tuple[str, ...]:
    """Names in order with duplicates and blanks dropped."""
    if isinstance(names, str):
        names = names.split(",")
    return tuple(dict.fromkeys(name.strip() for name in names if name.strip()))
