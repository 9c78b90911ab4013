"""The tray app: the app's state shown through an icon backend, and what its menu and pop-ups' Open do."""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Callable

from . import desktop_env
from .app import App
from .config import ConfigError, Settings, load_settings
from .display import title
from .instance import InstanceLock
from .model import Alert, Level
from .opening import open_target
from .paths import PACKAGED_SETTINGS, private_folder, user_config_file
from .threads import in_background
from .tray_icons import TrayIcon, make_icon
from .tray_view import Refresher, View, ViewBuilder, details, past_details
from .traymenu import Actions, TrayState

log = logging.getLogger(__name__)

DETAILS_HISTORY = 5  # history lines Open shows of an event no longer active


class Tray:
    """The tray icon on the main thread; the app (engine, monitors, outbox, push API) runs behind it."""

    def __init__(self, settings: Settings, config_path: str | None = None, *, backend: str | None = None,
                 icon: TrayIcon | None = None, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time):
        self.settings = settings
        self.config_path = config_path
        self.wall = wall
        self.choice = desktop_env.Choice(backend, "chosen by the caller") if backend else desktop_env.chosen()
        self._reload_lock = threading.Lock()
        self._stopping = threading.Event()
        self._reloading = False
        self._running = False
        self._shut = False
        self._shutdown_lock = threading.Lock()
        # a click comes on the GUI or bus thread: its action runs on a thread of its own
        self.views = ViewBuilder(self.state, self.actions, wall=wall, run=_menu_action_in_background)
        self.refresher = Refresher(self._build, self._show, clock=clock)  # before the app: it may refresh at once
        self.app = self._new_app(settings)
        self._unsubscribe = self.app.engine.subscribe(self.refresh)
        try:
            self.icon = icon or make_icon(self.choice.backend, self.about_to_show)
        except BaseException:
            self._unsubscribe()
            self.app.stop()
            raise
        self.refresher.recheck = getattr(self.icon, "recheck", None)

    # ---- what is shown -----------------------------------------------------------------------------------

    def state(self, now: float | None = None) -> TrayState:
        """A snapshot of the app for the menu, the tooltip and the icon (durations counted to `now`)."""
        engine = self.app.engine
        return TrayState(engine.active_events(), self.app.runner.statuses(), engine.history(limit=10),
                         engine.snoozed_until, now=self.wall() if now is None else now, mutes=engine.mutes())

    def actions(self) -> Actions:
        return Actions(clear=self.clear, clear_all=self.clear_all, snooze=self.snooze, check_now=self.check_now,
                       open_settings=self.open_settings, open_log=self.open_log, reload=self.reload, quit=self.quit,
                       mute=self.mute, acknowledge=self.acknowledge, open_dashboard=self.open_dashboard)

    def refresh(self) -> None:
        """Something may have changed: the refresher redraws what did, soon (cheap; any thread; no argument, so
        the engine does not build its alert list for us at every change)."""
        self.refresher.mark()

    def _show(self, view: View, before: View | None) -> None:
        self.icon.show(view, before)

    def _build(self, fresh: bool) -> View | None:
        if self._reloading or self._stopping.is_set():
            return None  # the app is being replaced or stopped: reload refreshes when it is done
        return self.views(fresh)

    def about_to_show(self) -> None:
        """A host opens the menu: fresh durations first (bounded wait)."""
        self.refresher.now()

    # ---- what the menu does ------------------------------------------------------------------------------

    def clear(self, event: str) -> None:
        in_background(self.app.engine.clear_alert, event, "cleared by hand", name="tray-action", what="Clear")

    def clear_all(self) -> None:
        def clear_every() -> None:
            for record in self.app.engine.active_events():
                self.app.engine.clear_alert(record.event, "cleared by hand")
        in_background(clear_every, name="tray-action", what="Clear all")

    def acknowledge(self, event: str) -> None:
        in_background(self.app.engine.acknowledge, event, name="tray-action", what="Acknowledge")

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
        open_target(path)

    def open_log(self) -> None:
        open_target(self.settings.log_file)

    def open_dashboard(self) -> None:
        in_background(self.app.open_dashboard, name="tray-action", what="Open dashboard")

    def show_details(self, event: str) -> None:
        """Open on an alert's pop-up (with no web page to open): the tray's details of it, as a pop-up in the place
        of the event's own. (No SNI host we tried opens a closed menu at a row when asked: xfce4-panel, lxqt-panel.)"""
        engine = self.app.engine
        record = next((record for record in engine.active_events() if record.event == event), None)
        alert = (details(record, self.wall(), self.actions(), engine.mutes().get(event)) if record is not None
                 else past_details(event, engine.history(limit=DETAILS_HISTORY, event=event)))
        self._pop_up(alert, f"{title(alert)}\n{alert.message}")

    def reload(self) -> None:
        """Read the settings again; a bad file keeps the running settings and says why in a pop-up."""
        try:
            settings = load_settings(self.config_path)
        except ConfigError as error:
            log.error("settings not reloaded: %s", error)
            self.tell(f"Settings not reloaded — still running the previous ones. {error}")
            return
        if not self._reload_lock.acquire(blocking=False):
            log.info("settings are being reloaded already")
            return
        try:
            self._reloading = True
            self._unsubscribe()
            old = self.app
            old.stop(keep_lock=True)  # the state folder stays this app's across the reload
            self.settings, self.app = settings, self._new_app(settings, old.lock)
            self._unsubscribe = self.app.engine.subscribe(self.refresh)
            self.app.start()
        finally:
            self._reloading = False
            self._reload_lock.release()
        log.info("settings reloaded")
        self.refresh()

    def tell(self, message: str) -> None:
        """A pop-up about the app itself."""
        self._pop_up(Alert("tray-alerts", Level.ERROR, message), message)

    def _pop_up(self, alert: Alert, text: str) -> None:
        """`alert` through the desktop channel when there is one, else `text` through the icon's own pop-ups."""
        desktop = next((channel for name, channel in self.app.channels.ready.items()
                        if self.settings.channels[name].type == "desktop"), None)
        try:
            if desktop is not None:
                desktop.send(alert)
            elif not self.icon.notify(text):
                log.warning("%s", text)
        except Exception as error:
            log.warning("could not show a pop-up: %s", error)

    def _new_app(self, settings: Settings, lock: InstanceLock | None = None) -> App:
        """The app behind the tray, its pop-ups' Open wired to show_details."""
        app = App(settings, on_change=self.refresh, lock=lock)
        app.on_open = self.show_details
        return app

    def quit(self) -> None:
        """End run(): the icon goes, then monitors, API and engine stop (the outbox keeps what is queued)."""
        self._stopping.set()
        if self._running:
            self.icon.stop()
        else:  # never run (tests, a start that failed): stop the app here
            self._shutdown()

    # ---- running -----------------------------------------------------------------------------------------

    def run(self) -> int:
        """Show the icon and run until Quit, Ctrl-C or SIGTERM; returns the exit code."""
        log.info("tray: %s (%s)", _BACKEND_NAMES.get(self.choice.backend, self.choice.backend), self.choice.why)
        self._running = True
        try:
            self.icon.run(self._ready, self.quit)
        finally:
            self._running = False
            self._shutdown()
        return 0

    def _ready(self) -> None:
        """The icon is up: start the app and the refresher, and say so (unless a signal came first)."""
        if self._stopping.is_set():  # a signal came while the icon was starting
            self.icon.stop()
            return
        self.app.start()
        self.refresher.tick()  # the first view, on this thread, before the refresher thread exists
        self.refresher.start()
        print(f"tray-alerts running in the tray (push API on 127.0.0.1:{self.app.api.port})", flush=True)

    def _shutdown(self) -> None:
        """Stop the refresher and the app once, however many ways quitting was asked for."""
        with self._shutdown_lock:
            if self._shut:
                return
            self._shut = True
        self._stopping.set()
        self.refresher.stop()
        self._unsubscribe()
        self.app.stop()


_BACKEND_NAMES = {desktop_env.SNI: "StatusNotifierItem", desktop_env.XEMBED: "XEmbed via pystray",
                  desktop_env.NATIVE: "pystray"}


def write_starter_settings(path: Path) -> None:
    """A user settings file with every default present but commented out, ready to uncomment (section
    headers stay, except monitors', which need a type to be valid)."""
    lines = [f"; Your tray-alerts settings, layered over the defaults in {PACKAGED_SETTINGS}.",
             "; Uncomment and change what you need; everything else keeps its default.", ""]
    for line in PACKAGED_SETTINGS.read_text().splitlines():
        keep = not line.strip() or line.lstrip().startswith(";") or (
            line.startswith("[") and not line.startswith("[monitor."))
        lines.append(line if keep else f"; {line}")
    private_folder(path.parent, "config folder")
    path.write_text("\n".join(lines) + "\n")


def _menu_action_in_background(action: Callable[[], object]) -> None:
    """A clicked menu line's action, on a thread of its own (deliveries may take seconds)."""
    in_background(action, name="tray-action", what="a menu action")
