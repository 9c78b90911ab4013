"""Storm control: when many alerts fire at once, pop-ups are capped per minute (then one summary) and chatty
channels (Slack, email) get what piles up within a short window as one message. Nothing is lost: every alert
stays in the tray and the history. The decisions are pure functions of a channel's gate state and the time;
StormControl only keeps those states between calls."""
from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

from .display import clock
from .model import Alert, Level, from_timestamp

SUMMARY_EVENT = "tray-alerts"
CAP_WINDOW = 60.0  # max_per_minute counts over this many seconds
SEND, SUPPRESS, GROUP = "send", "suppress", "group"
SUMMARY_NAMES = 3  # events a summary names in its text
SUMMARY_CONTEXT_NAMES = 50  # events it lists in its context


@dataclass(frozen=True)
class ChannelLimits:
    """max_per_minute: beyond it alerts are held back and one summary follows (0: off). group_after: beyond this
    many alerts within group_window seconds, the rest wait and go out together as one message (0: off)."""

    max_per_minute: int = 0
    group_after: int = 0
    group_window: float = 30.0

    def __bool__(self) -> bool:
        return bool(self.max_per_minute or self.group_after)


@dataclass(frozen=True)
class GateState:
    """One channel's recent sends and what its cap held back since the last summary."""

    sent: tuple[float, ...] = ()  # times of alerts sent, oldest first
    held_back: int = 0
    held_events: tuple[str, ...] = ()  # the events held back, each once, in the order they came
    worst: Level | None = None
    summary_at: float | None = None  # when the summary of what was held back goes out
    group_until: float = 0.0


@dataclass(frozen=True)
class StormDecision:
    """Send now, suppress (counted into the next summary), or group until `until`."""

    action: str
    reason: str = ""
    until: float | None = None


def storm_verdict(limit: ChannelLimits, gate: GateState, alert: Alert, now: float) -> tuple[StormDecision, GateState]:
    """What storm control does with one alert for a channel, and the channel's gate state afterwards: a recovery
    is never counted nor held, a critical is never held (it counts as sent)."""
    if alert.resolved:
        return StormDecision(SEND), gate
    window = max(CAP_WINDOW if limit.max_per_minute else 0.0, limit.group_window if limit.group_after else 0.0)
    sent = tuple(t for t in gate.sent if now - t < window)
    if alert.level is Level.CRITICAL:
        return StormDecision(SEND), replace(gate, sent=(*sent, now))
    if limit.max_per_minute and len(sent) >= limit.max_per_minute:
        worst = alert.level if gate.worst is None or alert.level > gate.worst else gate.worst
        summary_at = gate.summary_at if gate.summary_at is not None else sent[0] + CAP_WINDOW
        reason = (f"held back by storm control (more than {limit.max_per_minute} a minute); a summary follows"
                  f" at {clock(from_timestamp(summary_at))}")
        held_events = gate.held_events if alert.event in gate.held_events else (*gate.held_events, alert.event)
        return StormDecision(SUPPRESS, reason), replace(gate, sent=sent, held_back=gate.held_back + 1, worst=worst,
                                                        summary_at=summary_at, held_events=held_events)
    if limit.group_after:
        recent = sum(1 for t in sent if now - t < limit.group_window)
        if recent >= limit.group_after or gate.group_until > now:
            until = gate.group_until if gate.group_until > now else now + limit.group_window
            reason = f"grouped with others: sent together at {clock(from_timestamp(until))}"
            return StormDecision(GROUP, reason, until), replace(gate, sent=sent, group_until=until)
    return StormDecision(SEND), replace(gate, sent=(*sent, now))


def summary_due(gate: GateState, now: float) -> bool:
    """Whether the summary of what a cap held back should go out now."""
    return gate.held_back > 0 and gate.summary_at is not None and gate.summary_at <= now


def summarise(gate: GateState, now: float) -> tuple[Alert, GateState]:
    """The summary alert of what the cap held back (at the worst level held back, naming the first few events),
    and the gate after it."""
    count = gate.held_back
    summary = summary_alert(f"{count} more alert{'s' if count != 1 else ''}", gate.held_events, gate.worst, now)
    return summary, replace(gate, sent=(*gate.sent, now), held_back=0, worst=None, summary_at=None, held_events=())


def summary_alert(lead: str, events: Sequence[str], worst: Level | None, now: float) -> Alert:
    """One alert standing for many: `LEAD: disk_root, api, backup and 9 more — open the tray`, at the worst level,
    the events (the first 50) in its context."""
    return Alert(SUMMARY_EVENT, worst or Level.INFO, f"{lead}: {name_some(events)} — open the tray",
                 at=from_timestamp(now), context={"events": ", ".join(events[:SUMMARY_CONTEXT_NAMES])})


def name_some(events: Sequence[str], shown: int = SUMMARY_NAMES) -> str:
    """`disk_root`, `disk_root and api`, `disk_root, api and backup`, `disk_root, api, backup and 9 more`."""
    if len(events) <= shown:
        return " and ".join(filter(None, (", ".join(events[:-1]), events[-1] if events else "")))
    return f"{', '.join(events[:shown])} and {len(events) - shown} more"


class StormControl:
    """The gate states of the channels that have limits; decisions come from the pure functions above."""

    def __init__(self, limits: Mapping[str, ChannelLimits]):
        self.limits = {name: limit for name, limit in limits.items() if limit}
        self._gates: dict[str, GateState] = {name: GateState() for name in self.limits}
        self._lock = threading.Lock()
        self.stats = {"sent": 0, "held_back": 0, "summaries": 0, "grouped": 0}

    def gates(self) -> dict[str, GateState]:
        """A snapshot of every gate."""
        with self._lock:
            return dict(self._gates)

    def decide(self, name: str, alert: Alert, now: float) -> StormDecision:
        """Decide for one alert and keep the gate state that follows."""
        limit = self.limits.get(name)
        if limit is None:
            return StormDecision(SEND)
        with self._lock:
            decision, self._gates[name] = storm_verdict(limit, self._gates[name], alert, now)
            self.stats[{SEND: "sent", SUPPRESS: "held_back", GROUP: "grouped"}[decision.action]] += 1
        return decision

    def next_summary_at(self) -> float | None:
        """When the next summary is due, if any is waiting."""
        with self._lock:
            times = [gate.summary_at for gate in self._gates.values() if gate.held_back and gate.summary_at]
        return min(times) if times else None

    def take_summaries(self, now: float, all_pending: bool = False) -> dict[str, Alert]:
        """The summaries due now (or every one waiting, on shutdown), per channel; their gates move on."""
        summaries: dict[str, Alert] = {}
        with self._lock:
            for name, gate in self._gates.items():
                if summary_due(gate, now) or (all_pending and gate.held_back):
                    summaries[name], self._gates[name] = summarise(gate, now)
                    self.stats["summaries"] += 1
        return summaries
