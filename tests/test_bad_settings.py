"""Broken settings files, run through the real command line: `tray-alerts --config FILE check-config` must exit 2
with exactly one line on stderr that starts with `tray-alerts: `, names the file (and the section and key where
the problem is in one), shows no traceback, and prints nothing on stdout.

The corpus is tests/data/bad_settings/ (one small file per mistake, named after it); files too big or too odd to
commit (10 MB, random bytes, a folder, an unreadable file) are made here in tmp_path.
"""
from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

CORPUS_DIR = Path(__file__).parent / "data" / "bad_settings"
CORPUS = sorted(CORPUS_DIR.glob("*.ini"))
TIMEOUT = 60

# What follows the file name in the error line, for every corpus file: ` [section] key: problem` where the
# problem is in a section or key, `: problem` where it is the file as a whole.
EXPECTED = {
    "alertmanager_labels_bad_name.ini": " [channel.am] labels: not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*,"
                                        " no leading __): 'free%'",
    "alertmanager_refresh_not_a_duration.ini": " [channel.am] refresh: not a duration: 'often'",
    "alerts_api_port_env_fallback_bad.ini": " [alerts] api_port: not a port number (1-65535): 'eighty'",
    "alerts_api_port_float.ini": " [alerts] api_port: not a port number",
    "alerts_api_port_negative.ini": " [alerts] api_port: not a port number",
    "alerts_api_port_not_a_number.ini": " [alerts] api_port: not a port number",
    "alerts_api_port_too_big.ini": " [alerts] api_port: not a port number (1-65535): '70000'",
    "alerts_api_port_unclosed_env_reference.ini": " [alerts] api_port: not a port number",
    "alerts_api_port_zero.ini": " [alerts] api_port: not a port number (1-65535): '0'",
    "alerts_delivery_expiry_unknown_unit.ini": " [alerts] delivery_expiry: not a duration: '3 weeks'",
    "alerts_delivery_timeout_not_a_duration.ini": " [alerts] delivery_timeout: not a duration: 'soon'",
    "alerts_delivery_timeout_zero.ini": " [alerts] delivery_timeout: must be more than zero",
    "alerts_log_level_unknown.ini": " [alerts] log_level: unknown log level 'loud'",
    "alerts_retry_backoff_negative.ini": " [alerts] retry_backoff: not a duration: '-5s'",
    "alerts_resume_grace_negative.ini": " [alerts] resume_grace: not a duration: '-2m'",
    "alerts_resume_grace_not_a_duration.ini": " [alerts] resume_grace: not a duration: 'a while'",
    "alerts_resume_grace_too_long.ini": " [alerts] resume_grace: at most 1 h (monitors judge no bad reading during"
                                        " it): '3h'",
    "alerts_unknown_key.ini": " [alerts] state_dri: unknown key",
    "binary_garbage.ini": ": binary data, not a settings file",
    "channel_blank_name.ini": " [channel.   ]: unknown section",
    "channel_empty_name.ini": " [channel.]: unknown section",
    "channel_enabled_not_a_boolean.ini": " [channel.log] enabled: not yes or no: 'perhaps'",
    "channel_max_per_minute_not_a_number.ini": " [channel.log] max_per_minute: not a whole number: 'ten'",
    "channel_quiet_allows_unknown_level.ini": " [channel.email] quiet_allows: unknown level 'urgent' (allowed: info,"
                                              " warning, error, critical), or none",
    "channel_quiet_allows_without_quiet_hours.ini": " [channel.email] quiet_allows: needs quiet_hours (a window like"
                                                    " 22:00-07:00) in the same section",
    "channel_quiet_hours_empty_window.ini": " [channel.email] quiet_hours: starts and ends at the same time:"
                                            " '07:00-07:00'",
    "channel_quiet_hours_not_a_time_of_day.ini": " [channel.email] quiet_hours: not a time of day (00:00 to 23:59):"
                                                 " '22:00-25:00'",
    "channel_quiet_hours_not_a_window.ini": " [channel.email] quiet_hours: not a window like 22:00-07:00: '22-7'",
    "channel_name_is_not_a_type.ini": " [channel.pager]: unknown channel type 'pager'",
    "channel_unknown_type.ini": " [channel.pager] type: unknown channel type 'pagerduty'",
    "desktop_sound_not_a_theme_name.ini": " [channel.desktop] sound_critical: not a sound name from the freedesktop"
                                          " sound theme (like dialog-warning or alarm-clock-elapsed):"
                                          " '/usr/share/sounds/alarm.oga'",
    "desktop_timeout_not_a_duration.ini": " [channel.desktop] timeout: not a duration: 'forever'",
    "duplicate_key.ini": " [alerts] log_level: line 3: key appears twice",
    "duplicate_key_different_case.ini": " [routing] info: line 3: key appears twice",
    "duplicate_section.ini": " [alerts]: line 7: section appears twice",
    "email_port_not_a_number.ini": " [channel.email] port: not a port number: 'smtp'",
    "email_port_out_of_range.ini": " [channel.email] port: not a port number: '99999'",
    "email_security_tls.ini": " [channel.email] security: must be one of starttls, ssl, none, not 'tls'",
    "email_verify_not_a_boolean.ini": " [channel.email] verify: not yes or no: 'sometimes'",
    "key_with_terminal_escape_sequence.ini": " [alerts] log\\x1b[31mlevel: unknown key",
    "line_not_key_value.ini": ": line 2: not `key = value`: 'just some words'",
    "metrics_address_without_host.ini": " [metrics] address: not HOST:PORT (e.g. 127.0.0.1:9978, [::1]:9978): '9978'",
    "metrics_enabled_not_a_boolean.ini": " [metrics] enabled: not yes or no: 'maybe'",
    "metrics_unknown_key.ini": " [metrics] port: unknown key (known: enabled, address)",
    "missing_section_header.ini": ": line 1: text before the first [section]",
    "monitor_bad_regex.ini": " [monitor.syncthing] pattern: not a regular expression",
    "monitor_command_unbalanced_quote.ini": " [monitor.fsck] command: cannot be split into words",
    "monitor_depends_on_itself.ini": " [monitor.a] depends_on: a monitor cannot depend on itself ('a')",
    "monitor_depends_on_loop.ini": " [monitor.a] depends_on: monitors depend on each other in a loop: a -> b -> a",
    "monitor_empty_name.ini": " [monitor.]: unknown section",
    "monitor_enabled_not_a_boolean.ini": " [monitor.mem] enabled: not yes or no: 'maybe'",
    "monitor_failures_before_alert_zero.ini": " [monitor.mem] failures_before_alert: must be a whole number",
    "monitor_heartbeat_without_max_age.ini": " [monitor.nightly] max_age: required",
    "monitor_http_expect_bad_status.ini": " [monitor.api] expect: not a status like 200 or 2xx: 'ok'",
    "monitor_http_url_not_http.ini": " [monitor.api] url: must start with http:// or https://",
    "monitor_hysteresis_negative.ini": " [monitor.mem] hysteresis: must not be negative",
    "monitor_interval_not_a_duration.ini": " [monitor.mem] interval: not a duration: 'hourly'",
    "monitor_level_unknown.ini": " [monitor.pg] level: unknown level 'severe'",
    "monitor_load_period_bad.ini": " [monitor.load] period: must be 1, 5 or 15",
    "monitor_no_thresholds.ini": " [monitor.mem] warning: set at least one of warning, error, critical",
    "monitor_process_name_and_pattern.ini": " [monitor.syncthing] name: set either name",
    "monitor_tcp_port_out_of_range.ini": " [monitor.pg] port: must be a port number from 1 to 65535",
    "monitor_threshold_not_a_number.ini": " [monitor.mem] warning: not a number: 'ninety'",
    "monitor_thresholds_out_of_order.ini": " [monitor.disk_tmp] error: must not be below warning (95)",
    "monitor_unknown_channel.ini": " [monitor.mem] channels: unknown channel 'pager'",
    "monitor_unknown_key.ini": " [monitor.mem] warnign: unknown key",
    "monitor_unknown_type.ini": " [monitor.ping_router] type: unknown monitor type 'ping'",
    "monitor_without_type.ini": " [monitor.disk_home] type: type is missing",
    "not_utf8_latin1.ini": ": not UTF-8 text (byte ",
    "only_open_bracket.ini": ": line 1: text before the first [section]",
    "png_image_renamed.ini": ": binary data, not a settings file",
    "reminders_not_a_duration.ini": " [reminders] critical: not a duration: 'hourly'",
    "reminders_unknown_level.ini": " [reminders] severe: unknown level 'severe'",
    "routing_numeric_level.ini": " [routing] 3: unknown level '3'",
    "routing_unknown_channel.ini": " [routing] critical: unknown channel 'smss' (known: log, desktop, slack, email, sms)",
    "routing_unknown_level.ini": " [routing] critcal: unknown level 'critcal' (allowed: info, warning, error, critical)",
    "routing_value_unknown_channel_after_env.ini": " [routing] error: unknown channel 'pagerduty'",
    "section_name_with_carriage_return.ini": " [alerts\\rmore]: unknown section",
    "sms_api_url_not_http.ini": " [channel.sms] api_url: not an http(s) URL",
    "sms_max_per_hour_not_a_number.ini": " [channel.sms] max_per_hour: not a whole number: 'lots'",
    "slack_webhook_url_not_http.ini": " [channel.slack] webhook_url: not an http(s) URL",
    "unclosed_section_header.ini": ": line 1: text before the first [section]",
    "unknown_section.ini": " [alrets]: unknown section",
    "unknown_section_wrong_case.ini": " [Routing]: unknown section",
    "utf16_with_bom.ini": ": binary data, not a settings file",
    "webhook_header_without_colon.ini": " [channel.hook] headers: each header must be `Name: value`",
    "sms_account_sid_wrong_shape.ini": " [channel.sms] account_sid: not an Account SID (AC and 32 hex digits)",
    "email_separately_not_yes_no.ini": " [channel.mail] separately: not yes or no: 'sometimes'",
    "webhook_format_unknown.ini": " [channel.hook] format: unknown format 'prometheus' (allowed: tray-alerts,",
    "slack_body_template_unknown_field.ini": " [channel.slack] body_template: unknown field 'mesage' (fields: event,",
    "email_title_template_unclosed_block.ini": " [channel.mail] title_template: line 2: Unexpected end of template.",
    "sms_title_template_not_supported.ini": " [channel.sms] title_template: this channel has no title; it takes "
                                            "body_template",
    "webhook_template_escapes_the_sandbox.ini": " [channel.hook] body_template: not allowed in a template: access "
                                                "to attribute '__class__'",
}

_TRACEBACK_SIGNS = [
    re.compile(r"Traceback \(most recent call last\)"),
    re.compile(r'File ".*", line \d+'),
    re.compile(r"^\s*raise\b", re.M),
    re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception): "),  # `KeyError: 'x'` as an uncaught exception prints it
]


def run_check_config(path: Path, home: Path, env_extra: dict[str, str] | None = None,
                     use_env: bool = False) -> subprocess.CompletedProcess:
    """`python -m tray_alerts --config PATH check-config` with a private home, as bytes (so a stray \\r counts)."""
    env = {key: value for key, value in os.environ.items()
           if key != "TRAY_ALERTS_CONFIG" and not key.startswith("TRAY_ALERTS_TEST_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), XDG_STATE_HOME=str(home / "state"),
               XDG_CACHE_HOME=str(home / "cache"), PYTHONDONTWRITEBYTECODE="1", **(env_extra or {}))
    args = [sys.executable, "-m", "tray_alerts"]
    if use_env:
        env["TRAY_ALERTS_CONFIG"] = str(path)
    else:
        args += ["--config", str(path)]
    return subprocess.run([*args, "check-config"], capture_output=True, env=env, timeout=TIMEOUT, cwd=home)


def assert_one_clean_error_line(result: subprocess.CompletedProcess, path: Path) -> str:
    """Exit 2, nothing on stdout, one printable line on stderr naming the file; returns that line."""
    stderr = result.stderr.decode("utf-8")  # must be valid UTF-8 as well
    assert result.returncode == 2, (result.returncode, stderr)
    assert result.stdout == b"", result.stdout
    assert stderr.endswith("\n") and stderr.count("\n") == 1, repr(stderr)
    line = stderr[:-1]
    assert len(line.splitlines()) == 1 and line.isprintable(), repr(line)  # no \r, \x85, escape sequences…
    assert line.startswith(f"tray-alerts: {path}"), repr(line)
    for sign in _TRACEBACK_SIGNS:
        assert not sign.search(stderr), (sign.pattern, stderr)
    return line


def test_the_corpus_is_big_enough_and_every_file_has_an_expectation():
    names = {path.name for path in CORPUS}
    assert len(names) >= 30
    assert names == set(EXPECTED), {"no expectation": names - set(EXPECTED), "no file": set(EXPECTED) - names}
    assert all(path.stat().st_size < 4096 for path in CORPUS), "corpus files are meant to be small"


@pytest.mark.parametrize("path", CORPUS, ids=[path.stem for path in CORPUS])
def test_corpus_file_gives_one_line_naming_file_section_and_key(path, tmp_path):
    line = assert_one_clean_error_line(run_check_config(path, tmp_path), path)
    expected = f"tray-alerts: {path}{EXPECTED[path.name]}"
    assert line.startswith(expected), f"\n  got:      {line!r}\n  expected: {expected!r}…"


def test_the_environment_variable_names_the_file_the_same_way(tmp_path):
    path = CORPUS_DIR / "routing_unknown_level.ini"
    line = assert_one_clean_error_line(run_check_config(path, tmp_path, use_env=True), path)
    assert line.startswith(f"tray-alerts: {path} [routing] critcal: unknown level 'critcal'")


def test_a_good_file_passes_the_same_harness(tmp_path):
    """The harness is not trivially satisfied: a sound file exits 0 and says so on stdout, with no stderr."""
    good = tmp_path / "good.ini"
    good.write_text("[alerts]\nlog_level = debug\napi_port = 47999\n[routing]\ncritical = log, desktop\n"
                    "[monitor.mem]\ntype = memory\nwarning = 90\nerror = 95\n")
    result = run_check_config(good, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == b"" and b"settings OK" in result.stdout and str(good).encode() in result.stdout


# ---- generated files --------------------------------------------------------------------------------------------

def test_ten_megabyte_file(tmp_path):
    path = tmp_path / "ten_megabytes.ini"
    with path.open("wb") as file:
        file.write(b"[alerts]\nlog_level = info\n")
        file.write(b"; padding padding padding padding padding padding padding padding padding\n" * 140_000)
    assert path.stat().st_size > 10_000_000
    line = assert_one_clean_error_line(run_check_config(path, tmp_path), path)
    assert line.startswith(f"tray-alerts: {path}: file too large (")


@pytest.mark.parametrize("seed", range(4))
def test_random_binary_bytes(tmp_path, seed):
    path = tmp_path / f"random_{seed}.ini"
    path.write_bytes(random.Random(seed).randbytes(8192))
    line = assert_one_clean_error_line(run_check_config(path, tmp_path), path)
    assert line.startswith(f"tray-alerts: {path}: ")


@pytest.mark.parametrize("seed", range(4))
def test_random_bytes_without_nul(tmp_path, seed):
    """Past the binary check: the UTF-8 decoding (or the parser) must give the one line."""
    rng = random.Random(1000 + seed)
    path = tmp_path / f"random_no_nul_{seed}.ini"
    path.write_bytes(b"[alerts]\n" + bytes(rng.randrange(1, 256) for _ in range(4096)))
    line = assert_one_clean_error_line(run_check_config(path, tmp_path), path)
    assert line.startswith(f"tray-alerts: {path}: ")


@pytest.mark.parametrize("seed", range(4))
def test_random_printable_junk(tmp_path, seed):
    """Valid UTF-8 with brackets, equals signs and odd Unicode: whatever the parser makes of it is one line."""
    rng = random.Random(2000 + seed)
    alphabet = "[]=:;#.\n\t \r${}-_abcXYZ019éß€\u2028\x85\x1b\u200f"
    path = tmp_path / f"junk_{seed}.ini"
    path.write_text("[alerts]\nlog_level = info\n[" + "".join(rng.choice(alphabet) for _ in range(600)),
                    encoding="utf-8", newline="")
    line = assert_one_clean_error_line(run_check_config(path, tmp_path), path)
    assert line.startswith(f"tray-alerts: {path}")


def test_a_folder_instead_of_a_file(tmp_path):
    path = tmp_path / "settings.ini"
    path.mkdir()
    line = assert_one_clean_error_line(run_check_config(path, tmp_path), path)
    assert line == f"tray-alerts: {path}: a folder, not a settings file (given by --config)"


def test_a_missing_file(tmp_path):
    path = tmp_path / "nope" / "settings.ini"
    line = assert_one_clean_error_line(run_check_config(path, tmp_path), path)
    assert line == f"tray-alerts: {path}: file not found (given by --config)"


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_a_file_without_read_permission(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("running as root, which can read a file of any mode")
    path = tmp_path / "secret.ini"
    path.write_text("[alerts]\nlog_level = info\n")
    path.chmod(0)
    try:
        line = assert_one_clean_error_line(run_check_config(path, tmp_path), path)
    finally:
        path.chmod(0o600)
    assert line == f"tray-alerts: {path}: cannot read: Permission denied"
