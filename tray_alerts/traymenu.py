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
    """One menu line: text, and either an action, a submenu, or neither (a label).

    `key` names the line for as long as it means the same thing (`alert:disk_root/clear`), so a tray host
    can keep one id per line across refreshes; `icon` names a small picture for it (a level, or
    "acknowledged")."""

    text: str
    action: Action | None = None
    submenu: tuple[Item, ...] = ()
    enabled: bool = True
    default: bool = False
    key: str = ""
    icon: str | None = None

    @property
    def is_separator(self) -> bool:
        return self.text == "-"


def separator(key: str) -> Item:
    """A separator line with its own key."""
    return Item("-", key=key)



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
    acknowledge: Callable[[str], None] | None = None
    open_dashboard: Action | None = None  # the local dashboard in the web browser (None: no such item)


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


def waiting(record: ActiveEvent) -> bool:
    """Whether an alert waits for someone: not acknowledged, and not inhibited by a parent that is active."""
    return not record.acknowledged and not record.inhibited


def needs_attention(state: TrayState) -> bool:
    """Whether an error or critical is active that waits for someone (the host may highlight the icon)."""
    return any(record.level >= Level.ERROR and waiting(record) for record in state.active)


def tooltip_title(state: TrayState) -> str:
    """The tooltip's first line: `tray-alerts — 2 active` or `tray-alerts — all clear`."""
    snoozed = f" · snoozed until {_when(state.snoozed_until, state.now)}" if state.snoozed_until else ""
    count = len(state.active)
    return f"tray-alerts — {'all clear' if not count else f'{count} active'}{snoozed}"


def tooltip_lines(state: TrayState, limit: int = 5) -> list[str]:
    """The worst alerts, one line each (`CRITICAL · disk_root: disk at 97%`), acknowledged and inhibited ones last."""
    ranked = sorted(state.active, key=lambda record: (not waiting(record), -record.level.rank, record.since))
    lines = [_cut(f"{record.level.value.upper()} · {record.event}: {record.message}"
                  + (f" (inhibited by {record.inhibited_by})" if record.inhibited else "")
                  + (" (acknowledged)" if record.acknowledged else ""), 80) for record in ranked[:limit]]
    if len(ranked) > limit:
        lines.append(f"…and {len(ranked) - limit} more")
    return lines


def header(state: TrayState) -> str:
    count = len(state.active)
    return "All clear" if count == 0 else f"{count} active alert{'s' if count != 1 else ''}"


def menu(state: TrayState, actions: Actions) -> list[Item]:
    """The whole menu, worst alert first; every line keyed (see Item)."""
    items = [Item(header(state), enabled=False, key="header")]
    if state.snoozed_until:
        items.append(Item(f"Notifications snoozed until {_when(state.snoozed_until, state.now)}", enabled=False,
                          key="snoozed"))
    items.append(separator("sep:top"))
    for record in state.active[:MAX_ALERTS_SHOWN]:
        items.append(alert_row(record, state.now, actions, state.mutes.get(record.event)))
    if len(state.active) > MAX_ALERTS_SHOWN:
        items.append(Item(f"…and {len(state.active) - MAX_ALERTS_SHOWN} more", enabled=False, key="more"))
    if state.active:
        items += [Item("Clear all", actions.clear_all, key="clear-all"), separator("sep:alerts")]
    items += [
        Item("Snooze notifications", submenu=snooze_submenu(state, actions), key="snooze"),
        Item("Monitors", submenu=monitors_submenu(state, actions), key="monitors"),
        Item("Recent", submenu=recent_submenu(state), key="recent"),
        separator("sep:app"),
        *([Item("Open dashboard", actions.open_dashboard, key="dashboard")] if actions.open_dashboard else []),
        Item("Open settings", actions.open_settings, key="settings"),
        Item("Open log", actions.open_log, key="log"),
        Item("Reload settings", actions.reload, key="reload"),
        Item("Quit", actions.quit, key="quit"),
    ]
    return items


def alert_row(record: ActiveEvent, now: float, actions: Actions, muted_until: float | None = None) -> Item:
    """`CRITICAL · disk_root`, `… (muted)`, `… — inhibited by router` or `… — acknowledged 14:32` (those two with the
    grey icon), opening its submenu."""
    notes = " (muted)" if muted_until else ""
    if record.inhibited:
        notes += f" — inhibited by {record.inhibited_by}"
    if record.acknowledged_at is not None:
        notes += f" — acknowledged {_when(record.acknowledged_at, now)}"
    return Item(f"{record.level.value.upper()} · {record.event}{notes}", key=f"alert:{record.event}",
                submenu=alert_submenu(record, now, actions, muted_until),
                icon=record.level.value if waiting(record) else "acknowledged")


def alert_submenu(record: ActiveEvent, now: float, actions: Actions, muted_until: float | None = None
                  ) -> tuple[Item, ...]:
    """Level, message, since when, how often, context, Acknowledge, Mute / Unmute, and Clear."""
    event = record.event
    key = f"alert:{event}/"

    def clear() -> None:
        actions.clear(event)

    lines = [
        Item(f"Level: {record.level.value}", enabled=False, key=key + "level"),
        Item(record.message, enabled=False, key=key + "message"),
        *([Item(f"Inhibited by {record.inhibited_by}: only the log is told until it recovers", enabled=False,
                key=key + "inhibited")] if record.inhibited else []),
        Item(f"since {clock(from_timestamp(record.since), seconds=False)} · {duration((now - record.since) // 1)}",
             enabled=False, key=key + "since"),
        Item(f"seen {record.seen} time{'s' if record.seen != 1 else ''}, last"
             f" {clock(from_timestamp(record.last_seen), seconds=False)}", enabled=False, key=key + "seen"),
        *(Item(f"{name}: {value}", enabled=False, key=f"{key}context:{name}")
          for name, value in list(record.context.items())[:10]),
        separator(key + "sep"),
        *acknowledge_items(record, now, actions),
        *mute_items(record.event, now, actions, muted_until),
        Item("Clear", clear, key=key + "clear"),
    ]
    return tuple(lines)


def acknowledge_items(record: ActiveEvent, now: float, actions: Actions) -> list[Item]:
    """`Acknowledge` (stops reminders and pop-ups, keeps the alert), or `Acknowledged 14:32`."""
    acknowledge = actions.acknowledge
    key = f"alert:{record.event}/acknowledge"
    if acknowledge is None:
        return []
    if record.acknowledged_at is not None:
        return [Item(f"Acknowledged {_when(record.acknowledged_at, now)}", enabled=False, key=key)]
    event = record.event
    return [Item("Acknowledge", lambda: acknowledge(event), key=key)]


def mute_items(event: str, now: float, actions: Actions, muted_until: float | None) -> list[Item]:
    """`Mute 1 h` (as the pop-up says it), or `Muted until 15:30` and `Unmute`."""
    mute = actions.mute
    key = f"alert:{event}/mute"
    if mute is None:
        return []
    if muted_until:
        return [Item(f"Muted until {_when(muted_until, now)}", enabled=False, key=key),
                Item("Unmute", lambda: mute(event, None), key=key + "/undo")]
    return [Item("Mute 1 h", lambda: mute(event, time.time() + 3600), key=key)]


def snooze_submenu(state: TrayState, actions: Actions) -> tuple[Item, ...]:
    """15 minutes, 1 hour, until tomorrow 09:00, Resume."""
    tomorrow_nine = next_morning(state.now)
    return (
        Item("15 minutes", lambda: actions.snooze(time.time() + 15 * 60), key="snooze/15min"),
        Item("1 hour", lambda: actions.snooze(time.time() + 3600), key="snooze/1h"),
        Item("Until tomorrow 09:00", lambda: actions.snooze(tomorrow_nine), key="snooze/tomorrow"),
        Item("Resume", lambda: actions.snooze(None), enabled=state.snoozed_until is not None, key="snooze/resume"),
    )


def monitors_submenu(state: TrayState, actions: Actions) -> tuple[Item, ...]:
    """Each monitor with its last reading and level, then Check now."""
    if not state.monitors:
        return (Item("No monitors configured", enabled=False, key="monitors/none"),)
    lines = []
    for status in state.monitors:
        level = "not checked yet" if status.reading is None else (
            "ok" if status.reading.level is None else status.reading.level.value)
        said = status.reading.message(status.label) if status.reading else status.label
        if status.held_until is not None:
            said += f" (not judged until {_when(status.held_until, state.now)}: just woke from sleep)"
        lines.append(Item(f"{status.name} — {level}: {said}".rstrip(), enabled=False,
                          key=f"monitors/{status.name}"))
    return (*lines, separator("monitors/sep"), Item("Check now", actions.check_now, key="monitors/check"))


def recent_submenu(state: TrayState) -> tuple[Item, ...]:
    """The last 10 history entries, newest first."""
    if not state.recent:
        return (Item("Nothing yet", enabled=False, key="recent/none"),)
    return tuple(Item(describe_history(entry), enabled=False, key=f"recent/{index}")
                 for index, entry in enumerate(state.recent[:10]))


def describe_history(entry: HistoryEntry) -> str:
    """`14:30:01 disk_full fired (warning): disk at 93%` / `… delivery to slack failed: HTTP 500`."""
    when = clock(entry.at)
    if entry.channel:
        verb = "recovery" if entry.kind == "recovery" else "alert"
        result = entry.detail if entry.ok is None else "delivered" if entry.ok else f"failed: {entry.detail}"
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


def keys(items: Sequence[Item]) -> list[str]:
    """Every line's key, depth first (each is unique in a menu)."""
    return [key for item in items for key in (item.key, *keys(item.submenu))]


def flatten(items: Sequence[Item], depth: int = 0) -> list[str]:
    """The menu as indented lines (for tests and debugging)."""
    lines = []
    for item in items:
        lines.append("  " * depth + item.text)
        lines += flatten(item.submenu, depth + 1)
    return lines
