"""Storm control, reminders, per-event mute and recovery durations."""
import pytest

from conftest import RecordingChannel
from tray_alerts import Engine, Level, display
from tray_alerts.clock import FakeClock
from tray_alerts.reminders import ReminderPolicy
from tray_alerts.storm import ChannelLimits, StormControl


@pytest.fixture
def clock():
    return FakeClock()


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


def test_a_storm_shows_a_few_pop_ups_then_one_summary_and_loses_nothing(tmp_path, clock):
    desktop, log = RecordingChannel("desktop"), RecordingChannel("log")
    limits = {"desktop": ChannelLimits(max_per_minute=3)}
    with Engine({"desktop": desktop, "log": log}, routes("desktop", "log"), tmp_path / "s.db", limits=limits,
                retry_in_background=False, clock=clock) as engine:
        results = [engine.raise_alert(f"check{i}", "error", "network down") for i in range(40)]
        assert [r["desktop"] for r in results].count(True) == 3
        assert len(log.sent) == 40 and len(engine.active()) == 40  # every alert is in the tray and the log
        held = [h for h in engine.history(limit=500) if h.channel == "desktop" and not h.ok]
        assert len(held) == 37 and all("held back by storm control" in h.detail for h in held)
        clock.advance(59)
        engine.tick()
        assert engine.wait_idle() and len(desktop.sent) == 3  # the minute is not over yet
        clock.advance(1)
        engine.tick()
        assert engine.wait_idle()
    summary = desktop.sent[-1]
    assert len(desktop.sent) == 4 and summary.event == "tray-alerts"
    assert summary.message == "37 more alerts: check3, check4, check5 and 34 more — open the tray"
    assert summary.level is Level.ERROR
    assert engine.storm.stats["held_back"] == 37


def one_pop_up_a_minute(tmp_path, clock, desktop) -> Engine:
    """An engine whose desktop channel shows at most one pop-up a minute."""
    return Engine({"desktop": desktop}, routes("desktop"), tmp_path / "s.db", retry_in_background=False,
                  limits={"desktop": ChannelLimits(max_per_minute=1)}, clock=clock)


def test_closing_sends_the_summary_still_waiting(tmp_path, clock):
    desktop = RecordingChannel("desktop")
    with one_pop_up_a_minute(tmp_path, clock, desktop) as engine:
        engine.raise_alert("a", "error", "m")
        engine.raise_alert("b", "error", "m")
    assert [a.message for a in desktop.sent] == ["m", "1 more alert: b — open the tray"]


def test_the_summary_is_at_the_worst_level_held_back(tmp_path, clock):
    desktop = RecordingChannel("desktop")
    with one_pop_up_a_minute(tmp_path, clock, desktop) as engine:
        for i, level in enumerate(["info", "info", "error", "warning"]):
            engine.raise_alert(f"e{i}", level, "m")
    assert desktop.sent[-1].level is Level.ERROR
    assert desktop.sent[-1].message == "3 more alerts: e1, e2 and e3 — open the tray"


def test_a_critical_is_never_held_back_and_counts_against_the_cap(tmp_path, clock):
    desktop = RecordingChannel("desktop")
    with one_pop_up_a_minute(tmp_path, clock, desktop) as engine:
        engine.raise_alert("a", "warning", "m")
        assert engine.raise_alert("db", "critical", "database down")["desktop"] is True
        assert engine.raise_alert("b", "warning", "m").outcomes["desktop"].status == "dropped"
        assert engine.raise_alert("a", "critical", "worse")["desktop"] is True  # an escalation to critical too
    assert [a.event for a in desktop.sent] == ["a", "db", "a", "tray-alerts"]
    assert desktop.sent[-1].message == "1 more alert: b — open the tray"


def test_recoveries_are_never_held_nor_counted(tmp_path, clock):
    desktop = RecordingChannel("desktop")
    with one_pop_up_a_minute(tmp_path, clock, desktop) as engine:
        engine.raise_alert("a", "warning", "m")
        engine.raise_alert("c", "warning", "m")  # held back: the cap is used up
        assert engine.clear_alert("a")["desktop"] is True  # the recovery goes all the same...
        assert len(engine.storm.gates()["desktop"].sent) == 1  # ...and does not count against the cap
        assert engine.storm.gates()["desktop"].held_events == ("c",)
    assert desktop.kinds() == ["fired:warning", "resolved:warning", "fired:warning"]  # a, its recovery, the summary


def test_held_back_pop_ups_get_no_recovery_pop_up(tmp_path, clock):
    desktop = RecordingChannel("desktop")
    with one_pop_up_a_minute(tmp_path, clock, desktop) as engine:
        engine.raise_alert("a", "warning", "m")
        engine.raise_alert("b", "warning", "m")
        assert engine.clear_alert("b") == {}  # it never popped up, so its recovery does not either
        clock.advance(60)
        engine.tick()
        assert engine.wait_idle()
    assert desktop.kinds() == ["fired:warning", "fired:warning"]  # the first alert, then the summary
    assert desktop.sent[-1].event == "tray-alerts"


def test_slack_groups_what_piles_up_into_one_message(tmp_path, clock):
    slack = GroupingChannel("slack")
    limits = {"slack": ChannelLimits(group_after=2, group_window=30)}
    with Engine({"slack": slack}, routes("slack"), tmp_path / "s.db", limits=limits, retry_in_background=False,
                clock=clock) as engine:
        results = [engine.raise_alert(f"svc{i}", "error", "down") for i in range(12)]
        assert [r.outcomes["slack"].status for r in results].count("held") == 10
        clock.advance(29)
        engine.tick()
        assert engine.wait_idle() and len(slack.sent) == 2
        clock.advance(1)
        engine.tick()
        assert engine.wait_idle()
    assert [len(message) for message in slack.messages] == [1, 1, 10]
    assert sorted(a.event for a in slack.sent) == sorted(f"svc{i}" for i in range(12))


def test_storm_control_decisions_without_an_engine():
    from tray_alerts import Alert

    storm = StormControl({"desktop": ChannelLimits(max_per_minute=2)})
    actions = [storm.decide("desktop", Alert(f"e{i}", "info", "m"), now=100.0 + i).action for i in range(4)]
    assert actions == ["send", "send", "suppress", "suppress"]
    assert storm.next_summary_at() == 160.0
    assert storm.take_summaries(159.0) == {}
    (summary,) = storm.take_summaries(160.0).values()
    assert summary.message == "2 more alerts: e2 and e3 — open the tray"
    assert storm.decide("desktop", Alert("later", "info", "m"), now=200.0).action == "send"  # a new minute
    assert storm.decide("slack", Alert("x", "info", "m"), now=200.0).action == "send"  # no limits: always send


def test_reminders_repeat_an_alert_still_active_with_how_long_it_fired(tmp_path, clock):
    slack = RecordingChannel("slack")
    policy = ReminderPolicy(levels={Level.CRITICAL: 3600})
    with Engine({"slack": slack}, routes("slack"), tmp_path / "s.db", reminders=policy, retry_in_background=False,
                clock=clock) as engine:
        engine.raise_alert("db", "critical", "database down")
        engine.raise_alert("disk", "warning", "disk at 91%")  # no reminders for warning
        for _ in range(5):  # a pass every 30 min for 2.5 h: two reminders, an hour apart, not one per pass
            clock.advance(1800)
            engine.tick()
            assert engine.wait_idle()
        engine.clear_alert("db", "database back")
        reminded = [h for h in engine.history(event="db") if h.kind == "reminded"]
    reminders = [a for a in slack.sent if a.reminder]
    assert [(a.event, a.firing_for) for a in reminders] == [("db", 3600), ("db", 7200)]
    assert "reminder: still firing after 1 h" in reminders[0].format()
    assert len(reminded) == 2 and slack.sent[-1].resolved and slack.sent[-1].note() == \
        f"recovered after 2 h 30 min (CRITICAL from {display.clock(slack.sent[-1].since, slack.sent[-1].at, seconds=False)})"


def test_reminders_go_only_to_the_channels_told(tmp_path, clock):
    slack, sms = RecordingChannel("slack"), RecordingChannel("sms")
    policy = ReminderPolicy(levels={Level.WARNING: 60})
    with Engine({"slack": slack, "sms": sms}, {"warning": ["slack"], "critical": ["sms"]}, tmp_path / "s.db",
                reminders=policy, retry_in_background=False, clock=clock) as engine:
        engine.raise_alert("db", "warning", "slow")
        clock.advance(60)
        engine.tick()
        assert engine.wait_idle()
    assert [a.reminder for a in slack.sent] == [False, True] and sms.sent == []


def test_a_muted_event_stays_active_and_its_notifications_wait(tmp_path, clock):
    slack, log = RecordingChannel("slack"), RecordingChannel("log")
    with Engine({"slack": slack, "log": log}, routes("slack", "log"), tmp_path / "s.db", quiet_channels={"log"},
                retry_in_background=False, clock=clock) as engine:
        engine.raise_alert("flaky", "warning", "flapping")
        engine.mute("flaky", clock.time() + 3600)
        assert engine.muted_until("flaky") is not None
        escalated = engine.raise_alert("flaky", "error", "worse")  # escalation while muted: held for slack, logged
        assert escalated.outcomes["slack"].status == "held" and escalated.muted_until == clock.time() + 3600
        engine.raise_alert("other", "error", "not muted")
        assert engine.wait_idle()
        assert [a.event for a in slack.sent] == ["flaky", "other"] and len(log.sent) == 3
        assert {a.event for a in engine.active()} == {"flaky", "other"}
    with Engine({"slack": slack, "log": log}, routes("slack", "log"), tmp_path / "s.db",
                retry_in_background=False, clock=clock) as engine:
        assert "flaky" in engine.mutes()  # the mute survives a restart
        engine.mute("flaky", None)
        assert engine.wait_idle()
    assert slack.sent[-1].event == "flaky" and slack.sent[-1].level is Level.ERROR and len(slack.sent) == 3


@pytest.mark.parametrize("length", [400 * 86400, -400 * 86400])
def test_a_mute_beyond_a_year_is_refused_and_nothing_is_stored(tmp_path, clock, length):
    with Engine({}, {}, tmp_path / "s.db", retry_in_background=False, clock=clock) as engine:
        with pytest.raises(ValueError, match="within 366 days"):
            engine.mute("x", clock.time() + length)
        assert engine.mutes() == {}
        assert engine.raise_alert("x", "error", "still works").kind == "fired"


def test_recoveries_say_how_long_the_event_was_down(tmp_path, clock):
    slack = RecordingChannel("slack")
    with Engine({"slack": slack}, routes("slack"), tmp_path / "s.db", clock=clock) as engine:
        engine.raise_alert("api", "error", "HTTP 500")
        clock.advance(42 * 60)
        engine.clear_alert("api", "HTTP 200")
    recovery = slack.sent[-1]
    assert recovery.message == "HTTP 200" and recovery.firing_for == 42 * 60
    began = display.clock(recovery.since, recovery.at, seconds=False)
    assert recovery.format().endswith(f"— recovered after 42 min (ERROR from {began})")  # the incident it ends


@pytest.mark.parametrize("text, expected", [("critical = 30m\nwarning = off\n", {Level.CRITICAL: 1800.0})])
def test_reminder_settings(tmp_path, text, expected):
    from tray_alerts.config import load_settings

    path = tmp_path / "settings.ini"
    path.write_text(f"[reminders]\n{text}[monitor.db]\ntype = tcp\nport = 5432\nremind_every = 2h\n")
    policy = load_settings(path, {}).reminders
    assert policy.levels == expected and policy.interval("db", Level.INFO) == 7200.0


def test_a_hold_or_a_storm_drop_never_shows_the_channel_as_failing(tmp_path, clock):
    from tray_alerts.cli import channel_state

    desktop, slack = RecordingChannel("desktop"), RecordingChannel("slack")
    with Engine({"desktop": desktop, "slack": slack}, routes("desktop", "slack"), tmp_path / "s.db",
                limits={"desktop": ChannelLimits(max_per_minute=1)}, retry_in_background=False, clock=clock) as engine:
        engine.raise_alert("a", "warning", "m")
        engine.raise_alert("b", "warning", "m")  # desktop: held back by storm control
        engine.mute("c", clock.time() + 3600)
        engine.raise_alert("c", "warning", "m")  # both: held while muted
        engine.snooze(clock.time() + 600)
        engine.raise_alert("d", "warning", "m")  # both: held while snoozed
        health = engine.channel_health()
    lines = {name: channel_state(name, None, health.get(name)) for name in ("desktop", "slack")}
    assert all(line.startswith("ok (last delivery") for line in lines.values()), lines
    assert "failing" not in " ".join(lines.values()) and "retry" not in " ".join(lines.values())
    assert lines["slack"].endswith("(2 held: snoozed, muted or grouped)")
