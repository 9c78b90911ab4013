"""The one clock every part is given: wall time for what people see and store, monotonic time for waits, and
a fake for tests that moves only when told (and can jump, like a laptop waking after a weekend)."""
from __future__ import annotations

import threading
import time
from typing import Protocol

JUMP_TOLERANCE = 2.0  # seconds the wall clock may drift from the monotonic one between two looks before it is a jump


class Clock(Protocol):
    """Where time comes from."""

    def time(self) -> float:
        """Wall-clock time, Unix seconds (stored, shown, compared with times other processes wrote)."""

    def monotonic(self) -> float:
        """Seconds that only move forward and stand still while the machine sleeps (waits, backoff)."""

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Wait until `event` is set or `seconds` of this clock's time pass; True if the event was set."""


class SystemClock:
    """The machine's clocks."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return event.wait(max(0.0, seconds))


SYSTEM_CLOCK = SystemClock()


class FakeClock:
    """A clock for tests: `advance` moves both times, `jump` moves the wall clock alone; waiters wake when
    their time has come (or their event is set), never because real time passed."""

    def __init__(self, start: float = 1_780_000_000.0):
        self._wall = start
        self._mono = 1000.0
        self._changed = threading.Condition()

    def time(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass on both clocks."""
        with self._changed:
            self._wall += seconds
            self._mono += seconds
            self._changed.notify_all()

    def jump(self, seconds: float) -> None:
        """Move the wall clock alone (suspend and resume forward, a clock set back backward)."""
        with self._changed:
            self._wall += seconds
            self._changed.notify_all()

    def wait(self, event: threading.Event, seconds: float) -> bool:
        deadline = self._mono + max(0.0, seconds)
        with self._changed:
            while not event.is_set() and self._mono < deadline:
                # a short real-time poll on the event too: whoever sets it does not know this condition
                self._changed.wait(0.01)
        return event.is_set()


class JumpDetector:
    """Notices the wall clock moving apart from the monotonic one (suspend, resume, a clock set by hand)."""

    def __init__(self, clock: Clock, tolerance: float = JUMP_TOLERANCE):
        self.clock = clock
        self.tolerance = tolerance
        self._offset = clock.time() - clock.monotonic()

    @property
    def offset(self) -> float:
        """Wall minus monotonic time as of the last jump taken: times taken before and after a jump differ by
        the change of this."""
        return self._offset

    def peek(self) -> float:
        """Seconds the wall clock jumped since the last check (positive: forward), or 0.0; not taken."""
        jump = self.clock.time() - self.clock.monotonic() - self._offset
        return jump if abs(jump) > self.tolerance else 0.0

    def check(self) -> float:
        """Like peek, and the jump is taken: the next check measures from here."""
        jump = self.peek()
        if jump:
            self._offset += jump
        return jump
