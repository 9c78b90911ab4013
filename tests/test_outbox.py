"""Retryable failures wait in the durable outbox and arrive once, late, in order per event."""
import time

import pytest

from conftest import RecordingChannel
from polling import wait_until
from tray_alerts import DeliveryError, Engine, Level
from tray_alerts.outbox import RetryPolicy

FAST = RetryPolicy(first=0.02, longest=0.1, expiry=3600)


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


def make_engine(state_path, *channels, background=True, policy=FAST):
    return Engine({c.name: c for c in channels}, {level: [c.name for c in channels] for level in Level}, state_path,
                  retry=policy, retry_in_background=background)


def test_an_outage_delays_but_loses_nothing(state_path, slack):
    log = RecordingChannel("log")
    slack.down = True
    with make_engine(state_path, log, slack) as engine:
        assert engine.raise_alert("api", "error", "HTTP 500") == {"log": True, "slack": False}
        assert engine.raise_alert("disk", "warning", "93%") == {"log": True, "slack": False}
        assert engine.active_events()[0].told == {"log", "slack"}  # slack will hear of it
        time.sleep(0.2)
        assert slack.sent == [] and slack.tries > 2
        slack.down = False
        wait_until(lambda: len(slack.sent) == 2)
        time.sleep(0.2)
    assert sorted(a.event for a in slack.sent) == ["api", "disk"]
    assert len(log.sent) == 2


def test_a_recovery_waits_behind_its_firing(state_path, slack):
    slack.down = True
    with make_engine(state_path, slack) as engine:
        engine.raise_alert("api", "error", "HTTP 500")
        engine.raise_alert("api", "critical", "HTTP 500 for 10 min")
        assert engine.clear_alert("api", "HTTP 200") == {"slack": False}
        engine.raise_alert("api", "warning", "slow again")
        slack.down = False
        wait_until(lambda: len(slack.sent) == 4)
    assert slack.kinds() == ["fired:error", "fired:critical", "resolved:critical", "fired:warning"]


def test_retries_back_off_and_honour_retry_after(state_path):
    slack = SwitchableChannel("slack", retry_after=120)
    slack.down = True
    with make_engine(state_path, slack, background=False) as engine:
        before = time.time()
        engine.raise_alert("api", "error", "HTTP 500")
        (due,) = [row[0] for row in engine._store._db.execute("SELECT next_at FROM outbox")]
        assert due >= before + 120
    policy = RetryPolicy(first=5, longest=600, jitter=0.25)
    delays = [policy.delay(n) for n in range(1, 12)]
    assert 3.75 <= delays[0] <= 6.25 and 7.5 <= delays[1] <= 12.5 and max(delays) <= 750
    assert policy.delay(1, retry_after=90) >= 90


def test_state_survives_a_restart_and_the_next_start_delivers_once(state_path):
    down = SwitchableChannel("slack")
    down.down = True
    with make_engine(state_path, down, background=False) as first:
        first.raise_alert("backup", "critical", "stale")
        first.clear_alert("backup", "ran")
    up = SwitchableChannel("slack")
    with make_engine(state_path, up) as second:
        wait_until(lambda: len(up.sent) == 2)
        time.sleep(0.2)
        assert second._store.next_outbox_time() is None
    assert up.kinds() == ["fired:critical", "resolved:critical"]


def test_two_processes_on_one_state_file_deliver_once(state_path):
    slack = SwitchableChannel("slack")
    slack.down = True
    with make_engine(state_path, slack, background=False) as writer:
        for i in range(20):
            writer.raise_alert(f"e{i}", "error", "m")
    slack.down = False
    first, second = make_engine(state_path, slack), make_engine(state_path, slack)
    try:
        wait_until(lambda: len(slack.sent) >= 20)
        time.sleep(0.3)
    finally:
        first.close()
        second.close()
    assert sorted(a.event for a in slack.sent) == sorted(f"e{i}" for i in range(20))


def test_a_permanent_failure_on_retry_drops_the_firing_and_its_recovery(state_path, slack):
    slack.down = True
    with make_engine(state_path, slack, background=False) as engine:
        engine.raise_alert("api", "error", "HTTP 500")
        engine.clear_alert("api")
        slack.refuse_for_good = True
        time.sleep(0.05)
        engine.outbox.run_due()
        wait_until(lambda: engine._store.next_outbox_time() is None)
        details = [h.detail for h in engine.history(event="api") if h.channel == "slack"]
    assert slack.sent == []
    assert any(d == "not retried: HTTP 403 token revoked" for d in details)


def test_expired_deliveries_are_given_up_and_told_is_narrowed(state_path, slack):
    slack.down = True
    policy = RetryPolicy(first=0.01, longest=0.01, expiry=0.05)
    with make_engine(state_path, slack, background=False, policy=policy) as engine:
        engine.raise_alert("api", "error", "HTTP 500")
        deadline = time.time() + 5
        while engine._store.next_outbox_time() is not None and time.time() < deadline:
            time.sleep(0.02)
            engine.outbox.run_due()
        assert engine._store.next_outbox_time() is None
        assert engine.active_events()[0].told == set()
        assert engine.clear_alert("api") == {}
        assert any("gave up after" in h.detail for h in engine.history(event="api"))


def test_channel_health_reports_failures_and_waiting_deliveries(state_path, slack):
    log = RecordingChannel("log")
    slack.down = True
    with make_engine(state_path, log, slack, background=False) as engine:
        engine.raise_alert("api", "error", "HTTP 500")
        health = engine.channel_health()
    assert health["log"].last_ok is True and health["log"].waiting == 0
    assert health["slack"].last_ok is False and health["slack"].waiting == 1
    assert "connection refused" in health["slack"].last_detail


def test_snooze_holds_outside_channels_and_resume_sends_what_waited(state_path, slack):
    log = RecordingChannel("log")
    with make_engine(state_path, log, slack) as engine:
        engine.snooze(time.time() + 3600, keep={"log"})
        assert engine.snoozed_until is not None
        assert engine.raise_alert("api", "error", "HTTP 500") == {"log": True, "slack": False}
        assert engine.active()[0].event == "api"  # still recorded and shown
        assert engine.clear_alert("api", "back") == {"log": True, "slack": False}
        time.sleep(0.2)
        assert slack.sent == [] and log.kinds() == ["fired:error", "resolved:error"]
        details = [h.detail for h in reversed(engine.history(event="api")) if h.channel == "slack"]
        assert details[0].startswith("held while snoozed until")  # the firing waits for the snooze to end
        assert details[1].startswith("queued behind")  # and its recovery waits behind it
        engine.snooze(None)
        wait_until(lambda: len(slack.sent) == 2)
    assert slack.kinds() == ["fired:error", "resolved:error"]


def test_a_snooze_that_runs_out_lets_the_held_alerts_go(state_path, slack):
    with make_engine(state_path, slack) as engine:
        engine.snooze(time.time() + 0.3)
        assert engine.raise_alert("api", "warning", "slow") == {"slack": False}
        wait_until(lambda: len(slack.sent) == 1)
        assert engine.snoozed_until is None
