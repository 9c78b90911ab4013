"""The state file: private, WAL, one transaction per write with a revision other processes notice, reads that
never wait on a writer, and files from earlier versions carried over."""
import json
import sqlite3
import stat
from dataclasses import replace

import pytest

from conftest import SCHEMA_6, back_to_schema
from tray_alerts import state as state_module
from tray_alerts.lifecycle import ActiveEvent
from tray_alerts.model import Alert, Level
from tray_alerts.pipeline import Delivery
from tray_alerts.state import _WORST_FIRST, StateError, StateStore, StoreFault


def record(event="e", since=1.0, episode="ep1", **changes) -> ActiveEvent:
    fields = dict(level=Level.ERROR, message="m", context={"k": "v", "n": 1}, since=since, at=since, seen=1,
                  last_seen=since, told=frozenset({"slack"}), episode=episode)
    fields.update(changes)
    return ActiveEvent(event, **fields)


def test_file_and_folder_are_private_and_in_wal_mode(tmp_path):
    store = StateStore(tmp_path / "deep" / "state.db")
    try:
        assert stat.S_IMODE((tmp_path / "deep" / "state.db").stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "deep").stat().st_mode) == 0o700
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        store.close()


def test_events_round_trip_and_every_write_bumps_the_revision(tmp_path):
    path = tmp_path / "state.db"
    store = StateStore(path)
    with store.write() as tx:
        tx.put_event(record())
        tx.history(1.0, "e", "fired", Level.ERROR, "m")
    assert store.revision() == 1 and store.changes_since(0).events == {"e"}
    with store.write() as tx:
        tx.delete_event("other", 2.0)
    assert store.changes_since(1).events == {"other"} and store.changes_since(2).events == frozenset()
    store.close()
    reopened = StateStore(path)
    (loaded,) = reopened.load_active()
    assert (loaded.event, loaded.level, loaded.told, loaded.episode) == ("e", Level.ERROR, {"slack"}, "ep1")
    assert loaded.context == {"k": "v", "n": 1}
    assert [(h.kind, h.event) for h in reopened.history()] == [("fired", "e")]
    reopened.close()


def test_a_reader_far_behind_is_told_to_reload_everything(tmp_path):
    store = StateStore(tmp_path / "state.db")
    for i in range(3):
        with store.write() as tx:
            tx.put_event(record(f"e{i}"))
    with store.write() as tx:
        tx.db.execute("DELETE FROM changes WHERE rev <= 2")  # the change log was trimmed
    assert store.changes_since(0).events is None and store.changes_since(2).events == {"e2"}
    store.close()


def test_seen_counts_only_touch_the_same_episode(tmp_path):
    store = StateStore(tmp_path / "state.db")
    with store.write() as tx:
        tx.put_event(record(episode="new", seen=1))
        assert tx.add_seen("e", "old", 5, 9.0) is False
        assert tx.add_seen("e", "new", 2, 9.0) is True
    assert store.load_active()[0].seen == 3
    store.close()


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    store = StateStore(tmp_path / "state.db")
    with pytest.raises(RuntimeError):
        with store.write() as tx:
            tx.put_event(record())
            raise RuntimeError("a bug between two statements")
    assert store.load_active() == [] and store.revision() == 0
    store.close()


def test_reads_and_opening_do_not_wait_for_another_processes_write(tmp_path):
    path = tmp_path / "state.db"
    StateStore(path).close()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        store = StateStore(path, busy_timeout=0.2)
        assert store.load_active() == [] and store.history() == [] and store.channel_health() == {}
        with pytest.raises(StoreFault, match="state.db: locked by another process"):
            with store.write():
                pass
        store.close()
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_rows_keep_their_order_per_channel_event_and_recipient(tmp_path):
    store = StateStore(tmp_path / "state.db")
    alert = Alert("e", Level.ERROR, "m")
    with store.write() as tx:
        first = tx.insert(Delivery(0, "sms", "e", "ep", "firing", alert, "+1", not_before=5.0, expires_at=99))
        tx.insert(Delivery(0, "sms", "e", "ep", "recovery", alert, "+1", not_before=0.0, expires_at=99))
        other = tx.insert(Delivery(0, "sms", "e", "ep", "firing", alert, "+2", not_before=0.0, expires_at=99))
        assert [row.id for row in tx.due(1.0, 10)] == [other.id]  # +1's recovery waits behind its firing
        assert [row.id for row in tx.due(5.0, 10)] == [other.id, first.id]
    store.close()


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(StateError, match="newer tray-alerts"):
        StateStore(path)


def test_a_state_folder_that_is_a_file_is_one_clear_error(tmp_path):
    (tmp_path / "state").write_text("not a folder")
    with pytest.raises(StateError, match="not a folder"):
        StateStore(tmp_path / "state" / "state.db")


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


def test_a_schema_4_file_is_carried_over(tmp_path):
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE active (event TEXT PRIMARY KEY, level TEXT NOT NULL, message TEXT NOT NULL,
            context TEXT NOT NULL, since REAL NOT NULL, at REAL NOT NULL, seen INTEGER NOT NULL,
            last_seen REAL NOT NULL, told TEXT NOT NULL);
        CREATE TABLE history (id INTEGER PRIMARY KEY, at REAL NOT NULL, event TEXT NOT NULL, kind TEXT NOT NULL,
            level TEXT NOT NULL, message TEXT NOT NULL DEFAULT '', channel TEXT, ok INTEGER,
            detail TEXT NOT NULL DEFAULT '');
        CREATE TABLE outbox (id INTEGER PRIMARY KEY, channel TEXT NOT NULL, event TEXT NOT NULL,
            since REAL NOT NULL, alert TEXT NOT NULL, attempts INTEGER NOT NULL, next_at REAL NOT NULL,
            expires_at REAL NOT NULL, lease_until REAL NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '');
        CREATE TABLE mutes (event TEXT PRIMARY KEY, until REAL NOT NULL);
        INSERT INTO active VALUES ('e', 'error', 'm', '{}', 1, 1, 4, 2, '["slack"]');
        INSERT INTO history (at, event, kind, level) VALUES (1, 'e', 'fired', 'error');
        INSERT INTO mutes VALUES ('e', 9e9);
        PRAGMA user_version=4;
    """)
    alert = json.dumps(Alert("e", Level.ERROR, "m", resolved=True).to_dict())
    db.execute("INSERT INTO outbox VALUES (1, 'slack', 'e', 1, ?, 2, 50, 99, 0, 'HTTP 500')", (alert,))
    db.commit()
    db.close()
    store = StateStore(path)
    try:
        (event,) = store.load_active()
        assert (event.event, event.seen, event.told, event.episode) == ("e", 4, {"slack"}, "e@1.000000")
        (row,) = store.pending()
        assert (row.channel, row.kind, row.hold, row.attempts, row.not_before) == ("slack", "recovery", "retry", 2, 50)
        assert row.episode == event.episode and store.load_mutes() == {"e": 9e9}
        assert [h.kind for h in store.history()] == ["fired"]
    finally:
        store.close()


# ---- reading many events fast: the worst for `status`, every one at start-up -------------------------------

def test_worst_active_is_the_worst_level_then_the_oldest_and_a_count_of_all(tmp_path):
    store = StateStore(tmp_path / "state.db")
    levels = [Level.INFO, Level.WARNING, Level.ERROR, Level.CRITICAL]
    try:
        with store.write() as tx:
            for i in range(200):
                tx.put_event(record(f"e{i:03}", since=float(1000 - i % 50), episode=f"ep{i}", level=levels[i % 4]))
        everything = sorted(store.load_active(), key=lambda r: (-r.level.rank, r.since, r.event))
        worst, total = store.worst_active(5)
        assert total == 200 and [r.event for r in worst] == [r.event for r in everything[:5]]
        assert all(r.level is Level.CRITICAL for r in worst) and worst[0].since <= worst[-1].since
        every, total = store.worst_active(None)
        assert total == 200 and [r.event for r in every] == [r.event for r in everything]
        assert store.worst_active(0) == ([], 200)
        assert [r.event for r in store.worst_active()[0]] == [r.event for r in every[:50]]  # 50 by default
        plan = " ".join(str(row) for row in store._reader.execute(
            "EXPLAIN QUERY PLAN SELECT event FROM events ORDER BY " + _WORST_FIRST + ", since, event LIMIT 50"))
        assert "events_worst_first" in plan and "TEMP B-TREE" not in plan  # read in order from the index
    finally:
        store.close()
    assert StateStore(tmp_path / "empty.db").worst_active() == ([], 0)


def test_an_older_file_gets_the_index_at_open(tmp_path):
    path = tmp_path / "state.db"
    StateStore(path).close()
    db = sqlite3.connect(path)
    db.execute("DROP INDEX events_worst_first")
    db.close()
    store = StateStore(path)
    try:
        assert store._read("SELECT name FROM sqlite_master WHERE name = 'events_worst_first'")
    finally:
        store.close()


def test_events_read_back_are_the_events_written_whatever_their_context(tmp_path):
    store = StateStore(tmp_path / "state.db")
    contexts = [{}, {"k": "v", "n": 1}, {"ünï": "cödé ✓", "nested": {"list": [1, 2.5, None, True]}}, {"s": " "}]
    written = [record(f"e{i}", since=1.5 + i, episode=f"ep{i}", context=context, told=frozenset({"a", "b"} if i
               else set()), acknowledged_at=None if i % 2 else 7.25, reminded_at=float(i))
               for i, context in enumerate(contexts)]
    try:
        with store.write() as tx:
            for one in written:
                tx.put_event(one)
            tx.db.execute("UPDATE events SET context = ' { \"spaced\" : 1 } ' WHERE event = 'e3'")  # not json.dumps'
        written[3] = replace(written[3], context={"spaced": 1})
        with store.write() as tx:
            in_tx = tx.events()
        for loaded in (store.load_active(), list(in_tx.values()), store.worst_active(None)[0]):
            by_name = {r.event: r for r in loaded}
            for one in written:
                got = by_name[one.event]
                assert type(got) is ActiveEvent and vars(got) == vars(one)
                assert replace(got, seen=9).seen == 9 and got.alert().context == dict(one.context)
                with pytest.raises(AttributeError):
                    got.seen = 2  # still frozen
        assert state_module._FILL_IN_PLACE  # (the quick way is the one tested)
    finally:
        store.close()


def test_dependencies_round_trip_and_the_inhibited_are_found_by_their_parent(tmp_path):
    store = StateStore(tmp_path / "state.db")
    try:
        with store.write() as tx:
            tx.put_event(record("child", depends_on=("network", "vpn"), inhibited_by="network"))
            tx.put_event(record("other", episode="ep2", inhibited_by="vpn"))
            tx.put_event(record("network", episode="ep3"))
        (child,) = [r for r in store.load_active() if r.event == "child"]
        assert (child.depends_on, child.inhibited_by) == (("network", "vpn"), "network")
        with store.write() as tx:
            assert [r.event for r in tx.inhibited_by("network")] == ["child"]
            assert tx.inhibited_by("nothing") == [] and tx.event("network").depends_on == ()
    finally:
        store.close()


def test_a_schema_6_file_gains_dependencies_and_keeps_its_events(tmp_path):
    path = tmp_path / "state.db"
    store = StateStore(path)
    with store.write() as tx:
        tx.put_event(record("disk", acknowledged_at=5.0))
    store.close()
    back_to_schema(path, SCHEMA_6)
    store = StateStore(path)
    try:
        (event,) = store.load_active()
        assert (event.event, event.acknowledged_at, event.depends_on, event.inhibited_by) == ("disk", 5.0, (), None)
        assert store._reader.execute("PRAGMA user_version").fetchone()[0] == 7
        with store.write() as tx:
            tx.put_event(record("child", episode="ep9", inhibited_by="disk"))
            assert [r.event for r in tx.inhibited_by("disk")] == ["child"]
    finally:
        store.close()


def test_rows_held_for_quiet_hours_count_as_held_not_as_waiting_to_retry(tmp_path):
    from tray_alerts.pipeline import HOLD_QUIET, HOLD_RETRY

    store = StateStore(tmp_path / "state.db")
    alert = Alert("e", Level.WARNING, "m")
    try:
        with store.write() as tx:
            tx.insert(Delivery(0, "email", "e", "ep", "firing", alert, hold=HOLD_QUIET, not_before=9e9, expires_at=9e9))
            tx.insert(Delivery(0, "slack", "e", "ep", "firing", alert, hold=HOLD_RETRY, not_before=9e9, expires_at=9e9))
        health = store.channel_health()
        assert (health["email"].held, health["email"].waiting) == (1, 0)
        assert (health["slack"].held, health["slack"].waiting) == (0, 1)
    finally:
        store.close()
