"""The shared D-Bus loop, and the socket wrapper that keeps a full send buffer from closing the connection."""
import asyncio
import socket

import pytest

from tray_alerts import session_bus
from tray_alerts.session_bus import BusUnavailable, _PatientSocket


def full_pair() -> tuple[socket.socket, socket.socket]:
    """A non-blocking unix socket pair whose sender's buffer is full: the next send would raise EAGAIN."""
    sender, receiver = socket.socketpair()
    sender.setblocking(False)
    try:
        while True:
            sender.send(b"x" * 65536)
    except BlockingIOError:
        pass
    return sender, receiver


def test_a_full_send_buffer_sends_nothing_instead_of_raising():
    sender, receiver = full_pair()
    with sender, receiver:
        with pytest.raises(BlockingIOError):
            sender.send(b"more")  # what dbus-fast 5.2 takes for a broken connection
        patient = _PatientSocket(sender)
        assert patient.send(memoryview(b"more")) == 0
        assert patient.sendmsg([b"more"]) == 0
        receiver.setblocking(False)
        while True:  # once the reader drains it, sends go through again
            try:
                receiver.recv(1 << 20)
            except BlockingIOError:
                break
        assert patient.send(b"more") == 4


def test_other_socket_errors_still_raise():
    sender, receiver = socket.socketpair()
    receiver.close()
    with sender:
        with pytest.raises(OSError):
            for _ in range(100):  # the peer is gone: EPIPE, a real failure
                _PatientSocket(sender).send(b"x" * 65536)


def test_run_answers_from_the_loop_and_a_stall_is_a_clear_error():
    async def answer() -> int:
        return 42

    async def stall() -> None:
        await asyncio.sleep(3600)

    assert session_bus.run(answer()) == 42
    with pytest.raises(BusUnavailable, match="did not answer within 0.05 s"):
        session_bus.run(stall(), timeout=0.05)


def test_no_bus_is_one_clear_line(monkeypatch):
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
    with pytest.raises(BusUnavailable, match="cannot reach the session D-Bus"):
        session_bus.run(session_bus.connect())


def test_a_timeout_inside_the_coroutine_is_its_own_error_not_the_bus_stalling():
    async def times_out() -> None:
        raise TimeoutError("the server took too long")

    with pytest.raises(TimeoutError, match="the server took too long"):
        session_bus.run(times_out())


def test_run_on_the_loops_own_thread_is_refused_not_a_deadlock():
    async def inner() -> int:
        return 1

    async def outer() -> str:
        coroutine = inner()
        try:
            session_bus.run(coroutine)
        except RuntimeError as error:
            return str(error)
        return "ran"

    assert "own thread" in session_bus.run(outer())


def test_the_user_bus_under_xdg_runtime_dir_is_found_without_an_address(tmp_path, monkeypatch):
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert session_bus._address() is None  # no socket there: dbus-fast says what is missing
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(tmp_path / "bus"))
        assert session_bus._address() == f"unix:path={tmp_path / 'bus'}"
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/x")
    assert session_bus._address() is None  # an address given wins


def test_a_bus_that_is_slow_to_answer_at_login_still_counts_as_a_bus(monkeypatch):
    from tray_alerts import desktop_env

    def slow(coroutine, timeout=5.0):
        coroutine.close()
        raise session_bus.BusTimeout("the session bus did not answer within 2 s")

    def absent(coroutine, timeout=5.0):
        coroutine.close()
        raise BusUnavailable("cannot reach the session D-Bus (FileNotFoundError: …)")

    monkeypatch.setattr(session_bus, "run", slow)
    assert desktop_env._bus_probe() == (True, False)  # so the SNI item starts and waits for its host
    monkeypatch.setattr(session_bus, "run", absent)
    assert desktop_env._bus_probe() == (False, False)


def test_every_connection_gets_the_patient_socket(monkeypatch):
    from desktop_session import DesktopSession, skip_unless_tools

    skip_unless_tools("dbus-daemon")
    with DesktopSession(display=False, notifications=False) as session:
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", session.env["DBUS_SESSION_BUS_ADDRESS"])
        bus = session_bus.run(session_bus.connect())
        try:  # if dbus-fast renamed its writer, this says so instead of the patch silently doing nothing
            assert isinstance(bus._writer.sock, _PatientSocket)
        finally:
            bus.disconnect()


@pytest.mark.parametrize("name", session_bus.DBUS_FAST_LOGGERS)
def test_a_reply_to_a_closed_connection_logs_no_traceback_but_other_errors_still_do(caplog, name):
    import errno
    import logging

    logger = logging.getLogger(name)
    closed = OSError(errno.EBADF, "Bad file descriptor")
    with caplog.at_level(logging.ERROR, logger=name):
        logger.error("Service interface raised an exception", exc_info=(OSError, closed, None))
        assert caplog.records == []  # quitting while a host was asking: nothing lost, nothing to show
        logger.error("Service interface raised an exception", exc_info=(ValueError, ValueError("a bug"), None))
    assert [record.exc_info[0] for record in caplog.records] == [ValueError]


def test_every_dbus_fast_module_that_logs_is_quietened():
    import pathlib
    import re

    import dbus_fast

    root = pathlib.Path(dbus_fast.__file__).parent
    logging_modules = {
        "dbus_fast." + ".".join(path.relative_to(root).with_suffix("").parts)
        for path in root.rglob("*.py")
        if re.search(r"getLogger\(", path.read_text(encoding="utf-8"))
    }
    assert logging_modules <= set(session_bus.DBUS_FAST_LOGGERS)
