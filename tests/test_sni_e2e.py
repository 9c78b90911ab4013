"""SniTray on real StatusNotifierItem hosts: xfce4-panel's systray and lxqt-panel's statusnotifier, on Xvfb with a
private session bus (tests/sni_hosts.py), driven from this process.

What is checked, on each host: the item is registered with the watcher and drawn on the panel in the icon's
colour; the host reads our dbusmenu and a click in it (xdotool keys, or an Event call acting as the host) runs
the row's action on a thread of its own; an update sends nothing when nothing changed, only
ItemsPropertiesUpdated for a changed row (an open menu stays open), LayoutUpdated for an added row; NewStatus is
seen by the host; an item started before its panel, or outliving a panel restart, is registered within seconds.
The 40 s quiet spell (no signal while unchanged updates keep coming) runs on both hosts.

The README's pictures of the real app's menu on these panels come from tests/test_desktop_app_e2e.py.
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from desktop_session import Box, DesktopError, DesktopSession, skip_unless_tools
import polling
from sni_hosts import LXQT_AUTO_HIDE_TITLE, BusProbe, SignalRecorder, SniHost, colour_box, skip_unless_host

pytest.importorskip("dbus_fast", reason="the SNI tray needs dbus-fast: pip install dbus-fast")
from dbus_fast.annotations import DBusStr  # noqa: E402  (after the skip)
from dbus_fast.service import ServiceInterface, dbus_method  # noqa: E402

from tray_alerts.sni import NoValue  # noqa: E402
from tray_alerts.traymenu import Item, separator  # noqa: E402

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="StatusNotifierItem is for Linux desktops")

ERROR_COLOUR = "#e03e2d"
WARNING_COLOUR = "#f2a93b"
CLEAR_COLOUR = "#2eb67d"
WAIT = 10.0          # the longest one step may take (every wait polls and says what it waited for)
REGISTER_WAIT = 5.0  # "within seconds of the panel starting"
QUIET_SPELL = 40.0
NOW = 1_700_000_000.0  # one fixed moment, so the menu's durations do not tick between two updates
MENU = "com.canonical.dbusmenu"
ITEM = "org.kde.StatusNotifierItem"


# -- the menu: traymenu Items shaped like traymenu.menu() makes them (same keys), from a fixed moment --------------

class Calls:
    """What the menu's actions were asked to do, and on which thread."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.threads: list[str] = []
        self._condition = threading.Condition()

    def record(self, what: str, argument: object = "") -> None:
        with self._condition:
            self.calls.append((what, str(argument)))
            self.threads.append(threading.current_thread().name)
            self._condition.notify_all()

    def wait_for(self, what: str, timeout: float = WAIT) -> tuple[str, str]:
        with self._condition:
            self._condition.wait_for(lambda: any(call[0] == what for call in self.calls), timeout)
            found = [call for call in self.calls if call[0] == what]
        assert found, f"no {what} call within {timeout:g} s; calls: {self.calls}"
        return found[0]


@dataclass(frozen=True)
class Firing:
    """An active alert as the tray shows it."""

    event: str
    level: str = "error"
    message: str = "disk at 97%"
    acknowledged: bool = False


LEVEL_COLOURS = {"warning": WARNING_COLOUR, "error": ERROR_COLOUR}
RANK = {"info": 0, "warning": 1, "error": 2, "critical": 3}


def firing(event: str, level: str = "error", message: str = "disk at 97%", acknowledged: bool = False) -> Firing:
    return Firing(event, level, message, acknowledged)


def hhmm(moment: float) -> str:
    return time.strftime("%H:%M", time.localtime(moment))


def alert_row(record: Firing, calls: Calls) -> Item:
    key = f"alert:{record.event}/"
    notes = f" — acknowledged {hhmm(NOW - 30)}" if record.acknowledged else ""
    acknowledge = (Item(f"Acknowledged {hhmm(NOW - 30)}", enabled=False, key=key + "acknowledge")
                   if record.acknowledged else
                   Item("Acknowledge", lambda: calls.record("acknowledge", record.event), key=key + "acknowledge"))
    return Item(f"{record.level.upper()} · {record.event}{notes}", key=f"alert:{record.event}",
                icon="acknowledged" if record.acknowledged else record.level, submenu=(
                    Item(f"Level: {record.level}", enabled=False, key=key + "level"),
                    Item(record.message, enabled=False, key=key + "message"),
                    Item(f"since {hhmm(NOW - 300)} · 5m", enabled=False, key=key + "since"),
                    separator(key + "sep"),
                    acknowledge,
                    Item("Mute for 1 hour", lambda: calls.record("mute", record.event), key=key + "mute"),
                    Item("Clear", lambda: calls.record("clear", record.event), key=key + "clear")))


def tray_menu(calls: Calls, *active: Firing) -> list[Item]:
    count = len(active)
    items = [Item("All clear" if not count else f"{count} active alert{'s' if count != 1 else ''}", enabled=False,
                  key="header"), separator("sep:top")]
    items += [alert_row(record, calls) for record in active]
    if active:
        items += [Item("Clear all", lambda: calls.record("clear_all"), key="clear-all"), separator("sep:alerts")]
    items += [
        Item("Snooze notifications", key="snooze", submenu=(
            Item("15 minutes", lambda: calls.record("snooze", 15), key="snooze/15min"),
            Item("1 hour", lambda: calls.record("snooze", 60), key="snooze/1h"),
            Item("Resume", lambda: calls.record("snooze", None), enabled=False, key="snooze/resume"))),
        separator("sep:app"),
        Item("Open settings", lambda: calls.record("settings"), key="settings"),
        Item("Quit", lambda: calls.record("quit"), key="quit"),
    ]
    return items


def level_png(name: str) -> bytes:
    """The menu's row icon for a level name (what tray.py's menu_icon gives): a small disc, as PNG."""
    import io

    buffer = io.BytesIO()
    disc(LEVEL_COLOURS.get(name, "#8a8f98"), 16).save(buffer, "PNG")
    return buffer.getvalue()


def disc(colour: str, size: int = 64) -> Any:
    """A filled disc in `colour` with a white rim: a tray icon whose colour the tests look for on screen."""
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    rim = max(1, size // 20)
    ImageDraw.Draw(image).ellipse((rim, rim, size - 1 - rim, size - 1 - rim), fill=colour, outline="white", width=rim)
    return image


def show(tray: Any, calls: Calls, *active: Firing, status: str = "Active") -> None:
    """tray.update() the way tray.py does: the worst level's icon, its tooltip, the menu."""
    worst = max((record.level for record in active), key=RANK.__getitem__, default="")
    title = f"tray-alerts — {len(active)} active" if active else "tray-alerts — all clear"
    lines = [f"{record.level.upper()} · {record.event}: {record.message}" for record in active]
    tray.update(disc(LEVEL_COLOURS.get(worst, CLEAR_COLOUR)), title, lines, status, tray_menu(calls, *active))


# -- fixtures --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=["xfce", "lxqt"])
def desktop(request) -> Iterator[tuple[str, DesktopSession]]:
    """A private desktop (Xvfb + bus, no pop-up server) for one kind of host."""
    kind = request.param
    skip_unless_host(kind)
    with DesktopSession(notifications=False, background="#2e3440") as session:
        yield kind, session


@pytest.fixture
def session(desktop, monkeypatch) -> DesktopSession:
    _, desktop_session = desktop
    desktop_session.apply(monkeypatch)  # SniTray connects to DBUS_SESSION_BUS_ADDRESS
    return desktop_session


@pytest.fixture
def kind(desktop) -> str:
    return desktop[0]


@pytest.fixture
def probe(session) -> Iterator[BusProbe]:
    with BusProbe(session) as bus:
        yield bus


@pytest.fixture
def host(session, kind) -> Iterator[SniHost]:
    with SniHost(session, kind) as panel:
        yield panel


@pytest.fixture
def recorder(session) -> Iterator[SignalRecorder]:
    with SignalRecorder(session) as recording:
        yield recording


@pytest.fixture(scope="module")
def bare_desktop() -> Iterator[DesktopSession]:
    """Only a private bus: for what needs no panel."""
    skip_unless_tools("dbus-daemon", "dbus-monitor", "gdbus")
    with DesktopSession(display=False, notifications=False) as bus_only:
        yield bus_only


@pytest.fixture
def bare(bare_desktop, monkeypatch) -> DesktopSession:
    bare_desktop.apply(monkeypatch)
    return bare_desktop


@pytest.fixture
def make_tray() -> Iterator[Callable[..., Any]]:
    """SniTray factory; every tray made is stopped at the end."""
    from tray_alerts.sni import SniTray

    made: list[Any] = []

    def make(**options: Any) -> Any:
        tray = SniTray(**options)
        made.append(tray)
        return tray

    yield make
    for tray in made:
        tray.stop()


# -- helpers ---------------------------------------------------------------------------------------------------

def wait_until(condition: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """polling.wait_until with this file's step limit, at a pace that suits screenshots."""
    return polling.wait_until(condition, what, timeout, interval=0.05)


def item_name(tray: Any) -> str:
    return tray._name  # the bus name we registered: what the watcher lists (our own test, our own class)


def listed(host: SniHost, probe: BusProbe, tray: Any) -> bool:
    return f"{item_name(tray)}/StatusNotifierItem" in host.registered_items(probe)


def tray_sync(recorder: SignalRecorder, tray: Any) -> None:
    """Return once everything the tray has sent so far is recorded: a probe from the tray's own connection."""
    from dbus_fast import Message

    from tray_alerts import session_bus

    async def emit(token: str) -> None:
        await tray._bus.send(Message.new_signal("/org/trayalerts/test", SignalRecorder.PROBE_INTERFACE, "Ready",
                                                "s", [token]))

    # an update hands its signals to the bus loop with call_soon; a coroutine run afterwards runs after them
    recorder.sync(lambda token: session_bus.run(emit(token)))


def emitted(recorder: SignalRecorder, tray: Any, since: float) -> list[str]:
    """The signals our tray sent since `since`."""
    names = {item_name(tray), tray._bus.unique_name}
    return [f"{message.interface}.{message.member}" for message in recorder.since(since)
            if message.kind == 4 and message.sender in names]


def layout(probe: BusProbe, tray: Any) -> tuple[int, Any]:
    revision, tree = probe.call(item_name(tray), "/MenuBar", MENU, "GetLayout", "iias", [0, -1, []])
    return revision, tree


def rows(tree: Any, depth: int = 0) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """(id, depth, properties) of every row below `tree`, depth first."""
    for child in tree[2]:
        node_id, props, _ = child.value
        yield node_id, depth, {name: value.value for name, value in props.items()}
        yield from rows(child.value, depth + 1)


def row_id(tree: Any, label: str) -> int:
    found = [node_id for node_id, _, props in rows(tree) if props.get("label") == label]
    assert len(found) == 1, f"one row labelled {label!r} expected, found {len(found)}: {list(rows(tree))}"
    return found[0]


def icon_on_panel(host: SniHost, colour: str = ERROR_COLOUR) -> Any:
    return host.find_colour(colour)


def menu_windows(session: DesktopSession, kind: str) -> list[Any]:
    """The host's open popup menus (override-redirect windows of the panel's processes, below the panel)."""
    classes = {"xfce": ("wrapper-2.0", "Wrapper-2.0"), "lxqt": ("lxqt-panel", "lxqt-panel")}[kind]
    return [window for window in session.windows() if window.override_redirect
            and tuple(window.wm_class) == classes and window.box.top >= 0 and window.box.height > 20]


def steady_grab(session: DesktopSession, box: Box) -> Any:
    """A screenshot of `box` once two in a row are the same (a menu that has finished drawing), else None."""
    first = session.grab(box)
    time.sleep(0.1)
    second = session.grab(box)
    return None if differs(first, second) else second


def differs(first: Any, second: Any) -> bool:
    from PIL import ImageChops

    return first.size != second.size or ImageChops.difference(first, second).getbbox() is not None


def click_icon(session: DesktopSession, host: SniHost, button: int) -> Any:
    box = wait_until(lambda: icon_on_panel(host), "our icon on the panel")
    session.click(*box.centre, button=button)
    return box


# -- 1. registered and drawn -----------------------------------------------------------------------------------

def test_item_is_registered_and_drawn(session, kind, host, probe, make_tray):
    calls = Calls()
    tray = make_tray()
    show(tray, calls, firing("disk_root"))
    tray.start()
    assert tray.registered
    wait_until(lambda: listed(host, probe, tray), "our item in RegisteredStatusNotifierItems", REGISTER_WAIT)
    box = wait_until(lambda: icon_on_panel(host), f"pixels of the error colour {ERROR_COLOUR} on {kind}'s panel")
    assert 12 <= box.width <= 40 and 12 <= box.height <= 40, box

    props = probe.get_all(item_name(tray), "/StatusNotifierItem", ITEM)
    assert props["Id"] == "tray-alerts" and props["Category"] == "SystemServices"
    assert props["Menu"] == "/MenuBar" and props["ItemIsMenu"] is False and props["WindowId"] == 0
    assert props["IconName"] == "" and props["Status"] == "Active"
    assert [(width, height) for width, height, _ in props["IconPixmap"]] == [(size, size) for size in
                                                                             (16, 22, 24, 32, 48, 64)]
    assert props["AttentionIconPixmap"] == props["IconPixmap"]
    assert list(props["ToolTip"]) == ["", [], "tray-alerts — 1 active", "ERROR · disk_root: disk at 97%"]
    menu_props = probe.get_all(item_name(tray), "/MenuBar", MENU)
    assert menu_props == {"Version": 3, "TextDirection": "ltr", "Status": "normal", "IconThemePath": []}


def test_stop_takes_the_item_off_the_panel(session, kind, host, probe, make_tray):
    tray = make_tray()
    show(tray, Calls(), firing("disk_root"))
    tray.start()
    wait_until(lambda: icon_on_panel(host), "our icon on the panel")
    tray.stop()
    tray.stop()  # idempotent
    assert not tray.registered
    wait_until(lambda: not host.registered_items(probe), "the watcher to drop our item")
    wait_until(lambda: icon_on_panel(host) is None, "our icon to leave the panel")


# -- 2. the menu -----------------------------------------------------------------------------------------------

def test_menu_is_exported_and_events_run_actions_off_the_bus_thread(session, kind, host, probe, make_tray):
    calls = Calls()
    tray = make_tray()
    show(tray, calls, firing("disk_root"))
    tray.start()
    revision, tree = layout(probe, tray)
    labels = [props.get("label") for _, _, props in rows(tree)]
    for label in ("1 active alert", "ERROR · disk__root", "Acknowledge", "Clear", "Clear all", "Snooze notifications",
                  "Quit"):
        assert label in labels, (label, labels)
    assert any(props.get("type") == "separator" for _, _, props in rows(tree))
    alert_row = row_id(tree, "ERROR · disk__root")
    assert probe.call(item_name(tray), "/MenuBar", MENU, "GetProperty", "is", [alert_row, "children-display"])[0] \
        .value == "submenu"

    for label, expected in (("Clear", ("clear", "disk_root")), ("Acknowledge", ("acknowledge", "disk_root"))):
        probe.call(item_name(tray), "/MenuBar", MENU, "Event", "isvu", [row_id(tree, label), "clicked",
                                                                        _variant_int(0), 0])
        assert calls.wait_for(expected[0]) == expected
    assert all(thread.startswith("tray-menu-action") for thread in calls.threads), calls.threads
    [errors] = probe.call(item_name(tray), "/MenuBar", MENU, "EventGroup", "a(isvu)",
                          [[[row_id(tree, "Quit"), "clicked", _variant_int(0), 0], [99999, "clicked",
                                                                                     _variant_int(0), 0]]])
    assert errors == [99999]
    calls.wait_for("quit")
    with pytest.raises(DesktopError, match="InvalidArgs"):
        probe.call(item_name(tray), "/MenuBar", MENU, "GetLayout", "iias", [99999, -1, []])
    assert layout(probe, tray)[0] == revision  # reading the menu changes nothing


def test_the_host_shows_our_menu_and_a_click_in_it_runs_the_action(session, kind, host, probe, make_tray, recorder):
    calls = Calls()
    refreshed = threading.Event()
    tray = make_tray(on_about_to_show=refreshed.set, on_activate=lambda: calls.record("activate"),
                     menu_icon=level_png)
    show(tray, calls, firing("disk_root"), firing("api_down", "warning", "HTTP 503 & slow"))
    tray.start()
    click_icon(session, host, button=3)
    [menu_window] = wait_until(lambda: menu_windows(session, kind), f"{kind}'s menu window")
    assert refreshed.wait(WAIT), "the host opened the menu without AboutToShow"
    members = [f"{message.interface}.{message.member}" for message in recorder.since(0) if message.kind == 1]
    assert f"{MENU}.GetLayout" in members, members
    # libdbusmenu-gtk asks AboutToShowGroup([0]), libdbusmenu-qt AboutToShow(0)
    assert {f"{MENU}.AboutToShow", f"{MENU}.AboutToShowGroup"} & set(members), members
    # the menu's row icons (icon-data) are drawn: the first alert's level colour inside the menu
    assert wait_until(lambda: colour_box(session.grab(menu_window.box), ERROR_COLOUR, min_pixels=10),
                      "the error icon beside the first alert's row")

    # the first enabled row is the worst alert: Right opens its submenu (Home in GTK, Down in Qt selects it)
    session.key("Home" if kind == "xfce" else "Down", "Right")
    wait_until(lambda: [window for window in menu_windows(session, kind) if window.id != menu_window.id],
               "the alert's submenu")
    # Left closes the submenu (Escape would close the whole menu in GTK), back on the first alert; the main
    # menu's last row is Quit: End selects it in GTK, Up from the first enabled row wraps round to it in Qt
    session.key("Left", "End" if kind == "xfce" else "Up", "Return")
    assert calls.wait_for("quit") == ("quit", "")
    wait_until(lambda: not menu_windows(session, kind), "the menu to close after the click")
    click_icon(session, host, button=1)
    assert calls.wait_for("activate") == ("activate", "")


# -- 3. only what changed --------------------------------------------------------------------------------------

def test_updates_emit_only_what_changed_and_an_open_menu_stays_open(session, kind, host, probe, make_tray, recorder):
    calls = Calls()
    tray = make_tray()
    disk = firing("disk_root")
    show(tray, calls, disk)
    tray.start()
    wait_until(lambda: listed(host, probe, tray), "our item registered")
    click_icon(session, host, button=3)
    [menu_window] = wait_until(lambda: menu_windows(session, kind), f"{kind}'s menu window")
    revision, tree = layout(probe, tray)
    tray_sync(recorder, tray)
    drawn = wait_until(lambda: steady_grab(session, menu_window.box), "the open menu to be drawn")

    start = time.monotonic()
    show(tray, calls, disk)  # the same again
    tray_sync(recorder, tray)
    assert emitted(recorder, tray, start) == []

    start = time.monotonic()
    show(tray, calls, firing("disk_root", acknowledged=True))  # rows change (the tooltip and icon do not), none added
    tray_sync(recorder, tray)
    assert emitted(recorder, tray, start) == [f"{MENU}.ItemsPropertiesUpdated"]
    assert layout(probe, tray)[0] == revision
    [message] = [m for m in recorder.since(start) if m.member == "ItemsPropertiesUpdated"]
    updated = {node_id: dict(props) for node_id, props in message.body[0]}  # dbus-monitor's variants come unwrapped
    acknowledged = f"ERROR · disk__root — acknowledged {hhmm(NOW - 30)}"
    assert updated == {row_id(tree, "ERROR · disk__root"): {"label": acknowledged},
                       row_id(tree, "Acknowledge"): {"label": f"Acknowledged {hhmm(NOW - 30)}", "enabled": False}}
    assert message.body[1] == []
    # the host redraws the changed row in the menu that is open, and keeps it open
    wait_until(lambda: differs(session.grab(menu_window.box), drawn), "the open menu to show the changed row")
    assert [window.id for window in menu_windows(session, kind)] == [menu_window.id]

    start = time.monotonic()
    show(tray, calls, firing("disk_root", message="disk at 98%", acknowledged=True))  # the tooltip's line too
    tray_sync(recorder, tray)
    assert emitted(recorder, tray, start) == [f"{ITEM}.NewToolTip", f"{MENU}.ItemsPropertiesUpdated"]
    [message] = [m for m in recorder.since(start) if m.member == "ItemsPropertiesUpdated"]
    assert [(node_id, dict(props)) for node_id, props in message.body[0]] == [(row_id(tree, "disk at 97%"),
                                                                               {"label": "disk at 98%"})]

    start = time.monotonic()
    show(tray, calls, firing("disk_root", message="disk at 98%", acknowledged=True), firing("api_down", "warning"))
    tray_sync(recorder, tray)
    # a new row (and the header's count): the same worst level, so the same icon
    assert emitted(recorder, tray, start) == [f"{ITEM}.NewToolTip", f"{MENU}.ItemsPropertiesUpdated",
                                              f"{MENU}.LayoutUpdated"]
    new_revision, new_tree = layout(probe, tray)
    assert new_revision == revision + 1
    assert row_id(new_tree, acknowledged) == row_id(tree, "ERROR · disk__root")  # the row kept its id
    [layout_signal] = [m for m in recorder.since(start) if m.member == "LayoutUpdated"]
    assert layout_signal.body == [new_revision, 0]
    session.key("Escape")


# -- 4. a quiet spell --------------------------------------------------------------------------------------------

def test_a_quiet_spell_sends_nothing(session, kind, host, probe, make_tray, recorder):
    calls = Calls()
    tray = make_tray()
    active = [firing("disk_root"), firing("api_down", "warning")]
    show(tray, calls, *active)
    tray.start()
    wait_until(lambda: listed(host, probe, tray), "our item registered")
    wait_until(lambda: icon_on_panel(host), "our icon on the panel")
    tray_sync(recorder, tray)
    start = time.monotonic()
    updates = 0
    while time.monotonic() - start < QUIET_SPELL:  # the tray's refresh loop, with nothing new to show
        show(tray, calls, *active)
        updates += 1
        time.sleep(0.25)
    tray_sync(recorder, tray)
    assert updates > 40  # about 160 unless the machine is very busy
    assert emitted(recorder, tray, start) == []
    registrations = [m for m in recorder.since(start) if m.member == "RegisterStatusNotifierItem"]
    assert registrations == []
    assert tray.registered and listed(host, probe, tray) and icon_on_panel(host)


# -- 5. status -------------------------------------------------------------------------------------------------

def test_needs_attention_is_sent_and_seen_by_the_host(session, kind, host, probe, make_tray, recorder):
    calls = Calls()
    warning = firing("api_down", "warning")
    # lxqt-panel is told to hide this title unless it needs attention: how we see it act on NewStatus
    tray = make_tray(title=LXQT_AUTO_HIDE_TITLE if kind == "lxqt" else "tray-alerts")
    show(tray, calls, warning)
    tray.start()
    wait_until(lambda: listed(host, probe, tray), "our item registered")
    if kind == "lxqt":
        wait_until(lambda: [m for m in recorder.since(0) if m.member in ("Get", "GetAll")
                            and m.body[:1] == [ITEM] and m.body[1:2] in ([], ["Title"])],
                   "lxqt-panel to read our Title")
        wait_until(lambda: icon_on_panel(host, WARNING_COLOUR) is None,  # it hides the item as it learns its title
                   "lxqt-panel to hide an auto-hide item that is Active")
    else:
        wait_until(lambda: icon_on_panel(host, WARNING_COLOUR), "our warning-coloured icon on the panel")
    tray_sync(recorder, tray)

    start = time.monotonic()
    show(tray, calls, warning, status="NeedsAttention")
    tray_sync(recorder, tray)
    assert emitted(recorder, tray, start) == [f"{ITEM}.NewStatus"]
    [signal] = [m for m in recorder.since(start) if m.member == "NewStatus"]
    assert signal.body == ["NeedsAttention"]
    assert probe.get_property(item_name(tray), "/StatusNotifierItem", ITEM, "Status") == "NeedsAttention"
    # the host draws the attention icon (the same picture); lxqt-panel shows the auto-hidden item for it
    wait_until(lambda: icon_on_panel(host, WARNING_COLOUR), "the attention icon on the panel")

    if kind == "xfce":  # and xfce4-panel hides a Passive item
        show(tray, calls, warning, status="Passive")
        wait_until(lambda: icon_on_panel(host, WARNING_COLOUR) is None, "xfce4-panel to hide the Passive item")
        show(tray, calls, warning, status="NeedsAttention")
        wait_until(lambda: icon_on_panel(host, WARNING_COLOUR), "the item back on the panel")
    with pytest.raises(ValueError, match="NeedsAttention"):
        show(tray, calls, warning, status="Urgent")


# -- 6. start before the panel, and a panel restart --------------------------------------------------------------

def test_an_item_started_before_the_panel_is_registered_when_it_comes(session, kind, probe, make_tray):
    calls = Calls()
    tray = make_tray()
    show(tray, calls, firing("disk_root"))
    assert not session.name_has_owner("org.kde.StatusNotifierWatcher")
    tray.start()
    assert not tray.registered
    with SniHost(session, kind) as host:
        started = time.monotonic()
        wait_until(lambda: listed(host, probe, tray), "our item registered with the new watcher", REGISTER_WAIT)
        wait_until(lambda: tray.registered, "SniTray.registered", REGISTER_WAIT)
        wait_until(lambda: icon_on_panel(host), "our icon on the new panel", REGISTER_WAIT)
        assert time.monotonic() - started < REGISTER_WAIT

        host.restart()
        started = time.monotonic()
        wait_until(lambda: listed(host, probe, tray), "our item registered again after the panel restarted",
                   REGISTER_WAIT)
        wait_until(lambda: icon_on_panel(host), "our icon on the restarted panel", REGISTER_WAIT)
    wait_until(lambda: not tray.registered, "SniTray.registered to turn false with the watcher gone")


# -- without a host --------------------------------------------------------------------------------------------

def test_the_freedesktop_watcher_variant_is_registered_with_too(bare, make_tray):
    from tray_alerts import session_bus

    registered: list[str] = []
    calls = Calls()
    tray = make_tray()
    show(tray, calls, firing("disk_root"))
    tray.start()
    assert not tray.registered

    async def serve() -> Any:
        bus = await session_bus.connect()
        bus.export("/StatusNotifierWatcher", FakeWatcher(registered))
        await bus.request_name("org.freedesktop.StatusNotifierWatcher")
        return bus

    with SignalRecorder(bare) as recorder:
        watcher_bus = session_bus.run(serve())
        try:
            wait_until(lambda: registered, "RegisterStatusNotifierItem on org.freedesktop.StatusNotifierWatcher")
            assert registered == [item_name(tray)]
            wait_until(lambda: tray.registered, "SniTray.registered after the watcher's reply")
            start = time.monotonic()
            show(tray, calls, firing("disk_root"), status="NeedsAttention")
            tray_sync(recorder, tray)
            # the freedesktop twin of the interface speaks only while a freedesktop watcher has us
            assert sorted(emitted(recorder, tray, start)) == ["org.freedesktop.StatusNotifierItem.NewStatus",
                                                              f"{ITEM}.NewStatus"]
        finally:
            watcher_bus.disconnect()
        wait_until(lambda: not tray.registered, "SniTray.registered to turn false with the watcher gone")
        start = time.monotonic()
        show(tray, calls, firing("disk_root"), status="Active")
        tray_sync(recorder, tray)
        assert emitted(recorder, tray, start) == [f"{ITEM}.NewStatus"]


def test_no_bus_is_bus_unavailable(monkeypatch, tmp_path):
    from tray_alerts import session_bus
    from tray_alerts.sni import SniTray

    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={tmp_path / 'nobody-here'}")
    tray = SniTray()
    with pytest.raises(session_bus.BusUnavailable, match="session D-Bus"):
        tray.start(timeout=3)
    assert not tray.registered
    tray.stop()


def test_a_bare_sni_process_stays_small(bare):
    script = (
        "import sys, time\n"
        "from tray_alerts.sni import SniTray\n"
        "from PIL import Image\n"
        "from tray_alerts.traymenu import Item\n"
        "tray = SniTray()\n"
        "tray.update(Image.new('RGBA', (64, 64), '#2eb67d'), 'tray-alerts — all clear', [], 'Active',"
        " [Item('All clear', enabled=False, key='header'), Item('Quit', lambda: None, key='quit')])\n"
        "tray.start()\n"
        "print([line for line in open('/proc/self/status') if line.startswith('VmRSS')][0].split()[1], flush=True)\n"
        "tray.stop()\n")
    done = subprocess.run([sys.executable, "-c", script], env=bare.child_env(), capture_output=True, text=True,
                          timeout=30, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    rss_kib = int(done.stdout.split()[0])
    assert rss_kib <= 55 * 1024, f"a bare SniTray process uses {rss_kib / 1024:.1f} MiB"


class FakeWatcher(ServiceInterface):
    """org.freedesktop.StatusNotifierWatcher, the spelling a few newer hosts use: records who registers."""

    def __init__(self, registered: list[str]):
        super().__init__("org.freedesktop.StatusNotifierWatcher")
        self.registered = registered

    @dbus_method(name="RegisterStatusNotifierItem")
    def register(self, service: DBusStr) -> NoValue:
        self.registered.append(service)


def _variant_int(value: int) -> Any:
    from dbus_fast import Variant

    return Variant("i", value)
