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
import subprocess
from pathlib import Path

import pytest
import requests

from helpers_net import free_port  # noqa: F401 (the tests take it from here too)
from peer_process import PeerProcess

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


def _flag(value: bool | None) -> str | None:
    return None if value is None else ("true" if value else "false")


class AlertmanagerPeer(PeerProcess):
    """Context manager running one Alertmanager; `.url` is its base URL, `.alerts()` reads its alerts."""

    name = "Alertmanager"
    log_name = "alertmanager.log"

    def __init__(self, resolve_timeout: str = "5m", port: int | None = None, attempts: int = 3,
                 config: str | None = None):
        super().__init__(port, attempts)
        self.resolve_timeout = resolve_timeout
        self.config = config  # full alertmanager.yml text; None: CONFIG with resolve_timeout

    def __enter__(self) -> AlertmanagerPeer:
        self.binary = skip_unless_alertmanager()
        return super().__enter__()

    def launch(self, root: Path, attempt: int) -> subprocess.Popen:
        """Alertmanager on 127.0.0.1:port with its own storage, no cluster listener."""
        config = root / "am.yml"
        config.write_text(self.config if self.config is not None
                          else CONFIG.format(resolve_timeout=self.resolve_timeout))
        storage = root / f"data-{attempt}"
        storage.mkdir()
        with open(root / self.log_name, "ab") as log:
            return subprocess.Popen(
                [self.binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{self.port}",
                 f"--storage.path={storage}", "--cluster.listen-address=", "--log.level=warn"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=root)

    def wait_ready(self) -> str:
        """'' once GET /-/ready answers 200; else why not (process exited, or timed out)."""
        return self.wait_http_ready("/-/ready", READY_TIMEOUT)

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
