"""`tray-alerts dashboard [--url]`, run as a real process against a real running app (`tray-alerts run --headless`)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
import requests

from test_cli import _first_line, _free_port, cli


@pytest.fixture
def app_settings(tmp_path):
    port = _free_port()
    settings = tmp_path / "settings.ini"
    settings.write_text(
        f"[alerts]\nstate_dir = {tmp_path / 'state'}\nlog_file = {tmp_path / 'log' / 'app.log'}\napi_port = {port}\n"
        f"[channel.log]\nfile = {tmp_path / 'alerts.log'}\n[channel.desktop]\nenabled = no\n"
        "[monitor.disk_root]\nenabled = no\n")
    return settings, port


@pytest.fixture
def running_app(app_settings):
    settings, port = app_settings
    env = {**os.environ, "TRAY_ALERTS_CONFIG": str(settings)}
    app = subprocess.Popen([sys.executable, "-m", "tray_alerts", "run", "--headless"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env)
    try:
        line = _first_line(app, timeout=20)
        assert f"push API on 127.0.0.1:{port}" in line, (line, app.poll())
        yield settings, port
    finally:
        if app.poll() is None:
            app.send_signal(signal.SIGTERM)
            try:
                app.wait(timeout=15)
            except subprocess.TimeoutExpired:
                app.kill()
                app.wait(timeout=10)
        app.stdout.close()
        app.stderr.close()


def test_dashboard_url_prints_a_one_time_login_that_opens_a_session(running_app):
    settings, port = running_app
    printed = cli(settings, "dashboard", "--url")
    assert printed.returncode == 0, printed.stderr
    url = printed.stdout.strip()
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("http", f"127.0.0.1:{port}", "/dashboard")
    assert parts.query.startswith("login=")
    opened = requests.get(url, allow_redirects=False, timeout=10)
    assert opened.status_code == 303 and "tray_alerts_session" in opened.cookies
    assert requests.get(url, allow_redirects=False, timeout=10).status_code == 403  # once only
    assert cli(settings, "dashboard", "--url").stdout.strip() != url


def test_dashboard_opens_the_address_in_the_web_browser(running_app, tmp_path):
    settings, port = running_app
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.py"  # $BROWSER: what Python's webbrowser runs, with the address
    browser.write_text(f"#!{sys.executable}\nimport sys\nopen({str(opened)!r}, 'w').write(sys.argv[1])\n")
    browser.chmod(0o755)
    result = cli(settings, "dashboard", env_extra={"BROWSER": str(browser)})
    assert result.returncode == 0, result.stderr
    assert "opened in the web browser" in result.stdout
    url = opened.read_text()
    assert url.startswith(f"http://127.0.0.1:{port}/dashboard?login=") and url not in result.stdout
    assert requests.get(url, allow_redirects=False, timeout=10).status_code == 303


@pytest.mark.parametrize("args", [("dashboard",), ("dashboard", "--url")])
def test_dashboard_without_the_app_is_one_line_exit_2(app_settings, args):
    settings, _ = app_settings
    result = cli(settings, *args)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == "tray-alerts dashboard: the app is not running (start it with tray-alerts run)\n"


def test_dashboard_has_help(app_settings):
    result = cli(app_settings[0], "dashboard", "--help")
    assert result.returncode == 0 and "--url" in result.stdout
