"""Helpers for the fault tests: a real full disk (a small tmpfs), another process holding the state file's write
lock, a loopback webhook that records what it got, settings files and the real command line and app."""
from __future__ import annotations

import http.client
import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from helpers_net import free_port

PROCESS_TIMEOUT = 60.0  # failure guard for a subprocess that should end by itself
DISK_FULL = "state.db: disk full"
LOCKED = "state.db: locked by another process"
LEVELS = ("info", "warning", "error", "critical")


# ---- a full disk ---------------------------------------------------------------------------------------------

def mount_tmpfs(folder: Path, size: str = "2m") -> None:
    """Mount a tmpfs of `size` on `folder`; skips the test (with the reason) where mounting is not permitted."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                              capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        pytest.skip("no mount command here: cannot make a real full disk")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {done.stderr.strip()}")


def unmount(folder: Path) -> None:
    """Unmount, lazily if something still has a file open there (the test failed half-way)."""
    if subprocess.run(["umount", str(folder)], capture_output=True, timeout=30).returncode != 0:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


def fill(folder: Path) -> Path:
    """Write a filler file until the file system is full; returns it (delete it to make room again)."""
    filler = folder / "filler"
    block = b"\0" * 65536
    with open(filler, "wb", buffering=0) as file:
        try:
            while True:
                file.write(block)
        except OSError as error:
            if error.errno != 28:  # ENOSPC
                raise
    with open(filler, "ab", buffering=0) as file:  # the last partial blocks too
        try:
            while True:
                file.write(b"\0" * 512)
        except OSError:
            pass
    assert os.statvfs(folder).f_bavail == 0, "the tmpfs is not full"
    return filler


# ---- another process holding the write lock ------------------------------------------------------------------

_HOLDER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
db.execute("BEGIN IMMEDIATE")
print("holding", flush=True)
sys.stdin.read()  # until the test closes our stdin (or dies)
db.execute("ROLLBACK")
db.close()
print("released", flush=True)
"""


def write_locked(path: Path) -> bool:
    """Whether some process holds the write lock of the SQLite file now (tried without waiting)."""
    db = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as error:
        if "locked" in str(error) or "busy" in str(error):
            return True
        raise
    finally:
        if db.in_transaction:
            db.execute("ROLLBACK")
        db.close()
    return False


class WriteLockHolder:
    """A separate process that opens the state file and holds `BEGIN IMMEDIATE` until released."""

    def __init__(self, path: Path):
        self.path = path
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> WriteLockHolder:
        self.process = subprocess.Popen([sys.executable, "-c", _HOLDER, str(self.path)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        line = read_line(self.process, PROCESS_TIMEOUT)
        assert line.strip() == "holding", f"the lock holder did not start: {line!r}"
        assert write_locked(self.path)
        return self

    def holding(self) -> bool:
        """Still running and the write lock is still taken."""
        return self.process is not None and self.process.poll() is None and write_locked(self.path)

    def release(self) -> None:
        if self.process is None:
            return
        process, self.process = self.process, None
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=PROCESS_TIMEOUT)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
            if process.stdout is not None:
                process.stdout.close()

    def __exit__(self, *exc: object) -> None:
        self.release()


# ---- a webhook on loopback -----------------------------------------------------------------------------------

class Hook:
    """A loopback HTTP server that accepts every POST and keeps the JSON bodies in order."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self._lock = threading.Lock()
        self.server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
        self.server.expect_request("/hook", method="POST").respond_with_handler(self._handle)
        self.server.start()
        self.url = self.server.url_for("/hook")

    def _handle(self, request: Request) -> Response:
        with self._lock:
            self.bodies.append(request.get_json())
        return Response("ok", status=200)

    @property
    def received(self) -> list[tuple[str, bool]]:
        """(event, resolved) of each POST, in the order they came."""
        with self._lock:
            return [(body["event"], bool(body["resolved"])) for body in self.bodies]

    def stop(self) -> None:
        self.server.clear()
        self.server.stop()


# ---- files ---------------------------------------------------------------------------------------------------

def log_lines(path: Path, event: str, tag: str | None = None) -> list[str]:
    """The log channel's lines about one event (`event: [TAG] …`), optionally of one tag (ERROR, RESOLVED)."""
    if not path.exists():
        return []
    prefix = f" {event}: [{tag}]" if tag else f" {event}: ["
    return [line for line in path.read_text().splitlines() if prefix in line]


def stored_events(state_path: Path) -> set[str]:
    """The events the state file itself says are active (read with plain sqlite3, read-only)."""
    if not state_path.exists():
        return set()
    db = sqlite3.connect(f"file:{state_path}?mode=ro", uri=True)
    try:
        return {event for (event,) in db.execute("SELECT event FROM events")}
    except sqlite3.OperationalError as error:
        if "no such table" in str(error):
            return set()
        raise
    finally:
        db.close()


def write_settings(folder: Path, port: int | None = None, webhook_url: str | None = None) -> Path:
    """A settings.ini with its own state folder, a free api_port, the log channel writing to alerts.log, no
    pop-ups, no disk monitor; with `webhook_url`, a [channel.webhook] that hears every level."""
    port = port or free_port()
    text = (f"[alerts]\nstate_dir = {folder / 'state'}\nlog_file = {folder / 'log' / 'app.log'}\n"
            f"api_port = {port}\ndelivery_timeout = 5s\n"
            f"[channel.log]\nfile = {folder / 'alerts.log'}\n[channel.desktop]\nenabled = no\n"
            "[monitor.disk_root]\nenabled = no\n")
    if webhook_url:
        text += f"[channel.webhook]\ntype = webhook\nurl = {webhook_url}\n[routing]\n"
        text += "".join(f"{level} = log, desktop, webhook\n" for level in LEVELS)
    path = folder / "settings.ini"
    path.write_text(text)
    return path


def settings_port(settings: Path) -> int:
    for line in settings.read_text().splitlines():
        if line.startswith("api_port"):
            return int(line.partition("=")[2])
    raise AssertionError("no api_port in the settings")


# ---- processes -----------------------------------------------------------------------------------------------

def env_for(settings: Path) -> dict[str, str]:
    return {**os.environ, "TRAY_ALERTS_CONFIG": str(settings), "PYTHONDONTWRITEBYTECODE": "1"}


def cli(settings: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m tray_alerts ARGS` with these settings, as a shell would run it."""
    return subprocess.run([sys.executable, "-m", "tray_alerts", *args], capture_output=True, text=True,
                          env=env_for(settings), stdin=subprocess.DEVNULL, timeout=PROCESS_TIMEOUT)


def start_cli(settings: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tray_alerts", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env_for(settings))


def start_script(settings: Path, code: str) -> subprocess.Popen:
    """A Python script using tray_alerts with these settings (TRAY_ALERTS_CONFIG)."""
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, env=env_for(settings))


def finish(process: subprocess.Popen, timeout: float = PROCESS_TIMEOUT) -> tuple[int, str, str]:
    """Wait for a process to end: (exit code, stdout, stderr)."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate(timeout=10)
        raise AssertionError(f"the process did not end within {timeout:g} s: {out!r} {err!r}") from None
    return process.returncode, out, err


def read_line(process: subprocess.Popen, timeout: float) -> str:
    """The process's next stdout line, or '' if none comes within `timeout` s."""
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: lines.put(process.stdout.readline()), daemon=True).start()  # type: ignore
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return ""


class RunningApp:
    """`python -m tray_alerts run --headless` as a real process, started and stopped by the test."""

    def __init__(self, settings: Path):
        self.settings = settings
        self.port = settings_port(settings)
        self.state_dir = settings.parent / "state"
        self.process = start_cli(settings, "run", "--headless")
        line = read_line(self.process, PROCESS_TIMEOUT)
        if "running headless" not in line:
            self.stop()
            raise AssertionError(f"the app did not start: {line!r}")
        assert f"push API on 127.0.0.1:{self.port}" in line, line
        self.token = (self.state_dir / "api-token").read_text().strip()

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return api_call(self.port, self.token, method, path, body)

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> int | None:
        """SIGTERM, then wait; returns the exit code."""
        process = self.process
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=PROCESS_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
        return process.returncode


def api_call(port: int, token: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One push API request on 127.0.0.1: (HTTP status, decoded JSON)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=PROCESS_TIMEOUT)
    try:
        data = json.dumps(body).encode() if body is not None else None
        connection.request(method, path, body=data, headers={"Authorization": f"Bearer {token}",
                                                             "Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()
