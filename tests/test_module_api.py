"""`import tray_alerts; tray_alerts.raise_alert(...)` from a script, with settings from the environment."""
import os
import subprocess
import sys

SCRIPT = """
import tray_alerts
first = tray_alerts.raise_alert("backup_stale", "error", "backup is 3 days old", path="/backup")
again = tray_alerts.raise_alert("backup_stale", "error", "backup is 3 days old")
active = [a.event for a in tray_alerts.default_engine().active()]
acknowledged = tray_alerts.acknowledge("backup_stale").kind
cleared = tray_alerts.clear_alert("backup_stale", "backup ran")
print(first, again, active, acknowledged, cleared)
"""


def test_module_level_functions_use_the_settings(tmp_path):
    settings = tmp_path / "settings.ini"
    settings.write_text(f"[alerts]\nstate_dir = {tmp_path}\nlog_file = {tmp_path / 'app.log'}\n"
                        f"[routing]\nerror = log\n[channel.log]\nfile = {tmp_path / 'alerts.log'}\n")
    env = {**os.environ, "TRAY_ALERTS_CONFIG": str(settings)}
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{'log': True} {} ['backup_stale'] acknowledged {'log': True}"
    assert "[RESOLVED] backup ran" in (tmp_path / "alerts.log").read_text()


def test_importing_the_package_loads_no_engine_until_a_name_is_used():
    """`import tray_alerts` (and so every `tray-alerts` command) is cheap; the public names still import."""
    script = ("import sys, tray_alerts\n"
              "heavy = {'tray_alerts.engine', 'tray_alerts.state', 'sqlite3', 'requests'} & set(sys.modules)\n"
              "from tray_alerts import (Alert, ChannelOutcome, DeliveryError, Engine, Level, RaiseResult, Result,\n"
              "                         Routing, acknowledge, clear_alert, default_engine, raise_alert)\n"
              "assert RaiseResult is Result and Engine.__module__ == 'tray_alerts.engine'\n"
              "assert set(tray_alerts.__all__) <= set(dir(tray_alerts))\n"
              "print(sorted(heavy), Level.parse('warning').value, 'tray_alerts.engine' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[] warning True"


def test_an_unknown_name_is_an_attribute_error():
    import pytest

    import tray_alerts

    with pytest.raises(AttributeError, match="no attribute 'Engien'"):
        tray_alerts.Engien  # noqa: B018
