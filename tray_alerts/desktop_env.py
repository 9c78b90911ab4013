"""Which tray icon to show here, decided before any toolkit is imported (pystray fails with no display).

| what is here                                        | backend  | why                                        |
|-----------------------------------------------------|----------|--------------------------------------------|
| Windows or macOS                                    | native   | pystray's win32 / darwin backend           |
| Linux: a StatusNotifierWatcher on the session bus   | sni      | our own item: no GTK, stable menu ids (1)  |
| Linux: an XEmbed tray (_NET_SYSTEM_TRAY_Sn), no SNI | xembed   | pystray's gtk backend (GtkStatusIcon) (2)  |
| Linux: neither yet, but a session bus               | sni      | started before the panel: waits for it (3) |
| Linux: no display; or no bus and no XEmbed tray     | headless | nothing could ever show an icon            |

(1) sni.SniTray over dbus-fast: about 90 MiB less than GTK, an open menu stays open while its rows change,
    Status NeedsAttention. xfce4-panel hosts both kinds; SNI wins there.
(2) an XEmbed-only host (trayer, stalonetray) never shows an SNI item.
(3) login autostart often starts us before the panel: the item registers when a watcher appears.

TRAY_ALERTS_TRAY=sni|xembed|auto (default auto) forces a backend where it can run; PYSTRAY_BACKEND still picks
pystray's own backend on the xembed and native paths (the xembed path sets gtk when it is unset).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Mapping

SNI, XEMBED, NATIVE, HEADLESS = "sni", "xembed", "native", "headless"
WANTED_VARIABLE = "TRAY_ALERTS_TRAY"
WATCHERS = ("org.kde.StatusNotifierWatcher", "org.freedesktop.StatusNotifierWatcher")
PROBE_TIMEOUT = 2.0
GTK_HINT = ("install PyGObject for a menu: Debian/Ubuntu `sudo apt install python3-gi gir1.2-gtk-3.0` and a venv made"
            " with --system-site-packages, or `pip install 'PyGObject<3.51'` (needs libgirepository1.0-dev"
            " libcairo2-dev pkg-config)")


@dataclass(frozen=True)
class Choice:
    """The backend to run and why (the why is the headless reason when backend is HEADLESS)."""

    backend: str
    why: str
    waits: bool = False  # an SNI item with no watcher yet: it shows once a tray host starts


@dataclass(frozen=True)
class Desktop:
    """What a probe found here."""

    platform: str
    has_display: bool
    has_x: bool
    has_bus: bool
    has_watcher: bool
    has_xembed: bool


def choose_backend(platform: str, has_watcher: bool, has_xembed: bool, has_bus: bool, has_display: bool = True,
                   wanted: str = "auto", has_x: bool | None = None) -> Choice:
    """The module docstring's table as a pure function; `wanted` is TRAY_ALERTS_TRAY."""
    if platform in ("win32", "darwin"):
        return Choice(NATIVE, f"pystray's native backend on {platform}")
    has_x = has_display if has_x is None else has_x
    if not has_display:
        return Choice(HEADLESS, "no display (DISPLAY is not set)")
    wanted = (wanted or "auto").strip().lower()
    if wanted == SNI:
        return (Choice(SNI, f"{WANTED_VARIABLE}=sni", waits=not has_watcher)
                if has_bus else Choice(HEADLESS, f"{WANTED_VARIABLE}=sni but no session D-Bus is reachable"))
    if wanted == XEMBED:
        return (Choice(XEMBED, f"{WANTED_VARIABLE}=xembed") if has_x
                else Choice(HEADLESS, f"{WANTED_VARIABLE}=xembed but there is no X display (DISPLAY is not set)"))
    note = "" if wanted == "auto" else f" ({WANTED_VARIABLE}={wanted!r} is not sni, xembed or auto: ignored)"
    if has_watcher:
        return Choice(SNI, f"a StatusNotifierWatcher is on the session bus{note}")
    if has_xembed and has_x:
        return Choice(XEMBED, f"only an XEmbed system tray is running, no StatusNotifierWatcher{note}")
    if has_bus:
        return Choice(SNI, f"no tray host yet, but a session D-Bus{note}", waits=True)
    return Choice(HEADLESS, "no system tray is running and no session D-Bus is reachable (no XEmbed tray, no"
                            f" StatusNotifier host){note}")


def probe(environ: Mapping[str, str] | None = None, platform: str | None = None) -> Desktop:
    """Look at this desktop: display, session bus, watcher, XEmbed tray (the latter only when it can matter)."""
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if platform in ("win32", "darwin"):
        return Desktop(platform, True, False, False, False, False)
    has_x = bool(environ.get("DISPLAY"))
    has_display = has_x or bool(environ.get("WAYLAND_DISPLAY"))
    if not has_display:
        return Desktop(platform, False, False, False, False, False)
    has_bus, has_watcher = _bus_probe()
    has_xembed = has_x and not has_watcher and _has_xembed_tray()
    return Desktop(platform, has_display, has_x, has_bus, has_watcher, has_xembed)


_last: Choice | None = None


def detect(environ: Mapping[str, str] | None = None, platform: str | None = None) -> Choice:
    """Probe and choose (remembered for `chosen`)."""
    global _last
    environ = os.environ if environ is None else environ
    found = probe(environ, platform)
    _last = choose_backend(found.platform, found.has_watcher, found.has_xembed, found.has_bus, found.has_display,
                           environ.get(WANTED_VARIABLE, "auto"), found.has_x)
    return _last


def chosen() -> Choice:
    """The choice `tray_problem` (or an earlier `detect`) made, else a new one."""
    return _last if _last is not None else detect()


def tray_problem() -> str | None:
    """Why the tray cannot run here (then the app runs headless), or None; also remembers the choice."""
    choice = detect()
    if choice.backend == HEADLESS:
        return choice.why
    if choice.backend == SNI:
        return None
    return pystray_problem()


def pystray_problem() -> str | None:
    """Why pystray cannot give an icon with a menu here, or None (imports pystray: GTK on Linux)."""
    if sys.platform.startswith("linux"):
        os.environ.setdefault("PYSTRAY_BACKEND", "gtk")
    try:
        import pystray
    except Exception as error:  # Xlib.error.DisplayNameError and friends, not only ImportError
        return f"the tray library cannot start here ({type(error).__name__}: {error}); {GTK_HINT}"
    backend = pystray.Icon.__module__.rsplit("._", 1)[-1]
    if not getattr(pystray.Icon, "HAS_MENU", True):
        return f"pystray's {backend} backend has no menu; {GTK_HINT}"
    return None


def _bus_probe(timeout: float = PROBE_TIMEOUT) -> tuple[bool, bool]:
    """(a session bus answers, a StatusNotifierWatcher is on it)."""
    from . import session_bus

    async def ask() -> bool:
        from dbus_fast import Message, MessageType

        bus = await session_bus.connect()
        try:
            for watcher in WATCHERS:
                reply = await bus.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                                               interface="org.freedesktop.DBus", member="NameHasOwner",
                                               signature="s", body=[watcher]))
                if reply is not None and reply.message_type == MessageType.METHOD_RETURN and reply.body[0]:
                    return True
            return False
        finally:
            bus.disconnect()

    try:
        return True, session_bus.run(ask(), timeout)
    except session_bus.BusTimeout:  # a slow bus at login is still a bus: the item waits for its host
        return True, False
    except Exception:  # no bus, or one that answers oddly: as good as none for an icon
        return False, False


def _has_xembed_tray() -> bool:
    """An XEmbed system tray owns _NET_SYSTEM_TRAY_Sn on the default screen."""
    try:
        from Xlib import X, display

        screen = display.Display()
    except Exception:
        return False
    try:
        atom = screen.intern_atom(f"_NET_SYSTEM_TRAY_S{screen.get_default_screen()}")
        return bool(screen.get_selection_owner(atom) != X.NONE)
    except Exception:
        return False
    finally:
        screen.close()
