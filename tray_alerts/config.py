"""settings.ini -> typed Settings; every problem names the file, section and key in one line."""
from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, TypeVar

from .channels import CHANNEL_TYPES
from .channels.base import SettingError
from .monitors import MONITOR_TYPES, MonitorSpec, build_monitor
from .model import Level
from .paths import PACKAGED_SETTINGS, default_log_file, default_state_dir, user_config_file
from .outbox import RetryPolicy
from .reminders import ReminderPolicy
from .routing import Routing
from .storm import ChannelLimits
from .values import parse_bool, parse_duration

ENV_CONFIG = "TRAY_ALERTS_CONFIG"
MAX_SETTINGS_BYTES = 1_000_000
ALERTS_KEYS = {
    "state_dir": "folder for state.db",
    "log_file": "the rotating log file",
    "log_level": "debug, info, warning or error",
    "delivery_timeout": "seconds a channel may take",
    "retry_backoff": "first wait before a retry",
    "retry_backoff_max": "longest wait between retries",
    "delivery_expiry": "how long a failed delivery is retried",
    "api_port": "port of the push API on 127.0.0.1",
}
DEFAULT_API_PORT = 47913
CHANNEL_COMMON_KEYS = ("type", "enabled", "max_per_minute", "group_after", "group_window")
LOG_LEVELS = ("debug", "info", "warning", "error")
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
T = TypeVar("T")


class ConfigError(Exception):
    """A settings problem a person can act on: `settings.ini [routing] critical: unknown channel 'smss'`."""

    def __init__(self, file: str | Path, problem: str, section: str | None = None, key: str | None = None):
        where = str(file) + (f" [{section}]" if section else "") + (f" {key}" if key else "")
        super().__init__(_printable(f"{where}: {problem}"))
        self.file, self.section, self.key, self.problem = str(file), section, key, problem


def _printable(text: str) -> str:
    """The text with control characters (a \\r or an escape sequence in a section name, say) shown as escapes, so
    the error stays one harmless line."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii") for char in text)


@dataclass(frozen=True)
class Value:
    """A setting's text after ${ENV} substitution, and the file it came from."""

    text: str
    file: Path


@dataclass
class ChannelSettings:
    """One [channel.NAME] section."""

    name: str
    type: str
    options: dict[str, str]
    files: dict[str, Path]
    section_file: Path
    enabled: bool = True
    limits: ChannelLimits = field(default_factory=ChannelLimits)

    @property
    def section(self) -> str:
        return f"channel.{self.name}"

    def error(self, key: str | None, problem: str) -> ConfigError:
        """A ConfigError pointing at one of this section's keys."""
        return ConfigError(self.files.get(key, self.section_file) if key else self.section_file, problem,
                           self.section, key)


@dataclass
class Settings:
    """Everything settings.ini says, checked."""

    files: list[Path]
    state_dir: Path
    log_file: Path
    log_level: str
    delivery_timeout: float
    retry: RetryPolicy
    routing: Routing
    channels: dict[str, ChannelSettings] = field(default_factory=dict)
    monitors: dict[str, MonitorSpec] = field(default_factory=dict)
    api_port: int = 0
    reminders: ReminderPolicy = field(default_factory=ReminderPolicy)

    @property
    def state_path(self) -> Path:
        return self.state_dir / "state.db"

    @property
    def user_file(self) -> Path | None:
        """The file layered over the packaged defaults, if any."""
        return self.files[-1] if len(self.files) > 1 else None


def find_settings_file(explicit: str | Path | None = None) -> Path | None:
    """The user's settings file: --config, then $TRAY_ALERTS_CONFIG, then the config dir; None if none."""
    for candidate, origin in ((explicit, "--config"), (os.environ.get(ENV_CONFIG), f"${ENV_CONFIG}")):
        if candidate:
            path = Path(candidate).expanduser()
            if not path.is_file():
                problem = "a folder, not a settings file" if path.is_dir() else "file not found"
                raise ConfigError(path, f"{problem} (given by {origin})")
            return path
    path = user_config_file()
    return path if path.is_file() else None


def load_settings(explicit: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """The packaged defaults with the user's settings file layered on top, checked."""
    files = [PACKAGED_SETTINGS]
    user_file = find_settings_file(explicit)
    if user_file is not None and user_file.resolve() != PACKAGED_SETTINGS.resolve():
        files.append(user_file)
    merged: dict[str, dict[str, Value]] = {}
    section_files: dict[str, Path] = {}
    env = os.environ if environ is None else environ
    for path in files:
        for section, items in _read_file(path).items():
            section_files.setdefault(section, path)
            target = merged.setdefault(section, {})
            for key, raw in items.items():
                target[key] = Value(_substitute(raw, env), path)
    return _build(files, merged, section_files)


def _read_file(path: Path) -> dict[str, dict[str, str]]:
    """One file's sections and raw values; a broken file gives one clear ConfigError."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError(path, f"cannot read: {error.strerror}") from None
    if len(data) > MAX_SETTINGS_BYTES:
        raise ConfigError(path, f"file too large ({len(data):,} bytes; at most {MAX_SETTINGS_BYTES:,})")
    if b"\0" in data:
        raise ConfigError(path, "binary data, not a settings file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ConfigError(path, f"not UTF-8 text (byte {error.start})") from None
    parser = configparser.ConfigParser(interpolation=None, default_section="\0none", strict=True)
    parser.optionxform = str.lower  # type: ignore[assignment]
    try:
        parser.read_string(text, source=str(path))
    except configparser.MissingSectionHeaderError as error:
        raise ConfigError(path, f"line {error.lineno}: text before the first [section]") from None
    except configparser.DuplicateSectionError as error:
        raise ConfigError(path, f"line {error.lineno}: section appears twice", error.section) from None
    except configparser.DuplicateOptionError as error:
        raise ConfigError(path, f"line {error.lineno}: key appears twice", error.section, error.option) from None
    except configparser.ParsingError as error:
        lineno = error.errors[0][0]  # the line as configparser keeps it is already repr()'d (in some versions)
        lines = text.split("\n")  # configparser counts lines split at \n only
        line = lines[lineno - 1] if 0 < lineno <= len(lines) else ""
        raise ConfigError(path, f"line {lineno}: not `key = value`: {line.strip()[:60]!r}") from None
    except configparser.Error as error:
        raise ConfigError(path, str(error).splitlines()[0]) from None
    return {section: dict(parser.items(section)) for section in parser.sections()}


def _substitute(text: str, env: Mapping[str, str]) -> str:
    """Replace ${NAME} (or ${NAME:-default}) from the environment; an unset name becomes ''."""
    return _ENV_REFERENCE.sub(lambda match: env.get(match.group(1)) or (match.group(2) or ""), text)


def _build(files: list[Path], merged: dict[str, dict[str, Value]], section_files: dict[str, Path]) -> Settings:
    for section in merged:
        kind, _, name = section.partition(".")
        if section not in ("alerts", "routing", "reminders") and (kind not in ("channel", "monitor")
                                                                  or not name.strip()):
            raise ConfigError(section_files[section], "unknown section (known: alerts, routing, reminders,"
                              " channel.NAME, monitor.NAME)", section)
    alerts = merged.get("alerts", {})
    for key, value in alerts.items():
        if key not in ALERTS_KEYS:
            raise ConfigError(value.file, f"unknown key (known: {', '.join(ALERTS_KEYS)})", "alerts", key)
    channels = _channels(merged, section_files)
    monitors = _monitors(merged, section_files, channels)
    routing = _routing(merged.get("routing", {}), channels)
    routing.events.update({name: spec.channels for name, spec in monitors.items() if spec.channels is not None})
    return Settings(
        files=files,
        state_dir=_typed(alerts, "state_dir", _path, default_state_dir()),
        log_file=_typed(alerts, "log_file", _path, default_log_file()),
        log_level=_typed(alerts, "log_level", _log_level, "info"),
        delivery_timeout=_typed(alerts, "delivery_timeout", parse_duration, 10.0),
        retry=RetryPolicy(first=_typed(alerts, "retry_backoff", parse_duration, 5.0),
                          longest=_typed(alerts, "retry_backoff_max", parse_duration, 600.0),
                          expiry=_typed(alerts, "delivery_expiry", parse_duration, 86400.0)),
        api_port=_typed(alerts, "api_port", _port, DEFAULT_API_PORT),
        reminders=_reminders(merged.get("reminders", {}), monitors),
        routing=routing,
        channels=channels,
        monitors=monitors,
    )


def _typed(items: dict[str, Value], key: str, convert: Callable[[str], T], default: T,
           section: str = "alerts") -> T:
    """A converted value, the default when empty, or a ConfigError naming file, section and key."""
    value = items.get(key)
    if value is None or not value.text.strip():
        return default
    try:
        return convert(value.text.strip())
    except ValueError as error:
        raise ConfigError(value.file, str(error), section, key) from None


def _path(text: str) -> Path:
    return Path(text).expanduser()


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"not a port number (1-65535): {text!r}")
    return int(text)


def _log_level(text: str) -> str:
    if text.lower() not in LOG_LEVELS:
        raise ValueError(f"unknown log level {text!r} (allowed: {', '.join(LOG_LEVELS)})")
    return text.lower()


def _section_type(items: dict[str, Value], default: str) -> tuple[Value | None, str]:
    """A section's `type` value (for error locations) and its lower-case name, or the default when empty."""
    value = items.get("type")
    text = value.text.strip().lower() if value else ""
    return value, text or default


def _channels(merged: dict[str, dict[str, Value]], section_files: dict[str, Path]) -> dict[str, ChannelSettings]:
    channels = {}
    for section, items in merged.items():
        if not section.startswith("channel."):
            continue
        name = section.partition(".")[2]
        type_value, type_name = _section_type(items, default=name)
        if type_name not in CHANNEL_TYPES:
            raise ConfigError(type_value.file if type_value else section_files[section],
                              f"unknown channel type {type_name!r} (known: {', '.join(CHANNEL_TYPES)})",
                              section, "type" if type_value else None)
        enabled = _typed(items, "enabled", parse_bool, True, section)
        limits = ChannelLimits(max_per_minute=_typed(items, "max_per_minute", _count, 0, section),
                               group_after=_typed(items, "group_after", _count, 0, section),
                               group_window=_typed(items, "group_window", parse_duration, 30.0, section))
        options = {key: value.text for key, value in items.items() if key not in CHANNEL_COMMON_KEYS}
        channels[name] = ChannelSettings(name, type_name, options, {k: v.file for k, v in items.items()},
                                         section_files[section], enabled, limits)
    return channels


def _monitors(merged: dict[str, dict[str, Value]], section_files: dict[str, Path],
              channels: dict[str, ChannelSettings]) -> dict[str, MonitorSpec]:
    monitors = {}
    for section, items in merged.items():
        if not section.startswith("monitor."):
            continue
        name = section.partition(".")[2]
        type_value, type_name = _section_type(items, default="")
        if type_name not in MONITOR_TYPES:
            problem = (f"unknown monitor type {type_name!r}" if type_name else "type is missing") + \
                f" (known: {', '.join(MONITOR_TYPES)})"
            raise ConfigError(type_value.file if type_value else section_files[section], problem, section, "type")
        if not _typed(items, "enabled", parse_bool, True, section):
            continue
        try:
            spec = build_monitor(name, type_name, {key: value.text for key, value in items.items()})
        except SettingError as error:
            value = items.get(error.key)
            raise ConfigError(value.file if value else section_files[section], error.problem, section,
                              error.key) from None
        for channel in spec.channels or ():
            if channel not in channels:
                raise ConfigError(items["channels"].file, f"unknown channel {channel!r} (known: {', '.join(channels)})",
                                  section, "channels")
        monitors[name] = spec
    return monitors


def _count(text: str) -> int:
    if not text.isdigit():
        raise ValueError(f"not a whole number: {text!r}")
    return int(text)


def _level_key(key: str, value: Value, section: str) -> Level:
    """A key that must name a level (in [routing] and [reminders])."""
    try:
        return Level.parse(key)
    except ValueError as error:
        raise ConfigError(value.file, str(error), section, key) from None


def _reminders(items: dict[str, Value], monitors: dict[str, MonitorSpec]) -> ReminderPolicy:
    """[reminders] level = duration (or off), and each monitor's remind_every."""
    levels = {}
    for key, value in items.items():
        level = _level_key(key, value, "reminders")
        text = value.text.strip().lower()
        if text and text not in ("off", "no", "never"):
            levels[level] = _typed(items, key, parse_duration, 0.0, "reminders")
    events = {name: spec.remind_every for name, spec in monitors.items() if spec.remind_every}
    return ReminderPolicy(levels, events)


def _routing(items: dict[str, Value], channels: dict[str, ChannelSettings]) -> Routing:
    routes: dict[Level | str, list[str]] = {}
    for key, value in items.items():
        level = _level_key(key, value, "routing")
        names = [name.strip() for name in value.text.split(",") if name.strip()]
        for name in names:
            if name not in channels:
                raise ConfigError(value.file, f"unknown channel {name!r} (known: {', '.join(channels)})",
                                  "routing", key)
        routes[level] = names
    return Routing(routes)
