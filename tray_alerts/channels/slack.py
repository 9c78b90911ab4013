"""Slack through an incoming webhook: coloured attachments with the context, escaped, within Slack's limits."""
from __future__ import annotations

import hashlib
import json
import socket
import threading
from collections import OrderedDict
from typing import Any, Mapping

from ..display import colour, title
from ..model import Alert
from ..templates import PLAIN, Wording
from .base import DeliveryError, require
from .http import check_url, post

TIMEOUT = 10.0

# Everything taken from an alert is escaped (`&`, `<`, `>` become `&amp;`, `&lt;`, `&gt;`), so an alert saying
# `<!channel>` or `<https://evil.example|click here>` shows those characters instead of pinging the channel or
# hiding a link. Nothing else is touched: Slack decodes only those three entities, so escaping more would show up
# literally. Our own markup (the `_note_` in italics) is added after escaping and still works.
#
# Limits (Slack's documented ones first; lengths are counted in UTF-16 code units after escaping, which is never
# fewer than Slack's characters):
#
# - `text` at most 40,000 characters: "Truncating really long messages", api.slack.com/changelog/
#   2018-04-truncating-really-long-messages (applies to incoming webhooks too; longer text is cut by Slack).
# - at most 100 attachments per message: Slack's attachment guide (api.slack.com/docs/message-attachments, now
#   reference/messaging/attachments) asks for at most 20 and answers more than 100 with too_many_attachments,
#   which an incoming webhook returns as HTTP 400 (quoted in graylog-labs/graylog-plugin-slack#26; a Slack SDK
#   maintainer gives the same 100 in slackapi/bolt-python#914).
#   A 400 is permanent, so one oversize group would be lost whole.
# - `&`, `<`, `>` are control characters to escape: "Formatting text for app surfaces", section Escaping text
#   (api.slack.com/reference/surfaces/formatting#escaping).
# - Block Kit's limits (50 blocks, section text 3,000, header text 150) do not apply: we send no blocks.
#
# Slack documents no length for an attachment's title, text, fields or footer, nor a number of fields; the caps
# below for those are ours, chosen well under what clients show (long attachment text is folded behind "Show
# more" anyway), so a huge alert still makes a small, valid post. The whole alert stays in the tray and history.

MAX_TEXT = 40_000  # documented: the message `text`
MAX_ATTACHMENTS = 100  # documented: more is too_many_attachments (HTTP 400 from a webhook)
# Ours (Slack documents none for these):
MAX_FALLBACK = 4_000  # Slack's old guidance for a message; a notification shows far less
MAX_TITLE = 300
MAX_ATTACHMENT_TEXT = 8_000
MAX_FIELDS = 50  # the last one says how many more were left out
MAX_FIELD_TITLE = 300
MAX_FIELD_VALUE = 2_000
MAX_FOOTER = 300
SHORT_FIELD = 40  # a value shorter than this is shown side by side with the next
MAX_RESUMABLE = 32  # grouped messages remembered as partly posted
ELLIPSIS = "…"

_ESCAPES = {ord("&"): "&amp;", ord("<"): "&lt;", ord(">"): "&gt;"}
# A lone surrogate cannot be sent as UTF-8 JSON; it becomes U+FFFD (a str never holds a paired one).
_TRANSLATION: dict[int, str] = {**_ESCAPES, **{code: "\ufffd" for code in range(0xD800, 0xE000)}}


def escape(text: str) -> str:
    """The text with Slack's three control characters as entities (and lone surrogates as U+FFFD)."""
    return text.translate(_TRANSLATION)


def units(text: str) -> int:
    """The length in UTF-16 code units (a character outside the BMP counts two)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def fit(text: str, limit: int) -> str:
    """The text escaped and cut to at most `limit` UTF-16 units, marked with … when cut (never inside an entity)."""
    escaped = escape(text)
    if units(escaped) <= limit:
        return escaped
    budget, used, pieces = limit - 1, 0, []
    for char in text:
        code = ord(char)
        piece = _TRANSLATION.get(code, char)
        size = 2 if code > 0xFFFF else len(piece)  # an entity or U+FFFD is all BMP
        if used + size > budget:
            break
        pieces.append(piece)
        used += size
    return "".join(pieces) + ELLIPSIS


class SlackChannel:
    """Posts alerts to one Slack incoming webhook."""

    TEMPLATES = ("title", "body")  # the attachment's title and text
    wording: Wording = PLAIN

    def __init__(self, name: str, webhook_url: str, username: str = "", timeout: float = TIMEOUT):
        self.name = name
        self._url = check_url("webhook_url", webhook_url)
        self.username = username
        self.timeout = timeout
        # digest of a grouped message -> how many of its posts went out before one failed
        self._posted_parts: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, str]) -> SlackChannel:
        """Built from [channel.NAME]: webhook_url (required), username."""
        return cls(name, require(options, "webhook_url"), options.get("username", "").strip())

    def payload(self, alert: Alert) -> dict[str, Any]:
        """The webhook body: `text` for notifications and old clients, one coloured attachment."""
        fallback, attachment = self._attachment(alert)
        return self._body(fit(fallback, MAX_TEXT), [attachment])

    def payloads(self, alerts: list[Alert]) -> list[dict[str, Any]]:
        """The webhook bodies for a group: one post per 100 alerts, each a complete message, in order."""
        built = [self._attachment(alert) for alert in alerts]
        chunks = [built[start:start + MAX_ATTACHMENTS] for start in range(0, len(built), MAX_ATTACHMENTS)]
        bodies = []
        for number, chunk in enumerate(chunks):
            first = number * MAX_ATTACHMENTS + 1
            members = alerts[first - 1:first - 1 + len(chunk)]
            worst = max((alert.level for alert in members if not alert.resolved), default=None)
            summary = (f"alerts {first}–{first + len(chunk) - 1} of {len(alerts)}" if len(chunks) > 1
                       else f"{len(alerts)} alert" + "s" * (len(alerts) != 1))
            summary += f", worst {worst.value}" if worst else ""
            text = f"{summary}: " + "; ".join(fallback for fallback, _ in chunk)
            bodies.append(self._body(fit(text, MAX_TEXT), [attachment for _, attachment in chunk]))
        return bodies

    def send(self, alert: Alert) -> None:
        """POST the payload; see channels.http for which failures are retried."""
        post(self._url, "Slack", self.timeout, json=self.payload(alert))

    def send_many(self, alerts: list[Alert]) -> None:
        """Several alerts as one message (storm control groups them), in posts of at most 100; a retry resumes."""
        # Split rather than 99 + a summary attachment: a summary would drop the colour, message and context of
        # every alert past the 99th, while each post here is a complete message and nothing is lost. A later
        # post failing would make the whole group be retried, so the posts that went out are remembered (by the
        # group's content) and a retry of the same group starts at the one that failed.
        bodies = self.payloads(alerts)
        key = hashlib.sha256(json.dumps(bodies, sort_keys=True, ensure_ascii=False).encode("utf-8",
                                                                                           "replace")).hexdigest()
        with self._lock:
            done = self._posted_parts.pop(key, 0)
        for number in range(done, len(bodies)):
            try:
                post(self._url, "Slack", self.timeout, json=bodies[number])
            except DeliveryError as error:
                if number:
                    self._remember(key, number)
                    raise DeliveryError(f"{error.message} (post {number + 1} of {len(bodies)}; posts 1–{number}"
                                        " went out and are not sent again)", retryable=error.retryable,
                                        retry_after=error.retry_after) from None
                raise

    def _remember(self, key: str, done: int) -> None:
        """Note that `done` posts of a grouped message went out (the oldest notes are forgotten first)."""
        with self._lock:
            self._posted_parts[key] = done
            while len(self._posted_parts) > MAX_RESUMABLE:
                self._posted_parts.popitem(last=False)

    def _body(self, text: str, attachments: list[dict[str, Any]]) -> dict[str, Any]:
        """A message: `text` (already escaped and fitted), the attachments and the configured username."""
        body: dict[str, Any] = {"text": text, "attachments": attachments}
        if self.username:
            body["username"] = self.username
        return body

    def _attachment(self, alert: Alert) -> tuple[str, dict[str, Any]]:
        """The alert's plain fallback line (unescaped, for `text`) and its attachment (escaped, within limits)."""
        note = alert.note()
        fallback = f"{alert.tag} {alert.event}: {alert.message}" + (f" ({note})" if note else "")
        italic_note = f"\n_{escape(note)}_" if note else ""
        text = fit(alert.message, MAX_ATTACHMENT_TEXT - units(italic_note)) + italic_note
        heading, own_body = title(alert), "\n".join([alert.message, *([note] if note else [])])
        templated_title, templated_body = self.wording.apply(alert, heading, own_body)
        # a template's text is escaped like any other (no mentions, no links); an unchanged part keeps its form
        if templated_body != own_body:
            text = fit(templated_body, MAX_ATTACHMENT_TEXT)
        if (templated_title, templated_body) != (heading, own_body):
            fallback = f"{templated_title}: {templated_body}"
        heading = templated_title
        return fallback, {
            "fallback": fit(fallback, MAX_FALLBACK),
            "color": colour(alert),
            "title": fit(heading, MAX_TITLE),
            "text": text,
            "fields": _fields(alert.context),
            "footer": fit(f"tray-alerts on {socket.gethostname()}", MAX_FOOTER),
            "ts": int(alert.at.timestamp()),
        }


def _fields(context: Mapping[Any, Any]) -> list[dict[str, Any]]:
    """The context as attachment fields, escaped and within our caps; past MAX_FIELDS, one field counts the rest."""
    items = list(context.items())
    shown = items if len(items) <= MAX_FIELDS else items[:MAX_FIELDS - 1]
    fields = [{"title": fit(str(key), MAX_FIELD_TITLE), "value": fit(str(value), MAX_FIELD_VALUE),
               "short": len(str(value)) < SHORT_FIELD} for key, value in shown]
    if len(shown) < len(items):
        fields.append({"title": ELLIPSIS, "value": f"{len(items) - len(shown)} more context items not shown",
                       "short": False})
    return fields
