"""Whether to tell: what a raise, clear or reminder does to an event, as one pure function of (stored state,
request, now) -> Transition. No I/O, no locks, no clock: the engine reads the state, calls `decide`, and writes
the transition and its notifications in one transaction."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Mapping, Union

from .model import Alert, Level, from_timestamp

FIRED, ESCALATED, DEBOUNCED = "fired", "escalated", "debounced"
CLEARED, NOT_ACTIVE = "cleared", "not active"
REMINDED, NOT_DUE = "reminded", "not due"
ACKNOWLEDGED, ALREADY_ACKNOWLEDGED = "acknowledged", "already acknowledged"

FIRING, ESCALATION, REMINDER, RECOVERY = "firing", "escalation", "reminder", "recovery"


@dataclass(frozen=True, eq=False)
class ActiveEvent:
    """An event that is firing (one episode, first firing to recovery): what was sent, since when, how often it
    repeated, which channels may know of it, when it was last reminded of."""

    event: str
    level: Level
    message: str
    context: Mapping
    since: float
    at: float
    seen: int = 1
    last_seen: float = 0.0
    told: frozenset[str] = field(default_factory=frozenset)
    reminded_at: float = 0.0
    episode: str = ""
    acknowledged_at: float | None = None  # a person said "I'm on it": reminders and pop-ups stop until escalation

    @property
    def acknowledged(self) -> bool:
        return self.acknowledged_at is not None

    def alert(self) -> Alert:
        """The firing as an Alert (the latest firing or escalation)."""
        return Alert(self.event, self.level, self.message, dict(self.context), from_timestamp(self.at),
                     episode=self.episode, since=from_timestamp(self.since))


@dataclass(frozen=True)
class Raise:
    """A condition reported firing at a level."""

    event: str
    level: Level
    message: str
    context: Mapping = field(default_factory=dict)


@dataclass(frozen=True)
class Clear:
    """A condition reported over, with what was seen when it recovered (never the firing's stale readings)."""

    event: str
    message: str = "recovered"
    context: Mapping = field(default_factory=dict)


@dataclass(frozen=True)
class Acknowledge:
    """A person has seen a firing event and is on it: it stays active, but stops reminding."""

    event: str


@dataclass(frozen=True)
class Remind:
    """Time to look whether an event that is still firing is due a reminder."""

    event: str


Request = Union[Raise, Clear, Remind, Acknowledge]


@dataclass(frozen=True)
class Policy:
    """What the lifecycle needs to know beyond the event: who hears a level, and how often to remind."""

    route: Callable[[str, Level], tuple[str, ...]]  # channels for a firing (only ones that exist)
    present: frozenset[str]  # channels that exist now (a recovery or reminder goes to those told that still do)
    remind_every: Callable[[str, Level], float | None] = lambda event, level: None


@dataclass(frozen=True)
class Notice:
    """One notification to send: an alert for a channel, and what kind of notification it is."""

    channel: str
    kind: str
    alert: Alert


@dataclass(frozen=True)
class Transition:
    """What a request did: its kind, the state before and after, and the notifications it causes."""

    kind: str
    before: ActiveEvent | None
    after: ActiveEvent | None
    notices: tuple[Notice, ...] = ()

    @property
    def changes_state(self) -> bool:
        """Whether the stored event must be written (a debounce only counts, in memory first)."""
        return self.kind in (FIRED, ESCALATED, CLEARED, REMINDED, ACKNOWLEDGED)


def decide(current: ActiveEvent | None, request: Request, now: float, policy: Policy,
           episode_id: str = "") -> Transition:
    """The transition `request` causes on an event whose stored state is `current`, at time `now`.

    `episode_id` names a new episode should this request start one."""
    if isinstance(request, Raise):
        return _raise(current, request, now, policy, episode_id)
    if isinstance(request, Clear):
        return _clear(current, request, now, policy)
    if isinstance(request, Acknowledge):
        return _acknowledge(current, now)
    return _remind(current, now, policy)


def _raise(current: ActiveEvent | None, request: Raise, now: float, policy: Policy, episode_id: str) -> Transition:
    if current is not None and current.level >= request.level:
        return Transition(DEBOUNCED, current, replace(current, seen=current.seen + 1, last_seen=now))
    route = policy.route(request.event, request.level)
    if current is None:
        after = ActiveEvent(request.event, request.level, request.message, dict(request.context), since=now, at=now,
                            seen=1, last_seen=now, told=frozenset(route), episode=episode_id)
        kind, notice_kind = FIRED, FIRING
    else:  # a higher level: the new route hears it, every channel told before still counts as told, and an
        # acknowledgement of the lower level no longer holds
        after = replace(current, level=request.level, message=request.message, context=dict(request.context),
                        at=now, seen=current.seen + 1, last_seen=now, told=current.told | frozenset(route),
                        acknowledged_at=None)
        kind, notice_kind = ESCALATED, ESCALATION
    alert = after.alert()
    return Transition(kind, current, after, tuple(Notice(name, notice_kind, alert) for name in route))


def _clear(current: ActiveEvent | None, request: Clear, now: float, policy: Policy) -> Transition:
    if current is None:
        return Transition(NOT_ACTIVE, None, None)
    recovery = Alert(current.event, current.level, request.message, dict(request.context), from_timestamp(now),
                     resolved=True, firing_for=now - current.since, episode=current.episode,
                     since=from_timestamp(current.since))
    return Transition(CLEARED, current, None, tuple(Notice(name, RECOVERY, recovery)
                                                    for name in _still_present(current.told, policy)))


def _acknowledge(current: ActiveEvent | None, now: float) -> Transition:
    if current is None:
        return Transition(NOT_ACTIVE, None, None)
    if current.acknowledged:
        return Transition(ALREADY_ACKNOWLEDGED, current, current)
    return Transition(ACKNOWLEDGED, current, replace(current, acknowledged_at=now))


def _remind(current: ActiveEvent | None, now: float, policy: Policy) -> Transition:
    if current is None:
        return Transition(NOT_ACTIVE, None, None)
    if not reminder_due(current, now, policy):
        return Transition(NOT_DUE, current, current)
    reminder = Alert(current.event, current.level, current.message, dict(current.context), from_timestamp(now),
                     reminder=True, firing_for=now - current.since, episode=current.episode,
                     since=from_timestamp(current.since))
    return Transition(REMINDED, current, replace(current, reminded_at=now),
                      tuple(Notice(name, REMINDER, reminder) for name in _still_present(current.told, policy)))


def reminder_due(current: ActiveEvent, now: float, policy: Policy) -> bool:
    """Whether an event has fired long enough since its latest firing or reminder to be reminded of."""
    if current.acknowledged:
        return False
    every = policy.remind_every(current.event, current.level)
    return bool(every) and now - max(current.at, current.reminded_at) >= every  # type: ignore[operator]


def due_reminders(events: Iterable[ActiveEvent], now: float, policy: Policy) -> list[str]:
    """The events due a reminder now."""
    return [current.event for current in events if reminder_due(current, now, policy)]


def _still_present(told: frozenset[str], policy: Policy) -> list[str]:
    """The channels told of an episode that still exist, in a stable order."""
    return sorted(name for name in told if name in policy.present)
