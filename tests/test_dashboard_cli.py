"""`tray-alerts dashboard [--url]`, run as a real process against a real running app (`tray-alerts run --headless`)."""
from __future__ import annotations

import sys
from urllib.parse import urlsplit

import pytest
import requests

from test_cli import cli, headless_app, settings_file  # noqa: F401  (settings_file: a fixture)


@pytest.fixture
def running_app(tmp_path):
    with headless_app(tmp_path) as (settings, port, app, line):
        assert f"push API on 127.0.0.1:{port}" in line, (line, app.poll())
        yield settings, port


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
def test_dashboard_without_the_app_is_one_line_exit_2(settings_file, args):
    result = cli(settings_file, *args)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == "tray-alerts dashboard: the app is not running (start it with tray-alerts run)\n"


def test_dashboard_has_help(settings_file):
    result = cli(settings_file, "dashboard", "--help")
    assert result.returncode == 0 and "--url" in result.stdout
