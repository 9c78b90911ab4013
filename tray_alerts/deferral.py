"""While the state file cannot be written (disk full, locked by another process, read-only): changes are kept in
memory in order, the channels that need no state (log, pop-ups) hear of them at once, and they are stored — and
the other channels told, once — as soon as the file can be written again."""
from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable

from .lifecycle import ActiveEvent, Request, Transition

log = logging.getLogger(__name__)

MAX_DEFERRED = 100_000  # changes kept for the file at most; beyond, only the log and pop-ups have them


@dataclass(frozen=True)
class Deferred:
    """A request the file could not take; replayed at the time it was made, with the channels already told."""

    request: Request
    at: float
    told_directly: frozenset[str] = frozenset()


class Deferral:
    """The requests waiting for the file, and what they did meanwhile (shown in the tray and status)."""

    def __init__(self) -> None:
        self._queue: deque[Deferred] = deque()
        self._shadow: dict[str, ActiveEvent | None] = {}
        self._lock = threading.Lock()
        self._replaying = threading.Lock()
        self.fault = ""

    def __bool__(self) -> bool:
        return bool(self._queue)

    def state_of(self, event: str, stored: Callable[[str], ActiveEvent | None]) -> ActiveEvent | None:
        """An event's state with the deferred requests applied (else as `stored` has it)."""
        with self._lock:
            if event in self._shadow:
                return self._shadow[event]
        return stored(event)

    def touches(self, event: str) -> bool:
        """Whether a kept request concerns this event (its state here is not the file's)."""
        with self._lock:
            return event in self._shadow

    def shadow(self) -> dict[str, ActiveEvent | None]:
        """The events the deferred requests changed, as they stand."""
        with self._lock:
            return dict(self._shadow)

    def keep(self, item: Deferred, transition: Transition, reason: str) -> bool:
        """Keep a request (and what it did); False if too many already wait."""
        if not self.fault:
            log.error("cannot write the state: %s — keeping changes in memory and telling the log and pop-ups"
                      " directly until it can be written", reason)
        self.fault = reason
        with self._lock:
            self._shadow[item.request.event] = transition.after
            if len(self._queue) >= MAX_DEFERRED:
                log.error("%d changes wait for the state file; this one is kept only in the log", len(self._queue))
                return False
            self._queue.append(item)
            return True

    def replay(self, store: Callable[[Deferred], None], is_fault: type[Exception]) -> int:
        """Store the kept requests in order with `store` until one fails with `is_fault`; returns how many
        (0 as well when another thread is replaying them now)."""
        if not self._replaying.acquire(blocking=False):
            return 0
        try:
            return self._replay(store, is_fault)
        finally:
            self._replaying.release()

    def _replay(self, store: Callable[[Deferred], None], is_fault: type[Exception]) -> int:
        replayed = 0
        while True:
            with self._lock:
                if not self._queue:
                    break
                item = self._queue[0]
            try:
                store(item)
            except is_fault as fault:
                self.fault = getattr(fault, "reason", str(fault))
                return replayed
            with self._lock:
                self._queue.popleft()
            replayed += 1
        with self._lock:
            self._shadow.clear()
        if replayed:
            log.warning("the state file can be written again; %d change(s) kept meanwhile are stored", replayed)
        self.fault = ""
        return replayed
