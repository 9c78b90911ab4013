"""Runs each monitor in its own thread on its own interval and turns readings into raise/clear with flap
control: `failures_before_alert` bad readings in a row raise, `successes_before_clear` good ones clear. In the
grace after a resume from sleep a bad reading is not judged: it neither raises nor counts toward
`failures_before_alert`, and the monitor checks again when the grace ends; a good reading still clears."""
from __future__ import annotations

import logging
import threading
import time  # real time only to bound threads (a check's safety net, joining at stop)
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Protocol

from ..clock import SYSTEM_CLOCK, Clock
from ..display import duration
from ..model import Level, context_arguments
from ..sleep import SleepTracker
from . import MonitorSpec
from .base import Reading

log = logging.getLogger(__name__)


class AlertSink(Protocol):
    """What the runner needs of the engine."""

    def raise_alert(self, event: str, level: Level | str, message: str, **context: object) -> dict[str, bool]: ...

    def clear_alert(self, event: str, message: str = "recovered", *, context: dict | None = None
                    ) -> dict[str, bool]: ...


@dataclass(frozen=True)
class MonitorStatus:
    """What a monitor saw last, for the tray's Monitors menu and `tray-alerts check`."""

    name: str
    type: str
    label: str
    reading: Reading | None
    checked_at: float | None
    bad_streak: int = 0
    good_streak: int = 0
    held_until: float | None = None  # a bad reading in the grace after a resume: judged from this wall time on

    @property
    def message(self) -> str:
        return self.reading.message(self.label) if self.reading else f"{self.label}: not checked yet"


class MonitorRunner:
    """Background threads, one per monitor; a hung or failing check never holds up another. Time comes from
    `clock`; `sleeps` knows of suspend and resume (without it, only clock jumps this runner sees, and no grace).
    Monitors that measure an age (heartbeat, file_age) are given it, to count that age in time awake."""

    def __init__(self, sink: AlertSink, specs: Iterable[MonitorSpec], on_change: Callable[[], None] | None = None,
                 *, clock: Clock = SYSTEM_CLOCK, sleeps: SleepTracker | None = None,
                 on_reading: Callable[[str, Reading, float], None] | None = None):
        self.sink = sink
        self.on_reading = on_reading  # every reading as it is taken (kept for charts and uptime)
        self.specs = {spec.name: spec for spec in specs}
        self.clock = clock
        self.sleeps = sleeps or SleepTracker(clock)
        for spec in self.specs.values():
            use_awake_time = getattr(spec.monitor, "use_awake_time", None)
            if use_awake_time is not None:
                use_awake_time(self.sleeps)
        self._status = {name: MonitorStatus(name, spec.monitor.type, spec.monitor.label, None, None)
                        for name, spec in self.specs.items()}
        self._hung: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = {name: threading.Event() for name in self.specs}
        self._threads: list[threading.Thread] = []
        self._on_change = on_change

    def start(self) -> None:
        """Start one thread per monitor; the first check runs at once."""
        for name in self.specs:
            thread = threading.Thread(target=self._loop, args=(name,), name=f"monitor-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 0.5) -> None:
        """Stop the loops (a check in progress is left to finish in its daemon thread)."""
        self._stop.set()
        for event in self._wake.values():
            event.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def check_now(self, name: str | None = None) -> None:
        """Ask one monitor (or all) to check at once instead of waiting for its interval."""
        for monitor_name, event in self._wake.items():
            if name is None or monitor_name == name:
                event.set()

    def statuses(self) -> list[MonitorStatus]:
        """The latest reading of every monitor, in settings order."""
        with self._lock:
            return list(self._status.values())

    def _loop(self, name: str) -> None:
        spec = self.specs[name]
        while not self._stop.is_set():
            self.run_once(name)
            self.clock.wait(self._wake[name], self.next_wait(name))
            self._wake[name].clear()

    def next_wait(self, name: str) -> float:
        """Seconds until the monitor's next check: its interval, or less when a bad reading waits for the end of
        the grace after a resume."""
        interval = self.specs[name].interval
        with self._lock:
            held_until = self._status[name].held_until
        if held_until is None:
            return interval
        return min(interval, max(0.0, held_until - self.clock.time()))

    def run_once(self, name: str) -> Reading:
        """Check one monitor now and raise, escalate or clear its event as the readings say."""
        spec = self.specs[name]
        self.sleeps.look()  # a resume the clock shows is known before an age is measured
        reading = self.read(spec)
        self.sleeps.look()
        held_until = self.sleeps.grace_end() if not reading.ok and self.sleeps.in_grace() else None
        checked_at = self.clock.time()
        with self._lock:
            before = self._status[name]
            bad = before.bad_streak if held_until is not None else before.bad_streak + 1 if not reading.ok else 0
            good = before.good_streak + 1 if reading.ok else 0
            self._status[name] = replace(before, reading=reading, checked_at=checked_at, bad_streak=bad,
                                         good_streak=good, held_until=held_until)
        message = reading.message(spec.monitor.label)
        if held_until is not None:
            log.info("monitor %s: not judged in the grace after a resume (%s): %s", name,
                     duration(self.sleeps.grace), message)
        try:
            if self.on_reading is not None:
                self.on_reading(name, reading, checked_at)
            if reading.level is not None and held_until is None and bad >= spec.failures_before_alert:
                # context keys may be anything (a plugin's perfdata labels): never raise_alert's own names
                self.sink.raise_alert(name, reading.level, message, **context_arguments(reading.context))
            elif reading.ok and good >= spec.successes_before_clear:
                self.sink.clear_alert(name, message, context=reading.context)
        except Exception:
            log.exception("monitor %s: could not pass its reading to the engine", name)
        if self._on_change is not None:
            self._on_change()
        return reading

    def read(self, spec: MonitorSpec) -> Reading:
        """Run the check in a thread of its own, bounded by the monitor's timeout; a check that raises or
        hangs is a bad reading at level error."""
        name = spec.name
        hung = self._hung.get(name)
        if hung is not None and hung.is_alive():
            return Reading(Level.ERROR, f"check failed: the previous check is still running after more than"
                                        f" {duration(spec.timeout)}")
        result: list[Reading] = []
        failure: list[BaseException] = []

        def target() -> None:
            try:
                result.append(spec.monitor.check())
            except Exception as error:
                failure.append(error)

        thread = threading.Thread(target=target, name=f"check-{name}", daemon=True)
        thread.start()
        thread.join(spec.timeout + 1.0)  # the check's own timeout first; this is the safety net
        if thread.is_alive():
            self._hung[name] = thread
            return Reading(Level.ERROR, f"check failed: no result within {duration(spec.timeout)}")
        self._hung.pop(name, None)
        if failure:
            error = failure[0]
            log.warning("monitor %s: check raised %s: %s", name, type(error).__name__, error)
            return Reading(Level.ERROR, f"check failed: {type(error).__name__}: {error}")
        return result[0]
