"""Storm control: when many alerts fire at once, pop-ups are capped per minute (then one summary) and chatty
channels (Slack, email) get what piles up within a short window as one message. Nothing is lost: every alert
stays in the tray and the history."""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Mapping

from .display import clock
from .model import Alert, Level
from .state import from_timestamp

SUMMARY_EVENT = "tray-alerts"


@dataclass(frozen=True)
class ChannelLimits:
    """max_per_minute: beyond it alerts are held back and one summary follows (0: off). group_after: beyond this
    many alerts within group_window seconds, the rest wait and go out together as one message (0: off)."""

    max_per_minute: int = 0
    group_after: int = 0
    group_window: float = 30.0


@dataclass(frozen=True)
class Decision:
    """What to do with one alert for one channel: send now, hold back (`suppressed`), or group until `until`."""

    action: str  # "send" | "suppress" | "group"
    reason: str = ""
    until: float | None = None


SEND = Decision("send")


@dataclass
class _Gate:
    sent: deque = field(default_factory=deque)  # times of alerts sent, newest last
    held_back: int = 0
    worst: Level | None = None
    summary_timer: threading.Timer | None = None
    group_until: float = 0.0


class StormControl:
    """Per-channel storm decisions; the summary of what a cap held back is sent through `send_summary`."""

    def __init__(self, limits: Mapping[str, ChannelLimits], send_summary: Callable[[str, Alert], None]):
        self.limits = {name: limit for name, limit in limits.items() if limit.max_per_minute or limit.group_after}
        self._send_summary = send_summary
        self._gates = {name: _Gate() for name in self.limits}
        self._lock = threading.Lock()
        self.stats = {"sent": 0, "held_back": 0, "summaries": 0, "grouped": 0}

    def decide(self, name: str, alert: Alert, now: float | None = None) -> Decision:
        """Send, hold back or group this alert for this channel (and count it)."""
        limit = self.limits.get(name)
        if limit is None:
            return SEND
        now = time.time() if now is None else now
        with self._lock:
            gate = self._gates[name]
            window = max(60.0 if limit.max_per_minute else 0.0, limit.group_window if limit.group_after else 0.0)
            while gate.sent and now - gate.sent[0] >= window:
                gate.sent.popleft()
            if limit.max_per_minute and len(gate.sent) >= limit.max_per_minute:
                return self._hold_back(name, gate, alert, now, limit)
            if limit.group_after:
                recent = sum(1 for sent in gate.sent if now - sent < limit.group_window)
                if recent >= limit.group_after or gate.group_until > now:
                    if gate.group_until <= now:
                        gate.group_until = now + limit.group_window
                    self.stats["grouped"] += 1
                    return Decision("group", f"grouped with others: sent together at"
                                             f" {clock(from_timestamp(gate.group_until))}", gate.group_until)
            gate.sent.append(now)
            self.stats["sent"] += 1
            return SEND

    def _hold_back(self, name: str, gate: _Gate, alert: Alert, now: float, limit: ChannelLimits) -> Decision:
        gate.held_back += 1
        self.stats["held_back"] += 1
        gate.worst = alert.level if gate.worst is None or alert.level > gate.worst else gate.worst
        if gate.summary_timer is None:
            delay = max(0.1, 60.0 - (now - gate.sent[0]))
            gate.summary_timer = threading.Timer(delay, self._summarise, args=(name,))
            gate.summary_timer.daemon = True
            gate.summary_timer.start()
        return Decision("suppress", f"held back by storm control (more than {limit.max_per_minute} a minute);"
                                    " a summary follows")

    def _summarise(self, name: str) -> None:
        with self._lock:
            gate = self._gates[name]
            count, worst = gate.held_back, gate.worst or Level.INFO
            gate.held_back, gate.worst, gate.summary_timer = 0, None, None
            if count:
                gate.sent.append(time.time())
                self.stats["summaries"] += 1
        if count:
            message = f"{count} more alert{'s' if count != 1 else ''} — open the tray"
            self._send_summary(name, Alert(SUMMARY_EVENT, worst, message))

    def close(self) -> None:
        """Send pending summaries now."""
        for name, gate in self._gates.items():
            timer = gate.summary_timer
            if timer is not None:
                timer.cancel()
                self._summarise(name)
