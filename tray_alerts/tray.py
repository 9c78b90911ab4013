"""The tray icon and its menu; everything it shows comes from traymenu, and it is pushed only when it changed.

Backends (chosen in desktop_env, whose docstring has the table and the reasons): our own StatusNotifierItem
(`sni.SniTray`, no GTK in the process: pystray is never imported on that path), or pystray (its gtk backend for
an XEmbed tray on Linux, its native one on Windows and macOS). The app calls `refresh()` after every check and
change; that only marks the view dirty. One refresher thread builds the view (icon look, tooltip, status, menu)
at most every REFRESH_INTERVAL seconds and pushes it only where it differs from what is shown. Durations in the
menu ("since 14:30 · 3 min") are counted afresh when a menu is about to open (SNI's AboutToShow; pystray gtk's
right click, which also builds the GTK menu only then), or once a minute (pystray's other backends).
"""
from __future__ import annotations

import functools
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence

from . import desktop_env, icons
from .app import App
from .config import ConfigError, Settings, load_settings
from .model import Alert, Level
from .paths import PACKAGED_SETTINGS, user_config_file
from .traymenu import (Action, Actions, Item, TrayState, menu, needs_attention, tooltip, tooltip_lines,
                       tooltip_title)

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)
ICON_SIZE = 64
REFRESH_INTERVAL = 0.25  # at most four builds a second, however often the app calls refresh()
PYSTRAY_RECHECK = 60.0  # the pystray menu cannot be rebuilt as it opens: its durations are checked once a minute
ABOUT_TO_SHOW_WAIT = 0.9  # how long a host's AboutToShow waits for fresh durations (SniTray gives up at 1 s)
EXPIRY_GRACE = 0.5  # a snooze or mute ends by the engine's clock: look a moment after
STATUS_ACTIVE, STATUS_ATTENTION = "Active", "NeedsAttention"


# ---- what is shown, as a value ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class IconLook:
    """The icon's picture: the worst level nobody acknowledged (or the worst, when all are), count, marks."""

    worst: Level | None
    count: int
    snoozed: bool = False
    acknowledged: bool = False


@dataclass(frozen=True)
class View:
    """Everything the tray shows; equal views look the same (the menu compares by `shape`, not its actions)."""

    look: IconLook
    tooltip: str
    title: str
    lines: tuple[str, ...]
    status: str
    shape: tuple[Any, ...]
    menu: tuple[Item, ...] = field(compare=False, default=())
    valid_for: float | None = field(compare=False, default=None)  # s until it changes by itself (a snooze ends)


def icon_look(state: TrayState) -> IconLook:
    """The unacknowledged alerts decide the colour; acknowledged ones only when nothing else is active."""
    waiting = [record for record in state.active if not record.acknowledged]
    worst = max((record.level for record in waiting or state.active), default=None)
    return IconLook(worst, len(state.active), state.snoozed_until is not None, bool(state.active) and not waiting)


def menu_shape(items: Sequence[Item]) -> tuple[Any, ...]:
    """What a person sees of a menu (text, state, icon, nesting), comparable across builds."""
    return tuple((item.key, item.text, item.enabled, item.default, item.icon, item.action is not None,
                  menu_shape(item.submenu)) for item in items)


def build_view(state: TrayState, actions: Actions, wall: float | None = None) -> View:
    """The view of a state (pure); `wall` (default state.now) is the real time, for `valid_for`."""
    items = tuple(menu(state, actions))
    ends = next_change(state)
    wall = state.now if wall is None else wall
    return View(icon_look(state), tooltip(state), tooltip_title(state), tuple(tooltip_lines(state)),
                STATUS_ATTENTION if needs_attention(state) else STATUS_ACTIVE, menu_shape(items), items,
                None if ends is None else max(0.0, ends - wall) + EXPIRY_GRACE)


def next_change(state: TrayState) -> float | None:
    """When the state changes with no event (the snooze or a mute ends), as Unix time; None: never by itself."""
    ends = [until for until in (state.snoozed_until, *state.mutes.values()) if until is not None]
    return min(ends, default=None)


class ViewBuilder:
    """Builds views of the app's state. Between fresh builds the menu's durations count to the last fresh time,
    so time passing alone is no change; menu actions are wired to stable per-line callables that run the newest
    build's action for their line (even of a build that was not pushed because it looked the same)."""

    def __init__(self, state: Callable[[float], TrayState], actions: Callable[[], Actions], *,
                 wall: Callable[[], float] = time.time, run: Callable[[Action], None] | None = None):
        self.state, self.actions, self.wall = state, actions, wall
        self.run: Callable[[Action], None] = run or (lambda action: action())
        self.counted_to: float | None = None
        self._actions: dict[str, Action] = {}
        self._clickers: dict[str, Action] = {}

    def __call__(self, fresh: bool) -> View:
        wall = self.wall()
        if fresh or self.counted_to is None:
            self.counted_to = wall
        view = build_view(self.state(self.counted_to), self.actions(), wall)
        found: dict[str, Action] = {}
        items = self._wire(view.menu, found)
        self._actions = found
        if len(self._clickers) > 2 * len(found) + 64:  # lines of alerts long gone
            self._clickers = {key: clicker for key, clicker in self._clickers.items() if key in found}
        return replace(view, menu=items)

    def click(self, key: str) -> None:
        """Run the newest action of the line `key` (through `run`); a line no longer there does nothing."""
        action = self._actions.get(key)
        if action is None:
            log.info("menu line %s is no longer there", key)
            return
        self.run(action)

    def _wire(self, items: Sequence[Item], found: dict[str, Action]) -> tuple[Item, ...]:
        wired = []
        for item in items:
            action = item.action
            if action is not None and item.key:
                found[item.key] = action
                action = self._clicker(item.key)
            wired.append(replace(item, action=action, submenu=self._wire(item.submenu, found)))
        return tuple(wired)

    def _clicker(self, key: str) -> Action:
        clicker = self._clickers.get(key)
        if clicker is None:
            clicker = self._clickers[key] = functools.partial(self.click, key)
        return clicker


@functools.lru_cache(maxsize=32)
def icon_image(look: IconLook, size: int = ICON_SIZE) -> Image.Image:
    """The icon's picture, drawn once per look."""
    return icons.draw_icon(look.worst, look.count, size, snoozed=look.snoozed, acknowledged=look.acknowledged)


# ---- coalescing ------------------------------------------------------------------------------------------------

class Refresher:
    """Coalesces refresh requests: builds at most every `interval` s, and pushes a build only when it differs
    from the last pushed. Only its own thread builds and pushes (and whoever calls tick() before it starts).

    `build(fresh)` makes a view; with fresh False it may keep the durations of the last fresh build ("3 min"),
    so that time passing alone is no change. Fresh builds: the first, `now()` (a menu about to open), every
    `recheck` s, when the last view said it would change by itself (`View.valid_for`: a snooze ending), and
    again when a stale build differs (a real change is shown with the time of day)."""

    def __init__(self, build: Callable[[bool], View | None], push: Callable[[View, View | None], None], *,
                 interval: float = REFRESH_INTERVAL, recheck: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self._build, self._push = build, push
        self.interval, self.recheck, self.clock = interval, recheck, clock
        self._lock = threading.Lock()  # guards the flags below; never held while building or pushing
        self._done = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._dirty = False
        self._urgent = False
        self._asked = 0  # urgent requests asked for / answered
        self._answered = 0
        self._stopped = False
        self._built_at: float | None = None
        self._fresh_at: float | None = None
        self._expires: float | None = None
        self.shown: View | None = None
        self.builds = 0
        self.pushes = 0
        self._last_error = ""
        self._thread: threading.Thread | None = None

    def mark(self) -> None:
        """Something may have changed (cheap; any thread)."""
        with self._lock:
            if self._dirty or self._stopped:
                return
            self._dirty = True
        self._wake.set()

    def now(self, timeout: float = ABOUT_TO_SHOW_WAIT) -> bool:
        """A fresh build and push at once, skipping the pacing; waits up to `timeout` s for it (from any thread
        but the refresher's). True when it was done in time."""
        with self._lock:
            if self._stopped:
                return False
            self._dirty = self._urgent = True
            self._asked += 1
            wanted = self._asked
        self._wake.set()
        if threading.current_thread() is self._thread:
            return False
        with self._done:
            self._done.wait_for(lambda: self._answered >= wanted or self._stopped, timeout)
            return self._answered >= wanted

    def delay(self, now: float) -> float | None:
        """Seconds until the next build is due, or None while nothing asks for one."""
        with self._lock:
            dirty, urgent = self._dirty, self._urgent
        if urgent:
            return 0.0
        due = []
        if dirty:
            due.append(now if self._built_at is None else self._built_at + self.interval)
        if self.recheck is not None:
            due.append(now if self._fresh_at is None else self._fresh_at + self.recheck)
        if self._expires is not None:
            due.append(self._expires)
        return max(0.0, min(due) - now) if due else None

    def tick(self) -> bool:
        """Build now and push if the view changed; True if it pushed."""
        with self._lock:
            urgent = self._urgent
            self._dirty = self._urgent = False
            answering = self._asked
        self._wake.clear()
        now = self.clock()
        fresh = (urgent or self.shown is None or self._expires is not None and now >= self._expires
                 or self.recheck is not None and (self._fresh_at is None or now >= self._fresh_at + self.recheck))
        pushed = False
        try:
            view = self._build(fresh)
            if view is not None and view != self.shown and not fresh:
                view = self._build(True)  # a real change: show it with durations of now
                fresh = True
            self.builds += 1
            if view is not None and view != self.shown:
                self._push(view, self.shown)
                self.shown = view
                self.pushes += 1
                pushed = True
            self._remember(view, fresh)
            self._last_error = ""
        except Exception as error:  # keep refreshing; say it once, not four times a second
            self._remember(None, fresh)
            text = f"{type(error).__name__}: {error}"
            if text != self._last_error:
                log.exception("the tray could not be refreshed")
                self._last_error = text
        with self._done:
            self._answered = max(self._answered, answering)
            self._done.notify_all()
        return pushed

    def _remember(self, view: View | None, fresh: bool) -> None:
        self._built_at = self.clock()
        if fresh:
            self._fresh_at = self._built_at
        if view is not None:
            self._expires = None if view.valid_for is None else self._built_at + view.valid_for

    def start(self) -> None:
        """Run the refresher thread (daemon)."""
        self._thread = threading.Thread(target=self._run, name="tray-refresh", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop the thread (a push in progress finishes)."""
        with self._done:
            self._stopped = True
            self._done.notify_all()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._stopped:
                    return
            wait = self.delay(self.clock())
            if wait is None or wait > 0:
                self._wake.wait(wait)
                self._wake.clear()  # the flags, not the event, say what is due: read them again
                continue
            self.tick()


# ---- the icon backends -----------------------------------------------------------------------------------------

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
        self.tray.update(icon_image(view.look), view.title, view.lines, view.status, view.menu)

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
        if before is None or view.look != before.look:
            self.icon.icon = icon_image(view.look)
        if before is None or view.tooltip != before.tooltip:
            self.icon.title = view.tooltip
        if before is None or view.shape != before.shape:
            self.icon.menu = self._pystray.Menu(*[_to_pystray(item) for item in view.menu])

    def run(self, ready: Callable[[], None], quit: Callable[[], None]) -> None:
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


# ---- the tray --------------------------------------------------------------------------------------------------

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
        self.views = ViewBuilder(self.state, self.actions, wall=wall, run=self._in_background)
        self.refresher = Refresher(self._build, self._show, clock=clock)  # before the app: it may refresh at once
        self.app = App(settings, on_change=self.refresh)
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
                       mute=self.mute, acknowledge=self.acknowledge)

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
        self._in_background(self.app.engine.clear_alert, event, "cleared by hand")

    def clear_all(self) -> None:
        def clear_every() -> None:
            for record in self.app.engine.active_events():
                self.app.engine.clear_alert(record.event, "cleared by hand")
        self._in_background(clear_every)

    def acknowledge(self, event: str) -> None:
        self._in_background(self.app.engine.acknowledge, event)

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
        if not self._reload_lock.acquire(blocking=False):
            log.info("settings are being reloaded already")
            return
        try:
            self._reloading = True
            self._unsubscribe()
            old = self.app
            old.stop(keep_lock=True)  # the state folder stays this app's across the reload
            self.settings, self.app = settings, App(settings, on_change=self.refresh, lock=old.lock)
            self._unsubscribe = self.app.engine.subscribe(self.refresh)
            self.app.start()
        finally:
            self._reloading = False
            self._reload_lock.release()
        log.info("settings reloaded")
        self.refresh()

    def tell(self, message: str) -> None:
        """A pop-up about the app itself, through the desktop channel when there is one."""
        desktop = next((channel for name, channel in self.app.channels.ready.items()
                        if self.settings.channels[name].type == "desktop"), None)
        try:
            if desktop is not None:
                desktop.send(Alert("tray-alerts", Level.ERROR, message))
            elif not self.icon.notify(message):
                log.warning("%s", message)
        except Exception as error:
            log.warning("could not show a pop-up: %s", error)

    def quit(self) -> None:
        """End run(): the icon goes, then monitors, API and engine stop (the outbox keeps what is queued)."""
        self._stopping.set()
        if self._running:
            self.icon.stop()
        else:  # never run (tests, a start that failed): stop the app here
            self._shutdown()

    def _in_background(self, function: Callable[..., object], *args: object) -> None:
        """Menu clicks come on the GUI or bus thread; deliveries may take seconds, so they go elsewhere."""
        def run() -> None:
            try:
                function(*args)
            except Exception:
                log.exception("a menu action failed")
        threading.Thread(target=run, name="tray-action", daemon=True).start()

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
        if self._stopping.is_set():  # a signal came while the icon was starting
            self.icon.stop()
            return
        self.app.start()
        self.refresher.tick()  # the first view, on this thread, before the refresher thread exists
        self.refresher.start()
        print(f"tray-alerts running in the tray (push API on 127.0.0.1:{self.app.api.port})", flush=True)

    def _shutdown(self) -> None:
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
