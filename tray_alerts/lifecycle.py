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
RELEASED, REINHIBITED = "released", "reinhibited"

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
    depends_on: tuple[str, ...] = ()  # parents: while one of them fires, this event tells only the log
    inhibited_by: str | None = None  # the active parent holding this event's notifications back

    @property
    def acknowledged(self) -> bool:
        return self.acknowledged_at is not None

    @property
    def inhibited(self) -> bool:
        return self.inhibited_by is not None

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
    depends_on: tuple[str, ...] = ()  # events that, while active, inhibit this one


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


@dataclass(frozen=True)
class Release:
    """A parent of an inhibited event has recovered: the event notifies now, unless another parent still fires."""

    event: str
    parent: str


Request = Union[Raise, Clear, Remind, Acknowledge, Release]


@dataclass(frozen=True)
class Policy:
    """What the lifecycle needs to know beyond the event: who hears a level, and how often to remind."""

    route: Callable[[str, Level], tuple[str, ...]]  # channels for a firing (only ones that exist)
    present: frozenset[str]  # channels that exist now (a recovery or reminder goes to those told that still do)
    remind_every: Callable[[str, Level], float | None] = lambda event, level: None
    log_channels: frozenset[str] = frozenset()  # the channels an inhibited event still tells (it is kept on record)


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
        return self.kind in (FIRED, ESCALATED, CLEARED, REMINDED, ACKNOWLEDGED, RELEASED, REINHIBITED)


def inhibitor(event: str, depends_on: Iterable[str], active: Callable[[str], bool]) -> str | None:
    """The first parent of `event` that is active now (it inhibits the event), or None."""
    return next((parent for parent in depends_on if parent != event and active(parent)), None)


def decide(current: ActiveEvent | None, request: Request, now: float, policy: Policy,
           episode_id: str = "", active: Callable[[str], bool] = lambda event: False) -> Transition:
    """The transition `request` causes on an event whose stored state is `current`, at time `now`.

    `episode_id` names a new episode should this request start one; `active` says whether another event fires
    now (a parent that fires inhibits the event)."""
    if isinstance(request, Raise):
        return _raise(current, request, now, policy, episode_id, active)
    if isinstance(request, Clear):
        return _clear(current, request, now, policy)
    if isinstance(request, Acknowledge):
        return _acknowledge(current, now)
    if isinstance(request, Release):
        return _release(current, request, now, policy, active)
    return _remind(current, now, policy)


def _raise(current: ActiveEvent | None, request: Raise, now: float, policy: Policy, episode_id: str,
           active: Callable[[str], bool]) -> Transition:
    if current is not None and current.level >= request.level:
        return Transition(DEBOUNCED, current, replace(current, seen=current.seen + 1, last_seen=now))
    route = policy.route(request.event, request.level)
    depends_on = request.depends_on or (current.depends_on if current is not None else ())
    inhibited_by = None  # an event its channels know of already is not held back: they hear how it goes on
    if current is None or current.inhibited:
        inhibited_by = inhibitor(request.event, depends_on, active)
    if inhibited_by is not None:  # kept on record, told to the log alone until its parent recovers
        route = tuple(name for name in route if name in policy.log_channels)
    if current is None:
        after = ActiveEvent(request.event, request.level, request.message, dict(request.context), since=now, at=now,
                            seen=1, last_seen=now, told=frozenset(route), episode=episode_id, depends_on=depends_on,
                            inhibited_by=inhibited_by)
        kind, notice_kind = FIRED, FIRING
    else:  # a higher level: the new route hears it, every channel told before still counts as told, and an
        # acknowledgement of the lower level no longer holds
        after = replace(current, level=request.level, message=request.message, context=dict(request.context),
                        at=now, seen=current.seen + 1, last_seen=now, told=current.told | frozenset(route),
                        acknowledged_at=None, depends_on=depends_on, inhibited_by=inhibited_by)
        kind, notice_kind = ESCALATED, ESCALATION
    alert = after.alert()
    return Transition(kind, current, after, tuple(Notice(name, notice_kind, alert) for name in route))


def _release(current: ActiveEvent | None, request: Release, now: float, policy: Policy,
             active: Callable[[str], bool]) -> Transition:
    if current is None or current.inhibited_by != request.parent:
        return Transition(NOT_ACTIVE, current, current)
    others = [parent for parent in current.depends_on if parent != request.parent]
    still_inhibited_by = inhibitor(current.event, others, active)
    if still_inhibited_by is not None:
        return Transition(REINHIBITED, current, replace(current, inhibited_by=still_inhibited_by))
    route = [name for name in policy.route(current.event, current.level) if name not in current.told]
    after = replace(current, inhibited_by=None, told=current.told | frozenset(route))
    alert = replace(after.alert(), at=from_timestamp(now), released_from=request.parent)
    return Transition(RELEASED, current, after, tuple(Notice(name, FIRING, alert) for name in route))


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
    if current.acknowledged or current.inhibited:
        return False
    every = policy.remind_every(current.event, current.level)
    return bool(every) and now - max(current.at, current.reminded_at) >= every  # type: ignore[operator]


def due_reminders(events: Iterable[ActiveEvent], now: float, policy: Policy) -> list[str]:
    """The events due a reminder now."""
    return [current.event for current in events if reminder_due(current, now, policy)]


def _still_present(told: frozenset[str], policy: Policy) -> list[str]:
    """The channels told of an episode that still exist, in a stable order."""
    return sorted(name for name in told if name in policy.present)
