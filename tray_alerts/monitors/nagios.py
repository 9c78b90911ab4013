"""Nagios plugins: run any Nagios-compatible check; its exit code is the level, its first line the message,
its performance data the context (the Monitoring Plugins development guidelines, "Plugin output")."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
from dataclasses import dataclass

from ..channels.base import SettingError
from ..display import duration
from ..model import Level, truncate
from .base import Options, Reading
from .command import MAX_OUTPUT, run

PLUGIN_DIR = "/usr/lib/nagios/plugins"
STATES = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}
MAX_MESSAGE = 500
# The monitor's own context keys and raise_alert's parameters: a perfdata label of one of these names gets a `_`.
RESERVED = frozenset({"command", "exit", "output", "stderr", "event", "level", "message", "self"})
_VALUE = re.compile(r"^(U|[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)(.*)$")


@dataclass(frozen=True)
class PerfDatum:
    """One `'label'=value[UOM];[warn];[crit];[min];[max]` item; value None is `U` (could not be determined)."""

    label: str
    value: float | None
    uom: str = ""
    warn: str = ""
    crit: str = ""
    min: str = ""
    max: str = ""
    text: str = ""

    @property
    def shown(self) -> str:
        """The value as written, trailing zeros dropped, with its unit: `4.17`, `91%`, `0.27s`; `unknown` for U."""
        return "unknown" if self.value is None else f"{_tidy(self.text)}{self.uom}"


def parse_plugin_output(text: str) -> tuple[str, str, list[PerfDatum]]:
    """(message, long text, perfdata): the first line before `|` is the message; later lines are long text
    until one holds a `|`, after which (that line's rest and every later line) all is perfdata, as Nagios reads it."""
    lines = text.splitlines()
    if not lines:
        return "", "", []
    message, _, perf = lines[0].partition("|")
    perf_parts, long_lines = [perf], []
    for index, line in enumerate(lines[1:], start=1):
        if "|" in line:
            before, _, after = line.partition("|")
            long_lines.append(before)
            perf_parts += [after, *lines[index + 1:]]
            break
        long_lines.append(line)
    long_text = "\n".join(line.rstrip() for line in long_lines).strip("\n")
    return message.strip(), long_text, parse_perfdata(" ".join(perf_parts))


def parse_perfdata(text: str) -> list[PerfDatum]:
    """The items of a perfdata string, space separated; labels quoted with `'` (`''` is a quote) when they hold
    spaces, `=` or `'`; an item that does not parse is skipped."""
    items, index, end = [], 0, len(text)
    while index < end:
        if text[index].isspace():
            index += 1
            continue
        label, index = _label(text, index)
        stop = index
        while stop < end and not text[stop].isspace():
            stop += 1
        if label is not None and text.startswith("=", index):
            datum = _datum(label, text[index + 1:stop])
            if datum is not None:
                items.append(datum)
        index = stop
    return items


def _label(text: str, index: int) -> tuple[str | None, int]:
    """The label at `index` and where its `=` should be; None when it is not a label."""
    if text[index] != "'":
        stop = index
        while stop < len(text) and text[stop] != "=" and not text[stop].isspace():
            stop += 1
        return (text[index:stop] or None), stop
    chars, index = [], index + 1
    while index < len(text):
        if text[index] == "'":
            if text.startswith("''", index):
                chars.append("'")
                index += 2
                continue
            return ("".join(chars) or None), index + 1
        chars.append(text[index])
        index += 1
    return None, index


def _datum(label: str, field: str) -> PerfDatum | None:
    parts = (field.split(";") + [""] * 4)[:5]
    match = _VALUE.match(parts[0])
    if match is None:
        return None
    number, uom = match.groups()
    value = None if number == "U" else float(number)
    warn, crit, low, high = (part.strip() for part in parts[1:])
    return PerfDatum(label, value, uom, warn, crit, low, high, text=number)


def _tidy(number: str) -> str:
    """`4.170` -> `4.17`, `3.000` -> `3`, `+5` -> `5`; exponents and integers as they are."""
    number = number.lstrip("+")
    if "." in number and "e" not in number.lower():
        number = number.rstrip("0").rstrip(".")
    return number if number not in ("", "-") else "0"


def perf_context(perfdata: list[PerfDatum]) -> dict[str, str]:
    """One context entry per item, named by its label (`load1 = 4.17`); reserved names get a trailing `_`."""
    return {(f"{datum.label}_" if datum.label in RESERVED else datum.label): datum.shown for datum in perfdata}


class NagiosMonitor:
    """Exit 0 is fine, 1 warning, 2 critical, 3 (UNKNOWN) the `unknown` level (warning); the plugin's first
    line is the whole message; any other exit, a plugin that cannot start or outruns the timeout, is an error."""

    TYPE = "nagios"
    OPTIONS = {"command", "plugin_dir", "unknown"}
    DEFAULT_INTERVAL = 60.0

    def __init__(self, name: str, command: str, timeout: float = 10.0, plugin_dir: str = PLUGIN_DIR,
                 unknown: Level = Level.WARNING):
        self.name, self.type, self.command = name, self.TYPE, command
        self.args = shlex.split(command)
        self.label = f"nagios {os.path.basename(self.args[0])}"
        self.timeout, self.plugin_dir, self.unknown = timeout, plugin_dir, unknown

    @classmethod
    def from_options(cls, name: str, options: Options, timeout: float) -> NagiosMonitor:
        command = options.required("command")
        try:
            words = shlex.split(command)
            if not words or not words[0]:
                raise ValueError("no program")
        except ValueError as error:
            raise SettingError("command", f"cannot be split into words: {error}") from None
        plugin_dir = os.path.expanduser(options.text("plugin_dir", PLUGIN_DIR))
        return cls(name, command, timeout, plugin_dir, options.level("unknown", Level.WARNING))

    def executable(self) -> str | None:
        """A bare name from `plugin_dir`, else from PATH; a path as it is."""
        program = os.path.expanduser(self.args[0])
        if "/" in program:
            return program
        candidate = os.path.join(self.plugin_dir, program)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
        return shutil.which(program)

    def check(self) -> Reading:
        context: dict[str, object] = {"command": self.command}
        program = self.executable()
        if program is None:
            return Reading(Level.ERROR, f"cannot start: {self.args[0]} is not in {self.plugin_dir} or on PATH",
                           None, context)
        try:
            done = run([program, *self.args[1:]], self.timeout, merge_stderr=False,
                       env={**os.environ, "LC_NUMERIC": "C"})
        except OSError as error:
            return Reading(Level.ERROR, f"cannot start: {error.strerror or error}", None, context)
        if done.code is None:
            return Reading(Level.ERROR, f"did not finish within {duration(self.timeout)}", None,
                           {**context, "output": truncate(done.output.strip(), MAX_OUTPUT)})
        message, long_text, perfdata = parse_plugin_output(done.output)
        context = {**perf_context(perfdata), **({"output": truncate(long_text, MAX_OUTPUT)} if long_text else {}),
                   **({"stderr": truncate(done.errors.strip(), MAX_OUTPUT)} if done.errors.strip() else {}),
                   "command": self.command, "exit": done.code}
        value = next((datum.value for datum in perfdata), None)
        message = truncate(message, MAX_MESSAGE)
        if done.code not in STATES:
            said = message or done.errors.strip().partition("\n")[0]
            return Reading(Level.ERROR, f"check failed: {_exit(done.code)}, not a plugin state (0-3)"
                           + (f": {truncate(said, MAX_MESSAGE)}" if said else ""), value, context)
        level = {0: None, 1: Level.WARNING, 2: Level.CRITICAL, 3: self.unknown}[done.code]
        if not message:
            return Reading(level, f"returned {STATES[done.code]} without any output", value, context)
        return Reading(level, message, value, context, standalone=True)


def _exit(code: int) -> str:
    """`exit 4`, or `killed by SIGSEGV` for a negative code."""
    if code >= 0:
        return f"exit {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"
