"""The engine: a request -> the pure lifecycle decision -> one transaction (state change + one outbox row per
channel and recipient) -> the outbox sends the rows -> each answer is recorded. SQLite is the truth; memory
mirrors it for reads that never wait and for the debounce fast path (mirror.py); timed work runs in
background.py; changes the file cannot take yet wait in deferral.py."""
from __future__ import annotations

import inspect
import logging
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from .background import Background
from .channels.base import Channel
from .channels.log import LogChannel
from .clock import SYSTEM_CLOCK, Clock, SystemClock
from .deferral import Deferral, Deferred
from .delivery import Dispatcher
from .display import clock as clock_text
from .lifecycle import (ACKNOWLEDGED, CLEARED, DEBOUNCED, ESCALATED, ESCALATION, FIRED, FIRING, NOT_ACTIVE,
                        REINHIBITED, RELEASED, REMINDED, Acknowledge, ActiveEvent, Clear, Policy, Raise, Release, Remind,
                        Request, Transition, decide)
from .mirror import Mirror
from .model import Alert, Level, check_event, clean_context, clean_message, from_timestamp
from .outbox import RESULT_DELIVERED, RESULT_DROPPED, RESULT_FAILED, RESULT_RETRYING, Outbox, RetryPolicy
from .paths import default_state_path
from .pipeline import DROP, GROUP, HOLD, HOLD_MUTE, HOLD_SNOOZE, SEND, Conditions, Delivery
from .quiet_hours import QuietPolicy
from .reminders import ReminderPolicy
from .results import (DELIVERED, DROPPED, FAILED, HELD, NOT_STORED, PENDING, QUEUED, RETRYING, ChannelOutcome,
                      Result)
from .routing import Routing
from .sleep import Sleep, describe
from .state import DROPPED as ROW_DROPPED, ChannelHealth, HistoryEntry, StateStore, StoreFault, Transaction
from .storm import ChannelLimits, GateState, StormControl
from .values import MAX_DURATION

log = logging.getLogger(__name__)

DEFAULT_DELIVERY_TIMEOUT = 10.0
_RANK = {level: rank for rank, level in enumerate(Level)}
_LEVEL_LOOKUP: dict[Any, Level] = {level.value: level for level in Level}  # Level hashes as its value
_KIND_LINES = {FIRED: "fired", ESCALATED: "escalated", CLEARED: "cleared", REMINDED: "reminded", RELEASED: "released",
               REINHIBITED: "inhibited"}
_ANSWER_STATUS = {RESULT_DELIVERED: DELIVERED, RESULT_FAILED: FAILED, RESULT_RETRYING: RETRYING,
                  RESULT_DROPPED: DROPPED, QUEUED: QUEUED}
_NO_MUTES: dict[str, float] = {}
_NO_GATES: dict[str, GateState] = {}


@dataclass
class _Waiter:
    """Someone waiting for a row's answer."""

    done: threading.Event = field(default_factory=threading.Event)
    outcome: ChannelOutcome | None = None


class Engine:
    """Debounces, routes and fans out alerts through the durable outbox; thread-safe; shares its state file with
    other processes."""

    def __init__(
        self,
        channels: Mapping[str, Channel],
        routing: Routing | Mapping[Level | str, list[str]],
        state_path: str | Path | None = None,
        *,
        delivery_timeout: float = DEFAULT_DELIVERY_TIMEOUT,
        unavailable: Mapping[str, str] | None = None,
        retry: RetryPolicy | None = None,
        retry_in_background: bool = True,
        quiet_channels: Iterable[str] = (),
        limits: Mapping[str, ChannelLimits] | None = None,
        quiet_hours: QuietPolicy | None = None,
        reminders: ReminderPolicy | None = None,
        clock: Clock | None = None,
        history_max_age: float = 30 * 86400,
        history_max_rows: int = 100_000,
        dependencies: Mapping[str, Iterable[str]] | None = None,
        log_channels: Iterable[str] | None = None,
    ):
        if not history_max_age > 0:
            raise ValueError(f"history_max_age must be a number of seconds above 0, got {history_max_age!r}")
        if isinstance(history_max_rows, bool) or not isinstance(history_max_rows, int) or history_max_rows < 1:
            raise ValueError(f"history_max_rows must be a whole number of lines, at least 1, got {history_max_rows!r}")
        self.history_max_age = float(history_max_age)  # history is kept this long (seconds) ...
        self.history_max_rows = history_max_rows  # ... and at most this many lines (pruned by background upkeep)
        self.clock = clock or SYSTEM_CLOCK
        self._now, self._mono = (time.time, time.monotonic) if isinstance(self.clock, SystemClock) else \
            (self.clock.time, self.clock.monotonic)  # the system's straight, on the hot path
        self.channels: dict[str, Channel] = dict(channels)
        self.routing = Routing.coerce(routing)
        self.unavailable = dict(unavailable or {})
        self.delivery_timeout = delivery_timeout
        self.state_path = Path(state_path) if state_path is not None else default_state_path()
        self.retry = retry or RetryPolicy()
        self.reminders = reminders or ReminderPolicy()
        self.quiet_channels = frozenset(quiet_channels)  # never held by a snooze or mute (the log)
        self.store = StateStore(self.state_path, self.clock)
        self._dispatcher = Dispatcher(self.channels, delivery_timeout)
        self.storm = StormControl(limits or {})
        self.quiet_hours = quiet_hours or QuietPolicy()  # per channel: a daily window that holds notifications
        self.outbox = Outbox(self.store, self._dispatcher, self.retry, self.clock, self._conditions, self.storm,
                             self._answered, self._never_told)
        # parents per event (a monitor's depends_on; a pushed raise names its own), and the channels an inhibited
        # event still tells (by default the log channels)
        self.dependencies = {event: tuple(parents) for event, parents in (dependencies or {}).items()}
        self.log_channels = frozenset(log_channels) if log_channels is not None else frozenset(
            name for name, channel in self.channels.items() if isinstance(channel, LogChannel))
        self.policy = Policy(self._route, frozenset(self.channels), self.reminders.interval, self.log_channels)
        self._waiters: dict[int, _Waiter] = {}
        self._answers: Counter[tuple[str, str]] = Counter()  # (channel, result) -> answers since the start
        self._answers_lock = threading.Lock()
        self._subscribers: list[Callable[[], None]] = []
        self._subscribers_lock = threading.Lock()
        self.mirror = Mirror(self.store, self._mono, self._changed_elsewhere, self.outbox.wake.set)
        self.deferral = Deferral()
        self._skipped: set[str] = set()
        self._closed = False
        self.background = Background(self, upkeep=retry_in_background)
        try:
            self.outbox.recover()
        except StoreFault as fault:
            log.error("could not look at the outbox: %s", fault.reason)
        if retry_in_background:
            self.background.start()
        self._resume_channels()

    def _resume_channels(self) -> None:
        """Give channels that keep state of their own (Alertmanager's refresh) the firings they were told of."""
        for name, channel in self.channels.items():
            resume = getattr(channel, "resume", None)
            if resume is not None:
                try:
                    resume([record.alert() for record in self.mirror.active.values() if name in record.told])
                except Exception:
                    log.exception("channel %s could not resume", name)

    # ---- raising and clearing ------------------------------------------------------------------------------

    def raise_alert(self, event: str, level: Level | str, message: str, **context: Any) -> Result:
        """Fire (or escalate) the event; a repeat at the same or a lower level is counted and sends nothing.
        Waits up to the delivery timeout for the channels' answers."""
        try:
            new_level = _LEVEL_LOOKUP.get(level)
        except TypeError:  # unhashable level: the slow path explains what is wrong
            new_level = None
        if new_level is None:
            new_level = Level.parse(level)
        debounced = self.debounce(event, new_level, message, context)
        if debounced is not None:
            return debounced
        return self.submit(Raise(check_event(event), new_level, clean_message(message), clean_context(context)))

    def raise_request(self, request: Raise, wait: float | None = None) -> Result:
        """A raise as the push API and the monitors make it: debounced in memory when it can be, else submitted."""
        debounced = self.debounce(request.event, request.level, request.message, request.context)
        return debounced if debounced is not None else self.submit(request, wait)  # (an empty Result is falsy)

    def debounce(self, event: str, level: Level, message: Any, context: Any) -> Result | None:
        """The debounce fast path: when memory is current for an event that fires at `level` or higher, count
        the repeat in memory (written within a second) and answer without a write; else None."""
        mirror = self.mirror
        try:
            record = mirror.active.get(event)
        except TypeError:
            return None
        if record is None or _RANK[record.level] < _RANK[level] or not mirror.fresh():
            return None
        if self.deferral and self.deferral.touches(event):
            return None
        now = self._now()
        seen = mirror.count_repeat(event, record, level, message, context, now)
        if seen is None:
            return None
        return Result.debounced(event, record, seen, self.muted_until(event))

    def clear_alert(self, event: str, message: str = "recovered", wait: float | None = None,
                    context: Mapping[str, Any] | None = None) -> Result:
        """Recover an active event: one resolved alert (with `context`: what was seen as it recovered) to every
        channel told of it; the event re-arms."""
        check_event(event)
        if event not in self.mirror.active and not self.deferral and not self.mirror.maybe_changed():
            return Result(NOT_ACTIVE, event)
        return self.submit(Clear(event, clean_message(message), clean_context(dict(context or {}))), wait)

    def acknowledge(self, event: str, wait: float | None = None) -> Result:
        """Someone is on it: the event stays active and listed, its reminders stop; an escalation un-acknowledges
        it, and its recovery still goes to every channel told. Notifies no channel."""
        check_event(event)
        if event not in self.mirror.active and not self.deferral and not self.mirror.maybe_changed():
            return Result(NOT_ACTIVE, event)
        return self.submit(Acknowledge(event), wait)

    def remind(self, event: str) -> Result:
        """Send a reminder of an active event, if one is due, to the channels told of it."""
        return self.submit(Remind(check_event(event)))

    def submit(self, request: Request, wait: float | None = None) -> Result:
        """Decide and store a request, then send what it causes; wait up to `wait` seconds (default: the delivery
        timeout) for the channels' answers (0: answer as soon as it is stored)."""
        wait = self.delivery_timeout if wait is None else wait
        if self.deferral:  # keep the order: this waits behind what the file could not take yet
            return self._defer(request, StoreFault(self.deferral.fault))
        try:
            transition, rows, outcomes = self._apply(request, self.clock.time())
        except StoreFault as fault:
            return self._defer(request, fault)
        return self._result(request, transition, rows, outcomes, wait)

    # ---- one transaction -----------------------------------------------------------------------------------

    def _apply(self, request: Request, now: float, told_directly: frozenset[str] = frozenset(),
               wait: float | None = None) -> tuple[Transition, list[Delivery], dict[str, ChannelOutcome]]:
        """Catch up with other writers, decide on the file's state of the event, write the state and the rows
        it causes."""
        request = self._with_dependencies(request)
        released: list[Transition] = []
        with self.store.write(wait) as tx:
            self.mirror.sync(tx)
            current = self.mirror.with_repeats(tx.event(request.event))  # the file's, as this write sees it
            transition = decide(current, request, now, self.policy, _episode_id(), _stored(tx))
            rows: list[Delivery] = []
            outcomes: dict[str, ChannelOutcome] = {}
            if transition.changes_state:
                transition, rows, outcomes = self._store_transition(tx, request, transition, now, told_directly)
            if transition.kind == CLEARED:
                released = self._release_children(tx, request.event, now)
            tx.after_commit.append(lambda: self._committed(tx, request, transition, now, released))
        if released:
            self.outbox.wake.set()  # the released children's rows wait for the outbox's next pass
        if transition.changes_state:
            message = getattr(request, "message", None)
            log.info("%s %s at %s%s", transition.kind, request.event,
                     (transition.after or transition.before).level.value,  # type: ignore[union-attr]
                     f": {message}" if message else "")
        return transition, rows, outcomes

    def _with_dependencies(self, request: Request) -> Request:
        """A raise that names no parents gets its monitor's (`depends_on` in its settings)."""
        if isinstance(request, Raise) and not request.depends_on and request.event in self.dependencies:
            return replace(request, depends_on=self.dependencies[request.event])
        return request

    def _store_transition(self, tx: Transaction, request: Request, transition: Transition, now: float,
                          told_directly: frozenset[str] = frozenset(), claim: bool = True
                          ) -> tuple[Transition, list[Delivery], dict[str, ChannelOutcome]]:
        """Write a transition's rows and the event's new state (the channels a dropped firing leaves untold are
        not counted as told)."""
        rows, outcomes, untold = self._create_rows(tx, transition, now, told_directly, claim)
        if untold and transition.after is not None:  # storm control dropped a firing: that channel never heard
            transition = replace(transition, after=replace(transition.after, told=transition.after.told - untold))
        self._write_state(tx, request, transition, now)
        return transition, rows, outcomes

    def _release_children(self, tx: Transaction, parent: str, now: float) -> list[Transition]:
        """In the parent's clear: each event it inhibited notifies now, or stays inhibited by another parent."""
        released = []
        for child in tx.inhibited_by(parent):
            request = Release(child.event, parent)
            transition = decide(self.mirror.with_repeats(child), request, now, self.policy, active=_stored(tx))
            if transition.changes_state:
                released.append(self._store_transition(tx, request, transition, now, claim=False)[0])
        return released

    def _write_state(self, tx: Transaction, request: Request, transition: Transition, now: float) -> None:
        """The event's new state (repeats counted so far included) and its history line."""
        before, after = transition.before, transition.after
        if isinstance(request, Clear) and before is not None:
            tx.delete_event(before.event, now)
            tx.history(now, before.event, "cleared", before.level, request.message,
                       detail=f"active since {before.since:.3f}, seen {before.seen} times")
        elif isinstance(request, Acknowledge) and after is not None:
            tx.put_event(after)
            tx.history(now, after.event, "acknowledged", after.level, after.message)
            tx.drop_reminders(after.event, after.episode, now, "dropped: the alert was acknowledged")
        elif isinstance(request, Release) and after is not None:
            tx.put_event(after)
            line = (f"notified: {request.parent} recovered" if transition.kind == RELEASED
                    else f"still inhibited: {after.inhibited_by} fires")
            tx.history(now, after.event, _KIND_LINES[transition.kind], after.level, line)
        elif isinstance(request, Remind) and after is not None:
            tx.put_event(after)
            note = transition.notices[0].alert.note() if transition.notices else None
            tx.history(now, after.event, "reminded", after.level, after.message, detail=note or "")
        elif after is not None:
            tx.put_event(after)
            tx.history(now, after.event, _KIND_LINES[transition.kind], after.level, after.message,
                       detail=f"inhibited by {after.inhibited_by}: told only the log" if after.inhibited_by else "")

    def _create_rows(self, tx: Transaction, transition: Transition, now: float, told_directly: frozenset[str],
                     claim: bool = True) -> tuple[list[Delivery], dict[str, ChannelOutcome], set[str]]:
        """One row per notice (per recipient), each run through the stages as it is written; also returns the
        channels a dropped firing leaves untold. Rows to send now are claimed for this process to send at once
        (`claim`), else left for the outbox's next pass."""
        state = transition.after or transition.before
        assert state is not None
        pending = tx.pending_ids(state.event) if transition.notices else {}
        local = self.outbox.local_ids() if pending else set()
        blocked = self.outbox.blocked_keys() if pending else frozenset()
        ahead = frozenset(key for key, ids in pending.items() if not ids <= local or key in blocked)
        conditions = self._conditions(ahead)
        claimed: list[Delivery] = []
        outcomes: dict[str, ChannelOutcome] = {}
        untold: set[str] = set()
        for notice in transition.notices:
            for recipient in _recipients(self.channels.get(notice.channel)):
                row = Delivery(0, notice.channel, state.event, state.episode, notice.kind, notice.alert, recipient,
                               not_before=now, expires_at=now + self.retry.expiry, created_at=now)
                if notice.channel in told_directly:
                    row = tx.insert(row, status="delivered")
                    tx.delivery_line(row, now, True, "delivered directly while the state file could not be written")
                    outcomes[notice.channel] = ChannelOutcome(DELIVERED, "directly, while the state file could not"
                                                                         " be written")
                    continue
                verdict = self.outbox.judge(row, conditions, now)
                if verdict.action == SEND and not claim:
                    row = tx.insert(row)
                    outcomes[notice.channel] = ChannelOutcome(QUEUED)
                elif verdict.action == SEND:
                    row = tx.insert(row, lease_until=now + self.outbox.lease_seconds, owner=self.outbox.owner,
                                    in_flight=True)
                    claimed.append(row)
                    outcomes.setdefault(notice.channel, ChannelOutcome(PENDING))
                elif verdict.action == DROP:
                    row = tx.insert(row, status=ROW_DROPPED)
                    tx.delivery_line(row, now, None, verdict.reason)
                    outcomes[notice.channel] = ChannelOutcome(DROPPED, verdict.reason)
                    if notice.kind in (FIRING, ESCALATION) and not tx.knows(row):
                        untold.add(notice.channel)
                else:
                    if verdict.until is not None:
                        row = replace(row, not_before=verdict.until, hold=verdict.hold, last_error=verdict.reason)
                    row = tx.insert(row)
                    tx.delivery_line(row, now, None, verdict.reason)
                    status = HELD if verdict.action in (HOLD, GROUP) and verdict.until is not None else QUEUED
                    outcomes[notice.channel] = ChannelOutcome(status, verdict.reason)
                if notice.channel in self.storm.limits:  # its gate moved on
                    conditions = self._conditions(ahead)
        for row in claimed:
            self._waiters[row.id] = _Waiter()
        return claimed, outcomes, untold

    def _committed(self, tx: Transaction, request: Request, transition: Transition, now: float,
                   released: Iterable[Transition] = ()) -> None:
        """After the commit (still in order with other writes): memory follows the file."""
        for child in released:
            self.mirror.follow(child.after.event, child.after, tx.new_revision)  # type: ignore[union-attr]
        if transition.kind == DEBOUNCED and isinstance(request, Raise) and transition.after is not None:
            self.mirror.note_repeat(request, transition.after.episode, now)
            self.mirror.advance(tx.new_revision)
        elif transition.changes_state:
            self.mirror.follow(request.event, transition.after, tx.new_revision)
        else:
            self.mirror.advance(tx.new_revision)

    def _result(self, request: Request, transition: Transition, rows: list[Delivery],
                outcomes: dict[str, ChannelOutcome], wait: float) -> Result:
        """Send the claimed rows, wait for their answers up to `wait` seconds, and say how it went."""
        if transition.changes_state:
            self._notify()
        if transition.kind == ACKNOWLEDGED:
            self._withdraw(request.event)
        for row in self.outbox.send(rows):  # given back: an older one of its key is being retried
            self._answered(row, QUEUED, "queued behind an earlier delivery that is waiting to be retried")
        deadline = self.clock.monotonic() + wait
        for row in rows:
            waiter = self._waiters.get(row.id)
            if waiter is not None and wait > 0:
                waiter.done.wait(max(0.0, deadline - self.clock.monotonic()))
        for row in rows:
            waiter = self._waiters.pop(row.id, None)
            outcome = waiter.outcome if waiter is not None else None
            if outcome is None:
                detail = (f"no answer within {wait:g} s; the outbox records it when it comes" if wait > 0
                          else "sent to the channel; its answer is recorded when it comes")
                outcome = ChannelOutcome(PENDING, detail)
            _merge(outcomes, row.channel, outcome)
        shown = transition.after or transition.before
        return Result(transition.kind, request.event, outcomes, transition.after,
                      seen=shown.seen if shown else None, since=shown.since if shown else None,
                      level=shown.level.value if shown else None, muted_until=self.muted_until(request.event))

    def _withdraw(self, event: str) -> None:
        """An acknowledged or muted event's pop-up goes away (channels that can take a notification back do so)."""
        for name, channel in self.channels.items():
            withdraw = getattr(channel, "withdraw", None)
            if withdraw is not None:
                threading.Thread(target=_quietly, args=(withdraw, event, name), name="withdraw", daemon=True).start()

    def _answered(self, row: Delivery, result: str, detail: str) -> bool:
        """A channel answered for a row: count it, and wake whoever waits for it (True if someone did)."""
        with self._answers_lock:
            self._answers[(row.channel, result)] += 1
        waiter = self._waiters.get(row.id)
        if waiter is None:
            return False
        waiter.outcome = ChannelOutcome(_ANSWER_STATUS.get(result, FAILED), detail)
        waiter.done.set()
        return True

    def _never_told(self, tx: Transaction, row: Delivery, now: float) -> None:
        """A firing that will not arrive: its channel no longer counts as told of the episode."""
        self.mirror.sync(tx)
        current = self.mirror.active.get(row.event)
        if current is None or current.episode != row.episode or row.channel not in current.told:
            return
        told = current.told - {row.channel}
        tx.set_told(row.event, row.episode, told, now)
        tx.after_commit.append(lambda: self.mirror.follow_told(current, told, tx.new_revision))

    def _changed_elsewhere(self, reraise: list[Raise], firing_changed: bool) -> None:
        """Another process wrote: tell subscribers, and fire again what was raised while it cleared it."""
        if firing_changed and self._subscribers:
            threading.Thread(target=self._notify, daemon=True).start()
        for request in reraise:  # raised here while another process was clearing it: not lost, it fires again
            threading.Thread(target=self.submit, args=(request, 0.0), daemon=True).start()

    # ---- the state file cannot be written ------------------------------------------------------------------

    def _defer(self, request: Request, fault: StoreFault) -> Result:
        """Keep a request for when the file can be written; meanwhile the channels that need no state hear of it."""
        now = self.clock.time()
        request = self._with_dependencies(request)
        current = self.deferral.state_of(request.event, self.mirror.current)
        transition = decide(current, request, now, self.policy, _episode_id(),
                            lambda name: self.deferral.state_of(name, self.mirror.current) is not None)
        answers = {}
        for notice in transition.notices:
            if getattr(self.channels.get(notice.channel), "stateless", False):
                answers.update(self._dispatcher.deliver(notice.alert, [notice.channel]))
        told = frozenset(name for name, outcome in answers.items() if outcome.ok)
        self.deferral.keep(Deferred(request, now, told), transition, fault.reason)
        if transition.kind == ACKNOWLEDGED:
            self._withdraw(request.event)
        self.outbox.wake.set()  # the background pass tries the file again within REPLAY_SECONDS
        if transition.changes_state:
            self._notify()
        waiting = f"not stored yet ({fault.reason}); sent when the state file can be written"
        outcomes = {notice.channel: ChannelOutcome(NOT_STORED, waiting) for notice in transition.notices}
        for name, outcome in answers.items():
            outcomes[name] = ChannelOutcome(DELIVERED, "directly") if outcome.ok else \
                ChannelOutcome(FAILED, outcome.detail)
        return Result(transition.kind, request.event, outcomes, transition.after, stored=False, fault=fault.reason)

    def replay(self) -> None:
        """Store the requests the file could not take, in order, as of when they were made."""
        if not self.deferral:
            return

        def store(item: Deferred) -> None:
            _, rows, _ = self._apply(item.request, item.at, item.told_directly, wait=0.5)
            self.outbox.send(rows)
            for row in rows:
                self._waiters.pop(row.id, None)

        if self.deferral.replay(store, StoreFault) or not self.deferral:
            self._notify()

    @property
    def fault(self) -> str:
        """Why the state file cannot be written now (empty when it can)."""
        return self.deferral.fault

    # ---- timed work (background.py) ------------------------------------------------------------------------

    def tick(self) -> None:
        """Everything timed, once: deferred writes, repeat counts, reminders, the outbox, upkeep."""
        self.background.tick()

    def write_repeats(self, now: float, everything: bool = False) -> None:
        """Write the repeats counted in memory (those counted a while ago, or all)."""
        due = self.mirror.due_repeats(now, everything)
        if not due:
            return
        with self.store.write() as tx:
            self.mirror.sync(tx)
            for event, repeats in due.items():
                tx.add_seen(event, repeats.episode, repeats.count, repeats.last_seen)
            tx.after_commit.append(lambda: self.mirror.repeats_written(due))

    def flush(self) -> None:
        """Write the repeat counts kept in memory now."""
        self.write_repeats(self.clock.time(), everything=True)

    # ---- delivering ----------------------------------------------------------------------------------------

    def _route(self, event: str, level: Level) -> tuple[str, ...]:
        """The routed channels that exist; each missing one is logged once, not treated as an error."""
        present = []
        for name in self.routing.channels_for(event, level):
            if name in self.channels:
                present.append(name)
            elif name not in self._skipped:
                self._skipped.add(name)
                log.info("channel %s skipped: %s", name, self.unavailable.get(name, "not configured"))
        return tuple(present)

    def _conditions(self, ahead: frozenset[tuple[str, str, str]] = frozenset()) -> Conditions:
        """What the stages look at now."""
        mirror = self.mirror
        with mirror.lock:
            mutes = dict(mirror.mutes) if mirror.mutes else _NO_MUTES
        gates = self.storm.gates() if self.storm.limits else _NO_GATES
        return Conditions(mirror.snoozed_until, mutes, self.quiet_channels, self.storm.limits, gates, ahead,
                          self.quiet_hours)

    # ---- reading -------------------------------------------------------------------------------------------

    def active(self) -> list[Alert]:
        """The active alerts, worst level first, then oldest first."""
        return [record.alert() for record in self.active_events()]

    def active_events(self) -> list[ActiveEvent]:
        """Snapshots of the active events with since, repeat count and channels told."""
        records: dict[str, ActiveEvent | None] = dict(self.mirror.events())
        records.update(self.deferral.shadow())
        found = [record for record in records.values() if record is not None]
        found.sort(key=lambda record: (-_RANK[record.level], record.since))
        return found

    def history(self, limit: int = 50, event: str | None = None) -> list[HistoryEntry]:
        """The newest history entries first (answers channels just gave included)."""
        self.outbox.write_answers()
        return self.store.history(limit, event)

    def pending(self) -> list[Delivery]:
        """The notifications not done yet."""
        self.outbox.write_answers()
        return self.store.pending()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait (real time) until this process sends nothing and no row is due, running the passes itself when
        there is no background thread; False if that takes longer than `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.outbox.write_answers()
            now = self.clock.time()
            # a row goes due -> claimed in the file -> handed to a channel (held here) -> done: asked in that order,
            # one that moves on between two questions is seen by a later one
            due = self.store.due_keys_waiting(now)
            if not due and not self.store.claimed_by(self.outbox.owner, now) and not self.outbox.local_ids():
                return True
            if due and not self.background.running:
                self.tick()
            self.outbox.wake.set()
            time.sleep(0.01)
        return False

    # ---- snooze and mute -----------------------------------------------------------------------------------

    @property
    def snoozed_until(self) -> float | None:
        """While snoozed: when it ends (Unix time); else None."""
        until = self.mirror.snoozed_until
        return until if until is not None and until > self.clock.time() else None

    def snooze(self, until: float | None, keep: Iterable[str] | None = None) -> None:
        """Hold deliveries to every channel but the quiet ones (the log; or `keep`) until `until`; None resumes
        and sends what was held. Alerts are still recorded and shown while snoozed."""
        now = self.clock.time()
        _check_until(until, now)
        if keep is not None:
            self.quiet_channels = frozenset(keep)
        with self.store.write() as tx:
            self.mirror.sync(tx)
            tx.set_meta("snoozed_until", until, now)
            if until is None:
                tx.release_holds(HOLD_SNOOZE, now)
            tx.after_commit.append(lambda: self.mirror.follow_holds(None, until, tx.new_revision))
        log.info("notifications %s", f"snoozed until {clock_text(from_timestamp(until))}" if until else "resumed")
        self.outbox.wake.set()
        self._notify()

    def mute(self, event: str, until: float | None) -> None:
        """Hold one event's notifications until `until` (it stays active and shown); None unmutes and sends what
        was held."""
        check_event(event)
        now = self.clock.time()
        _check_until(until, now)
        with self.store.write() as tx:
            self.mirror.sync(tx)
            tx.put_mute(event, until, now)
            if until is None:
                tx.release_holds(HOLD_MUTE, now, event)
            tx.after_commit.append(lambda: self.mirror.follow_holds({event: until}, False, tx.new_revision))
        log.info("%s %s", event, f"muted until {clock_text(from_timestamp(until))}" if until else "unmuted")
        self.outbox.wake.set()
        self._notify()
        if until is not None:  # muted: its pop-up (a critical one stays until closed) goes away too
            self._withdraw(event)

    def muted_until(self, event: str) -> float | None:
        """When an event's mute ends, if it is muted."""
        until = self.mirror.mutes.get(event)
        return until if until is not None and until > self.clock.time() else None

    def mutes(self) -> dict[str, float]:
        """Every event muted now, with when its mute ends."""
        return self.mirror.mutes_now(self.clock.time())

    # ---- pings, health, subscribers ------------------------------------------------------------------------

    def record_ping(self, name: str) -> None:
        """A heartbeat ping (from the push API or `tray-alerts ping`), kept in the state file."""
        check_event(name)
        with self.store.write() as tx:
            tx.record_ping(name, self.clock.time())

    def last_ping(self, name: str) -> float | None:
        """When a heartbeat was last pinged."""
        return self.store.last_ping(name)

    def delivery_counts(self) -> dict[tuple[str, str], int]:
        """How the channels answered since this engine started: (channel, result) -> how many times."""
        with self._answers_lock:
            return dict(self._answers)

    def channel_health(self) -> dict[str, ChannelHealth]:
        """Per channel: its latest delivery result and how many of its notifications wait."""
        self.outbox.write_answers()
        return self.store.channel_health()

    def subscribe(self, callback: Callable[..., None]) -> Callable[[], None]:
        """Call `callback` after every change of the active set; returns a function that unsubscribes."""
        wants_alerts = _accepts_argument(callback)
        listener = (lambda: callback(self.active())) if wants_alerts else callback
        with self._subscribers_lock:
            self._subscribers.append(listener)

        def unsubscribe() -> None:
            with self._subscribers_lock:
                if listener in self._subscribers:
                    self._subscribers.remove(listener)

        return unsubscribe

    def _notify(self) -> None:
        with self._subscribers_lock:
            listeners = list(self._subscribers)
        for listener in listeners:
            try:
                listener()
            except Exception:
                log.exception("a subscriber failed")

    # ---- closing -------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Write what memory holds, send pending storm summaries, give deliveries in flight half a second, close
        the channels and the state file; what is not done stays in the outbox for the next start."""
        if self._closed:
            return
        self._closed = True
        self.background.stop()
        try:
            self.replay()
            self.flush()
            if self.outbox.flush_summaries():
                self.outbox.run_due()
        except StoreFault as fault:
            log.error("closing with changes not stored: %s", fault.reason)
        busy = self._dispatcher.close()
        self.outbox.close()
        for name, channel in self.channels.items():
            close = getattr(channel, "close", None) if name not in busy else None
            if close is not None:
                try:
                    close()
                except Exception:
                    log.exception("channel %s did not close cleanly", getattr(channel, "name", "?"))
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record_sleep(self, start: float, end: float) -> None:
        """A history line (event and kind `sleep`) for a suspend from `start` to `end`: `asleep 22:10–07:02 (8 h 52
        min)`."""
        with self.store.write() as tx:
            tx.history(end, "sleep", "sleep", Level.INFO, describe(Sleep(start, end)))


def _stored(tx: Transaction) -> Callable[[str], bool]:
    """Whether an event is active in the file, as this write sees it."""
    return lambda event: tx.event(event) is not None


def _episode_id() -> str:
    """A new episode's id: random, and cheap (the system's random source costs more than the decision)."""
    return f"{random.getrandbits(64):016x}"


def _quietly(function: Callable[[str], None], event: str, channel: str) -> None:
    """Call a channel's best-effort extra (taking a pop-up back); a failure is logged, never raised."""
    try:
        function(event)
    except Exception as error:
        log.warning("channel %s could not take back the pop-up of %s: %s", channel, event, error)


def _merge(outcomes: dict[str, ChannelOutcome], name: str, outcome: ChannelOutcome) -> None:
    """A channel's outcome over several rows (recipients): the worst of them stands."""
    order = (DELIVERED, PENDING, HELD, QUEUED, RETRYING, DROPPED, NOT_STORED, FAILED)
    current = outcomes.get(name)
    if current is None or current.status == PENDING or order.index(outcome.status) > order.index(current.status):
        outcomes[name] = outcome


def _recipients(channel: Channel | None) -> list[str]:
    """A channel's recipients that get rows of their own (SMS numbers), or [""] for one row."""
    recipients = getattr(channel, "row_recipients", None)
    found = list(recipients()) if callable(recipients) else []
    return found or [""]


def _check_until(until: float | None, now: float) -> None:
    """A hold's end must be a time in range (a year at most ahead)."""
    if until is not None and not (now - MAX_DURATION <= until <= now + MAX_DURATION):
        raise ValueError(f"until must be within {MAX_DURATION // 86400:.0f} days from now")


def _accepts_argument(callback: Callable[..., None]) -> bool:
    """Whether a subscriber takes the active alerts as an argument (otherwise it is called with none)."""
    try:
        parameters = inspect.signature(callback).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) and p.default is p.empty
               for p in parameters)
