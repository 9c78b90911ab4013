"""Configured secrets stay masked in every logger's records (urllib3's request log), whoever set up logging.

A script using `tray_alerts.raise_alert` with `logging.basicConfig(level=DEBUG)` (before or after importing
tray_alerts) delivers through a Slack channel to a loopback server: urllib3 logs the request line with the webhook
path, which must show as *** in everything the script prints; the CLI's own log file (at debug) likewise.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

HOOK_PATH = "/services/T000/B000/SECRETXYZ"
# Every piece of the path that would give the secret (or part of it) away.
PIECES = [HOOK_PATH, "/services/T000", "T000/B000", "B000", "SECRETXYZ", "SECRET"]

BEFORE_IMPORT = """
import logging, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stdout)
import tray_alerts
print("result", tray_alerts.raise_alert("disk_full", "error", "disk at 95%", mount="/var"))
"""

AFTER_IMPORT = """
import logging, sys
import tray_alerts
logging.basicConfig(level=logging.DEBUG, stream=sys.stdout)
print("result", tray_alerts.raise_alert("disk_full", "error", "disk at 95%", mount="/var"))
"""

AFTER_FIRST_ALERT = """
import logging, sys
import tray_alerts
print("result", tray_alerts.raise_alert("disk_full", "error", "disk at 95%", mount="/var"))
logging.basicConfig(level=logging.DEBUG, stream=sys.stdout)
print("result", tray_alerts.raise_alert("disk_full", "critical", "disk at 99%", mount="/var"))
"""


@pytest.fixture
def slack_server():
    """A loopback HTTP server answering the Slack webhook path with 200 ok."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.expect_request(HOOK_PATH, method="POST").respond_with_data("ok")
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


def _settings(tmp_path: Path, server: HTTPServer) -> dict[str, str]:
    """The environment of a process whose settings route errors to Slack (on the server) and the log channel."""
    settings = tmp_path.parent / f"{tmp_path.name}-settings.ini"  # outside tmp_path, whose files are searched
    settings.write_text(f"[alerts]\nstate_dir = {tmp_path / 'state'}\nlog_file = {tmp_path / 'app.log'}\n"
                        f"log_level = debug\n"
                        f"[routing]\nerror = slack, log\ncritical = slack, log\n"
                        f"[channel.desktop]\nenabled = no\n"
                        f"[channel.log]\nfile = {tmp_path / 'alerts.log'}\n"
                        f"[channel.slack]\nwebhook_url = {server.url_for(HOOK_PATH)}\n")
    return {**os.environ, "TRAY_ALERTS_CONFIG": str(settings)}


def _leaks(text: str) -> list[str]:
    """The pieces of the secret path found in text."""
    return [piece for piece in PIECES if piece in text]


def _run(args: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)


@pytest.mark.parametrize("script, alerts", [(BEFORE_IMPORT, 1), (AFTER_IMPORT, 1), (AFTER_FIRST_ALERT, 2)],
                         ids=["basicConfig-before-import", "basicConfig-after-import", "basicConfig-after-first-alert"])
def test_library_debug_logging_masks_the_webhook_path(tmp_path, slack_server, script, alerts):
    done = _run([sys.executable, "-c", script], _settings(tmp_path, slack_server), tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("result {'slack': True, 'log': True}") == alerts, done.stdout
    assert len(slack_server.log) == alerts  # the webhook was really posted to, on its secret path
    assert "DEBUG:urllib3.connectionpool:" in done.stdout  # the host's debug logging is on and shows urllib3
    assert '"POST *** HTTP/1.1" 200' in done.stdout, done.stdout  # the request line is there, masked
    output = done.stdout + done.stderr
    assert _leaks(output) == [], output
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert _leaks(path.read_bytes().decode("latin-1")) == [], path


def test_the_cli_and_its_log_file_at_debug_mask_the_webhook_path(tmp_path, slack_server):
    done = _run([sys.executable, "-m", "tray_alerts", "raise", "disk_full", "error", "disk at 95%"],
                _settings(tmp_path, slack_server), tmp_path)
    assert done.returncode == 0, done.stderr
    assert "slack: delivered" in done.stdout and len(slack_server.log) == 1
    log_text = (tmp_path / "app.log").read_text()
    assert "disk_full" in log_text
    assert _leaks(done.stdout + done.stderr + log_text) == []
