"""State that stays small, side by side with the code before it (`--base`, by default ee56063, the last commit
before history retention and the faster start-up; taken with `git archive`) on the
same files in the same run: start-up with 100,000 active events, the file before and after pruning, and what the
per-event maps in memory hold after 100,000 events came and went. Prints numbers, asserts nothing.

    python bench/bench_state.py [--quick] [--events N] [--base REV]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE = "ee56063"  # the last commit before history retention, the incremental vacuum and the faster start-up
DAY = 86400.0


# ---- run in a worker process, on either code (`--worker TASK --code DIR`) ---------------------------------

def worker(task: str, path: Path, count: int) -> dict:
    import logging

    logging.disable(logging.CRITICAL)
    from tray_alerts import DeliveryError, Engine, Level
    from tray_alerts.lifecycle import Clear, Raise

    class Quiet:
        def __init__(self, name: str, fail: bool = False):
            self.name, self.fail = name, fail

        def send(self, alert) -> None:
            if self.fail:
                raise DeliveryError("refused", retryable=False)

    if task == "open":  # this tree's first open converts an older file once (incremental vacuum)
        from tray_alerts.state import StateStore

        StateStore(path).close()
        return {}

    if task == "startup":
        start = time.perf_counter()
        engine = Engine({"log": Quiet("log")}, {level: ["log"] for level in Level}, path)
        seconds = time.perf_counter() - start
        active = len(engine.active_events())
        engine.close()
        return {"seconds": seconds, "active": active}

    if task == "prune":
        engine = Engine({}, {}, path, retry_in_background=False)
        engine.background.upkeep = True
        writes: list[float] = []

        def timed(tx) -> None:  # a rider: runs as each write starts; its commit ends it
            started = time.perf_counter()
            tx.after_commit.append(lambda: writes.append(time.perf_counter() - started))

        engine.store.riders.insert(0, timed)
        start = time.perf_counter()
        maintain = getattr(engine.background, "maintain", None)
        if maintain is not None:
            maintain()  # everything, pass after pass, as the background does over a few passes
        else:
            engine.background.keep_tidy(engine.clock.time())  # before: what its upkeep did once an hour
        seconds = time.perf_counter() - start
        kept = engine.store._read("SELECT count(*) FROM history")[0][0]
        engine.close()
        return {"seconds": seconds, "writes": len(writes), "longest": max(writes, default=0.0), "kept": kept,
                "median": statistics.median(writes) if writes else 0.0}

    if task == "memory":
        channels = {"ok": Quiet("ok"), "bad": Quiet("bad", fail=True)}
        engine = Engine(channels, {"error": ["ok", "bad"]}, path, retry_in_background=False)
        for i in range(count):
            level = Level.ERROR if i % 10 == 0 else Level.INFO  # one in ten reaches channels; one of them fails
            engine.submit(Raise(f"event-{i}", level, "m", {"n": i}), 0)
            engine.submit(Clear(f"event-{i}"), 0)
            if i % 1000 == 999:
                engine.wait_idle(60)
        engine.wait_idle(60)
        before_upkeep = container_sizes(engine)
        engine.background.upkeep = True  # the app's upkeep, once (its frequent part, and maintenance)
        engine.tick()
        after = container_sizes(engine)
        engine.close()
        return {"before_upkeep": before_upkeep, "after": after}
    raise SystemExit(f"unknown task {task}")


def container_sizes(engine) -> dict[str, list[int]]:
    """Every container the engine and its parts keep: [entries, bytes (the container and its keys)]."""
    parts = {"engine": engine, "mirror": engine.mirror, "outbox": engine.outbox, "deferral": engine.deferral,
             "storm": engine.storm, "background": engine.background, "store": engine.store}
    found = {}
    for name, part in parts.items():
        for attribute, value in vars(part).items():
            if isinstance(value, (dict, set, frozenset, list, deque)):
                size = sys.getsizeof(value) + sum(deep_size(key) for key in value)
                found[f"{name}.{attribute}"] = [len(value), size]
    return found


def deep_size(value) -> int:
    if isinstance(value, tuple):
        return sys.getsizeof(value) + sum(sys.getsizeof(item) for item in value)
    return sys.getsizeof(value)


# ---- the driver --------------------------------------------------------------------------------------------

def run(code: Path, task: str, path: Path, count: int = 0) -> dict:
    done = subprocess.run([sys.executable, __file__, "--worker", task, "--code", str(code), "--path", str(path),
                           "--count", str(count)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{task} on {code} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def old_code(folder: Path, base: str) -> Path | None:
    """The package as of `base`, unpacked beside (None if this is not a git checkout)."""
    target = folder / "head"
    target.mkdir()
    try:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", base, "tray_alerts"], capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return target


def active_file(path: Path, count: int) -> None:
    """A state file with `count` active events, each told one channel (a delivered row and two history lines)."""
    sys.path.insert(0, str(ROOT))
    from tray_alerts.state import StateStore

    StateStore(path).close()
    now = time.time()
    alert = json.dumps({"event": "x", "level": "warning", "message": "disk at 91%", "context": {"mount": "/"}})
    levels = ("info", "warning", "error", "critical")
    db = sqlite3.connect(path)
    with db:
        db.executemany(
            "INSERT INTO events (event, episode, level, message, context, since, at, seen, last_seen, told)"
            " VALUES (?, ?, ?, 'disk at 91%', ?, ?, ?, 3, ?, '[\"log\"]')",
            [(f"host{i}:disk", f"{i:016x}", levels[i % 4], json.dumps({"mount": "/", "host": f"host{i}"}),
              now - i, now - i, now) for i in range(count)])
        db.executemany("INSERT INTO outbox (channel, event, episode, kind, alert, status, not_before, expires_at,"
                       " created_at, done_at) VALUES ('log', ?, ?, 'firing', ?, 'delivered', ?, ?, ?, ?)",
                       [(f"host{i}:disk", f"{i:016x}", alert, now, now + DAY, now, now) for i in range(count)])
        db.executemany("INSERT INTO history (at, event, kind, level, message, channel, ok) VALUES"
                       " (?, ?, ?, 'warning', 'disk at 91%', ?, ?)",
                       [row for i in range(count) for row in ((now - i, f"host{i}:disk", "fired", None, None),
                                                              (now - i, f"host{i}:disk", "delivery", "log", 1))])
    db.close()


def history_file(path: Path, old_lines: int, new_lines: int) -> None:
    """A state file with `old_lines` lines of history 100 days old and `new_lines` from the last 30 days."""
    sys.path.insert(0, str(ROOT))
    from tray_alerts.state import StateStore

    StateStore(path).close()
    now = time.time()
    db = sqlite3.connect(path)
    with db:
        for count, age in ((old_lines, 100 * DAY), (new_lines, 20 * DAY)):
            db.executemany("INSERT INTO history (at, event, kind, level, message, channel, ok, detail) VALUES"
                           " (?, ?, 'delivery', 'error', 'api down: HTTP 503 from /health', 'slack', 1,"
                           " 'delivered in 212 ms')",
                           [(now - age + i * 1e-3, f"check{i % 5000}") for i in range(count)])
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def bare_read(path: Path) -> float:
    """The yardstick: a bare sqlite3 read of the same rows into tuples, best of 3."""
    db = sqlite3.connect(path)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        db.execute("SELECT event, level, message, context, since, at, seen, last_seen, told, reminded_at, episode,"
                   " acknowledged_at FROM events").fetchall()
        best = min(best, time.perf_counter() - start)
    db.close()
    return best


def worst(path: Path, limit: int | None) -> float:
    """Seconds for the worst `limit` active events and the count (None: all read and sorted in Python), best of 3."""
    sys.path.insert(0, str(ROOT))
    from tray_alerts.state import StateStore

    store = StateStore(path)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        if limit is None:
            sorted(store.load_active(), key=lambda r: (-r.level.rank, r.since))
        else:
            store.worst_active(limit)
        best = min(best, time.perf_counter() - start)
    store.close()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10x fewer events and lines")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--base", default=BASE, help="the code to compare with (a git revision)")
    parser.add_argument("--worker")
    parser.add_argument("--code")
    parser.add_argument("--path")
    parser.add_argument("--count", type=int, default=0)
    args = parser.parse_args()
    if args.worker:
        sys.path.insert(0, args.code)
        print(json.dumps(worker(args.worker, Path(args.path), args.count)))
        return
    events = args.events // (10 if args.quick else 1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        head = old_code(folder, args.base)
        codes = {"now": ROOT, **({"before": head} if head else {})}
        print(f"tray-alerts state, {events:,} events; 'now' = this tree, 'before' = the code of {args.base}"
              + ("" if head else " (not available: no git)"))

        # start-up
        active = folder / "active.db"
        active_file(active, events)
        run(ROOT, "open", active)  # the first open converts the file once (incremental vacuum): not timed
        print(f"\nstart-up, Engine(...) on a file with {events:,} active events (median of 3 fresh processes):")
        for name, code in codes.items():
            times = [run(code, "startup", active)["seconds"] for _ in range(3)]
            print(f"  {name:<6} {statistics.median(times):7.3f} s   (runs: {', '.join(f'{t:.3f}' for t in times)})"
                  + ("   target < 1 s" if name == "now" else ""))
        print(f"  yardstick: bare sqlite3 read of the same {events:,} rows: {bare_read(active):.3f} s")
        print(f"  status's read: worst_active(50) {worst(active, 50) * 1000:.1f} ms; every event read and sorted in Python"
              f" (what status did; on this tree's faster load_active) {worst(active, None) * 1000:.0f} ms")

        # pruning and the file's size
        old_lines, new_lines = 2 * events, 2 * events
        print(f"\nhistory: {old_lines:,} lines 100 days old + {new_lines:,} from the last 30 days; now: 30 days,"
              f" 100,000 lines at most; before: 90 days, no cap")
        base = folder / "history.db"
        history_file(base, old_lines, new_lines)
        for name, code in codes.items():
            path = folder / f"history-{name}.db"
            shutil.copy(base, path)
            if name == "now":
                run(ROOT, "open", path)  # its one-time conversion, so that the sizes compare pruning alone
            before = size(path)
            result = run(code, "prune", path)
            print(f"  {name:<6} {before / 2**20:7.1f} MiB -> {size(path) / 2**20:7.1f} MiB   {result['kept']:>9,} lines"
                  f" kept   {result['writes']:>4} write(s) of {result['median'] * 1000:.0f} ms median,"
                  f" {result['longest'] * 1000:.0f} ms longest,"
                  f" {result['seconds']:.2f} s in all")

        # memory
        print(f"\nper-event memory after {events:,} distinct events raised and cleared (one in ten to two channels,"
              " one of which refuses for good):")
        for name, code in codes.items():
            result = run(code, "memory", folder / f"memory-{name}.db", events)
            for label in ("before_upkeep", "after"):
                grown = {key: value for key, value in result[label].items() if value[0] > 10}
                text = ", ".join(f"{key} {n:,} entries ({b / 2**20:.1f} MiB)" for key, (n, b) in grown.items())
                print(f"  {name:<6} {label.replace('_', ' '):<14} {text or 'no container over 10 entries'}")


if __name__ == "__main__":
    main()
