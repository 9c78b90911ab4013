"""Desktop pop-ups: freedesktop notifications over the session D-Bus (one pop-up per event, replaced in place, with
Acknowledge / Mute / Open actions), plyer on macOS and Windows; the only module using plyer."""
from __future__ import annotations

import asyncio
import html
import logging
import os
import queue
import re
import sys
import threading
from typing import Any, Awaitable, Callable, Mapping

from .. import session_bus
from ..display import title
from ..icons import level_icon_path
from ..model import Alert, Level, truncate
from ..notifications import (NEVER_EXPIRES, ConnectionLost, Notification, NotificationsClient, NotificationsError,
                             Urgency)
from ..session_bus import BusUnavailable
from ..storm import SUMMARY_EVENT
from ..templates import PLAIN, Wording
from .base import DeliveryError, SettingError, duration_option

log = logging.getLogger(__name__)

APP_NAME = "tray-alerts"
DESKTOP_ENTRY = "tray-alerts"  # applications/tray-alerts.desktop: `tray-alerts run` writes it (autostart.py)
MAX_BODY = 1000
NO_DAEMON = "no notification daemon is running (nothing serves org.freedesktop.Notifications on the session bus)"
NO_SESSION_BUS = "no session D-Bus to show pop-ups on (DBUS_SESSION_BUS_ADDRESS is not set)"
CALL_TIMEOUT = 5.0  # seconds for one pop-up's calls (capabilities, Notify) together

ACK, MUTE, OPEN = "ack", "mute", "default"  # "default": the spec's key for clicking the pop-up itself
ACTION_KEYS = frozenset({ACK, MUTE, OPEN})
FIRING_ACTIONS = ((ACK, "Acknowledge"), (MUTE, "Mute 1 h"), (OPEN, "Open"))
RECOVERY_ACTIONS = ((OPEN, "Open"),)

# Only critical is urgent: the server keeps it until dismissed and may show it over full-screen windows. Info stays
# normal, not low, because GNOME and KDE show low-urgency notifications as no pop-up at all, and someone who routed
# info to the desktop asked for one. A recovery is never urgent.
URGENCY = {Level.INFO: Urgency.NORMAL, Level.WARNING: Urgency.NORMAL, Level.ERROR: Urgency.NORMAL,
           Level.CRITICAL: Urgency.CRITICAL}
RECOVERY_URGENCY = Urgency.NORMAL
# No standard category fits a monitoring alert (device.error would claim a device failed): the spec's form for a
# vendor's own, which notification-daemon rules (e.g. dunst's `category =`) can match.
CATEGORY_FIRING = "x-tray-alerts.alert.firing"
CATEGORY_RESOLVED = "x-tray-alerts.alert.resolved"
SOUND_OPTIONS = {level: f"sound_{level.value}" for level in Level}
SOUND_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")  # the sound naming spec: lower-case words joined by -
SOUND_OFF = frozenset({"", "none", "off"})
MAX_EXPIRE_MS = 2**31 - 1  # expire_timeout is an int32
MAX_REMEMBERED = 500  # ids of pop-ups whose closing the server never reported are dropped after this many


class DesktopChannel:
    """Shows `WARNING · disk_full` with the message and context; a recovery replaces it as RESOLVED.

    `on_action(event, key)` (key: ack, mute or default) is called in a worker thread of the channel when someone
    picks a pop-up's action; set it after building the channel. Pop-ups offer actions only while it is set.
    """

    stateless = True  # needs no state to deliver: told directly while the state file cannot be written
    TEMPLATES = ("title", "body")  # the pop-up's summary and body
    wording: Wording = PLAIN

    def __init__(self, name: str = "desktop", timeout: float = 10.0, sounds: Mapping[Level, str] | None = None,
                 connect: Callable[[], Awaitable[Any]] | None = None):
        self.name = name
        self.timeout = timeout
        self.sounds = dict(sounds or {})
        self.on_action: Callable[[str, str], None] | None = None
        self._client = NotificationsClient(on_action=self._action_invoked, on_closed=self._closed,
                                           on_reset=self._reset, connect=connect or session_bus.connect)
        self._popups = PopUps()  # touched only on the session_bus loop
        self._order: asyncio.Lock | None = None  # one pop-up change at a time, so an event never gets two
        self._actions = _ActionRunner(f"{name}-actions")
        self._tasks: set[asyncio.Task] = set()

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, str]) -> DesktopChannel:
        """Built from [channel.NAME]: timeout (how long a pop-up stays; critical ones stay until closed) and
        sound_info … sound_critical (a sound theme name played with that level's pop-ups; empty: none)."""
        sounds = {level: sound for level, key in SOUND_OPTIONS.items() if (sound := sound_option(options, key))}
        return cls(name, duration_option(options, "timeout", "10s"), sounds)

    @staticmethod
    def body(alert: Alert) -> str:
        """The message, then one `key: value` line per context item."""
        note = alert.note()
        lines = [alert.message, *([note] if note else []), *(f"{key}: {value}" for key, value in alert.context.items())]
        return truncate("\n".join(lines), MAX_BODY)

    def send(self, alert: Alert) -> None:
        """Show the pop-up (replacing the event's earlier one), or raise DeliveryError saying what is missing."""
        if not uses_freedesktop():
            self._plyer(alert)
            return
        problem = missing_session_bus(os.environ)
        if problem:
            raise DeliveryError(f"desktop: {problem}", retryable=False)
        if session_bus.on_loop_thread():
            raise DeliveryError("desktop: send() was called on the D-Bus loop's own thread, where it cannot wait "
                                "for the bus")
        try:
            session_bus.run(_within(self._show(alert), CALL_TIMEOUT), CALL_TIMEOUT + 1.0)
        except _NoAnswer:
            raise DeliveryError(f"desktop: the notification daemon did not answer within {CALL_TIMEOUT:g} s") from None
        except ConnectionLost as error:
            raise DeliveryError(f"desktop: {error}") from None
        except BusUnavailable as error:
            raise DeliveryError(f"desktop: {error}", retryable=False) from None
        except NotificationsError as error:
            reason = NO_DAEMON if error.no_server else f"the notification daemon refused the pop-up ({error})"
            raise DeliveryError(f"desktop: {reason}", retryable=False) from None

    def withdraw(self, event: str) -> None:
        """Close the event's pop-up if one is showing (it was acknowledged or cleared elsewhere); else nothing."""
        if not uses_freedesktop():
            return
        if session_bus.on_loop_thread():  # cannot wait here: run it after this callback
            task = session_bus.loop().create_task(self._withdraw_logged(event))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        try:
            session_bus.run(self._withdraw_logged(event), CALL_TIMEOUT + 1.0)
        except BusUnavailable as error:  # the loop itself did not get to it
            log.warning("desktop: could not close the pop-up of %s: %s", event, error)

    def close(self) -> None:
        """Stop the action thread and drop the bus connection (pop-ups on screen stay)."""
        self._actions.stop()
        if uses_freedesktop():
            session_bus.call_soon(self._client.disconnect)

    # -- on the session_bus loop ---------------------------------------------------------------------------------
    async def _show(self, alert: Alert) -> None:
        async with self._ordered():
            capabilities = await self._client.capabilities()
            arguments = notify_arguments(alert, self._popups.replaces(alert.event), capabilities, self.timeout,
                                         self.sounds, interactive=self.on_action is not None, wording=self.wording)
            notification_id = await self._client.notify(arguments)
            self._popups.shown(alert.event, notification_id, final=alert.resolved)

    async def _withdraw_logged(self, event: str) -> None:
        try:
            await _within(self._withdraw(event), CALL_TIMEOUT)
        except _NoAnswer:
            log.warning("desktop: could not close the pop-up of %s: no answer within %g s", event, CALL_TIMEOUT)
        except BusUnavailable as error:
            log.warning("desktop: could not close the pop-up of %s: %s", event, error)

    async def _withdraw(self, event: str) -> None:
        async with self._ordered():
            notification_id = self._popups.withdraw(event)
            if notification_id and self._client.connected:  # never connect just for this: nothing could be showing
                try:
                    await self._client.close_notification(notification_id)
                except NotificationsError as error:  # already gone: the spec answers an empty error
                    log.debug("desktop: closing pop-up %d of %s: %s", notification_id, event, error)

    def _ordered(self) -> asyncio.Lock:
        if self._order is None:
            self._order = asyncio.Lock()
        return self._order

    def _action_invoked(self, notification_id: int, key: str) -> None:
        """ActionInvoked from the server (on the bus loop): hand one of our actions to the worker thread."""
        event = self._popups.event_of(notification_id)
        if event is None or key not in ACTION_KEYS:
            log.debug("desktop: ignoring action %r on pop-up %d (not one of ours)", key, notification_id)
            return
        self._actions.submit(lambda: self._run_action(event, key))

    def _closed(self, notification_id: int, reason: int) -> None:
        self._popups.closed(notification_id)

    def _reset(self) -> None:
        self._popups.clear()

    # -- in the action thread ----------------------------------------------------------------------------------
    def _run_action(self, event: str, key: str) -> None:
        """Call on_action on the worker thread; a failure is logged, never raised."""
        handler = self.on_action
        if handler is None:
            log.info("desktop: %s picked on the pop-up of %s, but nothing handles pop-up actions", key, event)
            return
        try:
            handler(event, key)
        except Exception:
            log.exception("desktop: handling %s on the pop-up of %s failed", key, event)

    # -- macOS, Windows --------------------------------------------------------------------------------------
    def _plyer(self, alert: Alert) -> None:
        from plyer import notification

        icon = level_icon_path(None if alert.resolved else alert.level)
        try:
            summary, body = words(alert, self.wording)
            notification.notify(title=summary, message=body, app_name=APP_NAME,
                                app_icon=str(icon), timeout=int(self.timeout))
        except Exception as error:  # NotImplementedError on an unsupported platform, …
            reason = (NO_DAEMON if _no_daemon(str(error))
                      else f"no notification service answered ({type(error).__name__})")
            raise DeliveryError(f"desktop: {reason}", retryable=False) from None


def words(alert: Alert, wording: Wording = PLAIN) -> tuple[str, str]:
    """The pop-up's summary and body: the channel's templates, else `CRITICAL · disk_full` and the message."""
    summary, body = wording.apply(alert, title(alert), DesktopChannel.body(alert))
    return truncate(summary, MAX_BODY), truncate(body, MAX_BODY)


def notify_arguments(alert: Alert, replaces_id: int = 0, capabilities: frozenset[str] = frozenset(),
                     timeout: float = 10.0, sounds: Mapping[Level, str] | None = None,
                     interactive: bool = True, wording: Wording = PLAIN) -> Notification:
    """The Notify call for an alert, from its level and kind and what the server can do; `interactive`: someone
    handles the actions."""
    icon = level_icon_path(None if alert.resolved else alert.level)
    summary, body = words(alert, wording)
    if "body-markup" in capabilities:  # such a server reads the body as markup: `<none>`, `a & b` show as written
        body = html.escape(body, quote=False)
    hints: dict[str, bool | int | str] = {
        "urgency": int(RECOVERY_URGENCY if alert.resolved else URGENCY[alert.level]),
        "desktop-entry": DESKTOP_ENTRY,
        "image-path": icon.as_uri(),
        "category": CATEGORY_RESOLVED if alert.resolved else CATEGORY_FIRING,
    }
    sound = None if alert.resolved else (sounds or {}).get(alert.level)
    if sound:
        hints["sound-name"] = sound
    actions: tuple[tuple[str, str], ...] = ()
    if interactive and "actions" in capabilities:  # the app's own pop-ups (a storm summary) can only be opened
        actions = RECOVERY_ACTIONS if alert.resolved or alert.event == SUMMARY_EVENT else FIRING_ACTIONS
    urgent = not alert.resolved and alert.level == Level.CRITICAL
    expire = NEVER_EXPIRES if urgent else min(MAX_EXPIRE_MS, max(0, round(timeout * 1000)))
    # app_icon as a plain path, as libnotify's clients send it (every server takes one); image-path as the URI the
    # spec asks for. Servers that show one image prefer image-path.
    return Notification(summary=summary, body=body, app_name=APP_NAME, replaces_id=replaces_id,
                        app_icon=str(icon), actions=actions, hints=hints, expire_timeout=expire)


class PopUps:
    """Which pop-up shows which event: the id a new alert of the event replaces, and the event an id's action is
    about. A recovery's pop-up keeps its event for actions but is never replaced: the next firing gets its own."""

    def __init__(self, limit: int = MAX_REMEMBERED):
        self.limit = limit
        self._by_event: dict[str, int] = {}
        self._by_id: dict[int, str] = {}

    def replaces(self, event: str) -> int:
        """The id of the event's pop-up on screen, 0 for a new one."""
        return self._by_event.get(event, 0)

    def shown(self, event: str, notification_id: int, final: bool = False) -> None:
        """The server showed the event as `notification_id`; `final` (a recovery): nothing replaces it later."""
        old = self._by_event.pop(event, None)
        if old is not None and old != notification_id:
            self._by_id.pop(old, None)
        self._by_id.pop(notification_id, None)  # to the end of the insertion order: the newest
        self._by_id[notification_id] = event
        if not final:
            self._by_event[event] = notification_id
        while len(self._by_id) > self.limit:
            self.closed(next(iter(self._by_id)))

    def event_of(self, notification_id: int) -> str | None:
        """The event a pop-up of ours shows, None for someone else's (or a forgotten) pop-up."""
        return self._by_id.get(notification_id)

    def closed(self, notification_id: int) -> None:
        """The server closed the pop-up: forget it."""
        event = self._by_id.pop(notification_id, None)
        if event is not None and self._by_event.get(event) == notification_id:
            del self._by_event[event]

    def withdraw(self, event: str) -> int | None:
        """Forget the event's replaceable pop-up; its id, to close it, or None when none shows."""
        notification_id = self._by_event.pop(event, None)
        if notification_id is not None:
            self._by_id.pop(notification_id, None)
        return notification_id

    def clear(self) -> None:
        """Forget everything (the ids mean nothing any more)."""
        self._by_event.clear()
        self._by_id.clear()


class _ActionRunner:
    """A daemon thread that runs pop-up action callbacks in order, away from the bus loop; started on first use."""

    def __init__(self, name: str):
        self.name = name
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, call: Callable[[], None]) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
        self._queue.put(call)

    def stop(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                self._queue.put(None)
            self._thread = None

    def _run(self) -> None:
        while (call := self._queue.get()) is not None:
            call()


def uses_freedesktop(platform: str = sys.platform) -> bool:
    """Whether pop-ups go over the session D-Bus (everywhere but macOS and Windows, where plyer serves)."""
    return not (platform == "darwin" or platform.startswith(("win", "cygwin")))


def missing_session_bus(environ: Mapping[str, str]) -> str | None:
    """Why there is no session bus to reach (no address, no $XDG_RUNTIME_DIR/bus socket), or None."""
    if environ.get("DBUS_SESSION_BUS_ADDRESS") or session_bus.runtime_bus(environ) is not None:
        return None
    return NO_SESSION_BUS


def sound_option(options: Mapping[str, str], key: str) -> str | None:
    """A sound theme name setting (`dialog-warning`), None when empty or off, else SettingError naming the key."""
    text = options.get(key, "").strip()
    if text.lower() in SOUND_OFF:
        return None
    if not SOUND_NAME.fullmatch(text):
        raise SettingError(key, "not a sound name from the freedesktop sound theme (like dialog-warning or "
                                f"alarm-clock-elapsed): {text!r}")
    return text


class _NoAnswer(Exception):
    """The bus calls of one send or withdraw took longer than CALL_TIMEOUT."""


async def _within(coroutine: Awaitable[None], seconds: float) -> None:
    """Await `coroutine` on the loop for at most `seconds`, else _NoAnswer (a hung server, told apart from the
    bus loop itself not answering)."""
    try:
        await asyncio.wait_for(coroutine, seconds)
    except asyncio.TimeoutError:
        raise _NoAnswer() from None



def _no_daemon(error_text: str) -> bool:
    """Whether an error from plyer says nothing serves notifications."""
    return "ServiceUnknown" in error_text or "not provided by any .service" in error_text
