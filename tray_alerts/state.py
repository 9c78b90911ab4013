"""Durable state in SQLite (WAL): the active events with the channels told, the history, and the outbox."""
from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .model import Alert, Level

log = logging.getLogger(__name__)

SCHEMA_VERSION = 4  # 1: active, history; 2: + outbox; 3: + pings; 4: + mutes (all CREATE ... IF NOT EXISTS)
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
CREATE TABLE IF NOT EXISTS outbox (
    id          INTEGER PRIMARY KEY,
    channel     TEXT NOT NULL,
    event       TEXT NOT NULL,
    since       REAL NOT NULL,
    alert       TEXT NOT NULL,
    attempts    INTEGER NOT NULL,
    next_at     REAL NOT NULL,
    expires_at  REAL NOT NULL,
    lease_until REAL NOT NULL DEFAULT 0,
    last_error  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS outbox_by_key ON outbox (event, channel, id);
CREATE TABLE IF NOT EXISTS pings (
    name TEXT PRIMARY KEY,
    at   REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS mutes (
    event TEXT PRIMARY KEY,
    until REAL NOT NULL
);
"""


def from_timestamp(seconds: float) -> datetime:
    """A Unix time as an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, timezone.utc)


class StateError(Exception):
    """The state file cannot be used (locked, read-only, from a newer version)."""


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


@dataclass(frozen=True)
class OutboxEntry:
    """A delivery waiting to be retried: one alert for one channel."""

    id: int
    channel: str
    since: float
    alert: Alert
    attempts: int
    next_at: float
    expires_at: float
    last_error: str


@dataclass(frozen=True)
class ChannelHealth:
    """What the history and outbox say about one channel."""

    last_at: datetime | None
    last_ok: bool | None
    last_detail: str
    waiting: int


class StateStore:
    """One SQLite file; every method is a single short transaction and safe to call from any thread."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _touch_private(self.path)
        self._lock = threading.RLock()
        self._pending_history: list[tuple] = []
        self._pending_told: dict[tuple[str, float], str] = {}
        try:
            self._open()
        except sqlite3.OperationalError as error:  # locked, read-only, no space: not the file's fault
            raise StateError(f"{self.path}: cannot open the state file: {error}") from None
        except sqlite3.DatabaseError as error:
            aside = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
            log.error("state file %s is damaged (%s); moved aside to %s, starting afresh", self.path, error, aside)
            os.replace(self.path, aside)
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            _touch_private(self.path)
            self._open()

    def _open(self) -> None:
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except BaseException:
            self._db.close()
            raise

    def _migrate(self) -> None:
        self._queued: dict[str, int] = {}
        with self._transaction():
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StateError(f"{self.path}: written by a newer tray-alerts (schema {version}); upgrade to use it")
            if version < SCHEMA_VERSION:
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._db.execute("DELETE FROM history WHERE at < ?", (time.time() - HISTORY_KEEP_SECONDS,))
            self._queued = dict(self._db.execute("SELECT event, count(*) FROM outbox GROUP BY event").fetchall())

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

    # ---- outbox ---------------------------------------------------------------------------------------

    def add_to_outbox(self, alert: Alert, since: float, channels: dict[str, str], next_at: float,
                      expires_at: float) -> None:
        """Queue one alert for each channel (name -> why it waits), durably, behind what they already hold."""
        payload = json.dumps(alert.to_dict())
        with self._transaction():
            self._queued[alert.event] = self._queued.get(alert.event, 0) + len(channels)
            self._db.executemany(
                "INSERT INTO outbox (channel, event, since, alert, attempts, next_at, expires_at, last_error)"
                " VALUES (?, ?, ?, ?, 0, ?, ?, ?)",
                [(channel, alert.event, since, payload, next_at, expires_at, reason)
                 for channel, reason in channels.items()])

    def outbox_channels(self, event: str) -> set[str]:
        """The channels that hold queued deliveries for an event (new ones must wait behind them).

        Events with nothing queued (the usual case) are answered from memory; the count is read at open, so
        what another process queued meanwhile is seen from the next start."""
        if not self._queued.get(event):
            return set()
        with self._lock:
            return {row[0] for row in self._db.execute("SELECT DISTINCT channel FROM outbox WHERE event = ?",
                                                       (event,))}

    def lease_due(self, now: float, lease_until: float, skip: set[int], limit: int = 100) -> list[OutboxEntry]:
        """Claim the oldest entry of each channel+event that is due and not claimed by anyone else."""
        with self._transaction():
            rows = self._db.execute(
                "SELECT id, channel, since, alert, attempts, next_at, expires_at, last_error FROM outbox"
                " WHERE id IN (SELECT min(id) FROM outbox GROUP BY event, channel)"
                " AND next_at <= ? AND lease_until <= ? ORDER BY next_at LIMIT ?",
                (now, now, limit + len(skip))).fetchall()
            rows = [row for row in rows if row[0] not in skip][:limit]
            self._db.executemany("UPDATE outbox SET lease_until = ? WHERE id = ?",
                                 [(lease_until, row[0]) for row in rows])
        return [OutboxEntry(id_, channel, since, Alert.from_dict(json.loads(alert)), attempts, next_at, expires_at,
                            last_error)
                for id_, channel, since, alert, attempts, next_at, expires_at, last_error in rows]

    def next_outbox_time(self) -> float | None:
        """When the next entry falls due (or its claim runs out), if any are queued."""
        with self._lock:
            return self._db.execute("SELECT min(max(next_at, lease_until)) FROM outbox").fetchone()[0]

    def finish_outbox(self, entry: OutboxEntry, ok: bool, detail: str, drop_recoveries: bool = False) -> int:
        """Remove a delivered or abandoned entry and record why; optionally drop the recoveries queued behind a
        firing that never arrived. Returns how many recoveries were dropped."""
        kind = "recovery" if entry.alert.resolved else "delivery"
        with self._transaction():
            removed = self._db.execute("DELETE FROM outbox WHERE id = ?", (entry.id,)).rowcount
            self._add_history(time.time(), entry.alert.event, kind, entry.alert.level, entry.alert.message,
                              entry.channel, ok, detail)
            dropped = 0
            if drop_recoveries:
                dropped = self._db.execute(
                    "DELETE FROM outbox WHERE channel = ? AND event = ? AND since = ? AND id > ?"
                    " AND json_extract(alert, '$.resolved')", (entry.channel, entry.alert.event, entry.since, entry.id)
                ).rowcount
            self._queued[entry.alert.event] = max(0, self._queued.get(entry.alert.event, 0) - removed - dropped)
            return dropped

    def reschedule_outbox(self, entry: OutboxEntry, next_at: float, error: str) -> None:
        """Count a failed retry and set the next one."""
        kind = "recovery" if entry.alert.resolved else "delivery"
        with self._transaction():
            self._db.execute("UPDATE outbox SET attempts = attempts + 1, next_at = ?, lease_until = 0,"
                             " last_error = ? WHERE id = ?", (next_at, error, entry.id))
            self._add_history(time.time(), entry.alert.event, kind, entry.alert.level, entry.alert.message,
                              entry.channel, False, f"retry {entry.attempts + 1} failed: {error}")

    def release_held(self, reason_prefix: str, event: str | None = None) -> None:
        """Make entries held for a reason (a snooze, or one event's mute) due now."""
        with self._transaction():
            self._db.execute("UPDATE outbox SET next_at = ? WHERE last_error LIKE ? AND attempts = 0"
                             " AND (? IS NULL OR event = ?)", (time.time(), reason_prefix + "%", event, event))

    # ---- mutes ---------------------------------------------------------------------------------------------

    def save_mute(self, event: str, until: float | None) -> None:
        """Remember (or forget) that an event is muted until a time."""
        with self._transaction():
            if until is None:
                self._db.execute("DELETE FROM mutes WHERE event = ?", (event,))
            else:
                self._db.execute("INSERT OR REPLACE INTO mutes VALUES (?, ?)", (event, until))

    def load_mutes(self, now: float) -> dict[str, float]:
        """The mutes still in force (expired ones are forgotten)."""
        with self._transaction():
            self._db.execute("DELETE FROM mutes WHERE until <= ?", (now,))
            return dict(self._db.execute("SELECT event, until FROM mutes").fetchall())

    def queue_note(self, alert: Alert, kind: str, detail: str) -> None:
        """A history line about an event that is not a delivery (a reminder, a storm summary)."""
        with self._lock:
            self._pending_history.append((time.time(), alert.event, kind, alert.level.value, alert.message, None,
                                          None, detail))

    def release_leases(self, ids: set[int]) -> None:
        """Give back claims (on shutdown) so the next start retries these at once."""
        if ids:
            with self._transaction():
                self._db.executemany("UPDATE outbox SET lease_until = 0 WHERE id = ?", [(i,) for i in ids])

    def channel_health(self) -> dict[str, ChannelHealth]:
        """Per channel: its latest delivery result and how many deliveries wait in the outbox."""
        self.flush()
        with self._lock:
            last = self._db.execute(
                "SELECT channel, at, ok, detail FROM history WHERE id IN"
                " (SELECT max(id) FROM history WHERE channel IS NOT NULL GROUP BY channel)").fetchall()
            waiting = dict(self._db.execute("SELECT channel, count(*) FROM outbox GROUP BY channel").fetchall())
        health = {channel: ChannelHealth(from_timestamp(at), bool(ok), detail, waiting.get(channel, 0))
                  for channel, at, ok, detail in last}
        for channel, count in waiting.items():
            health.setdefault(channel, ChannelHealth(None, None, "", count))
        return health

    # ---- heartbeat pings ------------------------------------------------------------------------------

    def record_ping(self, name: str, at: float) -> None:
        """Remember the latest ping of a heartbeat."""
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO pings VALUES (?, ?)", (name, at))

    def last_ping(self, name: str) -> float | None:
        """When the heartbeat was last pinged, if ever."""
        with self._lock:
            row = self._db.execute("SELECT at FROM pings WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    # ---- history ------------------------------------------------------------------------------------

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
