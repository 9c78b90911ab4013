"""Faults reproduced for real: a full disk (a 2 MB tmpfs filled up), another process holding the state file's write
lock, the wall clock jumping a day either way, and a mute longer than a year. While the state file cannot be
written a change reaches the channels that need no state, answers stored=False with the fault, and is stored (and
sent to the other channels, once) when the file can be written again."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from conftest import RecordingChannel
from faults import (DISK_FULL, LEVELS, LOCKED, Hook, WriteLockHolder, api_call, cli, fill, log_lines, mount_tmpfs,
                    unmount, write_settings)
from polling import wait_until
from tray_alerts import DeliveryError, Engine
from tray_alerts.api import PushApi
from tray_alerts.channels.desktop import DesktopChannel
from tray_alerts.channels.log import LogChannel
from tray_alerts.channels.webhook import WebhookChannel
from tray_alerts.clock import FakeClock
from tray_alerts.outbox import MIN_ATTEMPTS, RetryPolicy
from tray_alerts.state import StateStore

TOKEN = "fault-test-token"
ROUTES = {level: ["log", "webhook"] for level in LEVELS}


@pytest.fixture
def hook():
    server = Hook()
    yield server
    server.stop()


@pytest.fixture
def tmpfs(tmp_path):
    """A real 2 MB file system of its own (always unmounted afterwards)."""
    folder = tmp_path / "tmpfs"
    mount_tmpfs(folder, "2m")
    yield folder
    unmount(folder)


@pytest.fixture
def records(caplog):
    caplog.set_level(logging.DEBUG, logger="tray_alerts")
    return caplog


def channels_for(log_file: Path, hook: Hook) -> dict:
    return {"log": LogChannel("log", log_file), "webhook": WebhookChannel("webhook", hook.url, timeout=5)}


def open_engine(state_path: Path, log_file: Path, hook: Hook, **options) -> Engine:
    options.setdefault("retry_in_background", False)
    return Engine(channels_for(log_file, hook), ROUTES, state_path, delivery_timeout=5, quiet_channels={"log"},
                  **options)


def no_operational_error(records, *texts: str) -> None:
    for text in (records.text, *texts):
        assert "OperationalError" not in text and "Traceback" not in text


def test_the_channels_that_need_no_state_say_so():
    """The engine tells these directly while the state file cannot be written (engine._defer looks for it)."""
    assert LogChannel.stateless is True and DesktopChannel.stateless is True
    assert not getattr(WebhookChannel, "stateless", False)


# ---- 1. a full disk ------------------------------------------------------------------------------------------

def test_a_full_disk_keeps_changes_in_order_and_stores_them_once_there_is_room(tmpfs, tmp_path, hook, records):
    state, log_file = tmpfs / "state.db", tmp_path / "alerts.log"
    engine = open_engine(state, log_file, hook)
    try:
        before = engine.raise_alert("api_down", "error", "api answers 500")
        assert before.kind == "fired" and before.stored and before == {"log": True, "webhook": True}
        assert engine.wait_idle()
        filler = fill(tmpfs)

        during = engine.raise_alert("disk_full", "critical", "disk at 100%", mount="/srv")
        assert during.kind == "fired" and during.stored is False and during.fault == DISK_FULL
        assert during.outcomes["log"].status == "delivered"  # told directly: the log needs no state
        assert during.outcomes["webhook"].status == "not stored" and DISK_FULL in during.outcomes["webhook"].detail
        assert engine.fault == DISK_FULL
        assert len(log_lines(log_file, "disk_full", "CRITICAL")) == 1
        assert hook.received == [("api_down", False)]  # the webhook waits for the state file

        cleared = engine.clear_alert("api_down", "api answers 200")
        assert cleared.kind == "cleared" and cleared.stored is False and cleared.fault == DISK_FULL
        assert cleared.outcomes["log"].status == "delivered" and cleared.outcomes["webhook"].status == "not stored"
        assert [r.event for r in engine.active_events()] == ["disk_full"]  # shown as it will be stored
        assert len(log_lines(log_file, "api_down", "RESOLVED")) == 1

        engine.tick()  # still full: the pass tries, keeps everything, raises nothing
        assert engine.fault == DISK_FULL and hook.received == [("api_down", False)]

        filler.unlink()
        engine.tick()
        assert engine.fault == ""
        assert engine.wait_idle()
        assert hook.received == [("api_down", False), ("disk_full", False), ("api_down", True)]
        kinds = [(h.event, h.kind) for h in reversed(engine.history(limit=100)) if h.kind in ("fired", "cleared")]
        assert kinds == [("api_down", "fired"), ("disk_full", "fired"), ("api_down", "cleared")]
        assert engine.pending() == []
    finally:
        engine.close()

    reopened = open_engine(state, log_file, hook)
    try:
        assert [r.event for r in reopened.active_events()] == ["disk_full"]
        reopened.tick()
        assert reopened.wait_idle() and reopened.pending() == []
    finally:
        reopened.close()
    assert hook.received == [("api_down", False), ("disk_full", False), ("api_down", True)]  # nothing again
    assert len(log_lines(log_file, "disk_full")) == 1  # the log was told directly, and only then
    assert len(log_lines(log_file, "api_down", "ERROR")) == 1
    assert len(log_lines(log_file, "api_down", "RESOLVED")) == 1
    no_operational_error(records, during.outcomes["webhook"].detail, cleared.outcomes["webhook"].detail)


def test_the_push_api_answers_200_not_stored_during_a_full_disk(tmpfs, tmp_path, hook, records):
    state, log_file = tmpfs / "state.db", tmp_path / "alerts.log"
    engine = open_engine(state, log_file, hook)
    api = PushApi(engine, TOKEN, 0)
    api.start()
    try:
        status, answer = api_call(api.port, TOKEN, "POST", "/v1/alerts?wait=5",
                                  {"event": "api_down", "level": "error", "message": "api answers 500"})
        assert status == 200 and answer["stored"] is True and "fault" not in answer
        assert answer["channels"]["webhook"]["status"] == "delivered"
        assert engine.wait_idle()
        filler = fill(tmpfs)

        for path in ("/v1/alerts", "/v1/alerts?wait=2"):
            status, answer = api_call(api.port, TOKEN, "POST", path,
                                      {"event": "disk_full", "level": "critical", "message": "disk at 100%"})
            assert status == 200, answer
            assert answer["stored"] is False and answer["fault"] == DISK_FULL
            assert answer["status"] in ("fired", "debounced")
        status, answer = api_call(api.port, TOKEN, "POST", "/v1/alerts/api_down/clear", {"message": "api is back"})
        assert status == 200 and answer["status"] == "cleared"
        assert answer["stored"] is False and answer["fault"] == DISK_FULL
        status, answer = api_call(api.port, TOKEN, "POST", "/v1/alerts/disk_full/mute", {"for": "2h"})
        assert status == 503 and answer == {"error": DISK_FULL}  # a mute is not kept in memory: it says so
        status, alerts = api_call(api.port, TOKEN, "GET", "/v1/alerts")
        assert status == 200 and [a["event"] for a in alerts] == ["disk_full"]
        assert alerts[0]["muted_until"] is None
        assert len(log_lines(log_file, "disk_full", "CRITICAL")) == 1
        assert hook.received == [("api_down", False)]

        filler.unlink()
        engine.tick()
        assert engine.fault == "" and engine.wait_idle()
        assert hook.received == [("api_down", False), ("disk_full", False), ("api_down", True)]
    finally:
        api.stop()
        engine.close()
    assert len(log_lines(log_file, "disk_full")) == 1
    no_operational_error(records)


# ---- 2. another process holds the write lock ------------------------------------------------------------------

def test_another_process_holding_the_write_lock(tmp_path, hook, records):
    settings = write_settings(tmp_path, webhook_url=hook.url)
    state, log_file = tmp_path / "state" / "state.db", tmp_path / "alerts.log"
    engine = open_engine(state, log_file, hook, retry_in_background=True)  # the real background pass
    api = PushApi(engine, TOKEN, 0)
    api.start()
    try:
        assert engine.raise_alert("disk_full", "error", "disk at 97%").kind == "fired"
        wait_until(lambda: hook.received == [("disk_full", False)], "the first firing reaching the webhook")
        assert engine.wait_idle()
        with WriteLockHolder(state) as holder:
            status, alerts = api_call(api.port, TOKEN, "GET", "/v1/alerts")
            assert status == 200 and [a["event"] for a in alerts] == ["disk_full"]
            assert holder.holding()

            shown = cli(settings, "status")
            assert shown.returncode == 0, shown.stderr
            assert "1 active alert" in shown.stdout and "disk_full" in shown.stdout and "disk at 97%" in shown.stdout
            assert "Traceback" not in shown.stderr
            assert holder.holding()

            repeat = engine.raise_alert("disk_full", "warning", "disk still at 97%")
            assert repeat.kind == "debounced" and repeat.seen == 2
            assert holder.holding()

            fired = engine.raise_alert("backup_failed", "error", "nightly backup failed")
            assert fired.kind == "fired" and fired.stored is False and fired.fault == LOCKED
            assert fired.outcomes["log"].status == "delivered" and fired.outcomes["webhook"].status == "not stored"
            assert engine.fault == LOCKED
            assert len(log_lines(log_file, "backup_failed", "ERROR")) == 1
            assert holder.holding()

            status, answer = api_call(api.port, TOKEN, "POST", "/v1/alerts",
                                      {"event": "disk_full", "level": "warning", "message": "disk still at 97%"})
            assert status == 200 and answer["status"] == "debounced"
            assert holder.holding()
            assert hook.received == [("disk_full", False)]

        wait_until(lambda: engine.fault == "", "the background pass storing what it kept", timeout=30)
        wait_until(lambda: ("backup_failed", False) in hook.received, "the kept firing reaching the webhook")
        assert engine.wait_idle()
        assert [r.event for r in engine.active_events()] == ["disk_full", "backup_failed"]
        assert {r.event: r.seen for r in engine.active_events()}["disk_full"] == 3
    finally:
        api.stop()
        engine.close()
    assert hook.received == [("disk_full", False), ("backup_failed", False)]  # exactly once
    assert len(log_lines(log_file, "backup_failed")) == 1
    store = StateStore(state)
    try:
        assert {r.event for r in store.load_active()} == {"disk_full", "backup_failed"}
        assert store.pending() == []
    finally:
        store.close()
    no_operational_error(records)


def test_the_background_pass_tries_again_about_a_second_after_the_fault_began(tmp_path, hook):
    clock = FakeClock()
    state, log_file = tmp_path / "state.db", tmp_path / "alerts.log"
    engine = open_engine(state, log_file, hook, retry_in_background=True, clock=clock)
    try:
        with WriteLockHolder(state):
            kept = engine.raise_alert("backup_failed", "error", "nightly backup failed")
            assert kept.stored is False and kept.fault == LOCKED
        for _ in range(50):  # 2.5 s of clock time, spread over real time: the pass tries about every second
            clock.advance(0.05)
            if not engine.fault:
                break
            time.sleep(0.05)
        wait_until(lambda: engine.fault == "", "a background pass storing the kept change", timeout=5)
    finally:
        engine.close()


# ---- 3. the wall clock jumps ---------------------------------------------------------------------------------

POLICY = RetryPolicy(first=5, longest=60, expiry=3600, jitter=0)
DAY = 86400.0


class FlakyChannel(RecordingChannel):
    """Refuses retryably while down (counting the tries); records what it accepted."""

    def __init__(self, name: str):
        super().__init__(name)
        self.down = False
        self.tries = 0

    def send(self, alert):
        self.tries += 1
        if self.down:
            raise DeliveryError("connection refused")
        super().send(alert)


def clock_engine(state_path: Path, clock: FakeClock, *channels) -> Engine:
    return Engine({c.name: c for c in channels}, {level: [c.name for c in channels] for level in LEVELS},
                  state_path, retry=POLICY, retry_in_background=False, clock=clock, quiet_channels={"log"})


def settle(engine: Engine, clock: FakeClock, seconds: float = 0.0) -> None:
    """Let `seconds` of clock time pass, run one background pass, wait (real time) for its sends."""
    clock.advance(seconds)
    engine.tick()
    assert engine.wait_idle(), "the outbox did not settle"


@pytest.mark.parametrize("jump", [DAY, -DAY], ids=["forward a day", "back a day"])
def test_a_clock_jump_drops_no_retry_and_keeps_its_backoff(state_path, jump):
    clock, log, hook = FakeClock(), RecordingChannel("log"), FlakyChannel("webhook")
    hook.down = True
    with clock_engine(state_path, clock, log, hook) as engine:
        assert engine.raise_alert("api", "error", "HTTP 500").outcomes["webhook"].status == "retrying"
        settle(engine, clock, 5)
        settle(engine, clock, 10)
        (before,) = engine.pending()
        assert before.attempts == MIN_ATTEMPTS == hook.tries  # enough tries for expiry to count from now on
        assert engine.clear_alert("api", "HTTP 200").outcomes["webhook"].status == "queued"  # waits behind it
        waits = {row.kind: (row.not_before - clock.time(), row.expires_at - clock.time()) for row in engine.pending()}
        assert waits["firing"] == (20.0, before.expires_at - clock.time())

        clock.jump(jump)
        settle(engine, clock)  # the pass notices the jump
        assert hook.tries == MIN_ATTEMPTS  # no attempt because of the jump
        after = {row.kind: row for row in engine.pending()}
        assert sorted(after) == ["firing", "recovery"]  # nothing dropped
        assert after["firing"].attempts == MIN_ATTEMPTS
        assert {kind: (row.not_before - clock.time(), row.expires_at - clock.time())
                for kind, row in after.items()} == waits  # waits and expiry counted in time awake

        settle(engine, clock, 19)
        assert hook.tries == MIN_ATTEMPTS  # not early
        hook.down = False
        settle(engine, clock, 1)  # after its normal backoff: not a day late
        settle(engine, clock)
        assert engine.pending() == []
    assert hook.kinds() == ["fired:error", "resolved:error"]
    assert log.kinds() == ["fired:error", "resolved:error"]


@pytest.mark.parametrize("jump", [DAY, -DAY], ids=["forward a day", "back a day"])
def test_a_ten_minute_mute_lasts_ten_minutes_of_clock_time(state_path, jump):
    clock, log, hook = FakeClock(), RecordingChannel("log"), FlakyChannel("webhook")
    with clock_engine(state_path, clock, log, hook) as engine:
        engine.mute("backup", clock.time() + 600)
        held = engine.raise_alert("backup", "error", "nightly backup failed")
        assert held.outcomes["webhook"].status == "held" and held.outcomes["log"].status == "delivered"
        settle(engine, clock, 60)  # a minute of the ten
        clock.jump(jump)
        settle(engine, clock)
        if jump > 0:  # asleep for a day: the person's ten minutes are long past
            assert engine.muted_until("backup") is None and engine.mutes() == {}
            assert hook.kinds() == ["fired:error"]
        else:  # the clock was set back: nine minutes are still to go, not a day and nine minutes
            assert engine.muted_until("backup") == clock.time() + 540
            settle(engine, clock, 530)
            assert hook.sent == []
            settle(engine, clock, 20)
            assert hook.kinds() == ["fired:error"]
            assert engine.mutes() == {}
    assert log.kinds() == ["fired:error"]


@pytest.mark.parametrize("jump", [DAY, -DAY], ids=["forward a day", "back a day"])
def test_a_retry_scheduled_after_the_jump_before_the_pass_noticed_it_keeps_its_backoff(state_path, jump):
    clock, hook = FakeClock(), FlakyChannel("webhook")
    hook.down = True
    with clock_engine(state_path, clock, hook) as engine:
        clock.jump(jump)  # e.g. the laptop wakes and a monitor raises before the next background pass
        assert engine.raise_alert("api", "error", "HTTP 500").outcomes["webhook"].status == "retrying"
        settle(engine, clock)
        (row,) = engine.pending()
        assert hook.tries == 1  # not retried at once
        assert row.not_before - clock.time() == 5.0  # not a day and 5 s
        assert row.expires_at - clock.time() == POLICY.expiry  # not expired already
        settle(engine, clock, 5)
        settle(engine, clock, 10)
        assert len(engine.pending()) == 1  # still retried, not dropped as "expired"


@pytest.mark.parametrize("jump", [DAY, -DAY], ids=["forward a day", "back a day"])
def test_a_mute_set_after_the_jump_before_the_pass_noticed_it_lasts_ten_minutes(state_path, jump):
    clock, log, hook = FakeClock(), RecordingChannel("log"), FlakyChannel("webhook")
    with clock_engine(state_path, clock, log, hook) as engine:
        clock.jump(jump)
        engine.mute("backup", clock.time() + 600)
        settle(engine, clock)
        assert engine.muted_until("backup") == clock.time() + 600
        assert engine.raise_alert("backup", "error", "m").outcomes["webhook"].status == "held"
        settle(engine, clock, 590)
        assert hook.sent == []
        settle(engine, clock, 20)
        assert hook.kinds() == ["fired:error"]


# ---- 4. a mute longer than a year ----------------------------------------------------------------------------

@pytest.mark.parametrize("length", ["3000000d", "367d", "9" * 400 + "d"], ids=["3000000d", "367d", "400 digits"])
def test_a_mute_longer_than_a_year_is_refused_through_the_api_and_nothing_is_stored(tmp_path, hook, length):
    state, log_file = tmp_path / "state" / "state.db", tmp_path / "alerts.log"
    engine = open_engine(state, log_file, hook)
    api = PushApi(engine, TOKEN, 0)
    api.start()
    try:
        status, answer = api_call(api.port, TOKEN, "POST", "/v1/alerts/backup/mute", {"for": length})
        assert status == 400 and "'for'" in answer["error"] and "year" in answer["error"]
        assert engine.mutes() == {}
        raised = engine.raise_alert("backup", "error", "nightly backup failed")
        assert raised.kind == "fired" and raised == {"log": True, "webhook": True}  # every routed channel
        assert raised.muted_until is None
        status, alerts = api_call(api.port, TOKEN, "GET", "/v1/alerts")
        assert status == 200 and [(a["event"], a["muted_until"]) for a in alerts] == [("backup", None)]
    finally:
        api.stop()
        engine.close()
    store = StateStore(state)
    try:
        assert store.load_mutes() == {}
    finally:
        store.close()
    assert hook.received == [("backup", False)]


def test_a_mute_longer_than_a_year_is_refused_by_the_cli_and_nothing_is_stored(tmp_path, hook):
    settings = write_settings(tmp_path, webhook_url=hook.url)
    refused = cli(settings, "mute", "backup", "3000000d")
    assert refused.returncode == 2 and refused.stdout == ""
    assert len(refused.stderr.splitlines()) == 1 and "longer than a year" in refused.stderr
    assert "Traceback" not in refused.stderr

    raised = cli(settings, "raise", "backup", "error", "nightly backup failed")
    assert raised.returncode == 0, raised.stderr
    assert "backup: error alert sent [here (tray-alerts is not running)]" in raised.stdout
    assert "log: delivered" in raised.stdout and "webhook: delivered" in raised.stdout
    assert "muted" not in raised.stdout and "NOT delivered" not in raised.stdout
    assert hook.received == [("backup", False)]

    shown = cli(settings, "status")
    assert shown.returncode == 0 and "Traceback" not in shown.stderr and shown.stderr == ""
    assert "1 active alert" in shown.stdout and "backup" in shown.stdout and "muted" not in shown.stdout
    store = StateStore(tmp_path / "state" / "state.db")
    try:
        assert store.load_mutes() == {}
    finally:
        store.close()
