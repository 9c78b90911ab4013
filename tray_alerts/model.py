"""What happened: severity levels and the Alert value every other part passes around."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from .display import clock, duration

MAX_EVENT_LENGTH = 200
MAX_MESSAGE_LENGTH = 4000
MAX_CONTEXT_ITEMS = 50
MAX_CONTEXT_KEY_LENGTH = 100
MAX_CONTEXT_VALUE_LENGTH = 1000
ELLIPSIS = "…"
POSSIBLE_REPEAT_NOTE = "possibly a repeat: an earlier try may have arrived"


class Level(str, Enum):
    """Ordered severities; compare by severity, serialise as the lower-case name."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Position in the severity order, INFO = 0."""
        return _RANK[self]

    @classmethod
    def parse(cls, value: Any) -> Level:
        """A Level from a Level or a level name in any case; ValueError lists the allowed names."""
        if isinstance(value, Level):
            return value
        if isinstance(value, str):
            found = _BY_NAME.get(value.strip().lower())
            if found is not None:
                return found
        allowed = ", ".join(level.value for level in cls)
        raise ValueError(f"unknown level {value!r} (allowed: {allowed})")

    def __str__(self) -> str:
        return self.value

    def __lt__(self, other: object) -> bool:
        return _RANK[self] < _rank_of(other)

    def __le__(self, other: object) -> bool:
        return _RANK[self] <= _rank_of(other)

    def __gt__(self, other: object) -> bool:
        return _RANK[self] > _rank_of(other)

    def __ge__(self, other: object) -> bool:
        return _RANK[self] >= _rank_of(other)

    __hash__ = str.__hash__


_RANK = {level: rank for rank, level in enumerate(Level)}
_BY_NAME = {level.value: level for level in Level}


def _rank_of(other: object) -> int:
    """Severity rank of a Level or level name, so `Level.INFO < "warning"` compares by severity too."""
    if isinstance(other, str):
        return _RANK[Level.parse(other)]
    raise TypeError(f"cannot compare a Level with {type(other).__name__}")


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(timezone.utc)


def from_timestamp(seconds: float) -> datetime:
    """A Unix time as an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, timezone.utc)


@dataclass
class Alert:
    """One notification about an event: a firing, an escalation, a reminder or (resolved=True) a recovery.

    `firing_for` (seconds) is set on recoveries and reminders: how long the event has been firing. `episode` names
    the firing episode (first firing to recovery) it belongs to: the incident's fingerprint, and `since` when it
    began; `possible_repeat` says an earlier try (cut off by a crash, or unanswered) may have arrived already."""

    event: str
    level: Level
    message: str
    context: dict = field(default_factory=dict)
    at: datetime = field(default_factory=utc_now)
    resolved: bool = False
    reminder: bool = False
    firing_for: float | None = None
    episode: str = ""
    possible_repeat: bool = False
    since: datetime | None = None  # when the episode began (its first firing)
    released_from: str = ""  # the parent whose recovery let this firing out (it was inhibited until then)

    def __post_init__(self) -> None:
        self.level = Level.parse(self.level)
        if self.at.tzinfo is None:
            raise ValueError("Alert.at must be timezone-aware")

    @property
    def tag(self) -> str:
        """`CRITICAL`, or `RESOLVED` for a recovery."""
        return "RESOLVED" if self.resolved else self.level.value.upper()

    def format(self) -> str:
        """One line: `[CRITICAL] disk at 95% on /var (14:30:01) host=web-01 mount=/var`."""
        clock = self.at.astimezone().strftime("%H:%M:%S")
        parts = [f"[{self.tag}] {self.message} ({clock})"]
        parts.extend(f"{key}={value}" for key, value in self.context.items())
        note = self.note()
        return " ".join(parts) + (f" — {note}" if note else "")

    def note(self) -> str | None:
        """`recovered after 42 min (CRITICAL from 14:32)` on a recovery — the incident it ends —, `reminder: still
        firing after 2 h` on a reminder, and `possibly a repeat` when an earlier attempt may have arrived."""
        notes = []
        if self.resolved and (self.firing_for is not None or self.since is not None):
            lasted = f" after {duration(self.firing_for)}" if self.firing_for is not None else ""
            began = f" ({self.level.value.upper()} from {clock(self.since, self.at, seconds=False)})" \
                if self.since is not None else ""
            notes.append(f"recovered{lasted}{began}")
        elif self.firing_for is not None and self.reminder:
            notes.append(f"reminder: still firing after {duration(self.firing_for)}")
        elif self.released_from:
            notes.append(f"still firing after {self.released_from} recovered")
        if self.possible_repeat:
            notes.append(POSSIBLE_REPEAT_NOTE)
        return "; ".join(notes) or None

    def to_dict(self) -> dict:
        """A JSON-ready dict (level as its name, time as ISO 8601)."""
        return {
            "event": self.event,
            "level": self.level.value,
            "message": self.message,
            "context": dict(self.context),
            "at": self.at.isoformat(),
            "resolved": self.resolved,
            **({"reminder": True} if self.reminder else {}),
            **({"firing_for": self.firing_for} if self.firing_for is not None else {}),
            **({"episode": self.episode} if self.episode else {}),
            **({"possible_repeat": True} if self.possible_repeat else {}),
            **({"since": self.since.isoformat()} if self.since is not None else {}),
            **({"released_from": self.released_from} if self.released_from else {}),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Alert:
        """The inverse of to_dict."""
        return cls(
            event=data["event"],
            level=Level.parse(data["level"]),
            message=data["message"],
            context=dict(data.get("context") or {}),
            at=datetime.fromisoformat(data["at"]),
            resolved=bool(data.get("resolved", False)),
            reminder=bool(data.get("reminder", False)),
            firing_for=data.get("firing_for"),
            episode=str(data.get("episode") or ""),
            possible_repeat=bool(data.get("possible_repeat", False)),
            since=datetime.fromisoformat(data["since"]) if data.get("since") else None,
            released_from=str(data.get("released_from") or ""),
        )


def check_event(event: Any) -> str:
    """The event id if usable (a non-empty line of printable text), else ValueError."""
    if not isinstance(event, str) or not event.strip():
        raise ValueError(f"event id must be a non-empty string, got {event!r}")
    if len(event) > MAX_EVENT_LENGTH:
        raise ValueError(f"event id longer than {MAX_EVENT_LENGTH} characters")
    if not event.isprintable():
        raise ValueError(f"event id must not contain control characters: {event!r}")
    return event


def truncate(text: str, limit: int) -> str:
    """Text cut to at most `limit` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def clean_message(message: Any) -> str:
    """The message as a string of sane length that can be stored as UTF-8."""
    return _encodable(truncate(message if isinstance(message, str) else str(message), MAX_MESSAGE_LENGTH))


def clean_context(context: dict) -> dict:
    """Context made safe to store and show: string keys, JSON values, bounded sizes."""
    cleaned: dict[str, Any] = {}
    for index, (key, value) in enumerate(context.items()):
        if index >= MAX_CONTEXT_ITEMS:
            cleaned["…"] = f"{len(context) - MAX_CONTEXT_ITEMS} more items dropped"
            break
        cleaned[_encodable(truncate(str(key), MAX_CONTEXT_KEY_LENGTH))] = _clean_value(value)
    return cleaned


def context_arguments(context: dict) -> dict[str, Any]:
    """Context from outside (API, command line) as keyword arguments for raise_alert: string keys, and the
    names raise_alert itself takes (`event`, `level`, `message`) given a trailing underscore."""
    return {(f"{key}_" if str(key) in ("event", "level", "message", "self") else str(key)): value
            for key, value in context.items()}


def _clean_value(value: Any) -> Any:
    """A scalar JSON value kept as is; anything else as bounded text."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if value.bit_length() <= 64:
            return value
        try:  # a huge number: as text (past 4300 digits Python refuses to convert it at all)
            return truncate(str(value), MAX_CONTEXT_VALUE_LENGTH)
        except ValueError:
            return f"integer of {value.bit_length()} bits"
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return _encodable(truncate(value, MAX_CONTEXT_VALUE_LENGTH))
    try:
        text = json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)
    except Exception:  # unsortable keys, a cycle, nesting too deep, a huge int, a __str__ that fails
        try:
            text = repr(value)
        except Exception:
            text = f"<{type(value).__name__}>"
    return _encodable(truncate(text, MAX_CONTEXT_VALUE_LENGTH))


def _encodable(text: str) -> str:
    """The text with lone surrogates (which UTF-8 cannot encode, so SQLite and files refuse) replaced by U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= char <= "\udfff" else char for char in text)
    return text
