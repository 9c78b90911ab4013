"""Memory's copy of the state file, for reads that never wait and for the debounce fast path: the firing events,
mutes and snooze as of the revision last seen, plus debounced repeats counted but not yet written. The file is
the truth: writes bring the copy up to date inside their transaction (`sync`), and the fast path looks at the
file's data version at least every FRESH_FOR seconds."""
from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping

from .lifecycle import ActiveEvent, Raise
from .model import Level, clean_context, clean_message
from .state import StateStore, Transaction

FRESH_FOR = 0.001  # how long a look at the file for other processes' writes holds for the debounce fast path
SEEN_FLUSH_DELAY = 1.0  # debounced repeats are counted in memory and written this often


@dataclass
class Repeats:
    """Debounced repeats of one episode not yet written, and the latest among them (kept unvalidated, which is
    cheaper: (level, message, context), made a Raise only if it must be replayed)."""

    episode: str
    count: int
    last_seen: float
    first_at: float
    request: Raise | tuple[Level, Any, dict] | None = None


class Mirror:
    """The engine's memory of the file; every method is safe from any thread and does no I/O under its lock."""

    def __init__(self, store: StateStore, mono: Callable[[], float],
                 elsewhere: Callable[[list[Raise], bool], None], first_repeat: Callable[[], None]):
        self.store = store
        self._mono = mono
        self._elsewhere = elsewhere  # (raises to replay, whether the firing set changed): another process wrote
        self._first_repeat = first_repeat  # repeats wait to be written: the background pass must plan for them
        self.lock = threading.Lock()
        self.active: dict[str, ActiveEvent] = {}
        self.mutes: dict[str, float] = {}
        self.snoozed_until: float | None = None
        self.repeats: dict[str, Repeats] = {}
        self.rev = -1
        self._version = store.data_version()
        self.checked_at = mono()
        self.adopt({record.event: record for record in store.load_active()}, store.load_mutes(),
                   store.meta("snoozed_until"), store.revision())

    # ---- the debounce fast path ----------------------------------------------------------------------------

    def count_repeat(self, event: str, record: ActiveEvent, level: Level, message: Any, context: dict,
                     now: float) -> int | None:
        """Count a repeat of `record` if it is still memory's state of the event; the repeat count, or None."""
        with self.lock:
            if self.active.get(event) is not record:
                return None
            repeats, first = self._repeats_of(event, record.episode, now)
            repeats.count += 1
            repeats.last_seen = now
            repeats.request = (level, message, context)
            seen = record.seen + repeats.count
        if first:
            self._first_repeat()
        return seen

    def _repeats_of(self, event: str, episode: str, now: float) -> tuple[Repeats, bool]:
        """The repeats counted for an episode (under the lock), and whether they are new."""
        repeats = self.repeats.get(event)
        if repeats is not None and repeats.episode == episode:
            return repeats, False
        repeats = self.repeats[event] = Repeats(episode, 0, now, now)
        return repeats, True

    def fresh(self) -> bool:
        """Whether memory may be trusted for a debounce: looked at the file within FRESH_FOR, or nothing new."""
        return self._mono() - self.checked_at <= FRESH_FOR or not self.maybe_changed()

    def maybe_changed(self) -> bool:
        """Whether another process may have written since memory was last brought up to date."""
        self.checked_at = self._mono()
        try:
            version = self.store.data_version()
            if version == self._version:
                return False
            if self.store.revision() == self.rev:
                self._version = version  # only this process's own writes
                return False
            self.store.settled()  # our own write may have committed before memory caught up with it
            if self.store.revision() == self.rev:
                self._version = version
                return False
        except Exception:  # a read that fails: take the slow path, which says why
            return True
        return True

    def note_repeat(self, request: Raise, episode: str, now: float) -> None:
        """A repeat decided inside a write (the slow path)."""
        with self.lock:
            repeats, first = self._repeats_of(request.event, episode, now)
            repeats.count += 1
            repeats.last_seen = now
            repeats.request = request
        if first:
            self._first_repeat()

    # ---- reading -------------------------------------------------------------------------------------------

    def current(self, event: str) -> ActiveEvent | None:
        """Memory's state of an event, with the repeats not yet written counted in."""
        return self.with_repeats(self.active.get(event))

    def with_repeats(self, record: ActiveEvent | None) -> ActiveEvent | None:
        """A stored state with the repeats of its episode not yet written counted in."""
        repeats = self.repeats.get(record.event) if record is not None else None
        if record is not None and repeats is not None and repeats.episode == record.episode:
            record = replace(record, seen=record.seen + repeats.count, last_seen=max(record.last_seen,
                                                                                   repeats.last_seen))
        return record

    def events(self) -> dict[str, ActiveEvent]:
        """Every firing event, repeats counted in."""
        with self.lock:
            return {event: self.with_repeats(record) for event, record in self.active.items()}  # type: ignore[misc]

    def mutes_now(self, now: float) -> dict[str, float]:
        with self.lock:
            return {event: until for event, until in self.mutes.items() if until > now}

    # ---- following the file --------------------------------------------------------------------------------

    def sync(self, tx: Transaction) -> None:
        """Inside a write: take in what other processes wrote since memory last looked."""
        if tx.revision() == self.rev:
            return
        changes = tx.changes_since(self.rev)
        if changes.events is None:
            stored: Mapping[str, ActiveEvent | None] = tx.events()
            gone = {event: None for event in self.active if event not in stored}
            self.adopt({**gone, **stored}, tx.mutes(), tx.meta("snoozed_until"), changes.rev)
        else:
            self.adopt(tx.events(changes.events), tx.mutes(), tx.meta("snoozed_until"), changes.rev,
                       changes.changed_at)

    def adopt(self, events: Mapping[str, ActiveEvent | None], mutes: dict[str, float], snoozed: Any,
              rev: int, changed_at: Mapping[str, float] | None = None) -> None:
        """Take the file's state of these events, mutes and snooze (`changed_at`: when each was changed)."""
        reraise: list[Raise] = []
        with self.lock:
            for event, record in events.items():
                repeats = self.repeats.get(event)
                if repeats is not None and (record is None or record.episode != repeats.episode):
                    del self.repeats[event]  # those repeats were of an episode another process ended: one
                    ended = (changed_at or {}).get(event)  # counted after that is a raise the file never saw
                    if repeats.request is not None and ended is not None and repeats.last_seen > ended:
                        reraise.append(_as_raise(event, repeats.request))
                if record is None:
                    self.active.pop(event, None)
                else:
                    self.active[event] = record
            self.mutes = dict(mutes)
            self.snoozed_until = float(snoozed) if snoozed else None
            self.rev = rev
        self._version = self.store.data_version()
        if events or reraise:
            self._elsewhere(reraise, bool(events))

    def follow(self, event: str, after: ActiveEvent | None, rev: int | None) -> None:
        """This process changed an event (after its commit): memory follows."""
        with self.lock:
            if after is not None:
                self.active[event] = after
            else:
                self.active.pop(event, None)
            self.repeats.pop(event, None)
            if rev is not None:
                self.rev = rev

    def follow_told(self, before: ActiveEvent, told: frozenset[str], rev: int | None) -> None:
        """This process narrowed an episode's told set (after its commit)."""
        with self.lock:
            if self.active.get(before.event) is before:
                self.active[before.event] = replace(before, told=told)
            if rev is not None:
                self.rev = rev

    def follow_holds(self, mutes: Mapping[str, float | None] | None, snoozed: float | None | bool,
                     rev: int | None) -> None:
        """This process changed mutes (event -> until, None: unmuted) or the snooze (False: unchanged)."""
        with self.lock:
            for event, until in (mutes or {}).items():
                if until is None:
                    self.mutes.pop(event, None)
                else:
                    self.mutes[event] = until
            if snoozed is not False:
                self.snoozed_until = snoozed  # type: ignore[assignment]
            if rev is not None:
                self.rev = rev

    def advance(self, rev: int | None) -> None:
        if rev is not None:
            self.rev = rev

    # ---- writing repeats -----------------------------------------------------------------------------------

    def due_repeats(self, now: float, everything: bool = False) -> dict[str, Repeats]:
        """The repeats to write now (counted SEEN_FLUSH_DELAY ago or more, or all)."""
        with self.lock:
            return {event: r for event, r in self.repeats.items() if everything or now - r.first_at >= SEEN_FLUSH_DELAY}

    def repeats_written(self, written: Mapping[str, Repeats]) -> None:
        """Those repeats are in the file: fold them into memory's stored state."""
        with self.lock:
            for event, repeats in written.items():
                record = self.active.get(event)
                if self.repeats.get(event) is repeats:
                    del self.repeats[event]
                if record is not None and record.episode == repeats.episode:
                    self.active[event] = replace(record, seen=record.seen + repeats.count,
                                                 last_seen=max(record.last_seen, repeats.last_seen))

    def next_flush(self) -> float | None:
        """When the oldest repeats not written are due to be."""
        with self.lock:
            times = [r.first_at for r in self.repeats.values()]
        return min(times) + SEEN_FLUSH_DELAY if times else None


def _as_raise(event: str, request: Raise | tuple[Level, Any, dict]) -> Raise:
    """A repeat kept for replay, as a Raise."""
    if isinstance(request, Raise):
        return request
    level, message, context = request
    return Raise(event, level, clean_message(message), clean_context(context))
