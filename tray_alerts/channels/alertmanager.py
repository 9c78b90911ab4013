"""Push alerts to a team's Prometheus Alertmanager (POST /api/v2/alerts), kept firing there while active here."""
from __future__ import annotations

import json
import re
import socket
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit

from ..model import Alert, truncate
from ..templates import PLAIN, Wording
from .base import SettingError, duration_option, require
from .http import check_url, post

TIMEOUT = 10.0
DEFAULT_REFRESH = 60.0
MAX_LABEL_VALUE = 256          # a label is identity: short, and cut the same way on every post
MAX_ANNOTATION_VALUE = 1000    # one context value as its own annotation
MAX_DESCRIPTION_VALUE = 200    # one context value as a line of the description
MAX_DESCRIPTION = 4000         # the whole description
MAX_URL = 2000
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_NOT_NAME_CHAR = re.compile(r"[^a-zA-Z0-9_]")
_RESERVED_LABELS = {"alertname", "severity", "instance"}
_RESERVED_ANNOTATIONS = {"summary", "description"}

def label_names(text: str) -> tuple[str, ...]:
    """The `labels` setting (names separated by commas or spaces), each a Prometheus label name the channel does
    not set itself; else SettingError naming the key and the bad name."""
    names: list[str] = []
    for name in text.replace(",", " ").split():
        if not LABEL_NAME.fullmatch(name) or name.startswith("__"):
            raise SettingError("labels", f"not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, no leading __): "
                                         f"{name!r}")
        if name in _RESERVED_LABELS:
            raise SettingError("labels", f"{name!r} is always set by the channel")
        if name not in names:
            names.append(name)
    return tuple(names)


def text_of(value: Any) -> str | None:
    """A context value as label or annotation text (JSON spelling for true/false), or None for a null."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    try:
        return json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)
    except Exception:  # unsortable keys, a cycle: still some text
        return str(value)


def web_url(value: Any) -> str | None:
    """The value if it is an http(s) URL with a host (and of sane length), else None."""
    if not isinstance(value, str) or len(value) > MAX_URL or not value.isprintable():
        return None
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return None
    return value.strip() if parts.scheme in ("http", "https") and parts.netloc else None


def annotation_name(key: str) -> str:
    """A context key as an annotation name (Alertmanager checks them like label names): other characters as `_`."""
    name = _NOT_NAME_CHAR.sub("_", key)
    return f"_{name}" if not name or name[0].isdigit() else name


@dataclass(frozen=True)
class AlertShape:
    """How an Alert looks to Alertmanager: identity labels, the rest as annotations, and a generatorURL (the
    alertmanager channel and a webhook with `format = alertmanager` both use it)."""

    label_keys: tuple[str, ...] = ()
    generator_url: str = ""

    @classmethod
    def checked(cls, labels: Iterable[str] = (), generator_url: str = "") -> AlertShape:
        """From the `labels` and `generator_url` settings, each checked (SettingError naming the key)."""
        return cls(label_names(" ".join(labels)), check_url("generator_url", generator_url) if generator_url else "")

    def labels(self, alert: Alert) -> dict[str, str]:
        """alertname = event, severity = level, instance = this host, then the context keys named in `labels`
        (those with a value: a null or empty one is left out, as Alertmanager treats an empty label)."""
        labels = {"alertname": alert.event, "severity": alert.level.value, "instance": socket.gethostname()}
        for key in self.label_keys:
            text = text_of(alert.context.get(key))
            if text:
                labels[key] = truncate(text, MAX_LABEL_VALUE)
        return labels

    def annotations(self, alert: Alert, wording: Wording = PLAIN) -> dict[str, str]:
        """summary = the message, description = the other context as `key: value` lines, and each of those
        context values as an annotation of its own (nulls left out, long values cut with an ellipsis)."""
        annotations = {"summary": alert.message}
        lines: list[str] = []
        for key, value in alert.context.items():
            text = text_of(value)
            if key in self.label_keys or text is None:
                continue
            lines.append(f"{' '.join(str(key).split())}: {truncate(' '.join(text.split()), MAX_DESCRIPTION_VALUE)}")
            name = annotation_name(str(key))
            if name not in _RESERVED_ANNOTATIONS and not name.startswith("__"):
                annotations.setdefault(name, truncate(text, MAX_ANNOTATION_VALUE))
        description = _bounded_lines(lines, MAX_DESCRIPTION) if lines else ""
        summary, description = wording.apply(alert, alert.message, description)
        annotations["summary"] = truncate(summary, MAX_DESCRIPTION)
        if description:
            annotations["description"] = truncate(description, MAX_DESCRIPTION)
        return annotations

    def generator(self, alert: Alert) -> str:
        """The alert's own http(s) `url` from its context, else the configured generator_url (maybe empty)."""
        return web_url(alert.context.get("url")) or self.generator_url


class AlertmanagerChannel:
    """Posts firing alerts with the labels alertname/severity/instance (+ the context keys named in `labels`), the
    message as the `summary` annotation and the rest of the context as annotations, and re-posts them every
    `refresh` seconds, since Alertmanager resolves an alert nobody re-sends within its resolve_timeout; a recovery
    or a change of level (a new label set) is a post of the old label set with endsAt = now."""

    TEMPLATES = ("title", "body")  # the summary and description annotations
    wording: Wording = PLAIN

    def __init__(self, name: str, url: str, refresh: float = DEFAULT_REFRESH, timeout: float = TIMEOUT,
                 labels: Iterable[str] = (), generator_url: str = ""):
        self.name = name
        self._url = check_url("url", url).rstrip("/") + "/api/v2/alerts"
        self.refresh = refresh
        self.timeout = timeout
        self.shape = AlertShape.checked(labels, generator_url)
        self._firing: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._posting = threading.Lock()  # one post at a time: a refresh in flight must not land after a resolve
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, str]) -> AlertmanagerChannel:
        """Built from [channel.NAME]: url (required), refresh, labels (context keys made labels), generator_url."""
        return cls(name, require(options, "url"), duration_option(options, "refresh", "60s"),
                   labels=label_names(options.get("labels", "")),
                   generator_url=options.get("generator_url", "").strip())

    def payload(self, alert: Alert, ends: datetime | None = None) -> dict:
        """One alert in Alertmanager's v2 API form."""
        body: dict[str, Any] = {"labels": self.shape.labels(alert),
                                "annotations": self.shape.annotations(alert, self.wording),
                                "startsAt": alert.at.isoformat()}
        if generator := self.shape.generator(alert):
            body["generatorURL"] = generator
        if ends is not None:
            body["endsAt"] = ends.isoformat()
        return body

    def send(self, alert: Alert) -> None:
        """Post a firing (ending any lower-level one of the same event) or a recovery. Alerts that came from an
        Alertmanager through the push API are not sent back, so the two can never feed each other."""
        if alert.context.get("source") == "alertmanager":
            return
        with self._posting:
            now = datetime.now(timezone.utc)
            with self._lock:
                previous = self._firing.get(alert.event)
            batch = []
            if alert.resolved:
                batch.append(previous | {"endsAt": now.isoformat()} if previous else self.payload(alert, now))
            else:
                current = self.payload(alert)
                if previous and previous["labels"] != current["labels"]:
                    batch.append(previous | {"endsAt": now.isoformat()})  # another level or labels: end the old set
                batch.append(current)
            post(self._url, "Alertmanager", self.timeout, json=batch)
            with self._lock:
                if alert.resolved:
                    self._firing.pop(alert.event, None)
                else:
                    self._firing[alert.event] = batch[-1]
        self._ensure_refreshing()

    def resume(self, alerts: list[Alert]) -> None:
        """After a restart: keep refreshing the alerts still active here that this channel was told of."""
        with self._lock:
            for alert in alerts:
                self._firing[alert.event] = self.payload(alert)
        if alerts:
            self._ensure_refreshing()

    def refresh_now(self) -> None:
        """Re-post every firing alert (errors are left for the next round)."""
        with self._posting:
            with self._lock:
                batch = list(self._firing.values())
            if batch:
                post(self._url, "Alertmanager", self.timeout, json=batch)

    def _ensure_refreshing(self) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._refresh_loop, name=f"{self.name}-refresh", daemon=True)
                self._thread.start()

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.refresh):
            try:
                self.refresh_now()
            except Exception:  # Alertmanager down for a while: it keeps the alerts until resolve_timeout
                pass

    def close(self) -> None:
        """Stop refreshing."""
        self._stop.set()


def _bounded_lines(lines: list[str], limit: int) -> str:
    """The lines joined, as many whole ones as fit in `limit` characters, then `… N more`."""
    kept: list[str] = []
    size = 0
    for index, line in enumerate(lines):
        more = f"… {len(lines) - index} more"
        room = limit - size - (0 if index == len(lines) - 1 else len(more) + 1)
        if len(line) > room:
            kept.append(more)
            break
        kept.append(line)
        size += len(line) + 1
    return "\n".join(kept)
