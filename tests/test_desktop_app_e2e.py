"""The whole desktop path of the real app, as a user meets it: `python -m tray_alerts run` on Xvfb with a private
session bus, dunst serving its pop-ups and xfce4-panel hosting its StatusNotifierItem (tests/sni_hosts.py).

Alerts come in through the push API (POST /v1/alerts with the token from the state folder); what the app does is
read off the bus (the Notify and CloseNotification calls, by NotifyRecorder), off its item (Status, over
D-Bus) and out of GET /v1/alerts. Pop-up actions are picked in dunst itself: `dunstctl context` opens dunst's
context menu through its `dmenu` command, a script (the trick of tests/test_notifications_e2e.py) that answers
with the line of the wanted action.

  1. a critical pops up urgent, never expiring, with Acknowledge / Mute 1 h / Open and the desktop-entry hint,
     and the item needs attention;
  2. Acknowledge picked in dunst acknowledges it, the pop-up goes, the item is Active again, and no channel is
     told anything (the log channel's file keeps only the firing line);
  3. an escalation replaces the pop-up in place; acknowledged, then escalated again, the event is no longer
     acknowledged and pops up again; its clear replaces that pop-up with the recovery (normal urgency);
  4. "Mute 1 h" picked in dunst mutes the event for an hour.

TRAY_ALERTS_SCREENSHOTS=1 also writes docs/screenshot-sni-xfce.png and docs/screenshot-sni-lxqt.png (the real
app's menu open on each panel, the critical's submenu showing Acknowledge / Mute / Clear) and
docs/screenshot-popup.png (dunst's pop-ups, and with dmenu installed — apt-get install suckless-tools — dunst's
context menu over them offering the critical's Open / Acknowledge / Mute 1 h).
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from desktop_session import (Box, DesktopSession, NotificationClosed, NotifyRecorder, skip_unless_tools,
                             stop_process)
from sni_hosts import BusProbe, SniHost, colour_box, skip_unless_host
from test_notifications_e2e import pick_in_context_menu, write_menu_script
from test_tray_e2e import TrayApp, assert_quiet
from polling import wait_until
from test_tray_sni_app_e2e import status, wait_registered

pytest.importorskip("dbus_fast", reason="the SNI tray needs dbus-fast: pip install dbus-fast")

from tray_alerts.icons import ICON_COLOURS  # noqa: E402
from tray_alerts.model import Level  # noqa: E402

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="freedesktop pop-ups and SNI")

WAIT = 10.0          # the longest one step may take (every wait polls and says what it waited for)
ACK_WITHIN = 3.0     # "acknowledged within a few seconds" of picking Acknowledge in dunst
MUTE_HOUR = 3600.0
DOCS = Path(__file__).resolve().parents[1] / "docs"
SCREENSHOTS = os.environ.get("TRAY_ALERTS_SCREENSHOTS") == "1"
POPUPS_TOP = 92  # px: dunst's pop-ups start below dmenu's 4 rows (its prompt and 3 lines)

DISK = {"event": "disk_root", "level": "critical", "message": "disk / at 97%",
        "context": {"host": "web-01", "mount": "/", "used": "97%", "free": "1.4 GiB"}}
API = {"event": "api_down", "level": "warning", "message": "health check answered HTTP 503 three times in a row",
       "context": {"url": "https://api.example.com/health", "status": "503"}}
FIRING_ACTIONS = {"ack": "Acknowledge", "mute": "Mute 1 h", "default": "Open"}

# dunst's context menu: as in test_notifications_e2e.py, keep what dunst offered and answer with the line of the
# wanted action; while the file menu-show exists, show the menu in a real dmenu instead (for the picture)
MENU_SCRIPT = """#!/bin/sh
cat > "{folder}/menu-offered.part" && mv "{folder}/menu-offered.part" "{folder}/menu-offered"
if [ -e "{folder}/menu-show" ]; then
    echo $$ > "{folder}/menu-pid"
    exec dmenu -l 3 -p dunst: -fn "DejaVu Sans-10" -nb "#2e3440" -nf "#eceff4" -sb "#5e81ac" -sf "#ffffff" \\
        < "{folder}/menu-offered"
fi
want=$(cat "{folder}/menu-want")
grep -F -m1 -- "$want" "{folder}/menu-offered"
"""

# dunst as a person might set it up: top left below dmenu's list (where its context menu shows), action and URL
# indicators on ("(A)", "(U)": dunst draws no buttons), a red frame for critical pop-ups
DUNSTRC = """[global]
    dmenu = "{menu}"
    show_indicators = yes
    font = "DejaVu Sans 10"
    width = 380
    origin = top-left
    offset = 12x{popups_top}
    padding = 10
    horizontal_padding = 10
    frame_width = 2
    separator_height = 2
    separator_color = frame
    gap_size = 0
    corner_radius = 6
    icon_position = left
    min_icon_size = 32
    max_icon_size = 48
    markup = full
    format = "<b>%s</b>\\n%b"

[urgency_low]
    background = "#2e3440"
    foreground = "#d8dee9"
    frame_color = "#4c566a"

[urgency_normal]
    background = "#2e3440"
    foreground = "#eceff4"
    frame_color = "#c76a08"

[urgency_critical]
    background = "#3b1d1d"
    foreground = "#ffffff"
    frame_color = "#e5432f"
    timeout = 0
"""


# -- fixtures --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def menu_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dunst-menu")
    write_menu_script(folder, MENU_SCRIPT)
    return folder


@pytest.fixture(scope="module")
def desktop(menu_folder) -> Iterator[DesktopSession]:
    skip_unless_tools("Xvfb", "dbus-daemon", "dbus-monitor", "gdbus", "dunst", "dunstctl")
    skip_unless_host("xfce")
    dunstrc = DUNSTRC.format(menu=menu_folder / "menu.sh", popups_top=POPUPS_TOP)
    with DesktopSession(dunstrc=dunstrc, background="#4c566a") as session:
        yield session


@pytest.fixture
def screen(desktop) -> DesktopSession:
    """The desktop with no pop-up left over from an earlier test."""
    desktop.dunstctl("close-all")
    desktop.wait_for(lambda: desktop.displayed() == 0, "dunst showing no pop-up", timeout=WAIT)
    return desktop


@pytest.fixture
def host(screen) -> Iterator[SniHost]:
    with SniHost(screen, "xfce") as panel:  # ~0.3 s: one of its own per test, so no test sees another's item
        yield panel


@pytest.fixture
def probe(screen) -> Iterator[BusProbe]:
    with BusProbe(screen) as bus:
        yield bus


@pytest.fixture
def recorder(screen) -> Iterator[NotifyRecorder]:
    with NotifyRecorder(screen, timeout=WAIT) as recording:
        yield recording


class DesktopApp(TrayApp):
    """The real app routing every level to `log, desktop`, its log channel writing a file of its own."""

    def __init__(self, desktop: DesktopSession, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        super().__init__(desktop, folder, tray=None, channels="log, desktop")  # no TRAY_ALERTS_TRAY: it picks SNI
        self.alert_log = folder / "alerts.log"
        with self.settings.open("a") as settings:
            settings.write(f"\n[channel.log]\nfile = {self.alert_log}\n")

    def logged(self) -> list[str]:
        """The log channel's lines: what that channel was told."""
        return self.alert_log.read_text().splitlines() if self.alert_log.exists() else []

    def alerts(self) -> dict[str, dict[str, Any]]:
        """GET /v1/alerts by event."""
        return {alert["event"]: alert for alert in self.api("GET", "/v1/alerts")}

    def raise_alert(self, alert: dict[str, Any], **changes: Any) -> dict[str, Any]:
        reply = self.api("POST", "/v1/alerts?wait=10", json={**alert, **changes})
        assert reply["delivered"].get("desktop") is True, reply
        return reply


@pytest.fixture
def app(host, tmp_path) -> Iterator[DesktopApp]:
    running = DesktopApp(host.desktop, tmp_path)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def item(app, host, probe) -> str:
    """The running app's StatusNotifierItem, registered with the panel: its bus name."""
    app.start()
    app.wait_for_line("running in the tray")
    return wait_registered(host, probe, app)


def pop_up(recorder: NotifyRecorder, number: int) -> tuple[Any, int]:
    """The `number`th Notify call (1-based) and the id dunst answered it with."""
    call = recorder.wait_for(number)[number - 1]
    return call, recorder.returned_id(call)


def closed(recorder: NotifyRecorder, notification_id: int) -> list[NotificationClosed]:
    return [signal for signal in recorder.signals
            if isinstance(signal, NotificationClosed) and signal.notification_id == notification_id]


# -- the tests -------------------------------------------------------------------------------------------------

def test_a_critical_from_the_api_pops_up_urgent_with_its_buttons_and_the_item_needs_attention(
        app, item, probe, recorder, screen):
    assert status(probe, item) == "Active"
    reply = app.raise_alert(DISK)
    assert reply["status"] == "fired", reply

    call, notification_id = pop_up(recorder, 1)
    assert call.summary == "CRITICAL · disk_root"
    assert call.body.splitlines()[:2] == ["disk / at 97%", "host: web-01"], call.body
    assert call.urgency == 2
    assert call.expire_timeout == 0
    assert call.action_labels == FIRING_ACTIONS
    assert call.desktop_entry == "tray-alerts" and call.app_name == "tray-alerts"
    assert call.replaces_id == 0 and notification_id > 0
    wait_until(lambda: status(probe, item) == "NeedsAttention", "Status NeedsAttention")
    screen.wait_for(lambda: screen.displayed() == 1, "dunst showing the pop-up", timeout=WAIT)
    assert app.logged() and "disk_root" in app.logged()[0], app.logged()
    assert_quiet(app)


def test_acknowledge_picked_in_dunst_acknowledges_withdraws_the_pop_up_and_tells_no_channel(
        app, item, probe, recorder, screen, menu_folder):
    app.raise_alert(DISK)
    call, notification_id = pop_up(recorder, 1)
    wait_until(lambda: status(probe, item) == "NeedsAttention", "Status NeedsAttention")

    picked = time.monotonic()
    offered = pick_in_context_menu(screen, menu_folder, notification_id, "ack")
    assert f"#Acknowledge (CRITICAL · disk_root) [{notification_id},ack]" in offered, offered
    wait_until(lambda: app.alerts()["disk_root"]["acknowledged"] is True, 'GET /v1/alerts "acknowledged": true',
               timeout=ACK_WITHIN)
    took = time.monotonic() - picked
    print(f"acknowledged {took:.2f} s after Acknowledge was picked in dunst")

    # dunst keeps a pop-up up after an action picked in its context menu: the app withdrew it, once
    [gone] = wait_until(lambda: closed(recorder, notification_id), f"NotificationClosed({notification_id})")
    assert gone.reason == 3, gone  # 3: closed by a CloseNotification call
    assert recorder.close_calls == [notification_id]
    screen.wait_for(lambda: screen.displayed() == 0, "dunst showing no pop-up", timeout=WAIT)
    wait_until(lambda: status(probe, item) == "Active", "Status back to Active")
    acknowledged = app.alerts()["disk_root"]
    assert acknowledged["acknowledged_at"] is not None and acknowledged["level"] == "critical", acknowledged

    recorder.sync()
    assert len(recorder.calls) == 1, [c.summary for c in recorder.calls]  # no new pop-up for the acknowledgement
    [line] = app.logged()  # the firing only: acknowledging tells no channel
    assert "disk_root" in line and "disk / at 97%" in line, line
    assert_quiet(app)


def test_escalation_replaces_the_pop_up_un_acknowledges_and_the_recovery_replaces_it_too(
        app, item, probe, recorder, screen, menu_folder):
    app.raise_alert(DISK, level="warning", message="disk / at 91%", context={**DISK["context"], "used": "91%"})
    warning, first_id = pop_up(recorder, 1)
    assert (warning.urgency, warning.replaces_id) == (1, 0)

    # escalated while its pop-up is on screen: replaced in place
    app.raise_alert(DISK, level="error", message="disk / at 95%", context={**DISK["context"], "used": "95%"})
    error, error_id = pop_up(recorder, 2)
    assert (error.summary, error.urgency, error.replaces_id) == ("ERROR · disk_root", 1, first_id)
    assert error_id == first_id
    assert screen.displayed() == 1

    pick_in_context_menu(screen, menu_folder, first_id, "ack")
    wait_until(lambda: app.alerts()["disk_root"]["acknowledged"] is True, '"acknowledged": true')
    screen.wait_for(lambda: screen.displayed() == 0, "the acknowledged pop-up withdrawn", timeout=WAIT)
    wait_until(lambda: status(probe, item) == "Active", "Status Active once acknowledged")

    app.raise_alert(DISK)  # critical: worse than what was acknowledged
    critical, critical_id = pop_up(recorder, 3)
    wait_until(lambda: app.alerts()["disk_root"]["acknowledged"] is False, '"acknowledged": false after escalation')
    assert (critical.summary, critical.urgency, critical.expire_timeout) == ("CRITICAL · disk_root", 2, 0)
    assert critical.action_labels == FIRING_ACTIONS
    # the acknowledged pop-up was withdrawn, so this one is new rather than a replacement of a closed one
    assert critical.replaces_id == 0, (critical.replaces_id, first_id)
    wait_until(lambda: status(probe, item) == "NeedsAttention", "Status NeedsAttention again")

    app.api("POST", "/v1/alerts/disk_root/clear?wait=10", json={"message": "disk / at 71% after cleanup"})
    recovery, recovery_id = pop_up(recorder, 4)
    assert recovery.summary == "RESOLVED · disk_root"
    assert recovery.body.startswith("disk / at 71% after cleanup"), recovery.body
    assert (recovery.replaces_id, recovery_id) == (critical_id, critical_id)
    assert (recovery.urgency, recovery.expire_timeout) == (1, 10_000)
    assert recovery.action_labels == {"default": "Open"}
    assert screen.displayed() == 1  # the recovery in the critical's place
    wait_until(lambda: app.alerts() == {}, "GET /v1/alerts empty after the clear")
    wait_until(lambda: status(probe, item) == "Active", "Status Active after the clear")
    # the log channel heard the firing, the escalations and the recovery, and nothing of the acknowledgement
    assert [re.search(r"disk_root: \[(\w+)\]", line).group(1) for line in app.logged()] == \
        ["WARNING", "ERROR", "CRITICAL", "RESOLVED"], app.logged()
    assert_quiet(app)


def test_mute_picked_in_dunst_mutes_the_event_for_an_hour(app, item, recorder, screen, menu_folder):
    app.raise_alert(API)
    call, notification_id = pop_up(recorder, 1)
    assert (call.summary, call.urgency, call.expire_timeout) == ("WARNING · api_down", 1, 10_000)

    picked = time.time()
    pick_in_context_menu(screen, menu_folder, notification_id, "mute")
    muted = wait_until(lambda: app.alerts()["api_down"]["muted_until"], "GET /v1/alerts showing muted_until")
    assert picked + MUTE_HOUR - 5 <= muted <= time.time() + MUTE_HOUR + 1, (muted - picked)
    assert app.alerts()["api_down"]["acknowledged"] is False  # muted, not acknowledged
    assert_quiet(app)


# -- screenshots (TRAY_ALERTS_SCREENSHOTS=1) --------------------------------------------------------------------

def menu_windows(desktop: DesktopSession, kind: str) -> list[Any]:
    """The panel's open popup menus (override-redirect windows of the panel's processes)."""
    classes = {"xfce": ("wrapper-2.0", "Wrapper-2.0"), "lxqt": ("lxqt-panel", "lxqt-panel")}[kind]
    return [window for window in desktop.windows() if window.override_redirect
            and tuple(window.wm_class) == classes and window.box.top >= 0 and window.box.height > 20]


def dunst_windows(desktop: DesktopSession) -> list[Any]:
    return [window for window in desktop.windows() if "dunst" in " ".join(window.wm_class).lower()
            and window.box.width > 1]


def steady(desktop: DesktopSession, box: Box) -> Any:
    """A grab of `box` once two in a row are the same (drawing finished), else None."""
    from PIL import ImageChops

    first = desktop.grab(box)
    time.sleep(0.15)
    second = desktop.grab(box)
    return second if ImageChops.difference(first, second).getbbox() is None else None


def menu_shot(desktop: DesktopSession, kind: str, folder: Path) -> Any:
    """The real app with two alerts on `kind`'s panel, its menu and the critical's submenu open: the picture."""
    with SniHost(desktop, kind) as host, BusProbe(desktop) as probe:
        app = DesktopApp(desktop, folder)
        try:
            app.start()
            app.wait_for_line("running in the tray")
            wait_registered(host, probe, app)
            app.raise_alert(API)
            app.raise_alert(DISK)
            icon = wait_until(lambda: host.find_colour(ICON_COLOURS[Level.CRITICAL], min_pixels=10),
                              f"the critical icon on {kind}'s panel")
            desktop.dunstctl("close-all")  # the pop-ups have their own picture
            desktop.wait_for(lambda: desktop.displayed() == 0, "no pop-up over the menu", timeout=WAIT)
            desktop.click(*icon.centre, button=3)
            [menu] = wait_until(lambda: menu_windows(desktop, kind), f"{kind}'s menu window")
            # the first enabled row is the worst alert: Right opens its submenu on Acknowledge
            desktop.key("Home" if kind == "xfce" else "Down", "Right")
            submenus = wait_until(lambda: [w for w in menu_windows(desktop, kind) if w.id != menu.id],
                                  "the alert's submenu")
            assert wait_until(lambda: colour_box(desktop.grab(menu.box), ICON_COLOURS[Level.CRITICAL],
                                                 min_pixels=10), "the critical icon beside its row")
            panel = host.panel_box()
            shot = icon.union(menu.box, *(window.box for window in submenus)).grow(12)
            picture = wait_until(lambda: steady(desktop, Box(shot.left, panel.top, shot.right, shot.bottom)),
                                 "the open menu drawn")
            desktop.key("Escape", "Escape", "Escape")
            wait_until(lambda: not menu_windows(desktop, kind), f"{kind}'s menu closed")
            return picture
        finally:
            app.stop()


only_for_pictures = pytest.mark.skipif(not SCREENSHOTS, reason="TRAY_ALERTS_SCREENSHOTS=1 writes the README's pictures")


@only_for_pictures
@pytest.mark.parametrize("kind", ["xfce", "lxqt"])
def test_screenshot_of_the_real_apps_menu_on_the_panel(screen, tmp_path, kind):
    skip_unless_host(kind)
    skip_unless_tools("xdotool")
    DOCS.mkdir(exist_ok=True)
    menu_shot(screen, kind, tmp_path).save(DOCS / f"screenshot-sni-{kind}.png", optimize=True)


@only_for_pictures
def test_screenshot_of_dunsts_pop_ups_and_its_context_menu(screen, tmp_path, recorder, menu_folder):
    """A critical over a warning as dunst draws them ((A): it has actions, (U): a URL), and with dmenu
    installed the context menu (ctrl+shift+period in a default dunstrc) dunst offers their actions in."""
    skip_unless_tools("xdotool")
    DOCS.mkdir(exist_ok=True)
    show = menu_folder / "menu-show"
    context = None
    with SniHost(screen, "xfce") as host, BusProbe(screen) as probe:
        app = DesktopApp(screen, tmp_path)
        try:
            app.start()
            app.wait_for_line("running in the tray")
            wait_registered(host, probe, app)
            app.raise_alert(DISK)
            app.raise_alert(API)
            recorder.wait_for(2)
            screen.wait_for(lambda: screen.displayed() == 2, "dunst showing both pop-ups", timeout=WAIT)
            windows = wait_until(lambda: dunst_windows(screen), "dunst's window on screen")  # one for all pop-ups
            shot = windows[0].box.union(*(window.box for window in windows)).grow(12)
            if shutil.which("dmenu"):
                show.touch()
                context = subprocess.Popen(["dunstctl", "context"], env=screen.child_env(), start_new_session=True,
                                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL)
                [menu] = wait_until(lambda: [w for w in screen.windows() if "dmenu" in " ".join(w.wm_class)],
                                    "dmenu showing dunst's context menu")
                offered = (menu_folder / "menu-offered").read_text()
                assert "#Acknowledge (CRITICAL · disk_root)" in offered, offered
                time.sleep(0.3)  # let dmenu draw its first list before the keys change it
                screen.xdotool("type", "--delay", "40", "disk_root")  # dmenu narrows the list to the critical's
                screen.key("Down")  # from Open to Acknowledge
                shot = Box(0, 0, min(menu.box.right, shot.right + 220), shot.bottom)  # dmenu's text is on the left
            else:
                print("no dmenu: the picture shows the pop-ups only (apt-get install suckless-tools)")
            wait_until(lambda: steady(screen, shot), "dunst's pop-ups drawn").save(DOCS / "screenshot-popup.png",
                                                                                  optimize=True)
        finally:
            if context is not None:
                screen.key("Escape")  # dmenu: nothing picked
                _end_dmenu(menu_folder)
                stop_process(context)
            show.unlink(missing_ok=True)
            app.stop()


def _end_dmenu(folder: Path) -> None:
    """Make sure the dmenu the script exec'd is gone (by the PID it wrote)."""
    try:
        pid = int((folder / "menu-pid").read_text())
    except (OSError, ValueError):
        return
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
