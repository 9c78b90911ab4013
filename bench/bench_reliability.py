"""Reliability figures; prints numbers, asserts nothing (machines here are noisy).

    python bench/bench_reliability.py [--quick] [--kills N]

  kills           a child runs an Engine flat out against a loopback webhook (answering at once, then after
                  200 ms) and a flaky channel, and is SIGKILLed at random moments, N times each (default 60,
                  --quick 10); after each kill the state file must open whole, keep its firing events and still
                  debounce them, and a restart drains the outbox; then: 0 lost, at most one repeat per kill and
                  channel, each said (tests/test_crash_safety.py has the harness)
  outage          a Slack stand-in on loopback refuses, then answers 500, then 429 with Retry-After: 1, then
                  recovers, while alerts are raised and cleared; what arrived, what was lost or duplicated
  concurrency     8 threads x 10,000 random raise/escalate/clear calls on 200 events (--quick: x 1,000), then
                  every invariant of tests/test_concurrency.py
  bad inputs      `python -m tray_alerts --config FILE check-config` over tests/data/bad_settings/*: exit code 2,
                  exactly one line on stderr, no traceback
  storm           storm control (a hook for its figures)
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the crash and concurrency harnesses live with their tests

from test_concurrency import run_concurrency  # noqa: E402
from test_crash_safety import run_kill_campaign  # noqa: E402
from tray_alerts import Engine, Level  # noqa: E402
from tray_alerts.channels.slack import SlackChannel  # noqa: E402
from tray_alerts.outbox import RetryPolicy  # noqa: E402

BAD_SETTINGS = ROOT / "tests" / "data" / "bad_settings"


# ---- (a) kills ---------------------------------------------------------------------------------------------

def kill_figures(folder: Path, kills: int, peer_delay: float) -> str:
    result = run_kill_campaign(folder / f"kills-{peer_delay:g}", kills, peer_delay=peer_delay)
    by_channel = ", ".join(f"{channel} {count}" for channel, count in sorted(result.duplicates_by_channel.items()))
    line = (f"kills, {'fast' if not peer_delay else f'{peer_delay * 1000:.0f} ms'} webhook peer:"
            f" {result.clean_restarts}/{kills} restarts clean (state whole, firing events kept"
            f" {result.active_kept}/{result.kills}, still debounced {result.debounced}/{result.active_before});"
            f" {result.committed:,} notifications committed, {result.delivered:,} delivered, {result.lost} lost;"
            f" {result.duplicates} duplicates ({by_channel or 'none'}; at most one per kill and channel),"
            f" {result.marked_repeats} arrivals marked as possible repeats, {result.interrupted} interrupted sends"
            f" sent again; {result.seconds:.1f} s")
    for violation in result.violations[:10]:
        line += f"\n  violation: {violation[:300]}"
    return line


# ---- (b) outage --------------------------------------------------------------------------------------------

class SlackStandIn:
    """Answers like Slack's incoming webhook in the phase it is put in ("500", "429" with Retry-After: 1, "ok");
    keeps every accepted payload. Not listening at all until start(): connections are refused."""

    def __init__(self):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/services/T1/B1/bench"
        self.phase = "ok"
        self.accepted: list[dict] = []  # request bodies answered 200
        self.answers: Counter = Counter()
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with stand_in.lock:
                    phase = stand_in.phase
                    stand_in.answers[phase] += 1
                    if phase == "ok":
                        stand_in.accepted.append(json.loads(body))
                if phase == "500":
                    self.answer(500, b"internal_error")
                elif phase == "429":
                    self.answer(429, b"rate_limited", {"Retry-After": "1"})
                else:
                    self.answer(200, b"ok")

            def answer(self, status: int, body: bytes, headers: dict | None = None) -> None:
                self.send_response(status)
                for name, value in {"Content-Type": "text/plain", "Content-Length": str(len(body)),
                                    **(headers or {})}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="slack-stand-in", daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def received(self) -> list[tuple[str, str, str]]:
        """(event, tag, message) of each alert accepted, in order (a grouped message has one attachment each)."""
        with self.lock:
            payloads = list(self.accepted)
        found = []
        for payload in payloads:
            for attachment in payload["attachments"]:
                tag, event = attachment["title"].split(" · ", 1)
                found.append((event, tag, attachment["text"].split("\n")[0]))
        return found


def _wait(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def outage_figures(folder: Path, per_phase: int = 16, seed: int = 3) -> str:
    stand_in = SlackStandIn()
    engine = Engine({"slack": SlackChannel("slack", stand_in.url, timeout=2)}, {level: ["slack"] for level in Level},
                    folder / "outage.db", delivery_timeout=5, retry=RetryPolicy(first=0.1, longest=0.5, expiry=600))
    rng = random.Random(seed)
    events = [f"svc{i}" for i in range(8)]
    expected: list[tuple[str, str, str]] = []
    counter = iter(range(1, 1_000_000))

    def operate(count: int) -> None:
        for _ in range(count):
            event, n = rng.choice(events), next(counter)
            if rng.random() < 0.35:
                if engine.clear_alert(event, f"back #{n}"):
                    expected.append((event, "RESOLVED", f"back #{n}"))
            else:
                level = rng.choice(list(Level))
                if engine.raise_alert(event, level, f"down #{n}"):
                    expected.append((event, level.value.upper(), f"down #{n}"))

    try:
        operate(per_phase)  # refused: nothing listens
        stand_in.phase = "500"
        stand_in.start()
        operate(per_phase)
        _wait(lambda: stand_in.answers["500"] >= 3, 30)
        stand_in.phase = "429"
        operate(per_phase)
        _wait(lambda: stand_in.answers["429"] >= 1, 30)
        stand_in.phase = "ok"
        recovered = time.monotonic()
        operate(per_phase)
        _wait(lambda: Counter(stand_in.received()) >= Counter(expected), 120)
        drained = time.monotonic() - recovered
        time.sleep(1.5)  # a duplicate would arrive now (the shortest Retry-After is 1 s)
    finally:
        engine.close()
        stand_in.stop()
    received = stand_in.received()
    want, got = Counter(expected), Counter(received)
    delivered = sum(min(n, got[key]) for key, n in want.items())
    lost = sum(want.values()) - delivered
    duplicated = sum((got - want).values())
    out_of_order = sum(1 for event in events
                       if [k for k in received if k[0] == event] != [k for k in expected if k[0] == event])
    return (f"outage: {len(expected)} notifications across refused → 500 → 429 (Retry-After 1) → ok:"
            f" delivered {delivered}, lost {lost}, duplicated {duplicated}, events out of order {out_of_order}"
            f" (server answered 500×{stand_in.answers['500']}, 429×{stand_in.answers['429']},"
            f" 200×{stand_in.answers['ok']};"
            f" all in {drained:.1f} s after recovery)")


# ---- (c) concurrency ---------------------------------------------------------------------------------------

def concurrency_figures(folder: Path, threads: int, calls: int, events: int = 200) -> str:
    (folder / "concurrency").mkdir()
    made, seconds, violations = run_concurrency(folder / "concurrency", threads, calls, events)
    line = (f"concurrency: {threads} threads × {calls:,} calls on {events} events: {made / seconds:,.0f} calls/s,"
            f" {len(violations)} violations")
    for violation in violations[:10]:
        line += f"\n  violation: {violation[:300]}"
    return line


# ---- (d) bad inputs ----------------------------------------------------------------------------------------

def bad_input_figures(unhandled: list[str] | None = None) -> tuple[int, int] | None:
    """(tried, handled) over tests/data/bad_settings/*, or None if the corpus is not there. Handled: `check-config`
    exits 2 with exactly one line on stderr and no traceback. Names of the others go into `unhandled`."""
    if not BAD_SETTINGS.is_dir():
        return None
    files = sorted(p for p in BAD_SETTINGS.iterdir() if p.is_file())
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "HOME": home, "XDG_CONFIG_HOME": home, "XDG_STATE_HOME": home, "XDG_DATA_HOME": home,
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        env.pop("TRAY_ALERTS_CONFIG", None)

        def check(path: Path) -> tuple[str, str | None]:
            try:
                done = subprocess.run([sys.executable, "-m", "tray_alerts", "--config", str(path), "check-config"],
                                      capture_output=True, text=True, env=env, cwd=home, timeout=60)
            except subprocess.TimeoutExpired:
                return path.name, "no answer within 60 s"
            lines = done.stderr.strip().splitlines()
            if done.returncode != 2:
                return path.name, f"exit {done.returncode}"
            if "Traceback" in done.stderr:
                return path.name, "traceback"
            if len(lines) != 1:
                return path.name, f"{len(lines)} stderr lines"
            return path.name, None

        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(check, files))
    if unhandled is not None:
        unhandled.extend(f"{name} ({why})" for name, why in results if why)
    return len(results), sum(1 for _, why in results if why is None)


# ---- (e) storm ---------------------------------------------------------------------------------------------

class _Counting:
    """A channel that counts what it is sent, singly or grouped (send_many)."""

    def __init__(self, name: str):
        self.name = name
        self.messages: list[list] = []
        self.lock = threading.Lock()

    def send(self, alert) -> None:
        with self.lock:
            self.messages.append([alert])

    def send_many(self, alerts) -> None:
        with self.lock:
            self.messages.append(list(alerts))


def storm_figures(events: int = 40):
    """A network drop takes out `events` checks at once: pop-ups shown, Slack messages sent, alerts kept."""
    from tray_alerts import Engine, Level
    from tray_alerts.outbox import RetryPolicy
    from tray_alerts.storm import ChannelLimits

    desktop, slack, log = _Counting("desktop"), _Counting("slack"), _Counting("log")
    limits = {"desktop": ChannelLimits(max_per_minute=4),  # the packaged defaults,
              "slack": ChannelLimits(group_after=3, group_window=1.0)}  # with Slack's 30 s window cut to 1 s
    with tempfile.TemporaryDirectory() as folder:
        engine = Engine({c.name: c for c in (desktop, slack, log)}, {level: ["log", "desktop", "slack"]
                                                                      for level in Level},
                        Path(folder) / "state.db", limits=limits, retry=RetryPolicy(first=0.05, longest=0.2),
                        quiet_channels={"log"})
        started = time.perf_counter()
        for i in range(events):
            engine.raise_alert(f"check{i:02d}", "error", "unreachable after the network dropped")
        deadline = time.time() + 10
        while sum(len(m) for m in slack.messages) < events and time.time() < deadline:
            time.sleep(0.02)
        in_tray = len(engine.active())
        logged = sum(len(m) for m in log.messages)
        engine.close()  # closing sends the pop-up summary still waiting for its minute
    popups = sum(1 for m in desktop.messages if m[0].event != "tray-alerts")
    summaries = [m[0].message for m in desktop.messages if m[0].event == "tray-alerts"]
    slack_alerts = sum(len(m) for m in slack.messages)
    print(f"storm: {events} events at once -> {popups} pop-ups + {len(summaries)} summary"
          f" ({summaries[0] if summaries else 'none'!r}); Slack {len(slack.messages)} messages carrying"
          f" {slack_alerts}/{events} alerts; in the tray {in_tray}/{events}, in the log {logged}/{events}"
          f" ({time.perf_counter() - started:.1f} s)")
    return {"events": events, "popups": popups, "summaries": len(summaries), "slack_messages": len(slack.messages),
            "slack_alerts": slack_alerts, "in_tray": in_tray}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer kills and calls")
    parser.add_argument("--kills", type=int, help="SIGKILLs of the child (default 60, --quick 10)")
    args = parser.parse_args()
    kills = args.kills or (10 if args.quick else 60)
    logging.disable(logging.WARNING)  # the outage makes every failed delivery log a warning; figures only here
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(kill_figures(folder, kills, 0.0), flush=True)
        print(kill_figures(folder, kills, 0.2), flush=True)
        print(outage_figures(folder), flush=True)
        print(concurrency_figures(folder, 8, 1_000 if args.quick else 10_000), flush=True)
    unhandled: list[str] = []
    figures = bad_input_figures(unhandled)
    if figures is None:
        print("bad inputs: (corpus not found)")
    else:
        tried, handled = figures
        print(f"bad inputs: {handled}/{tried} handled (exit 2, one stderr line, no traceback)"
              + (f"; not: {', '.join(unhandled[:10])}" if unhandled else ""), flush=True)
    storm_figures()


if __name__ == "__main__":
    main()
