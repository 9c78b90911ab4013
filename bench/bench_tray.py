"""The tray's cost next to the headless app: CPU, memory and exit times of the real app, side by side.

    python bench/bench_tray.py [--seconds 60] [--monitors 200] [--monitor file_age|command] [--one-at-a-time]

Three apps run at once, each `python -m tray_alerts run` with its own settings and N monitors checking every
second: (a) headless (`--headless`), (b) the tray on the StatusNotifierItem path (xfce4-panel as the host, on
Xvfb with a private session bus), (c) the tray on the XEmbed path (pystray gtk; trayer as the host, on a second
Xvfb and bus); plus an idle SNI app with no monitors, for its memory. After a warm-up, each app's CPU seconds
(user + system, its children included) over the window are divided by the wall time, and by the headless
app's; RSS is read at the window's start and end. Then SIGTERM ends each app and the time to its exit is
taken; the apps are started again and SIGINT does the same. The SNI host's signals from our item are counted
in the window (few means the view is pushed only when it changes).

file_age monitors (the default) change their line in the Monitors menu at every check ("is 3.2 s old"): the
refresh pushes at most four times a second. command monitors (`true`, "exited 0") change nothing after the
first check, so nothing is pushed at all. Prints figures; asserts nothing (timing here is noisy).
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from desktop_session import DesktopSession, stop_process  # noqa: E402
from sni_hosts import SignalRecorder, SniHost  # noqa: E402

READY_LINE = "tray-alerts running"
START_WAIT = 30.0
EXIT_WAIT = 10.0
SNI_INTERFACES = ("org.kde.StatusNotifierItem", "com.canonical.dbusmenu")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_settings(folder: Path, monitors: int, kind: str) -> Path:
    """Settings for one app: N monitors checking every second, alerts to the log only."""
    folder.mkdir(parents=True, exist_ok=True)
    watched = folder / "watched"
    watched.write_text("fresh\n")
    lines = [f"[alerts]\nstate_dir = {folder / 'state'}\nlog_file = {folder / 'app.log'}\napi_port = {free_port()}\n",
             "[routing]\ninfo = log\nwarning = log\nerror = log\ncritical = log\n",
             "[channel.desktop]\nenabled = no\n", "[monitor.disk_root]\nenabled = no\n"]
    for index in range(monitors):
        body = (f"type = file_age\npath = {watched}\nwarning = 1d\n" if kind == "file_age"
                else "type = command\ncommand = true\n")
        lines.append(f"[monitor.m{index:03d}]\n{body}interval = 1s\n")
    path = folder / "settings.ini"
    path.write_text("\n".join(lines))
    return path


@dataclass
class App:
    """One `python -m tray_alerts run` and its figures."""

    name: str
    env: dict[str, str]
    settings: Path
    headless: bool = False
    process: subprocess.Popen | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    lines: list[str] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    exits: dict[str, tuple[float, int | None]] = field(default_factory=dict)

    def start(self) -> None:
        folder = self.settings.parent
        command = [sys.executable, "-m", "tray_alerts", "run", "--config", str(self.settings)]
        if self.headless:
            command.append("--headless")
        self.ready.clear()
        self._stderr = open(folder / "stderr.log", "ab")
        self.process = subprocess.Popen(command, cwd=folder, env=self.env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=self._stderr, text=True,
                                        start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip())
            if READY_LINE in line:
                self.ready.set()

    def wait_ready(self) -> None:
        if not self.ready.wait(START_WAIT):
            raise SystemExit(f"{self.name} did not start within {START_WAIT:g} s; stderr:\n{self.stderr()[-3000:]}")

    def sample(self) -> None:
        """CPU seconds so far (its children included), RSS in MiB, and the time."""
        assert self.process is not None
        process = psutil.Process(self.process.pid)
        times = process.cpu_times()
        self.cpu.append(times.user + times.system + times.children_user + times.children_system)
        self.rss.append(process.memory_info().rss / 2**20)
        self.wall.append(time.monotonic())

    def end(self, signum: int) -> None:
        """Send `signum`, time the exit, remember the exit code (killed after EXIT_WAIT)."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signum)
        try:
            code: int | None = self.process.wait(EXIT_WAIT)
        except subprocess.TimeoutExpired:
            code = None
            stop_process(self.process)
        self.exits[signal.Signals(signum).name] = (time.monotonic() - started, code)
        self._stderr.close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_process(self.process)

    def backend(self) -> str:
        for line in self.stderr().splitlines():
            if line.startswith("INFO tray: "):
                return line[len("INFO tray: "):].split(" (", 1)[0]
        return "headless" if self.headless else "?"

    def stderr(self) -> str:
        try:
            return (self.settings.parent / "stderr.log").read_text(errors="replace")
        except OSError:
            return ""

    @property
    def load(self) -> float:
        """CPU seconds per wall second over the window."""
        return (self.cpu[1] - self.cpu[0]) / (self.wall[1] - self.wall[0])


def app_env(desktop: DesktopSession, folder: Path) -> dict[str, str]:
    env = desktop.child_env()
    for name in ("TRAY_ALERTS_TRAY", "TRAY_ALERTS_CONFIG", "PYSTRAY_BACKEND"):
        env.pop(name, None)
    for name in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        env[name] = str(folder / "xdg" / name.lower())
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def measure(apps: list[App], warmup: float, seconds: float, one_at_a_time: bool) -> None:
    groups = [[app] for app in apps] if one_at_a_time else [apps]
    for group in groups:
        for app in group:
            app.start()
        for app in group:
            app.wait_ready()
        time.sleep(warmup)
        for app in group:
            app.sample()
        time.sleep(seconds)
        for app in group:
            app.sample()
        for app in group:
            app.end(signal.SIGTERM)


def exit_on_sigint(apps: list[App], warmup: float) -> None:
    for app in apps:
        app.start()
    for app in apps:
        app.wait_ready()
    time.sleep(warmup)
    for app in apps:
        app.end(signal.SIGINT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="the measured window (default 60)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds after start before measuring")
    parser.add_argument("--monitors", type=int, default=200)
    parser.add_argument("--monitor", choices=("file_age", "command"), default="file_age")
    parser.add_argument("--one-at-a-time", action="store_true", help="measure the apps one after another")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-tray-"))
    print(f"{os.cpu_count()} cores, Python {sys.version.split()[0]}; {args.monitors} {args.monitor} monitors"
          f" every 1 s per app; {args.seconds:g} s window after {args.warmup:g} s warm-up;"
          f" {'one at a time' if args.one_at_a_time else 'side by side'}", flush=True)
    with DesktopSession(notifications=False) as sni_desktop, SniHost(sni_desktop, "xfce"), \
            DesktopSession(notifications=False, tray=True) as xembed_desktop:
        apps = [App("headless", app_env(sni_desktop, work / "headless"),
                    write_settings(work / "headless", args.monitors, args.monitor), headless=True),
                App("sni", app_env(sni_desktop, work / "sni"), write_settings(work / "sni", args.monitors,
                                                                                args.monitor)),
                App("xembed", app_env(xembed_desktop, work / "xembed"),
                    write_settings(work / "xembed", args.monitors, args.monitor))]
        idle = App("sni idle", app_env(sni_desktop, work / "idle"), write_settings(work / "idle", 0, args.monitor))
        try:
            with SignalRecorder(sni_desktop) as recorder:
                idle.start()
                idle.wait_ready()
                measure(apps, args.warmup, args.seconds, args.one_at_a_time)
                window = (apps[1].wall[0], apps[1].wall[1])
                signals = Counter(f"{message.member}" for message in recorder.since(window[0])
                                  if message.kind == 4 and message.interface in SNI_INTERFACES
                                  and message.at <= window[1])
                idle.sample()
                idle.end(signal.SIGTERM)
            exit_on_sigint(apps, min(args.warmup, 3.0))
        finally:
            for app in (*apps, idle):
                app.kill()

    headless = apps[0]
    print(f"\n{'app':<10} {'backend':<22} {'CPU s':>7} {'wall s':>7} {'CPU/wall':>9} {'vs headless':>12}"
          f" {'RSS start':>10} {'RSS end':>8}")
    for app in apps:
        ratio = app.load / headless.load if headless.load else float("nan")
        print(f"{app.name:<10} {app.backend():<22} {app.cpu[1] - app.cpu[0]:>7.2f} {app.wall[1] - app.wall[0]:>7.1f}"
              f" {app.load:>8.1%} {ratio:>11.2f}x {app.rss[0]:>7.1f} MiB {app.rss[1]:>5.1f} MiB")
    print(f"\nidle SNI app (no monitors): RSS {idle.rss[0]:.1f} MiB ({idle.backend()})")
    shown = ", ".join(f"{name} {count}" for name, count in sorted(signals.items())) or "none"
    print(f"SNI signals in the {window[1] - window[0]:.0f} s window (all SNI items on that bus): {shown}")
    for signum in ("SIGTERM", "SIGINT"):
        parts = []
        for app in (*apps, idle):
            if signum in app.exits:
                took, code = app.exits[signum]
                parts.append(f"{app.name} {took:.2f} s (exit {code if code is not None else 'none: killed'})")
        print(f"exit on {signum}: " + "; ".join(parts))
    noisy = [app.name for app in (*apps, idle) if "Traceback" in app.stderr() or "-CRITICAL **" in app.stderr()]
    print(f"stderr with a traceback or toolkit criticals: {', '.join(noisy) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
