"""GET /metrics for a team's Prometheus: the exported families as a published parser reads them, the listener's
token, and a real Prometheus scraping it (Debian's `prometheus`)."""
from __future__ import annotations

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import ROUTES
from polling import wait_until
from prometheus_peer import PrometheusPeer
from tray_alerts import Engine
from tray_alerts.lifecycle import Raise
from tray_alerts.metrics import MetricsServer, MonitorSample, Snapshot, authorised, families, read_snapshot
from tray_alerts.model import Level
from tray_alerts.monitors.base import Reading
from tray_alerts.monitors.runner import MonitorStatus

TOKEN = "metrics-token-0123456789"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Exposition text as (sample name, labels) -> value, read by prometheus_client's own parser."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def exposed(snapshot: Snapshot) -> dict:
    from prometheus_client import CollectorRegistry, generate_latest
    from tray_alerts.metrics import SnapshotCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: snapshot))
    return samples(generate_latest(registry).decode())


def test_every_family_reads_back_through_the_prometheus_parser():
    snapshot = Snapshot(active={Level.CRITICAL: 2, Level.WARNING: 1}, inhibited=1, waiting={"slack": (3, 1)},
                        deliveries={("slack", "delivered"): 5, ("slack", "retrying"): 2},
                        monitors=(MonitorSample("disk_root", "disk", Level.WARNING, 91.5, 1_780_000_000.0),
                                  MonitorSample("api", "http", None, 0.25, 1_780_000_001.0),
                                  MonitorSample("fresh", "tcp", None, None, None)))
    got = exposed(snapshot)
    assert got[("tray_alerts_active_alerts", (("level", "critical"),))] == 2
    assert got[("tray_alerts_active_alerts", (("level", "info"),))] == 0
    assert got[("tray_alerts_inhibited_alerts", ())] == 1
    assert got[("tray_alerts_outbox_waiting", (("channel", "slack"), ("why", "retry")))] == 3
    assert got[("tray_alerts_outbox_waiting", (("channel", "slack"), ("why", "held")))] == 1
    assert got[("tray_alerts_deliveries_total", (("channel", "slack"), ("result", "delivered")))] == 5
    disk = (("monitor", "disk_root"), ("type", "disk"))
    assert got[("tray_alerts_monitor_value", disk)] == 91.5
    assert got[("tray_alerts_monitor_severity", disk)] == 2
    assert got[("tray_alerts_monitor_severity", (("monitor", "api"), ("type", "http")))] == 0
    assert got[("tray_alerts_monitor_last_check_timestamp_seconds", disk)] == 1_780_000_000.0
    assert not [key for key in got if ("monitor", "fresh") in key[1]]  # never checked: nothing to say yet


def test_the_snapshot_is_read_from_the_engine_and_the_monitors(channels, state_path):
    with Engine(channels, ROUTES, state_path, delivery_timeout=2.0, log_channels={"log"}) as engine:
        engine.raise_alert("router", "critical", "no link")
        engine.raise_request(Raise("nas", Level.ERROR, "unreachable", depends_on=("router",)))
        engine.raise_alert("load", "warning", "load 5.2")
        assert engine.wait_idle()
        status = MonitorStatus("load", "load", "load", Reading(Level.WARNING, "5.2", 5.2), 1_780_000_000.0)
        snapshot = read_snapshot(engine, [status])
    assert snapshot.active == {Level.CRITICAL: 1, Level.ERROR: 1, Level.WARNING: 1} and snapshot.inhibited == 1
    assert snapshot.deliveries[("sms", "delivered")] == 1 and snapshot.deliveries[("log", "delivered")] == 3
    assert ("email", "delivered") not in snapshot.deliveries or snapshot.deliveries[("email", "delivered")] == 1
    assert snapshot.monitors == (MonitorSample("load", "load", Level.WARNING, 5.2, 1_780_000_000.0),)


@pytest.mark.parametrize("header, ok", [(f"Bearer {TOKEN}", True), (f"bearer {TOKEN}", True), (None, False),
                                        ("", False), (f"Basic {TOKEN}", False), (f"Bearer {TOKEN}x", False),
                                        ("Bearer ", False)])
def test_only_the_metrics_token_is_authorised(header, ok):
    assert authorised(header, TOKEN) is ok


@pytest.fixture
def server():
    snapshot = Snapshot(active={Level.ERROR: 1})
    metrics = MetricsServer("127.0.0.1", 0, TOKEN, lambda: snapshot)
    metrics.start()
    yield metrics
    metrics.stop()


def test_the_listener_answers_only_get_metrics_with_the_token(server):
    base = f"http://127.0.0.1:{server.port}"
    refused = requests.get(base + "/metrics", timeout=5)
    assert refused.status_code == 401 and "metrics token" in refused.text
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert requests.get(base + "/metrics", headers={"Authorization": "Bearer wrong"}, timeout=5).status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert requests.get(base + "/", headers=auth, timeout=5).status_code == 404
    assert requests.post(base + "/metrics", headers=auth, timeout=5).status_code == 405
    answer = requests.get(base + "/metrics", headers=auth, timeout=5)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert samples(answer.text)[("tray_alerts_active_alerts", (("level", "error"),))] == 1


def test_a_real_prometheus_scrapes_it_with_the_token_and_is_refused_without(channels, state_path):
    with Engine(channels, ROUTES, state_path, delivery_timeout=2.0) as engine:
        engine.raise_alert("disk_full", "critical", "disk at 99%")
        metrics = MetricsServer("127.0.0.1", 0, TOKEN, lambda: read_snapshot(engine))
        metrics.start()
        target = f"127.0.0.1:{metrics.port}"
        try:
            with PrometheusPeer({"tray": (target, TOKEN), "stranger": (target, "not-the-token")}) as prometheus:
                wait_until(lambda: prometheus.query('up{job="tray"}') and prometheus.query('up{job="stranger"}'),
                           "Prometheus scraping both jobs")
                assert list(prometheus.query('up{job="tray"}').values()) == [1.0]
                assert list(prometheus.query('up{job="stranger"}').values()) == [0.0]  # 401: a failed scrape
                critical = wait_until(lambda: prometheus.query('tray_alerts_active_alerts{level="critical"}'),
                                      "the active alerts in Prometheus")
                assert list(critical.values()) == [1.0]
                engine.clear_alert("disk_full")
                wait_until(lambda: list(prometheus.query('tray_alerts_active_alerts{level="critical"}').values())
                           == [0.0], "the clear seen by Prometheus")
                delivered = prometheus.query('tray_alerts_deliveries_total{channel="sms",result="delivered"}')
                assert list(delivered.values()) == [2.0]  # the firing and its recovery
        finally:
            metrics.stop()


# ---- in the app: off by default; on, with its own token, and a port taken said in one line ---------------------

def app_settings(tmp_path, metrics: str):
    """Settings for an app of the test's own (state, log and API port private to it) with a disk monitor."""
    from helpers_net import free_port
    from tray_alerts.config import load_settings

    path = tmp_path / "settings.ini"
    path.write_text(f"[alerts]\nstate_dir = {tmp_path / 'state'}\nlog_file = {tmp_path / 'app.log'}\n"
                    f"api_port = {free_port()}\n[channel.desktop]\nenabled = no\n"
                    f"[monitor.disk_root]\npath = {tmp_path}\n{metrics}")
    return load_settings(path, {})


def test_the_app_serves_metrics_only_when_asked_with_a_token_of_their_own(tmp_path):
    import stat

    from helpers_net import free_port
    from tray_alerts.app import App

    app = App(app_settings(tmp_path, ""), system_bus=f"unix:path={tmp_path / 'no-bus'}")
    try:
        assert app.metrics is None and not (tmp_path / "state" / "metrics-token").exists()
    finally:
        app.stop()
    port = free_port()
    app = App(app_settings(tmp_path, f"[metrics]\nenabled = yes\naddress = 127.0.0.1:{port}\n"),
              system_bus=f"unix:path={tmp_path / 'no-bus'}")
    app.start()
    try:
        app.runner.run_once("disk_root")
        token_file = tmp_path / "state" / "metrics-token"
        token = token_file.read_text().strip()
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert token != (tmp_path / "state" / "api-token").read_text().strip()
        url = f"http://127.0.0.1:{port}/metrics"
        assert requests.get(url, timeout=5).status_code == 401
        got = samples(requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5).text)
        disk = (("monitor", "disk_root"), ("type", "disk"))
        assert 0 < got[("tray_alerts_monitor_value", disk)] <= 100
        assert got[("tray_alerts_monitor_severity", disk)] in (0, 2, 3, 4)
    finally:
        app.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=2)


def test_a_metrics_port_taken_is_one_line_and_the_app_lets_go_of_everything(tmp_path):
    import socket

    from tray_alerts.app import App, PortTaken

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        settings = app_settings(tmp_path, f"[metrics]\nenabled = yes\naddress = 127.0.0.1:{port}\n")
        with pytest.raises(PortTaken) as caught:
            App(settings, system_bus=f"unix:path={tmp_path / 'no-bus'}")
    assert str(caught.value) == (f"port {port} on 127.0.0.1 is in use by another program (set [metrics] address)")
    App(settings, system_bus=f"unix:path={tmp_path / 'no-bus'}").stop()  # the lock and the API port were let go
