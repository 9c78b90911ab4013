"""State that stays small: history kept to an age and a row cap while the app runs (in short writes, keeping what
`status` and the tray show), done rows and ended mutes forgotten, the file shrunk by incremental vacuum, and no
per-event memory left behind by events that came and went."""
import sqlite3
from collections import deque

import pytest

from conftest import FailingChannel, RecordingChannel
from tray_alerts import DeliveryError, Engine, Level
from tray_alerts.background import MAINTAIN_EVERY, PRUNE_WRITES
from tray_alerts.clock import FakeClock
from tray_alerts.lifecycle import Clear, Raise
from tray_alerts.state import PRUNE_BATCH, SCHEMA_VERSION, StateStore, StoreFault

DAY = 86400.0
ROUTES = {level: ["log"] for level in Level}


def engine_on(path, clock, channels=None, **options) -> Engine:
    """An engine whose timed work runs only when the test calls tick(), upkeep included (as the app's does)."""
    routes = options.pop("routes", ROUTES)
    engine = Engine(channels if channels is not None else {"log": RecordingChannel("log")}, routes, path,
                    retry_in_background=False, clock=clock, **options)
    engine.background.upkeep = True
    return engine


def lines(store: StateStore, event: str | None = None) -> list[tuple[str, str]]:
    return [(entry.event, entry.kind) for entry in reversed(store.history(10**6, event))]


def history_count(path) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT count(*) FROM history").fetchone()[0]
    finally:
        db.close()


def fill_history(store: StateStore, count: int, at: float, event: str = "old", detail: str = "") -> None:
    with store.write() as tx:
        tx.db.executemany("INSERT INTO history (at, event, kind, level, detail) VALUES (?, ?, 'fired', 'error', ?)",
                          [(at, f"{event}{i}", detail) for i in range(count)])


# ---- the engine's settings ---------------------------------------------------------------------------------

def test_the_engine_takes_an_age_and_a_row_cap_with_defaults(tmp_path):
    with Engine({}, ROUTES, tmp_path / "a.db", retry_in_background=False) as engine:
        assert (engine.history_max_age, engine.history_max_rows) == (30 * DAY, 100_000)
    with Engine({}, ROUTES, tmp_path / "b.db", retry_in_background=False, history_max_age=3600,
                history_max_rows=10) as engine:
        assert (engine.history_max_age, engine.history_max_rows) == (3600.0, 10)


@pytest.mark.parametrize("options", [{"history_max_age": 0}, {"history_max_age": -1.0},
                                     {"history_max_age": float("nan")}, {"history_max_rows": 0},
                                     {"history_max_rows": 2.5}, {"history_max_rows": True}])
def test_an_age_or_cap_that_keeps_nothing_is_refused(tmp_path, options):
    with pytest.raises(ValueError, match="history_max_"):
        Engine({}, ROUTES, tmp_path / "s.db", retry_in_background=False, **options)


# ---- pruning while running ---------------------------------------------------------------------------------

def test_history_older_than_the_age_goes_while_the_app_runs(state_path):
    clock = FakeClock()
    engine = engine_on(state_path, clock, history_max_age=10 * DAY)
    try:
        engine.raise_alert("early", "error", "m")
        engine.clear_alert("early")
        engine.tick()  # the first pass keeps the file small at once
        assert [kind for _, kind in lines(engine.store, "early")] == ["fired", "delivery", "cleared", "recovery"]
        clock.advance(9 * DAY)
        engine.raise_alert("later", "error", "m")
        engine.clear_alert("later")
        engine.tick()
        assert {event for event, _ in lines(engine.store)} == {"early", "later"}  # not 10 days old yet
        clock.advance(1.5 * DAY)
        engine.tick()  # a day and a half later: a pass prunes again, with no restart
        assert {event for event, _ in lines(engine.store)} == {"later"}
    finally:
        engine.close()


def test_history_beyond_the_row_cap_goes_newest_kept(state_path):
    clock = FakeClock()
    engine = engine_on(state_path, clock, history_max_rows=30)
    try:
        for i in range(40):
            engine.submit(Raise(f"e{i}", Level.ERROR, "m"), 0)
            engine.submit(Clear(f"e{i}"), 0)
            clock.advance(1)
        engine.wait_idle()
        newest = [entry.id for entry in engine.store.history(30)]
        engine.background.maintain()
        assert sorted(entry.id for entry in engine.store.history(1000)) == sorted(newest)
    finally:
        engine.close()


def test_the_firing_episodes_lines_and_each_channels_latest_result_stay(tmp_path):
    clock = FakeClock()
    failing = FailingChannel("email", DeliveryError("mailbox full", retryable=False))
    channels = {"log": RecordingChannel("log"), "email": failing}
    routes = {"error": ["log"], "critical": ["log", "email"]}
    engine = Engine(channels, routes, tmp_path / "s.db", retry_in_background=False, clock=clock,
                    history_max_age=DAY, history_max_rows=5)
    try:
        engine.raise_alert("page", "critical", "pager test")  # email fails for good: its only result line
        engine.clear_alert("page")
        engine.raise_alert("disk", "error", "disk at 91%")  # an episode that ended ...
        engine.clear_alert("disk")
        clock.advance(1)
        engine.raise_alert("disk", "error", "disk at 95%")  # ... and the one still firing
        fill_history(engine.store, 50, clock.time())
        clock.advance(3 * DAY)
        fill_history(engine.store, 10, clock.time(), event="new")
        before = engine.store.channel_health()
        engine.background.maintain()
        kept = lines(engine.store, "disk")
        assert kept == [("disk", "fired"), ("disk", "delivery")]  # 3 days old, beyond the cap: still firing
        assert engine.store.history(1, "disk")[0].message == "disk at 95%"
        assert engine.store.channel_health() == before  # status still says how each channel last did
        assert engine.store.channel_health()["email"].last_ok is False
        assert {event for event, _ in lines(engine.store)} == {"disk", "page"} | {f"new{i}" for i in range(5, 10)}
        assert lines(engine.store, "page") == [("page", "delivery")]  # email's failure: its latest result
    finally:
        engine.close()


def test_pruning_runs_in_short_writes_that_others_can_come_between(tmp_path):
    store = StateStore(tmp_path / "s.db")
    writes = []
    store.riders.append(lambda tx: writes.append(tx))
    try:
        fill_history(store, 2500, 1.0)
        writes.clear()
        assert store.prune_history(before=2.0, max_rows=10**6, batch=100, writes=10) == (1000, True)
        assert len(writes) == 10 and history_count(store.path) == 1500  # 100 ids per write, at most 10 writes
        with store.write() as tx:  # anyone may write between two passes
            tx.history(5.0, "meanwhile", "fired", Level.INFO, "m")
        assert store.prune_history(before=2.0, max_rows=10**6, batch=100) == (1500, False)
        assert lines(store) == [("meanwhile", "fired")]
        assert store.prune_history(before=2.0, max_rows=10**6) == (0, False)
    finally:
        store.close()


def test_a_big_backlog_is_pruned_over_several_passes(state_path):
    clock = FakeClock()
    engine = engine_on(state_path, clock, history_max_rows=10)
    try:
        backlog = PRUNE_BATCH * (PRUNE_WRITES + 5)
        fill_history(engine.store, backlog, clock.time())
        engine.tick()
        assert history_count(state_path) == backlog - PRUNE_BATCH * PRUNE_WRITES  # one pass: bounded work
        engine.tick()  # the next pass goes on at once, not MAINTAIN_EVERY later
        assert history_count(state_path) == 10
        fill_history(engine.store, 100, clock.time(), event="more")
        engine.tick()
        assert history_count(state_path) == 110  # and then waits for MAINTAIN_EVERY
        clock.advance(MAINTAIN_EVERY)
        engine.tick()
        assert history_count(state_path) == 10
    finally:
        engine.close()


def test_done_rows_of_ended_episodes_are_forgotten_after_a_week(state_path):
    clock = FakeClock()
    engine = engine_on(state_path, clock)
    try:
        engine.raise_alert("gone", "error", "m")
        engine.clear_alert("gone")
        engine.raise_alert("firing", "error", "m")
        clock.advance(8 * DAY)
        engine.tick()
        db = sqlite3.connect(state_path)
        assert {event for (event,) in db.execute("SELECT event FROM outbox")} == {"firing"}
        db.close()
    finally:
        engine.close()


def test_ended_mutes_are_forgotten_in_the_file_and_in_memory(state_path):
    clock = FakeClock()
    engine = engine_on(state_path, clock)
    try:
        for i in range(300):
            engine.mute(f"m{i}", clock.time() + 60)
        engine.mute("long", clock.time() + DAY)
        clock.advance(MAINTAIN_EVERY)
        engine.tick()
        assert engine.mirror.mutes == {"long": pytest.approx(clock.time() - MAINTAIN_EVERY + DAY)}
        assert engine.store.load_mutes().keys() == {"long"} and engine.mutes().keys() == {"long"}
        with Engine({}, ROUTES, state_path, retry_in_background=False, clock=clock) as other:
            assert other.mutes().keys() == {"long"}
    finally:
        engine.close()


# ---- the file shrinks --------------------------------------------------------------------------------------

def file_bytes(path) -> int:
    return path.stat().st_size


def test_a_new_file_is_incremental_and_shrinks_after_pruning(tmp_path):
    path = tmp_path / "s.db"
    store = StateStore(path)
    try:
        assert store._db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
        fill_history(store, 20_000, 1.0, detail="x" * 400)
        store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        full = file_bytes(path)
        assert full > 8_000_000
        assert store.prune_history(before=2.0, max_rows=10**6) == (20_000, False)
        assert file_bytes(path) == full  # deleting alone leaves the pages in the file
        assert store.vacuum(step=100, writes=2) == (200, True)  # bounded, when asked
        given, more = store.vacuum()
        assert given > 1000 and not more
        assert file_bytes(path) < full / 8
        assert wal_bytes(path) <= 4 << 20  # the WAL is cut back after its checkpoint too
        assert store.vacuum() == (0, False)
    finally:
        store.close()


def wal_bytes(path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def test_the_engines_upkeep_shrinks_the_file(state_path):
    clock = FakeClock()
    engine = engine_on(state_path, clock, history_max_rows=100)
    try:
        engine.tick()
        fill_history(engine.store, 20_000, clock.time(), detail="x" * 400)
        engine.store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        full = file_bytes(state_path)
        clock.advance(MAINTAIN_EVERY)
        engine.tick()
        engine.tick()
        assert history_count(state_path) == 100
        assert file_bytes(state_path) < full / 8
    finally:
        engine.close()


def old_file(path) -> None:
    """A state file as the previous version made it: no incremental vacuum, no index for `status`."""
    StateStore(path).close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP INDEX events_worst_first")
    db.execute("PRAGMA auto_vacuum=NONE")
    db.execute("VACUUM")
    db.execute("INSERT INTO history (at, event, kind, level, detail) VALUES (1, 'e', 'fired', 'error', '')")
    db.executemany("INSERT INTO history (at, event, kind, level, detail) VALUES (2, 'gone', 'fired', 'error', ?)",
                   [("x" * 400,) for _ in range(5000)])
    db.execute("DELETE FROM history WHERE event = 'gone'")  # free pages such a file keeps for ever
    assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    assert db.execute("PRAGMA freelist_count").fetchone()[0] > 400
    db.close()


def test_an_older_file_is_made_incremental_once_at_open_and_keeps_its_data(tmp_path, caplog):
    path = tmp_path / "s.db"
    old_file(path)
    caplog.set_level("INFO", logger="tray_alerts.state")
    store = StateStore(path)
    try:
        assert store._db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
        assert store._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION  # older versions still open it
        assert lines(store) == [("e", "fired")]
        assert "converted to incremental vacuum" in caplog.text
    finally:
        store.close()
    caplog.clear()
    StateStore(path).close()
    assert "converted" not in caplog.text  # once


def test_an_older_file_locked_by_another_process_opens_now_and_converts_later(tmp_path, caplog):
    path = tmp_path / "s.db"
    old_file(path)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE INDEX events_worst_first ON events (level)")  # (only the VACUUM is left to do)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        store = StateStore(path, busy_timeout=0.1)
        assert lines(store) == [("e", "fired")]
        assert store._db.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
        assert "not converted to incremental vacuum yet" in caplog.text
        with pytest.raises(StoreFault, match="locked"):
            store.vacuum()
    finally:
        other.execute("ROLLBACK")
        other.close()
        db.close()
    try:
        assert store.vacuum() == (0, False)  # nothing to give back that way: no endless loop
    finally:
        store.close()
    store = StateStore(path)
    try:
        assert store._db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
    finally:
        store.close()


# ---- memory ------------------------------------------------------------------------------------------------

def sizes(engine: Engine) -> dict[str, int]:
    """The size of every container the engine and its parts keep (per event, row or key, or fixed)."""
    found: dict[str, int] = {}
    parts = {"engine": engine, "mirror": engine.mirror, "outbox": engine.outbox, "deferral": engine.deferral,
             "storm": engine.storm, "background": engine.background, "dispatcher": engine._dispatcher,
             "store": engine.store}
    for name, part in parts.items():
        for attribute, value in vars(part).items():
            if isinstance(value, (dict, set, frozenset, list, deque)):
                found[f"{name}.{attribute}"] = len(value)
    return found


def test_events_that_came_and_went_leave_nothing_in_memory(state_path):
    clock = FakeClock()
    engine = engine_on(state_path, clock, routes={"error": ["log"]})  # info: no channel, a quicker write
    try:
        for i in range(10_000):
            level = Level.ERROR if i % 10 == 0 else Level.INFO
            engine.submit(Raise(f"event-{i}", level, "m", {"n": i}), 0)
            if i % 7 == 0:
                engine.raise_alert(f"event-{i}", level, "m")  # a repeat, counted in memory
            engine.submit(Clear(f"event-{i}"), 0)
        assert engine.wait_idle(60)
        engine.tick()
        grown = {name: size for name, size in sizes(engine).items() if size > 10}
        assert grown == {}
    finally:
        engine.close()


def test_keys_of_failed_deliveries_are_not_kept_for_ever(state_path, caplog):
    caplog.set_level("CRITICAL")
    clock = FakeClock()
    channels = {"log": FailingChannel("log", DeliveryError("refused", retryable=False))}
    engine = engine_on(state_path, clock, channels)
    try:
        for i in range(500):
            engine.submit(Raise(f"event-{i}", Level.ERROR, "m"), 0)
            engine.submit(Clear(f"event-{i}"), 0)
        assert engine.wait_idle(60)
        assert len(engine.outbox.blocked_keys()) > 10  # each failure blocks its key a while ...
        clock.advance(60)
        engine.tick()
        assert sizes(engine)["outbox._blocked"] == 0  # ... and a pass forgets the keys with nothing waiting
        engine.raise_alert("again", "error", "m")  # the channel is still tried, in order
        assert channels["log"].sent[-1].event == "again"
    finally:
        engine.close()
