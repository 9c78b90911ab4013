"""Suspend and resume: the sleeps seen (from logind, or a wall-clock jump against the monotonic clock), and the
decisions on them: how much of an age was spent awake, and whether a resume is recent enough that monitors should
not judge yet. The decisions are pure functions; SleepTracker only keeps the sleeps for the threads that ask."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Protocol, Sequence

from .clock import Clock, JumpDetector
from .display import clock as clock_text, duration

KEEP_SLEEPS = 256  # sleeps remembered (weeks of a laptop's nights and lunch breaks); older ones count as awake
MIN_SLEEP = 2.0  # seconds: a shorter suspend (one logind aborted at once) is not noted


@dataclass(frozen=True)
class Sleep:
    """The machine slept from `start` to `end` (wall time); `exact`: logind said when; otherwise it is a clock
    jump's estimate, its length right but placed to end when the jump was noticed."""

    start: float
    end: float
    exact: bool = True

    @property
    def length(self) -> float:
        return self.end - self.start


def asleep_between(since: float, now: float, sleeps: Sequence[Sleep]) -> float:
    """Seconds of the sleeps that lie between `since` and `now`."""
    return sum(max(0.0, min(sleep.end, now) - max(sleep.start, since)) for sleep in sleeps)


def awake_age(since: float, now: float, sleeps: Sequence[Sleep]) -> float:
    """The age of a wall time `since` counted in time awake: `now - since` less the sleep after it (0 at least)."""
    return max(0.0, now - since - asleep_between(since, now, sleeps))


def grace_end(sleeps: Sequence[Sleep], grace: float) -> float | None:
    """When the grace after the last resume ends (None with no sleep or no grace)."""
    if grace <= 0 or not sleeps:
        return None
    return max(sleep.end for sleep in sleeps) + grace


def in_grace(now: float, sleeps: Sequence[Sleep], grace: float) -> bool:
    """Whether `now` is within `grace` seconds after the last resume (a clock set back before it is not)."""
    end = grace_end(sleeps, grace)
    return end is not None and end - grace <= now < end


def with_sleep(sleeps: Sequence[Sleep], new: Sleep, keep: int = KEEP_SLEEPS
               ) -> tuple[tuple[Sleep, ...], Sleep | None, Sleep | None]:
    """The sleeps with `new` noted, and (added, replaced): a report overlapping a sleep already noted is the same
    sleep (logind and the clock both saw it), so nothing is added; logind's exact times replace a clock jump's
    estimate, and an estimate adds nothing to a sleep known already. At most `keep` sleeps, newest kept."""
    for index, old in enumerate(sleeps):
        if new.start < old.end and old.start < new.end:
            if new.exact and not old.exact:
                return (*sleeps[:index], new, *sleeps[index + 1:]), None, old
            return tuple(sleeps), None, None
    added = tuple(sorted((*sleeps, new), key=lambda sleep: sleep.start))[-keep:]
    return added, new, None


def describe(sleep: Sleep) -> str:
    """`asleep 22:10–07:02 (8 h 52 min)`; with the dates when it lasted a day or more."""
    start, end = datetime.fromtimestamp(sleep.start).astimezone(), datetime.fromtimestamp(sleep.end).astimezone()
    long = sleep.length >= 86400
    first = clock_text(start, end if long else start, seconds=False)
    last = clock_text(end, start if long else end, seconds=False)
    return f"asleep {first}–{last} ({duration(sleep.length)})"


def of_it_awake(age: float, awake: float) -> str:
    """`, 5 min of it awake` after an age that includes sleep; empty when it does not."""
    return f", {duration(awake)} of it awake" if age - awake >= 1.0 else ""


class AwakeTime(Protocol):
    """What an age-based monitor asks: the wall time, and how long it has been awake since a wall time."""

    def now(self) -> float:
        """Wall-clock time, Unix seconds."""

    def awake_since(self, moment: float) -> float:
        """Seconds awake from the wall time `moment` to now (sleep after it left out)."""


class AlwaysAwake:
    """The awake time of a process that knows of no sleep (a one-shot `tray-alerts check`): plain wall-clock age."""

    def __init__(self, clock: Clock):
        self.clock = clock

    def now(self) -> float:
        return self.clock.time()

    def awake_since(self, moment: float) -> float:
        return max(0.0, self.clock.time() - moment)


class SleepTracker:
    """The sleeps this process has seen, fed by logind (`going_to_sleep`, `resumed`, from the D-Bus thread) and by
    `look` (a wall-clock jump, from any thread); the sleeps not yet written to the history wait to be taken
    (`take_unwritten`). `on_new` is told (outside the lock) when a sleep is noted: it must return at once."""

    def __init__(self, clock: Clock, grace: float = 0.0, on_new: Callable[[], None] | None = None,
                 keep: int = KEEP_SLEEPS):
        self.clock = clock
        self.grace = grace
        self.on_new = on_new
        self.keep = keep
        self._jumps = JumpDetector(clock)
        self._lock = threading.Lock()
        self._sleeps: tuple[Sleep, ...] = ()
        self._unwritten: list[Sleep] = []
        self._asleep_since: float | None = None

    def now(self) -> float:
        return self.clock.time()

    @property
    def asleep_since(self) -> float | None:
        """When logind said the machine is going to sleep, until it says it resumed."""
        with self._lock:
            return self._asleep_since

    def sleeps(self) -> tuple[Sleep, ...]:
        """The sleeps remembered, oldest first."""
        with self._lock:
            return self._sleeps

    def going_to_sleep(self) -> None:
        """logind's PrepareForSleep(true): the machine is about to sleep."""
        with self._lock:
            self._asleep_since = self.clock.time()

    def resumed(self) -> None:
        """logind's PrepareForSleep(false): the machine woke up; the sleep since going_to_sleep is noted."""
        with self._lock:
            start, self._asleep_since = self._asleep_since, None
        if start is not None:
            self._note(Sleep(start, self.clock.time(), exact=True))

    def look(self) -> None:
        """Note a forward wall-clock jump against the monotonic clock (which stands still in suspend) as a sleep
        that ended now; a backward jump (a clock set back) is taken and is no sleep."""
        with self._lock:
            jump = self._jumps.check()
        if jump > 0:
            now = self.clock.time()
            self._note(Sleep(now - jump, now, exact=False))

    def _note(self, sleep: Sleep) -> None:
        if sleep.length < MIN_SLEEP:
            return
        with self._lock:
            self._sleeps, added, replaced = with_sleep(self._sleeps, sleep, self.keep)
            if added is not None:
                self._unwritten.append(added)
            elif replaced is not None and replaced in self._unwritten:
                self._unwritten[self._unwritten.index(replaced)] = sleep
        if added is not None and self.on_new is not None:
            self.on_new()

    def take_unwritten(self) -> Sleep | None:
        """The oldest sleep noted and not yet taken for the history (None: none); give it back with
        `unwritten_again` if the history could not take it."""
        with self._lock:
            return self._unwritten.pop(0) if self._unwritten else None

    def unwritten_again(self, sleep: Sleep) -> None:
        """A sleep taken whose history line could not be written: the next take gives it again."""
        with self._lock:
            self._unwritten.insert(0, sleep)

    def awake_since(self, moment: float) -> float:
        return awake_age(moment, self.clock.time(), self.sleeps())

    def in_grace(self) -> bool:
        """Whether the last resume was less than the grace ago: monitors do not judge bad readings yet."""
        return in_grace(self.clock.time(), self.sleeps(), self.grace)

    def grace_end(self) -> float | None:
        """When the grace after the last resume ends (wall time; None when there is none)."""
        return grace_end(self.sleeps(), self.grace)
