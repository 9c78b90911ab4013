"""DesktopChannel: what it sends for which alert (pure, table-tested), its pop-up bookkeeping and signal handling
against a fake bus at the edge, and the real thing on a headless desktop (Xvfb, a private session bus, dunst,
dbus-monitor) — there the Notify call dunst receives is recorded and decoded.

The failure cases need no desktop at all, except the one with a bus but nobody serving notifications. Actions
picked in dunst itself, replacing pop-ups in dunst and reconnecting are in test_notifications_e2e.py.
"""
from __future__ import annotations

import asyncio
import logging
import queue
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from dbus_fast import Message, MessageType

from desktop_session import NOTIFICATIONS, DesktopSession, NotifyRecorder, skip_unless_tools
from tray_alerts import session_bus
from tray_alerts.channels import build_channel
from tray_alerts.channels import desktop as desktop_module
from tray_alerts.channels.base import DeliveryError, SettingError
from tray_alerts.channels.desktop import (APP_NAME, MAX_BODY, NO_DAEMON, DesktopChannel, PopUps, missing_session_bus,
                                          notify_arguments, uses_freedesktop)
from tray_alerts.icons import level_icon_path
from tray_alerts.model import Alert, Level
from tray_alerts.notifications import OBJECT_PATH, Notification, hint_signature

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux desktop path")

CONTEXT = {"host": "web-01", "mount": "/var"}
FULL = frozenset({"actions", "body", "body-markup", "sound"})
FIRING = ("ack", "mute", "default")
WAIT = 10.0


def disk_alert(level: Level = Level.WARNING, resolved: bool = False, reminder: bool = False,
               event: str = "disk_full") -> Alert:
    message = "disk is fine again on /var" if resolved else "disk at 95% on /var"
    return Alert(event=event, level=level, message=message, context=dict(CONTEXT), resolved=resolved,
                 reminder=reminder, firing_for=3600 if resolved or reminder else None)


# -- which Notify call for which alert (pure) -----------------------------------------------------------------

@pytest.mark.parametrize("alert, urgency, expire, actions, category", [
    (disk_alert(Level.INFO), 1, 10_000, FIRING, "x-tray-alerts.alert.firing"),
    (disk_alert(Level.WARNING), 1, 10_000, FIRING, "x-tray-alerts.alert.firing"),
    (disk_alert(Level.ERROR), 1, 10_000, FIRING, "x-tray-alerts.alert.firing"),
    (disk_alert(Level.CRITICAL), 2, 0, FIRING, "x-tray-alerts.alert.firing"),
    (disk_alert(Level.CRITICAL, reminder=True), 2, 0, FIRING, "x-tray-alerts.alert.firing"),
    (disk_alert(Level.WARNING, reminder=True), 1, 10_000, FIRING, "x-tray-alerts.alert.firing"),
    (disk_alert(Level.CRITICAL, resolved=True), 1, 10_000, ("default",), "x-tray-alerts.alert.resolved"),
    (disk_alert(Level.INFO, resolved=True), 1, 10_000, ("default",), "x-tray-alerts.alert.resolved"),
], ids=["info", "warning", "error", "critical", "critical-reminder", "warning-reminder", "critical-recovery",
        "info-recovery"])
def test_urgency_expiry_actions_and_category_follow_level_and_kind(alert, urgency, expire, actions, category):
    arguments = notify_arguments(alert, capabilities=FULL, timeout=10)

    assert arguments.hints["urgency"] == urgency
    assert arguments.expire_timeout == expire
    assert arguments.action_keys == actions
    assert arguments.hints["category"] == category
    assert arguments.hints["desktop-entry"] == "tray-alerts"
    icon = level_icon_path(None if alert.resolved else alert.level)
    assert arguments.app_icon == str(icon) and arguments.hints["image-path"] == icon.as_uri()
    assert arguments.app_name == APP_NAME
    assert arguments.summary == f"{alert.tag} · disk_full"


def test_action_labels_are_the_ones_people_see():
    assert notify_arguments(disk_alert(), capabilities=FULL).actions == (
        ("ack", "Acknowledge"), ("mute", "Mute 1 h"), ("default", "Open"))
    assert notify_arguments(disk_alert(resolved=True), capabilities=FULL).actions == (("default", "Open"),)


def test_the_apps_own_pop_ups_can_be_opened_but_not_acknowledged_or_muted():
    summary = Alert("tray-alerts", Level.ERROR, "37 more alerts: a, b, c and 34 more — open the tray")
    assert notify_arguments(summary, capabilities=FULL).actions == (("default", "Open"),)


@pytest.mark.parametrize("capabilities, interactive", [
    (frozenset({"body", "body-markup"}), True),  # the server has no actions
    (FULL, False),  # nothing in the app handles them
], ids=["server-without-actions", "no-handler"])
def test_no_actions_where_nobody_could_pick_or_handle_them(capabilities, interactive):
    assert notify_arguments(disk_alert(), capabilities=capabilities, interactive=interactive).actions == ()


@pytest.mark.parametrize("alert, sound", [
    (disk_alert(Level.WARNING), "dialog-warning"),
    (disk_alert(Level.CRITICAL), "alarm-clock-elapsed"),
    (disk_alert(Level.CRITICAL, reminder=True), "alarm-clock-elapsed"),
    (disk_alert(Level.INFO), None),  # no sound set for info
    (disk_alert(Level.CRITICAL, resolved=True), None),  # a recovery is quiet
], ids=["warning", "critical", "critical-reminder", "info-unset", "recovery"])
def test_sound_name_hint_is_the_levels_sound(alert, sound):
    sounds = {Level.WARNING: "dialog-warning", Level.CRITICAL: "alarm-clock-elapsed"}

    assert notify_arguments(alert, capabilities=FULL, sounds=sounds).hints.get("sound-name") == sound


def test_no_sound_hint_by_default():
    assert "sound-name" not in notify_arguments(disk_alert(Level.CRITICAL), capabilities=FULL).hints


@pytest.mark.parametrize("timeout, expire", [(10, 10_000), (2.5, 2_500), (0, 0), (86400 * 30, 2**31 - 1)],
                         ids=["10s", "2.5s", "0-never", "30d-capped-to-int32"])
def test_expiry_is_the_timeout_option_in_milliseconds(timeout, expire):
    assert notify_arguments(disk_alert(Level.ERROR), capabilities=FULL, timeout=timeout).expire_timeout == expire


def test_replaces_id_is_passed_through():
    assert notify_arguments(disk_alert(), replaces_id=42, capabilities=FULL).replaces_id == 42
    assert notify_arguments(disk_alert()).replaces_id == 0


@pytest.mark.parametrize("capabilities, body", [
    (frozenset({"body", "body-markup"}), ["latency &gt; 2s &amp; &lt;rising&gt;", "tag: &lt;none&gt;"]),
    (frozenset({"body"}), ["latency > 2s & <rising>", "tag: <none>"]),  # shown as plain text: left as is
], ids=["markup-server", "plain-server"])
def test_body_is_escaped_only_for_servers_that_read_markup(capabilities, body):
    alert = Alert("api", Level.ERROR, "latency > 2s & <rising>", {"tag": "<none>"})

    assert notify_arguments(alert, capabilities=capabilities).body.splitlines() == body


def test_long_body_is_cut_before_escaping():
    alert = Alert("api", Level.ERROR, "<" * 5000)

    plain = notify_arguments(alert, capabilities=frozenset({"body"})).body
    escaped = notify_arguments(alert, capabilities=frozenset({"body-markup"})).body
    assert len(plain) == MAX_BODY and plain.endswith("…")
    assert escaped == "&lt;" * (MAX_BODY - 1) + "…"


def test_recovery_and_reminder_bodies_say_how_long_it_fired():
    assert "recovered after 1 h" in notify_arguments(disk_alert(resolved=True)).body
    assert "reminder: still firing after 1 h" in notify_arguments(disk_alert(reminder=True)).body


@pytest.mark.parametrize("key, value, signature", [
    ("urgency", 2, "y"), ("desktop-entry", "tray-alerts", "s"), ("resident", True, "b"), ("x", 10, "i"),
    ("x-vendor-number", 7, "i")])
def test_hints_go_out_with_the_specs_types(key, value, signature):
    assert hint_signature(key, value) == signature


def test_notify_body_flattens_actions_and_wraps_hints():
    body = Notification("t", "b", "app", 3, "icon", (("ack", "Acknowledge"),), {"urgency": 2}, 0).message_body()

    assert body[:6] == ["app", 3, "icon", "t", "b", ["ack", "Acknowledge"]]
    assert (body[6]["urgency"].signature, body[6]["urgency"].value) == ("y", 2)
    assert body[7] == 0


@pytest.mark.parametrize("environ, problem", [
    ({"DBUS_SESSION_BUS_ADDRESS": "unix:path=/run/user/1000/bus"}, None),
    ({}, desktop_module.NO_SESSION_BUS),
    ({"XDG_RUNTIME_DIR": "/nonexistent"}, desktop_module.NO_SESSION_BUS),
])
def test_missing_session_bus(environ, problem):
    assert missing_session_bus(environ) == problem


def test_missing_session_bus_accepts_the_runtime_dir_socket(tmp_path):
    (tmp_path / "bus").touch()
    assert missing_session_bus({"XDG_RUNTIME_DIR": str(tmp_path)}) is None


@pytest.mark.parametrize("platform, native", [("linux", True), ("freebsd13", True), ("darwin", False),
                                              ("win32", False), ("cygwin", False)])
def test_freedesktop_everywhere_but_macos_and_windows(platform, native):
    assert uses_freedesktop(platform) is native


# -- settings ------------------------------------------------------------------------------------------------

def test_sounds_from_settings():
    channel = build_channel("desktop", "desktop", {"timeout": "5s", "sound_warning": "dialog-warning",
                                                   "sound_critical": " alarm-clock-elapsed ", "sound_error": ""})

    assert channel.timeout == 5.0
    assert channel.sounds == {Level.WARNING: "dialog-warning", Level.CRITICAL: "alarm-clock-elapsed"}


def test_sounds_are_off_by_default_and_can_be_switched_off():
    assert DesktopChannel.from_options("desktop", {}).sounds == {}
    assert DesktopChannel.from_options("desktop", {"sound_info": "none", "sound_error": "off"}).sounds == {}


@pytest.mark.parametrize("value", ["/usr/share/sounds/alarm.oga", "Dialog Warning", "dialog_warning!", "-bell"])
def test_a_bad_sound_name_is_a_setting_error_naming_the_key(value):
    with pytest.raises(SettingError) as caught:
        DesktopChannel.from_options("desktop", {"sound_critical": value})

    assert caught.value.key == "sound_critical"
    assert str(caught.value) == ("sound_critical: not a sound name from the freedesktop sound theme (like "
                                 f"dialog-warning or alarm-clock-elapsed): {value!r}")


# -- which pop-up shows which event (pure) --------------------------------------------------------------------

def test_pop_ups_are_replaced_per_event_until_a_recovery():
    popups = PopUps()
    assert popups.replaces("disk") == 0
    popups.shown("disk", 7)
    popups.shown("cpu", 8)
    assert (popups.replaces("disk"), popups.replaces("cpu")) == (7, 8)
    popups.shown("disk", 7)  # an escalation replaced it
    popups.shown("disk", 7, final=True)  # the recovery replaced it
    assert popups.replaces("disk") == 0  # the next episode: a new pop-up
    assert popups.event_of(7) == "disk"  # but Open on the recovery still names the event


def test_a_closed_pop_up_is_forgotten():
    popups = PopUps()
    popups.shown("disk", 7)
    popups.closed(7)
    assert (popups.replaces("disk"), popups.event_of(7)) == (0, None)
    popups.closed(99)  # someone else's: nothing happens
    popups.shown("disk", 9)
    popups.closed(7)  # a late signal for the old pop-up leaves the new one alone
    assert popups.replaces("disk") == 9


def test_a_server_that_hands_out_new_ids_on_replacing_is_followed():
    popups = PopUps()
    popups.shown("disk", 7)
    popups.shown("disk", 8)
    assert (popups.replaces("disk"), popups.event_of(7), popups.event_of(8)) == (8, None, "disk")


def test_withdraw_hands_back_the_id_once():
    popups = PopUps()
    popups.shown("disk", 7)
    assert popups.withdraw("disk") == 7
    assert popups.withdraw("disk") is None
    assert popups.event_of(7) is None
    popups.shown("cpu", 8, final=True)
    assert popups.withdraw("cpu") is None  # a recovery's pop-up is not withdrawn: it is the last word


def test_ids_never_reported_closed_are_dropped_oldest_first():
    popups = PopUps(limit=2)
    popups.shown("a", 1, final=True)
    popups.shown("b", 2)
    popups.shown("c", 3)
    assert (popups.event_of(1), popups.event_of(2), popups.event_of(3)) == (None, "b", "c")


# -- the channel over a fake bus: bookkeeping, signals, failures ----------------------------------------------

class FakeBus:
    """The dbus-fast MessageBus surface the client uses, answering as a notification server would."""

    def __init__(self, capabilities: tuple[str, ...] = ("actions", "body", "body-markup"),
                 error: tuple[str, str] | None = None, hang: bool = False, close_breaks: bool = False):
        self.capabilities = capabilities
        self.close_breaks = close_breaks
        self.closing = threading.Event()  # set by the first CloseNotification
        self.error = error
        self.hang = hang
        self.connected = True
        self.handlers: list[Any] = []
        self.calls: list[tuple[str, list[Any]]] = []
        self._next_id = 100

    def add_message_handler(self, handler: Any) -> None:
        self.handlers.append(handler)

    def remove_message_handler(self, handler: Any) -> None:
        self.handlers.remove(handler)

    def disconnect(self) -> None:
        self.connected = False

    async def call(self, message: Message) -> Message:
        self.calls.append((message.member, list(message.body)))
        if message.member == "AddMatch":
            return self._reply("", [])
        if message.member == "CloseNotification":
            self.closing.set()
        if message.member == "CloseNotification" and self.close_breaks:
            self.connected = False
            raise ConnectionResetError("the bus went away")
        if self.hang:
            await asyncio.Event().wait()
        if self.error:
            return Message(message_type=MessageType.ERROR, reply_serial=1, error_name=self.error[0],
                           signature="s", body=[self.error[1]])
        if message.member == "GetCapabilities":
            return self._reply("as", [list(self.capabilities)])
        if message.member == "Notify":
            replaces = message.body[1]
            if not replaces:
                self._next_id += 1
            return self._reply("u", [replaces or self._next_id])
        return self._reply("", [])

    @staticmethod
    def _reply(signature: str, body: list[Any]) -> Message:
        return Message(message_type=MessageType.METHOD_RETURN, reply_serial=1, signature=signature, body=body)

    def emit(self, member: str, signature: str, body: list[Any], interface: str = NOTIFICATIONS,
             path: str = OBJECT_PATH) -> None:
        """A signal arriving (handled on the bus loop, as dbus-fast would)."""
        signal = Message(message_type=MessageType.SIGNAL, path=path, interface=interface, member=member,
                         signature=signature, body=body)

        async def deliver() -> None:
            for handler in list(self.handlers):
                handler(signal)

        session_bus.run(deliver())

    def sent(self, member: str) -> list[list[Any]]:
        return [body for name, body in self.calls if name == member]


class FakeConnect:
    """session_bus.connect's stand-in: a new FakeBus per connection."""

    def __init__(self, **options: Any):
        self.options = options
        self.buses: list[FakeBus] = []

    async def __call__(self) -> FakeBus:
        self.buses.append(FakeBus(**self.options))
        return self.buses[-1]

    @property
    def bus(self) -> FakeBus:
        return self.buses[-1]


@pytest.fixture
def fake_env(monkeypatch):
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/fake/bus")


def fake_channel(**options: Any) -> tuple[DesktopChannel, FakeConnect, queue.Queue]:
    connect = FakeConnect(**options)
    channel = DesktopChannel(timeout=10, connect=connect)
    picked: queue.Queue = queue.Queue()
    channel.on_action = lambda event, key: picked.put((event, key, threading.current_thread().name))
    return channel, connect, picked


def notify_replaces(bus: FakeBus) -> list[int]:
    return [body[1] for body in bus.sent("Notify")]


def test_escalation_reminder_and_recovery_replace_one_pop_up_then_a_new_episode_starts_fresh(fake_env):
    channel, connect, _ = fake_channel()
    for alert in (disk_alert(Level.WARNING), disk_alert(Level.CRITICAL), disk_alert(Level.CRITICAL, reminder=True),
                  disk_alert(Level.CRITICAL, resolved=True), disk_alert(Level.WARNING)):
        channel.send(alert)

    assert notify_replaces(connect.bus) == [0, 101, 101, 101, 0]
    assert len(connect.buses) == 1  # one connection, kept
    assert connect.bus.sent("GetCapabilities") == [[]]  # asked once
    assert [body[0] for body in connect.bus.sent("AddMatch")] == [
        f"type='signal',sender='{NOTIFICATIONS}',path='{OBJECT_PATH}',interface='{NOTIFICATIONS}',"
        "member='ActionInvoked'",
        f"type='signal',sender='{NOTIFICATIONS}',path='{OBJECT_PATH}',interface='{NOTIFICATIONS}',"
        "member='NotificationClosed'",
        f"type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',member='NameOwnerChanged',"
        f"arg0='{NOTIFICATIONS}'"]


def test_events_have_a_pop_up_each(fake_env):
    channel, connect, _ = fake_channel()
    channel.send(disk_alert(event="disk"))
    channel.send(disk_alert(event="cpu"))
    channel.send(disk_alert(Level.ERROR, event="disk"))

    assert notify_replaces(connect.bus) == [0, 0, 101]


def test_notification_closed_forgets_the_pop_up(fake_env):
    channel, connect, _ = fake_channel()
    channel.send(disk_alert())
    connect.bus.emit("NotificationClosed", "uu", [101, 2])
    channel.send(disk_alert(Level.ERROR))

    assert notify_replaces(connect.bus) == [0, 0]


def test_action_invoked_reaches_on_action_in_a_worker_thread(fake_env):
    channel, connect, picked = fake_channel()
    channel.send(disk_alert())
    connect.bus.emit("ActionInvoked", "us", [101, "ack"])

    event, key, thread = picked.get(timeout=WAIT)
    assert (event, key) == ("disk_full", "ack")
    assert thread == "desktop-actions" and thread != "session-bus"
    channel.close()


def test_actions_on_other_pop_ups_or_with_other_keys_are_ignored(fake_env):
    channel, connect, picked = fake_channel()
    channel.send(disk_alert())
    connect.bus.emit("ActionInvoked", "us", [555, "ack"])  # someone else's pop-up
    connect.bus.emit("ActionInvoked", "us", [101, "inline-reply"])  # not a key of ours
    connect.bus.emit("ActionInvoked", "us", [101, "mute"], path="/elsewhere")  # not the notifications object
    connect.bus.emit("ActionInvoked", "us", [101, "default"])

    assert picked.get(timeout=WAIT)[:2] == ("disk_full", "default")
    assert picked.empty()
    channel.close()


def test_an_exception_in_on_action_is_logged_and_later_actions_still_arrive(fake_env, caplog):
    channel, connect, picked = fake_channel()
    collect = channel.on_action

    def handler(event: str, key: str) -> None:
        if key == "ack":
            raise RuntimeError("the app broke")
        collect(event, key)

    channel.on_action = handler
    channel.send(disk_alert())
    with caplog.at_level(logging.ERROR, logger="tray_alerts.channels.desktop"):
        connect.bus.emit("ActionInvoked", "us", [101, "ack"])
        connect.bus.emit("ActionInvoked", "us", [101, "mute"])
        assert picked.get(timeout=WAIT)[:2] == ("disk_full", "mute")

    [record] = [r for r in caplog.records if "failed" in r.getMessage()]
    assert record.getMessage() == "desktop: handling ack on the pop-up of disk_full failed"
    assert record.exc_info and record.exc_info[0] is RuntimeError
    channel.close()


def test_withdraw_closes_the_events_pop_up_once(fake_env):
    channel, connect, _ = fake_channel()
    channel.send(disk_alert())
    channel.withdraw("disk_full")
    channel.withdraw("disk_full")
    channel.withdraw("cpu")

    assert connect.bus.sent("CloseNotification") == [[101]]
    channel.send(disk_alert(Level.ERROR))
    assert notify_replaces(connect.bus) == [0, 0]


def test_withdraw_on_a_connection_that_breaks_is_logged_not_raised(fake_env, caplog):
    channel, connect, _ = fake_channel(close_breaks=True)
    channel.send(disk_alert())

    with caplog.at_level(logging.WARNING, logger="tray_alerts.channels.desktop"):
        channel.withdraw("disk_full")

    assert [record.getMessage() for record in caplog.records] == [
        "desktop: could not close the pop-up of disk_full: the session D-Bus connection broke "
        "(ConnectionResetError: the bus went away)"]


def test_withdraw_before_any_pop_up_does_not_connect(fake_env):
    channel, connect, _ = fake_channel()
    channel.withdraw("disk_full")

    assert connect.buses == []


def test_withdraw_and_send_called_on_the_bus_loop_do_not_hang_it(fake_env):
    channel, connect, _ = fake_channel()
    channel.send(disk_alert())

    async def from_a_bus_callback() -> str:
        channel.withdraw("disk_full")  # scheduled, returns at once
        try:
            channel.send(disk_alert())
        except DeliveryError as error:
            return error.message
        return "sent"

    message = session_bus.run(from_a_bus_callback())
    assert connect.bus.closing.wait(WAIT), "the scheduled withdraw never closed the pop-up"
    assert message.startswith("desktop: send() was called on the D-Bus loop's own thread")
    assert connect.bus.sent("CloseNotification") == [[101]]


def test_a_dropped_connection_is_made_again_and_old_ids_forgotten(fake_env):
    channel, connect, _ = fake_channel()
    channel.send(disk_alert())
    connect.bus.connected = False  # the bus went away

    channel.send(disk_alert(Level.ERROR))

    assert len(connect.buses) == 2
    assert notify_replaces(connect.buses[1]) == [0]
    assert connect.buses[1].sent("GetCapabilities") == [[]]  # the new server is asked again


def test_a_notification_server_that_went_away_takes_its_ids_along(fake_env):
    channel, connect, _ = fake_channel()
    channel.send(disk_alert())
    connect.bus.emit("NameOwnerChanged", "sss", [NOTIFICATIONS, ":1.7", ":1.9"], interface="org.freedesktop.DBus",
                     path="/org/freedesktop/DBus")
    channel.send(disk_alert(Level.ERROR))

    assert notify_replaces(connect.bus) == [0, 0]
    assert len(connect.bus.sent("GetCapabilities")) == 2


@pytest.mark.parametrize("error, message", [
    (("org.freedesktop.DBus.Error.ServiceUnknown", "The name is not activatable"), f"desktop: {NO_DAEMON}"),
    (("org.freedesktop.DBus.Error.NameHasNoOwner", "no owner"), f"desktop: {NO_DAEMON}"),
    (("org.freedesktop.DBus.Error.Spawn.ChildExited", "dunst exited"),
     "desktop: the notification daemon refused the pop-up (org.freedesktop.DBus.Error.Spawn.ChildExited: "
     "dunst exited)"),
])
def test_error_replies_are_one_clear_permanent_line(fake_env, error, message):
    channel, _, _ = fake_channel(error=error)

    with pytest.raises(DeliveryError) as caught:
        channel.send(disk_alert())
    assert caught.value.message == message
    assert caught.value.retryable is False


def test_a_daemon_that_never_answers_is_a_retryable_failure(fake_env, monkeypatch):
    monkeypatch.setattr(desktop_module, "CALL_TIMEOUT", 0.05)
    channel, _, _ = fake_channel(hang=True)

    with pytest.raises(DeliveryError) as caught:
        channel.send(disk_alert())
    assert caught.value.message == "desktop: the notification daemon did not answer within 0.05 s"
    assert caught.value.retryable is True


# -- on a headless desktop with dunst -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def desktop():
    skip_unless_tools("Xvfb", "dbus-daemon", "dbus-monitor", "gdbus", "dunst")
    with DesktopSession() as session:
        yield session


@pytest.fixture
def on_desktop(desktop, monkeypatch):
    """os.environ (read by the channel) pointed at the private desktop."""
    desktop.apply(monkeypatch)
    return desktop


@pytest.fixture
def recorder(on_desktop):
    with NotifyRecorder(on_desktop) as recording:
        yield recording


@pytest.fixture
def channel():
    built = DesktopChannel(timeout=10)
    yield built
    built.close()


def only_call(recorder: NotifyRecorder):
    """The single Notify call made so far (waits for it; sync() makes sure no second one is in flight)."""
    recorder.wait_for(1)
    recorder.sync()
    assert len(recorder.calls) == 1, recorder.calls
    return recorder.calls[0]


def test_warning_alert_shows_one_pop_up_with_message_and_context(recorder, channel):
    channel.send(disk_alert())

    call = only_call(recorder)
    assert call.app_name == APP_NAME == "tray-alerts"
    assert call.title == "WARNING · disk_full"
    lines = call.body.splitlines()
    assert lines[0] == "disk at 95% on /var"
    assert "host: web-01" in lines and "mount: /var" in lines
    assert Path(call.icon).is_file(), call.icon
    assert Path(call.icon).name == "level-warning.png"
    assert call.urgency == 1  # normal
    assert call.expire_timeout == 10_000
    assert call.desktop_entry == "tray-alerts"
    assert call.actions == []  # nothing handles actions (on_action is not set): no buttons that do nothing


def test_resolved_alert_pops_up_as_resolved(recorder, channel):
    channel.send(disk_alert(Level.CRITICAL, resolved=True))

    call = only_call(recorder)
    assert call.app_name == "tray-alerts"
    assert call.title == "RESOLVED · disk_full"
    assert call.body.splitlines()[0] == "disk is fine again on /var"
    assert Path(call.icon).is_file() and Path(call.icon).name == "level-clear.png"
    assert call.urgency == 1  # a recovery is never urgent, even of a critical alert


def test_critical_alert_is_urgent(recorder, channel):
    channel.send(disk_alert(Level.CRITICAL))

    call = only_call(recorder)
    assert call.title == "CRITICAL · disk_full"
    assert call.urgency == 2
    assert call.expire_timeout == 0  # stays until dismissed
    assert Path(call.icon).is_file() and Path(call.icon).name == "level-critical.png"


def test_markup_characters_show_as_written_where_dunst_reads_no_markup(recorder, channel, on_desktop):
    # dunst's built-in default is `markup = no` (the empty dunstrc here): it does not list body-markup and shows
    # the body as plain text, so the body goes out as written
    assert "body-markup" not in on_desktop.capabilities()
    channel.send(Alert("api", Level.ERROR, "latency > 2s & <rising>", {"tag": "<none>"}))

    call = only_call(recorder)
    assert call.body.splitlines() == ["latency > 2s & <rising>", "tag: <none>"]


def test_markup_characters_are_escaped_where_dunst_reads_markup(monkeypatch):
    skip_unless_tools("Xvfb", "dbus-daemon", "dbus-monitor", "gdbus", "dunst")
    channel = DesktopChannel(timeout=10)
    try:  # `markup = full`, as Debian's /etc/xdg/dunst/dunstrc has it: body-markup listed, the body read as markup
        with DesktopSession(dunstrc="[global]\n    markup = full\n") as marked_up, \
                NotifyRecorder(marked_up) as recorder:
            marked_up.apply(monkeypatch)
            assert "body-markup" in marked_up.capabilities()
            channel.send(Alert("api", Level.ERROR, "latency > 2s & <rising>", {"tag": "<none>"}))
            call = only_call(recorder)
    finally:
        channel.close()
    assert call.body.splitlines() == ["latency &gt; 2s &amp; &lt;rising&gt;", "tag: &lt;none&gt;"]


def test_bus_without_notification_daemon_is_a_clear_permanent_failure(monkeypatch):
    skip_unless_tools("Xvfb", "dbus-daemon", "gdbus")
    # The private bus has no service directories, so nothing (e.g. /usr/share/dbus-1/services/
    # org.knopwob.dunst.service) can be auto-activated to serve notifications behind our back.
    channel = DesktopChannel(timeout=5)
    try:
        with DesktopSession(notifications=False) as bare:
            bare.apply(monkeypatch)
            assert not bare.name_has_owner(NOTIFICATIONS)
            with pytest.raises(DeliveryError) as caught:
                channel.send(disk_alert())
            assert not bare.name_has_owner(NOTIFICATIONS)
    finally:
        channel.close()
    assert caught.value.retryable is False
    assert caught.value.message == f"desktop: {NO_DAEMON}"
    assert "no notification daemon is running" in caught.value.message and NOTIFICATIONS in caught.value.message


# -- no bus at all --------------------------------------------------------------------------------------------

def test_no_session_bus_is_a_clear_permanent_failure(monkeypatch, tmp_path):
    runtime = tmp_path / "runtime"  # exists, but has no `bus` socket in it
    runtime.mkdir()
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))

    with pytest.raises(DeliveryError) as caught:
        DesktopChannel().send(disk_alert())
    assert caught.value.retryable is False
    assert caught.value.message == "desktop: no session D-Bus to show pop-ups on (DBUS_SESSION_BUS_ADDRESS is not set)"


def test_a_bus_address_nobody_listens_on_is_one_clear_permanent_line(monkeypatch, tmp_path):
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={tmp_path / 'no-bus-here'}")
    channel = DesktopChannel()
    try:
        with pytest.raises(DeliveryError) as caught:
            channel.send(disk_alert())
    finally:
        channel.close()
    assert caught.value.retryable is False
    assert caught.value.message.startswith("desktop: cannot reach the session D-Bus (")
    assert "\n" not in caught.value.message


def test_without_dbus_fast_the_failure_says_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "dbus_fast.aio", None)  # not importable, even where it is installed
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={tmp_path / 'bus'}")  # a bus is "there"
    channel = DesktopChannel()
    try:
        with pytest.raises(DeliveryError) as caught:
            channel.send(disk_alert())
    finally:
        channel.close()
    assert caught.value.retryable is False
    assert caught.value.message == "desktop: dbus-fast is not installed (pip install dbus-fast)"
