"""The push API under a burst: 1,000 distinct raises from 50 threads against the real app, this API next to the
previous one (the api.py of 25fc425, the last commit before it, or --old REV), round after round.

    python bench/bench_api.py [--rounds 3] [--raises 1000] [--threads 50] [--mode fresh|keepalive|both]
                              [--tray] [--old REV | --no-old] [--half-open 300] [--half-open-wait 8]

Each round starts a fresh `python -m tray_alerts run --headless` (with --tray also `tray-alerts run` on Xvfb with
a private session bus and xfce4-panel as its StatusNotifierItem host: tests/desktop_session.py and
tests/sni_hosts.py) with settings of its own (a free api_port, its own state folder, the log channel to a file,
no pop-ups, no monitors), waits for its token, warms it up, then fires the raises with http.client: `fresh`
opens a connection per raise as curl does, `keepalive` keeps one per thread. A raise is lost when its
connection fails, when it is answered other than 2xx, or when it is missing from `GET /v1/alerts` afterwards.
The previous API runs in the same app: a bootstrap loads its source (`git show REV:tray_alerts/api.py`) as the
module `tray_alerts.api` before the app imports it. Rounds of the two alternate, so a noisy neighbour hurts
both; medians are printed. First, each API gets N connections that send nothing or half a request: the app's
thread count with them open, whether it still answers, and how many were closed within a few seconds. Asserts
nothing (timing here is noisy).
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

READY_LINE = "tray-alerts running"
START_WAIT = 30.0
REQUEST_TIMEOUT = 30.0

BOOT = """
import importlib.util, sys
old = sys.argv.pop(1)
if old:
    spec = importlib.util.spec_from_file_location("tray_alerts.api", old)
    module = importlib.util.module_from_spec(spec)
    sys.modules["tray_alerts.api"] = module
    spec.loader.exec_module(module)
from tray_alerts.cli import main
sys.exit(main(sys.argv[1:]))
"""
OLD_API = "25fc425"  # the last commit before this API: ThreadingHTTPServer, a backlog of 5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_settings(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = (f"[alerts]\nstate_dir = {folder / 'state'}\nlog_file = {folder / 'app.log'}\napi_port = {free_port()}\n"
            f"delivery_timeout = 5s\n[channel.log]\nfile = {folder / 'alerts.log'}\n[channel.desktop]\nenabled = no\n"
            "[monitor.disk_root]\nenabled = no\n")
    path = folder / "settings.ini"
    path.write_text(text)
    return path


class App:
    """One real app: the current API (old=None) or the previous one (old: a path to its source)."""

    def __init__(self, folder: Path, old: Path | None, env: dict[str, str], tray: bool):
        self.folder, self.settings = folder, write_settings(folder)
        self.port = int(next(line for line in self.settings.read_text().splitlines()
                             if line.startswith("api_port")).partition("=")[2])
        command = [sys.executable, "-c", BOOT, str(old or ""), "run", "--config", str(self.settings)]
        if not tray:
            command.append("--headless")
        self.stderr = open(folder / "stderr.log", "wb")
        self.process = subprocess.Popen(command, cwd=folder, env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=self.stderr, text=True,
                                        start_new_session=True)
        self.ready = threading.Event()
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        if not self.ready.wait(START_WAIT):
            self.stop()
            raise SystemExit(f"the app did not start; stderr:\n{(folder / 'stderr.log').read_text()[-3000:]}")
        ready = next(line for line in self.lines if READY_LINE in line)
        if tray and "in the tray" not in ready:
            self.stop()
            raise SystemExit(f"asked for the tray, the app said: {ready}")
        token_file = folder / "state" / "api-token"
        self.token = token_file.read_text().strip()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip())
            if READY_LINE in line:
                self.ready.set()

    def cpu(self) -> float:
        times = psutil.Process(self.process.pid).cpu_times()
        return times.user + times.system

    def threads(self) -> int:
        return psutil.Process(self.process.pid).num_threads()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.stderr.close()


def call(port: int, token: str, method: str, path: str, body: Any = None,
         connection: http.client.HTTPConnection | None = None) -> tuple[int, Any]:
    own = connection is None
    connection = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    try:
        data = json.dumps(body).encode() if body is not None else None
        connection.request(method, path, body=data, headers={"Authorization": f"Bearer {token}",
                                                             "Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        if own:
            connection.close()


@dataclass
class Round:
    api: str
    mode: str
    raises: int
    seconds: float = 0.0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    not_2xx: int = 0
    missing: int = 0
    missing_answered: int = 0  # answered 2xx, yet not listed afterwards
    cpu: float = 0.0
    client_cpu: float = 0.0
    threads: int = 0

    @property
    def lost(self) -> int:
        """Not answered 2xx, or answered and then not listed."""
        return self.raises - self.ok + self.missing_answered

    @property
    def rate(self) -> float:
        return self.raises / self.seconds if self.seconds else 0.0


def burst(app: App, api: str, mode: str, raises: int, threads: int, tag: str) -> Round:
    events = [f"burst {tag} #{index:04d}" for index in range(raises)]
    result = Round(api, mode, raises)
    answered: set[str] = set()
    lock = threading.Lock()
    start_gate = threading.Barrier(threads + 1)
    peak = [0]

    def worker(mine: list[str]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", app.port, timeout=REQUEST_TIMEOUT) \
            if mode == "keepalive" else None
        start_gate.wait()
        for event in mine:
            body = {"event": event, "level": "warning", "message": "a burst", "context": {"bench": tag}}
            try:
                status, _ = call(app.port, app.token, "POST", "/v1/alerts", body, connection)
            except (OSError, http.client.HTTPException) as error:
                with lock:
                    name = type(error).__name__
                    result.errors[name] = result.errors.get(name, 0) + 1
                if connection is not None:
                    connection.close()  # the next request opens a new one
                continue
            with lock:
                if 200 <= status < 300:
                    result.ok += 1
                    answered.add(event)
                else:
                    result.not_2xx += 1

    def watch_threads(stop: threading.Event) -> None:
        while not stop.wait(0.05):
            try:
                peak[0] = max(peak[0], app.threads())
            except psutil.Error:
                return

    shares = [events[index::threads] for index in range(threads)]
    pool = [threading.Thread(target=worker, args=(share,)) for share in shares]
    for thread in pool:
        thread.start()
    stop_watching = threading.Event()
    watcher = threading.Thread(target=watch_threads, args=(stop_watching,), daemon=True)
    watcher.start()
    cpu_before, client_before = app.cpu(), _own_cpu()
    start_gate.wait()
    started = time.perf_counter()
    for thread in pool:
        thread.join()
    result.seconds = time.perf_counter() - started
    result.cpu, result.client_cpu = app.cpu() - cpu_before, _own_cpu() - client_before
    stop_watching.set()
    watcher.join()
    result.threads = peak[0]
    status, listed = call(app.port, app.token, "GET", "/v1/alerts")
    present = {item["event"] for item in listed} if status == 200 else set()
    result.missing = sum(event not in present for event in events)
    result.missing_answered = sum(event not in present for event in answered)
    return result


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def half_open(app: App, count: int, wait: float) -> tuple[int, int, int]:
    """Open `count` connections that send nothing or half a request: the app's threads with them open, whether it
    still answers meanwhile (HTTP status), then how many were closed or reset within `wait` seconds (by the app,
    or by the kernel for one it never accepted)."""
    before = app.threads()
    socks = []
    for index in range(count):
        sock = socket.create_connection(("127.0.0.1", app.port), timeout=REQUEST_TIMEOUT)
        if index % 2:
            sock.sendall(b"POST /v1/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 80\r\n\r\n{")
        socks.append(sock)
    time.sleep(1.0)
    during = app.threads()
    try:
        status, _ = call(app.port, app.token, "GET", "/v1/status")
    except (OSError, http.client.HTTPException):
        status = 0
    deadline = time.monotonic() + wait
    closed: set[int] = set()
    while time.monotonic() < deadline and len(closed) < count:
        for index, sock in enumerate(socks):
            if index in closed:
                continue
            sock.setblocking(False)
            try:
                while True:
                    if not sock.recv(65536):
                        closed.add(index)
                        break
            except BlockingIOError:
                pass
            except OSError:
                closed.add(index)
        time.sleep(0.1)
    for sock in socks:
        sock.close()
    print(f"    threads {before} -> {during} with {count} half-open connections; answered meanwhile: HTTP {status};"
          f" closed or reset by the server side within {wait:g} s: {len(closed)} of {count}", flush=True)
    return during, len(closed), status


def warm_up(app: App) -> None:
    for index in range(20):
        call(app.port, app.token, "POST", "/v1/alerts", {"event": f"warm-up {index}", "level": "info",
                                                         "message": "warming up"})
    time.sleep(0.5)


def old_source(rev: str, work: Path) -> Path:
    source = subprocess.run(["git", "show", f"{rev}:tray_alerts/api.py"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout
    path = work / "old_api.py"
    path.write_text(source)
    return path


def app_env(base: dict[str, str], folder: Path) -> dict[str, str]:
    env = dict(base)
    for name in ("TRAY_ALERTS_TRAY", "TRAY_ALERTS_CONFIG", "PYSTRAY_BACKEND"):
        env.pop(name, None)
    for name in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        env[name] = str(folder / "xdg" / name.lower())
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run(args: argparse.Namespace, work: Path, base_env: dict[str, str], tray: bool) -> list[Round]:
    apis: list[tuple[str, Path | None]] = [("this", None)]
    if args.old:
        apis.append((f"old ({args.old})", old_source(args.old, work)))
    modes = ["fresh", "keepalive"] if args.mode == "both" else [args.mode]
    rounds: list[Round] = []
    if args.half_open:
        for api, source in apis:
            folder = work / f"{'tray' if tray else 'headless'}-half-open-{len(api)}"
            app = App(folder, source, app_env(base_env, folder), tray)
            try:
                print(f"  {api}:", flush=True)
                half_open(app, args.half_open, args.half_open_wait)
            finally:
                app.stop()
    for number in range(args.rounds):
        order = apis if number % 2 == 0 else list(reversed(apis))
        for mode in modes:
            for api, source in order:
                folder = work / f"{'tray' if tray else 'headless'}-{len(rounds):02d}"
                app = App(folder, source, app_env(base_env, folder), tray)
                try:
                    warm_up(app)
                    result = burst(app, api, mode, args.raises, args.threads, f"{number}-{mode}")
                finally:
                    app.stop()
                rounds.append(result)
                errors = ", ".join(f"{name} {count}" for name, count in sorted(result.errors.items()))
                print(f"  round {number + 1} {mode:<9} {api:<12} {result.rate:7.0f} raises/s  ok {result.ok:>4}"
                      f"  lost {result.lost:>3} ({errors or 'no connection errors'}; non-2xx {result.not_2xx};"
                      f" missing afterwards {result.missing})  server CPU {1000 * result.cpu / args.raises:.2f}"
                      f" ms/raise (client {1000 * result.client_cpu / args.raises:.2f}), peak threads {result.threads}",
                      flush=True)
    return rounds


def summary(rounds: list[Round], label: str, args: argparse.Namespace) -> None:
    print(f"\n{label}: medians of {args.rounds} rounds, {args.raises} distinct raises from {args.threads} threads")
    print(f"  {'mode':<9} {'API':<12} {'raises/s':>9} {'lost (max)':>11} {'CPU ms/raise':>13} {'peak threads':>13}")
    medians: dict[tuple[str, str], float] = {}
    for mode in dict.fromkeys(r.mode for r in rounds):
        for api in dict.fromkeys(r.api for r in rounds):
            mine = [r for r in rounds if r.mode == mode and r.api == api]
            rate = statistics.median(r.rate for r in mine)
            medians[(mode, api)] = rate
            print(f"  {mode:<9} {api:<12} {rate:>9.0f} {statistics.median(r.lost for r in mine):>5.0f}"
                  f" ({max(r.lost for r in mine)}) {statistics.median(1000 * r.cpu / r.raises for r in mine):>12.2f}"
                  f" {statistics.median(r.threads for r in mine):>13.0f}")
        apis = [api for m, api in medians if m == mode]
        if len(apis) == 2 and medians[(mode, apis[1])]:
            print(f"  {mode:<9} ratio this/old: {medians[(mode, apis[0])] / medians[(mode, apis[1])]:.1f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--raises", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=50)
    parser.add_argument("--mode", choices=("fresh", "keepalive", "both"), default="both")
    parser.add_argument("--old", default=OLD_API, help=f"the revision whose api.py to compare with (default {OLD_API})")
    parser.add_argument("--no-old", dest="old", action="store_const", const="", help="measure this API only")
    parser.add_argument("--tray", action="store_true", help="also measure the tray app (Xvfb, xfce4-panel)")
    parser.add_argument("--half-open", type=int, default=300, metavar="N",
                        help="first open N connections that send nothing or half a request (0: skip)")
    parser.add_argument("--half-open-wait", type=float, default=8.0, metavar="SECONDS",
                        help="how long to watch for the app closing them (default 8)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-api-"))
    print(f"{os.cpu_count()} cores, Python {sys.version.split()[0]}; listen backlog of the current API"
          f" {_backlog()}; {args.raises} distinct raises from {args.threads} threads per round; work in {work}",
          flush=True)
    print("headless:", flush=True)
    headless = run(args, work, dict(os.environ), tray=False)
    summary(headless, "headless", args)
    if args.tray:
        from desktop_session import DesktopSession
        from sni_hosts import SniHost

        print("\ntray (StatusNotifierItem, xfce4-panel on Xvfb):", flush=True)
        with DesktopSession(notifications=False) as desktop, SniHost(desktop, "xfce"):
            tray = run(args, work, desktop.child_env(), tray=True)
        summary(tray, "tray", args)
    return 0


def _backlog() -> int:
    sys.path.insert(0, str(ROOT))
    from tray_alerts.api import LISTEN_BACKLOG

    return LISTEN_BACKLOG


if __name__ == "__main__":
    sys.exit(main())
