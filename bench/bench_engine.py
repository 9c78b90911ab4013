"""Engine figures against the core issue's targets; prints numbers, asserts nothing (machines here are noisy).

    python bench/bench_engine.py [--quick]
"""
from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tray_alerts import Engine, Level  # noqa: E402
from tray_alerts.lifecycle import Clear, Raise  # noqa: E402
from tray_alerts.channels.log import LogChannel  # noqa: E402
from tray_alerts.state import StateStore  # noqa: E402

ROUTES = {level: ["log"] for level in Level}


def engine_with_events(folder: Path, count: int, tag: str) -> Engine:
    """An engine whose log channel writes to a file, with `count` events already firing."""
    path = folder / f"{tag}.db"
    StateStore(path).close()
    now = time.time()
    with sqlite3.connect(path) as db:  # bulk-load the background events in one transaction
        db.executemany("INSERT INTO events (event, episode, level, message, context, since, at, seen, last_seen,"
                       " told) VALUES (?, ?, 'warning', 'background', '{}', ?, ?, 1, ?, '[\"log\"]')",
                       [(f"bg{i}", f"ep{i}", now, now, now) for i in range(count)])
    db.close()
    return Engine({"log": LogChannel("log", folder / f"{tag}.log")}, ROUTES, path)


def debounced_rate(folder: Path, calls: int) -> float:
    """Debounced raise_alert calls per second with 1,000 events in state."""
    engine = engine_with_events(folder, 1000, "debounce")
    events = [f"bg{i}" for i in range(1000)]
    raise_alert = engine.raise_alert
    rates = []
    for _ in range(3):
        start = time.perf_counter()
        for i in range(calls):
            raise_alert(events[i % 1000], "warning", "disk at 93%")
        rates.append(calls / (time.perf_counter() - start))
    engine.close()
    return max(rates)


def cycle_rate(folder: Path, active: int, cycles: int, wait: bool = True) -> float:
    """raise+clear cycles per second (durable state and outbox, log channel) with `active` other events active;
    `wait`: each call waits for the channel's answer (Engine.raise_alert), else answers once stored (as the push
    API and the monitors do)."""
    engine = engine_with_events(folder, active, f"cycles{active}{wait}")
    start = time.perf_counter()
    if wait:
        for i in range(cycles):
            engine.raise_alert(f"cycle{i % 50}", "error", "api down", url="http://127.0.0.1/health")
            engine.clear_alert(f"cycle{i % 50}")
    else:
        for i in range(cycles):
            engine.submit(Raise(f"cycle{i % 50}", Level.ERROR, "api down", {"url": "http://127.0.0.1/health"}), 0)
            engine.submit(Clear(f"cycle{i % 50}"), 0)
        engine.wait_idle(60)
    rate = cycles / (time.perf_counter() - start)
    engine.close()
    return rate


def bare_commit_rate(folder: Path, count: int) -> float:
    """The yardstick, measured in the same run on the same disk: SQLite transactions of one small row (WAL,
    synchronous=NORMAL, as the state file)."""
    db = sqlite3.connect(folder / "yardstick.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    start = time.perf_counter()
    for i in range(count):
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t (v) VALUES (?)", (f"row {i}",))
        db.execute("COMMIT")
    rate = count / (time.perf_counter() - start)
    db.close()
    return rate


class TimedChannel:
    """Notes when it received its first alert."""

    def __init__(self, name: str):
        self.name = name
        self.received: float | None = None

    def send(self, alert) -> None:
        self.received = time.perf_counter()


class HangingChannel:
    def __init__(self, name: str, seconds: float):
        self.name, self.seconds = name, seconds

    def send(self, alert) -> None:
        time.sleep(self.seconds)


def fan_out_latency(folder: Path, runs: int) -> list[float]:
    """Seconds until four channels receive an alert while a fifth hangs for 5 s."""
    latencies = []
    for run in range(runs):
        fast = [TimedChannel(f"c{i}") for i in range(4)]
        channels = {c.name: c for c in fast} | {"hang": HangingChannel("hang", 5.0)}
        engine = Engine(channels, {Level.ERROR: ["hang", *[c.name for c in fast]]}, folder / f"fan{run}.db",
                        delivery_timeout=10)
        start = time.perf_counter()
        threading.Thread(target=engine.raise_alert, args=("e", "error", "m"), daemon=True).start()
        while any(c.received is None for c in fast):
            time.sleep(0.0005)
        latencies.append(max(c.received for c in fast) - start)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rate = debounced_rate(folder, 1_000_000 // scale)
        print(f"debounced raise_alert:           {rate:>12,.0f} calls/s   (target >= 500,000/s)")
        bare = bare_commit_rate(folder, 20_000 // scale)
        small = cycle_rate(folder, 1_000, 5_000 // scale)
        large = cycle_rate(folder, 100_000, 5_000 // scale)
        stored = cycle_rate(folder, 1_000, 5_000 // scale, wait=False)
        print(f"yardstick: bare SQLite commits:  {bare:>12,.0f} /s        (this machine, this run)")
        print(f"raise+clear, 1,000 active:       {small:>12,.0f} cycles/s  (target >= 2,000/s; one cycle ="
              f" {bare / small:.1f} bare commits)")
        print(f"raise+clear, 100,000 active:     {large:>12,.0f} cycles/s  ({large / small - 1:+.0%} vs 1k;"
              " target within 30%)")
        print(f"raise+clear, answered once stored: {stored:>10,.0f} cycles/s  (the push API and monitors;"
              f" {bare / stored:.1f} bare commits)")
        latencies = fan_out_latency(folder, 5)
        print(f"fan-out with one channel hanging: {statistics.median(latencies) * 1000:>10.1f} ms median,"
              f" {max(latencies) * 1000:.1f} ms worst of {len(latencies)} (target < 100 ms)")


if __name__ == "__main__":
    main()
