"""The tray icon's backends: our StatusNotifierItem, or pystray (XEmbed, native) with its workarounds."""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import Any, Callable, Protocol

from . import desktop_env, icons
from .tray_view import IconLook, View, icon_image, icon_images
from .traymenu import Item

log = logging.getLogger(__name__)
PYSTRAY_RECHECK = 60.0  # the pystray menu cannot be rebuilt as it opens: its durations are checked once a minute

class TrayIcon(Protocol):
    """What the tray needs of a backend."""

    def show(self, view: View, before: View | None) -> None:
        """Show `view`; `before` is what is shown now (None: nothing pushed yet)."""

    def run(self, ready: Callable[[], None], quit: Callable[[], None]) -> None:
        """Show the icon and block the main thread until stop(); call `ready` once it is up; signals call `quit`."""

    def stop(self) -> None:
        """Make run() return (any thread; idempotent)."""

    def notify(self, message: str) -> bool:
        """A pop-up through the backend itself, if it has one."""


class SniIcon:
    """Our StatusNotifierItem (dbus-fast, no GTK); the main thread only waits for a stop."""

    recheck: float | None = None

    def __init__(self, on_about_to_show: Callable[[], None], on_activate: Callable[[], None] | None = None):
        from .sni import SniTray

        self.tray = SniTray("tray-alerts", "tray-alerts", on_about_to_show=on_about_to_show, on_activate=on_activate,
                            menu_icon=icons.menu_icon)
        self._stop = threading.Event()

    def show(self, view: View, before: View | None) -> None:
        self.tray.update(icon_images(view.look), view.title, view.lines, view.status, view.menu)

    def run(self, ready: Callable[[], None], quit: Callable[[], None]) -> None:
        """The first view is in place before the item is exported, so a host never reads an empty one."""
        from .session_bus import BusUnavailable

        _quit_on_signals(quit)
        try:
            ready()
            try:
                self.tray.start()
            except BusUnavailable as error:
                log.error("no tray icon (%s); the monitors, channels and push API run on", error)
            else:
                if not self.tray.registered:
                    log.info("waiting for a tray host: no StatusNotifierWatcher on the session bus yet (the icon"
                             " shows when a panel starts)")
            while not self._stop.wait():
                pass
        finally:
            self.tray.stop()

    def stop(self) -> None:
        self._stop.set()

    def notify(self, message: str) -> bool:
        return False


class PystrayIcon:
    """pystray's icon (gtk on Linux, native elsewhere) on the main thread.

    On gtk the GTK menu is built when it opens (after a fresh build of the view, as SNI's AboutToShow), not at
    every push: pystray would rebuild every widget of it each time. Elsewhere the durations are checked once a
    minute (`recheck`)."""

    def __init__(self, on_open: Callable[[], None] | None = None) -> None:
        if sys.platform.startswith("linux") and "pystray" not in sys.modules:
            os.environ.setdefault("PYSTRAY_BACKEND", "gtk")  # not appindicator: this is the XEmbed path
        import pystray

        _guard_pystray_notifier()
        self._pystray = pystray
        icon_class = _menu_on_open(pystray.Icon)
        self.recheck: float | None = None if icon_class is not pystray.Icon else PYSTRAY_RECHECK
        self.icon = icon_class("tray-alerts", icon=icon_image(IconLook(None, 0)), title="tray-alerts")
        self.icon.on_open = on_open

    def show(self, view: View, before: View | None) -> None:
        """Set only what differs from what the icon shows: picture, title, menu."""
        if before is None or view.look != before.look:
            self.icon.icon = icon_image(view.look)
        if before is None or view.tooltip != before.tooltip:
            self.icon.title = view.tooltip
        if before is None or view.shape != before.shape:
            self.icon.menu = self._pystray.Menu(*[_to_pystray(item) for item in view.menu])

    def run(self, ready: Callable[[], None], quit: Callable[[], None]) -> None:
        """Run pystray's main loop on this thread; `ready` once the icon is up; signals call `quit`."""
        _quit_on_signals(quit)  # until the main loop runs; then GLib's (below)

        def setup(icon: Any) -> None:
            icon.visible = True
            self._watch_signals(quit)
            try:
                ready()
            except Exception:
                log.exception("the tray could not start")
                quit()

        self.icon.run(setup=setup)

    def stop(self) -> None:
        self.icon.stop()

    def notify(self, message: str) -> bool:
        """A pop-up through pystray, where its backend has one; False where not."""
        if not self.icon.HAS_NOTIFICATION:
            return False
        self.icon.notify(message, "tray-alerts")
        return True

    @staticmethod
    def _watch_signals(quit: Callable[[], None]) -> None:
        """Ctrl-C and SIGTERM while GTK's main loop (C code) holds the main thread: pystray's gtk setup
        (_util/gtk.py GtkIcon._initialize, run before this setup callback) resets SIGINT to SIG_DFL, which would
        kill the process; GLib's handlers, added after that, run in the loop and quit cleanly."""
        if "gi.repository.GLib" not in sys.modules:
            return
        from gi.repository import GLib

        def on_signal() -> bool:
            threading.Thread(target=quit, name="tray-quit", daemon=True).start()
            return True

        for signum in (signal.SIGINT, signal.SIGTERM):
            GLib.unix_signal_add(GLib.PRIORITY_HIGH, signum, on_signal)


def _menu_on_open(base: Any) -> Any:
    """pystray's gtk Icon, building its GTK menu when the menu opens (once per change), else `base` itself.

    pystray 0.19 (_gtk.py) builds a whole Gtk.Menu at every update_menu() and pops up the last one built on a
    right click; here update_menu() only marks it stale, and the right click builds it from the newest menu."""
    if base.__module__ != "pystray._gtk" or not all(
            hasattr(base, name) for name in ("_create_menu", "_on_status_icon_popup_menu", "_update_menu")):
        return base

    class MenuOnOpenIcon(base):  # type: ignore[misc, valid-type]
        """pystray's icon, building its GTK menu only when it opens (pystray rebuilds every widget per update)."""
        on_open: Callable[[], None] | None = None
        _menu_stale = True
        _menu_handle = None

        def _update_menu(self) -> None:
            self._menu_stale = True

        def _on_status_icon_popup_menu(self, status_icon: Any, button: Any, activate_time: Any) -> None:
            if self.on_open is not None:
                self.on_open()  # a fresh view first (it sets self.menu; no main loop needed)
            if self._menu_stale:
                self._menu_stale = False
                self._menu_handle = self._create_menu(self.menu)
            super()._on_status_icon_popup_menu(status_icon, button, activate_time)

    return MenuOnOpenIcon


def _guard_pystray_notifier() -> None:
    """pystray's gtk backend makes a D-Bus notifier as it starts and closes notification 0 as it ends: with no
    session bus the first raises (the icon never shows), with no notification server the second (exit code 1,
    or a server started just for that). Our pop-ups go through the desktop channel; this one must not fail."""
    module = sys.modules.get("pystray._util.notify_dbus")
    if module is None or getattr(module.Notifier, "guarded", False):
        return
    original = module.Notifier

    class Notifier:
        """pystray's notifier, kept from raising when no notification server or bus is there."""
        guarded = True

        def __init__(self) -> None:
            try:
                self.real: Any = original()
            except Exception as error:
                log.debug("pystray's notifier is off: %s", error)
                self.real = None

        def notify(self, title: str, message: str, icon: str) -> None:
            if self.real is None:
                raise RuntimeError("no session D-Bus for pystray's pop-ups")
            self.real.notify(title, message, icon)

        def hide(self) -> None:
            if self.real is None or not getattr(self.real, "_nid", 1):
                return  # nothing was shown
            try:
                self.real.hide()
            except Exception as error:
                log.debug("pystray's pop-up could not be closed: %s", error)

    setattr(module, "Notifier", Notifier)


def _quit_on_signals(quit: Callable[[], None]) -> None:
    """SIGINT and SIGTERM call `quit` on a thread of its own (never inside the interrupted code's locks)."""
    def handler(*_: object) -> None:
        threading.Thread(target=quit, name="tray-quit", daemon=True).start()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handler)


def _to_pystray(item: Item) -> Any:
    """A traymenu Item as a pystray MenuItem (pystray imported on first use: never on the SNI path)."""
    import pystray

    if item.is_separator:
        return pystray.Menu.SEPARATOR
    if item.submenu:
        return pystray.MenuItem(item.text, pystray.Menu(*[_to_pystray(sub) for sub in item.submenu]),
                                enabled=item.enabled)
    action = item.action
    return pystray.MenuItem(item.text, (lambda: action()) if action else None, enabled=item.enabled and bool(action),
                            default=item.default)


def make_icon(backend: str, on_about_to_show: Callable[[], None]) -> TrayIcon:
    """The icon backend named by desktop_env."""
    if backend == desktop_env.SNI:
        return SniIcon(on_about_to_show)
    if backend in (desktop_env.XEMBED, desktop_env.NATIVE):
        return PystrayIcon(on_about_to_show)
    raise ValueError(f"no tray icon backend {backend!r}")
