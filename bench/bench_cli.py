"""A quick command's whole-process time next to an empty Python's: `tray-alerts raise` from cron, app running.

    python bench/bench_cli.py [--runs 30] [--no-bytecode-cache] [--hold SECONDS]

Starts the real app headless (its own settings and state in a temporary folder, the log channel only, on a free
port), raises one alert so that the timed ones are debounced repeats (what a cron job sends most), then runs, in
turn, A = `tray-alerts raise bench_event warning "disk at 93%"` (the console script of this interpreter) and
B = `python -c pass` (the same interpreter), RUNS times each after a warm-up. Each run is timed from outside, from
its start to its exit (time.perf_counter around subprocess.run); the ratio A/B is taken pair by pair, so a drift of
the machine's speed during the run moves both. Prints min, median and max; quote the median (target: A/B <= 2).

Python's bytecode cache is used as an installed package has it (pip compiles on install): it is written once to a
temporary PYTHONPYCACHEPREFIX, for both commands. --no-bytecode-cache sets PYTHONDONTWRITEBYTECODE instead, so each
run compiles tray-alerts' own modules again (a checkout with bytecode writing off and no __pycache__ folders).
--hold keeps the app up that long after the figures, printing the environment to time the same command with another
tool (`/usr/bin/time -v`, hyperfine). Asserts nothing: timing on a shared machine is noisy.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READY_LINE = "tray-alerts running headless"
START_WAIT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_settings(folder: Path) -> Path:
    """Settings for the app: the log channel only, no monitors, a port of its own."""
    path = folder / "settings.ini"
    path.write_text(f"[alerts]\nstate_dir = {folder / 'state'}\nlog_file = {folder / 'app.log'}\n"
                    f"api_port = {free_port()}\n[routing]\ninfo = log\nwarning = log\nerror = log\ncritical = log\n"
                    f"[channel.log]\nfile = {folder / 'alerts.log'}\n[channel.desktop]\nenabled = no\n"
                    "[monitor.disk_root]\nenabled = no\n")
    return path


def quick_command() -> list[str]:
    """`tray-alerts` as cron runs it: the console script beside this interpreter, else `python -m tray_alerts`."""
    script = Path(sys.executable).with_name("tray-alerts")
    return [str(script)] if script.exists() else [sys.executable, "-m", "tray_alerts"]


def timed(command: list[str], env: dict[str, str]) -> float:
    """Seconds from the start of `command` to its exit (it must succeed)."""
    start = time.perf_counter()
    result = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{command} failed ({result.returncode}): {result.stderr.strip()}")
    return elapsed


def spread(values: list[float], unit: str = "s") -> str:
    scale, digits = (1000.0, 1) if unit == "ms" else (1.0, 3)
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{low * scale:8.{digits}f} {mid * scale:8.{digits}f} {high * scale:8.{digits}f} {unit}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="timed runs of each command (30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs of each first (3)")
    parser.add_argument("--no-bytecode-cache", action="store_true", help="compile tray-alerts' modules every run")
    parser.add_argument("--hold", type=float, default=0.0, metavar="SECONDS", help="keep the app up afterwards")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["TRAY_ALERTS_CONFIG"] = str(write_settings(folder))
    env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
    app_env = dict(env)
    if args.no_bytecode_cache:  # the standard library's own cache is still read; tray-alerts' (a checkout) has none
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        del env["PYTHONPYCACHEPREFIX"]
    app = subprocess.Popen([sys.executable, "-m", "tray_alerts", "run", "--headless"], env=app_env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = app.stdout.readline() if app.stdout else ""
        if READY_LINE not in line:
            raise SystemExit(f"the app did not start: {line.strip() or app.poll()}")
        quick = [*quick_command(), "raise", "bench_event", "warning", "disk at 93% on /"]
        empty = [sys.executable, "-c", "pass"]
        first = subprocess.run(quick, env=env, capture_output=True, text=True)
        if "[the running app]" not in first.stdout:
            raise SystemExit(f"the raise did not go through the app: {first.stdout}{first.stderr}")
        for _ in range(args.warmup):
            timed(quick, env), timed(empty, env)
        a_times, b_times = [], []
        for _ in range(args.runs):
            a_times.append(timed(quick, env))
            b_times.append(timed(empty, env))
        ratios = [a / b for a, b in zip(a_times, b_times)]
        cache = "none (compiled every run)" if args.no_bytecode_cache else "written once, then read (as installed)"
        print(f"bytecode cache: {cache}; {args.runs} runs each, in turn; min, median, max")
        print(f"A  {' '.join(quick)}")
        print(f"B  {' '.join(empty)}")
        print(f"A wall  {spread(a_times, 'ms')}")
        print(f"B wall  {spread(b_times, 'ms')}")
        print(f"A/B     {spread(ratios, 'x')}")
        print(f"ratio (median of pairs): {statistics.median(ratios):.2f}x  (target <= 2x)")
        if args.hold > 0:
            print(f"holding the app for {args.hold:g} s; time it yourself with:")
            cache = "PYTHONDONTWRITEBYTECODE=1" if args.no_bytecode_cache else \
                f"PYTHONPYCACHEPREFIX={env['PYTHONPYCACHEPREFIX']}"
            print(f"  TRAY_ALERTS_CONFIG={env['TRAY_ALERTS_CONFIG']} {cache} {' '.join(quick)}", flush=True)
            time.sleep(args.hold)
    finally:
        app.terminate()
        try:
            app.wait(timeout=15)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait()
        if app.stdout:
            app.stdout.close()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
