"""Concurrency: many threads raise, escalate and clear random events on one Engine at once.

Afterwards, per event and per channel, the notifications sent alternate firing (only strictly rising levels in
between) and recovery, with no duplicates; the engine's active set is exactly what each event's notifications say
(active iff the last one is a firing, at that level); a channel that only hears warning and above gets exactly the
part of that sequence it was routed (and a recovery only for an episode it was told of); and the state file agrees:
a fresh Engine sees the same active events, and the history holds one firing/escalation/clear and one delivery
result per notification.

The suite runs 8 threads × 1,000 calls on 200 events; bench/bench_reliability.py runs the full 8 × 10,000 with the
same functions (so this module imports nothing from pytest or conftest).
"""
from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

from tray_alerts import Alert, Engine, Level

THREADS, CALLS, EVENTS = 8, 1_000, 200
ALL, LOUD = "all", "loud"  # `all` hears every level; `loud` only warning and above
ROUTES = {Level.INFO: [ALL], Level.WARNING: [ALL, LOUD], Level.ERROR: [ALL, LOUD], Level.CRITICAL: [ALL, LOUD]}


class Recorder:
    """Keeps every alert it is sent, thread-safely."""

    def __init__(self, name: str):
        self.name = name
        self.sent: list[Alert] = []
        self._lock = threading.Lock()

    def send(self, alert: Alert) -> None:
        with self._lock:
            self.sent.append(alert)


def hammer(engine: Engine, threads: int, calls: int, events: int, seed: int) -> tuple[float, list[str]]:
    """`threads` threads each make `calls` random raise (random level) / clear calls on `events` events, started
    together; returns the seconds it took and any exception a call raised."""
    levels = list(Level)
    barrier = threading.Barrier(threads + 1)
    errors: list[str] = []

    def worker(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        barrier.wait()
        try:
            for call in range(calls):
                event = f"e{rng.randrange(events)}"
                if rng.random() < 0.3:
                    engine.clear_alert(event, f"fixed by {index}.{call}")
                else:
                    engine.raise_alert(event, rng.choice(levels), f"trouble from {index}.{call}", call=call)
        except Exception as error:  # a call that raises is a finding, not a crash of the harness
            errors.append(f"thread {index}: {type(error).__name__}: {error}")

    workers = [threading.Thread(target=worker, args=(i,), name=f"hammer-{i}") for i in range(threads)]
    for thread in workers:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in workers:
        thread.join()
    return time.perf_counter() - started, errors


def sequence_violations(channel: str, alerts: list[Alert], active: dict[str, Level]) -> list[str]:
    """Per event: firing, rising escalations, recovery at the last firing's level, …; no alert twice; the event is
    in `active` iff its last notification is a firing, at that level. Reminders (re-sends of the live firing) are
    allowed and skipped."""
    problems = []
    seen = Counter((a.event, a.resolved, getattr(a, "reminder", False), a.level, a.at) for a in alerts)
    problems += [f"{channel}: {event} {'recovery' if resolved else 'firing'} {level.value} at {at} sent {n} times"
                 for (event, resolved, _, level, at), n in seen.items() if n > 1]
    live: dict[str, Level] = {}
    for alert in alerts:
        firing = live.get(alert.event)
        if getattr(alert, "reminder", False):
            if firing != alert.level:
                problems.append(f"{channel}: {alert.event}: reminder at {alert.level.value} while firing at {firing}")
        elif alert.resolved:
            if firing is None or alert.level != firing:
                problems.append(f"{channel}: {alert.event}: recovery at {alert.level.value} while firing at {firing}")
            live.pop(alert.event, None)
        else:
            if firing is not None and alert.level <= firing:
                problems.append(f"{channel}: {alert.event}: firing at {alert.level.value} while already firing at"
                                f" {firing.value} (a repeat or a downgrade was sent)")
            live[alert.event] = alert.level
    for event in sorted(live.keys() | active.keys()):
        if live.get(event) != active.get(event):
            problems.append(f"{channel}: {event}: notifications say {live.get(event)}, the engine says active at"
                            f" {active.get(event)}")
    return problems


def routed_part(alerts: list[Alert], minimum: Level) -> list[tuple]:
    """What a channel routed only `minimum` and above must receive, given everything `all` received: those
    firings, and a recovery for each episode that had one of them (it was told)."""
    told: set[str] = set()
    expected = []
    for alert in alerts:
        if getattr(alert, "reminder", False):
            continue
        if alert.resolved:
            if alert.event in told:
                expected.append(_key(alert))
            told.discard(alert.event)
        elif alert.level >= minimum:
            expected.append(_key(alert))
            told.add(alert.event)
    return expected


def _key(alert: Alert) -> tuple:
    return alert.event, alert.resolved, alert.level, alert.at


def check_run(engine: Engine, channels: dict[str, Recorder]) -> list[str]:
    """Every invariant of a hammered engine that is still open (see the module docstring)."""
    active = {record.event: record.level for record in engine.active_events()}
    problems = sequence_violations(ALL, channels[ALL].sent, active)
    problems += sequence_violations(LOUD, channels[LOUD].sent,
                                    {event: level for event, level in active.items() if level >= Level.WARNING})
    for event in sorted({a.event for a in channels[ALL].sent}):
        expected = routed_part([a for a in channels[ALL].sent if a.event == event], Level.WARNING)
        got = [_key(a) for a in channels[LOUD].sent if a.event == event and not getattr(a, "reminder", False)]
        if got != expected:
            first = next((i for i, (g, e) in enumerate(zip(got, expected)) if g != e), min(len(got), len(expected)))
            problems.append(f"{LOUD}: {event}: received {len(got)} alerts, not the {len(expected)} it was routed"
                            f" (first difference at #{first})")
    return problems


def check_state(path: Path, before: dict[str, tuple], channels: dict[str, Recorder]) -> list[str]:
    """After close: a fresh Engine sees the same active events; the history has one line per change and one
    delivery result per notification."""
    problems = []
    with Engine({}, ROUTES, path, retry_in_background=False) as reopened:
        after = {r.event: (r.level, r.since, r.at, frozenset(r.told)) for r in reopened.active_events()}
    if after != before:
        problems.append(f"the state file holds other active events than the engine had: "
                        f"{sorted(set(after.items()) ^ set(before.items()))[:5]}")
    db = sqlite3.connect(path)
    try:
        history = Counter(db.execute("SELECT event, kind, channel FROM history").fetchall())
    finally:
        db.close()
    sent = {name: [a for a in recorder.sent if not getattr(a, "reminder", False)]
            for name, recorder in channels.items()}
    changes = Counter((a.event, "cleared" if a.resolved else "firing") for a in sent[ALL])
    for event in sorted({a.event for a in sent[ALL]}):
        fired = history[(event, "fired", None)] + history[(event, "escalated", None)]
        if fired != changes[(event, "firing")] or history[(event, "cleared", None)] != changes[(event, "cleared")]:
            problems.append(f"{event}: history has {fired} firings and {history[(event, 'cleared', None)]} clears,"
                            f" the channels saw {changes[(event, 'firing')]} and {changes[(event, 'cleared')]}")
        for name, alerts in sent.items():
            for kind, resolved in (("delivery", False), ("recovery", True)):
                want = sum(1 for a in alerts if a.event == event and a.resolved is resolved)
                if history[(event, kind, name)] != want:
                    problems.append(f"{event}: history has {history[(event, kind, name)]} {kind} results for"
                                    f" {name}, it was sent {want}")
    return problems


def run_concurrency(folder: Path, threads: int = THREADS, calls: int = CALLS, events: int = EVENTS,
                    seed: int = 7) -> tuple[int, float, list[str]]:
    """Hammer a fresh engine and check it; returns (calls made, seconds, violations)."""
    channels = {name: Recorder(name) for name in (ALL, LOUD)}
    path = folder / "state.db"
    engine = Engine(channels, ROUTES, path, delivery_timeout=60, retry_in_background=False)
    try:
        seconds, problems = hammer(engine, threads, calls, events, seed)
        problems += check_run(engine, channels)
        before = {r.event: (r.level, r.since, r.at, frozenset(r.told)) for r in engine.active_events()}
    finally:
        engine.close()
    problems += check_state(path, before, channels)
    return threads * calls, seconds, problems


def test_threads_hammering_random_events_keep_every_events_sequence_and_state_consistent(tmp_path):
    calls, _, problems = run_concurrency(tmp_path)
    assert calls == THREADS * CALLS
    assert problems == [], "\n".join(problems[:30])


def test_the_sequence_check_catches_a_duplicate_a_downgrade_and_a_stale_active_set():
    at = Alert("e", Level.ERROR, "m").at
    fired, lower = Alert("e", Level.ERROR, "m", at=at), Alert("e", Level.WARNING, "m")
    assert any("sent 2 times" in p for p in sequence_violations("c", [fired, fired], {"e": Level.ERROR}))
    assert any("downgrade" in p for p in sequence_violations("c", [fired, lower], {"e": Level.WARNING}))
    assert any("engine says" in p for p in sequence_violations("c", [fired], {}))
    resolved = Alert("e", Level.ERROR, "ok", resolved=True)
    assert sequence_violations("c", [fired, resolved], {}) == []
    assert routed_part([Alert("e", Level.INFO, "m", at=at), resolved], Level.WARNING) == []
