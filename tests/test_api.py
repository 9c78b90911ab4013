"""The push API as a real HTTP server on 127.0.0.1 (port 0 = a free one), driven with `requests`.

Each test gets its own PushApi over an Engine on a temp state file with RecordingChannels (conftest's fixtures).
"""
from __future__ import annotations

import json
import os
import socket
import stat
import threading
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import psutil
import pytest
import requests

from conftest import ROUTES, HangingChannel
from polling import wait_until
from tray_alerts import Engine
from tray_alerts.api import (MAX_BODY, TOKEN_FILE, PushApi, _am_event, _am_fingerprint, _am_labels,
                             load_or_create_token)
from tray_alerts.model import MAX_EVENT_LENGTH, Level, check_event

TOKEN = "test-token-0123456789"
TIMEOUT = 5.0


class Api:
    """A running PushApi plus helpers to call it."""

    def __init__(self, push: PushApi, pings: list[str]):
        self.push = push
        self.pings = pings
        self.base = f"http://127.0.0.1:{push.port}"

    def call(self, method: str, path: str, token: str | None = TOKEN, **kwargs) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, self.base + path, headers=headers, timeout=TIMEOUT, **kwargs)

    def post(self, path: str, body=None, **kwargs) -> requests.Response:
        return self.call("POST", path, json=body, **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.call("GET", path, **kwargs)


def stop_quickly(push: PushApi) -> None:
    """push.stop(), without waiting out serve_forever's 0.5 s poll: connections wake its selector."""
    stopper = threading.Thread(target=push.stop, daemon=True)
    stopper.start()
    deadline = time.monotonic() + 5.0
    while stopper.is_alive() and time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", push.port), timeout=0.5).close()
        except OSError:
            pass
        stopper.join(0.02)
    assert not stopper.is_alive(), "the push API did not stop"


@pytest.fixture
def api(engine):
    pings: list[str] = []
    push = PushApi(engine, TOKEN, port=0, heartbeats=lambda: {"nightly"}, on_ping=pings.append)
    push.start()
    yield Api(push, pings)
    stop_quickly(push)


def raise_body(event="disk_full", level="warning", message="disk at 93% on /", **context) -> dict:
    body = {"event": event, "level": level, "message": message}
    if context:
        body["context"] = context
    return body


def error_of(response: requests.Response) -> str:
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()["error"]


def nothing_sent(channels) -> bool:
    return all(not channel.sent for channel in channels.values())


# --- authentication -----------------------------------------------------------------------------------------

ENDPOINTS = [
    ("GET", "/v1/alerts", None),
    ("POST", "/v1/alerts", raise_body()),
    ("POST", "/v1/alerts/disk_full/clear", {"message": "ok"}),
    ("POST", "/v1/ping/nightly", None),
    ("POST", "/v1/alertmanager", {"version": "4", "alerts": [{"status": "firing", "labels": {"alertname": "X"}}]}),
    ("GET", "/v1/status", None),
    ("GET", "/v1/nowhere", None),
]


@pytest.mark.parametrize("method, path, body", ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS])
@pytest.mark.parametrize("token", [None, "wrong-token", "", TOKEN + "x"], ids=["none", "wrong", "empty", "longer"])
def test_every_endpoint_needs_the_token(api, engine, channels, method, path, body, token):
    engine.raise_alert("disk_full", "warning", "already active")  # so an unauthorised clear would have work to do
    for channel in channels.values():
        channel.sent.clear()
    response = api.call(method, path, token=token, json=body)
    assert response.status_code == 401
    assert "token" in error_of(response)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert [record.event for record in engine.active_events()] == ["disk_full"]
    assert engine.active_events()[0].seen == 1
    assert engine.last_ping("nightly") is None and api.pings == []
    assert nothing_sent(channels)


@pytest.mark.parametrize("header", [f"Basic {TOKEN}", TOKEN, f"Token {TOKEN}"])
def test_only_the_bearer_scheme_is_accepted(api, engine, header):
    response = api.call("POST", "/v1/alerts", token=None, headers={"Authorization": header}, json=raise_body())
    assert response.status_code == 401 and engine.active() == []


def test_bearer_scheme_is_case_insensitive(api):
    response = api.call("GET", "/v1/status", token=None, headers={"Authorization": f"bearer {TOKEN}"})
    assert response.status_code == 200 and response.json() == {"app": "tray-alerts", "active": 0}


def test_a_refused_body_does_not_poison_the_keep_alive_connection(api, engine):
    """A 401 answered before the body is read must not leave that body to be parsed as the next request."""
    with requests.Session() as session:
        refused = session.post(api.base + "/v1/alerts", json=raise_body(), timeout=TIMEOUT,
                               headers={"Authorization": "Bearer wrong"})
        assert refused.status_code == 401
        after = session.get(api.base + "/v1/status", timeout=TIMEOUT, headers={"Authorization": f"Bearer {TOKEN}"})
        assert after.status_code == 200 and after.json()["app"] == "tray-alerts"
        raised = session.post(api.base + "/v1/alerts", json=raise_body(), timeout=TIMEOUT,
                              headers={"Authorization": f"Bearer {TOKEN}"})
        assert raised.status_code == 200 and raised.json()["status"] == "fired"
    assert [alert.event for alert in engine.active()] == ["disk_full"]


# --- raise, debounce, escalate, list ----------------------------------------------------------------------------

def test_raise_fires_once_then_debounces_then_escalates(api, engine, channels):
    first = api.post("/v1/alerts?wait=5", raise_body(mount="/", host="web-01"))
    assert first.status_code == 200
    reply = first.json()
    assert reply["event"] == "disk_full" and reply["status"] == "fired"
    assert reply["delivered"] == dict.fromkeys(ROUTES["warning"], True)
    assert set(reply["details"]) == set(ROUTES["warning"])
    sent = channels["slack"].sent
    assert len(sent) == 1
    assert (sent[0].event, sent[0].level, sent[0].message, sent[0].context) == (
        "disk_full", Level.WARNING, "disk at 93% on /", {"mount": "/", "host": "web-01"})

    again = api.post("/v1/alerts", raise_body())
    assert again.status_code == 200
    assert again.json()["status"] == "debounced" and again.json()["delivered"] == {}
    lower = api.post("/v1/alerts", raise_body(level="info"))
    assert lower.json()["status"] == "debounced"
    assert channels["log"].kinds() == ["fired:warning"]

    higher = api.post("/v1/alerts?wait=5", raise_body(level="critical", message="disk at 99% on /"))
    assert higher.status_code == 200
    assert higher.json()["status"] == "escalated"
    assert higher.json()["delivered"] == dict.fromkeys(ROUTES["critical"], True)
    assert channels["log"].kinds() == ["fired:warning", "fired:critical"]
    assert channels["sms"].kinds() == ["fired:critical"]
    (record,) = engine.active_events()
    assert record.level is Level.CRITICAL and record.seen == 4


def test_a_raise_answers_once_stored_while_a_channel_still_hangs(state_path):
    hanging = HangingChannel("pager")
    with Engine({"pager": hanging}, {"error": ["pager"]}, state_path) as engine:
        push = PushApi(engine, TOKEN, port=0)
        push.start()
        try:
            reply = Api(push, []).post("/v1/alerts", raise_body(level="error")).json()
            assert hanging.sent == []  # still hanging: the answer did not wait for it
            assert reply["status"] == "fired" and reply["stored"] is True
            assert reply["channels"] == {"pager": {"status": "pending", "detail": reply["channels"]["pager"]["detail"]}}
            assert reply["delivered"] == {"pager": False}
            hanging.release.set()
            wait_until(lambda: hanging.sent)
        finally:
            stop_quickly(push)


@pytest.mark.parametrize("wait", ["soon", "-1", "61"])
def test_a_bad_wait_is_400_naming_it(api, engine, wait):
    response = api.post(f"/v1/alerts?wait={wait}", raise_body())
    assert response.status_code == 400 and "'wait'" in error_of(response)
    assert engine.active() == []


def test_level_names_are_case_insensitive(api, engine):
    assert api.post("/v1/alerts", raise_body(level="ERROR")).json()["status"] == "fired"
    assert engine.active()[0].level is Level.ERROR


def test_get_lists_active_alerts_with_since_and_seen(api, engine):
    assert api.get("/v1/alerts").json() == []
    before = time.time()
    api.post("/v1/alerts", raise_body(mount="/"))
    api.post("/v1/alerts", raise_body())
    api.post("/v1/alerts", raise_body())
    api.post("/v1/alerts", raise_body(event="backup_old", level="critical", message="backup 3 days old"))
    after = time.time()
    response = api.get("/v1/alerts")
    assert response.status_code == 200
    listed = response.json()
    assert [item["event"] for item in listed] == ["backup_old", "disk_full"]  # worst first
    disk = listed[1]
    assert disk["level"] == "warning" and disk["message"] == "disk at 93% on /"
    assert disk["context"] == {"mount": "/"} and disk["resolved"] is False
    assert disk["seen"] == 3 and listed[0]["seen"] == 1
    assert before - 1 <= disk["since"] <= disk["last_seen"] <= after + 1
    datetime.fromisoformat(disk["at"])  # ISO 8601
    assert api.get("/v1/status").json() == {"app": "tray-alerts", "active": 2}


# --- clear ------------------------------------------------------------------------------------------------------

def test_clear_sends_the_recovery_and_clearing_again_is_not_active(api, engine, channels):
    api.post("/v1/alerts?wait=5", raise_body(level="error"))
    response = api.post("/v1/alerts/disk_full/clear?wait=5", {"message": "back to 60%"})
    assert response.status_code == 200
    reply = response.json()
    assert reply["status"] == "cleared"
    assert reply["delivered"] == dict.fromkeys(sorted(ROUTES["error"]), True)
    for name in ROUTES["error"]:
        recovery = channels[name].sent[-1]
        assert recovery.resolved and recovery.message == "back to 60%" and recovery.level is Level.ERROR
    assert channels["sms"].sent == []
    assert engine.active() == []

    again = api.post("/v1/alerts/disk_full/clear")
    assert again.status_code == 200
    assert again.json()["status"] == "not active" and again.json()["delivered"] == {}
    assert api.post("/v1/alerts/never_raised/clear").json()["status"] == "not active"
    assert channels["log"].kinds() == ["fired:error", "resolved:error"]


def test_clear_without_body_uses_the_default_message(api, channels):
    api.post("/v1/alerts?wait=5", raise_body(level="info"))
    assert api.call("POST", "/v1/alerts/disk_full/clear?wait=5").json()["status"] == "cleared"
    assert channels["log"].sent[-1].message == "recovered"


def test_clear_with_a_non_string_message_is_400(api, engine):
    api.post("/v1/alerts", raise_body())
    response = api.post("/v1/alerts/disk_full/clear", {"message": 42})
    assert response.status_code == 400 and "'message'" in error_of(response)
    assert len(engine.active()) == 1


@pytest.mark.parametrize("event", ["backup/nightly job", "db: primary/replica lag", "100% sure?", "naïve#1"])
def test_event_ids_with_slashes_and_spaces_are_url_encoded_in_the_clear_path(api, engine, channels, event):
    assert api.post("/v1/alerts", raise_body(event=event)).json()["status"] == "fired"
    response = api.post(f"/v1/alerts/{quote(event, safe='')}/clear?wait=5")
    assert response.status_code == 200
    assert response.json()["event"] == event and response.json()["status"] == "cleared"
    assert engine.active() == []
    assert channels["log"].sent[-1].resolved and channels["log"].sent[-1].event == event


# --- ping -----------------------------------------------------------------------------------------------------

def test_ping_of_a_configured_heartbeat_records_it_and_calls_on_ping(api, engine):
    assert engine.last_ping("nightly") is None
    before = time.time()
    response = api.post("/v1/ping/nightly")
    assert response.status_code == 200
    assert response.json() == {"heartbeat": "nightly", "status": "pinged"}
    assert before - 1 <= engine.last_ping("nightly") <= time.time() + 1
    assert api.pings == ["nightly"]


def test_ping_of_an_unknown_name_is_404(api, engine):
    response = api.post("/v1/ping/weekly")
    assert response.status_code == 404 and "weekly" in error_of(response)
    assert engine.last_ping("weekly") is None and api.pings == []


def test_ping_with_the_default_heartbeats_knows_none(engine):
    push = PushApi(engine, TOKEN, port=0)
    push.start()
    try:
        response = requests.post(f"http://127.0.0.1:{push.port}/v1/ping/nightly", timeout=TIMEOUT,
                                 headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 404
    finally:
        stop_quickly(push)


# --- bad requests ---------------------------------------------------------------------------------------------

def test_bad_json_is_400_with_a_clear_message(api, engine):
    response = api.call("POST", "/v1/alerts", data=b'{"event": "x", "level": ', headers={
        "Content-Type": "application/json"})
    assert response.status_code == 400
    assert error_of(response).startswith("body is not valid JSON")
    invalid_utf8 = api.call("POST", "/v1/alerts", data=b'{"event": "\xff\xfe"}')
    assert invalid_utf8.status_code == 400 and "not valid JSON" in error_of(invalid_utf8)
    assert engine.active() == []


@pytest.mark.parametrize("body", [[raise_body()], "disk_full", 42, None, True])
def test_a_body_that_is_not_an_object_is_400(api, engine, body):
    response = api.call("POST", "/v1/alerts", data=json.dumps(body))
    assert response.status_code == 400
    assert error_of(response) == "body must be a JSON object"
    assert engine.active() == []


def test_an_empty_body_is_400(api):
    response = api.call("POST", "/v1/alerts", data=b"")
    assert response.status_code == 400 and error_of(response) == "body must be a JSON object"


@pytest.mark.parametrize("field, value", [
    ("event", None), ("event", 7), ("event", ["disk_full"]),
    ("level", None), ("level", 3),
    ("message", None), ("message", {"text": "x"}),
])
def test_missing_or_mistyped_fields_are_400_naming_the_field(api, engine, channels, field, value):
    body = raise_body()
    if value is None:
        del body[field]
    else:
        body[field] = value
    response = api.post("/v1/alerts", body)
    assert response.status_code == 400
    assert error_of(response) == f"field '{field}' is required and must be a str"
    assert engine.active() == [] and nothing_sent(channels)


@pytest.mark.parametrize("context", ["mount=/", ["mount", "/"], 5])
def test_a_context_that_is_not_an_object_is_400(api, engine, context):
    response = api.post("/v1/alerts", {**raise_body(), "context": context})
    assert response.status_code == 400 and error_of(response) == "field 'context' must be an object"
    assert engine.active() == []


def test_a_bad_level_is_400_listing_the_allowed_levels(api, engine, channels):
    response = api.post("/v1/alerts", raise_body(level="severe"))
    assert response.status_code == 400
    message = error_of(response)
    assert "severe" in message
    for level in ("info", "warning", "error", "critical"):
        assert level in message
    assert engine.active() == [] and nothing_sent(channels)


@pytest.mark.parametrize("event", ["", "   ", "line\nbreak", "x" * 201])
def test_an_unusable_event_id_is_400(api, engine, event):
    response = api.post("/v1/alerts", raise_body(event=event))
    assert response.status_code == 400 and "event id" in error_of(response)
    assert engine.active() == []


def test_context_keys_named_like_arguments_come_back_with_an_underscore(api, engine, channels):
    context = {"event": "deploy", "level": "high", "message": "from context", "self": "me", "host": "web-01"}
    response = api.post("/v1/alerts", {**raise_body(), "context": context})
    assert response.status_code == 200 and response.json()["status"] == "fired"
    expected = {"event_": "deploy", "level_": "high", "message_": "from context", "self_": "me", "host": "web-01"}
    assert channels["log"].sent[0].context == expected
    assert channels["log"].sent[0].event == "disk_full" and channels["log"].sent[0].level is Level.WARNING
    assert api.get("/v1/alerts").json()[0]["context"] == expected


def test_an_oversized_body_is_413_and_the_server_keeps_serving(api, engine):
    padding = "x" * (MAX_BODY + 1024)
    big = json.dumps(raise_body(message=padding)).encode()
    assert len(big) > MAX_BODY
    response = api.call("POST", "/v1/alerts", data=big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert str(MAX_BODY) in error_of(response)
    assert response.headers.get("Connection") == "close"
    assert engine.active() == []
    following = api.post("/v1/alerts", raise_body())
    assert following.status_code == 200 and following.json()["status"] == "fired"
    assert api.get("/v1/status").json()["active"] == 1


def test_a_chunked_body_is_411_and_the_connection_is_closed(api, engine):
    chunks = iter([json.dumps(raise_body()).encode()])  # a generator body makes requests send it chunked
    response = api.call("POST", "/v1/alerts", data=chunks)
    assert response.status_code == 411 and "Content-Length" in error_of(response)
    assert response.headers.get("Connection") == "close"
    assert engine.active() == []
    assert api.post("/v1/alerts", raise_body()).json()["status"] == "fired"


def test_a_body_just_under_the_limit_is_read(api, engine):
    body = raise_body(message="m", pad="p" * 1000)
    raw = json.dumps(body).encode()
    raw += b" " * (MAX_BODY - len(raw))  # trailing whitespace is valid JSON
    assert len(raw) == MAX_BODY
    response = api.call("POST", "/v1/alerts", data=raw)
    assert response.status_code == 200 and response.json()["status"] == "fired"


@pytest.mark.parametrize("method, path", [
    ("GET", "/"), ("GET", "/v2/alerts"), ("GET", "/v1/nowhere"), ("POST", "/v1/status"), ("DELETE", "/v1/alerts"),
    ("PUT", "/v1/alerts"), ("GET", "/v1/alerts/disk_full/clear"), ("POST", "/v1/alerts/disk_full/snore"),
    ("POST", "/v1/ping"), ("GET", "/v1/alertmanager"),
])
def test_unknown_paths_and_methods_are_404(api, engine, method, path):
    response = api.call(method, path, json={} if method != "GET" else None)
    assert response.status_code == 404
    assert "no such endpoint" in error_of(response)
    assert engine.active() == []


# --- where it listens -----------------------------------------------------------------------------------------

def _other_addresses() -> list[str]:
    """IPv4 addresses of this machine that are not 127.0.0.1."""
    found: set[str] = set()
    try:
        found.add(socket.gethostbyname(socket.gethostname()))
    except OSError:
        pass
    for addresses in psutil.net_if_addrs().values():
        found.update(a.address for a in addresses if a.family == socket.AF_INET)
    return sorted(address for address in found if not address.startswith("127."))


def _connects(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=2.0):
            return True
    except OSError:
        return False


def test_listens_on_127_0_0_1_only(api):
    assert api.push._server.server_address == ("127.0.0.1", api.push.port)
    assert _connects("127.0.0.1", api.push.port)
    assert not _connects("127.0.0.2", api.push.port)  # another loopback address: not bound either
    others = _other_addresses()
    if not others:
        pytest.skip("this machine has no address other than loopback")
    for address in others:
        assert not _connects(address, api.push.port), f"push API reachable on {address}"


# --- token file -----------------------------------------------------------------------------------------------

def test_load_or_create_token_writes_a_private_file_and_reuses_it(tmp_path):
    state_dir = tmp_path / "new" / "state"
    token = load_or_create_token(state_dir)
    path = state_dir / TOKEN_FILE
    assert path.is_file() and path.read_text().strip() == token
    assert len(token) >= 32 and token.strip() == token
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_token(state_dir) == token
    assert load_or_create_token(tmp_path / "other") != token


def test_load_or_create_token_replaces_an_empty_file(tmp_path):
    (tmp_path / TOKEN_FILE).write_text("\n")
    token = load_or_create_token(tmp_path)
    assert token and (tmp_path / TOKEN_FILE).read_text().strip() == token
    if os.name == "posix":
        assert stat.S_IMODE((tmp_path / TOKEN_FILE).stat().st_mode) == 0o600


def test_the_created_token_opens_the_api(tmp_path, engine):
    token = load_or_create_token(tmp_path)
    push = PushApi(engine, token, port=0)
    push.start()
    try:
        url = f"http://127.0.0.1:{push.port}/v1/status"
        assert requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT).status_code == 200
        assert requests.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=TIMEOUT).status_code == 401
    finally:
        stop_quickly(push)


# --- concurrency ----------------------------------------------------------------------------------------------

def test_concurrent_raises_of_one_event_fire_exactly_once(api, engine, channels):
    statuses: list[str] = []
    lock = threading.Lock()

    def hit():
        status = api.post("/v1/alerts", raise_body()).json()["status"]
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=hit) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert len(statuses) == 12
    assert channels["log"].kinds() == ["fired:warning"]
    assert engine.active_events()[0].seen == 12
    assert statuses.count("fired") >= 1 and set(statuses) <= {"fired", "debounced"}


# --- Alertmanager webhook -------------------------------------------------------------------------------------

def am_alert(alertname: str, severity: str | None, instance: str | None, summary: str | None = None,
             status: str = "firing", **labels) -> dict:
    """One alert as Alertmanager's webhook (version 4) carries it."""
    starts = datetime.now(timezone.utc) - timedelta(minutes=3)
    all_labels = {"alertname": alertname, **labels}
    if severity is not None:
        all_labels["severity"] = severity
    if instance is not None:
        all_labels["instance"] = instance
    annotations = {"description": f"{alertname} on {instance}"}
    if summary is not None:
        annotations["summary"] = summary
    return {
        "status": status,
        "labels": all_labels,
        "annotations": annotations,
        "startsAt": starts.isoformat().replace("+00:00", "Z"),
        "endsAt": (datetime.now(timezone.utc).isoformat().replace("+00:00", "Z") if status == "resolved"
                   else "0001-01-01T00:00:00Z"),
        "generatorURL": f"http://prometheus.example:9090/graph?g0.expr={alertname}",
        "fingerprint": _am_fingerprint(all_labels),  # as Alertmanager computes it (checked end to end)
    }


def am_webhook(alerts: list[dict], status: str | None = None) -> dict:
    """The whole version 4 webhook payload around `alerts`."""
    status = status or ("firing" if any(a["status"] == "firing" for a in alerts) else "resolved")
    return {
        "version": "4",
        "groupKey": '{}:{alertname="HighDiskUsage"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "tray-alerts",
        "groupLabels": {"alertname": alerts[0]["labels"]["alertname"]},
        "commonLabels": {"job": "node"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": alerts,
    }


def test_alertmanager_webhook_raises_then_clears(api, engine, channels):
    firing = [
        am_alert("HighDiskUsage", "critical", "web-01:9100", "disk / at 97% on web-01", job="node", mount="/"),
        am_alert("HighDiskUsage", "warning", "web-02:9100", "disk / at 91% on web-02", job="node", mount="/"),
        am_alert("TargetDown", "page", "db-01:9187", "postgres exporter down", job="postgres"),
        am_alert("LatencyHigh", "info", None, None, job="api"),        # no instance, no summary
        am_alert("Weird", "sev9", "x:1", "unknown severity"),           # unmapped severity -> warning
        am_alert("NoSeverity", None, "y:1", "no severity label"),       # missing severity -> warning
    ]
    response = api.post("/v1/alertmanager", am_webhook(firing))
    assert response.status_code == 200
    answer = response.json()
    assert (answer["raised"], answer["cleared"], answer["refused"]) == (6, 0, 0)
    web01_event = "HighDiskUsage@web-01:9100 · job=node · mount=/ · severity=critical"
    assert answer["alerts"][0] == {"index": 0, "event": web01_event, "status": "fired"}
    active = {record.event: record for record in engine.active_events()}
    assert {event: record.level for event, record in active.items()} == {
        web01_event: Level.CRITICAL,
        "HighDiskUsage@web-02:9100 · job=node · mount=/ · severity=warning": Level.WARNING,
        "TargetDown@db-01:9187 · job=postgres · severity=page": Level.CRITICAL,
        "LatencyHigh · job=api · severity=info": Level.INFO,
        "Weird@x:1 · severity=sev9": Level.WARNING,
        "NoSeverity@y:1": Level.WARNING,
    }
    web01 = active[web01_event]
    assert web01.message == "disk / at 97% on web-01"
    assert web01.context == {"job": "node", "mount": "/", "fingerprint": firing[0]["fingerprint"],
                             "source": "alertmanager"}
    assert active["LatencyHigh · job=api · severity=info"].message == "LatencyHigh on None"  # the description
    assert all(record.context["source"] == "alertmanager" for record in active.values())
    assert engine.wait_idle()
    assert channels["sms"].kinds() == ["fired:critical", "fired:critical"]

    # Alertmanager repeats the group while it fires: debounced, nothing sent again
    again = api.post("/v1/alertmanager", am_webhook(firing)).json()
    assert again["raised"] == 6 and {alert["status"] for alert in again["alerts"]} == {"debounced"}
    assert engine.wait_idle()
    assert channels["sms"].kinds() == ["fired:critical", "fired:critical"]
    assert engine.active_events()[0].seen == 2

    resolved = [{**alert, "status": "resolved"} for alert in firing]
    response = api.post("/v1/alertmanager", am_webhook(resolved))
    assert response.status_code == 200
    answer = response.json()
    assert (answer["raised"], answer["cleared"]) == (0, 6) and answer["alerts"][0]["status"] == "cleared"
    assert engine.active() == []
    assert engine.wait_idle()
    assert channels["sms"].kinds() == ["fired:critical", "fired:critical", "resolved:critical", "resolved:critical"]
    recovery = channels["log"].sent[-1]
    assert recovery.resolved and recovery.message == "resolved in Alertmanager"


def test_alertmanager_mixed_group_raises_and_clears_in_one_call(api, engine):
    api.post("/v1/alertmanager", am_webhook([am_alert("A", "error", "h:1", "a"), am_alert("B", "error", "h:1", "b")]))
    mixed = [am_alert("A", "error", "h:1", "a", status="resolved"), am_alert("B", "critical", "h:1", "b worse")]
    answer = api.post("/v1/alertmanager", am_webhook(mixed)).json()
    assert (answer["raised"], answer["cleared"], answer["refused"]) == (1, 1, 0)
    active = {record.event: record for record in engine.active_events()}
    assert set(active) == {"B@h:1 · severity=error", "B@h:1 · severity=critical"}  # two label sets: two alerts
    record = active["B@h:1 · severity=critical"]
    assert (record.level, record.message) == (Level.CRITICAL, "b worse")


def test_alertmanager_labels_named_like_arguments_do_not_crash(api, engine):
    alert = am_alert("Clash", "warning", "h:1", "s", event="e", level="l", message="m")
    assert api.post("/v1/alertmanager", am_webhook([alert])).status_code == 200
    (record,) = engine.active_events()
    assert record.context == {"event_": "e", "level_": "l", "message_": "m", "fingerprint": alert["fingerprint"],
                              "source": "alertmanager"}


@pytest.mark.parametrize("body, fragment", [
    ({"version": "4", "status": "firing"}, "field 'alerts' must be a list"),
    ({"alerts": {"labels": {}}}, "field 'alerts' must be a list"),
    ({"alerts": "HighDiskUsage"}, "field 'alerts' must be a list"),
    ({"alerts": [None]}, "no alert taken: alerts[0]: needs an object with 'labels'"),
    ({"alerts": [{"status": "firing"}]}, "no alert taken: alerts[0]: needs an object with 'labels'"),
    ({"alerts": [{"labels": ["alertname", "X"]}]}, "no alert taken: alerts[0]: needs an object with 'labels'"),
    ({"alerts": [None, {"labels": 5}]},
     "no alert taken: alerts[0]: needs an object with 'labels'; alerts[1]: needs an object with 'labels'"),
], ids=["no-alerts", "alerts-object", "alerts-string", "null-item", "no-labels", "labels-list", "all-bad"])
def test_malformed_alertmanager_payloads_are_400_and_change_nothing(api, engine, channels, body, fragment):
    response = api.post("/v1/alertmanager", body)
    assert response.status_code == 400
    assert fragment in error_of(response)
    assert engine.active() == [] and nothing_sent(channels)


def test_a_bad_alert_is_refused_alone_and_its_neighbours_are_taken(api, engine, channels, caplog):
    good = am_alert("DiskFull", "warning", None, "disk /var full", mountpoint="/var")
    long = am_alert("DiskFull", "warning", None, "long label", path="/srv/" + "x" * 225)
    odd = am_alert("bad\nname", "warning", "h:1", "a control character")
    with caplog.at_level("WARNING", logger="tray_alerts.api"):
        response = api.post("/v1/alertmanager", am_webhook([good, "not an alert", long, {"labels": None}, odd]))
    assert response.status_code == 200
    answer = response.json()
    assert (answer["raised"], answer["cleared"], answer["refused"]) == (3, 0, 2)
    assert [alert.get("refused") for alert in answer["alerts"]] == [
        None, "alerts[1]: needs an object with 'labels'", None, "alerts[3]: needs an object with 'labels'", None]
    taken = [alert["event"] for alert in answer["alerts"] if "event" in alert]
    assert {record.event for record in engine.active_events()} == set(taken) and len(set(taken)) == 3
    refusals = [record.getMessage() for record in caplog.records if "refused" in record.getMessage()]
    assert refusals == ["Alertmanager alert refused: alerts[1]: needs an object with 'labels'",
                        "Alertmanager alert refused: alerts[3]: needs an object with 'labels'"]


def test_resolving_one_alert_never_clears_another(api, engine, channels):
    node = am_alert("HighCPU", "warning", "web1", "cpu", job="node")
    blackbox = am_alert("HighCPU", "warning", "web1", "cpu", job="blackbox")
    critical = am_alert("HighCPU", "critical", "web1", "cpu", job="node")
    api.post("/v1/alertmanager", am_webhook([node, blackbox, critical]))
    assert len(engine.active_events()) == 3
    api.post("/v1/alertmanager", am_webhook([{**critical, "status": "resolved"}, node, blackbox]))
    assert {record.event for record in engine.active_events()} == {
        "HighCPU@web1 · job=node · severity=warning", "HighCPU@web1 · job=blackbox · severity=warning"}
    assert engine.wait_idle()
    assert channels["sms"].kinds() == ["fired:critical", "resolved:critical"]  # no flapping in the same second


# the five alerts of issue 11 (three events under `alertname@instance`), then harder label sets
AM_EVENT_IDS = [
    ({"alertname": "HighCPU", "instance": "web1"}, "HighCPU@web1"),
    ({"alertname": "HighCPU", "instance": "web1", "job": "node"}, "HighCPU@web1 · job=node"),
    ({"alertname": "HighCPU", "instance": "web1", "job": "blackbox"}, "HighCPU@web1 · job=blackbox"),
    ({"alertname": "DiskFull", "mountpoint": "/var", "severity": "warning"},
     "DiskFull · mountpoint=/var · severity=warning"),
    ({"alertname": "DiskFull", "mountpoint": "/home", "severity": "warning"},
     "DiskFull · mountpoint=/home · severity=warning"),
    ({"alertname": "HighCPU", "instance": "web1", "severity": "critical"}, "HighCPU@web1 · severity=critical"),
    ({"alertname": "Ölstand", "instance": "küche", "note": "wieder gut ✅"},
     "Ölstand@küche · note=wieder gut ✅"),
    ({"alertname": "HighCPU", "instance": "", "job": "node"}, "HighCPU · job=node"),  # empty = absent, as in AM
    ({"alertname": "X", "path": "/srv/" + "x" * 225}, None),      # 230 characters: shortened, fingerprinted
    ({"alertname": "bad\nname"}, "bad\\nname #" + _am_fingerprint({"alertname": "bad\nname"})),
    ({"alertname": "a@b", "instance": "c"}, "a@b@c #" + _am_fingerprint({"alertname": "a@b", "instance": "c"})),
    ({"alertname": "X", "v": "1 · w=2"}, None),                      # would read as two labels
    ({"alertname": "X", "bad key": "1"}, None),                       # not a label name
    ({"instance": "web1"}, "alertmanager@web1 #" + _am_fingerprint({"instance": "web1"})),
    ({}, "alertmanager #cbf29ce484222325"),                           # Prometheus' fingerprint of no labels
]


@pytest.mark.parametrize("labels, expected", AM_EVENT_IDS)
def test_am_event_ids_are_readable_valid_and_stable(labels, expected):
    event = _am_event(labels)
    assert check_event(event) == event and len(event) <= MAX_EVENT_LENGTH
    assert _am_event(dict(reversed(labels.items()))) == event == _am_event(dict(labels))  # order does not matter
    if expected is not None:
        assert event == expected
    else:
        assert event.endswith(" #" + _am_fingerprint({k: v for k, v in labels.items() if v}))
        assert event.startswith("X")


def test_am_event_ids_differ_whenever_the_label_sets_differ():
    sets = [labels for labels, _ in AM_EVENT_IDS if labels.get("instance") != ""] + [
        {"alertname": "X", "v": "1", "w": "2"}, {"alertname": "X", "v": "1 "},
        {"alertname": "X", "v": "1"}, {"alertname": "X", "path": "/srv/" + "x" * 224 + "y"},
        {"alertname": "X", "v": "y #" + _am_fingerprint({"alertname": "X", "v": "1 · w=2"})},
        {"alertname": "alertmanager"}, {"alertname": "HighCPU", "instance": "web1 · job=node"}]
    events = [_am_event(labels) for labels in sets]
    assert len(set(events)) == len(sets)


def test_am_label_values_that_are_not_text_are_written_as_json_or_refused():
    assert _am_labels({"labels": {"port": 9100, "up": True, "gone": None, "empty": ""}}) == {"port": "9100",
                                                                                            "up": "true"}
    with pytest.raises(ValueError, match="label 'n': value is not usable as text"):
        _am_labels({"labels": {"n": 10 ** 5000}})  # (the JSON parser already refuses such a number in a body)


def test_am_fingerprint_is_alertmanagers():
    """Values read from a real Alertmanager 0.25 (GET /api/v2/alerts) for these label sets."""
    assert _am_fingerprint({}) == "cbf29ce484222325"
    assert _am_fingerprint({"alertname": "HighCPU", "instance": "web1"}) == "a1445ef78beab052"
    assert _am_fingerprint({"alertname": "HighCPU", "instance": "web1", "job": "node",
                            "severity": "warning"}) == "e50ea0c853e2fc48"
    assert _am_fingerprint({"alertname": "Ölstand", "instance": "küche", "note": "✅"}) == "9e4e7413482dd959"
    assert _am_fingerprint({"b": "2", "a": "1"}) == _am_fingerprint({"a": "1", "b": "2"})
    assert _am_fingerprint({"a": "1"}) != _am_fingerprint({"a": "1", "b": ""})


@pytest.mark.parametrize("body", [[{"labels": {"alertname": "X"}}], "alerts"])
def test_alertmanager_body_must_be_an_object(api, body):
    response = api.post("/v1/alertmanager", body)
    assert response.status_code == 400 and error_of(response) == "body must be a JSON object"


def test_alertmanager_empty_alert_list_is_a_no_op(api, engine):
    answer = api.post("/v1/alertmanager", {"version": "4", "alerts": []}).json()
    assert answer == {"raised": 0, "cleared": 0, "refused": 0, "alerts": []}
    assert engine.active() == []


def test_an_api_that_never_started_stops_at_once_and_frees_its_port(engine):
    push = PushApi(engine, TOKEN, port=0)
    stopper = threading.Thread(target=push.stop, daemon=True)
    stopper.start()
    stopper.join(5.0)
    assert not stopper.is_alive(), "stop() waited for a server that never served"
    with socket.socket() as again:
        again.bind(("127.0.0.1", push.port))


def test_a_clear_may_say_what_was_seen_as_it_recovered(api, engine, channels):
    engine.raise_alert("disk_full", "warning", "disk at 93%", used="93%")
    answer = api.post("/v1/alerts/disk_full/clear?wait=5", {"message": "back to 60%", "context": {"used": "60%"}})
    assert answer.status_code == 200 and answer.json()["status"] == "cleared"
    recovery = channels["slack"].sent[-1]
    assert recovery.resolved and recovery.context == {"used": "60%"}  # never the firing's "93%"
    engine.raise_alert("disk_full", "warning", "disk at 93%")
    bad = api.post("/v1/alerts/disk_full/clear", {"context": ["used"]})
    assert bad.status_code == 400 and "context" in error_of(bad)


@pytest.mark.parametrize("message", ["", "   \n"])
def test_an_empty_message_is_400_naming_it_and_raises_nothing(api, engine, message):
    response = api.post("/v1/alerts", raise_body(message=message))
    assert response.status_code == 400 and "'message' must not be empty" in error_of(response)
    assert engine.active() == []


# --- dependencies -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("depends_on", ["router, vpn", ["router", "vpn"]])
def test_a_pushed_event_names_its_parents_and_the_list_says_who_inhibits_it(api, engine, channels, depends_on):
    assert api.post("/v1/alerts", raise_body("router", "error", "no link")).status_code == 200
    answer = api.post("/v1/alerts", {**raise_body("backup", "error", "NAS unreachable"), "depends_on": depends_on})
    assert answer.status_code == 200 and answer.json()["inhibited_by"] == "router"
    assert [alert.event for alert in channels["slack"].sent] == ["router"]  # the child told no channel
    listed = {alert["event"]: alert for alert in api.get("/v1/alerts").json()}
    assert (listed["backup"]["inhibited_by"], listed["backup"]["depends_on"]) == ("router", ["router", "vpn"])
    assert (listed["router"]["inhibited_by"], listed["router"]["depends_on"]) == (None, [])
    api.post("/v1/alerts/router/clear", {"message": "link up"})
    assert engine.wait_idle()
    assert [alert.event for alert in channels["slack"].sent] == ["router", "router", "backup"]
    assert api.get("/v1/alerts").json()[0]["inhibited_by"] is None


@pytest.mark.parametrize("depends_on, problem", [
    (5, "must be event ids, as a list or as one string like 'network, vpn'"),
    (["router", 7], "must be event ids, as a list or as one string like 'network, vpn'"),
    ({"router": True}, "must be event ids, as a list or as one string like 'network, vpn'"),
    ("backup", "an event cannot depend on itself ('backup')"),
    (["router", ""], "event id must be a non-empty string, got ''")])
def test_a_bad_depends_on_is_400_naming_the_field(api, engine, channels, depends_on, problem):
    response = api.post("/v1/alerts", {**raise_body("backup"), "depends_on": depends_on})
    assert response.status_code == 400 and error_of(response) == f"field 'depends_on': {problem}"
    assert engine.active() == [] and nothing_sent(channels)
