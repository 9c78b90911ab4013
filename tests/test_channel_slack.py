"""SlackChannel against a real local HTTP server (pytest-httpserver on 127.0.0.1)."""
from __future__ import annotations

import socket

import pytest

from helpers_net import (SHORT_TIMEOUT, assert_secret_free, dead_url, disk_alert, echoing_handler,
                         send_failure)
from tray_alerts.channels import build_channel
from tray_alerts.channels.base import NotConfigured, SettingError
from tray_alerts.channels.slack import SlackChannel
from tray_alerts.model import Alert, Level

SECRET = "XyZslackSECRETtoken8812"
HOOK_PATH = f"/services/T0001/B0002/{SECRET}"


@pytest.fixture
def server(httpserver_ipv4):
    return httpserver_ipv4


@pytest.fixture
def slack(server):
    channel = SlackChannel("team", server.url_for(HOOK_PATH))
    channel.timeout = SHORT_TIMEOUT
    return channel


def posted_json(server, index: int = 0) -> dict:
    request, _ = server.log[index]
    return request.get_json()


# --- success and payload ----------------------------------------------------------------------------------------

def test_send_posts_the_payload_to_the_webhook(server, slack):
    server.expect_request(HOOK_PATH, method="POST").respond_with_data("ok")
    alert = disk_alert(Level.CRITICAL)
    assert slack.send(alert) is None
    assert len(server.log) == 1
    request, response = server.log[0]
    assert response.status_code == 200
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == "tray-alerts"
    body = request.get_json()
    assert body["text"] == "CRITICAL disk_full: disk at 95% on /var"
    assert "username" not in body
    (attachment,) = body["attachments"]
    assert attachment["fallback"] == body["text"]
    assert attachment["color"] == "#8b0000"
    assert attachment["title"] == "CRITICAL · disk_full"
    assert attachment["text"] == "disk at 95% on /var"
    assert attachment["fields"] == [
        {"title": "host", "value": "web-01", "short": True},
        {"title": "mount", "value": "/var", "short": True},
    ]
    assert attachment["footer"] == f"tray-alerts on {socket.gethostname()}"
    assert attachment["ts"] == int(alert.at.timestamp())


@pytest.mark.parametrize(("level", "colour"), [
    (Level.INFO, "#2f80ed"),
    (Level.WARNING, "#d97706"),
    (Level.ERROR, "#e03e2d"),
    (Level.CRITICAL, "#8b0000"),
])
def test_attachment_colour_and_title_follow_the_level(server, slack, level, colour):
    server.expect_request(HOOK_PATH, method="POST").respond_with_data("ok")
    slack.send(disk_alert(level))
    attachment = posted_json(server)["attachments"][0]
    assert attachment["color"] == colour
    assert attachment["title"] == f"{level.value.upper()} · disk_full"


def test_resolved_alert_is_green_and_tagged_resolved(server, slack):
    server.expect_request(HOOK_PATH, method="POST").respond_with_data("ok")
    slack.send(disk_alert(Level.WARNING, resolved=True))
    body = posted_json(server)
    attachment = body["attachments"][0]
    assert attachment["color"] == "#2eb67d"
    assert attachment["title"] == "RESOLVED · disk_full"
    assert body["text"] == "RESOLVED disk_full: disk at 95% on /var"


def test_context_values_become_fields_long_ones_not_short(server, slack):
    server.expect_request(HOOK_PATH, method="POST").respond_with_data("ok")
    long_value = "x" * 60
    slack.send(Alert("backup", Level.ERROR, "backup failed", {"exit": 3, "log": long_value}))
    fields = posted_json(server)["attachments"][0]["fields"]
    assert fields == [
        {"title": "exit", "value": "3", "short": True},
        {"title": "log", "value": long_value, "short": False},
    ]


def test_alert_without_context_has_no_fields(server, slack):
    server.expect_request(HOOK_PATH, method="POST").respond_with_data("ok")
    slack.send(Alert("ping", Level.INFO, "hello"))
    assert posted_json(server)["attachments"][0]["fields"] == []


def test_username_from_options_is_sent(server):
    server.expect_request(HOOK_PATH, method="POST").respond_with_data("ok")
    channel = build_channel("team", "slack", {"webhook_url": server.url_for(HOOK_PATH), "username": " alert-bot "})
    assert isinstance(channel, SlackChannel)
    channel.send(disk_alert())
    assert posted_json(server)["username"] == "alert-bot"


# --- failure modes ------------------------------------------------------------------------------------------------

def test_connection_refused_is_retryable():
    channel = SlackChannel("team", dead_url(HOOK_PATH), timeout=SHORT_TIMEOUT)
    error = send_failure(channel, disk_alert())
    assert error.retryable is True
    assert error.retry_after is None
    assert "connection refused" in error.message
    assert error.message.startswith("Slack:")


def test_timeout_is_retryable(stalling_server):
    slack = SlackChannel("team", stalling_server.url_for(HOOK_PATH), timeout=SHORT_TIMEOUT)
    error = send_failure(slack, disk_alert())
    assert len(stalling_server.log) == 0  # the request is still being held
    assert error.retryable is True
    assert "no answer" in error.message
    assert f"{SHORT_TIMEOUT:g} s" in error.message


@pytest.mark.parametrize("status", [400, 403, 404, 410])
def test_client_error_is_not_retryable_and_shows_the_reason(server, slack, status):
    server.expect_request(HOOK_PATH, method="POST").respond_with_data("invalid_token", status=status)
    error = send_failure(slack, disk_alert())
    assert error.retryable is False
    assert f"HTTP {status}" in error.message
    assert "invalid_token" in error.message


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_error_is_retryable(server, slack, status):
    server.expect_request(HOOK_PATH, method="POST").respond_with_data("oops", status=status)
    error = send_failure(slack, disk_alert())
    assert error.retryable is True
    assert f"HTTP {status}" in error.message
    assert error.retry_after is None


def test_server_error_with_retry_after_keeps_it(server, slack):
    server.expect_request(HOOK_PATH, method="POST").respond_with_data("busy", status=503,
                                                                       headers={"Retry-After": "7"})
    error = send_failure(slack, disk_alert())
    assert (error.retryable, error.retry_after) == (True, 7.0)


@pytest.mark.parametrize(("header", "expected"), [
    ("30", 30.0),
    ("0", 0.0),
    ("99999", 3600.0),
    ("Wed, 21 Oct 2015 07:28:00 GMT", None),
])
def test_rate_limit_is_retryable_with_retry_after(server, slack, header, expected):
    server.expect_request(HOOK_PATH, method="POST").respond_with_data("rate_limited", status=429,
                                                                       headers={"Retry-After": header})
    error = send_failure(slack, disk_alert())
    assert error.retryable is True
    assert error.retry_after == expected
    assert "HTTP 429" in error.message


def test_rate_limit_without_retry_after(server, slack):
    server.expect_request(HOOK_PATH, method="POST").respond_with_data("rate_limited", status=429)
    error = send_failure(slack, disk_alert())
    assert (error.retryable, error.retry_after) == (True, None)


# --- secrets --------------------------------------------------------------------------------------------------------

def test_secret_not_in_errors_when_refused(isolated_secrets):
    url = dead_url(HOOK_PATH)
    isolated_secrets(url)
    channel = SlackChannel("team", url, timeout=SHORT_TIMEOUT)
    assert_secret_free(channel, disk_alert(), SECRET)


def test_secret_not_in_errors_on_timeout(stalling_server, isolated_secrets):
    isolated_secrets(stalling_server.url_for(HOOK_PATH))
    slack = SlackChannel("team", stalling_server.url_for(HOOK_PATH), timeout=SHORT_TIMEOUT)
    assert_secret_free(slack, disk_alert(), SECRET)


@pytest.mark.parametrize(("status", "retryable"), [(404, False), (500, True), (429, True)])
def test_secret_not_in_errors_on_http_failures(server, slack, isolated_secrets, status, retryable):
    isolated_secrets(server.url_for(HOOK_PATH))
    server.expect_request(HOOK_PATH, method="POST").respond_with_data("no_service", status=status)
    error = assert_secret_free(slack, disk_alert(), SECRET)
    assert error.retryable is retryable


@pytest.mark.parametrize("status", [404, 500])
def test_secret_not_in_error_even_when_the_server_echoes_the_path(server, slack, status):
    # No secret registered: the channel's own message must already be free of the URL path.
    server.expect_request(HOOK_PATH, method="POST").respond_with_handler(echoing_handler(status))
    error = assert_secret_free(slack, disk_alert(), SECRET)
    assert f"HTTP {status}" in error.message


# --- from_options ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("options", [{}, {"webhook_url": ""}, {"webhook_url": "   "}, {"username": "bot"}])
def test_missing_webhook_url_is_not_configured(options):
    with pytest.raises(NotConfigured, match="webhook_url"):
        SlackChannel.from_options("team", options)


@pytest.mark.parametrize("url", [
    f"hooks.slack.com{HOOK_PATH}",
    f"ftp://hooks.slack.com{HOOK_PATH}",
    f"https://{HOOK_PATH}",
    f"javascript:{SECRET}",
])
def test_bad_webhook_url_is_a_setting_error_that_does_not_echo_it(url):
    with pytest.raises(SettingError) as caught:
        SlackChannel.from_options("team", {"webhook_url": url})
    assert caught.value.key == "webhook_url"
    assert SECRET not in str(caught.value)
    assert url not in str(caught.value)


def test_from_options_builds_a_working_channel(server):
    server.expect_request(HOOK_PATH, method="POST").respond_with_data("ok")
    channel = SlackChannel.from_options("team", {"webhook_url": f"  {server.url_for(HOOK_PATH)}  "})
    assert channel.name == "team"
    channel.send(disk_alert())
    assert len(server.log) == 1
