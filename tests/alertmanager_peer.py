"""A real Prometheus Alertmanager for tests: the `prometheus-alertmanager` binary on 127.0.0.1, killed by PID.

    skip_unless_alertmanager()
    with AlertmanagerPeer(resolve_timeout="2s") as am:
        requests.post(am.url + "/api/v2/alerts", json=[...])
        am.alerts(active=True)          # GET /api/v2/alerts?active=true -> list of alerts

    AlertmanagerPeer(config=YAML_TEXT)  # a configuration of your own (e.g. a webhook receiver) instead of CONFIG

Config, storage and log live in a private temp directory; the cluster listener is switched off (an empty
`--cluster.listen-address`), so nothing listens outside loopback. Every wait is bounded.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

BINARY = "prometheus-alertmanager"
INSTALL_HINT = "needs prometheus-alertmanager: apt-get install prometheus-alertmanager"
READY_TIMEOUT = 10.0

CONFIG = """\
global:
  resolve_timeout: {resolve_timeout}
route:
  receiver: blackhole
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: blackhole
"""


def alertmanager_binary() -> str | None:
    """The path of prometheus-alertmanager (PATH, then /usr/bin), or None."""
    found = shutil.which(BINARY)
    if found:
        return found
    fallback = Path("/usr/bin") / BINARY
    return str(fallback) if fallback.is_file() and os.access(fallback, os.X_OK) else None


def skip_unless_alertmanager() -> str:
    """The binary's path, or skip the calling test (module) with the apt-get hint."""
    binary = alertmanager_binary()
    if binary is None:
        pytest.skip(INSTALL_HINT)
    return binary


def free_port() -> int:
    """A loopback TCP port nothing listens on (bound once to pick it, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _flag(value: bool | None) -> str | None:
    return None if value is None else ("true" if value else "false")


class AlertmanagerPeer:
    """Context manager running one Alertmanager; `.url` is its base URL, `.alerts()` reads its alerts."""

    def __init__(self, resolve_timeout: str = "5m", port: int | None = None, attempts: int = 3,
                 config: str | None = None):
        self.resolve_timeout = resolve_timeout
        self.config = config  # full alertmanager.yml text; None: CONFIG with resolve_timeout
        self.port = port
        self.attempts = attempts if port is None else 1
        self.process: subprocess.Popen | None = None
        self._dir: tempfile.TemporaryDirectory | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_text(self) -> str:
        """What the process wrote to stdout/stderr so far (for failure messages)."""
        if self._dir is None:
            return ""
        path = Path(self._dir.name) / "alertmanager.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def __enter__(self) -> AlertmanagerPeer:
        binary = skip_unless_alertmanager()
        self._dir = tempfile.TemporaryDirectory(prefix="tray-alerts-am-")
        root = Path(self._dir.name)
        config = root / "am.yml"
        config.write_text(self.config if self.config is not None
                          else CONFIG.format(resolve_timeout=self.resolve_timeout))
        fixed_port = self.port
        problem = ""
        try:
            for attempt in range(self.attempts):
                self.port = fixed_port or free_port()
                storage = root / f"data-{attempt}"
                storage.mkdir()
                with open(root / "alertmanager.log", "ab") as log:
                    self.process = subprocess.Popen(
                        [binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{self.port}",
                         f"--storage.path={storage}", "--cluster.listen-address=", "--log.level=warn"],
                        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=root)
                problem = self._wait_ready()
                if not problem:
                    return self
                self._stop_process()  # e.g. the picked port was taken meanwhile: try another
        except BaseException:
            self._cleanup()
            raise
        log_text = self.log_text
        self._cleanup()
        raise RuntimeError(f"Alertmanager did not become ready: {problem}\n{log_text}")

    def _wait_ready(self) -> str:
        """'' once GET /-/ready answers 200; else why not (process exited, or timed out)."""
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return f"process exited with {self.process.returncode}"
            try:
                if requests.get(self.url + "/-/ready", timeout=1.0).status_code == 200:
                    return ""
            except requests.RequestException:
                pass
            time.sleep(0.05)
        return f"no 200 from /-/ready within {READY_TIMEOUT:g} s"

    def alerts(self, active: bool | None = None, silenced: bool | None = None, inhibited: bool | None = None,
               unprocessed: bool | None = None, filter: list[str] | None = None) -> list[dict]:
        """GET /api/v2/alerts with the given filters; the list of alerts Alertmanager returns."""
        params: dict = {key: _flag(value) for key, value in
                        (("active", active), ("silenced", silenced), ("inhibited", inhibited),
                         ("unprocessed", unprocessed)) if value is not None}
        if filter:
            params["filter"] = list(filter)
        response = requests.get(self.url + "/api/v2/alerts", params=params, timeout=5.0)
        response.raise_for_status()
        return response.json()

    def alerts_named(self, alertname: str, **filters) -> list[dict]:
        """The alerts whose alertname label is `alertname`."""
        return self.alerts(filter=[f'alertname="{alertname}"'], **filters)

    def _stop_process(self) -> None:
        """SIGTERM the process by PID, SIGKILL it if it lingers, and reap it."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.kill(process.pid, signal.SIGTERM)
            process.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=5.0)
        except ProcessLookupError:
            process.wait(timeout=5.0)

    def _cleanup(self) -> None:
        try:
            self._stop_process()
        finally:
            if self._dir is not None:
                self._dir.cleanup()
                self._dir = None

    def __exit__(self, *exc: object) -> None:
        self._cleanup()
