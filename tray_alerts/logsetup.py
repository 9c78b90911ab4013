"""Application logging: stderr and a rotating file, both with secrets masked."""
from __future__ import annotations

import logging
import os
from logging.handlers import RotatingFileHandler
from pathlib import Path

from .paths import FolderError, private_folder
from .redact import RedactingFilter

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FAR_BELOW_LIMIT = 256 * 1024  # bytes under maxBytes within which no record can reach the limit (records are cut)


class PrivateRotatingFileHandler(RotatingFileHandler):
    """A rotating log whose files (the first and every one after a rollover) only their owner can read."""

    _regular = True  # whether the open file is a regular one (a rollover reopens it and looks again)

    def _open(self):  # type: ignore[override]
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._regular = os.path.isfile(self.baseFilename)
        return open(fd, self.mode, encoding=self.encoding, errors=self.errors)

    def shouldRollover(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        """Exact only near the size limit: far below it, one tell() (the base class checks the path twice and
        formats every record a second time, a fifth of the CPU of a burst of alerts)."""
        if self.stream is not None and self.maxBytes > 0 and self._regular and \
                self.stream.tell() < self.maxBytes - FAR_BELOW_LIMIT:
            return False
        return bool(super().shouldRollover(record))


def configure_logging(log_file: Path | None, level: str = "info", stderr_level: str | None = None) -> None:
    """Send the `tray_alerts` loggers to stderr (at stderr_level) and to log_file (at level).

    With a stderr_level of its own (the one-shot CLI commands) the alert lines stay out of stderr,
    which is the command's own output.
    """
    root = logging.getLogger("tray_alerts")
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    redacting = RedactingFilter()
    stderr = logging.StreamHandler()
    stderr.setLevel((stderr_level or level).upper())
    stderr.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    stderr.addFilter(redacting)
    if stderr_level is not None:
        stderr.addFilter(lambda record: not record.name.startswith("tray_alerts.alerts"))
    root.addHandler(stderr)
    if log_file is not None:
        try:
            private_folder(log_file.parent, "log folder", "log_file")
            log_file.touch(mode=0o600, exist_ok=True)
            handler = PrivateRotatingFileHandler(log_file, maxBytes=2_000_000, backupCount=5, encoding="utf-8")
        except FolderError as error:
            root.warning("cannot write the log file %s: %s", log_file, error)
        except OSError as error:
            root.warning("cannot write the log file %s: %s", log_file, error.strerror)
        else:
            if os.name == "posix":
                os.chmod(log_file, 0o600)
            handler.setLevel(level.upper())
            handler.setFormatter(logging.Formatter(FORMAT))
            handler.addFilter(redacting)
            root.addHandler(handler)
    root.setLevel(min(logging.getLevelName(level.upper()), logging.getLevelName((stderr_level or level).upper())))
    root.propagate = False
