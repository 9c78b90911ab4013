"""Runs each monitor in its own thread on its own interval and turns readings into raise/clear with flap
control: `failures_before_alert` bad readings in a row raise, `successes_before_clear` good ones clear."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Protocol

from ..display import duration
from ..model import Level, context_arguments
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

    @property
    def message(self) -> str:
        return self.reading.message(self.label) if self.reading else f"{self.label}: not checked yet"


class MonitorRunner:
    """Background threads, one per monitor; a hung or failing check never holds up another."""

    def __init__(self, sink: AlertSink, specs: Iterable[MonitorSpec], on_change: Callable[[], None] | None = None):
        self.sink = sink
        self.specs = {spec.name: spec for spec in specs}
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
            self._wake[name].wait(spec.interval)
            self._wake[name].clear()

    def run_once(self, name: str) -> Reading:
        """Check one monitor now and raise, escalate or clear its event as the readings say."""
        spec = self.specs[name]
        reading = self.read(spec)
        with self._lock:
            before = self._status[name]
            bad = before.bad_streak + 1 if not reading.ok else 0
            good = before.good_streak + 1 if reading.ok else 0
            self._status[name] = replace(before, reading=reading, checked_at=time.time(), bad_streak=bad,
                                         good_streak=good)
        message = reading.message(spec.monitor.label)
        try:
            if reading.level is not None and bad >= spec.failures_before_alert:
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
