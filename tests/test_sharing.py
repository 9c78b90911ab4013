"""Two engines on one state file (as two processes would be: each has its own connections): SQLite is the one
truth, and each notices the other's writes before it decides."""
import pytest

from conftest import RecordingChannel
from tray_alerts import Engine, Level
from tray_alerts.clock import FakeClock
from tray_alerts.mirror import FRESH_FOR

ROUTES = {level: ["log"] for level in Level}


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def pair(state_path, clock):
    """(engine A with its log, engine B with its log) on one file."""
    logs = RecordingChannel("log"), RecordingChannel("log")
    a = Engine({"log": logs[0]}, ROUTES, state_path, retry_in_background=False, clock=clock)
    b = Engine({"log": logs[1]}, ROUTES, state_path, retry_in_background=False, clock=clock)
    yield a, b, logs
    a.close()
    b.close()


def test_an_event_fired_elsewhere_is_debounced_here(pair, clock):
    a, b, (log_a, log_b) = pair
    assert b.raise_alert("disk", "error", "93%").kind == "fired"
    clock.advance(2 * FRESH_FOR)
    again = a.raise_alert("disk", "error", "93%")
    assert again.kind == "debounced" and again == {}
    assert log_a.sent == [] and len(log_b.sent) == 1  # one notification for the two raises


def test_a_clear_elsewhere_lets_the_next_raise_fire(pair, clock):
    a, b, logs = pair
    a.raise_alert("disk", "error", "93%")
    a.raise_alert("disk", "error", "93%")  # debounced here
    clock.advance(2 * FRESH_FOR)
    assert b.clear_alert("disk", "back").kind == "cleared"
    settle(a, b)
    clock.advance(2 * FRESH_FOR)
    fired = a.raise_alert("disk", "error", "95% again")
    assert fired.kind == "fired" and fired == {"log": True}
    assert a.active_events()[0].seen == 1
    assert sent(logs) == [("93%", False), ("back", True), ("95% again", False)]


def test_a_repeat_counted_in_the_instant_of_a_clear_elsewhere_fires_after_all(pair, clock):
    a, b, logs = pair
    a.raise_alert("disk", "error", "93%")
    clock.advance(2 * FRESH_FOR)
    a.raise_alert("disk", "error", "93%")  # A looked at the file just now
    b.clear_alert("disk", "back")  # B clears, and within A's FRESH_FOR window ...
    clock.advance(FRESH_FOR / 2)
    stale = a.raise_alert("disk", "error", "still 93%")  # ... A still trusts memory: counted as a repeat
    assert stale.kind == "debounced"
    clock.advance(1.0)
    a.tick()  # writing the repeat count finds the episode ended before the repeat: it fires again
    settle(a, b)
    assert sent(logs) == [("93%", False), ("back", True), ("still 93%", False)]
    assert [r.event for r in a.active_events()] == ["disk"]


def test_repeats_counted_before_a_clear_elsewhere_do_not_fire_again(pair, clock):
    a, b, logs = pair
    a.raise_alert("disk", "error", "93%")
    clock.advance(2 * FRESH_FOR)
    a.raise_alert("disk", "error", "93%")  # counted in memory, not written yet
    clock.advance(1.0)
    b.clear_alert("disk", "back")
    a.tick()
    settle(a, b)
    assert sent(logs) == [("93%", False), ("back", True)] and a.active_events() == []


def settle(*engines):
    """Every engine's answers written and its due rows sent."""
    for _ in range(3):
        for engine in engines:
            engine.pending()
            assert engine.wait_idle()


def sent(logs):
    """What reached either engine's log (either may send a row of the shared outbox), in order."""
    return [(alert.message, alert.resolved) for alert in sorted([*logs[0].sent, *logs[1].sent],
                                                                key=lambda alert: alert.at)]


def test_mutes_and_the_snooze_set_elsewhere_hold_here(pair, clock):
    a, b, (log_a, _) = pair
    b.mute("disk", clock.time() + 600)
    b.snooze(clock.time() + 60)
    clock.advance(2 * FRESH_FOR)
    held = a.raise_alert("other", "error", "m")  # A's write takes in B's snooze first
    assert held.outcomes["log"].status == "held" and a.snoozed_until == clock.time() + 60 - 2 * FRESH_FOR
    assert "disk" in a.mutes()
    assert log_a.sent == []
