"""One background asyncio loop for the session D-Bus (dbus-fast): the tray item and the pop-ups share it."""
from __future__ import annotations

import asyncio
import threading
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


class BusUnavailable(Exception):
    """The session bus could not be reached or did not answer in time; the text says which."""


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
    future = asyncio.run_coroutine_threadsafe(coroutine, loop())
    try:
        return future.result(timeout)
    except FutureTimeout:
        future.cancel()
        raise BusUnavailable(f"the session bus did not answer within {timeout:g} s") from None


def call_soon(callback: Any, *args: Any) -> None:
    """Schedule a plain callback on the D-Bus loop (thread-safe)."""
    loop().call_soon_threadsafe(callback, *args)


async def connect() -> Any:
    """A new connection to the session bus (`dbus_fast.aio.MessageBus`), or BusUnavailable saying why."""
    try:
        from dbus_fast.aio import MessageBus
    except ImportError:
        raise BusUnavailable("dbus-fast is not installed (pip install dbus-fast)") from None
    try:
        bus = await MessageBus().connect()
    except Exception as error:  # no address, socket refused, auth failed
        raise BusUnavailable(f"cannot reach the session D-Bus ({type(error).__name__}: {error})") from None
    writer = getattr(bus, "_writer", None)
    if writer is not None and hasattr(writer, "sock"):
        writer.sock = _PatientSocket(writer.sock)
    return bus


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
