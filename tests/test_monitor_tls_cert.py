"""The tls_cert monitor against a real TLS server on loopback (Python's ssl in a thread) with certificates from
trustme: days left per level, trust via ca_file or SSL_CERT_FILE, and the chains that are not trusted."""
from __future__ import annotations

import datetime
import socket
import ssl
import threading
import time

import pytest
import trustme

from tray_alerts.channels.base import SettingError
from tray_alerts.clock import FakeClock
from tray_alerts.model import Level
from tray_alerts.monitors import build_monitor

DAY = 86400


class TlsServer:
    """Accepts on 127.0.0.1, completes a handshake with the given certificate and hangs up; `silent` accepts
    and never speaks."""

    def __init__(self, cert: trustme.LeafCert | None, silent: bool = False):
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        if cert is not None:
            cert.configure_cert(self.context)
        self.silent = silent
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                return
            if self.silent:
                self.held.append(conn)
                continue
            conn.settimeout(5)
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)   # until the client hangs up
            except (ssl.SSLError, OSError):
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.listener.close()
        for conn in self.held:
            conn.close()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def serve():
    servers: list[TlsServer] = []

    def start(cert: trustme.LeafCert | None, silent: bool = False) -> TlsServer:
        servers.append(TlsServer(cert, silent))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def ca_file(ca, tmp_path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


NOW = int(time.time())


def leaf(ca: trustme.CA, days: float, *identities: str) -> trustme.LeafCert:
    """A certificate for 127.0.0.1 (or `identities`) expiring `days` after NOW, valid since a day before."""
    moment = datetime.datetime.fromtimestamp(NOW + days * DAY, datetime.timezone.utc)
    since = datetime.datetime.fromtimestamp(NOW - DAY, datetime.timezone.utc)
    return ca.issue_cert(*(identities or ("127.0.0.1",)), not_before=since, not_after=moment)


def monitor_for(server: TlsServer, **raw: str):
    monitor = build_monitor("t", "tls_cert", {"host": "127.0.0.1", "port": str(server.port), "timeout": "5s",
                                              **raw}).monitor
    monitor.clock = FakeClock(start=NOW)
    return monitor


@pytest.mark.parametrize("days, level, summary", [
    (90, None, "certificate expires in 90 d (warning at 30 d)"),
    (20, Level.WARNING, "certificate expires in 20 d (warning at 30 d)"),
    (3, Level.CRITICAL, "certificate expires in 3 d (critical at 7 d)"),
])
def test_days_left_decide_the_level(ca, ca_file, serve, days, level, summary):
    server = serve(leaf(ca, days))
    monitor = monitor_for(server, ca_file=ca_file)
    assert monitor.label == f"tls 127.0.0.1:{server.port}"
    reading = monitor.check()
    assert (reading.level, reading.summary) == (level, summary)
    assert reading.value == pytest.approx(days)
    expires = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(NOW + days * DAY))
    assert reading.context == {"host": "127.0.0.1", "port": server.port, "subject": "127.0.0.1",
                               "issuer": f"trustme v{trustme.__version__}", "expires": expires}


def test_the_level_follows_the_clock_as_expiry_nears(ca, ca_file, serve):
    server = serve(leaf(ca, 40))
    monitor = monitor_for(server, ca_file=ca_file, warning="30d", error="14d", critical="2d")
    seen = []
    for _ in range(5):
        reading = monitor.check()
        seen.append((round(reading.value), reading.level))
        monitor.clock.advance(10 * DAY)
    assert seen == [(40, None), (30, Level.WARNING), (20, Level.WARNING), (10, Level.ERROR), (0, Level.CRITICAL)]
    assert reading.summary == "certificate has expired"


def test_the_system_store_does_not_trust_a_private_ca(ca, serve):
    server = serve(leaf(ca, 90))
    reading = monitor_for(server).check()
    assert reading.level is Level.ERROR
    assert reading.summary == "certificate not trusted: unable to get local issuer certificate"
    assert reading.context == {"host": "127.0.0.1", "port": server.port}


def test_ssl_cert_file_is_honoured(ca, ca_file, serve, monkeypatch):
    server = serve(leaf(ca, 90))
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)
    reading = monitor_for(server).check()
    assert reading.ok, reading.summary


def test_another_ca_is_not_trusted(serve, ca_file):
    other = trustme.CA()
    server = serve(leaf(other, 90))
    reading = monitor_for(server, ca_file=ca_file).check()
    assert (reading.level, reading.summary) == (Level.ERROR,
                                                "certificate not trusted: unable to get local issuer certificate")


def test_a_hostname_mismatch_is_an_error(ca, ca_file, serve):
    server = serve(leaf(ca, 90, "other.example"))
    reading = monitor_for(server, ca_file=ca_file).check()
    assert reading.level is Level.ERROR
    assert reading.summary == "certificate not trusted: IP address mismatch, certificate is not valid for '127.0.0.1'"
    named = monitor_for(server, ca_file=ca_file, server_name="localhost").check()
    assert named.summary == "certificate not trusted: Hostname mismatch, certificate is not valid for 'localhost'"
    assert monitor_for(server, ca_file=ca_file, server_name="other.example").check().ok


def test_an_expired_certificate_is_the_worst_level(ca, ca_file, serve):
    since = datetime.datetime.fromtimestamp(NOW - 30 * DAY, datetime.timezone.utc)
    until = datetime.datetime.fromtimestamp(NOW - DAY, datetime.timezone.utc)
    server = serve(ca.issue_cert("127.0.0.1", not_before=since, not_after=until))
    assert monitor_for(server, ca_file=ca_file).check().level is Level.CRITICAL
    reading = monitor_for(server, ca_file=ca_file, warning="60d", error="10d").check()
    assert (reading.level, reading.summary) == (Level.ERROR, "certificate has expired")


def test_no_tls_and_no_server(serve, ca_file):
    plain = socket.create_server(("127.0.0.1", 0))
    port = plain.getsockname()[1]
    plain.close()
    reading = build_monitor("t", "tls_cert", {"host": "127.0.0.1", "port": str(port)}).monitor.check()
    assert (reading.level, reading.summary) == (Level.ERROR, "cannot connect (Connection refused)")

    silent = serve(None, silent=True)
    monitor = monitor_for(silent, ca_file=ca_file, timeout="300ms")
    started = time.monotonic()
    reading = monitor.check()
    assert time.monotonic() - started < 5
    assert (reading.level, reading.summary) == (Level.ERROR, "no TLS handshake within 0.3 s")


def test_a_server_speaking_something_else(ca_file):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(1024)
            conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\nnot tls\r\n" * 4)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        reading = build_monitor("t", "tls_cert", {"host": "127.0.0.1", "port": str(port), "ca_file": ca_file,
                                                  "timeout": "5s"}).monitor.check()
    finally:
        thread.join(5)
        listener.close()
    assert reading.level is Level.ERROR
    assert reading.summary.startswith("TLS handshake failed (")


def test_defaults_and_settings_errors():
    monitor = build_monitor("t", "tls_cert", {"host": "example.org"})
    assert (monitor.monitor.port, monitor.monitor.server_name, monitor.interval) == (443, "example.org", 3600.0)
    assert monitor.monitor.limits == {Level.WARNING: 30 * DAY, Level.CRITICAL: 7 * DAY}
    only = build_monitor("t", "tls_cert", {"host": "h", "warning": "60d"}).monitor
    assert only.limits == {Level.WARNING: 60 * DAY}
    for raw, key in [({}, "host"), ({"host": "h", "port": "https"}, "port"), ({"host": "h", "port": "0"}, "port"),
                     ({"host": "h", "warning": "7d", "critical": "30d"}, "critical"),
                     ({"host": "h", "warning": "soon"}, "warning"), ({"host": "h", "verify": "no"}, "verify")]:
        with pytest.raises(SettingError) as caught:
            build_monitor("t", "tls_cert", raw)
        assert caught.value.key == key, raw


def test_a_ca_file_that_is_missing_or_not_pem(tmp_path, serve, ca):
    server = serve(leaf(ca, 90))
    missing = tmp_path / "nope.pem"
    reading = monitor_for(server, ca_file=str(missing)).check()
    assert (reading.level, reading.summary) == (Level.ERROR, f"cannot use ca_file {missing} (No such file or directory)")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    reading = monitor_for(server, ca_file=str(junk)).check()
    assert reading.level is Level.ERROR and reading.summary.startswith(f"cannot use ca_file {junk} (")
