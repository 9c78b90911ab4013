"""Suspend and resume: the pure decisions (awake age, grace, one sleep from two reports, the history text), the
tracker on a FakeClock, logind's PrepareForSleep through a real dbus-daemon, and the app writing one history
line per sleep."""
from __future__ import annotations

import os
import subprocess
from datetime import datetime

import pytest

from desktop_session import DesktopSession, skip_unless_tools
from polling import wait_until
from tray_alerts import cli, session_bus
from tray_alerts.app import App
from tray_alerts.clock import FakeClock
from tray_alerts.config import load_settings
from tray_alerts.logind import LOGIND, MANAGER, MANAGER_PATH, LogindWatch
from tray_alerts.sleep import (MIN_SLEEP, Sleep, SleepTracker, asleep_between, awake_age, describe, grace_end,
                               in_grace, of_it_awake, with_sleep)

H, MIN = 3600.0, 60.0


def local(*parts: int) -> float:
    """A local wall time as Unix seconds."""
    return datetime(*parts).timestamp()  # type: ignore[arg-type]


# ---- awake age -----------------------------------------------------------------------------------------


def test_awake_age_leaves_out_the_sleep_after_the_moment():
    night = [Sleep(1 * H, 9 * H)]
    assert awake_age(0.0, 10 * H, night) == 2 * H
    assert asleep_between(0.0, 10 * H, night) == 8 * H


def test_a_sleep_before_the_moment_does_not_count_and_one_under_way_counts_in_part():
    night = [Sleep(1 * H, 9 * H)]
    assert awake_age(9.5 * H, 10 * H, night) == 0.5 * H  # pinged after the resume
    assert awake_age(5 * H, 10 * H, night) == 1 * H  # a wall time inside the sleep: its 4 h left count
    assert awake_age(0.0, 5 * H, night) == 1 * H  # asked while (as far as the list knows) still asleep


def test_awake_age_over_several_sleeps_and_none():
    naps = [Sleep(1 * H, 2 * H), Sleep(3 * H, 3.5 * H), Sleep(20 * H, 21 * H)]
    assert awake_age(0.0, 4 * H, naps) == 2.5 * H
    assert awake_age(0.0, 4 * H, []) == 4 * H
    assert awake_age(5 * H, 4 * H, naps) == 0.0  # a moment in the future (a clock set back) is no negative age


# ---- grace ---------------------------------------------------------------------------------------------


def test_in_grace_for_the_grace_after_the_last_resume():
    sleeps = [Sleep(0.0, 100.0), Sleep(1000.0, 5000.0)]
    assert grace_end(sleeps, 120.0) == 5120.0
    assert in_grace(5000.0, sleeps, 120.0) and in_grace(5119.0, sleeps, 120.0)
    assert not in_grace(5120.0, sleeps, 120.0)
    assert not in_grace(4999.0, sleeps, 120.0)  # the clock set back before the resume: no endless grace
    assert not in_grace(150.0, sleeps[:1], 0.0) and grace_end(sleeps, 0.0) is None  # 0 turns the grace off
    assert grace_end([], 120.0) is None and not in_grace(0.0, [], 120.0)


# ---- one sleep from two reports ------------------------------------------------------------------------


def test_logind_and_the_clock_reporting_the_same_sleep_count_once():
    exact = Sleep(1000.0, 9000.0)
    estimate = Sleep(1004.0, 9004.0, exact=False)  # the jump noticed 4 s after the resume
    sleeps, added, replaced = with_sleep([], exact)
    assert (sleeps, added, replaced) == ((exact,), exact, None)
    assert with_sleep(sleeps, estimate) == ((exact,), None, None)  # known already: nothing added
    sleeps, added, replaced = with_sleep([estimate], exact)  # the clock first, then logind
    assert (sleeps, added, replaced) == ((exact,), None, estimate)
    assert asleep_between(0.0, 10000.0, sleeps) == 8000.0


def test_separate_sleeps_are_kept_in_order_and_the_oldest_forgotten():
    sleeps: tuple[Sleep, ...] = ()
    for start in (500.0, 100.0, 300.0):
        sleeps, added, _ = with_sleep(sleeps, Sleep(start, start + 50.0), keep=2)
        assert added is not None
    assert [sleep.start for sleep in sleeps] == [300.0, 500.0]


# ---- words ---------------------------------------------------------------------------------------------


def test_describe_a_night_and_a_weekend():
    assert describe(Sleep(local(2026, 12, 1, 22, 10), local(2026, 12, 2, 7, 2))) == "asleep 22:10–07:02 (8 h 52 min)"
    assert describe(Sleep(local(2026, 11, 27, 18, 0), local(2026, 11, 30, 8, 30))) == \
        "asleep Nov 27 18:00–Nov 30 08:30 (2 d 14 h)"


def test_of_it_awake_only_when_sleep_is_in_the_age():
    assert of_it_awake(9 * H, 5 * MIN) == ", 5 min of it awake"
    assert of_it_awake(5 * MIN, 5 * MIN) == ""


# ---- the tracker on a fake clock -----------------------------------------------------------------------


def test_a_forward_clock_jump_is_a_sleep_that_ended_when_it_was_noticed():
    clock = FakeClock()
    told = []
    tracker = SleepTracker(clock, grace=120.0, on_new=lambda: told.append(True))
    clock.advance(60)
    clock.jump(8 * H)
    clock.advance(5)
    tracker.look()
    now = clock.time()
    assert tracker.sleeps() == (Sleep(now - 8 * H, now, exact=False),) and told == [True]
    assert tracker.in_grace() and tracker.grace_end() == now + 120.0
    assert tracker.awake_since(now - 8 * H - 65) == pytest.approx(65.0)
    tracker.look()
    assert len(tracker.sleeps()) == 1  # the jump is taken once
    clock.advance(120)
    assert not tracker.in_grace()


def test_a_backward_jump_and_a_tiny_one_are_no_sleep():
    clock = FakeClock()
    tracker = SleepTracker(clock, grace=120.0)
    clock.jump(-H)
    tracker.look()
    clock.jump(MIN_SLEEP / 2)
    tracker.look()
    assert tracker.sleeps() == () and tracker.take_unwritten() is None


def test_logind_then_the_clock_is_one_sleep_with_logind_times():
    clock = FakeClock()
    tracker = SleepTracker(clock, grace=120.0)
    tracker.going_to_sleep()
    start = clock.time()
    assert tracker.asleep_since == start
    clock.jump(8 * H)
    tracker.resumed()
    clock.advance(3)
    tracker.look()  # the same jump, seen by the clock too
    assert tracker.sleeps() == (Sleep(start, start + 8 * H),) and tracker.asleep_since is None
    unwritten = tracker.take_unwritten()
    assert unwritten == Sleep(start, start + 8 * H) and tracker.take_unwritten() is None
    tracker.unwritten_again(unwritten)  # the history could not be written: it waits for the next pass
    assert tracker.take_unwritten() == unwritten


def test_the_clock_then_logind_is_one_sleep_and_the_unwritten_one_takes_logind_times():
    clock = FakeClock()
    tracker = SleepTracker(clock)
    tracker.going_to_sleep()
    start = clock.time()
    clock.jump(8 * H)
    clock.advance(2)
    tracker.look()  # a monitor thread noticed the jump before the D-Bus signal came in
    clock.advance(1)
    tracker.resumed()
    exact = Sleep(start, start + 8 * H + 3)
    assert tracker.sleeps() == (exact,) and tracker.take_unwritten() == exact


def test_resumed_without_going_to_sleep_is_left_to_the_clock():
    clock = FakeClock()
    tracker = SleepTracker(clock)
    tracker.resumed()
    assert tracker.sleeps() == ()


# ---- logind through a real dbus-daemon -----------------------------------------------------------------


@pytest.fixture
def system_bus():
    """A private bus standing in for the system bus: `dbus-daemon --print-address`, with gdbus at hand."""
    skip_unless_tools("dbus-daemon", "gdbus")
    with DesktopSession(display=False, notifications=False) as session:
        yield session.bus_address


class FakeLogind:
    """A connection owning org.freedesktop.login1 that emits PrepareForSleep, as logind does."""

    def __init__(self, address: str):
        self.address = address
        self.bus = session_bus.run(self._connect())

    async def _connect(self):
        from dbus_fast.aio import MessageBus

        bus = await MessageBus(bus_address=self.address).connect()
        await bus.request_name(LOGIND)
        return bus

    def prepare_for_sleep(self, going: bool) -> None:
        from dbus_fast import Message

        async def emit() -> None:
            await self.bus.send(Message.new_signal(MANAGER_PATH, MANAGER, "PrepareForSleep", "b", [going]))

        session_bus.run(emit())

    def close(self) -> None:
        session_bus.call_soon(self.bus.disconnect)


def gdbus_emit(address: str, *extra: str) -> None:
    """The real `gdbus emit` of PrepareForSleep(true), from a connection that is not logind (`--session` with the
    bus's address in the environment: with `--address` gdbus sends before saying Hello, and the bus passes that on
    to no one)."""
    subprocess.run(["gdbus", "emit", "--session", "--object-path", MANAGER_PATH,
                    "--signal", f"{MANAGER}.PrepareForSleep", *extra, "true"], check=True, timeout=10,
                   env={**os.environ, "DBUS_SESSION_BUS_ADDRESS": address})


@pytest.fixture
def watched(system_bus):
    """A LogindWatch subscribed on the private bus, a fake logind on it, and what the watch was told."""
    seen: list[bool] = []
    watch = LogindWatch(seen.append, system_bus)
    logind = FakeLogind(system_bus)
    watch.start()
    try:
        assert watch.ready.wait(10), "the watch never subscribed"
        yield seen, watch, logind
    finally:
        watch.stop()
        logind.close()


def test_logind_prepare_for_sleep_reaches_the_watch(watched):
    seen, _, logind = watched
    logind.prepare_for_sleep(True)
    logind.prepare_for_sleep(False)
    wait_until(lambda: len(seen) == 2, "both PrepareForSleep signals")
    assert seen == [True, False]


def test_a_prepare_for_sleep_from_anyone_but_logind_is_ignored(watched, system_bus):
    seen, watch, logind = watched
    gdbus_emit(system_bus)  # a broadcast from someone else: the match rule names logind as the sender
    gdbus_emit(system_bus, "--dest", watch._bus.unique_name)  # sent to us alone: no broadcast, ignored
    logind.prepare_for_sleep(False)  # logind's own, after them: once it is seen, theirs were passed over
    wait_until(lambda: seen, "logind's signal")
    assert seen == [False]


def test_without_a_system_bus_the_watch_says_so_and_stays_quiet(tmp_path, caplog):
    watch = LogindWatch(lambda going: None, f"unix:path={tmp_path / 'no-bus'}")
    with caplog.at_level("INFO", logger="tray_alerts.logind"):
        watch.start()
        wait_until(lambda: "noticed by the clock alone" in caplog.text, "the log line")
    assert not watch.ready.is_set()
    watch.stop()


# ---- the app -------------------------------------------------------------------------------------------


def app_settings(tmp_path):
    """A settings file for an app of the test's own (state, log and port private to it); its path."""
    from helpers_net import free_port

    path = tmp_path / "settings.ini"
    path.write_text(f"[alerts]\nstate_dir = {tmp_path / 'state'}\nlog_file = {tmp_path / 'app.log'}\n"
                    f"api_port = {free_port()}\n[channel.desktop]\nenabled = no\n")
    return path


def test_the_app_writes_one_history_line_per_sleep_seen_by_logind_and_the_clock(system_bus, tmp_path, capsys):
    path = app_settings(tmp_path)
    clock = FakeClock(local(2026, 12, 1, 22, 10))
    app = App(load_settings(path), clock=clock, system_bus=system_bus)
    logind = FakeLogind(system_bus)
    app.start()
    try:
        assert app.logind.ready.wait(10), "the app never subscribed to logind"
        logind.prepare_for_sleep(True)
        wait_until(lambda: app.sleeps.asleep_since is not None, "going to sleep noted")
        clock.jump(8 * H + 52 * MIN)  # the night: the wall clock moves, the monotonic one stands still
        logind.prepare_for_sleep(False)
        wait_until(lambda: app.engine.history(event="sleep"), "the sleep in the history")
        app.note_sleeps()  # the clock's view of the same jump adds nothing
        (line,) = app.engine.history(event="sleep")
        assert (line.kind, line.level.value, line.message) == ("sleep", "info", "asleep 22:10–07:02 (8 h 52 min)")
        assert app.sleeps.in_grace()
    finally:
        app.stop()
        logind.close()
    assert cli.main(["--config", str(path), "history", "--event", "sleep"]) == 0
    assert "asleep 22:10–07:02 (8 h 52 min)" in capsys.readouterr().out


def test_the_app_without_logind_notes_the_sleep_from_the_clock(tmp_path):
    clock = FakeClock(local(2026, 12, 2, 12, 0))
    app = App(load_settings(app_settings(tmp_path)), clock=clock, system_bus=f"unix:path={tmp_path / 'no-bus'}")
    app.start()
    try:
        clock.jump(45 * MIN)
        app.engine.tick()  # one engine pass (the background thread, woken by the sleep, may write it first)
        (line,) = wait_until(lambda: app.engine.history(event="sleep"), "the sleep in the history")
        assert line.message == "asleep 12:00–12:45 (45 min)"
        app.engine.tick()
        app.note_sleeps()
        assert len(app.engine.history(event="sleep")) == 1
    finally:
        app.stop()



# ---- the setting ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, seconds", [(None, 120.0), ("5m", 300.0), ("90s", 90.0), ("1h", 3600.0),
                                                  ("0", 0.0), ("0s", 0.0), ("0.0m", 0.0), ("off", 0.0)])
def test_resume_grace_setting(tmp_path, text, seconds):
    path = tmp_path / "settings.ini"
    path.write_text("[alerts]\n" + (f"resume_grace = {text}\n" if text is not None else ""))
    assert load_settings(path).resume_grace == seconds
