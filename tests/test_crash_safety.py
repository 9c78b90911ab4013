"""Crash safety: a child process runs an Engine flat out on a state file — raising, escalating and clearing ~30
events — delivering to a real loopback webhook (tray-alerts' webhook channel POSTing to an HTTP server in this
process, answering at once or after 200 ms) and to a flaky channel that journals to a file and fails ~30% of
sends (retryably), and is SIGKILLed at a random moment, again and again, on the same state file.

After every kill:
  * the state file opens: `PRAGMA integrity_check` is ok and nothing was moved aside as damaged;
  * nothing is half-written: every firing event has its firing in the history, every outbox row parses and its
    firing or clear is in the history (a notification is a row written with the state change that causes it);
  * a fresh Engine sees exactly the firing events the file held, and raising any of them again is debounced;
  * the fresh Engine drains the outbox: every row is delivered (the ones the kill interrupted are sent again,
    marked as possible repeats).
Across all runs, at-least-once: every notification ever committed reached its peer (0 lost); a notification
arrived twice only if a kill interrupted it (duplicates <= kills, and counted); no peer got a recovery before the
firing of its episode; every attempt that reached a peer has its line in the history.

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
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tray_alerts import Alert, Engine, Level
from tray_alerts.channels.webhook import WebhookChannel
from tray_alerts.outbox import RetryPolicy
from tray_alerts.state import StateError

KILLS = int(os.environ.get("TRAY_ALERTS_CRASH_KILLS", "30"))
SEED = int(os.environ.get("TRAY_ALERTS_CRASH_SEED", "20240517"))
EVENTS = 30
KILL_DELAY = (0.020, 0.300)  # seconds after the child says it is running
READY_TIMEOUT = 60.0  # generous: only a wedged child takes this long to open its state file
DRAIN_TIMEOUT = 60.0
HOOK, FLAKY = "hook", "flaky"
CHANNELS = (HOOK, FLAKY)
POLICY = RetryPolicy(first=0.01, longest=0.05, expiry=3600)

CHILD = r'''
import logging, os, random, sys

from tray_alerts import DeliveryError, Engine, Level
from tray_alerts.channels.webhook import WebhookChannel
from tray_alerts.outbox import RetryPolicy

logging.disable(logging.WARNING)  # the flaky channel's warnings would only fill stderr; errors still show
state_path, url, journal_path, seed, events = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
fd = os.open(journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)


class JournalChannel:
    """One line per delivery, on disk before send() returns; fails (retryably) some of the time."""

    def __init__(self, name, fail_rate):
        self.name, self.fail_rate = name, fail_rate
        self.rng = random.Random(f"{seed}-{name}")

    def send(self, alert):
        if self.rng.random() < self.fail_rate:
            raise DeliveryError(f"{self.name}: not now")
        os.write(fd, (json.dumps(alert.to_dict()) + "\n").encode())
        os.fsync(fd)


import json
channels = {"hook": WebhookChannel("hook", url, timeout=30), "flaky": JournalChannel("flaky", 0.3)}
engine = Engine(channels, {level: list(channels) for level in Level}, state_path, delivery_timeout=30,
                retry=RetryPolicy(first=0.01, longest=0.05, expiry=3600))
print("ready", flush=True)
rng = random.Random(seed)
levels = list(Level)
n = 0
while True:
    n += 1
    event = f"ev{rng.randrange(events)}"
    if rng.random() < 0.35:
        engine.clear_alert(event, f"fixed #{n}")
    else:
        engine.raise_alert(event, rng.choice(levels), f"trouble #{n}", n=n)
'''


class WebhookPeer:
    """An HTTP server on loopback that keeps every alert POSTed to it, answering 200 after `delay` seconds."""

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.received: list[dict] = []
        self._lock = threading.Lock()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                try:
                    body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                except ValueError:  # the sender was killed halfway through its request: nothing arrived
                    self.send_response(400)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if peer.delay:
                    time.sleep(peer.delay)
                with peer._lock:
                    peer.received.append(body)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class ReliableJournal:
    """The flaky channel as a restarted engine sees it: it works, and writes where the child's did."""

    def __init__(self, name: str, path: Path):
        self.name, self.path = name, path

    def send(self, alert: Alert) -> None:
        with open(self.path, "a") as journal:
            journal.write(json.dumps(alert.to_dict()) + "\n")


@dataclass
class Campaign:
    """What a series of kills showed."""

    kills: int = 0
    clean_restarts: int = 0  # the file opened, passed every check, and a fresh Engine drained it
    active_kept: int = 0  # restarts where the fresh Engine's firing events equalled the file's
    active_before: int = 0  # firing events in the file at the kills, summed
    debounced: int = 0  # re-raises of those events that were debounced after the restart
    committed: int = 0  # notifications (outbox rows) the children and restarts committed
    delivered: int = 0  # notifications that reached their peer
    lost: int = 0  # committed notifications that never reached their peer (must be 0)
    duplicates: int = 0  # notifications that reached their peer more than once (at most one per kill and channel)
    duplicates_by_channel: Counter = field(default_factory=Counter)
    marked_repeats: int = 0  # arrivals marked as possible repeats
    interrupted: int = 0  # rows a kill left mid-send, sent again by the restart
    seconds: float = 0.0
    violations: list[str] = field(default_factory=list)


def run_kill_campaign(folder: Path, kills: int = KILLS, seed: int = SEED, peer_delay: float = 0.0,
                      events: int = EVENTS, delay: tuple[float, float] = KILL_DELAY) -> Campaign:
    """Start a child on `folder`/state.db `kills` times, SIGKILL it after a random delay, check everything."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "crash_child.py"
    script.write_text(CHILD)
    state_path, journal = folder / "state.db", folder / "flaky.journal"
    rng = random.Random(seed)
    result = Campaign()
    peer = WebhookPeer(peer_delay)
    started = time.monotonic()
    try:
        for run in range(kills):
            tag = f"run {run} (seed {seed})"
            killed, error = _run_child(script, state_path, peer.url, journal, seed * 1000 + run, events,
                                       rng.uniform(*delay), folder / f"child-{run:03d}.err")
            if not killed:
                result.violations.append(f"{tag}: the child did not start or died by itself: {error}")
                continue
            result.kills += 1
            before, issues = inspect_state(state_path)
            if before is not None:
                issues += _restart_and_check(state_path, before, peer.url, journal, result)
            result.clean_restarts += not issues
            result.violations.extend(f"{tag}: {issue}" for issue in issues)
        _compare(state_path, peer.received, _journal(journal), result)
    finally:
        peer.close()
    result.seconds = time.monotonic() - started
    return result


def _run_child(script: Path, state_path: Path, url: str, journal: Path, seed: int, events: int, wait: float,
               err_path: Path) -> tuple[bool, str]:
    """Start the child, let it work `wait` seconds, SIGKILL it; (killed as planned, what went wrong)."""
    with open(err_path, "wb") as err:
        process = subprocess.Popen([sys.executable, str(script), str(state_path), url, str(journal), str(seed),
                                    str(events)], stdout=subprocess.PIPE, stderr=err, cwd=script.parent)
    try:
        readable, _, _ = select.select([process.stdout], [], [], READY_TIMEOUT)
        ready = bool(readable) and process.stdout.readline().strip() == b"ready"  # type: ignore[union-attr]
        if ready:
            time.sleep(wait)
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()  # type: ignore[union-attr]
    killed = ready and process.returncode == -signal.SIGKILL
    return killed, "" if killed else f"exit {process.returncode}: {err_path.read_text(errors='replace')[-2000:]}"


def inspect_state(path: Path) -> tuple[dict[str, dict] | None, list[str]]:
    """Read the state file with sqlite3 alone: its firing events (None if it cannot be read) and what is wrong."""
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
        rows = db.execute("SELECT event, level, since, at, seen, told, episode FROM events").fetchall()
        history = {(event, kind, round(at, 6)) for event, kind, at in db.execute(
            "SELECT event, kind, at FROM history WHERE kind IN ('fired', 'escalated', 'cleared')")}
        outbox = db.execute("SELECT id, channel, event, kind, alert FROM outbox").fetchall()
    except sqlite3.Error as error:
        return None, [*issues, f"sqlite3 cannot read the state file: {error}"]
    finally:
        db.close()
    firings = {(event, at) for event, kind, at in history if kind in ("fired", "escalated")}
    starts = {(event, at) for event, kind, at in history if kind == "fired"}
    clears = {(event, at) for event, kind, at in history if kind == "cleared"}
    active: dict[str, dict] = {}
    for event, level, since, at, seen, told, episode in rows:
        row = {"level": level, "since": since, "at": at, "told": sorted(json.loads(told)), "episode": episode}
        if not set(row["told"]) <= set(CHANNELS) or seen < 1 or since > at:
            issues.append(f"firing event {event!r} is inconsistent: {row}")
        if (event, round(since, 6)) not in starts or (event, round(at, 6)) not in firings:
            issues.append(f"firing event {event!r} (since {since}, at {at}) has no firing in the history")
        active[event] = row
    for id_, channel, event, kind, payload in outbox:
        try:
            alert = Alert.from_dict(json.loads(payload))
        except (ValueError, TypeError, KeyError) as error:
            issues.append(f"outbox row {id_} does not parse: {error}")
            continue
        if alert.event != event or channel not in CHANNELS:
            issues.append(f"outbox row {id_} is inconsistent: {channel} {event} {alert}")
        elif kind != "reminder" and (event, round(alert.at.timestamp(), 6)) not in (clears if alert.resolved
                                                                                      else firings):
            issues.append(f"outbox row {id_} ({channel}, {alert.tag} {event} at {alert.at}) has no"
                          f" {'clear' if alert.resolved else 'firing'} in the history")
    return active, issues


def _restart_and_check(path: Path, before: dict[str, dict], url: str, journal: Path, result: Campaign) -> list[str]:
    """A fresh Engine on the file: the same firing events, each still debounced; then it drains the outbox."""
    channels = {HOOK: WebhookChannel(HOOK, url, timeout=30), FLAKY: ReliableJournal(FLAKY, journal)}
    try:
        engine = Engine(channels, {level: list(CHANNELS) for level in Level}, path, retry=POLICY,
                        retry_in_background=False, delivery_timeout=30)
    except (StateError, sqlite3.Error) as error:
        return [f"a fresh Engine cannot open the state file: {error}"]
    issues = []
    try:
        after = {record.event: (record.level.value, record.since, record.at, sorted(record.told))
                 for record in engine.active_events()}
        expected = {event: (row["level"], row["since"], row["at"], row["told"]) for event, row in before.items()}
        result.active_before += len(before)
        if after == expected:
            result.active_kept += 1
        else:
            issues.append(f"a fresh Engine sees other firing events than the file held: {after} vs {expected}")
        for event, row in before.items():
            again = engine.raise_alert(event, row["level"], "still there")
            lower = engine.raise_alert(event, Level.INFO, "still there, lower")
            if again.kind != "debounced" or lower.kind != "debounced":
                issues.append(f"{event}: re-raised after the restart and not debounced: {again.kind} {lower.kind}")
            else:
                result.debounced += 1
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while engine.pending() and time.monotonic() < deadline:
            engine.tick()
            engine.wait_idle()
            time.sleep(0.01)
        left = engine.pending()
        if left:
            issues.append(f"{len(left)} notification(s) still not delivered after the restart drained the outbox")
    finally:
        engine.close()
    return issues


def _journal(path: Path) -> list[dict]:
    """What the flaky channel wrote (a line the kill cut short was not delivered)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().split("\n")[:-1] if line]


def _identity(event: str, kind: str, at: str, episode: str) -> tuple[str, str, str, str]:
    return (event, kind, at, episode)


def _compare(path: Path, hook: list[dict], flaky: list[dict], result: Campaign) -> None:
    """Every committed notification arrived (at least once); repeats only where a kill interrupted a send."""
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT id, channel, kind, alert, status FROM outbox").fetchall()
        lines = Counter(delivery for (delivery,) in db.execute(
            "SELECT delivery FROM history WHERE delivery IS NOT NULL"))
        result.interrupted = db.execute("SELECT count(*) FROM history WHERE detail LIKE 'attempt % interrupted%'"
                                        ).fetchone()[0]
    finally:
        db.close()
    arrived = {HOOK: Counter(), FLAKY: Counter()}
    marked = {HOOK: Counter(), FLAKY: Counter()}
    order_issues = []
    for channel, payloads in ((HOOK, hook), (FLAKY, flaky)):
        firings_seen: set[tuple[str, str]] = set()
        for payload in payloads:
            kind = "resolved" if payload.get("resolved") else "reminder" if payload.get("reminder") else "fired"
            identity = _identity(payload["event"], kind, payload["at"], payload.get("episode", ""))
            arrived[channel][identity] += 1
            marked[channel][identity] += bool(payload.get("possible_repeat"))
            result.marked_repeats += bool(payload.get("possible_repeat"))
            if kind == "fired":
                firings_seen.add((payload["event"], payload.get("episode", "")))
            elif kind == "resolved" and (payload["event"], payload.get("episode", "")) not in firings_seen:
                order_issues.append(f"{channel} got the recovery of {payload['event']} before any of its firings")
    result.violations.extend(order_issues[:10])
    for id_, channel, kind, payload, status in rows:
        alert = Alert.from_dict(json.loads(payload))
        if status == "dropped":
            continue
        result.committed += 1
        key = _identity(alert.event, "resolved" if alert.resolved else "reminder" if alert.reminder else "fired",
                        alert.at.isoformat(), alert.episode)
        count = arrived[channel].get(key, 0)
        if count == 0 or status != "delivered":
            result.lost += 1
            result.violations.append(f"lost: row {id_} {channel} {key} ({status}, arrived {count} times)")
            continue
        result.delivered += 1
        result.duplicates += count - 1
        result.duplicates_by_channel[channel] += count - 1
        if marked[channel][key] < count - 1:
            result.violations.append(f"row {id_} {channel} {key} arrived {count} times, not said to be a repeat")
        if lines[id_] < count:
            result.violations.append(f"row {id_} {channel} {key} arrived {count} times but has {lines[id_]}"
                                     " history line(s)")
    for channel, duplicates in result.duplicates_by_channel.items():
        if duplicates > result.kills:  # a kill interrupts at most one send per channel
            result.violations.append(f"{channel}: {duplicates} duplicates in {result.kills} kills")


def _check(result: Campaign, report: str) -> None:
    assert result.violations == [], report + "\n" + "\n".join(result.violations[:20])
    assert result.kills == result.clean_restarts == result.active_kept > 0, report
    assert result.active_before == result.debounced, report
    assert result.lost == 0 and all(d <= result.kills for d in result.duplicates_by_channel.values()), report
    # the children did real work between kills (not a timing bound: any progress at all)
    assert result.committed > 0 and result.active_before > 0, report


def _report(result: Campaign) -> str:
    return (f"{result.kills} kills: {result.committed} notifications committed, {result.delivered} delivered,"
            f" {result.lost} lost, {result.duplicates} duplicates ({dict(result.duplicates_by_channel)}),"
            f" {result.marked_repeats} marked as possible repeats, {result.interrupted} interrupted sends")


def test_sigkill_with_a_fast_peer_loses_nothing_and_repeats_only_what_a_kill_interrupted(tmp_path):
    result = run_kill_campaign(tmp_path, KILLS, SEED)
    _check(result, _report(result))


def test_sigkill_with_a_200_ms_peer_loses_nothing(tmp_path):
    result = run_kill_campaign(tmp_path, max(5, KILLS // 3), SEED + 1, peer_delay=0.2)
    _check(result, _report(result))
    assert result.interrupted > 0, "no kill landed mid-send: the campaign did not test what it claims"


def test_the_comparison_catches_a_lost_notification_and_a_repeat(tmp_path):
    """The check is strict enough to fail: a committed row that never arrived, one that arrived three times."""
    path = tmp_path / "state.db"
    engine = Engine({HOOK: ReliableJournal(HOOK, tmp_path / "j")}, {"error": [HOOK]}, path,
                    retry_in_background=False)
    engine.raise_alert("a", "error", "m")
    engine.raise_alert("b", "error", "m")
    engine.close()
    sent = [json.loads(line) for line in (tmp_path / "j").read_text().splitlines()]
    result = Campaign(kills=1)
    _compare(path, [sent[0], sent[0], sent[0]], [], result)
    assert result.lost == 1 and result.duplicates == 2
    assert any("lost" in v for v in result.violations) and any("hook: 2 duplicates in 1 kills" in v
                                                                for v in result.violations)
