"""SlackChannel against a real local HTTP server (pytest-httpserver on 127.0.0.1)."""
from __future__ import annotations

import socket

import pytest

from werkzeug import Request, Response

from helpers_net import (FIXED_TIME, SHORT_TIMEOUT, assert_secret_free, dead_url, disk_alert, echoing_handler,
                         send_failure)
from tray_alerts.channels import build_channel
from tray_alerts.channels import slack as slack_module
from tray_alerts.channels.base import DeliveryError, NotConfigured, SettingError
from tray_alerts.channels.slack import SlackChannel, fit, units
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


# --- escaping: Slack's control characters in every text field ----------------------------------------------------

# (what an alert says, what Slack must receive): only & < > are control characters, each becomes its entity.
INJECTIONS = [
    ("<!channel>", "&lt;!channel&gt;"),
    ("<!here>", "&lt;!here&gt;"),
    ("<https://evil.example|click here>", "&lt;https://evil.example|click here&gt;"),
    ("<@U024BE7LH> look", "&lt;@U024BE7LH&gt; look"),
    ("fish & chips", "fish &amp; chips"),
    ("&lt;already&gt;", "&amp;lt;already&amp;gt;"),
]


def _alert(event: str = "ev", message: str = "msg", **context) -> Alert:
    return Alert(event, Level.ERROR, message, context, at=FIXED_TIME)


# name: (alert built from the injected text, where it lands, what that field must be given the escaped text)
TEXT_FIELDS = {
    "text from message": (lambda s: _alert(message=s), lambda b: b["text"], "ERROR ev: {}"),
    "text from event": (lambda s: _alert(event=s), lambda b: b["text"], "ERROR {}: msg"),
    "fallback": (lambda s: _alert(message=s), lambda b: b["attachments"][0]["fallback"], "ERROR ev: {}"),
    "title": (lambda s: _alert(event=s), lambda b: b["attachments"][0]["title"], "ERROR · {}"),
    "attachment text": (lambda s: _alert(message=s), lambda b: b["attachments"][0]["text"], "{}"),
    "field title": (lambda s: _alert(**{s: "v"}), lambda b: b["attachments"][0]["fields"][0]["title"], "{}"),
    "field value": (lambda s: _alert(k=s), lambda b: b["attachments"][0]["fields"][0]["value"], "{}"),
}


@pytest.mark.parametrize(("raw", "escaped"), INJECTIONS)
@pytest.mark.parametrize("where", list(TEXT_FIELDS))
def test_control_characters_are_escaped_in_every_text_field(server, slack, where, raw, escaped):
    server.expect_request(HOOK_PATH, method="POST").respond_with_data("ok")
    build, extract, template = TEXT_FIELDS[where]
    slack.send(build(raw))
    assert extract(posted_json(server)) == template.format(escaped)


@pytest.mark.parametrize(("raw", "escaped"), INJECTIONS)
def test_control_characters_are_escaped_in_the_footer(server, slack, monkeypatch, raw, escaped):
    server.expect_request(HOOK_PATH, method="POST").respond_with_data("ok")
    monkeypatch.setattr(socket, "gethostname", lambda: raw)
    slack.send(_alert())
    assert posted_json(server)["attachments"][0]["footer"] == f"tray-alerts on {escaped}"


@pytest.mark.parametrize(("raw", "escaped"), INJECTIONS)
@pytest.mark.parametrize("where", list(TEXT_FIELDS))
def test_control_characters_are_escaped_in_grouped_messages(server, slack, where, raw, escaped):
    server.expect_request(HOOK_PATH, method="POST").respond_with_data("ok")
    build, extract, template = TEXT_FIELDS[where]
    slack.send_many([build(raw), _alert(message="second")])
    body = posted_json(server)
    if where.startswith("text"):
        assert body["text"] == "2 alerts, worst error: " + template.format(escaped) + "; ERROR ev: second"
    else:
        assert extract(body) == template.format(escaped)


def _strings(value):
    """Every string in a JSON value (keys excluded)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def assert_no_control_sequences(body: dict) -> None:
    """No `<` or `>` anywhere, and every `&` starts one of the three entities Slack decodes."""
    for text in _strings({key: value for key, value in body.items() if key != "username"}):
        assert "<" not in text and ">" not in text, text
        assert text.count("&") == text.count("&amp;") + text.count("&lt;") + text.count("&gt;"), text


def test_an_alert_full_of_injections_posts_no_control_sequence(server, slack, monkeypatch):
    server.expect_request(HOOK_PATH, method="POST").respond_with_data("ok")
    monkeypatch.setattr(socket, "gethostname", lambda: "<!everyone>")
    nasty = "<!channel> & <https://evil.example|click here> <!subteam^S123>"
    alert = Alert(nasty, Level.CRITICAL, nasty, {nasty: nasty, "n": 3}, at=FIXED_TIME, resolved=True,
                  firing_for=120, possible_repeat=True)
    slack.send(alert)
    slack.send_many([alert, alert])
    for index in range(2):
        assert_no_control_sequences(posted_json(server, index))


def test_other_characters_are_left_alone(server, slack):
    server.expect_request(HOOK_PATH, method="POST").respond_with_data("ok")
    message = "*bold* _it_ ~gone~ `code` \"quoted\" 'single' é ü 😀 100% #chan @here: a|b"
    slack.send(_alert(message=message, key=message))
    attachment = posted_json(server)["attachments"][0]
    assert attachment["text"] == message
    assert attachment["fields"][0]["value"] == message


def test_our_own_italic_note_still_works_after_escaping(server, slack):
    server.expect_request(HOOK_PATH, method="POST").respond_with_data("ok")
    slack.send(Alert("disk_full", Level.WARNING, "<b> & done", at=FIXED_TIME, resolved=True, firing_for=42 * 60))
    body = posted_json(server)
    assert body["attachments"][0]["text"] == "&lt;b&gt; &amp; done\n_recovered after 42 min_"
    assert body["text"] == "RESOLVED disk_full: &lt;b&gt; &amp; done (recovered after 42 min)"


def test_a_lone_surrogate_is_replaced_not_sent(server, slack):
    server.expect_request(HOOK_PATH, method="POST").respond_with_data("ok")
    slack.send(_alert(message="bad \ud800 byte"))
    assert posted_json(server)["attachments"][0]["text"] == "bad \ufffd byte"


@pytest.mark.parametrize(("text", "limit", "expected"), [
    ("abc", 3, "abc"),
    ("abcd", 3, "ab…"),
    ("<", 4, "&lt;"),
    ("<", 3, "…"),  # an entity is never cut in half
    ("a&b", 7, "a&amp;b"),
    ("a&b", 6, "a…"),
    ("a&bc", 7, "a&amp;…"),
    ("😀😀😀", 6, "😀😀😀"),
    ("😀😀😀", 4, "😀…"),  # counted in UTF-16 units: each emoji is two
])
def test_fit_escapes_then_cuts_at_whole_characters_and_entities(text, limit, expected):
    assert fit(text, limit) == expected
    assert units(fit(text, limit)) <= limit


# --- at most 100 attachments a post --------------------------------------------------------------------------------

def _many(count: int) -> list[Alert]:
    return [Alert(f"svc{i}", Level.CRITICAL if i == count - 1 else Level.WARNING, f"svc{i} down",
                  {"i": i}, at=FIXED_TIME) for i in range(count)]


@pytest.mark.parametrize(("count", "sizes"), [
    (1, [1]),
    (99, [99]),
    (100, [100]),
    (101, [100, 1]),
    (150, [100, 50]),
    (250, [100, 100, 50]),
])
def test_a_group_is_split_into_complete_posts_of_at_most_100(server, count, sizes):
    server.expect_request(HOOK_PATH, method="POST").respond_with_data("ok")
    slack = SlackChannel("team", server.url_for(HOOK_PATH), username="bot", timeout=SHORT_TIMEOUT)
    alerts = _many(count)
    slack.send_many(alerts)
    bodies = [posted_json(server, index) for index in range(len(server.log))]
    assert [len(body["attachments"]) for body in bodies] == sizes
    titles = [attachment["title"] for body in bodies for attachment in body["attachments"]]
    assert titles == [f"{alert.tag} · {alert.event}" for alert in alerts]  # every alert once, in order
    for number, body in enumerate(bodies):
        assert body["username"] == "bot"
        first, last = number * 100 + 1, number * 100 + sizes[number]
        worst = "critical" if number == len(sizes) - 1 else "warning"
        head = f"alerts {first}–{last} of {count}" if len(sizes) > 1 else f"{count} alert" + "s" * (count > 1)
        lead = alerts[first - 1]
        assert body["text"].startswith(f"{head}, worst {worst}: {lead.tag} {lead.event}: {lead.message}")


def test_a_failed_later_post_is_resumed_not_repeated(server, slack):
    calls = []

    def flaky(request: Request) -> Response:
        calls.append(request.get_json())
        return Response("boom", status=500) if len(calls) == 2 else Response("ok")

    server.expect_request(HOOK_PATH, method="POST").respond_with_handler(flaky)
    alerts = _many(250)
    error = send_failure_many(slack, alerts)
    assert error.retryable is True
    assert "post 2 of 3" in error.message and "HTTP 500" in error.message
    assert SECRET not in error.message
    slack.send_many(alerts)  # the retry: posts 2 and 3 only
    delivered = [calls[0], calls[2], calls[3]]
    assert len(calls) == 4
    assert [a["title"] for body in delivered for a in body["attachments"]] == [
        f"{alert.tag} · {alert.event}" for alert in alerts]
    slack.send_many(alerts)  # done and forgotten: the same group again is a new message, sent whole
    assert len(calls) == 7


def test_a_failed_first_post_is_retried_whole(server, slack):
    calls = []

    def flaky(request: Request) -> Response:
        calls.append(request.get_json())
        return Response("boom", status=503) if len(calls) == 1 else Response("ok")

    server.expect_request(HOOK_PATH, method="POST").respond_with_handler(flaky)
    alerts = _many(150)
    error = send_failure_many(slack, alerts)
    assert "post " not in error.message
    slack.send_many(alerts)
    assert [len(body["attachments"]) for body in calls] == [100, 100, 50]


def test_a_later_post_refused_keeps_the_secret_out_and_is_not_retryable(server, slack):
    calls = []

    def refuse_second(request: Request) -> Response:
        calls.append(1)
        return echoing_handler(404)(request) if len(calls) == 2 else Response("ok")

    server.expect_request(HOOK_PATH, method="POST").respond_with_handler(refuse_second)
    error = send_failure_many(slack, _many(101))
    assert error.retryable is False
    assert "HTTP 404" in error.message and "post 2 of 2" in error.message
    assert SECRET not in error.message and SECRET not in str(error)


def send_failure_many(channel: SlackChannel, alerts: list[Alert]) -> DeliveryError:
    """The DeliveryError channel.send_many raises (fails the test if it does not raise one)."""
    with pytest.raises(DeliveryError) as caught:
        channel.send_many(alerts)
    return caught.value


# --- within Slack's documented limits (and our own caps) ------------------------------------------------------------

def assert_within_limits(body: dict) -> None:
    """Slack's documented limits (text 40,000; 100 attachments) and our caps for what Slack leaves open."""
    module = slack_module
    assert units(body["text"]) <= 40_000
    assert 1 <= len(body["attachments"]) <= 100
    for attachment in body["attachments"]:
        assert units(attachment["fallback"]) <= module.MAX_FALLBACK
        assert units(attachment["title"]) <= module.MAX_TITLE
        assert units(attachment["text"]) <= module.MAX_ATTACHMENT_TEXT
        assert units(attachment["footer"]) <= module.MAX_FOOTER
        assert len(attachment["fields"]) <= module.MAX_FIELDS
        for field in attachment["fields"]:
            assert units(field["title"]) <= module.MAX_FIELD_TITLE
            assert units(field["value"]) <= module.MAX_FIELD_VALUE
    assert "blocks" not in body
    assert_no_control_sequences(body)


def _huge(index: int = 0) -> Alert:
    context = {f"key{i} " + "<" * 500: "&" * 5000 + "😀" * 10 for i in range(1000)}
    return Alert(f"huge{index}" + ">" * 150, Level.ERROR, "😀&<" * 30_000, context, at=FIXED_TIME,
                 resolved=True, firing_for=3600)


def test_a_huge_alert_stays_within_every_limit(server, slack):
    server.expect_request(HOOK_PATH, method="POST").respond_with_data("ok")
    slack.send(_huge())
    body = posted_json(server)
    assert_within_limits(body)
    attachment = body["attachments"][0]
    assert attachment["text"].endswith("…\n_recovered after 1 h_")
    assert len(attachment["fields"]) == 50
    assert attachment["fields"][-1]["value"].startswith("951 more context items not shown")
    assert attachment["fields"][0]["title"].startswith("key0 &lt;&lt;")


def test_a_huge_group_stays_within_every_limit_in_every_post(server, slack):
    server.expect_request(HOOK_PATH, method="POST").respond_with_data("ok")
    alerts = [Alert(f"svc{i}", Level.WARNING, "&" * 3000, {"k": "<" * 3000}, at=FIXED_TIME) for i in range(150)]
    slack.send_many(alerts)
    assert len(server.log) == 2
    for index in range(2):
        body = posted_json(server, index)
        assert_within_limits(body)
        assert body["text"].endswith("…")  # 100 × 3000 escaped characters do not fit in one text
    assert [len(slack.payloads(alerts)[i]["attachments"]) for i in range(2)] == [100, 50]


def test_payloads_of_huge_alerts_stay_within_limits_without_posting(slack):
    for body in slack.payloads([_huge(i) for i in range(3)]):
        assert_within_limits(body)
