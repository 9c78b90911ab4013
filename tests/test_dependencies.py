"""Dependencies through the engine: while a parent fires, a child that fires is kept and tells only the log; when
the parent recovers, the children still firing notify once, in the parent's own transaction."""
import sqlite3

import pytest

from conftest import ROUTES
from polling import wait_until
from tray_alerts import Engine
from tray_alerts.clock import FakeClock
from tray_alerts.lifecycle import Raise
from tray_alerts.reminders import ReminderPolicy


def open_engine(channels, state_path, **options):
    options.setdefault("log_channels", {"log"})
    return Engine(channels, ROUTES, state_path, delivery_timeout=2.0, **options)


@pytest.fixture
def engine(channels, state_path):
    with open_engine(channels, state_path, dependencies={"disk": ["network"], "web": ["network", "vpn"]}) as engine:
        yield engine


def heard(channels, event):
    """Which channels were sent what about `event`: name -> ['fired:error', ...]."""
    return {name: [kind for kind, alert in zip(channel.kinds(), channel.sent) if alert.event == event]
            for name, channel in channels.items()}


def test_a_child_firing_while_its_parent_fires_is_kept_shown_and_tells_only_the_log(engine, channels):
    engine.raise_alert("network", "error", "gateway unreachable")
    result = engine.raise_alert("disk", "error", "disk at 97%")
    assert result.kind == "fired" and dict(result) == {"log": True}
    assert heard(channels, "disk") == {"log": ["fired:error"], "desktop": [], "slack": [], "email": [], "sms": []}
    (child,) = [record for record in engine.active_events() if record.event == "disk"]
    assert child.inhibited_by == "network" and child.told == {"log"}
    line = next(entry for entry in engine.history() if entry.event == "disk" and entry.kind == "fired")
    assert line.detail == "inhibited by network: told only the log"


def test_when_the_parent_recovers_a_child_still_firing_notifies_once_saying_so(engine, channels):
    engine.raise_alert("network", "error", "gateway unreachable")
    engine.raise_alert("disk", "error", "disk at 97%")
    engine.clear_alert("network", "gateway back")
    assert engine.wait_idle()
    assert heard(channels, "disk") == {"log": ["fired:error"], "desktop": ["fired:error"], "slack": ["fired:error"],
                                       "email": ["fired:error"], "sms": []}
    released = channels["slack"].sent[-1]
    assert released.event == "disk" and released.note() == "still firing after network recovered"
    (child,) = engine.active_events()
    assert child.inhibited_by is None and child.told == set(ROUTES["error"])
    assert any(entry.kind == "released" and entry.message == "notified: network recovered"
               for entry in engine.history(event="disk"))
    engine.clear_alert("disk", "back to 60%")  # its recovery goes to everyone who now knows
    assert engine.wait_idle()
    assert heard(channels, "disk")["email"] == ["fired:error", "resolved:error"]


def test_a_child_that_recovered_while_inhibited_says_nothing_when_the_parent_recovers(engine, channels):
    engine.raise_alert("network", "error", "gateway unreachable")
    engine.raise_alert("disk", "error", "disk at 97%")
    engine.clear_alert("disk", "back to 60%")
    engine.clear_alert("network", "gateway back")
    assert engine.wait_idle()
    assert heard(channels, "disk") == {"log": ["fired:error", "resolved:error"], "desktop": [], "slack": [],
                                       "email": [], "sms": []}


def test_a_child_with_two_parents_waits_for_both(engine, channels):
    engine.raise_alert("network", "error", "down")
    engine.raise_alert("vpn", "error", "down")
    engine.raise_alert("web", "error", "502")
    engine.clear_alert("network")
    assert engine.wait_idle()
    (web,) = [record for record in engine.active_events() if record.event == "web"]
    assert web.inhibited_by == "vpn" and heard(channels, "web")["slack"] == []
    engine.clear_alert("vpn")
    assert engine.wait_idle()
    assert heard(channels, "web")["slack"] == ["fired:error"]
    assert channels["slack"].sent[-1].released_from == "vpn"


def test_a_child_already_told_is_not_held_back_by_a_parent_that_fires_later(engine, channels):
    engine.raise_alert("disk", "warning", "disk at 91%")
    engine.raise_alert("network", "error", "down")
    assert engine.raise_alert("disk", "critical", "disk at 99%")["sms"] is True
    engine.clear_alert("network")
    assert engine.wait_idle()
    assert heard(channels, "disk")["slack"] == ["fired:warning", "fired:critical"]


def test_an_inhibited_child_escalating_tells_only_the_log(engine, channels):
    engine.raise_alert("network", "error", "down")
    engine.raise_alert("disk", "warning", "disk at 91%")
    assert dict(engine.raise_alert("disk", "critical", "disk at 99%")) == {"log": True}
    engine.clear_alert("network")
    assert engine.wait_idle()
    assert heard(channels, "disk")["sms"] == ["fired:critical"]  # released at the level it has now


def test_a_pushed_raise_names_its_own_parents(channels, state_path):
    with open_engine(channels, state_path) as engine:
        engine.raise_alert("router", "critical", "no link")
        result = engine.raise_request(Raise("backup", engine.active_events()[0].level, "no route to NAS",
                                            depends_on=("router",)))
        assert dict(result) == {"log": True}
        assert engine.active_events()[1].depends_on == ("router",)
        engine.raise_alert("backup", "critical", "repeat without parents keeps them")
        assert [r.inhibited_by for r in engine.active_events() if r.event == "backup"] == ["router"]


def test_an_inhibited_child_is_not_reminded(channels, state_path):
    clock = FakeClock()
    reminders = ReminderPolicy({}, {"disk": 60.0})
    with open_engine(channels, state_path, clock=clock, reminders=reminders, retry_in_background=False,
                     dependencies={"disk": ["network"]}) as engine:
        engine.raise_alert("network", "error", "down")
        engine.raise_alert("disk", "error", "disk at 97%")
        clock.advance(120)
        assert engine.remind("disk").kind == "not due"
        engine.clear_alert("network")
        engine.tick()
        clock.advance(120)
        assert engine.remind("disk").kind == "reminded"


def test_the_release_is_in_the_parents_transaction_and_survives_a_crash(channels, state_path):
    """The parent's clear and its children's notifications commit together: a process that dies right after
    leaves them in the outbox, and the next start delivers them."""
    engine = open_engine(channels, state_path, retry_in_background=False, dependencies={"disk": ["network"]})
    engine.raise_alert("network", "error", "down")
    engine.raise_alert("disk", "error", "disk at 97%")
    engine.outbox.wake.clear()
    engine.clear_alert("network", wait=0.0)  # committed; the children's rows are left for the outbox's pass
    rows = sqlite3.connect(state_path).execute(
        "SELECT channel, kind, status FROM outbox WHERE event = 'disk' ORDER BY id").fetchall()
    assert rows == [("log", "firing", "delivered"), ("desktop", "firing", "pending"), ("slack", "firing", "pending"),
                    ("email", "firing", "pending")]
    engine.store.close()  # dies here: never closed cleanly, nothing more sent
    with open_engine(channels, state_path, dependencies={"disk": ["network"]}) as again:
        assert again.wait_idle()
    assert heard(channels, "disk")["email"] == ["fired:error"]


def test_a_parent_cleared_by_another_process_releases_the_children(channels, state_path):
    with open_engine(channels, state_path, dependencies={"disk": ["network"]}) as first, \
            open_engine(channels, state_path, dependencies={"disk": ["network"]}) as second:
        first.raise_alert("network", "error", "down")
        first.raise_alert("disk", "error", "disk at 97%")
        second.clear_alert("network")
        wait_until(lambda: heard(channels, "disk")["email"], "the release delivered")
        assert [(r.event, r.inhibited_by) for r in first.store.load_active()] == [("disk", None)]
    assert heard(channels, "disk")["email"] == ["fired:error"]


# ---- end to end: Debian's Nagios plugins watch, Alertmanager (read with amtool) is told ----------------------

def test_a_gateway_outage_pages_once_and_its_dependant_only_after_it_recovers(tmp_path):
    """Two `nagios` monitors running Debian's check_tcp: `nas` depends on `gateway`. With both down only the
    gateway reaches the team's Alertmanager; once the gateway is back, the NAS (still down) reaches it once."""
    import json
    import shutil
    import socket
    import subprocess

    from alertmanager_peer import AlertmanagerPeer, free_port, skip_unless_alertmanager
    from tray_alerts import wiring
    from tray_alerts.config import load_settings
    from tray_alerts.monitors.nagios import PLUGIN_DIR

    skip_unless_alertmanager()
    amtool = shutil.which("amtool")
    if amtool is None or not shutil.which("check_tcp", path=PLUGIN_DIR):
        pytest.skip("needs amtool and check_tcp (apt: prometheus-alertmanager, monitoring-plugins-basic)")
    gateway_port, nas_port = free_port(), free_port()
    with AlertmanagerPeer() as am:
        settings_file = tmp_path / "settings.ini"
        settings_file.write_text(f"""[alerts]
state_dir = {tmp_path / 'state'}
[channel.desktop]
enabled = no
[channel.log]
file = {tmp_path / 'alerts.log'}
[channel.team]
type = alertmanager
url = {am.url}
[routing]
critical = log, team
[monitor.disk_root]
enabled = no
[monitor.gateway]
type = nagios
command = check_tcp -H 127.0.0.1 -p {gateway_port} -t 2
[monitor.nas]
type = nagios
command = check_tcp -H 127.0.0.1 -p {nas_port} -t 2
depends_on = gateway
""")
        settings = load_settings(settings_file, {})
        engine = wiring.build_engine(settings)
        runner = wiring.build_runner(settings, engine)

        def listed() -> list[str]:
            query = subprocess.run([amtool, "--alertmanager.url", am.url, "alert", "query", "-o", "json"],
                                   capture_output=True, text=True, timeout=10, check=True)
            return sorted(alert["labels"]["alertname"] for alert in json.loads(query.stdout))

        try:
            assert runner.run_once("gateway").level is not None  # connection refused: CRITICAL
            assert runner.run_once("nas").level is not None
            assert engine.wait_idle()
            assert listed() == ["gateway"]
            assert [r.inhibited_by for r in engine.active_events() if r.event == "nas"] == ["gateway"]
            with socket.create_server(("127.0.0.1", gateway_port)):  # the gateway is back
                assert runner.run_once("gateway").ok
                assert engine.wait_idle()
                wait_until(lambda: listed() == ["nas"], "the NAS alone listed in Alertmanager")
            log = (tmp_path / "alerts.log").read_text()
            assert log.count("nas") == 1 and "still firing after gateway recovered" not in log
        finally:
            runner.stop()
            engine.close()
