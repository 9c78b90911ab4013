"""SmsChannel (Twilio Messages API) against a real local HTTP server (pytest-httpserver on 127.0.0.1)."""
from __future__ import annotations

import base64

import pytest

from helpers_net import SHORT_TIMEOUT, assert_secret_free, dead_url, disk_alert, send_failure
from tray_alerts.channels import build_channel
from tray_alerts.channels.base import DeliveryError, NotConfigured, SettingError
from tray_alerts.channels.sms import MAX_BODY, SmsChannel
from tray_alerts.delivery import attempt
from tray_alerts.model import Alert, Level

SID = "AC0123456789abcdef0123456789abcdef"
TOKEN = "twilioAUTHtokenSECRET4471"
API_PATH = f"/2010-04-01/Accounts/{SID}/Messages.json"
SENDER = "+15550001111"
RECIPIENTS = ["+15552223333", "+15554445555"]


@pytest.fixture
def server(httpserver_ipv4):
    return httpserver_ipv4


def make_sms(api_url: str, recipients=None, max_per_hour: int = 100) -> SmsChannel:
    channel = SmsChannel("pager", SID, TOKEN, SENDER, list(recipients or RECIPIENTS), api_url=api_url,
                         max_per_hour=max_per_hour)
    channel.timeout = SHORT_TIMEOUT
    return channel


@pytest.fixture
def sms(server):
    return make_sms(server.url_for("/"))


def expect_twilio(server, status: int = 201, **kwargs):
    server.expect_request(API_PATH, method="POST").respond_with_json({"sid": "SM1", "status": "queued"},
                                                                      status=status, **kwargs)


# --- success ----------------------------------------------------------------------------------------------------

def test_one_form_post_per_recipient_with_basic_auth(server, sms):
    expect_twilio(server)
    assert sms.send(disk_alert()) is None
    assert len(server.log) == 2
    sent_to = []
    for request, response in server.log:
        assert response.status_code == 201
        assert request.method == "POST"
        assert request.path == API_PATH
        assert request.mimetype == "application/x-www-form-urlencoded"
        assert request.authorization.type == "basic"
        assert (request.authorization.username, request.authorization.password) == (SID, TOKEN)
        expected_auth = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
        assert request.headers["Authorization"] == expected_auth
        form = request.form
        assert set(form) == {"From", "To", "Body"}
        assert form["From"] == SENDER
        assert form["Body"] == "[CRITICAL] disk_full: disk at 95% on /var (host=web-01, mount=/var)"
        sent_to.append(form["To"])
    assert sent_to == RECIPIENTS


def test_body_without_context_and_for_a_resolved_alert(server, sms):
    expect_twilio(server)
    sms.recipients = RECIPIENTS[:1]
    sms.send(Alert("disk_full", Level.WARNING, "disk back to 70%", resolved=True))
    assert server.log[0][0].form["Body"] == "[RESOLVED] disk_full: disk back to 70%"


def test_body_is_cut_to_1600_characters(server, sms):
    expect_twilio(server)
    sms.recipients = RECIPIENTS[:1]
    sms.send(Alert("log_flood", Level.ERROR, "x" * 3000, {"file": "/var/log/syslog"}))
    body = server.log[0][0].form["Body"]
    assert MAX_BODY == 1600
    assert len(body) == 1600
    assert body.startswith("[ERROR] log_flood: xxx")
    assert body.endswith("…")


def test_body_of_exactly_1600_characters_is_not_cut(server, sms):
    expect_twilio(server)
    sms.recipients = RECIPIENTS[:1]
    prefix = "[INFO] e: "
    message = "y" * (1600 - len(prefix))
    sms.send(Alert("e", Level.INFO, message))
    assert server.log[0][0].form["Body"] == prefix + message


def test_api_url_with_trailing_slash_or_path_prefix(server):
    server.expect_request(f"/proxy{API_PATH}", method="POST").respond_with_json({"sid": "SM1"}, status=201)
    channel = make_sms(server.url_for("/proxy/"), recipients=RECIPIENTS[:1])
    channel.send(disk_alert())
    assert server.log[0][0].path == f"/proxy{API_PATH}"


def test_from_options_builds_a_working_channel(server):
    expect_twilio(server)
    channel = build_channel("pager", "sms", {
        "account_sid": SID, "auth_token": TOKEN, "from": SENDER, "to": " +15552223333 , ,+15554445555 ",
        "api_url": server.url_for("/"), "max_per_hour": "3",
    })
    assert isinstance(channel, SmsChannel)
    assert channel.recipients == RECIPIENTS
    assert channel.max_per_hour == 3
    channel.send(disk_alert())
    assert [request.form["To"] for request, _ in server.log] == RECIPIENTS


def test_from_options_defaults_to_twilio_and_five_per_hour():
    channel = SmsChannel.from_options("pager", {"account_sid": SID, "auth_token": TOKEN, "from": SENDER,
                                                "to": "+15552223333"})
    assert channel.max_per_hour == 5
    assert channel._url == f"https://api.twilio.com{API_PATH}"


# --- the hourly cap -----------------------------------------------------------------------------------------------

def test_hourly_cap_refuses_once_exceeded_without_posting(server):
    expect_twilio(server)
    channel = make_sms(server.url_for("/"), recipients=RECIPIENTS[:1], max_per_hour=2)
    channel.send(disk_alert())
    channel.send(disk_alert(Level.ERROR))
    assert len(server.log) == 2
    with pytest.raises(DeliveryError) as caught:
        channel.send(disk_alert())
    assert caught.value.retryable is False
    assert "hourly cap of 2" in caught.value.message
    assert len(server.log) == 2  # nothing was posted for the refused alert
    outcome = attempt(channel, disk_alert())
    assert (outcome.ok, outcome.retryable) == (False, False)
    assert len(server.log) == 2


def test_cap_counts_alerts_not_recipients(server):
    expect_twilio(server)
    channel = make_sms(server.url_for("/"), recipients=RECIPIENTS, max_per_hour=1)
    channel.send(disk_alert())
    assert len(server.log) == 2
    with pytest.raises(DeliveryError, match="hourly cap"):
        channel.send(disk_alert())


def test_zero_cap_never_texts(server):
    channel = make_sms(server.url_for("/"), max_per_hour=0)
    error = send_failure(channel, disk_alert())
    assert error.retryable is False
    assert server.log == []


# --- failure modes ------------------------------------------------------------------------------------------------

def test_connection_refused_is_retryable():
    channel = make_sms(dead_url("/"))
    error = send_failure(channel, disk_alert())
    assert (error.retryable, error.retry_after) == (True, None)
    assert error.message == "SMS: connection refused (127.0.0.1)"


def test_timeout_is_retryable(stalling_server):
    sms = make_sms(stalling_server.url_for("/"))
    error = send_failure(sms, disk_alert())
    assert error.retryable is True
    assert error.message == f"SMS: no answer from 127.0.0.1 within {SHORT_TIMEOUT:g} s; it may have arrived"


@pytest.mark.parametrize("status", [400, 401, 404])
def test_client_error_is_not_retryable(server, sms, status):
    server.expect_request(API_PATH, method="POST").respond_with_json(
        {"code": 21211, "message": "The 'To' number is not a valid phone number.", "status": status}, status=status)
    error = send_failure(sms, disk_alert())
    assert error.retryable is False
    assert f"HTTP {status}" in error.message
    assert "not a valid phone number" in error.message
    assert len(server.log) == 1  # stops at the first failing recipient


@pytest.mark.parametrize("status", [500, 503])
def test_server_error_is_retryable(server, sms, status):
    server.expect_request(API_PATH, method="POST").respond_with_data("upstream trouble", status=status)
    error = send_failure(sms, disk_alert())
    assert error.retryable is True
    assert f"HTTP {status}" in error.message


def test_rate_limit_is_retryable_with_retry_after(server, sms):
    server.expect_request(API_PATH, method="POST").respond_with_json({"code": 20429}, status=429,
                                                                     headers={"Retry-After": "60"})
    error = send_failure(sms, disk_alert())
    assert (error.retryable, error.retry_after) == (True, 60.0)


# --- secrets --------------------------------------------------------------------------------------------------------

def test_auth_token_not_in_errors_when_refused(isolated_secrets):
    isolated_secrets(TOKEN)
    assert_secret_free(make_sms(dead_url("/")), disk_alert(), TOKEN)


def test_auth_token_not_in_errors_on_timeout(stalling_server, isolated_secrets):
    isolated_secrets(TOKEN)
    assert_secret_free(make_sms(stalling_server.url_for("/")), disk_alert(), TOKEN)


@pytest.mark.parametrize("status", [401, 429, 500])
def test_auth_token_not_in_errors_on_http_failures(server, sms, isolated_secrets, status):
    isolated_secrets(TOKEN)
    server.expect_request(API_PATH, method="POST").respond_with_json(
        {"code": 20003, "message": "Authenticate", "status": status}, status=status)
    assert_secret_free(sms, disk_alert(), TOKEN)


# --- from_options ---------------------------------------------------------------------------------------------------

FULL = {"account_sid": SID, "auth_token": TOKEN, "from": SENDER, "to": "+15552223333"}


@pytest.mark.parametrize("missing", ["account_sid", "auth_token", "from", "to"])
def test_missing_required_value_is_not_configured(missing):
    options = {**FULL, missing: "  "}
    with pytest.raises(NotConfigured, match=missing):
        SmsChannel.from_options("pager", options)
    del options[missing]
    with pytest.raises(NotConfigured, match=missing):
        SmsChannel.from_options("pager", options)


@pytest.mark.parametrize("url", ["api.twilio.com", "ftp://api.twilio.com", f"https:///{TOKEN}"])
def test_bad_api_url_is_a_setting_error_that_does_not_echo_it(url):
    with pytest.raises(SettingError) as caught:
        SmsChannel.from_options("pager", {**FULL, "api_url": url})
    assert caught.value.key == "api_url"
    assert url not in str(caught.value)
    assert TOKEN not in str(caught.value)


@pytest.mark.parametrize("cap", ["-1", "2.5", "many"])
def test_bad_cap_is_a_setting_error(cap):
    with pytest.raises(SettingError) as caught:
        SmsChannel.from_options("pager", {**FULL, "max_per_hour": cap})
    assert caught.value.key == "max_per_hour"


def test_a_failed_send_does_not_use_up_the_hourly_cap(server):
    channel = make_sms(server.url_for("/"), recipients=RECIPIENTS[:1], max_per_hour=1)
    server.expect_oneshot_request(API_PATH, method="POST").respond_with_data("down", status=503)
    with pytest.raises(DeliveryError) as caught:
        channel.send(disk_alert())
    assert caught.value.retryable
    server.expect_oneshot_request(API_PATH, method="POST").respond_with_json({"sid": "SM1"}, status=201)
    channel.send(disk_alert())
    with pytest.raises(DeliveryError, match="hourly cap of 1"):
        channel.send(disk_alert())


# --- through the outbox: one row per number ---------------------------------------------------------------------

def test_a_number_that_fails_is_retried_alone_and_the_alert_counts_once(server, tmp_path):
    from werkzeug import Response

    from tray_alerts import Engine
    from tray_alerts.clock import FakeClock

    failing = {"+15554445555": 1}  # the second number answers 500 once

    def twilio(request):
        number = request.form["To"]
        if failing.get(number):
            failing[number] -= 1
            return Response("busy", status=500)
        return Response('{"sid": "SM1"}', status=201, content_type="application/json")

    server.expect_request(API_PATH, method="POST").respond_with_handler(twilio)
    clock = FakeClock()
    channel = make_sms(server.url_for("/"), max_per_hour=1)
    with Engine({"pager": channel}, {"critical": ["pager"]}, tmp_path / "s.db", retry_in_background=False,
                clock=clock) as engine:
        first = engine.raise_alert("disk_full", "critical", "disk at 95%")
        assert first.outcomes["pager"].status == "retrying"  # the worst of its numbers
        clock.advance(10)
        engine.tick()
        assert engine.wait_idle() and engine.pending() == []
    texted = [request.form["To"] for request, _ in server.log]
    assert texted == ["+15552223333", "+15554445555", "+15554445555"]  # the first number once, not again
