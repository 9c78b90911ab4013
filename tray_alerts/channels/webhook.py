"""A generic JSON POST of the alert, for ntfy, Discord bridges, n8n and friends, or as an Alertmanager webhook."""
from __future__ import annotations

import json
import socket
from datetime import datetime, timezone
from typing import Iterable, Mapping

from ..display import title
from ..model import Alert
from ..templates import PLAIN, Wording
from .alertmanager import AlertShape, label_names
from .base import SettingError, require
from .http import check_url, post

TIMEOUT = 10.0
FORMATS = ("tray-alerts", "alertmanager")
ALERTMANAGER_VERSION = "4"                # the webhook payload version Alertmanager sends
ZERO_TIME = "0001-01-01T00:00:00Z"         # Go's zero time.Time: Alertmanager's endsAt of a firing alert
GROUP_BY = ("alertname", "instance")      # one group per event and host, as `group_by: [alertname, instance]`


class WebhookChannel:
    """POSTs `{event, level, message, context, at, resolved, host}` and the incident (`fingerprint`, `status`,
    `startsAt`, `endsAt` on a recovery) as JSON to `url`; with `format = alertmanager`, Alertmanager's webhook
    (version 4) body instead: one group holding the alert, labelled as the alertmanager channel labels it."""

    SECRET_KEYS = ("url", "headers")  # webhook URLs and auth headers carry tokens
    TEMPLATES = ("title", "body")  # `title` and `body` keys (alertmanager: the summary and description annotations)
    wording: Wording = PLAIN

    def __init__(self, name: str, url: str, headers: Mapping[str, str] | None = None, timeout: float = TIMEOUT,
                 format: str = "tray-alerts", labels: Iterable[str] = (), generator_url: str = ""):
        self.name = name
        self._url = check_url("url", url)
        self._headers = dict(headers or {})
        self.timeout = timeout
        self.format = check_format(format)
        labels = tuple(labels)
        if self.format != "alertmanager" and (labels or generator_url):
            raise SettingError("labels" if labels else "generator_url", "only used with format = alertmanager")
        self._shape = AlertShape.checked(labels, generator_url)

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, str]) -> WebhookChannel:
        """Built from [channel.NAME]: url (required), headers (one `Name: value` per line), format (tray-alerts or
        alertmanager) and, for alertmanager, labels and generator_url as in an alertmanager channel."""
        return cls(name, require(options, "url"), parse_headers(options.get("headers", "")),
                   format=options.get("format", ""), labels=label_names(options.get("labels", "")),
                   generator_url=options.get("generator_url", "").strip())

    def send(self, alert: Alert) -> None:
        """POST the alert as JSON."""
        body = (alertmanager_payload(alert, self.name, self._shape, self.wording) if self.format == "alertmanager"
                else payload(alert, socket.gethostname(), self.wording))
        post(self._url, "webhook", self.timeout, json=body, headers=self._headers)


def check_format(text: str) -> str:
    """The `format` setting (any case; empty: tray-alerts), else SettingError naming the allowed values."""
    value = text.strip().lower() or FORMATS[0]
    if value not in FORMATS:
        raise SettingError("format", f"unknown format {text.strip()!r} (allowed: {', '.join(FORMATS)})")
    return value


def payload(alert: Alert, host: str, wording: Wording = PLAIN) -> dict:
    """The JSON body: the alert, the host, and its incident as receivers that dedupe expect it; with templates,
    `title` and `body` too (by default `CRITICAL · disk_full` and the message)."""
    started = alert.since or alert.at
    body = {**alert.to_dict(), "host": host, "fingerprint": alert.episode,
            "status": "resolved" if alert.resolved else "firing", "startsAt": started.isoformat(),
            **({"endsAt": alert.at.isoformat()} if alert.resolved else {})}
    heading, text = wording.apply(alert, title(alert), alert.message)
    if wording.title_template is not None:
        body["title"] = heading
    if wording.body_template is not None:
        body["body"] = text
    return body


def alertmanager_payload(alert: Alert, receiver: str, mapping: AlertShape, wording: Wording = PLAIN) -> dict:
    """Alertmanager's webhook v4 body (notify/webhook Message, template Data and Alert): one group, one alert, the
    incident's episode as its fingerprint; externalURL is the configured generator_url (maybe empty)."""
    labels = mapping.labels(alert)
    annotations = mapping.annotations(alert, wording)
    status = "resolved" if alert.resolved else "firing"
    group = {key: labels[key] for key in GROUP_BY if key in labels}
    return {"version": ALERTMANAGER_VERSION, "groupKey": group_key(group), "truncatedAlerts": 0,
            "status": status, "receiver": receiver, "groupLabels": group, "commonLabels": dict(labels),
            "commonAnnotations": dict(annotations), "externalURL": mapping.generator_url,
            "alerts": [{"status": status, "labels": labels, "annotations": annotations,
                        "startsAt": rfc3339(alert.since or alert.at),
                        "endsAt": rfc3339(alert.at) if alert.resolved else ZERO_TIME,
                        "generatorURL": mapping.generator(alert), "fingerprint": alert.episode}]}


def group_key(labels: Mapping[str, str]) -> str:
    """The group key as Alertmanager writes it for the root route: `{}:{alertname="x", instance="y"}`."""
    pairs = ", ".join(f"{key}={json.dumps(labels[key], ensure_ascii=False)}" for key in sorted(labels))
    return f"{{}}:{{{pairs}}}"


def rfc3339(moment: datetime) -> str:
    """A time as Go writes a time.Time in JSON: RFC 3339 in UTC (`Z`), the fraction without trailing zeros."""
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + f".{utc.microsecond:06d}".rstrip("0").rstrip(".") + "Z"


def parse_headers(text: str) -> dict[str, str]:
    """`Name: value` lines (or `;`-separated) as a dict; a line without a colon is a SettingError."""
    headers = {}
    for line in text.replace(";", "\n").splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep or not key.strip():
            raise SettingError("headers", "each header must be `Name: value`")
        headers[key.strip()] = value.strip()
    return headers
