import sqlite3
import stat
import time

import pytest

from tray_alerts.model import Level
from tray_alerts.state import ActiveEvent, StateError, StateStore


def test_file_is_private_and_in_wal_mode(tmp_path):
    store = StateStore(tmp_path / "deep" / "state.db")
    try:
        assert stat.S_IMODE((tmp_path / "deep" / "state.db").stat().st_mode) == 0o600
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        store.close()


def test_active_round_trip_and_told_update(tmp_path):
    path = tmp_path / "state.db"
    store = StateStore(path)
    now = time.time()
    record = ActiveEvent("e", Level.ERROR, "m", {"k": "v", "n": 1}, since=now, at=now, seen=1, last_seen=now)
    store.save_firing(record, "fired", {"slack", "sms"})
    from tray_alerts.model import Alert
    from tray_alerts.state import from_timestamp

    assert store.load_active()[0].told == {"slack", "sms"}  # until the results are in: everyone it went to
    store.queue_deliveries(Alert("e", Level.ERROR, "m", at=from_timestamp(now)), now,
                           {"slack": (True, ""), "sms": (False, "HTTP 400")}, {"slack"})
    store.close()
    reopened = StateStore(path)
    (loaded,) = reopened.load_active()
    assert (loaded.event, loaded.level, loaded.told) == ("e", Level.ERROR, {"slack"})
    assert loaded.context == {"k": "v", "n": 1}
    entries = reopened.history()
    assert [(h.kind, h.channel, h.ok) for h in entries] == [("delivery", "sms", False), ("delivery", "slack", True),
                                                             ("fired", None, None)]
    assert entries[0].detail == "HTTP 400"
    reopened.close()


def test_seen_counts_only_touch_the_same_episode(tmp_path):
    store = StateStore(tmp_path / "state.db")
    old = ActiveEvent("e", Level.INFO, "m", {}, since=1.0, at=1.0, seen=5, last_seen=2.0)
    new = ActiveEvent("e", Level.INFO, "m", {}, since=3.0, at=3.0, seen=1, last_seen=3.0)
    store.save_firing(new, "fired", set())
    store.save_seen([old])
    assert store.load_active()[0].seen == 1
    store.close()


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(StateError, match="newer tray-alerts"):
        StateStore(path)


def test_old_history_is_pruned_on_open(tmp_path):
    path = tmp_path / "state.db"
    store = StateStore(path)
    store.save_firing(ActiveEvent("old", Level.INFO, "m", {}, since=100.0, at=100.0, last_seen=100.0), "fired",
                      set())
    store.close()
    reopened = StateStore(path)
    assert reopened.history() == [] and [r.event for r in reopened.load_active()] == ["old"]
    reopened.close()


def test_a_damaged_file_is_moved_aside_and_a_fresh_one_started(tmp_path, caplog):
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not a database" * 200)
    store = StateStore(path)
    try:
        assert store.load_active() == []
    finally:
        store.close()
    (aside,) = tmp_path.glob("state.db.damaged-*")
    assert aside.read_bytes().startswith(b"this is not a database")
    assert "is damaged" in caplog.text


def test_an_old_schema_gains_the_outbox(tmp_path):
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE active (event TEXT PRIMARY KEY, level TEXT NOT NULL, message TEXT NOT NULL,"
               " context TEXT NOT NULL, since REAL NOT NULL, at REAL NOT NULL, seen INTEGER NOT NULL,"
               " last_seen REAL NOT NULL, told TEXT NOT NULL)")
    db.execute("INSERT INTO active VALUES ('e', 'error', 'm', '{}', 1, 1, 1, 1, '[]')")
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    store = StateStore(path)
    try:
        assert [r.event for r in store.load_active()] == ["e"] and store.outbox_channels("e") == set()
    finally:
        store.close()
