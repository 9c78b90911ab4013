"""Crash safety: a child process runs an Engine flat out on a state file — raising, escalating and clearing ~30
events, delivering to a channel that journals every alert (write + fsync) — and is SIGKILLed at a random moment,
again and again, on the same state file.

After every kill:
  * the state file opens: `PRAGMA integrity_check` is ok and nothing was moved aside as damaged;
  * nothing is half-written: every active row parses and its firing (and its episode's first firing) is in the
    history; every outbox row's alert parses and its firing or clear is in the history;
  * a fresh Engine sees exactly the active events the file held before it was opened (read with sqlite3);
  * raising any of those events again (same or lower level) is debounced: the debounce state survived the kill;
  * what the journal says was delivered agrees with the state, except for the one operation in flight at the kill
    (the state change is committed before delivery; a kill in between loses that one delivery — counted as
    `lost_in_flight`, see the report).
Across all runs: no alert is delivered twice to the journaling channel, and per event its deliveries alternate
firing (only rising levels in between) and recovery.

A second, flaky channel (fails ~30% of sends, retryably) keeps the outbox busy so that kills also land in the
middle of retries. Its duplicates are counted, not forbidden: an outbox retry that got through just before a kill
is sent again once its claim runs out (at-least-once).

`run_kill_campaign` is shared with bench/bench_reliability.py: it collects violations instead of asserting and
imports nothing from pytest or conftest.
"""
from __future__ import annotations

import json
import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tray_alerts import Alert, Engine, Level
from tray_alerts.state import StateError, from_timestamp

KILLS = int(os.environ.get("TRAY_ALERTS_CRASH_KILLS", "50"))
SEED = int(os.environ.get("TRAY_ALERTS_CRASH_SEED", "20240517"))
EVENTS = 30
KILL_DELAY = (0.020, 0.200)  # seconds after the child says it is running
READY_TIMEOUT = 60.0  # generous: only a wedged child takes this long to open its state file
STRICT = "journal"  # never fails: every alert it is sent must arrive exactly once
FLAKY = "flaky"  # fails ~30% of sends, retryably: exercises the outbox across kills
CHANNELS = (STRICT, FLAKY)
RANK = {level.value: rank for rank, level in enumerate(Level)}

CHILD = r'''
import logging, os, random, sys, threading

from tray_alerts import DeliveryError, Engine, Level
from tray_alerts.outbox import RetryPolicy

logging.disable(logging.WARNING)  # the flaky channel's warnings would only fill stderr; errors still show
state_path, journal_path, seed, events = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
fd = os.open(journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
lock = threading.Lock()


def write(fields, sync):
    data = ("\t".join(fields) + "\n").encode()
    with lock:
        os.write(fd, data)
        if sync:
            os.fsync(fd)


class JournalChannel:
    """One line per delivery, on disk before send() returns; optionally fails (retryably) some of the time."""

    def __init__(self, name, fail_rate=0.0):
        self.name, self.fail_rate = name, fail_rate
        self.rng = random.Random(f"{seed}-{name}")

    def send(self, alert):
        if self.fail_rate and self.rng.random() < self.fail_rate:
            raise DeliveryError(f"{self.name}: not now")
        kind = "resolved" if alert.resolved else "reminder" if getattr(alert, "reminder", False) else "fired"
        write(["sent", self.name, alert.event, kind, alert.level.value, alert.at.isoformat()], sync=True)


channels = {"journal": JournalChannel("journal"), "flaky": JournalChannel("flaky", 0.3)}
engine = Engine(channels, {level: list(channels) for level in Level}, state_path, delivery_timeout=60,
                retry=RetryPolicy(first=0.01, longest=0.05, expiry=3600))
print("ready", flush=True)
rng = random.Random(seed)
levels = list(Level)
n = 0
while True:
    n += 1
    event = f"ev{rng.randrange(events)}"
    if rng.random() < 0.35:
        write(["op", event, "clear", "-"], sync=False)
        engine.clear_alert(event, f"fixed #{n}")
    else:
        level = rng.choice(levels)
        write(["op", event, "raise", level.value], sync=False)
        engine.raise_alert(event, level, f"trouble #{n}", n=n)
'''


@dataclass
class Campaign:
    """What a series of kills showed."""

    kills: int = 0
    clean_restarts: int = 0  # the file opened, passed every check, and a fresh Engine could be built on it
    active_kept: int = 0  # restarts where the fresh Engine's active set equalled the file's
    active_before: int = 0  # active events in the file at the kills, summed
    active_after: int = 0  # of those, seen active (same level, since, at, told) by the fresh Engine
    debounced: int = 0  # re-raises of those events that were debounced after the restart
    ops: int = 0  # operations the children started
    deliveries: int = 0  # journal lines of the strict channel
    duplicates: int = 0  # strict channel: alerts delivered more than once (must be 0)
    retry_duplicates: int = 0  # flaky channel: alerts sent again by the outbox after a kill (at-least-once)
    lost_in_flight: int = 0  # kills that fell between a committed state change and its delivery
    seconds: float = 0.0
    violations: list[str] = field(default_factory=list)


def run_kill_campaign(folder: Path, kills: int = KILLS, seed: int = SEED, events: int = EVENTS,
                      delay: tuple[float, float] = KILL_DELAY) -> Campaign:
    """Start a child on `folder`/state.db `kills` times, SIGKILL it after a random delay, check everything."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "crash_child.py"
    script.write_text(CHILD)
    state_path = folder / "state.db"
    rng = random.Random(seed)
    result = Campaign()
    model: dict[str, tuple[str, str]] = {}  # strict channel's view: event -> (level, at) of the live firing
    sent: Counter = Counter()
    started = time.monotonic()
    for run in range(kills):
        journal = folder / f"journal-{run:03d}.log"
        with open(folder / f"child-{run:03d}.err", "wb") as err:
            process = subprocess.Popen([sys.executable, str(script), str(state_path), str(journal),
                                        str(seed * 1000 + run), str(events)],
                                       stdout=subprocess.PIPE, stderr=err, cwd=folder)
        try:
            ready = _wait_ready(process)
            if ready:
                time.sleep(rng.uniform(*delay))
            process.send_signal(signal.SIGKILL)
            process.wait(30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stdout.close()
        tag = f"run {run} (seed {seed})"
        if not ready or process.returncode != -signal.SIGKILL:
            result.violations.append(f"{tag}: the child did not start or died by itself (exit {process.returncode}):"
                                     f" {(folder / f'child-{run:03d}.err').read_text(errors='replace')[-2000:]}")
            continue
        result.kills += 1
        lines = _journal_lines(journal)
        result.ops += sum(1 for line in lines if line[0] == "op")
        for line in lines:
            if line[0] == "sent":
                sent[tuple(line[1:])] += 1
                result.deliveries += line[1] == STRICT

        before, issues = inspect_state(state_path)
        issues += _replay(model, lines, before, result)
        if before is not None:
            model = {event: (row["level"], row["at_iso"]) for event, row in before.items()}
            kept, restart_issues = _restart_and_check(state_path, before, result)
            issues += restart_issues
            result.active_kept += kept
        result.clean_restarts += not issues
        result.violations.extend(f"{tag}: {issue}" for issue in issues)

    for (channel, event, kind, level, at), count in sent.items():
        if count > 1:
            if channel == STRICT:
                result.duplicates += count - 1
                result.violations.append(f"{event}: {kind} {level} at {at} delivered {count} times to {channel}")
            else:
                result.retry_duplicates += count - 1
    result.seconds = time.monotonic() - started
    return result


def _wait_ready(process: subprocess.Popen) -> bool:
    """Whether the child printed `ready` (its Engine is open) before it exited or the timeout passed."""
    readable, _, _ = select.select([process.stdout], [], [], READY_TIMEOUT)
    return bool(readable) and process.stdout.readline().strip() == b"ready"


def _journal_lines(path: Path) -> list[list[str]]:
    """The journal's complete lines as fields (a line the kill cut short was not yet written, so not sent)."""
    if not path.exists():
        return []
    text = path.read_bytes().decode()
    return [line.split("\t") for line in text.split("\n")[:-1]]


def inspect_state(path: Path) -> tuple[dict[str, dict] | None, list[str]]:
    """Read the state file with sqlite3 alone: its active events (None if it cannot be read) and what is wrong."""
    issues = []
    damaged = sorted(p.name for p in path.parent.glob(f"{path.name}.damaged-*"))
    if damaged:
        issues.append(f"state file was moved aside as damaged: {damaged}")
    try:
        db = sqlite3.connect(path)
    except sqlite3.Error as error:
        return None, [*issues, f"sqlite3 cannot open the state file: {error}"]
    try:
        integrity = db.execute("PRAGMA integrity_check").fetchall()
        if integrity != [("ok",)]:
            issues.append(f"integrity_check: {integrity[:5]}")
        rows = db.execute("SELECT event, level, message, context, since, at, seen, last_seen, told FROM active"
                          ).fetchall()
        history = {(event, kind, at) for event, kind, at in db.execute(
            "SELECT event, kind, at FROM history WHERE kind IN ('fired', 'escalated', 'cleared')")}
        outbox = db.execute("SELECT id, channel, event, since, alert FROM outbox").fetchall()
    except sqlite3.Error as error:
        return None, [*issues, f"sqlite3 cannot read the state file: {error}"]
    finally:
        db.close()
    firings = {(event, at) for event, kind, at in history if kind in ("fired", "escalated")}
    starts = {(event, at) for event, kind, at in history if kind == "fired"}
    clears = {(event, from_timestamp(at)) for event, kind, at in history if kind == "cleared"}
    firing_times = {(event, from_timestamp(at)) for event, at in firings}

    active: dict[str, dict] = {}
    for event, level, message, context, since, at, seen, last_seen, told in rows:
        try:
            row = {"level": Level.parse(level).value, "since": since, "at": at, "seen": seen,
                   "told": sorted(json.loads(told)), "context": json.loads(context), "message": message,
                   "at_iso": from_timestamp(at).isoformat()}
        except (ValueError, TypeError) as error:
            issues.append(f"active row {event!r} does not parse: {error}")
            continue
        if not isinstance(row["context"], dict) or not set(row["told"]) <= set(CHANNELS) or seen < 1 or since > at:
            issues.append(f"active row {event!r} is inconsistent: {row}")
        if (event, since) not in starts or (event, at) not in firings:
            issues.append(f"active row {event!r} (since {since}, at {at}) has no firing in the history")
        active[event] = row
    for id_, channel, event, since, payload in outbox:
        try:
            alert = Alert.from_dict(json.loads(payload))
        except (ValueError, TypeError, KeyError) as error:
            issues.append(f"outbox row {id_} does not parse: {error}")
            continue
        if alert.event != event or channel not in CHANNELS:
            issues.append(f"outbox row {id_} is inconsistent: {channel} {event} {alert}")
        elif getattr(alert, "reminder", False):
            continue
        elif (event, alert.at) not in (clears if alert.resolved else firing_times):
            issues.append(f"outbox row {id_} ({channel}, {alert.tag} {event} at {alert.at}) has no"
                          f" {'clear' if alert.resolved else 'firing'} in the history")
    return active, issues


def _replay(model: dict[str, tuple[str, str]], lines: list[list[str]], state: dict[str, dict] | None,
            result: Campaign) -> list[str]:
    """Play one run's strict-channel deliveries over the state the run started from; then the journal must agree
    with the state the kill left, except for the event of the operation in flight."""
    issues = []
    last_op = None
    for line in lines:
        if line[0] == "op":
            last_op = line[1:]
            continue
        if line[1] != STRICT:
            continue
        _, _, event, kind, level, at = line
        live = model.get(event)
        if kind == "fired":
            if live is not None and RANK[level] <= RANK[live[0]]:
                issues.append(f"{event}: fired {level} at {at} while already firing at {live[0]} (since {live[1]})")
            model[event] = (level, at)
        elif kind == "resolved":
            if live is None or live[0] != level:
                issues.append(f"{event}: resolved {level} at {at} but the live firing was {live}")
            model.pop(event, None)
        elif live is None or live[0] != level:  # a reminder repeats the live firing
            issues.append(f"{event}: reminder {level} at {at} but the live firing was {live}")
    if state is None:
        return issues
    stored = {event: (row["level"], row["at_iso"]) for event, row in state.items()}
    differ = {event for event in model.keys() | stored.keys() if model.get(event) != stored.get(event)}
    if not differ:
        return issues
    if last_op is not None and differ == {last_op[0]}:
        event, action, level = last_op
        live, now = model.get(event), stored.get(event)
        if action == "clear" and live is not None and now is None:
            result.lost_in_flight += 1  # cleared in the file; the recovery had not gone out yet
            return issues
        if (action == "raise" and now is not None and now[0] == level
                and (live is None or RANK[live[0]] < RANK[level])):
            result.lost_in_flight += 1  # fired in the file; the firing had not gone out yet
            return issues
    issues.append("the journal and the state file disagree beyond the operation in flight "
                  f"({last_op}): " + "; ".join(f"{e}: delivered {model.get(e)}, stored {stored.get(e)}"
                                               for e in sorted(differ)))
    return issues


class _Recorder:
    def __init__(self, name: str):
        self.name = name
        self.sent: list[Alert] = []

    def send(self, alert: Alert) -> None:
        self.sent.append(alert)


def _restart_and_check(path: Path, before: dict[str, dict], result: Campaign) -> tuple[bool, list[str]]:
    """Open a fresh Engine on the file: the same active events, and every one of them still debounced."""
    channels = {name: _Recorder(name) for name in CHANNELS}
    try:
        engine = Engine(channels, {level: list(CHANNELS) for level in Level}, path, retry_in_background=False)
    except (StateError, sqlite3.Error) as error:
        return False, [f"a fresh Engine cannot open the state file: {error}"]
    issues = []
    try:
        after = {record.event: record for record in engine.active_events()}
        result.active_before += len(before)
        for event, row in before.items():
            record = after.get(event)
            if record is not None and (record.level.value, record.since, record.at, sorted(record.told)) == (
                    row["level"], row["since"], row["at"], row["told"]):
                result.active_after += 1
        kept = {e: (r.level.value, r.since, r.at, sorted(r.told)) for e, r in after.items()} == {
            e: (row["level"], row["since"], row["at"], row["told"]) for e, row in before.items()}
        if not kept:
            issues.append(f"a fresh Engine sees other active events than the file held: {sorted(after)} vs"
                          f" {sorted(before)}")
        for event, row in before.items():
            again = engine.raise_alert(event, row["level"], "still there")
            lower = engine.raise_alert(event, Level.INFO, "still there, lower")
            if again or lower:
                issues.append(f"{event}: re-raised after the restart and not debounced: {again} {lower}")
            else:
                result.debounced += 1
        stray = [f"{name}: {a.tag} {a.event}" for name, channel in channels.items() for a in channel.sent]
        if stray:
            issues.append(f"the restarted engine sent something: {stray}")
    finally:
        engine.close()
    return kept, issues


def test_sigkill_at_random_moments_keeps_state_whole_and_delivers_nothing_twice(tmp_path):
    result = run_kill_campaign(tmp_path, KILLS, SEED)
    report = (f"seed {SEED}: {result.kills} kills, {result.ops} operations, {result.deliveries} deliveries,"
              f" {result.lost_in_flight} lost in flight, {result.retry_duplicates} outbox re-sends,"
              f" {result.active_before} active events at kills")
    assert result.violations == [], report + "\n" + "\n".join(result.violations[:20])
    assert result.kills == KILLS and result.clean_restarts == KILLS and result.active_kept == KILLS, report
    assert result.active_after == result.active_before == result.debounced, report
    assert result.duplicates == 0, report
    assert result.retry_duplicates <= result.kills, report
    # the children did real work between kills (not a timing bound: any progress at all)
    assert result.ops > 0 and result.deliveries > 0 and result.active_before > 0, report


def test_the_journal_check_catches_a_duplicate_and_a_lost_clear():
    """The replay is strict enough to fail: a firing sent twice and a state that disagrees are both reported."""
    result = Campaign()
    at = datetime(2024, 5, 17, 12, 0).astimezone().isoformat()
    lines = [["op", "e", "raise", "error"], ["sent", STRICT, "e", "fired", "error", at],
             ["op", "e", "raise", "error"], ["sent", STRICT, "e", "fired", "error", at]]
    assert any("already firing" in issue for issue in _replay({}, lines, None, result))
    model: dict = {}
    stored = {"f": {"level": "warning", "at_iso": at}}
    assert _replay(model, [["op", "e", "raise", "error"], ["sent", STRICT, "e", "fired", "error", at]], stored,
                   result) and result.lost_in_flight == 0
    assert _replay({}, [["op", "f", "raise", "warning"]], stored, result) == [] and result.lost_in_flight == 1
