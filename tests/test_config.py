import pytest

from tray_alerts.config import ConfigError, load_settings
from tray_alerts.model import Level
from tray_alerts.values import parse_duration


def write(tmp_path, text: str, name: str = "settings.ini"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path, environ=None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ or {})
    return str(caught.value)


def test_packaged_defaults_alone(monkeypatch, tmp_path):
    monkeypatch.delenv("TRAY_ALERTS_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    settings = load_settings(None, {})
    assert settings.routing.routes[Level.CRITICAL] == ("log", "desktop", "slack", "email", "sms")
    assert settings.routing.routes[Level.INFO] == ("log", "desktop")
    assert settings.delivery_timeout == 10 and settings.user_file is None
    assert settings.channels["slack"].options["webhook_url"] == ""


def test_user_file_is_layered_and_env_substituted(tmp_path):
    path = write(tmp_path, "[alerts]\nstate_dir = ~/x\ndelivery_timeout = 1m\n"
                           "[routing]\nwarning = log, ops\n"
                           "[channel.ops]\ntype = slack\nwebhook_url = ${HOOK}\n"
                           "[channel.log]\nfile = ${LOGDIR:-/tmp}/alerts.log\n")
    settings = load_settings(path, {"HOOK": "https://hooks.example/T/B/x"})
    assert settings.user_file == path and settings.delivery_timeout == 60
    assert settings.state_dir.name == "x" and "~" not in str(settings.state_dir)
    assert settings.routing.routes[Level.WARNING] == ("log", "ops")
    assert settings.routing.routes[Level.ERROR] == ("log", "desktop", "slack", "email")
    assert settings.channels["ops"].type == "slack"
    assert settings.channels["ops"].options["webhook_url"] == "https://hooks.example/T/B/x"
    assert settings.channels["log"].options["file"] == "/tmp/alerts.log"


def test_environment_variable_names_the_file(tmp_path, monkeypatch):
    path = write(tmp_path, "[alerts]\nlog_level = debug\n")
    monkeypatch.setenv("TRAY_ALERTS_CONFIG", str(path))
    assert load_settings().log_level == "debug"


@pytest.mark.parametrize("text, expected", [
    ("[routing]\ncritical = log, smss\n",
     "[routing] critical: unknown channel 'smss' (known: log, desktop, slack, email, sms)"),
    ("[routing]\ncritcal = log\n", "[routing] critcal: unknown level 'critcal' (allowed: info, warning"),
    ("[alerts]\ndelivery_timeout = soon\n", "[alerts] delivery_timeout: not a duration: 'soon'"),
    ("[alerts]\ndelivery_timeout = 0\n", "[alerts] delivery_timeout: must be more than zero"),
    ("[alerts]\nlog_level = loud\n", "[alerts] log_level: unknown log level 'loud'"),
    ("[alerts]\nstate_dri = /x\n", "[alerts] state_dri: unknown key"),
    ("[alrets]\n", "[alrets]: unknown section"),
    ("[channel.pager]\ntype = pagerduty\n", "[channel.pager] type: unknown channel type 'pagerduty'"),
    ("[channel.pager]\n", "[channel.pager]: unknown channel type 'pager'"),
    ("[channel.log]\nenabled = perhaps\n", "[channel.log] enabled: not yes or no: 'perhaps'"),
    ("key = value\n", "line 1: text before the first [section]"),
    ("[alerts]\n[alerts]\n", "[alerts]: line 2: section appears twice"),
    ("[alerts]\nlog_level = info\nlog_level = debug\n", "[alerts] log_level: line 3: key appears twice"),
    ("[alerts]\njust words\n", "line 2: not `key = value`"),
])
def test_errors_name_file_section_key_and_problem(tmp_path, text, expected):
    path = write(tmp_path, text)
    message = error_of(path)
    assert message.startswith(str(path)) and expected in message and "\n" not in message


def test_binary_and_huge_files_give_one_clear_line(tmp_path):
    assert "binary data" in error_of(write(tmp_path, "[alerts]\n\0\0", "bin.ini"))
    bad = tmp_path / "latin.ini"
    bad.write_bytes(b"[alerts]\nlog_level = \xff\xfe\n")
    assert "not UTF-8" in error_of(bad)
    huge = tmp_path / "huge.ini"
    huge.write_bytes(b"; padding\n" * 1_100_000)
    assert "file too large" in error_of(huge)


def test_missing_explicit_file(tmp_path):
    assert "file not found (given by --config)" in error_of(tmp_path / "nope.ini")


def test_channel_value_errors_name_the_key(tmp_path):
    from tray_alerts.wiring import build_channels

    path = write(tmp_path, "[channel.email]\nhost = smtp.example\nto = a@example\nsecurity = tls\n")
    with pytest.raises(ConfigError, match=r"\[channel.email\] security: must be one of starttls, ssl, none"):
        build_channels(load_settings(path, {}))


def test_channels_with_empty_required_values_are_not_configured(tmp_path):
    from tray_alerts.wiring import build_channels

    path = write(tmp_path, "[alerts]\nstate_dir = %s\n[channel.desktop]\nenabled = no\n" % tmp_path)
    channels = build_channels(load_settings(path, {}))
    assert set(channels.ready) == {"log"}
    assert channels.unavailable["slack"] == "not configured: webhook_url is empty"
    assert channels.unavailable["desktop"].startswith("switched off")


@pytest.mark.parametrize("text, seconds", [("30", 30), ("30s", 30), ("500ms", 0.5), ("5m", 300), ("2h", 7200),
                                           ("1d", 86400), (" 1.5 S ", 1.5)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_webhook_url_and_header_values_are_masked_as_secrets(tmp_path):
    from tray_alerts.redact import redact
    from tray_alerts.wiring import build_channels

    path = write(tmp_path, "[channel.hook]\ntype = webhook\nurl = https://ntfy.example/alerts-Zq81kPwx\n"
                           "headers = Authorization: Bearer tok-93jfk2lq\n")
    build_channels(load_settings(path, {}))
    assert redact("POST https://ntfy.example/alerts-Zq81kPwx failed") == "POST *** failed"
    assert "tok-93jfk2lq" not in redact("sent Authorization: Bearer tok-93jfk2lq")
