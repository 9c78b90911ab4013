"""The dashboard in a real headless browser: Debian's chromium (/usr/bin/chromium) driven by Playwright, against a
real PushApi on 127.0.0.1 (port 0) over an engine on a temp state file. Playwright drives an installed chromium
through its own protocol (no driver binary to match the browser's version, unlike Selenium's chromedriver)."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from test_api import api  # noqa: F401  (the fixture push stands on)
from test_dashboard import TOKEN, login_url, push  # noqa: F401  (push: the fixture, a PushApi on port 0)

CHROMIUM = Path("/usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"
                                                               " (apt-get install chromium)")
expect = sync_api.expect
TIMEOUT = 10.0
WAIT_MS = 10_000  # the page asks every 2 s


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser):
    context = browser.new_context()
    yield context
    context.close()


def base(push) -> str:
    return f"http://127.0.0.1:{push.port}"


def call(push, method: str, path: str, body=None) -> requests.Response:
    return requests.request(method, base(push) + path, json=body, headers={"Authorization": f"Bearer {TOKEN}"},
                            timeout=TIMEOUT)


def open_dashboard(push, context):
    page = context.new_page()
    page.goto(login_url(push))
    assert page.url == base(push) + "/dashboard"  # the code left the address bar
    return page


def card(page, event: str):
    return page.locator(f'#alerts li[data-event="{event}"]')


def test_the_page_lists_an_alert_raised_through_the_api(push, context):
    call(push, "POST", "/v1/alerts", {"event": "disk_full", "level": "error", "message": "disk at 96% on /",
                                      "context": {"mount": "/"}})
    page = open_dashboard(push, context)
    alert = card(page, "disk_full")
    expect(alert).to_contain_text("disk at 96% on /")
    expect(alert.locator(".level")).to_have_text("error")
    expect(alert).to_contain_text("seen 1 time")
    expect(alert).to_contain_text("mount=/")
    expect(page.locator('#incidents details[data-event="disk_full"]')).to_contain_text("active")
    expect(page.locator('#channels li[data-channel="slack"]')).to_contain_text("ok (last delivery")


def test_acknowledge_and_clear_work_by_click(push, engine, context):
    call(push, "POST", "/v1/alerts", {"event": "disk_full", "level": "warning", "message": "disk at 93%"})
    page = open_dashboard(push, context)
    alert = card(page, "disk_full")
    alert.get_by_role("button", name="Acknowledge: disk_full").click()
    expect(alert.locator(".badges")).to_contain_text("acknowledged")
    expect(alert.locator(".action-ack")).to_be_disabled()
    assert engine.active_events()[0].acknowledged
    timeline = page.locator('#incidents details[data-event="disk_full"]')
    timeline.locator("summary").click()
    expect(timeline.locator("ol")).to_contain_text("acknowledged")
    alert.get_by_role("button", name="Clear: disk_full").click()
    expect(alert).to_have_count(0, timeout=WAIT_MS)
    assert engine.active_events() == []
    expect(page.locator("#alerts-empty")).to_be_visible()
    expect(timeline.locator(".state")).to_contain_text("cleared")


def test_the_buttons_work_from_the_keyboard(push, engine, context):
    call(push, "POST", "/v1/alerts", {"event": "disk_full", "level": "warning", "message": "disk at 93%"})
    page = open_dashboard(push, context)
    expect(card(page, "disk_full")).to_be_visible()
    page.keyboard.press("Tab")  # the first focusable element: the first alert's Acknowledge
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Acknowledge: disk_full"
    page.keyboard.press("Enter")
    expect(card(page, "disk_full").locator(".action-ack")).to_have_text("Acknowledged")
    assert engine.active_events()[0].acknowledged


def test_mute_1_h_works_by_click(push, engine, context):
    call(push, "POST", "/v1/alerts", {"event": "disk_full", "level": "warning", "message": "disk at 93%"})
    page = open_dashboard(push, context)
    card(page, "disk_full").get_by_role("button", name="Mute 1 h: disk_full").click()
    expect(card(page, "disk_full").locator(".badges")).to_contain_text("muted until")
    until = engine.muted_until("disk_full")
    assert until is not None and until == pytest.approx(engine.clock.time() + 3600, abs=10)


def test_the_page_updates_live_when_an_alert_is_raised_after_it_loaded(push, context):
    page = open_dashboard(push, context)
    expect(page.locator("#alerts-empty")).to_be_visible()
    call(push, "POST", "/v1/alerts", {"event": "backup", "level": "critical", "message": "backup failed"})
    expect(card(page, "backup")).to_contain_text("backup failed", timeout=WAIT_MS)
    call(push, "POST", "/v1/alerts", {"event": "backup", "level": "critical", "message": "backup failed"})
    expect(card(page, "backup")).to_contain_text("seen 2 times", timeout=WAIT_MS)


def test_a_request_without_the_session_is_refused(push, context):
    page = context.new_page()
    answer = page.goto(base(push) + "/dashboard")
    assert answer is not None and answer.status == 403
    expect(page.locator("body")).to_contain_text("tray-alerts dashboard")
    state = page.request.get(base(push) + "/dashboard/api/state")
    assert state.status == 403 and state.json()["login"] is True


def test_the_one_time_code_cannot_be_used_twice(push, browser):
    url = login_url(push)
    first, second = browser.new_context(), browser.new_context()
    try:
        page = first.new_page()
        page.goto(url)
        expect(page.locator("h1")).to_have_text("tray-alerts")
        again = second.new_page()
        answer = again.goto(url)
        assert answer is not None and answer.status == 403
        expect(again.locator("body")).to_contain_text("used already or has expired")
        assert second.cookies() == []
        assert again.goto(base(push) + "/dashboard").status == 403
    finally:
        first.close()
        second.close()


class _Elsewhere(BaseHTTPRequestHandler):
    """Another site on this computer's loopback (another port): a page that tries to change the dashboard."""

    target = ""

    def do_GET(self) -> None:
        page = (f'<!doctype html><form id="form" method="post" action="{self.target}/dashboard/api/alerts/disk_full/ack">'
                '<button id="submit">go</button></form>'
                f'<script>fetch("{self.target}/dashboard/api/alerts/disk_full/clear", {{method: "POST",'
                ' mode: "no-cors", credentials: "include"}).then(() => document.title = "sent",'
                ' () => document.title = "failed");</script>').encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def elsewhere(push):
    handler = type("Elsewhere", (_Elsewhere,), {"target": base(push)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_a_cross_origin_post_with_the_session_cookie_is_refused_and_changes_nothing(push, engine, context, elsewhere):
    call(push, "POST", "/v1/alerts", {"event": "disk_full", "level": "warning", "message": "disk at 93%"})
    open_dashboard(push, context)
    assert [cookie["name"] for cookie in context.cookies(base(push))] == ["tray_alerts_session"]
    page = context.new_page()
    page.goto(elsewhere)
    expect(page).to_have_title("sent")  # the script's POST went out (its answer is not readable there)
    page.click("#submit")  # the form's POST: a navigation to the dashboard's answer
    page.wait_for_url(base(push) + "/dashboard/api/alerts/disk_full/ack")
    body = page.locator("body").inner_text()
    assert "refused" in body and "login" not in body  # the session was there; the origin is what failed
    [record] = engine.active_events()
    assert record.event == "disk_full" and not record.acknowledged


def test_the_page_is_usable_at_a_narrow_width_in_light_and_dark(push, browser):
    call(push, "POST", "/v1/alerts", {"event": "a_rather_long_event_name/with/parts", "level": "warning",
                                      "message": "disk at 93% on /srv/data/and/a/long/path/that/wraps"})
    for scheme in ("light", "dark"):
        context = browser.new_context(viewport={"width": 360, "height": 740}, color_scheme=scheme)
        try:
            page = open_dashboard(push, context)
            alert = card(page, "a_rather_long_event_name/with/parts")
            expect(alert).to_be_visible()
            assert page.evaluate("document.documentElement.scrollWidth") <= 360
            box = alert.get_by_role("button", name="Clear: a_rather_long_event_name/with/parts").bounding_box()
            assert box is not None and box["x"] + box["width"] <= 360
            background = page.evaluate("getComputedStyle(document.body).backgroundColor")
            dark = sum(int(part) for part in background[4:-1].split(",")[:3]) < 3 * 128
            assert dark == (scheme == "dark"), background
        finally:
            context.close()


def test_a_chart_renders_for_a_numeric_monitor_with_its_uptime(push, engine, context):
    import time

    from tray_alerts.dashboard.monitors import MonitorPanel
    from tray_alerts.model import Level
    from tray_alerts.monitors.base import Reading
    from tray_alerts.monitors.runner import MonitorStatus
    from tray_alerts.readings import record

    now = time.time()
    with engine.store.write() as tx:  # a day of disk readings, one every 20 minutes, two of them over the line
        for step in range(72):
            used = 80.0 + step / 6
            record(tx, "disk_root", now - 86400 + step * 1200 + 60, used, used >= 91.6)
        record(tx, "api", now - 600, None, True)  # a check that failed: no value, no chart
    statuses = [MonitorStatus("disk_root", "disk", "disk /", Reading(Level.WARNING, "at 91.8% (warning at 90%)",
                                                                     91.8), now),
                MonitorStatus("api", "http", "GET http://localhost:8080/health", Reading(Level.ERROR, "refused"), now)]
    push.dashboard.monitors = MonitorPanel(lambda: statuses, engine.store, engine.clock)
    page = open_dashboard(push, context)
    disk = page.locator('#monitors li[data-monitor="disk_root"]')
    expect(disk.locator(".level")).to_have_text("warning")
    expect(disk).to_contain_text("disk / at 91.8% (warning at 90%)")
    expect(disk.locator(".uptime")).to_have_text("up 97.2 % (24 h) · 97.2 % (7 d)")
    line = disk.locator("svg.chart path.line")
    expect(line).to_have_count(1)
    assert line.get_attribute("d").count("L") >= 60  # a point per slot with readings, joined
    expect(disk.locator("svg.chart line.bad-tick")).to_have_count(2)
    expect(disk.locator(".range")).to_have_text("80 – 91.83 over 24 h · now 91.8")
    api = page.locator('#monitors li[data-monitor="api"]')
    expect(api.locator(".level")).to_have_text("error")
    expect(api.locator(".chart-box")).to_be_hidden()


def test_opened_at_one_alert_it_shows_that_alert_and_opens_its_timeline(push, context):
    for event in ("first", "disk/full"):
        call(push, "POST", "/v1/alerts", {"event": event, "level": "error", "message": f"{event} is bad"})
    page = context.new_page()
    page.goto(login_url(push) + "#alert=disk%2Ffull")  # as a pop-up's Open makes it (App.open_dashboard)
    expect(card(page, "disk/full")).to_have_class("level-error focused")
    expect(page.locator('#incidents details[data-event="disk/full"]')).to_have_attribute("open", "")
    expect(card(page, "disk/full").get_by_role("button", name="Acknowledge: disk/full")).to_be_focused()
    expect(page.locator('#incidents details[data-event="first"]')).not_to_have_attribute("open", "")
