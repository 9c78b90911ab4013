import threading
import time

import pytest

from conftest import ROUTES, FailingChannel, HangingChannel, RecordingChannel
from polling import wait_until
from tray_alerts import DeliveryError, Engine, Level


def test_first_raise_fires_to_the_levels_route(engine, channels):
    assert engine.raise_alert("disk_full", "warning", "disk at 93%", mount="/") == {
        "log": True, "desktop": True, "slack": True}
    alert = channels["slack"].sent[0]
    assert (alert.event, alert.level, alert.message, alert.context) == ("disk_full", Level.WARNING, "disk at 93%",
                                                                        {"mount": "/"})
    assert channels["email"].sent == []


def test_repeat_is_debounced_and_counted(engine, channels):
    engine.raise_alert("disk_full", "warning", "disk at 93%")
    for _ in range(11):
        assert engine.raise_alert("disk_full", Level.WARNING, "disk at 93%") == {}
    assert engine.raise_alert("disk_full", "info", "lower is debounced too") == {}
    assert len(channels["log"].sent) == 1
    (record,) = engine.active_events()
    assert record.seen == 13 and record.level is Level.WARNING


def test_escalation_fires_to_the_new_route_then_debounces(engine, channels):
    engine.raise_alert("disk_full", "warning", "93%")
    assert engine.raise_alert("disk_full", "critical", "99%") == dict.fromkeys(ROUTES["critical"], True)
    assert engine.raise_alert("disk_full", "error", "97%") == {}
    assert channels["sms"].kinds() == ["fired:critical"]
    assert channels["log"].kinds() == ["fired:warning", "fired:critical"]
    assert engine.active()[0].level is Level.CRITICAL


def test_clear_sends_one_recovery_to_every_channel_told_and_rearms(engine, channels):
    engine.raise_alert("disk_full", "warning", "93%")
    engine.raise_alert("disk_full", "critical", "99%")
    assert engine.clear_alert("disk_full", "back to 60%") == dict.fromkeys(sorted(ROUTES["critical"]), True)
    for name in ROUTES["critical"]:
        resolved = channels[name].sent[-1]
        assert resolved.resolved and resolved.level is Level.CRITICAL and resolved.message == "back to 60%"
    assert engine.clear_alert("disk_full") == {}
    assert engine.active() == []
    assert engine.raise_alert("disk_full", "warning", "93% again")["slack"] is True
    assert channels["slack"].kinds() == ["fired:warning", "fired:critical", "resolved:critical", "fired:warning"]


def test_clear_of_an_unknown_event_sends_nothing(engine, channels):
    assert engine.clear_alert("never_raised") == {}
    assert all(not channel.sent for channel in channels.values())


@pytest.mark.parametrize("event, level", [("", "warning"), ("   ", "warning"), ("x", "severe"), (None, "info"),
                                          (["x"], "info"), ("x", None)])
def test_bad_input_raises_and_records_nothing(engine, channels, event, level):
    with pytest.raises(ValueError):
        engine.raise_alert(event, level, "m")
    assert engine.active() == [] and engine.history() == []
    assert all(not channel.sent for channel in channels.values())


def test_active_is_worst_first_then_oldest(engine):
    engine.raise_alert("a", "warning", "m")
    engine.raise_alert("b", "critical", "m")
    engine.raise_alert("c", "warning", "m")
    engine.raise_alert("d", "info", "m")
    assert [alert.event for alert in engine.active()] == ["b", "a", "c", "d"]


def test_missing_channel_in_a_route_is_skipped_and_logged_once(state_path, caplog):
    log = RecordingChannel("log")
    with Engine({"log": log}, {"warning": ["log", "slack"]}, state_path,
                unavailable={"slack": "webhook_url is empty"}) as engine:
        with caplog.at_level("INFO", logger="tray_alerts"):
            assert engine.raise_alert("a", "warning", "m") == {"log": True}
            engine.raise_alert("b", "warning", "m")
    skipped = [r for r in caplog.records if "slack skipped" in r.getMessage()]
    assert len(skipped) == 1 and "webhook_url is empty" in skipped[0].getMessage()


def test_failures_do_not_stop_other_channels(state_path):
    ok = RecordingChannel("ok")
    boom = FailingChannel("boom", RuntimeError("bug in channel"))
    false = FailingChannel("false", False)
    refused = FailingChannel("refused", DeliveryError("HTTP 400", retryable=False))
    channels = {c.name: c for c in (ok, boom, false, refused)}
    with Engine(channels, {"error": list(channels)}, state_path, retry_in_background=False) as engine:
        assert engine.raise_alert("e", "error", "m") == {"ok": True, "boom": False, "false": False, "refused": False}
        # retryable failures wait in the outbox, and their recovery waits behind them; a refused channel never
        # heard of the firing, so it gets no recovery
        assert engine.clear_alert("e") == {"boom": False, "false": False, "ok": True}
        history = engine.history(event="e")
    details = {h.channel: h.detail for h in history if h.kind == "delivery"}
    assert details["refused"] == "HTTP 400"
    assert details["boom"].startswith("RuntimeError: bug in channel — will retry at ")
    assert [a.resolved for a in refused.sent] == [False] and [a.resolved for a in boom.sent] == [False]


def test_a_hanging_channel_counts_as_not_delivered_and_does_not_delay_others(state_path):
    fast = RecordingChannel("fast")
    slow = HangingChannel("slow")
    with Engine({"fast": fast, "slow": slow}, {"error": ["fast", "slow"]}, state_path,
                delivery_timeout=0.3) as engine:
        received = threading.Event()
        fast.send = lambda alert, send=fast.send: (send(alert), received.set())[0]
        caller = threading.Thread(target=lambda: results.update(engine.raise_alert("e", "error", "m")))
        results: dict = {}
        caller.start()
        assert received.wait(5), "the fast channel was held up by the hanging one"
        caller.join(10)
        assert results == {"fast": True, "slow": False}
        slow.release.set()


def test_a_slow_answer_is_pending_then_recorded_when_it_comes(state_path):
    slow = HangingChannel("slow")
    with Engine({"slow": slow}, {"error": ["slow"]}, state_path, delivery_timeout=0.2) as engine:
        result = engine.raise_alert("e", "error", "m")
        assert result == {"slow": False} and result.outcomes["slow"].status == "pending"
        assert engine.active_events()[0].told == {"slow"}  # it may have the firing: it will get the recovery
        slow.release.set()
        wait_until(lambda: any(h.channel == "slow" and h.ok for h in engine.history(event="e")))
        assert engine.clear_alert("e") == {"slow": True}
    assert slow.kinds() == ["fired:error", "resolved:error"]


def test_a_clear_while_the_firing_is_still_sending_queues_its_recovery_behind_it(state_path):
    slow = HangingChannel("slow")
    with Engine({"slow": slow}, {"error": ["slow"]}, state_path, delivery_timeout=0.2) as engine:
        engine.raise_alert("e", "error", "m")
        cleared = engine.clear_alert("e")
        assert cleared == {"slow": False} and cleared.outcomes["slow"].status == "pending"
        slow.release.set()
        wait_until(lambda: len(slow.sent) == 2)
    assert slow.kinds() == ["fired:error", "resolved:error"]


def test_state_survives_a_restart(channels, state_path):
    with Engine(channels, ROUTES, state_path) as first:
        first.raise_alert("disk_full", "warning", "93%", mount="/")
        first.raise_alert("disk_full", "warning", "93%")
    with Engine(channels, ROUTES, state_path) as second:
        assert second.raise_alert("disk_full", "warning", "93%") == {}
        (record,) = second.active_events()
        assert record.seen == 3 and record.context == {"mount": "/"} and record.told == {"log", "desktop", "slack"}
        assert second.clear_alert("disk_full") == {"desktop": True, "log": True, "slack": True}
    assert channels["slack"].kinds() == ["fired:warning", "resolved:warning"]


def test_repeat_counts_are_flushed_without_a_close(channels, state_path):
    engine = Engine(channels, ROUTES, state_path)
    try:
        engine.raise_alert("e", "info", "m")
        engine.raise_alert("e", "info", "m")
        engine.flush()
        with Engine({}, ROUTES, state_path) as reader:
            assert reader.active_events()[0].seen == 2
    finally:
        engine.close()


def test_history_records_firing_escalation_clear_and_deliveries(engine):
    engine.raise_alert("e", "warning", "m")
    engine.raise_alert("e", "error", "worse")
    engine.clear_alert("e", "fixed")
    kinds = [(h.kind, h.channel) for h in reversed(engine.history(event="e"))]
    assert kinds[0] == ("fired", None) and ("escalated", None) in kinds and ("cleared", None) in kinds
    assert ("delivery", "email") in kinds and ("recovery", "email") in kinds


def test_subscribers_hear_every_change_of_the_active_set(engine):
    calls, snapshots = [], []
    engine.subscribe(lambda: calls.append(1))
    unsubscribe = engine.subscribe(lambda alerts: snapshots.append([a.event for a in alerts]))
    engine.raise_alert("a", "warning", "m")
    engine.raise_alert("a", "warning", "m")  # debounced: no change
    engine.raise_alert("a", "error", "m")
    engine.clear_alert("a")
    assert len(calls) == 3 and snapshots == [["a"], ["a"], []]
    unsubscribe()
    engine.raise_alert("b", "info", "m")
    assert len(snapshots) == 3 and len(calls) == 4


def test_a_failing_subscriber_does_not_break_the_engine(engine, channels):
    engine.subscribe(lambda: 1 / 0)
    assert engine.raise_alert("a", "info", "m") == {"log": True, "desktop": True}


def test_per_event_route_override(state_path, channels):
    from tray_alerts import Routing

    routing = Routing(ROUTES, events={"backup": ["email"]})
    with Engine(channels, routing, state_path) as engine:
        assert engine.raise_alert("backup", "critical", "stale") == {"email": True}


def test_concurrent_calls_alternate_firing_and_recovery_per_event(state_path):
    channel = RecordingChannel("rec")
    with Engine({"rec": channel}, {level: ["rec"] for level in Level}, state_path) as engine:
        def worker(seed: int) -> None:
            import random

            rng = random.Random(seed)
            for _ in range(400):
                event = f"e{rng.randrange(5)}"
                if rng.random() < 0.3:
                    engine.clear_alert(event)
                else:
                    engine.raise_alert(event, rng.choice(list(Level)), "m")

        threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        active = {alert.event: alert.level for alert in engine.active()}
    per_event: dict[str, list] = {}
    for alert in channel.sent:
        per_event.setdefault(alert.event, []).append(alert)
    for event, alerts in per_event.items():
        firing = None
        for alert in alerts:
            if alert.resolved:
                assert firing is not None and alert.level == firing, f"{event}: recovery without a firing"
                firing = None
            else:
                assert firing is None or alert.level > firing, f"{event}: repeat or downgrade was sent"
                firing = alert.level
        assert active.get(event) == firing
