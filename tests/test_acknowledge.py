"""Acknowledge as a state of an episode: engine, state file, push API and command line."""
import sqlite3

import pytest
import requests

from conftest import ROUTES, SCHEMA_5, RecordingChannel
from test_api import TOKEN, stop_quickly
from test_cli import cli, settings_file  # noqa: F401,F811  (settings_file is a fixture)
from tray_alerts import Engine, Level
from tray_alerts.api import PushApi
from tray_alerts.clock import FakeClock
from tray_alerts.reminders import ReminderPolicy
from tray_alerts.state import SCHEMA_VERSION


@pytest.fixture
def clock():
    return FakeClock(start=1_800_000_000.0)


def test_an_acknowledged_alert_stays_active_sends_nothing_and_stops_reminding(tmp_path, clock):
    slack = RecordingChannel("slack")
    with Engine({"slack": slack}, {"error": ["slack"], "critical": ["slack"]}, tmp_path / "s.db",
                reminders=ReminderPolicy(levels={Level.ERROR: 600}), retry_in_background=False,
                clock=clock) as engine:
        engine.raise_alert("api", "error", "api down")
        clock.advance(30)
        result = engine.acknowledge("api")
        assert result.kind == "acknowledged" and result.outcomes == {} and result.acknowledged_at == clock.time()
        (record,) = engine.active_events()
        assert record.acknowledged and record.acknowledged_at == clock.time()
        for _ in range(4):  # an hour: no reminder for an acknowledged alert
            clock.advance(900)
            engine.tick()
            assert engine.wait_idle()
        assert engine.raise_alert("api", "error", "still down") == {}  # repeats still debounce
        assert engine.acknowledge("api").kind == "already acknowledged"
        assert engine.clear_alert("api", "api back") == {"slack": True}  # the real recovery still goes out
        history = [entry.kind for entry in reversed(engine.history(event="api")) if entry.channel is None]
    assert [(a.resolved, a.reminder) for a in slack.sent] == [(False, False), (True, False)]
    assert history == ["fired", "acknowledged", "cleared"]


def test_an_escalation_undoes_the_acknowledgement_and_reminders_resume(tmp_path, clock):
    slack = RecordingChannel("slack")
    with Engine({"slack": slack}, {"error": ["slack"], "critical": ["slack"]}, tmp_path / "s.db",
                reminders=ReminderPolicy(levels={Level.CRITICAL: 600}), retry_in_background=False,
                clock=clock) as engine:
        engine.raise_alert("api", "error", "api slow")
        engine.acknowledge("api")
        assert engine.raise_alert("api", "critical", "api down") == {"slack": True}
        assert not engine.active_events()[0].acknowledged
        clock.advance(600)
        engine.tick()
        assert engine.wait_idle()
    assert [a.reminder for a in slack.sent] == [False, False, True]


def test_acknowledging_what_is_not_active_is_said_and_stores_nothing(engine):
    assert engine.acknowledge("nothing").kind == "not active"
    assert engine.history(event="nothing") == []
    with pytest.raises(ValueError):
        engine.acknowledge("")


def test_an_acknowledgement_survives_a_restart(channels, state_path):
    with Engine(channels, ROUTES, state_path) as first:
        first.raise_alert("disk", "critical", "disk full")
        acknowledged_at = first.acknowledge("disk").acknowledged_at
    with Engine(channels, ROUTES, state_path) as second:
        (record,) = second.active_events()
        assert record.acknowledged_at == acknowledged_at and record.level is Level.CRITICAL


def test_another_process_sees_the_acknowledgement(channels, state_path):
    with Engine(channels, ROUTES, state_path) as first, Engine({}, ROUTES, state_path) as second:
        first.raise_alert("disk", "critical", "disk full")
        second.acknowledge("disk")
        first.raise_alert("disk", "critical", "disk full")  # a write here catches up with the other process
        assert first.active_events()[0].acknowledged


def test_a_schema_5_file_gains_the_column_and_keeps_its_events(channels, state_path):
    with Engine(channels, ROUTES, state_path) as engine:
        engine.raise_alert("disk", "warning", "disk at 91%")
    db = sqlite3.connect(state_path)
    db.executescript(SCHEMA_5)
    db.close()
    with Engine(channels, ROUTES, state_path) as engine:
        (record,) = engine.active_events()
        assert (record.event, record.acknowledged) == ("disk", False)
        assert engine.acknowledge("disk").kind == "acknowledged"
    assert sqlite3.connect(state_path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


# ---- push API ------------------------------------------------------------------------------------------------

@pytest.fixture
def api_url(engine):
    push = PushApi(engine, TOKEN, port=0)
    push.start()
    yield f"http://127.0.0.1:{push.port}/v1"
    stop_quickly(push)


def post(url: str, json: dict | None = None) -> requests.Response:
    return requests.post(url, json=json or {}, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)


def test_the_api_acknowledges_and_lists_it(api_url, engine, channels):
    engine.raise_alert("disk", "critical", "disk full")
    sent = {name: len(channel.sent) for name, channel in channels.items()}
    answer = post(f"{api_url}/alerts/disk/ack")
    assert answer.status_code == 200 and answer.json()["status"] == "acknowledged"
    (listed,) = requests.get(f"{api_url}/alerts", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).json()
    assert listed["acknowledged"] is True and listed["acknowledged_at"] == answer.json()["acknowledged_at"]
    assert {name: len(channel.sent) for name, channel in channels.items()} == sent  # nobody is told
    assert post(f"{api_url}/alerts/other/ack").json()["status"] == "not active"


def test_the_api_says_which_field_is_bad(api_url):
    answer = post(f"{api_url}/alerts/%20/ack")
    assert answer.status_code == 400 and "event" in answer.json()["error"]


def test_unacknowledged_alerts_are_listed_as_such(api_url, engine):
    engine.raise_alert("disk", "warning", "disk at 91%")
    (listed,) = requests.get(f"{api_url}/alerts", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).json()
    assert listed["acknowledged"] is False and listed["acknowledged_at"] is None


# ---- command line --------------------------------------------------------------------------------------------

def test_the_command_line_acknowledges(settings_file):  # noqa: F811
    cli(settings_file, "raise", "disk", "error", "disk at 97%")
    done = cli(settings_file, "ack", "disk")
    assert done.returncode == 0 and "disk: acknowledged at" in done.stdout and "stays active at error" in done.stdout
    assert "already acknowledged" in cli(settings_file, "ack", "disk").stdout
    other = cli(settings_file, "ack", "other")
    assert other.returncode == 2 and "not active" in other.stderr  # an event that is not active is named
    status = cli(settings_file, "status").stdout
    assert "disk" in status and "acknowledged" in status


class PopUpChannel(RecordingChannel):
    """A channel whose notifications can be taken back, like the desktop's pop-ups."""

    def __init__(self, name: str):
        super().__init__(name)
        self.withdrawn: list[str] = []

    def withdraw(self, event: str) -> None:
        self.withdrawn.append(event)


def test_acknowledging_or_muting_takes_the_pop_up_back_and_nothing_else(state_path):
    from polling import wait_until

    desktop, slack = PopUpChannel("desktop"), RecordingChannel("slack")
    with Engine({"desktop": desktop, "slack": slack}, {"error": ["desktop", "slack"]}, state_path) as engine:
        engine.raise_alert("api", "error", "api down")
        engine.raise_alert("disk", "error", "disk full")
        engine.acknowledge("api")
        wait_until(lambda: desktop.withdrawn == ["api"], "the acknowledged alert's pop-up taken back")
        engine.acknowledge("api")  # already acknowledged: nothing more
        engine.mute("disk", engine.clock.time() + 3600)
        wait_until(lambda: desktop.withdrawn == ["api", "disk"], "the muted alert's pop-up taken back")
        engine.mute("disk", None)  # unmuting brings nothing back and takes nothing
    assert desktop.withdrawn == ["api", "disk"] and len(slack.sent) == 2 and len(desktop.sent) == 2


def test_a_reminder_already_waiting_is_dropped_when_the_alert_is_acknowledged(tmp_path, clock):
    slack = RecordingChannel("slack")
    with Engine({"slack": slack}, {"error": ["slack"]}, tmp_path / "s.db", retry_in_background=False,
                reminders=ReminderPolicy(levels={Level.ERROR: 600}), clock=clock) as engine:
        engine.raise_alert("api", "error", "api down")
        engine.mute("api", clock.time() + 3600)
        clock.advance(600)
        engine.tick()  # the reminder is written, held by the mute
        assert engine.wait_idle() and [row.kind for row in engine.pending()] == ["reminder"]
        engine.acknowledge("api")
        assert engine.pending() == []
        clock.advance(3600)  # the mute ends: nothing waits to go out
        engine.tick()
        assert engine.wait_idle()
        dropped = [h for h in engine.history(event="api") if h.detail == "dropped: the alert was acknowledged"]
    assert [a.reminder for a in slack.sent] == [False] and len(dropped) == 1 and dropped[0].ok is None


def test_a_schema_5_files_hold_lines_no_longer_count_as_failures(channels, state_path):
    from tray_alerts.state import StateStore

    with Engine(channels, ROUTES, state_path) as engine:
        engine.raise_alert("disk", "warning", "disk at 91%")
    db = sqlite3.connect(state_path)
    db.execute("INSERT INTO history (at, event, kind, level, message, channel, ok, detail) VALUES"
               " (9e9, 'disk', 'delivery', 'warning', 'm', 'slack', 0, 'held while snoozed until 14:30:00')")
    db.execute("INSERT INTO history (at, event, kind, level, message, channel, ok, detail) VALUES"
               " (9e9, 'disk', 'delivery', 'warning', 'm', 'email', 0, 'HTTP 500')")
    db.executescript(SCHEMA_5)
    db.close()
    store = StateStore(state_path)
    try:
        health = store.channel_health()
    finally:
        store.close()
    assert health["slack"].last_ok is True and health["email"].last_ok is False  # a real failure stays one
