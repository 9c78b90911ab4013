"""Shared fakes: a recording channel, channels that fail or hang, and an engine on a temp state file."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

from helpers_net import isolated_secrets, stalling_server  # noqa: F401  (fixtures shared by the test files)
from tray_alerts import Alert, DeliveryError, Engine


class RecordingChannel:
    """Keeps every alert it is sent."""

    def __init__(self, name: str):
        self.name = name
        self.sent: list[Alert] = []
        self._lock = threading.Lock()

    def send(self, alert: Alert) -> None:
        with self._lock:
            self.sent.append(alert)

    def kinds(self) -> list[str]:
        """`fired:LEVEL` / `resolved:LEVEL` for each alert received, in order."""
        return [f"{'resolved' if a.resolved else 'fired'}:{a.level.value}" for a in self.sent]


class FailingChannel(RecordingChannel):
    """Records, then fails the way it is told to."""

    def __init__(self, name: str, failure: Exception | bool):
        super().__init__(name)
        self.failure = failure

    def send(self, alert: Alert):
        super().send(alert)
        if self.failure is False:
            return False
        raise self.failure


class HangingChannel(RecordingChannel):
    """Blocks in send until released (or `hold` seconds pass)."""

    def __init__(self, name: str, hold: float = 30.0):
        super().__init__(name)
        self.release = threading.Event()
        self.hold = hold

    def send(self, alert: Alert) -> None:
        self.release.wait(self.hold)
        super().send(alert)


# SQL that takes a state file of the current schema (7) back to an older one, as an older version wrote it
SCHEMA_6 = ("DROP TABLE readings; DROP INDEX events_inhibited; ALTER TABLE events DROP COLUMN inhibited_by;"
            " ALTER TABLE events DROP COLUMN depends_on; PRAGMA user_version=6;")
SCHEMA_5 = SCHEMA_6.replace("PRAGMA user_version=6;", "ALTER TABLE events DROP COLUMN acknowledged_at;"
                            " PRAGMA user_version=5;")


def back_to_schema(path: Path, script: str) -> None:
    """Rewrite a state file as an older version would have left it (SCHEMA_6, SCHEMA_5)."""
    import sqlite3

    db = sqlite3.connect(path)
    db.executescript(script)
    db.close()


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "state.db"


@pytest.fixture
def channels() -> dict[str, RecordingChannel]:
    return {name: RecordingChannel(name) for name in ("log", "desktop", "slack", "email", "sms")}


ROUTES = {
    "info": ["log", "desktop"],
    "warning": ["log", "desktop", "slack"],
    "error": ["log", "desktop", "slack", "email"],
    "critical": ["log", "desktop", "slack", "email", "sms"],
}


@pytest.fixture
def engine(channels, state_path):
    engine = Engine(channels, ROUTES, state_path, delivery_timeout=2.0)
    yield engine
    engine.close()


__all__ = ["DeliveryError", "FailingChannel", "HangingChannel", "RecordingChannel", "ROUTES", "SCHEMA_5", "SCHEMA_6",
           "back_to_schema"]
