"""A private headless desktop for tests: Xvfb, a session D-Bus, dunst, a tray host, and a recorder of Notify calls.

    with DesktopSession() as desktop:             # Xvfb + private bus + dunst, all killed by PID on exit
        desktop.apply(monkeypatch)                # os.environ now points at the private desktop
        with NotifyRecorder(desktop) as recorder:
            ...                                   # something calls org.freedesktop.Notifications.Notify
            [call] = recorder.wait_for(1)
            assert call.summary == "WARNING · disk_full"

`DesktopSession(dunstrc=TEXT)` gives dunst a config of its own (e.g. a `dmenu` command for its context menu);
`dunstctl(...)`, `displayed()` and `capabilities()` drive and question that dunst.

With `tray=True` the session also docks `trayer` (an XEmbed system tray) at the top right of the screen; then
`tray_icons()`, `tray_colour()`, `grab()`, `windows()`, `click()` and `key()` look at and drive what is on
screen (python-xlib, Pillow and xdotool; all imported or run only when used):

    with DesktopSession(tray=True) as desktop:
        ...                                       # start something that shows a tray icon
        [icon] = desktop.wait_for(desktop.tray_icons, "a tray icon")
        desktop.click(*icon.centre, button=3)
        assert close_to(desktop.tray_colour(), "#e03e2d")

Nothing here touches the user's own desktop: the bus is private (its config has no service directories, so
nothing is auto-activated behind our back), dunst gets an empty config file, and XDG_RUNTIME_DIR points at a
private temporary directory. Every wait is bounded and says what it waited for when it gives up.
"""
from __future__ import annotations

import atexit
import os
import re
import selectors
import shutil
import struct
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, TypeVar

T = TypeVar("T")

NOTIFICATIONS = "org.freedesktop.Notifications"
NOTIFICATIONS_PATH = "/org/freedesktop/Notifications"

# binary -> Debian/Ubuntu package providing it
TOOL_PACKAGES = {
    "Xvfb": "xvfb",
    "dbus-daemon": "dbus",
    "dbus-monitor": "dbus",
    "gdbus": "libglib2.0-bin",
    "dunst": "dunst",
    "notify-send": "libnotify-bin",
    "dunstctl": "dunst",
    "dbus-send": "dbus",
    # used by the tray tests
    "xdotool": "xdotool",
    "trayer": "trayer",
    "xwininfo": "x11-utils",
    "xprop": "x11-utils",
    "import": "imagemagick",
}
REQUIRED_TOOLS = ("Xvfb", "dbus-daemon", "dbus-monitor", "gdbus", "dunst", "notify-send")
# what DesktopSession(tray=True) and its screen helpers need on top of that
TRAY_TOOLS = ("trayer", "xdotool")
SCREEN_SIZE = (1280, 800)


def missing_tools(*tools: str) -> list[str]:
    """Which of `tools` (default: everything DesktopSession and NotifyRecorder need) are not on PATH."""
    return [tool for tool in (tools or REQUIRED_TOOLS) if shutil.which(tool) is None]


def install_hint(tools: list[str] | tuple[str, ...]) -> str:
    """`apt-get install ...` for the packages providing `tools`."""
    packages = dict.fromkeys(TOOL_PACKAGES.get(tool, tool) for tool in tools)
    return "apt-get install " + " ".join(packages)


def skip_unless_tools(*tools: str) -> None:
    """pytest.skip naming the missing binaries and the apt-get line that installs them."""
    import pytest

    missing = missing_tools(*tools)
    if missing:
        pytest.skip(f"needs {', '.join(missing)}: {install_hint(missing)}")


class DesktopError(RuntimeError):
    """A part of the headless desktop did not start; the message carries that part's log."""


_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <keep_umask/>
  <listen>unix:tmpdir={tmpdir}</listen>
  <auth>EXTERNAL</auth>
  {servicedirs}
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


class DesktopSession:
    """Xvfb on a free display, a private session bus, and (optionally) dunst serving notifications.

    display: start Xvfb (DISPLAY is only set when True).
    notifications: start dunst and wait until org.freedesktop.Notifications answers (needs display).
    auto_activation: give the bus the standard session service directories, so the bus itself may start
        services such as dunst on demand (untracked by us); off by default so a bus without dunst really
        has nobody serving notifications.
    tray: also start `trayer`, an XEmbed system tray TRAY_WIDTH x TRAY_HEIGHT px at the top right of the
        screen, and wait until it owns the tray selection (needs display).
    background: paint the root window this colour ("#rrggbb") — the desktop behind screenshots.
    dunstrc: the text of dunst's config file (default: empty, dunst's built-in defaults).
    """

    TRAY_WIDTH = 200
    TRAY_HEIGHT = 32
    TRAY_TINT = "0x1d2129"  # a dark panel (with no wallpaper pixmap, trayer's "transparent" is this tint)

    def __init__(self, display: bool = True, notifications: bool = True, auto_activation: bool = False,
                 timeout: float = 15.0, tray: bool = False, background: str | None = None, dunstrc: str = ""):
        if notifications and not display:
            raise ValueError("dunst needs a display")
        if (tray or background) and not display:
            raise ValueError("a tray and a background need a display")
        self.want_display = display
        self.want_notifications = notifications
        self.want_tray = tray
        self.background = background
        self.dunstrc = dunstrc
        self.auto_activation = auto_activation
        self.timeout = timeout
        self.display: str | None = None
        self.bus_address: str | None = None
        self.workdir: Path | None = None
        self.runtime_dir: Path | None = None
        self.processes: dict[str, subprocess.Popen] = {}
        self._logs: dict[str, Path] = {}

    # -- environment -------------------------------------------------------------------------------------
    @property
    def env(self) -> dict[str, str]:
        """The variables that point a program at this desktop."""
        env = {"DBUS_SESSION_BUS_ADDRESS": self.bus_address or "", "NO_AT_BRIDGE": "1",
               "XDG_RUNTIME_DIR": str(self.runtime_dir)}
        if self.display:
            env["DISPLAY"] = self.display
        return env

    def child_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """A full environment for a subprocess: `base` (default os.environ) pointed at this desktop."""
        env = dict(os.environ if base is None else base)
        for name in ("WAYLAND_DISPLAY", "DISPLAY", "XAUTHORITY", "DBUS_SESSION_BUS_ADDRESS"):
            env.pop(name, None)
        env.update(self.env)
        return env

    def apply(self, monkeypatch: Any) -> None:
        """Point this process's os.environ at the desktop for one test (undone by monkeypatch)."""
        for name in ("WAYLAND_DISPLAY", "DISPLAY", "XAUTHORITY"):
            monkeypatch.delenv(name, raising=False)
        for name, value in self.env.items():
            monkeypatch.setenv(name, value)

    # -- life cycle ----------------------------------------------------------------------------------------
    def __enter__(self) -> DesktopSession:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> DesktopSession:
        missing = missing_tools(*self._tools())
        if missing:
            raise DesktopError(f"missing {', '.join(missing)}: {install_hint(missing)}")
        self.workdir = Path(tempfile.mkdtemp(prefix="tray-alerts-desktop-"))
        self.runtime_dir = self.workdir / "runtime"
        self.runtime_dir.mkdir(mode=0o700)
        atexit.register(self.stop)
        try:
            if self.want_display:
                self._start_xvfb()
            self._start_bus()
            if self.want_notifications:
                self._start_dunst()
            if self.want_tray:
                self._start_trayer()
            if self.background:
                self.paint_background(self.background)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Kill what was started (by PID, newest first) and remove the temporary directory."""
        for name in reversed(list(self.processes)):
            stop_process(self.processes.pop(name))
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        atexit.unregister(self.stop)

    def log(self, name: str) -> str:
        """What a started program ("xvfb", "dbus", "dunst", "trayer") wrote to stdout/stderr so far."""
        path = self._logs.get(name)
        try:
            return path.read_text(errors="replace") if path else ""
        except OSError:
            return ""

    def _tools(self) -> list[str]:
        tools = ["dbus-daemon", "gdbus"]
        if self.want_display:
            tools.append("Xvfb")
        if self.want_notifications:
            tools.append("dunst")
        if self.want_tray:
            tools += TRAY_TOOLS
        return tools

    def _spawn(self, name: str, command: list[str], **kwargs: Any) -> subprocess.Popen:
        assert self.workdir is not None
        log_path = self.workdir / f"{name}.log"
        self._logs[name] = log_path
        with open(log_path, "wb") as log:
            kwargs.setdefault("stdout", log)
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stderr=log, start_new_session=True,
                                       **kwargs)
        self.processes[name] = process
        return process

    def _fail(self, name: str, what: str) -> DesktopError:
        process = self.processes.get(name)
        state = f" (exit code {process.returncode})" if process is not None and process.poll() is not None else ""
        return DesktopError(f"{what}{state}; {name} log:\n{self.log(name).strip() or '(empty)'}")

    def _start_xvfb(self) -> None:
        # -displayfd: Xvfb picks a free display number itself and writes it once it accepts connections,
        # so there is no race between choosing :N and another server taking it. -noreset: the server keeps
        # its state (e.g. the painted background) when its last client disconnects.
        read_end, write_end = os.pipe()
        try:
            process = self._spawn("xvfb", ["Xvfb", "-displayfd", str(write_end), "-nolisten", "tcp", "-noreset",
                                           "-screen", "0", "{}x{}x24".format(*SCREEN_SIZE)],
                                  pass_fds=(write_end,))
        finally:
            os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            text = _read_until(pipe, b"\n", self.timeout, process)
        if not text.strip().isdigit():
            raise self._fail("xvfb", f"Xvfb did not report a display within {self.timeout:g} s")
        self.display = f":{text.strip().decode()}"

    def _start_bus(self) -> None:
        assert self.workdir is not None
        config = self.workdir / "bus.conf"
        config.write_text(_BUS_CONFIG.format(
            tmpdir=self.workdir,
            servicedirs="<standard_session_servicedirs/>" if self.auto_activation else ""))
        # --nofork rather than --fork: the daemon stays our child, so stop() can wait for it by PID and no
        # zombie is left behind where PID 1 does not reap.
        process = self._spawn("dbus", ["dbus-daemon", "--nofork", f"--config-file={config}",
                                       "--print-address=1"], stdout=subprocess.PIPE, env=self._base_env())
        assert process.stdout is not None
        address = _read_until(process.stdout, b"\n", self.timeout, process).strip().decode()
        process.stdout.close()  # the daemon only ever prints the address
        if not address.startswith("unix:"):
            raise self._fail("dbus", f"dbus-daemon did not print its address within {self.timeout:g} s")
        self.bus_address = address

    def _start_dunst(self) -> None:
        assert self.workdir is not None
        dunstrc = self.workdir / "dunstrc"
        dunstrc.write_text(self.dunstrc)  # by default empty: defaults; never the user's ~/.config/dunst
        process = self._spawn("dunst", ["dunst", "-config", str(dunstrc)], env=self.child_env(self._base_env()))
        deadline = time.monotonic() + self.timeout
        while True:
            if process.poll() is not None:
                raise self._fail("dunst", "dunst exited before serving notifications")
            if self.server_information() is not None:
                return
            if time.monotonic() > deadline:
                raise self._fail("dunst", f"{NOTIFICATIONS} did not answer within {self.timeout:g} s")
            time.sleep(0.1)

    def _start_trayer(self) -> None:
        """trayer docked top right; ready once it owns _NET_SYSTEM_TRAY_S0 (what tray icons look for)."""
        process = self._spawn("trayer", [
            "trayer", "--edge", "top", "--align", "right", "--widthtype", "pixel", "--width", str(self.TRAY_WIDTH),
            "--height", str(self.TRAY_HEIGHT), "--transparent", "true", "--alpha", "0", "--tint", self.TRAY_TINT],
            env=self.child_env(self._base_env()))
        deadline = time.monotonic() + self.timeout
        while True:
            if process.poll() is not None:
                raise self._fail("trayer", "trayer exited before hosting a tray")
            if self.tray_owner() and self._tray_panel() is not None:
                return
            if time.monotonic() > deadline:
                raise self._fail("trayer", f"trayer did not own the system tray selection within {self.timeout:g} s")
            time.sleep(0.1)

    def _base_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["XDG_CONFIG_HOME"] = str(self.workdir / "config")
        return env

    # -- questions -----------------------------------------------------------------------------------------
    def gdbus(self, *args: str, timeout: float = 5.0) -> subprocess.CompletedProcess:
        """Run `gdbus ARGS` against this session bus."""
        return subprocess.run(["gdbus", *args], env=self.child_env(), capture_output=True, text=True,
                              timeout=timeout)

    def server_information(self) -> str | None:
        """GetServerInformation's answer as gdbus prints it, or None while nobody serves notifications."""
        try:
            done = self.gdbus("call", "--session", "--dest", NOTIFICATIONS, "--object-path", NOTIFICATIONS_PATH,
                              "--method", f"{NOTIFICATIONS}.GetServerInformation", "--timeout", "2")
        except subprocess.TimeoutExpired:
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    def capabilities(self) -> list[str]:
        """What the notification server lists in GetCapabilities (DesktopError when nobody answers)."""
        done = self.gdbus("call", "--session", "--dest", NOTIFICATIONS, "--object-path", NOTIFICATIONS_PATH,
                          "--method", f"{NOTIFICATIONS}.GetCapabilities", "--timeout", "2")
        if done.returncode != 0:
            raise DesktopError(f"GetCapabilities failed: {done.stderr.strip()}")
        return re.findall(r"'([^']*)'", done.stdout)

    def dunstctl(self, *args: str, timeout: float = 5.0) -> str:
        """Run `dunstctl ARGS` against this session's dunst; its output (DesktopError when it fails)."""
        done = subprocess.run(["dunstctl", *args], env=self.child_env(), capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode != 0:
            raise DesktopError(f"dunstctl {' '.join(args)} failed: {(done.stderr or done.stdout).strip()}")
        return done.stdout

    def displayed(self) -> int:
        """How many pop-ups dunst shows right now (`dunstctl count displayed`)."""
        return int(self.dunstctl("count", "displayed").strip())

    def name_has_owner(self, name: str) -> bool:
        done = self.gdbus("call", "--session", "--dest", "org.freedesktop.DBus", "--object-path",
                          "/org/freedesktop/DBus", "--method", "org.freedesktop.DBus.NameHasOwner", name)
        if done.returncode != 0:
            raise DesktopError(f"NameHasOwner failed: {done.stderr.strip()}")
        return "true" in done.stdout


    # -- the screen (python-xlib, Pillow, xdotool) --------------------------------------------------------

    def x_display(self) -> Any:
        """A new python-xlib connection to this display (close() it; see `_x()`)."""
        from Xlib import display as xdisplay

        if not self.display:
            raise DesktopError("the desktop session has no display")
        return xdisplay.Display(self.display)

    def tray_owner(self) -> int:
        """The window owning the XEmbed tray selection _NET_SYSTEM_TRAY_S0, 0 when there is no tray."""
        with _x(self) as connection:
            atom = connection.intern_atom(f"_NET_SYSTEM_TRAY_S{connection.get_default_screen()}")
            owner = connection.get_selection_owner(atom)
            return int(getattr(owner, "id", owner) or 0)

    def windows(self) -> list[XWindow]:
        """The top-level windows on screen (mapped and viewable), bottom to top."""
        from Xlib import X
        from Xlib.error import XError

        found = []
        with _x(self) as connection:
            root = connection.screen().root
            for window in root.query_tree().children:
                try:
                    attributes = window.get_attributes()
                    if attributes.map_state != X.IsViewable:
                        continue
                    found.append(_describe(connection, window, bool(attributes.override_redirect)))
                except XError:  # gone while we looked
                    continue
        return found

    def tray_box(self) -> Box:
        """Where the tray (trayer's panel) is on screen."""
        panel = self._tray_panel()
        if panel is None:
            raise DesktopError("no tray panel on screen (start the session with tray=True)")
        return panel

    def tray_icons(self) -> list[Box]:
        """Where each icon docked in the tray is on screen (the sockets trayer embeds icons in)."""
        from Xlib import X
        from Xlib.error import XError

        boxes = []
        with _x(self) as connection:
            panel = self._tray_panel_window(connection)
            if panel is None:
                return []
            for socket in panel.query_tree().children:
                try:
                    if socket.get_attributes().map_state != X.IsViewable:
                        continue
                    box = _box(connection, socket)
                except XError:
                    continue
                if box.width > 1 and box.height > 1:
                    boxes.append(box)
        return boxes

    def grab(self, box: Box | tuple[int, int, int, int] | None = None) -> Any:
        """A screenshot (PIL RGB image) of the whole screen or of `box` (left, top, right, bottom)."""
        from PIL import ImageGrab

        if not self.display:
            raise DesktopError("the desktop session has no display")
        image = ImageGrab.grab(xdisplay=self.display).convert("RGB")
        if box is not None:
            bounds = Box(*box) if not isinstance(box, Box) else box
            image = image.crop(bounds.clamp(image.width, image.height))
        return image

    def tray_colour(self, box: Box | tuple[int, int, int, int] | None = None) -> tuple[int, int, int] | None:
        """The most common saturated colour in the tray (or in `box`): the colour of a coloured icon."""
        return dominant_colour(self.grab(box if box is not None else self.tray_box()))

    def paint_background(self, colour: str) -> None:
        """Paint the root window (the desktop) one colour."""
        red, green, blue = parse_colour(colour)
        with _x(self) as connection:
            screen = connection.screen()
            pixel = screen.default_colormap.alloc_color(red * 257, green * 257, blue * 257).pixel
            screen.root.change_attributes(background_pixel=pixel)
            screen.root.clear_area(0, 0, 0, 0)
            connection.sync()

    def xdotool(self, *args: str, timeout: float = 10.0) -> str:
        """Run `xdotool ARGS` on this display; its stdout (DesktopError when it fails)."""
        done = subprocess.run(["xdotool", *args], env=self.child_env(), capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode != 0:
            raise DesktopError(f"xdotool {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def click(self, x: int, y: int, button: int = 1) -> None:
        """Move the pointer to (x, y) and click `button` (1 left, 3 right)."""
        # no --sync: it waits for a motion event, forever when the pointer is already there
        self.xdotool("mousemove", str(x), str(y), "click", str(button))

    def key(self, *keys: str, delay_ms: int = 60) -> None:
        """Type keys (X keysym names: Down, Right, End, Return, Escape) into whatever has the keyboard."""
        self.xdotool("key", "--delay", str(delay_ms), *keys)

    def wait_for(self, probe: Callable[[], T], what: str, timeout: float | None = None,
                 interval: float = 0.1) -> T:
        """Call `probe` until it returns something truthy (returned); DesktopError naming `what` after `timeout`."""
        deadline = time.monotonic() + (timeout or self.timeout)
        last: Any = None
        while True:
            last = probe()
            if last:
                return last
            if time.monotonic() > deadline:
                raise DesktopError(f"no {what} within {timeout or self.timeout:g} s (last seen: {last!r})")
            time.sleep(interval)

    def _tray_panel(self) -> Box | None:
        with _x(self) as connection:
            panel = self._tray_panel_window(connection)
            return _box(connection, panel) if panel is not None else None

    @staticmethod
    def _tray_panel_window(connection: Any) -> Any:
        """trayer's visible panel: the mapped top-level window of class ("panel", "trayer")."""
        from Xlib import X
        from Xlib.error import XError

        for window in connection.screen().root.query_tree().children:
            try:
                if window.get_wm_class() == ("panel", "trayer") and \
                        window.get_attributes().map_state == X.IsViewable:
                    return window
            except XError:
                continue
        return None


@dataclass(frozen=True)
class Box:
    """A rectangle on screen: left and top inclusive, right and bottom exclusive (PIL's crop box)."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def centre(self) -> tuple[int, int]:
        return (self.left + self.right) // 2, (self.top + self.bottom) // 2

    def grow(self, margin: int) -> Box:
        return Box(self.left - margin, self.top - margin, self.right + margin, self.bottom + margin)

    def union(self, *others: Box) -> Box:
        boxes = (self, *others)
        return Box(min(b.left for b in boxes), min(b.top for b in boxes), max(b.right for b in boxes),
                   max(b.bottom for b in boxes))

    def clamp(self, width: int, height: int) -> tuple[int, int, int, int]:
        return max(0, self.left), max(0, self.top), min(width, self.right), min(height, self.bottom)

    def __iter__(self) -> Iterator[int]:
        return iter((self.left, self.top, self.right, self.bottom))


@dataclass(frozen=True)
class XWindow:
    """A top-level window on screen."""

    id: int
    name: str
    wm_class: tuple[str, ...]
    box: Box
    override_redirect: bool
    pid: int | None


class _x:
    """`with _x(desktop) as connection:` — a python-xlib connection closed afterwards."""

    def __init__(self, desktop: DesktopSession):
        self.connection = desktop.x_display()

    def __enter__(self) -> Any:
        return self.connection

    def __exit__(self, *exc_info: object) -> None:
        self.connection.close()


def _box(connection: Any, window: Any) -> Box:
    geometry = window.get_geometry()
    origin = connection.screen().root.translate_coords(window, 0, 0)  # the window's (0, 0) on the screen
    left, top = origin.x, origin.y
    return Box(left, top, left + geometry.width, top + geometry.height)


def _describe(connection: Any, window: Any, override_redirect: bool) -> XWindow:
    from Xlib import Xatom

    name = window.get_wm_name() or ""
    if isinstance(name, bytes):
        name = name.decode(errors="replace")
    pid_property = window.get_full_property(connection.intern_atom("_NET_WM_PID"), Xatom.CARDINAL)
    pid = int(pid_property.value[0]) if pid_property is not None and len(pid_property.value) else None
    return XWindow(window.id, name, tuple(window.get_wm_class() or ()), _box(connection, window), override_redirect,
                   pid)


# -- colours ---------------------------------------------------------------------------------------------------

def parse_colour(colour: str) -> tuple[int, int, int]:
    """"#e03e2d" -> (224, 62, 45)."""
    text = colour.lstrip("#")
    if len(text) != 6:
        raise ValueError(f"not a #rrggbb colour: {colour!r}")
    return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)


def colour_distance(first: tuple[int, int, int] | str, second: tuple[int, int, int] | str) -> int:
    """The largest difference in any channel (0 = the same colour)."""
    a = parse_colour(first) if isinstance(first, str) else first
    b = parse_colour(second) if isinstance(second, str) else second
    return max(abs(x - y) for x, y in zip(a, b))


def close_to(colour: tuple[int, int, int] | str | None, expected: tuple[int, int, int] | str,
             tolerance: int = 12) -> bool:
    """`colour` is within `tolerance` of `expected` in every channel (None — no colour — is never close)."""
    return colour is not None and colour_distance(colour, expected) <= tolerance


def dominant_colour(image: Any, min_saturation: float = 0.35, min_value: int = 50,
                    min_pixels: int = 12) -> tuple[int, int, int] | None:
    """The most common saturated colour of an image, None when fewer than `min_pixels` pixels are saturated.

    Greys (a panel, white text and outlines, black) are left out, and so are the blends at the icon's
    anti-aliased edges, which each occur rarely: what remains is the fill of a coloured icon.
    """
    rgb = image.convert("RGB")
    counts: Counter = Counter()
    for count, (red, green, blue) in rgb.getcolors(maxcolors=rgb.width * rgb.height) or ():
        high, low = max(red, green, blue), min(red, green, blue)
        if high >= min_value and (high - low) / high >= min_saturation:
            counts[(red, green, blue)] += count
    if sum(counts.values()) < min_pixels:
        return None
    return counts.most_common(1)[0][0]


def stop_process(process: subprocess.Popen, grace: float = 5.0, close: bool = True) -> None:
    """SIGTERM this one process, SIGKILL it if it has not gone after `grace` seconds, reap it, close its pipes."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(grace)
    if not close:
        return
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def _read_until(stream: Any, end: bytes, timeout: float, process: subprocess.Popen) -> bytes:
    """Bytes from a pipe up to and including `end`, giving up after `timeout` or when `process` exits."""
    selector = selectors.DefaultSelector()
    selector.register(stream, selectors.EVENT_READ)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while end not in data:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if not selector.select(min(left, 0.2)):
                if process.poll() is not None:
                    break
                continue
            chunk = os.read(stream.fileno(), 4096)
            if not chunk:
                break
            data += chunk
    finally:
        selector.close()
    return data


# -- recording Notify calls ----------------------------------------------------------------------------------

@dataclass
class NotifyCall:
    """One org.freedesktop.Notifications.Notify call as seen on the bus."""

    app_name: str
    replaces_id: int
    app_icon: str
    summary: str
    body: str
    actions: list[str] = field(default_factory=list)
    hints: dict[str, Any] = field(default_factory=dict)
    expire_timeout: int = -1
    sender: str | None = None
    serial: int = 0
    returned_id: int | None = None  # the id the server answered with, once its reply has been seen

    @property
    def title(self) -> str:
        return self.summary

    @property
    def action_labels(self) -> dict[str, str]:
        """The actions offered, as action key -> label shown."""
        return dict(zip(self.actions[0::2], self.actions[1::2]))

    @property
    def desktop_entry(self) -> str | None:
        return self.hints.get("desktop-entry")

    @property
    def sound_name(self) -> str | None:
        return self.hints.get("sound-name")

    @property
    def category(self) -> str | None:
        return self.hints.get("category")

    @property
    def icon(self) -> str:
        """The icon as sent: app_icon, else the image-path hint (which libnotify may use instead)."""
        return self.app_icon or str(self.hints.get("image-path") or self.hints.get("image_path") or "")

    @property
    def urgency(self) -> int | None:
        """0 low, 1 normal, 2 critical, None when not given."""
        return self.hints.get("urgency")


@dataclass
class ActionInvoked:
    """An ActionInvoked signal: someone picked `action_key` on pop-up `notification_id`; `sender` sent it."""

    notification_id: int
    action_key: str
    sender: str | None = None


@dataclass
class NotificationClosed:
    """A NotificationClosed signal (reason 1 expired, 2 dismissed, 3 closed by CloseNotification, 4 other)."""

    notification_id: int
    reason: int
    sender: str | None = None


class NotifyRecorder:
    """Records Notify calls on a bus with `dbus-monitor --pcap` and parses them exactly (no text scraping).

    Also recorded: the id each Notify call got back (`NotifyCall.returned_id`), CloseNotification calls
    (`close_calls`, the ids) and the server's ActionInvoked / NotificationClosed signals (`signals`).

    start() returns once the monitor is known to be listening (a probe signal came back through it);
    sync() does the same later, so after `sync()` every call made before it has been recorded — that is
    how `wait_for(1)` followed by `sync()` can tell "exactly one" without sleeping.
    """

    PROBE_INTERFACE = "org.trayalerts.test.Probe"

    def __init__(self, desktop: DesktopSession, timeout: float = 10.0):
        self.desktop = desktop
        self.timeout = timeout
        self.calls: list[NotifyCall] = []
        self.close_calls: list[int] = []
        self.signals: list[ActionInvoked | NotificationClosed] = []
        self._probes: set[str] = set()
        self._condition = threading.Condition()
        self._process: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._stderr_file: Any = None

    def __enter__(self) -> NotifyRecorder:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> NotifyRecorder:
        if not self.desktop.bus_address:
            raise DesktopError("the desktop session has no bus yet")
        rules = [f"type='method_call',interface='{NOTIFICATIONS}',member='Notify'",
                 f"type='method_call',interface='{NOTIFICATIONS}',member='CloseNotification'",
                 f"type='method_return',sender='{NOTIFICATIONS}'",
                 f"type='signal',interface='{NOTIFICATIONS}'",
                 f"type='signal',interface='{self.PROBE_INTERFACE}'"]
        self._stderr_file = tempfile.TemporaryFile()
        self._process = subprocess.Popen(
            ["dbus-monitor", "--address", self.desktop.bus_address, "--pcap", *rules],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr_file, start_new_session=True)
        self._thread = threading.Thread(target=self._read, args=(self._process.stdout,), name="notify-recorder",
                                        daemon=True)
        self._thread.start()
        try:
            self.sync()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process, close=False)  # the reader thread sees end-of-file and ends
        if self._thread is not None:
            self._thread.join(5)
        if self._process is not None and self._process.stdout is not None:
            self._process.stdout.close()  # only after the reader is done with its descriptor
        if self._stderr_file is not None:
            self._stderr_file.close()
            self._stderr_file = None

    def sync(self, timeout: float | None = None) -> None:
        """Emit a probe signal until the monitor has recorded it (bounded)."""
        token = uuid.uuid4().hex
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            done = self.desktop.gdbus("emit", "--session", "--object-path", "/org/trayalerts/test",
                                      "--signal", f"{self.PROBE_INTERFACE}.Ready", f"'{token}'")
            if done.returncode != 0:
                raise DesktopError(f"gdbus emit failed: {done.stderr.strip()}")
            with self._condition:
                if self._condition.wait_for(lambda: token in self._probes or self._gone(), timeout=0.5):
                    if token in self._probes:
                        return
                    raise DesktopError(f"dbus-monitor stopped: {self._why()}")
            if time.monotonic() > deadline:
                raise DesktopError(f"dbus-monitor did not record a probe within {timeout or self.timeout:g} s")

    def wait_for(self, count: int, timeout: float | None = None) -> list[NotifyCall]:
        """The recorded calls once there are at least `count` (bounded; AssertionError listing what came)."""
        with self._condition:
            self._condition.wait_for(lambda: len(self.calls) >= count or self._gone(),
                                     timeout=timeout or self.timeout)
            calls = list(self.calls)
        if len(calls) < count:
            raise AssertionError(f"expected {count} Notify call(s) within {timeout or self.timeout:g} s, "
                                 f"got {len(calls)}: {calls!r}{self._why(prefix='; ')}")
        return calls

    def wait_until(self, probe: Callable[[NotifyRecorder], T], what: str, timeout: float | None = None) -> T:
        """What `probe(self)` returns once it is truthy, checked whenever something is recorded (bounded)."""
        with self._condition:
            found = self._condition.wait_for(lambda: probe(self) or self._gone(), timeout=timeout or self.timeout)
            value = probe(self)
        if not value:
            raise AssertionError(f"no {what} within {timeout or self.timeout:g} s (last: {found!r}); calls "
                                 f"{self.calls!r}, signals {self.signals!r}{self._why(prefix='; ')}")
        return value

    def returned_id(self, call: NotifyCall, timeout: float | None = None) -> int:
        """The id the server answered `call` with (waits for the reply)."""
        return self.wait_until(lambda _: call.returned_id, f"reply to {call.summary!r}", timeout)

    def _gone(self) -> bool:
        return self._error is not None or (self._thread is not None and not self._thread.is_alive())

    def _why(self, prefix: str = "") -> str:
        if self._error is not None:
            return f"{prefix}parse error {self._error!r}"
        stderr = b""
        if self._stderr_file is not None:
            self._stderr_file.seek(0)
            stderr = self._stderr_file.read()
        if stderr.strip():
            return f"{prefix}dbus-monitor: {stderr.decode(errors='replace').strip()}"
        return ""

    def _read(self, stream: Any) -> None:
        buffer = b""
        header_done = False
        try:
            while True:
                try:
                    chunk = os.read(stream.fileno(), 65536)
                except (OSError, ValueError):  # closed by stop()
                    break
                if not chunk:
                    break
                buffer += chunk
                if not header_done:
                    if len(buffer) < 24:
                        continue
                    magic = buffer[:4]
                    if magic not in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4"):
                        raise ValueError(f"not a pcap stream: {buffer[:24]!r}")
                    order = "<" if magic == b"\xd4\xc3\xb2\xa1" else ">"
                    buffer = buffer[24:]
                    header_done = True
                while len(buffer) >= 16:
                    _, _, included, _ = struct.unpack(order + "IIII", buffer[:16])
                    if len(buffer) < 16 + included:
                        break
                    self._record(buffer[16:16 + included])
                    buffer = buffer[16 + included:]
        except Exception as error:  # a message we could not parse: surfaced by wait_for / sync
            self._error = error
        finally:
            with self._condition:
                self._condition.notify_all()

    def _record(self, blob: bytes) -> None:
        message = parse_message(blob)
        with self._condition:
            if message.interface == self.PROBE_INTERFACE and message.body:
                self._probes.add(str(message.body[0]))
            elif message.kind == 1 and message.interface == NOTIFICATIONS and message.member == "Notify":
                app_name, replaces_id, app_icon, summary, body, actions, hints, expire = message.body
                self.calls.append(NotifyCall(app_name, replaces_id, app_icon, summary, body, list(actions),
                                             dict(hints), expire, message.sender, message.serial))
            elif message.kind == 1 and message.interface == NOTIFICATIONS and message.member == "CloseNotification":
                self.close_calls.append(message.body[0])
            elif message.kind == 2 and message.signature == "u":
                for call in self.calls:
                    if call.serial == message.reply_serial and call.sender == message.destination:
                        call.returned_id = message.body[0]
            elif message.kind == 4 and message.interface == NOTIFICATIONS:
                if message.member == "ActionInvoked" and message.signature == "us":
                    self.signals.append(ActionInvoked(message.body[0], message.body[1], message.sender))
                elif message.member == "NotificationClosed" and message.signature == "uu":
                    self.signals.append(NotificationClosed(message.body[0], message.body[1], message.sender))
            self._condition.notify_all()


# -- a small D-Bus wire-format reader (enough for the messages above, and any basic/container type) ----------

@dataclass
class Message:
    kind: int  # 1 method call, 2 return, 3 error, 4 signal
    serial: int
    path: str | None
    interface: str | None
    member: str | None
    sender: str | None
    signature: str
    body: list[Any]
    reply_serial: int | None = None
    destination: str | None = None


_HEADER_FIELDS = {1: "path", 2: "interface", 3: "member", 5: "reply_serial", 6: "destination", 7: "sender",
                  8: "signature"}
_FIXED = {"y": ("B", 1), "b": ("I", 4), "n": ("h", 2), "q": ("H", 2), "i": ("i", 4), "u": ("I", 4),
          "x": ("q", 8), "t": ("Q", 8), "d": ("d", 8), "h": ("I", 4)}


def parse_message(blob: bytes) -> Message:
    """Decode one marshalled D-Bus message."""
    order = {b"l": "<", b"B": ">"}[blob[:1]]
    kind = blob[1]
    body_length, serial = struct.unpack(order + "II", blob[4:12])
    reader = _Reader(blob, order)
    reader.pos = 12
    fields = dict(reader.read("a(yv)"))
    reader.align(8)
    body_start = reader.pos
    signature = fields.get(8, "")
    body_reader = _Reader(blob[body_start:body_start + body_length], order)
    body = [body_reader.read(sig) for sig in split_signature(signature)]
    named = {_HEADER_FIELDS[code]: value for code, value in fields.items() if code in _HEADER_FIELDS}
    return Message(kind, serial, named.get("path"), named.get("interface"), named.get("member"),
                   named.get("sender"), signature, body, named.get("reply_serial"), named.get("destination"))


def split_signature(signature: str) -> list[str]:
    """`susa{sv}` -> ['s', 'u', 's', 'a{sv}']."""
    types, index = [], 0
    while index < len(signature):
        end = _type_end(signature, index)
        types.append(signature[index:end])
        index = end
    return types


def _type_end(signature: str, index: int) -> int:
    char = signature[index]
    if char == "a":
        return _type_end(signature, index + 1)
    if char in "({":
        close = ")" if char == "(" else "}"
        index += 1
        while signature[index] != close:
            index = _type_end(signature, index)
        return index + 1
    return index + 1


def _alignment(sig: str) -> int:
    char = sig[0]
    if char in "({":
        return 8
    if char in "sa" or char == "o":
        return 4
    if char in "gvy":
        return 1
    return _FIXED[char][1]


class _Reader:
    def __init__(self, data: bytes, order: str):
        self.data = data
        self.order = order
        self.pos = 0

    def align(self, size: int) -> None:
        self.pos += (-self.pos) % size

    def read(self, sig: str) -> Any:
        char = sig[0]
        self.align(_alignment(sig))
        if char in _FIXED:
            code, size = _FIXED[char]
            (value,) = struct.unpack_from(self.order + code, self.data, self.pos)
            self.pos += size
            return bool(value) if char == "b" else value
        if char in "so":
            (length,) = struct.unpack_from(self.order + "I", self.data, self.pos)
            self.pos += 4
            text = self.data[self.pos:self.pos + length].decode("utf-8")
            self.pos += length + 1
            return text
        if char == "g":
            length = self.data[self.pos]
            text = self.data[self.pos + 1:self.pos + 1 + length].decode("ascii")
            self.pos += length + 2
            return text
        if char == "v":
            inner = self.read("g")
            return self.read(inner)
        if char == "a":
            (length,) = struct.unpack_from(self.order + "I", self.data, self.pos)
            self.pos += 4
            element = sig[1:]
            self.align(_alignment(element))
            end = self.pos + length
            items = []
            while self.pos < end:
                items.append(self.read(element))
            return dict(items) if element.startswith("{") else items
        if char in "({":
            inner = split_signature(sig[1:-1])
            values = tuple(self.read(part) for part in inner)
            return values
        raise ValueError(f"unsupported D-Bus type {sig!r}")
