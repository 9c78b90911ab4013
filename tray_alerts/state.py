"""Durable state in SQLite (WAL): the active events with the channels told, and the history."""
from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .model import Alert, Level

SCHEMA_VERSION = 1
HISTORY_KEEP_SECONDS = 90 * 24 * 3600

_SCHEMA = """
CREATE TABLE IF NOT EXISTS active (
    event     TEXT PRIMARY KEY,
    level     TEXT NOT NULL,
    message   TEXT NOT NULL,
    context   TEXT NOT NULL,
    since     REAL NOT NULL,
    at        REAL NOT NULL,
    seen      INTEGER NOT NULL,
    last_seen REAL NOT NULL,
    told      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    id       INTEGER PRIMARY KEY,
    at       REAL NOT NULL,
    event    TEXT NOT NULL,
    kind     TEXT NOT NULL,
    level    TEXT NOT NULL,
    message  TEXT NOT NULL DEFAULT '',
    channel  TEXT,
    ok       INTEGER,
    detail   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS history_by_event ON history (event, id);
"""


def from_timestamp(seconds: float) -> datetime:
    """A Unix time as an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, timezone.utc)


@dataclass(eq=False)
class ActiveEvent:
    """An event that is firing: what was sent, since when, how often it repeated, who was told."""

    event: str
    level: Level
    message: str
    context: dict
    since: float
    at: float
    seen: int = 1
    last_seen: float = 0.0
    told: set[str] = field(default_factory=set)

    def alert(self) -> Alert:
        """The firing as an Alert (the latest firing or escalation)."""
        return Alert(self.event, self.level, self.message, dict(self.context), from_timestamp(self.at))


@dataclass(frozen=True)
class HistoryEntry:
    """One line of history: a firing, escalation, clear or delivery result."""

    id: int
    at: datetime
    event: str
    kind: str
    level: Level
    message: str
    channel: str | None
    ok: bool | None
    detail: str


class StateStore:
    """One SQLite file; every method is a single short transaction and safe to call from any thread."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _touch_private(self.path)
        self._lock = threading.RLock()
        self._pending_history: list[tuple] = []
        self._pending_told: dict[tuple[str, float], str] = {}
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        with self._transaction():
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(f"{self.path}: state written by a newer tray-alerts (schema {version})")
            if version < SCHEMA_VERSION:
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._db.execute("DELETE FROM history WHERE at < ?", (time.time() - HISTORY_KEEP_SECONDS,))

    def _transaction(self) -> _Transaction:
        return _Transaction(self)

    def load_active(self) -> list[ActiveEvent]:
        """Every active event as stored."""
        with self._lock:
            rows = self._db.execute(
                "SELECT event, level, message, context, since, at, seen, last_seen, told FROM active"
            ).fetchall()
        return [
            ActiveEvent(event, Level.parse(level), message, json.loads(context), since, at, seen, last_seen,
                        set(json.loads(told)))
            for event, level, message, context, since, at, seen, last_seen, told in rows
        ]

    def save_firing(self, record: ActiveEvent, kind: str, told: set[str]) -> None:
        """Store a firing or escalation and its history line in one transaction.

        `told` is written as the channels that will know once delivery is done (those told before and those
        about to be sent to): should the process die mid-delivery, a recovery still reaches every channel
        that may have seen the firing. queue_deliveries narrows it to the real result.
        """
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO active VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.event, record.level.value, record.message, json.dumps(record.context), record.since,
                 record.at, record.seen, record.last_seen, json.dumps(sorted(told))),
            )
            self._add_history(record.at, record.event, kind, record.level, record.message)

    def save_clear(self, record: ActiveEvent, message: str, at: float) -> None:
        """Remove an active event and record the clear."""
        with self._transaction():
            self._db.execute("DELETE FROM active WHERE event = ?", (record.event,))
            self._flush_seen(record)
            self._add_history(at, record.event, "cleared", record.level, message,
                              detail=f"active since {record.since:.3f}, seen {record.seen} times")

    def queue_deliveries(self, alert: Alert, since: float, results: dict[str, tuple[bool, str]],
                         told: set[str] | None) -> None:
        """Record each channel's result for one alert, and the channels told of the episode `since`.

        Written with the next transaction or by flush(): the firing itself is already durable, and
        batching keeps a raise+clear cycle at two commits.
        """
        kind = "recovery" if alert.resolved else "delivery"
        now = time.time()
        with self._lock:
            self._pending_history.extend(
                (now, alert.event, kind, alert.level.value, alert.message, channel, int(ok), detail)
                for channel, (ok, detail) in results.items())
            if told is not None:
                self._pending_told[(alert.event, since)] = json.dumps(sorted(told))

    def flush(self) -> None:
        """Write queued delivery results now."""
        self.save_seen([])

    def _write_pending(self) -> None:
        """Inside a transaction: write queued results first, so history stays in order."""
        if self._pending_history:
            self._db.executemany(
                "INSERT INTO history (at, event, kind, level, message, channel, ok, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", self._pending_history)
        if self._pending_told:
            self._db.executemany("UPDATE active SET told = ? WHERE event = ? AND since = ?",
                                 [(told, event, since) for (event, since), told in self._pending_told.items()])

    def _pending_written(self) -> None:
        """After a commit: what was queued is on disk."""
        self._pending_history = []
        self._pending_told = {}

    def save_seen(self, records: list[ActiveEvent]) -> None:
        """Write the repeat counters of debounced events (and anything queued)."""
        with self._lock:
            if not records and not self._pending_history and not self._pending_told:
                return
        with self._transaction():
            for record in records:
                self._flush_seen(record)

    def history(self, limit: int = 50, event: str | None = None) -> list[HistoryEntry]:
        """The newest history entries first."""
        query = "SELECT id, at, event, kind, level, message, channel, ok, detail FROM history"
        args: tuple = ()
        if event is not None:
            query, args = query + " WHERE event = ?", (event,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [
            HistoryEntry(id_, from_timestamp(at), ev, kind, Level.parse(level), message, channel,
                         None if ok is None else bool(ok), detail)
            for id_, at, ev, kind, level, message, channel, ok, detail in rows
        ]

    def close(self) -> None:
        """Write what is queued and close the database (a checkpoint folds the WAL back into the file)."""
        with self._lock:
            try:
                self.flush()
            finally:
                self._db.close()

    def _flush_seen(self, record: ActiveEvent) -> None:
        self._db.execute("UPDATE active SET seen = ?, last_seen = ? WHERE event = ? AND since = ?",
                         (record.seen, record.last_seen, record.event, record.since))

    def _add_history(self, at: float, event: str, kind: str, level: Level, message: str,
                     channel: str | None = None, ok: bool | None = None, detail: str = "") -> None:
        self._db.execute(
            "INSERT INTO history (at, event, kind, level, message, channel, ok, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (at, event, kind, level.value, message, channel, None if ok is None else int(ok), detail),
        )


class _Transaction:
    """`with` block: hold the store's lock, BEGIN IMMEDIATE (+ queued results), COMMIT or ROLLBACK."""

    def __init__(self, store: StateStore):
        self._store = store
        self._db, self._lock = store._db, store._lock

    def __enter__(self) -> None:
        self._lock.acquire()
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._store._write_pending()
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            self._lock.release()
            raise

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type:
                self._db.execute("ROLLBACK")
            else:
                self._db.execute("COMMIT")
                self._store._pending_written()
        finally:
            self._lock.release()


def _touch_private(path: Path) -> None:
    """Create the file readable by its owner only (history may hold private context)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    if os.name == "posix":
        os.chmod(path, 0o600)
