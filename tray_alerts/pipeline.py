"""Per channel, what happens to one notification before it is sent: a short list of small pure stages, each of
which passes it on or says send / hold until / group / drop. A new rule (an inhibition, quiet hours) is one more
stage in STAGES and one table test."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from .display import clock
from .model import Alert, from_timestamp
from .quiet_hours import QUIET_SUMMARY_AFTER, QuietPolicy
from .storm import GROUP as STORM_GROUP, SUPPRESS, ChannelLimits, GateState, storm_verdict

# why a row waits: a column of its own, never a prefix of its text
HOLD_NONE, HOLD_RETRY, HOLD_SNOOZE, HOLD_MUTE, HOLD_GROUP = "", "retry", "snooze", "mute", "group"
HOLD_QUIET = "quiet"  # until a channel's quiet hours end: a time of day, never moved by a clock jump
SEND, HOLD, GROUP, DROP = "send", "hold", "group", "drop"
SUMMARISE = "summarise"  # done, named in one summary of what quiet hours held
SUMMARY_KIND = "summary"


@dataclass(frozen=True)
class Delivery:
    """One notification for one channel (and recipient): a row of the outbox."""

    id: int
    channel: str
    event: str
    episode: str
    kind: str  # firing, escalation, reminder, recovery, summary
    alert: Alert
    recipient: str = ""
    attempts: int = 0
    not_before: float = 0.0
    hold: str = HOLD_NONE
    expires_at: float = 0.0
    created_at: float = 0.0
    last_error: str = ""
    possible_repeat: bool = False

    @property
    def key(self) -> tuple[str, str, str]:
        """Order holds per key: a row waits for older rows of its key."""
        return (self.channel, self.event, self.recipient)

    @property
    def fresh(self) -> bool:
        """Not tried and not grouped yet: storm control still has a say."""
        return self.attempts == 0 and self.hold != HOLD_GROUP and self.kind != SUMMARY_KIND


@dataclass(frozen=True)
class Verdict:
    """What to do with a row now; `until` for hold and group, `hold` names why it waits."""

    action: str
    reason: str = ""
    until: float | None = None
    hold: str = HOLD_NONE


SEND_NOW = Verdict(SEND)


@dataclass(frozen=True)
class Conditions:
    """What the stages look at besides the row: holds in force, storm gates, what waits ahead."""

    snoozed_until: float | None = None
    mutes: Mapping[str, float] = field(default_factory=dict)
    quiet: frozenset[str] = frozenset()  # channels no snooze or mute holds (the log)
    limits: Mapping[str, ChannelLimits] = field(default_factory=dict)
    gates: Mapping[str, GateState] = field(default_factory=dict)
    ahead: frozenset[tuple[str, str, str]] = frozenset()  # keys with an older row not done
    quiet_hours: QuietPolicy = QuietPolicy()
    overtaken: frozenset[int] = frozenset()  # rows held for quiet hours whose alert recovered meanwhile
    summarised: frozenset[str] = frozenset()  # channels whose rows quiet hours held go out as one summary


Stage = Callable[[Delivery, Conditions, float], "Verdict | None"]


def ordering(row: Delivery, conditions: Conditions, now: float) -> Verdict | None:
    """A row waits behind older rows of its channel, event and recipient (a recovery behind its firing), except a
    level quiet hours let through, which does not wait behind what they hold."""
    if row.key in conditions.ahead and not passes_quiet_hours(row, conditions, now):
        return Verdict(HOLD, "queued behind an earlier delivery that is waiting to be retried")
    return None


def passes_quiet_hours(row: Delivery, conditions: Conditions, now: float) -> bool:
    """A firing, escalation or reminder whose level goes out during its channel's quiet hours, now in them."""
    hours = conditions.quiet_hours.channels.get(row.channel)
    if hours is None or row.alert.resolved or not hours.passes(row.alert.level):
        return False
    state = conditions.quiet_hours.state(row.channel, now)
    return state is not None and state.quiet


def holds(row: Delivery, conditions: Conditions, now: float) -> Verdict | None:
    """A snooze (every event) or a mute (one event) holds a row until it ends, except on quiet channels."""
    if row.channel in conditions.quiet:
        return None
    snoozed = conditions.snoozed_until if conditions.snoozed_until and conditions.snoozed_until > now else None
    muted = conditions.mutes.get(row.event)
    muted = muted if muted and muted > now else None
    if muted is None and snoozed is None:
        return None
    if (muted or 0.0) > (snoozed or 0.0):
        return Verdict(HOLD, f"held while muted until {_clock(muted)}", muted, HOLD_MUTE)  # type: ignore[arg-type]
    return Verdict(HOLD, f"held while snoozed until {_clock(snoozed)}", snoozed, HOLD_SNOOZE)  # type: ignore[arg-type]


def quiet(row: Delivery, conditions: Conditions, now: float) -> Verdict | None:
    """Quiet hours: a row waits until the window ends, unless its level is allowed or it is a recovery (of an
    alert its channel was told of); reminders are skipped. What recovered meanwhile is dropped as overtaken; at the
    end, many held rows of a channel go out as one summary."""
    if row.id in conditions.overtaken:
        return Verdict(DROP, "dropped as overtaken: the alert recovered or went out at a higher level during quiet"
                             " hours (it is in the history)", hold=HOLD_QUIET)
    state = conditions.quiet_hours.state(row.channel, now)
    if state is None:
        return None
    if not state.quiet:
        if row.hold == HOLD_QUIET and row.channel in conditions.summarised and row.kind != SUMMARY_KIND:
            return Verdict(SUMMARISE, "held for quiet hours: sent in one summary with the others", hold=HOLD_QUIET)
        return None
    if row.alert.resolved or conditions.quiet_hours.channels[row.channel].passes(row.alert.level):
        return None
    if row.kind == "reminder":
        return Verdict(DROP, f"reminder skipped: quiet hours until {state.ends_text}", hold=HOLD_QUIET)
    return Verdict(HOLD, f"held for quiet hours until {state.ends_text}", state.ends_at, HOLD_QUIET)


def summarised_channels(rows: Sequence[Delivery], conditions: Conditions, now: float) -> frozenset[str]:
    """The channels whose quiet hours are over with more rows held for them than their storm threshold (else
    QUIET_SUMMARY_AFTER): those rows go out as one summary instead of a flood."""
    held: dict[str, int] = {}
    for row in rows:
        if row.hold == HOLD_QUIET and row.kind != SUMMARY_KIND and row.id not in conditions.overtaken:
            held[row.channel] = held.get(row.channel, 0) + 1
    found = set()
    for channel, count in held.items():
        state = conditions.quiet_hours.state(channel, now)
        limit = conditions.limits.get(channel) or ChannelLimits()
        if state is not None and not state.quiet and \
                count > (limit.group_after or limit.max_per_minute or QUIET_SUMMARY_AFTER):
            found.add(channel)
    return frozenset(found)


def storm(row: Delivery, conditions: Conditions, now: float) -> Verdict | None:
    """Storm control for fresh rows: beyond a channel's cap drop (a summary follows); in a pile-up, group."""
    limit = conditions.limits.get(row.channel)
    if limit is None or not row.fresh:
        return None
    decision, _ = storm_verdict(limit, conditions.gates.get(row.channel, GateState()), row.alert, now)
    if decision.action == SUPPRESS:
        return Verdict(DROP, decision.reason)
    if decision.action == STORM_GROUP:
        return Verdict(GROUP, decision.reason, decision.until, HOLD_GROUP)
    return None


def counts_for_storm(row: Delivery, verdict: Verdict) -> bool:
    """Whether storm control must count this verdict (a fresh row sent, grouped or dropped by the cap)."""
    return row.fresh and verdict.hold != HOLD_QUIET and (verdict.action in (SEND, DROP) or verdict.hold == HOLD_GROUP)


STAGES: Sequence[Stage] = (ordering, holds, quiet, storm)


def run_stages(row: Delivery, conditions: Conditions, now: float, stages: Sequence[Stage] = STAGES) -> Verdict:
    """The first verdict a stage gives, or send."""
    for stage in stages:
        verdict = stage(row, conditions, now)
        if verdict is not None:
            return verdict
    return SEND_NOW


def _clock(moment: float) -> str:
    return clock(from_timestamp(moment))
