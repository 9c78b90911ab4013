"""The log channel: one line per alert into the application log or a file of its own."""
from __future__ import annotations

import errno
import logging
import os
import threading
from datetime import datetime
from pathlib import Path
from typing import Mapping, TextIO

from ..model import Alert, Level
from ..paths import FolderError, private_folder
from ..templates import PLAIN, Wording
from .base import SettingError

_LOG_LEVELS = {
    Level.INFO: logging.INFO,
    Level.WARNING: logging.WARNING,
    Level.ERROR: logging.ERROR,
    Level.CRITICAL: logging.CRITICAL,
}


class LogChannel:
    """Writes `event: [LEVEL] message (time) context` lines; recoveries are logged at INFO."""

    stateless = True  # needs no state to deliver: told directly while the state file cannot be written
    TEMPLATES = ("body",)  # the line after `event: `
    wording: Wording = PLAIN

    def __init__(self, name: str = "log", file: str | Path | None = None):
        self.name = name
        self._logger = logging.getLogger(f"tray_alerts.alerts.{name}")
        self._file = RotatingLines(Path(file).expanduser()) if file is not None else None

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, str]) -> LogChannel:
        """Built from a [channel.NAME] section: optional `file`."""
        file = options.get("file", "").strip() or None
        try:
            return cls(name, file)
        except OSError as error:
            raise SettingError("file", f"cannot open {file!r}: {error.strerror}") from None

    def send(self, alert: Alert) -> None:
        """Write the alert's line."""
        text = alert.format()
        if self.wording is not PLAIN:
            text = " ".join(self.wording.body(alert, text).splitlines())  # a template's text: one alert, one line
        if self._file is not None:
            self._file.write(f"{alert.event}: {text}")
        else:
            level = logging.INFO if alert.resolved else _LOG_LEVELS[alert.level]
            self._logger.log(level, "%s: %s", alert.event, text)

    def close(self) -> None:
        """Close a file of its own."""
        if self._file is not None:
            self._file.close()


class RotatingLines:
    """Appends time-stamped lines to a file, keeping `backups` older files of at most `max_bytes` each."""

    def __init__(self, path: Path, max_bytes: int = 5_000_000, backups: int = 3):
        self.path, self.max_bytes, self.backups = path, max_bytes, backups
        self._lock = threading.Lock()
        try:
            private_folder(path.parent, "log folder")
        except FolderError as error:
            raise OSError(errno.EACCES, str(error)) from None
        self._stream = self._open()

    def _open(self) -> TextIO:
        # Readable by its owner only, like the application log and state.db: the lines carry the alerts' context.
        stream = open(self.path, "a", encoding="utf-8", opener=lambda path, flags: os.open(path, flags, 0o600))
        self._size = stream.tell()
        return stream

    def write(self, line: str) -> None:
        """Append one line, rotating first when the file is full."""
        text = f"{datetime.now().isoformat(sep=' ', timespec='milliseconds')} {line}\n"
        with self._lock:
            if self._size + len(text) > self.max_bytes and self._size > 0:
                self._rotate()
            self._stream.write(text)
            self._stream.flush()
            self._size += len(text) if text.isascii() else len(text.encode("utf-8"))

    def _rotate(self) -> None:
        self._stream.close()
        for index in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{index + 1}"))
        if self.backups:
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink()
        self._stream = self._open()

    def close(self) -> None:
        with self._lock:
            self._stream.close()
