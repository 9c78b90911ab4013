"""Log pattern: follow a file like `tail -F` and fire on a line matching `pattern`."""
from __future__ import annotations

import os
import re
from typing import BinaryIO

from ..channels.base import SettingError
from ..clock import SYSTEM_CLOCK, Clock
from ..display import duration
from ..model import Level, truncate
from .base import Options, Reading

CHUNK = 64 * 1024
MAX_LINE = 64 * 1024  # a longer line without a newline counts as a line of its own
MAX_SHOWN = 300
SEAM = 64  # bytes before the read position remembered to notice a file rewritten in place


class LogFollower:
    """New complete lines since the last read, across rotation by rename (the old file is read to its end, then
    the new one from its start) and truncation (read again from the start, also when it grew past the old size
    since: the bytes before the position changed); the first read starts at the end."""

    def __init__(self, path: str):
        self.path = path
        self._file: BinaryIO | None = None
        self._partial = b""
        self._seam = b""
        self._started = False

    def read(self) -> list[str]:
        """The lines written since the last read; [] while the file is missing."""
        lines: list[str] = []
        if self._file is not None:
            if self._rewritten():  # truncated (copytruncate), perhaps written again since
                self._file.seek(0)
                self._partial = self._seam = b""
            lines += self._drain()
            if self._replaced():
                lines += self._flush()
                self._file.close()
                self._file = None
        if self._file is None:
            at_end = not self._started
            try:
                self._file = open(self.path, "rb")
            except FileNotFoundError:
                self._started = True  # a file that appears later is new: read from its start
                return lines
            self._started = True
            self._seam = b""
            if at_end:
                position = self._file.seek(0, os.SEEK_END)
                keep = min(SEAM, position)
                self._seam = os.pread(self._file.fileno(), keep, position - keep)
            lines += self._drain()
        return lines

    @property
    def present(self) -> bool:
        return self._file is not None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _rewritten(self) -> bool:
        assert self._file is not None
        position, fd = self._file.tell(), self._file.fileno()
        if os.fstat(fd).st_size < position:
            return True
        return bool(self._seam) and os.pread(fd, len(self._seam), position - len(self._seam)) != self._seam

    def _replaced(self) -> bool:
        """The path is gone or now names another file (rotated)."""
        assert self._file is not None
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return True
        held = os.fstat(self._file.fileno())
        return (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino)

    def _drain(self) -> list[str]:
        assert self._file is not None
        lines = []
        while chunk := self._file.read(CHUNK):
            self._seam = (self._seam + chunk)[-SEAM:]
            *complete, self._partial = (self._partial + chunk).split(b"\n")
            lines += [_text(line) for line in complete]
            if len(self._partial) > MAX_LINE:
                lines += self._flush()
        return lines

    def _flush(self) -> list[str]:
        line, self._partial = self._partial, b""
        return [_text(line)] if line else []


def _text(line: bytes) -> str:
    return line.decode("utf-8", errors="replace").rstrip("\r")


class LogPatternMonitor:
    """A new line matching `pattern` is a bad reading at `level` (error) with the line as the message; it recovers
    on a line matching `clear_pattern` or after `clear_after` without a match; with neither, at the next check
    that sees no new match. Lines already in the file at the first check never fire."""

    TYPE = "log_pattern"
    OPTIONS = {"path", "pattern", "clear_pattern", "clear_after", "level"}
    DEFAULT_INTERVAL = 30.0

    def __init__(self, name: str, path: str, pattern: str, level: Level = Level.ERROR, clear_pattern: str = "",
                 clear_after: float | None = None):
        self.name, self.type, self.path = name, self.TYPE, path
        self.label = f"log {path}"
        self.pattern = re.compile(pattern)
        self.clear_pattern = re.compile(clear_pattern) if clear_pattern else None
        self.level, self.clear_after = level, clear_after
        self.follower = LogFollower(path)
        self.clock: Clock = SYSTEM_CLOCK
        self.line: str | None = None  # the last matching line while firing
        self.matches = 0
        self.matched_at = 0.0

    @classmethod
    def from_options(cls, name: str, options: Options, timeout: float) -> LogPatternMonitor:
        path = os.path.expanduser(options.required("path"))
        pattern = options.required("pattern")
        for key in ("pattern", "clear_pattern"):
            try:
                re.compile(options.text(key))
            except re.error as error:
                raise SettingError(key, f"not a regular expression: {error}") from None
        return cls(name, path, pattern, options.level("level", Level.ERROR), options.text("clear_pattern"),
                   options.duration("clear_after", None))

    def check(self) -> Reading:
        now = self.clock.monotonic()
        context: dict[str, object] = {"path": self.path}
        try:
            lines = self.follower.read()
        except OSError as error:
            return Reading(Level.ERROR, f"cannot read ({error.strerror or error})", None, context)
        fresh, cleared = False, ""
        for line in lines:
            if self.pattern.search(line):
                self.line, self.matched_at, fresh, cleared = line, now, True, ""
                self.matches += 1
            elif self.clear_pattern is not None and self.line is not None and self.clear_pattern.search(line):
                self.line, self.matches, cleared = None, 0, line
        if self.line is not None and not fresh:
            if self.clear_after is not None and now - self.matched_at >= self.clear_after:
                return self._quiet(f"no match for {duration(now - self.matched_at)}", context)
            if self.clear_after is None and self.clear_pattern is None:
                return self._quiet("no new matching line", context)
        if self.line is not None:
            context.update(line=self.line, matches=self.matches)
            return Reading(self.level, f"matched: {truncate(self.line, MAX_SHOWN)}", self.matches, context)
        if cleared:
            context["line"] = cleared
            return Reading(None, f"cleared: {truncate(cleared, MAX_SHOWN)}", 0, context)
        if not self.follower.present:
            return Reading(None, "is missing (waiting for it to appear)", 0, context)
        return Reading(None, "no matching line", 0, context)

    def _quiet(self, summary: str, context: dict[str, object]) -> Reading:
        self.line, self.matches = None, 0
        return Reading(None, summary, 0, context)
