"""Message templates: `title_template` / `body_template` per channel, in Jinja2's sandbox, checked when settings load."""
from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone

import pytest

from tray_alerts import templates
from tray_alerts.channels import build_channel
from tray_alerts.channels.alertmanager import AlertShape
from tray_alerts.channels.base import SettingError
from tray_alerts.channels.desktop import notify_arguments
from tray_alerts.channels.email import EmailChannel
from tray_alerts.channels.slack import SlackChannel
from tray_alerts.channels.sms import MAX_BODY, SmsChannel, length
from tray_alerts.channels.webhook import payload
from tray_alerts.model import Alert, Level
from tray_alerts.templates import FIELDS, PLAIN, TemplateProblem, Wording, fields, wording

SID = "AC0123456789abcdef0123456789abcdef"
BEGAN = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


def firing(**context) -> Alert:
    return Alert("disk_full", Level.CRITICAL, "disk at 95% on /var", {"mount": "/var", **context},
                 at=BEGAN, episode="5eed0000cafe0001", since=BEGAN)


def recovery() -> Alert:
    return Alert("disk_full", Level.CRITICAL, "disk back to 70%", at=BEGAN + timedelta(minutes=42), resolved=True,
                 firing_for=2520.0, episode="5eed0000cafe0001", since=BEGAN)


def words(title: str = "", body: str = "", allowed=("title", "body")) -> Wording:
    options = {**({"title_template": title} if title else {}), **({"body_template": body} if body else {})}
    return wording("test", options, allowed)


# --- the fields ---------------------------------------------------------------------------------------------------

def test_every_documented_field_is_given_and_no_other():
    assert set(fields(firing(), "T", "B")) == set(FIELDS)


def test_fields_of_a_firing_and_its_recovery_name_the_same_incident():
    fire, back = fields(firing(), "T", "B", host="laptop"), fields(recovery(), "T", "B", host="laptop")
    assert (fire["status"], back["status"]) == ("firing", "resolved")
    assert fire["fingerprint"] == back["fingerprint"] == "5eed0000cafe0001"
    assert fire["since_iso"] == back["since_iso"] == "2026-03-01T09:00:00+00:00"
    assert (fire["firing_for"], back["firing_for"]) == ("", "42 min")
    assert (fire["tag"], back["tag"], back["level"]) == ("CRITICAL", "RESOLVED", "critical")
    assert fire["context"] == {"mount": "/var"} and fire["host"] == "laptop"
    assert back["context"]["mount"] == ""  # a key this alert lacks reads as empty


def test_a_template_renders_the_fields():
    rendered = words(title="{{ level|upper }} {{ event }} on {{ host }}",
                     body="{{ message }} ({{ context.mount }}), incident {{ fingerprint }} since {{ since_iso }}")
    alert = firing()
    assert rendered.title(alert, "own") == f"CRITICAL disk_full on {fields(alert, '', '')['host']}"
    assert rendered.body(alert, "own") == \
        "disk at 95% on /var (/var), incident 5eed0000cafe0001 since 2026-03-01T09:00:00+00:00"


def test_title_and_body_hold_the_channels_own_text_so_a_template_can_add_to_it():
    rendered = words(body="{{ body }}\nrunbook: https://wiki.example/{{ event }}")
    assert rendered.body(firing(), "disk at 95%") == "disk at 95%\nrunbook: https://wiki.example/disk_full"


def test_a_recovery_can_say_which_incident_it_ends():
    rendered = words(body="{% if status == 'resolved' %}ended {{ fingerprint }} after {{ firing_for }}"
                          "{% else %}{{ message }}{% endif %}")
    assert rendered.body(recovery(), "") == "ended 5eed0000cafe0001 after 42 min"
    assert rendered.body(firing(), "") == "disk at 95% on /var"


# --- checked when settings load -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, problem", [
    ("{{ evnt }}", "unknown field 'evnt' (fields: event, level,"),
    ("{{ event ", "line 1: unexpected end of template"),
    ("{% if level %}x", "line 1: Unexpected end of template"),
    ("{{ ''.__class__.__mro__ }}", "not allowed in a template: access to attribute '__class__'"),
    ("{{ message.__init__.__globals__ }}", "not allowed in a template"),
    ("{{ context.update(x=1) }}", "not allowed in a template"),
    ("{{ 'x' * 100000000 }}", "not allowed in a template: repeating text or a list past 10000 items"),
    ("{{ 9 ** 99999999 }}", "not allowed in a template: power too large"),
    # what a careful reviewer tried: each hung or took ~1 GB before the bounds
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "took longer than 1 s"),
    ("{{ lipsum(100000) }}", "unknown field 'lipsum'"),
    ("{% set ns = namespace(n=2) %}", "unknown field 'namespace'"),
    ("{{ (((10**64)**64)**64)**64 > 1 }}", "power too large"),
    ("{{ 'x'|center(10**9) }}", "width past 10000"),
    ("{{ 'x'.center(10**9) }}", "width past 10000"),
    ("{{ 'x'.zfill(10**9) }}", "width past 10000"),
    ("{{ '{:>999999999}'.format('x') }}", "format width past 10000"),
    ("{{ '{0:{1}}'.format('x', 10**9) }}", "format width past 10000"),
    ("{{ '%999999999s' % 'x' }}", "format width past 10000"),
    ("{{ '%*s' % (10**9, 'x') }}", "format width past 10000"),
    ("{{ '%999999999s'|format('x') }}", "format width past 10000"),
    ("{{ 'a\nb'|indent(10**9) }}", "width past 10000"),
    ("{{ ('x' * 10000).replace('x', 'y' * 10000) }}", "replacing would make text past 100000"),
    ("{{ ('x' * 10000)|replace('x', 'y' * 10000) }}", "replacing would make text past 100000"),
    ("{% macro f(s, n) %}{{ f(s ~ s, n - 1) if n else s|length }}{% endmacro %}{{ f('x', 40) }}",
     "macro is not allowed in a message template"),
    ("{{ context.size / 1024 }}", "TypeError"),  # the samples lack `size`: a template must cope with that
])
def test_a_bad_or_costly_template_is_a_problem_naming_the_key(text, problem):
    with pytest.raises(TemplateProblem) as caught:
        words(body=text)
    assert caught.value.key == "body_template"
    assert problem.lower() in caught.value.problem.lower()
    assert "\n" not in caught.value.problem


def test_a_template_for_a_part_the_channel_lacks_is_refused():
    with pytest.raises(TemplateProblem) as caught:
        words(title="{{ event }}", allowed=("body",))
    assert (caught.value.key, caught.value.problem) == \
        ("title_template", "this channel has no title; it takes body_template")


def test_build_channel_turns_a_template_problem_into_a_setting_error_naming_the_key():
    with pytest.raises(SettingError) as caught:
        build_channel("pager", "sms", {"account_sid": SID, "auth_token": "t", "from": "+1555", "to": "+1556",
                                       "title_template": "{{ event }}"})
    assert caught.value.key == "title_template"


def test_no_templates_is_the_plain_wording():
    assert words() is PLAIN
    assert wording("x", {"title_template": "  ", "body_template": ""}, ("title", "body")) is PLAIN


# --- when a template fails on a real alert: the channel's own text, and a line saying so ------------------------

def test_a_template_that_fails_on_one_alert_falls_back_to_the_channels_text(caplog):
    rendered = words(body="{{ context.size / 1024 if context.size else '' }}")
    alert = Alert("load_high", Level.WARNING, "load 9", {"size": "big"})  # a size the samples never had
    with caplog.at_level(logging.WARNING, logger="tray_alerts.templates"):
        assert rendered.body(alert, "load 9 (own text)") == "load 9 (own text)"
    assert "channel test: body_template failed for load_high" in caplog.text
    assert "sent the default text" in caplog.text


# --- the defaults reproduce today's messages --------------------------------------------------------------------

IDENTITY = {"title_template": "{{ title }}", "body_template": "{{ body }}"}


@pytest.mark.parametrize("alert", [firing(), recovery()], ids=["firing", "recovery"])
def test_title_and_body_templates_of_the_own_text_change_no_channel(alert):
    assert notify_arguments(alert, wording=wording("d", IDENTITY, ("title", "body"))) == notify_arguments(alert)

    slack = SlackChannel("s", "https://hooks.slack.com/services/T/B/x")
    templated = build_channel("s", "slack", {"webhook_url": "https://hooks.slack.com/services/T/B/x", **IDENTITY})
    assert templated.payload(alert) == slack.payload(alert)

    mail = EmailChannel("m", "127.0.0.1", 25, "none", "a@example.org", ["b@example.org"])
    templated_mail = build_channel("m", "email", {"host": "127.0.0.1", "port": "25", "security": "none",
                                                  "from": "a@example.org", "to": "b@example.org", **IDENTITY})
    for key in ("Subject", "Message-ID", "In-Reply-To"):
        assert templated_mail.message(alert)[key] == mail.message(alert)[key]
    assert templated_mail.message(alert).get_content() == mail.message(alert).get_content()

    sms_options = {"account_sid": SID, "auth_token": "t", "from": "+1555", "to": "+1556"}
    sms = build_channel("p", "sms", sms_options)
    assert build_channel("p", "sms", {**sms_options, "body_template": "{{ body }}"}).text(alert) == sms.text(alert)

    shape = AlertShape()
    assert shape.annotations(alert, wording("a", IDENTITY, ("title", "body"))) == shape.annotations(alert)


def test_the_log_line_follows_the_body_template(tmp_path):
    path = tmp_path / "alerts.log"
    channel = build_channel("log", "log", {"file": str(path), "body_template": "{{ tag }} {{ message }}\n#{{ fingerprint }}"})
    channel.send(firing())
    channel.close()
    assert path.read_text().rstrip().endswith("disk_full: CRITICAL disk at 95% on /var #5eed0000cafe0001")


# --- per channel: the template's text, within each channel's rules -------------------------------------------------

def test_slack_escapes_what_a_template_renders():
    channel = build_channel("s", "slack", {"webhook_url": "https://hooks.slack.com/services/T/B/x",
                                           "title_template": "{{ message }}", "body_template": "{{ message }} & co"})
    (attachment,) = channel.payload(Alert("x", Level.ERROR, "<!channel> <https://evil.example|click>")).get(
        "attachments")
    assert attachment["title"] == "&lt;!channel&gt; &lt;https://evil.example|click&gt;"
    assert attachment["text"] == "&lt;!channel&gt; &lt;https://evil.example|click&gt; &amp; co"


def test_sms_keeps_a_templated_body_within_twilios_limit():
    channel = build_channel("p", "sms", {"account_sid": SID, "auth_token": "t", "from": "+1555", "to": "+1556",
                                         "body_template": "{{ message }} {{ 'x' * 5000 }}"})
    text = channel.text(firing())
    assert length(text) == MAX_BODY and text.endswith("...")


def test_email_subject_from_a_template_is_one_line():
    channel = build_channel("m", "email", {"host": "h", "to": "b@example.org",
                                           "title_template": "{{ tag }}\n{{ event }}  on {{ host }}"})
    assert channel.message(firing())["Subject"].startswith("CRITICAL disk_full on ")


def test_the_webhook_gains_title_and_body_when_templated():
    rendered = words(title="{{ tag }}: {{ event }}", body="{{ message }}")
    body = payload(firing(), "laptop", rendered)
    assert (body["title"], body["body"]) == ("CRITICAL: disk_full", "disk at 95% on /var")
    assert "title" not in payload(firing(), "laptop")
    json.dumps(body)  # still JSON


def test_alertmanager_summary_and_description_follow_the_templates():
    rendered = words(title="{{ event }} on {{ host }}", body="{{ body }}\nsee {{ context.mount }}")
    annotations = AlertShape().annotations(firing(), rendered)
    assert annotations["summary"].startswith("disk_full on ")
    assert annotations["description"] == "mount: /var\nsee /var"


def test_the_readmes_multi_line_template_works_from_a_settings_file(tmp_path):
    from tray_alerts.config import load_settings
    from tray_alerts.wiring import build_channels

    path = tmp_path / "settings.ini"
    path.write_text("[channel.slack]\nwebhook_url = https://hooks.slack.com/services/T/B/x\n"
                    "title_template = {{ tag }} {{ event }} on {{ host }}\n"
                    "body_template = {{ body }}\n    runbook: https://wiki.example/runbooks/{{ event }}\n")
    channel = build_channels(load_settings(path)).ready["slack"]
    (attachment,) = channel.payload(firing())["attachments"]
    assert attachment["title"].startswith("CRITICAL disk_full on ")
    assert attachment["text"] == "disk at 95% on /var\nrunbook: https://wiki.example/runbooks/disk_full"


def test_a_long_rendering_stops_at_the_output_cap_instead_of_filling_memory():
    from tray_alerts.template_sandbox import MAX_RENDERED

    rendered = words(body="{% for i in range(10000) %}{{ 'x' * 10000 }}{% endfor %}")  # 100 MB if let run
    text = rendered.body(firing(), "own")
    assert len(text) == MAX_RENDERED and text.endswith("…")


def test_ordinary_formatting_still_works():
    rendered = words(body="{{ '%.1f'|format(95.25) }} {{ '%5s|'|format('ab') }} {{ '{:>6}'.format('ab') }} "
                          "{{ context.mount|replace('/', ' ') }} {{ 'ab'|center(6) }}|")
    assert rendered.body(firing(), "") == "95.2    ab|     ab  var   ab  |"


# --- what a reviewer caught: no template, no change; one template, only its part changes --------------------------

def test_without_templates_the_log_line_and_the_subject_are_as_before(tmp_path):
    path = tmp_path / "alerts.log"
    channel = build_channel("log", "log", {"file": str(path)})
    alert = Alert("ev", Level.ERROR, "line1\nline2", {"k": "a\nb"})
    channel.send(alert)
    channel.close()
    assert f"ev: {alert.format()}" in path.read_text()  # as the channel always wrote it, lines and all
    mail = build_channel("m", "email", {"host": "h", "to": "b@example.org"})
    assert mail.message(Alert("disk  full", Level.ERROR, "m"))["Subject"] == "[ERROR] disk  full: m"


def test_the_webhook_adds_only_the_templated_key():
    assert "body" not in payload(firing(), "laptop", words(title="{{ event }}"))
    assert "title" not in payload(firing(), "laptop", words(body="{{ event }}"))


def test_slack_with_only_a_title_template_keeps_its_own_text_and_note():
    plain = SlackChannel("s", "https://hooks.slack.com/services/T/B/x")
    titled = build_channel("s", "slack", {"webhook_url": "https://hooks.slack.com/services/T/B/x",
                                          "title_template": "{{ event }} ended"})
    (own,) = plain.payload(recovery())["attachments"]
    (changed,) = titled.payload(recovery())["attachments"]
    assert changed["text"] == own["text"] and "_recovered after 42 min" in own["text"]
    assert changed["title"] == "disk_full ended"
    assert "_" not in changed["fallback"].replace("disk_full", "")  # plain text, no mrkdwn
