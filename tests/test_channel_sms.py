"""SmsChannel (Twilio Messages API) against a real local HTTP server (pytest-httpserver on 127.0.0.1)."""
from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers_net import SHORT_TIMEOUT, assert_secret_free, dead_url, disk_alert, send_failure
from tray_alerts.channels import build_channel
from tray_alerts.channels.base import DeliveryError, NotConfigured, SettingError
from tray_alerts.channels.sms import GSM7, MAX_BODY, UCS2, SmsChannel, encoding, fit_body, length, segments, septets
from tray_alerts.delivery import attempt
from tray_alerts.model import Alert, Level

SID = "AC0123456789abcdef0123456789abcdef"
TOKEN = "twilioAUTHtokenSECRET4471"
API_PATH = f"/2010-04-01/Accounts/{SID}/Messages.json"
SENDER = "+15550001111"
SERVICE = "MG0123456789abcdef0123456789ABCDEF"
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


def test_a_long_ascii_body_is_cut_to_1600_and_stays_gsm7(server, sms):
    expect_twilio(server)
    sms.recipients = RECIPIENTS[:1]
    sms.send(Alert("log_flood", Level.ERROR, "x" * 3000, {"file": "/var/log/syslog"}))
    body = server.log[0][0].form["Body"]
    assert MAX_BODY == 1600
    assert length(body) == 1600  # septets: `[` and `]` take two each
    assert len(body) == 1598
    assert body.startswith("[ERROR] log_flood: xxx")
    assert body.endswith("xxx...")
    assert encoding(body) == GSM7
    assert segments(body) == 11
    assert segments(body[:-3] + "…") == 24  # what the old `…` cut cost: the whole text as UCS-2


def test_an_emoji_body_is_cut_in_utf16_units_without_splitting_a_pair(server, sms):
    expect_twilio(server)
    sms.recipients = RECIPIENTS[:1]
    sms.send(Alert("moods", Level.ERROR, "🔥" * 900))  # 900 characters but 1800 UTF-16 units
    body = server.log[0][0].form["Body"]
    prefix = "[ERROR] moods: "
    assert body == prefix + "🔥" * ((1599 - len(prefix)) // 2) + "…"
    assert length(body) <= 1600


def test_body_of_exactly_1600_septets_is_not_cut(server, sms):
    expect_twilio(server)
    sms.recipients = RECIPIENTS[:1]
    prefix = "[INFO] e: "  # 12 septets: `[` and `]` are in the extension table
    message = "y" * (1600 - 12)
    sms.send(Alert("e", Level.INFO, message))
    sms.send(Alert("e", Level.INFO, message + "y"))
    assert server.log[0][0].form["Body"] == prefix + message
    assert server.log[1][0].form["Body"] == prefix + message[:-3] + "..."


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


def test_messaging_service_sid_is_sent_instead_of_from(server):
    expect_twilio(server)
    channel = build_channel("pager", "sms", {
        "account_sid": SID, "auth_token": TOKEN, "messaging_service_sid": f" {SERVICE} ", "to": "+15552223333",
        "api_url": server.url_for("/"),
    })
    assert isinstance(channel, SmsChannel)
    assert (channel.sender, channel.messaging_service_sid) == (None, SERVICE)
    channel.send(disk_alert())
    (request, response), = server.log
    assert response.status_code == 201
    assert set(request.form) == {"MessagingServiceSid", "To", "Body"}
    assert request.form["MessagingServiceSid"] == SERVICE
    assert "From" not in request.form
    assert request.form["To"] == "+15552223333"


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


# --- the body: GSM-7 or UCS-2, within Twilio's 1600 ------------------------------------------------------------

@pytest.mark.parametrize("char, size", [
    ("@", 1), ("£", 1), ("$", 1), ("¤", 1), ("¥", 1), ("é", 1), ("è", 1), ("É", 1), ("ù", 1), ("ì", 1), ("ò", 1),
    ("Ç", 1), ("ß", 1), ("Å", 1), ("Æ", 1), ("Ø", 1), ("Δ", 1), ("Ω", 1), ("Ä", 1), ("ñ", 1), ("à", 1), ("§", 1),
    ("¡", 1), ("¿", 1), ("_", 1), ("\n", 1), ("\r", 1), (" ", 1), ("x", 1), ("0", 1),
    ("€", 2), ("^", 2), ("{", 2), ("}", 2), ("\\", 2), ("[", 2), ("~", 2), ("]", 2), ("|", 2), ("\f", 2),
    # not in GSM 03.38: lowercase ç (0x09 is the capital), the backtick, tab, other accents, lowercase Greek, a
    # Greek capital that looks Latin, typographic punctuation, the escape itself, emoji
    ("ç", None), ("`", None), ("\t", None), ("á", None), ("ê", None), ("í", None), ("ó", None), ("ú", None),
    ("α", None), ("Α", None), ("—", None), ("…", None), ("’", None), ("“", None), ("\x1b", None), ("😀", None),
])
def test_gsm7_alphabet_edges(char, size):
    assert septets(char) == size
    assert encoding(f"a{char}b") == (GSM7 if size else UCS2)


@pytest.mark.parametrize("text, expected", [
    ("", 0), ("abc", 3), ("a€", 3), ("{x}", 5), ("aç", 2), ("a€ç", 3), ("😀", 2), ("a😀", 3), ("€😀", 3),
])
def test_length_counts_septets_in_gsm7_and_utf16_units_otherwise(text, expected):
    assert length(text) == expected


@pytest.mark.parametrize("text", [
    "x" * 1600, "€" * 800, "x" * 1598 + "^", "ç" * 1600, "😀" * 800, "ç" + "😀" * 799 + "x", "",
])
def test_a_body_at_the_limit_is_not_cut(text):
    assert fit_body(text) == text


@pytest.mark.parametrize("text, expected", [
    ("x" * 1601, "x" * 1597 + "..."),
    ("€" * 801, "€" * 798 + "..."),  # 1596 septets: one more € would not leave room for `...`
    ("x" * 1599 + "^", "x" * 1597 + "..."),
    ("x" * 1596 + "€" + "x" * 10, "x" * 1596 + "..."),  # the € (two septets) is not split
    ("x" * 3000 + "😀", "x" * 1597 + "..."),  # the emoji is cut away: no reason to go UCS-2
    ("x" * 1597 + "ç" * 10, "x" * 1597 + "..."),
    ("ç" * 1601, "ç" * 1599 + "…"),
    ("ç" + "x" * 3000, "ç" + "x" * 1598 + "…"),
    ("x" * 1596 + "ç" * 10, "x" * 1596 + "ççç" + "…"),  # the ç is kept, so the body is UCS-2 anyway
    ("😀" * 801, "😀" * 799 + "…"),  # 1598 units: one more pair would not leave room for `…`
    ("a" + "😀" * 1000, "a" + "😀" * 799 + "…"),
    ("😀" * 900, "😀" * 799 + "…"),  # 900 characters, 1800 units
    ("€" * 700 + "😀" * 500, "€" * 700 + "😀" * 449 + "…"),  # UCS-2: the € is one unit again
])
def test_a_long_body_is_cut_in_its_own_encoding(text, expected):
    body = fit_body(text)
    assert body == expected
    assert length(body) <= MAX_BODY
    assert encoding(body) == (GSM7 if expected.endswith("...") else UCS2)
    assert body.encode("utf-16-le").decode("utf-16-le") == body  # no lone surrogate
    assert body.encode("utf-8")


@pytest.mark.parametrize("body, expected", [
    ("", 1), ("x" * 160, 1), ("x" * 161, 2), ("x" * 306, 2), ("x" * 307, 3), ("x" * 1600, 11),
    ("€" * 80, 1), ("€" * 80 + "x", 2),
    ("x" * 152 + "€" + "x" * 152, 3),  # 306 septets, but the € does not fit in the first part's last septet
    ("ç" * 70, 1), ("ç" * 71, 2), ("ç" * 134, 2), ("ç" * 135, 3), ("x" * 1599 + "…", 24),
    ("😀" * 35, 1), ("😀" * 36, 2),
    ("ç" * 66 + "😀" + "ç" * 66, 3),  # 134 units, but the pair does not fit in the first part's last unit
])
def test_segments(body, expected):
    assert segments(body) == expected


BODY_CHARS = st.sampled_from(list("xyz {}€^@éÇ\n") + ["ç", "😀", "…", "—"])


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(BODY_CHARS, max_size=2200).map("".join))
def test_any_body_fits_and_only_a_cut_is_added(text):
    body = fit_body(text)
    assert length(body) <= MAX_BODY
    if body == text:
        assert length(text) <= MAX_BODY
        return
    kept = body.removesuffix("...") if body.endswith("...") else body.removesuffix("…")
    assert text.startswith(kept) and len(kept) < len(text)
    assert encoding(body) == encoding(kept)  # the cut never turns a GSM-7 body into UCS-2
    assert (body.endswith("...")) == (encoding(kept) == GSM7)


# --- messaging_service_sid ------------------------------------------------------------------------------------

def test_both_from_and_messaging_service_sid_is_a_setting_error():
    with pytest.raises(SettingError) as caught:
        SmsChannel.from_options("pager", {**FULL, "messaging_service_sid": SERVICE})
    assert caught.value.key == "messaging_service_sid"
    assert "from" in caught.value.problem


@pytest.mark.parametrize("sid", [
    "MG123", "MG" + "0" * 31, "MG" + "0" * 33, "mg" + "0" * 32, "PN" + "0" * 32, "MG" + "g" * 32,
    "MG" + "0" * 31 + " 0", f"MG{TOKEN}",
])
def test_a_messaging_service_sid_of_the_wrong_shape_is_a_setting_error(sid):
    with pytest.raises(SettingError) as caught:
        SmsChannel.from_options("pager", {**FULL, "from": "", "messaging_service_sid": sid})
    assert caught.value.key == "messaging_service_sid"
    assert sid not in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_neither_from_nor_messaging_service_sid_is_not_configured():
    with pytest.raises(NotConfigured, match="from is empty.*messaging_service_sid"):
        SmsChannel.from_options("pager", {**FULL, "from": " ", "messaging_service_sid": " "})


@pytest.mark.parametrize("sender, service", [(None, None), (SENDER, SERVICE)])
def test_the_constructor_takes_exactly_one_sender(sender, service):
    with pytest.raises(ValueError):
        SmsChannel("pager", SID, TOKEN, sender, RECIPIENTS, messaging_service_sid=service)


@pytest.mark.parametrize("sid", ["AC123", "AC0123456789abcdef0123456789abcde/", "MG0123456789abcdef0123456789abcdef"])
def test_an_account_sid_of_the_wrong_shape_is_a_setting_error(sid):
    with pytest.raises(SettingError) as caught:
        SmsChannel.from_options("pager", {**FULL, "account_sid": sid})
    assert (caught.value.key, caught.value.problem) == ("account_sid", "not an Account SID (AC and 32 hex digits)")


def test_another_providers_account_id_is_taken_and_quoted_into_the_path(server):
    project = "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"  # e.g. a Twilio-compatible provider's project id
    channel = SmsChannel.from_options("pager", {**FULL, "account_sid": project, "api_url": server.url_for("/compat")})
    server.expect_request(f"/compat/2010-04-01/Accounts/{project}/Messages.json",
                          method="POST").respond_with_json({"sid": "SM1"}, status=201)
    channel.send(disk_alert())
    assert len(server.log) == 1
    odd = SmsChannel.from_options("pager", {**FULL, "account_sid": "a/b?c", "api_url": server.url_for("/compat")})
    assert odd._url.endswith("/Accounts/a%2Fb%3Fc/Messages.json")  # cannot change the path or add a query
