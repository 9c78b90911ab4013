"""One background asyncio loop for the session D-Bus (dbus-fast): the tray item and the pop-ups share it."""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import threading
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, Coroutine, Mapping, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


class BusUnavailable(Exception):
    """The session bus could not be reached or did not answer in time; the text says which."""


class BusTimeout(BusUnavailable):
    """The bus (or the loop) did not answer within the time given: it may be there, only slow."""


class _ClosedSocketNoise(logging.Filter):
    """Drop dbus-fast's traceback for a reply written after we closed the connection (quitting while a host
    was asking): the peer is gone with it, nothing was lost, and no traceback belongs on a quit's stderr."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (isinstance(error, OSError) and error.errno == errno.EBADF)


DBUS_FAST_LOGGERS = (  # every module of dbus-fast 5.x that logs; a filter sees only its own logger's records
    "dbus_fast.send_reply",
    "dbus_fast.message_bus",
    "dbus_fast.proxy_object",
    "dbus_fast.aio.message_bus",
    "dbus_fast.aio.message_reader",
    "dbus_fast.glib.message_bus",
)
_QUIET = _ClosedSocketNoise()
for _name in DBUS_FAST_LOGGERS:
    logging.getLogger(_name).addFilter(_QUIET)


def loop() -> asyncio.AbstractEventLoop:
    """The process's D-Bus loop, started on first use in a daemon thread."""
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="session-bus", daemon=True).start()
        return _loop


def run(coroutine: Coroutine[Any, Any, T], timeout: float = 5.0) -> T:
    """Run `coroutine` on the D-Bus loop and wait for it (from any thread but the loop's own)."""
    if on_loop_thread():
        coroutine.close()
        raise RuntimeError("session_bus.run called on the D-Bus loop's own thread: it would wait for itself")
    future = asyncio.run_coroutine_threadsafe(coroutine, loop())
    try:
        return future.result(timeout)
    except FutureTimeout:
        if future.done():  # the coroutine itself raised TimeoutError (the same class since 3.11): its own error
            raise
        future.cancel()
        raise BusTimeout(f"the session bus did not answer within {timeout:g} s") from None


def on_loop_thread() -> bool:
    """Whether this is the D-Bus loop's own thread (which must never wait for the bus)."""
    try:
        return asyncio.get_running_loop() is _loop
    except RuntimeError:
        return False


def call_soon(callback: Any, *args: Any) -> None:
    """Schedule a plain callback on the D-Bus loop (thread-safe)."""
    loop().call_soon_threadsafe(callback, *args)


async def connect() -> Any:
    """A new connection to the session bus (`dbus_fast.aio.MessageBus`), or BusUnavailable saying why."""
    return await _connect("session", _address())


async def connect_system(address: str | None = None) -> Any:
    """A new connection to the system bus (at `address`, else where $DBUS_SYSTEM_BUS_ADDRESS or the standard
    socket says), or BusUnavailable saying why."""
    return await _connect("system", address)


async def _connect(kind: str, address: str | None) -> Any:
    try:
        from dbus_fast import BusType
        from dbus_fast.aio import MessageBus
    except ImportError:
        raise BusUnavailable("dbus-fast is not installed (pip install dbus-fast)") from None
    bus_type = BusType.SYSTEM if kind == "system" else BusType.SESSION  # an address, when given, is used instead
    try:
        bus = await MessageBus(bus_address=address, bus_type=bus_type).connect()
    except Exception as error:  # no address, socket refused, auth failed
        raise BusUnavailable(f"cannot reach the {kind} D-Bus ({type(error).__name__}: {error})") from None
    writer = getattr(bus, "_writer", None)
    if writer is not None and hasattr(writer, "sock"):
        writer.sock = _PatientSocket(writer.sock)
    return bus


def runtime_bus(environ: Mapping[str, str]) -> Path | None:
    """The systemd user bus at $XDG_RUNTIME_DIR/bus, where libdbus looks when no address is set, if it is there."""
    runtime = environ.get("XDG_RUNTIME_DIR")
    path = Path(runtime, "bus") if runtime else None
    return path if path is not None and path.exists() else None


def _address() -> str | None:
    """None when DBUS_SESSION_BUS_ADDRESS is set (dbus-fast reads it), else the user bus dbus-fast does not look
    for itself; None too when there is none (dbus-fast then says what is missing)."""
    if os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        return None
    path = runtime_bus(os.environ)
    return f"unix:path={path}" if path is not None else None


class _PatientSocket:
    """The bus socket as dbus-fast's writer sees it: a full send buffer sends 0 bytes (the writer then waits until
    the socket is writable) instead of raising BlockingIOError, which dbus-fast 5.2 takes for a broken connection
    and closes it (python-dbus-next issue #153; seen with icon pixmaps and a busy bus daemon). No unix fds are
    passed on our connections, so a 0-byte sendmsg losing its ancillary data does not arise."""

    def __init__(self, sock: Any):
        self._sock = sock

    def send(self, data: Any) -> int:
        try:
            return int(self._sock.send(data))
        except (BlockingIOError, InterruptedError):
            return 0

    def sendmsg(self, buffers: Any, ancdata: Any = ()) -> int:
        try:
            return int(self._sock.sendmsg(buffers, ancdata))
        except (BlockingIOError, InterruptedError):
            return 0
