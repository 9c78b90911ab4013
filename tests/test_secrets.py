"""A full run with known fake secrets: none of them may show up anywhere tray-alerts writes or prints.

Settings carry a Slack webhook URL with a token, an SMTP password, a Twilio SID and auth token, and a webhook URL
with tokens plus an Authorization header — pointed at loopback stand-ins that fail (a refused port, HTTP 500 that
echoes the request path and headers back in its body, SMTP login refused by aiosmtpd) and at ones that succeed.
The real command line runs as subprocesses: `raise` (app not running), `status`, `history --limit 200`,
`test-channel NAME` for every channel, `check-config`; then `run --headless` for a few seconds while alerts are raised
through the CLI, so failed deliveries are retried from the outbox. Afterwards every CLI output, the log files,
the raw bytes of state.db (and its -wal/-shm) and every history entry are searched for the secrets — whole, as
fragments of 10 characters, and in the encodings that carry them on the wire (HTTP Basic auth, URL quoting).
"""
from __future__ import annotations

import base64
import os
import queue
import re
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import psutil
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")

CLI_TIMEOUT = 60
SMTP_USER = "mailer"
# Every secret has a unique random core, so a fragment of it found anywhere can only have come from it.
SECRETS = {
    "slack webhook (500)": "slk500Qx7Lm2Pz9Wv4Ht",
    "slack webhook (ok)": "slkOKr8Tn3Vb6Yc1Ud5Ia",
    "slack webhook (refused)": "slkDOWNe4Fg7Hj2Kl9Mz",
    "email password": "mailPWz3Xc8Vb1Nm6Aq0",
    "email wrong password": "mailBADk5Jh2Gf9Ds4Pw",
    "twilio auth token": "twlTOKp9Oi8Uy7Tr6Ew5",
    "twilio account sid": "ACf4e5d6c7b8a90112233445566778899a",
    "webhook url path token": "hookPATHm4Nb7Vc2Xz5L",
    "webhook url query token": "hookQRYs6Df9Gh3Jk8Qe",
    "webhook bearer token": "hookBRRq2We5Rt8Yu1Io",
    "webhook api key": "hookKEYa7Sd4Fg1Hj6Kz",
}
FRAGMENT = 10
CHANNELS_OK = ["log", "slack_ok", "hook_ok", "mail_ok", "sms_ok"]
CHANNELS_FAILING = ["slack", "slack_down", "hook_500", "mail_bad", "sms_500"]


def _basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def secret_forms() -> dict[str, list[str]]:
    """Per secret: the strings that must not appear (itself, its fragments, its wire encodings)."""
    forms: dict[str, list[str]] = {}
    for name, secret in SECRETS.items():
        forms[name] = [secret[i:i + FRAGMENT] for i in range(len(secret) - FRAGMENT + 1)]
    sid, token = SECRETS["twilio account sid"], SECRETS["twilio auth token"]
    forms["twilio basic auth (base64)"] = [_basic(sid, token)]
    forms["smtp AUTH PLAIN (base64)"] = [base64.b64encode(f"\0{SMTP_USER}\0{SECRETS['email password']}".encode())
                                         .decode()]
    return forms


def find_leaks(label: str, data: str | bytes, forms: dict[str, list[str]]) -> list[str]:
    """`label: secret name (fragment)` for every secret form found in data."""
    found = []
    for name, strings in forms.items():
        for string in strings:
            needles = {string, quote(string, safe="")}
            if any((needle.encode() if isinstance(data, bytes) else needle) in data for needle in needles):
                found.append(f"{label}: {name} ({string!r})")
                break
    return found


# ---- loopback stand-ins ----------------------------------------------------------------------------------------

class StandIn:
    """One HTTP server for every HTTP channel: /ok/... answers 200; /fail/... answers 500 with a body that echoes
    the request path (with its query) and every header, as careless servers and proxies do — in the order they
    came, or under /fail-sorted/ sorted by name as httpbin-style echo services do."""

    def __init__(self):
        self.requests: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def handle(self, request: Request) -> Response:
        ok = request.path.startswith("/ok/")
        with self.lock:
            self.requests.append((request.path, 200 if ok else 500))
        if ok:
            return Response('{"ok": true}', status=200, mimetype="application/json")
        echo = [f"Cannot {request.method} {request.full_path.rstrip('?')}"]
        headers = list(request.headers.items())
        if request.path.startswith("/fail-sorted/"):
            headers.sort()
        echo += [f"{name}: {value}" for name, value in headers]
        return Response("\n".join(echo), status=500, mimetype="text/plain")

    def count(self, prefix: str) -> int:
        with self.lock:
            return sum(1 for path, _ in self.requests if path.startswith(prefix))


class Mailbox:
    def __init__(self):
        self.received = 0

    async def handle_DATA(self, server, session, envelope):
        self.received += 1
        return "250 Message accepted for delivery"


def _check_login(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data == (SMTP_USER.encode(),
                                                                SECRETS["email password"].encode())
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _first_line(process: subprocess.Popen, timeout: float) -> str:
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: lines.put(process.stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return ""


def _other_addresses() -> list[tuple[int, str]]:
    """(family, address) of this machine's interfaces that are not loopback (IPv6 link-local left out)."""
    found = set()
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                found.add((socket.AF_INET, address.address))
            elif (address.family == socket.AF_INET6 and address.address != "::1"
                  and not address.address.lower().startswith("fe80")):
                found.add((socket.AF_INET6, address.address.split("%")[0]))
    return sorted(found)


def _connects(family: int, address: str, port: int) -> bool:
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(2.0)
            sock.connect((address, port))
            return True
    except OSError:
        return False


# ---- the run -----------------------------------------------------------------------------------------------------

class Run:
    """Everything the scenario produced, for the tests below to check."""

    def __init__(self, root: Path):
        self.root = root
        self.state_dir = root / "state"
        self.log_file = root / "log" / "tray-alerts.log"
        self.channel_log = root / "alerts" / "alerts.log"
        self.outputs: list[tuple[str, subprocess.CompletedProcess]] = []
        self.app_output = ("", "")
        self.app_exit: int | None = None
        self.other_addresses: list[tuple[int, str]] = []
        self.reachable_elsewhere: list[str] = []
        self.reachable_on_loopback = False
        self.api_port = 0
        self.retries_seen = 0

    def output(self, command: str) -> subprocess.CompletedProcess:
        return next(result for label, result in self.outputs if label == command)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    root = tmp_path_factory.mktemp("secrets")
    result = Run(root)
    stand_in = StandIn()
    http = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    http.expect_request(re.compile(".*")).respond_with_handler(stand_in.handle)
    http.start()
    mailbox = Mailbox()
    smtp_port = _free_port()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=smtp_port, authenticator=_check_login,
                      auth_require_tls=False)
    smtp.start()
    base = f"http://127.0.0.1:{http.port}"
    refused = _free_port()
    result.api_port = _free_port()
    s = SECRETS
    settings = root / "settings.ini"
    settings.write_text(f"""\
[alerts]
state_dir = {result.state_dir}
log_file = {result.log_file}
log_level = debug
delivery_timeout = 5s
retry_backoff = 200ms
retry_backoff_max = 800ms
delivery_expiry = 1h
api_port = {result.api_port}

[routing]
info = {", ".join(CHANNELS_OK + CHANNELS_FAILING)}
warning = {", ".join(CHANNELS_OK + CHANNELS_FAILING)}
error = {", ".join(CHANNELS_OK + CHANNELS_FAILING)}
critical = {", ".join(CHANNELS_OK + CHANNELS_FAILING)}

[monitor.disk_root]
enabled = no

[channel.log]
file = {result.channel_log}

[channel.desktop]
enabled = no

[channel.slack]
webhook_url = ${{SLACK_WEBHOOK_URL}}

[channel.slack_ok]
type = slack
webhook_url = {base}/ok/services/T0FAKE/B0FAKE/{s["slack webhook (ok)"]}

[channel.slack_down]
type = slack
webhook_url = http://127.0.0.1:{refused}/services/T0FAKE/B0FAKE/{s["slack webhook (refused)"]}

[channel.hook_500]
type = webhook
url = {base}/fail/hooks/{s["webhook url path token"]}?token=${{HOOK_QUERY_TOKEN}}
headers = Authorization: Bearer ${{HOOK_BEARER}}
    X-Api-Key: {s["webhook api key"]}

[channel.hook_ok]
type = webhook
url = {base}/ok/hooks/{s["webhook url path token"]}?token=${{HOOK_QUERY_TOKEN}}
headers = Authorization: Bearer ${{HOOK_BEARER}}

[channel.email]
enabled = no

[channel.mail_ok]
type = email
host = 127.0.0.1
port = {smtp_port}
security = none
username = {SMTP_USER}
password = ${{SMTP_PASSWORD}}
from = alerts@example.test
to = ops@example.test

[channel.mail_bad]
type = email
host = 127.0.0.1
port = {smtp_port}
security = none
username = {SMTP_USER}
password = {s["email wrong password"]}
from = alerts@example.test
to = ops@example.test

[channel.sms]
enabled = no

[channel.sms_ok]
type = sms
account_sid = {s["twilio account sid"]}
auth_token = ${{TWILIO_AUTH_TOKEN}}
from = +15550100
to = +15550101
max_per_hour = 1000
api_url = {base}/ok

[channel.sms_500]
type = sms
account_sid = {s["twilio account sid"]}
auth_token = ${{TWILIO_AUTH_TOKEN}}
from = +15550100
to = +15550101, +15550102
max_per_hour = 1000
api_url = {base}/fail-sorted
""")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TRAY_ALERTS", "SLACK_", "SMTP_",
                                                                                  "TWILIO_", "HOOK_"))}
    env.update(TRAY_ALERTS_CONFIG=str(settings), HOME=str(root / "home"), XDG_CONFIG_HOME=str(root / "config"),
               XDG_STATE_HOME=str(root / "xdg-state"), XDG_CACHE_HOME=str(root / "cache"),
               SLACK_WEBHOOK_URL=f"{base}/fail/services/T0FAKE/B0FAKE/{s['slack webhook (500)']}",
               HOOK_QUERY_TOKEN=s["webhook url query token"], HOOK_BEARER=s["webhook bearer token"],
               SMTP_PASSWORD=s["email password"], TWILIO_AUTH_TOKEN=s["twilio auth token"],
               PYTHONDONTWRITEBYTECODE="1")

    def cli(label: str, *args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "tray_alerts", *args], capture_output=True, text=True, env=env,
                              timeout=CLI_TIMEOUT, cwd=root, stdin=subprocess.DEVNULL)
        result.outputs.append((label, done))
        return done

    app = None
    try:
        # -- the app is not running: everything happens in the CLI process
        cli("check-config", "check-config")
        cli("raise (not running)", "raise", "disk_full", "critical", "disk at 95% on /var", "mount=/var")
        cli("status (not running)", "status")
        cli("history (not running)", "history", "--limit", "200")
        for name in CHANNELS_OK + CHANNELS_FAILING:
            cli(f"test-channel {name}", "test-channel", name)

        # -- the app runs headless; alerts come in through its push API and failed ones are retried
        app = subprocess.Popen([sys.executable, "-m", "tray_alerts", "run", "--headless"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env, cwd=root)
        line = _first_line(app, timeout=30)
        assert "running headless" in line, (line, app.poll())
        cli("raise (running)", "raise", "backup_failed", "error", "nightly backup failed", "path=/backup")
        cli("raise again (running)", "raise", "api_down", "warning", "api answers 502", "url=http://127.0.0.1/x")
        cli("escalate (running)", "raise", "api_down", "critical", "api down for 5 minutes")
        cli("clear (running)", "clear", "backup_failed", "backup ran")
        cli("status (running)", "status")
        result.reachable_on_loopback = _connects(socket.AF_INET, "127.0.0.1", result.api_port)
        result.other_addresses = _other_addresses()
        result.reachable_elsewhere = [address for family, address in result.other_addresses
                                      if _connects(family, address, result.api_port)]
        deadline = time.monotonic() + 15
        with sqlite3.connect(result.state_dir / "state.db", timeout=10) as db:
            while time.monotonic() < deadline:
                result.retries_seen = db.execute(
                    "SELECT count(*) FROM history WHERE detail LIKE 'retry % failed:%'").fetchone()[0]
                if result.retries_seen >= 12:
                    break
                time.sleep(0.25)
        db.close()
        cli("history (running)", "history", "--limit", "200")
        app.send_signal(signal.SIGTERM)
        result.app_exit = app.wait(timeout=20)
        result.app_output = (app.stdout.read(), app.stderr.read())

        # -- after the app stopped
        cli("status (after)", "status")
        cli("history (after)", "history", "--limit", "200")
        cli("check-config (after)", "check-config")
    finally:
        if app is not None:
            if app.poll() is None:
                app.kill()
                app.wait(timeout=10)
            app.stdout.close()
            app.stderr.close()
        smtp.stop()
        http.clear()
        http.stop()
    result.stand_in = stand_in  # type: ignore[attr-defined]
    result.mailbox = mailbox  # type: ignore[attr-defined]
    return result


# ---- the run did what it should (so the secret checks below mean something) -------------------------------------

def test_the_run_delivered_failed_and_retried(run):
    assert run.output("check-config").returncode == 0 and "settings OK" in run.output("check-config").stdout
    raised = run.output("raise (not running)")
    assert raised.returncode == 0, raised.stderr
    assert "here (tray-alerts is not running)" in raised.stdout
    for name in CHANNELS_OK:
        assert f"  {name}: delivered" in raised.stdout, raised.stdout
    for name in CHANNELS_FAILING:
        assert f"  {name}: NOT delivered" in raised.stdout, raised.stdout
    assert "HTTP 500" in raised.stdout and "connection refused" in raised.stdout
    assert "login refused" in raised.stdout
    for name in CHANNELS_OK:
        done = run.output(f"test-channel {name}")
        assert done.returncode == 0 and "test alert delivered" in done.stdout, (name, done.stdout, done.stderr)
    for name in CHANNELS_FAILING:
        done = run.output(f"test-channel {name}")
        assert done.returncode == 1 and "test alert NOT delivered" in done.stdout, (name, done.stdout, done.stderr)
    for label in ("raise (running)", "raise again (running)", "escalate (running)", "clear (running)"):
        assert run.output(label).returncode == 0 and "[the running app]" in run.output(label).stdout, label
    assert run.app_exit == 0, run.app_output
    assert run.retries_seen >= 12, "the outbox did not retry the failed deliveries"
    assert run.stand_in.count("/fail/") > len(CHANNELS_FAILING) and run.stand_in.count("/ok/") >= 4
    assert run.mailbox.received >= 2
    history = run.output("history (after)")
    assert history.returncode == 0 and "retry" in history.stdout and "failed:" in history.stdout
    assert "api_down" in run.output("status (after)").stdout


# ---- no secret anywhere --------------------------------------------------------------------------------------------

def test_no_secret_in_any_cli_output(run):
    forms = secret_forms()
    leaks = []
    for label, done in run.outputs:
        leaks += find_leaks(f"{label} stdout", done.stdout, forms)
        leaks += find_leaks(f"{label} stderr", done.stderr, forms)
    leaks += find_leaks("run --headless stdout", run.app_output[0], forms)
    leaks += find_leaks("run --headless stderr", run.app_output[1], forms)
    assert not leaks, "\n".join(leaks)
    assert len(run.outputs) >= 20


def _log_files(run) -> list[Path]:
    files = sorted(run.log_file.parent.glob(run.log_file.name + "*"))
    files += sorted(run.channel_log.parent.glob(run.channel_log.name + "*"))
    return files


def test_no_secret_in_the_log_files(run):
    files = _log_files(run)
    assert run.log_file in files and run.channel_log in files
    text = run.log_file.read_text()
    assert "not delivered" in text and "retry" in text  # the failures (with their reasons) are logged
    forms = secret_forms()
    leaks = [leak for path in files for leak in find_leaks(path.name, path.read_bytes(), forms)]
    assert not leaks, "\n".join(leaks)


def test_no_secret_in_the_raw_bytes_of_the_state_file(run):
    files = [path for path in (run.state_dir / "state.db", run.state_dir / "state.db-wal",
                               run.state_dir / "state.db-shm") if path.exists()]
    assert files and files[0].stat().st_size > 0
    forms = secret_forms()
    leaks = [leak for path in files for leak in find_leaks(path.name, path.read_bytes(), forms)]
    assert not leaks, "\n".join(leaks)


def test_no_secret_in_the_history(run):
    with sqlite3.connect(f"file:{run.state_dir / 'state.db'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT event, kind, level, message, channel, ok, detail FROM history").fetchall()
        outbox = db.execute("SELECT channel, event, alert, last_error FROM outbox").fetchall()
    db.close()
    failures = [row for row in rows if row[5] == 0]
    assert len(rows) > 30 and failures, "the history should hold deliveries that failed, with their reasons"
    assert any("HTTP 500" in row[6] for row in failures) and any("refused" in row[6] for row in failures)
    forms = secret_forms()
    leaks = []
    for row in rows + outbox:
        leaks += find_leaks(f"history/outbox row {row[:3]}", " | ".join(map(str, row)), forms)
    assert not leaks, "\n".join(sorted(set(leaks)))


def test_the_push_api_token_is_not_printed_logged_or_recorded(run):
    token = (run.state_dir / "api-token").read_text().strip()
    assert len(token) >= 32
    places = [(label, done.stdout + done.stderr) for label, done in run.outputs]
    places += [("run --headless", "".join(run.app_output))]
    places += [(path.name, path.read_text(errors="replace")) for path in _log_files(run)]
    places += [("state.db", (run.state_dir / "state.db").read_bytes().decode("latin-1"))]
    assert [label for label, text in places if token in text or token[:FRAGMENT * 2] in text] == []


# ---- files and network ----------------------------------------------------------------------------------------------

@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_private_files_are_mode_0600(run):
    files = [run.state_dir / "state.db", run.state_dir / "api-token", run.log_file, run.channel_log]
    files += [path for path in (run.state_dir / "state.db-wal", run.state_dir / "state.db-shm") if path.exists()]
    modes = {path.name: oct(stat.S_IMODE(path.stat().st_mode)) for path in files}
    assert modes == dict.fromkeys(modes, "0o600"), modes


def test_the_push_api_is_not_reachable_on_other_addresses(run):
    assert run.reachable_on_loopback, "the check below means nothing unless the API answered on 127.0.0.1"
    if not run.other_addresses:
        pytest.skip("this machine has no address other than loopback")
    assert run.reachable_elsewhere == [], f"push API on port {run.api_port} reachable at {run.reachable_elsewhere}"
