"""The dns monitor through the system resolver: `localhost` resolves, a `.invalid` name never does (RFC 6761);
a resolver that hangs is injected to show the timeout guard."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from tray_alerts.channels.base import SettingError
from tray_alerts.model import Level
from tray_alerts.monitors import build_monitor


def build(**raw: str):
    return build_monitor("t", "dns", raw).monitor


def local_addresses() -> list[str]:
    return list(dict.fromkeys(info[4][0] for info in socket.getaddrinfo("localhost", None, type=socket.SOCK_STREAM)))


def test_localhost_resolves():
    monitor = build(name="localhost")
    assert monitor.label == "dns localhost"
    reading = monitor.check()
    expected = local_addresses()
    assert reading.ok
    assert reading.summary == f"resolves to {', '.join(expected)}"
    assert reading.context == {"name": "localhost", "addresses": ", ".join(expected)}


def test_localhost_resolves_to_the_expected_address():
    reading = build(name="localhost", expect="127.0.0.1").check()
    assert reading.ok, reading.summary
    assert reading.context["expected"] == "127.0.0.1"


def test_a_missing_expected_address_is_bad():
    reading = build(name="localhost", expect="127.0.0.1, 192.0.2.7", level="critical").check()
    assert reading.level is Level.CRITICAL
    assert reading.summary == f"resolves to {', '.join(local_addresses())}, not to 192.0.2.7"
    assert reading.context["expected"] == "127.0.0.1, 192.0.2.7"


def test_expected_addresses_are_compared_in_canonical_form():
    monitor = build(name="localhost", expect="0:0:0:0:0:0:0:1")
    assert monitor.expect == ("::1",)
    monitor.resolve = lambda name, port, type: [(socket.AF_INET6, type, 6, "", ("::1", 0, 0, 0))]
    assert monitor.check().ok


def test_an_invalid_name_does_not_resolve():
    name = "tray-alerts-test.invalid"
    reading = build(name=name, timeout="30s").check()   # a resolver without network may take a while to say so
    assert reading.level is Level.ERROR
    assert reading.summary.startswith("does not resolve (")
    assert reading.context == {"name": name}


def test_a_hung_resolver_is_bounded_by_the_timeout_and_not_asked_twice():
    release = threading.Event()
    calls = []

    def hanging(name, port, type):
        calls.append(name)
        release.wait(30)
        return [(socket.AF_INET, type, 6, "", ("192.0.2.1", 0))]

    monitor = build(name="slow.example", timeout="200ms")
    monitor.resolve = hanging
    try:
        started = time.monotonic()
        reading = monitor.check()
        assert time.monotonic() - started < 5
        assert (reading.level, reading.summary) == (Level.ERROR, "no answer within 0.2 s")
        reading = monitor.check()
        assert reading.summary == "the previous lookup is still running after more than 0.2 s"
        assert calls == ["slow.example"]
    finally:
        release.set()
    monitor._pending.thread.join(5)
    assert monitor.check().summary == "resolves to 192.0.2.1"
    assert calls == ["slow.example", "slow.example"]


def test_many_addresses_are_shortened_in_the_summary():
    monitor = build(name="many.example")
    addresses = [f"192.0.2.{n}" for n in range(1, 9)]
    monitor.resolve = lambda name, port, type: [(socket.AF_INET, type, 6, "", (a, 0)) for a in addresses]
    reading = monitor.check()
    assert reading.summary == "resolves to 192.0.2.1, 192.0.2.2, 192.0.2.3, 192.0.2.4, 192.0.2.5 and 3 more"
    assert reading.context["addresses"] == ", ".join(addresses)


@pytest.mark.parametrize("raw, key", [
    ({}, "name"),
    ({"name": "x", "expect": "localhost"}, "expect"),
    ({"name": "x", "expect": "127.0.0.1, 300.1.1.1"}, "expect"),
    ({"name": "x", "level": "loud"}, "level"),
    ({"name": "x", "port": "53"}, "port"),
])
def test_settings_errors_name_the_key(raw, key):
    with pytest.raises(SettingError) as caught:
        build_monitor("t", "dns", raw)
    assert caught.value.key == key


def test_a_name_that_cannot_be_encoded_does_not_resolve():
    reading = build(name="x" * 70 + ".example").check()   # a label over 63 characters: IDNA refuses it
    assert reading.level is Level.ERROR and reading.summary.startswith("does not resolve (")
