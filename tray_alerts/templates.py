"""Message templates: a channel's `title_template` / `body_template`, rendered in Jinja2's sandbox over the fields
below; a template that does not compile or names an unknown field is a setting error, found when settings load."""
from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Mapping

from . import template_sandbox
from .display import clock, duration
from .template_sandbox import render
from .model import Alert, Level

if TYPE_CHECKING:
    from jinja2 import Template

log = logging.getLogger(__name__)

TEMPLATE_KEYS = {"title_template": "title", "body_template": "body"}
# What a template may use; `title` and `body` are the channel's own text, so `{{ body }}` keeps today's message.
FIELDS: dict[str, str] = {
    "event": "the event id",
    "level": "info, warning, error or critical (a recovery keeps the level it had)",
    "tag": "the level in capitals, or RESOLVED for a recovery",
    "status": "firing or resolved",
    "message": "the alert's message",
    "context": "the alert's context, a mapping (`context.mount`, `context['url']`); a key it lacks is empty",
    "at": "when this notification happened, local time (`14:32:05`, with the date when not today)",
    "at_iso": "the same as ISO 8601 in UTC",
    "since": "when the incident began, local time",
    "since_iso": "the same as ISO 8601 in UTC",
    "firing_for": "how long it fired (`42 min`) on a recovery or reminder, else empty",
    "fingerprint": "the incident's id: the same from firing to recovery, new for the next one",
    "reminder": "true on a reminder",
    "possible_repeat": "true when an earlier try may have arrived",
    "note": "`recovered after 42 min …`, `reminder: …` or `possibly a repeat …`, else empty",
    "host": "this machine's name",
    "title": "the channel's own title for the alert",
    "body": "the channel's own text for the alert",
}
SAMPLES = (  # rendered when settings load: a template that fails on these fails there, not on a real alert
    Alert("disk_full", Level.CRITICAL, "disk at 95% on /var", {"mount": "/var", "url": "https://example.org"},
          at=datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc), episode="5eed0000cafe0001",
          since=datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)),
    Alert("disk_full", Level.CRITICAL, "recovered", at=datetime(2026, 1, 1, 12, 42, tzinfo=timezone.utc),
          resolved=True, firing_for=2520.0, episode="5eed0000cafe0001",
          since=datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)),
)


class Context(dict):
    """An alert's context for templates: a key the alert does not have reads as empty text, so one template
    serves alerts with and without it (the sandbox still refuses to change it)."""

    def __missing__(self, key: Any) -> str:
        return ""


class TemplateProblem(ValueError):
    """A template that cannot be used: `key` is the setting, the text says why."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


def fields(alert: Alert, title: str, body: str, host: str | None = None) -> dict[str, Any]:
    """The values a template sees for one alert (see FIELDS)."""
    since = alert.since or alert.at
    shown = alert.firing_for is not None and (alert.resolved or alert.reminder)
    return {
        "event": alert.event, "level": alert.level.value, "tag": alert.tag,
        "status": "resolved" if alert.resolved else "firing", "message": alert.message,
        "context": Context(alert.context), "at": clock(alert.at), "at_iso": alert.at.astimezone(timezone.utc).isoformat(),
        "since": clock(since), "since_iso": since.astimezone(timezone.utc).isoformat(),
        "firing_for": duration(alert.firing_for) if shown and alert.firing_for is not None else "",
        "fingerprint": alert.episode, "reminder": alert.reminder, "possible_repeat": alert.possible_repeat,
        "note": alert.note() or "", "host": host or socket.gethostname(), "title": title, "body": body,
    }


@dataclass(frozen=True)
class Wording:
    """A channel's templates (None: its own text); title() and body() give the text to send."""

    title_template: Template | None = None
    body_template: Template | None = None
    channel: str = ""

    def apply(self, alert: Alert, own_title: str, own_body: str) -> tuple[str, str]:
        """(title, body) to send: each the template's, else the channel's own."""
        return self.title(alert, own_title, own_body), self.body(alert, own_body, own_title)

    def title(self, alert: Alert, own: str, body: str = "") -> str:
        """The title to send: the template's, else the channel's own."""
        return self._render(self.title_template, "title_template", alert, own, body) if self.title_template else own

    def body(self, alert: Alert, own: str, title: str = "") -> str:
        """The body to send: the template's, else the channel's own."""
        return self._render(self.body_template, "body_template", alert, title, own) if self.body_template else own

    def _render(self, template: Template, key: str, alert: Alert, title: str, body: str) -> str:
        """The rendered text; should it fail on this alert, the channel's own text, so nothing is lost."""
        own = title if key == "title_template" else body
        try:
            return render(template, fields(alert, title, body))
        except Exception as error:  # a template error must cost the wording, never the alert
            log.warning("channel %s: %s failed for %s (%s); sent the default text", self.channel, key, alert.event,
                        describe(error))
            return own


PLAIN = Wording()


def wording(channel: str, options: Mapping[str, str], allowed: tuple[str, ...]) -> Wording:
    """The channel's Wording from its `title_template` / `body_template` settings (only those in `allowed`, as
    `title` / `body`); TemplateProblem names the key that cannot be used."""
    compiled: dict[str, Template] = {}
    for key, part in TEMPLATE_KEYS.items():
        text = options.get(key, "")
        if not text.strip():
            continue
        if part not in allowed:
            other = [name for name, kind in TEMPLATE_KEYS.items() if kind in allowed]
            raise TemplateProblem(key, "this channel has no " + part +
                                  (f"; it takes {' and '.join(other)}" if other else "; it takes no templates"))
        compiled[key] = compile_template(key, text)
    if not compiled:
        return PLAIN
    result = Wording(compiled.get("title_template"), compiled.get("body_template"), channel)
    for sample in SAMPLES:
        check(result, sample)
    return result


def compile_template(key: str, text: str) -> Template:
    """The template compiled in the sandbox, or TemplateProblem with the line and reason."""
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import SecurityError

    try:
        return template_sandbox.environment().from_string(text.strip())
    except TemplateSyntaxError as error:
        raise TemplateProblem(key, f"line {error.lineno}: {error.message}") from None
    except SecurityError as error:
        raise TemplateProblem(key, describe(error)) from None


def check(result: Wording, alert: Alert) -> None:
    """Render the templates on a sample alert: an unknown field or a failing expression is a TemplateProblem."""
    for key, template in (("title_template", result.title_template), ("body_template", result.body_template)):
        if template is None:
            continue
        try:
            render(template, fields(alert, "TITLE", "BODY", host="host"))
        except Exception as error:
            raise TemplateProblem(key, describe(error)) from None


def describe(error: Exception) -> str:
    """A template error as a short reason (`unknown field 'evnt'`)."""
    from jinja2 import UndefinedError
    from jinja2.sandbox import SecurityError

    if isinstance(error, template_sandbox.TemplateTooCostly):
        return f"not allowed in a template: {error}"
    if isinstance(error, UndefinedError):
        name = str(error).split("'")[1] if str(error).count("'") >= 2 else str(error)
        if "has no attribute" in str(error) or "has no element" in str(error):
            return f"{error} (fields: {', '.join(FIELDS)})"
        return f"unknown field {name!r} (fields: {', '.join(FIELDS)})"
    if isinstance(error, SecurityError):
        return f"not allowed in a template: {error}"
    return f"{type(error).__name__}: {error}"
