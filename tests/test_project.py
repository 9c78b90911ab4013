"""The promises the repository makes about itself: the quick start and CI run the same test command."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def quick_start_commands() -> list[str]:
    section = (ROOT / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_quick_start_is_two_commands_and_ci_runs_the_test_one():
    setup_and_run, setup_and_test = quick_start_commands()[:2]
    assert setup_and_run.endswith("tray-alerts run") and "pytest" in setup_and_test
    assert setup_and_test in (ROOT / ".ci" / "run").read_text().splitlines()


def test_packaged_defaults_are_the_top_level_settings_file():
    packaged = ROOT / "tray_alerts" / "default_settings.ini"
    assert packaged.read_text() == (ROOT / "settings.ini").read_text()


def test_every_settings_key_is_commented():
    lines = (ROOT / "settings.ini").read_text().splitlines()
    for index, line in enumerate(lines):
        if "=" in line and not line.lstrip().startswith(";"):
            above = lines[max(0, index - 6):index]
            assert any(previous.startswith(";") for previous in above), f"settings.ini line {index + 1} has no comment"


def test_the_package_type_checks_with_mypy():
    pytest.importorskip("mypy", reason="mypy is in the test extra: pip install -e '.[test]'")
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
