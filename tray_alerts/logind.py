"""logind's word on suspend: the `PrepareForSleep(b)` signal of org.freedesktop.login1.Manager on the system bus
(true: about to sleep, false: woke up), passed to a callback. Runs on the session_bus loop; where there is no
system bus (a container, macOS, Windows) it says so once and the clock alone notices sleep."""
from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future
from typing import Any, Callable

from . import session_bus
from .session_bus import BusUnavailable

log = logging.getLogger(__name__)

LOGIND = "org.freedesktop.login1"
MANAGER = "org.freedesktop.login1.Manager"
MANAGER_PATH = "/org/freedesktop/login1"
# sender= limits the bus to signals of whoever owns logind's name (only logind itself, on a real system bus)
MATCH_RULE = (f"type='signal',sender='{LOGIND}',interface='{MANAGER}',member='PrepareForSleep',"
              f"path='{MANAGER_PATH}'")
DBUS = "org.freedesktop.DBus"


def is_prepare_for_sleep(message: Any) -> bool:
    """Whether a message is logind's PrepareForSleep(b) broadcast (a signal sent to us alone is not: the match
    rule, which names logind as the sender, only lets broadcasts through)."""
    from dbus_fast import MessageType

    return (message.message_type == MessageType.SIGNAL and message.destination is None
            and message.interface == MANAGER and message.member == "PrepareForSleep"
            and message.path == MANAGER_PATH and message.signature == "b")


class LogindWatch:
    """Tells `on_prepare(going_to_sleep)` each PrepareForSleep; `address`: the system bus to use (tests give a
    private one), else the standard system bus. `ready` is set once the bus passes the signal on."""

    def __init__(self, on_prepare: Callable[[bool], None], address: str | None = None):
        self.on_prepare = on_prepare
        self.address = address
        self.ready = threading.Event()
        self._bus: Any = None
        self._stopped = False
        self._connecting: Future[None] | None = None

    def start(self) -> None:
        """Connect in the background (the caller does not wait for the bus)."""
        self._connecting = asyncio.run_coroutine_threadsafe(self._connect(), session_bus.loop())

    def stop(self) -> None:
        """Drop the connection."""
        self._stopped = True
        if self._connecting is None:
            return
        if session_bus.on_loop_thread():
            self._disconnect()
        else:
            session_bus.call_soon(self._disconnect)

    async def _connect(self) -> None:
        try:
            bus = await session_bus.connect_system(self.address)
        except BusUnavailable as error:
            log.info("suspend and resume are noticed by the clock alone: %s", error)
            return
        if self._stopped:
            bus.disconnect()
            return
        try:
            bus.add_message_handler(self._on_message)
            await _call(bus, "AddMatch", "s", [MATCH_RULE])
            (present,) = await _call(bus, "NameHasOwner", "s", [LOGIND])
        except Exception as error:
            log.info("suspend and resume are noticed by the clock alone: the system bus did not take the match"
                     " rule (%s)", error)
            bus.disconnect()
            return
        self._bus = bus
        if not present:
            log.info("no logind on the system bus now: suspend and resume are noticed by the clock until it is")
        self.ready.set()

    def _disconnect(self) -> None:
        bus, self._bus = self._bus, None
        if bus is not None:
            bus.remove_message_handler(self._on_message)
            bus.disconnect()

    def _on_message(self, message: Any) -> None:
        if is_prepare_for_sleep(message):
            going = bool(message.body[0])
            log.info("logind: %s", "going to sleep" if going else "resumed")
            try:
                self.on_prepare(going)
            except Exception:
                log.exception("PrepareForSleep(%s) could not be noted", going)


async def _call(bus: Any, member: str, signature: str, body: list[Any]) -> list[Any]:
    """A method call on the bus driver; an error reply raises BusUnavailable."""
    from dbus_fast import Message, MessageType

    reply = await bus.call(Message(destination=DBUS, path="/org/freedesktop/DBus", interface=DBUS, member=member,
                                   signature=signature, body=body))
    if reply.message_type == MessageType.ERROR:
        raise BusUnavailable(f"{reply.error_name}: {reply.body[0] if reply.body else ''}")
    return list(reply.body)
