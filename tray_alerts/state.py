"""Durable state in SQLite (WAL), the one truth across processes: the firing events, every notification as an
outbox row, the history, mutes, pings. Reads use a connection of their own and never wait on a writer; every
write is one short transaction (`with store.write() as tx:`) that also bumps a revision, so other processes
notice it and reload what changed."""
from __future__ import annotations

import dataclasses
import errno
import gc
import json
import logging
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from .clock import SYSTEM_CLOCK, Clock
from .lifecycle import ActiveEvent
from .model import Alert, Level, from_timestamp
from .paths import FolderError, private_folder
from .pipeline import HOLD_GROUP, HOLD_MUTE, HOLD_NONE, HOLD_QUIET, HOLD_SNOOZE, Delivery

log = logging.getLogger(__name__)

SCHEMA_VERSION = 7  # 1: active, history; 2: + outbox; 3: + pings; 4: + mutes; 5: events, changes, outbox rows;
# 6: + events.acknowledged_at; 7: + events.depends_on, events.inhibited_by, readings. Not bumped for what an older
# version reads and writes as well (so it can still open the file): the index events_worst_first and incremental
# auto-vacuum, each added at open when missing.
CHANGES_KEEP = 10_000  # revisions of the change log kept; a reader further behind reloads everything
PENDING, DELIVERED, FAILED, DROPPED = "pending", "delivered", "failed", "dropped"
DEFAULT_BUSY_TIMEOUT = 2.0
PRUNE_BATCH = 5000  # rows (ids) one pruning write looks at: each write holds the lock a few milliseconds
VACUUM_STEP = 1000  # pages one incremental-vacuum write gives back (4 MiB at SQLite's default page size)
VACUUM_KEEP_FREE = 256  # free pages left in the file for writes to reuse (1 MiB)
WAL_SIZE_LIMIT = 4 << 20  # bytes the WAL file is cut back to after a checkpoint (else it keeps its largest size)
_INCREMENTAL = 2  # PRAGMA auto_vacuum's value for INCREMENTAL

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    event       TEXT PRIMARY KEY,
    episode     TEXT NOT NULL,
    level       TEXT NOT NULL,
    message     TEXT NOT NULL,
    context     TEXT NOT NULL,
    since       REAL NOT NULL,
    at          REAL NOT NULL,
    seen        INTEGER NOT NULL,
    last_seen   REAL NOT NULL,
    told        TEXT NOT NULL,
    reminded_at REAL NOT NULL DEFAULT 0,
    acknowledged_at REAL,
    depends_on  TEXT NOT NULL DEFAULT '[]',
    inhibited_by TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_inhibited ON events (inhibited_by) WHERE inhibited_by IS NOT NULL;
CREATE TABLE IF NOT EXISTS changes (
    rev   INTEGER PRIMARY KEY,
    event TEXT NOT NULL,
    at    REAL NOT NULL
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
    detail   TEXT NOT NULL DEFAULT '',
    delivery INTEGER
);
CREATE INDEX IF NOT EXISTS history_by_event ON history (event, id);
CREATE TABLE IF NOT EXISTS outbox (
    id              INTEGER PRIMARY KEY,
    channel         TEXT NOT NULL,
    recipient       TEXT NOT NULL DEFAULT '',
    event           TEXT NOT NULL,
    episode         TEXT NOT NULL,
    kind            TEXT NOT NULL,
    alert           TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending',
    hold            TEXT NOT NULL DEFAULT '',
    not_before      REAL NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    expires_at      REAL NOT NULL,
    created_at      REAL NOT NULL,
    lease_until     REAL NOT NULL DEFAULT 0,
    lease_owner     TEXT NOT NULL DEFAULT '',
    in_flight       INTEGER NOT NULL DEFAULT 0,
    possible_repeat INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT NOT NULL DEFAULT '',
    done_at         REAL
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (event, channel, recipient, id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS outbox_firings ON outbox (event, episode, channel) WHERE kind IN ('firing', 'escalation');
CREATE TABLE IF NOT EXISTS pings (
    name TEXT PRIMARY KEY,
    at   REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS mutes (
    event TEXT PRIMARY KEY,
    until REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS readings (
    monitor TEXT NOT NULL,
    at      REAL NOT NULL,
    span    REAL NOT NULL,
    value   REAL,
    low     REAL,
    high    REAL,
    count   INTEGER NOT NULL,
    valued  INTEGER NOT NULL,
    bad     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS readings_by_monitor ON readings (monitor, at);
"""
# worst level first (ascending, so that the index and ORDER BY agree): critical 0 ... info 3, anything else after
_WORST_FIRST = ("CASE level " + " ".join(f"WHEN '{level.value}' THEN {rank}"
                                         for rank, level in enumerate(reversed(Level))) + f" ELSE {len(Level)} END")
_WORST_FIRST_INDEX = f"CREATE INDEX IF NOT EXISTS events_worst_first ON events ({_WORST_FIRST}, since)"

_SCHEMA_4 = """
CREATE TABLE IF NOT EXISTS active (event TEXT PRIMARY KEY, level TEXT NOT NULL, message TEXT NOT NULL,
    context TEXT NOT NULL, since REAL NOT NULL, at REAL NOT NULL, seen INTEGER NOT NULL, last_seen REAL NOT NULL,
    told TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS history (id INTEGER PRIMARY KEY, at REAL NOT NULL, event TEXT NOT NULL, kind TEXT NOT NULL,
    level TEXT NOT NULL, message TEXT NOT NULL DEFAULT '', channel TEXT, ok INTEGER, detail TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY, channel TEXT NOT NULL, event TEXT NOT NULL,
    since REAL NOT NULL, alert TEXT NOT NULL, attempts INTEGER NOT NULL, next_at REAL NOT NULL,
    expires_at REAL NOT NULL, lease_until REAL NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS pings (name TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS mutes (event TEXT PRIMARY KEY, until REAL NOT NULL);
"""

_DELIVERY_COLUMNS = ("id, channel, event, episode, kind, alert, recipient, attempts, not_before, hold, expires_at,"
                     " created_at, last_error, possible_repeat")
# schema 5 wrote holds, storm drops and interruptions as failed lines; they say nothing about the channel
_HOLD_LINES_ARE_NOT_FAILURES = ("UPDATE history SET ok = NULL WHERE ok = 0 AND channel IS NOT NULL AND"
                                " (detail LIKE 'held %' OR detail LIKE 'grouped with others%'"
                                " OR detail LIKE 'attempt % interrupted%')")
_EVENT_COLUMNS = ("event, level, message, context, since, at, seen, last_seen, told, reminded_at, episode,"
                  " acknowledged_at, depends_on, inhibited_by")
_EVENT_PLACEHOLDERS = ", ".join("?" * len(_EVENT_COLUMNS.split(",")))
_SCHEMA_7_COLUMNS = ("ALTER TABLE events ADD COLUMN depends_on TEXT NOT NULL DEFAULT '[]'",
                     "ALTER TABLE events ADD COLUMN inhibited_by TEXT")
_REVISION = "SELECT coalesce(max(rev), 0) FROM changes"


class StateError(Exception):
    """The state file cannot be used at all (from a newer version, not a folder, cannot be created)."""


class StoreFault(Exception):
    """A write that did not happen for a reason outside the file (disk full, locked, read-only); `reason` is
    one line such as `state.db: disk full`."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


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
class ChannelHealth:
    """What the history and outbox say about one channel."""

    last_at: datetime | None
    last_ok: bool | None
    last_detail: str
    waiting: int  # notifications waiting to be retried after a failure
    held: int = 0  # notifications held by a snooze, a mute, grouping or quiet hours (not a failure)


@dataclass(frozen=True)
class Changes:
    """What other writers changed since a revision: the events touched (None: too many, reload all)."""

    rev: int
    events: frozenset[str] | None
    changed_at: Mapping[str, float] = field(default_factory=dict)  # per event, when it was last changed


def describe_fault(path: Path, error: BaseException) -> str:
    """One line naming the state file and what is wrong with writing it."""
    text = str(error).lower()
    if "full" in text or getattr(error, "errno", None) == errno.ENOSPC:
        problem = "disk full"
    elif "locked" in text or "busy" in text:
        problem = "locked by another process"
    elif "readonly" in text or "read-only" in text or "permission" in text:
        problem = "read-only"
    else:
        problem = str(error)
    return f"{path.name}: {problem}"


class StateStore:
    """One SQLite file, shared by every process of a user; safe to use from any thread."""

    def __init__(self, path: str | Path, clock: Clock = SYSTEM_CLOCK, busy_timeout: float = DEFAULT_BUSY_TIMEOUT):
        self.path = Path(path).expanduser()
        self.clock = clock
        self.busy_timeout = busy_timeout
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self.riders: list[Callable[[Transaction], None]] = []  # run first in every write (buffered answers ride)
        try:
            _private_folder(self.path.parent)
            _touch_private(self.path)
        except OSError as error:
            raise StateError(f"{self.path}: cannot create the state file: {error.strerror or error}") from None
        try:
            self._open()
        except sqlite3.OperationalError as error:  # locked, read-only, no space: not the file's fault
            raise StateError(f"{self.path}: cannot open the state file: {describe_fault(self.path, error)}") from None
        except sqlite3.DatabaseError as error:
            aside = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
            log.error("state file %s is damaged (%s); moved aside to %s, starting afresh", self.path, error, aside)
            os.replace(self.path, aside)
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            _touch_private(self.path)
            self._open()

    def _open(self) -> None:
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                   timeout=self.busy_timeout)
        self._reader = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=5.0)
        self._timeout_set = int(1000 * self.busy_timeout)
        try:
            for db in (self._db, self._reader):
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            if self._db.execute("PRAGMA page_count").fetchone()[0] == 0:  # a new file: incremental before its
                try:  # first table (an older one: _make_incremental)
                    self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
                except sqlite3.OperationalError:
                    pass  # another process is making it just now (and makes it incremental)
            if self._db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                self._db.execute("PRAGMA journal_mode=WAL")
            self._migrate()
            self._add_index()
            self._make_incremental()
        except BaseException:
            self._db.close()
            self._reader.close()
            raise

    def _migrate(self) -> None:
        version = self._reader.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StateError(f"{self.path}: written by a newer tray-alerts (schema {version}); upgrade to use it")
        if version == SCHEMA_VERSION:
            return
        with self.write() as tx:
            version = tx.db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                _run_script(tx.db, _SCHEMA)
            elif version < 5:
                _from_schema_4(tx.db, self.clock.time())
            else:  # each step from the file's schema on
                if version == 5:
                    tx.db.execute("ALTER TABLE events ADD COLUMN acknowledged_at REAL")
                    tx.db.execute(_HOLD_LINES_ARE_NOT_FAILURES)
                if version <= 6:
                    for statement in _SCHEMA_7_COLUMNS:
                        tx.db.execute(statement)
                    _run_script(tx.db, _SCHEMA)  # what it lacks besides: the readings table, the indexes
            tx.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _add_index(self) -> None:
        """The index `worst_active` reads (files from before it get it at their first open)."""
        if not self._read("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'events_worst_first'"):
            with self.write() as tx:
                tx.db.execute(_WORST_FIRST_INDEX)

    def _make_incremental(self) -> None:
        """Once per file made before incremental auto-vacuum: switch it on, which takes a full VACUUM (outside
        any transaction); if that cannot be done now (locked, no room for the copy), the next open tries again."""
        if self._db.execute("PRAGMA auto_vacuum").fetchone()[0] == _INCREMENTAL:
            return
        size = _file_size(self.path)
        started = time.monotonic()
        with self._write_lock:
            try:
                self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
                self._db.execute("VACUUM")
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.OperationalError as error:
                log.warning("state file %s: not converted to incremental vacuum yet (%s); trying again at the next"
                            " start", self.path, describe_fault(self.path, error))
                return
        log.info("state file %s converted to incremental vacuum in %.1f s (%s -> %s bytes), once", self.path,
                 time.monotonic() - started, size, _file_size(self.path))

    # ---- keeping the file small ----------------------------------------------------------------------------

    def prune_history(self, before: float, max_rows: int, batch: int = PRUNE_BATCH,
                      writes: int | None = None) -> tuple[int, bool]:
        """Forget history older than `before`, and beyond the newest `max_rows` lines, looking at `batch` ids per
        write (a short lock each) and making at most `writes` writes. Kept whatever their age: the lines of the
        episodes still firing (since their start) and each channel's latest result (what `status` shows of the
        channel). Returns (lines deleted, whether there is more to do)."""
        with self._read_lock:
            self._reader.execute("BEGIN")
            try:
                low = self._reader.execute("SELECT min(id) FROM history").fetchone()[0]
                over = self._reader.execute("SELECT id FROM history ORDER BY id DESC LIMIT 1 OFFSET ?",
                                            (max(0, max_rows),)).fetchone()  # it and older ones: beyond the cap
                old = self._reader.execute("SELECT max(id) FROM history WHERE at < ?", (before,)).fetchone()[0]
                keep = [id_ for (id_,) in self._reader.execute(
                    "SELECT max(id) FROM history WHERE channel IS NOT NULL AND ok IS NOT NULL GROUP BY channel")]
            finally:
                self._reader.execute("COMMIT")
        cap = over[0] if over else 0
        last = max(cap, old or 0)  # no line after this one goes
        if low is None or last < low:
            return 0, False
        kept = f" AND id NOT IN ({', '.join(map(str, keep))})" if keep else ""
        query = ("DELETE FROM history WHERE id >= ? AND id < ? AND (at < ? OR id <= ?)" + kept +
                 " AND NOT EXISTS (SELECT 1 FROM events WHERE events.event = history.event"
                 " AND history.at >= events.since)")
        return self._in_windows("history", low, last, batch, writes,
                                lambda tx, start, end: tx.db.execute(query, (start, end, before, cap)).rowcount)

    def prune_done(self, before: float, batch: int = PRUNE_BATCH, writes: int | None = None) -> tuple[int, bool]:
        """Forget outbox rows done before `before` of episodes that are over (their history stays), `batch` ids
        per write; returns (rows deleted, whether there is more to do)."""
        rows = self._read("SELECT min(id), max(id) FROM outbox WHERE status != 'pending' AND done_at < ?", (before,))
        low, last = rows[0]
        if low is None:
            return 0, False
        query = ("DELETE FROM outbox WHERE id >= ? AND id < ? AND status != 'pending' AND done_at < ? AND NOT EXISTS"
                 " (SELECT 1 FROM events WHERE events.event = outbox.event AND events.episode = outbox.episode)")
        return self._in_windows("outbox", low, last, batch, writes,
                                lambda tx, start, end: tx.db.execute(query, (start, end, before)).rowcount)

    def _in_windows(self, table: str, low: int, last: int, batch: int, writes: int | None,
                    delete: Callable[[Transaction, int, int], int]) -> tuple[int, bool]:
        """Run `delete` over ids low..last of a table, `batch` ids per write (skipping gaps)."""
        deleted, start, done = 0, low, 0
        while start is not None and start <= last:
            if writes is not None and done >= writes:
                return deleted, True
            end = min(start + max(1, batch), last + 1)
            with self.write() as tx:
                deleted += delete(tx, start, end)
                start = tx.db.execute(f"SELECT min(id) FROM {table} WHERE id >= ?", (end,)).fetchone()[0]
            done += 1
        return deleted, False

    def vacuum(self, step: int = VACUUM_STEP, keep_free: int = VACUUM_KEEP_FREE,
               writes: int | None = None) -> tuple[int, bool]:
        """Give the file's free pages back to the file system (the file shrinks), `step` pages per write (at most
        `writes` writes), leaving `keep_free` for writes to reuse; returns (pages given back, whether there is
        more to do)."""
        given, done, more = 0, 0, False
        while True:
            with self._write_lock:
                free = int(self._db.execute("PRAGMA freelist_count").fetchone()[0])
                if free <= keep_free:
                    break
                if writes is not None and done >= writes:
                    more = True
                    break
                try:
                    self._db.executescript(f"PRAGMA incremental_vacuum({min(step, free - keep_free)})")
                    left = int(self._db.execute("PRAGMA freelist_count").fetchone()[0])
                except sqlite3.OperationalError as error:
                    raise StoreFault(describe_fault(self.path, error)) from None
            done += 1
            if left >= free:  # not an incremental file (its conversion failed): nothing to give back this way
                break
            given += free - left
        if given:
            with self._write_lock:
                try:  # the file is cut down when the checkpoint copies the WAL back
                    self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.OperationalError:
                    pass  # the next automatic checkpoint does it
        return given, more

    def expired_mutes(self, now: float) -> list[str]:
        """The events whose mute has ended (kept in the file until forgotten)."""
        return [event for (event,) in self._read("SELECT event FROM mutes WHERE until <= ?", (now,))]

    # ---- writing -------------------------------------------------------------------------------------------

    @contextmanager
    def write(self, wait: float | None = None) -> Iterator[Transaction]:
        """One write transaction, waiting at most `wait` seconds (default: busy_timeout) for another writer; a
        failure outside the file (full, locked, read-only) raises StoreFault and leaves nothing half-written."""
        with self._write_lock:
            tx = Transaction(self)
            try:
                timeout = int(1000 * (self.busy_timeout if wait is None else wait))
                if timeout != self._timeout_set:
                    self._db.execute(f"PRAGMA busy_timeout={timeout}")
                    self._timeout_set = timeout
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as error:
                raise StoreFault(describe_fault(self.path, error)) from None
            try:
                for hook in self.riders:
                    hook(tx)
                yield tx
                self._db.execute("COMMIT")
            except BaseException as error:
                tx.committed = False
                for callback in tx.after_rollback:
                    callback()
                if self._db.in_transaction:
                    try:
                        self._db.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                if isinstance(error, sqlite3.OperationalError):
                    raise StoreFault(describe_fault(self.path, error)) from None
                raise
            tx.committed = True
            for callback in tx.after_commit:  # still inside the write lock: memory follows the file in order
                callback()
        for callback in tx.after_unlock:  # follow-ups that may write again themselves
            callback()

    # ---- reading (never waits on a writer) -----------------------------------------------------------------

    def read_rows(self, query: str, args: tuple = ()) -> list[tuple]:
        """Rows of a read on the reading connection (never waits on a writer)."""
        return self._read(query, args)

    def _read(self, query: str, args: tuple = ()) -> list[tuple]:
        with self._read_lock:
            return self._reader.execute(query, args).fetchall()

    def data_version(self) -> int:
        """Changes whenever anyone (this process included) committed since the last call's value."""
        with self._read_lock:
            return self._reader.execute("PRAGMA data_version").fetchone()[0]

    def revision(self) -> int:
        """The revision of the last write by any process."""
        return int(self._read(_REVISION)[0][0])

    def settled(self) -> None:
        """Wait until a write of this process under way (its commit and after_commit included) is done."""
        with self._write_lock:
            pass

    def changes_since(self, rev: int) -> Changes:
        """What was written since `rev` (read outside a transaction)."""
        with self._read_lock:
            self._reader.execute("BEGIN")
            try:
                return _changes_since(self._reader, rev)
            finally:
                self._reader.execute("COMMIT")

    def load_active(self) -> list[ActiveEvent]:
        """Every firing event as stored."""
        with _no_collection():
            return _events_from_rows(self._read(f"SELECT {_EVENT_COLUMNS} FROM events"))

    def worst_active(self, limit: int | None = 50) -> tuple[list[ActiveEvent], int]:
        """The `limit` worst firing events (all with None): highest level first, then the oldest (since), then
        by name; and how many fire in all. One read, in SQL (an index): as fast at 100,000 events as at 10."""
        with self._read_lock:
            self._reader.execute("BEGIN")
            try:
                total = int(self._reader.execute("SELECT count(*) FROM events").fetchone()[0])
                rows = self._reader.execute(
                    f"SELECT {_EVENT_COLUMNS} FROM events ORDER BY {_WORST_FIRST}, since, event LIMIT ?",
                    (-1 if limit is None else max(0, limit),)).fetchall()
            finally:
                self._reader.execute("COMMIT")
        with _no_collection():
            return _events_from_rows(rows), total

    def load_mutes(self) -> dict[str, float]:
        """Every mute stored, with when it ends."""
        return {event: until for event, until in self._read("SELECT event, until FROM mutes")}

    def meta(self, key: str) -> Any:
        """A value of the meta table (None if unset)."""
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def last_ping(self, name: str) -> float | None:
        """When the heartbeat was last pinged, if ever."""
        rows = self._read("SELECT at FROM pings WHERE name = ?", (name,))
        return rows[0][0] if rows else None

    def history(self, limit: int = 50, event: str | None = None) -> list[HistoryEntry]:
        """The newest history entries first."""
        query = "SELECT id, at, event, kind, level, message, channel, ok, detail FROM history"
        args: tuple = ()
        if event is not None:
            query, args = query + " WHERE event = ?", (event,)
        rows = self._read(query + " ORDER BY id DESC LIMIT ?", (*args, limit))
        return [HistoryEntry(id_, from_timestamp(at), ev, kind, Level.parse(level), message, channel,
                             None if ok is None else bool(ok), detail)
                for id_, at, ev, kind, level, message, channel, ok, detail in rows]

    def pending(self, limit: int = 1000) -> list[Delivery]:
        """The rows not done yet, oldest first (what waits, why, next try)."""
        rows = self._read(f"SELECT {_DELIVERY_COLUMNS} FROM outbox WHERE status = 'pending' ORDER BY id LIMIT ?",
                          (limit,))
        return [_delivery_from_row(row) for row in rows]

    def next_due(self) -> float | None:
        """When the next pending row falls due (or its claim runs out)."""
        rows = self._read("SELECT min(max(not_before, lease_until)) FROM outbox WHERE id IN (SELECT min(id) FROM"
                          " outbox WHERE status = 'pending' GROUP BY event, channel, recipient)")
        return rows[0][0]

    def due_keys_waiting(self, now: float) -> bool:
        """Whether any pending row is due and unclaimed (a pass of the outbox has work)."""
        rows = self._read("SELECT 1 FROM outbox WHERE id IN (SELECT min(id) FROM outbox WHERE status = 'pending'"
                          " GROUP BY event, channel, recipient) AND not_before <= ? AND lease_until <= ? LIMIT 1",
                          (now, now))
        return bool(rows)

    def claimed_by(self, owner: str, now: float) -> bool:
        """Whether `owner` holds a claim on a row not done yet (a pass took it and is handing it to a channel)."""
        return bool(self._read("SELECT 1 FROM outbox WHERE status = 'pending' AND lease_owner = ? AND lease_until > ?"
                               " LIMIT 1", (owner, now)))

    def channel_health(self) -> dict[str, ChannelHealth]:
        """Per channel: its latest delivery result and how many of its notifications wait."""
        last = self._read("SELECT channel, at, ok, detail FROM history WHERE id IN"
                          " (SELECT max(id) FROM history WHERE channel IS NOT NULL AND ok IS NOT NULL"
                          " GROUP BY channel)")
        waiting: dict[str, int] = {}
        held: dict[str, int] = {}
        for channel, hold, count in self._read("SELECT channel, hold IN (?, ?, ?, ?), count(*) FROM outbox"
                                               " WHERE status = 'pending' GROUP BY 1, 2",
                                               (HOLD_SNOOZE, HOLD_MUTE, HOLD_GROUP, HOLD_QUIET)):
            (held if hold else waiting)[channel] = count
        health = {channel: ChannelHealth(from_timestamp(at), bool(ok), detail, waiting.get(channel, 0),
                                         held.get(channel, 0)) for channel, at, ok, detail in last}
        for channel in {*waiting, *held}:
            health.setdefault(channel, ChannelHealth(None, None, "", waiting.get(channel, 0), held.get(channel, 0)))
        return health

    def close(self) -> None:
        """Close both connections (the last one out folds the WAL back into the file)."""
        with self._write_lock, self._read_lock:
            self._reader.close()
            self._db.close()


class Transaction:
    """The statements of one write transaction; only valid inside `with store.write() as tx`."""

    def __init__(self, store: StateStore):
        self.store = store
        self.db = store._db
        self._rev: int | None = None
        self._start_rev: int | None = None
        self.after_commit: list[Callable[[], None]] = []
        self.after_rollback: list[Callable[[], None]] = []
        self.after_unlock: list[Callable[[], None]] = []
        self.committed = False

    # ---- revisions: how other processes notice this write ----------------------------------------------

    def revision(self) -> int:
        """The revision as of this transaction's start."""
        if self._start_rev is None:
            self._start_rev = int(self.db.execute(_REVISION).fetchone()[0])
        return self._start_rev

    def changes_since(self, rev: int) -> Changes:
        """What other writers changed since `rev`."""
        return _changes_since(self.db, rev)

    def touch(self, events: Iterable[str], at: float) -> int:
        """Record that this transaction changed these events (or, with none, something other processes must
        reload: a mute, the snooze); returns the revision it writes."""
        rows = [(event, at) for event in events] or [("", at)]
        if len(rows) == 1:
            self._rev = int(self.db.execute("INSERT INTO changes (event, at) VALUES (?, ?)", rows[0]).lastrowid or 0)
        else:
            self.db.executemany("INSERT INTO changes (event, at) VALUES (?, ?)", rows)
            self._rev = int(self.db.execute(_REVISION).fetchone()[0])
        if self._rev % 1000 < len(rows):
            self.db.execute("DELETE FROM changes WHERE rev <= ?", (self._rev - CHANGES_KEEP,))
        return self._rev

    @property
    def new_revision(self) -> int | None:
        """The revision this transaction writes, if it changed anything."""
        return self._rev

    # ---- events --------------------------------------------------------------------------------------------

    def event(self, event: str) -> ActiveEvent | None:
        """One event's stored state."""
        row = self.db.execute(f"SELECT {_EVENT_COLUMNS} FROM events WHERE event = ?", (event,)).fetchone()
        return _event_from_row(row) if row else None

    def events(self, names: Iterable[str] | None = None) -> dict[str, ActiveEvent | None]:
        """The stored state of some events (all firing ones when `names` is None)."""
        if names is None:
            with _no_collection():
                return {record.event: record for record in
                        _events_from_rows(self.db.execute(f"SELECT {_EVENT_COLUMNS} FROM events").fetchall())}
        return {name: self.event(name) for name in names}

    def put_event(self, record: ActiveEvent) -> None:
        """Store a firing event as it is now."""
        self.db.execute(f"INSERT OR REPLACE INTO events ({_EVENT_COLUMNS}) VALUES ({_EVENT_PLACEHOLDERS})",
                        _event_to_row(record))
        self.touch([record.event], record.last_seen)

    def delete_event(self, event: str, at: float) -> None:
        """The event no longer fires."""
        self.db.execute("DELETE FROM events WHERE event = ?", (event,))
        self.touch([event], at)

    def inhibited_by(self, parent: str) -> list[ActiveEvent]:
        """The events `parent` inhibits now."""
        return _events_from_rows(self.db.execute(f"SELECT {_EVENT_COLUMNS} FROM events INDEXED BY events_inhibited"
                                                 " WHERE inhibited_by = ?", (parent,)).fetchall())

    def add_seen(self, event: str, episode: str, count: int, last_seen: float) -> bool:
        """Add debounced repeats to an episode; False if that episode is no longer the stored one."""
        updated = self.db.execute("UPDATE events SET seen = seen + ?, last_seen = max(last_seen, ?)"
                                  " WHERE event = ? AND episode = ?", (count, last_seen, event, episode)).rowcount
        return bool(updated)

    def set_told(self, event: str, episode: str, told: Iterable[str], at: float) -> None:
        """Which channels may know of an episode."""
        if self.db.execute("UPDATE events SET told = ? WHERE event = ? AND episode = ?",
                           (json.dumps(sorted(told)), event, episode)).rowcount:
            self.touch([event], at)

    # ---- mutes, snooze, pings, meta ------------------------------------------------------------------------

    def mutes(self) -> dict[str, float]:
        return {event: until for event, until in self.db.execute("SELECT event, until FROM mutes")}

    def put_mute(self, event: str, until: float | None, at: float) -> None:
        """Remember (or forget) that an event is muted until a time."""
        if until is None:
            self.db.execute("DELETE FROM mutes WHERE event = ?", (event,))
        else:
            self.db.execute("INSERT OR REPLACE INTO mutes VALUES (?, ?)", (event, until))
        self.touch([event], at)

    def meta(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: Any, at: float, touch: bool = True) -> None:
        """Set (None: remove) a meta value; with `touch`, other processes notice and reload."""
        if value is None:
            self.db.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
        if touch:
            self.touch([], at)

    def record_ping(self, name: str, at: float) -> None:
        self.db.execute("INSERT OR REPLACE INTO pings VALUES (?, ?)", (name, at))

    # ---- history -------------------------------------------------------------------------------------------

    def history(self, at: float, event: str, kind: str, level: Level, message: str, channel: str | None = None,
                ok: bool | None = None, detail: str = "", delivery: int | None = None) -> None:
        self.db.execute("INSERT INTO history (at, event, kind, level, message, channel, ok, detail, delivery)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (at, event, kind, level.value, message, channel, None if ok is None else int(ok), detail,
                         delivery))

    def delivery_line(self, row: Delivery, at: float, ok: bool | None, detail: str) -> None:
        """A history line about one row: a result (ok True/False), or a hold, a drop by storm control, an
        interruption (ok None: not the channel's failure, so `status` never shows it as failing)."""
        kind = "recovery" if row.alert.resolved else "summary" if row.kind == "summary" else "delivery"
        self.history(at, row.event, kind, row.alert.level, row.alert.message, row.channel, ok, detail, row.id)

    # ---- the outbox ----------------------------------------------------------------------------------------

    def insert(self, row: Delivery, status: str = PENDING, lease_until: float = 0.0, owner: str = "",
               in_flight: bool = False) -> Delivery:
        """Add a row; returns it with its id."""
        cursor = self.db.execute(
            "INSERT INTO outbox (channel, recipient, event, episode, kind, alert, status, hold, not_before, attempts,"
            " expires_at, created_at, lease_until, lease_owner, in_flight, last_error, done_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (row.channel, row.recipient, row.event, row.episode, row.kind, json.dumps(row.alert.to_dict()), status,
             row.hold, row.not_before, row.attempts, row.expires_at, row.created_at, lease_until, owner,
             int(in_flight), row.last_error, None if status == PENDING else row.created_at))
        return _with_id(row, int(cursor.lastrowid or 0))

    def due(self, now: float, limit: int) -> list[Delivery]:
        """The oldest pending row of each key, if it is due and nobody holds a claim on it."""
        rows = self.db.execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM outbox WHERE id IN"
            " (SELECT min(id) FROM outbox WHERE status = 'pending' GROUP BY event, channel, recipient)"
            " AND not_before <= ? AND lease_until <= ? ORDER BY not_before, id LIMIT ?", (now, now, limit)).fetchall()
        return [_delivery_from_row(row) for row in rows]

    def claim(self, ids: Iterable[int], owner: str, lease_until: float) -> None:
        """Claim rows for sending: a crash from here on makes the next attempt a possible repeat."""
        self.db.executemany("UPDATE outbox SET lease_until = ?, lease_owner = ?, in_flight = 1 WHERE id = ?",
                            [(lease_until, owner, id_) for id_ in ids])

    def renew(self, ids: Iterable[int], owner: str, lease_until: float) -> None:
        """Keep claims on rows still being sent."""
        self.db.executemany("UPDATE outbox SET lease_until = ? WHERE id = ? AND lease_owner = ? AND status = ?",
                            [(lease_until, id_, owner, PENDING) for id_ in ids])

    def release(self, ids: Iterable[int]) -> None:
        """Give rows back unsent (nothing went out)."""
        self.db.executemany("UPDATE outbox SET lease_until = 0, lease_owner = '', in_flight = 0 WHERE id = ?",
                            [(id_,) for id_ in ids])

    def hold(self, row: Delivery, until: float, hold: str, reason: str) -> None:
        """Let a row wait until a time, for a reason of a kind (snooze, mute, group, retry)."""
        self.db.execute("UPDATE outbox SET not_before = ?, hold = ?, last_error = ?, lease_until = 0,"
                        " lease_owner = '', in_flight = 0 WHERE id = ?", (until, hold, reason, row.id))

    def retry_later(self, row: Delivery, until: float, error: str, possible_repeat: bool = False) -> None:
        """A failed attempt to be tried again at `until` (marked a possible repeat when it may have arrived)."""
        self.db.execute("UPDATE outbox SET attempts = attempts + 1, not_before = ?, hold = 'retry', last_error = ?,"
                        " lease_until = 0, lease_owner = '', in_flight = 0, possible_repeat = max(possible_repeat, ?)"
                        " WHERE id = ?", (until, error, int(possible_repeat), row.id))

    def finish(self, row: Delivery, status: str, detail: str, at: float) -> bool:
        """A row is done (delivered, failed for good, dropped); False if it was done already (by another
        process, after our claim ran out)."""
        return bool(self.db.execute(
            "UPDATE outbox SET status = ?, last_error = ?, done_at = ?, attempts = attempts + ?, lease_until = 0,"
            " in_flight = 0 WHERE id = ? AND status = 'pending'",
            (status, detail, at, int(status in (DELIVERED, FAILED)), row.id)).rowcount)

    def knows(self, row: Delivery) -> bool:
        """Whether the row's channel got, or may still get, any firing of the row's episode other than this row."""
        found = self.db.execute(
            "SELECT 1 FROM outbox WHERE event = ? AND episode = ? AND channel = ? AND id != ?"
            " AND kind IN ('firing', 'escalation') AND status IN ('pending', 'delivered') LIMIT 1",
            (row.event, row.episode, row.channel, row.id)).fetchone()
        return found is not None

    def drop_followers(self, row: Delivery, at: float, reason: str) -> list[Delivery]:
        """Drop the rows queued behind a firing that never arrived (its reminders and recovery)."""
        rows = [_delivery_from_row(r) for r in self.db.execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM outbox WHERE status = 'pending' AND event = ? AND episode = ?"
            " AND channel = ? AND recipient = ? AND id > ? AND kind IN ('reminder', 'recovery')",
            (row.event, row.episode, row.channel, row.recipient, row.id))]
        return self._drop(rows, at, reason, ok=False)

    def drop_reminders(self, event: str, episode: str, at: float, reason: str) -> list[Delivery]:
        """Drop an episode's reminders still waiting (held by a mute, a snooze, a retry), not those being sent."""
        rows = [_delivery_from_row(r) for r in self.db.execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM outbox WHERE status = 'pending' AND in_flight = 0 AND event = ?"
            " AND episode = ? AND kind = 'reminder'", (event, episode))]
        return self._drop(rows, at, reason, ok=None)

    def _drop(self, rows: list[Delivery], at: float, reason: str, ok: bool | None) -> list[Delivery]:
        """Mark rows dropped, each with its history line."""
        for row in rows:
            self.finish(row, DROPPED, reason, at)
            self.delivery_line(row, at, ok, reason)
        return rows

    def in_flight(self) -> list[tuple[Delivery, str]]:
        """Rows claimed for sending and not answered, with who claimed them."""
        rows = self.db.execute(f"SELECT {_DELIVERY_COLUMNS}, lease_owner FROM outbox WHERE status = 'pending'"
                               " AND in_flight = 1").fetchall()
        return [(_delivery_from_row(row[:-1]), row[-1]) for row in rows]

    def pending_of_key(self, row: Delivery) -> set[int]:
        """The rows of the row's channel, event and recipient not done."""
        return {id_ for (id_,) in self.db.execute(
            "SELECT id FROM outbox INDEXED BY outbox_pending WHERE status = 'pending' AND event = ? AND channel = ?"
            " AND recipient = ?", (row.event, row.channel, row.recipient))}

    def pending_ids(self, event: str) -> dict[tuple[str, str, str], set[int]]:
        """Per (channel, event, recipient) of an event, the rows not done (new rows wait behind them)."""
        found: dict[tuple[str, str, str], set[int]] = {}
        for channel, ev, recipient, id_ in self.db.execute(
                "SELECT channel, event, recipient, id FROM outbox INDEXED BY outbox_pending"
                " WHERE status = 'pending' AND event = ?", (event,)):
            found.setdefault((channel, ev, recipient), set()).add(id_)
        return found

    def mark_interrupted(self, row: Delivery) -> None:
        """Count the interrupted attempt; the next one goes out now and says it may be a repeat."""
        self.db.execute("UPDATE outbox SET attempts = attempts + 1, possible_repeat = 1, in_flight = 0,"
                        " lease_until = 0, lease_owner = '', not_before = min(not_before, ?) WHERE id = ?",
                        (row.not_before, row.id))

    def release_holds(self, kind: str, now: float, event: str | None = None) -> int:
        """Make rows held for a kind of reason (snooze, mute) due now."""
        return self.db.execute("UPDATE outbox SET not_before = ?, hold = '' WHERE status = 'pending' AND hold = ?"
                               " AND (? IS NULL OR event = ?)", (now, kind, event, event)).rowcount

    def shift(self, seconds: float, holds: Iterable[str]) -> int:
        """Move the waits of pending rows held for these kinds by `seconds` (a clock jump), and their expiry."""
        kinds = list(holds)
        return self.db.execute(
            f"UPDATE outbox SET not_before = not_before + ?, expires_at = expires_at + ? WHERE status = 'pending'"
            f" AND hold IN ({','.join('?' * len(kinds))})", (seconds, seconds, *kinds)).rowcount

    def extend_expiry(self, seconds: float) -> int:
        """Add time the app was not running to every pending row's expiry (expiry counts time awake)."""
        return self.db.execute("UPDATE outbox SET expires_at = expires_at + ? WHERE status = 'pending'",
                               (seconds,)).rowcount

    def key_pending(self, key: tuple[str, str, str]) -> bool:
        """Whether a (channel, event, recipient) has any row not done."""
        channel, event, recipient = key
        return self.db.execute("SELECT 1 FROM outbox INDEXED BY outbox_pending WHERE status = 'pending' AND event = ?"
                               " AND channel = ? AND recipient = ? LIMIT 1", (event, channel, recipient)).fetchone() \
            is not None


# ---- rows <-> values -----------------------------------------------------------------------------------------

# Start-up reads every firing event: 100,000 of them in a fraction of a second, by four shortcuts, each the same
# as the plain way for what this file holds: json's C scanner called directly (json.dumps wrote no whitespace to
# skip; anything else goes the plain way); one frozenset per distinct `told` (few: sets of channel names, immutable,
# so shared); records filled in place of the frozen dataclass's __init__ (a dozen object.__setattr__ calls each),
# only while ActiveEvent is the plain dataclass this was written for; and no garbage collection while the rows
# are read (100,000 new tuples and dicts would make it run over and over, finding nothing to free).
_FIELDS = ("event", "level", "message", "context", "since", "at", "seen", "last_seen", "told", "reminded_at",
           "episode", "acknowledged_at", "depends_on", "inhibited_by")
_LEVELS = {level.value: level for level in Level}
_scan_json: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_TOLD: dict[str, frozenset[str]] = {}
_NO_PARENTS: tuple[str, ...] = ()
_FILL_IN_PLACE = (tuple(f.name for f in dataclasses.fields(ActiveEvent)) == _FIELDS
                  and not hasattr(ActiveEvent, "__post_init__") and not hasattr(ActiveEvent, "__slots__"))


def _json(text: str) -> Any:
    try:
        value, end = _scan_json(text, 0)
    except StopIteration:
        return json.loads(text)  # raises as json does
    return value if end == len(text) else json.loads(text)


def _told(text: str) -> frozenset[str]:
    found = _TOLD.get(text)
    if found is None:
        if len(_TOLD) >= 4096:
            _TOLD.clear()
        found = _TOLD[text] = frozenset(_json(text))
    return found


def _event_from_row(row: tuple) -> ActiveEvent:
    return _events_from_rows((row,))[0]


def _events_from_rows(rows: Iterable[tuple]) -> list[ActiveEvent]:
    found: list[ActiveEvent] = []
    append, levels, told_of, new, fill = found.append, _LEVELS, _TOLD.get, object.__new__, object.__setattr__
    for (event, level, message, context, since, at, seen, last_seen, told, reminded_at, episode, acknowledged_at,
         depends_on, inhibited_by) in rows:
        parents = _NO_PARENTS if depends_on == "[]" else tuple(_json(depends_on))
        context_of = _json(context)
        level_of = levels.get(level) or Level.parse(level)
        told_set = told_of(told) or _told(told)
        if _FILL_IN_PLACE:
            record = new(ActiveEvent)
            fill(record, "__dict__", {
                "event": event, "level": level_of, "message": message, "context": context_of, "since": since,
                "at": at, "seen": seen, "last_seen": last_seen, "told": told_set, "reminded_at": reminded_at,
                "episode": episode, "acknowledged_at": acknowledged_at, "depends_on": parents,
                "inhibited_by": inhibited_by})
        else:
            record = ActiveEvent(event, level_of, message, context_of, since, at, seen, last_seen, told_set,
                                 reminded_at, episode, acknowledged_at, parents, inhibited_by)
        append(record)
    return found


@contextmanager
def _no_collection() -> Iterator[None]:
    """Garbage collection paused while many rows are read and made records (see above)."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def _event_to_row(record: ActiveEvent) -> tuple:
    return (record.event, record.level.value, record.message, json.dumps(dict(record.context)), record.since,
            record.at, record.seen, record.last_seen, json.dumps(sorted(record.told)), record.reminded_at,
            record.episode, record.acknowledged_at, json.dumps(list(record.depends_on)), record.inhibited_by)


def _delivery_from_row(row: tuple) -> Delivery:
    (id_, channel, event, episode, kind, alert, recipient, attempts, not_before, hold, expires_at, created_at,
     last_error, possible_repeat) = row
    return Delivery(id_, channel, event, episode, kind, Alert.from_dict(json.loads(alert)), recipient, attempts,
                    not_before, hold, expires_at, created_at, last_error, bool(possible_repeat))


def _with_id(row: Delivery, id_: int) -> Delivery:
    """The row as inserted (built directly: dataclasses.replace costs more than the insert itself)."""
    return Delivery(id_, row.channel, row.event, row.episode, row.kind, row.alert, row.recipient, row.attempts,
                    row.not_before, row.hold, row.expires_at, row.created_at, row.last_error, row.possible_repeat)


def _changes_since(db: sqlite3.Connection, rev: int) -> Changes:
    current = int(db.execute(_REVISION).fetchone()[0])
    if current == rev:
        return Changes(current, frozenset())
    oldest = db.execute("SELECT min(rev) FROM changes").fetchone()[0]
    if current < rev or oldest is None or oldest > rev + 1:
        return Changes(current, None)
    changed = {name: at for name, at in db.execute("SELECT event, max(at) FROM changes WHERE rev > ? GROUP BY event",
                                                   (rev,)) if name}
    return Changes(current, frozenset(changed), changed)


def _file_size(path: Path) -> int:
    """The state file's bytes on disk with its WAL."""
    return sum(Path(f"{path}{suffix}").stat().st_size for suffix in ("", "-wal")
               if Path(f"{path}{suffix}").exists())


def _run_script(db: sqlite3.Connection, script: str) -> None:
    for statement in filter(str.strip, script.split(";")):
        db.execute(statement)


def _from_schema_4(db: sqlite3.Connection, now: float) -> None:
    """Carry a schema 1-4 file over: active events keep debouncing, queued deliveries become outbox rows."""
    _run_script(db, _SCHEMA_4)
    db.execute("ALTER TABLE outbox RENAME TO outbox_4")
    _run_script(db, _SCHEMA)  # history exists already: it gains a column
    db.execute("ALTER TABLE history ADD COLUMN delivery INTEGER")
    for event, level, message, context, since, at, seen, last_seen, told in db.execute(
            "SELECT event, level, message, context, since, at, seen, last_seen, told FROM active").fetchall():
        db.execute(f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, NULL, '[]', NULL)",
                   (event, level, message, context, since, at, seen, last_seen, told, _old_episode(event, since)))
    for channel, event, since, alert, attempts, next_at, expires_at, last_error in db.execute(
            "SELECT channel, event, since, alert, attempts, next_at, expires_at, last_error FROM outbox_4"
            " ORDER BY id").fetchall():
        data = json.loads(alert)
        kind = "recovery" if data.get("resolved") else "reminder" if data.get("reminder") else "firing"
        hold = ("snooze" if last_error.startswith("held while snoozed") else
                "mute" if last_error.startswith("held while muted") else "retry" if attempts else HOLD_NONE)
        data["episode"] = _old_episode(event, since)
        db.execute("INSERT INTO outbox (channel, event, episode, kind, alert, hold, not_before, attempts, expires_at,"
                   " created_at, last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (channel, event, data["episode"], kind, json.dumps(data), hold, next_at, attempts, expires_at, now,
                    last_error))
    db.execute("DROP TABLE active")
    db.execute("DROP TABLE outbox_4")


def _old_episode(event: str, since: float) -> str:
    """An episode id for a firing stored before episodes had ids."""
    return f"{event}@{since:.6f}"


def _private_folder(folder: Path) -> None:
    """Create the state folder, and any missing parent, readable by its owner only (whatever the umask)."""
    try:
        private_folder(folder, "state folder", "state_dir")
    except FolderError as error:
        raise StateError(str(error)) from None


def _touch_private(path: Path) -> None:
    """Create the file readable by its owner only (history may hold private context)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    if os.name == "posix":
        os.chmod(path, 0o600)
