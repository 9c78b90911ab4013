"""Behaviour pinned with exact counts: the monitor runner's streaks, and the engine's timed work on a fake clock —
repeat counts written by the background pass (not only by flush()), reminders once per interval to the channels
told, retries given up a fixed time after the row was created, and close() sending the storm summary waiting."""
import threading

import pytest

from conftest import HangingChannel, RecordingChannel
from polling import wait_until
from tray_alerts import DeliveryError, Engine, Level
from tray_alerts.clock import FakeClock
from tray_alerts.lifecycle import Raise
from tray_alerts.monitors import MonitorSpec
from tray_alerts.monitors.base import Reading
from tray_alerts.monitors.runner import MonitorRunner
from tray_alerts.outbox import RetryPolicy
from tray_alerts.reminders import ReminderPolicy
from tray_alerts.state import StateStore, StoreFault
from tray_alerts.storm import ChannelLimits

# ---- the monitor runner's streaks ------------------------------------------------------------------------------

BAD = Reading(Level.ERROR, "is bad", context={"code": 500})
WORSE = Reading(Level.CRITICAL, "is worse")
GOOD = Reading(None, "is fine")


class ScriptedMonitor:
    """Returns the readings it is given, one per check."""

    type = "scripted"

    def __init__(self, readings):
        self.name, self.label = "svc", "scripted svc"
        self.readings = list(readings)

    def check(self) -> Reading:
        return self.readings.pop(0)


class Sink:
    """Records what the runner asks of the engine, compactly: `raise:error`, `clear`."""

    def __init__(self, fail: bool = False):
        self.calls: list[str] = []
        self.details: list[tuple] = []
        self.fail = fail

    def raise_alert(self, event, level, message, **context):
        self.calls.append(f"raise:{Level.parse(level).value}")
        self.details.append((event, message, context))
        if self.fail:
            raise RuntimeError("engine unavailable")
        return {}

    def clear_alert(self, event, message="recovered", *, context=None):
        self.calls.append("clear")
        self.details.append((event, message))
        self.recovered_with = context
        return {}


def run_readings(readings, failures=1, successes=1, sink=None, on_change=None):
    sink = sink or Sink()
    spec = MonitorSpec(ScriptedMonitor(readings), interval=3600, timeout=5, failures_before_alert=failures,
                       successes_before_clear=successes)
    runner = MonitorRunner(sink, [spec], on_change)
    calls, streaks = [], []
    for expected in readings:
        before = len(sink.calls)
        assert runner.run_once("svc") is expected
        calls.append(sink.calls[before] if len(sink.calls) > before else "-")
        (status,) = runner.statuses()
        streaks.append((status.bad_streak, status.good_streak))
        assert status.reading is expected and status.checked_at is not None
    return calls, streaks, sink


@pytest.mark.parametrize("readings, failures, successes, calls", [
    ([BAD], 1, 1, ["raise:error"]),
    ([BAD, BAD, BAD], 1, 1, ["raise:error"] * 3),  # every bad reading goes to the engine (which debounces)
    ([BAD, BAD, BAD], 2, 1, ["-", "raise:error", "raise:error"]),
    ([BAD, GOOD, BAD, GOOD, BAD], 2, 1, ["-", "clear", "-", "clear", "-"]),  # a good reading resets the bad streak
    ([BAD, BAD, BAD, BAD], 3, 1, ["-", "-", "raise:error", "raise:error"]),
    ([BAD, WORSE], 1, 1, ["raise:error", "raise:critical"]),
    ([BAD, WORSE], 2, 1, ["-", "raise:critical"]),  # a worse reading continues the bad streak
    ([GOOD, GOOD], 1, 1, ["clear", "clear"]),
    ([BAD, GOOD, GOOD, GOOD], 1, 2, ["raise:error", "-", "clear", "clear"]),
    ([BAD, GOOD, BAD, GOOD, GOOD], 1, 2, ["raise:error", "-", "raise:error", "-", "clear"]),  # and vice versa
    ([GOOD, GOOD, GOOD], 1, 3, ["-", "-", "clear"]),
])
def test_readings_in_a_row_raise_and_clear(readings, failures, successes, calls):
    assert run_readings(readings, failures, successes)[0] == calls


def test_the_streaks_count_readings_in_a_row():
    _, streaks, _ = run_readings([BAD, BAD, GOOD, GOOD, GOOD, BAD], failures=5, successes=5)
    assert streaks == [(1, 0), (2, 0), (0, 1), (0, 2), (0, 3), (1, 0)]


def test_the_engine_is_told_the_monitors_event_message_and_context():
    _, _, sink = run_readings([BAD, GOOD])
    assert sink.details == [("svc", "scripted svc is bad", {"code": 500}), ("svc", "scripted svc is fine")]


def test_every_check_is_announced_once_even_when_the_engine_fails():
    changes = []
    calls, _, _ = run_readings([BAD, GOOD, BAD], sink=Sink(fail=True), on_change=lambda: changes.append(1))
    assert calls == ["raise:error", "clear", "raise:error"] and len(changes) == 3


# ---- the engine on a fake clock --------------------------------------------------------------------------------


class DownChannel(RecordingChannel):
    """Refuses every alert, retryably; counts the tries."""

    def __init__(self, name):
        super().__init__(name)
        self.tries = 0

    def send(self, alert):
        self.tries += 1
        raise DeliveryError("connection refused")


@pytest.fixture
def clock():
    return FakeClock()


def engine_for(state_path, clock, *channels, routes=None, background=False, **options):
    routes = routes or {level: [c.name for c in channels] for level in Level}
    return Engine({c.name: c for c in channels}, routes, state_path, retry_in_background=background, clock=clock,
                  delivery_timeout=2.0, **options)


def settle(engine, clock, seconds=0.0):
    clock.advance(seconds)
    engine.tick()
    assert engine.wait_idle(), "the outbox did not settle"


def stored_seen(state_path, clock, event):
    store = StateStore(state_path, clock)
    try:
        return {record.event: record.seen for record in store.load_active()}.get(event)
    finally:
        store.close()


class WatchedClock(FakeClock):
    """A fake clock that tells when someone (the engine's background thread) has gone to sleep on it."""

    def __init__(self):
        super().__init__()
        self.asleep = threading.Event()

    def wait(self, event, seconds):
        self.asleep.set()
        return super().wait(event, seconds)

    def wait_for_sleeper(self):
        assert self.asleep.wait(10), "the background thread never went to sleep"
        self.asleep.clear()


def test_the_background_pass_writes_repeat_counts_without_a_flush(state_path):
    clock = WatchedClock()
    log = RecordingChannel("log")
    engine = engine_for(state_path, clock, log, background=True)
    try:
        clock.wait_for_sleeper()
        engine.raise_alert("disk", "warning", "91%")
        engine.raise_alert("disk", "warning", "92%")
        engine.raise_alert("disk", "warning", "93%")
        assert stored_seen(state_path, clock, "disk") == 1  # the repeats are counted in memory first

        def written_as_time_passes():
            clock.advance(1.0)  # the background thread wakes on the fake clock: no flush() or tick() here
            return stored_seen(state_path, clock, "disk") == 3

        wait_until(written_as_time_passes, "the repeats written by the background pass", timeout=10)
        assert engine.active_events()[0].seen == 3
    finally:
        engine.close()
    assert len(log.sent) == 1


def test_repeats_are_written_within_a_second_even_when_the_background_thread_sleeps(state_path):
    clock = WatchedClock()
    log = RecordingChannel("log")
    engine = engine_for(state_path, clock, log, background=True)
    try:
        clock.wait_for_sleeper()  # asleep until its next poll, with no repeats to flush yet
        engine.raise_alert("disk", "warning", "91%")
        engine.raise_alert("disk", "warning", "92%")
        clock.advance(1.0)  # docs/architecture.md: "count the repeat in memory (written within a second)"
        wait_until(lambda: stored_seen(state_path, clock, "disk") == 2, "the repeats written", timeout=2)
    finally:
        engine.close()


def test_repeat_counts_wait_for_the_flush_delay_on_a_pass(state_path, clock):
    log = RecordingChannel("log")
    with engine_for(state_path, clock, log) as engine:
        engine.raise_alert("disk", "warning", "91%")
        engine.raise_alert("disk", "warning", "92%")
        settle(engine, clock, 0.5)
        assert stored_seen(state_path, clock, "disk") == 1
        settle(engine, clock, 0.5)  # counted a second ago
        assert stored_seen(state_path, clock, "disk") == 2


def test_close_writes_the_repeats_counted_in_memory(state_path, clock):
    log = RecordingChannel("log")
    with engine_for(state_path, clock, log) as engine:
        for _ in range(4):
            engine.raise_alert("disk", "warning", "91%")
    assert stored_seen(state_path, clock, "disk") == 4
    with engine_for(state_path, clock, log) as again:
        assert again.active_events()[0].seen == 4


def test_close_sends_the_storm_summary_waiting_exactly_once_at_the_worst_level_held_back(state_path, clock):
    desktop = RecordingChannel("desktop")
    engine = engine_for(state_path, clock, desktop, limits={"desktop": ChannelLimits(max_per_minute=1)})
    for event, level in [("a", "info"), ("b", "critical"), ("c", "warning")]:
        engine.raise_alert(event, level, "down")
    assert len(desktop.sent) == 2  # the cap: a critical still goes, the rest wait for the summary due in a minute
    engine.close()
    engine.close()  # closing twice sends nothing more
    assert [(a.event, a.level, a.message) for a in desktop.sent] == [
        ("a", Level.INFO, "down"), ("b", Level.CRITICAL, "down"),
        ("tray-alerts", Level.WARNING, "1 more alert: c — open the tray")]


def test_close_with_nothing_held_back_sends_no_summary(state_path, clock):
    desktop = RecordingChannel("desktop")
    with engine_for(state_path, clock, desktop, limits={"desktop": ChannelLimits(max_per_minute=5)}) as engine:
        engine.raise_alert("a", "error", "down")
    assert [a.event for a in desktop.sent] == ["a"]


def test_a_summary_sent_on_time_is_not_sent_again_on_close(state_path, clock):
    desktop = RecordingChannel("desktop")
    with engine_for(state_path, clock, desktop, limits={"desktop": ChannelLimits(max_per_minute=1)}) as engine:
        engine.raise_alert("a", "error", "down")
        engine.raise_alert("b", "error", "down")
        settle(engine, clock, 59.0)
        assert len(desktop.sent) == 1
        settle(engine, clock, 1.0)
        assert [a.event for a in desktop.sent] == ["a", "tray-alerts"]
    assert len(desktop.sent) == 2


def test_an_escalation_with_routes_that_do_not_nest_recovers_to_both(state_path, clock):
    slack, sms = RecordingChannel("slack"), RecordingChannel("sms")
    routes = {"warning": ["slack"], "critical": ["sms"]}
    with engine_for(state_path, clock, slack, sms, routes=routes) as engine:
        engine.raise_alert("db", "warning", "slow")
        engine.raise_alert("db", "critical", "down")
        assert engine.active_events()[0].told == {"slack", "sms"}
        assert engine.clear_alert("db", "back") == {"slack": True, "sms": True}
    assert slack.kinds() == ["fired:warning", "resolved:critical"]
    assert sms.kinds() == ["fired:critical", "resolved:critical"]


def test_reminders_go_once_per_interval_to_every_channel_told(state_path, clock):
    slack, sms, email = RecordingChannel("slack"), RecordingChannel("sms"), RecordingChannel("email")
    routes = {"warning": ["slack"], "critical": ["sms"], "error": ["email"]}
    reminders = ReminderPolicy(levels={Level.CRITICAL: 600})
    with engine_for(state_path, clock, slack, sms, email, routes=routes, reminders=reminders) as engine:
        start = clock.time()
        engine.raise_alert("db", "warning", "slow")
        settle(engine, clock, 100)
        engine.raise_alert("db", "critical", "down")  # reminders counted from here
        for _ in range(13):  # a pass every 100 s up to 1400 s after the escalation
            settle(engine, clock, 100)
    for channel in (slack, sms):
        reminded = [round(a.at.timestamp() - start) for a in channel.sent if a.reminder]
        assert reminded == [700, 1300], channel.name
    assert email.sent == []  # never told: never reminded


def test_a_retry_gives_up_a_fixed_time_after_the_row_was_created(state_path, clock):
    slack = DownChannel("slack")
    policy = RetryPolicy(first=5, longest=60, expiry=300, jitter=0)
    with engine_for(state_path, clock, slack, retry=policy) as engine:
        engine.raise_alert("api", "error", "HTTP 500")
        (row,) = engine.pending()
        assert (row.created_at, row.expires_at) == (clock.time(), clock.time() + 300)
        for _ in range(10):  # a pass every 61 s for 610 s
            settle(engine, clock, 61)
        assert engine.pending() == []
        details = [h.detail for h in engine.history(event="api") if h.channel == "slack"]
    # tries at 0, 61, 122, 183 and 244 s; after the last, the next (at 304 s) would be past the expiry at 300 s
    assert slack.tries == 5
    assert details[0] == "gave up after 5 tries: connection refused"


# ---- when the background pass next has work --------------------------------------------------------------------


def test_with_nothing_to_do_the_background_pass_looks_every_five_seconds(state_path, clock):
    with engine_for(state_path, clock, RecordingChannel("log")) as engine:
        assert engine.background.pause() == 5.0
        engine.raise_alert("disk", "error", "full")  # active, but reminders are off
        assert engine.background.pause() == 5.0


def test_the_next_pass_comes_when_a_retry_falls_due(state_path, clock):
    policy = RetryPolicy(first=3, longest=60, expiry=3600, jitter=0)
    with engine_for(state_path, clock, DownChannel("slack"), retry=policy) as engine:
        engine.raise_alert("api", "error", "HTTP 500")
        assert engine.wait_idle()  # the answer (retry in 3 s) is written
        assert engine.background.pause() == 3.0
        clock.advance(1.0)
        assert engine.background.pause() == 2.0
        clock.advance(5.0)  # overdue: at once, never a negative wait
        assert engine.background.pause() == 0.0


def test_the_next_pass_comes_when_the_oldest_repeats_are_due_to_be_written(state_path, clock):
    with engine_for(state_path, clock, RecordingChannel("log")) as engine:
        engine.raise_alert("a", "warning", "m")
        engine.raise_alert("a", "warning", "m")  # a repeat: written a second after it was counted
        assert engine.background.pause() == 1.0
        clock.advance(0.5)
        engine.raise_alert("b", "warning", "m")
        engine.raise_alert("b", "warning", "m")
        assert engine.background.pause() == 0.5  # a's, the older


def test_with_reminders_on_the_pass_looks_every_second_while_something_fires(state_path, clock):
    reminders = ReminderPolicy(levels={Level.ERROR: 3600})
    with engine_for(state_path, clock, RecordingChannel("log"), reminders=reminders) as engine:
        assert engine.background.pause() == 5.0  # nothing firing
        engine.raise_alert("disk", "error", "full")
        assert engine.background.pause() == 1.0


def test_while_the_file_cannot_be_written_the_pass_tries_again_within_a_second(state_path, clock, monkeypatch):
    with engine_for(state_path, clock, RecordingChannel("slack")) as engine:
        break_writes(monkeypatch, engine)
        assert engine.raise_alert("api", "error", "HTTP 500").stored is False
        assert engine.background.pause() == 1.0
        monkeypatch.undo()


def test_a_failing_look_at_the_outbox_still_gives_a_pause(state_path, clock, monkeypatch):
    with engine_for(state_path, clock, RecordingChannel("log")) as engine:
        def broken():
            raise RuntimeError("database is locked")

        monkeypatch.setattr(engine.outbox, "next_wake", broken)
        assert engine.background.pause() == 5.0


def test_the_time_last_seen_survives_writing_the_repeats(state_path, clock):
    with engine_for(state_path, clock, RecordingChannel("log")) as engine:
        start = clock.time()
        engine.raise_alert("disk", "warning", "m")
        clock.advance(5.0)
        engine.raise_alert("disk", "warning", "m")
        engine.flush()
        (record,) = engine.active_events()
        assert (record.seen, record.last_seen, record.since) == (2, start + 5.0, start)


def test_writing_repeats_takes_in_what_another_process_changed(state_path, clock):
    log = RecordingChannel("log")
    with engine_for(state_path, clock, log) as first:
        first.raise_alert("disk", "warning", "m")
        first.raise_alert("disk", "warning", "m")  # a repeat counted in memory
        assert first.wait_idle()  # the firing's answer is written: its recovery need not queue behind it
        with engine_for(state_path, clock, log) as second:
            assert second.clear_alert("disk", "fine") == {"log": True}
        first.flush()
        assert first.active_events() == []  # the clear is seen: the repeat was of an episode that has ended


# ---- changes the state file could not take ---------------------------------------------------------------------


def break_writes(monkeypatch, engine, reason="state.db: disk full"):
    def write(*args, **kwargs):
        raise StoreFault(reason)

    monkeypatch.setattr(engine.store, "write", write)


def test_a_change_kept_while_the_file_could_not_be_written_is_stored_by_the_next_pass(state_path, clock,
                                                                                       monkeypatch):
    slack = RecordingChannel("slack")
    with engine_for(state_path, clock, slack) as engine:
        break_writes(monkeypatch, engine)
        result = engine.raise_alert("api", "error", "HTTP 500")
        assert result.stored is False and slack.sent == []
        monkeypatch.undo()
        settle(engine, clock, 1.0)
        assert stored_seen(state_path, clock, "api") == 1 and engine.fault == ""
        settle(engine, clock, 61.0)
    assert [a.event for a in slack.sent] == ["api"]


def test_close_stores_a_change_kept_while_the_file_could_not_be_written(state_path, clock, monkeypatch):
    engine = engine_for(state_path, clock, RecordingChannel("slack"))
    break_writes(monkeypatch, engine)
    assert engine.raise_alert("api", "error", "HTTP 500").stored is False
    monkeypatch.undo()
    engine.close()
    assert stored_seen(state_path, clock, "api") == 1


def test_a_lasting_fault_is_logged_once_per_reason_by_the_background_pass(state_path, clock, monkeypatch, caplog):
    policy = RetryPolicy(first=5, longest=60, expiry=3600, jitter=0)
    with engine_for(state_path, clock, DownChannel("slack"), retry=policy) as engine:
        engine.raise_alert("api", "error", "HTTP 500")  # a retry is due in 5 s: every pass must write
        assert engine.wait_idle()

        def errors():
            return [r.getMessage() for r in caplog.records if r.getMessage().startswith("background pass:")]

        clock.advance(10.0)
        break_writes(monkeypatch, engine)
        for _ in range(3):
            engine.tick()
        assert errors() == ["background pass: state.db: disk full"]
        break_writes(monkeypatch, engine, "state.db: locked by another process")
        engine.tick()
        engine.tick()
        assert errors()[1:] == ["background pass: state.db: locked by another process"]
        monkeypatch.undo()
        settle(engine, clock)  # a pass that works
        break_writes(monkeypatch, engine, "state.db: locked by another process")
        clock.advance(61.0)
        engine.tick()
        assert len(errors()) == 3  # the same fault again after a pass that worked is news again
        monkeypatch.undo()


# ---- closing ---------------------------------------------------------------------------------------------------


class ClosingChannel(RecordingChannel):
    def __init__(self, name):
        super().__init__(name)
        self.closed = 0

    def close(self):
        self.closed += 1


def test_close_closes_each_channel_once_stops_its_thread_and_leaves_the_file_whole(state_path):
    clock = WatchedClock()
    slack = ClosingChannel("slack")
    before = set(threading.enumerate())
    engine = engine_for(state_path, clock, slack, background=True)
    clock.wait_for_sleeper()
    engine.raise_alert("api", "error", "HTTP 500")
    started = [t for t in set(threading.enumerate()) - before if t.name == "engine"]
    assert len(started) == 1
    engine.close()
    engine.close()
    assert slack.closed == 1
    assert not started[0].is_alive()
    assert sorted(p.name for p in state_path.parent.iterdir()) == ["state.db"]  # no WAL left behind


def test_a_delivery_still_sending_at_close_is_sent_again_by_the_next_start(state_path, clock):
    slow = HangingChannel("slack")
    try:
        with engine_for(state_path, clock, slow) as engine:
            engine.submit(Raise("api", Level.ERROR, "HTTP 500"), wait=0)
        with engine_for(state_path, clock, RecordingChannel("slack")) as again:
            (row,) = again.pending()
            assert row.possible_repeat  # taken over at once: the closed engine holds no claim any more
    finally:
        slow.release.set()


# ---- clock jumps and time awake --------------------------------------------------------------------------------


def test_a_backward_clock_jump_does_not_stall_a_retry(state_path, clock):
    slack = DownChannel("slack")
    policy = RetryPolicy(first=60, longest=600, expiry=86400, jitter=0)
    with engine_for(state_path, clock, slack, retry=policy) as engine:
        engine.raise_alert("api", "error", "HTTP 500")  # try 1; the next in 60 s
        assert engine.wait_idle()
        clock.jump(-3600.0)  # the clock set back an hour
        settle(engine, clock)
        settle(engine, clock, 59.0)
        assert slack.tries == 1
        settle(engine, clock, 1.0)  # 60 s after the first try, as measured by time passing
        assert slack.tries == 2


def test_a_forward_clock_jump_keeps_a_retrys_wait(state_path, clock):
    slack = DownChannel("slack")
    policy = RetryPolicy(first=60, longest=600, expiry=86400 * 7, jitter=0)
    with engine_for(state_path, clock, slack, retry=policy) as engine:
        engine.raise_alert("api", "error", "HTTP 500")
        assert engine.wait_idle()
        settle(engine, clock, 20.0)
        clock.jump(2 * 86400.0)  # asleep over a weekend
        settle(engine, clock)
        settle(engine, clock, 39.0)
        assert slack.tries == 1  # not all at once on waking: the wait left (40 s) is kept
        settle(engine, clock, 1.0)
        assert slack.tries == 2


def stored_meta(state_path, clock, key):
    store = StateStore(state_path, clock)
    try:
        return store.meta(key)
    finally:
        store.close()


def test_the_app_notes_it_is_awake_once_a_minute(state_path):
    clock = WatchedClock()
    start = clock.time()
    engine = engine_for(state_path, clock, RecordingChannel("log"), background=True)
    try:
        clock.wait_for_sleeper()
        assert float(stored_meta(state_path, clock, "awake_at")) == start  # noted at the start
        clock.advance(60.0)
        wait_until(lambda: float(stored_meta(state_path, clock, "awake_at")) == start + 60.0, "awake noted",
                   timeout=10)
    finally:
        engine.close()


def test_time_not_running_does_not_count_toward_a_retrys_expiry(state_path, clock):
    slack = DownChannel("slack")
    policy = RetryPolicy(first=60, longest=600, expiry=3600, jitter=0)
    with engine_for(state_path, clock, slack, retry=policy, background=True) as engine:
        engine.raise_alert("api", "error", "HTTP 500")
        assert engine.wait_idle()
        (row,) = engine.pending()
    clock.advance(86400.0)  # not running for a day
    with engine_for(state_path, clock, slack, retry=policy, background=True) as again:
        (later,) = again.pending()
        assert later.id == row.id and later.expires_at == row.expires_at + 86400.0


def test_a_monitors_recovery_carries_what_it_read_as_it_recovered():
    from tray_alerts.monitors.base import Reading

    bad = Reading(Level.ERROR, "at 97%", 97.0, {"used": "97%"})
    good = Reading(None, "at 61%", 61.0, {"used": "61%"})
    _, _, sink = run_readings([bad, good])
    assert sink.calls == ["raise:error", "clear"] and sink.recovered_with == {"used": "61%"}
