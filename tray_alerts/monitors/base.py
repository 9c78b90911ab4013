"""The monitor contract: a check that returns a Reading, and numeric thresholds with hysteresis."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol, TypeVar, overload

from ..channels.base import SettingError
from ..model import Level
from ..values import parse_bool, parse_duration

T = TypeVar("T")
COMMON_OPTIONS = {"type", "interval", "timeout", "failures_before_alert", "successes_before_clear", "channels",
                  "enabled", "remind_every", "depends_on"}


@dataclass(frozen=True)
class Reading:
    """One observation: what was seen (`at 93% (warning at 80%)`), the level it deserves (None: fine);
    `standalone`: the summary is the whole message (a plugin's own text), not prefixed with the label."""

    level: Level | None
    summary: str
    value: float | None = None
    context: dict = field(default_factory=dict)
    standalone: bool = False

    @property
    def ok(self) -> bool:
        return self.level is None

    def message(self, label: str) -> str:
        """The alert's text: `disk / at 93% (warning at 80%)`, or the summary alone when standalone."""
        return self.summary if self.standalone else f"{label} {self.summary}"


class Monitor(Protocol):
    """Anything with a name, a label for messages (`disk /`) and check() -> Reading."""

    name: str
    type: str
    label: str

    def check(self) -> Reading:
        """Look once; raise only for a failure of the check itself."""


class Options:
    """A [monitor.NAME] section's values, read with type checks that name the key on failure."""

    def __init__(self, options: Mapping[str, str], known: set[str]):
        unknown = sorted(set(options) - known - COMMON_OPTIONS)
        if unknown:
            raise SettingError(unknown[0], f"unknown key (known: {', '.join(sorted(known | COMMON_OPTIONS))})")
        self._options = options

    def text(self, key: str, default: str = "") -> str:
        return self._options.get(key, "").strip() or default

    def required(self, key: str) -> str:
        value = self.text(key)
        if not value:
            raise SettingError(key, "required")
        return value

    def typed(self, key: str, convert: Callable[[str], T], default: T) -> T:
        value = self.text(key)
        if not value:
            return default
        try:
            return convert(value)
        except ValueError as error:
            raise SettingError(key, str(error)) from None

    @overload
    def duration(self, key: str, default: float) -> float: ...
    @overload
    def duration(self, key: str, default: float | None) -> float | None: ...

    def duration(self, key: str, default: float | None) -> float | None:
        return self.typed(key, parse_duration, default)

    @overload
    def number(self, key: str, default: float) -> float: ...
    @overload
    def number(self, key: str, default: float | None) -> float | None: ...

    def number(self, key: str, default: float | None) -> float | None:
        return self.typed(key, _number, default)

    def flag(self, key: str, default: bool) -> bool:
        return self.typed(key, parse_bool, default)

    def level(self, key: str, default: Level) -> Level:
        return self.typed(key, Level.parse, default)


def _number(text: str) -> float:
    try:
        value = float(text.rstrip("%").strip())
    except ValueError:
        raise ValueError(f"not a number: {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"not a number: {text!r}")
    return value


class Thresholds:
    """Per-level limits on one number (higher is worse) with hysteresis: once at a level, the value must
    fall `hysteresis` below that level's limit to leave it, so a reading hovering at a limit does not flap."""

    def __init__(self, limits: Mapping[Level, float], hysteresis: float = 0.0, unit: str = "",
                 show: Callable[[float], str] | None = None):
        self.limits = dict(sorted(limits.items()))
        self.hysteresis = hysteresis
        self.current: Level | None = None
        self._show = show or (lambda value: f"{value:g}{unit}")

    @classmethod
    def from_options(cls, options: Options, read: Callable[[str, float | None], float | None],
                     prefix: str = "", required: bool = True, **kwargs: object) -> Thresholds:
        """`warning`, `error`, `critical` (with an optional prefix, e.g. `latency_warning`); at least one
        unless not required."""
        limits = {}
        for level in Level:
            value = read(f"{prefix}{level.value}", None)
            if value is not None:
                limits[level] = value
        ordered = list(limits.items())
        for (low, low_value), (high, high_value) in zip(ordered, ordered[1:]):
            if high_value < low_value:
                raise SettingError(f"{prefix}{high.value}", f"must not be below {prefix}{low.value} ({low_value:g})")
        hysteresis = kwargs.get("hysteresis")
        if isinstance(hysteresis, (int, float)) and hysteresis < 0:
            raise SettingError("hysteresis", "must not be negative")
        if required and not limits:
            raise SettingError(f"{prefix}warning", f"set at least one of {prefix}warning, {prefix}error,"
                                                   f" {prefix}critical")
        return cls(limits, **kwargs)  # type: ignore[arg-type]

    def __bool__(self) -> bool:
        return bool(self.limits)

    def show(self, value: float) -> str:
        return self._show(value)

    def classify(self, value: float) -> Level | None:
        """The level this value deserves, remembering the last one for hysteresis."""
        raw = None
        for level, limit in self.limits.items():
            if value >= limit:
                raw = level
        held = self.current
        while held is not None and value < self.limits[held] - self.hysteresis:
            lower = [level for level in self.limits if level < held]
            held = lower[-1] if lower else None
        self.current = raw if held is None or (raw is not None and raw > held) else held
        return self.current

    def describe(self, value: float, level: Level | None) -> str:
        """`at 93% (warning at 80%)`, or `at 60% (warning at 80%)` when fine."""
        if level is not None:
            return f"at {self.show(value)} ({level.value} at {self.show(self.limits[level])})"
        lowest, limit = next(iter(self.limits.items()))
        return f"at {self.show(value)} ({lowest.value} at {self.show(limit)})"
