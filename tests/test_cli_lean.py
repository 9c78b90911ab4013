"""The quick commands with the app running: one request to its API, and nothing but the standard library loaded.

A stand-in for the app (a small HTTP server answering as the push API does, and the state folder's lock held by
this test) lets each command run as a real process; a wrapper writes the process's sys.modules when it ends."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tray_alerts import lean, lifecycle, results
from tray_alerts.instance import InstanceLock
from tray_alerts.paths import TOKEN_FILE

HEAVY = ("requests", "urllib3", "charset_normalizer", "sqlite3", "_sqlite3", "jinja2", "http.client", "ssl",
         "tray_alerts.engine", "tray_alerts.state", "tray_alerts.channels", "tray_alerts.config",
         "tray_alerts.model", "tray_alerts.lifecycle", "tray_alerts.results", "tray_alerts.wiring",
         "tray_alerts.monitors", "tray_alerts.outbox", "tray_alerts.commands")
TOKEN = "stand-in-token"
WRAPPER = """
import atexit, json, sys
atexit.register(lambda: open(sys.argv.pop(1), "w").write(json.dumps(sorted(sys.modules))))
from tray_alerts.cli import main
sys.exit(main(sys.argv[2:]))
"""


class StandIn(BaseHTTPRequestHandler):
    """Answers as the push API does: what a raise, clear, ack, mute and ping of `disk_full` get."""

    protocol_version = "HTTP/1.1"
    requests: list[tuple[str, str, dict, str]] = []

    def do_GET(self):
        self.answer([{"event": "disk_full", "level": "warning", "message": "disk at 93%", "since": time.time()}])

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"null")
        self.requests.append(("POST", self.path, body, self.headers.get("Authorization", "")))
        event = self.path.split("/")[3].split("?")[0] if self.path.startswith("/v1/alerts/") else ""
        if self.path.startswith("/v1/alerts?"):
            self.answer({"event": body["event"], "status": "fired", "stored": True, "level": body["level"],
                         "channels": {"log": {"status": "delivered", "detail": ""},
                                      "slack": {"status": "pending", "detail": "sent; no answer yet"}}})
        elif self.path.endswith("/ack"):
            self.answer({"event": event, "status": "acknowledged" if event == "disk_full" else "not active",
                         "stored": True, "level": "warning", "acknowledged_at": time.time()})
        elif "/clear" in self.path:
            active = event == "disk_full"
            self.answer({"event": event, "status": "cleared" if active else "not active", "stored": True,
                         "channels": {"log": {"status": "delivered", "detail": ""}} if active else {}})
        elif self.path.endswith(("/mute", "/unmute")):
            self.answer({"event": event, "muted_until": time.time() + 7200 if self.path.endswith("/mute") else None})
        elif self.path.startswith("/v1/ping/"):
            self.answer({"heartbeat": self.path.rsplit("/", 1)[1], "status": "pinged"})
        else:
            self.answer({"error": "no such endpoint"}, 404)

    def answer(self, payload, status=200):
        if self.command == "GET":
            self.requests.append(("GET", self.path, {}, self.headers.get("Authorization", "")))
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def app(tmp_path):
    """Settings, a stand-in push API on a free port, and the state folder's lock held as the app holds it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    StandIn.requests = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state = tmp_path / "state"
    settings = tmp_path / "settings.ini"
    settings.write_text(f"[alerts]\nstate_dir = {state}\nlog_file = {tmp_path / 'app.log'}\n"
                        f"api_port = {server.server_address[1]}\n[channel.desktop]\nenabled = no\n"
                        "[monitor.nightly]\ntype = heartbeat\nmax_age = 26h\n")
    lock = InstanceLock(state)
    lock.acquire()
    (state / TOKEN_FILE).write_text(TOKEN + "\n")
    yield settings
    lock.release()
    server.shutdown()
    server.server_close()


def quick(settings: Path, tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """One command as a real process, and every module it had loaded when it ended."""
    dump = tmp_path / f"modules-{time.monotonic_ns()}.json"
    env = {**os.environ, "TRAY_ALERTS_CONFIG": str(settings)}
    result = subprocess.run([sys.executable, "-c", WRAPPER, str(dump), *args], capture_output=True, text=True,
                            env=env, timeout=60)
    return result, set(json.loads(dump.read_text()))


@pytest.mark.parametrize("args, printed", [
    (("raise", "disk_full", "warning", "disk at 93%", "mount=/"), "disk_full: warning alert sent [the running app]"),
    (("clear", "disk_full", "back to 60%"), "disk_full: cleared, recovery sent [the running app]"),
    (("ack", "disk_full"), "disk_full: acknowledged at "),
    (("mute", "disk_full", "2h"), "disk_full: muted until "),
    (("unmute", "disk_full"), "disk_full: unmuted — anything held goes out now [the running app]"),
    (("ping", "nightly"), "nightly: pinged [the running app]"),
])
def test_a_quick_command_posts_one_request_and_loads_only_the_standard_library(app, tmp_path, args, printed):
    result, modules = quick(app, tmp_path, *args)
    assert result.returncode == 0, result.stderr
    assert printed in result.stdout and "Traceback" not in result.stderr
    assert not modules.intersection(HEAVY), sorted(modules.intersection(HEAVY))
    posts = [request for request in StandIn.requests if request[0] == "POST"]
    assert len(posts) == 1 and posts[0][3] == f"Bearer {TOKEN}"


def test_the_raise_says_each_channel_and_which_are_pending(app, tmp_path):
    result, _ = quick(app, tmp_path, "raise", "disk_full", "warning", "disk at 93%", "mount=/")
    assert result.stdout.splitlines() == [
        "disk_full: warning alert sent [the running app]", "  log: delivered",
        "  slack: NOT delivered — pending — sent; no answer yet",
        "  (slack: no answer yet — the outbox records it when it comes; see `tray-alerts history`)"]
    method, path, body, _ = StandIn.requests[0]
    assert path == "/v1/alerts?wait=3" and body == {"event": "disk_full", "level": "warning",
                                                    "message": "disk at 93%", "context": {"mount": "/"}}


def test_python_m_loads_none_of_the_engine_either(app):
    """`python -X importtime -m tray_alerts raise …`: the same check, read from the interpreter's own report."""
    env = {**os.environ, "TRAY_ALERTS_CONFIG": str(app)}
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "tray_alerts", "raise", "disk_full",
                             "warning", "disk at 93%"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    imported = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:") and line.count("|") == 2}
    assert "tray_alerts.lean" in imported and "tray_alerts.client" in imported
    assert not imported.intersection(HEAVY), sorted(imported.intersection(HEAVY))


def test_without_the_app_the_engine_is_loaded_and_works_on_the_state(tmp_path):
    settings = tmp_path / "settings.ini"
    settings.write_text(f"[alerts]\nstate_dir = {tmp_path / 'state'}\nlog_file = {tmp_path / 'app.log'}\n"
                        f"[channel.log]\nfile = {tmp_path / 'alerts.log'}\n[channel.desktop]\nenabled = no\n")
    result, modules = quick(settings, tmp_path, "raise", "disk_full", "warning", "disk at 93%")
    assert result.returncode == 0, result.stderr
    assert "disk_full: warning alert sent [here (tray-alerts is not running)]" in result.stdout
    assert {"tray_alerts.engine", "tray_alerts.state", "sqlite3"} <= modules


@pytest.mark.parametrize("args, message", [
    (("ack", "nosuch"), "tray-alerts: nosuch: not active — nothing acknowledged"),
    (("mute", "nosuch", "2h"), "tray-alerts: nosuch: not active — nothing muted"),
    (("unmute", "nosuch"), "tray-alerts: nosuch: not active — nothing unmuted"),
])
def test_an_event_that_is_not_active_is_named_exit_2(app, tmp_path, args, message):
    result, _ = quick(app, tmp_path, *args)
    assert result.returncode == 2 and result.stderr.startswith(message), result.stderr
    assert len(result.stderr.splitlines()) == 1 and result.stdout == ""
    assert not [request for request in StandIn.requests if request[0] == "POST" and "mute" in request[1]]


def test_clearing_an_event_that_is_not_active_is_said_exit_0(app, tmp_path):
    """Scripts clear on every success: nothing to clear is not a mistake."""
    result, _ = quick(app, tmp_path, "clear", "nosuch")
    assert result.returncode == 0 and result.stdout.strip() == "nosuch: not active — nothing sent"


def test_the_quick_commands_name_the_api_answers_as_the_engine_does():
    assert (lean.FIRED, lean.ESCALATED, lean.DEBOUNCED) == (lifecycle.FIRED, lifecycle.ESCALATED, lifecycle.DEBOUNCED)
    assert (lean.CLEARED, lean.NOT_ACTIVE) == (lifecycle.CLEARED, lifecycle.NOT_ACTIVE)
    assert (lean.ACKNOWLEDGED, lean.ALREADY_ACKNOWLEDGED) == (lifecycle.ACKNOWLEDGED, lifecycle.ALREADY_ACKNOWLEDGED)
    assert lean.PENDING == results.PENDING and lean.LEVELS == tuple(level.value for level in lifecycle.Level)
