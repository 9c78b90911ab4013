"""systemd: is a unit active? Asks `systemctl show` (the system manager, or the user's with `user = yes`)."""
from __future__ import annotations

import re

from ..channels.base import SettingError
from ..display import duration
from ..model import Level
from .base import Options, Reading
from .command import run

PROPERTIES = ("LoadState", "ActiveState", "SubState", "Result")
_UNIT = re.compile(r"^[\w:.@\\-]+$")


def parse_show(text: str) -> dict[str, str]:
    """`KEY=value` lines of `systemctl show` as a dict."""
    return {key.strip(): value.strip() for key, sep, value in (line.partition("=") for line in text.splitlines())
            if sep and key.strip()}


def judge(state: dict[str, str], failed: Level, inactive: Level | None) -> tuple[Level | None, str]:
    """(level, summary): active or reloading is fine; failed, restarting after a failure, not found or a bad unit
    file is `failed`; inactive, activating, deactivating (and anything else) is `inactive` (None: fine)."""
    load, active = state.get("LoadState", ""), state.get("ActiveState", "")
    sub, result = state.get("SubState", ""), state.get("Result", "")
    why = f", result {result}" if result and result != "success" else ""
    if load == "not-found":
        return failed, "is not loaded (no such unit)"
    if load in ("error", "bad-setting"):
        return failed, f"is not loaded ({load}: a bad unit file)"
    if active in ("active", "reloading"):
        return None, f"is {active} ({sub})" if sub else f"is {active}"
    if active == "failed":
        return failed, f"has failed (result {result})" if why else "has failed"
    if active == "activating" and sub == "auto-restart":
        return failed, f"is restarting after a failure (auto-restart{why})"
    if not active:
        return Level.ERROR, "is unknown: systemctl's answer has no ActiveState"
    masked = " and masked" if load == "masked" else ""
    return inactive, f"is {active}{masked} ({sub}{why})" if sub else f"is {active}{masked}"


def parse_inactive(text: str) -> Level | None:
    """A level, or `ok` (None)."""
    return None if text.strip().lower() == "ok" else Level.parse(text)


class SystemdMonitor:
    """ActiveState of `unit`: active is fine, failed (or not found) is `level` (error), inactive or in between
    is `inactive` (warning; `ok` to accept it, e.g. for a unit a timer starts)."""

    TYPE = "systemd"
    OPTIONS = {"unit", "user", "level", "inactive"}
    DEFAULT_INTERVAL = 30.0

    def __init__(self, name: str, unit: str, user: bool = False, timeout: float = 10.0, level: Level = Level.ERROR,
                 inactive: Level | None = Level.WARNING):
        self.name, self.type, self.unit, self.user = name, self.TYPE, unit, user
        self.label = f"systemd {unit}" + (" (user)" if user else "")
        self.timeout, self.level, self.inactive = timeout, level, inactive

    @classmethod
    def from_options(cls, name: str, options: Options, timeout: float) -> SystemdMonitor:
        unit = options.required("unit")
        if not _UNIT.match(unit) or unit.startswith("-"):
            raise SettingError("unit", f"not a unit name like nginx.service: {unit!r}")
        inactive: Level | None = Level.WARNING
        return cls(name, unit, options.flag("user", False), timeout, options.level("level", Level.ERROR),
                   options.typed("inactive", parse_inactive, inactive))

    def command(self) -> list[str]:
        return ["systemctl", *(["--user"] if self.user else []), "show", self.unit,
                f"--property={','.join(PROPERTIES)}", "--no-pager"]

    def check(self) -> Reading:
        context: dict[str, object] = {"unit": self.unit}
        try:
            done = run(self.command(), self.timeout, merge_stderr=False)
        except OSError as error:
            return Reading(Level.ERROR, f"cannot run systemctl: {error.strerror or error}", None, context)
        if done.code is None:
            return Reading(Level.ERROR, f"systemctl did not answer within {duration(self.timeout)}", None, context)
        if done.code != 0:
            said = (done.errors.strip() or done.output.strip()).partition("\n")[0]
            return Reading(Level.ERROR, f"systemctl failed (exit {done.code})" + (f": {said}" if said else ""),
                           None, context)
        state = parse_show(done.output)
        context.update({key: state[key] for key in PROPERTIES if state.get(key)})
        level, summary = judge(state, self.level, self.inactive)
        return Reading(level, summary, None, context)
