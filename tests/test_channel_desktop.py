"""DesktopChannel against a real (headless) desktop: Xvfb, a private session bus, dunst, dbus-monitor.

The pop-up path is checked on the bus: the Notify call dunst receives is recorded and decoded. The failure
cases need no desktop at all, except the one with a bus but nobody serving notifications.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from desktop_session import NOTIFICATIONS, DesktopSession, NotifyRecorder, skip_unless_tools
from tray_alerts.channels import desktop as desktop_module
from tray_alerts.channels.base import DeliveryError
from tray_alerts.channels.desktop import APP_NAME, DesktopChannel
from tray_alerts.model import Alert, Level

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux desktop path")

CONTEXT = {"host": "web-01", "mount": "/var"}


def disk_alert(level: Level = Level.WARNING, resolved: bool = False) -> Alert:
    message = "disk is fine again on /var" if resolved else "disk at 95% on /var"
    return Alert(event="disk_full", level=level, message=message, context=dict(CONTEXT), resolved=resolved)


@pytest.fixture(scope="module")
def desktop():
    skip_unless_tools()
    with DesktopSession() as session:
        yield session


@pytest.fixture
def on_desktop(desktop, monkeypatch):
    """os.environ (read by the channel, inherited by notify-send) pointed at the private desktop."""
    desktop.apply(monkeypatch)
    return desktop


@pytest.fixture
def recorder(on_desktop):
    with NotifyRecorder(on_desktop) as recording:
        yield recording


def only_call(recorder: NotifyRecorder):
    """The single Notify call made so far (waits for it; sync() makes sure no second one is in flight)."""
    recorder.wait_for(1)
    recorder.sync()
    assert len(recorder.calls) == 1, recorder.calls
    return recorder.calls[0]


def test_warning_alert_shows_one_pop_up_with_message_and_context(recorder):
    DesktopChannel(timeout=10).send(disk_alert())

    call = only_call(recorder)
    assert call.app_name == APP_NAME == "tray-alerts"
    assert call.title == "WARNING · disk_full"
    lines = call.body.splitlines()
    assert lines[0] == "disk at 95% on /var"
    assert "host: web-01" in lines and "mount: /var" in lines
    assert Path(call.icon).is_file(), call.icon
    assert Path(call.icon).name == "level-warning.png"
    assert call.urgency == 1  # normal


def test_resolved_alert_pops_up_as_resolved(recorder):
    DesktopChannel(timeout=10).send(disk_alert(Level.CRITICAL, resolved=True))

    call = only_call(recorder)
    assert call.app_name == "tray-alerts"
    assert call.title == "RESOLVED · disk_full"
    assert call.body.splitlines()[0] == "disk is fine again on /var"
    assert Path(call.icon).is_file() and Path(call.icon).name == "level-clear.png"
    assert call.urgency == 1  # a recovery is never urgent, even of a critical alert


def test_critical_alert_is_urgent(recorder):
    DesktopChannel(timeout=10).send(disk_alert(Level.CRITICAL))

    call = only_call(recorder)
    assert call.title == "CRITICAL · disk_full"
    assert call.urgency == 2
    assert Path(call.icon).is_file() and Path(call.icon).name == "level-critical.png"


def test_no_session_bus_is_a_clear_permanent_failure(monkeypatch, tmp_path):
    runtime = tmp_path / "runtime"  # exists, but has no `bus` socket in it
    runtime.mkdir()
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))

    with pytest.raises(DeliveryError) as caught:
        DesktopChannel().send(disk_alert())
    assert caught.value.retryable is False
    assert "D-Bus" in caught.value.message


def test_no_notify_send_and_no_dbus_python_is_a_clear_permanent_failure(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "dbus", None)  # dbus-python not importable, even where it is installed
    assert importlib.util.find_spec("dbus") is None
    assert desktop_module._has_dbus_python() is False
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={tmp_path / 'bus'}")  # a bus is "there"

    with pytest.raises(DeliveryError) as caught:
        DesktopChannel().send(disk_alert())
    assert caught.value.retryable is False
    assert "notify-send" in caught.value.message
    assert "libnotify-bin" in caught.value.message


def test_bus_without_notification_daemon_is_a_clear_permanent_failure(monkeypatch):
    skip_unless_tools("Xvfb", "dbus-daemon", "gdbus", "notify-send")
    # The private bus has no service directories, so nothing (e.g. /usr/share/dbus-1/services/
    # org.knopwob.dunst.service) can be auto-activated to serve notifications behind our back.
    with DesktopSession(notifications=False) as bare:
        bare.apply(monkeypatch)
        assert not bare.name_has_owner(NOTIFICATIONS)

        with pytest.raises(DeliveryError) as caught:
            DesktopChannel(timeout=5).send(disk_alert())

        assert not bare.name_has_owner(NOTIFICATIONS)
    assert caught.value.retryable is False
    message = caught.value.message
    assert message.startswith("desktop: ")
    assert "no notification daemon is running" in message and NOTIFICATIONS in message


def test_markup_characters_are_escaped_so_they_show_as_written(recorder):
    DesktopChannel(timeout=10).send(Alert("api", Level.ERROR, "latency > 2s & <rising>", {"tag": "<none>"}))

    call = only_call(recorder)
    assert call.body.splitlines() == ["latency &gt; 2s &amp; &lt;rising&gt;", "tag: &lt;none&gt;"]
