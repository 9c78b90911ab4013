"""Quiet hours: the window as a pure function of a time and a zone (Europe/Berlin across both daylight-saving
nights, windows crossing midnight), its settings, and the engine on a FakeClock: held until the window ends,
allowed levels and recoveries of what was told pass, what fired and recovered inside sends nothing but stays in
the history, many held become one summary; and a real SMTP server (aiosmtpd) gets the held mail at 07:00."""
from __future__ import annotations

import email
import email.policy
from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller

from conftest import RecordingChannel
from helpers_net import free_port
from tray_alerts import Engine, Level
from tray_alerts.channels.email import EmailChannel
from tray_alerts.clock import FakeClock
from tray_alerts.outbox import RetryPolicy
from tray_alerts.quiet_hours import (QuietHours, QuietPolicy, QuietWindow, local_zone, parse_allows, parse_window,
                                     quiet_state)
from tray_alerts.state import ChannelHealth
from tray_alerts.storm import SUMMARY_EVENT
from tray_alerts.wiring import channel_state

BERLIN = ZoneInfo("Europe/Berlin")
NIGHT = parse_window("22:00-07:00")
POLICY = RetryPolicy(first=5, longest=60, expiry=3600, jitter=0)


def at(text: str, zone=BERLIN) -> float:
    """`2026-06-10 23:00` wall time in `zone` (first showing) as a Unix time."""
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


def utc(text: str) -> float:
    return datetime.fromisoformat(text + "+00:00").timestamp()


# ---- the window ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("wall, quiet, ends", [
    ("2026-06-10 21:59", False, "2026-06-11 07:00"),
    ("2026-06-10 22:00", True, "2026-06-11 07:00"),  # the start is inside
    ("2026-06-10 23:30", True, "2026-06-11 07:00"),
    ("2026-06-11 00:00", True, "2026-06-11 07:00"),  # across midnight: the window that began yesterday
    ("2026-06-11 06:59", True, "2026-06-11 07:00"),
    ("2026-06-11 07:00", False, "2026-06-12 07:00"),  # the end is outside; the next end is tomorrow's
    ("2026-06-11 12:00", False, "2026-06-12 07:00"),
])
def test_a_window_crossing_midnight(wall, quiet, ends):
    state = quiet_state(NIGHT, at(wall), BERLIN)
    assert (state.quiet, state.ends_at, state.ends_text) == (quiet, at(ends), "07:00")


@pytest.mark.parametrize("wall, quiet, ends", [
    ("2026-06-10 11:59", False, "2026-06-10 13:30"),
    ("2026-06-10 12:00", True, "2026-06-10 13:30"),
    ("2026-06-10 13:30", False, "2026-06-11 13:30"),
])
def test_a_window_within_one_day(wall, quiet, ends):
    state = quiet_state(parse_window("12:00-13:30"), at(wall), BERLIN)
    assert (state.quiet, state.ends_at) == (quiet, at(ends))


def test_spring_forward_night_the_window_is_an_hour_shorter_and_ends_at_seven_summer_time():
    # Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST
    start, end = utc("2026-03-28 21:00"), utc("2026-03-29 05:00")  # 22:00 CET, 07:00 CEST
    assert quiet_state(NIGHT, start - 1, BERLIN).quiet is False
    assert quiet_state(NIGHT, start, BERLIN) == quiet_state(NIGHT, end - 1, BERLIN)
    inside = quiet_state(NIGHT, utc("2026-03-29 01:30"), BERLIN)  # 03:30 CEST, just after the jump
    assert inside.quiet and inside.ends_at == end and end - start == 8 * 3600
    after = quiet_state(NIGHT, end, BERLIN)
    assert not after.quiet and after.ends_at == utc("2026-03-30 05:00")


def test_fall_back_night_the_window_is_an_hour_longer_and_ends_at_seven_winter_time():
    # Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET, 02:00-03:00 shows twice
    start, end = utc("2026-10-24 20:00"), utc("2026-10-25 06:00")  # 22:00 CEST, 07:00 CET
    for moment in (start, utc("2026-10-25 00:30"), utc("2026-10-25 01:30"), end - 1):  # both 02:30s inside
        state = quiet_state(NIGHT, moment, BERLIN)
        assert state.quiet and state.ends_at == end
    assert end - start == 10 * 3600
    assert not quiet_state(NIGHT, end, BERLIN).quiet


def test_a_start_the_spring_forward_jump_skips_is_the_moment_of_the_jump():
    window = parse_window("02:30-03:30")  # 02:30 does not exist on 2026-03-29 in Berlin
    jump = utc("2026-03-29 01:00")  # 02:00 CET -> 03:00 CEST
    assert not quiet_state(window, jump - 1, BERLIN).quiet
    state = quiet_state(window, jump, BERLIN)
    assert state.quiet and state.ends_at == utc("2026-03-29 01:30")  # 03:30 CEST


def test_a_start_the_fall_back_night_shows_twice_is_its_first_showing():
    window = parse_window("02:30-06:00")
    first = utc("2026-10-25 00:30")  # 02:30 CEST; 02:30 CET comes an hour later
    assert not quiet_state(window, first - 1, BERLIN).quiet
    assert quiet_state(window, first, BERLIN).quiet


def test_the_local_zone_comes_from_tz_with_its_rules():
    zone = local_zone({"TZ": "Europe/Berlin"})
    assert datetime(2026, 1, 1, tzinfo=zone).utcoffset() != datetime(2026, 7, 1, tzinfo=zone).utcoffset()


# ---- settings --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, window", [
    ("22:00-07:00", QuietWindow(time(22), time(7))),
    (" 9:15 - 17:45 ", QuietWindow(time(9, 15), time(17, 45))),
    ("00:00-23:59", QuietWindow(time(0), time(23, 59))),
])
def test_a_window_setting(text, window):
    assert parse_window(text) == window


@pytest.mark.parametrize("text, problem", [
    ("22-7", "not a window like 22:00-07:00"),
    ("22:00", "not a window like 22:00-07:00"),
    ("24:00-07:00", "not a time of day"),
    ("22:00-07:60", "not a time of day"),
    ("07:00-07:00", "starts and ends at the same time"),
])
def test_a_bad_window_setting_says_what_is_wrong(text, problem):
    with pytest.raises(ValueError, match=problem):
        parse_window(text)


def test_quiet_allows_takes_a_level_or_none():
    assert parse_allows("Critical") is Level.CRITICAL and parse_allows("none") is None
    with pytest.raises(ValueError, match="unknown level 'loud'.*, or none"):
        parse_allows("loud")


@pytest.mark.parametrize("allows, level, passes", [
    (None, Level.CRITICAL, False), (Level.CRITICAL, Level.CRITICAL, True), (Level.CRITICAL, Level.ERROR, False),
    (Level.ERROR, Level.CRITICAL, True), (Level.ERROR, Level.ERROR, True), (Level.ERROR, Level.WARNING, False),
])
def test_quiet_allows_lets_that_level_and_above_pass(allows, level, passes):
    assert QuietHours(NIGHT, allows).passes(level) is passes


def test_settings_give_each_channel_its_quiet_hours(tmp_path):
    from tray_alerts.config import load_settings
    path = tmp_path / "settings.ini"
    path.write_text(f"[alerts]\nstate_dir = {tmp_path}\n[channel.email]\nquiet_hours = 22:00-07:00\n"
                    "quiet_allows = critical\n")
    settings = load_settings(path, environ={})
    assert settings.channels["email"].quiet_hours == QuietHours(NIGHT, Level.CRITICAL)
    assert "quiet_hours" not in settings.channels["email"].options
    assert settings.channels["desktop"].quiet_hours is None


# ---- status ----------------------------------------------------------------------------------------------------


def test_status_shows_a_channel_in_quiet_hours_with_what_waits():
    state = quiet_state(NIGHT, at("2026-06-10 23:00"), BERLIN)
    health = ChannelHealth(None, None, "", 1, 2)
    assert channel_state("email", None, health, state) == "quiet until 07:00 (3 waiting)"
    assert channel_state("email", None, None, state) == "quiet until 07:00"
    outside = quiet_state(NIGHT, at("2026-06-10 12:00"), BERLIN)
    assert channel_state("email", None, None, outside) == "ready (nothing sent yet)"
    assert channel_state("email", "switched off (enabled = no)", None, state) == "switched off (enabled = no)"


# ---- the engine on a fake clock --------------------------------------------------------------------------------


def make_engine(state_path, clock, *channels, allows=None, **options):
    quiet = QuietPolicy({"desktop": QuietHours(NIGHT, allows)}, BERLIN)
    return Engine({c.name: c for c in channels}, {level: [c.name for c in channels] for level in Level}, state_path,
                  retry=POLICY, retry_in_background=False, clock=clock, quiet_hours=quiet, **options)


def run_until(engine, clock, moment):
    """Move the clock to `moment`, run the background passes, wait (real time) for the answers."""
    clock.advance(moment - clock.time())
    engine.tick()
    assert engine.wait_idle(), "the outbox did not settle"


@pytest.fixture
def channels():
    return RecordingChannel("desktop"), RecordingChannel("log")


def test_a_warning_at_23_is_held_and_delivered_at_7(state_path, channels):
    desktop, log = channels
    clock = FakeClock(at("2026-06-10 23:00"))
    with make_engine(state_path, clock, desktop, log) as engine:
        result = engine.raise_alert("disk", "warning", "91%")
        assert result.outcomes["desktop"].status == "held"
        assert result.outcomes["desktop"].detail == "held for quiet hours until 07:00"
        assert [a.event for a in log.sent] == ["disk"]  # a channel without quiet hours is told at once
        run_until(engine, clock, at("2026-06-11 06:59"))
        assert desktop.sent == []
        run_until(engine, clock, at("2026-06-11 07:00"))
        assert [(a.event, a.message) for a in desktop.sent] == [("disk", "91%")]
        details = [e.detail for e in engine.history(20) if e.channel == "desktop"]
    assert "held for quiet hours until 07:00" in details


def test_an_allowed_critical_goes_at_once_and_an_error_waits(state_path, channels):
    desktop, log = channels
    clock = FakeClock(at("2026-06-10 23:00"))
    with make_engine(state_path, clock, desktop, log, allows=Level.CRITICAL) as engine:
        assert engine.raise_alert("api", "critical", "down").outcomes["desktop"].status == "delivered"
        assert engine.raise_alert("backup", "error", "failed").outcomes["desktop"].status == "held"
        assert [a.event for a in desktop.sent] == ["api"]
        run_until(engine, clock, at("2026-06-11 07:00"))
    assert [a.event for a in desktop.sent] == ["api", "backup"]


def test_fired_and_recovered_inside_the_window_sends_nothing_there_but_stays_in_the_history(state_path, channels):
    desktop, log = channels
    clock = FakeClock(at("2026-06-10 23:00"))
    with make_engine(state_path, clock, desktop, log) as engine:
        engine.raise_alert("disk", "warning", "91%")
        clock.advance(1800)
        assert engine.clear_alert("disk", "80%").outcomes["desktop"].status == "queued"
        run_until(engine, clock, at("2026-06-11 07:00"))
        history = engine.history(50, "disk")
        assert engine.pending() == []
    assert desktop.sent == []
    assert log.kinds() == ["fired:warning", "resolved:warning"]
    assert {e.kind for e in history} >= {"fired", "cleared"}
    dropped = [(e.kind, e.detail) for e in history if e.channel == "desktop" and e.detail.startswith("dropped")]
    assert sorted(kind for kind, _ in dropped) == ["delivery", "recovery"]
    assert all("overtaken" in detail for _, detail in dropped)
    assert all(e.ok is None for e in history if e.channel == "desktop")  # not the channel's failure


@pytest.fixture
def told_before_the_window(state_path, channels):
    """An engine whose desktop was told of a warning at 21:00; the clock now at 23:00, inside the window."""
    desktop, log = channels
    clock = FakeClock(at("2026-06-10 21:00"))
    with make_engine(state_path, clock, desktop, log) as engine:
        engine.raise_alert("disk", "warning", "91%")
        run_until(engine, clock, at("2026-06-10 23:00"))
        yield engine, clock, desktop


def test_the_recovery_of_an_alert_told_before_the_window_goes_at_once(told_before_the_window):
    engine, clock, desktop = told_before_the_window
    assert engine.clear_alert("disk", "80%").outcomes["desktop"].status == "delivered"
    assert desktop.kinds() == ["fired:warning", "resolved:warning"]


def test_a_held_escalation_of_a_told_alert_is_overtaken_by_its_recovery(told_before_the_window):
    engine, clock, desktop = told_before_the_window
    assert engine.raise_alert("disk", "error", "97%").outcomes["desktop"].status == "held"
    engine.clear_alert("disk", "80%")
    assert desktop.kinds() == ["fired:warning"]  # the recovery waits behind the held escalation
    run_until(engine, clock, at("2026-06-11 07:00"))
    assert desktop.kinds() == ["fired:warning", "resolved:error"]  # told of it: the recovery reaches them


def test_an_escalation_to_an_allowed_level_goes_at_once_and_overtakes_the_held_firing(state_path, channels):
    desktop, log = channels
    clock = FakeClock(at("2026-06-10 23:00"))
    with make_engine(state_path, clock, desktop, log, allows=Level.CRITICAL) as engine:
        assert engine.raise_alert("disk", "warning", "91%").outcomes["desktop"].status == "held"
        run_until(engine, clock, at("2026-06-11 02:00"))
        assert engine.raise_alert("disk", "critical", "99%").outcomes["desktop"].status == "delivered"
        assert desktop.kinds() == ["fired:critical"]
        run_until(engine, clock, at("2026-06-11 07:00"))
        assert desktop.kinds() == ["fired:critical"]  # the stale warning is not sent after it
        assert engine.pending() == []
        details = [e.detail for e in engine.history(50, "disk") if e.channel == "desktop"]
    assert any(detail.startswith("dropped as overtaken") for detail in details)


def test_a_held_firing_is_overtaken_by_its_held_escalation(state_path, channels):
    desktop, log = channels
    clock = FakeClock(at("2026-06-10 23:00"))
    with make_engine(state_path, clock, desktop, log) as engine:
        engine.raise_alert("disk", "warning", "91%")
        assert engine.raise_alert("disk", "error", "97%").outcomes["desktop"].status == "queued"
        run_until(engine, clock, at("2026-06-11 07:00"))
    assert desktop.kinds() == ["fired:error"]  # one notification, the current one


def test_reminders_are_skipped_during_quiet_hours(state_path, channels):
    from tray_alerts.reminders import ReminderPolicy
    desktop, log = channels
    clock = FakeClock(at("2026-06-10 21:00"))
    reminders = ReminderPolicy({Level.WARNING: 3600.0})
    with make_engine(state_path, clock, desktop, log, reminders=reminders) as engine:
        engine.raise_alert("disk", "warning", "91%")
        run_until(engine, clock, at("2026-06-10 22:30"))  # a reminder is due at 22:00
        run_until(engine, clock, at("2026-06-10 23:30"))
        details = [e.detail for e in engine.history(50, "disk") if e.channel == "desktop"]
    assert [a.note() for a in desktop.sent if a.note()] == []  # only the firing at 21:00
    assert len(desktop.sent) == 1 and len(log.sent) == 3
    assert details.count("reminder skipped: quiet hours until 07:00") == 2


def test_many_held_go_out_as_one_summary_and_each_stays_in_the_history(state_path, channels):
    desktop, log = channels
    clock = FakeClock(at("2026-06-10 23:00"))
    events = [f"check{n}" for n in range(7)]
    with make_engine(state_path, clock, desktop, log) as engine:
        for event in events:
            engine.raise_alert(event, "error" if event == "check3" else "warning", "down")
        run_until(engine, clock, at("2026-06-11 07:00"))
        history = engine.history(100)
    assert [(a.event, a.level) for a in desktop.sent] == [(SUMMARY_EVENT, Level.ERROR)]
    assert desktop.sent[0].message == "7 alerts held for quiet hours: check0, check1, check2 and 4 more — open the tray"
    assert desktop.sent[0].context["events"] == ", ".join(events)
    named = {e.event for e in history if e.channel == "desktop" and "named in one summary of 7" in e.detail}
    assert named == set(events)


def test_a_few_held_go_out_each_in_order(state_path, channels):
    desktop, log = channels
    clock = FakeClock(at("2026-06-10 23:00"))
    with make_engine(state_path, clock, desktop, log) as engine:
        for event in ("a", "b", "c"):
            engine.raise_alert(event, "warning", "down")
            clock.advance(60)
        run_until(engine, clock, at("2026-06-11 07:00"))
    assert [a.event for a in desktop.sent] == ["a", "b", "c"]


# ---- end to end: a real SMTP server ----------------------------------------------------------------------------


class Recorder:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 Message accepted for delivery"


def test_a_mail_held_for_quiet_hours_arrives_when_they_end(state_path):
    recorder, port = Recorder(), free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        mail = EmailChannel("email", "127.0.0.1", port, "none", "tray@example.org", ["me@example.org"])
        clock = FakeClock(at("2026-06-10 23:00"))
        quiet = QuietPolicy({"email": QuietHours(NIGHT)}, BERLIN)
        with Engine({"email": mail}, {level: ["email"] for level in Level}, state_path, retry=POLICY,
                    retry_in_background=False, clock=clock, quiet_hours=quiet) as engine:
            assert engine.raise_alert("disk", "warning", "91% on /var").outcomes["email"].status == "held"
            run_until(engine, clock, at("2026-06-11 06:30"))
            assert recorder.messages == []
            run_until(engine, clock, at("2026-06-11 07:00"))
    finally:
        controller.stop()
    assert [m["Subject"] for m in recorder.messages] == ["[WARNING] disk: 91% on /var"]


def test_the_dashboard_says_a_channel_is_quiet_in_the_words_of_status(state_path):
    from tray_alerts.dashboard.views import channels

    clock = FakeClock(at("2026-06-10 23:00"))
    with make_engine(state_path, clock, RecordingChannel("desktop"), RecordingChannel("log")) as engine:
        engine.raise_alert("disk", "warning", "disk at 91%")
        states = {channel["name"]: channel["state"] for channel in channels(engine, clock.time())}
        assert states["desktop"] == "quiet until 07:00 (1 waiting)" and states["log"].startswith("ok (last delivery")
        assert channels(engine, at("2026-06-11 08:00"))[0]["state"] != states["desktop"]
