"""Can a tray icon with a menu be shown here? Answers before pystray is imported (it fails with no display)."""
from __future__ import annotations

import os
import sys

GTK_HINT = ("install PyGObject for a menu: Debian/Ubuntu `sudo apt install python3-gi gir1.2-gtk-3.0` and a venv made"
            " with --system-site-packages, or `pip install 'PyGObject<3.51'` (needs libgirepository1.0-dev"
            " libcairo2-dev pkg-config)")


def tray_problem() -> str | None:
    """Why the tray cannot run here (no display, no tray host, no menu-capable backend), or None."""
    if sys.platform.startswith("linux"):
        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            return "no display (DISPLAY is not set)"
    try:
        import pystray
    except Exception as error:  # Xlib.error.DisplayNameError and friends, not only ImportError
        return f"the tray library cannot start here ({type(error).__name__}: {error})"
    backend = pystray.Icon.__module__.rsplit("._", 1)[-1]
    if not getattr(pystray.Icon, "HAS_MENU", True):
        return f"pystray's {backend} backend has no menu; {GTK_HINT}"
    if sys.platform.startswith("linux") and os.environ.get("DISPLAY") and not _has_tray_host():
        return "no system tray is running on this desktop (no XEmbed tray or StatusNotifier host)"
    return None


def _has_tray_host() -> bool:
    """An XEmbed system tray owns _NET_SYSTEM_TRAY_Sn, or a StatusNotifierWatcher is on the session bus."""
    try:
        from Xlib import X, display

        screen = display.Display()
        try:
            atom = screen.intern_atom(f"_NET_SYSTEM_TRAY_S{screen.get_default_screen()}")
            if screen.get_selection_owner(atom) != X.NONE:
                return True
        finally:
            screen.close()
    except Exception:
        pass
    try:
        from gi.repository import Gio, GLib

        bus = Gio.bus_get_sync(Gio.BusType.SESSION, None)
        reply = bus.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                              "NameHasOwner", GLib.Variant("(s)", ("org.kde.StatusNotifierWatcher",)), None,
                              Gio.DBusCallFlags.NONE, 1000, None)
        return bool(reply.unpack()[0])
    except Exception:
        return False
