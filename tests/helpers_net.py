"""Helpers for the channel tests that talk to real local servers (HTTP via pytest-httpserver, SMTP via aiosmtpd).

Import what a test module needs; fixtures defined here become active in a module that imports them by name.
"""
from __future__ import annotations

import re
import socket
import threading
from datetime import datetime, timezone

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tray_alerts import redact as redact_module
from tray_alerts.channels.base import DeliveryError
from tray_alerts.delivery import attempt
from tray_alerts.model import Alert, Level

SHORT_TIMEOUT = 0.5
# How long a stalled handler holds its request at most; the test releases it well before that.
STALL_LIMIT = 10.0
FIXED_TIME = datetime(2024, 5, 17, 12, 30, 1, tzinfo=timezone.utc)


def free_port() -> int:
    """A loopback TCP port nothing listens on (bound once to pick it, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dead_url(path: str = "/") -> str:
    """An http URL on 127.0.0.1 where the connection will be refused."""
    return f"http://127.0.0.1:{free_port()}{path}"


def disk_alert(level: Level | str = Level.CRITICAL, resolved: bool = False, **context) -> Alert:
    """The running example: `disk_full`, `disk at 95% on /var`, with host and mount context."""
    return Alert("disk_full", Level.parse(level), "disk at 95% on /var",
                 context or {"host": "web-01", "mount": "/var"}, at=FIXED_TIME, resolved=resolved)


@pytest.fixture
def isolated_secrets(monkeypatch):
    """An empty secret registry for one test (restored afterwards) so tests do not mask each other's text."""
    monkeypatch.setattr(redact_module, "_secrets", [])
    return redact_module.register_secret


@pytest.fixture
def stalling_server():
    """A pytest-httpserver HTTPServer of its own on 127.0.0.1 that answers every request only at teardown.

    Threaded and separate from the shared server, so a stalled request neither blocks later tests nor lands in
    their request log.
    """
    release = threading.Event()

    def stall(request: Request) -> Response:
        release.wait(STALL_LIMIT)
        return Response("too late", status=200)

    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.expect_request(re.compile(".*")).respond_with_handler(stall)
    server.start()
    yield server
    release.set()
    server.clear()
    server.stop()


def echoing_handler(status: int):
    """A handler answering `status` with a body that echoes the request path, as Express/n8n 404s do."""

    def handler(request: Request) -> Response:
        return Response(f"Cannot POST {request.full_path.rstrip('?')}", status=status, mimetype="text/plain")

    return handler


def send_failure(channel, alert: Alert) -> DeliveryError:
    """The DeliveryError channel.send raises (fails the test if it does not raise one)."""
    with pytest.raises(DeliveryError) as caught:
        channel.send(alert)
    return caught.value


def assert_secret_free(channel, alert: Alert, secret: str) -> DeliveryError:
    """Send, expect a DeliveryError, and check the secret is in neither the error nor attempt()'s detail."""
    error = send_failure(channel, alert)
    assert secret not in error.message
    assert secret not in str(error)
    outcome = attempt(channel, alert)
    assert not outcome.ok
    assert outcome.detail
    assert secret not in outcome.detail
    return error
