"""Command: run a command with a timeout; its exit code says the level, its output goes into the context."""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
from dataclasses import dataclass
from typing import Mapping, Sequence

from ..channels.base import SettingError
from ..display import duration
from ..model import Level, truncate
from .base import Options, Reading

MAX_OUTPUT = 500
DEFAULT_EXIT_LEVELS = {1: Level.WARNING, 2: Level.ERROR}


class CommandMonitor:
    """Exit 0 is fine; `exit_levels` maps other codes (default `1: warning, 2: error`); any other code, or a
    command that cannot start or runs past the timeout, is an error."""

    TYPE = "command"
    OPTIONS = {"command", "shell", "exit_levels"}
    DEFAULT_INTERVAL = 60.0

    def __init__(self, name: str, command: str, timeout: float = 10.0, shell: bool = False,
                 exit_levels: dict[int, Level] | None = None):
        self.name, self.type, self.command = name, self.TYPE, command
        self.label = f"command {truncate(command, 60)}"
        self.timeout, self.shell = timeout, shell
        self.exit_levels = dict(DEFAULT_EXIT_LEVELS if exit_levels is None else exit_levels)

    @classmethod
    def from_options(cls, name: str, options: Options, timeout: float) -> CommandMonitor:
        command = options.required("command")
        shell = options.flag("shell", False)
        if not shell:
            try:
                shlex.split(command)
            except ValueError as error:
                raise SettingError("command", f"cannot be split into words: {error}") from None
        return cls(name, command, timeout, shell, options.typed("exit_levels", parse_exit_levels, None))

    def check(self) -> Reading:
        args = self.command if self.shell else shlex.split(self.command)
        try:
            done = run(args, self.timeout, shell=self.shell)
        except OSError as error:
            return Reading(Level.ERROR, f"cannot start: {error.strerror or error}", None, {"command": self.command})
        if done.code is None:
            return Reading(Level.ERROR, f"did not finish within {duration(self.timeout)}", None,
                           {"command": self.command, "output": _cut(done.output)})
        code, output = done.code, done.output
        context = {"command": self.command, "exit": code, "output": _cut(output)}
        if code == 0:
            return Reading(None, "exited 0", 0, context)
        level = self.exit_levels.get(code, Level.ERROR)
        first_line = _cut(output).splitlines()[0] if output.strip() else ""
        return Reading(level, f"exited {code}" + (f": {first_line}" if first_line else ""), code, context)


@dataclass(frozen=True)
class Finished:
    """How a command ended: its exit code (None: killed at the timeout), its output, its stderr (when apart)."""

    code: int | None
    output: str
    errors: str = ""


def run(args: Sequence[str] | str, timeout: float, shell: bool = False, merge_stderr: bool = True,
        env: Mapping[str, str] | None = None) -> Finished:
    """Run with stdin closed in a process group of its own, killed with its children at the timeout; OSError
    when it cannot start."""
    process = subprocess.Popen(args, shell=shell, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
                               stdin=subprocess.DEVNULL, text=True, errors="replace", start_new_session=True,
                               env=env)
    try:
        output, errors = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        output, errors = process.communicate()
        return Finished(None, output or "", errors or "")
    return Finished(process.returncode, output or "", errors or "")


def parse_exit_levels(text: str) -> dict[int, Level]:
    """`1: warning, 2: error, 3: critical` as a dict."""
    levels = {}
    for item in text.split(","):
        code, sep, level = item.partition(":")
        if not sep or not code.strip().isdigit():
            raise ValueError(f"expected `code: level` pairs like `1: warning, 2: error`, got {item.strip()!r}")
        levels[int(code)] = Level.parse(level)
    return levels


def _cut(output: str | None) -> str:
    return truncate((output or "").strip(), MAX_OUTPUT)


def _kill_group(process: subprocess.Popen) -> None:
    """Kill the command and anything it started."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, AttributeError):
        process.kill()
