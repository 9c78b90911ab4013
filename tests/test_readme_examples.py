"""The README's examples run: its worked scenario against the real app, and its Python API snippets, each compared
with what the code prints (times and durations aside). $TRAY_ALERTS_README points at another copy to check."""
from __future__ import annotations

import doctest
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers_net import free_port

ROOT = Path(__file__).resolve().parent.parent
README = Path(os.environ.get("TRAY_ALERTS_README") or ROOT / "README.md")
SCENARIO = "A worked scenario: debounce and recovery"
PYTHON_API = "Python API"
_TIME = re.compile(r"\b\d{2}:\d{2}(:\d{2})?\b")
_DURATION = re.compile(r"\(\d+(\.\d+)? (s|min|h|d)( \d+ (min|h))?\)")
STATUS_PATIENCE = 5.0  # seconds: a debounced repeat reaches the state file (which `status` reads) within about one


def section(title: str) -> str:
    """The README's text under `## title`, up to the next section of that depth."""
    text = README.read_text(encoding="utf-8")
    assert f"\n## {title}\n" in text, f"{README} has no section {title!r}"
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def session(block: str) -> list[tuple[str, list[str]]]:
    """A console block as (command, the lines it printed) pairs."""
    steps: list[tuple[str, list[str]]] = []
    for line in block.rstrip("\n").split("\n"):
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            assert steps, f"output before the first command: {line!r}"
            steps[-1][1].append(line)
    return steps


def normal(lines: list[str]) -> list[str]:
    """Lines with the clock times and durations blanked and runs of spaces made one (column widths follow them)."""
    shown = [" ".join(_DURATION.sub("(DURATION)", _TIME.sub("HH:MM", line)).split()) for line in lines]
    while shown and not shown[-1]:
        shown.pop()
    return shown


@pytest.fixture
def running_app(tmp_path):
    """The app, headless, with the scenario's settings: the log channel routed for warnings."""
    settings = tmp_path / "settings.ini"
    settings.write_text(f"[alerts]\nstate_dir = {tmp_path / 'state'}\nlog_file = {tmp_path / 'app.log'}\n"
                        f"api_port = {free_port()}\n[routing]\nwarning = log\n"
                        f"[channel.log]\nfile = {tmp_path / 'alerts.log'}\n[monitor.disk_root]\nenabled = no\n")
    env = {**os.environ, "TRAY_ALERTS_CONFIG": str(settings)}
    app = subprocess.Popen([sys.executable, "-m", "tray_alerts", "run", "--headless"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True, env=env)
    try:
        assert "running headless" in (app.stdout.readline() if app.stdout else "")
        yield env
    finally:
        app.send_signal(signal.SIGTERM)
        try:
            app.wait(timeout=15)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait()
        if app.stdout:
            app.stdout.close()


def run_shown(command: str, env: dict[str, str]) -> list[str]:
    words = shlex.split(command)
    assert words[0] == "tray-alerts", command
    result = subprocess.run([sys.executable, "-m", "tray_alerts", *words[1:]], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 0 and "Traceback" not in result.stderr, (command, result.stderr)
    return result.stdout.split("\n")


def test_the_worked_scenario_prints_what_the_readme_shows(running_app):
    scenario = blocks(section(SCENARIO), "console")
    assert scenario, f"no console block in {SCENARIO!r}"
    for command, shown in session(scenario[0]):
        expected = normal(shown)
        printed = normal(run_shown(command, running_app))
        deadline = time.monotonic() + STATUS_PATIENCE
        while command.split()[1:2] == ["status"] and printed != expected and time.monotonic() < deadline:
            time.sleep(0.2)
            printed = normal(run_shown(command, running_app))
        assert printed == expected, f"$ {command}"


def test_the_python_api_snippets_run_and_print_what_the_readme_shows(tmp_path, monkeypatch):
    text = section(PYTHON_API)
    consoles, scripts = blocks(text, "pycon"), blocks(text, "python")
    assert consoles or scripts, f"no Python in {PYTHON_API!r}"
    settings = tmp_path / "settings.ini"
    settings.write_text(f"[alerts]\nstate_dir = {tmp_path / 'user-state'}\nlog_file = {tmp_path / 'app.log'}\n"
                        f"api_port = {free_port()}\n[channel.desktop]\nenabled = no\n")
    monkeypatch.setenv("TRAY_ALERTS_CONFIG", str(settings))
    monkeypatch.chdir(tmp_path)  # a relative state_path lands here
    for number, script in enumerate(scripts):
        exec(compile(script, f"{README.name} ({PYTHON_API}, python block {number + 1})", "exec"), {})
    for number, console in enumerate(consoles):
        test = doctest.DocTestParser().get_doctest(console, {}, f"pycon block {number + 1}", str(README), 0)
        runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
        report: list[str] = []
        runner.run(test, out=report.append)
        assert runner.failures == 0, "".join(report)
