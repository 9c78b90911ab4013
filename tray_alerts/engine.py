"""The engine: a request -> the pure lifecycle decision -> one transaction (state change + one outbox row per
channel and recipient) -> the outbox sends the rows -> each answer is recorded. Memory mirrors the state file
for fast reads and debouncing; SQLite is the truth, and other processes' writes are noticed before deciding."""
from __future__ import annotations

import inspect
import logging
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from .channels.base import Channel
from .clock import SYSTEM_CLOCK, Clock, JumpDetector, SystemClock
from .delivery import Dispatcher
from .display import clock as clock_text, duration
from .lifecycle import (CLEARED, DEBOUNCED, ESCALATED, ESCALATION, FIRED, FIRING, NOT_ACTIVE, REMINDED, ActiveEvent,
                        Clear, Policy, Raise, Remind, Request, Transition, decide, due_reminders)
from .model import Level, check_event, clean_context, clean_message, from_timestamp
from .outbox import (PERSON_HOLDS, RELATIVE_HOLDS, RESULT_DELIVERED, RESULT_DROPPED, RESULT_FAILED,
                     RESULT_RETRYING, Outbox, RetryPolicy)
from .paths import default_state_path
from .pipeline import DROP, GROUP, HOLD, HOLD_MUTE, HOLD_SNOOZE, SEND, Conditions, Delivery
from .reminders import ReminderPolicy
from .results import (DELIVERED, DROPPED, FAILED, HELD, NOT_STORED, PENDING, QUEUED, RETRYING, ChannelOutcome,
                      Result)
from .routing import Routing
from .state import DROPPED as ROW_DROPPED, ChannelHealth, HistoryEntry, StateStore, StoreFault, Transaction
from .storm import ChannelLimits, GateState, StormControl
from .values import MAX_DURATION

log = logging.getLogger(__name__)

DEFAULT_DELIVERY_TIMEOUT = 10.0
SEEN_FLUSH_DELAY = 1.0  # debounced repeats are counted in memory and written this often
FRESH_FOR = 0.001  # how long a look at the file for other processes' writes holds for the debounce fast path
POLL_SECONDS = 5.0  # the background pass looks for rows other processes queued at least this often
REPLAY_SECONDS = 1.0  # while the state file cannot be written, try again this often
AWAKE_EVERY = 60.0  # how often the app notes it is awake (time not awake does not count toward expiry)
MAINTAIN_EVERY = 3600.0
HISTORY_KEEP_SECONDS = 90 * 24 * 3600
DONE_ROWS_KEEP_SECONDS = 7 * 24 * 3600
MAX_DEFERRED = 100_000
_RANK = {level: rank for rank, level in enumerate(Level)}
_LEVEL_LOOKUP: dict[Any, Level] = {level.value: level for level in Level}  # Level hashes as its value
_KIND_LINES = {FIRED: "fired", ESCALATED: "escalated", CLEARED: "cleared", REMINDED: "reminded"}
_NO_MUTES: dict[str, float] = {}
_NO_GATES: dict[str, GateState] = {}


@dataclass
class _Repeats:
    """Debounced repeats of one episode not yet written, and the latest request among them."""

    episode: str
    count: int
    last_seen: float
    request: Raise | tuple[Level, Any, dict] | None = None  # a repeat kept unvalidated (cheaper): (level, message,
    # context), made a Raise only if it must be replayed
    first_at: float = 0.0


@dataclass
class _Deferred:
    """A request the state file could not take; replayed in order when it can, at the time it was made."""

    request: Request
    at: float
    told_directly: frozenset[str] = frozenset()


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
        reminders: ReminderPolicy | None = None,
        clock: Clock | None = None,
    ):
        self.clock = clock or SYSTEM_CLOCK
        self.channels: dict[str, Channel] = dict(channels)
        self.routing = Routing.coerce(routing)
        self.unavailable = dict(unavailable or {})
        self.delivery_timeout = delivery_timeout
        self.state_path = Path(state_path) if state_path is not None else default_state_path()
        self.retry = retry or RetryPolicy()
        self.reminders = reminders or ReminderPolicy()
        self.quiet_channels = frozenset(quiet_channels)  # never held by a snooze or mute (the log)
        self._store = StateStore(self.state_path, self.clock)
        self._dispatcher = Dispatcher(self.channels, delivery_timeout)
        self.storm = StormControl(limits or {})
        self.outbox = Outbox(self._store, self._dispatcher, self.retry, self.clock, self._conditions, self.storm,
                             self._answered, self._never_told)
        self._policy = Policy(self._route, frozenset(self.channels), self.reminders.interval)
        self._lock = threading.Lock()  # guards the memory below; never held across I/O
        self._active: dict[str, ActiveEvent] = {}
        self._mutes: dict[str, float] = {}
        self._snoozed_until: float | None = None
        self._rev = -1
        self._repeats: dict[str, _Repeats] = {}
        self._deferred: deque[_Deferred] = deque()
        self._shadow: dict[str, ActiveEvent | None] = {}  # what the deferred requests did, shown meanwhile
        self._fault = ""
        self._waiters: dict[int, _Waiter] = {}
        self._subscribers: list[Callable[[], None]] = []
        self._skipped: set[str] = set()
        self._now, self._mono = (time.time, time.monotonic) if isinstance(self.clock, SystemClock) else \
            (self.clock.time, self.clock.monotonic)  # the system's straight, on the hot path
        self._version = self._store.data_version()
        self._checked_at = self._mono()
        self._jumps = JumpDetector(self.clock)
        self._reload(self._store.revision())
        self._stop = threading.Event()
        self._closed = False
        self._background = retry_in_background
        self._last_awake = 0.0
        self._last_maintenance = 0.0
        self._thread: threading.Thread | None = None
        try:
            self.outbox.recover()
            if retry_in_background:
                self._count_downtime()
        except StoreFault as fault:
            log.error("could not look at the outbox: %s", fault.reason)
        if retry_in_background:
            self._thread = threading.Thread(target=self._run, name="engine", daemon=True)
            self._thread.start()
        self._resume_channels()

    def _resume_channels(self) -> None:
        """Give channels that keep state of their own (Alertmanager's refresh) the firings they were told of."""
        for name, channel in self.channels.items():
            resume = getattr(channel, "resume", None)
            if resume is not None:
                try:
                    resume([record.alert() for record in self._active.values() if name in record.told])
                except Exception:
                    log.exception("channel %s could not resume", name)

    # ---- raising and clearing ------------------------------------------------------------------------------

    def raise_alert(self, event: str, level: Level | str, message: str, **context: Any) -> Result:
        """Fire (or escalate) the event; a repeat at the same or a lower level is counted and sends nothing.
        Waits up to the delivery timeout for the channels' answers."""
        try:
            new_level = _LEVEL_LOOKUP.get(level)
            record = self._active.get(event)
        except TypeError:  # unhashable level or event: the slow path explains what is wrong
            new_level = record = None
        if new_level is None:
            new_level = Level.parse(level)
        if (record is not None and _RANK[record.level] >= _RANK[new_level] and not self._deferred
                and (self._mono() - self._checked_at <= FRESH_FOR or not self._maybe_changed())):
            now = self._now()
            with self._lock:  # the debounce fast path: memory is current for this event; count the repeat
                if self._active.get(event) is record:
                    repeats = self._repeats.get(event)
                    if repeats is None or repeats.episode != record.episode:
                        repeats = self._repeats[event] = _Repeats(record.episode, 0, now, first_at=now)
                    repeats.count += 1
                    repeats.last_seen = now
                    repeats.request = (new_level, message, context)
                    seen = record.seen + repeats.count
                    muted = self._mutes.get(event) if self._mutes else None
                    return Result.debounced(event, record, seen, muted if muted and muted > now else None)
        return self.submit(Raise(check_event(event), new_level, clean_message(message), clean_context(context)))

    def clear_alert(self, event: str, message: str = "recovered", wait: float | None = None) -> Result:
        """Recover an active event: one resolved alert to every channel told of it; the event re-arms."""
        check_event(event)
        if event not in self._active and not self._deferred and not self._maybe_changed():
            return Result(NOT_ACTIVE, event)
        return self.submit(Clear(event, clean_message(message)), wait)

    def remind(self, event: str) -> Result:
        """Send a reminder of an active event, if one is due, to the channels told of it."""
        return self.submit(Remind(check_event(event)))

    def submit(self, request: Request, wait: float | None = None) -> Result:
        """Decide and store a request, then send what it causes; wait up to `wait` seconds (default: the delivery
        timeout) for the channels' answers (0: answer as soon as it is stored)."""
        wait = self.delivery_timeout if wait is None else wait
        if self._deferred:  # keep the order: this waits behind what the file could not take yet
            return self._defer(request, StoreFault(self._fault))
        try:
            transition, rows, outcomes = self._apply(request, self.clock.time())
        except StoreFault as fault:
            return self._defer(request, fault)
        return self._result(request, transition, rows, outcomes, wait)

    def _maybe_changed(self) -> bool:
        """Whether another process may have written since memory was last brought up to date."""
        self._checked_at = self._mono()
        try:
            version = self._store.data_version()
            if version == self._version:
                return False
            if self._store.revision() == self._rev:
                self._version = version  # only this process's own writes
                return False
        except Exception:  # a read that fails: take the slow path, which says why
            return True
        return True

    def _apply(self, request: Request, now: float, told_directly: frozenset[str] = frozenset(),
               wait: float | None = None) -> tuple[Transition, list[Delivery], dict]:
        """One transaction: catch up with other writers, decide, write the state and the rows it causes."""
        with self._store.write(wait) as tx:
            self._sync(tx)
            current = self._with_repeats(tx.event(request.event))  # the file's, as this write sees it
            transition = decide(current, request, now, self._policy, secrets.token_hex(8))
            rows: list[Delivery] = []
            outcomes: dict[str, ChannelOutcome] = {}
            if transition.changes_state:
                rows, outcomes, untold = self._create_rows(tx, transition, now, told_directly)
                if untold and transition.after is not None:  # storm control dropped a firing: that channel never
                    transition = replace(transition, after=replace(transition.after,  # heard of the episode
                                                                   told=transition.after.told - untold))
                self._write_state(tx, request, transition, now)
            tx.after_commit.append(lambda: self._committed(tx, request, transition, now))
        if transition.changes_state:
            log.info("%s %s at %s: %s", transition.kind, request.event,
                     (transition.after or transition.before).level.value,  # type: ignore[union-attr]
                     getattr(request, "message", ""))
        return transition, rows, outcomes

    def _current(self, event: str) -> ActiveEvent | None:
        """Memory's state of an event, with the repeats not yet written counted in."""
        return self._with_repeats(self._active.get(event))

    def _with_repeats(self, record: ActiveEvent | None) -> ActiveEvent | None:
        """A stored state with the repeats of its episode not yet written counted in."""
        repeats = self._repeats.get(record.event) if record is not None else None
        if record is not None and repeats is not None and repeats.episode == record.episode:
            record = replace(record, seen=record.seen + repeats.count, last_seen=max(record.last_seen,
                                                                                   repeats.last_seen))
        return record

    def _write_state(self, tx: Transaction, request: Request, transition: Transition, now: float) -> None:
        """The event's new state (repeats counted so far included) and its history line."""
        before, after = transition.before, transition.after
        if isinstance(request, Clear) and before is not None:
            tx.delete_event(before.event, now)
            tx.history(now, before.event, "cleared", before.level, request.message,
                       detail=f"active since {before.since:.3f}, seen {before.seen} times")
        elif isinstance(request, Remind) and after is not None:
            tx.put_event(after)
            note = transition.notices[0].alert.note() if transition.notices else None
            tx.history(now, after.event, "reminded", after.level, after.message, detail=note or "")
        elif after is not None:
            tx.put_event(after)
            tx.history(now, after.event, _KIND_LINES[transition.kind], after.level, after.message)

    def _create_rows(self, tx: Transaction, transition: Transition, now: float, told_directly: frozenset[str]
                     ) -> tuple[list[Delivery], dict[str, ChannelOutcome], set[str]]:
        """One row per notice (per recipient), each run through the stages as it is written; also returns the
        channels a dropped firing leaves untold."""
        event = (transition.after or transition.before).event  # type: ignore[union-attr]
        episode = (transition.after or transition.before).episode  # type: ignore[union-attr]
        pending = tx.pending_ids(event) if transition.notices else {}
        local = self.outbox.local_ids() if pending else set()
        blocked = self.outbox.blocked_keys() if pending else frozenset()
        ahead = frozenset(key for key, ids in pending.items() if not ids <= local or key in blocked)
        conditions = self._conditions(ahead)
        claimed: list[Delivery] = []
        outcomes: dict[str, ChannelOutcome] = {}
        untold: set[str] = set()
        lease_until = now + self.outbox.lease_seconds
        for notice in transition.notices:
            for recipient in _recipients(self.channels.get(notice.channel)):
                row = Delivery(0, notice.channel, event, episode, notice.kind, notice.alert, recipient,
                               not_before=now, expires_at=now + self.retry.expiry, created_at=now)
                if notice.channel in told_directly:
                    row = tx.insert(row, status="delivered")
                    tx.delivery_line(row, now, True, "delivered directly while the state file could not be written")
                    outcomes[notice.channel] = ChannelOutcome(DELIVERED, "directly, while the state file could not"
                                                                         " be written")
                    continue
                verdict = self.outbox.judge(row, conditions, now)
                if verdict.action == SEND:
                    row = tx.insert(row, lease_until=lease_until, owner=self.outbox.owner, in_flight=True)
                    claimed.append(row)
                    outcomes.setdefault(notice.channel, ChannelOutcome(PENDING))
                elif verdict.action == DROP:
                    row = tx.insert(row, status=ROW_DROPPED)
                    tx.delivery_line(row, now, False, verdict.reason)
                    outcomes[notice.channel] = ChannelOutcome(DROPPED, verdict.reason)
                    if notice.kind in (FIRING, ESCALATION) and not tx.knows(row):
                        untold.add(notice.channel)
                else:
                    if verdict.until is not None:
                        row = replace(row, not_before=verdict.until, hold=verdict.hold, last_error=verdict.reason)
                    row = tx.insert(row)
                    tx.delivery_line(row, now, False, verdict.reason)
                    status = HELD if verdict.action in (HOLD, GROUP) and verdict.until is not None else QUEUED
                    outcomes[notice.channel] = ChannelOutcome(status, verdict.reason)
                if notice.channel in self.storm.limits:  # its gate moved on
                    conditions = self._conditions(ahead)
        for row in claimed:
            self._waiters[row.id] = _Waiter()
        return claimed, outcomes, untold

    def _committed(self, tx: Transaction, request: Request, transition: Transition, now: float) -> None:
        """After the commit (still in order with other writes): memory follows the file."""
        if tx.new_revision is not None:
            self._rev = tx.new_revision
        event = request.event
        if transition.kind == DEBOUNCED and isinstance(request, Raise) and transition.after is not None:
            with self._lock:
                repeats = self._repeats.get(event)
                if repeats is None or repeats.episode != transition.after.episode:
                    repeats = self._repeats[event] = _Repeats(transition.after.episode, 0, now, first_at=now)
                repeats.count += 1
                repeats.last_seen = now
                repeats.request = request
            return
        if not transition.changes_state:
            return
        with self._lock:
            if transition.after is not None:
                self._active[event] = transition.after
            else:
                self._active.pop(event, None)
            self._repeats.pop(event, None)

    def _result(self, request: Request, transition: Transition, rows: list[Delivery],
                outcomes: dict[str, ChannelOutcome], wait: float) -> Result:
        """Send the claimed rows, wait for their answers up to `wait` seconds, and say how it went."""
        event = request.event
        if transition.changes_state:
            self._notify()
        self.outbox.send(rows)
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
        record, before = transition.after, transition.before
        shown = record or before
        return Result(transition.kind, event, outcomes, record, seen=shown.seen if shown else None,
                      since=shown.since if shown else None, level=shown.level.value if shown else None,
                      muted_until=self.muted_until(event))

    def _answered(self, row: Delivery, result: str, detail: str) -> None:
        """The outbox recorded a channel's answer for a row: wake whoever waits for it."""
        waiter = self._waiters.get(row.id)
        if waiter is not None:
            status = {RESULT_DELIVERED: DELIVERED, RESULT_FAILED: FAILED, RESULT_RETRYING: RETRYING,
                      RESULT_DROPPED: DROPPED}.get(result, FAILED)
            waiter.outcome = ChannelOutcome(status, detail)
            waiter.done.set()

    def _never_told(self, tx: Transaction, row: Delivery, now: float) -> None:
        """A firing that will not arrive: its channel no longer counts as told of the episode."""
        self._sync(tx)
        current = self._active.get(row.event)
        if current is None or current.episode != row.episode or row.channel not in current.told:
            return
        told = current.told - {row.channel}
        tx.set_told(row.event, row.episode, told, now)
        updated = replace(current, told=told)

        def follow() -> None:
            self._rev = tx.new_revision or self._rev
            with self._lock:
                if self._active.get(row.event) is current:
                    self._active[row.event] = updated

        tx.after_commit.append(follow)

    # ---- other processes -----------------------------------------------------------------------------------

    def _sync(self, tx: Transaction) -> None:
        """Inside a write: bring memory up to what other processes wrote since this engine last looked."""
        if tx.revision() == self._rev:
            return
        changes = tx.changes_since(self._rev)
        if changes.events is None:
            stored: Mapping[str, ActiveEvent | None] = tx.events()
            gone = {event: None for event in self._active if event not in stored}
            self._adopt({**gone, **stored}, tx.mutes(), tx.meta("snoozed_until"), changes.rev)
        else:
            self._adopt(tx.events(changes.events), tx.mutes(), tx.meta("snoozed_until"), changes.rev)

    def _reload(self, rev: int) -> None:
        """Everything from the file (at start)."""
        stored = {record.event: record for record in self._store.load_active()}
        self._adopt(stored, self._store.load_mutes(), self._store.meta("snoozed_until"), rev)

    def _adopt(self, events: Mapping[str, ActiveEvent | None], mutes: dict[str, float], snoozed: Any,
               rev: int) -> None:
        """Take the file's state of these events, mutes and snooze into memory."""
        reraise: list[Raise] = []
        with self._lock:
            for event, record in events.items():
                repeats = self._repeats.get(event)
                if repeats is not None and (record is None or record.episode != repeats.episode):
                    del self._repeats[event]  # those repeats were of an episode another process ended
                    if repeats.request is not None:
                        reraise.append(_as_raise(event, repeats.request))
                if record is None:
                    self._active.pop(event, None)
                else:
                    self._active[event] = record
            self._mutes = dict(mutes)
            self._snoozed_until = float(snoozed) if snoozed else None
            self._rev = rev
        self._version = self._store.data_version()
        if events:
            self._notify_later()
        for request in reraise:  # raised while another process was clearing it: it fires again, not lost
            threading.Thread(target=self.submit, args=(request, 0.0), daemon=True).start()

    # ---- the state file cannot be written ------------------------------------------------------------------

    def _defer(self, request: Request, fault: StoreFault) -> Result:
        """Keep a request for when the file can be written; meanwhile the channels that need no state hear of it."""
        if not self._fault:
            log.error("cannot write the state: %s — keeping changes in memory and telling the log and pop-ups"
                      " directly until it can be written", fault.reason)
        self._fault = fault.reason
        now = self.clock.time()
        current = self._shadow[request.event] if request.event in self._shadow else self._current(request.event)
        transition = decide(current, request, now, self._policy, secrets.token_hex(8))
        direct = [notice for notice in transition.notices if getattr(self.channels.get(notice.channel), "stateless",
                                                                     False)]
        answers = {}
        for notice in direct:
            answers.update(self._dispatcher.deliver(notice.alert, [notice.channel]))
        told = frozenset(name for name, outcome in answers.items() if outcome.ok)
        if len(self._deferred) >= MAX_DEFERRED:
            log.error("%d changes wait for the state file; this one is kept only in the log", len(self._deferred))
        else:
            self._deferred.append(_Deferred(request, now, told))
        with self._lock:
            self._shadow[request.event] = transition.after
        if transition.changes_state:
            self._notify()
        waiting = f"not stored yet ({fault.reason}); sent when the state file can be written"
        outcomes = {notice.channel: ChannelOutcome(NOT_STORED, waiting) for notice in transition.notices}
        for name, outcome in answers.items():
            outcomes[name] = ChannelOutcome(DELIVERED, "directly") if outcome.ok else \
                ChannelOutcome(FAILED, outcome.detail)
        return Result(transition.kind, request.event, outcomes, transition.after, stored=False, fault=fault.reason)

    def _replay(self) -> None:
        """Store the deferred requests, in order, as of when they were made."""
        replayed = 0
        while self._deferred:
            item = self._deferred[0]
            try:
                transition, rows, _ = self._apply(item.request, item.at, item.told_directly, wait=0.5)
            except StoreFault as fault:
                self._fault = fault.reason
                break
            self._deferred.popleft()
            replayed += 1
            self.outbox.send(rows)
            for row in rows:
                self._waiters.pop(row.id, None)
        if not self._deferred:
            with self._lock:
                self._shadow.clear()
            if replayed:
                log.warning("the state file can be written again; %d change(s) kept meanwhile are stored",
                            replayed)
            self._fault = ""
            self._notify()

    @property
    def fault(self) -> str:
        """Why the state file cannot be written now (empty when it can)."""
        return self._fault

    # ---- the background pass -------------------------------------------------------------------------------

    def tick(self) -> None:
        """Everything timed, once: deferred writes, repeat counts, reminders, the outbox, upkeep."""
        if self._deferred:
            self._replay()
        now = self.clock.time()
        try:
            self._follow_clock_jump()
            self._flush_repeats(now)
            if self.reminders:
                for event in due_reminders(self.active_events(), now, self._policy):
                    self.submit(Remind(event), wait=0.0)
            self.outbox.run_due()
            if self._background:
                self._upkeep(now)
        except StoreFault as fault:
            if fault.reason != self._fault:
                log.error("background pass: %s", fault.reason)
            self._fault = fault.reason

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("engine: a background pass failed")
            if self._stop.is_set():
                break
            self.clock.wait(self.outbox.wake, self._pause())
            self.outbox.wake.clear()

    def _pause(self) -> float:
        """Seconds until the next pass has work (at most POLL_SECONDS)."""
        now = self.clock.time()
        times = [now + POLL_SECONDS]
        try:
            wake = self.outbox.next_wake()
        except Exception:
            wake = None
        if wake is not None:
            times.append(wake)
        if self._repeats:
            times.append(min(r.first_at for r in list(self._repeats.values())) + SEEN_FLUSH_DELAY)
        if self._deferred:
            times.append(now + REPLAY_SECONDS)
        if self.reminders and self._active:
            times.append(now + min(1.0, POLL_SECONDS))
        return max(0.0, min(times) - now)

    def _follow_clock_jump(self) -> None:
        """A wall-clock jump moves relative waits (retries, groups) with it; a backward one also moves mutes and
        the snooze, so that a ten-minute mute stays ten minutes. Forward (a machine waking up), a mute whose time
        has come ends."""
        jump = self._jumps.check()
        if not jump:
            return
        now = self.clock.time()
        with self._store.write() as tx:
            self._sync(tx)
            moved = tx.shift(jump, RELATIVE_HOLDS + (PERSON_HOLDS if jump < 0 else ()))
            if jump < 0:
                mutes = {event: until + jump for event, until in tx.mutes().items()}
                for event, until in mutes.items():
                    tx.put_mute(event, until, now)
                snoozed = tx.meta("snoozed_until")
                tx.set_meta("snoozed_until", float(snoozed) + jump if snoozed else None, now)
                tx.after_commit.append(lambda: self._adopt({}, mutes, float(snoozed) + jump if snoozed else None,
                                                           tx.new_revision or self._rev))
        log.warning("the clock jumped %s %s; %d waiting notification(s) keep their waits",
                    "forward" if jump > 0 else "back", duration(abs(jump)), moved)

    def _flush_repeats(self, now: float, everything: bool = False) -> None:
        """Write the repeats counted in memory (those older than SEEN_FLUSH_DELAY, or all)."""
        with self._lock:
            due = {event: r for event, r in self._repeats.items()
                   if everything or now - r.first_at >= SEEN_FLUSH_DELAY}
        if not due:
            return
        with self._store.write() as tx:
            self._sync(tx)
            for event, repeats in due.items():
                tx.add_seen(event, repeats.episode, repeats.count, repeats.last_seen)

            def written() -> None:
                with self._lock:
                    for event, repeats in due.items():
                        record = self._active.get(event)
                        if self._repeats.get(event) is repeats:
                            del self._repeats[event]
                        if record is not None and record.episode == repeats.episode:
                            self._active[event] = replace(record, seen=record.seen + repeats.count,
                                                          last_seen=max(record.last_seen, repeats.last_seen))

            tx.after_commit.append(written)

    def flush(self) -> None:
        """Write the repeat counts kept in memory now."""
        self._flush_repeats(self.clock.time(), everything=True)

    def _count_downtime(self) -> None:
        """Time the app was not running does not count toward a delivery's expiry."""
        now = self.clock.time()
        last = self._store.meta("awake_at")
        with self._store.write() as tx:
            if last is not None and now - float(last) > AWAKE_EVERY:
                moved = tx.extend_expiry(now - float(last))
                if moved:
                    log.info("tray-alerts was not running for %s; %d waiting notification(s) keep their retries",
                             clock_text(from_timestamp(float(last))), moved)
            tx.set_meta("awake_at", now, now, touch=False)
        self._last_awake = now

    def _upkeep(self, now: float) -> None:
        """Note that the app is awake; now and then, forget old history and done rows."""
        if now - self._last_awake >= AWAKE_EVERY or now < self._last_awake:
            with self._store.write() as tx:
                tx.set_meta("awake_at", now, now, touch=False)
            self._last_awake = now
        if now - self._last_maintenance >= MAINTAIN_EVERY:
            with self._store.write() as tx:
                tx.prune_history(now - HISTORY_KEEP_SECONDS)
                tx.prune_done(now - DONE_ROWS_KEEP_SECONDS)
            self._last_maintenance = now

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
        with self._lock:
            mutes = dict(self._mutes) if self._mutes else _NO_MUTES
        gates = self.storm.gates() if self.storm.limits else _NO_GATES
        return Conditions(self._snoozed_until, mutes, self.quiet_channels, self.storm.limits, gates, ahead)

    # ---- reading -------------------------------------------------------------------------------------------

    def active(self) -> list:
        """The active alerts, worst level first, then oldest first."""
        return [record.alert() for record in self.active_events()]

    def active_events(self) -> list[ActiveEvent]:
        """Snapshots of the active events with since, repeat count and channels told."""
        with self._lock:
            records = {event: self._current(event) for event in self._active}
            records.update(self._shadow)
        found = [record for record in records.values() if record is not None]
        found.sort(key=lambda record: (-_RANK[record.level], record.since))
        return found

    def history(self, limit: int = 50, event: str | None = None) -> list[HistoryEntry]:
        """The newest history entries first (answers channels just gave included)."""
        self.outbox.write_answers()
        return self._store.history(limit, event)

    def pending(self) -> list[Delivery]:
        """The notifications not done yet."""
        self.outbox.write_answers()
        return self._store.pending()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait (real time) until this process sends nothing and no row is due, running the passes itself when
        there is no background thread; False if that takes longer than `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.outbox.local_ids():
                if not self._store.due_keys_waiting(self.clock.time()):
                    return True
                if self._thread is None:
                    self.tick()
            self.outbox.wake.set()
            time.sleep(0.01)
        return False

    # ---- snooze and mute -----------------------------------------------------------------------------------

    @property
    def snoozed_until(self) -> float | None:
        """While snoozed: when it ends (Unix time); else None."""
        until = self._snoozed_until
        return until if until is not None and until > self.clock.time() else None

    def snooze(self, until: float | None, keep: Iterable[str] | None = None) -> None:
        """Hold deliveries to every channel but the quiet ones (the log; or `keep`) until `until`; None resumes
        and sends what was held. Alerts are still recorded and shown while snoozed."""
        _check_until(until, self.clock.time())
        if keep is not None:
            self.quiet_channels = frozenset(keep)
        now = self.clock.time()
        with self._store.write() as tx:
            self._sync(tx)
            tx.set_meta("snoozed_until", until, now)
            if until is None:
                tx.release_holds(HOLD_SNOOZE, now)
            tx.after_commit.append(lambda: self._set_snooze(tx, until))
        log.info("notifications %s", f"snoozed until {clock_text(from_timestamp(until))}" if until else "resumed")
        self.outbox.wake.set()
        self._notify()

    def _set_snooze(self, tx: Transaction, until: float | None) -> None:
        self._snoozed_until = until
        self._rev = tx.new_revision or self._rev

    def mute(self, event: str, until: float | None) -> None:
        """Hold one event's notifications until `until` (it stays active and shown); None unmutes and sends what
        was held."""
        check_event(event)
        now = self.clock.time()
        _check_until(until, now)
        with self._store.write() as tx:
            self._sync(tx)
            tx.put_mute(event, until, now)
            if until is None:
                tx.release_holds(HOLD_MUTE, now, event)

            def follow() -> None:
                with self._lock:
                    if until is None:
                        self._mutes.pop(event, None)
                    else:
                        self._mutes[event] = until
                self._rev = tx.new_revision or self._rev

            tx.after_commit.append(follow)
        log.info("%s %s", event, f"muted until {clock_text(from_timestamp(until))}" if until else "unmuted")
        self.outbox.wake.set()
        self._notify()

    def muted_until(self, event: str) -> float | None:
        """When an event's mute ends, if it is muted."""
        until = self._mutes.get(event)
        return until if until is not None and until > self.clock.time() else None

    def mutes(self) -> dict[str, float]:
        """Every event muted now, with when its mute ends."""
        now = self.clock.time()
        with self._lock:
            return {event: until for event, until in self._mutes.items() if until > now}

    # ---- pings, health, subscribers ------------------------------------------------------------------------

    def record_ping(self, name: str) -> None:
        """A heartbeat ping (from the push API or `tray-alerts ping`), kept in the state file."""
        check_event(name)
        with self._store.write() as tx:
            tx.record_ping(name, self.clock.time())

    def last_ping(self, name: str) -> float | None:
        """When a heartbeat was last pinged."""
        return self._store.last_ping(name)

    def channel_health(self) -> dict[str, ChannelHealth]:
        """Per channel: its latest delivery result and how many of its notifications wait."""
        self.outbox.write_answers()
        return self._store.channel_health()

    def subscribe(self, callback: Callable[..., None]) -> Callable[[], None]:
        """Call `callback` after every change of the active set; returns a function that unsubscribes."""
        wants_alerts = _accepts_argument(callback)
        listener = (lambda: callback(self.active())) if wants_alerts else callback
        with self._lock:
            self._subscribers.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._subscribers:
                    self._subscribers.remove(listener)

        return unsubscribe

    def _notify(self) -> None:
        with self._lock:
            listeners = list(self._subscribers)
        for listener in listeners:
            try:
                listener()
            except Exception:
                log.exception("a subscriber failed")

    def _notify_later(self) -> None:
        """Tell subscribers outside the write in progress (another process changed the active set)."""
        if self._subscribers:
            threading.Thread(target=self._notify, daemon=True).start()

    # ---- closing -------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Write what memory holds, send pending storm summaries, give deliveries in flight half a second, close
        the channels and the state file; what is not done stays in the outbox for the next start."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self.outbox.wake.set()
        if self._thread is not None:
            self._thread.join(2.0)
        try:
            if self._deferred:
                self._replay()
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
        self._store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _as_raise(event: str, request: Raise | tuple[Level, Any, dict]) -> Raise:
    """A repeat kept for replay, as a Raise."""
    if isinstance(request, Raise):
        return request
    level, message, context = request
    return Raise(event, level, clean_message(message), clean_context(context))


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
