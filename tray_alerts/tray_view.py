"""What the tray shows, as values: the icon's look, the view of a state, and the refresher that pushes only changes."""
from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Sequence

from . import icons
from .model import Alert, Level, from_timestamp
from .traymenu import (Action, Actions, Item, TrayState, alert_submenu, describe_history, menu, needs_attention,
                       tooltip, tooltip_lines, tooltip_title, waiting)

if TYPE_CHECKING:
    from PIL import Image

    from .state import ActiveEvent, HistoryEntry

log = logging.getLogger(__name__)
ICON_SIZE = 64
PANEL_SIZES = (16, 22, 24, 32, 48, 64)  # the icon sizes offered to an SNI host, each drawn for itself
REFRESH_INTERVAL = 0.25  # at most four builds a second, however often the app calls refresh()
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
    """The alerts that wait for someone decide the colour; acknowledged and inhibited ones only when nothing else is
    active."""
    open_ = [record for record in state.active if waiting(record)]
    worst = max((record.level for record in open_ or state.active), default=None)
    return IconLook(worst, len(state.active), state.snoozed_until is not None, bool(state.active) and not open_)


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


def details(record: ActiveEvent, now: float, actions: Actions, muted_until: float | None = None) -> Alert:
    """The tray's details of an active alert as a pop-up (what Open shows): its submenu's lines, the channels
    told, and whether it is acknowledged or muted."""
    rows = alert_submenu(record, now, actions, muted_until)
    cut = next((index for index, item in enumerate(rows) if item.is_separator), len(rows))
    marks = [item.text for item in rows[cut + 1:] if not item.enabled]  # "Acknowledged 14:32", "Muted until …"
    lines = [item.text for item in rows[:cut]]
    lines.append(f"told: {', '.join(sorted(record.told)) or 'no channel yet'}")
    lines += marks if record.acknowledged else ["not acknowledged", *marks]
    return Alert(record.event, record.level, "\n".join(lines), at=from_timestamp(record.at), episode=record.episode)


def past_details(event: str, history: Sequence[HistoryEntry]) -> Alert:
    """What Open shows of an event that is no longer active: its newest history lines."""
    lines = [f"{event} is no longer active", *(describe_history(entry) for entry in history)]
    return Alert(event, history[0].level if history else Level.INFO, "\n".join(lines), resolved=True)


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
        """The items with each keyed action replaced by a clicker that runs the newest build's action."""
        wired = []
        for item in items:
            action = item.action
            if action is not None and item.key:
                found[item.key] = action
                action = self._clicker(item.key)
            wired.append(replace(item, action=action, submenu=self._wire(item.submenu, found)))
        return tuple(wired)

    def _clicker(self, key: str) -> Action:
        """One clicker per key, kept, so an unchanged line compares equal across builds."""
        clicker = self._clickers.get(key)
        if clicker is None:
            clicker = self._clickers[key] = functools.partial(self.click, key)
        return clicker


@functools.lru_cache(maxsize=32)
def icon_image(look: IconLook, size: int = ICON_SIZE) -> Image.Image:
    """The icon's picture, drawn once per look."""
    return icons.draw_icon(look.worst, look.count, size, snoozed=look.snoozed, acknowledged=look.acknowledged)


def icon_images(look: IconLook) -> list[Image.Image]:
    """The icon drawn for each size a panel may want (16 px gets its own count, `9+`), not one picture shrunk."""
    return [icon_image(look, size) for size in PANEL_SIZES]


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
        """Note when this build was made (and when durations were last fresh)."""
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
