from pathlib import Path

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


def test_default_port_is_outside_the_ephemeral_range(monkeypatch, tmp_path):
    """Linux hands out 32768-60999 to outgoing connections: one of them could hold the API's port at start."""
    from tray_alerts.config import DEFAULT_API_PORT

    monkeypatch.delenv("TRAY_ALERTS_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert load_settings(None, {}).api_port == DEFAULT_API_PORT == 9977
    services = Path("/etc/services")
    if services.is_file():
        assert not any(line.split()[1:2] == [f"{DEFAULT_API_PORT}/tcp"] for line in services.read_text().splitlines()
                       if line.strip() and not line.startswith("#"))


def test_retention_keys_and_their_defaults(monkeypatch, tmp_path):
    monkeypatch.delenv("TRAY_ALERTS_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    defaults = load_settings(None, {})
    assert defaults.history_max_age == 30 * 86400 and defaults.history_max_rows == 100_000
    custom = load_settings(write(tmp_path, "[alerts]\nhistory_max_age = 7d\nhistory_max_rows = 5000\n"), {})
    assert custom.history_max_age == 7 * 86400 and custom.history_max_rows == 5000


@pytest.mark.parametrize("text, expected", [
    ("history_max_age = soon", "[alerts] history_max_age: not a duration: 'soon'"),
    ("history_max_age = 0", "[alerts] history_max_age: must be more than zero"),
    ("history_max_age = 400d", "[alerts] history_max_age: longer than a year"),
    ("history_max_rows = many", "[alerts] history_max_rows: not a whole number: 'many'"),
    ("history_max_rows = -5", "[alerts] history_max_rows: not a whole number: '-5'"),
    ("history_max_rows = 0", "[alerts] history_max_rows: must be at least 1: '0'"),
    ("api_port = 70000", "[alerts] api_port: not a port number (1-65535): '70000'"),
])
def test_alerts_values_give_one_line(tmp_path, text, expected):
    path = write(tmp_path, f"[alerts]\n{text}\n")
    message = error_of(path)
    assert message == f"{path} {expected}" or (message.startswith(f"{path} {expected}") and "\n" not in message)


def test_the_quick_reader_agrees_with_the_full_one(tmp_path):
    """`tray-alerts raise` reads only [alerts] (settings_file.load_alerts): the same values as load_settings."""
    from tray_alerts.settings_file import load_alerts

    path = write(tmp_path, "[alerts]\nstate_dir = ~/x\napi_port = 9123\ndelivery_timeout = 1m\nhistory_max_rows = 7\n")
    quick, full = load_alerts(path, {}), load_settings(path, {})
    for key in ("state_dir", "log_file", "log_level", "delivery_timeout", "api_port", "history_max_age",
                "history_max_rows", "files"):
        assert getattr(quick, key) == getattr(full, key), key
    assert (quick.retry_backoff, quick.retry_backoff_max, quick.delivery_expiry) == (
        full.retry.first, full.retry.longest, full.retry.expiry)


def test_engine_gets_the_retention_settings(tmp_path):
    from tray_alerts import wiring

    settings = load_settings(write(tmp_path, f"[alerts]\nstate_dir = {tmp_path / 'state'}\nhistory_max_age = 2d\n"
                                              "history_max_rows = 10\n[channel.desktop]\nenabled = no\n"), {})
    engine = wiring.build_engine(settings, wiring.ChannelSet({}, {}), retry_in_background=False)
    try:
        assert (engine.history_max_age, engine.history_max_rows) == (172800.0, 10)
    finally:
        engine.close()


def test_a_monitors_depends_on_reaches_the_engine_and_inhibits_its_alert(tmp_path):
    from tray_alerts import wiring

    log_file = tmp_path / "alerts.log"
    settings = load_settings(write(tmp_path, f"""[alerts]
state_dir = {tmp_path / 'state'}
[channel.desktop]
enabled = no
[channel.file]
type = log
path = {log_file}
[routing]
error = file, desktop
[monitor.router]
type = tcp
host = 127.0.0.1
port = 9
[monitor.nas]
type = tcp
host = 127.0.0.1
port = 10
depends_on = router, vpn
"""), {})
    assert settings.monitors["nas"].depends_on == ("router", "vpn") and settings.monitors["router"].depends_on == ()
    engine = wiring.build_engine(settings, retry_in_background=False)
    try:
        assert engine.dependencies == {"nas": ("router", "vpn")} and {"file", "log"} <= engine.log_channels
        engine.raise_alert("router", "error", "no route")
        assert engine.raise_alert("nas", "error", "refused").record.inhibited_by == "router"
    finally:
        engine.close()


@pytest.mark.parametrize("text, enabled, host, port", [
    ("", False, "127.0.0.1", 9978), ("[metrics]\nenabled = yes\n", True, "127.0.0.1", 9978),
    ("[metrics]\nenabled = yes\naddress = 192.168.1.5:9100\n", True, "192.168.1.5", 9100),
    ("[metrics]\naddress = [::1]:9978\n", False, "::1", 9978)])
def test_metrics_are_off_by_default_and_listen_on_loopback(tmp_path, monkeypatch, text, enabled, host, port):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    metrics = load_settings(write(tmp_path, text), {}).metrics
    assert (metrics.enabled, metrics.host, metrics.port) == (enabled, host, port)
    assert metrics.address == (f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
