"""The settings files found, read and layered, and their [alerts] section checked: standard library only, so a
quick command (`raise` from cron) learns where the state is and the API's port without loading the rest."""
from __future__ import annotations

import configparser
import os
import re
from pathlib import Path
from typing import Callable, Mapping, NamedTuple, TypeVar

from .paths import PACKAGED_SETTINGS, default_log_file, default_state_dir, user_config_file
from .values import parse_duration

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
    "history_max_age": "how long history lines are kept",
    "history_max_rows": "how many history lines are kept at most",
    "resume_grace": "after a resume from sleep, how long monitors do not judge bad readings",
}
# Below Linux's ephemeral range (32768-60999), so no outgoing connection can hold it; in neither /etc/services
# nor the IANA registry.
DEFAULT_API_PORT = 9977
DEFAULT_HISTORY_MAX_AGE = 30 * 86400.0
DEFAULT_HISTORY_MAX_ROWS = 100_000
DEFAULT_RESUME_GRACE = 120.0
MAX_RESUME_GRACE = 3600.0  # longer, and monitoring would sit idle for much of a day of short naps
LOG_LEVELS = ("debug", "info", "warning", "error")
_ZERO_DURATION = re.compile(r"^0+(?:\.0*)?\s*(?:ms|s|m|h|d)?$", re.IGNORECASE)
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


class Value(NamedTuple):
    """A setting's text after ${ENV} substitution, and the file it came from."""

    text: str
    file: Path


class Layered(NamedTuple):
    """The files read (packaged defaults first), every section's values, and the file each section came from."""

    files: list[Path]
    sections: dict[str, dict[str, Value]]
    section_files: dict[str, Path]


class AlertsSettings(NamedTuple):
    """The [alerts] section, checked: all a quick command needs to reach the running app."""

    files: list[Path]
    state_dir: Path
    log_file: Path
    log_level: str
    delivery_timeout: float
    retry_backoff: float
    retry_backoff_max: float
    delivery_expiry: float
    api_port: int
    history_max_age: float
    history_max_rows: int
    resume_grace: float = DEFAULT_RESUME_GRACE

    @property
    def state_path(self) -> Path:
        return self.state_dir / "state.db"


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


def read_layered(explicit: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Layered:
    """The packaged defaults with the user's settings file layered on top, ${ENV} substituted (not yet checked)."""
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
    return Layered(files, merged, section_files)


def load_alerts(explicit: str | Path | None = None, environ: Mapping[str, str] | None = None) -> AlertsSettings:
    """Just the checked [alerts] section of the layered settings (the rest is checked by config.load_settings)."""
    return alerts_settings(read_layered(explicit, environ))


def alerts_settings(layered: Layered) -> AlertsSettings:
    """The [alerts] section checked: an unknown key or a bad value is a ConfigError naming file, section, key."""
    alerts = layered.sections.get("alerts", {})
    for key, value in alerts.items():
        if key not in ALERTS_KEYS:
            raise ConfigError(value.file, f"unknown key (known: {', '.join(ALERTS_KEYS)})", "alerts", key)
    return AlertsSettings(
        files=layered.files,
        state_dir=typed(alerts, "state_dir", _path, None) or default_state_dir(),
        log_file=typed(alerts, "log_file", _path, None) or default_log_file(),
        log_level=typed(alerts, "log_level", _log_level, "info"),
        delivery_timeout=typed(alerts, "delivery_timeout", parse_duration, 10.0),
        retry_backoff=typed(alerts, "retry_backoff", parse_duration, 5.0),
        retry_backoff_max=typed(alerts, "retry_backoff_max", parse_duration, 600.0),
        delivery_expiry=typed(alerts, "delivery_expiry", parse_duration, 86400.0),
        api_port=typed(alerts, "api_port", _port, DEFAULT_API_PORT),
        history_max_age=typed(alerts, "history_max_age", parse_duration, DEFAULT_HISTORY_MAX_AGE),
        history_max_rows=typed(alerts, "history_max_rows", _at_least_one, DEFAULT_HISTORY_MAX_ROWS),
        resume_grace=typed(alerts, "resume_grace", _grace, DEFAULT_RESUME_GRACE),
    )


def heartbeat_names(layered: Layered) -> list[str]:
    """The [monitor.NAME] sections of type heartbeat that are not switched off (read, not checked)."""
    names = []
    for section, items in layered.sections.items():
        kind, _, name = section.partition(".")
        enabled = items.get("enabled", Value("yes", PACKAGED_SETTINGS)).text.strip().lower()
        if kind == "monitor" and items.get("type", Value("", PACKAGED_SETTINGS)).text.strip().lower() == "heartbeat" \
                and enabled not in ("0", "no", "false", "off"):
            names.append(name)
    return names


def typed(items: Mapping[str, Value], key: str, convert: Callable[[str], T], default: T,
          section: str = "alerts") -> T:
    """A converted value, the default when empty, or a ConfigError naming file, section and key."""
    value = items.get(key)
    if value is None or not value.text.strip():
        return default
    try:
        return convert(value.text.strip())
    except ValueError as error:
        raise ConfigError(value.file, str(error), section, key) from None


def count(text: str) -> int:
    """A whole number, 0 or more."""
    if not text.isdigit():
        raise ValueError(f"not a whole number: {text!r}")
    return int(text)


def _at_least_one(text: str) -> int:
    number = count(text)
    if number < 1:
        raise ValueError(f"must be at least 1: {text!r}")
    return number


def _grace(text: str) -> float:
    """A duration of at most MAX_RESUME_GRACE, or none: 0 (`0s`, `0m`, ...) or `off`."""
    if text.lower() in ("off", "no") or _ZERO_DURATION.match(text):
        return 0.0
    seconds = parse_duration(text)
    if seconds > MAX_RESUME_GRACE:
        raise ValueError(f"at most 1 h (monitors judge no bad reading during it): {text!r}")
    return seconds


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
