"""channels.http.post against real misbehaving peers on 127.0.0.1: one overall deadline, no redirects followed,
a precise reason per failure (raw sockets, so a peer can trickle, stall or hang up exactly when it likes)."""
from __future__ import annotations

import socket
import ssl
import threading
import time
from typing import Callable, Iterator

import pytest
import trustme

from helpers_net import dead_url, disk_alert
from tray_alerts.channels.base import DeliveryError
from tray_alerts.channels.http import UnconfirmedDelivery, post
from tray_alerts.channels.webhook import WebhookChannel

SECRET = "hookPATHsecret9f8e7d6c5b4a"
API_KEY = "apiKEYsecret0a1b2c3d4e5f"
HOOK_PATH = f"/hook/{SECRET}?token={SECRET}"
MARGIN = 0.6  # how much later than its deadline a delivery may end (thread wake-ups, a loaded CI machine)

Respond = Callable[[socket.socket, threading.Event], None]


class Peer:
    """A raw HTTP peer: reads each request whole, then lets `respond` write (or not) whatever it likes."""

    def __init__(self, respond: Respond, tls: ssl.SSLContext | None = None, read_request: bool = True):
        self.respond = respond
        self.tls = tls
        self.read_request = read_request
        self.requests: list[bytes] = []
        self.connections = 0
        self.stop = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.05)
        self.port = self._server.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def url(self, path: str = HOOK_PATH, scheme: str = "http") -> str:
        """This peer's URL with `path`."""
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        """Release every handler and stop accepting."""
        self.stop.set()
        self._accepting.join(2)
        for thread in self._threads:
            thread.join(2)
        self._server.close()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self._server.accept()
            except (socket.timeout, OSError):
                continue
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:
                conn.settimeout(2)
                conn = self.tls.wrap_socket(conn, server_side=True)
            conn.settimeout(5)
            if self.read_request:
                self.requests.append(_read_request(conn))
            self.respond(conn, self.stop)
        except OSError:
            pass
        finally:
            conn.close()


def _read_request(conn: socket.socket) -> bytes:
    """One request: headers, then Content-Length bytes of body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def answer(status: str = "200 OK", body: bytes = b"ok", headers: str = "", wait: float = 0.0) -> Respond:
    """After `wait` seconds, a whole answer."""

    def respond(conn: socket.socket, stop: threading.Event) -> None:
        if wait:
            stop.wait(wait)
        conn.sendall(f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{headers}Connection: close\r\n\r\n"
                     .encode() + body)

    return respond


def trickle(data: bytes, every: float) -> Respond:
    """Send `data` one byte every `every` seconds (until released)."""

    def respond(conn: socket.socket, stop: threading.Event) -> None:
        for byte in data:
            if stop.wait(every):
                return
            conn.sendall(bytes([byte]))

    return respond


def headers_then_trickle(body: bytes, every: float) -> Respond:
    """A 200's headers at once, then its body one byte every `every` seconds."""

    def respond(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode())
        trickle(body, every)(conn, stop)

    return respond


def then_stall(data: bytes) -> Respond:
    """Send `data` at once, then nothing until released."""

    def respond(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(data)
        stop.wait(30)

    return respond


def hang_up(conn: socket.socket, stop: threading.Event) -> None:
    """Read the request and close without a word."""


@pytest.fixture
def peers() -> Iterator[Callable[..., Peer]]:
    """Make raw peers; all are closed at teardown."""
    made: list[Peer] = []

    def make(respond: Respond, **kwargs) -> Peer:
        made.append(Peer(respond, **kwargs))
        return made[-1]

    yield make
    for peer in made:
        peer.close()


def failure(url: str, deadline: float, **kwargs) -> tuple[DeliveryError, float]:
    """The DeliveryError post raises, and how long it took."""
    started = time.monotonic()
    with pytest.raises(DeliveryError) as caught:
        post(url, "webhook", deadline, **kwargs)
    return caught.value, time.monotonic() - started


def assert_secret_free(error: DeliveryError) -> None:
    """Neither the URL's path and query nor the header's value are in the reason."""
    assert SECRET not in error.message and API_KEY not in error.message and "/hook" not in error.message


# --- the overall deadline -------------------------------------------------------------------------------------------

def test_a_trickling_body_ends_at_the_deadline_with_the_precise_reason(peers):
    peer = peers(headers_then_trickle(b"x" * 1000, every=0.5))
    error, took = failure(peer.url(), 2.0, json={"a": 1})
    assert took < 2.0 + MARGIN
    assert isinstance(error, UnconfirmedDelivery) and error.retryable
    assert error.message == ("webhook: 127.0.0.1 answered HTTP 200, then its body stalled (not complete within 2 s);"
                             " it may have arrived")


def test_trickled_headers_end_at_the_deadline_as_no_answer(peers):
    peer = peers(trickle(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", every=0.5))
    error, took = failure(peer.url(), 2.0, json={"a": 1})
    assert took < 2.0 + MARGIN
    assert isinstance(error, UnconfirmedDelivery) and error.retryable
    assert error.message == "webhook: no answer from 127.0.0.1 within 2 s; it may have arrived"


def test_headers_then_a_stalled_body_is_not_cannot_connect(peers):
    peer = peers(then_stall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial"))
    error, took = failure(peer.url(), 1.0, json={"a": 1})
    assert took < 1.0 + MARGIN
    assert isinstance(error, UnconfirmedDelivery)
    assert error.message == ("webhook: 127.0.0.1 answered HTTP 200, then its body stalled (not complete within 1 s);"
                             " it may have arrived")


def test_a_body_broken_off_says_so(peers):
    peer = peers(lambda conn, stop: conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial"))
    error, _ = failure(peer.url(), 2.0, json={"a": 1})
    assert isinstance(error, UnconfirmedDelivery)
    assert error.message == "webhook: 127.0.0.1 answered HTTP 200, then its body broke off; it may have arrived"


def test_no_answer_after_the_request_was_sent_may_have_arrived(peers):
    peer = peers(then_stall(b""))
    error, took = failure(peer.url(), 1.0, json={"a": 1})
    assert took < 1.0 + MARGIN
    assert len(peer.requests) == 1 and b'{"a": 1}' in peer.requests[0]  # it did arrive
    assert isinstance(error, UnconfirmedDelivery) and error.retryable and error.may_have_arrived
    assert error.message == "webhook: no answer from 127.0.0.1 within 1 s; it may have arrived"


def test_a_hang_up_after_the_request_was_sent_may_have_arrived(peers):
    peer = peers(hang_up)
    error, _ = failure(peer.url(), 2.0, json={"a": 1})
    assert isinstance(error, UnconfirmedDelivery) and error.retryable
    assert error.message == "webhook: 127.0.0.1 closed the connection without answering; it may have arrived"


def test_a_peer_not_reading_the_request_is_not_a_possible_repeat(peers):
    peer = peers(then_stall(b""), read_request=False)
    error, took = failure(peer.url(), 1.0, data=b"x" * (64 << 20))  # more than any socket buffer holds
    assert took < 1.0 + MARGIN
    assert not isinstance(error, UnconfirmedDelivery) and error.retryable
    assert error.message == "webhook: 127.0.0.1 did not take the request within 1 s"


def test_an_error_status_with_a_stalled_body_keeps_its_status(peers):
    peer = peers(then_stall(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nContent-Length: 100\r\n\r\nbusy"))
    error, took = failure(peer.url(), 1.0, json={"a": 1})
    assert took < 1.0 + MARGIN
    assert (error.retryable, error.retry_after) == (True, 7.0)
    assert error.message == "webhook: 127.0.0.1 answered HTTP 503"  # the status decides; the body never came


def test_a_client_error_with_a_stalled_body_is_permanent(peers):
    peer = peers(then_stall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 100\r\n\r\nbad"))
    error, _ = failure(peer.url(), 1.0, json={"a": 1})
    assert error.retryable is False
    assert error.message == "webhook: 127.0.0.1 refused the message: HTTP 400"


def test_slow_but_within_the_deadline_is_delivered(peers):
    peer = peers(answer(wait=0.8, body=b'{"ok": true}'))
    response = post(peer.url(), "webhook", 3.0, json={"a": 1})
    assert response.status_code == 200 and response.json() == {"ok": True}


def test_a_slowly_trickled_body_within_the_deadline_is_delivered(peers):
    peer = peers(headers_then_trickle(b"done", every=0.2))
    response = post(peer.url(), "webhook", 3.0, json={"a": 1})
    assert response.content == b"done"


def test_the_channel_is_bounded_too(peers):
    peer = peers(trickle(b"HTTP/1.1 200 OK\r\n", every=0.3))
    channel = WebhookChannel("w", peer.url(), headers={"X-Api-Key": API_KEY}, timeout=1.0)
    started = time.monotonic()
    with pytest.raises(UnconfirmedDelivery) as caught:
        channel.send(disk_alert())
    assert time.monotonic() - started < 1.0 + MARGIN
    assert_secret_free(caught.value)


def test_no_watchdog_is_left_behind(peers):
    peer = peers(answer())
    before = threading.active_count()
    for _ in range(5):
        post(peer.url(), "webhook", 5.0, json={})
    deadline = time.monotonic() + 2
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() <= before


# --- redirects ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("status", ["301 Moved Permanently", "302 Found", "307 Temporary Redirect",
                                    "308 Permanent Redirect"])
def test_a_redirect_is_a_failure_naming_the_host_and_nothing_reaches_it(peers, status):
    target = peers(answer())
    origin = peers(answer(status, body=b"", headers=f"Location: {target.url()}\r\n"))
    error, _ = failure(origin.url(), 2.0, json={"a": 1}, headers={"X-Api-Key": API_KEY})
    assert (target.connections, target.requests) == (0, [])
    assert len(origin.requests) == 1
    assert error.retryable is False
    code = status.split()[0]
    assert error.message == f"webhook: redirect to 127.0.0.1:{target.port} not followed (HTTP {code} from 127.0.0.1)"
    assert_secret_free(error)


def test_a_redirect_to_another_host_names_that_host_only(peers):
    origin = peers(answer("307 Temporary Redirect", body=b"",
                          headers=f"Location: https://user:pw@evil.example/steal/{SECRET}?k={SECRET}\r\n"))
    error, _ = failure(origin.url(), 2.0, json={"a": 1}, headers={"X-Api-Key": API_KEY})
    assert error.message == "webhook: redirect to evil.example not followed (HTTP 307 from 127.0.0.1)"
    assert "pw" not in error.message
    assert_secret_free(error)


def test_a_relative_redirect_names_the_same_host(peers):
    origin = peers(answer("302 Found", body=b"", headers=f"Location: /moved/{SECRET}\r\n"))
    error, _ = failure(origin.url(), 2.0, json={"a": 1})
    assert error.message == f"webhook: redirect to 127.0.0.1:{origin.port} not followed (HTTP 302 from 127.0.0.1)"
    assert len(origin.requests) == 1
    assert_secret_free(error)


def test_a_redirect_without_a_location_is_a_failure_too(peers):
    origin = peers(answer("303 See Other", body=b""))
    error, _ = failure(origin.url(), 2.0, json={"a": 1})
    assert error.retryable is False
    assert error.message == "webhook: 127.0.0.1 answered HTTP 303 (a redirect without a Location: not followed)"


# --- cannot connect -------------------------------------------------------------------------------------------------

def test_a_refused_port_says_connection_refused():
    error, took = failure(dead_url(HOOK_PATH), 2.0, json={"a": 1})
    assert took < 1.0
    assert not isinstance(error, UnconfirmedDelivery) and error.retryable
    assert error.message == "webhook: connection refused (127.0.0.1)"


def test_a_name_not_found_says_so(monkeypatch):
    def no_such_name(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    error, _ = failure(f"http://alerts.invalid{HOOK_PATH}", 2.0, json={"a": 1})
    assert not isinstance(error, UnconfirmedDelivery) and error.retryable
    assert error.message == "webhook: cannot connect to alerts.invalid (name not found)"


def test_a_connect_that_hangs_times_out_connecting():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    try:
        for _ in range(8):  # fill the accept queue: further connects get no SYN-ACK
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(listener.getsockname())
            fillers.append(filler)
        time.sleep(0.1)
        probe = socket.socket()
        probe.settimeout(0.3)
        try:
            probe.connect(listener.getsockname())
            pytest.skip("this kernel accepts connections beyond a full backlog")
        except socket.timeout:
            pass
        finally:
            probe.close()
        port = listener.getsockname()[1]
        error, took = failure(f"http://127.0.0.1:{port}{HOOK_PATH}", 1.0, json={"a": 1})
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
    assert took < 1.0 + MARGIN
    assert not isinstance(error, UnconfirmedDelivery) and error.retryable
    assert error.message == "webhook: timed out connecting to 127.0.0.1 (1 s)"


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


def _server_tls(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    return context


def test_an_untrusted_certificate_is_a_tls_failure(peers, authority):
    peer = peers(answer(), tls=_server_tls(authority))
    error, _ = failure(peer.url(scheme="https"), 2.0, json={"a": 1})
    assert not isinstance(error, UnconfirmedDelivery) and error.retryable
    assert error.message == "webhook: cannot connect to 127.0.0.1 (TLS: certificate not trusted)"
    assert (peer.requests, error.message.count("/")) == ([], 0)


def test_plain_http_on_an_https_url_is_a_tls_failure(peers):
    peer = peers(lambda conn, stop: conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n"), read_request=False)
    error, _ = failure(peer.url(scheme="https"), 2.0, json={"a": 1})
    assert error.message == "webhook: cannot connect to 127.0.0.1 (TLS: the peer does not speak TLS)"


def test_tls_is_delivered_and_bounded_too(peers, authority, tmp_path):
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    ok = peers(answer(body=b"fine"), tls=_server_tls(authority))
    assert post(ok.url(scheme="https"), "webhook", 3.0, json={}, verify=str(bundle)).content == b"fine"
    slow = peers(headers_then_trickle(b"x" * 1000, every=0.4), tls=_server_tls(authority))
    error, took = failure(slow.url(scheme="https"), 1.5, json={}, verify=str(bundle))
    assert took < 1.5 + MARGIN
    assert error.message.endswith("then its body stalled (not complete within 1.5 s); it may have arrived")


# -- a failure after the request was sent: the retry says it may be a repeat -------------------------------------

def test_a_retry_of_what_may_have_arrived_is_marked_a_possible_repeat(tmp_path):
    from conftest import RecordingChannel
    from tray_alerts import Engine
    from tray_alerts.channels.http import UnconfirmedDelivery
    from tray_alerts.clock import FakeClock

    class AnswersLate(RecordingChannel):
        """Takes the first alert, then fails as a peer that never answered would; then answers."""

        def send(self, alert):
            super().send(alert)
            if len(self.sent) == 1:
                raise UnconfirmedDelivery("webhook: no answer from 127.0.0.1 within 10 s; it may have arrived")

    clock = FakeClock()
    hook = AnswersLate("hook")
    with Engine({"hook": hook}, {"error": ["hook"]}, tmp_path / "s.db", retry_in_background=False,
                clock=clock) as engine:
        assert engine.raise_alert("api", "error", "api down").outcomes["hook"].status == "retrying"
        clock.advance(3600)
        engine.tick()
        assert engine.wait_idle()
    assert [alert.possible_repeat for alert in hook.sent] == [False, True]
    assert "possibly a repeat" in (hook.sent[1].note() or "")


def test_only_failures_after_sending_mark_the_retry():
    from tray_alerts.channels.base import DeliveryError
    from tray_alerts.delivery import Outcome
    from tray_alerts.outbox import RESULT_RETRYING, RetryPolicy, answer_for
    from tray_alerts.model import Alert
    from tray_alerts.pipeline import Delivery

    row = Delivery(1, "hook", "api", "ep", "firing", Alert("api", "error", "down"), expires_at=1e12)
    for may_have_arrived in (False, True):
        answer = answer_for(row, Outcome(False, "x", True, None, may_have_arrived), 1000.0, RetryPolicy())
        assert answer.result == RESULT_RETRYING and answer.possible_repeat is may_have_arrived
    assert DeliveryError("refused").may_have_arrived is False
    assert DeliveryError("no answer", may_have_arrived=True).may_have_arrived is True
