"""WebhookChannel against a real local HTTP server (pytest-httpserver on 127.0.0.1)."""
from __future__ import annotations

import socket

import pytest
from werkzeug import Request, Response

from helpers_net import (SHORT_TIMEOUT, assert_secret_free, dead_url, disk_alert, echoing_handler,
                         send_failure)
from tray_alerts.channels import build_channel
from tray_alerts.channels.base import NotConfigured, SettingError
from tray_alerts.channels.webhook import WebhookChannel, parse_headers
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
