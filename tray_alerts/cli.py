"""The `tray-alerts` command line: run the app, raise and clear alerts, look at state and settings."""
from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import time
from contextlib import contextmanager, nullcontext
from typing import Callable, Iterator, Sequence

from . import __version__
from .client import ApiClient, ApiFailed, AppNotRunning, through_app_or_here
from .config import ConfigError, Settings, load_settings
from .delivery import Dispatcher
from .display import clock, duration, table
from .engine import Engine
from .instance import direct_use
from .lifecycle import ACKNOWLEDGED, ALREADY_ACKNOWLEDGED, CLEARED, DEBOUNCED, ESCALATED, FIRED, NOT_ACTIVE
from .logsetup import configure_logging
from .model import Alert, Level, context_arguments, from_timestamp
from .results import Result
from .state import ChannelHealth, StateError, StateStore, StoreFault
from .values import parse_duration
from .wiring import build_channels, build_checker, build_engine

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class UsageError(Exception):
    """Bad command-line input: printed in one line, exit 2."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    args.config = getattr(args, "config", None)  # given before or after the command (argparse shares the action)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        settings = load_settings(args.config)
        return args.handler(args, settings)
    except (ConfigError, UsageError) as error:
        print(f"tray-alerts: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (StateError, ApiFailed, StoreFault) as error:
        print(f"tray-alerts: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `tray-alerts status | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                        help="settings file (default: $TRAY_ALERTS_CONFIG, then the user's config folder)")
    parser = argparse.ArgumentParser(
        prog="tray-alerts", parents=[common],
        description="Desktop alerting: local monitors, debounced alerts, routed to pop-ups, Slack, email, SMS.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(name: str, handler, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    run = command("run", _run, "run the app in the system tray (headless where there is none) until Quit or Ctrl-C")
    run.add_argument("--headless", action="store_true", help="run without a tray icon")
    raise_ = command("raise", _raise, "raise an alert (sent once; repeats are debounced)")
    raise_.add_argument("event", help="stable event id, e.g. disk_full")
    raise_.add_argument("level", help="info, warning, error or critical")
    raise_.add_argument("message", help="what happened")
    raise_.add_argument("context", nargs="*", metavar="key=value", help="context shown with the alert")
    clear = command("clear", _clear, "clear an active alert and send its recovery")
    clear.add_argument("event")
    clear.add_argument("message", nargs="?", default="recovered")
    ack = command("ack", _ack, "acknowledge an active alert: it stays active and listed, its reminders and pop-ups"
                                " stop until it escalates; its recovery still goes out")
    ack.add_argument("event")
    mute = command("mute", _mute, "hold one event's notifications for a while (it stays active and shown)")
    mute.add_argument("event")
    mute.add_argument("duration", help="how long, e.g. 30m, 2h, 1d")
    unmute = command("unmute", _mute, "send one event's notifications again (and what was held)")
    unmute.add_argument("event")
    ping = command("ping", _ping, "ping a heartbeat monitor (e.g. at the end of a cron job)")
    ping.add_argument("name", help="a [monitor.NAME] of type heartbeat")
    command("check", _check, "run every monitor once and show what it sees (raises nothing)")
    command("status", _status, "show the active alerts and how each channel is doing")
    test_channel = command("test-channel", _test_channel, "send a test alert through one channel and say how it went")
    test_channel.add_argument("name", help="a [channel.NAME] from the settings")
    history = command("history", _history, "show recent firings, clears and deliveries")
    history.add_argument("--limit", type=_positive_int, default=20, metavar="N", help="entries to show (20)")
    history.add_argument("--event", help="only this event")
    command("check-config", _check_config, "check the settings and show what they set up")
    autostart = command("autostart", _autostart, "start tray-alerts at login (on) or not (off)")
    autostart.add_argument("state", choices=("on", "off"))
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


CLI_WAIT = 3.0  # seconds a command waits for the running app's channels before saying which are still pending


@contextmanager
def _engine(settings: Settings, locked: bool = True) -> Iterator[Engine]:
    """An engine for a command that works on the state itself (no app is running); an app that starts meanwhile
    waits for it to finish (`locked`: take the state folder here)."""
    configure_logging(settings.log_file, settings.log_level, stderr_level="error")
    with direct_use(settings.state_dir) if locked else nullcontext():
        engine = build_engine(settings, retry_in_background=False)
        try:
            yield engine
        finally:
            engine.close()


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from .app import AlreadyRunning, PortTaken, run_headless
    from .desktop_env import tray_problem

    problem = None if args.headless else tray_problem()
    if args.headless or problem:
        if problem:
            print(f"tray-alerts: {problem} — running headless (monitors, channels, push API, log)", flush=True)
        return run_headless(settings)
    from .tray import Tray

    configure_logging(settings.log_file, settings.log_level)
    if sys.platform.startswith("linux"):
        _install_launcher(args.config)
    try:
        tray = Tray(settings, args.config)
    except AlreadyRunning as error:
        print(f"tray-alerts: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except PortTaken as error:
        print(f"tray-alerts: {error}", file=sys.stderr)
        return EXIT_FAILED
    return tray.run()


def _install_launcher(config: str | None) -> None:
    """The desktop's launcher for tray-alerts, which its pop-ups name (desktop-entry): a failure is one log line."""
    from .autostart import install_launcher

    try:
        written = install_launcher(config)
    except OSError as error:
        logging.getLogger(__name__).warning("could not write the desktop launcher: %s", error)
        return
    if written:
        logging.getLogger(__name__).info("desktop launcher written: %s", written)


def _raise(args: argparse.Namespace, settings: Settings) -> int:
    try:
        level = Level.parse(args.level)
    except ValueError as error:
        raise UsageError(str(error)) from None
    context = dict(_key_value(item) for item in args.context)
    return _through_app_or_here(
        settings, lambda client: client.raise_alert(args.event, level.value, args.message, context, wait=CLI_WAIT),
        lambda engine: engine.raise_alert(args.event, level, args.message, **context_arguments(context)))


def _clear(args: argparse.Namespace, settings: Settings) -> int:
    return _through_app_or_here(settings, lambda client: client.clear_alert(args.event, args.message, wait=CLI_WAIT),
                                lambda engine: engine.clear_alert(args.event, args.message))


def _ack(args: argparse.Namespace, settings: Settings) -> int:
    return _through_app_or_here(settings, lambda client: client.acknowledge(args.event),
                                lambda engine: engine.acknowledge(args.event))


def _through_app_or_here(settings: Settings, via_app: Callable[[ApiClient], dict],
                         here: Callable[[Engine], Result]) -> int:
    """Through the running app when it holds the state folder, else directly on the state file; print it."""

    def directly() -> Result:
        with _engine(settings, locked=False) as engine:  # the caller holds the state folder
            return here(engine)

    try:
        result, via = through_app_or_here(settings, via_app, directly)
    except ValueError as error:
        raise UsageError(str(error)) from None
    return _print_result(result, "the running app" if via else "here (tray-alerts is not running)")


def _print_result(result: Result, where: str) -> int:
    """Say what a raise or clear did and how each channel stands; exit 1 if the state file refused it."""
    event, level = result.event, result.level or ""
    if not result.stored:
        print(f"tray-alerts: {result.fault} — not stored yet; the log and pop-ups were told directly",
              file=sys.stderr)
    if result.kind == DEBOUNCED:
        since = f" since {clock(from_timestamp(result.since))}" if result.since else ""
        seen = f" (seen {result.seen} times)" if result.seen else ""
        print(f"{event}: already active at {level}{since}{seen} — debounced, nothing sent")
    elif result.kind == NOT_ACTIVE:
        print(f"{event}: not active — nothing sent")
    elif result.kind in (ACKNOWLEDGED, ALREADY_ACKNOWLEDGED):
        at = f" at {clock(from_timestamp(result.acknowledged_at), seconds=False)}" if result.acknowledged_at else ""
        print(f"{event}: {result.kind}{at} — stays active at {level}; reminders and pop-ups stop until it"
              f" escalates [{where}]")
    elif result.kind == CLEARED and not result.outcomes:
        print(f"{event}: cleared — no channel had been told, so no recovery was sent [{where}]")
    elif not result.outcomes:
        print(f"{event}: {level} alert {result.kind} — no channel is routed for {level} [{where}]")
    else:
        what = {FIRED: f"{level} alert sent", ESCALATED: f"escalated to {level}",
                CLEARED: "cleared, recovery sent"}.get(result.kind, result.kind)
        muted = (f" (muted until {clock(from_timestamp(result.muted_until), seconds=False)}: held)"
                 if result.muted_until else "")
        print(f"{event}: {what}{muted} [{where}]")
        for name, outcome in result.outcomes.items():
            print(f"  {name}: delivered" if outcome.ok else f"  {name}: NOT delivered — {outcome.describe()}")
        if result.pending:
            print(f"  ({', '.join(result.pending)}: no answer yet — the outbox records it when it comes;"
                  " see `tray-alerts history`)")
    return EXIT_OK if result.stored else EXIT_FAILED


def _mute(args: argparse.Namespace, settings: Settings) -> int:
    length = getattr(args, "duration", None)
    try:
        until = time.time() + parse_duration(length) if length else None
    except ValueError as error:
        raise UsageError(str(error)) from None
    try:
        ApiClient.for_settings(settings).mute(args.event, length)
        where = "the running app"
    except AppNotRunning:
        with _engine(settings) as engine:
            try:
                engine.mute(args.event, until)
            except ValueError as error:
                raise UsageError(str(error)) from None
        where = "here (tray-alerts is not running)"
    except ValueError as error:
        raise UsageError(str(error)) from None
    if until:
        print(f"{args.event}: muted until {clock(from_timestamp(until), seconds=False)} — it stays active and"
              f" shown; its notifications wait [{where}]")
    else:
        print(f"{args.event}: unmuted — anything held goes out now [{where}]")
    return EXIT_OK


def _ping(args: argparse.Namespace, settings: Settings) -> int:
    spec = settings.monitors.get(args.name)
    if spec is None or spec.monitor.type != "heartbeat":
        heartbeats = [name for name, s in settings.monitors.items() if s.monitor.type == "heartbeat"]
        raise UsageError(f"no heartbeat monitor named {args.name!r} (heartbeats: {', '.join(heartbeats) or 'none'})")
    try:
        ApiClient.for_settings(settings).ping(args.name)
        print(f"{args.name}: pinged [the running app]")
    except AppNotRunning:
        with _engine(settings) as engine:
            engine.record_ping(args.name)
        print(f"{args.name}: pinged [here (tray-alerts is not running)]")
    return EXIT_OK


def _check(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.monitors:
        print("No monitors configured — add [monitor.NAME] sections to the settings (see README).")
        return EXIT_OK
    store = StateStore(settings.state_path)
    try:
        runner = build_checker(settings, store.last_ping)
        readings = {name: runner.read(spec) for name, spec in settings.monitors.items()}
    finally:
        store.close()
    rows = [(name, spec.monitor.type, f"{spec.monitor.label} {reading.summary}",
             reading.level.value if reading.level else "ok")
            for name, spec in settings.monitors.items() for reading in (readings[name],)]
    print(table(("NAME", "TYPE", "READING", "LEVEL"), rows, max_width=90))
    return EXIT_OK


def _key_value(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"context must be key=value, got {item!r}")
    return key.strip(), value


def _status(args: argparse.Namespace, settings: Settings) -> int:
    channels = build_channels(settings)
    store = StateStore(settings.state_path)
    try:
        records = sorted(store.load_active(), key=lambda r: (-r.level.rank, r.since))
        health = store.channel_health()
        now = time.time()
        mutes = {event: until for event, until in store.load_mutes().items() if until > now}
    finally:
        store.close()
    if records:
        rows = [(r.event, r.level.value, f"{clock(from_timestamp(r.since))} ({duration(now - r.since)})", r.seen,
                 clock(from_timestamp(r.last_seen)), _acknowledged(r.acknowledged_at) + _muted(mutes.get(r.event))
                 + r.message) for r in records]
        print(f"{len(records)} active alert{'s' if len(records) != 1 else ''}")
        print(table(("EVENT", "LEVEL", "SINCE", "SEEN", "LAST", "MESSAGE"), rows))
    else:
        print("All clear — no active alerts.")
    print()
    channel_rows = [(name, spec.type, channel_state(name, channels.unavailable.get(name), health.get(name)))
                    for name, spec in settings.channels.items()]
    print(table(("CHANNEL", "TYPE", "STATE"), channel_rows, max_width=100))
    return EXIT_OK


def _acknowledged(at: float | None) -> str:
    return f"[acknowledged {clock(from_timestamp(at), seconds=False)}] " if at else ""


def _muted(until: float | None) -> str:
    return f"[muted until {clock(from_timestamp(until), seconds=False)}] " if until else ""


def channel_state(name: str, unavailable: str | None, health: ChannelHealth | None) -> str:
    """`ok (last delivery 14:30:01)`, `failing: <last error> (3 waiting to retry)` or why it is not there."""
    waiting = f" ({health.waiting} waiting to retry)" if health and health.waiting else ""
    if health and health.held:
        waiting += f" ({health.held} held: snoozed, muted or grouped)"
    if unavailable:
        return unavailable + waiting
    if health is None or health.last_ok is None or health.last_at is None:
        return "ready (nothing sent yet)" + waiting
    if health.last_ok:
        return f"ok (last delivery {clock(health.last_at)})" + waiting
    return f"failing: {health.last_detail} ({clock(health.last_at)})" + waiting


def _test_channel(args: argparse.Namespace, settings: Settings) -> int:
    if args.name not in settings.channels:
        raise UsageError(f"no channel {args.name!r} in the settings (known: {', '.join(settings.channels)})")
    configure_logging(settings.log_file, settings.log_level, stderr_level="error")
    channels = build_channels(settings)
    if args.name not in channels.ready:
        raise UsageError(f"channel {args.name!r} is {channels.unavailable[args.name]}")
    channel = channels.ready[args.name]
    alert = Alert("tray_alerts_test", Level.INFO, f"test alert from tray-alerts on {socket.gethostname()}",
                  {"channel": args.name})
    outcome = Dispatcher({args.name: channel}, settings.delivery_timeout).deliver(alert, [args.name])[args.name]
    if outcome.ok:
        print(f"{args.name}: test alert delivered")
        return EXIT_OK
    advice = "trying again later could work" if outcome.retryable else "check the settings; retrying will not help"
    print(f"{args.name}: test alert NOT delivered — {outcome.detail} ({advice})")
    return EXIT_FAILED


def _history(args: argparse.Namespace, settings: Settings) -> int:
    store = StateStore(settings.state_path)
    try:
        entries = store.history(args.limit, args.event)
    finally:
        store.close()
    if not entries:
        print("No history yet.")
        return EXIT_OK
    rows = []
    for entry in reversed(entries):
        result = (entry.detail if entry.channel else "") if entry.ok is None else (
            "ok" if entry.ok else f"failed: {entry.detail}")
        rows.append((clock(entry.at), entry.event, entry.kind, entry.level.value, entry.channel or "", result,
                     entry.message))
    print(table(("TIME", "EVENT", "WHAT", "LEVEL", "CHANNEL", "RESULT", "MESSAGE"), rows))
    return EXIT_OK


def _autostart(args: argparse.Namespace, settings: Settings) -> int:
    from . import autostart

    if args.state == "on":
        path = autostart.enable(args.config)
        print(f"tray-alerts will start at login ({path})")
    else:
        removed = autostart.disable()
        print(f"tray-alerts will no longer start at login (removed {removed})" if removed
              else "tray-alerts was not set to start at login")
    return EXIT_OK


def _check_config(args: argparse.Namespace, settings: Settings) -> int:
    channels = build_channels(settings)
    print("settings: " + " + ".join(str(path) for path in settings.files))
    print(f"state: {settings.state_path}\nlog: {settings.log_file}\ndelivery timeout: {settings.delivery_timeout:g} s")
    print("\nrouting:")
    for level, names in settings.routing.routes.items():
        print(f"  {level.value:<9} → {', '.join(names) or '(nothing)'}")
    print("\nchannels:")
    rows = [(name, spec.type, "ready" if name in channels.ready else channels.unavailable.get(name, ""))
            for name, spec in settings.channels.items()]
    print(table(("NAME", "TYPE", "STATE"), rows))
    print("\nsettings OK")
    return EXIT_OK
