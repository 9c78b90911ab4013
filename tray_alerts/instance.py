"""One app per state folder: the running app holds an exclusive lock on a file there, and that lock (never a
failed connection) is how the CLI and the module-level API know the app is up."""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

from .paths import FolderError, private_folder

LOCK_FILE = "app.lock"
START_WAIT = 5.0  # a starting app waits this long for a command that works on the state directly


class AlreadyRunning(Exception):
    """Another tray-alerts runs on this state folder."""


class AppRunning(Exception):
    """The app took the state folder while a command meant to work on it directly."""


def _open(state_dir: Path) -> IO[bytes]:
    """The lock file, with its folder made private if missing; FolderError (one line) if it cannot be used."""
    private_folder(state_dir, "state folder", "state_dir")
    try:
        fd = os.open(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as error:
        raise FolderError(f"state folder {state_dir}: cannot open {LOCK_FILE}: {error.strerror}"
                          " (set [alerts] state_dir)") from None
    return os.fdopen(fd, "r+b", buffering=0)


def _try_lock(file: IO[bytes], exclusive: bool) -> bool:
    """Take the lock without waiting; False if another process holds it in a conflicting way."""
    if os.name == "posix":
        import fcntl

        try:
            fcntl.flock(file.fileno(), (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    import msvcrt  # Windows has no shared locks: a short exclusive one answers the same question

    try:
        msvcrt.locking(file.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
    except OSError:
        return False
    return True


class InstanceLock:
    """Held by the running app for as long as it runs."""

    def __init__(self, state_dir: Path):
        self.state_dir = state_dir
        self._file: IO[bytes] | None = None

    def acquire(self, wait: float = START_WAIT) -> None:
        """Take the folder; AlreadyRunning (naming the other app's pid) if another app keeps it."""
        file = _open(self.state_dir)
        deadline = time.monotonic() + wait
        while not _try_lock(file, exclusive=True):
            if time.monotonic() >= deadline:
                holder = file.read().decode(errors="replace").strip()
                file.close()
                pid = f" (pid {holder})" if holder.isdigit() else ""
                raise AlreadyRunning(f"tray-alerts is already running on {self.state_dir}{pid}")
            time.sleep(0.05)
        file.seek(0)
        file.truncate()
        file.write(str(os.getpid()).encode())
        self._file = file

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def app_running(state_dir: Path) -> bool:
    """Whether a tray-alerts app holds this state folder now."""
    if not (state_dir / LOCK_FILE).exists():
        return False
    with _open(state_dir) as file:
        return not _try_lock(file, exclusive=False)


@contextmanager
def direct_use(state_dir: Path) -> Iterator[None]:
    """Work on the state folder directly while no app runs (an app starting meanwhile waits for it to end);
    AppRunning if the app holds it."""
    file = _open(state_dir)
    try:
        if not _try_lock(file, exclusive=False):
            raise AppRunning(f"tray-alerts is running on {state_dir}")
        yield
    finally:
        file.close()
