"""End to end: a real Prometheus Alertmanager (0.25, `prometheus-alertmanager` on 127.0.0.1) whose webhook receiver
points at our push API, with the token as a Bearer credential.

An alert posted into Alertmanager's /api/v2/alerts (or with `amtool alert add`) must become one active event of
its own in our engine (after group_wait) — `ALERTNAME@INSTANCE · job=node · severity=critical`, its full label
set — and posting it again with endsAt = now must clear it and nothing else (send_resolved). Every wait is bounded.
"""
from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from alertmanager_peer import AlertmanagerPeer, skip_unless_alertmanager
from tray_alerts.api import PushApi, _am_event
from tray_alerts.model import Level

TOKEN = "e2e-token-" + uuid.uuid4().hex
WAIT = 20.0  # upper bound of every poll

WEBHOOK_CONFIG = """\
global:
  resolve_timeout: 5m
route:
  receiver: tray-alerts
  group_by: [alertname, instance]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: tray-alerts
    webhook_configs:
      - url: http://127.0.0.1:{port}/v1/alertmanager
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: {token}
"""


@pytest.fixture
def push(engine):
    api = PushApi(engine, TOKEN, port=0)
    api.start()
    yield api
    api.stop()


def wait_for(condition, what: str, timeout: float = WAIT, peer: AlertmanagerPeer | None = None):
    """Poll `condition` until it returns something truthy; fail (with Alertmanager's log) after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.1)
    pytest.fail(f"not within {timeout:g} s: {what}\n{peer.log_text if peer else ''}")


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def post_alert(peer: AlertmanagerPeer, labels: dict, annotations: dict, starts: datetime,
               ends: datetime | None = None) -> None:
    alert = {"labels": labels, "annotations": annotations, "startsAt": iso(starts),
             "generatorURL": "http://prometheus.example:9090/graph"}
    if ends is not None:
        alert["endsAt"] = iso(ends)
    response = requests.post(peer.url + "/api/v2/alerts", json=[alert], timeout=5.0)
    assert response.status_code == 200, response.text


def webhook_failures(peer: AlertmanagerPeer) -> float:
    """alertmanager_notifications_failed_total for the webhook integration, from Alertmanager's /metrics."""
    text = requests.get(peer.url + "/metrics", timeout=5.0).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("alertmanager_notifications_failed_total{") and 'integration="webhook"' in line)


def amtool_binary() -> str:
    """The path of amtool, or skip the calling test."""
    amtool = shutil.which("amtool") or ("/usr/bin/amtool" if Path("/usr/bin/amtool").is_file() else None)
    if amtool is None:
        pytest.skip("amtool is not installed")
    return amtool


def amtool_add(peer: AlertmanagerPeer, labels: dict, summary: str, starts: datetime,
               ends: datetime | None = None) -> None:
    """`amtool alert add LABEL=VALUE… --annotation=summary=… --start=… [--end=…]` against `peer`."""
    command = [amtool_binary(), f"--alertmanager.url={peer.url}", "alert", "add",
               *(f"{key}={value}" for key, value in labels.items()), f"--annotation=summary={summary}",
               f"--start={iso(starts)}"]
    if ends is not None:
        command.append(f"--end={iso(ends)}")
    result = subprocess.run(command, capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_webhook_config_is_valid_for_this_alertmanager(tmp_path: Path):
    skip_unless_alertmanager()
    amtool = amtool_binary()
    config = tmp_path / "am.yml"
    config.write_text(WEBHOOK_CONFIG.format(port=47913, token=TOKEN))
    result = subprocess.run([amtool, "check-config", str(config)], capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_alertmanager_fires_and_resolves_through_the_push_api(push, engine, channels):
    skip_unless_alertmanager()
    name = f"E2EDiskFull{uuid.uuid4().hex[:8]}"
    instance = "web-01:9100"
    event = f"{name}@{instance} · job=node · mount=/var · severity=critical"
    labels = {"alertname": name, "severity": "critical", "instance": instance, "job": "node", "mount": "/var"}
    annotations = {"summary": "disk /var at 97% on web-01", "description": "more than 95% used for 5m"}
    starts = datetime.now(timezone.utc) - timedelta(seconds=30)

    with AlertmanagerPeer(config=WEBHOOK_CONFIG.format(port=push.port, token=TOKEN)) as peer:
        post_alert(peer, labels, annotations, starts)
        record = wait_for(lambda: next((r for r in engine.active_events() if r.event == event), None),
                          f"{event} active in our engine", peer=peer)
        assert record.level is Level.CRITICAL
        assert record.message == "disk /var at 97% on web-01"
        (listed,) = peer.alerts_named(name)
        assert record.context == {"job": "node", "mount": "/var", "fingerprint": listed["fingerprint"],
                                  "source": "alertmanager"}  # the fingerprint Alertmanager itself shows
        # the engine marks the event active before it fans out, so the delivery may land a moment later
        wait_for(lambda: channels["sms"].kinds() == ["fired:critical"], "the firing delivered to the critical route",
                 timeout=5.0, peer=peer)
        assert channels["sms"].sent[0].event == event

        post_alert(peer, labels, annotations, starts, ends=datetime.now(timezone.utc))
        wait_for(lambda: all(r.event != event for r in engine.active_events()), f"{event} cleared", peer=peer)
        wait_for(lambda: channels["sms"].kinds() == ["fired:critical", "resolved:critical"],
                 "the recovery delivered to the channels told of the firing", timeout=5.0, peer=peer)
        recovery = channels["log"].sent[-1]
        assert recovery.event == event and recovery.resolved and recovery.message == "resolved in Alertmanager"
        assert webhook_failures(peer) == 0
    assert engine.active() == []
    kinds = [entry.kind for entry in engine.history(event=event)]
    assert "fired" in kinds and "cleared" in kinds


def test_alertmanager_with_a_wrong_token_gets_nothing_in(push, engine, channels):
    skip_unless_alertmanager()
    name = f"E2EWrongToken{uuid.uuid4().hex[:8]}"
    with AlertmanagerPeer(config=WEBHOOK_CONFIG.format(port=push.port, token="not-the-token")) as peer:
        post_alert(peer, {"alertname": name, "severity": "warning", "instance": "h:1"}, {"summary": "s"},
                   datetime.now(timezone.utc))
        wait_for(lambda: webhook_failures(peer) >= 1, "Alertmanager reports the refused webhook", peer=peer)
        assert engine.active() == []
        assert all(not channel.sent for channel in channels.values())


ISSUE_ALERTS = [  # issue 11: `alertname@instance` made three events of these five
    {"alertname": "HighCPU", "instance": "web1", "job": "node", "severity": "warning"},
    {"alertname": "HighCPU", "instance": "web1", "job": "blackbox", "severity": "warning"},
    {"alertname": "HighCPU", "instance": "web1", "job": "node", "severity": "critical"},  # the warning+critical pair
    {"alertname": "DiskFull", "mountpoint": "/var", "severity": "warning"},  # no instance label
    {"alertname": "DiskFull", "mountpoint": "/home", "severity": "warning"},
]


def test_five_amtool_alerts_are_five_events_and_resolving_one_clears_only_it(push, engine, channels):
    skip_unless_alertmanager()
    suffix = uuid.uuid4().hex[:6]
    alerts = [{**labels, "alertname": labels["alertname"] + suffix} for labels in ISSUE_ALERTS]
    events = [_am_event(labels) for labels in alerts]
    assert events[0] == f"HighCPU{suffix}@web1 · job=node · severity=warning"
    assert events[3] == f"DiskFull{suffix} · mountpoint=/var · severity=warning"
    starts = datetime.now(timezone.utc) - timedelta(seconds=30)

    with AlertmanagerPeer(config=WEBHOOK_CONFIG.format(port=push.port, token=TOKEN)) as peer:
        for labels in alerts:
            amtool_add(peer, labels, f"{labels['alertname']} fires", starts)
        wait_for(lambda: {r.event for r in engine.active_events()} == set(events), "five distinct events",
                 peer=peer)
        fingerprints = {alert["fingerprint"] for alert in peer.alerts(active=True)}
        assert {r.context["fingerprint"] for r in engine.active_events()} == fingerprints and len(fingerprints) == 5
        assert {r.event: r.level for r in engine.active_events()}[events[2]] is Level.CRITICAL
        wait_for(lambda: channels["sms"].kinds() == ["fired:critical"], "only the critical one paged", timeout=5.0,
                 peer=peer)

        # resolve the critical one and the /var disk: the warning of the pair and /home keep firing
        for index in (2, 3):
            amtool_add(peer, alerts[index], "over", starts, ends=datetime.now(timezone.utc))
        still = {events[0], events[1], events[4]}
        wait_for(lambda: {r.event for r in engine.active_events()} == still, "exactly the two resolved cleared",
                 peer=peer)
        wait_for(lambda: channels["sms"].kinds() == ["fired:critical", "resolved:critical"], "the page resolved",
                 timeout=5.0, peer=peer)
        time.sleep(2.5)  # two more group intervals: nothing that still fires comes back or goes away
        assert {r.event for r in engine.active_events()} == still
        assert webhook_failures(peer) == 0
    recoveries = [alert.event for alert in channels["log"].sent if alert.resolved]
    assert sorted(recoveries) == sorted([events[2], events[3]])
    assert [entry.kind for entry in engine.history(event=events[0])].count("fired") == 1


def test_a_long_or_odd_alert_in_a_notification_does_not_hold_back_its_neighbours(push, engine, channels):
    skip_unless_alertmanager()
    name = f"E2EBatch{uuid.uuid4().hex[:6]}"
    alerts = [{"alertname": name, "instance": "a:1", "severity": "warning"},
              {"alertname": name, "instance": "b:1", "path": "/srv/" + "x" * 225, "severity": "warning"},  # 230
              {"alertname": name, "instance": "c:1", "note": "two\nlines", "severity": "warning"}]
    starts = datetime.now(timezone.utc) - timedelta(seconds=30)
    with AlertmanagerPeer(config=WEBHOOK_CONFIG.replace("[alertname, instance]", "[alertname]").format(
            port=push.port, token=TOKEN)) as peer:
        for labels in alerts:
            amtool_add(peer, labels, "batch", starts)
        wait_for(lambda: len(engine.active_events()) == 3, "all three alerts of the one notification", peer=peer)
        events = {r.event: r for r in engine.active_events()}
        assert f"{name}@a:1 · severity=warning" in events
        listed = {alert["labels"]["instance"]: alert["fingerprint"] for alert in peer.alerts_named(name)}
        for instance in ("b:1", "c:1"):  # shortened or escaped: Alertmanager's fingerprint keeps them apart
            (event,) = [e for e in events if e.startswith(f"{name}@{instance}")]
            assert event.endswith(" #" + listed[instance]) and len(event) <= 200 and event.isprintable()
        assert events[next(e for e in events if "b:1" in e)].context["path"] == alerts[1]["path"]
        assert webhook_failures(peer) == 0
