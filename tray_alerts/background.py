"""The engine's timed work, one pass at a time: changes kept while the file could not be written, debounced
repeat counts, clock jumps, reminders, the outbox's due rows, and upkeep (time awake, old history). Runs in one
background thread on the injected clock, or pass by pass from tests (`Engine.tick`)."""
from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from .display import duration
from .lifecycle import Remind, due_reminders
from .outbox import PERSON_HOLDS, RELATIVE_HOLDS
from .state import StoreFault, Transaction

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger(__name__)

POLL_SECONDS = 5.0  # look for rows other processes queued at least this often
REPLAY_SECONDS = 1.0  # while the state file cannot be written, try again this often
REMIND_LOOK_SECONDS = 1.0  # with reminders on, look for due ones this often
AWAKE_EVERY = 60.0  # how often the app notes it is awake (time not awake does not count toward expiry)
MAINTAIN_EVERY = 3600.0
HISTORY_KEEP_SECONDS = 90 * 24 * 3600
DONE_ROWS_KEEP_SECONDS = 7 * 24 * 3600


class Background:
    """One engine's passes; `start` runs them in a thread until `stop`."""

    def __init__(self, engine: Engine, upkeep: bool):
        self.engine = engine
        self.upkeep = upkeep  # the app's engine keeps the file tidy and counts time awake; one-shot ones do not
        self._jumps = engine.outbox.jumps
        engine.store.riders.insert(0, self.follow_clock_jump)  # before any other rider and the write itself
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_awake = 0.0
        self._last_maintenance = 0.0
        self._last_fault = ""

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        if self.upkeep:
            self.count_downtime()
        self._thread = threading.Thread(target=self._run, name="engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.engine.outbox.wake.set()
        if self._thread is not None:
            self._thread.join(2.0)

    def tick(self) -> None:
        """One pass over everything timed."""
        engine = self.engine
        engine.replay()
        now = engine.clock.time()
        try:
            self.note_clock_jump()
            engine.write_repeats(now)
            if engine.reminders:
                for event in due_reminders(engine.active_events(), now, engine.policy):
                    engine.submit(Remind(event), wait=0.0)
            engine.outbox.run_due()
            if self.upkeep:
                self.keep_tidy(now)
        except StoreFault as fault:
            if fault.reason != self._last_fault:
                log.error("background pass: %s", fault.reason)
            self._last_fault = fault.reason
        else:
            self._last_fault = ""

    def _run(self) -> None:
        engine = self.engine
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("engine: a background pass failed")
            if self._stop.is_set():
                break
            engine.clock.wait(engine.outbox.wake, self.pause())
            engine.outbox.wake.clear()

    def pause(self) -> float:
        """Seconds until the next pass has work (at most POLL_SECONDS)."""
        engine = self.engine
        now = engine.clock.time()
        times = [now + POLL_SECONDS]
        try:
            wake = engine.outbox.next_wake()
        except Exception:
            wake = None
        flush = engine.mirror.next_flush()
        times.extend(t for t in (wake, flush) if t is not None)
        if engine.deferral:
            times.append(now + REPLAY_SECONDS)
        if engine.reminders and engine.mirror.active:
            times.append(now + REMIND_LOOK_SECONDS)
        return max(0.0, min(times) - now)

    def follow_clock_jump(self, tx: Transaction) -> None:
        """First in every write (a rider): a wall-clock jump since the last write moves relative waits (retries,
        groups) with it; a backward one also moves mutes and the snooze, so that a ten-minute mute stays ten
        minutes. Forward (a machine waking up), a mute whose time has come ends. Rows and mutes written after
        the jump are on the new clock already, and are not moved."""
        jump = self._jumps.check()
        if not jump:
            return
        engine = self.engine
        now = engine.clock.time()
        moved = tx.shift(jump, RELATIVE_HOLDS + (PERSON_HOLDS if jump < 0 else ()))
        if jump < 0:
            mutes = {event: until + jump for event, until in tx.mutes().items()}
            for event, until in mutes.items():
                tx.put_mute(event, until, now)
            snoozed = tx.meta("snoozed_until")
            snoozed = float(snoozed) + jump if snoozed else None
            tx.set_meta("snoozed_until", snoozed, now)
            tx.after_commit.append(lambda: engine.mirror.follow_holds(mutes, snoozed, tx.new_revision))
        log.warning("the clock jumped %s %s; %d waiting notification(s) keep their waits",
                    "forward" if jump > 0 else "back", duration(abs(jump)), moved)

    def note_clock_jump(self) -> None:
        """With nothing else to write, write nothing but what a clock jump moves."""
        if self._jumps.peek():
            with self.engine.store.write():
                pass

    def count_downtime(self) -> None:
        """Time the app was not running does not count toward a delivery's expiry."""
        store = self.engine.store
        now = self.engine.clock.time()
        last = store.meta("awake_at")
        try:
            with store.write() as tx:
                if last is not None and now - float(last) > AWAKE_EVERY:
                    moved = tx.extend_expiry(now - float(last))
                    if moved:
                        log.info("tray-alerts was not running for %s; %d waiting notification(s) keep their"
                                 " retries", duration(now - float(last)), moved)
                tx.set_meta("awake_at", now, now, touch=False)
        except StoreFault as fault:
            log.error("could not note the start: %s", fault.reason)
        self._last_awake = now

    def keep_tidy(self, now: float) -> None:
        """Note that the app is awake; now and then, forget old history and done rows."""
        store = self.engine.store
        if now - self._last_awake >= AWAKE_EVERY or now < self._last_awake:
            with store.write() as tx:
                tx.set_meta("awake_at", now, now, touch=False)
            self._last_awake = now
        if now - self._last_maintenance >= MAINTAIN_EVERY:
            with store.write() as tx:
                tx.prune_history(now - HISTORY_KEEP_SECONDS)
                tx.prune_done(now - DONE_ROWS_KEEP_SECONDS)
            self._last_maintenance = now
