"""The quick commands (`raise`, `clear`, `ack`, `mute`, `unmute`, `ping`, `dashboard`): with the app running, one
request to its push API and nothing else loaded (standard library only: no requests, no engine, no sqlite, no
channels); the engine is imported only when the app is not running and the command works on the state itself
(`dashboard` needs the app)."""
from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from typing import Any, Callable

from .cli import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, UsageError
from .client import ApiClient, AppNotRunning, NotFound, app_or_here
from .display import clock
from .settings_file import AlertsSettings, alerts_settings, heartbeat_names, load_alerts, read_layered
from .values import parse_duration, parse_list

CLI_WAIT = 3.0  # seconds a command waits for the running app's channels before saying which are still pending
LEVELS = ("info", "warning", "error", "critical")
# What a request did, as the push API and Result.to_json() name it (tray_alerts.lifecycle; a test keeps them equal).
FIRED, ESCALATED, DEBOUNCED, CLEARED, NOT_ACTIVE = "fired", "escalated", "debounced", "cleared", "not active"
ACKNOWLEDGED, ALREADY_ACKNOWLEDGED, PENDING = "acknowledged", "already acknowledged", "pending"
APP, HERE = "the running app", "here (tray-alerts is not running)"

Answer = dict  # a raise, clear or ack as the push API answers it (Result.to_json() when done here)


def raise_alert(args: argparse.Namespace) -> int:
    """`tray-alerts raise EVENT LEVEL MESSAGE [key=value ...]`."""
    level = _level(args.level)
    if not args.message.strip():
        raise UsageError("MESSAGE must not be empty: say what happened")
    context = dict(_key_value(item) for item in args.context)
    parents = list(parse_list(getattr(args, "depends_on", None) or ""))
    if args.event in parents:
        raise UsageError(f"--depends-on: an event cannot depend on itself ({args.event!r})")
    settings = load_alerts(args.config)

    def here(engine: Any) -> Answer:
        from .lifecycle import Raise
        from .model import Level, check_event, clean_context, clean_message, context_arguments

        request = Raise(check_event(args.event), Level.parse(level), clean_message(args.message),
                        clean_context(context_arguments(context)), tuple(check_event(name) for name in parents))
        return engine.raise_request(request).to_json()

    return _request(settings, args, lambda client: client.raise_alert(args.event, level, args.message, context,
                                                                      wait=CLI_WAIT, depends_on=parents), here)


def clear_alert(args: argparse.Namespace) -> int:
    """`tray-alerts clear EVENT [MESSAGE]`: an event that is not active is said, exit 0 (scripts clear on success)."""
    return _request(load_alerts(args.config), args,
                    lambda client: client.clear_alert(args.event, args.message, wait=CLI_WAIT),
                    lambda engine: engine.clear_alert(args.event, args.message).to_json())


def acknowledge(args: argparse.Namespace) -> int:
    """`tray-alerts ack EVENT`: an event that is not active is named, exit 2."""
    return _request(load_alerts(args.config), args, lambda client: client.acknowledge(args.event),
                    lambda engine: engine.acknowledge(args.event).to_json(), refuse_not_active="acknowledged")


def mute(args: argparse.Namespace) -> int:
    """`tray-alerts mute EVENT DURATION` / `unmute EVENT`: only an active event; any other is named, exit 2."""
    length = getattr(args, "duration", None)
    try:
        seconds = parse_duration(length) if length else None
    except ValueError as error:
        raise UsageError(f"DURATION: {error}") from None
    settings = load_alerts(args.config)

    def via_app(client: ApiClient) -> float | None:
        if not any(alert.get("event") == args.event for alert in client.active()):
            raise _not_active(args.event, "muted" if length else "unmuted")
        return client.mute(args.event, length).get("muted_until")

    def here(engine: Any) -> float | None:
        if not any(record.event == args.event for record in engine.active_events()):
            raise _not_active(args.event, "muted" if length else "unmuted")
        until = engine.clock.time() + seconds if seconds else None
        engine.mute(args.event, until)
        return until

    until, via = _through(settings, args, via_app, here)
    where = APP if via else HERE
    if length:
        shown = clock(_moment(until), seconds=False) if until else "?"
        print(f"{args.event}: muted until {shown} — it stays active and shown; its notifications wait [{where}]")
    else:
        print(f"{args.event}: unmuted — anything held goes out now [{where}]")
    return EXIT_OK


def ping(args: argparse.Namespace) -> int:
    """`tray-alerts ping NAME`: NAME must be a heartbeat monitor of the settings."""
    layered = read_layered(args.config)
    heartbeats = heartbeat_names(layered)
    if args.name not in heartbeats:
        raise UsageError(f"no heartbeat monitor named {args.name!r} (heartbeats: {', '.join(heartbeats) or 'none'})")

    def via_app(client: ApiClient) -> None:
        try:
            client.ping(args.name)
        except NotFound as error:  # the running app was started with other settings
            raise UsageError(str(error)) from None

    _, via = _through(alerts_settings(layered), args, via_app, lambda engine: engine.record_ping(args.name))
    print(f"{args.name}: pinged [{APP if via else HERE}]")
    return EXIT_OK


def dashboard(args: argparse.Namespace) -> int:
    """`tray-alerts dashboard [--url]`: a one-time login address from the running app, opened in the web browser
    (or printed); the app not running is one line, exit 2."""
    settings = load_alerts(args.config)
    try:
        client = ApiClient.for_settings(settings)
    except AppNotRunning:
        print("tray-alerts dashboard: the app is not running (start it with tray-alerts run)", file=sys.stderr)
        return EXIT_BAD_INPUT
    url = str(client.call("POST", "/dashboard/login", {})["url"])
    if args.url:
        print(url)
        return EXIT_OK
    import webbrowser

    if not webbrowser.open(url):
        print(f"tray-alerts dashboard: no web browser found; open this address within 2 minutes: {url}",
              file=sys.stderr)
        return EXIT_FAILED
    print("tray-alerts dashboard: opened in the web browser")
    return EXIT_OK


def _request(settings: AlertsSettings, args: argparse.Namespace, via_app: Callable[[ApiClient], Answer],
             here: Callable[[Any], Answer], refuse_not_active: str = "") -> int:
    """A raise, clear or ack through the running app, else here; what it did printed, and its exit code (an event
    that is not active named, exit 2, when `refuse_not_active` says what was not done)."""
    answer, via = _through(settings, args, via_app, here)
    if refuse_not_active and answer.get("status") == NOT_ACTIVE:
        raise _not_active(args.event, refuse_not_active)
    return print_answer(answer, APP if via else HERE)


def _through(settings: AlertsSettings, args: argparse.Namespace, via_app: Callable[[ApiClient], Any],
             here: Callable[[Any], Any]) -> tuple[Any, bool]:
    """`via_app` when the app holds the state folder, else `here` with an engine on the state (imported now)."""

    def directly() -> Any:
        from .commands import direct_engine

        with direct_engine(args.config) as engine:  # the caller holds the state folder
            return here(engine)

    try:
        return app_or_here(settings, via_app, directly)
    except ValueError as error:  # the app's 400, or the engine's own check: it names the field
        raise UsageError(str(error)) from None


def print_answer(answer: Answer, where: str) -> int:
    """Say what a raise, clear or ack did and how each channel stands; exit 1 if the state file refused it."""
    event, level, kind = answer.get("event", ""), answer.get("level") or "", answer.get("status", "")
    channels: dict[str, dict] = answer.get("channels") or {}
    stored = answer.get("stored", True)
    if not stored:
        print(f"tray-alerts: {answer.get('fault', '')} — not stored yet; the log and pop-ups were told directly",
              file=sys.stderr)
    if kind == DEBOUNCED:
        since = f" since {clock(_moment(answer['since']))}" if answer.get("since") else ""
        seen = f" (seen {answer['seen']} times)" if answer.get("seen") else ""
        print(f"{event}: already active at {level}{since}{seen} — debounced, nothing sent")
    elif kind == NOT_ACTIVE:
        print(f"{event}: not active — nothing sent")
    elif kind in (ACKNOWLEDGED, ALREADY_ACKNOWLEDGED):
        at = answer.get("acknowledged_at")
        shown = f" at {clock(_moment(at), seconds=False)}" if at else ""
        print(f"{event}: {kind}{shown} — stays active at {level}; reminders and pop-ups stop until it escalates"
              f" [{where}]")
    elif kind == CLEARED and not channels:
        print(f"{event}: cleared — no channel had been told, so no recovery was sent [{where}]")
    elif not channels and not answer.get("inhibited_by"):
        print(f"{event}: {level} alert {kind} — no channel is routed for {level} [{where}]")
    else:
        what = {FIRED: f"{level} alert sent", ESCALATED: f"escalated to {level}",
                CLEARED: "cleared, recovery sent"}.get(kind, kind)
        parent = answer.get("inhibited_by")
        if parent and kind in (FIRED, ESCALATED):
            what = (f"{level} alert {kind}, inhibited by {parent} — only the log is told; it notifies once"
                    f" {parent} recovers, if it still fires then")
        until = answer.get("muted_until")
        muted = f" (muted until {clock(_moment(until), seconds=False)}: held)" if until else ""
        print(f"{event}: {what}{muted} [{where}]")
        for name, outcome in channels.items():
            status, detail = outcome.get("status", ""), outcome.get("detail", "")
            print(f"  {name}: delivered" if status == "delivered"
                  else f"  {name}: NOT delivered — {status}{f' — {detail}' if detail else ''}")
        pending = [name for name, outcome in channels.items() if outcome.get("status") == PENDING]
        if pending:
            print(f"  ({', '.join(pending)}: no answer yet — the outbox records it when it comes;"
                  " see `tray-alerts history`)")
    return EXIT_OK if stored else EXIT_FAILED


def _not_active(event: str, what: str) -> UsageError:
    return UsageError(f"{event}: not active — nothing {what} (`tray-alerts status` lists the active alerts)")


def _level(text: str) -> str:
    """The level's name, or UsageError listing the allowed ones (Level.parse's own words)."""
    name = text.strip().lower()
    if name in LEVELS:
        return name
    from .model import Level

    try:
        return Level.parse(text).value
    except ValueError as error:
        raise UsageError(str(error)) from None


def _key_value(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"context must be key=value, got {item!r}")
    return key.strip(), value


def _moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


__all__ = ["acknowledge", "clear_alert", "dashboard", "mute", "ping", "print_answer", "raise_alert"]
