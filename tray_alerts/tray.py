"""The tray icon and its menu (the only module that imports pystray); everything it shows comes from traymenu."""
from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pystray

from .app import App
from .config import ConfigError, Settings, load_settings
from .icons import draw_icon
from .model import Alert, Level
from .paths import PACKAGED_SETTINGS, user_config_file
from .traymenu import Actions, Item, TrayState, menu, tooltip

log = logging.getLogger(__name__)
REFRESH_SECONDS = 30.0  # "since 14:30 · 12 min" keeps counting
ICON_SIZE = 64


class Tray:
    """Runs pystray's icon on the main thread; the app (engine, monitors, outbox, push API) runs behind it."""

    def __init__(self, settings: Settings, config_path: str | None = None):
        self.settings = settings
        self.config_path = config_path
        self.app = App(settings, on_change=self.refresh)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._unsubscribe = self.app.engine.subscribe(self.refresh)
        self.icon = pystray.Icon("tray-alerts", icon=draw_icon(None, 0, ICON_SIZE), title="tray-alerts",
                                 menu=pystray.Menu(self._menu_items))

    # ---- what is shown -----------------------------------------------------------------------------------

    def state(self) -> TrayState:
        """A snapshot of the app for the menu, the tooltip and the icon."""
        engine = self.app.engine
        return TrayState(engine.active_events(), self.app.runner.statuses(), engine.history(limit=10),
                         engine.snoozed_until, mutes=engine.mutes())

    def actions(self) -> Actions:
        return Actions(clear=self.clear, clear_all=self.clear_all, snooze=self.snooze, check_now=self.check_now,
                       open_settings=self.open_settings, open_log=self.open_log, reload=self.reload, quit=self.quit,
                       mute=self.mute)

    def _menu_items(self):
        return [_to_pystray(item) for item in menu(self.state(), self.actions())]

    def refresh(self, *_: object) -> None:
        """Redraw icon, tooltip and menu (safe from any thread)."""
        if self._stopping.is_set():
            return
        state = self.state()
        self.icon.icon = draw_icon(state.worst, len(state.active), ICON_SIZE, snoozed=state.snoozed_until is not None)
        self.icon.title = tooltip(state)
        self.icon.update_menu()

    # ---- what the menu does ------------------------------------------------------------------------------

    def clear(self, event: str) -> None:
        self._in_background(self.app.engine.clear_alert, event, "cleared by hand")

    def clear_all(self) -> None:
        def clear_every() -> None:
            for record in self.app.engine.active_events():
                self.app.engine.clear_alert(record.event, "cleared by hand")
        self._in_background(clear_every)

    def snooze(self, until: float | None) -> None:
        self.app.engine.snooze(until, keep=self.app.quiet_channels)

    def mute(self, event: str, until: float | None) -> None:
        self.app.engine.mute(event, until)

    def check_now(self) -> None:
        self.app.runner.check_now()

    def open_settings(self) -> None:
        path = Path(self.config_path) if self.config_path else (self.settings.user_file or user_config_file())
        if not path.exists():
            write_starter_settings(path)
        open_path(path)

    def open_log(self) -> None:
        open_path(self.settings.log_file)

    def reload(self) -> None:
        """Read the settings again; a bad file keeps the running settings and says why in a pop-up."""
        try:
            settings = load_settings(self.config_path)
        except ConfigError as error:
            log.error("settings not reloaded: %s", error)
            self.tell(f"Settings not reloaded — still running the previous ones. {error}")
            return
        with self._lock:
            self._unsubscribe()
            self.app.stop(keep_lock=True)  # the state folder stays this app's across the reload
            self.settings, self.app = settings, App(settings, on_change=self.refresh, lock=self.app.lock)
            self._unsubscribe = self.app.engine.subscribe(self.refresh)
            self.app.start()
        log.info("settings reloaded")
        self.refresh()

    def tell(self, message: str) -> None:
        """A pop-up about the app itself, through the desktop channel when there is one."""
        desktop = next((channel for name, channel in self.app.channels.ready.items()
                        if self.settings.channels[name].type == "desktop"), None)
        try:
            if desktop is not None:
                desktop.send(Alert("tray-alerts", Level.ERROR, message))
            elif self.icon.HAS_NOTIFICATION:
                self.icon.notify(message, "tray-alerts")
        except Exception as error:
            log.warning("could not show a pop-up: %s", error)

    def quit(self) -> None:
        """Stop monitors, API and engine (the outbox keeps what is queued), then the icon."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._unsubscribe()
        self.app.stop()
        self.icon.stop()

    def _in_background(self, function, *args: object) -> None:
        """Menu clicks run on the GUI thread; deliveries may take seconds, so they go elsewhere."""
        threading.Thread(target=function, args=args, name="tray-action", daemon=True).start()

    # ---- running -----------------------------------------------------------------------------------------

    def run(self) -> int:
        """Show the icon and run until Quit, Ctrl-C or SIGTERM; returns the exit code."""
        self._watch_signals()
        self.icon.run(setup=self._setup)
        return 0

    def _setup(self, icon: pystray.Icon) -> None:
        icon.visible = True
        self.app.start()
        self.refresh()
        threading.Thread(target=self._tick, name="tray-tick", daemon=True).start()
        print(f"tray-alerts running in the tray (push API on 127.0.0.1:{self.app.api.port})", flush=True)

    def _tick(self) -> None:
        while not self._stopping.wait(REFRESH_SECONDS):
            self.refresh()

    def _watch_signals(self) -> None:
        """Ctrl-C and SIGTERM quit cleanly, also while GTK's main loop (C code) holds the main thread."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: threading.Thread(target=self.quit, daemon=True).start())
        if "gi.repository.GLib" in sys.modules:
            from gi.repository import GLib

            for signum in (signal.SIGINT, signal.SIGTERM):
                GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, self._quit_from_glib)

    def _quit_from_glib(self) -> bool:
        threading.Thread(target=self.quit, daemon=True).start()
        return False


def _to_pystray(item: Item) -> pystray.MenuItem:
    if item.is_separator:
        return pystray.Menu.SEPARATOR
    if item.submenu:
        return pystray.MenuItem(item.text, pystray.Menu(*[_to_pystray(sub) for sub in item.submenu]),
                                enabled=item.enabled)
    action = item.action
    return pystray.MenuItem(item.text, (lambda: action()) if action else None, enabled=item.enabled and bool(action),
                            default=item.default)


def open_path(path: Path) -> None:
    """Open a file with the platform's opener (xdg-open, open, or the Windows shell)."""
    if sys.platform == "win32":
        os.startfile(path)  # type: ignore[attr-defined]
        return
    opener = "open" if sys.platform == "darwin" else "xdg-open"
    if shutil.which(opener) is None:
        log.warning("cannot open %s: %s is not installed", path, opener)
        return
    subprocess.Popen([opener, str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)


def write_starter_settings(path: Path) -> None:
    """A user settings file with every default present but commented out, ready to uncomment (section
    headers stay, except monitors', which need a type to be valid)."""
    lines = [f"; Your tray-alerts settings, layered over the defaults in {PACKAGED_SETTINGS}.",
             "; Uncomment and change what you need; everything else keeps its default.", ""]
    for line in PACKAGED_SETTINGS.read_text().splitlines():
        keep = not line.strip() or line.lstrip().startswith(";") or (
            line.startswith("[") and not line.startswith("[monitor."))
        lines.append(line if keep else f"; {line}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
