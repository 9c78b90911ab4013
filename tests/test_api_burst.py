"""The push API holds a burst: a deep backlog, a fixed pool of workers, a deadline on every connection's request,
and only loopback Host headers. Real servers on 127.0.0.1 (port 0) over an Engine with RecordingChannels
(conftest); the read timeout is short here (READ) or decided by a fake clock, never waited out by sleeping."""
from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import pytest

from conftest import HangingChannel
from polling import wait_until
from tray_alerts import Engine
from tray_alerts.api import LISTEN_BACKLOG, MAX_BODY, MAX_HEAD, PushApi, request_extent

TOKEN = "test-token-0123456789"
TIMEOUT = 10.0
READ = 0.5  # the read timeout of the servers here that are to close idle connections by themselves
WORKERS = 4


class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def start(engine, **options) -> PushApi:
    push = PushApi(engine, TOKEN, port=0, workers=options.pop("workers", WORKERS), **options)
    push.start()
    return push


@pytest.fixture
def stoppers():
    started: list[PushApi] = []
    yield started
    for push in started:
        push.stop()


def request(port: int, method: str, path: str, body=None, host: str | None = "127.0.0.1",
            connection: http.client.HTTPConnection | None = None, token: str = TOKEN) -> tuple[int, dict, dict]:
    """One request (with this Host header; None: none at all): status, JSON body, headers."""
    own = connection is None
    connection = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        if host is not None:
            connection.putheader("Host", host)
        connection.putheader("Authorization", f"Bearer {token}")
        data = json.dumps(body).encode() if body is not None else b""
        connection.putheader("Content-Length", str(len(data)))
        connection.endheaders(data)
        response = connection.getresponse()
        return response.status, json.loads(response.read()), dict(response.getheaders())
    finally:
        if own:
            connection.close()


def raw_exchange(port: int, data: bytes, timeout: float = TIMEOUT) -> bytes:
    """Send raw bytes and read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_to_end(sock)


def read_to_end(sock: socket.socket) -> bytes:
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def loop_turned(port: int) -> None:
    """Two requests one after the other on one connection: once the second is answered, the accept loop has
    finished a whole turn (its expiry check included) since this was called."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        for _ in range(2):
            assert request(port, "GET", "/v1/status", connection=connection)[0] == 200
    finally:
        connection.close()


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closed this connection (what it said first is read and dropped)."""
    sock.setblocking(False)
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return True
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


# --- a burst ----------------------------------------------------------------------------------------------------

def test_a_burst_of_300_distinct_raises_from_50_threads_loses_none(engine, stoppers):
    push = start(engine, workers=8)
    stoppers.append(push)
    events = [f"burst #{index:03d}" for index in range(300)]
    answers: dict[str, tuple[int, str]] = {}
    failures: list[str] = []
    gate = threading.Barrier(50)
    lock = threading.Lock()

    def client(mine: list[str]) -> None:
        gate.wait()  # all 50 connect at once, as a burst does
        for event in mine:
            try:  # a connection per raise, as curl makes it
                status, reply, _ = request(push.port, "POST", "/v1/alerts",
                                           {"event": event, "level": "warning", "message": "a burst"})
            except (OSError, http.client.HTTPException) as error:
                with lock:
                    failures.append(f"{event}: {error!r}")
                continue
            with lock:
                answers[event] = (status, reply["status"])

    threads = [threading.Thread(target=client, args=(events[index::50],)) for index in range(50)]
    for thread in threads:
        thread.start()
    peak = push.threads()
    for thread in threads:
        thread.join(60)
        peak = max(peak, push.threads())
    assert failures == []
    assert answers == {event: (200, "fired") for event in events}
    status, listed, _ = request(push.port, "GET", "/v1/alerts")
    assert status == 200 and {item["event"] for item in listed} == set(events)
    assert peak == 8 + 1  # the pool and the accept loop, however many connections came


def test_the_kernel_queues_a_burst_of_connections_before_any_is_accepted(engine):
    assert LISTEN_BACKLOG >= 128
    push = PushApi(engine, TOKEN, port=0)  # listening, not yet accepting: only the backlog holds connections
    queued = []
    try:
        for _ in range(128):  # with Python's default backlog (5), the 7th would not connect
            queued.append(socket.create_connection(("127.0.0.1", push.port), timeout=2.0))
        push.start()
        assert request(push.port, "GET", "/v1/status")[0] == 200
    finally:
        for sock in queued:
            sock.close()
        push.stop()


def test_a_debounced_raise_is_answered_from_memory_without_a_write(api_engine):
    engine, push = api_engine
    assert request(push.port, "POST", "/v1/alerts", {"event": "e", "level": "error", "message": "m"})[1][
        "status"] == "fired"
    writes: list[str] = []
    real_write = engine.store.write

    def counting(*args, **kwargs):
        if threading.current_thread().name.startswith("push-api"):
            writes.append(threading.current_thread().name)
        return real_write(*args, **kwargs)

    engine.store.write = counting
    try:
        for level in ("error", "warning", "info") * 5:
            status, reply, _ = request(push.port, "POST", "/v1/alerts", {"event": "e", "level": level,
                                                                          "message": "m"})
            assert (status, reply["status"]) == (200, "debounced")
    finally:
        engine.store.write = real_write
    assert writes == []
    assert engine.active_events()[0].seen == 16


@pytest.fixture
def api_engine(engine, stoppers):
    push = start(engine)
    stoppers.append(push)
    return engine, push


# --- connections that send nothing, or half a request -----------------------------------------------------------

def test_300_half_open_connections_keep_the_threads_bounded_and_are_closed_after_the_read_timeout(engine,
                                                                                                   stoppers):
    push = start(engine, read_timeout=READ)
    stoppers.append(push)
    threads_before = threading.active_count()
    silent = [socket.create_connection(("127.0.0.1", push.port), timeout=TIMEOUT) for _ in range(150)]
    half = [socket.create_connection(("127.0.0.1", push.port), timeout=TIMEOUT) for _ in range(150)]
    try:
        for index, sock in enumerate(half):  # half the headers, or all of them and half the body
            sock.sendall(b"POST /v1/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\n" if index % 2 else
                         b"POST /v1/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 80\r\n\r\n{\"event\":")
        wait_until(lambda: push.connections() >= 300, "all 300 connections accepted", timeout=TIMEOUT)
        assert push.threads() == WORKERS + 1
        assert threading.active_count() <= threads_before  # no thread per connection
        assert request(push.port, "GET", "/v1/status")[0] == 200  # the others are still served meanwhile

        wait_until(lambda: all(closed_by_server(sock) for sock in silent + half),
                   "every half-open connection closed by the server", timeout=TIMEOUT)
        wait_until(lambda: push.connections() == 0, "no connection left open", timeout=TIMEOUT)
        assert push.threads() == WORKERS + 1
    finally:
        for sock in silent + half:
            sock.close()


def test_a_connection_is_closed_at_its_deadline_not_before(engine, stoppers):
    clock = FakeClock()
    push = start(engine, read_timeout=5.0, clock=clock)
    stoppers.append(push)
    idle = socket.create_connection(("127.0.0.1", push.port), timeout=TIMEOUT)
    dawdler = socket.create_connection(("127.0.0.1", push.port), timeout=TIMEOUT)
    try:
        dawdler.sendall(b"GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and the rest never comes
        wait_until(lambda: push.connections() >= 2, "both accepted", timeout=TIMEOUT)
        clock.now += 4.9
        loop_turned(push.port)
        assert not closed_by_server(idle) and not closed_by_server(dawdler)
        clock.now += 0.1
        loop_turned(push.port)
        assert closed_by_server(idle)
        dawdler.setblocking(True)
        answer = read_to_end(dawdler)
        assert answer.startswith(b"HTTP/1.1 408 ") and b"did not arrive whole in time" in answer
    finally:
        idle.close()
        dawdler.close()


def test_a_kept_alive_connection_may_idle_up_to_the_read_timeout_between_requests(engine, stoppers):
    clock = FakeClock()
    push = start(engine, read_timeout=5.0, clock=clock)
    stoppers.append(push)
    connection = http.client.HTTPConnection("127.0.0.1", push.port, timeout=TIMEOUT)
    try:
        assert request(push.port, "GET", "/v1/status", connection=connection)[0] == 200
        clock.now += 4.0
        loop_turned(push.port)
        assert request(push.port, "GET", "/v1/status", connection=connection)[0] == 200  # the same connection
        clock.now += 4.0  # its deadline counts from its last answer
        loop_turned(push.port)
        assert not closed_by_server(connection.sock)
        clock.now += 1.0
        loop_turned(push.port)
        assert closed_by_server(connection.sock)
    finally:
        connection.close()


def test_a_request_sent_in_pieces_within_the_timeout_is_answered(api_engine):
    _, push = api_engine
    body = json.dumps({"event": "slowly", "level": "info", "message": "in pieces"}).encode()
    data = (b"POST /v1/alerts HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer " + TOKEN.encode() +
            b"\r\nConnection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    with socket.create_connection(("127.0.0.1", push.port), timeout=TIMEOUT) as sock:
        for start_at in range(0, len(data), 7):
            sock.sendall(data[start_at:start_at + 7])
        answer = read_to_end(sock)
    assert answer.startswith(b"HTTP/1.1 200 ") and b'"status": "fired"' in answer


def test_beyond_max_connections_the_one_idle_longest_is_closed(engine, stoppers):
    push = start(engine, max_connections=10, read_timeout=60.0)
    stoppers.append(push)
    idle = []
    try:
        for _ in range(10):
            idle.append(socket.create_connection(("127.0.0.1", push.port), timeout=TIMEOUT))
            wait_until(lambda: push.connections() == len(idle), "accepted", timeout=TIMEOUT)
        assert request(push.port, "GET", "/v1/status")[0] == 200  # the eleventh is served
        assert closed_by_server(idle[0])
        assert not any(closed_by_server(sock) for sock in idle[1:])
    finally:
        for sock in idle:
            sock.close()


def test_requests_waiting_for_the_channels_neither_hold_up_the_others_nor_add_threads(state_path, stoppers):
    hanging = HangingChannel("pager")
    with Engine({"pager": hanging}, {"error": ["pager"], "info": []}, state_path) as engine:
        push = start(engine, workers=2, waiters=2)
        stoppers.append(push)
        results: dict[str, int] = {}

        def waiting_raise(event: str) -> None:  # ?wait= holds a waiter until the channel answers
            results[event] = request(push.port, "POST", "/v1/alerts?wait=30",
                                     {"event": event, "level": "error", "message": "m"})[0]

        waiting = [threading.Thread(target=waiting_raise, args=(f"hold {index}",)) for index in range(3)]
        for thread in waiting[:2]:
            thread.start()
        wait_until(lambda: len(engine.active_events()) == 2, "two waiting raises stored", timeout=TIMEOUT)
        waiting[2].start()  # no waiter free: it queues
        assert request(push.port, "GET", "/v1/status")[0] == 200  # the workers answer the others meanwhile
        status, quick, _ = request(push.port, "POST", "/v1/alerts", {"event": "quick", "level": "info",
                                                                       "message": "m"})
        assert (status, quick["status"]) == (200, "fired")
        assert push.threads() == 2 + 2 + 1
        assert "hold 2" not in {record.event for record in engine.active_events()}  # still queued
        hanging.release.set()
        for thread in waiting:
            thread.join(TIMEOUT)
        assert results == {"hold 0": 200, "hold 1": 200, "hold 2": 200}
        stop_now(push, stoppers)


def stop_now(push: PushApi, stoppers: list[PushApi]) -> None:
    stoppers.remove(push)
    push.stop()


# --- what a connection carries ----------------------------------------------------------------------------------

def test_pipelined_requests_are_answered_in_order(api_engine):
    _, push = api_engine
    one = b"GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n\r\n"
    last = one.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
    answer = raw_exchange(push.port, one + one + last)
    assert answer.count(b"HTTP/1.1 200 OK") == 3 and answer.count(b'{"app": "tray-alerts", "active": 0}') == 3


def test_expect_100_continue_is_answered_before_the_body_is_sent(api_engine):
    engine, push = api_engine
    body = json.dumps({"event": "continued", "level": "info", "message": "m"}).encode()
    with socket.create_connection(("127.0.0.1", push.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"POST /v1/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + TOKEN.encode() +
                     b"\r\nExpect: 100-continue\r\nConnection: close\r\nContent-Length: " + str(len(body)).encode() +
                     b"\r\n\r\n")
        interim = sock.recv(1024)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        answer = read_to_end(sock)
    assert answer.startswith(b"HTTP/1.1 200 ") and [a.event for a in engine.active()] == ["continued"]


def test_headers_larger_than_the_limit_are_431_and_the_connection_closed(api_engine):
    _, push = api_engine
    answer = raw_exchange(push.port, b"GET /v1/status HTTP/1.1\r\nX-Pad: " + b"p" * (MAX_HEAD + 10))
    assert answer.startswith(b"HTTP/1.1 431 ") and b"Connection: close" in answer
    assert request(push.port, "GET", "/v1/status")[0] == 200


CL_NINE = b"POST / HTTP/1.1\r\nContent-Length: nine\r\n\r\n"
CL_NEGATIVE = b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"
CL_TOO_LARGE = b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1)
CHUNKED = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
HUGE = b"GET / HTTP/1.1\r\nX: " + b"x" * MAX_HEAD
FOUR = b"POST / HTTP/1.1\r\ncontent-length: 4\r\n\r\nabcd"


@pytest.mark.parametrize("buffer, expected", [
    (b"GET / HTTP/1.1\r\nHost: x\r\n", (None, False)),
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", (27, False)),
    (b"GET / HTTP/1.1\nHost: x\n\nGET", (24, False)),  # bare LF, and the next request after it
    (b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nab", (None, False)),
    (FOUR + b"GET", (len(FOUR), False)),
    (b"POST / HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n", (None, True)),
    (b"POST / HTTP/1.0\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n", (None, False)),
    # a body that will not be read: the request ends with its headers (the handler answers 400, 413, 411)
    (CL_NINE + b"123456789", (len(CL_NINE), False)),
    (CL_NEGATIVE, (len(CL_NEGATIVE), False)),
    (CL_TOO_LARGE + b"x" * 100, (len(CL_TOO_LARGE), False)),
    (CHUNKED + b"4\r\n", (len(CHUNKED), False)),
    (HUGE, (len(HUGE), False)),  # no end of headers in sight: the worker answers 431
], ids=["headers-unfinished", "get", "bare-lf", "body-unfinished", "body-then-next", "expect-continue",
        "expect-on-1.0", "length-not-a-number", "length-negative", "length-too-large", "chunked", "headers-too-large"])
def test_request_extent(buffer, expected):
    assert request_extent(buffer) == expected


# --- the Host header --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["evil.example", "evil.example:47913", "127.0.0.1.evil.example",
                                  "localhost.evil.example:80", "127.0.0.2", "0.0.0.0:47913", "[::2]:80",
                                  "localhost:http", "", "127.0.0.1:47913:1"])
def test_a_foreign_host_is_403_naming_it_and_changes_nothing(api_engine, host):
    engine, push = api_engine
    status, reply, _ = request(push.port, "POST", "/v1/alerts", {"event": "e", "level": "error", "message": "m"},
                               host=host)
    assert status == 403
    assert f"Host {host!r}" in reply["error"] and "127.0.0.1, localhost or [::1]" in reply["error"]
    assert engine.active() == []


def test_a_foreign_host_is_refused_before_the_token_is_looked_at(api_engine):
    _, push = api_engine
    status, reply, headers = request(push.port, "GET", "/v1/status", host="rebound.example", token="wrong")
    assert status == 403 and "rebound.example" in reply["error"] and "WWW-Authenticate" not in headers


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:{port}", "localhost", "localhost:{port}",
                                  "LocalHost:8080", "[::1]", "[::1]:{port}", None])
def test_loopback_hosts_pass(api_engine, host):
    _, push = api_engine
    shown = host.format(port=push.port) if host else None
    status, reply, _ = request(push.port, "GET", "/v1/status", host=shown)
    assert (status, reply) == (200, {"app": "tray-alerts", "active": 0})


def test_http_1_0_without_a_host_passes(api_engine):
    _, push = api_engine
    answer = raw_exchange(push.port, b"GET /v1/status HTTP/1.0\r\nAuthorization: Bearer " + TOKEN.encode() +
                          b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b'{"app": "tray-alerts", "active": 0}')


def test_two_host_headers_are_400(api_engine):
    _, push = api_engine
    answer = raw_exchange(push.port, b"GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n"
                                     b"Authorization: Bearer " + TOKEN.encode() + b"\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ") and b"more than one Host header" in answer


# --- stopping ---------------------------------------------------------------------------------------------------

def test_stop_closes_waiting_connections_and_frees_the_port(engine):
    push = start(engine)
    idle = socket.create_connection(("127.0.0.1", push.port), timeout=TIMEOUT)
    try:
        wait_until(lambda: push.connections() == 1, "accepted", timeout=TIMEOUT)
        started = time.monotonic()
        push.stop()
        assert time.monotonic() - started < 2.0
        idle.settimeout(TIMEOUT)
        assert read_to_end(idle) == b""
        wait_until(lambda: push.threads() == 0, "the workers gone", timeout=TIMEOUT)
    finally:
        idle.close()
    again = PushApi(engine, TOKEN, port=push.port)  # as the app started again would
    again.stop()
