"""Storm control, reminders, per-event mute and recovery durations."""
import time

import pytest

from conftest import RecordingChannel
from polling import wait_until
from tray_alerts import Engine, Level
from tray_alerts.outbox import RetryPolicy
from tray_alerts.reminders import ReminderPolicy
from tray_alerts.storm import ChannelLimits, StormControl

FAST = RetryPolicy(first=0.02, longest=0.1)


class GroupingChannel(RecordingChannel):
    """Records single sends and grouped ones (send_many) separately."""

    def __init__(self, name):
        super().__init__(name)
        self.messages: list[list] = []

    def send(self, alert):
        super().send(alert)
        self.messages.append([alert])

    def send_many(self, alerts):
        for alert in alerts:
            RecordingChannel.send(self, alert)
        self.messages.append(list(alerts))



def routes(*names):
    return {level: list(names) for level in Level}


def test_a_storm_shows_a_few_pop_ups_then_one_summary_and_loses_nothing(tmp_path):
    desktop, log = RecordingChannel("desktop"), RecordingChannel("log")
    summaries = []
    limits = {"desktop": ChannelLimits(max_per_minute=3)}
    with Engine({"desktop": desktop, "log": log}, routes("desktop", "log"), tmp_path / "s.db", limits=limits,
                retry=FAST) as engine:
        engine.storm._send_summary = lambda name, alert: summaries.append((name, alert))
        results = [engine.raise_alert(f"check{i}", "error", "network down") for i in range(40)]
        assert [r["desktop"] for r in results].count(True) == 3
        assert len(log.sent) == 40 and len(engine.active()) == 40  # every alert is in the tray and the log
        held = [h for h in engine.history(limit=500) if h.channel == "desktop" and not h.ok]
        assert len(held) == 37 and all("held back by storm control" in h.detail for h in held)
        engine.storm.close()  # the minute is over: the summary goes out
    assert summaries and summaries[0][0] == "desktop"
    assert summaries[0][1].message == "37 more alerts — open the tray" and summaries[0][1].level is Level.ERROR
    assert engine.storm.stats["held_back"] == 37


def test_held_back_pop_ups_get_no_recovery_pop_up(tmp_path):
    desktop = RecordingChannel("desktop")
    with Engine({"desktop": desktop}, routes("desktop"), tmp_path / "s.db",
                limits={"desktop": ChannelLimits(max_per_minute=1)}) as engine:
        engine.storm._send_summary = lambda name, alert: None
        engine.raise_alert("a", "warning", "m")
        engine.raise_alert("b", "warning", "m")
        assert engine.clear_alert("b") == {}  # it never popped up, so its recovery does not either
    assert desktop.kinds() == ["fired:warning"]


def test_slack_groups_what_piles_up_into_one_message(tmp_path):
    slack = GroupingChannel("slack")
    limits = {"slack": ChannelLimits(group_after=2, group_window=0.3)}
    with Engine({"slack": slack}, routes("slack"), tmp_path / "s.db", limits=limits, retry=FAST) as engine:
        for i in range(12):
            engine.raise_alert(f"svc{i}", "critical", "down")
        wait_until(lambda: len(slack.sent) == 12)
        time.sleep(0.2)
    assert [len(message) for message in slack.messages] == [1, 1, 10]
    assert sorted(a.event for a in slack.sent) == sorted(f"svc{i}" for i in range(12))


def test_storm_control_decisions_without_an_engine():
    sent = []
    storm = StormControl({"desktop": ChannelLimits(max_per_minute=2)}, lambda name, alert: sent.append(alert))
    from tray_alerts import Alert

    actions = [storm.decide("desktop", Alert(f"e{i}", "info", "m"), now=100.0 + i).action for i in range(4)]
    assert actions == ["send", "send", "suppress", "suppress"]
    assert storm.decide("desktop", Alert("later", "info", "m"), now=200.0).action == "send"  # a new minute
    assert storm.decide("slack", Alert("x", "info", "m")).action == "send"  # no limits: always send
    storm.close()
    assert sent and sent[0].message == "2 more alerts — open the tray"


def test_reminders_repeat_an_alert_still_active_with_how_long_it_fired(tmp_path):
    slack = RecordingChannel("slack")
    policy = ReminderPolicy(levels={Level.CRITICAL: 0.2})
    with Engine({"slack": slack}, routes("slack"), tmp_path / "s.db", reminders=policy) as engine:
        engine.raise_alert("db", "critical", "database down")
        engine.raise_alert("disk", "warning", "disk at 91%")  # no reminders for warning
        wait_until(lambda: sum(a.reminder for a in slack.sent) >= 2)
        engine.clear_alert("db", "database back")
        reminded = [h for h in engine.history(event="db") if h.kind == "reminded"]
    reminders = [a for a in slack.sent if a.reminder]
    assert all(a.event == "db" and a.firing_for >= 0.2 for a in reminders)
    assert "reminder: still firing after" in reminders[0].format()
    assert reminded and slack.sent[-1].resolved and slack.sent[-1].note().startswith("recovered after")


def test_a_muted_event_stays_active_and_its_notifications_wait(tmp_path):
    slack, log = RecordingChannel("slack"), RecordingChannel("log")
    with Engine({"slack": slack, "log": log}, routes("slack", "log"), tmp_path / "s.db", retry=FAST,
                quiet_channels={"log"}) as engine:
        engine.raise_alert("flaky", "warning", "flapping")
        engine.mute("flaky", time.time() + 3600)
        assert engine.muted_until("flaky") is not None
        engine.raise_alert("flaky", "error", "worse")  # escalation while muted: held for slack, logged
        engine.raise_alert("other", "error", "not muted")
        time.sleep(0.2)
        assert [a.event for a in slack.sent] == ["flaky", "other"] and len(log.sent) == 3
        assert {a.event for a in engine.active()} == {"flaky", "other"}
    with Engine({"slack": slack, "log": log}, routes("slack", "log"), tmp_path / "s.db", retry=FAST) as engine:
        assert "flaky" in engine.mutes()  # the mute survives a restart
        engine.mute("flaky", None)
        wait_until(lambda: len(slack.sent) == 3)
    assert slack.sent[-1].event == "flaky" and slack.sent[-1].level is Level.ERROR


def test_recoveries_say_how_long_the_event_was_down(tmp_path):
    slack = RecordingChannel("slack")
    with Engine({"slack": slack}, routes("slack"), tmp_path / "s.db") as engine:
        engine.raise_alert("api", "error", "HTTP 500")
        time.sleep(0.05)
        engine.clear_alert("api", "HTTP 200")
    recovery = slack.sent[-1]
    assert recovery.message == "HTTP 200" and recovery.firing_for >= 0.05
    assert recovery.format().endswith(f"— recovered after {recovery.firing_for:.1f} s")


@pytest.mark.parametrize("text, expected", [("critical = 30m\nwarning = off\n", {Level.CRITICAL: 1800.0})])
def test_reminder_settings(tmp_path, text, expected):
    from tray_alerts.config import load_settings

    path = tmp_path / "settings.ini"
    path.write_text(f"[reminders]\n{text}[monitor.db]\ntype = tcp\nport = 5432\nremind_every = 2h\n")
    policy = load_settings(path, {}).reminders
    assert policy.levels == expected and policy.interval("db", Level.INFO) == 7200.0
