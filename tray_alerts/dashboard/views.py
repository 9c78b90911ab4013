"""What the dashboard shows, read through the engine's public methods into plain JSON-ready data: the active
alerts, each incident's timeline from the history, the outbox (what waits, why, next try) and channel health."""
from __future__ import annotations

from typing import Any, Callable, Iterable

from ..engine import Engine
from ..pipeline import HOLD_GROUP, HOLD_MUTE, HOLD_QUIET, HOLD_RETRY, HOLD_SNOOZE, Delivery
from ..state import HistoryEntry
from ..wiring import channel_state
from .monitors import MonitorPanel

MAX_ALERTS = 200  # active alerts sent to the page (worst first); the total is said
MAX_TIMELINES = 20  # active events whose timeline is read (worst first)
MAX_CLEARED = 10  # recently cleared events whose last incident is shown too
TIMELINE_LINES = 100  # history lines read per event
RECENT_LINES = 200  # history lines looked at for recently cleared events
MAX_OUTBOX = 100  # outbox rows sent to the page (oldest first)
_STARTS = ("fired",)  # the history line an incident begins with


def latest_incident(entries: Iterable[HistoryEntry]) -> list[HistoryEntry]:
    """The lines of an event's latest incident, oldest first, from its history newest first: back to its latest
    `fired` line (all of them when that was pruned or lies beyond what was read)."""
    incident: list[HistoryEntry] = []
    for entry in entries:
        incident.append(entry)
        if entry.kind in _STARTS and entry.channel is None:
            break
    incident.reverse()
    return incident


def why_waiting(row: Delivery, now: float) -> str:
    """Why an outbox row has not gone out yet, in words."""
    if row.hold == HOLD_RETRY:
        return f"failed, retrying: {row.last_error}" if row.last_error else "failed, retrying"
    if row.hold == HOLD_MUTE:
        return "held: the event is muted"
    if row.hold == HOLD_SNOOZE:
        return "held: notifications are snoozed"
    if row.hold == HOLD_GROUP:
        return "grouped: goes out with others as one message (a storm)"
    if row.hold == HOLD_QUIET:
        return row.last_error or "held for the channel's quiet hours"
    if row.last_error:
        return f"waiting to retry: {row.last_error}"
    return "waiting for its turn" if row.not_before > now else "due now"


def history_line(entry: HistoryEntry) -> dict[str, Any]:
    return {"at": entry.at.timestamp(), "kind": entry.kind, "level": entry.level.value, "message": entry.message,
            "channel": entry.channel, "ok": entry.ok, "detail": entry.detail}


def outbox_row(row: Delivery, now: float) -> dict[str, Any]:
    return {"id": row.id, "channel": row.channel, "recipient": row.recipient, "event": row.event, "kind": row.kind,
            "level": row.alert.level.value, "attempts": row.attempts, "hold": row.hold, "last_error": row.last_error,
            "why": why_waiting(row, now), "next_try": row.not_before or None, "created_at": row.created_at}


def incidents(engine: Engine, active: list[str]) -> list[dict[str, Any]]:
    """The latest incident of the worst active events, then of the events cleared most recently."""
    shown = [{"event": event, "active": True,
              "lines": [history_line(entry) for entry in latest_incident(engine.history(TIMELINE_LINES, event))]}
             for event in active[:MAX_TIMELINES]]
    cleared: list[str] = []
    for entry in engine.history(RECENT_LINES):
        if entry.event not in active and entry.event not in cleared and entry.kind == "cleared":
            cleared.append(entry.event)
    for event in cleared[:MAX_CLEARED]:
        lines = latest_incident(engine.history(TIMELINE_LINES, event))
        shown.append({"event": event, "active": False, "lines": [history_line(entry) for entry in lines]})
    return shown


def channels(engine: Engine, now: float) -> list[dict[str, Any]]:
    """Every channel the engine knows (ready or not), with the words `status` uses for it (quiet hours too)."""
    health = engine.channel_health()
    names = list(engine.channels) + [name for name in engine.unavailable if name not in engine.channels]
    names += sorted(name for name in health if name not in names)
    result = []
    for name in names:
        known = health.get(name)
        state = channel_state(name, engine.unavailable.get(name), known, engine.quiet_hours.state(name, now))
        result.append({"name": name, "state": state,
                       "ready": name in engine.channels, "ok": known.last_ok if known else None,
                       "last_at": known.last_at.timestamp() if known and known.last_at else None,
                       "waiting": known.waiting if known else 0, "held": known.held if known else 0})
    return result


def snapshot(engine: Engine, list_alerts: Callable[[], list[dict]], monitors: MonitorPanel | None = None
             ) -> dict[str, Any]:
    """Everything the page shows, at once."""
    now = engine.clock.time()
    alerts = list_alerts()
    pending = engine.pending()
    return {"now": now, "snoozed_until": engine.snoozed_until,
            "alerts": alerts[:MAX_ALERTS], "alerts_total": len(alerts),
            "incidents": incidents(engine, [alert["event"] for alert in alerts]),
            "outbox": [outbox_row(row, now) for row in pending[:MAX_OUTBOX]], "outbox_total": len(pending),
            "channels": channels(engine, now), "monitors": monitors.view() if monitors is not None else []}
