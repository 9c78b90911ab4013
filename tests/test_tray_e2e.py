"""The real app in a real (headless) tray: Xvfb, a private session bus, dunst, trayer, driven with xdotool.

`python -m tray_alerts run` runs as a subprocess on the XEmbed path (TRAY_ALERTS_TRAY=xembed: pystray's gtk
backend). An alert pushed through the API
turns the icon red and pops up; the alert is cleared from the tray menu, which pops up the recovery and turns
the icon green; Quit in the menu, and SIGTERM, end the app with exit code 0.

The menu is driven with keys once a right click has opened it. GTK's keyboard navigation steps over
insensitive items (the menu's header and the alert's detail lines), so:
  Home   selects the first enabled item of the main menu: the first (worst) alert
  Right  opens that alert's submenu and selects its first enabled item — Clear, its only one
  End    selects the last enabled item: Clear in an alert's submenu, Quit in the main menu
(Up from nothing selected wraps to the last item too; End does not depend on wrapping.)

TRAY_ALERTS_SCREENSHOTS=1 also writes docs/screenshot-icon.png and docs/screenshot-menu.png for the README.
"""
from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import pytest

import polling
from tray_alerts.icons import CLEAR_COLOUR, ICON_COLOURS
from tray_alerts.model import Level
from desktop_session import (REQUIRED_TOOLS, TRAY_TOOLS, Box, DesktopError, DesktopSession, NotifyRecorder,
                             XWindow, close_to, skip_unless_tools, stop_process)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux tray (XEmbed, GTK)")

ERROR_COLOUR = ICON_COLOURS[Level.ERROR]
COLOUR_TOLERANCE = 12  # per channel; GTK scales the 64 px icon into the tray, the fill keeps its colour
EVENT = "disk_full"
DOCS = Path(__file__).resolve().parents[1] / "docs"
WAIT = 15.0  # the longest any single step may take (all waits are bounded and poll)
EXIT_WAIT = 5.0
SCREENSHOTS = os.environ.get("TRAY_ALERTS_SCREENSHOTS") == "1"
SIGNAL_EXIT_WITHIN = 2.0
# what a toolkit or Python prints when something went wrong: none of it belongs on a normal run's stderr
NOISE = ("Traceback", "-CRITICAL **", "-WARNING **", "Gdk-", "Gtk-", "GLib-", "DeprecationWarning", "Exception ignored")


def noise(stderr: str) -> list[str]:
    """The lines of `stderr` that a toolkit or an exception wrote."""
    return [line for line in stderr.splitlines() if any(mark in line for mark in NOISE)]


def assert_quiet(app: TrayApp) -> None:
    """Nothing but our own log lines on stderr."""
    assert noise(app.stderr()) == [], app.stderr()


def require_tray_desktop() -> None:
    """Skip, saying what to install, unless everything the tray test needs is here."""
    skip_unless_tools(*REQUIRED_TOOLS, *TRAY_TOOLS)
    for module, hint in (("pystray", "pip install pystray"), ("Xlib", "pip install python-xlib"),
                         ("PIL", "pip install pillow"), ("requests", "pip install requests")):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"needs {module}: {hint}")
    try:
        import gi

        gi.require_version("Gtk", "3.0")
    except (ImportError, ValueError) as error:
        pytest.skip(f"needs PyGObject with GTK 3 ({error}): pip install 'PyGObject<3.51' (apt-get install"
                    " libgirepository1.0-dev libcairo2-dev pkg-config gcc python3-dev to build it) and"
                    " apt-get install gir1.2-gtk-3.0")


@pytest.fixture(scope="module")
def desktop():
    require_tray_desktop()
    with DesktopSession(tray=True, background="#2e3440") as session:
        yield session


@pytest.fixture
def recorder(desktop):
    with NotifyRecorder(desktop) as recording:
        yield recording


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TrayApp:
    """`python -m tray_alerts run` on the private desktop, with its own settings, state and log in `folder`.

    tray: TRAY_ALERTS_TRAY for the app (None: unset, the app chooses); channels: where alerts go; bus: whether
    the app is given the session bus's address; browser: $BROWSER for it (what opens the dashboard)."""

    def __init__(self, desktop: DesktopSession, folder: Path, tray: str | None = "xembed",
                 channels: str = "log, desktop", bus: bool = True, browser: str | None = None):
        self.desktop = desktop
        self.browser = browser
        self.folder = folder
        self.tray = tray
        self.bus = bus
        self.port = free_port()
        self.state_dir = folder / "state"
        self.settings = folder / "settings.ini"
        self.settings.write_text(f"""\
[alerts]
state_dir = {self.state_dir}
log_file = {folder / "log" / "tray-alerts.log"}
api_port = {self.port}

[routing]
info = {channels}
warning = {channels}
error = {channels}
critical = {channels}

; the packaged disk monitor would read this machine's disk: off, so only the test raises alerts
[monitor.disk_root]
enabled = no

[channel.desktop]
timeout = 10s
""")
        self.process: subprocess.Popen | None = None
        self.lines: list[str] = []
        self._condition = threading.Condition()
        self._reader: threading.Thread | None = None
        self._stderr = None

    def start(self) -> TrayApp:
        env = self.desktop.child_env()
        env.pop("TRAY_ALERTS_CONFIG", None)
        env.pop("TRAY_ALERTS_TRAY", None)
        if self.tray is not None:
            env["TRAY_ALERTS_TRAY"] = self.tray
        env.pop("PYSTRAY_BACKEND", None)  # the xembed path picks gtk itself
        if self.browser is not None:
            env["BROWSER"] = self.browser
        if not self.bus:
            env.pop("DBUS_SESSION_BUS_ADDRESS", None)
        env["PYTHONUNBUFFERED"] = "1"
        for name in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
            env[name] = str(self.folder / "xdg" / name.lower())
        self._stderr = open(self.folder / "stderr.log", "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tray_alerts", "run", "--config", str(self.settings)], cwd=self.folder, env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr, text=True, start_new_session=True)
        self._reader = threading.Thread(target=self._read, name="tray-app-stdout", daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            with self._condition:
                self.lines.append(line.rstrip("\n"))
                self._condition.notify_all()
        with self._condition:
            self._condition.notify_all()

    def wait_for_line(self, text: str, timeout: float = WAIT) -> str:
        """The first stdout line containing `text` (bounded; fails early when the app exits)."""
        def found() -> str | None:
            return next((line for line in self.lines if text in line), None)

        with self._condition:
            self._condition.wait_for(lambda: found() or not self._reader.is_alive(), timeout=timeout)
            line = found()
        assert line is not None, f"no {text!r} on stdout within {timeout:g} s; {self.describe()}"
        return line

    def describe(self) -> str:
        code = self.process.poll() if self.process else None
        return (f"exit code {code}; stdout: {self.lines!r}; stderr:\n{self.stderr()}"
                if code is not None else f"running; stdout: {self.lines!r}; stderr:\n{self.stderr()}")

    def stderr(self) -> str:
        try:
            return (self.folder / "stderr.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def api(self, method: str, path: str, **kwargs):
        import requests

        token = (self.state_dir / "api-token").read_text().strip()
        reply = requests.request(method, f"http://127.0.0.1:{self.port}{path}", timeout=10,
                                 headers={"Authorization": f"Bearer {token}"}, **kwargs)
        assert reply.status_code == 200, (reply.status_code, reply.text)
        return reply.json()

    def wait_exit(self, timeout: float = EXIT_WAIT) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the app did not exit within {timeout:g} s; {self.describe()}") from None

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, close=False)
        if self._reader is not None:
            self._reader.join(5)
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


@pytest.fixture
def app(desktop, tmp_path):
    running = TrayApp(desktop, tmp_path)
    try:
        yield running
    finally:
        running.stop()


# ---- looking at the screen and driving the menu ------------------------------------------------------------

def wait_for_icon_colour(desktop: DesktopSession, expected: str, timeout: float = WAIT) -> Box:
    """Poll the icon's pixels until its fill is `expected`; returns where the icon is."""
    seen: list[object] = []

    def coloured() -> Box | None:
        icons = desktop.tray_icons()
        colour = desktop.tray_colour(icons[0]) if len(icons) == 1 else None
        seen.append(colour)
        return icons[0] if close_to(colour, expected, COLOUR_TOLERANCE) else None

    try:
        return desktop.wait_for(coloured, f"tray icon coloured {expected}", timeout=timeout)
    except DesktopError:
        raise AssertionError(f"the tray icon did not turn {expected} within {timeout:g} s; last colours seen:"
                             f" {seen[-3:]!r}") from None


def popups(desktop: DesktopSession, before: set[int]) -> list[XWindow]:
    """Menus opened since `before` (window ids): new override-redirect windows on screen that are not dunst's
    pop-ups (GTK also maps a 10x10 helper window at -100,-100 while a menu is open: left out)."""
    return [window for window in desktop.windows() if window.id not in before and window.override_redirect
            and window.box.right > 0 and window.box.bottom > 0 and window.box.width > 1 and window.box.height > 1
            and "dunst" not in " ".join(window.wm_class).lower()]


def open_menu(desktop: DesktopSession, icon: Box) -> tuple[set[int], list[XWindow]]:
    """Right-click the icon and wait until its menu is on screen: (window ids from before, [menu window])."""
    before = {window.id for window in desktop.windows()}
    desktop.click(*icon.centre, button=3)
    menu = desktop.wait_for(lambda: popups(desktop, before), "menu after a right click on the icon")
    return before, menu


def wait_menus_closed(desktop: DesktopSession, before: set[int]) -> None:
    desktop.wait_for(lambda: not popups(desktop, before), "closing of the menu")


def wait_notify(recorder: NotifyRecorder, title: str, timeout: float = WAIT):
    """The first recorded Notify call with this title (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        match = next((call for call in recorder.calls if call.title == title), None)
        if match is not None:
            return match
        if time.monotonic() > deadline:
            raise AssertionError(f"no Notify titled {title!r} within {timeout:g} s; got "
                                 f"{[call.title for call in recorder.calls]!r}")
        time.sleep(0.1)


wait_until = partial(polling.wait_until, timeout=WAIT)


def save_screenshot(desktop: DesktopSession, box: Box, name: str) -> None:
    """Write docs/NAME when TRAY_ALERTS_SCREENSHOTS=1 (so an ordinary run never rewrites the README's images)."""
    if not SCREENSHOTS:
        return
    DOCS.mkdir(exist_ok=True)
    desktop.grab(box).save(DOCS / name, optimize=True)


def dunst_popups(desktop: DesktopSession) -> list[XWindow]:
    return [window for window in desktop.windows() if "dunst" in " ".join(window.wm_class).lower()]


# ---- the tests -----------------------------------------------------------------------------------------------

def test_alert_turns_icon_red_clear_from_menu_turns_it_green_and_quit_exits_0(desktop, recorder, app):
    app.start()
    app.wait_for_line("running in the tray")
    wait_for_icon_colour(desktop, CLEAR_COLOUR)  # all clear at start

    reply = app.api("POST", "/v1/alerts?wait=10", json={
        "event": EVENT, "level": "error", "message": "disk at 96% on /var",
        "context": {"host": "web-01", "mount": "/var", "used": "96%"}})
    assert reply["status"] == "fired" and reply["delivered"].get("desktop") is True, reply

    icon = wait_for_icon_colour(desktop, ERROR_COLOUR)
    fired = wait_notify(recorder, f"ERROR · {EVENT}")
    assert fired.body.splitlines()[0] == "disk at 96% on /var"
    panel = desktop.tray_box()
    if SCREENSHOTS:  # the picture shows dunst's pop-up too: it is drawn a moment after the Notify call
        wait_until(lambda: dunst_popups(desktop), "dunst's pop-up on screen")
    popup = [window.box for window in dunst_popups(desktop)]
    save_screenshot(desktop, panel.union(*popup).grow(16), "screenshot-icon.png")

    # right click -> Home (the alert: the header is insensitive and stepped over) -> Right (its submenu,
    # Clear selected as its only enabled item) -> End (Clear, the submenu's last item, whatever came before)
    before, menu = open_menu(desktop, icon)
    desktop.key("Home", "Right")
    shown = before | {window.id for window in menu}
    submenus = desktop.wait_for(lambda: popups(desktop, shown), "alert submenu after Home Right")
    desktop.key("End")
    time.sleep(0.2)  # the highlight is drawn on the next frame: only for the picture
    boxes = [window.box for window in (*menu, *submenus)]
    save_screenshot(desktop, panel.union(*boxes).grow(16), "screenshot-menu.png")
    desktop.key("Return")
    wait_menus_closed(desktop, before)

    resolved = wait_notify(recorder, f"RESOLVED · {EVENT}")
    assert resolved.body.splitlines()[0] == "cleared by hand"
    wait_until(lambda: app.api("GET", "/v1/alerts") == [], "GET /v1/alerts == []")
    icon = wait_for_icon_colour(desktop, CLEAR_COLOUR)
    assert app.process.poll() is None, app.describe()

    # Quit: the last item of the main menu
    before, _ = open_menu(desktop, icon)
    desktop.key("End", "Return")
    assert app.wait_exit() == 0, app.describe()
    wait_until(lambda: not desktop.tray_icons(), "the icon leaving the tray")
    assert_quiet(app)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_exits_0_within_2_s(desktop, app, signum):
    app.start()
    app.wait_for_line("running in the tray")
    wait_for_icon_colour(desktop, CLEAR_COLOUR)

    started = time.monotonic()
    app.process.send_signal(signum)
    assert app.wait_exit() == 0, app.describe()
    assert time.monotonic() - started < SIGNAL_EXIT_WITHIN, app.describe()
    assert_quiet(app)


@pytest.mark.parametrize("bus", [True, False], ids=["no-notification-server", "no-session-bus"])
def test_without_pop_ups_the_xembed_tray_shows_and_exits_0(tmp_path, bus):
    """pystray's gtk backend makes a notifier at start and closes notification 0 at exit: neither may fail."""
    require_tray_desktop()
    with DesktopSession(notifications=False, tray=True) as bare:
        app = TrayApp(bare, tmp_path, tray=None, channels="log", bus=bus)
        try:
            app.start()
            app.wait_for_line("running in the tray")
            wait_for_icon_colour(bare, CLEAR_COLOUR)
            assert "XEmbed" in app.stderr(), app.stderr()
            app.process.send_signal(signal.SIGTERM)
            assert app.wait_exit() == 0, app.describe()
            assert_quiet(app)
        finally:
            app.stop()
