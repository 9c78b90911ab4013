"""The freedesktop Notifications client over dbus-fast: Notify, CloseNotification, capabilities and the
ActionInvoked / NotificationClosed signals, on one persistent session-bus connection made on first use.

Every coroutine here runs on the session_bus loop; callers in other threads go through `session_bus.run`.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Awaitable, Callable, Mapping, Sequence, Union

from . import session_bus
from .session_bus import BusUnavailable

log = logging.getLogger(__name__)

BUS_NAME = "org.freedesktop.Notifications"
OBJECT_PATH = "/org/freedesktop/Notifications"
INTERFACE = BUS_NAME
NOTIFY_SIGNATURE = "susssasa{sv}i"
NEVER_EXPIRES = 0  # expire_timeout: stays until the user (or CloseNotification) closes it
SERVER_DEFAULT_EXPIRY = -1  # expire_timeout: the server decides

_DBUS_NAME = "org.freedesktop.DBus"
_DBUS_PATH = "/org/freedesktop/DBus"
# The bus answers these when nobody owns the name and nobody can be started for it.
NO_SERVER_ERRORS = frozenset({"org.freedesktop.DBus.Error.ServiceUnknown",
                              "org.freedesktop.DBus.Error.NameHasNoOwner"})
_MATCH_RULES = (
    f"type='signal',sender='{BUS_NAME}',path='{OBJECT_PATH}',interface='{INTERFACE}',member='ActionInvoked'",
    f"type='signal',sender='{BUS_NAME}',path='{OBJECT_PATH}',interface='{INTERFACE}',member='NotificationClosed'",
    f"type='signal',sender='{_DBUS_NAME}',interface='{_DBUS_NAME}',member='NameOwnerChanged',arg0='{BUS_NAME}'",
)
# Hints whose D-Bus type is not what their Python value suggests (the spec's table of standard hints).
_HINT_TYPES = {"urgency": "y", "x": "i", "y": "i"}

HintValue = Union[bool, int, str]


class Urgency(IntEnum):
    """The spec's urgency levels (the `urgency` hint, a byte)."""

    LOW = 0
    NORMAL = 1
    CRITICAL = 2


class NotificationsError(Exception):
    """The notification server, or the bus on its behalf, answered a call with a D-Bus error."""

    def __init__(self, name: str, text: str = ""):
        super().__init__(f"{name}: {text}" if text else name)
        self.name = name
        self.text = text

    @property
    def no_server(self) -> bool:
        """Whether the error says nothing serves org.freedesktop.Notifications on this bus."""
        return self.name in NO_SERVER_ERRORS


class ConnectionLost(BusUnavailable):
    """The session-bus connection broke during a call; the next call connects again."""


@dataclass(frozen=True)
class Notification:
    """The arguments of one Notify call; hints as plain values (their D-Bus types: `hint_signature`)."""

    summary: str
    body: str = ""
    app_name: str = ""
    replaces_id: int = 0
    app_icon: str = ""
    actions: tuple[tuple[str, str], ...] = ()  # (action key, label shown)
    hints: Mapping[str, HintValue] = field(default_factory=dict)
    expire_timeout: int = SERVER_DEFAULT_EXPIRY  # milliseconds; 0 = never

    @property
    def action_keys(self) -> tuple[str, ...]:
        """The action keys in the order they are offered."""
        return tuple(key for key, _ in self.actions)

    def message_body(self) -> list[Any]:
        """The Notify body for dbus-fast: actions flattened to key, label, …; hints as Variants."""
        from dbus_fast import Variant

        actions = [text for pair in self.actions for text in pair]
        hints = {key: Variant(hint_signature(key, value), value) for key, value in self.hints.items()}
        return [self.app_name, self.replaces_id, self.app_icon, self.summary, self.body, actions, hints,
                self.expire_timeout]


@dataclass(frozen=True)
class ServerInformation:
    """What GetServerInformation says about the notification server."""

    name: str
    vendor: str
    version: str
    spec_version: str


def hint_signature(key: str, value: HintValue) -> str:
    """The D-Bus type a hint is sent as: the spec's type for standard hints, else the value's own."""
    if key in _HINT_TYPES:
        return _HINT_TYPES[key]
    if isinstance(value, bool):
        return "b"
    if isinstance(value, int):
        return "i"
    return "s"


class NotificationsClient:
    """One session-bus connection to the notification server, made on first use and again after it drops.

    The callbacks run on the session_bus loop and must return quickly: on_action(id, action_key) for
    ActionInvoked, on_closed(id, reason) for NotificationClosed, and on_reset() when the ids handed out so far
    stopped meaning anything (the connection dropped, or the server that gave them went away).
    """

    def __init__(self, on_action: Callable[[int, str], None] | None = None,
                 on_closed: Callable[[int, int], None] | None = None,
                 on_reset: Callable[[], None] | None = None,
                 connect: Callable[[], Awaitable[Any]] = session_bus.connect):
        self.on_action = on_action
        self.on_closed = on_closed
        self.on_reset = on_reset
        self._connect = connect
        self._bus: Any = None
        self._connecting: asyncio.Lock | None = None
        self._capabilities: frozenset[str] | None = None

    @property
    def connected(self) -> bool:
        """Whether the connection is up (it is made by the first call)."""
        return self._bus is not None and bool(self._bus.connected)

    async def bus(self) -> Any:
        """The connection, subscribed to the server's signals; made now if there is none (BusUnavailable)."""
        if self.connected:
            return self._bus
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:  # two first calls at once make one connection
            if self.connected:
                return self._bus
            if self._bus is not None:
                self._dropped()
            bus = await self._connect()
            bus.add_message_handler(self._on_message)
            try:
                for rule in _MATCH_RULES:
                    await self._call_on(bus, _DBUS_NAME, _DBUS_PATH, _DBUS_NAME, "AddMatch", "s", [rule])
            except BaseException:
                bus.disconnect()
                raise
            self._bus = bus
            return bus

    async def capabilities(self) -> frozenset[str]:
        """What the server supports (`actions`, `body-markup`, `sound`, …), asked once per server."""
        if self._capabilities is None or not self.connected:
            (names,) = await self._call("GetCapabilities")
            self._capabilities = frozenset(str(name) for name in names)
        return self._capabilities

    async def server_information(self) -> ServerInformation:
        """The server's name, vendor, version and the spec version it follows."""
        name, vendor, version, spec_version = await self._call("GetServerInformation")
        return ServerInformation(str(name), str(vendor), str(version), str(spec_version))

    async def notify(self, notification: Notification) -> int:
        """Show (or, with replaces_id, replace) a pop-up; the server's id for it."""
        (notification_id,) = await self._call("Notify", NOTIFY_SIGNATURE, notification.message_body())
        return int(notification_id)

    async def close_notification(self, notification_id: int) -> None:
        """Close a pop-up; the server answers NotificationClosed(id, CLOSED)."""
        await self._call("CloseNotification", "u", [notification_id])

    def disconnect(self) -> None:
        """Drop the connection (on the loop; call_soon it from elsewhere)."""
        bus, self._bus = self._bus, None
        self._capabilities = None
        if bus is not None:
            bus.remove_message_handler(self._on_message)
            bus.disconnect()

    async def _call(self, member: str, signature: str = "", body: Sequence[Any] = ()) -> list[Any]:
        return await self._call_on(await self.bus(), BUS_NAME, OBJECT_PATH, INTERFACE, member, signature, body)

    async def _call_on(self, bus: Any, destination: str, path: str, interface: str, member: str, signature: str,
                       body: Sequence[Any]) -> list[Any]:
        """One method call's reply body; NotificationsError for an error reply, ConnectionLost if the bus went."""
        from dbus_fast import Message, MessageType

        message = Message(destination=destination, path=path, interface=interface, member=member,
                          signature=signature, body=list(body))
        try:
            reply = await bus.call(message)
        except Exception as error:
            if bus.connected:  # not the connection: a bug of ours (e.g. a body that does not fit the signature)
                raise
            raise ConnectionLost(f"the session D-Bus connection broke ({type(error).__name__}: {error})") from None
        if reply.message_type == MessageType.ERROR:
            raise NotificationsError(str(reply.error_name), str(reply.body[0]) if reply.body else "")
        return list(reply.body)

    def _dropped(self) -> None:
        """The connection went away: what the old one knew is forgotten."""
        log.info("the session D-Bus connection for pop-ups dropped; connecting again")
        self._bus = None
        self._capabilities = None
        self._emit(self.on_reset)

    def _on_message(self, message: Any) -> None:
        """The signals subscribed to in bus(), passed on to the callbacks."""
        from dbus_fast import MessageType

        if message.message_type != MessageType.SIGNAL:
            return
        if message.interface == INTERFACE and message.path == OBJECT_PATH:
            if message.member == "ActionInvoked" and message.signature == "us":
                self._emit(self.on_action, int(message.body[0]), str(message.body[1]))
            elif message.member == "NotificationClosed" and message.signature == "uu":
                self._emit(self.on_closed, int(message.body[0]), int(message.body[1]))
        elif (message.interface == _DBUS_NAME and message.member == "NameOwnerChanged"
              and message.signature == "sss" and message.body[0] == BUS_NAME):
            self._capabilities = None  # another server (or none) now: ask again
            if message.body[1]:  # the server that handed out the ids has gone
                self._emit(self.on_reset)

    @staticmethod
    def _emit(callback: Callable[..., None] | None, *args: Any) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:  # a callback's bug must not break the connection's message handling
            log.exception("a notification callback failed")
