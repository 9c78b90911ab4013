"""WebhookChannel against a real local HTTP server (pytest-httpserver on 127.0.0.1)."""
from __future__ import annotations

import json
import socket
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
from werkzeug import Request, Response

from helpers_net import (SHORT_TIMEOUT, assert_secret_free, dead_url, disk_alert, echoing_handler,
                         send_failure)
from tray_alerts.channels import build_channel
from tray_alerts.channels.base import NotConfigured, SettingError
from tray_alerts.channels.webhook import WebhookChannel, group_key, parse_headers, payload, rfc3339
from tray_alerts.model import Alert, Level

SECRET = "n8nHOOKsecret7f3a9c2e41d0"
HOOK_PATH = f"/webhook/{SECRET}"
TOKEN = "BearerTOKENsecret5521xq"


@pytest.fixture
def server(httpserver_ipv4):
    return httpserver_ipv4


@pytest.fixture
def webhook(server):
    channel = WebhookChannel("n8n", server.url_for(HOOK_PATH), headers={"Authorization": f"Bearer {TOKEN}",
                                                                         "X-Source": "tray"})
    channel.timeout = SHORT_TIMEOUT
    return channel


# --- success and payload ----------------------------------------------------------------------------------------

def test_send_posts_the_alert_as_json_with_host(server, webhook):
    server.expect_request(HOOK_PATH, method="POST").respond_with_json({"ok": True})
    alert = disk_alert(Level.ERROR)
    assert webhook.send(alert) is None
    assert len(server.log) == 1
    request, _ = server.log[0]
    assert request.headers["Content-Type"] == "application/json"
    assert request.get_json() == {
        "event": "disk_full",
        "level": "error",
        "message": "disk at 95% on /var",
        "context": {"host": "web-01", "mount": "/var"},
        "at": "2024-05-17T12:30:01+00:00",
        "resolved": False,
        "host": socket.gethostname(),
        "fingerprint": "",
        "status": "firing",
        "startsAt": "2024-05-17T12:30:01+00:00",
    }


def test_every_notification_names_its_incident_so_receivers_can_dedupe(server, webhook):
    from datetime import datetime, timedelta, timezone

    server.expect_request(HOOK_PATH, method="POST").respond_with_json({"ok": True})
    began = datetime(2024, 5, 17, 12, 0, tzinfo=timezone.utc)
    firing = Alert("disk_full", Level.CRITICAL, "disk at 99%", at=began + timedelta(minutes=10),
                   episode="disk_full@a1b2", since=began)
    recovery = Alert("disk_full", Level.CRITICAL, "disk at 60%", at=began + timedelta(minutes=42), resolved=True,
                     firing_for=42 * 60, episode="disk_full@a1b2", since=began)
    next_one = Alert("disk_full", Level.WARNING, "disk at 91%", at=began + timedelta(hours=2),
                     episode="disk_full@c3d4", since=began + timedelta(hours=2))
    for alert in (firing, recovery, next_one):
        webhook.send(alert)
    sent = [request.get_json() for request, _ in server.log]
    assert [(p["fingerprint"], p["status"], p["startsAt"], p.get("endsAt")) for p in sent] == [
        ("disk_full@a1b2", "firing", "2024-05-17T12:00:00+00:00", None),  # an escalation: when the incident began
        ("disk_full@a1b2", "resolved", "2024-05-17T12:00:00+00:00", "2024-05-17T12:42:00+00:00"),
        ("disk_full@c3d4", "firing", "2024-05-17T14:00:00+00:00", None),  # the next incident: a new fingerprint
    ]


def test_payload_round_trips_to_the_alert(server, webhook):
    server.expect_request(HOOK_PATH, method="POST").respond_with_data("", status=204)
    alert = Alert("cert_expiry", Level.WARNING, "certificate expires in 5 days", {"days": 5, "ok": None},
                  resolved=True)
    webhook.send(alert)
    body = server.log[0][0].get_json()
    assert body.pop("host") == socket.gethostname()
    assert Alert.from_dict(body) == alert


def test_custom_headers_are_sent_alongside_the_user_agent(server, webhook):
    server.expect_request(HOOK_PATH, method="POST",
                          headers={"Authorization": f"Bearer {TOKEN}", "X-Source": "tray"}).respond_with_data("ok")
    webhook.send(disk_alert())
    request, response = server.log[0]
    assert response.status_code == 200
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["X-Source"] == "tray"
    assert request.headers["User-Agent"] == "tray-alerts"


def test_a_custom_user_agent_header_wins(server):
    server.expect_request("/hook", method="POST").respond_with_data("ok")
    WebhookChannel("w", server.url_for("/hook"), headers={"User-Agent": "mine/1.0"}).send(disk_alert())
    assert server.log[0][0].headers["User-Agent"] == "mine/1.0"


def test_from_options_parses_headers_and_sends_them(server):
    server.expect_request("/ntfy", method="POST").respond_with_data("ok")
    channel = build_channel("ntfy", "webhook", {
        "url": server.url_for("/ntfy"),
        "headers": "X-Title: Disk alert\n\nX-Priority:5\n  Authorization:  Bearer abc  ",
    })
    assert isinstance(channel, WebhookChannel)
    channel.send(disk_alert())
    headers = server.log[0][0].headers
    assert headers["X-Title"] == "Disk alert"
    assert headers["X-Priority"] == "5"
    assert headers["Authorization"] == "Bearer abc"


def test_parse_headers_accepts_semicolons_and_empty_text():
    assert parse_headers("") == {}
    assert parse_headers("A: 1; B: two words") == {"A": "1", "B": "two words"}
    assert parse_headers("Url: http://x:8080/") == {"Url": "http://x:8080/"}


@pytest.mark.parametrize("text", ["no colon here", ": value without name", "A: 1\nbroken"])
def test_parse_headers_rejects_lines_without_a_name(text):
    with pytest.raises(SettingError) as caught:
        parse_headers(text)
    assert caught.value.key == "headers"


# --- failure modes ------------------------------------------------------------------------------------------------

def test_connection_refused_is_retryable():
    channel = WebhookChannel("w", dead_url("/hook"), timeout=SHORT_TIMEOUT)
    error = send_failure(channel, disk_alert())
    assert (error.retryable, error.retry_after) == (True, None)
    assert error.message == "webhook: connection refused (127.0.0.1)"


def test_timeout_is_retryable(stalling_server):
    webhook = WebhookChannel("w", stalling_server.url_for(HOOK_PATH), timeout=SHORT_TIMEOUT)
    error = send_failure(webhook, disk_alert())
    assert error.retryable is True
    assert error.message == f"webhook: no answer from 127.0.0.1 within {SHORT_TIMEOUT:g} s; it may have arrived"


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_client_error_is_not_retryable(server, webhook, status):
    server.expect_request(HOOK_PATH, method="POST").respond_with_data("bad  request\nbody", status=status)
    error = send_failure(webhook, disk_alert())
    assert error.retryable is False
    assert error.message == f"webhook: 127.0.0.1 refused the message: HTTP {status} bad request body"


def test_long_error_body_is_cut(server, webhook):
    server.expect_request(HOOK_PATH, method="POST").respond_with_data("e" * 5000, status=400)
    error = send_failure(webhook, disk_alert())
    assert "e" * 200 in error.message
    assert "e" * 201 not in error.message


@pytest.mark.parametrize("status", [500, 502, 504])
def test_server_error_is_retryable(server, webhook, status):
    server.expect_request(HOOK_PATH, method="POST").respond_with_data("", status=status)
    error = send_failure(webhook, disk_alert())
    assert (error.retryable, error.retry_after) == (True, None)
    assert error.message == f"webhook: 127.0.0.1 answered HTTP {status}"


def test_rate_limit_is_retryable_with_retry_after(server, webhook):
    server.expect_request(HOOK_PATH, method="POST").respond_with_data("slow down", status=429,
                                                                       headers={"Retry-After": "12.5"})
    error = send_failure(webhook, disk_alert())
    assert (error.retryable, error.retry_after) == (True, 12.5)
    assert error.message == "webhook: rate limited by 127.0.0.1 (HTTP 429)"


def test_a_redirect_is_not_followed(server, webhook):
    server.expect_request(HOOK_PATH, method="POST").respond_with_data("", status=307,
                                                                       headers={"Location": "/moved"})
    server.expect_request("/moved", method="POST").respond_with_data("gone", status=410)
    error = send_failure(webhook, disk_alert())
    assert error.retryable is False
    assert error.message == f"webhook: redirect to 127.0.0.1:{server.port} not followed (HTTP 307 from 127.0.0.1)"
    assert len(server.log) == 1  # the alert (and its secret headers) went nowhere else


# --- secrets --------------------------------------------------------------------------------------------------------

def test_secrets_not_in_errors_when_refused(isolated_secrets):
    url = dead_url(HOOK_PATH)
    isolated_secrets(url)
    isolated_secrets(TOKEN)
    channel = WebhookChannel("w", url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=SHORT_TIMEOUT)
    assert_secret_free(channel, disk_alert(), SECRET)
    assert_secret_free(channel, disk_alert(), TOKEN)


def test_secrets_not_in_errors_on_timeout(stalling_server, isolated_secrets):
    isolated_secrets(stalling_server.url_for(HOOK_PATH))
    webhook = WebhookChannel("w", stalling_server.url_for(HOOK_PATH), headers={"Authorization": f"Bearer {TOKEN}"},
                             timeout=SHORT_TIMEOUT)
    error = assert_secret_free(webhook, disk_alert(), SECRET)
    assert TOKEN not in error.message


@pytest.mark.parametrize("status", [401, 404, 429, 500, 503])
def test_secrets_not_in_errors_on_http_failures(server, webhook, isolated_secrets, status):
    isolated_secrets(server.url_for(HOOK_PATH))
    isolated_secrets(TOKEN)
    server.expect_request(HOOK_PATH, method="POST").respond_with_data("denied", status=status)
    error = assert_secret_free(webhook, disk_alert(), SECRET)
    assert TOKEN not in error.message


@pytest.mark.parametrize("status", [404, 500])
def test_path_echoed_by_the_server_is_masked_without_registration(server, webhook, status):
    # wiring only registers keys naming a secret, and a webhook's key is plain `url`: the channel must not leak it.
    server.expect_request(HOOK_PATH, method="POST").respond_with_handler(echoing_handler(status))
    error = assert_secret_free(webhook, disk_alert(), SECRET)
    assert f"HTTP {status}" in error.message


def test_path_segment_echoed_by_the_server_is_masked(server, webhook):
    # n8n style: `The requested webhook "POST <id>" is not registered.`
    def handler(request: Request) -> Response:
        webhook_id = request.path.rsplit("/", 1)[-1]
        return Response(f'{{"code":404,"message":"The requested webhook \\"POST {webhook_id}\\" is not registered."}}',
                        status=404, mimetype="application/json")

    server.expect_request(HOOK_PATH, method="POST").respond_with_handler(handler)
    error = assert_secret_free(webhook, disk_alert(), SECRET)
    assert "is not registered" in error.message


def test_query_token_echoed_by_the_server_is_masked(server):
    query_secret = "qsTOKENvalue99887766"

    def handler(request: Request) -> Response:
        return Response(f"unknown token {request.args['token']}", status=403)

    server.expect_request("/hook", method="POST").respond_with_handler(handler)
    channel = WebhookChannel("w", server.url_for(f"/hook?token={query_secret}"))
    error = assert_secret_free(channel, disk_alert(), query_secret)
    assert "unknown token" in error.message


# --- from_options ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("options", [{}, {"url": ""}, {"url": " \t"}, {"headers": "A: b"}])
def test_missing_url_is_not_configured(options):
    with pytest.raises(NotConfigured, match="url"):
        WebhookChannel.from_options("w", options)


@pytest.mark.parametrize("url", [f"example.com{HOOK_PATH}", f"file:///tmp{HOOK_PATH}", f"http://{HOOK_PATH}"])
def test_bad_url_is_a_setting_error_that_does_not_echo_it(url):
    with pytest.raises(SettingError) as caught:
        WebhookChannel.from_options("w", {"url": url})
    assert caught.value.key == "url"
    assert SECRET not in str(caught.value)


def test_bad_headers_in_options_is_a_setting_error():
    with pytest.raises(SettingError) as caught:
        WebhookChannel.from_options("w", {"url": "https://example.com/hook", "headers": f"Bearer {TOKEN}"})
    assert caught.value.key == "headers"
    assert TOKEN not in str(caught.value)


# --- format = alertmanager: Alertmanager's webhook payload, version 4 ------------------------------------------------

AM_EXAMPLE = Path(__file__).parent / "data" / "alertmanager_webhook_v4_example.json"
BEGAN = datetime(2024, 5, 17, 12, 0, tzinfo=timezone.utc)
EPISODE = "5f0c2a9e81d3b746"


def am_webhook(server, **options) -> WebhookChannel:
    channel = WebhookChannel.from_options("team-hook", {"url": server.url_for("/am"), "format": "alertmanager",
                                                        **options})
    channel.timeout = SHORT_TIMEOUT
    return channel


def incident(level=Level.CRITICAL, minutes=10, resolved=False, episode=EPISODE, **context) -> Alert:
    """One notification of the disk_full incident that began at BEGAN."""
    return Alert("disk_full", level, "disk at 60% on /var" if resolved else "disk at 95% on /var",
                 context or {"host": "web-01", "mount": "/var"}, at=BEGAN + timedelta(minutes=minutes),
                 resolved=resolved, episode=episode, since=BEGAN)


def sent_bodies(server) -> list[dict]:
    return [request.get_json() for request, _ in server.log]


def shape(value):
    """The JSON value's structure: objects as their keys' shapes, lists as their items', scalars as their type."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__


def test_alertmanager_format_posts_the_v4_body_of_a_firing_alert(server):
    server.expect_request("/am", method="POST").respond_with_data("", status=200)
    am_webhook(server).send(incident())
    host = socket.gethostname()
    labels = {"alertname": "disk_full", "severity": "critical", "instance": host}
    annotations = {"summary": "disk at 95% on /var", "host": "web-01", "mount": "/var",
                   "description": "host: web-01\nmount: /var"}
    assert sent_bodies(server) == [{
        "version": "4",
        "groupKey": f'{{}}:{{alertname="disk_full", instance="{host}"}}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "team-hook",
        "groupLabels": {"alertname": "disk_full", "instance": host},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": "",
        "alerts": [{"status": "firing", "labels": labels, "annotations": annotations,
                    "startsAt": "2024-05-17T12:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "", "fingerprint": EPISODE}],
    }]
    assert server.log[0][0].headers["Content-Type"] == "application/json"


def test_alertmanager_format_posts_a_recovery_as_resolved_ending_at_its_time(server):
    server.expect_request("/am", method="POST").respond_with_data("")
    am_webhook(server).send(incident(minutes=42, resolved=True))
    body, = sent_bodies(server)
    alert, = body["alerts"]
    assert (body["status"], alert["status"]) == ("resolved", "resolved")
    assert (alert["startsAt"], alert["endsAt"]) == ("2024-05-17T12:00:00Z", "2024-05-17T12:42:00Z")
    assert alert["fingerprint"] == EPISODE
    assert alert["annotations"]["summary"] == body["commonAnnotations"]["summary"] == "disk at 60% on /var"


@pytest.mark.parametrize("state", ["firing", "resolved"])
def test_alertmanager_format_has_exactly_the_keys_and_types_a_real_alertmanager_sends(server, state):
    # The example is what Alertmanager 0.25 itself POSTed to a webhook receiver (tests/data, `_about` says how).
    real = json.loads(AM_EXAMPLE.read_text())[state]
    server.expect_request("/am", method="POST").respond_with_data("")
    am_webhook(server, generator_url="https://tray.example/").send(incident(minutes=42, resolved=state == "resolved"))
    ours, = sent_bodies(server)
    assert sorted(ours) == sorted(real)
    assert sorted(ours["alerts"][0]) == sorted(real["alerts"][0])
    assert {key: shape(value) for key, value in ours.items() if key not in ("groupLabels", "commonLabels",
                                                                             "commonAnnotations", "alerts")} \
        == {key: shape(value) for key, value in real.items() if key not in ("groupLabels", "commonLabels",
                                                                             "commonAnnotations", "alerts")}
    for key in ("labels", "annotations"):
        assert set(shape(ours["alerts"][0][key]).values()) == set(shape(real["alerts"][0][key]).values()) == {"str"}
    assert (ours["version"], ours["truncatedAlerts"], ours["status"]) == ("4", 0, state)
    if state == "firing":
        assert ours["alerts"][0]["endsAt"] == real["alerts"][0]["endsAt"] == "0001-01-01T00:00:00Z"


def test_one_incident_keeps_its_fingerprint_and_group_through_escalation_reminder_and_recovery(server):
    server.expect_request("/am", method="POST").respond_with_data("")
    channel = am_webhook(server)
    notices = [incident(Level.WARNING, minutes=0), incident(Level.CRITICAL, minutes=10),
               replace(incident(Level.CRITICAL, minutes=70), reminder=True, firing_for=70 * 60),
               incident(Level.CRITICAL, minutes=90, resolved=True),
               replace(incident(Level.WARNING, minutes=200, episode="0b7d41c9e2a35f68"),
                       since=BEGAN + timedelta(minutes=200))]
    for alert in notices:
        channel.send(alert)
    sent = sent_bodies(server)
    assert [(body["alerts"][0]["fingerprint"], body["status"], body["alerts"][0]["labels"]["severity"],
             body["alerts"][0]["startsAt"]) for body in sent] == [
        (EPISODE, "firing", "warning", "2024-05-17T12:00:00Z"),
        (EPISODE, "firing", "critical", "2024-05-17T12:00:00Z"),   # an escalation: same incident, new severity
        (EPISODE, "firing", "critical", "2024-05-17T12:00:00Z"),   # a reminder
        (EPISODE, "resolved", "critical", "2024-05-17T12:00:00Z"),
        ("0b7d41c9e2a35f68", "firing", "warning", "2024-05-17T15:20:00Z"),  # the next incident
    ]
    assert len({body["groupKey"] for body in sent}) == 1


def test_labels_are_identity_only_and_the_context_goes_into_annotations(server):
    server.expect_request("/am", method="POST").respond_with_data("")
    am_webhook(server).send(incident(Level.ERROR, used="95%", url="https://grafana.example/d/disk", nothing=None))
    alert = sent_bodies(server)[0]["alerts"][0]
    assert alert["labels"] == {"alertname": "disk_full", "severity": "error", "instance": socket.gethostname()}
    assert alert["annotations"] == {"summary": "disk at 95% on /var", "used": "95%",
                                    "url": "https://grafana.example/d/disk",
                                    "description": "used: 95%\nurl: https://grafana.example/d/disk"}
    assert alert["generatorURL"] == "https://grafana.example/d/disk"  # the alert's own link wins


def test_labels_and_generator_url_settings_work_as_in_the_alertmanager_channel(server):
    server.expect_request("/am", method="POST").respond_with_data("")
    am_webhook(server, labels="mount, job", generator_url="https://tray.example/alerts").send(incident())
    body, = sent_bodies(server)
    alert = body["alerts"][0]
    assert alert["labels"] == {"alertname": "disk_full", "severity": "critical", "instance": socket.gethostname(),
                               "mount": "/var"}  # no `job` in the context: left out
    assert "mount" not in alert["annotations"] and alert["annotations"]["host"] == "web-01"
    assert alert["generatorURL"] == body["externalURL"] == "https://tray.example/alerts"
    assert body["groupLabels"] == {"alertname": "disk_full", "instance": socket.gethostname()}


def test_times_are_written_as_go_writes_them():
    assert rfc3339(datetime(2024, 5, 17, 12, 30, 1, tzinfo=timezone.utc)) == "2024-05-17T12:30:01Z"
    assert rfc3339(datetime(2024, 5, 17, 12, 30, 1, 335800, tzinfo=timezone.utc)) == "2024-05-17T12:30:01.3358Z"
    assert rfc3339(datetime(2024, 5, 17, 14, 30, 1, tzinfo=timezone(timedelta(hours=2)))) == "2024-05-17T12:30:01Z"


def test_group_key_quotes_label_values_like_alertmanager():
    assert group_key({"instance": "web-01", "alertname": 'say "hi"'}) == \
        '{}:{alertname="say \\"hi\\"", instance="web-01"}'


def test_the_default_format_is_todays_body(server):
    server.expect_request("/hook", method="POST").respond_with_data("")
    for options in ({}, {"format": ""}, {"format": " Tray-Alerts "}):
        channel = WebhookChannel.from_options("w", {"url": server.url_for("/hook"), **options})
        assert channel.format == "tray-alerts"
        channel.send(disk_alert())
    assert sent_bodies(server) == [payload(disk_alert(), socket.gethostname())] * 3


def test_from_options_takes_format_alertmanager_in_any_case():
    channel = WebhookChannel.from_options("w", {"url": "https://example.com/hook", "format": " AlertManager"})
    assert channel.format == "alertmanager"


@pytest.mark.parametrize("value", ["prometheus", "json", "alertmanager-v2"])
def test_a_bad_format_is_a_setting_error_naming_the_allowed_values(value):
    with pytest.raises(SettingError) as caught:
        WebhookChannel.from_options("w", {"url": "https://example.com/hook", "format": value})
    assert caught.value.key == "format"
    assert caught.value.problem == f"unknown format {value!r} (allowed: tray-alerts, alertmanager)"


@pytest.mark.parametrize("options, key", [
    ({"labels": "mount"}, "labels"),
    ({"generator_url": "https://tray.example/"}, "generator_url"),
    ({"format": "alertmanager", "labels": "severity"}, "labels"),
    ({"format": "alertmanager", "labels": "9lives"}, "labels"),
    ({"format": "alertmanager", "generator_url": "tray.example/alerts"}, "generator_url"),
])
def test_alertmanager_only_settings_are_checked(options, key):
    with pytest.raises(SettingError) as caught:
        WebhookChannel.from_options("w", {"url": "https://example.com/hook", **options})
    assert caught.value.key == key


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the package's pydantic v1-style validator
def test_a_published_v4_parser_reads_our_payload(server):
    # prometheus-alert-model-leo: pydantic models of Alertmanager's webhook payload (import prometheus_alert_model)
    model = pytest.importorskip("prometheus_alert_model", reason="needs: pip install prometheus-alert-model-leo")
    server.expect_request("/am", method="POST").respond_with_data("")
    channel = am_webhook(server, generator_url="https://tray.example/alerts")
    channel.send(incident())
    channel.send(incident(minutes=42, resolved=True))
    firing, resolved = (model.AlertGroup.model_validate(body) for body in sent_bodies(server))
    assert (firing.version, firing.status, firing.receiver, firing.truncated_alerts) == ("4", "firing", "team-hook", 0)
    assert firing.group_labels == {"alertname": "disk_full", "instance": socket.gethostname()}
    assert firing.external_url == "https://tray.example/alerts"
    alert, = firing.alerts
    assert (alert.fingerprint, alert.starts_at, alert.ends_at.year) == (EPISODE, BEGAN, 1)
    assert alert.labels["severity"] == "critical" and alert.annotations["mount"] == "/var"
    assert resolved.alerts[0].ends_at == BEGAN + timedelta(minutes=42)
    assert resolved.alerts[0].fingerprint == EPISODE


def test_our_body_matches_what_the_installed_alertmanager_sends(server):
    # The live counterpart of the example file: what this machine's Alertmanager POSTs for the same alert.
    from alertmanager_peer import AlertmanagerPeer

    server.expect_request("/real", method="POST").respond_with_data("")
    server.expect_request("/am", method="POST").respond_with_data("")
    config = AM_WEBHOOK_CONFIG.format(url=server.url_for("/real"))
    with AlertmanagerPeer(config=config) as peer:
        labels = {"alertname": "disk_full", "severity": "critical", "instance": socket.gethostname()}
        requests.post(peer.url + "/api/v2/alerts", json=[{"labels": labels, "annotations": {"summary": "disk"},
                                                          "startsAt": "2024-05-17T12:00:00Z"}],
                      timeout=5.0).raise_for_status()
        deadline = time.monotonic() + 20.0
        while not any(request.path == "/real" for request, _ in server.log) and time.monotonic() < deadline:
            time.sleep(0.1)
    real = next((request.get_json() for request, _ in server.log if request.path == "/real"), None)
    assert real is not None, "Alertmanager sent nothing within 20 s"
    am_webhook(server).send(incident())
    ours = next(request.get_json() for request, _ in server.log if request.path == "/am")
    assert sorted(ours) == sorted(real)
    assert sorted(ours["alerts"][0]) == sorted(real["alerts"][0])
    assert ours["groupKey"] == real["groupKey"] and ours["groupLabels"] == real["groupLabels"]
    assert ours["alerts"][0]["labels"] == real["alerts"][0]["labels"]
    assert ours["alerts"][0]["endsAt"] == real["alerts"][0]["endsAt"]


AM_WEBHOOK_CONFIG = """\
global:
  resolve_timeout: 5m
route:
  receiver: team-hook
  group_by: [alertname, instance]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: team-hook
    webhook_configs:
      - url: {url}
        send_resolved: true
"""
