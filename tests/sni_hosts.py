"""Real StatusNotifierItem hosts for tests: xfce4-panel (systray plugin) or lxqt-panel (statusnotifier plugin).

    with DesktopSession(notifications=False) as desktop, SniHost(desktop, "xfce") as host:
        ...                                        # something registers a StatusNotifierItem on desktop's bus
        host.wait_for_item("org.kde.StatusNotifierItem-")
        box = host.find_colour("#e03e2d")          # where the icon is drawn on the panel

Each panel gets its own configuration in a private XDG_CONFIG_HOME (a top panel holding only the SNI plugin),
HOME and caches in the desktop's temporary directory, and is killed by PID (with its process group, which
holds xfce4-panel's plugin wrapper) when stopped. `BusProbe` calls methods on the private bus with dbus-fast;
`SignalRecorder` records signals and RegisterStatusNotifierItem calls with `dbus-monitor --pcap`.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Coroutine, TypeVar

from desktop_session import (TOOL_PACKAGES, Box, DesktopError, DesktopSession, install_hint, parse_colour,
                             parse_message, stop_process)

T = TypeVar("T")

WATCHER = "org.kde.StatusNotifierWatcher"
WATCHER_PATH = "/StatusNotifierWatcher"
XFCONFD = "/usr/lib/x86_64-linux-gnu/xfce4/xfconf/xfconfd"
PANEL_HEIGHT = 32
# lxqt-panel hides an item with this Title unless it needs attention (its "auto-hide" visibility setting)
LXQT_AUTO_HIDE_TITLE = "tray-alerts-autohide"
TOOL_PACKAGES.setdefault("xfce4-panel", "xfce4-panel")
TOOL_PACKAGES.setdefault("lxqt-panel", "lxqt-panel")
TOOL_PACKAGES.setdefault(XFCONFD, "xfconf")
HOST_TOOLS = {"xfce": ("xfce4-panel", XFCONFD), "lxqt": ("lxqt-panel",)}
BASE_TOOLS = ("Xvfb", "dbus-daemon", "dbus-monitor", "gdbus")

XFCE_PANEL_XML = """<?xml version="1.0" encoding="UTF-8"?>
<channel name="xfce4-panel" version="1.0">
  <property name="configver" type="int" value="2"/>
  <property name="panels" type="array">
    <value type="int" value="1"/>
    <property name="panel-1" type="empty">
      <property name="position" type="string" value="p=6;x=0;y=0"/>
      <property name="length" type="uint" value="100"/>
      <property name="position-locked" type="bool" value="true"/>
      <property name="size" type="uint" value="{height}"/>
      <property name="plugin-ids" type="array">
        <value type="int" value="1"/>
      </property>
    </property>
  </property>
  <property name="plugins" type="empty">
    <property name="plugin-1" type="string" value="systray">
      <property name="icon-size" type="int" value="0"/>
    </property>
  </property>
</channel>
"""

LXQT_PANEL_CONF = """[General]
__userfile__=true

[panel1]
plugins=statusnotifier
position=Top
alignment=-1
desktop=0
panelSize={height}
iconSize=22
lineCount=1
width=100
width-percent=true

[statusnotifier]
alignment=Right
type=statusnotifier
autoHideList={auto_hide}
attentionPeriod=5
"""


def missing_host_tools(kind: str) -> list[str]:
    """What the `kind` host ("xfce" or "lxqt") needs that is not installed."""
    return [tool for tool in (*BASE_TOOLS, *HOST_TOOLS[kind])
            if (shutil.which(tool) if not tool.startswith("/") else (tool if os.access(tool, os.X_OK) else None))
            is None]


def skip_unless_host(kind: str) -> None:
    """pytest.skip naming what is missing and the apt-get line that installs it."""
    import pytest

    missing = missing_host_tools(kind)
    if missing:
        pytest.skip(f"the {kind} SNI host needs {', '.join(missing)}: {install_hint(missing)}")
    try:
        import dbus_fast  # noqa: F401
    except ImportError:
        pytest.skip("needs dbus-fast: pip install dbus-fast")


class SniHost:
    """One panel serving org.kde.StatusNotifierWatcher and drawing the items on `desktop`'s display."""

    def __init__(self, desktop: DesktopSession, kind: str, timeout: float = 15.0):
        if kind not in HOST_TOOLS:
            raise ValueError(f"unknown SNI host {kind!r}: one of {', '.join(HOST_TOOLS)}")
        self.desktop = desktop
        self.kind = kind
        self.timeout = timeout
        self.home: Path | None = None
        self.processes: dict[str, subprocess.Popen] = {}
        self._logs: dict[str, Path] = {}

    def __enter__(self) -> SniHost:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- life cycle -----------------------------------------------------------------------------------------
    def start(self) -> SniHost:
        """Start the panel and return once it owns the watcher name (DesktopError with its log if it does not)."""
        if not self.desktop.bus_address or not self.desktop.display:
            raise DesktopError("an SNI host needs a desktop session with a display and a bus")
        if self.home is None:
            self.home = Path(tempfile.mkdtemp(prefix=f"sni-{self.kind}-", dir=self.desktop.workdir))
            self._write_config()
        try:
            if self.kind == "xfce":
                self._start_xfce()
            else:
                self._spawn("lxqt-panel", ["lxqt-panel"])
            self.desktop.wait_for(lambda: self._alive_or_fail() and self.desktop.name_has_owner(WATCHER),
                                  f"{WATCHER} owned by {self.kind}'s panel", timeout=self.timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Kill the panel (and what it started in its process group) and any helper, newest first."""
        for name in reversed(list(self.processes)):
            process = self.processes.pop(name)
            stop_process(process)
            _kill_group(process.pid)

    def restart(self) -> None:
        """Stop the panel and start it again with the same configuration (the watcher goes and comes back)."""
        self.stop()
        self.desktop.wait_for(lambda: not self.desktop.name_has_owner(WATCHER), f"{WATCHER} to be released")
        self.start()

    def log(self) -> str:
        """What the host's programs wrote so far."""
        parts = []
        for name, path in self._logs.items():
            try:
                parts.append(f"--- {name}\n{path.read_text(errors='replace').strip()}")
            except OSError:
                continue
        return "\n".join(parts)

    def env(self) -> dict[str, str]:
        assert self.home is not None
        env = self.desktop.child_env()
        env.update({"HOME": str(self.home), "XDG_CONFIG_HOME": str(self.home / "config"),
                    "XDG_CACHE_HOME": str(self.home / "cache"), "XDG_DATA_HOME": str(self.home / "data"),
                    "GDK_BACKEND": "x11", "QT_QPA_PLATFORM": "xcb", "GTK_A11Y": "none"})
        return env

    def _write_config(self) -> None:
        assert self.home is not None
        config = self.home / "config"
        if self.kind == "xfce":
            channel = config / "xfce4" / "xfconf" / "xfce-perchannel-xml"
            channel.mkdir(parents=True)
            (channel / "xfce4-panel.xml").write_text(XFCE_PANEL_XML.format(height=PANEL_HEIGHT))
        else:
            (config / "lxqt").mkdir(parents=True)
            (config / "lxqt" / "panel.conf").write_text(LXQT_PANEL_CONF.format(height=PANEL_HEIGHT,
                                                                                auto_hide=LXQT_AUTO_HIDE_TITLE))

    def _start_xfce(self) -> None:
        # xfce4-panel reads its configuration through xfconfd, which our private bus cannot auto-start: start
        # it first and wait for its name, or the panel comes up with defaults (or asks which ones it should use).
        if "xfconfd" not in self.processes or self.processes["xfconfd"].poll() is not None:
            self._spawn("xfconfd", [XFCONFD])
            self.desktop.wait_for(lambda: self._alive_or_fail() and self.desktop.name_has_owner("org.xfce.Xfconf"),
                                  "org.xfce.Xfconf owned by xfconfd", timeout=self.timeout)
        self._spawn("xfce4-panel", ["xfce4-panel", "--disable-wm-check", "--sm-client-disable"])

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen:
        assert self.home is not None
        log_path = self.home / f"{name}.log"
        self._logs[name] = log_path
        with open(log_path, "ab") as log:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=self.env(),
                                       start_new_session=True)
        self.processes[name] = process
        return process

    def _alive_or_fail(self) -> bool:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise DesktopError(f"{name} exited with code {process.returncode}; log:\n{self.log()}")
        return True

    # -- questions ------------------------------------------------------------------------------------------
    def registered_items(self, probe: BusProbe) -> list[str]:
        """The watcher's RegisteredStatusNotifierItems (`bus.name/object/path` each)."""
        return list(probe.get_property(WATCHER, WATCHER_PATH, WATCHER, "RegisteredStatusNotifierItems"))

    def panel_box(self) -> Box:
        """Where the panel window is on screen."""
        wanted = {"xfce": "xfce4-panel", "lxqt": "lxqt-panel"}[self.kind]
        for window in self.desktop.windows():
            if wanted in window.wm_class and window.box.height <= PANEL_HEIGHT * 2:
                return window.box
        raise DesktopError(f"no {wanted} window on screen: {self.desktop.windows()!r}")

    def find_colour(self, colour: str, tolerance: int = 16, min_pixels: int = 20) -> Box | None:
        """The bounding box of the pixels on the panel within `tolerance` of `colour` (None when too few)."""
        panel = self.panel_box()
        image = self.desktop.grab(panel)
        return colour_box(image, colour, tolerance, min_pixels, origin=(panel.left, panel.top))


def colour_box(image: Any, colour: str, tolerance: int = 16, min_pixels: int = 20,
               origin: tuple[int, int] = (0, 0)) -> Box | None:
    """The bounding box (in screen coordinates, `origin` being the image's top left) of pixels near `colour`.

    None when fewer than `min_pixels` pixels are within `tolerance` of it in every channel."""
    from PIL import Image, ImageChops

    rgb = image.convert("RGB")
    difference = ImageChops.difference(rgb, Image.new("RGB", rgb.size, parse_colour(colour)))
    red, green, blue = difference.split()
    mask = ImageChops.lighter(ImageChops.lighter(red, green), blue).point(lambda value: 255 if value <= tolerance
                                                                          else 0)
    if mask.histogram()[255] < min_pixels:
        return None
    left, top, right, bottom = mask.getbbox() or (0, 0, 0, 0)
    return Box(origin[0] + left, origin[1] + top, origin[0] + right, origin[1] + bottom)


def _kill_group(pgid: int) -> None:
    """SIGKILL what is left of the process group a panel was started in (its own session: only its helpers)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# -- calling the bus from a test -----------------------------------------------------------------------------

class BusProbe:
    """A dbus-fast connection to the desktop's bus on a loop thread of its own, for the test to act as a host."""

    def __init__(self, desktop: DesktopSession, timeout: float = 10.0):
        self.desktop = desktop
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="bus-probe", daemon=True)
        self._bus: Any = None

    def __enter__(self) -> BusProbe:
        self._thread.start()
        self._bus = self._run(self._connect())
        return self

    async def _connect(self) -> Any:
        from dbus_fast.aio import MessageBus

        return await MessageBus(bus_address=self.desktop.bus_address).connect()

    def __exit__(self, *exc_info: object) -> None:
        if self._bus is not None:
            self._bus.disconnect()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(self.timeout)

    def call(self, destination: str, path: str, interface: str, member: str, signature: str = "",
             body: list[Any] | None = None) -> list[Any]:
        """A method call's reply body; DesktopError carrying the D-Bus error when it fails."""
        from dbus_fast import Message, MessageType

        message = Message(destination=destination, path=path, interface=interface, member=member,
                          signature=signature, body=body or [])
        reply = self._run(self._bus.call(message))
        if reply.message_type == MessageType.ERROR:
            raise DesktopError(f"{interface}.{member} on {destination}: {reply.error_name}: {reply.body}")
        return list(reply.body)

    def get_property(self, destination: str, path: str, interface: str, name: str) -> Any:
        """A property's value (unwrapped from its variant)."""
        [value] = self.call(destination, path, "org.freedesktop.DBus.Properties", "Get", "ss", [interface, name])
        return value.value

    def get_all(self, destination: str, path: str, interface: str) -> dict[str, Any]:
        [values] = self.call(destination, path, "org.freedesktop.DBus.Properties", "GetAll", "s", [interface])
        return {name: value.value for name, value in values.items()}


# -- recording signals ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Recorded:
    """One message dbus-monitor saw."""

    at: float
    kind: int  # 1 method call, 4 signal
    sender: str | None
    interface: str | None
    member: str | None
    path: str | None
    body: list[Any]


class SignalRecorder:
    """Records SNI and dbusmenu signals, and dbusmenu, property and registration calls (dbus-monitor --pcap).

    `sync(send)` proves everything sent before it was recorded: `send(token)` must emit a probe signal
    `PROBE_INTERFACE.Ready(token)` from the same connection as the messages of interest (messages from one
    connection reach the monitor in order), and sync() returns once that probe has come through.
    """

    PROBE_INTERFACE = "org.trayalerts.test.Probe"
    RULES = ("type='signal',interface='org.kde.StatusNotifierItem'",
             "type='signal',interface='org.freedesktop.StatusNotifierItem'",
             "type='signal',interface='com.canonical.dbusmenu'",
             "type='method_call',interface='com.canonical.dbusmenu'",
             "type='method_call',member='RegisterStatusNotifierItem'",
             "type='method_call',interface='org.freedesktop.DBus.Properties'",
             f"type='signal',interface='{PROBE_INTERFACE}'")

    def __init__(self, desktop: DesktopSession, timeout: float = 10.0):
        self.desktop = desktop
        self.timeout = timeout
        self.messages: list[Recorded] = []
        self._probes: set[str] = set()
        self._condition = threading.Condition()
        self._process: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def __enter__(self) -> SignalRecorder:
        self._process = subprocess.Popen(
            ["dbus-monitor", "--address", str(self.desktop.bus_address), "--pcap", *self.RULES],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        self._thread = threading.Thread(target=self._read, name="signal-recorder", daemon=True)
        self._thread.start()
        try:
            self.sync(self._gdbus_probe)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None:
            stop_process(self._process, close=False)
        if self._thread is not None:
            self._thread.join(5)
        if self._process is not None and self._process.stdout is not None:
            self._process.stdout.close()

    def members(self, since: float = 0.0) -> list[str]:
        """`Interface.Member` of what was recorded at or after `since` (time.monotonic()), probes left out."""
        with self._condition:
            return [f"{message.interface}.{message.member}" for message in self.messages if message.at >= since]

    def since(self, moment: float) -> list[Recorded]:
        with self._condition:
            return [message for message in self.messages if message.at >= moment]

    def wait_for(self, member: str, since: float = 0.0, timeout: float | None = None) -> Recorded:
        """The first recorded `Interface.Member` at or after `since` (AssertionError listing what came)."""
        def found() -> Recorded | None:
            return next((message for message in self.messages if message.at >= since
                         and f"{message.interface}.{message.member}" == member), None)

        with self._condition:
            self._condition.wait_for(lambda: found() is not None or self._gone(), timeout=timeout or self.timeout)
            message = found()
        if message is None:
            raise AssertionError(f"no {member} within {timeout or self.timeout:g} s; recorded: {self.members(since)}")
        return message

    def sync(self, send: Callable[[str], None], timeout: float | None = None) -> None:
        """Send probes with `send(token)` until one is recorded (bounded)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            token = uuid.uuid4().hex
            send(token)
            with self._condition:
                if self._condition.wait_for(lambda: token in self._probes or self._gone(), timeout=0.5):
                    if token in self._probes:
                        return
                    raise DesktopError(f"dbus-monitor stopped ({self._error!r})")
            if time.monotonic() > deadline:
                raise DesktopError(f"dbus-monitor did not record a probe within {timeout or self.timeout:g} s")

    def _gdbus_probe(self, token: str) -> None:
        done = self.desktop.gdbus("emit", "--session", "--object-path", "/org/trayalerts/test",
                                  "--signal", f"{self.PROBE_INTERFACE}.Ready", f"'{token}'")
        if done.returncode != 0:
            raise DesktopError(f"gdbus emit failed: {done.stderr.strip()}")

    def _gone(self) -> bool:
        return self._error is not None or (self._thread is not None and not self._thread.is_alive())

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        stream = self._process.stdout
        buffer = b""
        order = "<"
        header_done = False
        try:
            while True:
                try:
                    chunk = os.read(stream.fileno(), 65536)
                except (OSError, ValueError):
                    break
                if not chunk:
                    break
                buffer += chunk
                if not header_done:
                    if len(buffer) < 24:
                        continue
                    order = "<" if buffer[:4] == b"\xd4\xc3\xb2\xa1" else ">"
                    buffer, header_done = buffer[24:], True
                while len(buffer) >= 16:
                    _, _, included, _ = struct.unpack(order + "IIII", buffer[:16])
                    if len(buffer) < 16 + included:
                        break
                    self._record(buffer[16:16 + included])
                    buffer = buffer[16 + included:]
        except Exception as error:  # surfaced by sync / wait_for
            self._error = error
        finally:
            with self._condition:
                self._condition.notify_all()

    def _record(self, blob: bytes) -> None:
        message = parse_message(blob)
        with self._condition:
            if message.interface == self.PROBE_INTERFACE:
                if message.body:
                    self._probes.add(str(message.body[0]))
            elif message.kind in (1, 4):
                self.messages.append(Recorded(time.monotonic(), message.kind, message.sender, message.interface,
                                              message.member, message.path, message.body))
            self._condition.notify_all()
