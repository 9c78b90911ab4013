"""Delivery that loses nothing: retryable failures wait in the durable outbox and are retried with backoff."""
from __future__ import annotations

import logging
import random
import threading
import time
from concurrent.futures import wait
from dataclasses import dataclass
from typing import Callable

from .delivery import Dispatcher, Outcome
from .display import duration
from .model import Alert
from .state import OutboxEntry, StateStore

log = logging.getLogger(__name__)

POLL_SECONDS = 5.0  # look for entries queued by another process at least this often
LEASE_MARGIN = 30.0
MAX_BATCH = 20  # alerts in one grouped message
HELD_PREFIX = "held while snoozed"
MUTED_PREFIX = "held while muted"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, capped, honouring Retry-After; give up after `expiry` seconds."""

    first: float = 5.0
    longest: float = 600.0
    expiry: float = 24 * 3600.0
    jitter: float = 0.25

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds to wait before try number `attempts + 1`."""
        base = min(self.longest, self.first * 2 ** max(0, attempts - 1))
        jittered = base * random.uniform(1 - self.jitter, 1 + self.jitter)
        return max(jittered, retry_after or 0.0)


class Outbox:
    """Queues failed deliveries in the state file and retries them in a background thread, per channel and
    event in order, until they succeed or expire."""

    def __init__(self, store: StateStore, dispatcher: Dispatcher, policy: RetryPolicy,
                 on_delivered: Callable[[OutboxEntry], None], on_dropped: Callable[[OutboxEntry], None]):
        self.store = store
        self.dispatcher = dispatcher
        self.policy = policy
        self._on_delivered = on_delivered
        self._on_dropped = on_dropped
        self._in_flight: set[int] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, alert: Alert, since: float, reasons: dict[str, Outcome | str], at: float | None = None) -> None:
        """Queue the alert for these channels, to go at `at` or after the first backoff (honouring the longest
        Retry-After given)."""
        now = time.time()
        retry_after = max((r.retry_after or 0.0 for r in reasons.values() if isinstance(r, Outcome)), default=0.0)
        details = {name: r.detail if isinstance(r, Outcome) else r for name, r in reasons.items()}
        due = at if at is not None else now + self.policy.delay(1, retry_after)
        self.store.add_to_outbox(alert, since, details, due, max(due, now) + self.policy.expiry)
        self._wake.set()

    def release_held(self, reason_prefix: str, event: str | None = None) -> None:
        """Send what a snooze (or one event's mute) held back, now."""
        self.store.release_held(reason_prefix, event)
        self._wake.set()

    def start(self) -> None:
        """Start retrying in a background thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="outbox", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 0.5) -> None:
        """Stop retrying; claims on entries still being sent are kept until they answer or run out."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_due()
                wake_at = self.store.next_outbox_time()
            except Exception:  # a locked or failing disk: log, wait, try again
                log.exception("outbox: retry pass failed")
                wake_at = None
            pause = POLL_SECONDS if wake_at is None else min(POLL_SECONDS, max(0.0, wake_at - time.time()))
            self._wake.wait(pause)
            self._wake.clear()

    def run_due(self) -> int:
        """Send every entry that is due now, side by side; returns how many were sent."""
        now = time.time()
        with self._lock:
            skip = set(self._in_flight)
        entries = self.store.lease_due(now, now + self.dispatcher.timeout + LEASE_MARGIN, skip)
        batches: dict[str, list[OutboxEntry]] = {}
        for entry in entries:
            if entry.expires_at <= now:
                waited = duration(now - entry.alert.at.timestamp())
                self._drop(entry, f"gave up after {entry.attempts} retries over {waited}: {entry.last_error}")
            elif entry.channel not in self.dispatcher.channels:
                self.store.reschedule_outbox(entry, now + self.policy.delay(entry.attempts + 1),
                                             "channel is not configured now")
            else:
                batches.setdefault(entry.channel, []).append(entry)
        futures = []
        for channel, batch in batches.items():
            with self._lock:
                self._in_flight.update(entry.id for entry in batch)
            # a channel that can send many alerts as one message (Slack, email) gets what piled up at once
            groups = ([batch[i:i + MAX_BATCH] for i in range(0, len(batch), MAX_BATCH)]
                      if hasattr(self.dispatcher.channels[channel], "send_many") else [[entry] for entry in batch])
            for group in groups:
                alerts = [entry.alert for entry in group]
                future = self.dispatcher.submit(channel, alerts if len(alerts) > 1 else alerts[0])
                future.add_done_callback(lambda done, group=group: [self._finish(entry, done.result())
                                                                    for entry in group])
                futures.append(future)
        wait(futures, timeout=self.dispatcher.timeout)
        return sum(len(batch) for batch in batches.values())

    def _finish(self, entry: OutboxEntry, outcome: Outcome) -> None:
        try:
            if outcome.ok:
                self._on_delivered(entry)
                self.store.finish_outbox(entry, True, f"delivered on retry {entry.attempts + 1}")
                log.info("%s: %s delivered to %s on retry %d", entry.alert.event, entry.alert.tag, entry.channel,
                         entry.attempts + 1)
            elif not outcome.retryable:
                self._drop(entry, f"not retried: {outcome.detail}")
            else:
                next_at = time.time() + self.policy.delay(entry.attempts + 1, outcome.retry_after)
                if next_at >= entry.expires_at:
                    self._drop(entry, f"gave up after {entry.attempts + 1} retries: {outcome.detail}")
                else:
                    self.store.reschedule_outbox(entry, next_at, outcome.detail)
        except Exception:
            log.exception("outbox: could not record a retry of %s to %s", entry.alert.event, entry.channel)
        finally:
            with self._lock:
                self._in_flight.discard(entry.id)
            self._wake.set()

    def _drop(self, entry: OutboxEntry, detail: str) -> None:
        self._on_dropped(entry)  # first, so the narrowed told set is committed with the removal
        dropped = self.store.finish_outbox(entry, False, detail, drop_recoveries=not entry.alert.resolved)
        log.warning("%s: %s to %s abandoned (%s)%s", entry.alert.event, entry.alert.tag, entry.channel, detail,
                    f"; {dropped} recovery dropped with it" if dropped else "")
