"""The real app on the StatusNotifierItem path: `python -m tray_alerts run` on Xvfb with a private session bus
and xfce4-panel as the SNI host (tests/sni_hosts.py), the test acting as the host through dbusmenu calls.

With no TRAY_ALERTS_TRAY the app chooses SNI by itself (a watcher is on the bus) and loads no toolkit. A
critical pushed through the API sets Status NeedsAttention; "Acknowledge" clicked in the menu (dbusmenu
Event "clicked", the row found by label in GetLayout) acknowledges it and Status goes back to Active; "Clear"
clears it; Quit, SIGTERM and SIGINT end the app with exit code 0 (the signals within 2 s) and stderr stays
free of tracebacks and toolkit noise. Started before the panel, the app waits and registers when it comes.
Open picked on an alert's pop-up in dunst opens the dashboard at that alert in the web browser ($BROWSER), with a
working one-time login that the log never shows.
"""
from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from desktop_session import DesktopSession, NotifyRecorder, skip_unless_tools
from polling import wait_until
from sni_hosts import WATCHER, WATCHER_PATH, BusProbe, SniHost, skip_unless_host
from test_notifications_e2e import pick_in_context_menu, write_menu_script
from test_tray_e2e import SIGNAL_EXIT_WITHIN, TrayApp, assert_quiet

pytest.importorskip("dbus_fast", reason="the SNI tray needs dbus-fast: pip install dbus-fast")
from dbus_fast import Variant  # noqa: E402

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="StatusNotifierItem is Linux's")

ITEM = "org.kde.StatusNotifierItem"
ITEM_PATH = "/StatusNotifierItem"
MENU = "com.canonical.dbusmenu"
EVENT = "disk_full"
WAIT = 15.0
REGISTER_WAIT = 5.0  # "registered within a few seconds" of the panel starting
PANEL_LATER = 2.0


@pytest.fixture(scope="module")
def desktop():
    skip_unless_host("xfce")
    with DesktopSession(notifications=False) as session:
        yield session


@pytest.fixture(scope="module")
def popup_desktop(tmp_path_factory):
    """A desktop with dunst serving pop-ups, its context menu answered by the dmenu script: (session, folder)."""
    skip_unless_host("xfce")
    skip_unless_tools("dunst", "dunstctl")
    folder = tmp_path_factory.mktemp("dunst-menu")
    script = write_menu_script(folder)
    with DesktopSession(dunstrc=f'[global]\n    dmenu = "{script}"\n') as session:
        yield session, folder


@pytest.fixture
def probe(desktop):
    with BusProbe(desktop) as bus:
        yield bus


@pytest.fixture
def app(desktop, tmp_path):
    running = TrayApp(desktop, tmp_path, tray=None, channels="log")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def host(desktop):
    with SniHost(desktop, "xfce") as panel:
        yield panel


def our_item(host: SniHost, probe: BusProbe, app: TrayApp) -> str | None:
    """The bus name the app's item registered with the watcher, if it is registered."""
    wanted = f"{ITEM}-{app.process.pid}-"
    for entry in host.registered_items(probe):
        if entry.startswith(wanted):
            return entry.split("/", 1)[0]
    return None


def wait_registered(host: SniHost, probe: BusProbe, app: TrayApp, timeout: float = WAIT) -> str:
    return wait_until(lambda: our_item(host, probe, app), f"item of pid {app.process.pid} registered with the"
                      f" watcher; {app.describe()}", timeout)


def status(probe: BusProbe, name: str) -> str:
    return probe.get_property(name, ITEM_PATH, ITEM, "Status")


def layout(probe: BusProbe, name: str) -> list[Any]:
    """GetLayout of the whole menu: (id, props, children) with children unwrapped from their variants."""
    _, tree = probe.call(name, "/MenuBar", MENU, "GetLayout", "iias", [0, -1, []])

    def unwrap(node: list[Any]) -> list[Any]:
        node_id, props, children = node
        return [node_id, {key: value.value for key, value in props.items()},
                [unwrap(child.value) for child in children]]

    return unwrap(tree)


def find_row(tree: list[Any], *labels: str) -> int:
    """The id of the row reached by following `labels` (as shown: dbusmenu doubles a literal `_`)."""
    node = tree
    for label in labels:
        shown = label.replace("_", "__")
        matches = [child for child in node[2] if child[1].get("label") == shown]
        assert matches, f"no row {shown!r} under {node[1].get('label', 'the root')!r}: " \
                        f"{[child[1].get('label') for child in node[2]]}"
        node = matches[0]
    return node[0]


def click(probe: BusProbe, name: str, *labels: str) -> None:
    """What a host does when the row is clicked: AboutToShow on the menu, then Event(id, "clicked")."""
    probe.call(name, "/MenuBar", MENU, "AboutToShow", "i", [0])
    row = find_row(layout(probe, name), *labels)
    probe.call(name, "/MenuBar", MENU, "Event", "isvu", [row, "clicked", Variant("s", ""), int(time.time())])


def gtk_loaded(pid: int) -> list[str]:
    """GTK, GDK or GObject-introspection libraries mapped into the process."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return sorted({line.split()[-1] for line in maps.splitlines()
                   if any(lib in line for lib in ("libgtk-3", "libgdk-3", "libgirepository"))})


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ---- the tests ---------------------------------------------------------------------------------------------------

def test_acknowledge_and_clear_from_the_menu_then_quit(host, probe, app):
    app.start()
    app.wait_for_line("running in the tray")
    name = wait_registered(host, probe, app)
    assert status(probe, name) == "Active"
    assert gtk_loaded(app.process.pid) == [], "the SNI path loads no toolkit"
    print(f"idle RSS on the SNI path: {rss_mib(app.process.pid):.1f} MiB")

    reply = app.api("POST", "/v1/alerts?wait=10", json={"event": EVENT, "level": "critical",
                                                        "message": "disk at 99% on /var"})
    assert reply["status"] == "fired", reply
    wait_until(lambda: status(probe, name) == "NeedsAttention", "Status NeedsAttention")
    tooltip = probe.get_property(name, ITEM_PATH, ITEM, "ToolTip")
    assert tooltip[2] == "tray-alerts — 1 active" and EVENT in tooltip[3], tooltip

    click(probe, name, f"CRITICAL · {EVENT}", "Acknowledge")
    wait_until(lambda: [alert.get("acknowledged") for alert in app.api("GET", "/v1/alerts")] == [True],
               'GET /v1/alerts saying "acknowledged": true')
    wait_until(lambda: status(probe, name) == "Active", "Status back to Active")
    acknowledged_row = wait_until(
        lambda: [row[1]["label"] for row in layout(probe, name)[2] if EVENT.replace("_", "__") in
                 str(row[1].get("label"))], "the alert's row")
    assert "acknowledged" in acknowledged_row[0], acknowledged_row

    [row_label] = acknowledged_row
    click(probe, name, row_label.replace("__", "_"), "Clear")
    wait_until(lambda: app.api("GET", "/v1/alerts") == [], "GET /v1/alerts == []")
    wait_until(lambda: "All clear" in [row[1].get("label") for row in layout(probe, name)[2]], "All clear")

    click(probe, name, "Quit")
    assert app.wait_exit() == 0, app.describe()
    wait_until(lambda: our_item(host, probe, app) is None, "the item leaving the watcher")
    assert_quiet(app)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_exits_0_within_2_s(host, probe, app, signum):
    app.start()
    app.wait_for_line("running in the tray")
    wait_registered(host, probe, app)

    started = time.monotonic()
    app.process.send_signal(signum)
    assert app.wait_exit() == 0, app.describe()
    took = time.monotonic() - started
    assert took < SIGNAL_EXIT_WITHIN, f"{took:.2f} s; {app.describe()}"
    assert_quiet(app)


def test_started_before_the_panel_it_registers_when_the_panel_comes(desktop, probe, app):
    wait_until(lambda: not desktop.name_has_owner(WATCHER), "no watcher on the bus (an earlier test's panel gone)")
    app.start()
    app.wait_for_line("running in the tray")
    wait_until(lambda: "waiting for a tray host" in app.stderr(), "the 'waiting for a tray host' log line")
    time.sleep(PANEL_LATER)  # the scenario: the panel starts a little after the app (login autostart)
    assert app.process.poll() is None, app.describe()
    started = time.monotonic()
    with SniHost(desktop, "xfce") as host:
        wait_registered(host, probe, app, timeout=REGISTER_WAIT)
        print(f"registered {time.monotonic() - started:.2f} s after the panel was started")
        items = probe.get_property(WATCHER, WATCHER_PATH, WATCHER, "RegisteredStatusNotifierItems")
        assert sum(item.startswith(f"{ITEM}-{app.process.pid}-") for item in items) == 1, items
    app.process.send_signal(signal.SIGTERM)
    assert app.wait_exit() == 0, app.describe()
    assert_quiet(app)


def test_open_on_an_alerts_pop_up_opens_the_dashboard_at_it(popup_desktop, tmp_path):
    import stat

    screen, menu_folder = popup_desktop
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser"  # a browser that notes what it was asked to open
    browser.write_text(f"#!/bin/sh\necho \"$1\" >> {opened}\n")
    browser.chmod(browser.stat().st_mode | stat.S_IXUSR)
    with SniHost(screen, "xfce") as host, BusProbe(screen) as probe, NotifyRecorder(screen, timeout=WAIT) as recorder:
        app = TrayApp(screen, tmp_path, tray=None, channels="log, desktop", browser=str(browser))
        try:
            app.start()
            app.wait_for_line("running in the tray")
            wait_registered(host, probe, app)
            app.api("POST", "/v1/alerts?wait=10", json={"event": EVENT, "level": "error", "message": "disk at 96%"})
            [fired] = recorder.wait_for(1)
            pick_in_context_menu(screen, menu_folder, recorder.returned_id(fired), "default")
            screen.wait_for(lambda: opened.exists() and opened.read_text().strip(), "the browser asked to open",
                            timeout=WAIT)
            url = opened.read_text().strip()
            base = f"http://127.0.0.1:{app.port}/dashboard?login="
            assert url.startswith(base) and url.endswith(f"#alert={quote(EVENT, safe='')}"), url
            login = requests.get(url.partition("#")[0], allow_redirects=False, timeout=WAIT)
            assert login.status_code == 303 and "HttpOnly" in login.headers["Set-Cookie"]  # a working login
            assert "login=" not in (tmp_path / "log" / "tray-alerts.log").read_text()  # never logged
            assert_quiet(app)
        finally:
            app.stop()


def test_a_taken_api_port_is_one_line_and_exit_1_not_a_traceback(desktop, tmp_path):
    import socket

    running = TrayApp(desktop, tmp_path, tray=None, channels="log")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", running.port))
        holder.listen()
        try:
            running.start()
            code = running.wait_exit(WAIT)
        finally:
            running.stop()
    assert code == 1, running.describe()
    assert "is in use by another program" in running.stderr() and "Traceback" not in running.stderr()
