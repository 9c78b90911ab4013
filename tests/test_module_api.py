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
