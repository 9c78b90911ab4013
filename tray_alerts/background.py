"""The engine's timed work, one pass at a time: changes kept while the file could not be written, debounced
repeat counts, clock jumps, reminders, the outbox's due rows, and upkeep (time awake; history kept to its age and
row cap, done rows and ended mutes forgotten, the file shrunk by incremental vacuum). Runs in one
background thread on the injected clock, or pass by pass from tests (`Engine.tick`)."""
from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Callable

from . import readings
from .display import duration
from .lifecycle import Remind, due_reminders
from .outbox import PERSON_HOLDS, RELATIVE_HOLDS
from .state import StateStore, StoreFault, Transaction

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger(__name__)

POLL_SECONDS = 5.0  # look for rows other processes queued at least this often
REPLAY_SECONDS = 1.0  # while the state file cannot be written, try again this often
REMIND_LOOK_SECONDS = 1.0  # with reminders on, look for due ones this often
AWAKE_EVERY = 60.0  # how often the app notes it is awake (time not awake does not count toward expiry)
MAINTAIN_EVERY = 600.0  # how often history is pruned (by age and row cap), done rows forgotten, the file shrunk
PRUNE_WRITES = 20  # pruning writes in one pass (PRUNE_BATCH ids each); more waits for the next pass
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
        self._last_maintenance: float | None = None
        self._pruning = False  # a pruning pass left work for the next pass
        self._last_fault = ""
        self.lookouts: list[Callable[[], None]] = []  # the app's own timed looks (a resume from sleep), each pass

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
            for look in self.lookouts:
                look()
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
        """Note that the app is awake and forget what this process keeps in memory for nothing; now and then (at
        start, then every MAINTAIN_EVERY), keep the file small."""
        store = self.engine.store
        if now - self._last_awake >= AWAKE_EVERY or now < self._last_awake:
            with store.write() as tx:
                tx.set_meta("awake_at", now, now, touch=False)
                self.engine.outbox.forget_idle_keys(tx)
            self._last_awake = now
        last = self._last_maintenance
        if self._pruning or last is None or not 0 <= now - last < MAINTAIN_EVERY:
            self._last_maintenance, self._pruning = now, False  # a pass that fails (locked, disk full) is tried
            self._pruning = self.maintain(now, PRUNE_WRITES)  # again MAINTAIN_EVERY later

    def maintain(self, now: float | None = None, writes: int | None = None) -> bool:
        """Prune history to the engine's age and row cap, downsample old readings (forgetting them with the history),
        forget done outbox rows and ended mutes, give free pages back to the file system: in short writes, at most
        `writes` per table; True if there is more to do."""
        engine = self.engine
        now = engine.clock.time() if now is None else now
        store: StateStore = engine.store
        pruned, more = store.prune_history(now - engine.history_max_age, engine.history_max_rows, writes=writes)
        done, more_done = store.prune_done(now - DONE_ROWS_KEEP_SECONDS, writes=writes)
        readings.downsample(store, now, readings.Retention(keep=engine.history_max_age))
        self.forget_mutes(now)
        pages, more_pages = (0, False) if more or more_done else store.vacuum(writes=writes)
        if pruned or done or pages:
            log.info("state file kept small: %d history line(s) and %d done notification(s) forgotten, %d page(s)"
                     " given back to the file system", pruned, done, pages)
        return more or more_done or more_pages

    def forget_mutes(self, now: float) -> None:
        """Mutes that have ended are forgotten (the file and memory keep one per event muted otherwise)."""
        store = self.engine.store
        if not store.expired_mutes(now):
            return
        with store.write() as tx:
            engine = self.engine
            engine.mirror.sync(tx)
            ended = {event: None for event, until in tx.mutes().items() if until <= now}
            for event in ended:
                tx.put_mute(event, None, now)
            tx.after_commit.append(lambda: engine.mirror.follow_holds(ended, False, tx.new_revision))
