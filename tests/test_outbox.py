"""The outbox: every notification a durable row; retryable failures back off and arrive once, late, in order per
event; holds, expiry and clock jumps run on a fake clock (the engine's background pass is driven by `tick`)."""
import sqlite3

import pytest

from conftest import RecordingChannel
from polling import wait_until
from tray_alerts import DeliveryError, Engine, Level
from tray_alerts.clock import FakeClock
from tray_alerts.outbox import MIN_ATTEMPTS, RetryPolicy

POLICY = RetryPolicy(first=5, longest=60, expiry=3600, jitter=0)


class SwitchableChannel(RecordingChannel):
    """Refuses (retryably) while down; records only what it accepted."""

    def __init__(self, name: str, retry_after: float | None = None):
        super().__init__(name)
        self.down = False
        self.tries = 0
        self.retry_after = retry_after
        self.refuse_for_good = False

    def send(self, alert):
        self.tries += 1
        if self.refuse_for_good:
            raise DeliveryError("HTTP 403 token revoked", retryable=False)
        if self.down:
            raise DeliveryError("connection refused", retry_after=self.retry_after)
        super().send(alert)


@pytest.fixture
def slack():
    return SwitchableChannel("slack")


@pytest.fixture
def clock():
    return FakeClock()


def make_engine(state_path, *channels, clock=None, policy=POLICY, background=False, **options):
    return Engine({c.name: c for c in channels}, {level: [c.name for c in channels] for level in Level}, state_path,
                  retry=policy, retry_in_background=background, clock=clock, **options)


def run(engine, clock, seconds=0.0):
    """Let `seconds` pass, then one background pass, and wait (real time) until its sends are answered."""
    clock.advance(seconds)
    engine.tick()
    assert engine.wait_idle(), "the outbox did not settle"


def test_an_outage_delays_but_loses_nothing(state_path, slack, clock):
    log = RecordingChannel("log")
    slack.down = True
    with make_engine(state_path, log, slack, clock=clock) as engine:
        first = engine.raise_alert("api", "error", "HTTP 500")
        assert first == {"log": True, "slack": False} and first.outcomes["slack"].status == "retrying"
        assert engine.raise_alert("disk", "warning", "93%") == {"log": True, "slack": False}
        assert {r.event: r.told for r in engine.active_events()}["api"] == {"log", "slack"}  # slack will hear of it
        for _ in range(3):
            run(engine, clock, 61)
        assert slack.sent == [] and slack.tries == 8
        slack.down = False
        run(engine, clock, 61)
        run(engine, clock, 61)
    assert sorted(a.event for a in slack.sent) == ["api", "disk"]  # once each
    assert len(log.sent) == 2


def test_a_recovery_waits_behind_its_firing(state_path, slack, clock):
    slack.down = True
    with make_engine(state_path, slack, clock=clock) as engine:
        engine.raise_alert("api", "error", "HTTP 500")
        engine.raise_alert("api", "critical", "HTTP 500 for 10 min")
        cleared = engine.clear_alert("api", "HTTP 200")
        assert cleared == {"slack": False} and cleared.outcomes["slack"].status == "queued"
        engine.raise_alert("api", "warning", "slow again")
        slack.down = False
        for _ in range(4):
            run(engine, clock, 61)
    assert slack.kinds() == ["fired:error", "fired:critical", "resolved:critical", "fired:warning"]


def test_retries_back_off_and_honour_retry_after(state_path, clock):
    slack = SwitchableChannel("slack", retry_after=120)
    slack.down = True
    with make_engine(state_path, slack, clock=clock) as engine:
        engine.raise_alert("api", "error", "HTTP 500")
        (row,) = engine.pending()
        assert row.hold == "retry" and row.not_before == clock.time() + 120 and row.attempts == 1
        run(engine, clock, 119)
        assert slack.tries == 1  # not before Retry-After
        run(engine, clock, 1)
        assert slack.tries == 2
    policy = RetryPolicy(first=5, longest=600, jitter=0.25)
    delays = [policy.delay(n) for n in range(1, 12)]
    assert 3.75 <= delays[0] <= 6.25 and 7.5 <= delays[1] <= 12.5 and max(delays) <= 750
    assert policy.delay(1, retry_after=90) >= 90


def test_state_survives_a_restart_and_the_next_start_delivers_once(state_path, clock):
    down = SwitchableChannel("slack")
    down.down = True
    with make_engine(state_path, down, clock=clock) as first:
        first.raise_alert("backup", "critical", "stale")
        first.clear_alert("backup", "ran")
    up = SwitchableChannel("slack")
    with make_engine(state_path, up, clock=clock) as second:
        run(second, clock, 61)
        run(second, clock, 1)
        assert second.pending() == []
    assert up.kinds() == ["fired:critical", "resolved:critical"]


def test_two_engines_on_one_state_file_deliver_once(state_path, clock):
    slack = SwitchableChannel("slack")
    slack.down = True
    with make_engine(state_path, slack, clock=clock) as writer:
        for i in range(20):
            writer.raise_alert(f"e{i}", "error", "m")
    slack.down = False
    first, second = make_engine(state_path, slack, clock=clock), make_engine(state_path, slack, clock=clock)
    try:
        clock.advance(61)
        for _ in range(3):
            first.tick()
            second.tick()
        assert first.wait_idle() and second.wait_idle()
    finally:
        first.close()
        second.close()
    assert sorted(a.event for a in slack.sent) == sorted(f"e{i}" for i in range(20))


def test_a_permanent_failure_on_retry_drops_the_firing_and_its_recovery(state_path, slack, clock):
    slack.down = True
    with make_engine(state_path, slack, clock=clock) as engine:
        engine.raise_alert("api", "error", "HTTP 500")
        engine.clear_alert("api")
        slack.refuse_for_good = True
        run(engine, clock, 61)
        assert engine.pending() == []
        details = [h.detail for h in engine.history(event="api") if h.channel == "slack"]
    assert slack.sent == []
    assert "not retried: HTTP 403 token revoked" in details
    assert any(d.startswith("dropped: the firing it follows was not delivered") for d in details)


def test_expiry_counts_tries_and_time_awake_and_narrows_told(state_path, slack, clock):
    slack.down = True
    policy = RetryPolicy(first=600, longest=600, expiry=1000, jitter=0)
    with make_engine(state_path, slack, clock=clock, policy=policy) as engine:
        engine.raise_alert("api", "error", "HTTP 500")
        run(engine, clock, 600)  # try 2: the next would be after expiry, but fewer than MIN_ATTEMPTS tries so far
        assert len(engine.pending()) == 1
        for _ in range(MIN_ATTEMPTS):
            run(engine, clock, 600)
        assert engine.pending() == [] and slack.tries == MIN_ATTEMPTS
        assert engine.active_events()[0].told == set()
        assert engine.clear_alert("api") == {}
        assert any(h.detail.startswith(f"gave up after {MIN_ATTEMPTS} tries") for h in engine.history(event="api"))


def test_a_forward_clock_jump_drops_nothing_and_keeps_the_waits(state_path, slack, clock):
    slack.down = True
    with make_engine(state_path, slack, clock=clock) as engine:
        engine.raise_alert("api", "error", "HTTP 500")
        (before,) = engine.pending()
        clock.jump(86400)  # a laptop asleep over a day
        run(engine, clock)
        (after,) = engine.pending()
        assert after.attempts == 1 and after.not_before == before.not_before + 86400
        assert after.expires_at == before.expires_at + 86400  # time asleep does not count toward expiry
        slack.down = False
        run(engine, clock, 5)
    assert slack.kinds() == ["fired:error"]


def test_a_backward_clock_jump_does_not_stall_retries_or_stretch_a_mute(state_path, slack, clock):
    log = RecordingChannel("log")
    slack.down = True
    with make_engine(state_path, log, slack, clock=clock, quiet_channels={"log"}) as engine:
        engine.mute("quiet", clock.time() + 600)
        engine.raise_alert("quiet", "warning", "held for ten minutes")
        engine.raise_alert("api", "error", "HTTP 500")
        clock.jump(-3600)  # the clock is set back an hour
        slack.down = False
        run(engine, clock, 5)
        assert [a.event for a in slack.sent] == ["api"]  # the retry went after its 5 s, not an hour later
        run(engine, clock, 600)
        assert [a.event for a in slack.sent] == ["api", "quiet"]  # the mute ended after its ten minutes
    assert [a.event for a in log.sent] == ["quiet", "api"]  # the log is never held


def test_a_delivery_interrupted_by_a_crash_is_sent_again_marked_as_a_possible_repeat(state_path, slack, clock):
    with make_engine(state_path, slack, clock=clock) as engine:
        engine.mute("api", clock.time() + 60)
        engine.raise_alert("api", "error", "HTTP 500")
    db = sqlite3.connect(state_path)  # a process that claimed the row and died mid-send
    db.execute("UPDATE outbox SET in_flight = 1, lease_owner = '999999999:gone', lease_until = ?, not_before = 0",
               (clock.time() + 3600,))
    db.execute("DELETE FROM mutes")
    db.commit()
    db.close()
    with make_engine(state_path, slack, clock=clock) as engine:
        run(engine, clock)
        lines = [h.detail for h in engine.history(event="api") if h.channel == "slack"]
    (alert,) = slack.sent
    assert alert.possible_repeat and "possibly a repeat" in alert.note()
    assert any(line.startswith("attempt 1 interrupted") for line in lines)


def test_channel_health_reports_failures_and_waiting_deliveries(state_path, slack, clock):
    log = RecordingChannel("log")
    slack.down = True
    with make_engine(state_path, log, slack, clock=clock) as engine:
        engine.raise_alert("api", "error", "HTTP 500")
        health = engine.channel_health()
    assert health["log"].last_ok is True and health["log"].waiting == 0
    assert health["slack"].last_ok is False and health["slack"].waiting == 1
    assert "connection refused" in health["slack"].last_detail


def test_snooze_holds_outside_channels_and_resume_sends_what_waited(state_path, slack, clock):
    log = RecordingChannel("log")
    with make_engine(state_path, log, slack, clock=clock) as engine:
        engine.snooze(clock.time() + 3600, keep={"log"})
        assert engine.snoozed_until is not None
        fired = engine.raise_alert("api", "error", "HTTP 500")
        assert fired == {"log": True, "slack": False} and fired.outcomes["slack"].status == "held"
        assert engine.active()[0].event == "api"  # still recorded and shown
        assert engine.clear_alert("api", "back") == {"log": True, "slack": False}
        run(engine, clock, 60)
        assert slack.sent == [] and log.kinds() == ["fired:error", "resolved:error"]
        details = [h.detail for h in reversed(engine.history(event="api")) if h.channel == "slack"]
        assert details[0].startswith("held while snoozed until")  # the firing waits for the snooze to end
        assert details[1].startswith("queued behind")  # and its recovery waits behind it
        engine.snooze(None)
        run(engine, clock)
        run(engine, clock)
    assert slack.kinds() == ["fired:error", "resolved:error"]


def test_a_snooze_that_runs_out_lets_the_held_alerts_go(state_path, slack, clock):
    with make_engine(state_path, slack, clock=clock) as engine:
        engine.snooze(clock.time() + 300)
        assert engine.raise_alert("api", "warning", "slow") == {"slack": False}
        run(engine, clock, 299)
        assert slack.sent == []
        run(engine, clock, 1)
        assert len(slack.sent) == 1 and engine.snoozed_until is None


def test_the_background_pass_runs_on_the_injected_clock(state_path, slack, clock):
    slack.down = True
    with make_engine(state_path, slack, clock=clock, background=True) as engine:
        engine.raise_alert("api", "error", "HTTP 500")
        slack.down = False
        clock.advance(6)  # the retry falls due: the background thread wakes on the fake clock, not by sleeping
        wait_until(lambda: slack.sent)
    assert slack.kinds() == ["fired:error"]


def test_the_ids_held_in_flight_are_kept_with_the_queues(tmp_path):
    import threading

    release = threading.Event()

    class Slow(RecordingChannel):
        def send(self, alert):
            release.wait(10)
            if alert.event.endswith("3"):
                raise DeliveryError("HTTP 500", retryable=True)
            super().send(alert)

    clock = FakeClock()
    with Engine({"slow": Slow("slow")}, {"warning": ["slow"]}, tmp_path / "s.db", retry_in_background=False,
                clock=clock, retry=POLICY, delivery_timeout=0.01) as engine:
        outbox = engine.outbox

        def held() -> set[int]:
            with outbox._lock:
                return {row.id for rows in outbox._in_flight.values() for row in rows}

        for event in ("ev0", "ev1"):  # one row sending, the others queued behind it (one key: the channel's)
            engine.raise_alert(event, "warning", "m")
            engine.clear_alert(event)
        engine.raise_alert("ev3", "warning", "m")  # fails: its key is blocked, its rows given back
        assert outbox.local_ids() == held() and held()
        release.set()
        wait_until(lambda: not held(), "every row answered")
        assert outbox.local_ids() == held() == set()
