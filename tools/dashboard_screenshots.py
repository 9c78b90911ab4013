"""Screenshots of the dashboard, light and dark, with a few alerts: docs/dashboard-light.png, docs/dashboard-dark.png.

Runs a PushApi over an engine on a temporary state file (channels that record, one that fails), raises a few alerts
through the API, keeps a day of readings for three monitors, logs in with a one-time code and photographs the page
in Debian's chromium through Playwright:

    PYTHONPATH=. python tools/dashboard_screenshots.py
"""
from __future__ import annotations

import math
import sys
import tempfile
import time
from pathlib import Path

import requests
from playwright.sync_api import sync_playwright

from tray_alerts import DeliveryError, Engine
from tray_alerts.api import PushApi
from tray_alerts.dashboard.monitors import MonitorPanel
from tray_alerts.model import Level
from tray_alerts.monitors.base import Reading
from tray_alerts.monitors.runner import MonitorStatus
from tray_alerts.readings import record

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
TOKEN = "screenshot-token"


class Quiet:
    """A channel that takes every alert."""

    def __init__(self, name: str):
        self.name = name

    def send(self, alert: object) -> None:
        pass


class Down(Quiet):
    """A channel whose server refuses: its notifications wait in the outbox to be retried."""

    def send(self, alert: object) -> None:
        raise DeliveryError("connection refused by hooks.slack.com", retryable=True)


def keep_a_day_of_readings(engine: Engine) -> list[MonitorStatus]:
    """A day of readings every 10 minutes: the disk filling, the API's latency with an outage, the load's day."""
    now = time.time()
    with engine.store.write() as tx:
        for step in range(144):
            at = now - 86400 + step * 600
            record(tx, "disk_root", at, 78 + 18 * step / 143, 78 + 18 * step / 143 >= 95)
            down = 60 <= step < 64
            record(tx, "api", at, None if down else 0.12 + 0.05 * math.sin(step / 7), down)
            record(tx, "load", at, 0.6 + 1.8 * max(0.0, math.sin((step - 50) / 30)), False)
    return [MonitorStatus("disk_root", "disk", "disk /", Reading(Level.ERROR, "at 96% (error at 95%)", 96.0), now),
            MonitorStatus("api", "http", "GET http://127.0.0.1:8000/health", Reading(None, "200 in 118 ms", 0.118),
                          now),
            MonitorStatus("load", "load", "load (5 min)", Reading(None, "1.42 (warning at 4)", 1.42), now)]


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        channels = {"log": Quiet("log"), "desktop": Quiet("desktop"), "slack": Down("slack"), "email": Quiet("email")}
        routes = {"info": ["log", "desktop"], "warning": ["log", "desktop", "slack"],
                  "error": ["log", "desktop", "slack", "email"], "critical": ["log", "desktop", "slack", "email"]}
        engine = Engine(channels, routes, Path(folder) / "state.db", delivery_timeout=2.0)
        api = PushApi(engine, TOKEN, port=0)
        statuses = keep_a_day_of_readings(engine)
        api.dashboard.monitors = MonitorPanel(lambda: statuses, engine.store, engine.clock)
        api.start()
        try:
            base = f"http://127.0.0.1:{api.port}"
            auth = {"Authorization": f"Bearer {TOKEN}"}

            def post(path: str, body: dict) -> None:
                requests.post(base + path, json=body, headers=auth, timeout=10).raise_for_status()

            post("/v1/alerts?wait=2", {"event": "disk_root", "level": "warning", "message": "disk at 91% on /",
                                        "context": {"mount": "/", "used": "91%"}})
            post("/v1/alerts?wait=2", {"event": "disk_root", "level": "error", "message": "disk at 96% on /",
                                        "context": {"mount": "/", "used": "96%"}})
            post("/v1/alerts?wait=2", {"event": "backup/nightly", "level": "critical",
                                        "message": "backup failed: nas unreachable", "context": {"host": "nas"}})
            post("/v1/alerts/backup%2Fnightly/ack", {})
            post("/v1/alerts?wait=2", {"event": "router", "level": "info", "message": "uplink flapping"})
            post("/v1/alerts?wait=2", {"event": "vpn", "level": "warning", "message": "tunnel down",
                                        "depends_on": ["router"]})
            post("/v1/alerts?wait=2", {"event": "api_latency", "level": "warning", "message": "p95 1.8 s"})
            post("/v1/alerts/api_latency/clear?wait=2", {"message": "p95 back to 120 ms"})
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM)
                for scheme in ("light", "dark"):
                    context = browser.new_context(viewport={"width": 900, "height": 1100}, color_scheme=scheme)
                    page = context.new_page()
                    url = requests.post(base + "/v1/dashboard/login", headers=auth, timeout=10).json()["url"]
                    page.goto(url)
                    page.locator("#alerts li").first.wait_for()
                    page.locator("#incidents details").first.evaluate("node => node.open = true")
                    page.wait_for_timeout(300)
                    page.screenshot(path=str(ROOT / "docs" / f"dashboard-{scheme}.png"), full_page=True)
                    context.close()
                browser.close()
        finally:
            api.stop()
            engine.close()
    print("wrote docs/dashboard-light.png and docs/dashboard-dark.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
