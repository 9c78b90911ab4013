"""The tray's menu, tooltip and icon state as pure functions of what the app knows (testable with no display)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Sequence

from .display import clock, duration
from .model import Level
from .monitors.runner import MonitorStatus
from .state import ActiveEvent, HistoryEntry, from_timestamp

MAX_ALERTS_SHOWN = 15
MAX_TOOLTIP = 120
Action = Callable[[], None]


@dataclass(frozen=True)
class Item:
    """One menu line: text, and either an action, a submenu, or neither (a label)."""

    text: str
    action: Action | None = None
    submenu: tuple[Item, ...] = ()
    enabled: bool = True
    default: bool = False

    @property
    def is_separator(self) -> bool:
        return self.text == "-"


SEPARATOR = Item("-")


@dataclass
class TrayState:
    """A snapshot of what the tray shows."""

    active: list[ActiveEvent]
    monitors: list[MonitorStatus] = field(default_factory=list)
    recent: list[HistoryEntry] = field(default_factory=list)
    snoozed_until: float | None = None
    now: float = field(default_factory=time.time)
    mutes: dict[str, float] = field(default_factory=dict)

    @property
    def worst(self) -> Level | None:
        return max((record.level for record in self.active), default=None)


@dataclass(frozen=True)
class Actions:
    """What the menu's items do, given by the tray."""

    clear: Callable[[str], None]
    clear_all: Action
    snooze: Callable[[float | None], None]
    check_now: Action
    open_settings: Action
    open_log: Action
    reload: Action
    quit: Action
    mute: Callable[[str, float | None], None] | None = None


def tooltip(state: TrayState) -> str:
    """`tray-alerts — 2 active: disk_full (critical), api_down (error)` or `tray-alerts — all clear`."""
    snoozed = f" · snoozed until {_when(state.snoozed_until, state.now)}" if state.snoozed_until else ""
    if not state.active:
        return f"tray-alerts — all clear{snoozed}"
    listed = ", ".join(f"{record.event} ({record.level.value})" for record in state.active)
    text = f"tray-alerts — {len(state.active)} active: {listed}"
    limit = MAX_TOOLTIP - len(snoozed)  # the whole tooltip, suffix included, stays within MAX_TOOLTIP
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text + snoozed


def header(state: TrayState) -> str:
    count = len(state.active)
    return "All clear" if count == 0 else f"{count} active alert{'s' if count != 1 else ''}"


def menu(state: TrayState, actions: Actions) -> list[Item]:
    """The whole menu, worst alert first."""
    items = [Item(header(state), enabled=False)]
    if state.snoozed_until:
        items.append(Item(f"Notifications snoozed until {_when(state.snoozed_until, state.now)}", enabled=False))
    items.append(SEPARATOR)
    for record in state.active[:MAX_ALERTS_SHOWN]:
        muted = " (muted)" if record.event in state.mutes else ""
        items.append(Item(f"{record.level.value.upper()} · {record.event}{muted}",
                          submenu=alert_submenu(record, state.now, actions, state.mutes.get(record.event))))
    if len(state.active) > MAX_ALERTS_SHOWN:
        items.append(Item(f"…and {len(state.active) - MAX_ALERTS_SHOWN} more", enabled=False))
    if state.active:
        items += [Item("Clear all", actions.clear_all), SEPARATOR]
    items += [
        Item("Snooze notifications", submenu=snooze_submenu(state, actions)),
        Item("Monitors", submenu=monitors_submenu(state, actions)),
        Item("Recent", submenu=recent_submenu(state)),
        SEPARATOR,
        Item("Open settings", actions.open_settings),
        Item("Open log", actions.open_log),
        Item("Reload settings", actions.reload),
        Item("Quit", actions.quit),
    ]
    return items


def alert_submenu(record: ActiveEvent, now: float, actions: Actions, muted_until: float | None = None
                  ) -> tuple[Item, ...]:
    """Level, message, since when, how often, context, Mute / Unmute, and Clear."""
    event = record.event

    def clear() -> None:
        actions.clear(event)

    lines = [
        Item(f"Level: {record.level.value}", enabled=False),
        Item(record.message, enabled=False),
        Item(f"since {clock(from_timestamp(record.since), seconds=False)} · {duration(now - record.since)}",
             enabled=False),
        Item(f"seen {record.seen} time{'s' if record.seen != 1 else ''}, last"
             f" {clock(from_timestamp(record.last_seen), seconds=False)}", enabled=False),
        *(Item(f"{key}: {value}", enabled=False) for key, value in list(record.context.items())[:10]),
        SEPARATOR,
        *mute_items(record.event, now, actions, muted_until),
        Item("Clear", clear),
    ]
    return tuple(lines)


def mute_items(event: str, now: float, actions: Actions, muted_until: float | None) -> list[Item]:
    """`Mute for 1 hour`, or `Muted until 15:30` and `Unmute`."""
    mute = actions.mute
    if mute is None:
        return []
    if muted_until:
        return [Item(f"Muted until {_when(muted_until, now)}", enabled=False),
                Item("Unmute", lambda: mute(event, None))]
    return [Item("Mute for 1 hour", lambda: mute(event, time.time() + 3600))]


def snooze_submenu(state: TrayState, actions: Actions) -> tuple[Item, ...]:
    """15 minutes, 1 hour, until tomorrow 09:00, Resume."""
    tomorrow_nine = next_morning(state.now)
    return (
        Item("15 minutes", lambda: actions.snooze(time.time() + 15 * 60)),
        Item("1 hour", lambda: actions.snooze(time.time() + 3600)),
        Item("Until tomorrow 09:00", lambda: actions.snooze(tomorrow_nine)),
        Item("Resume", lambda: actions.snooze(None), enabled=state.snoozed_until is not None),
    )


def monitors_submenu(state: TrayState, actions: Actions) -> tuple[Item, ...]:
    """Each monitor with its last reading and level, then Check now."""
    if not state.monitors:
        return (Item("No monitors configured", enabled=False),)
    lines = []
    for status in state.monitors:
        level = "not checked yet" if status.reading is None else (
            "ok" if status.reading.level is None else status.reading.level.value)
        summary = status.reading.summary if status.reading else ""
        lines.append(Item(f"{status.name} — {level}: {status.label} {summary}".rstrip(), enabled=False))
    return (*lines, SEPARATOR, Item("Check now", actions.check_now))


def recent_submenu(state: TrayState) -> tuple[Item, ...]:
    """The last 10 history entries, newest first."""
    if not state.recent:
        return (Item("Nothing yet", enabled=False),)
    return tuple(Item(describe_history(entry), enabled=False) for entry in state.recent[:10])


def describe_history(entry: HistoryEntry) -> str:
    """`14:30:01 disk_full fired (warning): disk at 93%` / `… delivery to slack failed: HTTP 500`."""
    when = clock(entry.at)
    if entry.channel:
        verb = "recovery" if entry.kind == "recovery" else "alert"
        result = "delivered" if entry.ok else f"failed: {entry.detail}"
        return _cut(f"{when} {entry.event}: {verb} to {entry.channel} {result}")
    return _cut(f"{when} {entry.event} {entry.kind} ({entry.level.value}): {entry.message}")


def next_morning(now: float, hour: int = 9) -> float:
    """Tomorrow at 09:00 local time."""
    tomorrow = datetime.fromtimestamp(now) + timedelta(days=1)  # naive local: timestamp() applies tomorrow's DST
    return tomorrow.replace(hour=hour, minute=0, second=0, microsecond=0).timestamp()


def _when(moment: float, now: float) -> str:
    return clock(from_timestamp(moment), from_timestamp(now), seconds=False)


def _cut(text: str, limit: int = 90) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def flatten(items: Sequence[Item], depth: int = 0) -> list[str]:
    """The menu as indented lines (for tests and debugging)."""
    lines = []
    for item in items:
        lines.append("  " * depth + item.text)
        lines += flatten(item.submenu, depth + 1)
    return lines
