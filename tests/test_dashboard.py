"""The dashboard's decisions (login codes, sessions, same origin) with a fake clock, and its HTTP answers from a
real PushApi on 127.0.0.1 (port 0), driven with `requests` the way a browser would send them."""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from urllib.parse import urlsplit

import pytest
import requests

from test_api import TOKEN, api  # noqa: F401  (api: the fixture)
from tray_alerts.api import PushApi
from tray_alerts.clock import FakeClock
from tray_alerts.dashboard import CLEARED_HERE
from tray_alerts.dashboard.sessions import (COOKIE, LOGIN_LIFETIME, MAX_SESSIONS, SESSION_IDLE, SESSION_MAX,
                                            Session, Sessions, code_usable, loggable, origin_refusal, own_origin,
                                            session_id, session_usable)
from tray_alerts.dashboard.views import latest_incident, why_waiting
from tray_alerts.model import Alert, Level
from tray_alerts.pipeline import Delivery
from tray_alerts.state import HistoryEntry

TIMEOUT = 5.0


# --- the pure decisions -------------------------------------------------------------------------------------

def test_a_login_code_is_usable_for_two_minutes_only():
    assert code_usable(100.0, 100.0) and code_usable(100.0, 100.0 + LOGIN_LIFETIME - 0.01)
    assert not code_usable(100.0, 100.0 + LOGIN_LIFETIME)
    assert not code_usable(None, 100.0)
    assert not code_usable(100.0, 99.0)  # (a clock that went back: not trusted)


def test_a_session_ends_when_idle_or_old():
    assert session_usable(Session(0.0, 0.0), SESSION_IDLE - 1)
    assert not session_usable(Session(0.0, 0.0), SESSION_IDLE)
    assert session_usable(Session(0.0, SESSION_MAX - 10), SESSION_MAX - 1)
    assert not session_usable(Session(0.0, SESSION_MAX - 10), SESSION_MAX)
    assert not session_usable(None, 0.0)


@pytest.mark.parametrize("host, port, origin", [
    ("127.0.0.1:9977", 9977, "http://127.0.0.1:9977"), ("LocalHost:9977", 9977, "http://localhost:9977"),
    ("[::1]:9977", 9977, "http://[::1]:9977"), ("127.0.0.1:9978", 9977, None), ("127.0.0.1", 9977, None),
    ("127.0.0.1", 80, "http://127.0.0.1"), (None, 9977, None), ("", 9977, None),
])
def test_own_origin_is_the_host_asked_for_on_this_port(host, port, origin):
    assert own_origin(host, port) == origin


OWN = "http://127.0.0.1:9977"


@pytest.mark.parametrize("method, origin, site, refused", [
    ("POST", OWN, "same-origin", None),
    ("POST", OWN, None, None),  # a browser without Sec-Fetch-Site
    ("POST", "HTTP://127.0.0.1:9977", None, None),
    ("POST", "http://127.0.0.1:8000", "same-site", "another site"),
    ("POST", "http://127.0.0.1:8000", None, "not from http://127.0.0.1:8000"),
    ("POST", "https://evil.example", "cross-site", "another site"),
    ("POST", "null", None, "not from null"),
    ("POST", None, None, "needs the Origin header"),
    ("POST", OWN, "none", "another site"),
    ("GET", None, None, None),
    ("GET", None, "same-origin", None),
    ("GET", None, "cross-site", "another site"),
])
def test_origin_refusal(method, origin, site, refused):
    reason = origin_refusal(method, origin, site, OWN)
    assert (reason is None) if refused is None else (reason is not None and refused in reason)


def test_a_post_is_refused_when_the_host_gives_no_origin_of_ours():
    assert origin_refusal("POST", OWN, "same-origin", None) is not None


def test_the_session_cookie_is_found_among_others():
    assert session_id([f"theme=dark; {COOKIE}=abc; other=x"]) == "abc"
    assert session_id(["a=1", f"{COOKIE}=def"]) == "def"
    assert session_id([f"{COOKIE}="]) is None and session_id(["x=1"]) is None and session_id([]) is None
    assert session_id([f"not_{COOKIE}=abc"]) is None


def test_loggable_masks_login_codes():
    assert loggable("GET /dashboard?login=s3cr3t-c0de HTTP/1.1") == "GET /dashboard?login=*** HTTP/1.1"
    assert loggable("/dashboard?x=1&login=abc&y=2") == "/dashboard?x=1&login=***&y=2"
    assert loggable("/v1/alerts") == "/v1/alerts"


def test_sessions_use_a_code_once_and_expire_both_with_the_clock():
    clock = FakeClock()
    sessions = Sessions(clock)
    code = sessions.issue_code()
    opened = sessions.redeem(code)
    assert opened and sessions.check(opened)
    assert sessions.redeem(code) is None  # used up
    late = sessions.issue_code()
    clock.advance(LOGIN_LIFETIME)
    assert sessions.redeem(late) is None  # expired
    clock.advance(SESSION_IDLE - LOGIN_LIFETIME - 1)
    assert sessions.check(opened)  # used just before its idle time: kept open for another hour
    clock.advance(SESSION_IDLE - 1)
    assert sessions.check(opened)
    clock.advance(SESSION_IDLE)
    assert not sessions.check(opened) and not sessions.check(opened)
    assert not sessions.check(None) and not sessions.check("made-up")


def test_a_session_in_use_still_ends_a_day_after_its_login():
    clock = FakeClock()
    sessions = Sessions(clock)
    opened = sessions.redeem(sessions.issue_code())
    for _ in range(int(SESSION_MAX // 1800) - 1):
        clock.advance(1800)
        assert sessions.check(opened)
    clock.advance(1800)
    assert not sessions.check(opened)


def test_sessions_are_bounded_the_one_used_longest_ago_ends_first():
    clock = FakeClock()
    sessions = Sessions(clock)
    first = sessions.redeem(sessions.issue_code())
    others = [sessions.redeem(sessions.issue_code()) for _ in range(MAX_SESSIONS - 1)]
    assert sessions.check(first)  # used now: the others are older
    sessions.redeem(sessions.issue_code())
    assert len(sessions) == MAX_SESSIONS
    assert sessions.check(first) and not sessions.check(others[0]) and sessions.check(others[1])


def _entry(id_, kind, channel=None, ok=None):
    return HistoryEntry(id_, datetime.fromtimestamp(1000 + id_, timezone.utc), "e", kind, Level.WARNING, "m",
                        channel, ok, "")


def test_latest_incident_goes_back_to_the_latest_firing():
    newest_first = [_entry(7, "cleared"), _entry(6, "recovery", "log", True), _entry(5, "acknowledged"),
                    _entry(4, "delivery", "log", True), _entry(3, "fired"), _entry(2, "cleared"), _entry(1, "fired")]
    assert [entry.id for entry in latest_incident(newest_first)] == [3, 4, 5, 6, 7]
    assert [entry.id for entry in latest_incident(newest_first[:3])] == [5, 6, 7]  # its firing beyond what was read


@pytest.mark.parametrize("hold, error, not_before, words", [
    ("retry", "HTTP 503", 0, "failed, retrying: HTTP 503"), ("mute", "", 0, "muted"), ("snooze", "", 0, "snoozed"),
    ("group", "", 0, "one message"), ("", "", 2000.0, "waiting for its turn"), ("", "", 0, "due now"),
    ("quiet", "held for quiet hours until 07:00", 9000.0, "held for quiet hours until 07:00"),
    ("quiet", "", 9000.0, "held for the channel's quiet hours"),
])
def test_why_a_row_waits(hold, error, not_before, words):
    row = Delivery(1, "slack", "e", "ep", "firing", Alert("e", Level.WARNING, "m"), hold=hold, last_error=error,
                   not_before=not_before)
    assert words in why_waiting(row, 1000.0)


# --- over HTTP ------------------------------------------------------------------------------------------------

@pytest.fixture
def push(api):
    """test_api's running PushApi (port 0, its token)."""
    return api.push


def _base(push):
    return f"http://127.0.0.1:{push.port}"


def login_url(push) -> str:
    answer = requests.post(_base(push) + "/v1/dashboard/login", headers={"Authorization": f"Bearer {TOKEN}"},
                           timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    return answer.json()["url"]


def logged_in(push) -> requests.Session:
    browser = requests.Session()
    answer = browser.get(login_url(push), allow_redirects=False, timeout=TIMEOUT)
    assert answer.status_code == 303 and answer.headers["Location"] == "/dashboard"
    return browser


def same_origin(push) -> dict:
    return {"Origin": _base(push), "Sec-Fetch-Site": "same-origin"}


def test_the_login_endpoint_needs_the_token_and_gives_a_one_time_address(push):
    refused = requests.post(_base(push) + "/v1/dashboard/login", timeout=TIMEOUT)
    assert refused.status_code == 401
    first, second = login_url(push), login_url(push)
    parts = urlsplit(first)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{_base(push)}/dashboard"
    assert parts.query.startswith("login=") and len(parts.query) > 40 and first != second


def test_a_login_sets_a_strict_http_only_cookie_and_sends_the_code_out_of_the_address(push):
    answer = requests.get(login_url(push), allow_redirects=False, timeout=TIMEOUT)
    assert answer.status_code == 303 and answer.headers["Location"] == "/dashboard"
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= {part.strip() for part in cookie.split(";")}
    assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]


def test_a_code_works_once(push):
    url = login_url(push)
    assert requests.get(url, allow_redirects=False, timeout=TIMEOUT).status_code == 303
    again = requests.get(url, allow_redirects=False, timeout=TIMEOUT)
    assert again.status_code == 403 and "Set-Cookie" not in again.headers
    assert "used already or has expired" in again.text and "tray-alerts dashboard" in again.text


def test_a_code_expires_after_two_minutes(state_path, channels):
    from tray_alerts import Engine

    clock = FakeClock()
    engine = Engine(channels, {"info": ["log"]}, state_path, clock=clock, retry_in_background=False)
    api = PushApi(engine, TOKEN, port=0)
    api.start()
    try:
        url = login_url(api)
        clock.advance(LOGIN_LIFETIME)
        assert requests.get(url, allow_redirects=False, timeout=TIMEOUT).status_code == 403
    finally:
        api.stop()
        engine.close()


@pytest.mark.parametrize("path", ["/dashboard", "/dashboard/app.js", "/dashboard/style.css", "/dashboard/api/state",
                                  "/dashboard/nowhere"])
def test_nothing_of_the_dashboard_is_served_without_a_session(push, path):
    answer = requests.get(_base(push) + path, headers={"Cookie": f"{COOKIE}=made-up"}, timeout=TIMEOUT)
    assert answer.status_code == 403
    assert "tray-alerts" not in answer.text or "login" in answer.text
    page = requests.get(_base(push) + "/dashboard", timeout=TIMEOUT)
    assert "text/html" in page.headers["Content-Type"] and "tray-alerts dashboard" in page.text


def test_the_page_and_its_files_are_served_with_a_session(push):
    browser = logged_in(push)
    for path, kind, text in (("/dashboard", "text/html", "<title>tray-alerts"),
                             ("/dashboard/app.js", "text/javascript", "/dashboard/api/state"),
                             ("/dashboard/style.css", "text/css", "prefers-color-scheme: dark")):
        answer = browser.get(_base(push) + path, timeout=TIMEOUT)
        assert answer.status_code == 200 and answer.headers["Content-Type"].startswith(kind) and text in answer.text
        assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_the_state_lists_alerts_incidents_outbox_and_channels(push, engine):
    engine.raise_alert("disk_full", "warning", "disk at 93%", mount="/")
    engine.acknowledge("disk_full")
    browser = logged_in(push)
    state = browser.get(_base(push) + "/dashboard/api/state", headers={"Sec-Fetch-Site": "same-origin"},
                        timeout=TIMEOUT).json()
    [alert] = state["alerts"]
    assert alert["event"] == "disk_full" and alert["acknowledged"] and alert["context"] == {"mount": "/"}
    [incident] = state["incidents"]
    kinds = [(line["kind"], line["channel"]) for line in incident["lines"]]
    assert kinds[0] == ("fired", None) and ("acknowledged", None) in kinds and ("delivery", "slack") in kinds
    assert {channel["name"] for channel in state["channels"]} == {"log", "desktop", "slack", "email", "sms"}
    assert next(c for c in state["channels"] if c["name"] == "slack")["state"].startswith("ok (last delivery")
    assert state["outbox"] == [] and state["outbox_total"] == 0


def test_acknowledge_mute_and_clear_from_the_page(push, engine):
    engine.raise_alert("disk_full", "warning", "disk at 93%")
    browser = logged_in(push)
    post = lambda action: browser.post(f"{_base(push)}/dashboard/api/alerts/disk_full/{action}",  # noqa: E731
                                       headers=same_origin(push), timeout=TIMEOUT)
    assert post("ack").json()["status"] == "acknowledged" and engine.active_events()[0].acknowledged
    muted = post("mute").json()["muted_until"]
    assert muted == pytest.approx(engine.clock.time() + 3600, abs=5) and engine.muted_until("disk_full") == muted
    assert post("clear").json()["status"] == "cleared" and engine.active_events() == []
    assert any(entry.kind == "cleared" and entry.message == CLEARED_HERE for entry in engine.history(10, "disk_full"))
    assert post("ack").status_code == 409


@pytest.mark.parametrize("headers", [{}, {"Origin": "http://127.0.0.1:1"}, {"Origin": "http://evil.example"},
                                     {"Origin": "null"}, {"Sec-Fetch-Site": "same-site"}])
def test_a_change_from_another_origin_is_refused_and_changes_nothing(push, engine, headers):
    engine.raise_alert("disk_full", "warning", "disk at 93%")
    browser = logged_in(push)
    if "Sec-Fetch-Site" in headers:
        headers = {**headers, "Origin": _base(push)}
    answer = browser.post(f"{_base(push)}/dashboard/api/alerts/disk_full/ack", headers=headers, timeout=TIMEOUT)
    assert answer.status_code == 403 and answer.json()["error"].startswith("refused")
    assert not engine.active_events()[0].acknowledged


def test_a_change_without_a_session_is_refused(push, engine):
    engine.raise_alert("disk_full", "warning", "disk at 93%")
    answer = requests.post(f"{_base(push)}/dashboard/api/alerts/disk_full/clear", headers=same_origin(push),
                           timeout=TIMEOUT)
    assert answer.status_code == 403 and answer.json()["login"] is True
    assert [record.event for record in engine.active_events()] == ["disk_full"]


def test_the_host_check_applies_to_the_dashboard(push):
    url = login_url(push)
    answer = requests.get(url.replace(f"127.0.0.1:{push.port}", f"127.0.0.1:{push.port}"), allow_redirects=False,
                          headers={"Host": f"rebound.example:{push.port}"}, timeout=TIMEOUT)
    assert answer.status_code == 403 and "not this computer" in answer.json()["error"]
    assert requests.get(url, allow_redirects=False, timeout=TIMEOUT).status_code == 303  # the refusal used nothing


def test_codes_and_sessions_never_reach_the_log(push, engine, caplog):
    caplog.set_level(logging.DEBUG)
    url = login_url(push)
    code = urlsplit(url).query.partition("=")[2]
    answer = requests.get(url, allow_redirects=False, timeout=TIMEOUT)
    session = answer.cookies[COOKIE]
    requests.get(_base(push) + "/dashboard", cookies={COOKIE: session}, timeout=TIMEOUT)
    logged = "\n".join(record.getMessage() for record in caplog.records if record.name.startswith("tray_alerts"))
    assert "login=***" in logged  # (urllib3, the test's own client, logs what it asked for: not the app's log)
    assert code not in logged and session not in logged


def test_the_monitors_panel_reads_charts_again_only_once_they_are_stale(tmp_path):
    from tray_alerts.clock import FakeClock
    from tray_alerts.dashboard.monitors import CHARTS_EVERY, MonitorPanel
    from tray_alerts.model import Level
    from tray_alerts.monitors.base import Reading
    from tray_alerts.monitors.runner import MonitorStatus
    from tray_alerts.readings import record
    from tray_alerts.state import StateStore

    clock = FakeClock()
    store = StateStore(tmp_path / "state.db")
    now = clock.time()
    status = MonitorStatus("load", "load", "load", Reading(Level.WARNING, "5.2", 5.2), now, held_until=now + 60)
    panel = MonitorPanel(lambda: [status], store, clock)
    try:
        with store.write() as tx:
            record(tx, "load", now - 60, 5.2, True)
        (card,) = panel.view()
        assert (card["name"], card["level"], card["value"], card["held_until"]) == ("load", "warning", 5.2, now + 60)
        assert (card["up_day"], card["low"], card["high"], len(card["points"])) == (0.0, 5.2, 5.2, 1)
        with store.write() as tx:
            record(tx, "load", now - 30, 1.0, False)
        assert len(panel.view()[0]["points"]) == 1  # the chart is 30 s fresh: not read again
        clock.advance(CHARTS_EVERY)
        assert panel.view()[0]["up_day"] == 0.5
    finally:
        store.close()
