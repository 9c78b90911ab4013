"""The commands that work on the whole app (run, status, check, history, test-channel, check-config, autostart),
and the engine a quick command uses when no app is running: each loads the full settings and the engine."""
from __future__ import annotations

import argparse
import logging
import socket
import sys
import time
from contextlib import contextmanager
from typing import Iterator

from . import readings
from .cli import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, UsageError
from .config import Settings, load_settings
from .delivery import Dispatcher
from .display import clock, duration, table
from .engine import Engine
from .instance import app_running
from .logsetup import configure_logging
from .model import Alert, Level, from_timestamp
from .paths import FolderError, check_folder, folder_problem
from .state import StateStore
from .wiring import build_channels, build_checker, build_engine, channel_states

STATUS_LIMIT = 50  # active alerts `status` shows without --all


@contextmanager
def direct_engine(config: str | None) -> Iterator[Engine]:
    """An engine on the state file for a quick command while no app runs (the caller holds the state folder):
    the full settings checked, the state folder usable, logging to the log file only."""
    settings = load_settings(config)
    _check_state_dir(settings)
    configure_logging(settings.log_file, settings.log_level, stderr_level="error")
    engine = build_engine(settings, retry_in_background=False)
    try:
        yield engine
    finally:
        engine.close()


def _check_state_dir(settings: Settings) -> None:
    """FolderError (one line, exit 2) when the state folder is a file, read-only or cannot be created."""
    check_folder(settings.state_dir, "state folder", "state_dir")


def run(args: argparse.Namespace) -> int:
    """`tray-alerts run [--headless]`."""
    settings = load_settings(args.config)
    _check_state_dir(settings)
    if app_running(settings.state_dir):  # the state folder's lock says so, never a busy port
        raise UsageError(f"already running on {settings.state_dir}")
    from .app import AlreadyRunning, PortTaken, run_headless
    from .desktop_env import tray_problem

    problem = None if args.headless else tray_problem()
    try:
        if args.headless or problem:
            if problem:
                print(f"tray-alerts: {problem} — running headless (monitors, channels, push API, log)", flush=True)
            return run_headless(settings)
        from .tray import Tray

        configure_logging(settings.log_file, settings.log_level)
        if sys.platform.startswith("linux"):
            _install_launcher(args.config)
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


def check(args: argparse.Namespace) -> int:
    """`tray-alerts check`: every monitor read once."""
    settings = load_settings(args.config)
    if not settings.monitors:
        print("No monitors configured — add [monitor.NAME] sections to the settings (see README).")
        return EXIT_OK
    _check_state_dir(settings)
    store = StateStore(settings.state_path)
    try:
        runner = build_checker(settings, store.last_ping)
        readings = {name: runner.read(spec) for name, spec in settings.monitors.items()}
    finally:
        store.close()
    rows = [(name, spec.monitor.type, reading.message(spec.monitor.label),
             reading.level.value if reading.level else "ok")
            for name, spec in settings.monitors.items() for reading in (readings[name],)]
    print(table(("NAME", "TYPE", "READING", "LEVEL"), rows, max_width=90))
    return EXIT_OK


def status(args: argparse.Namespace) -> int:
    """`tray-alerts status [--all]`: the worst 50 active alerts (every one with --all) and each channel's state."""
    settings = load_settings(args.config)
    _check_state_dir(settings)
    channels = build_channels(settings)
    store = StateStore(settings.state_path)
    try:
        records, total = store.worst_active(None if args.all else STATUS_LIMIT)
        health = store.channel_health()
        now = time.time()
        mutes = {event: until for event, until in store.load_mutes().items() if until > now}
    finally:
        store.close()
    if records:
        rows = [(r.event, r.level.value, f"{clock(from_timestamp(r.since))} ({duration(now - r.since)})", r.seen,
                 clock(from_timestamp(r.last_seen)), _inhibited(r.inhibited_by) + _acknowledged(r.acknowledged_at)
                 + _muted(mutes.get(r.event)) + r.message) for r in records]
        print(f"{total:,} active alert{'s' if total != 1 else ''}")
        print(table(("EVENT", "LEVEL", "SINCE", "SEEN", "LAST", "MESSAGE"), rows))
        if total > len(records):
            print(f"… and {total - len(records):,} more (tray-alerts status --all)")
    else:
        print("All clear — no active alerts.")
    print()
    states = channel_states(settings, health, channels)
    print(table(("CHANNEL", "TYPE", "STATE"), [(s.name, s.type, s.text) for s in states.values()], max_width=100))
    return EXIT_OK


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _share(part: float | None) -> str:
    return "—" if part is None else f"{100 * part:.1f} %"


def _inhibited(parent: str | None) -> str:
    return f"[inhibited by {parent}] " if parent else ""


def _acknowledged(at: float | None) -> str:
    return f"[acknowledged {clock(from_timestamp(at), seconds=False)}] " if at else ""


def _muted(until: float | None) -> str:
    return f"[muted until {clock(from_timestamp(until), seconds=False)}] " if until else ""


def test_channel(args: argparse.Namespace) -> int:
    """`tray-alerts test-channel NAME`."""
    settings = load_settings(args.config)
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


def history(args: argparse.Namespace) -> int:
    """`tray-alerts history [--limit N] [--event EVENT]`."""
    settings = load_settings(args.config)
    _check_state_dir(settings)
    store = StateStore(settings.state_path)
    now = time.time()
    try:
        entries = store.history(args.limit, args.event)
        names = [args.event] if args.event else readings.monitors(store)
        summaries = {name: readings.summarise(readings.load(store, name, now - readings.WEEK), now) for name in names}
    finally:
        store.close()
    kept = {name: summary for name, summary in summaries.items() if summary.up_week is not None}
    if kept:
        print(table(("MONITOR", "NOW", "LAST 24 H: LOW / MEAN / HIGH", "UP 24 H", "UP 7 D"),
                    [(name, _number(s.latest), " / ".join(map(_number, (s.low, s.mean, s.high))), _share(s.up_day),
                      _share(s.up_week)) for name, s in kept.items()]))
        print()
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


def autostart(args: argparse.Namespace) -> int:
    """`tray-alerts autostart on|off`."""
    load_settings(args.config)
    from . import autostart as entries

    if args.state == "on":
        path = entries.enable(args.config)
        print(f"tray-alerts will start at login ({path})")
    else:
        removed = entries.disable()
        print(f"tray-alerts will no longer start at login (removed {removed})" if removed
              else "tray-alerts was not set to start at login")
    return EXIT_OK


def check_config(args: argparse.Namespace) -> int:
    """`tray-alerts check-config`: the settings checked, what they set up, each channel as `status` shows it."""
    settings = load_settings(args.config)
    states = channel_states(settings)  # a channel's bad value is a ConfigError: before anything is printed
    problem = folder_problem(settings.state_dir)
    print("settings: " + " + ".join(str(path) for path in settings.files))
    print(f"state: {settings.state_path}" + (f" (its folder: {problem})" if problem else ""))
    print(f"log: {settings.log_file}\ndelivery timeout: {settings.delivery_timeout:g} s")
    print(f"push API: 127.0.0.1:{settings.api_port}")
    print(f"history kept: {duration(settings.history_max_age)}, {settings.history_max_rows:,} lines at most")
    print(f"after a resume from sleep: {duration(settings.resume_grace)} before bad readings count"
          if settings.resume_grace else "after a resume from sleep: bad readings count at once (resume_grace off)")
    print(f"metrics for Prometheus: http://{settings.metrics.address}/metrics (token: metrics-token)"
          if settings.metrics.enabled else "metrics for Prometheus: off ([metrics] enabled = no)")
    print("\nrouting:")
    for level, names in settings.routing.routes.items():
        print(f"  {level.value:<9} → {', '.join(names) or '(nothing)'}")
    print("\nchannels:")
    print(table(("NAME", "TYPE", "STATE"), [(s.name, s.type, s.text) for s in states.values()], max_width=100))
    if problem:
        raise FolderError(f"state folder {settings.state_dir}: {problem} (set [alerts] state_dir)")
    print("\nsettings OK")
    return EXIT_OK
