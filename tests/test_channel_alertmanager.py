"""AlertmanagerChannel against a real Prometheus Alertmanager (the `prometheus-alertmanager` binary on 127.0.0.1).

What Alertmanager 0.25 does, as these tests rely on it: a posted alert without endsAt gets
endsAt = now + resolve_timeout and shows in GET /api/v2/alerts with status.state "active"; an alert whose endsAt
has passed (an explicit resolve, or a resolve_timeout nobody refreshed) is left out of GET /api/v2/alerts
altogether, whatever the `active` filter says. Tests share one Alertmanager per module and keep apart by using a
unique event name (alertname) each.
"""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from functools import partial
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import requests
from werkzeug import Response

from alertmanager_peer import AlertmanagerPeer, free_port, skip_unless_alertmanager
import polling
from tray_alerts import Engine
from tray_alerts.channels import alertmanager as alertmanager_module
from tray_alerts.channels import build_channel
from tray_alerts.channels.alertmanager import AlertmanagerChannel
from tray_alerts.channels.base import DeliveryError, NotConfigured, SettingError
from tray_alerts.model import Alert, Level

HOST = socket.gethostname()
REFRESH = 0.5             # re-post interval used against the short-timeout Alertmanager
WAIT = 10.0               # upper bound of every poll


# --- fixtures and helpers ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def am():
    """One Alertmanager with the default 5 min resolve_timeout: alerts stay until resolved."""
    skip_unless_alertmanager()
    with AlertmanagerPeer() as peer:
        yield peer


@pytest.fixture(scope="module")
def short_am():
    """One Alertmanager that resolves any alert not re-posted within 2 s."""
    skip_unless_alertmanager()
    with AlertmanagerPeer(resolve_timeout="2s") as peer:
        yield peer


@pytest.fixture
def event(request) -> str:
    """An alertname no other test uses."""
    return f"{request.node.name.split('[')[0]}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def channels():
    """Make AlertmanagerChannels that are closed (refresh stopped) when the test ends."""
    made: list[AlertmanagerChannel] = []

    def make(url: str, refresh: float = 60.0, **options) -> AlertmanagerChannel:
        channel = AlertmanagerChannel("am", url, refresh=refresh, timeout=5.0, **options)
        made.append(channel)
        return channel

    yield make
    for channel in made:
        channel.close()


def firing(event: str, level: Level | str = Level.WARNING, message: str = "disk at 95% on /var", **context) -> Alert:
    at = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=5)
    return Alert(event, Level.parse(level), message, context or {"mount": "/var"}, at=at)


def resolved(alert: Alert, message: str = "recovered") -> Alert:
    return Alert(alert.event, alert.level, message, dict(alert.context), resolved=True)


wait_until = partial(polling.wait_until, timeout=WAIT)


def active(peer: AlertmanagerPeer, event: str) -> list[dict]:
    """The alerts with alertname=event that Alertmanager lists as active."""
    return peer.alerts_named(event, active=True)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def post_control(peer: AlertmanagerPeer, name: str) -> None:
    """Post an alert once, never refreshed: it disappears once Alertmanager's resolve_timeout has passed."""
    response = requests.post(peer.url + "/api/v2/alerts", json=[{"labels": {"alertname": name}}], timeout=5.0)
    assert response.status_code == 200, response.text


# --- a firing alert ----------------------------------------------------------------------------------------------

def test_a_firing_alert_has_only_identifying_labels_and_its_context_in_annotations(am, channels, event):
    channel = channels(am.url)
    alert = firing(event, Level.WARNING, "disk at 95% on /var",
                   **{"mount.point": "/var", "host": "web-01", "1st": "a", "free %": 5, "ok": True,
                      "alertname": "spoofed", "severity": "info", "summary": "spoofed", "__meta": "x"})
    assert channel.send(alert) is None

    [shown] = active(am, event)
    assert shown["labels"] == {"alertname": event, "severity": "warning", "instance": HOST}
    assert shown["annotations"] == {
        "summary": "disk at 95% on /var",
        "description": "mount.point: /var\nhost: web-01\n1st: a\nfree %: 5\nok: true\nalertname: spoofed\n"
                       "severity: info\nsummary: spoofed\n__meta: x",
        "mount_point": "/var",
        "host": "web-01",
        "_1st": "a",
        "free__": "5",
        "ok": "true",
        "alertname": "spoofed",
        "severity": "info",
    }
    assert "generatorURL" not in shown
    assert shown["status"]["state"] == "active"
    assert parse_time(shown["startsAt"]) == alert.at
    assert parse_time(shown["endsAt"]) > datetime.now(timezone.utc)   # open-ended: now + resolve_timeout
    assert am.alerts_named(event, active=False) == []


def test_null_context_values_are_left_out_never_the_text_none(am, channels, event):
    channel = channels(am.url, labels=["nullish"])
    channel.send(firing(event, nullish=None, empty="", mount="/var"))

    [shown] = active(am, event)
    assert shown["labels"] == {"alertname": event, "severity": "warning", "instance": HOST}
    assert shown["annotations"] == {"summary": "disk at 95% on /var", "description": "empty: \nmount: /var",
                                    "empty": "", "mount": "/var"}
    assert "None" not in str(shown["labels"]) + str(shown["annotations"])


def test_a_big_context_stays_out_of_the_labels_and_long_values_are_cut(am, channels, event):
    channel = channels(am.url, labels=["long_label"])
    context = {f"reading_{number}": "x" * 1000 for number in range(54)}
    channel.send(firing(event, long_label="y" * 1000, **context))

    [shown] = active(am, event)
    assert set(shown["labels"]) == {"alertname", "severity", "instance", "long_label"}
    assert shown["labels"]["long_label"] == "y" * (alertmanager_module.MAX_LABEL_VALUE - 1) + "…"
    assert shown["annotations"]["reading_0"] == "x" * 1000
    description = shown["annotations"]["description"]
    assert len(description) <= alertmanager_module.MAX_DESCRIPTION
    assert description.startswith("reading_0: " + "x" * (alertmanager_module.MAX_DESCRIPTION_VALUE - 1) + "…\n")
    assert description.splitlines()[-1].startswith("… ") and description.endswith(" more")
    assert "long_label" not in shown["annotations"]


def test_keys_listed_in_labels_become_labels(am, channels, event):
    channel = channels(am.url, labels=["mount", "absent"])
    channel.send(firing(event, mount="/var", host="web-01", used=0.95))

    [shown] = active(am, event)
    assert shown["labels"] == {"alertname": event, "severity": "warning", "instance": HOST, "mount": "/var"}
    assert shown["annotations"] == {"summary": "disk at 95% on /var", "description": "host: web-01\nused: 0.95",
                                    "host": "web-01", "used": "0.95"}


def test_two_mounts_listed_in_labels_are_two_alerts(am, channels, event):
    channel = channels(am.url, labels=["mount"])
    channel.send(firing(event, mount="/var"))
    channel.send(firing(event, mount="/home"))   # the same event with another label set: the old one is ended

    assert [a["labels"]["mount"] for a in active(am, event)] == ["/home"]


def test_generator_url_comes_from_the_url_in_the_context(am, channels, event):
    channel = channels(am.url, generator_url="http://monitor.example/dashboard")
    channel.send(firing(event, url="https://grafana.example/d/disk?var-host=web-01"))
    [shown] = active(am, event)
    assert shown["generatorURL"] == "https://grafana.example/d/disk?var-host=web-01"
    assert shown["annotations"]["url"] == "https://grafana.example/d/disk?var-host=web-01"


@pytest.mark.parametrize("url", [None, "javascript:alert(1)", "ftp://files.example/x", "/relative", 42])
def test_generator_url_falls_back_to_the_setting(am, channels, event, url):
    channel = channels(am.url, generator_url="http://monitor.example/dashboard")
    channel.send(firing(event, url=url))
    [shown] = active(am, event)
    assert shown["generatorURL"] == "http://monitor.example/dashboard"


def test_no_generator_url_without_a_url_or_setting(httpserver_ipv4, channels, event):
    httpserver_ipv4.expect_request("/api/v2/alerts", method="POST").respond_with_data("", status=200)
    channels(httpserver_ipv4.url_for("/")).send(firing(event, url="mailto:ops@example.test"))
    [(request, _)] = httpserver_ipv4.log
    assert "generatorURL" not in request.get_json()[0]


def test_a_changed_context_at_the_same_level_updates_the_one_alert(am, channels, event):
    channel = channels(am.url)
    channel.send(firing(event, Level.ERROR, "disk at 96%", used="96%", age=1))
    channel.send(firing(event, Level.ERROR, "disk at 97%", used="97%", age=2))

    [shown] = active(am, event)
    assert shown["annotations"]["used"] == "97%"
    assert shown["annotations"]["summary"] == "disk at 97%"


def test_a_resend_at_the_same_level_stays_one_alert(am, channels, event):
    channel = channels(am.url)
    alert = firing(event, Level.ERROR)
    channel.send(alert)
    channel.send(alert)
    assert [a["labels"]["severity"] for a in am.alerts_named(event)] == ["error"]


# --- resolving ---------------------------------------------------------------------------------------------------

def test_a_resolved_alert_leaves_the_alert_list(am, channels, event):
    channel = channels(am.url)
    alert = firing(event, Level.ERROR)
    channel.send(alert)
    assert len(active(am, event)) == 1

    channel.send(resolved(alert))

    # Alertmanager 0.25 drops alerts whose endsAt has passed from GET /api/v2/alerts, under any filter.
    assert active(am, event) == []
    assert am.alerts_named(event) == []
    assert am.alerts_named(event, active=False) == []


def test_a_new_channel_can_resolve_an_alert_an_earlier_one_posted(am, channels, event):
    alert = firing(event, Level.CRITICAL, mount="/var", host="db-01")
    channels(am.url).send(alert)
    assert len(active(am, event)) == 1

    channels(am.url).send(resolved(alert))   # e.g. after a restart without resume: same labels end it

    assert am.alerts_named(event) == []


# --- escalation --------------------------------------------------------------------------------------------------

def test_an_escalation_leaves_only_the_higher_severity_active(am, channels, event):
    channel = channels(am.url)
    channel.send(firing(event, Level.WARNING, "disk at 91% on /var"))
    assert [a["labels"]["severity"] for a in active(am, event)] == ["warning"]

    critical = firing(event, Level.CRITICAL, "disk at 99% on /var")
    channel.send(critical)

    [shown] = active(am, event)
    assert shown["labels"]["severity"] == "critical"
    assert shown["annotations"]["summary"] == "disk at 99% on /var"
    assert am.alerts_named(event) == [shown]   # the warning is gone, not merely inactive

    channel.send(resolved(critical))
    assert am.alerts_named(event) == []


def test_escalations_and_a_de_escalation_leave_exactly_one_active_alert(am, channels, event):
    channel = channels(am.url)
    for level, used in [(Level.WARNING, 91), (Level.ERROR, 95), (Level.CRITICAL, 99), (Level.ERROR, 96)]:
        channel.send(firing(event, level, f"disk at {used}% on /var", used=used))
        [shown] = am.alerts_named(event)          # the earlier severities are not merely inactive: gone
        assert shown["labels"]["severity"] == level.value
        assert shown["annotations"]["used"] == str(used)
    if (amtool := shutil.which("amtool")) is not None:   # what a person at the team's Alertmanager sees
        listed = subprocess.run([amtool, "--alertmanager.url", am.url, "alert", "query", "-o", "json",
                                 f"alertname={event}"], capture_output=True, text=True, timeout=WAIT, check=True)
        assert [a["labels"]["severity"] for a in json.loads(listed.stdout)] == ["error"]

    channel.send(resolved(firing(event, Level.ERROR)))
    assert am.alerts_named(event) == []


def test_an_escalation_through_the_engine_leaves_one_active_alert(am, channels, event, tmp_path):
    channel = channels(am.url)
    routes = {"warning": ["am"], "critical": ["am"]}
    with Engine({"am": channel}, routes, tmp_path / "state.db", delivery_timeout=5.0) as engine:
        assert engine.raise_alert(event, "warning", "disk at 91%", mount="/var") == {"am": True}
        assert engine.raise_alert(event, "critical", "disk at 99%", mount="/var") == {"am": True}
        [shown] = am.alerts_named(event)
        assert shown["labels"]["severity"] == "critical"
        assert shown["annotations"]["summary"] == "disk at 99%"

        assert engine.clear_alert(event, "disk at 40%") == {"am": True}
        assert am.alerts_named(event) == []


# --- refresh -----------------------------------------------------------------------------------------------------

def test_refresh_keeps_an_alert_firing_past_resolve_timeout_and_close_lets_it_resolve(short_am, channels, event):
    channel = channels(short_am.url, refresh=REFRESH)
    channel.send(firing(event))
    [first] = active(short_am, event)
    post_control(short_am, f"{event}_control")   # posted after ours, never refreshed

    wait_until(lambda: not active(short_am, f"{event}_control"), "the unrefreshed control alert to resolve")

    [still] = active(short_am, event)            # older than the control, yet kept alive by the re-posts
    assert still["status"]["state"] == "active"
    assert parse_time(still["updatedAt"]) > parse_time(first["updatedAt"])
    assert still["startsAt"] == first["startsAt"]

    channel.close()
    wait_until(lambda: not active(short_am, event), "the alert to resolve once refreshing stopped")
    assert short_am.alerts_named(event) == []


def test_resume_after_a_restart_keeps_refreshing(short_am, channels, event):
    alert = firing(event, Level.ERROR, host="web-01")
    before = channels(short_am.url, refresh=REFRESH)
    before.send(alert)
    before.close()                                # the old process is gone: nobody refreshes

    after = channels(short_am.url, refresh=REFRESH)
    after.resume([Alert(alert.event, alert.level, alert.message, dict(alert.context), at=alert.at)])
    post_control(short_am, f"{event}_control")

    wait_until(lambda: not active(short_am, f"{event}_control"), "the unrefreshed control alert to resolve")
    [shown] = active(short_am, event)
    assert shown["labels"]["severity"] == "error"
    assert shown["annotations"]["host"] == "web-01"

    after.send(resolved(alert))                   # the resumed channel also ends it cleanly
    assert short_am.alerts_named(event) == []


def test_refreshing_survives_alertmanager_being_down_and_fills_a_restarted_one(channels, event):
    skip_unless_alertmanager()
    port = free_port()
    with AlertmanagerPeer(port=port) as first:
        channel = channels(first.url, refresh=0.2)
        channel.send(firing(event, Level.CRITICAL))
        assert len(active(first, event)) == 1
    time.sleep(0.5)                               # a couple of refresh rounds fail: connection refused
    with AlertmanagerPeer(port=port) as second:   # empty storage: only a re-post can bring the alert back
        [shown] = wait_until(lambda: active(second, event), "the refresh to re-post into the new Alertmanager")
        assert shown["labels"]["severity"] == "critical"


def test_a_refresh_in_flight_does_not_revive_a_resolved_alert(am, channels, event, monkeypatch):
    """A refresh that took its batch before a resolve must not land after it (that re-fires the alert until
    resolve_timeout): the resolve waits for the refresh in flight."""
    real_post = alertmanager_module.post
    refresh_posting, release, refresh_done = threading.Event(), threading.Event(), threading.Event()

    def gated_post(*args, **kwargs):
        if threading.current_thread().name.endswith("-refresh") and not release.is_set():
            refresh_posting.set()                 # the refresh has its batch (with the firing) in hand
            release.wait(WAIT)
            try:
                return real_post(*args, **kwargs)
            finally:
                refresh_done.set()
        return real_post(*args, **kwargs)

    monkeypatch.setattr(alertmanager_module, "post", gated_post)
    channel = channels(am.url, refresh=0.05)
    alert = firing(event)
    channel.send(alert)
    assert refresh_posting.wait(WAIT)

    errors: list[BaseException] = []

    def resolve() -> None:
        try:
            channel.send(resolved(alert))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    resolver = threading.Thread(target=resolve)
    resolver.start()
    resolver.join(1.0)                            # give the resolve every chance to overtake the refresh
    release.set()
    assert refresh_done.wait(WAIT)
    resolver.join(WAIT)
    assert not resolver.is_alive() and errors == []
    channel.close()

    assert am.alerts_named(event) == []


# --- the engine, end to end --------------------------------------------------------------------------------------

def test_engine_raise_and_clear_reach_alertmanager(am, channels, event, tmp_path):
    channel = channels(am.url)
    with Engine({"am": channel}, {"error": ["am"]}, tmp_path / "state.db", delivery_timeout=5.0) as engine:
        assert engine.raise_alert(event, "error", "queue backed up", queue="mail.out") == {"am": True}
        [shown] = active(am, event)
        assert shown["labels"]["severity"] == "error"
        assert shown["annotations"]["queue"] == "mail.out"
        assert "queue" not in shown["labels"]
        assert shown["annotations"]["summary"] == "queue backed up"

        assert engine.clear_alert(event, "queue drained") == {"am": True}
        assert am.alerts_named(event) == []

        assert engine.raise_alert(f"{event}_minor", "warning", "not routed to am") == {}
        assert am.alerts_named(f"{event}_minor") == []


def test_engine_restart_resumes_refreshing_and_clears(short_am, channels, event, tmp_path):
    state = tmp_path / "state.db"
    with Engine({"am": channels(short_am.url, refresh=REFRESH)}, {"error": ["am"]}, state,
                delivery_timeout=5.0) as engine:
        assert engine.raise_alert(event, "error", "backup failed") == {"am": True}
        assert len(active(short_am, event)) == 1
    # closing the engine closed its channel: that one refreshes no more

    with Engine({"am": channels(short_am.url, refresh=REFRESH)}, {"error": ["am"]}, state,
                delivery_timeout=5.0) as engine:
        post_control(short_am, f"{event}_control")
        wait_until(lambda: not active(short_am, f"{event}_control"), "the unrefreshed control alert to resolve")
        [shown] = active(short_am, event)
        assert shown["annotations"]["summary"] == "backup failed"

        assert engine.clear_alert(event) == {"am": True}
        assert short_am.alerts_named(event) == []


# --- failures ----------------------------------------------------------------------------------------------------

def test_alertmanager_not_running_is_a_retryable_failure(channels, event):
    channel = channels(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(DeliveryError) as caught:
        channel.send(firing(event))
    assert caught.value.retryable is True
    assert "connection refused" in caught.value.message


def test_an_alert_alertmanager_rejects_is_not_retryable(am, channels, event):
    channel = channels(am.url)
    future = firing(event)
    future.at = datetime.now(timezone.utc) + timedelta(days=1)   # starts after the endsAt Alertmanager assigns
    with pytest.raises(DeliveryError) as caught:
        channel.send(future)
    assert caught.value.retryable is False
    assert "HTTP 400" in caught.value.message
    assert "start time must be before end time" in caught.value.message
    assert am.alerts_named(event) == []


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retryable(httpserver_ipv4, channels, event, status):
    httpserver_ipv4.expect_request("/api/v2/alerts", method="POST").respond_with_data("overloaded", status=status)
    with pytest.raises(DeliveryError) as caught:
        channels(httpserver_ipv4.url_for("/")).send(firing(event))
    assert caught.value.retryable is True
    assert f"HTTP {status}" in caught.value.message


def test_a_rate_limit_is_retryable_after_the_given_delay(httpserver_ipv4, channels, event):
    httpserver_ipv4.expect_request("/api/v2/alerts", method="POST").respond_with_response(
        Response("slow down", status=429, headers={"Retry-After": "7"}))
    with pytest.raises(DeliveryError) as caught:
        channels(httpserver_ipv4.url_for("/")).send(firing(event))
    assert caught.value.retryable is True
    assert caught.value.retry_after == 7.0


def test_the_post_body_is_alertmanager_v2_json(httpserver_ipv4, channels, event):
    httpserver_ipv4.expect_request("/api/v2/alerts", method="POST").respond_with_data("", status=200)
    alert = firing(event, Level.INFO, "certificate renewed", domain="example.test")
    channels(httpserver_ipv4.url_for("/")).send(alert)   # a trailing slash on the URL is fine
    [(request, _)] = httpserver_ipv4.log
    assert request.headers["Content-Type"] == "application/json"
    assert request.get_json() == [{
        "labels": {"alertname": event, "severity": "info", "instance": HOST},
        "annotations": {"summary": "certificate renewed", "description": "domain: example.test",
                        "domain": "example.test"},
        "startsAt": alert.at.isoformat(),
    }]


# --- settings ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("options", [{}, {"url": ""}, {"url": "   "}, {"refresh": "30s"}])
def test_a_missing_url_is_not_configured(options):
    with pytest.raises(NotConfigured, match="url"):
        AlertmanagerChannel.from_options("am", options)


@pytest.mark.parametrize("refresh", ["soon", "0s", "-5s", "5 minutes"])
def test_a_bad_refresh_is_a_setting_error(refresh):
    with pytest.raises(SettingError) as caught:
        AlertmanagerChannel.from_options("am", {"url": "http://127.0.0.1:9093", "refresh": refresh})
    assert caught.value.key == "refresh"


def test_a_non_http_url_is_a_setting_error():
    with pytest.raises(SettingError) as caught:
        AlertmanagerChannel.from_options("am", {"url": "ftp://alertmanager.example:9093"})
    assert caught.value.key == "url"


def test_from_options_reads_url_and_refresh():
    channel = build_channel("team_am", "alertmanager", {"url": "http://127.0.0.1:9093", "refresh": "500ms"})
    assert isinstance(channel, AlertmanagerChannel)
    assert channel.name == "team_am"
    assert channel.refresh == 0.5
    assert AlertmanagerChannel.from_options("am", {"url": "http://127.0.0.1:9093"}).refresh == 60.0


def test_from_options_reads_labels_and_generator_url():
    channel = AlertmanagerChannel.from_options("am", {"url": "http://127.0.0.1:9093", "labels": "mount, job  _x,mount",
                                                      "generator_url": "https://monitor.example/"})
    assert channel.shape.label_keys == ("mount", "job", "_x")
    assert channel.shape.generator_url == "https://monitor.example/"
    plain = AlertmanagerChannel.from_options("am", {"url": "http://127.0.0.1:9093", "labels": "  "})
    assert plain.shape.label_keys == () and plain.shape.generator_url == ""


@pytest.mark.parametrize("name", ["free%", "1st", "mount.point", "__meta", "été", "severity", "alertname",
                                  "instance"])
def test_a_bad_label_name_is_a_setting_error_naming_it(name):
    with pytest.raises(SettingError) as caught:
        AlertmanagerChannel.from_options("am", {"url": "http://127.0.0.1:9093", "labels": f"mount, {name}"})
    assert caught.value.key == "labels"
    assert repr(name) in caught.value.problem


@pytest.mark.parametrize("url", ["monitor.example", "ftp://monitor.example", "https://"])
def test_a_bad_generator_url_is_a_setting_error(url):
    with pytest.raises(SettingError) as caught:
        AlertmanagerChannel.from_options("am", {"url": "http://127.0.0.1:9093", "generator_url": url})
    assert caught.value.key == "generator_url"
