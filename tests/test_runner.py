"""The monitor runner: threads, flap control, hung and failing checks, and the seed's scenario end to end."""
import os
import time

import pytest
from werkzeug import Response

from conftest import RecordingChannel
from tray_alerts import Engine, Level
from tray_alerts.clock import FakeClock
from tray_alerts.display import duration
from tray_alerts.monitors import MonitorSpec
from tray_alerts.monitors.base import Reading, Thresholds
from tray_alerts.monitors.file_age import FileAgeMonitor
from tray_alerts.monitors.heartbeat import HeartbeatMonitor
from tray_alerts.monitors.http import HttpMonitor
from tray_alerts.monitors.runner import MonitorRunner
from tray_alerts.sleep import SleepTracker


class ScriptedMonitor:
    """Returns the readings it is given, one per check (the last one repeats)."""

    type = "scripted"

    def __init__(self, name: str, readings: list):
        self.name, self.label = name, f"scripted {name}"
        self.readings = list(readings)
        self.checks = 0

    def check(self) -> Reading:
        self.checks += 1
        item = self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]
        if isinstance(item, Exception):
            raise item
        if item == "hang":
            time.sleep(5)
        return item


BAD = Reading(Level.ERROR, "is bad")
WORSE = Reading(Level.CRITICAL, "is worse")
GOOD = Reading(None, "is fine")


@pytest.fixture
def channel():
    return RecordingChannel("rec")


@pytest.fixture
def engine(channel, tmp_path):
    engine = Engine({"rec": channel}, {level: ["rec"] for level in Level}, tmp_path / "state.db")
    yield engine
    engine.close()


def run(engine, monitor, times, **spec):
    runner = MonitorRunner(engine, [MonitorSpec(monitor, interval=3600, timeout=spec.pop("timeout", 2), **spec)])
    return runner, [runner.run_once(monitor.name) for _ in range(times)]


def test_bad_reading_raises_once_escalates_and_a_good_one_clears(engine, channel):
    monitor = ScriptedMonitor("svc", [BAD, BAD, WORSE, WORSE, GOOD, GOOD, BAD])
    run(engine, monitor, 7)
    assert channel.kinds() == ["fired:error", "fired:critical", "resolved:critical", "fired:error"]
    assert channel.sent[0].message == "scripted svc is bad"
    assert channel.sent[2].message == "scripted svc is fine"


def test_flap_control_needs_readings_in_a_row(engine, channel):
    monitor = ScriptedMonitor("flappy", [BAD, GOOD, BAD, BAD, GOOD, BAD, GOOD, GOOD])
    run(engine, monitor, 8, failures_before_alert=2, successes_before_clear=2)
    assert channel.kinds() == ["fired:error", "resolved:error"]


def test_a_check_that_raises_is_an_error_alert_and_the_runner_goes_on(engine, channel):
    monitor = ScriptedMonitor("broken", [RuntimeError("sensor unplugged"), GOOD])
    runner, readings = run(engine, monitor, 2)
    assert readings[0].level is Level.ERROR and readings[0].summary == "check failed: RuntimeError: sensor unplugged"
    assert channel.kinds() == ["fired:error", "resolved:error"]


def test_a_hung_check_is_bounded_and_not_started_twice(engine, channel):
    monitor = ScriptedMonitor("stuck", ["hang"])
    runner, readings = run(engine, monitor, 2, timeout=0.2)
    assert readings[0].summary.startswith("check failed: no result within")
    assert "still running" in readings[1].summary
    assert monitor.checks == 1 and channel.kinds() == ["fired:error"]


def test_a_hung_monitor_does_not_delay_the_others(engine, channel):
    stuck = ScriptedMonitor("stuck", ["hang"])
    quick = ScriptedMonitor("quick", [BAD])
    runner = MonitorRunner(engine, [MonitorSpec(stuck, interval=0.05, timeout=3),
                                    MonitorSpec(quick, interval=0.05, timeout=3)])
    runner.start()
    try:
        deadline = time.time() + 2
        while quick.checks < 5 and time.time() < deadline:
            time.sleep(0.01)
        assert quick.checks >= 5 and stuck.checks == 1
    finally:
        runner.stop()


def test_statuses_report_the_last_reading(engine):
    runner, _ = run(engine, ScriptedMonitor("svc", [BAD]), 1)
    (status,) = runner.statuses()
    assert status.reading == BAD and status.message == "scripted svc is bad" and status.bad_streak == 1


def test_a_standalone_summary_is_the_whole_message_and_the_recovery_carries_its_own(engine, channel):
    """A plugin's own text (nagios) is not prefixed with the label; a runner-made failure still is."""
    monitor = ScriptedMonitor("plugin", [Reading(Level.WARNING, "UNKNOWN: sensor offline", standalone=True),
                                         RuntimeError("boom"),
                                         Reading(None, "OK: sensor back", context={"load1": "0.5"}, standalone=True)])
    runner, _ = run(engine, monitor, 3)
    assert channel.kinds() == ["fired:warning", "fired:error", "resolved:error"]
    assert [alert.message for alert in channel.sent] == ["UNKNOWN: sensor offline",
                                                         "scripted plugin check failed: RuntimeError: boom",
                                                         "OK: sensor back"]
    assert channel.sent[2].context == {"load1": "0.5"}
    assert runner.statuses()[0].message == "OK: sensor back"


def test_context_keys_named_like_raise_alerts_parameters_still_raise(engine, channel):
    context = {"level": "low", "message": "m", "event": "e", "self": "s", "mount": "/"}
    run(engine, ScriptedMonitor("odd", [Reading(Level.ERROR, "is bad", context=context)]), 1)
    assert channel.kinds() == ["fired:error"]
    assert channel.sent[0].context == {"level_": "low", "message_": "m", "event_": "e", "self_": "s", "mount": "/"}


def test_seed_scenario_api_500_then_200_then_500_with_the_real_runner_thread(httpserver_ipv4, tmp_path):
    """API 500 -> alert once; still 500 -> silent; 200 -> one recovery; 500 again -> a fresh alert."""
    state = {"status": 500}
    httpserver_ipv4.expect_request("/health").respond_with_handler(
        lambda request: Response("down" if state["status"] == 500 else "ok", status=state["status"]))
    slack = RecordingChannel("slack")
    monitor = HttpMonitor("api", httpserver_ipv4.url_for("/health"), timeout=2)
    with Engine({"slack": slack}, {level: ["slack"] for level in Level}, tmp_path / "state.db") as engine:
        runner = MonitorRunner(engine, [MonitorSpec(monitor, interval=0.05, timeout=2)])

        def checks() -> int:
            return len(httpserver_ipv4.log)

        def wait_for(condition, seconds=10):
            deadline = time.time() + seconds
            while not condition():
                assert time.time() < deadline, "timed out"
                time.sleep(0.01)

        runner.start()
        try:
            wait_for(lambda: len(slack.sent) == 1)
            first = checks()
            wait_for(lambda: checks() >= first + 5)  # still 500 for several checks: silent
            assert slack.kinds() == ["fired:error"]
            state["status"] = 200
            wait_for(lambda: len(slack.sent) == 2)
            recovered = checks()
            wait_for(lambda: checks() >= recovered + 5)
            assert len(slack.sent) == 2
            state["status"] = 500
            wait_for(lambda: len(slack.sent) == 3)
            again = checks()
            wait_for(lambda: checks() >= again + 5)
        finally:
            runner.stop()
    assert slack.kinds() == ["fired:error", "resolved:error", "fired:error"]
    assert "HTTP 500 (expected 2xx)" in slack.sent[0].message and slack.sent[0].event == "api"
    assert slack.sent[1].message.startswith(f"http {monitor.url} answered HTTP 200")


# ---- sleep and resume (FakeClock) ----------------------------------------------------------------------

H = 3600.0


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def clocked_engine(channel, tmp_path, clock):
    engine = Engine({"rec": channel}, {level: ["rec"] for level in Level}, tmp_path / "state.db", clock=clock)
    yield engine
    engine.close()


def sleep_aware(engine, clock, monitor, grace=120.0, **spec):
    sleeps = SleepTracker(clock, grace)
    return MonitorRunner(engine, [MonitorSpec(monitor, interval=spec.pop("interval", 30), timeout=2, **spec)],
                         clock=clock, sleeps=sleeps)


def test_a_heartbeat_pinged_before_a_night_asleep_does_not_fire_on_resume_but_after_an_hour_awake(
        clocked_engine, channel, clock):
    """Issue 13: a `max_age = 1h` heartbeat fired the moment the lid opened after a night asleep."""
    heartbeat = HeartbeatMonitor("backup", max_age=H)
    pings = {"backup": clock.time()}
    heartbeat.last_ping = pings.get
    runner = sleep_aware(clocked_engine, clock, heartbeat, grace=0.0)  # the awake age alone, no grace
    clock.advance(30 * 60)
    assert runner.run_once("backup").ok
    clock.jump(8 * H)  # the night: the wall clock moves on, the monotonic one stands still
    clock.advance(10)
    reading = runner.run_once("backup")
    assert reading.ok and reading.summary == "last ping 8 h 30 min ago, 30 min of it awake (limit 1 h)"
    clock.advance(29 * 60)
    assert runner.run_once("backup").ok and channel.kinds() == []
    clock.advance(2 * 60)  # an hour and a minute awake without a ping
    reading = runner.run_once("backup")
    assert reading.level is Level.ERROR
    assert reading.summary == "last ping 9 h 1 min ago, 1 h 1 min of it awake (limit 1 h)"
    assert channel.kinds() == ["fired:error"]


def test_a_heartbeat_counts_its_start_in_awake_time_too(clocked_engine, channel, clock):
    heartbeat = HeartbeatMonitor("nightly", max_age=H)
    runner = sleep_aware(clocked_engine, clock, heartbeat, grace=0.0)
    clock.advance(20 * 60)
    clock.jump(8 * H)
    assert runner.run_once("nightly").summary == "waiting for the first ping (limit 1 h)"
    clock.advance(41 * 60)
    assert runner.run_once("nightly").summary == \
        "no ping since start 9 h 1 min ago, 1 h 1 min of it awake (limit 1 h)"


def test_file_age_counts_awake_time(clocked_engine, channel, clock, tmp_path):
    path = tmp_path / "backup.tar.gz"
    path.write_text("data")
    os.utime(path, (clock.time() - 30 * 60, clock.time() - 30 * 60))
    monitor = FileAgeMonitor("backup", str(path), Thresholds({Level.WARNING: H}, show=duration))
    runner = sleep_aware(clocked_engine, clock, monitor, grace=0.0)
    clock.jump(8 * H)
    reading = runner.run_once("backup")
    assert (reading.level, reading.summary) == (None, "is 8 h 30 min old, 30 min of it awake (warning at 1 h)")
    assert reading.value == 30 * 60
    clock.advance(31 * 60)
    reading = runner.run_once("backup")
    assert (reading.level, reading.summary) == (Level.WARNING,
                                                "is 9 h 1 min old, 1 h 1 min of it awake (warning at 1 h)")
    assert channel.kinds() == ["fired:warning"]


def test_a_bad_reading_in_the_grace_after_a_resume_waits_for_the_grace_to_end(clocked_engine, channel, clock):
    monitor = ScriptedMonitor("api", [BAD])
    runner = sleep_aware(clocked_engine, clock, monitor, grace=120.0, interval=600)
    assert runner.next_wait("api") == 600
    clock.jump(8 * H)  # the network is not back yet
    runner.run_once("api")
    (status,) = runner.statuses()
    assert channel.kinds() == [] and status.bad_streak == 0 and status.held_until == clock.time() + 120
    assert runner.next_wait("api") == 120  # checked again when the grace ends, not an interval later
    clock.advance(119)
    runner.run_once("api")
    assert channel.kinds() == [] and runner.next_wait("api") == 1
    clock.advance(1)
    runner.run_once("api")
    assert channel.kinds() == ["fired:error"] and runner.next_wait("api") == 600


def test_bad_readings_in_the_grace_do_not_count_toward_failures_before_alert(clocked_engine, channel, clock):
    monitor = ScriptedMonitor("api", [BAD])
    runner = sleep_aware(clocked_engine, clock, monitor, failures_before_alert=2)
    clock.jump(H)
    runner.run_once("api")
    runner.run_once("api")
    clock.advance(120)
    runner.run_once("api")
    assert channel.kinds() == [] and runner.statuses()[0].bad_streak == 1
    runner.run_once("api")
    assert channel.kinds() == ["fired:error"]


def test_a_good_reading_in_the_grace_still_clears(clocked_engine, channel, clock):
    monitor = ScriptedMonitor("api", [BAD, GOOD])
    runner = sleep_aware(clocked_engine, clock, monitor)
    runner.run_once("api")
    clock.jump(H)
    runner.run_once("api")
    assert channel.kinds() == ["fired:error", "resolved:error"]


def test_no_grace_with_resume_grace_zero(clocked_engine, channel, clock):
    runner = sleep_aware(clocked_engine, clock, ScriptedMonitor("api", [BAD]), grace=0.0)
    clock.jump(H)
    runner.run_once("api")
    assert channel.kinds() == ["fired:error"]


def test_the_runner_stamps_checks_with_its_clock(clocked_engine, clock):
    runner = sleep_aware(clocked_engine, clock, ScriptedMonitor("svc", [GOOD]))
    runner.run_once("svc")
    assert runner.statuses()[0].checked_at == clock.time()
