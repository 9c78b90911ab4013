"""Native pop-ups against a real notification server: dunst on Xvfb with a private session bus.

What the channel sends is read off the bus by dbus-monitor (NotifyRecorder): hints, actions, replaces_id,
expire_timeout and the id dunst answers with. Actions are picked in dunst itself: `dunstctl context` opens dunst's
context menu through the `dmenu` command of its dunstrc, here a script that answers with the line of the wanted
action (dunst lists each as `#Label (summary) [id,key]`), and `dunstctl action` runs a pop-up's default action.
"""
from __future__ import annotations

import queue
import sys
import threading
from pathlib import Path

import pytest

from desktop_session import (ActionInvoked, DesktopSession, NotificationClosed, NotifyRecorder,
                             skip_unless_tools)
from tray_alerts import session_bus
from tray_alerts.channels.desktop import DesktopChannel
from tray_alerts.icons import level_icon_path
from tray_alerts.model import Alert, Level
from tray_alerts.notifications import NotificationsClient

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="freedesktop notifications")

WAIT = 10.0
MENU_SCRIPT = """#!/bin/sh
# dunst's context menu: keep what dunst offered, then answer with the line that ends in the wanted [id,key]
cat > "{folder}/menu-offered.part" && mv "{folder}/menu-offered.part" "{folder}/menu-offered"
want=$(cat "{folder}/menu-want")
grep -F -m1 -- "$want" "{folder}/menu-offered"
"""


def write_menu_script(folder: Path, text: str = MENU_SCRIPT) -> Path:
    """The dmenu stand-in dunst runs for its context menu, written into `folder`; returns its path."""
    script = folder / "menu.sh"
    script.write_text(text.format(folder=folder))
    script.chmod(0o755)
    return script


@pytest.fixture(scope="module")
def menu_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dunst-menu")
    write_menu_script(folder)
    return folder


@pytest.fixture(scope="module")
def desktop(menu_folder):
    skip_unless_tools("Xvfb", "dbus-daemon", "dbus-monitor", "gdbus", "dunst", "dunstctl", "dbus-send")
    with DesktopSession(dunstrc=f'[global]\n    dmenu = "{menu_folder / "menu.sh"}"\n') as session:
        yield session


@pytest.fixture
def on_desktop(desktop, monkeypatch):
    desktop.apply(monkeypatch)
    desktop.dunstctl("close-all")  # what an earlier test left on screen
    desktop.wait_for(lambda: desktop.displayed() == 0, "empty screen", timeout=WAIT)
    return desktop


@pytest.fixture
def recorder(on_desktop):
    with NotifyRecorder(on_desktop, timeout=WAIT) as recording:
        yield recording


class Actions:
    """Collects on_action calls (event, key, thread name) from the channel's worker thread."""

    def __init__(self) -> None:
        self.calls: queue.Queue[tuple[str, str, str]] = queue.Queue()

    def __call__(self, event: str, key: str) -> None:
        self.calls.put((event, key, threading.current_thread().name))

    def next(self) -> tuple[str, str, str]:
        try:
            return self.calls.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError(f"on_action was not called within {WAIT:g} s") from None


@pytest.fixture
def channel():
    built = DesktopChannel(timeout=10, sounds={Level.CRITICAL: "alarm-clock-elapsed"})
    built.on_action = Actions()
    yield built
    built.close()


def disk(level: Level, resolved: bool = False, reminder: bool = False) -> Alert:
    message = "/ is fine again" if resolved else f"/ at {95 if level >= Level.ERROR else 91}%"
    return Alert("disk_root", level, message, {"mount": "/"}, resolved=resolved, reminder=reminder,
                 firing_for=600 if resolved or reminder else None)


def pick_in_context_menu(desktop: DesktopSession, folder: Path, notification_id: int, key: str) -> list[str]:
    """Open dunst's context menu and choose `key` of pop-up `notification_id`; the lines dunst offered."""
    offered = folder / "menu-offered"
    offered.unlink(missing_ok=True)  # the script writes it whole (a rename) once dunst has fed it the menu
    (folder / "menu-want").write_text(f"[{notification_id},{key}]")
    desktop.dunstctl("context")
    desktop.wait_for(lambda: offered.exists() and offered.read_text().strip(), "dunst's context menu", timeout=WAIT)
    return offered.read_text().splitlines()


def test_the_client_reads_dunsts_name_and_capabilities(on_desktop):
    client = NotificationsClient()

    async def ask():
        try:
            return await client.server_information(), await client.capabilities()
        finally:
            client.disconnect()

    information, capabilities = session_bus.run(ask(), WAIT)
    assert (information.name, information.vendor, information.spec_version) == ("dunst", "knopwob", "1.2")
    assert {"actions", "body"} <= capabilities
    assert sorted(capabilities) == sorted(on_desktop.capabilities())


def test_critical_pop_up_is_urgent_never_expires_and_names_the_app(recorder, channel, on_desktop):
    channel.send(disk(Level.CRITICAL))

    [call] = recorder.wait_for(1)
    assert call.urgency == 2
    assert call.expire_timeout == 0
    assert call.desktop_entry == "tray-alerts" and call.app_name == "tray-alerts"
    assert call.sound_name == "alarm-clock-elapsed"
    assert call.category == "x-tray-alerts.alert.firing"
    assert call.app_icon == str(level_icon_path(Level.CRITICAL))
    assert call.hints["image-path"] == level_icon_path(Level.CRITICAL).as_uri()
    assert call.action_labels == {"ack": "Acknowledge", "mute": "Mute 1 h", "default": "Open"}
    assert call.replaces_id == 0
    assert recorder.returned_id(call) > 0
    assert on_desktop.displayed() == 1


def test_escalation_and_recovery_replace_the_first_pop_up_and_a_new_episode_gets_its_own(recorder, channel,
                                                                                       on_desktop):
    channel.send(disk(Level.WARNING))
    [first] = recorder.wait_for(1)
    first_id = recorder.returned_id(first)

    channel.send(disk(Level.CRITICAL))
    escalation = recorder.wait_for(2)[1]
    channel.send(disk(Level.CRITICAL, resolved=True))
    recovery = recorder.wait_for(3)[2]

    assert (first.replaces_id, first.urgency, first.expire_timeout) == (0, 1, 10_000)
    assert (escalation.replaces_id, escalation.urgency, escalation.expire_timeout) == (first_id, 2, 0)
    assert recorder.returned_id(escalation) == first_id
    assert (recovery.replaces_id, recovery.urgency, recovery.expire_timeout) == (first_id, 1, 10_000)
    assert recorder.returned_id(recovery) == first_id
    assert recovery.summary == "RESOLVED · disk_root" and recovery.body.startswith("/ is fine again")
    assert recovery.action_labels == {"default": "Open"} and recovery.sound_name is None
    assert on_desktop.displayed() == 1  # one pop-up all along

    channel.send(disk(Level.WARNING))  # the next episode: a pop-up of its own next to the recovery
    fresh = recorder.wait_for(4)[3]
    assert fresh.replaces_id == 0
    assert recorder.returned_id(fresh) != first_id
    on_desktop.wait_for(lambda: on_desktop.displayed() == 2, "the new pop-up next to the recovery", timeout=WAIT)


def test_acknowledge_picked_in_dunsts_context_menu_reaches_on_action(recorder, channel, on_desktop, menu_folder):
    channel.send(disk(Level.CRITICAL))
    [call] = recorder.wait_for(1)
    notification_id = recorder.returned_id(call)

    offered = pick_in_context_menu(on_desktop, menu_folder, notification_id, "ack")

    assert sorted(offered) == sorted(f"#{label} (CRITICAL · disk_root) [{notification_id},{key}]"
                                     for key, label in call.action_labels.items())
    event, key, thread = channel.on_action.next()
    assert (event, key) == ("disk_root", "ack")
    assert thread != "session-bus"  # never on the bus loop
    recorder.sync()
    [signal] = [s for s in recorder.signals if isinstance(s, ActionInvoked)]
    assert (signal.notification_id, signal.action_key) == (notification_id, "ack")
    assert signal.sender != call.sender  # dunst sent it, not the channel


def test_mute_and_the_default_action_reach_on_action_too(recorder, channel, on_desktop, menu_folder):
    channel.send(disk(Level.ERROR))
    notification_id = recorder.returned_id(recorder.wait_for(1)[0])

    pick_in_context_menu(on_desktop, menu_folder, notification_id, "mute")
    assert channel.on_action.next()[:2] == ("disk_root", "mute")

    on_desktop.dunstctl("action", "0")  # the default action of the newest pop-up, as a middle click would
    assert channel.on_action.next()[:2] == ("disk_root", "default")


def test_a_failing_on_action_is_logged_and_the_next_action_still_arrives(recorder, channel, on_desktop,
                                                                       menu_folder, caplog):
    collected = channel.on_action
    failures = []

    def fails_once(event: str, key: str) -> None:
        if not failures:
            failures.append(key)
            raise RuntimeError("the app broke")
        collected(event, key)

    channel.on_action = fails_once
    channel.send(disk(Level.ERROR))
    notification_id = recorder.returned_id(recorder.wait_for(1)[0])

    pick_in_context_menu(on_desktop, menu_folder, notification_id, "ack")
    pick_in_context_menu(on_desktop, menu_folder, notification_id, "mute")

    assert collected.next()[:2] == ("disk_root", "mute")
    assert failures == ["ack"]
    assert any("handling ack on the pop-up of disk_root failed" in record.getMessage() for record in caplog.records)


def test_pop_up_closed_in_dunst_is_forgotten_so_the_next_alert_pops_up_anew(recorder, channel, on_desktop):
    channel.send(disk(Level.WARNING))
    notification_id = recorder.returned_id(recorder.wait_for(1)[0])

    on_desktop.dunstctl("close")  # as the user closing it
    recorder.wait_until(lambda r: [s for s in r.signals if isinstance(s, NotificationClosed)], "NotificationClosed")
    channel.send(disk(Level.ERROR))

    again = recorder.wait_for(2)[1]
    assert again.replaces_id == 0
    assert recorder.returned_id(again) != notification_id


def test_withdraw_closes_the_pop_up_once(recorder, channel, on_desktop):
    channel.send(disk(Level.CRITICAL))
    notification_id = recorder.returned_id(recorder.wait_for(1)[0])

    channel.withdraw("disk_root")  # returns once dunst has answered

    recorder.sync()
    assert recorder.close_calls == [notification_id]
    [closed] = recorder.wait_until(lambda r: [s for s in r.signals if isinstance(s, NotificationClosed)],
                                   "NotificationClosed")
    assert (closed.notification_id, closed.reason) == (notification_id, 3)  # 3: closed by CloseNotification
    on_desktop.wait_for(lambda: on_desktop.displayed() == 0, "the pop-up gone", timeout=WAIT)
    channel.withdraw("disk_root")
    channel.withdraw("never_shown")
    recorder.sync()
    assert recorder.close_calls == [notification_id]


def test_a_new_bus_after_the_old_one_dropped_is_used_with_fresh_pop_ups(monkeypatch):
    skip_unless_tools("Xvfb", "dbus-daemon", "dbus-monitor", "gdbus", "dunst")
    channel = DesktopChannel(timeout=10)
    try:
        with DesktopSession() as first:
            first.apply(monkeypatch)
            with NotifyRecorder(first) as recorder:
                channel.send(disk(Level.WARNING))
                assert recorder.returned_id(recorder.wait_for(1)[0]) > 0
        # the first bus and its dunst are gone; the channel notices and connects to whatever the session is now
        with DesktopSession() as second:
            second.apply(monkeypatch)
            with NotifyRecorder(second) as recorder:
                channel.send(disk(Level.ERROR))
                [call] = recorder.wait_for(1)
        assert call.replaces_id == 0  # ids of the old server mean nothing to the new one
        assert call.summary == "ERROR · disk_root"
    finally:
        channel.close()
