"""The `tray-alerts` command line: run the app, raise and clear alerts, look at state and settings.

Only the standard library and the quick commands' own modules are imported here: `raise`, `clear`, `ack`, `mute`,
`unmute` and `ping` with the app running post one request and load nothing else (tray_alerts.lean); every other
command imports what it needs when it runs (tray_alerts.commands)."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, Sequence

from . import __version__
from .client import ApiFailed
from .paths import FolderError
from .settings_file import ConfigError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
EXIT_CODES = "exit codes: 0 done; 1 something outside failed (a channel, the state file, the running app); 2 bad input"


class UsageError(Exception):
    """Bad command-line input: printed in one line, exit 2."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser(_quick_command(argv))
    args = parser.parse_args(argv)
    args.config = getattr(args, "config", None)  # given before or after the command (argparse shares the action)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return _handler(args.handler)(args)
    except (ConfigError, UsageError, FolderError) as error:
        print(f"tray-alerts: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ApiFailed as error:
        print(f"tray-alerts: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `tray-alerts status | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as error:
        if not _state_failure(error):
            raise
        print(f"tray-alerts: {error}", file=sys.stderr)
        return EXIT_FAILED


def _handler(name: str) -> Callable[[argparse.Namespace], int]:
    """`module:function` of a command, imported now (so a quick command loads only its own module)."""
    module, _, function = name.partition(":")
    __import__(f"{__package__}.{module}")  # (the import statement's way, which -X importtime reports)
    return getattr(sys.modules[f"{__package__}.{module}"], function)


def _state_failure(error: Exception) -> bool:
    """A state file that cannot be used or written (state.py's errors; that module is loaded only when used)."""
    state = sys.modules.get(f"{__package__}.state")
    return state is not None and isinstance(error, (state.StateError, state.StoreFault))


def __getattr__(name: str) -> Any:
    """`channel_state` (now in wiring), for code that imported it from here."""
    if name == "channel_state":
        from .wiring import channel_state

        return channel_state
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


QUICK_COMMANDS = ("raise", "clear", "ack", "mute", "unmute", "ping", "dashboard")


class _Unbuilt:
    """Stands in for the parser of a command not on the command line (building all twelve costs a quick command
    a tenth of its time)."""

    def add_argument(self, *args: Any, **kwargs: Any) -> None:
        pass


def _quick_command(argv: Sequence[str]) -> str | None:
    """The quick command the arguments name (after any --config PATH), or None."""
    tokens = iter(argv)
    for token in tokens:
        if token == "--config":
            next(tokens, None)
        elif not token.startswith("--config="):
            return token if token in QUICK_COMMANDS else None
    return None


def _parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser: every command, or (`only`) just that one, when it is known to be the one."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                        help="settings file (default: $TRAY_ALERTS_CONFIG, then the user's config folder)")
    parser = argparse.ArgumentParser(
        prog="tray-alerts", parents=[common], epilog=EXIT_CODES,
        description="Desktop alerting: local monitors, debounced alerts, routed to pop-ups, Slack, email, SMS.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                        help="print the version and exit")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(name: str, handler: str, help_text: str) -> Any:
        if only is not None and name != only:
            return _Unbuilt()
        sub = commands.add_parser(name, parents=[common], help=help_text, description=help_text, epilog=EXIT_CODES)
        sub.set_defaults(handler=handler)
        return sub

    run = command("run", "commands:run", "run the app in the system tray (headless where there is none) until"
                                         " Quit or Ctrl-C")
    run.add_argument("--headless", action="store_true", help="run without a tray icon")
    raise_ = command("raise", "lean:raise_alert", "raise an alert (sent once; repeats are debounced)")
    raise_.add_argument("event", metavar="EVENT", help="stable event id, e.g. disk_full")
    raise_.add_argument("level", metavar="LEVEL", help="info, warning, error or critical")
    raise_.add_argument("message", metavar="MESSAGE", help="what happened (not empty)")
    raise_.add_argument("context", nargs="*", default=[], metavar="key=value",
                        help="context shown with the alert (optional)")
    raise_.add_argument("--depends-on", metavar="EVENT[,EVENT]",
                        help="events this one depends on: while one is active, this alert tells only the log")
    clear = command("clear", "lean:clear_alert", "clear an active alert and send its recovery (an event that is not"
                                                 " active: nothing is sent, exit 0)")
    clear.add_argument("event", metavar="EVENT")
    clear.add_argument("message", metavar="MESSAGE", nargs="?", default="recovered",
                       help="what the recovery says (default: recovered)")
    ack = command("ack", "lean:acknowledge", "acknowledge an active alert: it stays active and listed, its reminders"
                                             " and pop-ups stop until it escalates; its recovery still goes out")
    ack.add_argument("event", metavar="EVENT")
    mute = command("mute", "lean:mute", "hold one active event's notifications for a while (it stays active and"
                                        " shown)")
    mute.add_argument("event", metavar="EVENT")
    mute.add_argument("duration", metavar="DURATION", help="how long, e.g. 30m, 2h, 1d")
    unmute = command("unmute", "lean:mute", "send one active event's notifications again (and what was held)")
    unmute.add_argument("event", metavar="EVENT")
    ping = command("ping", "lean:ping", "ping a heartbeat monitor (e.g. at the end of a cron job)")
    ping.add_argument("name", metavar="NAME", help="a [monitor.NAME] of type heartbeat")
    dashboard = command("dashboard", "lean:dashboard", "open the running app's dashboard in the web browser (a"
                                                       " one-time login address)")
    dashboard.add_argument("--url", action="store_true", help="print the address instead of opening it (it works"
                                                              " once, for 2 minutes)")
    command("check", "commands:check", "run every monitor once and show what it sees (raises nothing)")
    status = command("status", "commands:status", "show the active alerts (the worst 50) and how each channel is"
                                                  " doing")
    status.add_argument("--all", action="store_true", help="show every active alert, not only the worst 50")
    test_channel = command("test-channel", "commands:test_channel", "send a test alert through one channel and say"
                                                                    " how it went")
    test_channel.add_argument("name", metavar="NAME", help="a [channel.NAME] from the settings")
    history = command("history", "commands:history", "show recent firings, clears and deliveries")
    history.add_argument("--limit", type=_positive_int, default=20, metavar="N", help="entries to show (20)")
    history.add_argument("--event", help="only this event")
    command("check-config", "commands:check_config", "check the settings and show what they set up")
    autostart = command("autostart", "commands:autostart", "start tray-alerts at login (on) or not (off)")
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
