"""The log channel: one line per alert into the application log or a file of its own."""
from __future__ import annotations

import logging
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Mapping

from ..model import Alert, Level
from .base import SettingError

_LOG_LEVELS = {
    Level.INFO: logging.INFO,
    Level.WARNING: logging.WARNING,
    Level.ERROR: logging.ERROR,
    Level.CRITICAL: logging.CRITICAL,
}


class LogChannel:
    """Writes `event: [LEVEL] message (time) context` lines; recoveries are logged at INFO."""

    def __init__(self, name: str = "log", file: str | Path | None = None):
        self.name = name
        self._logger = logging.getLogger(f"tray_alerts.alerts.{name}")
        if file is not None:
            path = Path(file).expanduser()
            path.parent.mkdir(parents=True, exist_ok=True)
            handler = RotatingFileHandler(path, maxBytes=5_000_000, backupCount=3, encoding="utf-8")
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
            self._logger.handlers[:] = [handler]
            self._logger.propagate = False
            self._logger.setLevel(logging.INFO)

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
        level = logging.INFO if alert.resolved else _LOG_LEVELS[alert.level]
        self._logger.log(level, "%s: %s", alert.event, alert.format())

    def close(self) -> None:
        """Close a file of its own."""
        for handler in self._logger.handlers:
            handler.close()
