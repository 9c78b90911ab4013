"""The engine: build alert -> debounce against durable state -> route -> fan out -> record."""
from __future__ import annotations

import inspect
import logging
import sqlite3
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from .channels.base import Channel
from .delivery import Dispatcher, Outcome
from .display import clock
from .outbox import HELD_PREFIX, MUTED_PREFIX, Outbox, RetryPolicy
from .reminders import Reminder, ReminderPolicy
from .model import Alert, Level, check_event, clean_context, clean_message
from .paths import default_state_path
from .routing import Routing
from .storm import ChannelLimits, StormControl
from .state import ActiveEvent, ChannelHealth, HistoryEntry, OutboxEntry, StateStore, from_timestamp

log = logging.getLogger(__name__)

DEFAULT_DELIVERY_TIMEOUT = 10.0
SEEN_FLUSH_DELAY = 1.0
_RANK = {level: rank for rank, level in enumerate(Level)}
_LEVEL_LOOKUP: dict[Any, Level] = {level.value: level for level in Level}  # Level hashes as its value


class Engine:
    """Debounces, routes and fans out alerts; thread-safe; carries on from its state file after a restart."""

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
    ):
        self.channels: dict[str, Channel] = dict(channels)
        self.routing = Routing.coerce(routing)
        self.unavailable = dict(unavailable or {})
        self.state_path = Path(state_path) if state_path is not None else default_state_path()
        self._store = StateStore(self.state_path)
        self._dispatcher = Dispatcher(self.channels, delivery_timeout)
        self.outbox = Outbox(self._store, self._dispatcher, retry or RetryPolicy(), self._retry_delivered,
                             self._retry_dropped)
        self._lock = threading.Lock()
        self._event_locks: dict[str, threading.Lock] = {}
        self._active: dict[str, ActiveEvent] = {record.event: record for record in self._store.load_active()}
        self._dirty: dict[str, ActiveEvent] = {}
        self._flush_timer: threading.Timer | None = None
        self._subscribers: list[Callable[[], None]] = []
        self._skipped: set[str] = set()
        self.quiet_channels = frozenset(quiet_channels)  # never held by a snooze or mute (the log)
        self._snoozed_until: float | None = None
        self._mutes: dict[str, float] = self._store.load_mutes(time.time())
        self._reminded: dict[tuple[str, float], float] = {}
        self.storm = StormControl(limits or {}, self._send_summary)
        self._reminder = Reminder(self, reminders) if reminders else None
        self._closed = False
        if retry_in_background:
            self.outbox.start()
        if self._reminder is not None:
            self._reminder.start()
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

    # ---- raising -------------------------------------------------------------------------------------

    def raise_alert(self, event: str, level: Level | str, message: str, **context: Any) -> dict[str, bool]:
        """Fire (or escalate) the event; a repeat at the same or a lower level is counted and sends nothing."""
        try:
            new_level = _LEVEL_LOOKUP.get(level)
            record = self._active.get(event)
        except TypeError:  # unhashable level or event: the slow path explains what is wrong
            new_level = record = None
        if new_level is None:
            new_level = Level.parse(level)
        if record is not None and _RANK[record.level] >= _RANK[new_level] and self._count_repeat(event, record):
            return {}
        return self._fire(check_event(event), new_level, clean_message(message), clean_context(context))

    def _count_repeat(self, event: str, record: ActiveEvent) -> bool:
        """Count a debounced repeat if `record` is still the event's active record."""
        now = time.time()
        with self._lock:
            if self._active.get(event) is not record:
                return False
            record.seen += 1
            record.last_seen = now
            if not self._dirty:
                self._schedule_flush()
            self._dirty[event] = record
        return True

    def _fire(self, event: str, level: Level, message: str, context: dict) -> dict[str, bool]:
        with self._event_lock(event):
            with self._lock:
                current = self._active.get(event)
                if current is not None and _RANK[current.level] >= _RANK[level]:
                    debounced = True
                else:
                    debounced = False
                    now = time.time()
                    if current is None:
                        record, kind = ActiveEvent(event, level, message, context, now, now, 1, now), "fired"
                    else:
                        record = replace(current, level=level, message=message, context=context, at=now,
                                         seen=current.seen + 1, last_seen=now, told=set(current.told))
                        kind = "escalated"
                    names = self._route(self.routing.channels_for(event, level))
                    self._save(self._store.save_firing, record, kind, record.told | set(names))
                    self._active[event] = record
                    self._dirty.pop(event, None)
            if debounced:
                self._count_repeat(event, current)
                return {}
            log.info("%s %s at %s: %s", kind, event, level.value, message)
            self._notify()
            return self._deliver(record.alert(), names, record.since)

    # ---- clearing ------------------------------------------------------------------------------------

    def clear_alert(self, event: str, message: str = "recovered") -> dict[str, bool]:
        """Recover an active event: one resolved alert to every channel told of it; the event re-arms."""
        check_event(event)
        if event not in self._active:
            return {}
        message = clean_message(message)
        with self._event_lock(event):
            now = time.time()
            with self._lock:
                record = self._active.get(event)
                if record is None:
                    return {}
                self._save(self._store.save_clear, record, message, now)
                del self._active[event]
                self._dirty.pop(event, None)
            log.info("cleared %s (was %s): %s", event, record.level.value, message)
            self._notify()
            resolved = Alert(event, record.level, message, dict(record.context), from_timestamp(now), resolved=True,
                             firing_for=now - record.since)
            told = [name for name in sorted(record.told) if name in self.channels]
            return self._deliver(resolved, told, record.since)

    # ---- delivering ----------------------------------------------------------------------------------

    def _route(self, names: tuple[str, ...]) -> list[str]:
        """The routed channels that exist; each missing one is logged once, not treated as an error."""
        present = []
        for name in names:
            if name in self.channels:
                present.append(name)
            elif name not in self._skipped:
                self._skipped.add(name)
                reason = self.unavailable.get(name, "not configured")
                log.info("channel %s skipped: %s", name, reason)
        return present

    def _deliver(self, alert: Alert, names: list[str], since: float) -> dict[str, bool]:
        """Fan out; queue retryable failures (and channels still holding older deliveries for this event) in the
        outbox; record every result and which channels now know of the firing."""
        waiting = self._store.outbox_channels(alert.event).intersection(names) if names else set()
        outcomes: dict[str, Outcome] = {}
        pending: set[str] = set(waiting)  # will be delivered later: they count as told
        hold_until, hold_reason = self._hold(alert.event)
        direct = []
        for name in names:
            if name in waiting:
                outcomes[name] = Outcome(False, "queued behind an earlier delivery that is waiting to be retried")
            elif hold_until and name not in self.quiet_channels:
                outcomes[name] = Outcome(False, hold_reason)
                self.outbox.add(alert, since, {name: hold_reason}, at=hold_until)
                pending.add(name)
            else:
                decision = self.storm.decide(name, alert)
                if decision.action == "send":
                    direct.append(name)
                elif decision.action == "group":
                    outcomes[name] = Outcome(False, decision.reason)
                    self.outbox.add(alert, since, {name: decision.reason}, at=decision.until)
                    pending.add(name)
                else:
                    outcomes[name] = Outcome(False, decision.reason)
        if waiting:
            self.outbox.add(alert, since, {name: outcomes[name] for name in waiting})
        outcomes.update(self._dispatcher.deliver(alert, direct, lambda name, outcome: self._late(alert, since, name,
                                                                                                  outcome)))
        retry = {name: o for name, o in outcomes.items()
                 if name in direct and not o.ok and o.retryable and not o.running}
        if retry:
            self.outbox.add(alert, since, retry)
        told = self._mark_told(alert, since, {name for name, o in outcomes.items() if o.ok} | set(retry) | pending)
        for name in retry:
            outcomes[name] = replace(outcomes[name], detail=f"{outcomes[name].detail} — will retry")
        self._queue(alert, since, outcomes, told)
        for name, outcome in outcomes.items():
            if not outcome.ok:  # a real failure is a warning; a hold (snooze, mute, storm, queue) is routine
                log.log(logging.WARNING if name in direct else logging.DEBUG, "%s: %s not delivered to %s: %s",
                        alert.event, alert.tag, name, outcome.detail)
        return {name: outcomes[name].ok for name in names}

    def _mark_told(self, alert: Alert, since: float, names: set[str]) -> set[str] | None:
        """Add channels to the told set of the firing episode `since`; None if that episode is over."""
        if alert.resolved:
            return None
        with self._lock:
            current = self._active.get(alert.event)
            if current is None or current.since != since:
                return None
            current.told |= names
            return set(current.told)

    def _late(self, alert: Alert, since: float, name: str, outcome: Outcome) -> None:
        """A channel answered after the deadline: record it, and close the loop if the event recovered meanwhile."""
        late = replace(outcome, detail=f"answered late: {outcome.detail or 'delivered'}")
        retry = not outcome.ok and outcome.retryable
        if retry:
            self._save(self.outbox.add, alert, since, {name: outcome})
        told = self._mark_told(alert, since, {name} if outcome.ok or retry else set())
        self._queue(alert, since, {name: late}, told)
        if outcome.ok and not alert.resolved and told is None:
            recovery = Alert(alert.event, alert.level, "recovered", dict(alert.context), resolved=True)
            self._dispatcher.submit(name, recovery).add_done_callback(
                lambda done: self._queue(recovery, since, {name: done.result()}, None))

    def _retry_delivered(self, entry: OutboxEntry) -> None:
        """The outbox got a firing through: that channel now knows of the episode."""
        self._mark_told(entry.alert, entry.since, {entry.channel})

    def _retry_dropped(self, entry: OutboxEntry) -> None:
        """The outbox gave up on a firing: that channel never heard of it, so it gets no recovery either."""
        if entry.alert.resolved:
            return
        with self._lock:
            current = self._active.get(entry.alert.event)
            if current is None or current.since != entry.since:
                return
            current.told.discard(entry.channel)
            told = set(current.told)
        self._store.queue_deliveries(entry.alert, entry.since, {}, told)

    def _queue(self, alert: Alert, since: float, outcomes: Mapping[str, Outcome], told: set[str] | None) -> None:
        """Hand delivery results to the store, written with the next commit or within a second."""
        self._store.queue_deliveries(alert, since, {name: (o.ok, o.detail) for name, o in outcomes.items()}, told)
        with self._lock:
            self._schedule_flush()

    # ---- reading -------------------------------------------------------------------------------------

    def active(self) -> list[Alert]:
        """The active alerts, worst level first, then oldest first."""
        return [record.alert() for record in self.active_events()]

    def active_events(self) -> list[ActiveEvent]:
        """Snapshots of the active events with since, repeat count and channels told."""
        with self._lock:
            records = [replace(record, context=dict(record.context), told=set(record.told))
                       for record in self._active.values()]
        records.sort(key=lambda record: (-_RANK[record.level], record.since))
        return records

    def history(self, limit: int = 50, event: str | None = None) -> list[HistoryEntry]:
        """The newest history entries first."""
        self.flush()
        return self._store.history(limit, event)

    def delivery_details(self, event: str, results: Mapping[str, bool]) -> dict[str, str]:
        """What the history says of each channel's latest delivery for an event (why a failed one failed)."""
        details: dict[str, str] = {}
        for entry in self.history(limit=4 * len(results) + 10, event=event):
            if entry.channel in results and entry.channel not in details and entry.kind in ("delivery", "recovery"):
                details[entry.channel] = entry.detail
        return details

    # ---- snooze and mute ----------------------------------------------------------------------------------

    @property
    def snoozed_until(self) -> float | None:
        """While snoozed: when it ends (Unix time); else None."""
        until = self._snoozed_until
        return until if until is not None and until > time.time() else None

    def snooze(self, until: float | None, keep: Iterable[str] | None = None) -> None:
        """Hold deliveries to every channel but the quiet ones (the log; or `keep`) until `until`; None resumes
        and sends what was held. Alerts are still recorded and shown while snoozed."""
        self._snoozed_until = until
        if keep is not None:
            self.quiet_channels = frozenset(keep)
        if until is None:
            self.outbox.release_held(HELD_PREFIX)
        log.info("notifications %s", f"snoozed until {clock(from_timestamp(until))}" if until else "resumed")
        self._notify()

    def mute(self, event: str, until: float | None) -> None:
        """Hold one event's notifications until `until` (it stays active and shown); None unmutes and sends what
        was held."""
        check_event(event)
        with self._lock:
            if until is None:
                self._mutes.pop(event, None)
            else:
                self._mutes[event] = until
        self._save(self._store.save_mute, event, until)
        if until is None:
            self.outbox.release_held(MUTED_PREFIX, event)
        log.info("%s %s", event, f"muted until {clock(from_timestamp(until))}" if until else "unmuted")
        self._notify()

    def muted_until(self, event: str) -> float | None:
        """When an event's mute ends, if it is muted."""
        until = self._mutes.get(event)
        return until if until is not None and until > time.time() else None

    def mutes(self) -> dict[str, float]:
        """Every event muted now, with when its mute ends."""
        now = time.time()
        with self._lock:
            return {event: until for event, until in self._mutes.items() if until > now}

    def _hold(self, event: str) -> tuple[float | None, str]:
        """Until when (and why) deliveries for this event wait: the later of a snooze and the event's mute."""
        snoozed, muted = self.snoozed_until, self.muted_until(event)
        if not snoozed and not muted:
            return None, ""
        if (muted or 0) > (snoozed or 0):
            return muted, f"{MUTED_PREFIX} until {clock(from_timestamp(muted))}"  # type: ignore[arg-type]
        return snoozed, f"{HELD_PREFIX} until {clock(from_timestamp(snoozed))}"  # type: ignore[arg-type]

    # ---- reminders and storm summaries ----------------------------------------------------------------------

    def reminded_at(self, event: str, since: float) -> float:
        """When the firing episode `since` of an event was last reminded of (0: never)."""
        return self._reminded.get((event, since), 0.0)

    def remind(self, event: str) -> dict[str, bool]:
        """Send a reminder of an active event to the channels told of it, marked with how long it has fired."""
        with self._event_lock(event):
            record = self._active.get(event)
            if record is None:
                return {}
            now = time.time()
            self._reminded[(event, record.since)] = now
            reminder = Alert(event, record.level, record.message, dict(record.context), from_timestamp(now),
                             reminder=True, firing_for=now - record.since)
            self._store.queue_note(reminder, "reminded", reminder.note() or "")
            return self._deliver(reminder, [name for name in sorted(record.told) if name in self.channels],
                                 record.since)

    def _send_summary(self, name: str, summary: Alert) -> None:
        """Storm control's summary of what a cap held back, straight to that channel."""
        self._store.queue_note(summary, "summary", f"to {name}: {summary.message}")
        if not self._closed:
            self._dispatcher.submit(name, summary)

    def record_ping(self, name: str) -> None:
        """A heartbeat ping (from the push API or `tray-alerts ping`), kept in the state file."""
        check_event(name)
        self._store.record_ping(name, time.time())

    def last_ping(self, name: str) -> float | None:
        """When a heartbeat was last pinged."""
        return self._store.last_ping(name)

    def channel_health(self) -> dict[str, ChannelHealth]:
        """Per channel: its latest delivery result and how many deliveries wait to be retried."""
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

    # ---- state -------------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write pending repeat counters and delivery results now."""
        with self._lock:
            records, self._dirty = list(self._dirty.values()), {}
            if self._flush_timer is not None:
                self._flush_timer.cancel()
                self._flush_timer = None
        self._save(self._store.save_seen, records)

    def _schedule_flush(self) -> None:
        """Write counters and results a moment later, batched (called with the lock held)."""
        if self._flush_timer is None and not self._closed:
            self._flush_timer = threading.Timer(SEEN_FLUSH_DELAY, self.flush)
            self._flush_timer.daemon = True
            self._flush_timer.start()

    def _save(self, write: Callable[..., None], *args: Any) -> None:
        """Run a state write; a failing disk is logged, never allowed to stop an alert going out."""
        try:
            write(*args)
        except sqlite3.Error as error:
            log.error("could not write state to %s: %s", self.state_path, error)

    def _event_lock(self, event: str) -> threading.Lock:
        """The lock that keeps one event's firings and recoveries in order."""
        with self._lock:
            lock = self._event_locks.get(event)
            if lock is None:
                lock = self._event_locks[event] = threading.Lock()
            return lock

    def close(self) -> None:
        """Stop retrying, give deliveries in flight half a second to finish, close the channels and the state file."""
        if self._closed:
            return
        self.flush()
        self._closed = True
        if self._reminder is not None:
            self._reminder.stop()
        self.outbox.stop()
        busy = self._dispatcher.close()
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


def _accepts_argument(callback: Callable[..., None]) -> bool:
    """Whether a subscriber takes the active alerts as an argument (otherwise it is called with none)."""
    try:
        parameters = inspect.signature(callback).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) and p.default is p.empty
               for p in parameters)
